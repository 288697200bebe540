//! The peer table: which link serves which node, and which connection wins when two
//! connections between the same pair of nodes complete.
//!
//! # One link per node pair
//!
//! Two nodes may dial each other at the same moment, or one may dial twice. Every
//! connection that passes authentication is judged by its **acceptor** (under the table's
//! lock, before it writes `Welcome` or `Duplicate`):
//!
//! 1. If a live link with the same peer *incarnation* is already up, the new connection is a
//!    duplicate.
//! 2. If this node is itself dialling that peer (it registers a dial as soon as the peer's
//!    `Hello` names it, before sending its proof), the connection opened by the node with
//!    the **smaller node id** wins: an incoming connection from a larger id is a duplicate.
//! 3. Otherwise the connection becomes the link. A link to an older incarnation of the peer
//!    (the peer restarted) or a link already closing is replaced.
//!
//! Why both sides agree: let A < B dial each other, connection `c1` A→B and `c2` B→A. A
//! registers its dial before sending its proof on `c1`, and B judges `c1` only after that
//! proof, so when B judges `c1` it sees either its own dial (rule 2: A is smaller, accept)
//! or nothing; symmetrically when A judges `c2` it sees its own dial (reject `c2`), or, if
//! A judged `c2` before dialling at all, A accepted `c2`, and then A's dial `c1` finds that
//! link up at its own `Hello` stage, so its proof reaches B only with the link in place
//! (rule 1). Either way exactly one of `c1`, `c2` is welcomed, on both sides, and each side
//! reports one `PeerUp`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::link::Link;
use crate::handshake::proof::Role;
use crate::{DownReason, NodeId, TransportError};

/// Links by node, and dials in progress.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    slots: HashMap<NodeId, Slot>,
    /// Every node that ever had a link, to tell `PeerDown` from `UnknownPeer`.
    known: HashSet<NodeId>,
}

#[derive(Debug, Default)]
struct Slot {
    up: Option<Arc<Link>>,
    dialing: usize,
}

/// The outcome of [`PeerTable::admit`].
#[derive(Debug)]
pub(crate) enum Admission {
    /// The connection is the link now; `replaced` is the link it displaced (now closing),
    /// whose `PeerDown` must be reported before the new `PeerUp`.
    Installed { replaced: Option<Arc<Link>> },
    /// Another link wins.
    Duplicate,
}

impl PeerTable {
    /// The live link to `node`, for sending.
    pub(crate) fn link(&self, node: &NodeId) -> Result<Arc<Link>, TransportError> {
        match self.slots.get(node).and_then(|slot| slot.up.as_ref()) {
            Some(link) if !link.is_closing() => Ok(link.clone()),
            _ if self.known.contains(node) => Err(TransportError::PeerDown(node.clone())),
            _ => Err(TransportError::UnknownPeer(node.clone())),
        }
    }

    /// Whether a live link to `node` was reported up.
    pub(crate) fn is_up(&self, node: &NodeId) -> bool {
        self.link(node).is_ok_and(|link| link.is_announced())
    }

    /// The live, reported links.
    pub(crate) fn up(&self) -> impl Iterator<Item = &Arc<Link>> {
        self.slots
            .values()
            .filter_map(|slot| slot.up.as_ref())
            .filter(|link| !link.is_closing() && link.is_announced())
    }

    /// This node started dialling `node` (its `Hello` named it).
    pub(crate) fn dial_started(&mut self, node: &NodeId) {
        self.slots.entry(node.clone()).or_default().dialing += 1;
    }

    /// A dial registered with [`dial_started`](Self::dial_started) ended.
    pub(crate) fn dial_ended(&mut self, node: &NodeId) {
        if let Some(slot) = self.slots.get_mut(node) {
            slot.dialing = slot.dialing.saturating_sub(1);
            self.tidy(node);
        }
    }

    /// Judges an authenticated connection (see the module docs); `role` is this node's role
    /// on it. On `Installed` the link is in the table and a replaced link is closing.
    pub(crate) fn admit(&mut self, me: &NodeId, link: &Arc<Link>, role: Role) -> Admission {
        let slot = self.slots.entry(link.node.clone()).or_default();
        if slot
            .up
            .as_ref()
            .is_some_and(|current| !current.is_closing() && current.incarnation == link.incarnation)
        {
            return Admission::Duplicate;
        }
        if role == Role::Acceptor && slot.dialing > 0 && link.node > *me {
            return Admission::Duplicate;
        }
        let replaced = slot.up.replace(link.clone());
        self.known.insert(link.node.clone());
        if let Some(old) = &replaced {
            old.close(DownReason::Replaced);
        }
        Admission::Installed { replaced }
    }

