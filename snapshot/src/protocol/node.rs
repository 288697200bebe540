//! The per-node half of the protocol: which local actors still have to cut, and how many
//! epoch-tagged messages crossed each link.

use std::collections::{BTreeMap, VecDeque};

use super::control::{NodeCommand, NodeReport};
use super::cut::Cut;
use crate::Epoch;

/// One node's view of the snapshot protocol, generic over the node identity `N`.
///
/// The runtime keeps one per node, behind one lock, and feeds it every event that changes
/// which local actors are behind the snapshot or how many tagged messages crossed a link:
///
/// | event | call |
/// |---|---|
/// | a command from the coordinator arrives | [`handle_command`](Self::handle_command) |
/// | an actor is spawned (by an actor, from outside, by a restore) | [`actor_spawned`](Self::actor_spawned) |
/// | an actor took a [`Cut`] | [`actor_cut`](Self::actor_cut) |
/// | an actor stopped | [`actor_stopped`](Self::actor_stopped) |
/// | a tagged data message is handed to the link to a peer node | [`remote_sent`](Self::remote_sent) |
/// | a tagged data message arrives from a peer node (whatever its fate) | [`remote_received`](Self::remote_received) |
///
/// and, after each, drains [`poll`](Self::poll) for [`NodeAction`]s. Messages tagged on
/// arrival (outside senders, timers) and ask replies are not counted; local sends are not
/// counted either (they enqueue synchronously, so none is ever in transit).
///
/// # Counters: two slots per peer
///
/// The node's *target* is the latest snapshot epoch it knows of. Every count is split in two
/// slots, "tagged below the target" and "tagged exactly the target". When the target moves
/// on, the second slot is folded into the first: everything below the old target is below the
/// new one too, and later snapshots only ever ask "how many below E". Two slots suffice
/// because no tag can exceed the target: an actor reaches epoch E only through a cut for E,
/// a birth in E, or a restore into E, and the node hears of each before (or as) it happens.
///
/// A peer that started snapshot E first may send a message tagged E before this node has
/// received `Start(E)` (the data link and the coordinator's link are not ordered). Any tag or
/// epoch above the target is therefore handled explicitly, not ignored: the node starts
/// snapshot E on its own (Lai–Yang: a message of the new colour means the snapshot has
/// begun), marks its actors, and treats the coordinator's `Start(E)` as already done.
///
/// Without aborts, only tags E-1 and E cross links while snapshot E runs: every actor has cut
/// for E-1 (or stopped) before E starts, and E-1's completion proved that every message
/// tagged below E-1 had arrived. After an aborted snapshot, actors that never cut for it
/// keep older epochs and older tags may still be in transit; they all share the first slot,
/// which is exactly the "tagged below E" that completion compares.
///
/// # Local completion
///
/// The node is *locally done* for its target E when no live local actor has an epoch below
/// E. Actors spawned from outside during E are born in E and children inherit their
/// parent's epoch, so the set of actors behind E only shrinks once E has started: local
/// completion is stable, and from then on `sent_to` is final.
#[derive(Debug, Clone)]
pub struct NodeSnapshot<N> {
    me: N,
    target: Epoch,
    completed: Epoch,
    /// The latest snapshot that ended here while the node was [settled](Self::settled) in
    /// it: every local actor had cut for it, whatever its outcome (which the node may not
    /// learn: its coordinator can go down after taking the node's part).
    settled_end: Epoch,
    phase: Phase<N>,
    /// Live local actors with an epoch below `target`, per ask depth.
    behind: Levels,
    /// Live local actors with epoch `target`, per ask depth.
    current: Levels,
    /// The deepest depth released for `target` so far (see [`released`](Self::released)).
    released: u8,
    /// The shallowest depth still behind that this node last reported for `target`.
    reported_shallowest: u8,
    /// Something waited across the cut of `target` here (see [`ask_crossed`](Self::ask_crossed)).
    crossed: bool,
    peers: BTreeMap<N, Peer>,
    actions: VecDeque<NodeAction<N>>,
}

