//! Control-lane signals and the reasons actors stop.

use std::fmt;

use crate::ActorId;

/// Why an actor stopped.
///
/// Serializable, so a node can tell another node's watchers why one of its actors stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitReason {
    /// Stopped on request ([`ActorRef::stop`](crate::ActorRef::stop),
    /// [`Context::stop`](crate::Context::stop)) or after draining its mailbox.
    Stopped,
    /// Stopped because the system or its parent shut down.
    Shutdown,
    /// A handler or hook panicked and the actor was not restarted; the panic message.
    Panicked(String),
    /// `on_start` returned an error; its message.
    StartFailed(String),
    /// The actor panicked more often than its restart policy allows.
    RestartLimit {
        /// Restarts within the policy's window when the limit was hit.
        restarts: u32,
        /// The last panic message.
        last_panic: String,
    },
    /// The actor lives on another node, and that node went down or became unreachable
    /// (link lost, heartbeat timeout, shut down) while it was watched; the node's name. The
    /// actor may still be running there.
    NodeDown(String),
    /// The system shut down with a deadline
    /// ([`ActorSystem::shutdown_within`](crate::ActorSystem::shutdown_within)) and the actor
    /// was still running when it passed: its task was aborted, without `on_stop`.
    Aborted,
}

impl ExitReason {
    /// Whether the actor stopped because something went wrong.
    pub fn is_failure(&self) -> bool {
        !matches!(self, ExitReason::Stopped | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Stopped => f.write_str("stopped"),
            ExitReason::Shutdown => f.write_str("shut down"),
            ExitReason::Panicked(m) => write!(f, "panicked: {m}"),
            ExitReason::StartFailed(m) => write!(f, "failed to start: {m}"),
            ExitReason::RestartLimit { restarts, last_panic } => {
                write!(
                    f,
                    "restart limit reached after {restarts} restarts; last panic: {last_panic}"
                )
            }
            ExitReason::NodeDown(node) => write!(f, "its node {node} went down"),
            ExitReason::Aborted => f.write_str("aborted at the shutdown deadline"),
        }
    }
}

/// What a supervisor is told about one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// The child panicked and was rebuilt from its factory; it keeps its id and mailbox.
    Restarted {
        /// The child.
        child: ActorId,
        /// The panic message.
        panic: String,
        /// Restarts within the policy's window so far.
        restarts: u32,
    },
    /// The child stopped for good.
    Exited {
        /// The child.
        child: ActorId,
        /// Why.
        reason: ExitReason,
    },
}

/// A watched actor stopped (see [`Context::watch`](crate::Context::watch)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// The actor that stopped.
    pub actor: ActorId,
    /// Why it stopped.
    pub reason: ExitReason,
}

/// A control-lane item: overtakes every queued data message.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Stop after the current message; queued data messages become dead letters.
    Stop(ExitReason),
    /// Refuse new data messages, handle the queued rest, then stop.
    Drain,
    /// A child was restarted or exited.
    Child(ChildEvent),
    /// A watched actor stopped.
    Down(Down),
    /// Snapshot marker: take the cut for this epoch if behind it (or defer it, by the ask
    /// rule: see [`amber_snapshot::ActorCut::on_marker_at`]).
    Marker(amber_snapshot::Epoch),
    /// The node released this actor's ask depth for snapshots up to this epoch: a cut it
    /// defers is taken now.
    Release(amber_snapshot::Epoch),
    /// Move to another node (live migration) before the next message. The request (a
    /// `migrate::Departing`) is opaque to the control lane, which knows nothing of
    /// migration; the actor's task opens it.
    Migrate(Box<dyn std::any::Any + Send>),
    /// Passivate if idle: hand the state to a keeper and stop (see [`crate::passivate`]).
    /// The request (a `passivate::Passivating`) is opaque here, as `Migrate`'s is.
    Passivate(Box<dyn std::any::Any + Send>),
}
