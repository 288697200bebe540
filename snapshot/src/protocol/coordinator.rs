//! The global half of the protocol: one snapshot at a time, completion by counting.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::control::{AbortReason, NodeCommand, NodeReport, Refusal};
use crate::Epoch;

/// Decides when a snapshot is complete, for a set of nodes identified by `N`.
///
/// It lives on one node. It starts snapshots ([`start`](Self::start)), takes the nodes'
/// [`NodeReport`]s ([`handle_report`](Self::handle_report)), and learns of failures
/// ([`node_down`](Self::node_down)) and of time ([`handle_timeout`](Self::handle_timeout),
/// with "now" as a plain number in the caller's unit; there is no clock inside). After each
/// call the runtime drains [`poll`](Self::poll) for [`CoordinatorAction`]s.
///
/// Snapshot E is complete when every node reported itself locally done and, for every
/// ordered pair of nodes (A, B), A's count of messages tagged below E sent to B equals B's
/// count received from A. Once A is locally done its count is final; B's only grows. When
/// all nodes are locally done but some pair is short, the coordinator sends the receiver
/// the final numbers ([`NodeCommand::Expect`]) and the receiver reports once they have
/// arrived: per snapshot and node, one `Start`, at most one `Expect`, one final command and
/// at most two reports.
///
/// ```
/// use amber_snapshot::{Coordinator, CoordinatorAction, Epoch, NodeCommand};
///
/// let mut coordinator = Coordinator::<u32>::new(Epoch::ZERO);
/// let epoch = coordinator.start([1, 2], None).unwrap();
/// assert_eq!(epoch, Epoch(1));
/// assert_eq!(
///     coordinator.poll(),
///     Some(CoordinatorAction::Send { to: 1, command: NodeCommand::Start(epoch) })
/// );
/// assert!(coordinator.start([1, 2], None).is_err(), "one snapshot at a time");
/// ```
#[derive(Debug, Clone)]
pub struct Coordinator<N> {
    last: Epoch,
    completed: Epoch,
    round: Option<Round<N>>,
    /// A completed snapshot whose nodes' parts are still on their way.
    collecting: Option<Collecting<N>>,
    actions: VecDeque<CoordinatorAction<N>>,
}

/// The parts of a completed snapshot the coordinator still waits for.
#[derive(Debug, Clone)]
struct Collecting<N> {
    epoch: Epoch,
    deadline: Option<u64>,
    awaiting: BTreeSet<N>,
}

/// Something the [`Coordinator`] asks its runtime to do or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "coordinator actions must be carried out for the snapshot to progress"]
pub enum CoordinatorAction<N> {
    /// Deliver `command` to node `to` (over a FIFO control link).
    Send {
        /// The node.
        to: N,
        /// The command.
        command: NodeCommand<N>,
    },
    /// Snapshot `epoch` is complete: it is a consistent cut. Each node is also sent
    /// [`NodeCommand::Complete`], and answers with its part of the snapshot (what its actors
    /// captured), which the runtime files with [`part_received`](Coordinator::part_received).
    Completed(Epoch),
    /// Every node's part of completed snapshot `epoch` arrived: the checkpoint may be
    /// assembled and written. (Or [`Aborted`](Self::Aborted) with
    /// [`AbortReason::PartLost`], [`AbortReason::PartsLate`] or
    /// [`AbortReason::PartUnreadable`] if one does not.)
    PartsIn(Epoch),
    /// Snapshot `epoch` was aborted; the previous completed snapshot stays the valid one.
    /// (Each surviving node is also sent [`NodeCommand::Abort`], unless completion was
    /// decided already and a part failed to arrive: the nodes have completed it, only its
    /// checkpoint is lost.)
    Aborted {
        /// The snapshot.
        epoch: Epoch,
        /// Why.
        reason: AbortReason<N>,
    },
}

