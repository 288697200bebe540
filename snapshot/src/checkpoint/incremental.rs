//! Incremental checkpoints: states that did not change since the previous checkpoint are
//! written as runs of references to the checkpoint that stores their bytes (format version 5).
//!
//! The writer remembers, per actor, the BLAKE3 digest and length of the state it last wrote
//! and the checkpoint that holds those bytes (a [`Chain`]); [`plan`] compares the next
//! checkpoint against it. A reference always names the checkpoint that *stores* the bytes,
//! never one that refers on, so a reader follows one step. [`resolve`] puts a checkpoint back
//! together from the checkpoints its runs name, checking each run's digest.
//!
//! A run's digest is BLAKE3 (its first 16 bytes) over, for each of its states in order, the
//! state's length (u64, little-endian) and its own BLAKE3 digest: the writer has the states' digests already, and
//! a reader that finds other bytes (a tampered or replaced base) finds another digest.

use std::collections::{HashMap, HashSet};

use crate::ActorId;
use crate::checkpoint::compact::{RunDigestBytes, RunItem};
use crate::checkpoint::error::{FormatError, ReferenceProblem};
use crate::checkpoint::in_flight::InFlight;
use crate::checkpoint::model::{Checkpoint, CheckpointId, Manifest, StateRecord};

/// The hasher of the maps keyed by actor id (ids are not chosen against this process).
type FastHash = foldhash::fast::RandomState;

/// A BLAKE3 digest.
pub(crate) type Digest = [u8; 32];

/// The digest of one state's bytes.
pub(crate) fn digest(state: &[u8]) -> Digest {
    *blake3::hash(state).as_bytes()
}

/// The digest of a run of states, fed state by state.
struct RunDigest(blake3::Hasher);

impl RunDigest {
    fn new() -> RunDigest {
        RunDigest(blake3::Hasher::new())
    }

    fn add(&mut self, len: u64, digest: &Digest) {
        self.0.update(&len.to_le_bytes());
        self.0.update(digest);
    }

    /// The first 16 bytes of the BLAKE3 digest.
    fn finish(&self) -> RunDigestBytes {
        let mut digest = [0; 16];
        self.0.finalize_xof().fill(&mut digest);
        digest
    }
}

/// What a writer knows of one actor's last written state.
#[derive(Debug, Clone, Copy)]
struct Known {
    digest: Digest,
    len: u64,
    /// The checkpoint that stores these bytes.
    home: CheckpointId,
}

/// What a store that writes incrementally remembers of the last checkpoint it wrote.
#[derive(Debug)]
pub(crate) struct Chain {
    /// The checkpoint this describes.
    last: CheckpointId,
    /// How many checkpoints were written since the last full one (0: `last` is full).
    since_full: u32,
    /// Every actor of `last`, with where its state's bytes are.
    known: HashMap<ActorId, Known, FastHash>,
    /// Every checkpoint that `known` points to.
    homes: HashSet<CheckpointId>,
}

impl Chain {
    /// The checkpoint this chain describes.
    pub(crate) fn last(&self) -> CheckpointId {
        self.last
    }

    /// The chain that describes checkpoint `parts` as it is stored: each state's digest and
    /// length, and the checkpoint that holds its bytes (this one, or the one a run names), read
    /// through `homes` as [`resolve`] takes them. For a store opened on checkpoints an earlier
    /// process wrote, so that its first save refers to them instead of writing everything
    /// again. `None` if the checkpoint does not resolve. How many incremental checkpoints led
    /// to it is not recorded: counted as one if it has runs, none if it is full.
    pub(crate) fn of_stored(
        parts: Parts,
        homes: HashMap<CheckpointId, Result<Parts, ReferenceProblem>>,
    ) -> Option<Chain> {
        let id = parts.manifest.id;
        // Where each state's bytes are, in the order `resolve` puts the states.
        let mut stored_in = Vec::with_capacity(parts.manifest.actors.len());
        for slot in &parts.slots {
            match slot {
                Slot::Here(_) => stored_in.push(id),
                Slot::Run(run) => {
                    stored_in.extend(std::iter::repeat_n(run.home, run.count as usize))
                }
            }
        }
        let checkpoint = resolve(parts, homes).ok()?;
        if checkpoint.states.len() != stored_in.len() {
            return None;
        }
        let mut known: HashMap<ActorId, Known, FastHash> =
            HashMap::with_capacity_and_hasher(stored_in.len(), FastHash::default());
        let mut homes = HashSet::new();
        for (state, home) in checkpoint.states.iter().zip(stored_in) {
            let len = state.state.len() as u64;
            known.insert(state.id, Known { digest: digest(&state.state), len, home });
            homes.insert(home);
        }
        let since_full = u32::from(homes.iter().any(|&home| home != id));
        Some(Chain { last: id, since_full, known, homes })
    }