    /// Takes `link` out of the table if it is still there; true if it was.
    pub(crate) fn remove(&mut self, link: &Arc<Link>) -> bool {
        let Some(slot) = self.slots.get_mut(&link.node) else { return false };
        if !slot.up.as_ref().is_some_and(|up| Arc::ptr_eq(up, link)) {
            return false;
        }
        slot.up = None;
        self.tidy(&link.node);
        true
    }

    fn tidy(&mut self, node: &NodeId) {
        if self.slots.get(node).is_some_and(|slot| slot.up.is_none() && slot.dialing == 0) {
            self.slots.remove(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn link(node: &str, incarnation: u64) -> Arc<Link> {
        let addr = "127.0.0.1:1".parse().unwrap();
        let shutdown = CancellationToken::new();
        Link::new(0, NodeId::from(node), incarnation, addr, addr, 1, &shutdown).0
    }

    fn installed(admission: Admission) -> Option<Arc<Link>> {
        match admission {
            Admission::Installed { replaced } => replaced,
            Admission::Duplicate => panic!("expected the link to be installed"),
        }
    }

    #[test]
    fn first_link_is_installed_and_a_second_of_the_same_incarnation_is_a_duplicate() {
        let (me, mut table) = (NodeId::from("a"), PeerTable::default());
        let b = NodeId::from("b");
        assert!(matches!(table.link(&b), Err(TransportError::UnknownPeer(_))));
        assert!(installed(table.admit(&me, &link("b", 1), Role::Acceptor)).is_none());
        assert!(matches!(table.admit(&me, &link("b", 1), Role::Acceptor), Admission::Duplicate));
        assert!(matches!(table.admit(&me, &link("b", 1), Role::Initiator), Admission::Duplicate));
        assert!(table.link(&b).is_ok());
    }

    #[test]
    fn a_new_incarnation_replaces_the_old_link() {
        let (me, mut table) = (NodeId::from("a"), PeerTable::default());
        let old = link("b", 1);
        installed(table.admit(&me, &old, Role::Acceptor));
        let replaced = installed(table.admit(&me, &link("b", 2), Role::Acceptor)).unwrap();
        assert!(Arc::ptr_eq(&replaced, &old));
        assert!(old.is_closing());
        assert!(!table.remove(&old), "the old link is no longer in the table");
    }

    #[test]
    fn a_closing_link_is_replaced_even_by_the_same_incarnation() {
        let (me, mut table) = (NodeId::from("a"), PeerTable::default());
        let old = link("b", 1);
        installed(table.admit(&me, &old, Role::Acceptor));
        old.close(DownReason::Timeout);
        assert!(matches!(table.link(&NodeId::from("b")), Err(TransportError::PeerDown(_))));
        assert!(installed(table.admit(&me, &link("b", 1), Role::Acceptor)).is_some());
    }

    #[test]
    fn while_dialling_the_smaller_id_wins() {
        // "a" < "b". a dials b while b's connection to a arrives: a refuses it.
        let mut at_a = PeerTable::default();
        at_a.dial_started(&NodeId::from("b"));
        let from_b = link("b", 1);
        assert!(matches!(at_a.admit(&"a".into(), &from_b, Role::Acceptor), Admission::Duplicate));
        // b dials a while a's connection arrives: b accepts it.
        let mut at_b = PeerTable::default();
        at_b.dial_started(&NodeId::from("a"));
        installed(at_b.admit(&"b".into(), &link("a", 1), Role::Acceptor));
        // The dialler installs what it was welcomed on regardless of its own dials.
        installed(at_a.admit(&"a".into(), &link("b", 1), Role::Initiator));
    }

    #[test]
    fn removed_links_make_a_known_peer_down() {
        let (me, mut table) = (NodeId::from("a"), PeerTable::default());
        let l = link("b", 1);
        installed(table.admit(&me, &l, Role::Initiator));
        assert!(table.remove(&l));
        assert!(!table.remove(&l));
        assert!(matches!(table.link(&NodeId::from("b")), Err(TransportError::PeerDown(_))));
        assert!(table.slots.is_empty());
    }
}
