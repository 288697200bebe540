//! What a cluster tells its subscribers about its peers ([`Cluster::subscribe`]).
//!
//! A node's *incarnation* here is its actor system: every [`Cluster::start`] draws a new
//! random [`SystemId`], sent in the `Hello` that opens every link (the transport's own
//! incarnation number, sent in its handshake, changes with it). A peer that introduces itself
//! with the system it had before came back ([`ClusterEvent::Reconnected`]); with another one,
//! it restarted ([`ClusterEvent::Restarted`]) and the actors of its previous system are gone
//! for good: refs to them fail at once with `NodeDown` instead of reaching the new system.

use std::sync::atomic::{AtomicBool, Ordering};

use amber_snapshot::SystemId;
use dashmap::DashMap;
use tokio::sync::broadcast;

use super::Cluster;
use crate::NodeId;

/// How many events wait for a slow subscriber before it misses the oldest ones.
const CAPACITY: usize = 256;

/// Something that happened to one of this node's peers, in the order it happened for that
/// peer: `Down` between two of the others.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// `node` linked and introduced itself for the first time: refs to its actors resolve.
    Up {
        /// The peer.
        node: NodeId,
    },
    /// The link to `node` went down: what was pending on it failed (asks, lookups, spawns),
    /// watchers of its actors heard `NodeDown`, a snapshot spanning it aborted. If this node
    /// dialled the link and the drop was not deliberate, it is being redialled. The
    /// forwarding entries of actors that moved from this node to `node` stay (what goes
    /// through them is refused meanwhile).
    Down {
        /// The peer.
        node: NodeId,
        /// Why the link went down, as the transport said it.
        reason: String,
    },
    /// `node` is back as the incarnation it was before the link dropped: refs to its actors
    /// work again (watches do not come back: watch again), and so do the forwarding entries
    /// of actors that moved from this node to `node`.
    Reconnected {
        /// The peer.
        node: NodeId,
    },
    /// `node` is back as a new incarnation (it restarted): its previous actors are gone,
    /// and refs to them fail with `NodeDown`; look its actors up again. The forwarding
    /// entries of actors that had moved from this node to `node` ended (`NodeDown`).
    Restarted {
        /// The peer.
        node: NodeId,
    },
    /// Redialling `node` gave up after `attempts` attempts
    /// ([`ReconnectPolicy::attempts`](crate::ReconnectPolicy::attempts)); it stays down
    /// until a node connects again. The forwarding entries of actors that moved from this
    /// node to `node` ended (`NodeDown`).
    GaveUp {
        /// The peer.
        node: NodeId,
        /// How many attempts failed.
        attempts: u32,
    },
    /// The membership ([`Cluster::join`](super::Cluster::join)) learned that `node` is up,
    /// first or as a new incarnation; it is linked to next (by whichever of the two nodes
    /// dials: `Up` or `Restarted` follows when it introduced itself).
    MemberUp {
        /// The member.
        node: NodeId,
        /// Where it accepts links.
        addr: std::net::SocketAddr,
    },
    /// The membership declared `node` down (it stopped answering probes, directly and
    /// through others): its link is closed, with the consequences of a `Down`, and the
    /// forwarding entries of actors that moved from this node to `node` ended
    /// (`NodeDown`).
    MemberDown {
        /// The member.
        node: NodeId,
    },
    /// `node` left the membership on purpose (it shut down). The forwarding entries of
    /// actors that moved from this node to `node` ended, if its actors' stops did not end
    /// them first.
    MemberLeft {
        /// The member.
        node: NodeId,
    },
}

/// The incarnations seen per peer, and the subscribers.
#[derive(Debug)]
pub(super) struct Incarnations {
    /// The system each node last introduced itself with (kept while it is down).
    last: DashMap<NodeId, SystemId>,
    /// Systems of incarnations that were replaced by a new one, with their node.
    retired: DashMap<SystemId, NodeId, foldhash::fast::RandomState>,
    /// Set before the first entry goes into `retired`: until then every send skips the
    /// look-up ([`is_retired`](Self::is_retired) is on the path of every remote message).
    any_retired: AtomicBool,
    events: broadcast::Sender<ClusterEvent>,
}

impl Default for Incarnations {
    fn default() -> Incarnations {
        Incarnations {
            last: DashMap::new(),
            retired: DashMap::default(),
            any_retired: AtomicBool::new(false),
            events: broadcast::Sender::new(CAPACITY),
        }
    }
}

impl Incarnations {
    /// `node` introduced itself as `system`: records it, retires the system it had before
    /// if that differs, and returns the event to tell the subscribers (`Up`, `Reconnected`
    /// or `Restarted`; the caller publishes it once it has acted on it).
    #[must_use]
    pub(super) fn introduced(&self, node: &NodeId, system: SystemId) -> ClusterEvent {
        match self.last.insert(node.clone(), system) {
            None => ClusterEvent::Up { node: node.clone() },
            Some(before) if before == system => ClusterEvent::Reconnected { node: node.clone() },
            Some(before) => {
                tracing::info!(%node, "node restarted: its previous actors are gone");
                self.any_retired.store(true, Ordering::Release);
                self.retired.insert(before, node.clone());
                ClusterEvent::Restarted { node: node.clone() }
            }
        }
    }

    /// Every node that ever introduced itself (linked now or not).
    pub(super) fn known(&self) -> Vec<NodeId> {
        self.last.iter().map(|e| e.key().clone()).collect()
    }

    /// Whether `system` was `node`'s before it restarted.
    pub(super) fn is_retired(&self, system: SystemId, node: &NodeId) -> bool {
        self.any_retired.load(Ordering::Acquire)
            && self.retired.get(&system).is_some_and(|n| *n == *node)
    }

    /// Tells the subscribers (none listening is fine).
    pub(super) fn publish(&self, event: ClusterEvent) {
        let _ = self.events.send(event);
    }
}

impl Cluster {
    /// Subscribes to the cluster's events about its peers ([`ClusterEvent`]): links up and
    /// down, peers back after a drop or restarted.
    ///
    /// Events from the moment of the call on; a subscriber more than 256 events behind
    /// misses the oldest ([`broadcast::error::RecvError::Lagged`] says how many).
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.shared.incarnations.events.subscribe()
    }
}