    /// The checkpoints the chain's states are stored in.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub(crate) fn homes(&self) -> impl Iterator<Item = CheckpointId> + '_ {
        self.homes.iter().copied()
    }

    /// Whether the chain's states are stored in checkpoint `id`.
    pub(crate) fn relies_on(&self, id: CheckpointId) -> bool {
        self.homes.contains(&id)
    }
}

/// One item of a version 5 state record, as the encoder writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// The state at this index of [`Checkpoint::states`], stored here.
    Here(usize),
    /// States stored in an earlier checkpoint.
    Run(RunItem),
}

/// How a checkpoint is written incrementally: its state items, and the checkpoints they name.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The state items, in order; together they cover every state once.
    pub(crate) items: Vec<Item>,
    /// The checkpoints the runs name, ascending, each once (never empty).
    pub(crate) bases: Vec<u64>,
}

/// The state items of `checkpoint` written after the checkpoint `previous` describes: an
/// actor with no timers whose state has the digest and length it had then is referenced
/// where its bytes are; the others are stored. `None` if nothing is referenced (write it
/// whole): when there is no previous checkpoint, when `full_every` checkpoints would
/// otherwise follow one full one, or when a checkpoint the chain relies on no longer exists
/// (`exists` says). Also returns the chain that describes `checkpoint` once written.
pub(crate) fn plan(
    previous: Option<&Chain>,
    checkpoint: &Checkpoint,
    full_every: u32,
    exists: impl Fn(CheckpointId) -> bool,
) -> (Option<Plan>, Chain) {
    let Checkpoint { manifest, states, .. } = checkpoint;
    let id = manifest.id;
    let previous = previous.filter(|chain| {
        chain.last < id
            && chain.since_full.saturating_add(1) < full_every
            && chain.homes.iter().all(|&home| exists(home))
    });
    let mut known: HashMap<ActorId, Known, FastHash> =
        HashMap::with_capacity_and_hasher(states.len(), FastHash::default());
    let mut homes = HashSet::new();
    let mut items = Vec::new();
    let mut places: Option<HashMap<ActorId, u32, FastHash>> = None;
    let mut run: Option<(RunItem, RunDigest)> = None;
    let mut referenced = false;
    for (i, state) in states.iter().enumerate() {
        let digest = digest(&state.state);
        let len = state.state.len() as u64;
        let same = previous
            .and_then(|chain| chain.known.get(&state.id))
            .filter(|k| k.digest == digest && k.len == len && state.timers.is_empty());
        let home = same.map_or(id, |k| k.home);
        known.insert(state.id, Known { digest, len, home });
        homes.insert(home);
        if same.is_none() {
            flush(&mut run, &mut items);
            items.push(Item::Here(i));
            continue;
        }
        referenced = true;
        let place = if manifest.actors.get(i).is_some_and(|a| a.id == state.id) {
            i as u32
        } else {
            let places = places.get_or_insert_with(|| places_of(manifest));
            // Validation checks every state is of a listed actor before anything is encoded.
            places.get(&state.id).copied().unwrap_or(u32::MAX)
        };
        let extends = run.as_ref().is_some_and(|(r, _)| {
            r.home == home && r.count < u32::MAX && r.place.checked_add(r.count) == Some(place)
        });
        if !extends {
            flush(&mut run, &mut items);
            run = Some((
                RunItem { place, count: 0, home, digest: [0; 16], bytes: 0 },
                RunDigest::new(),
            ));
        }
        if let Some((r, d)) = run.as_mut() {
            r.count += 1;
            r.bytes += len;
            d.add(len, &digest);
        }
    }
    flush(&mut run, &mut items);
    let since_full = match previous {
        Some(chain) if referenced => chain.since_full + 1,
        _ => 0,
    };
    let chain = Chain { last: id, since_full, known, homes };
    if !referenced {
        return (None, chain);
    }
    let mut bases: Vec<u64> = chain.homes.iter().filter(|&&h| h != id).map(|h| h.0).collect();
    bases.sort_unstable();
    (Some(Plan { items, bases }), chain)
}

