//! Errors of taking snapshots and of restoring them.

use std::fmt;

use amber_snapshot::{AbortReason, ActorId, CheckpointId, Epoch, StoreError};
use serde::{Deserialize, Serialize};

use crate::CodecError;

/// Taking a snapshot (or writing it as a checkpoint) failed. The previous checkpoint stays
/// valid.
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Another snapshot of this system is running.
    InProgress {
        /// Its epoch.
        running: Epoch,
    },
    /// The snapshot was aborted before it completed.
    Aborted {
        /// Its epoch.
        epoch: Epoch,
        /// Why.
        reason: AbortCause,
    },
    /// The snapshot completed as a cut, but some actor's state or some in-flight message
    /// could not be captured (for example an actor type not registered with
    /// [`SystemBuilder::register`](crate::SystemBuilder::register), or a state whose
    /// encoder failed or panicked; a panic is then handled as a panicking handler's).
    Capture {
        /// Its epoch.
        epoch: Epoch,
        /// The actors whose state could not be captured, if any.
        actors: Vec<ActorId>,
        /// What could not be captured, one item each.
        problems: Vec<CaptureProblem>,
    },
    /// Information crossed the cut outside the channels a snapshot can record — an ask
    /// reply computed after the responder's cut reached an actor before its own, or an actor
    /// before its cut sent to an actor born after the snapshot started (found through the
    /// registry or a ref from outside) — so this cut is not consistent and was discarded.
    /// Taking another snapshot usually succeeds; [`ActorSystem::snapshot`] retries by itself.
    ///
    /// [`ActorSystem::snapshot`]: crate::ActorSystem::snapshot
    Inconsistent {
        /// Its epoch.
        epoch: Epoch,
        /// What crossed the cut.
        taints: Vec<Taint>,
    },
    /// A node of the system (this one, or another node of its cluster) holds actors
    /// restored from a checkpoint that have not started yet
    /// ([`SystemBuilder::restore_where`](crate::SystemBuilder::restore_where) before
    /// [`PendingRestore::start`](crate::PendingRestore::start), or a cluster node before its
    /// `resume`): a snapshot would miss them, so it is refused. Start them first.
    RestorePending {
        /// The node holding the pending restore.
        node: String,
    },
    /// The system is shutting down.
    ShuttingDown,
    /// The checkpoint store failed.
    Store(StoreError),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::InProgress { running } => {
                write!(f, "snapshot {running} is still running")
            }
            SnapshotError::Aborted { epoch, reason } => {
                write!(f, "snapshot {epoch} aborted: {reason}")
            }
            SnapshotError::Capture { epoch, problems, .. } => {
                write!(f, "snapshot {epoch} could not capture {} item(s)", problems.len())?;
                for p in problems.iter().take(5) {
                    write!(f, "; {p}")?;
                }
                Ok(())
            }
            SnapshotError::Inconsistent { epoch, taints } => {
                write!(f, "snapshot {epoch} is not a consistent cut")?;
                for r in taints.iter().take(3) {
                    write!(f, "; {r}")?;
                }
                Ok(())
            }
            SnapshotError::RestorePending { node } => write!(
                f,
                "node {node} holds restored actors that have not started; a snapshot would miss them"
            ),
            SnapshotError::ShuttingDown => f.write_str("actor system is shutting down"),
            SnapshotError::Store(e) => write!(f, "checkpoint store: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a snapshot was aborted ([`SnapshotError::Aborted`]). The previous checkpoint stays
/// valid; the next snapshot has a higher epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AbortCause {
    /// The snapshot protocol aborted it before completion was decided: a node went down,
    /// the deadline passed, a node refused to take part, the counters did not add up, …
    #[error(transparent)]
    Protocol(AbortReason<String>),
    /// Completion was decided, but a node went down before its part of the snapshot
    /// reached the coordinator.
    #[error("node {node:?} went down before sending its part")]
    PartLost {
        /// The node.
        node: String,
    },
    /// Completion was decided, but the deadline passed before every node's part arrived.
    #[error("the deadline passed before every node's part arrived")]
    PartsLate,
    /// A node's part of the snapshot arrived but does not decode.
    #[error("the part of node {node:?} does not decode: {error}")]
    PartDecode {
        /// The node that sent it.
        node: String,
        /// What is wrong with it.
        error: PartError,
    },
    /// The system is shutting down.
    #[error("the system is shutting down")]
    ShuttingDown,
    /// The system was dropped before the snapshot completed.
    #[error("the system was dropped")]
    SystemDropped,
    /// The snapshot could not start.
    #[error("it could not start: {0}")]
    Start(amber_snapshot::StartError),
    /// The task writing the checkpoint to its store panicked or was cancelled
    /// ([`ActorSystem::checkpoint`](crate::ActorSystem::checkpoint)).
    #[error("checkpoint writer failed: {message}")]
    Writer {
        /// What the task reported (its panic message, or that it was cancelled).
        message: String,
    },
}

