//! What a store that writes incrementally remembers of the last checkpoint it wrote (a
//! [`Chain`]), and how it plans the next one against it ([`plan`], format version 7).
//!
//! For every actor of the last checkpoint the chain keeps its manifest entry (compactly: type
//! and node names interned), the BLAKE3 digest and length of its state, and the checkpoint
//! that stores both (its *home*) with the actor's place there. An actor whose entry is equal,
//! whose state has the same digest and length and who has no pending timers is referenced
//! there; runs of such actors at consecutive places of one home become one actor run
//! ([`ActorRun`]). The actors are kept in the manifest's order, so the next checkpoint (mostly
//! the same actors in the same order) finds each by position, not by a hash lookup.
//!
//! Whether a state changed is told by a *fingerprint*: keyed SipHash-1-3 (the variant the
//! standard library's hash maps use) with 128 bits of output, under a key drawn at random
//! for each chain (a PRF: without the key, which never leaves the process, a changed state
//! an adversary chooses keeps its fingerprint with probability 2^-128). It is
//! several times cheaper than BLAKE3 on the small states most actors have, and every state is
//! fingerprinted at every save. The BLAKE3 digest (which a run's digest is made of and a
//! reader checks) is computed only for the states written out, and remembered: a reference
//! written for a state that changed would load a wrong state silently, so the writer never
//! trusts anything weaker than a keyed 128-bit PRF, and the file keeps BLAKE3.

use std::collections::HashMap;
use std::hash::BuildHasher;

use siphasher::sip128::SipHasher13;

use crate::ActorId;
use crate::checkpoint::compact::{ActorItem, ActorRun};
use crate::checkpoint::incremental::{Digest, RunDigest, digest};
use crate::checkpoint::model::{
    ActorEntry, Checkpoint, CheckpointId, SpawnCapacity, SpawnRestart, StateRecord,
};

/// The hasher of the maps keyed by actor id (ids are not chosen against this process).
type FastHash = foldhash::fast::RandomState;

/// Strings (type and node names) stored once, each given an index.
#[derive(Debug, Clone, Default)]
struct Names {
    all: Vec<Box<str>>,
    index: HashMap<Box<str>, u32, FastHash>,
    /// The last name interned (nearly every actor has the type and node of the one before).
    last: Option<u32>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(last) = self.last
            && self.get(last) == name
        {
            return last;
        }
        let at = match self.index.get(name) {
            Some(&at) => at,
            None => {
                let at = self.all.len() as u32;
                self.all.push(name.into());
                self.index.insert(name.into(), at);
                at
            }
        };
        self.last = Some(at);
        at
    }

    fn get(&self, at: u32) -> &str {
        self.all.get(at as usize).map_or("", |name| name)
    }
}

/// An actor's manifest entry as a chain keeps it: small (a chain keeps one per actor and
/// copies them at every save), the fields most actors leave empty boxed apart.
#[derive(Debug, Clone)]
struct KeptEntry {
    id: ActorId,
    parent: Option<ActorId>,
    type_name: u32,
    node: u32,
    state_version: u32,
    /// `None` if the actor has no name, watchers or watched actors, and the default capacity
    /// and restart policy.
    rare: Option<Box<RareFields>>,
}

/// The fields of an entry most actors leave empty.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RareFields {
    name: Option<Box<str>>,
    watchers: Box<[ActorId]>,
    watching: Box<[ActorId]>,
    capacity: SpawnCapacity,
    restart: SpawnRestart,
}

impl KeptEntry {
    fn of(entry: &ActorEntry, types: &mut Names, nodes: &mut Names) -> KeptEntry {
        let plain = entry.name.is_none()
            && entry.watchers.is_empty()
            && entry.watching.is_empty()
            && entry.capacity == SpawnCapacity::SystemDefault
            && entry.restart == SpawnRestart::Never;
        let rare = (!plain).then(|| {
            Box::new(RareFields {
                name: entry.name.as_deref().map(Box::from),
                watchers: entry.watchers.as_slice().into(),
                watching: entry.watching.as_slice().into(),
                capacity: entry.capacity,
                restart: entry.restart,
            })
        });
        KeptEntry {
            id: entry.id,
            parent: entry.parent,
            type_name: types.intern(&entry.type_name),
            node: nodes.intern(&entry.node),
            state_version: entry.state_version,
            rare,
        }
    }