/// Why a snapshot could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Another snapshot is still running; one runs at a time.
    #[error("snapshot {running} is still in progress")]
    InProgress {
        /// The running snapshot.
        running: Epoch,
    },
    /// A snapshot needs at least one node.
    #[error("a snapshot needs at least one node")]
    NoNodes,
}

#[derive(Debug, Clone)]
struct Round<N> {
    epoch: Epoch,
    deadline: Option<u64>,
    /// The latest report of each node taking part.
    reports: BTreeMap<N, Option<NodeReport<N>>>,
    /// Nodes already sent an `Expect`.
    expecting: BTreeSet<N>,
    /// The deepest ask depth released to every node (see [`NodeCommand::Release`]).
    released: u8,
    /// Nodes whose part arrived before the decision (see [`NodeSnapshot::settled`]).
    ///
    /// [`NodeSnapshot::settled`]: crate::NodeSnapshot::settled
    parts_in: BTreeSet<N>,
}

impl<N: Clone + Ord> Coordinator<N> {
    /// A coordinator whose last snapshot (completed, or restored from) is `last`. The next
    /// snapshot is `last.next()`.
    pub fn new(last: Epoch) -> Coordinator<N> {
        Coordinator {
            last,
            completed: last,
            round: None,
            collecting: None,
            actions: VecDeque::new(),
        }
    }

    /// The snapshot in progress, if any: before its completion is decided, or after while
    /// its parts are on their way.
    pub fn running(&self) -> Option<Epoch> {
        self.round.as_ref().map(|r| r.epoch).or(self.collecting.as_ref().map(|c| c.epoch))
    }

    /// Whether the coordinator waits for `node`'s part of completed snapshot `epoch`.
    pub fn awaits_part(&self, epoch: Epoch, node: &N) -> bool {
        self.collecting.as_ref().is_some_and(|c| c.epoch == epoch && c.awaiting.contains(node))
    }

    /// Whether the coordinator takes in `node`'s part of snapshot `epoch` (or pieces of it):
    /// before the decision, from a node taking part whose part has not arrived (a settled
    /// node sends it then, see [`NodeSnapshot::settled`]); after it, while the part is
    /// awaited.
    ///
    /// [`NodeSnapshot::settled`]: crate::NodeSnapshot::settled
    pub fn takes_part(&self, epoch: Epoch, node: &N) -> bool {
        self.awaits_part(epoch, node)
            || self.round.as_ref().is_some_and(|r| {
                r.epoch == epoch && r.reports.contains_key(node) && !r.parts_in.contains(node)
            })
    }

    /// The latest completed snapshot (or the one the coordinator was created with), whether
    /// or not its parts all arrived.
    pub fn last_completed(&self) -> Epoch {
        self.completed
    }

    /// The latest snapshot started, completed or not.
    pub fn last_started(&self) -> Epoch {
        self.last
    }

    /// Starts the next snapshot across `nodes` (all nodes of the system), to be aborted if
    /// it has not completed when [`handle_timeout`](Self::handle_timeout) is called with a
    /// `now >= deadline`. Returns its epoch; the `Start` commands are in [`poll`](Self::poll).
    pub fn start(
        &mut self,
        nodes: impl IntoIterator<Item = N>,
        deadline: Option<u64>,
    ) -> Result<Epoch, StartError> {
        if let Some(running) = self.running() {
            return Err(StartError::InProgress { running });
        }
        let reports: BTreeMap<N, Option<NodeReport<N>>> =
            nodes.into_iter().map(|n| (n, None)).collect();
        if reports.is_empty() {
            return Err(StartError::NoNodes);
        }
        let epoch = self.last.next();
        self.last = epoch;
        for node in reports.keys() {
            let command = NodeCommand::Start(epoch);
            self.actions.push_back(CoordinatorAction::Send { to: node.clone(), command });
        }
        self.round = Some(Round {
            epoch,
            deadline,
            reports,
            expecting: BTreeSet::new(),
            released: 0,
            parts_in: BTreeSet::new(),
        });
        Ok(epoch)
    }

