//! Which coordinator a node follows: the decisions a node makes about the *snapshots* it is
//! asked to take part in, as opposed to its actors' cuts ([`NodeSnapshot`]).
//!
//! Several nodes may start snapshots at once, commands and tagged data travel on different
//! links, and a node may learn of a snapshot from a message tagged with its epoch before its
//! coordinator's `Start` arrives. [`Participant`] decides, for each `Start`, whether to
//! follow that coordinator or to refuse (so that exactly one of two racing coordinators
//! wins), where the node's reports go (to the coordinator it follows, or held until it is
//! known), which commands to obey, and what a coordinator's loss aborts.

use super::control::{NodeCommand, NodeReport, Refusal};
use super::node::NodeSnapshot;
use crate::Epoch;

/// A node's following of snapshot coordinators, generic over the node identity `N`.
///
/// The runtime keeps one beside its [`NodeSnapshot`], under the same lock, and asks it:
///
/// | event | call |
/// |---|---|
/// | a coordinator's `Start(epoch)` arrives (or this node's own) | [`on_start`](Self::on_start) |
/// | the node made a report ([`NodeAction::Report`](crate::NodeAction::Report)) | [`route`](Self::route) |
/// | any other command arrives | [`follows`](Self::follows) (obey it only if true) |
/// | a node is down | [`coordinator_down`](Self::coordinator_down) |
/// | a snapshot was aborted here | [`discard`](Self::discard) |
/// | a restore registers actors that have not started / they all started | [`restore_began`](Self::restore_began) / [`restore_started`](Self::restore_started) |
///
/// ```
/// use amber_snapshot::{Epoch, NodeSnapshot, Participant, Refusal, StartVerdict};
///
/// let mut node = NodeSnapshot::new("b", Epoch::ZERO);
/// let mut part = Participant::new("b");
/// assert!(matches!(part.on_start(&mut node, &"a", Epoch(1)), StartVerdict::Follow { .. }));
/// // Another coordinator racing for the same epoch loses.
/// assert_eq!(
///     part.on_start(&mut node, &"c", Epoch(1)),
///     StartVerdict::Refuse(Refusal::FollowsOther { coordinator: "a", epoch: Epoch(1) })
/// );
/// assert!(part.follows(Epoch(1), &"a") && !part.follows(Epoch(1), &"c"));
/// ```
#[derive(Debug, Clone)]
pub struct Participant<N> {
    me: N,
    /// The coordinator this node follows for an epoch, once its `Start` was accepted.
    leader: Option<(Epoch, N)>,
    /// A report made before the leader was known (the snapshot reached this node through a
    /// message tagged with its epoch, ahead of the coordinator's `Start`).
    held: Option<NodeReport<N>>,
    /// Restores whose actors are registered but not started: while any is, the node takes
    /// part in no snapshot (it would miss them).
    pending_restores: usize,
}

/// What to do with a coordinator's `Start`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a refused start must be answered, a followed one may release a held report"]
pub enum StartVerdict<N> {
    /// Followed: the node started the snapshot ([`NodeSnapshot::handle_command`] was called).
    /// A report the node made before knowing its coordinator goes to it now.
    Follow {
        /// The held report, for the coordinator just followed.
        held: Option<NodeReport<N>>,
    },
    /// A repeated `Start` from the coordinator already followed: nothing to do.
    Repeated,
    /// Refused: tell the coordinator why (its snapshot aborts).
    Refuse(Refusal<N>),
    /// Refused because a restore is pending here: tell the coordinator.
    RestorePending,
}

impl<N: Clone + Ord> Participant<N> {
    /// Node `me`, following no coordinator.
    pub fn new(me: N) -> Participant<N> {
        Participant { me, leader: None, held: None, pending_restores: 0 }
    }

    /// This node's identity.
    pub fn me(&self) -> &N {
        &self.me
    }

    /// A restore registers actors that have not started yet: until
    /// [`restore_started`](Self::restore_started), every `Start` is refused.
    pub fn restore_began(&mut self) {
        self.pending_restores += 1;
    }

    /// A pending restore's actors all started.
    pub fn restore_started(&mut self) {
        self.pending_restores = self.pending_restores.saturating_sub(1);
    }

