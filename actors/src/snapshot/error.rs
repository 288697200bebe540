//! Errors of taking snapshots and of restoring them.

use std::fmt;

use amber_snapshot::{ActorId, CheckpointId, Epoch, StoreError};

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
        reason: String,
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
        /// What could not be captured, one line each.
        problems: Vec<String>,
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
        reasons: Vec<String>,
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
            SnapshotError::Inconsistent { epoch, reasons } => {
                write!(f, "snapshot {epoch} is not a consistent cut")?;
                for r in reasons.iter().take(3) {
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
