//! Errors of the cluster layer.

use super::SpawnRefusal;
use crate::{NodeId, TransportError};

/// A cluster operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The transport failed (binding, connecting, a down peer).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer did not introduce itself in time after the link came up.
    #[error("node {0} did not introduce itself in time")]
    NoHello(NodeId),
    /// The node is not connected.
    #[error("node {0} is not connected")]
    NotConnected(NodeId),
    /// No actor is registered under this name on that node.
    #[error("no actor named {name:?} on node {node}")]
    NotFound {
        /// The node asked.
        node: NodeId,
        /// The name.
        name: String,
    },
    /// No node that answered holds an actor under this name
    /// ([`Cluster::lookup_any`](super::Cluster::lookup_any)).
    #[error("no actor named {name:?} on any node that answered (did not answer: {})", silent_names(.silent))]
    NameNotFound {
        /// The name.
        name: String,
        /// The nodes that did not answer: down, or not in time (sorted). They might hold it.
        silent: Vec<NodeId>,
    },
    /// Several nodes hold an actor under this name
    /// ([`Cluster::lookup_any`](super::Cluster::lookup_any); to pick one anyway:
    /// [`Cluster::lookup_any_resolved`](super::Cluster::lookup_any_resolved)).
    #[error("actor name {name:?} is registered on several nodes: {}", names(.nodes))]
    NameConflict {
        /// The name.
        name: String,
        /// The nodes holding it (sorted; this node too if it holds it).
        nodes: Vec<NodeId>,
    },
    /// The actor exists but is of another type.
    #[error("actor {name:?} on node {node} is a {found}, not a {expected}")]
    WrongType {
        /// The node asked.
        node: NodeId,
        /// The name.
        name: String,
        /// The type asked for.
        expected: String,
        /// The actor's type.
        found: String,
    },
    /// The node went down before it answered.
    #[error("node {0} went down before it answered")]
    NodeDown(NodeId),
    /// No answer in time.
    #[error("node {0} did not answer in time")]
    Timeout(NodeId),
    /// These nodes of a restore's placement did not resume their share in time
    /// ([`Cluster::resume`](super::Cluster::resume)).
    #[error("nodes {} did not resume their share of the restore in time", names(.0))]
    NotResumed(Vec<NodeId>),
    /// The node refused to spawn the actor ([`Cluster::spawn_on`](super::Cluster::spawn_on)).
    #[error("node {node} refused to spawn the actor: {reason}")]
    SpawnRefused {
        /// The node asked.
        node: NodeId,
        /// Why it refused.
        #[source]
        reason: SpawnRefusal,
    },
    /// The actor's state does not encode, so it cannot be sent.
    #[error("the actor's state does not encode: {0}")]
    Encode(#[source] amber_actors::CodecError),
    /// The placement of a restore cannot be applied.
    #[error("placement: {0}")]
    Placement(#[from] super::PlacementError),
    /// The actor could not move ([`Cluster::migrate`](super::Cluster::migrate)).
    #[error("migration: {0}")]
    Migrate(#[source] amber_actors::migrate::MigrateError),
    /// The gossip socket could not be bound or read ([`Cluster::join`](super::Cluster::join)).
    #[error("gossip socket: {0}")]
    Gossip(#[source] std::io::Error),
    /// The membership's configuration is unusable
    /// ([`MembershipConfig`](super::MembershipConfig)).
    #[error("membership: {0}")]
    Membership(&'static str),
    /// This node's share of the checkpoint could not be rebuilt.
    #[error("restore: {0}")]
    Restore(#[from] amber_actors::RestoreError),
}

/// `a, b, c`.
fn names(nodes: &[NodeId]) -> String {
    nodes.iter().map(NodeId::as_str).collect::<Vec<_>>().join(", ")
}

/// `a, b`, or `none`.
fn silent_names(nodes: &[NodeId]) -> String {
    if nodes.is_empty() { "none".to_owned() } else { names(nodes) }
}
