//! The payloads of format version 2: positional MessagePack (arrays, no field names), with
//! the ids, type names and node names a checkpoint repeats written once.
//!
//! ```text
//! manifest  = [id, epoch, created_unix_ms, nodes, systems, types, actors]
//!   nodes   = [[name, address | nil], ...]   or [name, address | nil, annotations]
//!               with annotations = {key: value, ...} (a map of strings), written only
//!               when the node recorded some; a build before annotations refuses those
//!   systems = [system id, ...]            every SystemId the checkpoint names
//!   types   = [type name, ...]            every type name, once
//!   actors  = [[system, seq, type, name | nil, node, parent | nil, watchers, watching,
//!               state version, capacity kind, capacity, restart | nil], ...]
//! states    = [[actor, state bin, timers], ...]           one record holds many
//!   (version 5: an item may also be a run, [actor, count, checkpoint, digest bin, bytes])
//! manifest  (version 5: [..., actors, bases], bases = [checkpoint id, ...])
//! in-flight = [[to | nil, from | nil, epoch, ask, payload bin], ...]
//! ```
//!
//! An actor reference is `[system, seq]`, `system` an index into `systems`; `type` and `node`
//! index `types` and `nodes`; a state's `actor` indexes the manifest's actors. An in-flight
//! record's `to` is nil when it is the previous record's receiver in the same record (records
//! come grouped per receiver), so a receiver's id is written once per run. Capacity kind is 0
//! (system default), 1 (bounded, at `capacity`) or 2 (unbounded); `restart` is nil for
//! `Never`, else `[max_restarts, [secs, nanos]]`. Timers are `[timer, remaining_us,
//! period_us | nil, msg bin]`.
//!
//! Version 5 (incremental checkpoints) adds two things. A state item may be a *run*:
//! `[actor, count, checkpoint, digest bin, bytes]` says that the `count` actors from
//! manifest place `actor` on have no timers and the very state bytes they have in checkpoint
//! `checkpoint`, which stores them itself; `digest` (16 bytes) is the BLAKE3 of the states'
//! digests and lengths (see `incremental.rs`) and `bytes` the sum of their lengths. The
//! second element tells the two apart: a bin for a state, an integer for a run. And the
//! manifest gets an eighth element, `bases`: every checkpoint its runs name, so that
//! retention learns what a checkpoint needs from its manifest alone.
//!
//! Version 7 (incremental checkpoints whose manifest is incremental too) moves the references
//! into the manifest. An item of `actors` is either an entry, as in version 2, or an *actor
//! run*: `[nil, first, home place, count, checkpoint, digest bin, bytes]` says that the next
//! `count` actors of this checkpoint are, entry and state, the actors at places `home place`
//! on of checkpoint `checkpoint`, which stores both itself; `first` (an actor reference) is
//! the run's first actor, `digest` (which covers their ids too) and `bytes` check their
//! states as in version 5, and they
//! have no timers. The nil first element tells a run from an entry (an entry starts with its
//! system index). The state records then hold only the states of the entries written out,
//! each `[actor, state bin, timers]` as in version 2; `bases` is as in version 5.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::backlog::{Backlog, InFlightMessage};
use crate::checkpoint::in_flight::InFlight;
use crate::checkpoint::model::{
    ActorEntry, InFlightRecord, Manifest, NodeEntry, SpawnCapacity, SpawnRestart, StateRecord,
    TimerEntry,
};
use crate::msgpack::{Out, write, write_uint};
use crate::{ActorId, CheckpointId, Epoch, SystemId};

/// An actor reference: an index into the manifest's systems, and the sequence number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Ref(u32, u64);

/// Every [`SystemId`] a checkpoint names, each given an index on first sight.
#[derive(Debug, Default)]
pub(crate) struct Systems {
    ids: Vec<u64>,
    /// The index of the last system looked up (nearly every id is of the same system).
    last: u32,
}