    /// Whether `entry` is this one (`types` and `nodes` are the tables it was kept with).
    fn is(&self, entry: &ActorEntry, types: &Names, nodes: &Names) -> bool {
        let rare_same = match &self.rare {
            None => {
                entry.name.is_none()
                    && entry.watchers.is_empty()
                    && entry.watching.is_empty()
                    && entry.capacity == SpawnCapacity::SystemDefault
                    && entry.restart == SpawnRestart::Never
            }
            Some(rare) => {
                rare.name.as_deref() == entry.name.as_deref()
                    && *rare.watchers == *entry.watchers
                    && *rare.watching == *entry.watching
                    && rare.capacity == entry.capacity
                    && rare.restart == entry.restart
            }
        };
        self.id == entry.id
            && self.state_version == entry.state_version
            && self.parent == entry.parent
            && types.get(self.type_name) == entry.type_name
            && nodes.get(self.node) == entry.node
            && rare_same
    }
}

/// The key of a chain's fingerprints (random, drawn once per chain).
#[derive(Clone, Copy)]
struct FingerprintKey(u64, u64);

impl FingerprintKey {
    /// A key no one outside this process can know: two outputs of the standard library's
    /// randomly keyed SipHash.
    fn random() -> FingerprintKey {
        let random = std::collections::hash_map::RandomState::new();
        FingerprintKey(random.hash_one(0x5eed_u64), random.hash_one(0xfeed_u64))
    }

    fn fingerprint(self, state: &[u8]) -> u128 {
        SipHasher13::new_with_keys(self.0, self.1).hash(state).as_u128()
    }
}

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// What a chain knows of one actor.
#[derive(Debug, Clone)]
struct Known {
    entry: KeptEntry,
    /// The state's fingerprint (under the chain's key), BLAKE3 digest and length.
    fingerprint: u128,
    digest: Digest,
    len: u64,
    /// The checkpoint that stores its entry and state.
    home: CheckpointId,
    /// Its place in `home`'s manifest.
    home_place: u32,
}

/// What a store that writes incrementally remembers of the last checkpoint it wrote.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// The checkpoint this describes.
    last: CheckpointId,
    /// How many checkpoints were written since the last full one (0: `last` is full).
    since_full: u32,
    /// The actors of `last` that can be referred to, in its manifest's order.
    actors: Vec<Known>,
    /// The key of the states' fingerprints.
    key: FingerprintKey,
    /// The type and node names of the kept entries.
    types: Names,
    nodes: Names,
    /// Every checkpoint that `actors` are stored in, ascending.
    homes: Vec<CheckpointId>,
    /// An empty buffer the next plan fills if the actors moved (the actors of the chain
    /// before): a hundred thousand actors are megabytes that fresh memory would page-fault
    /// in at every such save.
    spare: Vec<Known>,
}

