//! The peer table: which link serves which node, and which connection wins when two
//! connections between the same pair of nodes complete.
//!
//! # One link per node pair
//!
//! Two nodes may dial each other at the same moment, or one may dial twice. Two decisions,
//! each taken under the table's lock, keep exactly one connection:
//!
//! - **H**, the dialler, when the peer's `Hello` names it (before sending its proof): if a
//!   live link to that peer incarnation is in the table, it sends `Duplicate` instead of a
//!   proof and the connection ends. Otherwise it registers the dial.
//! - **J**, the acceptor, once the dialler is authenticated (before writing its verdict):
//!   1. a live link to the same peer incarnation is in the table: `Duplicate`;
//!   2. it is dialling that peer itself (a dial registered at its own H): the connection
//!      opened by the **smaller node id** wins, so a connection from a larger id is a
//!      `Duplicate`;
//!   3. otherwise `Welcome`; the link goes into the table, replacing a link to an older
//!      incarnation (the peer restarted) or one already closing.
//!
//! The dialler installs the link when it reads `Welcome`. Why both nodes agree, for nodes
//! S < L dialling each other (`cS` dialled by S, `cL` by L): on S, H (for `cS`) and J (for
//! `cL`) happen in some order. If J comes first, S welcomed `cL` and installed it, so at H S
//! sees it and abandons `cS`; L never judges `cS`. If H comes first, `cS` proceeds: at J S
//! sees its registered dial (or, later, the `cS` link itself) and refuses `cL`; and L, which
//! judges `cS` after S's proof, hence after S's H, either sees its own dial registered (rule
//! 2: S is smaller, welcome) or has not dialled yet (rule 3: welcome, and L's later H
//! abandons `cL`). In every order exactly one connection is welcomed, the same on both
//! nodes, and each reports one `PeerUp`. (A second dial from the same node is refused by
//! rule 1 at the acceptor, which judges the two dials one after the other.)

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

    /// Decision H: this node's dial reached `node`, incarnation `incarnation`. Registers the
    /// dial and returns true, or returns false if a live link to that incarnation exists.
    pub(crate) fn start_dial(&mut self, node: &NodeId, incarnation: u64) -> bool {
        let slot = self.slots.entry(node.clone()).or_default();
        if slot.up.as_ref().is_some_and(|up| !up.is_closing() && up.incarnation == incarnation) {
            return false;
        }
        slot.dialing += 1;
        true
    }

    /// A dial registered with [`start_dial`](Self::start_dial) ended.
    pub(crate) fn dial_ended(&mut self, node: &NodeId) {
        if let Some(slot) = self.slots.get_mut(node) {
            slot.dialing = slot.dialing.saturating_sub(1);
            self.tidy(node);
        }
    }

    /// Decision J (and, with `Role::Initiator`, the dialler's install on `Welcome`): judges
    /// an authenticated connection, see the module docs; `role` is this node's role on it. On `Installed` the link is in the table and a replaced link is closing.
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
        assert!(at_a.start_dial(&NodeId::from("b"), 1));
        let from_b = link("b", 1);
        assert!(matches!(at_a.admit(&"a".into(), &from_b, Role::Acceptor), Admission::Duplicate));
        // b dials a while a's connection arrives: b accepts it.
        let mut at_b = PeerTable::default();
        assert!(at_b.start_dial(&NodeId::from("a"), 1));
        installed(at_b.admit(&"b".into(), &link("a", 1), Role::Acceptor));
        // The dialler installs what it was welcomed on regardless of its own dials.
        installed(at_a.admit(&"a".into(), &link("b", 1), Role::Initiator));
    }

    #[test]
    fn a_dial_to_a_linked_incarnation_is_abandoned() {
        let (me, mut table) = (NodeId::from("a"), PeerTable::default());
        let b = NodeId::from("b");
        installed(table.admit(&me, &link("b", 1), Role::Acceptor));
        assert!(!table.start_dial(&b, 1), "already linked");
        assert!(table.start_dial(&b, 2), "a new incarnation may be dialled");
        table.dial_ended(&b);
        assert_eq!(table.slots[&b].dialing, 0);
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