/// Something a [`NodeSnapshot`] asks its runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "node actions must be carried out for the snapshot to progress"]
pub enum NodeAction<N> {
    /// Put `Marker(epoch)` on the control lane of every live local actor whose epoch is
    /// below `epoch` (sending to all of them is harmless: [`ActorCut::on_marker`] ignores
    /// stale markers).
    ///
    /// [`ActorCut::on_marker`]: crate::ActorCut::on_marker
    Markers(Epoch),
    /// Send this report to the coordinator.
    Report(NodeReport<N>),
    /// Every actor of depth up to `depth` that defers its cut for `epoch` may cut now: no
    /// shallower actor is behind the snapshot any more (see
    /// [`ActorCut::on_marker_at`](crate::ActorCut::on_marker_at)). `depth` is
    /// [`MAX_DEPTH`](crate::MAX_DEPTH) once the snapshot ended (completed or aborted):
    /// every deferring actor cuts.
    Release {
        /// The snapshot.
        epoch: Epoch,
        /// The deepest depth that may cut.
        depth: u8,
    },
}

/// Counts of actors per ask depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Levels([u64; crate::protocol::cut::MAX_DEPTH as usize + 1]);

impl Levels {
    fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn add(&mut self, depth: u8) {
        self.0[usize::from(depth.min(crate::protocol::cut::MAX_DEPTH))] += 1;
    }

    fn remove(&mut self, depth: u8) {
        let slot = &mut self.0[usize::from(depth.min(crate::protocol::cut::MAX_DEPTH))];
        debug_assert!(*slot > 0, "an actor of depth {depth} left that was never counted");
        *slot = slot.saturating_sub(1);
    }

    /// The shallowest depth with an actor, if any.
    fn shallowest(&self) -> Option<u8> {
        self.0.iter().position(|&n| n > 0).map(|d| d as u8)
    }

    fn absorb(&mut self, other: &mut Levels) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter_mut()) {
            *a += std::mem::take(b);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase<N> {
    /// No snapshot is running on this node.
    Idle,
    /// Snapshot `target` is running.
    Running {
        /// The locally-done report has been queued.
        reported: bool,
        /// The coordinator's final per-peer send counts, until they have all arrived.
        expect: Option<Vec<(N, u64)>>,
        /// They all arrived, every local actor had cut: see [`NodeSnapshot::settled`].
        settled: bool,
    },
}

/// Counts split by tag relative to the target: below it, and equal to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slots {
    below: u64,
    at: u64,
}

impl Slots {
    fn add(&mut self, tag: Epoch, target: Epoch) {
        match tag.cmp(&target) {
            std::cmp::Ordering::Less => self.below += 1,
            std::cmp::Ordering::Equal => self.at += 1,
            std::cmp::Ordering::Greater => {
                unreachable!("tag {tag} above target {target}: the node advances first")
            }
        }
    }

