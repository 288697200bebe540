//! What a node knows of the members: each member's addresses, incarnation and status, and
//! the gossip's counters.

use std::net::SocketAddr;

use amber_snapshot::SystemId;

use crate::NodeId;

/// A member of the cluster as this node sees it ([`Cluster::members`](crate::Cluster::members)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// Its node name.
    pub node: NodeId,
    /// Where it accepts links.
    pub addr: SocketAddr,
    /// Where it receives gossip.
    pub gossip: SocketAddr,
    /// Its incarnation: its actor system, new at every start.
    pub system: SystemId,
    /// Up, suspected, down or left.
    pub status: MemberStatus,
    /// Whether a link to it is up and it introduced itself: refs to its actors resolve
    /// (always `true` for this node itself).
    pub linked: bool,
}

/// How a member is doing, as the membership says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberStatus {
    /// It answers probes.
    Alive,
    /// A probe went unanswered: it is declared down unless it refutes the suspicion within
    /// [`MembershipConfig::suspect_after`](crate::MembershipConfig::suspect_after). Still treated as up.
    Suspect,
    /// Declared down: it stopped answering (or is cut off from the others).
    Down,
    /// It left on purpose (it shut down).
    Left,
}

impl MemberStatus {
    /// Alive or suspected: counted as a member, linked to.
    pub fn is_up(self) -> bool {
        matches!(self, MemberStatus::Alive | MemberStatus::Suspect)
    }
}

/// Counters of the gossip datagrams of one node ([`Cluster::gossip_stats`](crate::Cluster::gossip_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GossipStats {
    /// Datagrams received that verified and were read.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams dropped: not authenticated by the cluster's secret, or unreadable.
    pub rejected: u64,
}