impl Systems {
    /// The systems of every id `checkpoint` names: actors, parents, watchers, in-flight
    /// senders and receivers (states are of listed actors). With `items` (a version 7
    /// manifest), only the entries written out and the runs' first actors are looked at.
    pub(crate) fn of(
        manifest: &Manifest,
        in_flight: &InFlight,
        items: Option<&[ActorItem]>,
    ) -> Systems {
        let mut systems = Systems::default();
        let entry = |systems: &mut Systems, entry: &ActorEntry| {
            systems.index(entry.id);
            for id in entry.parent.iter().chain(&entry.watchers).chain(&entry.watching) {
                systems.index(*id);
            }
        };
        match items {
            None => manifest.actors.iter().for_each(|e| entry(&mut systems, e)),
            Some(items) => {
                for item in items {
                    match item {
                        ActorItem::Here(place) => {
                            if let Some(e) = manifest.actors.get(*place as usize) {
                                entry(&mut systems, e);
                            }
                        }
                        ActorItem::Run(run) => {
                            systems.index(run.first);
                        }
                    }
                }
            }
        }
        in_flight.for_each_system(|system| {
            systems.index(ActorId::new(system, 0));
        });
        systems
    }

    fn index(&mut self, id: ActorId) -> u32 {
        let system = id.system().0;
        if self.ids.get(self.last as usize) == Some(&system) {
            return self.last;
        }
        let at = match self.ids.iter().position(|s| *s == system) {
            Some(at) => at,
            None => {
                self.ids.push(system);
                self.ids.len() - 1
            }
        };
        self.last = at as u32;
        self.last
    }

    /// The reference of `id`, whose system [`Systems::of`] indexed.
    #[inline]
    pub(crate) fn get(&self, id: ActorId) -> Ref {
        let system = id.system().0;
        let at = if self.ids.get(self.last as usize) == Some(&system) {
            self.last
        } else {
            // Not reached for ids `Systems::of` saw; an index past the table would not read.
            self.ids.iter().position(|s| *s == system).unwrap_or(self.ids.len()) as u32
        };
        Ref(at, id.seq())
    }
}

/// Serializes the items of an iterator as a MessagePack array (the iterator is made when
/// serialized, once).
struct SeqOf<F>(F);

impl<F, I> Serialize for SeqOf<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

#[derive(Serialize)]
struct EntryOut<'a> {
    system: u32,
    seq: u64,
    type_name: u32,
    name: Option<&'a str>,
    node: u32,
    parent: Option<Ref>,
    watchers: Vec<Ref>,
    watching: Vec<Ref>,
    state_version: u32,
    capacity_kind: u8,
    capacity: u64,
    restart: Option<(u32, Duration)>,
}

#[derive(Deserialize)]
struct ManifestIn {
    id: u64,
    epoch: u64,
    created_unix_ms: u64,
    nodes: Vec<NodeIn>,
    systems: Vec<u64>,
    types: Vec<String>,
    actors: Vec<ActorIn>,
    /// Version 5 only.
    #[serde(default)]
    bases: Vec<u64>,
}

/// A manifest's node as read: `[name, address | nil]`, or with its annotations third.
#[derive(Deserialize)]
struct NodeIn {
    node: String,
    address: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A manifest's node as written: its annotations only if it has some (a manifest without
/// any reads in builds before annotations).
#[derive(Serialize)]
#[serde(untagged)]
enum NodeOut<'a> {
    Plain((&'a str, Option<&'a str>)),
    Annotated((&'a str, Option<&'a str>, &'a BTreeMap<String, String>)),
}

struct EntryIn {
    system: u32,
    seq: u64,
    type_name: u32,
    name: Option<String>,
    node: u32,
    parent: Option<Ref>,
    watchers: Vec<Ref>,
    watching: Vec<Ref>,
    state_version: u32,
    capacity_kind: u8,
    capacity: u64,
    restart: Option<(u32, Duration)>,
}

/// An item of a manifest's actors as read: an entry, or (version 7) a run of actors stored
/// in another checkpoint.
enum ActorIn {
    Entry(EntryIn),
    Run(RunIn),
}

/// A version 7 actor run as read, before its first actor's reference is resolved.
struct RunIn {
    first: Ref,
    home_place: u32,
    count: u32,
    home: u64,
    digest: RunDigestBytes,
    bytes: u64,
}

impl<'de> Deserialize<'de> for ActorIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ActorInVisitor)
    }
}

struct ActorInVisitor;

