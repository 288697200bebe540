//! The checkpoint as plain data: what is stored, not how.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::checkpoint::error::ValidationError;
use crate::checkpoint::in_flight::InFlight;
use crate::{ActorId, Epoch};

/// The hasher of the validation's sets of actor ids.
type FastHash = foldhash::fast::RandomState;

/// The identity of one checkpoint within a store.
///
/// Ids grow with every checkpoint a system takes; the store orders checkpoints by id and its
/// retention keeps the highest ones. It prints zero-padded, as in `ckpt-00000000000000000042`, so
/// that names sort like the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id after this one (saturating at `u64::MAX`).
    #[must_use]
    pub fn next(self) -> CheckpointId {
        CheckpointId(self.0.saturating_add(1))
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ckpt-{:020}", self.0)
    }
}

/// What a checkpoint holds: when it was taken and which nodes and actors it covers.
///
/// The manifest is the first record of a checkpoint file, so a store can list checkpoints by
/// reading only the start of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The checkpoint's id.
    pub id: CheckpointId,
    /// The snapshot epoch the checkpoint records: every actor's state is the one it had at its
    /// cut for this epoch.
    pub epoch: Epoch,
    /// When the snapshot completed, in milliseconds since the Unix epoch (set by the caller; this
    /// crate reads no clock).
    pub created_unix_ms: u64,
    /// The nodes the system spanned, each named once.
    pub nodes: Vec<NodeEntry>,
    /// Every actor in the checkpoint, each listed once.
    pub actors: Vec<ActorEntry>,
}

/// A node of the system at checkpoint time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node's name, unique within the checkpoint.
    pub node: String,
    /// Where the node listened, if it was reachable remotely (`None` for a single local node).
    pub address: Option<String>,
    /// What the node's system recorded of itself for readers of its checkpoints, key to
    /// value (set with `ActorSystem::annotate_checkpoints`; e.g. a sharding records its
    /// shard count under `sharding:<type name>`). Checkpoints written before this field
    /// existed read it as empty; an empty map is not written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl NodeEntry {
    /// Node `node`, listening at `address`, with no annotations.
    pub fn new(node: impl Into<String>, address: Option<String>) -> Self {
        NodeEntry { node: node.into(), address, annotations: BTreeMap::new() }
    }
}

/// Two nodes of a checkpoint recorded different values under one annotation key
/// ([`Manifest::annotation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationConflict {
    /// The key.
    pub key: String,
    /// The first node that recorded it (in the manifest's node order), and its value.
    pub first: (String, String),
    /// A later node that recorded another value, and that value.
    pub other: (String, String),
}

impl fmt::Display for AnnotationConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AnnotationConflict { key, first, other } = self;
        write!(
            f,
            "nodes disagree on {key}: node {} recorded {:?}, node {} recorded {:?}",
            first.0, first.1, other.0, other.1
        )
    }
}

impl std::error::Error for AnnotationConflict {}

impl Manifest {
    /// The value the checkpoint's nodes recorded under annotation `key`
    /// ([`NodeEntry::annotations`]): `None` if no node did, the value if every node that
    /// did recorded the same one, and [`AnnotationConflict`] if two recorded different
    /// values.
    pub fn annotation(&self, key: &str) -> Result<Option<&str>, AnnotationConflict> {
        let mut found: Option<(&str, &str)> = None;
        for node in &self.nodes {
            let Some(value) = node.annotations.get(key) else { continue };
            match found {
                None => found = Some((&node.node, value)),
                Some((_, first)) if first == value => {}
                Some((first_node, first)) => {
                    return Err(AnnotationConflict {
                        key: key.to_owned(),
                        first: (first_node.to_owned(), first.to_owned()),
                        other: (node.node.clone(), value.clone()),
                    });
                }
            }
        }
        Ok(found.map(|(_, value)| value))
    }
}

/// One actor of the checkpoint: who it is, where it ran and how it was linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorEntry {
    /// The actor's stable id; kept on restore.
    pub id: ActorId,
    /// The stable name its type is registered under, e.g. `"bank.Account"`.
    pub type_name: String,
    /// The name the actor was registered under, if any; kept on restore.
    pub name: Option<String>,
    /// The name of the node it ran on; one of the manifest's [`nodes`](Manifest::nodes).
    pub node: String,
    /// Its supervisor, or `None` for a top-level actor.
    pub parent: Option<ActorId>,
    /// The actors watching it for termination, as its mailbox knew them at its cut.
    pub watchers: Vec<ActorId>,
    /// The actors it watched at its cut (its own side of its watches, consistent with its
    /// state: a restore re-takes these, on whatever node each watched actor lands).
    /// Checkpoints written before this field existed read it as empty.
    #[serde(default)]
    pub watching: Vec<ActorId>,
    /// The version of the state layout its [`StateRecord`] was written with.
    pub state_version: u32,
    /// The capacity of its mailbox's data lane, which a restore gives it again.
    /// Checkpoints written before this field existed read it as
    /// [`SpawnCapacity::SystemDefault`].
    #[serde(default, skip_serializing_if = "SpawnCapacity::is_system_default")]
    pub capacity: SpawnCapacity,
    /// What happens when it panics, which a restore gives it again. Checkpoints written
    /// before this field existed read it as [`SpawnRestart::Never`].
    #[serde(default, skip_serializing_if = "SpawnRestart::is_never")]
    pub restart: SpawnRestart,
}