impl Chain {
    /// A chain of checkpoint `id` that knows no actor.
    fn empty(id: CheckpointId) -> Chain {
        Chain {
            last: id,
            since_full: 0,
            actors: Vec::new(),
            key: FingerprintKey::random(),
            types: Names::default(),
            nodes: Names::default(),
            homes: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// The checkpoint this chain describes.
    pub(crate) fn last(&self) -> CheckpointId {
        self.last
    }

    /// How many actors it knows.
    pub(crate) fn actors(&self) -> usize {
        self.actors.len()
    }

    /// The checkpoints the chain's actors are stored in.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub(crate) fn homes(&self) -> impl Iterator<Item = CheckpointId> + '_ {
        self.homes.iter().copied()
    }

    /// Whether the chain's actors are stored in checkpoint `id`.
    pub(crate) fn relies_on(&self, id: CheckpointId) -> bool {
        self.homes.binary_search(&id).is_ok()
    }

    /// The chain that describes `checkpoint`, stored as it is, each actor `stored_at` its
    /// home and place there (`None`: it cannot be referred to, e.g. a version 5 state stored
    /// apart from its entry). For a store opened on checkpoints an earlier process wrote.
    /// How many incremental checkpoints led to it is not recorded: counted as one if it
    /// refers to others, none if it is full.
    pub(crate) fn of_stored(
        checkpoint: &Checkpoint,
        stored_at: &[Option<(CheckpointId, u32)>],
    ) -> Option<Chain> {
        let id = checkpoint.manifest.id;
        let actors = &checkpoint.manifest.actors;
        let states = StatesByPlace::of(checkpoint)?;
        let mut chain = Chain { actors: Vec::with_capacity(actors.len()), ..Chain::empty(id) };
        for (place, entry) in actors.iter().enumerate() {
            let Some(&Some((home, home_place))) = stored_at.get(place) else { continue };
            let state = states.get(checkpoint, place)?;
            let entry = KeptEntry::of(entry, &mut chain.types, &mut chain.nodes);
            let fingerprint = chain.key.fingerprint(&state.state);
            let (digest, len) = (digest(&state.state), state.state.len() as u64);
            chain.actors.push(Known { entry, fingerprint, digest, len, home, home_place });
            chain.add_home(home);
        }
        chain.homes.sort_unstable();
        chain.since_full = u32::from(chain.homes.iter().any(|&home| home != id));
        Some(chain)
    }

    fn add_home(&mut self, home: CheckpointId) {
        if self.homes.last() != Some(&home) && !self.homes.contains(&home) {
            self.homes.push(home);
        }
    }

    /// What it knows of actor `id`, the `place`-th of the next checkpoint: looked for at the
    /// place the last one found an actor at, shifted alike, then through `index`.
    fn find(
        &self,
        id: ActorId,
        place: usize,
        shift: &mut isize,
        index: &mut Option<HashMap<ActorId, u32, FastHash>>,
    ) -> Option<&Known> {
        let guess = place as isize + *shift;
        if let Some(known) = usize::try_from(guess).ok().and_then(|at| self.actors.get(at))
            && known.entry.id == id
        {
            return Some(known);
        }
        let index = index.get_or_insert_with(|| {
            self.actors.iter().enumerate().map(|(at, known)| (known.entry.id, at as u32)).collect()
        });
        let at = *index.get(&id)? as usize;
        *shift = at as isize - place as isize;
        self.actors.get(at)
    }
}

/// The states of a checkpoint by its actors' places.
enum StatesByPlace {
    /// The states are in the manifest's order.
    InOrder,
    /// Each actor's state's index.
    Index(HashMap<ActorId, u32, FastHash>),
}

impl StatesByPlace {
    /// `None` if the states are not one per listed actor (as a valid checkpoint's are).
    fn of(checkpoint: &Checkpoint) -> Option<StatesByPlace> {
        let Checkpoint { manifest, states, .. } = checkpoint;
        if states.len() != manifest.actors.len() {
            return None;
        }
        if states.iter().zip(&manifest.actors).all(|(s, a)| s.id == a.id) {
            return Some(StatesByPlace::InOrder);
        }
        let index: HashMap<ActorId, u32, FastHash> =
            states.iter().enumerate().map(|(i, s)| (s.id, i as u32)).collect();
        Some(StatesByPlace::Index(index))
    }

    /// The index in `checkpoint.states` of the state of the actor at `place`.
    fn index(&self, checkpoint: &Checkpoint, place: usize) -> Option<usize> {
        match self {
            StatesByPlace::InOrder => Some(place),
            StatesByPlace::Index(index) => {
                let id = checkpoint.manifest.actors.get(place)?.id;
                index.get(&id).map(|&i| i as usize)
            }
        }
    }

    fn get<'a>(&self, checkpoint: &'a Checkpoint, place: usize) -> Option<&'a StateRecord> {
        checkpoint.states.get(self.index(checkpoint, place)?)
    }
}

/// How a checkpoint is written incrementally (format version 7).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The manifest's actor items, in order; together they cover every actor once.
    pub(crate) items: Vec<ActorItem>,
    /// The actors written out, in order: each one's place in the manifest and the index of
    /// its state in [`Checkpoint::states`].
    pub(crate) stored: Vec<(u32, u32)>,
    /// The checkpoints the runs name, ascending, each once (never empty).
    pub(crate) bases: Vec<u64>,
}