impl<'de> Visitor<'de> for ActorInVisitor {
    type Value = ActorIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "an actor entry or a run [nil, first, home place, count, checkpoint, digest, bytes]",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ActorIn, A::Error> {
        fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            at: usize,
        ) -> Result<T, A::Error> {
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(at, &ActorInVisitor))
        }
        let Some(system): Option<u32> = next(&mut seq, 0)? else {
            let first = next(&mut seq, 1)?;
            let home_place = next(&mut seq, 2)?;
            let count: u32 = next(&mut seq, 3)?;
            let home = next(&mut seq, 4)?;
            let digest: serde_bytes::ByteBuf = next(&mut seq, 5)?;
            let digest: RunDigestBytes = digest
                .as_slice()
                .try_into()
                .map_err(|_| de::Error::invalid_length(digest.len(), &"a digest of 16 bytes"))?;
            let bytes = next(&mut seq, 6)?;
            if count == 0 {
                return Err(de::Error::custom("a run of no actors"));
            }
            return Ok(ActorIn::Run(RunIn { first, home_place, count, home, digest, bytes }));
        };
        Ok(ActorIn::Entry(EntryIn {
            system,
            seq: next(&mut seq, 1)?,
            type_name: next(&mut seq, 2)?,
            name: next(&mut seq, 3)?,
            node: next(&mut seq, 4)?,
            parent: next(&mut seq, 5)?,
            watchers: next(&mut seq, 6)?,
            watching: next(&mut seq, 7)?,
            state_version: next(&mut seq, 8)?,
            capacity_kind: next(&mut seq, 9)?,
            capacity: next(&mut seq, 10)?,
            restart: next(&mut seq, 11)?,
        }))
    }
}

/// Interns strings, remembering the last one looked up (nearly every actor of a checkpoint
/// has the type and node of the one before it).
struct Interner<'a> {
    all: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
    last: Option<(&'a str, u32)>,
}

impl<'a> Interner<'a> {
    fn new() -> Self {
        Interner { all: Vec::new(), index: HashMap::new(), last: None }
    }

    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some((last, at)) = self.last
            && last == s
        {
            return at;
        }
        let next = self.all.len() as u32;
        let at = *self.index.entry(s).or_insert(next);
        if at == next {
            self.all.push(s);
        }
        self.last = Some((s, at));
        at
    }
}

/// One item of a version 7 manifest's actors, as the encoder writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorItem {
    /// The entry of the manifest's actor at this place, written out (its state is written
    /// in a state record).
    Here(u32),
    /// Actors whose entries and states are stored in an earlier checkpoint.
    Run(ActorRun),
}

/// A run of actors stored, entry and state, in another checkpoint (version 7):
/// `[nil, first, home place, count, checkpoint, digest bin, bytes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActorRun {
    /// The run's first actor.
    pub(crate) first: ActorId,
    /// The place in checkpoint `home`'s manifest of the run's first actor; the others follow.
    pub(crate) home_place: u32,
    /// How many actors the run covers (at least 1).
    pub(crate) count: u32,
    /// The checkpoint that stores their entries and states.
    pub(crate) home: CheckpointId,
    /// The digest of their states (as a version 5 run's).
    pub(crate) digest: RunDigestBytes,
    /// The sum of their states' lengths.
    pub(crate) bytes: u64,
}