impl From<AbortReason<String>> for AbortCause {
    fn from(reason: AbortReason<String>) -> Self {
        AbortCause::Protocol(reason)
    }
}

/// Why a snapshot's cut is not consistent ([`SnapshotError::Inconsistent`]): information
/// crossed it outside the channels a snapshot can record.
///
/// Taints are found on any node and travel to the coordinator with the node's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Taint {
    /// `asker`, before its cut, took in the reply to an ask that `responder` computed after
    /// its own cut.
    #[error("actor {asker} absorbed an ask reply from {responder} computed after its cut")]
    AskReplyAfterCut {
        /// The actor that asked.
        asker: ActorId,
        /// The actor that answered.
        responder: ActorId,
    },
    /// `asker`, before its cut, learned that `responder`, after its cut, dropped the ask
    /// unanswered (it stopped): the request is recorded in flight, yet the asker keeps what
    /// it asked for, so the snapshot would count it twice.
    #[error("actor {asker} learned that {responder} dropped its ask after its cut")]
    AskDroppedAfterCut {
        /// The actor that asked.
        asker: ActorId,
        /// The actor that dropped the ask.
        responder: ActorId,
    },
    /// `actor`, born after snapshot `born` started, was sent a message tagged `tag` (from
    /// an actor that had not cut for it, which found the newborn through the registry or a
    /// ref from outside): the message would vanish from the snapshot.
    #[error(
        "actor {actor} was sent a message from epoch {tag}, but was born in {born} after that snapshot started"
    )]
    BornAfterSnapshot {
        /// The newborn actor.
        actor: ActorId,
        /// The tag of the message it was sent.
        tag: Epoch,
        /// The epoch it was born in.
        born: Epoch,
    },
}

/// Something a completed cut could not capture ([`SnapshotError::Capture`]).
///
/// Problems are found on any node and travel to the coordinator with the node's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureProblem {
    /// The actor's type is not registered as an
    /// [`ActorState`](crate::ActorState) with
    /// [`SystemBuilder::register`](crate::SystemBuilder::register).
    #[error(
        "actor {actor} ({type_name}) is not registered as an ActorState, so it cannot be captured"
    )]
    NotRegistered {
        /// The actor.
        actor: ActorId,
        /// Its type.
        type_name: String,
    },
    /// The actor had no instance at its cut (it was between a panic and its restart).
    #[error("actor {actor} has no instance")]
    NoInstance {
        /// The actor.
        actor: ActorId,
    },
    /// The actor's state does not encode.
    #[error("actor {actor} ({type_name}): state does not encode: {error}")]
    StateEncode {
        /// The actor.
        actor: ActorId,
        /// Its type.
        type_name: String,
        /// Why.
        error: CodecError,
    },
    /// The actor's state encoder panicked (the panic is handled as a panicking handler's).
    #[error("actor {actor} ({type_name}): state encoder panicked: {panic}")]
    EncoderPanicked {
        /// The actor.
        actor: ActorId,
        /// Its type.
        type_name: String,
        /// The panic's message.
        panic: String,
    },
    /// A pending timer's message does not encode.
    #[error("actor {actor}: timer message does not encode: {error}")]
    TimerEncode {
        /// The actor the timer belongs to.
        actor: ActorId,
        /// Why.
        error: CodecError,
    },
    /// A message in flight to `to` does not encode.
    #[error("a message in flight to actor {to} does not encode: {error}")]
    MessageEncode {
        /// The receiving actor.
        to: ActorId,
        /// Why.
        error: CodecError,
    },
    /// Completion reached a node that holds no record of its cuts for the snapshot: its
    /// actors would be missing.
    #[error("node {node:?} holds no record of its cuts for snapshot {epoch}")]
    NoCuts {
        /// The node.
        node: String,
        /// The snapshot.
        epoch: Epoch,
    },
}