/// Ends the run being built, if any.
fn flush(run: &mut Option<(RunItem, RunDigest)>, items: &mut Vec<Item>) {
    if let Some((mut r, d)) = run.take() {
        r.digest = d.finish();
        items.push(Item::Run(r));
    }
}

fn places_of(manifest: &Manifest) -> HashMap<ActorId, u32, FastHash> {
    manifest.actors.iter().enumerate().map(|(i, a)| (a.id, i as u32)).collect()
}

/// A checkpoint as decoded, before the states its runs name are fetched.
#[derive(Debug)]
pub(crate) struct Parts {
    /// Its manifest.
    pub(crate) manifest: Manifest,
    /// Its state items, in order.
    pub(crate) slots: Vec<Slot>,
    /// Its in-flight messages.
    pub(crate) in_flight: InFlight,
}

/// A decoded state item.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A state stored here.
    Here(StateRecord),
    /// States stored in another checkpoint.
    Run(RunItem),
}

impl Parts {
    /// The checkpoints the runs name, each once.
    pub(crate) fn homes(&self) -> Vec<CheckpointId> {
        let mut homes: Vec<CheckpointId> = self
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Run(run) => Some(run.home),
                Slot::Here(_) => None,
            })
            .collect();
        homes.sort_unstable();
        homes.dedup();
        homes
    }

    /// The checkpoint, if it has no runs (otherwise [`FormatError::Unresolved`]), checked for
    /// consistency.
    pub(crate) fn into_checkpoint(self) -> Result<Checkpoint, FormatError> {
        let Parts { manifest, slots, in_flight } = self;
        let mut states = Vec::with_capacity(slots.len());
        let mut unresolved = None;
        for slot in slots {
            match slot {
                Slot::Here(state) => states.push(state),
                Slot::Run(run) => {
                    let (base, count) = unresolved.get_or_insert((run.home, 0u64));
                    if *base == run.home {
                        *count += u64::from(run.count);
                    }
                }
            }
        }
        if let Some((base, states)) = unresolved {
            return Err(FormatError::Unresolved { base, states });
        }
        let checkpoint = Checkpoint { manifest, states, in_flight };
        checkpoint.validate()?;
        Ok(checkpoint)
    }
}

/// Why a run could not be resolved: the run's first actor, the checkpoint it names, and what
/// is wrong with it.
pub(crate) type Unresolved = (ActorId, CheckpointId, ReferenceProblem);