/// The mailbox capacity an actor was spawned with, as a checkpoint records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SpawnCapacity {
    /// Not recorded (a checkpoint written before capacities were): the actor gets the
    /// default capacity of the system it is restored into.
    #[default]
    SystemDefault,
    /// At most this many messages wait in its data lane.
    Bounded(u64),
    /// No limit.
    Unbounded,
}

impl SpawnCapacity {
    /// Whether it is [`SpawnCapacity::SystemDefault`] (left out of a checkpoint's entry).
    pub fn is_system_default(&self) -> bool {
        matches!(self, SpawnCapacity::SystemDefault)
    }
}

impl SpawnRestart {
    /// Whether it is [`SpawnRestart::Never`], the common case (left out of a checkpoint's
    /// entry, which reads back as it).
    pub fn is_never(&self) -> bool {
        matches!(self, SpawnRestart::Never)
    }
}

impl fmt::Display for SpawnCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnCapacity::SystemDefault => f.write_str("system default"),
            SpawnCapacity::Bounded(n) => write!(f, "bounded {n}"),
            SpawnCapacity::Unbounded => f.write_str("unbounded"),
        }
    }
}

/// The restart policy an actor ran under, as a checkpoint records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SpawnRestart {
    /// A panic stops the actor.
    #[default]
    Never,
    /// A panic restarts the actor, at most `max_restarts` times within any window of length
    /// `within`.
    OnPanic {
        /// Restarts allowed within the window.
        max_restarts: u32,
        /// The window.
        within: Duration,
    },
}

impl fmt::Display for SpawnRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnRestart::Never => f.write_str("never"),
            SpawnRestart::OnPanic { max_restarts, within } => {
                write!(f, "on panic, {max_restarts} in {within:?}")
            }
        }
    }
}

/// An actor's recorded state: the bytes of its state and its pending timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The actor this state belongs to.
    pub id: ActorId,
    /// The state, MessagePack with named fields, as the actor type encoded it.
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    /// The actor's timers that had not fired (or that repeat) at its cut.
    pub timers: Vec<TimerEntry>,
}

/// A timer pending at an actor's cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerEntry {
    /// The timer's id within its actor.
    pub timer: u64,
    /// Microseconds left until it fires, measured at the cut.
    pub remaining_us: u64,
    /// The period in microseconds of a repeating timer, `None` for a one-shot timer.
    pub period_us: Option<u64>,
    /// The message it delivers, encoded.
    #[serde(with = "serde_bytes")]
    pub msg: Vec<u8>,
}

/// A message that crossed the cut: sent before the sender's cut, received after the receiver's.
///
/// Restore re-enqueues these to their receivers, in the order they appear in
/// [`Checkpoint::in_flight`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightRecord {
    /// The receiver.
    pub to: ActorId,
    /// The sending actor, or `None` for a message from outside the system or from a timer.
    pub from: Option<ActorId>,
    /// The epoch the message was tagged with when it was sent.
    pub epoch: Epoch,
    /// Whether the message is an ask (the sender awaits a reply) rather than a tell.
    pub ask: bool,
    /// The message, encoded. A [`Bytes`]: the messages of one actor's backlog are encoded
    /// into one buffer at its cut, each record a slice of it (no allocation per message).
    /// Build one from a `Vec<u8>` with `.into()`.
    pub payload: Bytes,
}

/// A consistent global snapshot as stored: the manifest, every actor's state and the messages
/// in flight across the cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// What the checkpoint holds.
    pub manifest: Manifest,
    /// One state per actor of the manifest, in any order.
    pub states: Vec<StateRecord>,
    /// The in-flight messages; for each receiver, in the order they are to be re-enqueued.
    pub in_flight: InFlight,
}