/// Why a node's part of a snapshot does not decode ([`AbortCause::PartDecode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// A record, or the message carrying it, is not valid MessagePack of the expected shape.
    #[error("a record does not decode: {0}")]
    Record(CodecError),
    /// Bytes follow the last record.
    #[error("{0} bytes after the last record")]
    TrailingBytes(usize),
    /// The part ends before its end record.
    #[error("the part ends before its end record")]
    Truncated,
    /// A record follows the end record.
    #[error("a record after the end record")]
    AfterEnd,
    /// A record comes before the node record.
    #[error("a record before the node record")]
    BeforeNode,
    /// A second node record.
    #[error("a second node record")]
    SecondNode,
    /// The first actor of the part names no system.
    #[error("an actor without a system")]
    NoSystem,
    /// An actor refers to a type the part did not name.
    #[error("actor {actor}: unknown type index {index}")]
    UnknownType {
        /// The actor.
        actor: ActorId,
        /// The type index it refers to.
        index: u32,
    },
    /// The end record counts another number of records than were read.
    #[error("{read} records where {sent} were sent")]
    Count {
        /// Records read before the end record.
        read: u64,
        /// Records the end record counts.
        sent: u64,
    },
}

impl From<StoreError> for SnapshotError {
    fn from(e: StoreError) -> Self {
        SnapshotError::Store(e)
    }
}

/// Restoring a checkpoint failed; nothing of it was started.
#[derive(Debug)]
#[non_exhaustive]
pub enum RestoreError {
    /// The checkpoint is inconsistent in itself.
    Invalid(String),
    /// The checkpoint holds an actor whose type is not registered with this system.
    UnknownType {
        /// The actor.
        actor: ActorId,
        /// Its stored type name.
        type_name: String,
    },
    /// An actor's state could not be rebuilt.
    State {
        /// The actor.
        actor: ActorId,
        /// Why.
        error: crate::StateError,
    },
    /// A recorded message or timer message could not be decoded.
    Message {
        /// The receiving actor.
        actor: ActorId,
        /// Why.
        error: crate::CodecError,
    },
    /// Two actors of the checkpoint have the same name, or a name is taken.
    Name(String),
    /// The checkpoint store failed.
    Store(StoreError),
    /// The store holds no checkpoint.
    NoCheckpoint,
    /// The store holds checkpoints, but none of them loads and restores
    /// ([`SystemBuilder::restore_latest`](crate::SystemBuilder::restore_latest)): why each
    /// failed, newest first. Unlike [`NoCheckpoint`](Self::NoCheckpoint), starting afresh
    /// here would lose recorded state.
    NoneRestores(Vec<Skipped>),
}

/// A checkpoint [`SystemBuilder::restore_latest`](crate::SystemBuilder::restore_latest)
/// passed over, and why.
#[derive(Debug)]
pub struct Skipped {
    /// The checkpoint.
    pub id: CheckpointId,
    /// Why it was not used: [`RestoreError::Store`] if it does not load (torn, corrupt,
    /// unreadable), any other variant if it loads but does not restore.
    pub error: RestoreError,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.id, self.error)
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Invalid(m) => write!(f, "invalid checkpoint: {m}"),
            RestoreError::UnknownType { actor, type_name } => write!(
                f,
                "actor {actor} has type {type_name:?}, which is not registered with this system"
            ),
            RestoreError::State { actor, error } => {
                write!(f, "state of actor {actor} cannot be rebuilt: {error}")
            }
            RestoreError::Message { actor, error } => {
                write!(f, "a recorded message to actor {actor} cannot be decoded: {error}")
            }
            RestoreError::Name(n) => write!(f, "actor name {n:?} is used twice"),
            RestoreError::Store(e) => write!(f, "checkpoint store: {e}"),
            RestoreError::NoCheckpoint => f.write_str("the store holds no checkpoint"),
            RestoreError::NoneRestores(skipped) => {
                write!(f, "none of the {} checkpoints in the store restores", skipped.len())?;
                for s in skipped {
                    write!(f, "; {s}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for RestoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RestoreError::State { error, .. } => Some(error),
            RestoreError::Message { error, .. } => Some(error),
            RestoreError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for RestoreError {
    fn from(e: StoreError) -> Self {
        RestoreError::Store(e)
    }
}