/// Puts `parts` back together with the states of the checkpoints its runs name: `homes` holds,
/// for each of [`Parts::homes`], that checkpoint decoded (or why it is not there). Checks
/// every run against its digest and length. The result is not yet
/// [validated](Checkpoint::validate).
pub(crate) fn resolve(
    parts: Parts,
    homes: HashMap<CheckpointId, Result<Parts, ReferenceProblem>>,
) -> Result<Checkpoint, Unresolved> {
    let Parts { manifest, slots, in_flight } = parts;
    // Each home's stored states by actor, made when a run first names it.
    let mut homes: HashMap<CheckpointId, Result<HashMap<ActorId, StateRecord, FastHash>, _>> =
        homes
            .into_iter()
            .map(|(id, home)| {
                let index = home.map(|home| {
                    home.slots
                        .into_iter()
                        .filter_map(|slot| match slot {
                            Slot::Here(state) => Some((state.id, state)),
                            Slot::Run(_) => None,
                        })
                        .collect()
                });
                (id, index)
            })
            .collect();
    let mut states = Vec::with_capacity(manifest.actors.len());
    for slot in slots {
        let run = match slot {
            Slot::Here(state) => {
                states.push(state);
                continue;
            }
            Slot::Run(run) => run,
        };
        let start = run.place as usize;
        // The decoder checked that every run lies within the manifest.
        let actors = manifest.actors.get(start..start + run.count as usize).unwrap_or_default();
        let first = actors.first().map_or(ActorId::new(crate::SystemId(0), 0), |a| a.id);
        if let Some(Err(_)) | None = homes.get(&run.home) {
            let problem = match homes.remove(&run.home) {
                Some(Err(problem)) => problem,
                _ => ReferenceProblem::Missing,
            };
            return Err((first, run.home, problem));
        }
        let Some(Ok(index)) = homes.get_mut(&run.home) else {
            return Err((first, run.home, ReferenceProblem::Missing));
        };
        let mut digest_of_run = RunDigest::new();
        let mut bytes = 0u64;
        for actor in actors {
            let Some(mut state) = index.remove(&actor.id) else {
                return Err((actor.id, run.home, ReferenceProblem::NoState));
            };
            let len = state.state.len() as u64;
            digest_of_run.add(len, &digest(&state.state));
            bytes = bytes.saturating_add(len);
            state.timers.clear();
            states.push(state);
        }
        if actors.len() != run.count as usize
            || bytes != run.bytes
            || digest_of_run.finish() != run.digest
        {
            return Err((first, run.home, ReferenceProblem::Mismatch));
        }
    }
    Ok(Checkpoint { manifest, states, in_flight })
}

/// What a store remembers for incremental checkpoints: the chain it writes on, and the bases
/// of the checkpoints it has written or read (a checkpoint's bases never change).
#[derive(Default)]
pub(crate) struct Memory {
    /// The chain of the last checkpoint written, if the store writes incrementally.
    pub(crate) chain: Option<Chain>,
    /// The store looked for a chain to go on with among the checkpoints it holds (once, at
    /// its first incremental save).
    pub(crate) looked_back: bool,
    /// The bases of checkpoints, by id.
    pub(crate) bases: HashMap<CheckpointId, Vec<CheckpointId>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("chain_last", &self.chain.as_ref().map(Chain::last))
            .field("chain_actors", &self.chain.as_ref().map(|c| c.known.len()))
            .field("bases_known", &self.bases.len())
            .finish()
    }
}

