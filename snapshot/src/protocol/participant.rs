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
/// | a coordinator's command arrives (or this node's own coordinator's) | [`on_command`](Self::on_command) |
/// | the node made a report ([`NodeAction::Report`](crate::NodeAction::Report)) | [`route`](Self::route) |
/// | the node's target moved: which captured rounds to keep | [`keeps`](Self::keeps) |
/// | a node is down | [`coordinator_down`](Self::coordinator_down) |
/// | a snapshot was aborted here by the runtime | [`discard`](Self::discard) |
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
    /// The coordinators this node follows, per epoch, whose `Complete` or `Abort` has not
    /// arrived: the running snapshot's, and those of snapshots a later one overtook here
    /// (the node completed them locally, then learnt of the next one through a tagged
    /// message, which travels on another link than the coordinator's `Complete`): their
    /// parts are still owed. In epoch order.
    followed: Vec<(Epoch, N)>,
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

/// What to do after a coordinator's command ([`Participant::on_command`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a completed snapshot's part is owed to its coordinator"]
pub enum CommandVerdict<N> {
    /// A `Start`: see [`StartVerdict`].
    Start(StartVerdict<N>),
    /// From a coordinator this node does not follow for that epoch: ignored.
    Ignored,
    /// Obeyed (handed to the node machine); nothing else to do.
    Obeyed,
    /// Snapshot `epoch` is complete: send this node's part of it (what its actors captured
    /// for `epoch`, kept while [`keeps`](Participant::keeps) said so) to coordinator `to`.
    SendPart {
        /// The completed snapshot.
        epoch: Epoch,
        /// Its coordinator.
        to: N,
    },
    /// Snapshot `epoch` was aborted: drop what was captured for it.
    Discard(Epoch),
}