/// An item of `actors` as written.
#[derive(Serialize)]
#[serde(untagged)]
enum ActorOut<'a> {
    Entry(EntryOut<'a>),
    Run((Option<u32>, Ref, u32, u32, u64, &'a serde_bytes::Bytes, u64)),
}

/// Writes the manifest as a version 2 payload, or as a version 5 one if `bases` (the
/// checkpoints its runs name) is not empty, or as a version 7 one whose actors are `items`
/// if there are (`bases` then names the checkpoints their runs name).
pub(crate) fn write_manifest(
    out: &mut Vec<u8>,
    manifest: &Manifest,
    systems: &Systems,
    bases: &[u64],
    items: Option<&[ActorItem]>,
) -> Result<(), rmp_serde::encode::Error> {
    let mut types = Interner::new();
    let mut nodes = Interner::new();
    for node in &manifest.nodes {
        nodes.intern(&node.node);
    }
    // Type and node indices first (they must precede the actors in the payload), for the
    // entries written out.
    let mut interned = Vec::with_capacity(items.map_or(manifest.actors.len(), <[_]>::len));
    let places = items.into_iter().flatten().filter_map(|item| match item {
        ActorItem::Here(place) => Some(*place as usize),
        ActorItem::Run(_) => None,
    });
    let written: Box<dyn Iterator<Item = &ActorEntry>> = match items {
        None => Box::new(manifest.actors.iter()),
        Some(_) => Box::new(places.filter_map(|place| manifest.actors.get(place))),
    };
    for entry in written {
        interned.push((types.intern(&entry.type_name), nodes.intern(&entry.node)));
    }
    // Every actor's node is a listed one (validation refuses others before writing), so the
    // interned nodes are the listed ones, in order.
    let listed: Vec<NodeOut<'_>> = manifest
        .nodes
        .iter()
        .map(|n| {
            let (node, address) = (n.node.as_str(), n.address.as_deref());
            if n.annotations.is_empty() {
                NodeOut::Plain((node, address))
            } else {
                NodeOut::Annotated((node, address, &n.annotations))
            }
        })
        .collect();
    // An array of 7 elements, or 8 with the bases (a fixarray: one byte).
    out.push(if bases.is_empty() { 0x97 } else { 0x98 });
    write(out, &manifest.id.0)?;
    write(out, &manifest.epoch.0)?;
    write(out, &manifest.created_unix_ms)?;
    write(out, &listed)?;
    write(out, &systems.ids)?;
    write(out, &types.all)?;
    match items {
        None => write(
            out,
            &SeqOf(|| {
                manifest
                    .actors
                    .iter()
                    .zip(&interned)
                    .map(|(entry, &at)| entry_out(entry, at, systems))
            }),
        )?,
        Some(items) => write(
            out,
            &SeqOf(|| {
                let mut interned = interned.iter();
                items.iter().map(move |item| match item {
                    ActorItem::Here(place) => {
                        let at = interned.next().copied().unwrap_or((0, 0));
                        // The plan names places of the manifest.
                        ActorOut::Entry(entry_out(&manifest.actors[*place as usize], at, systems))
                    }
                    ActorItem::Run(run) => ActorOut::Run((
                        None,
                        systems.get(run.first),
                        run.home_place,
                        run.count,
                        run.home.0,
                        serde_bytes::Bytes::new(&run.digest),
                        run.bytes,
                    )),
                })
            }),
        )?,
    }
    if !bases.is_empty() {
        write(out, &bases)?;
    }
    Ok(())
}

/// The entry `entry` as written, its type and node at `(type_name, node)` of the manifest's
/// tables.
fn entry_out<'a>(
    entry: &'a ActorEntry,
    (type_name, node): (u32, u32),
    systems: &Systems,
) -> EntryOut<'a> {
    let refs = |ids: &[ActorId]| ids.iter().map(|id| systems.get(*id)).collect::<Vec<_>>();
    let Ref(system, seq) = systems.get(entry.id);
    let (capacity_kind, capacity) = match entry.capacity {
        SpawnCapacity::SystemDefault => (0, 0),
        SpawnCapacity::Bounded(n) => (1, n),
        SpawnCapacity::Unbounded => (2, 0),
    };
    EntryOut {
        system,
        seq,
        type_name,
        name: entry.name.as_deref(),
        node,
        parent: entry.parent.map(|p| systems.get(p)),
        watchers: refs(&entry.watchers),
        watching: refs(&entry.watching),
        state_version: entry.state_version,
        capacity_kind,
        capacity,
        restart: match entry.restart {
            SpawnRestart::Never => None,
            SpawnRestart::OnPanic { max_restarts, within } => Some((max_restarts, within)),
        },
    }
}

/// A manifest as read, with what the other records index.
pub(crate) struct ManifestRead {
    /// The manifest.
    pub(crate) manifest: Manifest,
    /// The systems actor references index.
    pub(crate) systems: Vec<u64>,
    /// The checkpoints the runs of its states or actors name (version 5 and 6; empty before).
    pub(crate) bases: Vec<CheckpointId>,
    /// Its actor runs (version 7), each with the place of its first actor among all the
    /// checkpoint's actors; the manifest's actors are then only the entries written out,
    /// which take the other places, in order.
    pub(crate) runs: Vec<(u32, ActorRun)>,
}