    fn fold(&mut self) {
        self.below += std::mem::take(&mut self.at);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Peer {
    sent: Slots,
    received: Slots,
}

impl<N: Clone + Ord> NodeSnapshot<N> {
    /// The node `me`, idle, whose last completed snapshot is `epoch` (`Epoch::ZERO` for a
    /// fresh system, the restored snapshot's epoch after a restore).
    ///
    /// Every actor already living on the node must be reported with
    /// [`actor_spawned`](Self::actor_spawned).
    pub fn new(me: N, epoch: Epoch) -> NodeSnapshot<N> {
        NodeSnapshot {
            me,
            target: epoch,
            completed: epoch,
            settled_end: epoch,
            phase: Phase::Idle,
            behind: Levels::default(),
            current: Levels::default(),
            released: crate::protocol::cut::MAX_DEPTH,
            reported_shallowest: 0,
            crossed: false,
            peers: BTreeMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// This node's identity.
    pub fn me(&self) -> &N {
        &self.me
    }

    /// The latest snapshot epoch this node knows of (running, completed or aborted).
    pub fn epoch(&self) -> Epoch {
        self.target
    }

    /// The snapshot running on this node, if any.
    pub fn running(&self) -> Option<Epoch> {
        matches!(self.phase, Phase::Running { .. }).then_some(self.target)
    }

    /// The latest snapshot this node saw complete.
    pub fn completed(&self) -> Epoch {
        self.completed
    }

    /// The epoch for an actor spawned from outside the system (not by an actor): the
    /// running snapshot's epoch if one runs (the actor does not belong to it), else the last
    /// completed one, or the last that ended with the node settled in it, if later: every
    /// actor here had cut for that one, so an actor born since is past its cut too, whether
    /// it completed (a settled node's part may complete it after the node lost its
    /// coordinator) or not (then, like an actor that cut for an aborted snapshot).
    pub fn spawn_epoch(&self) -> Epoch {
        if self.running().is_some() { self.target } else { self.completed.max(self.settled_end) }
    }

    /// How many live local actors are still behind the target epoch.
    pub fn behind(&self) -> u64 {
        self.behind.total()
    }

    /// Whether the running snapshot is done on this node: no live local actor is behind it.
    pub fn is_locally_done(&self) -> bool {
        self.running().is_some() && self.behind() == 0
    }

    /// The deepest ask depth whose actors may cut for the running snapshot, as the
    /// coordinator released it ([`NodeCommand::Release`]): no actor shallower than that is
    /// behind on any node, so none can still ask one of that depth before its cut. The node
    /// reports the shallowest depth it still has behind whenever it grows (an interim
    /// [`NodeReport`] with `locally_done: false`). [`MAX_DEPTH`] when no snapshot runs, or
    /// once an ask crossed a cut ([`ask_crossed`](Self::ask_crossed)). Only ever grows while
    /// a snapshot runs.
    ///
    /// [`MAX_DEPTH`]: crate::MAX_DEPTH
    pub fn released(&self) -> u8 {
        if self.running().is_some() { self.released } else { crate::protocol::cut::MAX_DEPTH }
    }

    /// A command from the coordinator arrived. Stale commands (for an older epoch) are
    /// ignored.
    pub fn handle_command(&mut self, command: NodeCommand<N>) {
        match command {
            NodeCommand::Start(epoch) => self.observe(epoch),
            NodeCommand::Expect { epoch, from } => {
                if let (true, Phase::Running { expect, .. }) =
                    (epoch == self.target, &mut self.phase)
                {
                    *expect = Some(from);
                    self.check_expectation();
                }
            }
            NodeCommand::Release { epoch, depth } => {
                if epoch == self.target && self.running().is_some() && depth > self.released {
                    self.released = depth;
                    self.actions.push_back(NodeAction::Release { epoch, depth });
                }
            }
            NodeCommand::Complete(epoch) => {
                if epoch == self.target && self.running().is_some() {
                    self.completed = epoch;
                    self.end(epoch);
                } else if epoch < self.target {
                    // A snapshot a later one overtook here completed: actors spawned from
                    // outside once the later one ends (aborted, say) are born after it.
                    self.completed = self.completed.max(epoch);
                }
            }
            NodeCommand::Abort { epoch, .. } => {
                if epoch == self.target && self.running().is_some() {
                    self.end(epoch);
                }
            }
        }
    }

    /// An actor born in `epoch` joined this node. Returns the epoch of a marker the runtime
    /// must put on its control lane before it runs, if it belongs to the running snapshot
    /// and still has to cut (a child of a parent that has not cut yet: the node's marker
    /// broadcast may already have passed).
    ///
    /// Call this under the same lock as [`handle_command`](Self::handle_command), and make
    /// the actor visible to the marker broadcast before releasing it, so that the newborn
    /// either sees the new target here or is reached by the broadcast.
    #[must_use = "a returned marker must be delivered to the new actor"]
    pub fn actor_spawned(&mut self, epoch: Epoch) -> Option<Epoch> {
        self.observe(epoch);
        if epoch < self.target {
            self.behind.add(0);
            self.running()
        } else {
            self.current.add(0);
            None
        }
    }

    /// A live local actor in `epoch` became deeper (it served an ask, see
    /// [`ActorCut::on_ask`](crate::ActorCut::on_ask)).
    pub fn actor_deepened(&mut self, epoch: Epoch, from: u8, to: u8) {
        self.observe(epoch);
        self.remove(epoch, from);
        self.add(epoch, to);
        self.check_release();
    }

    /// The node saw a message tagged `epoch` that it does not count itself (one it relays
    /// for an actor that moved to another node): a later epoch starts that snapshot here.
    pub fn saw(&mut self, epoch: Epoch) {
        self.observe(epoch);
    }

    /// An ask from an actor that had not cut for `epoch` reached an actor that had: the
    /// asker will take in a reply from after the responder's cut, so the snapshot cannot be
    /// consistent (the runtime refuses it). Deferred cuts protect nothing any more and could
    /// keep actors waiting on each other (a responder that cut before it learnt it is
    /// asked by this asker, now awaiting a deferring actor): every depth is released.
    ///
    /// The node releases its own actors at once and reports the crossing, so that the
    /// coordinator releases every other node's too (a wait across nodes).
    pub fn ask_crossed(&mut self, epoch: Epoch) {
        let max = crate::protocol::cut::MAX_DEPTH;
        if self.running() != Some(epoch) || self.crossed {
            return;
        }
        self.crossed = true;
        if self.released < max {
            self.released = max;
            self.actions.push_back(NodeAction::Release { epoch, depth: max });
        }
        let report = self.report();
        self.actions.push_back(NodeAction::Report(report));
    }

    /// An actor took `cut`.
    pub fn actor_cut(&mut self, cut: Cut) {
        self.observe(cut.to);
        self.remove(cut.from, cut.depth);
        self.add(cut.to, cut.depth);
        self.check_release();
        self.check_done();
        // An actor that arrived behind (a migrant, after this node had reported) may have
        // been all the coordinator's expectation still waited for.
        self.check_expectation();
    }

    /// An actor whose epoch was `epoch` and ask depth `depth` stopped. If it had not cut
    /// for the running snapshot, it leaves the snapshot: it no longer needs to.
    pub fn actor_stopped(&mut self, epoch: Epoch, depth: u8) {
        self.observe(epoch);
        self.remove(epoch, depth);
        self.check_release();
        self.check_done();
        self.check_expectation();
    }

    /// A data message tagged `tag` (its sender's epoch) was handed to the link to `peer`.
    ///
    /// Count it only once the link has accepted it: a message counted but never delivered
    /// keeps the snapshot from completing (it then aborts at its deadline).
    pub fn remote_sent<Q>(&mut self, peer: &Q, tag: Epoch)
    where
        N: std::borrow::Borrow<Q>,
        Q: Ord + ToOwned<Owned = N> + ?Sized,
    {
        debug_assert!(self.me.borrow() != peer, "local sends are not counted");
        self.observe(tag);
        let target = self.target;
        self.peer(peer).sent.add(tag, target);
    }

    /// A data message tagged `tag` arrived from `peer`: enqueued, recorded as a dead letter,
    /// or dropped as a dead letter (receiver unknown, or stopped before its cut).
    ///
    /// Call it **after** the enqueue (and the recording [`ActorCut::recording`] asks for), and
    /// only then send the reports [`poll`](Self::poll) yields: this count can complete the
    /// snapshot, and by then the message must be in its receiver's recording. (If the receiver
    /// cuts because of this message before the count, [`actor_cut`](Self::actor_cut) has
    /// already told the node of the new epoch; the order does not matter for that.)
    ///
    /// [`ActorCut::recording`]: crate::ActorCut::recording
    pub fn remote_received<Q>(&mut self, peer: &Q, tag: Epoch)
    where
        N: std::borrow::Borrow<Q>,
        Q: Ord + ToOwned<Owned = N> + ?Sized,
    {
        debug_assert!(self.me.borrow() != peer, "local sends are not counted");
        self.observe(tag);
        let target = self.target;
        self.peer(peer).received.add(tag, target);
        self.check_expectation();
    }

    /// The link to `peer` went down. What it carried may be lost (delivery is at most once):
    /// a message counted as sent here may never arrive there, so this link's counts could
    /// never add up again. Both ends forget them and count the next link from zero (each
    /// end calls this when it sees the link down: on the receiving end after every message
    /// the old link delivered, on the sending end before any message goes on the next
    /// link, and only once every message the old link took has been counted by
    /// [`remote_sent`](Self::remote_sent)). Returns the snapshot running here, if any: it
    /// cannot complete any more, and the runtime refuses it to its coordinator
    /// ([`Refusal::LinkLost`](crate::Refusal::LinkLost)).
    #[must_use = "a snapshot running across a dropped link must be refused"]
    pub fn link_down<Q>(&mut self, peer: &Q) -> Option<Epoch>
    where
        N: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.peers.remove(peer);
        self.running()
    }

    /// The counters of `peer`, created on first use (its identity owned only then).
    fn peer<Q>(&mut self, peer: &Q) -> &mut Peer
    where
        N: std::borrow::Borrow<Q>,
        Q: Ord + ToOwned<Owned = N> + ?Sized,
    {
        if !self.peers.contains_key(peer) {
            self.peers.insert(peer.to_owned(), Peer::default());
        }
        self.peers.get_mut(peer).expect("just inserted")
    }

    /// This node's counters for its target epoch, as a report.
    pub fn report(&self) -> NodeReport<N> {
        let pick = |f: fn(&Peer) -> u64| -> Vec<(N, u64)> {
            self.peers
                .iter()
                .filter_map(|(peer, counts)| {
                    let n = f(counts);
                    (n > 0).then(|| (peer.clone(), n))
                })
                .collect()
        };
        NodeReport {
            node: self.me.clone(),
            epoch: self.target,
            locally_done: self.is_locally_done(),
            shallowest: self.behind.shallowest().filter(|_| self.running().is_some()),
            crossed: self.crossed,
            sent_to: pick(|p| p.sent.below),
            received_from: pick(|p| p.received.below),
        }
    }

    /// The running snapshot, if this node's share of it is *settled*: every local actor has
    /// cut for it, and every message tagged below it that the other nodes sent here has
    /// arrived (the numbers of the coordinator's [`NodeCommand::Expect`] were reached). From
    /// then on nothing more is captured here for it: no actor is left to cut, and nothing
    /// recorded after a cut can still come (what is recorded is a message sent before its
    /// sender's cut: from another node, all of those are in; from this node, every sender
    /// has cut). So the node's part is final before the snapshot's completion is decided,
    /// and may go to the coordinator at once ([`Coordinator::part_received`] takes it
    /// then). A node whose counts matched without an `Expect` learns nothing more until the
    /// `Complete`, and is never settled.
    ///
    /// [`Coordinator::part_received`]: crate::Coordinator::part_received
    pub fn settled(&self) -> Option<Epoch> {
        match self.phase {
            Phase::Running { settled: true, .. } if self.behind() == 0 => Some(self.target),
            _ => None,
        }
    }

    /// The next action for the runtime, if any.
    #[must_use = "node actions must be carried out for the snapshot to progress"]
    pub fn poll(&mut self) -> Option<NodeAction<N>> {
        self.actions.pop_front()
    }

    /// Moves the target up to `epoch` if it is ahead, starting that snapshot here.
    fn observe(&mut self, epoch: Epoch) {
        if epoch <= self.target {
            return;
        }
        // Actors deferring their cut for a snapshot this one overtakes defer for this one
        // now: the marker broadcast reaches them (they are behind it).
        self.target = epoch;
        let mut current = std::mem::take(&mut self.current);
        self.behind.absorb(&mut current);
        // Depth 0 is always released; the coordinator releases the rest.
        self.released = 0;
        self.reported_shallowest = 0;
        self.crossed = false;
        for peer in self.peers.values_mut() {
            peer.sent.fold();
            peer.received.fold();
        }
        self.phase = Phase::Running { reported: false, expect: None, settled: false };
        // Drop reports queued for an older epoch: the coordinator has moved on.
        self.actions.retain(|a| !matches!(a, NodeAction::Report(_)));
        if self.behind() > 0 {
            self.actions.push_back(NodeAction::Markers(epoch));
        }
        self.check_release();
        self.check_done();
    }

    /// The running snapshot `epoch` ended here (completed or aborted): every actor still
    /// deferring its cut for it may cut.
    fn end(&mut self, epoch: Epoch) {
        if self.settled() == Some(epoch) {
            self.settled_end = self.settled_end.max(epoch);
        }
        self.phase = Phase::Idle;
        self.released = crate::protocol::cut::MAX_DEPTH;
        self.actions
            .push_back(NodeAction::Release { epoch, depth: crate::protocol::cut::MAX_DEPTH });
    }

    fn add(&mut self, epoch: Epoch, depth: u8) {
        if epoch < self.target { self.behind.add(depth) } else { self.current.add(depth) }
    }

    fn remove(&mut self, epoch: Epoch, depth: u8) {
        if epoch < self.target { self.behind.remove(depth) } else { self.current.remove(depth) }
    }

    /// Reports the shallowest depth still behind when it grew, so that the coordinator can
    /// release deeper ones (the locally-done report covers the end).
    fn check_release(&mut self) {
        let Phase::Running { reported: false, .. } = self.phase else { return };
        // Nobody behind: the locally-done report follows.
        let Some(shallowest) = self.behind.shallowest() else { return };
        if shallowest > self.reported_shallowest {
            self.reported_shallowest = shallowest;
            let report = self.report();
            self.actions.push_back(NodeAction::Report(report));
        }
    }

    fn check_done(&mut self) {
        let done = self.behind() == 0;
        if let Phase::Running { reported: reported @ false, .. } = &mut self.phase
            && done
        {
            *reported = true;
            let report = self.report();
            self.actions.push_back(NodeAction::Report(report));
        }
    }

    fn check_expectation(&mut self) {
        let Phase::Running { expect: Some(expect), .. } = &self.phase else { return };
        let met = expect
            .iter()
            .all(|(peer, count)| self.peers.get(peer).map_or(0, |p| p.received.below) >= *count);
        if met && self.behind() == 0 {
            if let Phase::Running { expect, settled, .. } = &mut self.phase {
                *expect = None;
                *settled = true;
            }
            let report = self.report();
            self.actions.push_back(NodeAction::Report(report));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AbortReason;

    fn drain(node: &mut NodeSnapshot<u8>) -> Vec<NodeAction<u8>> {
        std::iter::from_fn(|| node.poll()).collect()
    }

    #[test]
    fn start_marks_and_reports_when_every_actor_has_cut() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        assert_eq!(node.actor_spawned(Epoch::ZERO), None);
        assert_eq!(node.actor_spawned(Epoch::ZERO), None);
        node.handle_command(NodeCommand::Start(Epoch(1)));
        assert_eq!(drain(&mut node), vec![NodeAction::Markers(Epoch(1))]);
        assert_eq!(node.behind(), 2);
        node.actor_cut(Cut { from: Epoch(0), to: Epoch(1), depth: 0 });
        assert!(drain(&mut node).is_empty());
        node.actor_stopped(Epoch(0), 0);
        let actions = drain(&mut node);
        assert!(matches!(&actions[..], [NodeAction::Report(r)] if r.locally_done));
    }

    #[test]
    fn the_node_reports_its_shallowest_depth_behind_and_releases_what_it_is_told() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        for _ in 0..3 {
            assert_eq!(node.actor_spawned(Epoch::ZERO), None);
        }
        // One asker (depth 0), a middle layer (1) and a leaf responder (2).
        node.actor_deepened(Epoch::ZERO, 0, 1);
        node.actor_deepened(Epoch::ZERO, 0, 2);
        assert_eq!(node.released(), crate::MAX_DEPTH);
        node.handle_command(NodeCommand::Start(Epoch(1)));
        assert_eq!(drain(&mut node), vec![NodeAction::Markers(Epoch(1))]);
        assert_eq!(node.released(), 0);
        node.actor_cut(Cut { from: Epoch(0), to: Epoch(1), depth: 0 });
        let interim = |actions: Vec<NodeAction<u8>>| match &actions[..] {
            [NodeAction::Report(r)] if !r.locally_done => r.shallowest,
            other => panic!("expected an interim report, got {other:?}"),
        };
        assert_eq!(interim(drain(&mut node)), Some(1));
        // The coordinator releases depth 1 (every node's shallowest is at least 1).
        node.handle_command(NodeCommand::Release { epoch: Epoch(1), depth: 1 });
        assert_eq!(drain(&mut node), vec![NodeAction::Release { epoch: Epoch(1), depth: 1 }]);
        assert_eq!(node.released(), 1);
        // A depth learnt meanwhile moves the actor between levels.
        node.actor_deepened(Epoch(0), 1, 3);
        assert_eq!(interim(drain(&mut node)), Some(2));
        node.actor_stopped(Epoch(0), 2);
        assert_eq!(interim(drain(&mut node)), Some(3));
        node.handle_command(NodeCommand::Release { epoch: Epoch(1), depth: 1 });
        assert!(drain(&mut node).is_empty(), "a release never goes back down");
        node.actor_cut(Cut { from: Epoch(0), to: Epoch(1), depth: 3 });
        assert!(matches!(&drain(&mut node)[..], [NodeAction::Report(r)] if r.locally_done));
    }

    #[test]
    fn an_ask_across_a_cut_releases_every_depth() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        node.actor_deepened(Epoch::ZERO, 0, 2);
        node.handle_command(NodeCommand::Start(Epoch(1)));
        let _ = drain(&mut node);
        node.ask_crossed(Epoch(0));
        assert!(drain(&mut node).is_empty(), "a stale crossing changes nothing");
        node.ask_crossed(Epoch(1));
        let actions = drain(&mut node);
        assert_eq!(actions[0], NodeAction::Release { epoch: Epoch(1), depth: crate::MAX_DEPTH });
        assert!(
            matches!(&actions[1..], [NodeAction::Report(r)] if r.crossed && !r.locally_done),
            "the crossing is reported, for the other nodes: {actions:?}"
        );
        node.ask_crossed(Epoch(1));
        assert!(drain(&mut node).is_empty(), "reported once");
        node.actor_cut(Cut { from: Epoch(0), to: Epoch(1), depth: 0 });
        assert!(
            drain(&mut node).iter().all(|a| !matches!(a, NodeAction::Release { .. })),
            "no release goes back down"
        );
        node.handle_command(NodeCommand::Release { epoch: Epoch(1), depth: 2 });
        assert!(drain(&mut node).is_empty(), "no release goes back down");
        assert_eq!(node.released(), crate::MAX_DEPTH);
    }

    #[test]
    fn an_abort_releases_every_deferring_actor() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        node.actor_deepened(Epoch::ZERO, 0, 1);
        node.handle_command(NodeCommand::Start(Epoch(1)));
        let _ = drain(&mut node);
        node.handle_command(NodeCommand::Abort { epoch: Epoch(1), reason: AbortReason::Deadline });
        assert_eq!(
            drain(&mut node),
            vec![NodeAction::Release { epoch: Epoch(1), depth: crate::MAX_DEPTH }]
        );
        assert_eq!(node.released(), crate::MAX_DEPTH);
    }

    #[test]
    fn a_child_of_an_uncut_parent_needs_a_marker_and_an_outside_spawn_does_not() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        assert_eq!(node.actor_spawned(Epoch::ZERO), None);
        node.handle_command(NodeCommand::Start(Epoch(1)));
        let _ = drain(&mut node);
        assert_eq!(node.actor_spawned(Epoch(0)), Some(Epoch(1)));
        assert_eq!(node.spawn_epoch(), Epoch(1));
        assert_eq!(node.actor_spawned(node.spawn_epoch()), None);
        assert_eq!(node.behind(), 2);
    }