/// The plan of `checkpoint` written after the checkpoint `previous` describes: an actor with
/// no timers whose entry is equal and whose state has the digest and length it had then is
/// referred to where they are stored; the others are written out. `None` if nothing is
/// referred to (write it whole): when there is no previous checkpoint, when `full_every`
/// checkpoints would otherwise follow one full one, or when a checkpoint the chain relies on
/// no longer exists (`exists` says). Also returns the chain that describes `checkpoint` once
/// written. `checkpoint` must be [valid](Checkpoint::validate).
pub(crate) fn plan(
    previous: Option<Chain>,
    checkpoint: &Checkpoint,
    full_every: u32,
    exists: impl Fn(CheckpointId) -> bool,
) -> (Option<Plan>, Chain) {
    let Checkpoint { manifest, states, .. } = checkpoint;
    let id = manifest.id;
    let n = manifest.actors.len();
    let previous = previous.filter(|chain| {
        chain.last < id
            && chain.since_full.saturating_add(1) < full_every
            && chain.homes.iter().all(|&home| exists(home))
    });
    let since_full = previous.as_ref().map(|chain| chain.since_full);
    // The common case: the same actors at the same places. The chain is updated in place
    // (nothing is copied for an actor that did not change); otherwise a new one is built
    // from the old one, in the old one's spare buffer.
    let in_place = previous.as_ref().is_some_and(|chain| {
        chain.actors.len() == n
            && chain.actors.iter().zip(&manifest.actors).all(|(k, a)| k.entry.id == a.id)
    });
    let (mut chain, old) = match previous {
        Some(mut chain) if in_place => {
            chain.last = id;
            chain.homes.clear();
            (chain, None)
        }
        Some(mut old) => {
            let mut actors = std::mem::take(&mut old.spare);
            actors.clear();
            actors.reserve(n);
            let (key, types, nodes) = (old.key, old.types.clone(), old.nodes.clone());
            (Chain { last: id, actors, key, types, nodes, ..Chain::empty(id) }, Some(old))
        }
        None => (Chain { actors: Vec::with_capacity(n), ..Chain::empty(id) }, None),
    };
    let goes_on = since_full.is_some();
    let mut items = Vec::new();
    let mut stored = Vec::new();
    let by_place = StatesByPlace::of(checkpoint);
    let mut shift = 0isize;
    let mut index = None;
    let mut run: Option<(ActorRun, RunDigest)> = None;
    let mut referenced = false;
    for (place, entry) in manifest.actors.iter().enumerate() {
        // A valid checkpoint has a state per actor.
        let Some(at) = by_place.as_ref().and_then(|by| by.index(checkpoint, place)) else {
            continue;
        };
        let state = &states[at];
        let fingerprint = chain.key.fingerprint(&state.state);
        let len = state.state.len() as u64;
        // What the previous checkpoint had for this actor, and whether its entry is equal.
        let known = if in_place {
            chain.actors.get(place).map(|k| (k, k.entry.is(entry, &chain.types, &chain.nodes)))
        } else {
            old.as_ref().and_then(|old| {
                let known = old.find(entry.id, place, &mut shift, &mut index)?;
                Some((known, known.entry.is(entry, &old.types, &old.nodes)))
            })
        };
        let same_state =
            |k: &Known| k.fingerprint == fingerprint && k.len == len && state.timers.is_empty();
        let same = known.filter(|(k, same_entry)| goes_on && *same_entry && same_state(k));
        let Some((known, _)) = same else {
            // Written out here.
            let entry_same = known.is_some_and(|(_, same_entry)| same_entry);
            flush(&mut run, &mut items);
            items.push(ActorItem::Here(place as u32));
            stored.push((place as u32, at as u32));
            let home_place = place as u32;
            let digest = digest(&state.state);
            if in_place && entry_same {
                let known = &mut chain.actors[place];
                known.fingerprint = fingerprint;
                (known.digest, known.len, known.home, known.home_place) =
                    (digest, len, id, home_place);
            } else {
                let kept = KeptEntry::of(entry, &mut chain.types, &mut chain.nodes);
                let known = Known { entry: kept, fingerprint, digest, len, home: id, home_place };
                match chain.actors.get_mut(place).filter(|_| in_place) {
                    Some(slot) => *slot = known,
                    None => chain.actors.push(known),
                }
            }
            chain.add_home(id);
            continue;
        };
        referenced = true;
        let (home, home_place, digest) = (known.home, known.home_place, known.digest);
        if !in_place {
            let known = known.clone();
            chain.actors.push(known);
        }
        chain.add_home(home);
        let extends = run.as_ref().is_some_and(|(r, _)| {
            r.home == home
                && r.count < u32::MAX
                && r.home_place.checked_add(r.count) == Some(home_place)
        });
        if !extends {
            flush(&mut run, &mut items);
            let first =
                ActorRun { first: entry.id, home_place, count: 0, home, digest: [0; 16], bytes: 0 };
            run = Some((first, RunDigest::new()));
        }
        if let Some((r, d)) = run.as_mut() {
            r.count += 1;
            r.bytes += len;
            d.add_actor(entry.id);
            d.add(len, &digest);
        }
    }
    flush(&mut run, &mut items);
    if let Some(old) = old {
        // The old chain's actors are the spare buffer of the next plan.
        let mut spare = old.actors;
        spare.clear();
        chain.spare = spare;
    }
    chain.homes.sort_unstable();
    chain.since_full = match since_full {
        Some(since_full) if referenced => since_full + 1,
        _ => 0,
    };
    if !referenced {
        return (None, chain);
    }
    let bases: Vec<u64> = chain.homes.iter().filter(|&&h| h != id).map(|h| h.0).collect();
    (Some(Plan { items, stored, bases }), chain)
}