/// Reads a version 2 (or 5) manifest payload's value.
pub(crate) fn read_manifest(raw: ManifestRaw) -> Result<ManifestRead, String> {
    let ManifestRaw(m) = raw;
    let system = |i: u32| m.systems.get(i as usize).copied().ok_or(format!("no system {i}"));
    let id = |r: Ref| -> Result<ActorId, String> { Ok(ActorId::new(SystemId(system(r.0)?), r.1)) };
    let ids = |refs: Vec<Ref>| refs.into_iter().map(id).collect::<Result<Vec<_>, _>>();
    let mut actors = Vec::with_capacity(m.actors.len());
    let mut runs = Vec::new();
    // The place of the next actor: entries and runs' actors take places in turn.
    let mut places: u64 = 0;
    for item in m.actors {
        if places >= u64::from(u32::MAX) {
            return Err("more actors than places".to_owned());
        }
        let e = match item {
            ActorIn::Entry(e) => {
                places += 1;
                e
            }
            ActorIn::Run(run) => {
                let place = places as u32;
                places += u64::from(run.count);
                if places > u64::from(u32::MAX) {
                    return Err(format!("a run of {} actors passes the last place", run.count));
                }
                let run = ActorRun {
                    first: id(run.first)?,
                    home_place: run.home_place,
                    count: run.count,
                    home: CheckpointId(run.home),
                    digest: run.digest,
                    bytes: run.bytes,
                };
                runs.push((place, run));
                continue;
            }
        };
        let type_name = m
            .types
            .get(e.type_name as usize)
            .ok_or_else(|| format!("no type name {}", e.type_name))?
            .clone();
        let node =
            m.nodes.get(e.node as usize).ok_or_else(|| format!("no node {}", e.node))?.node.clone();
        let capacity = match (e.capacity_kind, e.capacity) {
            (0, _) => SpawnCapacity::SystemDefault,
            (1, n) => SpawnCapacity::Bounded(n),
            (2, _) => SpawnCapacity::Unbounded,
            (kind, _) => return Err(format!("unknown capacity kind {kind}")),
        };
        actors.push(ActorEntry {
            id: id(Ref(e.system, e.seq))?,
            type_name,
            name: e.name,
            node,
            parent: e.parent.map(id).transpose()?,
            watchers: ids(e.watchers)?,
            watching: ids(e.watching)?,
            state_version: e.state_version,
            capacity,
            restart: match e.restart {
                None => SpawnRestart::Never,
                Some((max_restarts, within)) => SpawnRestart::OnPanic { max_restarts, within },
            },
        });
    }
    let manifest = Manifest {
        id: CheckpointId(m.id),
        epoch: Epoch(m.epoch),
        created_unix_ms: m.created_unix_ms,
        nodes: m
            .nodes
            .into_iter()
            .map(|NodeIn { node, address, annotations }| NodeEntry { node, address, annotations })
            .collect(),
        actors,
    };
    let bases = m.bases.into_iter().map(CheckpointId).collect();
    Ok(ManifestRead { manifest, systems: m.systems, bases, runs })
}

/// A version 2 manifest as read, before its indices are resolved.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct ManifestRaw(ManifestIn);

#[derive(Serialize)]
pub(crate) struct StateOut<'a>(u32, #[serde(with = "serde_bytes")] &'a [u8], &'a [TimerEntry]);

impl<'a> StateOut<'a> {
    /// State `record` of the manifest's actor number `actor`.
    pub(crate) fn new(actor: u32, record: &'a StateRecord) -> Self {
        StateOut(actor, &record.state, &record.timers)
    }
}

/// A state as read: the index of its actor in the manifest, its bytes and timers.
#[derive(Deserialize)]
pub(crate) struct StateIn(
    pub(crate) u32,
    #[serde(with = "serde_bytes")] pub(crate) Vec<u8>,
    pub(crate) Vec<TimerEntry>,
);

/// A run's digest: BLAKE3 truncated to 128 bits (a check against a replaced or damaged base;
/// the writer compares states by their full 256-bit digests).
pub(crate) type RunDigestBytes = [u8; 16];

/// A run of states stored in another checkpoint (version 5, which the build before version 7
/// wrote), as read:
/// `[actor, count, checkpoint, digest bin, bytes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunItem {
    /// The manifest place of the run's first actor; the others follow it.
    pub(crate) place: u32,
    /// How many actors the run covers (at least 1).
    pub(crate) count: u32,
    /// The checkpoint that stores their states.
    pub(crate) home: CheckpointId,
    /// The digest of their states (see `incremental::RunDigest`).
    pub(crate) digest: RunDigestBytes,
    /// The sum of their states' lengths.
    pub(crate) bytes: u64,
}

/// A version 5 state item as read: a state, or a run of states stored elsewhere.
pub(crate) enum StateItem {
    /// A state stored here.
    Here(StateIn),
    /// States stored in another checkpoint.
    Run(RunItem),
}

impl<'de> Deserialize<'de> for StateItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(StateItemVisitor)
    }
}

struct StateItemVisitor;

