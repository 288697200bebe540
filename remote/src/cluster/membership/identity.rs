//! What gossip says about one member: the identity foca keeps per member.

use std::fmt;
use std::net::SocketAddr;

use amber_snapshot::SystemId;
use serde::{Deserialize, Serialize};

/// One incarnation of one member, as gossip carries it: its node name, where it accepts
/// links and gossip, and its incarnation.
///
/// foca keys members by [`gossip`](Self::gossip) (`foca::Identity::addr`): one member per
/// gossip address, the newest identity winning (a restart, or a renewal after this node was
/// wrongly declared down).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// Where the member receives gossip datagrams.
    pub(crate) gossip: SocketAddr,
    /// Its node name (checked as a `NodeId` where it is used).
    pub(crate) node: String,
    /// Where it accepts links: what `Cluster::connect` dials.
    pub(crate) link: SocketAddr,
    /// Its actor system: the cluster's incarnation of the node, new at every start.
    pub(crate) system: SystemId,
    /// When it started, in microseconds since the Unix epoch (its own clock): a restart wins
    /// over the incarnation before it. A node whose clock went back across a restart loses to
    /// its previous identity until the others forget it (foca's `remove_down_after`); the
    /// random system id only breaks ties.
    pub(crate) started: u64,
    /// How many times it renewed its identity since it started (it was declared down while
    /// alive and rejoined).
    pub(crate) bump: u32,
}

impl Identity {
    /// The identity to announce to a seed with: only its address is known, and foca accepts
    /// an announce addressed to any identity with the receiver's address.
    pub(crate) fn seed(gossip: SocketAddr) -> Identity {
        Identity {
            gossip,
            node: String::new(),
            link: gossip,
            system: SystemId(0),
            started: 0,
            bump: 0,
        }
    }

    /// The order of precedence between two identities of one address.
    fn rank(&self) -> (u64, u32, SystemId) {
        (self.started, self.bump, self.system)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{:x}.{}", self.node, self.gossip, self.system.0, self.bump)
    }
}

impl foca::Identity for Identity {
    type Addr = SocketAddr;

    /// Rejoins at once after being declared down while alive, as the same incarnation
    /// (the same actor system) under a new bump.
    fn renew(&self) -> Option<Identity> {
        Some(Identity { bump: self.bump.wrapping_add(1), ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.gossip
    }

    fn win_addr_conflict(&self, adversary: &Identity) -> bool {
        self.rank() > adversary.rank()
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity as _;

    use super::*;

    fn id(started: u64, bump: u32, system: u64) -> Identity {
        Identity {
            gossip: "127.0.0.1:1".parse().unwrap(),
            node: "a".into(),
            link: "127.0.0.1:1".parse().unwrap(),
            system: SystemId(system),
            started,
            bump,
        }
    }

    #[test]
    fn a_restart_or_a_renewal_wins_over_what_came_before() {
        let first = id(10, 0, 7);
        let renewed = first.renew().unwrap();
        assert!(renewed.win_addr_conflict(&first) && !first.win_addr_conflict(&renewed));
        assert_eq!(renewed.system, first.system, "a renewal is the same incarnation");
        let restarted = id(11, 0, 3);
        assert!(restarted.win_addr_conflict(&renewed));
        assert_eq!(restarted.addr(), first.addr());
    }
}