/// Ends the run being built, if any.
fn flush(run: &mut Option<(ActorRun, RunDigest)>, items: &mut Vec<ActorItem>) {
    if let Some((mut r, d)) = run.take() {
        r.digest = d.finish();
        items.push(ActorItem::Run(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::model::NodeEntry;
    use crate::checkpoint::test_checkpoint::{actor, checkpoint};

    /// `h`: written out at place; `r`: a run from home place, of count, in home.
    fn shape(plan: &Plan) -> Vec<(char, u32, u32, u64)> {
        plan.items
            .iter()
            .map(|item| match *item {
                ActorItem::Here(place) => ('h', place, 1, 0),
                ActorItem::Run(r) => ('r', r.home_place, r.count, r.home.0),
            })
            .collect()
    }

    #[test]
    fn what_a_chain_keeps_per_actor_stays_small() {
        // A chain keeps one per actor: 100k actors are this many bytes times 100k (twice
        // that while a plan rebuilds the chain).
        let size = std::mem::size_of::<Known>();
        assert!(size <= 144, "{size} bytes");
    }

    #[test]
    fn unchanged_actors_become_runs_that_point_where_they_are_stored() {
        let always = |_| true;
        let (plan, chain) = plan(None, &checkpoint(1, &[b"a", b"b", b"c", b"d"]), 16, always);
        assert!(plan.is_none(), "the first checkpoint is whole");
        let (plan, chain) =
            super::plan(Some(chain.clone()), &checkpoint(2, &[b"a", b"B", b"c", b"d"]), 16, always);
        let plan = plan.unwrap();
        assert_eq!(shape(&plan), [('r', 0, 1, 1), ('h', 1, 1, 0), ('r', 2, 2, 1)]);
        assert_eq!(plan.stored, [(1, 1)]);
        assert_eq!(plan.bases, [1]);
        // Actor 2 is stored in checkpoint 2 now; a run never names a checkpoint that refers
        // on.
        let (plan, chain) =
            super::plan(Some(chain.clone()), &checkpoint(3, &[b"a", b"B", b"c", b"D"]), 16, always);
        let plan = plan.unwrap();
        assert_eq!(shape(&plan), [('r', 0, 1, 1), ('r', 1, 1, 2), ('r', 2, 1, 1), ('h', 3, 1, 0)]);
        assert_eq!(plan.bases, [1, 2]);
        assert!(chain.relies_on(CheckpointId(1)) && chain.relies_on(CheckpointId(3)));
        // The same length with other bytes is a change; so is another entry.
        let (plan, _) =
            super::plan(Some(chain.clone()), &checkpoint(4, &[b"x", b"B", b"c", b"D"]), 16, always);
        assert_eq!(shape(&plan.unwrap())[0], ('h', 0, 1, 0));
        let mut moved = checkpoint(4, &[b"a", b"B", b"c", b"D"]);
        moved.manifest.nodes.push(NodeEntry::new("m", None));
        moved.manifest.actors[2].node = "m".into();
        let (plan, _) = super::plan(Some(chain.clone()), &moved, 16, always);
        assert_eq!(shape(&plan.unwrap())[2], ('h', 2, 1, 0));
        // An actor removed and one added: the others are found where they moved.
        let mut fewer = checkpoint(4, &[b"B", b"c", b"D", b"e"]);
        for (i, state) in fewer.states.iter_mut().enumerate() {
            state.id = actor(i + 1);
            fewer.manifest.actors[i].id = actor(i + 1);
        }
        let (plan, _) = super::plan(Some(chain.clone()), &fewer, 16, always);
        assert_eq!(
            shape(&plan.unwrap()),
            [('r', 1, 1, 2), ('r', 2, 1, 1), ('r', 3, 1, 3), ('h', 3, 1, 0)]
        );
        // Every 3rd checkpoint is whole; so is one whose base is gone.
        let (plan, _) =
            super::plan(Some(chain.clone()), &checkpoint(4, &[&b"a"[..]; 4]), 3, always);
        assert!(plan.is_none());
        let gone = |id: CheckpointId| id != CheckpointId(2);
        let (plan, chain) =
            super::plan(Some(chain.clone()), &checkpoint(4, &[&b"a"[..]; 4]), 16, gone);
        assert!(plan.is_none());
        assert!(!chain.relies_on(CheckpointId(1)));
    }
}