    /// Whether a restore is pending here.
    pub fn restore_pending(&self) -> bool {
        self.pending_restores > 0
    }

    /// Coordinator `from` starts snapshot `epoch`. The rules, with `target` the latest epoch
    /// the node knows of:
    ///
    /// - a pending restore refuses every snapshot;
    /// - `epoch < target`: refused, the node has seen a later one;
    /// - `epoch == target`, running, followed from `from`: a repeat; followed from another
    ///   coordinator: refused (two coordinators raced for one epoch; one must lose); not
    ///   followed yet (the node started it from a tagged message): followed; finished:
    ///   refused;
    /// - `epoch > target`: refused while the node takes another coordinator's snapshot,
    ///   else followed.
    pub fn on_start(
        &mut self,
        node: &mut NodeSnapshot<N>,
        from: &N,
        epoch: Epoch,
    ) -> StartVerdict<N> {
        if self.restore_pending() {
            return StartVerdict::RestorePending;
        }
        let target = node.epoch();
        let running = node.running();
        let leader = self.leader.as_ref().filter(|(e, _)| *e == target).map(|(_, l)| l);
        let refusal = if epoch < target {
            Some(Refusal::AlreadySeen { epoch: target })
        } else if epoch == target {
            match (running, leader) {
                (Some(_), Some(l)) if l == from => return StartVerdict::Repeated,
                (Some(_), Some(l)) => {
                    Some(Refusal::FollowsOther { coordinator: l.clone(), epoch: target })
                }
                (Some(_), None) => None,
                (None, _) => Some(Refusal::Finished { epoch: target }),
            }
        } else {
            match (running, leader) {
                (Some(_), Some(l)) if l != from => {
                    Some(Refusal::TakingOther { coordinator: l.clone(), epoch: target })
                }
                _ => None,
            }
        };
        if let Some(refusal) = refusal {
            return StartVerdict::Refuse(refusal);
        }
        self.leader = Some((epoch, from.clone()));
        node.handle_command(NodeCommand::Start(epoch));
        StartVerdict::Follow { held: self.held.take().filter(|r| r.epoch == epoch) }
    }

    /// Where a report of the node goes: `Some((coordinator, report))` for the coordinator
    /// it follows for the report's epoch, or `None` if that is not known yet (the report is
    /// held, the latest one only, until [`on_start`](Self::on_start) follows one).
    #[must_use = "a routed report must be delivered"]
    pub fn route(&mut self, report: NodeReport<N>) -> Option<(N, NodeReport<N>)> {
        match &self.leader {
            Some((epoch, leader)) if *epoch == report.epoch => Some((leader.clone(), report)),
            _ => {
                self.held = Some(report);
                None
            }
        }
    }

    /// Whether a command about `epoch` from `from` comes from the coordinator this node
    /// follows for it. Commands from any other node are ignored.
    pub fn follows(&self, epoch: Epoch, from: &N) -> bool {
        self.leader.as_ref().is_some_and(|(e, l)| *e == epoch && l == from)
    }

    /// The coordinator followed for `epoch`, if known.
    pub fn leader_of(&self, epoch: Epoch) -> Option<&N> {
        self.leader.as_ref().filter(|(e, _)| *e == epoch).map(|(_, l)| l)
    }

    /// The running snapshot of `node`, if this node follows a coordinator for it (one that
    /// reached the node only through a tagged message has no known coordinator, perhaps a
    /// gone one, and does not block a new snapshot).
    pub fn followed(&self, node: &NodeSnapshot<N>) -> Option<Epoch> {
        node.running().filter(|e| self.leader_of(*e).is_some())
    }

    /// Node `down` is down: if it coordinates the snapshot `node` runs, that snapshot is
    /// aborted here ([`NodeCommand::Abort`]) and its epoch returned, for the caller to drop
    /// what it captured ([`discard`](Self::discard) included).
    pub fn coordinator_down(&mut self, node: &mut NodeSnapshot<N>, down: &N) -> Option<Epoch> {
        let epoch = node.running().filter(|e| self.leader_of(*e) == Some(down))?;
        let reason = crate::AbortReason::NodeDown(down.clone());
        node.handle_command(NodeCommand::Abort { epoch, reason });
        Some(epoch)
    }

