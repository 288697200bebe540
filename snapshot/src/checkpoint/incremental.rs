//! Incremental checkpoints: actors whose entry and state did not change since the previous
//! checkpoint are written as runs of references to the checkpoint that stores them (format
//! version 7; version 5, still read, referred to states only).
//!
//! The writer's side is in `chain.rs`. Here: how a checkpoint is put back together from the
//! checkpoints its runs name ([`resolve`]), checking each run's digest, and what retention
//! must keep ([`beyond_retention`]). A reference always names the checkpoint that *stores*
//! what it refers to, never one that refers on, so a reader follows one step.
//!
//! A run's digest is BLAKE3 (its first 16 bytes) over, for each of its states in order, the
//! state's length (u64, little-endian) and its own BLAKE3 digest, preceded in version 7 by
//! the actor's id: the writer has the states' digests already, and a reader that finds other
//! bytes or other actors (a tampered or replaced base) finds another digest. The other
//! fields of the entries a version 7 run takes are checked only as the base's records are
//! (CRC32C): a base replaced by a checkpoint with the same actors and states but other
//! entries would not be noticed.

use std::collections::{HashMap, HashSet};

pub(crate) use crate::checkpoint::chain::{Chain, Plan, plan};

use crate::ActorId;
use crate::checkpoint::compact::{ActorRun, RunDigestBytes, RunItem};
use crate::checkpoint::error::{FormatError, ReferenceProblem};
use crate::checkpoint::in_flight::InFlight;
use crate::checkpoint::model::{ActorEntry, Checkpoint, CheckpointId, Manifest, StateRecord};

/// The hasher of the maps keyed by actor id (ids are not chosen against this process).
type FastHash = foldhash::fast::RandomState;

/// A BLAKE3 digest.
pub(crate) type Digest = [u8; 32];

/// The digest of one state's bytes.
pub(crate) fn digest(state: &[u8]) -> Digest {
    *blake3::hash(state).as_bytes()
}

/// The digest of a run of states, fed state by state.
pub(crate) struct RunDigest(blake3::Hasher);

impl RunDigest {
    pub(crate) fn new() -> RunDigest {
        RunDigest(blake3::Hasher::new())
    }

    /// Feeds a version 7 run's actor: its id (system, then sequence number, u64
    /// little-endian), before its state's length and digest.
    pub(crate) fn add_actor(&mut self, id: ActorId) {
        self.0.update(&id.system().0.to_le_bytes());
        self.0.update(&id.seq().to_le_bytes());
    }

    pub(crate) fn add(&mut self, len: u64, digest: &Digest) {
        self.0.update(&len.to_le_bytes());
        self.0.update(digest);
    }

    /// The first 16 bytes of the BLAKE3 digest.
    pub(crate) fn finish(&self) -> RunDigestBytes {
        let mut digest = [0; 16];
        self.0.finalize_xof().fill(&mut digest);
        digest
    }
}

/// A checkpoint as decoded, before what its runs name is fetched.
#[derive(Debug)]
pub(crate) struct Parts {
    /// Its manifest; with actor runs (version 7), only the entries written out, which take
    /// the places the runs leave, in order.
    pub(crate) manifest: Manifest,
    /// Its actor runs (version 7), each with the place of its first actor.
    pub(crate) runs: Vec<(u32, ActorRun)>,
    /// Its state items, in order.
    pub(crate) slots: Vec<Slot>,
    /// Its in-flight messages.
    pub(crate) in_flight: InFlight,
}

/// A decoded state item.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A state stored here, of the actor at this place of the checkpoint (`u32::MAX` if not
    /// known: version 1).
    Here(u32, StateRecord),
    /// States stored in another checkpoint (version 5).
    Run(RunItem),
}

impl Parts {
    /// The checkpoints the runs name, each once.
    pub(crate) fn homes(&self) -> Vec<CheckpointId> {
        let states = self.slots.iter().filter_map(|slot| match slot {
            Slot::Run(run) => Some(run.home),
            Slot::Here(..) => None,
        });
        let mut homes: Vec<CheckpointId> =
            states.chain(self.runs.iter().map(|(_, run)| run.home)).collect();
        homes.sort_unstable();
        homes.dedup();
        homes
    }