impl<N: Clone + Ord> Participant<N> {
    /// Node `me`, following no coordinator.
    pub fn new(me: N) -> Participant<N> {
        Participant { me, followed: Vec::new(), held: None, pending_restores: 0 }
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

    /// A command from coordinator `from` arrived (this node's own coordinator included).
    ///
    /// A `Start` is decided by [`on_start`](Self::on_start). Any other command is obeyed
    /// only if it comes from the coordinator this node follows for its epoch (the running
    /// snapshot's, or one a later snapshot overtook here); a `Complete` then says where the
    /// node's part goes, an `Abort` what to drop.
    pub fn on_command(
        &mut self,
        node: &mut NodeSnapshot<N>,
        from: &N,
        command: NodeCommand<N>,
    ) -> CommandVerdict<N> {
        let epoch = match &command {
            NodeCommand::Start(epoch) => {
                return CommandVerdict::Start(self.on_start(node, from, *epoch));
            }
            NodeCommand::Expect { epoch, .. }
            | NodeCommand::Abort { epoch, .. }
            | NodeCommand::Release { epoch, .. }
            | NodeCommand::Complete(epoch) => *epoch,
        };
        if !self.follows(epoch, from) {
            return CommandVerdict::Ignored;
        }
        let ends = matches!(command, NodeCommand::Complete(_) | NodeCommand::Abort { .. });
        let complete = matches!(command, NodeCommand::Complete(_));
        node.handle_command(command);
        if !ends {
            return CommandVerdict::Obeyed;
        }
        self.followed.retain(|(e, l)| !(*e == epoch && l == from));
        if complete {
            CommandVerdict::SendPart { epoch, to: from.clone() }
        } else {
            self.discard(epoch);
            CommandVerdict::Discard(epoch)
        }
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
        let leader = self.leader_of(target);
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
        // A coordinator ends its snapshot (Complete or Abort, on the same FIFO link) before
        // it starts another: an earlier snapshot of `from` owes it nothing any more.
        self.followed.retain(|(e, l)| l != from || *e > epoch);
        self.followed.push((epoch, from.clone()));
        self.followed.sort_by_key(|(e, _)| *e);
        node.handle_command(NodeCommand::Start(epoch));
        StartVerdict::Follow { held: self.held.take().filter(|r| r.epoch == epoch) }
    }

    /// Where a report of the node goes: `Some((coordinator, report))` for the coordinator
    /// it follows for the report's epoch, or `None` if that is not known yet (the report is
    /// held, the latest one only, until [`on_start`](Self::on_start) follows one).
    #[must_use = "a routed report must be delivered"]
    pub fn route(&mut self, report: NodeReport<N>) -> Option<(N, NodeReport<N>)> {
        match self.leader_of(report.epoch) {
            Some(leader) => Some((leader.clone(), report)),
            None => {
                self.held = Some(report);
                None
            }
        }
    }

    /// Whether a command about `epoch` from `from` comes from the coordinator this node
    /// follows for it. Commands from any other node are ignored.
    pub fn follows(&self, epoch: Epoch, from: &N) -> bool {
        self.followed.iter().any(|(e, l)| *e == epoch && l == from)
    }

    /// The coordinator followed for `epoch`, if known.
    pub fn leader_of(&self, epoch: Epoch) -> Option<&N> {
        self.followed.iter().find(|(e, _)| *e == epoch).map(|(_, l)| l)
    }

    /// The running snapshot of `node`, if this node follows a coordinator for it (one that
    /// reached the node only through a tagged message has no known coordinator, perhaps a
    /// gone one, and does not block a new snapshot).
    pub fn followed(&self, node: &NodeSnapshot<N>) -> Option<Epoch> {
        node.running().filter(|e| self.leader_of(*e).is_some())
    }

    /// Whether what this node's actors captured for `epoch` must still be kept: the node
    /// runs that snapshot, or owes its part to the coordinator it follows for it (a later
    /// snapshot overtook it here before its `Complete`). Anything else (aborted, completed
    /// and sent, overtaken before any coordinator was known, or its coordinator is gone)
    /// can be dropped.
    pub fn keeps(&self, node: &NodeSnapshot<N>, epoch: Epoch) -> bool {
        node.running() == Some(epoch) || self.leader_of(epoch).is_some()
    }

    /// Node `down` is down: if it coordinates the snapshot `node` runs, that snapshot is
    /// aborted here ([`NodeCommand::Abort`]) and its epoch returned; parts owed to it are no
    /// longer owed. (What was captured for them is no longer [`kept`](Self::keeps).)
    pub fn coordinator_down(&mut self, node: &mut NodeSnapshot<N>, down: &N) -> Option<Epoch> {
        let running = node.running().filter(|e| self.leader_of(*e) == Some(down));
        self.followed.retain(|(_, l)| l != down);
        let epoch = running?;
        let reason = crate::AbortReason::NodeDown(down.clone());
        node.handle_command(NodeCommand::Abort { epoch, reason });
        self.discard(epoch);
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

    #[test]
    fn a_part_overtaken_by_a_later_snapshot_is_still_owed_to_its_coordinator() {
        let mut node = NodeSnapshot::new("b", Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        let mut p = Participant::new("b");
        assert!(matches!(
            p.on_command(&mut node, &"a", NodeCommand::Start(Epoch(1))),
            CommandVerdict::Start(StartVerdict::Follow { .. })
        ));
        node.actor_cut(crate::Cut { from: Epoch::ZERO, to: Epoch(1), depth: 0 });
        // A message tagged 2 (coordinator c's next snapshot) overtakes a's Complete(1).
        node.remote_received(&"c", Epoch(2));
        assert_eq!(node.running(), Some(Epoch(2)));
        assert!(p.keeps(&node, Epoch(1)), "the part of 1 is still owed to a");
        assert!(p.keeps(&node, Epoch(2)), "2 runs here");
        assert!(matches!(
            p.on_command(&mut node, &"c", NodeCommand::Start(Epoch(2))),
            CommandVerdict::Start(StartVerdict::Follow { .. })
        ));
        // Only a may complete 1; c's commands about 1 are ignored.
        assert_eq!(
            p.on_command(&mut node, &"c", NodeCommand::Complete(Epoch(1))),
            CommandVerdict::Ignored
        );
        assert_eq!(
            p.on_command(&mut node, &"a", NodeCommand::Complete(Epoch(1))),
            CommandVerdict::SendPart { epoch: Epoch(1), to: "a" }
        );
        assert!(!p.keeps(&node, Epoch(1)), "sent: nothing more to keep");
        assert_eq!(node.running(), Some(Epoch(2)), "a stale Complete does not end 2");
        let abort = NodeCommand::Abort { epoch: Epoch(2), reason: crate::AbortReason::Deadline };
        assert_eq!(p.on_command(&mut node, &"c", abort), CommandVerdict::Discard(Epoch(2)));
        assert_eq!(node.running(), None);
        assert!(!p.keeps(&node, Epoch(2)));
    }

    #[test]
    fn a_lost_coordinator_is_owed_nothing_and_an_unknown_one_keeps_nothing() {
        let mut node = NodeSnapshot::new("b", Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        let mut p = Participant::new("b");
        let _ = p.on_start(&mut node, &"a", Epoch(1));
        node.actor_cut(crate::Cut { from: Epoch::ZERO, to: Epoch(1), depth: 0 });
        node.remote_received(&"c", Epoch(2));
        assert!(p.keeps(&node, Epoch(1)));
        assert_eq!(p.coordinator_down(&mut node, &"a"), None, "2 is not a's");
        assert!(!p.keeps(&node, Epoch(1)), "a is gone: its part is no longer owed");
        // 2 reached the node only through a tagged message; 3 overtakes it the same way.
        node.actor_cut(crate::Cut { from: Epoch(1), to: Epoch(2), depth: 0 });
        node.remote_received(&"d", Epoch(3));
        assert!(!p.keeps(&node, Epoch(2)), "no coordinator known for 2: nobody to owe it to");
        assert!(p.keeps(&node, Epoch(3)));
    }
}