impl<'de> Visitor<'de> for StateItemVisitor {
    type Value = StateItem;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a state [actor, state bin, timers] or a run [actor, count, checkpoint, digest, bytes]",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StateItem, A::Error> {
        fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            at: usize,
        ) -> Result<T, A::Error> {
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(at, &StateItemVisitor))
        }
        let place: u32 = next(&mut seq, 0)?;
        match next(&mut seq, 1)? {
            Second::State(state) => Ok(StateItem::Here(StateIn(place, state, next(&mut seq, 2)?))),
            Second::Count(count) => {
                let home: u64 = next(&mut seq, 2)?;
                let digest: serde_bytes::ByteBuf = next(&mut seq, 3)?;
                let digest: RunDigestBytes = digest.as_slice().try_into().map_err(|_| {
                    de::Error::invalid_length(digest.len(), &"a digest of 16 bytes")
                })?;
                let bytes: u64 = next(&mut seq, 4)?;
                if count == 0 {
                    return Err(de::Error::custom("a run of no states"));
                }
                Ok(StateItem::Run(RunItem {
                    place,
                    count,
                    home: CheckpointId(home),
                    digest,
                    bytes,
                }))
            }
        }
    }
}

/// The second element of a version 5 state item: a state's bytes, or a run's count.
enum Second {
    State(Vec<u8>),
    Count(u32),
}

impl<'de> Deserialize<'de> for Second {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecondVisitor)
    }
}

struct SecondVisitor;