    /// Snapshot `epoch` was aborted here: a held report for it (or an earlier one) is
    /// dropped.
    pub fn discard(&mut self, epoch: Epoch) {
        if self.held.as_ref().is_some_and(|r| r.epoch <= epoch) {
            self.held = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeAction;

    fn report(epoch: u64) -> NodeReport<&'static str> {
        NodeReport {
            node: "b",
            epoch: Epoch(epoch),
            locally_done: true,
            shallowest: None,
            crossed: false,
            sent_to: vec![],
            received_from: vec![],
        }
    }

    #[test]
    fn one_of_two_racing_coordinators_wins_and_repeats_are_harmless() {
        let mut node = NodeSnapshot::new("b", Epoch::ZERO);
        let mut p = Participant::new("b");
        assert_eq!(p.on_start(&mut node, &"a", Epoch(1)), StartVerdict::Follow { held: None });
        assert_eq!(p.on_start(&mut node, &"a", Epoch(1)), StartVerdict::Repeated);
        assert_eq!(
            p.on_start(&mut node, &"c", Epoch(1)),
            StartVerdict::Refuse(Refusal::FollowsOther { coordinator: "a", epoch: Epoch(1) })
        );
        assert_eq!(
            p.on_start(&mut node, &"c", Epoch(2)),
            StartVerdict::Refuse(Refusal::TakingOther { coordinator: "a", epoch: Epoch(1) })
        );
        assert_eq!(p.followed(&node), Some(Epoch(1)));
        node.handle_command(NodeCommand::Complete(Epoch(1)));
        assert_eq!(
            p.on_start(&mut node, &"c", Epoch(1)),
            StartVerdict::Refuse(Refusal::Finished { epoch: Epoch(1) })
        );
        assert_eq!(
            p.on_start(&mut node, &"c", Epoch(0)),
            StartVerdict::Refuse(Refusal::AlreadySeen { epoch: Epoch(1) })
        );
        assert_eq!(p.on_start(&mut node, &"c", Epoch(2)), StartVerdict::Follow { held: None });
        assert!(p.follows(Epoch(2), &"c") && !p.follows(Epoch(2), &"a"));
    }

    #[test]
    fn a_report_made_before_the_coordinator_is_known_waits_for_its_start() {
        let mut node = NodeSnapshot::new("b", Epoch::ZERO);
        let mut p = Participant::new("b");
        // A message tagged 1 started the snapshot here: the node is done at once.
        node.remote_received(&"a", Epoch(1));
        let Some(NodeAction::Report(r)) =
            std::iter::from_fn(|| node.poll()).find(|a| matches!(a, NodeAction::Report(_)))
        else {
            panic!("no report")
        };
        assert_eq!(p.route(r.clone()), None, "held: no coordinator known");
        assert_eq!(p.followed(&node), None, "a tagged start does not block a new snapshot");
        assert_eq!(p.on_start(&mut node, &"a", Epoch(1)), StartVerdict::Follow { held: Some(r) });
        assert_eq!(p.route(report(1)).map(|(to, _)| to), Some("a"));
    }

    #[test]
    fn a_pending_restore_refuses_and_a_lost_coordinator_aborts_its_snapshot() {
        let mut node = NodeSnapshot::new("b", Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        let mut p = Participant::new("b");
        p.restore_began();
        assert_eq!(p.on_start(&mut node, &"a", Epoch(1)), StartVerdict::RestorePending);
        p.restore_started();
        assert!(matches!(p.on_start(&mut node, &"a", Epoch(1)), StartVerdict::Follow { .. }));
        assert_eq!(p.coordinator_down(&mut node, &"c"), None, "not its coordinator");
        assert_eq!(p.route(report(1)).map(|(to, _)| to), Some("a"));
        assert_eq!(p.coordinator_down(&mut node, &"a"), Some(Epoch(1)));
        assert_eq!(node.running(), None, "aborted here");
        p.discard(Epoch(1));
    }
}