    /// The checkpoint, if it has no runs (otherwise [`FormatError::Unresolved`]), checked for
    /// consistency.
    pub(crate) fn into_checkpoint(self) -> Result<Checkpoint, FormatError> {
        let Parts { manifest, runs, slots, in_flight } = self;
        if let Some((_, first)) = runs.first() {
            let states = runs
                .iter()
                .filter(|(_, run)| run.home == first.home)
                .map(|(_, run)| u64::from(run.count))
                .sum();
            return Err(FormatError::Unresolved { base: first.home, states });
        }
        let mut states = Vec::with_capacity(slots.len());
        let mut unresolved = None;
        for slot in slots {
            match slot {
                Slot::Here(_, state) => states.push(state),
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

    /// Where its actors are stored: the places of the states stored here, and its runs.
    fn layout(&self) -> Layout {
        let here = self.slots.iter().filter_map(|slot| match slot {
            Slot::Here(place, _) => Some(*place),
            Slot::Run(_) => None,
        });
        Layout { id: self.manifest.id, here: here.collect(), runs: self.runs.clone() }
    }
}

/// Where the actors of a checkpoint are stored ([`Parts::layout`]).
struct Layout {
    id: CheckpointId,
    here: Vec<u32>,
    runs: Vec<(u32, ActorRun)>,
}

impl Layout {
    /// Where each of the `places` actors is stored, entry and state together, by place: here,
    /// or in the home a run names (`None`: its state is stored apart from its entry, in a
    /// version 5 checkpoint, or its place is not known).
    fn stored_at(&self, places: usize) -> Vec<Option<(CheckpointId, u32)>> {
        let mut stored_at = vec![None; places];
        for &place in &self.here {
            if let Some(at) = stored_at.get_mut(place as usize) {
                *at = Some((self.id, place));
            }
        }
        for (place, run) in &self.runs {
            for k in 0..run.count {
                let Some(at) = place.checked_add(k).and_then(|p| stored_at.get_mut(p as usize))
                else {
                    break;
                };
                *at = run.home_place.checked_add(k).map(|home_place| (run.home, home_place));
            }
        }
        stored_at
    }
}

/// The chain of checkpoint `parts` as it is stored, read through `homes` as [`resolve`]
/// takes them: for a store opened on checkpoints an earlier process wrote, so that its first
/// save refers to them instead of writing everything again. `None` if it does not resolve.
pub(crate) fn chain_of_stored(
    parts: Parts,
    homes: HashMap<CheckpointId, Result<Parts, ReferenceProblem>>,
) -> Option<Chain> {
    let layout = parts.layout();
    let checkpoint = resolve(parts, homes).ok()?;
    checkpoint.validate().ok()?;
    Chain::of_stored(&checkpoint, &layout.stored_at(checkpoint.manifest.actors.len()))
}

/// Why a run could not be resolved: the run's first actor, the checkpoint it names, and what
/// is wrong with it.
pub(crate) type Unresolved = (ActorId, CheckpointId, ReferenceProblem);

/// Puts `parts` back together with the entries and states of the checkpoints its runs name:
/// `homes` holds, for each of [`Parts::homes`], that checkpoint decoded (or why it is not
/// there). Checks every run against its digest and length. The result is not yet
/// [validated](Checkpoint::validate).
pub(crate) fn resolve(
    parts: Parts,
    homes: HashMap<CheckpointId, Result<Parts, ReferenceProblem>>,
) -> Result<Checkpoint, Unresolved> {
    if parts.runs.is_empty() {
        resolve_state_runs(parts, homes)
    } else {
        resolve_actor_runs(parts, homes)
    }
}

/// Which entry written out (its index among the manifest's actors) takes each place of a
/// checkpoint with actor runs, which take the other places.
pub(crate) struct StoredPlaces {
    /// The runs' places and counts, with how many places the runs before each cover.
    runs: Vec<(u32, u32, u64)>,
    /// How many entries are written out.
    stored: usize,
}

impl StoredPlaces {
    pub(crate) fn of(runs: &[(u32, ActorRun)], stored: usize) -> StoredPlaces {
        let mut covered = 0u64;
        let runs = runs
            .iter()
            .map(|(place, run)| {
                let before = covered;
                covered += u64::from(run.count);
                (*place, run.count, before)
            })
            .collect();
        StoredPlaces { runs, stored }
    }

    /// Which entry written out takes `place` (`None`: a run does, or the checkpoint has
    /// fewer places).
    pub(crate) fn stored(&self, place: u32) -> Option<usize> {
        let after = self.runs.partition_point(|&(at, _, _)| at <= place);
        let covered = match after.checked_sub(1).map(|r| self.runs[r]) {
            Some((at, count, before)) => {
                if u64::from(place) < u64::from(at) + u64::from(count) {
                    return None;
                }
                before + u64::from(count)
            }
            None => 0,
        };
        let at = u64::from(place).checked_sub(covered)? as usize;
        (at < self.stored).then_some(at)
    }
}

/// A home's stored entries and states, taken as runs use them.
struct HomeIndex {
    /// The entries it stores, in order, and their states.
    entries: Vec<Option<ActorEntry>>,
    states: Vec<Option<StateRecord>>,
    places: StoredPlaces,
}

impl HomeIndex {
    fn of(home: Parts) -> HomeIndex {
        let places = StoredPlaces::of(&home.runs, home.manifest.actors.len());
        let entries: Vec<Option<ActorEntry>> = home.manifest.actors.into_iter().map(Some).collect();
        let mut states: Vec<Option<StateRecord>> = Vec::new();
        states.resize_with(entries.len(), || None);
        for slot in home.slots {
            if let Slot::Here(place, state) = slot
                && let Some(at) = places.stored(place).and_then(|at| states.get_mut(at))
            {
                *at = Some(state);
            }
        }
        HomeIndex { entries, states, places }
    }

    /// The entry and state stored at `place`, taken (a place is taken once).
    fn take(&mut self, place: u32) -> (Option<ActorEntry>, Option<StateRecord>) {
        let Some(at) = self.places.stored(place) else { return (None, None) };
        (self.entries[at].take(), self.states[at].take())
    }
}

/// [`resolve`] for a version 7 checkpoint: its actor runs take entries and states from
/// their homes by place.
fn resolve_actor_runs(
    parts: Parts,
    homes: HashMap<CheckpointId, Result<Parts, ReferenceProblem>>,
) -> Result<Checkpoint, Unresolved> {
    let Parts { manifest, runs, slots, in_flight } = parts;
    let Manifest { id, epoch, created_unix_ms, nodes, actors: stored } = manifest;
    let mut homes: HashMap<CheckpointId, Result<HomeIndex, ReferenceProblem>> =
        homes.into_iter().map(|(id, home)| (id, home.map(HomeIndex::of))).collect();
    let mut actors = Vec::with_capacity(stored.len());
    let mut stored = stored.into_iter();
    // The states written out, in place order (as written), merged with the runs'.
    let mut here = slots.into_iter().filter_map(|slot| match slot {
        Slot::Here(place, state) => Some((place, state)),
        Slot::Run(_) => None,
    });
    let mut next_here = here.next();
    let mut states = Vec::with_capacity(actors.capacity());
    let mut take_here_before = |place: u32, states: &mut Vec<StateRecord>| {
        while let Some((at, _)) = &next_here
            && *at < place
        {
            if let Some((_, state)) = next_here.take() {
                states.push(state);
            }
            next_here = here.next();
        }
    };
    for (place, run) in runs {
        // The entries written out before the run.
        while actors.len() < place as usize {
            let Some(entry) = stored.next() else { break };
            actors.push(entry);
        }
        take_here_before(place, &mut states);
        let home = match homes.get_mut(&run.home) {
            Some(Ok(home)) => home,
            Some(Err(_)) | None => {
                let problem = match homes.remove(&run.home) {
                    Some(Err(problem)) => problem,
                    _ => ReferenceProblem::Missing,
                };
                return Err((run.first, run.home, problem));
            }
        };
        let mut digest_of_run = RunDigest::new();
        let mut bytes = 0u64;
        for k in 0..run.count {
            let actor = actors.last().filter(|_| k > 0).map_or(run.first, |a: &ActorEntry| a.id);
            let Some(place) = run.home_place.checked_add(k) else {
                return Err((actor, run.home, ReferenceProblem::NoState));
            };
            let (entry, state) = home.take(place);
            let Some(entry) = entry else {
                return Err((actor, run.home, ReferenceProblem::NoState));
            };
            if k == 0 && entry.id != run.first {
                return Err((run.first, run.home, ReferenceProblem::Mismatch));
            }
            let Some(mut state) = state else {
                return Err((entry.id, run.home, ReferenceProblem::NoState));
            };
            if state.id != entry.id {
                return Err((entry.id, run.home, ReferenceProblem::Mismatch));
            }
            let len = state.state.len() as u64;
            digest_of_run.add_actor(entry.id);
            digest_of_run.add(len, &digest(&state.state));
            bytes = bytes.saturating_add(len);
            state.timers.clear();
            actors.push(entry);
            states.push(state);
        }
        if bytes != run.bytes || digest_of_run.finish() != run.digest {
            return Err((run.first, run.home, ReferenceProblem::Mismatch));
        }
    }
    actors.extend(stored);
    take_here_before(u32::MAX, &mut states);
    if let Some((_, state)) = next_here {
        states.push(state);
    }
    let manifest = Manifest { id, epoch, created_unix_ms, nodes, actors };
    Ok(Checkpoint { manifest, states, in_flight })
}

/// [`resolve`] for a version 5 checkpoint: its state runs take states from their homes by
/// actor.
fn resolve_state_runs(
    parts: Parts,
    homes: HashMap<CheckpointId, Result<Parts, ReferenceProblem>>,
) -> Result<Checkpoint, Unresolved> {
    let Parts { manifest, slots, in_flight, .. } = parts;
    // Each home's stored states by actor, made when a run first names it.
    let mut homes: HashMap<CheckpointId, Result<HashMap<ActorId, StateRecord, FastHash>, _>> =
        homes
            .into_iter()
            .map(|(id, home)| {
                let index = home.map(|home| {
                    home.slots
                        .into_iter()
                        .filter_map(|slot| match slot {
                            Slot::Here(_, state) => Some((state.id, state)),
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
            Slot::Here(_, state) => {
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
            .field("chain_actors", &self.chain.as_ref().map(Chain::actors))
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
