//! How a node takes part in the membership: its seeds, its addresses, its timers.

use std::net::SocketAddr;
use std::time::Duration;

use crate::ClusterError;

/// How a node takes part in the cluster's membership ([`Cluster::join`](crate::Cluster::join)): its seeds, where it
/// gossips, and the failure detector's timers.
///
/// Every member of a cluster should use the same timers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MembershipConfig {
    /// Gossip addresses of members to announce this node to; one that answers is enough.
    /// The first node of a cluster has none (or only its own address, which is skipped).
    /// A node's gossip address is by default its link address (UDP on the same port).
    pub seeds: Vec<SocketAddr>,
    /// Where to receive gossip (UDP). `None`, the default: the link's local address, same
    /// IP and port.
    pub gossip: Option<SocketAddr>,
    /// The link address the other members dial. `None`, the default: the link's local
    /// address, which must then not be unspecified (`0.0.0.0`).
    pub advertise: Option<SocketAddr>,
    /// The gossip address the other members send to. `None`, the default: the
    /// advertised link address's IP with the gossip socket's port.
    pub advertise_gossip: Option<SocketAddr>,
    /// How often a random member is probed. Default 1 s.
    pub probe_period: Duration,
    /// How long a direct probe waits for its answer before asking others to probe
    /// indirectly; less than [`probe_period`](Self::probe_period). Default 300 ms.
    pub probe_rtt: Duration,
    /// How long a suspected member has to refute the suspicion before it is declared down.
    /// Default 3 s.
    pub suspect_after: Duration,
    /// How often news is gossiped to a few members beyond the probes. Default 200 ms.
    pub gossip_interval: Duration,
}

impl MembershipConfig {
    /// Joins through `seeds`, with the default timers.
    pub fn new(seeds: impl IntoIterator<Item = SocketAddr>) -> MembershipConfig {
        MembershipConfig {
            seeds: seeds.into_iter().collect(),
            gossip: None,
            advertise: None,
            advertise_gossip: None,
            probe_period: Duration::from_secs(1),
            probe_rtt: Duration::from_millis(300),
            suspect_after: Duration::from_secs(3),
            gossip_interval: Duration::from_millis(200),
        }
    }

    /// Sets [`probe_period`](Self::probe_period), [`probe_rtt`](Self::probe_rtt) and
    /// [`suspect_after`](Self::suspect_after).
    #[must_use]
    pub fn with_failure_detector(
        mut self,
        probe_period: Duration,
        probe_rtt: Duration,
        suspect_after: Duration,
    ) -> MembershipConfig {
        self.probe_period = probe_period;
        self.probe_rtt = probe_rtt;
        self.suspect_after = suspect_after;
        self
    }

    /// Sets [`gossip_interval`](Self::gossip_interval).
    #[must_use]
    pub fn with_gossip_interval(mut self, interval: Duration) -> MembershipConfig {
        self.gossip_interval = interval;
        self
    }

    /// Sets [`gossip`](Self::gossip), where gossip is received.
    #[must_use]
    pub fn with_gossip(mut self, addr: SocketAddr) -> MembershipConfig {
        self.gossip = Some(addr);
        self
    }

    /// Sets [`advertise`](Self::advertise) and
    /// [`advertise_gossip`](Self::advertise_gossip): where the others reach this node.
    #[must_use]
    pub fn with_advertise(
        mut self,
        link: SocketAddr,
        gossip: Option<SocketAddr>,
    ) -> MembershipConfig {
        self.advertise = Some(link);
        self.advertise_gossip = gossip;
        self
    }

    /// What is wrong with the timers, if anything.
    pub(super) fn check(&self) -> Result<(), ClusterError> {
        let bad = |why: &'static str| Err(ClusterError::Membership(why));
        if self.probe_rtt.is_zero() || self.probe_rtt >= self.probe_period {
            return bad("probe_rtt must be above zero and below probe_period");
        }
        if self.suspect_after.is_zero() || self.gossip_interval.is_zero() {
            return bad("suspect_after and gossip_interval must be above zero");
        }
        Ok(())
    }
}