/// The checkpoints retention removes from `ids` (ascending) to keep the `keep_last` newest and
/// every checkpoint a kept one refers to, directly or through another kept one. `bases_of`
/// gives a checkpoint's bases, or `None` if they cannot be known now (then nothing is
/// removed: a checkpoint is never removed while something kept may still need it).
pub(crate) fn beyond_retention(
    ids: &[CheckpointId],
    keep_last: usize,
    mut bases_of: impl FnMut(CheckpointId) -> Option<Vec<CheckpointId>>,
) -> Vec<CheckpointId> {
    let newest = ids.len().saturating_sub(keep_last);
    if newest == 0 {
        return Vec::new();
    }
    let mut keep: HashSet<CheckpointId> = ids[newest..].iter().copied().collect();
    let mut todo: Vec<CheckpointId> = ids[newest..].to_vec();
    while let Some(id) = todo.pop() {
        let Some(bases) = bases_of(id) else { return Vec::new() };
        for base in bases {
            if ids.binary_search(&base).is_ok() && keep.insert(base) {
                todo.push(base);
            }
        }
    }
    ids.iter().copied().filter(|id| !keep.contains(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::model::{ActorEntry, NodeEntry, SpawnCapacity, SpawnRestart};
    use crate::{Epoch, SystemId};

    fn checkpoint(id: u64, states: &[&[u8]]) -> Checkpoint {
        let actor = |i: usize| ActorId::new(SystemId(1), i as u64 + 1);
        Checkpoint {
            manifest: Manifest {
                id: CheckpointId(id),
                epoch: Epoch(id),
                created_unix_ms: 0,
                nodes: vec![NodeEntry { node: "n".into(), address: None }],
                actors: (0..states.len())
                    .map(|i| ActorEntry {
                        id: actor(i),
                        type_name: "t".into(),
                        name: None,
                        node: "n".into(),
                        parent: None,
                        watchers: vec![],
                        watching: vec![],
                        state_version: 1,
                        capacity: SpawnCapacity::SystemDefault,
                        restart: SpawnRestart::Never,
                    })
                    .collect(),
            },
            states: states
                .iter()
                .enumerate()
                .map(|(i, s)| StateRecord { id: actor(i), state: s.to_vec(), timers: vec![] })
                .collect(),
            in_flight: InFlight::default(),
        }
    }

    fn shape(plan: &Plan) -> Vec<(char, u32, u32, u64)> {
        plan.items
            .iter()
            .map(|item| match *item {
                Item::Here(i) => ('h', i as u32, 1, 0),
                Item::Run(r) => ('r', r.place, r.count, r.home.0),
            })
            .collect()
    }

    #[test]
    fn unchanged_states_become_runs_that_point_where_the_bytes_are() {
        let always = |_| true;
        let (plan, chain) = plan(None, &checkpoint(1, &[b"a", b"b", b"c", b"d"]), 16, always);
        assert!(plan.is_none(), "the first checkpoint is whole");
        let (plan, chain) =
            super::plan(Some(&chain), &checkpoint(2, &[b"a", b"B", b"c", b"d"]), 16, always);
        let plan = plan.unwrap();
        assert_eq!(shape(&plan), [('r', 0, 1, 1), ('h', 1, 1, 0), ('r', 2, 2, 1)]);
        assert_eq!(plan.bases, [1]);
        // Actor 2's bytes are in checkpoint 2 now; a run never names a checkpoint that refers
        // on.
        let (plan, chain) =
            super::plan(Some(&chain), &checkpoint(3, &[b"a", b"B", b"c", b"D"]), 16, always);
        let plan = plan.unwrap();
        assert_eq!(shape(&plan), [('r', 0, 1, 1), ('r', 1, 1, 2), ('r', 2, 1, 1), ('h', 3, 1, 0)]);
        assert_eq!(plan.bases, [1, 2]);
        assert!(chain.relies_on(CheckpointId(1)) && chain.relies_on(CheckpointId(3)));
        // The same length with other bytes is a change.
        let (plan, _) =
            super::plan(Some(&chain), &checkpoint(4, &[b"x", b"B", b"c", b"D"]), 16, always);
        assert_eq!(shape(&plan.unwrap())[0], ('h', 0, 1, 0));
        // Every 3rd checkpoint is whole; so is one whose base is gone.
        let (plan, _) = super::plan(Some(&chain), &checkpoint(4, &[&b"a"[..]; 4]), 3, always);
        assert!(plan.is_none());
        let gone = |id: CheckpointId| id != CheckpointId(2);
        let (plan, chain) = super::plan(Some(&chain), &checkpoint(4, &[&b"a"[..]; 4]), 16, gone);
        assert!(plan.is_none());
        assert!(!chain.relies_on(CheckpointId(1)));
    }

    #[test]
    fn retention_keeps_the_bases_of_kept_checkpoints_transitively() {
        let ids: Vec<CheckpointId> = (1..=6).map(CheckpointId).collect();
        let bases = |id: CheckpointId| {
            Some(match id.0 {
                6 => vec![CheckpointId(4)],
                4 => vec![CheckpointId(2)],
                5 => vec![CheckpointId(9)],
                _ => vec![],
            })
        };
        let removed = beyond_retention(&ids, 2, bases);
        assert_eq!(removed, [CheckpointId(1), CheckpointId(3)]);
        assert!(beyond_retention(&ids, 6, bases).is_empty());
        // If the bases of a kept checkpoint cannot be read, nothing is removed.
        assert!(beyond_retention(&ids, 2, |id| (id.0 != 6).then(Vec::new)).is_empty());
    }
}