impl Visitor<'_> for SecondVisitor {
    type Value = Second;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a state's bytes or a run's count")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Second, E> {
        Ok(Second::State(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Second, E> {
        Ok(Second::State(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Second, E> {
        u32::try_from(v).map(Second::Count).map_err(|_| E::custom(format!("a run of {v} states")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Second, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("a run of {v} states")))
            .and_then(|v| self.visit_u64(v))
    }
}

/// Appends in-flight message `message` as a version 2 item, `[to | nil, from | nil, epoch,
/// ask, payload bin]`, its receiver left out (nil) if `same_receiver` (it is the previous
/// item's). Written by hand, not through serde: a snapshot writes hundreds of thousands of
/// them. The bytes are the ones rmp-serde writes for the same item (tested).
pub(crate) fn write_in_flight(
    out: &mut Vec<u8>,
    message: InFlightMessage<'_>,
    same_receiver: bool,
    systems: &Systems,
) -> Result<(), rmp_serde::encode::Error> {
    let to = (!same_receiver).then(|| systems.get(message.to));
    let from = message.from.map(|from| systems.get(from));
    let len = bin_len(message.payload.len())?;
    out.reserve(MAX_HEAD + message.payload.len());
    put_item_head(out, to, from, message.epoch.0, message.ask, len);
    out.extend_from_slice(message.payload);
    Ok(())
}

/// Appends the messages of `backlog` from its message `from` on as the items
/// [`write_in_flight`] writes for them, one after the other, while the record they go in is
/// short of `limit` bytes (its payload started at `array` in `out`) and fewer than `max`
/// were written; returns how many were. The first names the backlog's receiver unless
/// `same_receiver` (the item before it, in the same record, is to it too).
///
/// The checkpoint writer's loop for backlogs, which hold nearly every message of a loaded
/// system's snapshot: the senders' systems are looked up once per backlog, not per message.
pub(crate) fn write_backlog_items(
    out: &mut Vec<u8>,
    backlog: &Backlog,
    from: usize,
    same_receiver: bool,
    systems: &Systems,
    (array, limit, max): (usize, usize, u32),
) -> Result<u32, rmp_serde::encode::Error> {
    let (messages, payloads, senders) = backlog.parts();
    // The file's place of each sender system, in the backlog's order of them.
    let places: Vec<u32> = senders.iter().map(|s| systems.get(ActorId::new(*s, 0)).0).collect();
    let to = systems.get(backlog.to());
    let mut start = match from.checked_sub(1) {
        Some(previous) => messages.get(previous).map_or(0, |m| m.end),
        None => 0,
    };
    let mut same = same_receiver;
    let mut written = 0;
    for m in messages.get(from..).unwrap_or_default() {
        if out.len() - array >= limit || written == max {
            break;
        }
        let payload = payloads.get(start..m.end).unwrap_or_default();
        start = m.end;
        let len = bin_len(payload.len())?;
        // A backlog's sender places are its own: an index past them would not read back
        // (never made by the builder).
        let sender = (m.system != 0)
            .then(|| Ref(places.get(m.system as usize - 1).copied().unwrap_or(u32::MAX), m.seq));
        out.reserve(MAX_HEAD + payload.len());
        put_item_head(out, (!same).then_some(to), sender, m.epoch.0, m.ask, len);
        out.extend_from_slice(payload);
        same = true;
        written += 1;
    }
    Ok(written)
}

/// The most bytes an in-flight item takes before its payload ([`put_item_head`]): 1 + 2 ×
/// 19 + 9 + 1 + 5.
const MAX_HEAD: usize = 54;

/// An in-flight item's head as it is put together ([`put_item_head`]): at most
/// [`MAX_HEAD`] bytes on the stack, appended to the output in one copy (instead of a
/// capacity check and length update for each of its six to eight parts).
struct Head {
    bytes: [u8; MAX_HEAD],
    len: usize,
}

impl Out for Head {
    #[inline(always)]
    fn put(&mut self, parts: &[u8]) {
        // Never past the end: the parts of one head add up to at most MAX_HEAD bytes.
        let to = self.bytes.get_mut(self.len..self.len + parts.len());
        debug_assert!(to.is_some(), "an in-flight item's head is at most MAX_HEAD bytes");
        if let Some(to) = to {
            to.copy_from_slice(parts);
            self.len += parts.len();
        }
    }
}

impl Head {
    /// An actor reference, `[system, seq]`, or nil.
    #[inline(always)]
    fn reference(&mut self, id: Option<Ref>) {
        match id {
            None => self.put(&[0xc0]),
            Some(Ref(system, seq)) => {
                self.put(&[0x92]);
                write_uint(self, u64::from(system));
                write_uint(self, seq);
            }
        }
    }
}

/// A payload's length as a MessagePack `bin` length.
#[inline]
fn bin_len(len: usize) -> Result<u32, rmp_serde::encode::Error> {
    u32::try_from(len).map_err(|_| {
        rmp_serde::encode::Error::Syntax(format!(
            "a payload of {len} bytes is longer than MessagePack allows"
        ))
    })
}

/// Appends everything of an in-flight item before its payload (at most [`MAX_HEAD`]
/// bytes): `[to | nil, from | nil, epoch, ask,` and the payload's `bin` header, put together
/// on the stack and appended in one copy (the writer's loops run it for nearly every
/// message of a busy snapshot).
#[inline(always)]
fn put_item_head(
    out: &mut Vec<u8>,
    to: Option<Ref>,
    from: Option<Ref>,
    epoch: u64,
    ask: bool,
    len: u32,
) {
    let mut head = Head { bytes: [0; MAX_HEAD], len: 0 };
    head.put(&[0x95]); // an array of 5
    head.reference(to);
    head.reference(from);
    write_uint(&mut head, epoch);
    head.put(&[if ask { 0xc3 } else { 0xc2 }]);
    match len {
        0..=0xff => head.put(&[0xc4, len as u8]),
        0x100..=0xffff => {
            let [a, b] = (len as u16).to_be_bytes();
            head.put(&[0xc5, a, b]);
        }
        _ => {
            let [a, b, c, d] = len.to_be_bytes();
            head.put(&[0xc6, a, b, c, d]);
        }
    }
    // All of the buffer, then cut back: a copy of constant size is a few vector moves, a
    // copy of the head's own size a call of `memcpy`.
    let end = out.len() + head.len;
    out.extend_from_slice(&head.bytes);
    out.truncate(end);
}

/// An in-flight record as read, before its references are resolved.
#[derive(Deserialize)]
pub(crate) struct InFlightIn {
    to: Option<Ref>,
    from: Option<Ref>,
    epoch: u64,
    ask: bool,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

impl InFlightIn {
    /// The record, its receiver `previous` if it names none, its ids resolved in `systems`.
    pub(crate) fn resolve(
        self,
        previous: Option<ActorId>,
        systems: &[u64],
    ) -> Result<InFlightRecord, String> {
        let id = |r: Ref| -> Result<ActorId, String> {
            let system = systems.get(r.0 as usize).ok_or(format!("no system {}", r.0))?;
            Ok(ActorId::new(SystemId(*system), r.1))
        };
        let to = match self.to {
            Some(r) => id(r)?,
            None => previous.ok_or("an in-flight record without a receiver comes first")?,
        };
        Ok(InFlightRecord {
            to,
            from: self.from.map(id).transpose()?,
            epoch: Epoch(self.epoch),
            ask: self.ask,
            payload: self.payload.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest's and the state records' parts are written with the crate's own
    /// MessagePack writer; the format is what rmp-serde writes for them (structs as
    /// arrays), so that both read back the same and older readers are unaffected.
    #[test]
    fn manifest_and_state_parts_are_written_as_rmp_serde_writes_them() {
        fn same<T: Serialize>(value: &T) {
            let mut ours = Vec::new();
            write(&mut ours, value).unwrap();
            assert_eq!(ours, rmp_serde::to_vec(value).unwrap());
        }
        let annotations: BTreeMap<String, String> =
            [("zone".to_owned(), "eu-1".to_owned()), ("rack".to_owned(), "7".to_owned())].into();
        for big in [0u64, 1, 127, 128, 255, 65_535, 65_536, u64::from(u32::MAX) + 1, u64::MAX] {
            let small = u32::try_from(big).unwrap_or(u32::MAX);
            let refs: Vec<Ref> = (0..(big % 20)).map(|k| Ref(small ^ k as u32, big ^ k)).collect();
            let entry = EntryOut {
                system: small,
                seq: big,
                type_name: small / 3,
                name: (big % 2 == 0).then_some("an actor's name, long enough for str8 ....."),
                node: small / 7,
                parent: (big % 3 != 0).then_some(Ref(small, big)),
                watchers: refs.clone(),
                watching: refs.iter().rev().map(|r| Ref(r.0, r.1)).collect(),
                state_version: small,
                capacity_kind: (big % 3) as u8,
                capacity: big,
                restart: (big % 2 == 1)
                    .then(|| (small, Duration::from_micros(big % 1_000_000_007))),
            };
            same(&entry);
            same(&vec![ActorOut::Entry(entry)]);
            let digest = [big as u8; 16];
            same(&ActorOut::Run((
                (big % 2 == 0).then_some(small),
                Ref(small, big),
                small,
                small / 2,
                big,
                serde_bytes::Bytes::new(&digest),
                big,
            )));
            same(&NodeOut::Plain(("n1", (big % 2 == 0).then_some("127.0.0.1:4000"))));
            same(&NodeOut::Annotated(("n2", None, &annotations)));
            let record = StateRecord {
                id: ActorId::new(SystemId(big), big),
                state: vec![big as u8; (big % 300) as usize],
                timers: (0..(big % 3))
                    .map(|t| TimerEntry {
                        timer: t,
                        remaining_us: big,
                        period_us: (t % 2 == 0).then_some(big),
                        msg: vec![7; t as usize * 40],
                    })
                    .collect(),
            };
            same(&StateOut::new(small, &record));
            same(&vec![big; (big % 40) as usize]);
            same(&vec!["bank.Account"; (big % 20) as usize]);
        }
    }

    /// The item as rmp-serde writes it: what [`write_in_flight`] must match.
    #[derive(Serialize)]
    struct InFlightOut<'a> {
        to: Option<Ref>,
        from: Option<Ref>,
        epoch: u64,
        ask: bool,
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
    }

    #[test]
    fn in_flight_items_are_written_as_rmp_serde_writes_them() {
        let edges =
            [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, u32::MAX as u64, 1 << 32, u64::MAX];
        let systems_ids = [7u64, u64::MAX];
        let mut systems = Systems::default();
        for s in systems_ids {
            systems.index(ActorId::new(SystemId(s), 0));
        }
        for (n, &edge) in edges.iter().enumerate() {
            for payload_len in [0usize, 1, 0xff, 0x100, 0xffff, 0x1_0000] {
                let payload = vec![n as u8; payload_len];
                let to = ActorId::new(SystemId(systems_ids[n % 2]), edge);
                let from = (n % 3 != 0).then(|| {
                    ActorId::new(SystemId(systems_ids[(n + 1) % 2]), edges[edges.len() - 1 - n])
                });
                for same in [false, true] {
                    let view = InFlightMessage {
                        to,
                        from,
                        epoch: Epoch(edge),
                        ask: n % 2 == 0,
                        payload: &payload,
                    };
                    let mut ours = Vec::new();
                    write_in_flight(&mut ours, view, same, &systems).unwrap();
                    let reference = InFlightOut {
                        to: (!same).then(|| systems.get(to)),
                        from: from.map(|f| systems.get(f)),
                        epoch: edge,
                        ask: view.ask,
                        payload: &payload,
                    };
                    let theirs = rmp_serde::to_vec(&reference).unwrap();
                    assert_eq!(ours, theirs, "epoch {edge}, payload {payload_len}, same {same}");
                }
            }
        }
    }
}