impl Checkpoint {
    /// Checks that the checkpoint is consistent in itself.
    ///
    /// Node names are unique and every actor runs on a listed node; actor ids are unique; every
    /// actor has exactly one state and every state belongs to a listed actor; every in-flight
    /// message goes to a listed actor. Parents, watchers and senders are not checked: they may
    /// name actors outside the checkpoint.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut nodes = HashSet::new();
        for entry in &self.manifest.nodes {
            if !nodes.insert(entry.node.as_str()) {
                return Err(ValidationError::DuplicateNode { node: entry.node.clone() });
            }
        }
        // Ids of a checkpoint are not chosen against this process: a fast hash will do.
        let mut actors: HashSet<ActorId, FastHash> =
            HashSet::with_capacity_and_hasher(self.manifest.actors.len(), FastHash::default());
        let mut last_node = None;
        for entry in &self.manifest.actors {
            if !actors.insert(entry.id) {
                return Err(ValidationError::DuplicateActor { actor: entry.id });
            }
            // Actors of a node come together: look their node up once per run.
            if last_node != Some(entry.node.as_str()) {
                if !nodes.contains(entry.node.as_str()) {
                    return Err(ValidationError::UnknownNode {
                        actor: entry.id,
                        node: entry.node.clone(),
                    });
                }
                last_node = Some(entry.node.as_str());
            }
        }
        // States in manifest order, one per actor (as checkpoints are written): each is a
        // listed actor's, none twice, none missing.
        let in_order = self.states.len() == self.manifest.actors.len()
            && self.states.iter().zip(&self.manifest.actors).all(|(s, a)| s.id == a.id);
        if !in_order {
            let mut with_state: HashSet<ActorId, FastHash> =
                HashSet::with_capacity_and_hasher(self.states.len(), FastHash::default());
            for record in &self.states {
                if !actors.contains(&record.id) {
                    return Err(ValidationError::StateOfUnknownActor { actor: record.id });
                }
                if !with_state.insert(record.id) {
                    return Err(ValidationError::DuplicateState { actor: record.id });
                }
            }
            if let Some(entry) = self.manifest.actors.iter().find(|e| !with_state.contains(&e.id)) {
                return Err(ValidationError::MissingState { actor: entry.id });
            }
        }
        // Messages come in runs per receiver: each run's receiver is looked up once.
        for (index, to) in self.in_flight.receiver_runs() {
            if !actors.contains(&to) {
                return Err(ValidationError::InFlightToUnknownActor { index, to });
            }
        }
        Ok(())
    }

    /// The manifest entry of actor `id`.
    pub fn actor(&self, id: ActorId) -> Option<&ActorEntry> {
        self.manifest.actors.iter().find(|entry| entry.id == id)
    }

    /// The recorded state of actor `id`.
    pub fn state(&self, id: ActorId) -> Option<&StateRecord> {
        self.states.iter().find(|record| record.id == id)
    }

    /// The in-flight messages to actor `id`, in the order they are to be re-enqueued.
    pub fn in_flight_to(&self, id: ActorId) -> impl Iterator<Item = &InFlightRecord> {
        self.in_flight.iter().filter(move |message| message.to == id)
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::SystemId;

    /// An actor entry as checkpoints wrote it before `watching` existed.
    #[derive(Serialize)]
    struct EntryWithoutWatching {
        id: ActorId,
        type_name: String,
        name: Option<String>,
        node: String,
        parent: Option<ActorId>,
        watchers: Vec<ActorId>,
        state_version: u32,
    }

    #[test]
    fn an_entry_written_before_watching_existed_reads_as_watching_nothing() {
        let id = ActorId::new(SystemId(3), 4);
        let old = EntryWithoutWatching {
            id,
            type_name: "t".into(),
            name: None,
            node: "n".into(),
            parent: None,
            watchers: vec![id],
            state_version: 1,
        };
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        let entry: ActorEntry = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(entry.watchers, vec![id]);
        assert!(entry.watching.is_empty());
        assert_eq!(entry.capacity, SpawnCapacity::SystemDefault);
        assert_eq!(entry.restart, SpawnRestart::Never);
    }

    #[test]
    fn spawn_options_round_trip() {
        let id = ActorId::new(SystemId(3), 4);
        for (capacity, restart) in [
            (
                SpawnCapacity::Unbounded,
                SpawnRestart::OnPanic {
                    max_restarts: 3,
                    within: Duration::from_nanos(1_500_000_001),
                },
            ),
            (SpawnCapacity::Bounded(7), SpawnRestart::Never),
            (SpawnCapacity::SystemDefault, SpawnRestart::Never),
        ] {
            let entry = ActorEntry {
                id,
                type_name: "t".into(),
                name: None,
                node: "n".into(),
                parent: None,
                watchers: vec![],
                watching: vec![],
                state_version: 1,
                capacity,
                restart,
            };
            let bytes = rmp_serde::to_vec_named(&entry).unwrap();
            assert_eq!(rmp_serde::from_slice::<ActorEntry>(&bytes).unwrap(), entry);
        }
    }
}