    /// Raises the last started epoch to `epoch` if it is higher, so that the next snapshot
    /// is numbered above every epoch this node has seen (another node's coordinator may have
    /// run snapshots since). No effect while a snapshot runs.
    pub fn skip_to(&mut self, epoch: Epoch) {
        if self.running().is_none() && epoch > self.last {
            self.last = epoch;
        }
    }

    /// A node's report arrived. Reports for another epoch or from a node outside the
    /// snapshot are ignored. A report counting messages exchanged with a node outside the
    /// snapshot aborts it ([`AbortReason::Outsider`]): those messages could be neither
    /// counted nor recorded.
    pub fn handle_report(&mut self, report: NodeReport<N>) {
        let Some(round) = &mut self.round else { return };
        if report.epoch != round.epoch {
            return;
        }
        if !round.reports.contains_key(&report.node) {
            return;
        }
        let outsider = report
            .sent_to
            .iter()
            .chain(&report.received_from)
            .find(|(peer, _)| !round.reports.contains_key(peer))
            .map(|(peer, _)| peer.clone());
        if let Some(peer) = outsider {
            return self.abort(AbortReason::Outsider { node: report.node, peer });
        }
        if let Some(slot) = round.reports.get_mut(&report.node) {
            *slot = Some(report);
        }
        self.release();
        self.evaluate();
    }

    /// The ask rule across nodes: a depth is released once no node has an actor shallower
    /// than it behind the snapshot (a node that has not reported counts as depth 0). Nodes
    /// that are locally done have no deferring actor and do not hold the release back. Once
    /// a node reports that something waited across a cut, every depth is released.
    fn release(&mut self) {
        let Some(round) = &mut self.round else { return };
        let crossed = round.reports.values().flatten().any(|r| r.crossed);
        let depth = round
            .reports
            .values()
            .filter_map(|r| match r {
                None => Some(0),
                Some(r) if r.locally_done => None,
                Some(r) => Some(r.shallowest.unwrap_or(0)),
            })
            .min()
            // Something waited across a cut: deferring protects nothing any more.
            .map(|d| if crossed { crate::MAX_DEPTH } else { d });
        // Every node locally done: nobody defers; completion follows.
        let Some(depth) = depth else { return };
        if depth > round.released {
            round.released = depth;
            let epoch = round.epoch;
            for node in round.reports.keys() {
                let command = NodeCommand::Release { epoch, depth };
                self.actions.push_back(CoordinatorAction::Send { to: node.clone(), command });
            }
        }
    }

    /// `node` refused to take part in snapshot `epoch`: if it is the running one, it aborts
    /// ([`AbortReason::Rejected`]).
    pub fn reject(&mut self, node: N, epoch: Epoch, reason: Refusal<N>) {
        if self.running() == Some(epoch)
            && self.round.as_ref().is_some_and(|r| r.reports.contains_key(&node))
        {
            self.abort(AbortReason::Rejected { node, reason });
        }
    }

    /// `node` holds a restore whose actors have not started and refuses snapshot `epoch`:
    /// if it is the running one, it aborts ([`AbortReason::RestorePending`]).
    pub fn restore_pending(&mut self, node: N, epoch: Epoch) {
        if self.running() == Some(epoch)
            && self.round.as_ref().is_some_and(|r| r.reports.contains_key(&node))
        {
            self.abort(AbortReason::RestorePending(node));
        }
    }

    /// `node` is down: a snapshot it takes part in aborts, and so does a completed one whose
    /// part from `node` has not arrived ([`AbortReason::PartLost`]).
    pub fn node_down(&mut self, node: &N) {
        if self.round.as_ref().is_some_and(|r| r.reports.contains_key(node)) {
            self.abort(AbortReason::NodeDown(node.clone()));
        }
        if self.collecting.as_ref().is_some_and(|c| c.awaiting.contains(node)) {
            self.abandon(AbortReason::PartLost(node.clone()));
        }
    }

