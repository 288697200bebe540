//! The control messages between the nodes and the coordinator.
//!
//! They are few and small: per snapshot, each node receives a [`NodeCommand::Start`], at most
//! one [`NodeCommand::Expect`], one [`NodeCommand::Release`] per ask depth and one final
//! command, and sends one [`NodeReport`] per ask depth it leaves behind plus at most two
//! more, each holding one counter per peer node. Nothing scales with the number of actors or
//! messages.

use serde::{Deserialize, Serialize};

use crate::Epoch;

/// What the coordinator tells a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeCommand<N> {
    /// Snapshot `epoch` starts: mark every local actor that is behind it.
    Start(Epoch),
    /// Every sender has finished its part of snapshot `epoch`; these are the final numbers
    /// of messages tagged below `epoch` each peer sent to this node. Report again once that
    /// many have arrived from each.
    Expect {
        /// The snapshot.
        epoch: Epoch,
        /// `(peer, messages tagged below epoch that peer sent to this node, in total)`.
        from: Vec<(N, u64)>,
    },
    /// No actor shallower than ask depth `depth` is behind snapshot `epoch` on any node:
    /// actors of that depth deferring their cuts may cut (see
    /// [`ActorCut::on_marker_at`](crate::ActorCut::on_marker_at)).
    Release {
        /// The snapshot.
        epoch: Epoch,
        /// The deepest depth that may cut.
        depth: u8,
    },
    /// Snapshot `epoch` is complete: every node's cut states and recordings for it are final.
    Complete(Epoch),
    /// Snapshot `epoch` is aborted: discard its cut states and recordings. Actors that cut
    /// keep their epoch; the next snapshot has a higher epoch.
    Abort {
        /// The snapshot.
        epoch: Epoch,
        /// Why.
        reason: AbortReason<N>,
    },
}

/// A node's progress in one snapshot, sent to the coordinator.
///
/// The counters are cumulative since the node's [`NodeSnapshot`](crate::NodeSnapshot) was
/// created and count only messages tagged below `epoch`: for the pair (A, B), A's
/// `sent_to[B]` equals B's `received_from[A]` exactly when every message tagged below
/// `epoch` that A sent to B has arrived at B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport<N> {
    /// The reporting node.
    pub node: N,
    /// The snapshot this report is about.
    pub epoch: Epoch,
    /// Whether no live actor on the node is still behind `epoch` (every actor that belongs
    /// to the snapshot has cut or stopped). Once true, `sent_to` is final.
    pub locally_done: bool,
    /// The shallowest ask depth of an actor of the node still behind `epoch` (`None` once
    /// locally done). The coordinator releases a depth once it is at or above every node's.
    #[serde(default)]
    pub shallowest: Option<u8>,
    /// Whether something waited across a cut on the node (see
    /// [`NodeSnapshot::ask_crossed`](crate::NodeSnapshot::ask_crossed)): the coordinator
    /// then releases every depth on every node.
    #[serde(default)]
    pub crossed: bool,
    /// `(peer, data messages tagged below epoch sent to it)`, sorted by peer, zeros left out.
    pub sent_to: Vec<(N, u64)>,
    /// `(peer, data messages tagged below epoch received from it)`, sorted by peer, zeros left
    /// out. Received means arrived: enqueued, recorded as a dead letter or dropped as one.
    pub received_from: Vec<(N, u64)>,
}

/// Why a snapshot was aborted. The previous completed snapshot stays the valid one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum AbortReason<N> {
    /// A node taking part in the snapshot went down.
    #[error("node {0:?} went down")]
    NodeDown(N),
    /// The snapshot's deadline passed before it completed.
    #[error("the snapshot deadline passed")]
    Deadline,
    /// The coordinator's owner cancelled it (for example at shutdown).
    #[error("the snapshot was cancelled")]
    Cancelled,
    /// A node refused to take part (it follows another coordinator's snapshot of the same
    /// or a later epoch, which one of the two must lose).
    #[error("node {node:?} refused: {reason}")]
    Rejected {
        /// The refusing node.
        node: N,
        /// Why.
        reason: Refusal<N>,
    },
    /// A node holds actors restored from a checkpoint that have not started yet: a
    /// snapshot now would miss them, so the node refuses to take part until they run.
    #[error("node {0:?} holds a restore that has not started")]
    RestorePending(N),
    /// A node exchanged messages with a node that is not part of the snapshot (not linked
    /// to the coordinator), whose counters the snapshot therefore cannot see.
    #[error("node {node:?} exchanged messages with {peer:?}, which is not part of the snapshot")]
    Outsider {
        /// The reporting node.
        node: N,
        /// The node outside the snapshot.
        peer: N,
    },
    /// A node reported more messages received from a peer than the peer reported sent,
    /// which no correct run produces (lost counters, a restarted node reusing its identity).
    #[error("node {to:?} received {received} messages from {from:?}, which sent only {sent}")]
    CountMismatch {
        /// The sending node.
        from: N,
        /// The receiving node.
        to: N,
        /// What the sender reported as sent.
        sent: u64,
        /// What the receiver reported as received.
        received: u64,
    },
    /// Completion was decided, but the node went down before its part of the snapshot
    /// reached the coordinator.
    #[error("node {0:?} went down before sending its part")]
    PartLost(N),
    /// Completion was decided, but the deadline passed before every node's part arrived.
    #[error("the deadline passed before every node's part arrived")]
    PartsLate,
    /// The node's part of the completed snapshot arrived but does not read.
    #[error("the part of node {0:?} does not read")]
    PartUnreadable(N),
}

/// Why a node refused a coordinator's `Start` ([`AbortReason::Rejected`]): it already
/// belongs to another snapshot of the same or a later epoch. Each epoch is coordinated by one
/// node; when two coordinators race, one of them must lose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal<N> {
    /// The node has already seen a later snapshot than the one it was asked to start.
    #[error("it has already seen snapshot {epoch}")]
    AlreadySeen {
        /// The latest snapshot the node has seen.
        epoch: Epoch,
    },
    /// The node follows another coordinator for the same snapshot epoch.
    #[error("it follows {coordinator:?} for snapshot {epoch}")]
    FollowsOther {
        /// The coordinator it follows.
        coordinator: N,
        /// The snapshot.
        epoch: Epoch,
    },
    /// The node has already finished (completed or aborted) the snapshot of that epoch.
    #[error("it has finished snapshot {epoch}")]
    Finished {
        /// The snapshot.
        epoch: Epoch,
    },
    /// The node is still taking an earlier snapshot for another coordinator.
    #[error("it is taking snapshot {epoch} for {coordinator:?}")]
    TakingOther {
        /// The coordinator of the snapshot it is taking.
        coordinator: N,
        /// That snapshot.
        epoch: Epoch,
    },
    /// The node's link to `peer` went down while the snapshot ran: what was on it may be
    /// lost, so the counts of that link cannot add up (see [`NodeSnapshot::link_down`]).
    ///
    /// [`NodeSnapshot::link_down`]: crate::NodeSnapshot::link_down
    #[error("its link to {peer:?} went down during the snapshot")]
    LinkLost {
        /// The other end of the link.
        peer: N,
    },
}
