//! The roster: each node's identity and status as foca's state says, one entry per node
//! name, and what changed between two rosters.

use std::collections::BTreeMap;

use foca::State;

use super::MemberStatus;
use super::identity::Identity;
use crate::NodeId;

/// Each other node's identity and status.
pub(super) type Roster = BTreeMap<NodeId, (Identity, MemberStatus)>;

/// What changed for one node between two rosters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// Up now, and was not (or was another incarnation): report it, link to it.
    Up(NodeId, Identity),
    /// Down or left now, and was up.
    Gone(NodeId, MemberStatus),
}

/// The roster of foca's `members` (its full state, those down included), without `me` and
/// without names that are not usable node names. `left` says whether a down identity left
/// on purpose. A node seen under several identities (it moved to another gossip address)
/// is taken as its up one, else its newest.
pub(super) fn roster<'a>(
    members: impl IntoIterator<Item = &'a foca::Member<Identity>>,
    me: &NodeId,
    left: impl Fn(&Identity) -> bool,
) -> Roster {
    let mut roster = Roster::new();
    for member in members {
        let id = member.id();
        let node = NodeId::new(id.node.clone());
        if node.check().is_err() || node == *me {
            continue; // not a usable name, or another node claiming this one's
        }
        let status = match member.state() {
            State::Alive => MemberStatus::Alive,
            State::Suspect => MemberStatus::Suspect,
            State::Down if left(id) => MemberStatus::Left,
            State::Down => MemberStatus::Down,
        };
        let better = |(old, old_status): &(Identity, MemberStatus)| {
            (status.is_up(), id.started, id.bump) > (old_status.is_up(), old.started, old.bump)
        };
        if roster.get(&node).is_none_or(better) {
            roster.insert(node, (id.clone(), status));
        }
    }
    roster
}

/// What changed from `before` to `now`. A node up in both as the same incarnation (the same
/// actor system: a suspicion refuted, an identity renewed) did not change; one up again as
/// another incarnation (it restarted) is up again. A node seen down and then seen leave (its
/// leave reached this node after it was declared down) is gone again, as left.
pub(super) fn changes(before: &Roster, now: &Roster) -> Vec<Change> {
    let mut changes = Vec::new();
    for (node, (id, status)) in now {
        let was = before.get(node);
        let was_up = was.is_some_and(|(_, s)| s.is_up());
        let same_up = was.is_some_and(|(b, s)| s.is_up() && b.system == id.system);
        let left_now =
            *status == MemberStatus::Left && was.is_some_and(|(_, s)| *s == MemberStatus::Down);
        if status.is_up() && !same_up {
            changes.push(Change::Up(node.clone(), id.clone()));
        } else if (was_up && !status.is_up()) || left_now {
            changes.push(Change::Gone(node.clone(), *status));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use amber_snapshot::SystemId;
    use foca::{Identity as _, Member};

    use super::*;

    fn id(node: &str, port: u16, system: u64, started: u64) -> Identity {
        let addr = ([127, 0, 0, 1], port).into();
        Identity {
            gossip: addr,
            node: node.into(),
            link: addr,
            system: SystemId(system),
            started,
            bump: 0,
        }
    }

    fn of(members: &[Member<Identity>], left: &[&Identity]) -> Roster {
        roster(members, &NodeId::from("me"), |id| left.contains(&id))
    }

    #[test]
    fn one_entry_per_usable_name_other_than_this_nodes() {
        let b = id("b", 2, 1, 1);
        let members = [
            Member::alive(b.clone()),
            Member::alive(id("me", 3, 2, 1)), // claims this node's name
            Member::alive(id("", 4, 3, 1)),   // no name
            Member::down(id("b", 5, 4, 0)),   // b's older identity elsewhere, down
            Member::alive(id(&"x".repeat(256), 6, 5, 1)),
        ];
        let roster = of(&members, &[]);
        assert_eq!(roster.len(), 1);
        assert_eq!(roster[&NodeId::from("b")], (b, MemberStatus::Alive));
    }

    #[test]
    fn down_left_and_suspect_statuses() {
        let (b, c, d) = (id("b", 2, 1, 1), id("c", 3, 2, 1), id("d", 4, 3, 1));
        let members = [
            Member::down(b.clone()),
            Member::down(c.clone()),
            Member::new(d.clone(), 0, State::Suspect),
        ];
        let roster = of(&members, &[&c]);
        assert_eq!(roster[&NodeId::from("b")].1, MemberStatus::Down);
        assert_eq!(roster[&NodeId::from("c")].1, MemberStatus::Left);
        assert_eq!(roster[&NodeId::from("d")].1, MemberStatus::Suspect);
        assert!(MemberStatus::Suspect.is_up() && !MemberStatus::Left.is_up());
    }

    #[test]
    fn up_once_per_incarnation_and_gone_once() {
        let b = id("b", 2, 1, 1);
        let empty = Roster::new();
        let up = of(&[Member::alive(b.clone())], &[]);
        assert_eq!(changes(&empty, &up), [Change::Up("b".into(), b.clone())]);
        assert_eq!(changes(&up, &up), []);
        // A renewed identity (declared down while alive, rejoined) is the same incarnation.
        let renewed = b.renew().unwrap();
        let after_renewal = of(&[Member::alive(renewed.clone())], &[]);
        assert_eq!(changes(&up, &after_renewal), []);
        // Down, then back renewed: up again.
        let down = of(&[Member::down(b.clone())], &[]);
        assert_eq!(changes(&up, &down), [Change::Gone("b".into(), MemberStatus::Down)]);
        assert_eq!(changes(&down, &down), []);
        assert_eq!(changes(&down, &after_renewal), [Change::Up("b".into(), renewed)]);
        // Restarted (another system), even without being seen down: up again.
        let restarted = id("b", 2, 9, 2);
        let after_restart = of(&[Member::alive(restarted.clone())], &[]);
        assert_eq!(changes(&up, &after_restart), [Change::Up("b".into(), restarted)]);
        // Left, from up or from down; once.
        let left = of(&[Member::down(b.clone())], &[&b]);
        assert_eq!(changes(&up, &left), [Change::Gone("b".into(), MemberStatus::Left)]);
        assert_eq!(changes(&down, &left), [Change::Gone("b".into(), MemberStatus::Left)]);
        assert_eq!(changes(&left, &left), []);
        assert_eq!(changes(&empty, &left), [], "never seen up: nothing to report");
    }
}