    /// `node`'s part of snapshot `epoch` arrived and reads: once every node's has, and the
    /// snapshot is complete, [`CoordinatorAction::PartsIn`]. A part may arrive before the
    /// decision (from a settled node, see [`NodeSnapshot::settled`]): it counts once the
    /// snapshot completes, and is dropped if it aborts. Parts of another snapshot, or
    /// repeated, are ignored.
    ///
    /// [`NodeSnapshot::settled`]: crate::NodeSnapshot::settled
    pub fn part_received(&mut self, node: &N, epoch: Epoch) {
        if let Some(r) = self.round.as_mut().filter(|r| r.epoch == epoch) {
            if r.reports.contains_key(node) {
                r.parts_in.insert(node.clone());
            }
            return;
        }
        let Some(c) = self.collecting.as_mut().filter(|c| c.epoch == epoch) else { return };
        c.awaiting.remove(node);
        if c.awaiting.is_empty() {
            self.collecting = None;
            self.actions.push_back(CoordinatorAction::PartsIn(epoch));
        }
    }

    /// `node`'s part of snapshot `epoch` arrived but does not read (before or after the
    /// decision): the snapshot aborts ([`AbortReason::PartUnreadable`]).
    pub fn part_unreadable(&mut self, node: &N, epoch: Epoch) {
        if self.awaits_part(epoch, node) {
            self.abandon(AbortReason::PartUnreadable(node.clone()));
        } else if self.takes_part(epoch, node) {
            // Sent before the decision, by a settled node.
            self.abort(AbortReason::PartUnreadable(node.clone()));
        }
    }

    /// The time is now `now` (any monotonic unit, the same as the deadline's): a running
    /// snapshot whose deadline has passed aborts, before completion
    /// ([`AbortReason::Deadline`]) or after it, while parts are missing
    /// ([`AbortReason::PartsLate`]).
    pub fn handle_timeout(&mut self, now: u64) {
        if self.round.as_ref().and_then(|r| r.deadline).is_some_and(|d| now >= d) {
            self.abort(AbortReason::Deadline);
        }
        if self.collecting.as_ref().and_then(|c| c.deadline).is_some_and(|d| now >= d) {
            self.abandon(AbortReason::PartsLate);
        }
    }