    #[test]
    fn a_tag_from_a_peer_that_started_first_starts_the_snapshot_here() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        let _ = node.actor_spawned(Epoch::ZERO);
        node.remote_received(&1, Epoch(0));
        node.remote_received(&1, Epoch(1));
        assert_eq!(node.running(), Some(Epoch(1)));
        assert_eq!(drain(&mut node), vec![NodeAction::Markers(Epoch(1))]);
        assert_eq!(node.report().received_from, vec![(1, 1)]);
        // The coordinator's own Start arrives later and changes nothing.
        node.handle_command(NodeCommand::Start(Epoch(1)));
        assert!(drain(&mut node).is_empty());
    }

    #[test]
    fn counters_fold_when_the_target_moves() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        node.remote_sent(&1, Epoch(0));
        node.handle_command(NodeCommand::Start(Epoch(1)));
        node.remote_sent(&1, Epoch(0));
        node.remote_sent(&1, Epoch(1));
        assert_eq!(node.report().sent_to, vec![(1, 2)]);
        node.handle_command(NodeCommand::Abort { epoch: Epoch(1), reason: AbortReason::Deadline });
        node.handle_command(NodeCommand::Start(Epoch(2)));
        assert_eq!(node.report().sent_to, vec![(1, 3)]);
    }

    #[test]
    fn a_link_that_went_down_is_counted_from_zero_again() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        node.remote_sent(&1, Epoch::ZERO);
        node.remote_sent(&2, Epoch::ZERO);
        node.remote_received(&1, Epoch::ZERO);
        assert_eq!(node.link_down(&1), None, "no snapshot to refuse");
        node.remote_sent(&1, Epoch::ZERO);
        // Snapshot 1 counts what was tagged below it: the link to 1 only from its new start.
        node.handle_command(NodeCommand::Start(Epoch(1)));
        let report = node.report();
        assert_eq!((report.sent_to, report.received_from), (vec![(1, 1), (2, 1)], vec![]));
        assert_eq!(node.link_down(&2), Some(Epoch(1)), "snapshot 1 cannot add up any more");
    }

    #[test]
    fn expectation_reports_once_everything_arrived() {
        let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
        node.handle_command(NodeCommand::Start(Epoch(1)));
        assert!(matches!(&drain(&mut node)[..], [NodeAction::Report(r)] if r.locally_done));
        node.handle_command(NodeCommand::Expect { epoch: Epoch(1), from: vec![(1, 2)] });
        assert!(drain(&mut node).is_empty());
        node.remote_received(&1, Epoch(0));
        node.remote_received(&1, Epoch(1));
        assert!(drain(&mut node).is_empty());
        assert_eq!(node.settled(), None, "one message still to come");
        node.remote_received(&1, Epoch(0));
        let actions = drain(&mut node);
        assert!(matches!(&actions[..], [NodeAction::Report(r)] if r.received_from == [(1, 2)]));
        assert_eq!(node.settled(), Some(Epoch(1)), "everything arrived, nothing to cut");
        node.handle_command(NodeCommand::Complete(Epoch(1)));
        assert_eq!(node.settled(), None, "ended");
        assert_eq!(node.completed(), Epoch(1));
        assert_eq!(node.spawn_epoch(), Epoch(1));
    }

    /// A node that reported and was told what to expect, when the last message expected is
    /// an actor moving in behind the snapshot (live migration: counted as received, and
    /// admitted as not cut yet), reports once that actor has cut (or stopped), not before.
    /// (It did not report at all: the snapshot waited for its deadline.)
    #[test]
    fn expectation_met_by_an_actor_arriving_behind_reports_once_it_cut() {
        for stops in [false, true] {
            let mut node = NodeSnapshot::new(0u8, Epoch::ZERO);
            node.handle_command(NodeCommand::Start(Epoch(1)));
            assert!(matches!(&drain(&mut node)[..], [NodeAction::Report(r)] if r.locally_done));
            node.handle_command(NodeCommand::Expect { epoch: Epoch(1), from: vec![(1, 1)] });
            assert!(drain(&mut node).is_empty());
            assert_eq!(node.actor_spawned(Epoch(0)), Some(Epoch(1)), "it must cut here");
            node.remote_received(&1, Epoch(0));
            assert!(drain(&mut node).is_empty(), "not before the arrived actor cut");
            assert_eq!(node.settled(), None);
            if stops {
                node.actor_stopped(Epoch(0), 0);
            } else {
                node.actor_cut(Cut { from: Epoch(0), to: Epoch(1), depth: 0 });
            }
            let actions = drain(&mut node);
            assert!(
                matches!(&actions[..], [NodeAction::Report(r)] if r.received_from == [(1, 1)]),
                "stops {stops}: {actions:?}"
            );
            assert_eq!(node.settled(), Some(Epoch(1)));
        }
    }
}