    /// When the caller should call [`handle_timeout`](Self::handle_timeout) next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.round
            .as_ref()
            .and_then(|r| r.deadline)
            .or(self.collecting.as_ref().and_then(|c| c.deadline))
    }

    /// Aborts the running snapshot, if any, with [`AbortReason::Cancelled`] (also one whose
    /// parts are still on their way).
    pub fn cancel(&mut self) {
        if self.round.is_some() {
            self.abort(AbortReason::Cancelled);
        }
        if self.collecting.is_some() {
            self.abandon(AbortReason::Cancelled);
        }
    }

    /// Gives up a completed snapshot whose parts did not all arrive. The nodes completed it
    /// (nothing to tell them); only its checkpoint is lost.
    fn abandon(&mut self, reason: AbortReason<N>) {
        if let Some(c) = self.collecting.take() {
            self.actions.push_back(CoordinatorAction::Aborted { epoch: c.epoch, reason });
        }
    }

    /// The next action for the runtime, if any.
    #[must_use = "coordinator actions must be carried out for the snapshot to progress"]
    pub fn poll(&mut self) -> Option<CoordinatorAction<N>> {
        self.actions.pop_front()
    }

    fn evaluate(&mut self) {
        let Some(round) = &mut self.round else { return };
        let mut done = BTreeMap::new();
        for (node, report) in &round.reports {
            match report {
                Some(r) if r.locally_done => {
                    let sent: BTreeMap<&N, u64> = r.sent_to.iter().map(|(p, n)| (p, *n)).collect();
                    let received: BTreeMap<&N, u64> =
                        r.received_from.iter().map(|(p, n)| (p, *n)).collect();
                    done.insert(node, (sent, received));
                }
                _ => return,
            }
        }
        // receiver -> (sender, final count sent), for receivers still missing messages
        let mut short: BTreeMap<&N, Vec<(N, u64)>> = BTreeMap::new();
        let mut mismatch = None;
        for (&to, (_, received)) in &done {
            let mut expect = Vec::new();
            let mut missing = false;
            for (&from, (sent, _)) in &done {
                if from == to {
                    continue;
                }
                let sent = sent.get(to).copied().unwrap_or(0);
                let received = received.get(from).copied().unwrap_or(0);
                if received > sent {
                    mismatch = Some(AbortReason::CountMismatch {
                        from: from.clone(),
                        to: to.clone(),
                        sent,
                        received,
                    });
                }
                missing |= received < sent;
                if sent > 0 {
                    expect.push((from.clone(), sent));
                }
            }
            if missing {
                short.insert(to, expect);
            }
        }
        if let Some(reason) = mismatch {
            return self.abort(reason);
        }
        if short.is_empty() {
            let epoch = round.epoch;
            for node in round.reports.keys() {
                let command = NodeCommand::Complete(epoch);
                self.actions.push_back(CoordinatorAction::Send { to: node.clone(), command });
            }
            self.actions.push_back(CoordinatorAction::Completed(epoch));
            self.completed = epoch;
            let awaiting: BTreeSet<N> =
                round.reports.keys().filter(|n| !round.parts_in.contains(*n)).cloned().collect();
            if awaiting.is_empty() {
                self.actions.push_back(CoordinatorAction::PartsIn(epoch));
            } else {
                self.collecting = Some(Collecting { epoch, deadline: round.deadline, awaiting });
            }
            self.round = None;
            return;
        }
        let epoch = round.epoch;
        for (to, from) in short {
            if round.expecting.insert(to.clone()) {
                let command = NodeCommand::Expect { epoch, from };
                self.actions.push_back(CoordinatorAction::Send { to: to.clone(), command });
            }
        }
    }

    fn abort(&mut self, reason: AbortReason<N>) {
        let Some(round) = self.round.take() else { return };
        let down = match &reason {
            AbortReason::NodeDown(n) => Some(n),
            _ => None,
        };
        for node in round.reports.keys().filter(|n| Some(*n) != down) {
            let command = NodeCommand::Abort { epoch: round.epoch, reason: reason.clone() };
            self.actions.push_back(CoordinatorAction::Send { to: node.clone(), command });
        }
        self.actions.push_back(CoordinatorAction::Aborted { epoch: round.epoch, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut Coordinator<u8>) -> Vec<CoordinatorAction<u8>> {
        std::iter::from_fn(|| c.poll()).collect()
    }

    fn report(node: u8, sent: &[(u8, u64)], received: &[(u8, u64)]) -> NodeReport<u8> {
        NodeReport {
            node,
            epoch: Epoch(1),
            locally_done: true,
            shallowest: None,
            crossed: false,
            sent_to: sent.to_vec(),
            received_from: received.to_vec(),
        }
    }

    #[test]
    fn completes_when_every_node_is_done_and_every_pair_balances() {
        let mut c = Coordinator::new(Epoch::ZERO);
        assert_eq!(c.start([0, 1], None), Ok(Epoch(1)));
        assert_eq!(drain(&mut c).len(), 2);
        c.handle_report(report(0, &[(1, 3)], &[(1, 1)]));
        assert!(drain(&mut c).is_empty());
        c.handle_report(report(1, &[(0, 1)], &[(0, 2)]));
        assert_eq!(
            drain(&mut c),
            vec![CoordinatorAction::Send {
                to: 1,
                command: NodeCommand::Expect { epoch: Epoch(1), from: vec![(0, 3)] }
            }]
        );
        c.handle_report(report(1, &[(0, 1)], &[(0, 3)]));
        let actions = drain(&mut c);
        assert_eq!(actions.last(), Some(&CoordinatorAction::Completed(Epoch(1))));
        assert_eq!(c.last_completed(), Epoch(1));
        c.part_received(&0, Epoch(1));
        c.part_received(&1, Epoch(1));
        assert_eq!(drain(&mut c), vec![CoordinatorAction::PartsIn(Epoch(1))]);
        assert_eq!(c.start([0, 1], None), Ok(Epoch(2)));
    }

    #[test]
    fn a_part_that_arrives_before_the_decision_counts_once_the_snapshot_completes() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let epoch = c.start([0, 1], None).unwrap();
        let _ = drain(&mut c);
        assert!(c.takes_part(epoch, &1) && !c.awaits_part(epoch, &1), "before the decision");
        assert!(!c.takes_part(epoch, &7) && !c.takes_part(Epoch(2), &1), "not of it");
        c.handle_report(report(0, &[(1, 2)], &[]));
        c.handle_report(report(1, &[], &[(0, 1)]));
        assert!(matches!(&drain(&mut c)[..], [CoordinatorAction::Send { to: 1, .. }]), "Expect");
        // Node 1 settles (the second message arrives) and sends its part with its report.
        c.part_received(&1, epoch);
        assert!(!c.takes_part(epoch, &1), "in already");
        assert!(drain(&mut c).is_empty(), "nothing is decided by a part");
        c.handle_report(report(1, &[], &[(0, 2)]));
        let actions = drain(&mut c);
        assert_eq!(actions.last(), Some(&CoordinatorAction::Completed(epoch)));
        assert!(c.awaits_part(epoch, &0) && !c.awaits_part(epoch, &1), "only 0's is awaited");
        c.part_received(&0, epoch);
        assert_eq!(drain(&mut c), vec![CoordinatorAction::PartsIn(epoch)]);
        // Every part in before the decision: the parts are in with it.
        let epoch = c.start([0, 1], None).unwrap();
        let _ = drain(&mut c);
        c.part_received(&0, epoch);
        c.part_received(&1, epoch);
        c.handle_report(NodeReport { epoch, ..report(0, &[], &[]) });
        c.handle_report(NodeReport { epoch, ..report(1, &[], &[]) });
        let actions = drain(&mut c);
        assert_eq!(
            &actions[actions.len() - 2..],
            &[CoordinatorAction::Completed(epoch), CoordinatorAction::PartsIn(epoch)]
        );
        assert_eq!(c.running(), None);
    }

    #[test]
    fn a_part_in_before_an_abort_is_dropped_with_the_snapshot() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let epoch = c.start([0, 1], Some(10)).unwrap();
        let _ = drain(&mut c);
        c.part_received(&1, epoch);
        c.handle_timeout(10);
        assert!(matches!(drain(&mut c).last(), Some(CoordinatorAction::Aborted { .. })));
        let next = c.start([0, 1], None).unwrap();
        assert!(c.takes_part(next, &1), "the next snapshot takes its part afresh");
        // What a node sent before the decision not reading aborts the snapshot.
        let _ = drain(&mut c);
        c.part_unreadable(&1, next);
        let actions = drain(&mut c);
        assert_eq!(
            actions.last(),
            Some(&CoordinatorAction::Aborted {
                epoch: next,
                reason: AbortReason::PartUnreadable(1)
            })
        );
    }

    #[test]
    fn one_snapshot_at_a_time() {
        let mut c = Coordinator::new(Epoch(4));
        assert_eq!(c.start([0], None), Ok(Epoch(5)));
        assert_eq!(c.start([0], None), Err(StartError::InProgress { running: Epoch(5) }));
        assert_eq!(Coordinator::<u8>::new(Epoch(0)).start([], None), Err(StartError::NoNodes));
    }

    #[test]
    fn a_node_going_down_or_the_deadline_aborts() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let _ = c.start([0, 1, 2], Some(100)).unwrap();
        let _ = drain(&mut c);
        c.node_down(&1);
        let actions = drain(&mut c);
        assert_eq!(actions.len(), 3, "abort to the two live nodes, then the event");
        assert_eq!(
            actions[2],
            CoordinatorAction::Aborted { epoch: Epoch(1), reason: AbortReason::NodeDown(1) }
        );
        let epoch = c.start([0, 2], Some(100)).unwrap();
        assert_eq!(epoch, Epoch(2));
        let _ = drain(&mut c);
        c.handle_timeout(99);
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(100);
        assert_eq!(
            drain(&mut c).last(),
            Some(&CoordinatorAction::Aborted { epoch, reason: AbortReason::Deadline })
        );
        assert_eq!(c.last_completed(), Epoch::ZERO);
    }

    #[test]
    fn a_report_naming_a_node_outside_the_snapshot_aborts_it() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let _ = c.start([0, 1], None).unwrap();
        let _ = drain(&mut c);
        c.handle_report(report(1, &[(7, 2)], &[]));
        assert_eq!(
            drain(&mut c).last(),
            Some(&CoordinatorAction::Aborted {
                epoch: Epoch(1),
                reason: AbortReason::Outsider { node: 1, peer: 7 }
            })
        );
    }

    #[test]
    fn a_rejection_aborts_and_skip_to_numbers_past_foreign_epochs() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let _ = c.start([0, 1], None).unwrap();
        let _ = drain(&mut c);
        c.reject(1, Epoch(7), Refusal::AlreadySeen { epoch: Epoch(8) });
        assert!(drain(&mut c).is_empty(), "a rejection of another epoch is ignored");
        c.reject(1, Epoch(1), Refusal::TakingOther { coordinator: 2, epoch: Epoch(1) });
        let actions = drain(&mut c);
        assert_eq!(actions.len(), 3, "abort to both nodes, then the event");
        let Some(CoordinatorAction::Aborted { reason, .. }) = actions.last() else {
            panic!("not an abort: {actions:?}");
        };
        let refusal = Refusal::TakingOther { coordinator: 2, epoch: Epoch(1) };
        assert_eq!(*reason, AbortReason::Rejected { node: 1, reason: refusal });
        assert_eq!(
            reason.to_string(),
            format!("node 1 refused: it is taking snapshot {} for 2", Epoch(1))
        );
        c.skip_to(Epoch(9));
        c.skip_to(Epoch(3));
        assert_eq!(c.start([0], None), Ok(Epoch(10)));
    }

    #[test]
    fn a_node_with_a_pending_restore_aborts_the_snapshot_naming_itself() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let _ = c.start([0, 1], None).unwrap();
        let _ = drain(&mut c);
        c.restore_pending(1, Epoch(4));
        assert!(drain(&mut c).is_empty(), "another epoch's refusal is ignored");
        c.restore_pending(1, Epoch(1));
        let actions = drain(&mut c);
        assert_eq!(
            actions.last(),
            Some(&CoordinatorAction::Aborted {
                epoch: Epoch(1),
                reason: AbortReason::RestorePending(1)
            })
        );
    }

    #[test]
    fn more_received_than_sent_aborts() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let _ = c.start([0, 1], None).unwrap();
        c.handle_report(report(0, &[], &[]));
        c.handle_report(report(1, &[], &[(0, 1)]));
        assert!(matches!(
            drain(&mut c).last(),
            Some(CoordinatorAction::Aborted { reason: AbortReason::CountMismatch { .. }, .. })
        ));
    }

    #[test]
    fn a_depth_is_released_once_no_node_has_a_shallower_actor_behind() {
        use crate::MAX_DEPTH;
        let mut c = Coordinator::<u8>::new(Epoch::ZERO);
        let epoch = c.start([1, 2], None).unwrap();
        while c.poll().is_some() {}
        let report = |node, shallowest: Option<u8>| NodeReport {
            node,
            epoch,
            locally_done: shallowest.is_none(),
            shallowest,
            crossed: false,
            sent_to: vec![],
            received_from: vec![],
        };
        let releases = |c: &mut Coordinator<u8>| -> Vec<(u8, u8)> {
            std::iter::from_fn(|| c.poll())
                .filter_map(|a| match a {
                    CoordinatorAction::Send { to, command: NodeCommand::Release { depth, .. } } => {
                        Some((to, depth))
                    }
                    _ => None,
                })
                .collect()
        };
        c.handle_report(report(1, Some(2)));
        assert!(releases(&mut c).is_empty(), "node 2 has not reported: it may be at depth 0");
        c.handle_report(report(2, Some(1)));
        assert_eq!(releases(&mut c), vec![(1, 1), (2, 1)]);
        c.handle_report(report(2, None));
        assert_eq!(releases(&mut c), vec![(1, 2), (2, 2)], "a done node holds nothing back");
        c.handle_report(NodeReport { crossed: true, ..report(2, None) });
        assert_eq!(
            releases(&mut c),
            vec![(1, MAX_DEPTH), (2, MAX_DEPTH)],
            "a wait across a cut anywhere releases everything everywhere"
        );
    }

    /// Drives a one-node snapshot of `nodes` to completion (every node locally done, no
    /// messages), draining the actions.
    fn complete(c: &mut Coordinator<u32>, nodes: &[u32], deadline: Option<u64>) -> Epoch {
        let epoch = c.start(nodes.iter().copied(), deadline).unwrap();
        for &node in nodes {
            c.handle_report(NodeReport {
                node,
                epoch,
                locally_done: true,
                shallowest: None,
                crossed: false,
                sent_to: vec![],
                received_from: vec![],
            });
        }
        let actions: Vec<_> = std::iter::from_fn(|| c.poll()).collect();
        assert!(actions.contains(&CoordinatorAction::Completed(epoch)));
        epoch
    }

    #[test]
    fn a_completed_snapshot_waits_for_every_part_and_runs_until_then() {
        let mut c = Coordinator::new(Epoch::ZERO);
        let epoch = complete(&mut c, &[1, 2], None);
        assert_eq!(c.running(), Some(epoch), "parts still on their way");
        assert!(c.start([1, 2], None).is_err(), "one snapshot at a time, parts included");
        assert!(c.awaits_part(epoch, &1) && c.awaits_part(epoch, &2));
        c.part_received(&1, epoch);
        c.part_received(&1, epoch);
        c.part_received(&3, epoch);
        assert_eq!(c.poll(), None, "part 2 is missing");
        c.part_received(&2, epoch);
        assert_eq!(c.poll(), Some(CoordinatorAction::PartsIn(epoch)));
        assert_eq!(c.running(), None);
    }

    #[test]
    fn a_part_lost_late_or_unreadable_aborts_without_commands() {
        for how in 0..4 {
            let mut c = Coordinator::new(Epoch::ZERO);
            let epoch = complete(&mut c, &[1, 2], Some(100));
            c.part_received(&1, epoch);
            let reason = match how {
                0 => {
                    c.node_down(&1);
                    assert_eq!(c.poll(), None, "1's part is in");
                    c.node_down(&2);
                    AbortReason::PartLost(2)
                }
                1 => {
                    c.handle_timeout(99);
                    assert_eq!(c.poll(), None);
                    c.handle_timeout(100);
                    AbortReason::PartsLate
                }
                2 => {
                    c.part_unreadable(&1, epoch);
                    assert_eq!(c.poll(), None, "1's part was read already");
                    c.part_unreadable(&2, epoch);
                    AbortReason::PartUnreadable(2)
                }
                _ => {
                    c.cancel();
                    AbortReason::Cancelled
                }
            };
            assert_eq!(c.poll(), Some(CoordinatorAction::Aborted { epoch, reason }));
            assert_eq!(c.poll(), None, "the nodes completed it: nothing to tell them");
            assert_eq!(c.running(), None);
            assert_eq!(c.last_completed(), epoch);
        }
    }
}
