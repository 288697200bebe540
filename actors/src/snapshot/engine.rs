//! The snapshot engine of one node: the node's protocol state, the coordinator of the
//! snapshots this node starts, and the collection of their parts, behind one lock.
//!
//! Every node takes part in a snapshot as a *participant* (its actors cut, it counts the
//! tagged messages crossing its links, it reports to the coordinator and, at completion,
//! sends the coordinator its part). The node that started the snapshot is also its
//! *coordinator*: it decides completion by counting ([`Coordinator`]) and assembles the
//! parts into one checkpoint. On a single node both roles talk to each other inside the
//! lock; across nodes they talk through [`Wire`] messages over the cluster's links.
//!
//! Lock order: the engine lock may be held while inserting into the registry (spawn) and
//! while handing a [`Wire`] message to the cluster (which only queues it), and is never held
//! while taking a mailbox lock. Mailbox locks are held while pushing to the late sink, a leaf
//! lock. Actions that touch mailboxes (the marker broadcast) are returned as [`Effects`] and
//! carried out by the caller after the engine lock is released.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amber_snapshot::{
    AbortReason, ActorEntry, ActorId, Backlog, Checkpoint, CheckpointId, CommandVerdict,
    Coordinator, CoordinatorAction, Cut, Epoch, InFlight, InFlightRecord, Manifest, NodeAction,
    NodeCommand, NodeEntry, NodeReport, NodeSnapshot, Participant, StartVerdict, StateRecord,
};
use tokio::sync::oneshot;

use super::error::{AbortCause, CaptureProblem, PartError, SnapshotError, Taint};
use super::wire::{NodePart, PartReader, PiecesError, Wire};
use crate::any_mailbox::AnyMailbox;
use crate::loom::lock;
use crate::loom::sync::{Arc, Mutex, MutexGuard};
use crate::mailbox::core::LateSink;
use crate::remote::RemoteDirectory;

/// What an actor hands over at its cut.
#[derive(Debug)]
pub(crate) struct CutReport {
    pub(crate) entry: ActorEntry,
    pub(crate) state: Result<StateRecord, CaptureProblem>,
    /// The backlog at the cut that is in flight, in queue order (the messages that encoded).
    pub(crate) backlog: Backlog,
    /// The messages of the backlog that did not encode.
    pub(crate) unrecorded: Vec<CaptureProblem>,
    /// The backlog holds an ask from an actor that has not cut (it will take in a reply
    /// from after this cut: [`NodeSnapshot::ask_crossed`]).
    pub(crate) crossed: bool,
}

/// Where the outcome of a snapshot goes.
type Waiter = oneshot::Sender<Result<Checkpoint, SnapshotError>>;

/// Where the caller of a snapshot waits for its outcome.
pub(crate) type Outcome = oneshot::Receiver<Result<Checkpoint, SnapshotError>>;

/// Work for the caller once the engine lock is released.
#[derive(Debug, Default)]
#[must_use = "effects must be carried out"]
pub(crate) struct Effects {
    /// Put `Marker(e)` on the control lane of every live actor.
    pub(crate) markers: Option<Epoch>,
    /// Actors whose deferred cut may be taken now: `Release(e)` on their control lanes.
    pub(crate) releases: Vec<(Arc<dyn AnyMailbox>, Epoch)>,
    /// Answer the snapshot's caller.
    resolve: Option<(Waiter, Answer)>,
    /// This node's part of a completed snapshot, for its coordinator.
    part: Option<Outgoing>,
}

impl Effects {
    /// Sends this node's part of a completed snapshot to its coordinator (on the runtime's
    /// blocking pool) and answers the waiting caller, if any (the marker broadcast, if any,
    /// is the caller's). The part is written, and the checkpoint assembled, here: outside
    /// the engine lock.
    pub(crate) fn resolve(&mut self) {
        if let Some(outgoing) = self.part.take() {
            offload(move || outgoing.send());
        }
        if let Some((waiter, answer)) = self.resolve.take() {
            let _ = waiter.send(answer.finish());
        }
    }

    fn markers(&mut self, epoch: Epoch) {
        self.markers = self.markers.max(Some(epoch));
    }

    /// Queues the answer to a snapshot's caller. One snapshot runs at a time, so there is
    /// never an earlier answer in the same step; if there were, it is sent, not lost.
    fn answer(&mut self, waiter: Waiter, answer: Answer) {
        if let Some((earlier, answer)) = self.resolve.replace((waiter, answer)) {
            let _ = earlier.send(answer.finish());
        }
    }

    /// Queues this node's part for its coordinator. A node completes one snapshot at a time,
    /// so there is never an earlier part in the same step; if there were, it is sent first.
    fn send_part(&mut self, outgoing: Outgoing) {
        if let Some(earlier) = self.part.replace(outgoing) {
            earlier.send();
        }
    }
}

/// The outcome of a snapshot for its caller: decided, or every part is in and the
/// checkpoint is still to be assembled (outside the engine lock).
#[derive(Debug)]
enum Answer {
    Done(Result<Checkpoint, SnapshotError>),
    Assemble { epoch: Epoch, started: Instant, parts: Vec<NodePart> },
}

impl Answer {
    fn finish(self) -> Result<Checkpoint, SnapshotError> {
        let (epoch, started, parts) = match self {
            Answer::Done(result) => return result,
            Answer::Assemble { epoch, started, parts } => (epoch, started, parts),
        };
        let result = assemble(epoch, parts);
        match &result {
            Ok(checkpoint) => tracing::debug!(
                %epoch,
                nodes = checkpoint.manifest.nodes.len(),
                actors = checkpoint.manifest.actors.len(),
                in_flight = checkpoint.in_flight.len(),
                ms = started.elapsed().as_secs_f64() * 1e3,
                "snapshot complete"
            ),
            Err(e) => tracing::debug!(%epoch, error = %e, "snapshot complete but unusable"),
        }
        result
    }
}

/// This node's part of completed snapshot `epoch`, on its way to the coordinator `to`.
struct Outgoing {
    remote: Arc<dyn RemoteDirectory>,
    to: String,
    epoch: Epoch,
    part: NodePart,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("to", &self.to)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// Writes the part and hands each piece to the link as soon as it is written, then
    /// frees the part (after the pieces are queued: freeing a large part takes about as long
    /// as writing it). A failure to send means the link is gone: its node-down event aborts
    /// the snapshot on the coordinator.
    fn send(self) {
        let Outgoing { remote, to, epoch, part } = self;
        let t = Instant::now();
        let (mut pieces, mut bytes) = (0, 0);
        let sent = part.write_pieces(epoch, |piece| {
            pieces += 1;
            bytes += piece.len();
            remote.send_snapshot(&to, piece)
        });
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match sent {
            Ok(()) => {
                tracing::debug!(%epoch, coordinator = %to, pieces, bytes, ms, "snapshot part sent")
            }
            Err(e @ PiecesError::Encode(_)) => {
                tracing::error!(%epoch, coordinator = %to, error = %e, "snapshot part")
            }
            Err(e @ PiecesError::Send(_)) => {
                tracing::debug!(%epoch, coordinator = %to, error = %e, "snapshot part")
            }
        }
        drop(part);
    }
}

/// What this node captured for the snapshot it takes part in.
#[derive(Debug)]
struct Round {
    actors: Vec<ActorEntry>,
    states: Vec<StateRecord>,
    /// Each cut's backlog, in cut order (each becomes a chunk of the checkpoint's
    /// [`InFlight`] as it is).
    backlog: Vec<Backlog>,
    problems: Vec<CaptureProblem>,
    /// The part was sent when the node settled (see [`send_settled`](SnapshotEngine::send_settled)):
    /// nothing more may be captured for it, and its `Complete` sends nothing.
    sent: bool,
}

impl Round {
    fn new(actors: usize) -> Round {
        Round {
            actors: Vec::with_capacity(actors),
            states: Vec::with_capacity(actors),
            backlog: Vec::with_capacity(actors),
            problems: Vec::new(),
            sent: false,
        }
    }
}

/// The coordinator's side of a snapshot this node started, until every part is in: its
/// caller, and the parts. Which parts are awaited, and until when, the [`Coordinator`]
/// decides ([`Coordinator::awaits_part`], [`CoordinatorAction::PartsIn`]).
#[derive(Debug)]
struct Collect {
    epoch: Epoch,
    started: Instant,
    waiter: Waiter,
    /// The parts that arrived, per node.
    parts: BTreeMap<String, NodePart>,
    /// Parts still arriving, per node.
    inbound: HashMap<String, Inbound>,
    /// Why a node's part did not read (the coordinator aborts the snapshot with
    /// [`AbortReason::PartUnreadable`]).
    unreadable: Option<(String, PartError)>,
}

/// A node's part as it arrives: its pieces are read one after the other, each as soon as
/// it is in, by one task at a time, off the engine lock.
#[derive(Debug, Default)]
struct Inbound {
    /// Pieces not read yet, in order.
    queue: VecDeque<Piece>,
    /// What was read so far; taken by the task reading.
    reader: Option<PartReader>,
    /// A task reads the queued pieces.
    reading: bool,
    /// Time spent reading, in total.
    spent: Duration,
    /// When the first piece came in (for the log line: how long the part took to arrive).
    first: Option<Instant>,
}

#[derive(Debug)]
struct Piece {
    bytes: Vec<u8>,
    records: u32,
    last: bool,
}

#[derive(Debug)]
struct EngineState {
    node: NodeSnapshot<String>,
    coordinator: Coordinator<String>,
    /// Which coordinator this node follows, its held report and pending restores (the pure
    /// machine that decides about `Start`s).
    follow: Participant<String>,
    /// What this node captured, per snapshot it runs or still owes its part of (a later
    /// snapshot may overtake one here before its coordinator's `Complete` arrives); which to
    /// keep, [`Participant::keeps`] decides.
    rounds: BTreeMap<Epoch, Round>,
    collect: Option<Collect>,
    /// Actors on the node, to size the next round.
    actors_hint: usize,
    /// Actors deferring their cut by the ask rule, with their ask depth: told when the node
    /// releases it ([`NodeAction::Release`]).
    deferring: HashMap<ActorId, (u8, Arc<dyn AnyMailbox>), crate::LocalHash>,
}

/// One node's snapshot machinery.
pub(crate) struct SnapshotEngine {
    me: String,
    /// The time the machines' deadlines are counted in: tokio's, like the timer that asks
    /// for a deadline check ([`ActorSystem::snapshot_within`](crate::ActorSystem::snapshot_within)),
    /// so that on a paused or simulated clock a passed deadline is seen as passed.
    clock: tokio::time::Instant,
    state: Arc<Mutex<EngineState>>,
    pub(crate) late: Arc<LateSink>,
    remote: Option<Arc<dyn RemoteDirectory>>,
    /// What this node records of itself in its parts ([`NodeEntry::annotations`]): a leaf
    /// lock, taken alone.
    annotations: std::sync::Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for SnapshotEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotEngine").field("me", &self.me).finish_non_exhaustive()
    }
}

impl SnapshotEngine {
    /// The engine of node `me`, whose last completed snapshot is `epoch`; `remote` reaches
    /// the other nodes of its cluster, if any.
    pub(crate) fn new(me: String, epoch: Epoch, remote: Option<Arc<dyn RemoteDirectory>>) -> Self {
        SnapshotEngine {
            state: Arc::new(Mutex::new(EngineState {
                node: NodeSnapshot::new(me.clone(), epoch),
                coordinator: Coordinator::new(epoch),
                follow: Participant::new(me.clone()),
                rounds: BTreeMap::new(),
                collect: None,
                actors_hint: 0,
                deferring: HashMap::default(),
            })),
            me,
            clock: tokio::time::Instant::now(),
            late: Arc::default(),
            remote,
            annotations: std::sync::Mutex::default(),
        }
    }

    /// Records `value` under `key` in the parts this node makes from now on (removes the
    /// key for `None`); returns what was recorded under it before.
    pub(crate) fn annotate(&self, key: String, value: Option<String>) -> Option<String> {
        let mut annotations =
            self.annotations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match value {
            Some(value) => annotations.insert(key, value),
            None => annotations.remove(&key),
        }
    }

    /// What this node records of itself in its parts now.
    pub(crate) fn annotations(&self) -> BTreeMap<String, String> {
        self.annotations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn lock(&self) -> MutexGuard<'_, EngineState> {
        lock(&self.state)
    }

    /// How many live local actors are still behind the target epoch (for the loom models).
    #[cfg(loom)]
    pub(crate) fn behind(&self) -> u64 {
        self.lock().node.behind()
    }

    /// Admits a new actor. `epoch` is its parent's epoch, or `None` when spawned from outside
    /// (it then gets the node's spawn epoch). `register` makes it visible to the marker
    /// broadcast and runs under the engine lock; if it fails the admission is undone.
    /// Returns what `register` returned, the actor's epoch, and a marker it must get first.
    pub(crate) fn admit<R, E>(
        &self,
        epoch: Option<Epoch>,
        register: impl FnOnce(Epoch) -> Result<R, E>,
    ) -> Result<(R, Epoch, Option<Epoch>), E> {
        let mut st = self.lock();
        let epoch = epoch.unwrap_or_else(|| st.node.spawn_epoch());
        let marker = st.node.actor_spawned(epoch);
        match register(epoch) {
            Ok(r) => {
                st.actors_hint += 1;
                // A spawn never completes a snapshot or starts one: nothing to pump.
                Ok((r, epoch, marker))
            }
            Err(e) => {
                // Undoing the admission may complete a snapshot (it can never start one, so
                // there are no markers to send): answer its caller.
                st.node.actor_stopped(epoch, 0);
                let mut effects = self.pump(&mut st);
                drop(st);
                effects.resolve();
                Err(e)
            }
        }
    }

    /// A restore registers actors that are not started yet: until
    /// [`restore_started`](Self::restore_started), snapshots are refused here.
    pub(crate) fn restore_pending(&self) {
        self.lock().follow.restore_began();
    }

    /// A pending restore's actors are all started (admitted to snapshots).
    pub(crate) fn restore_started(&self) {
        self.lock().follow.restore_started();
    }

    /// An actor took `cut` and hands over what it captured.
    pub(crate) fn cut(&self, cut: Cut, report: CutReport) -> Effects {
        self.cut_many([(cut, report)])
    }

    /// Files the cuts of several actors, in order, under one lock and with one pump of the
    /// machines (see [`CutBatch`](crate::system::CutBatch)), instead of taking the lock and
    /// draining the machines' actions once per actor.
    pub(crate) fn cut_many(&self, cuts: impl IntoIterator<Item = (Cut, CutReport)>) -> Effects {
        let mut st = self.lock();
        for (cut, report) in cuts {
            self.file_cut(&mut st, cut, report);
        }
        self.pump(&mut st)
    }

    fn file_cut(&self, st: &mut EngineState, cut: Cut, report: CutReport) {
        // Mostly empty: a lookup would hash every cut actor's id for nothing.
        if !st.deferring.is_empty() {
            st.deferring.remove(&report.entry.id);
        }
        // The cut may be how this node learns of the snapshot (the actor dequeued a message
        // tagged with its epoch from another node): the node first, then its round.
        st.node.actor_cut(cut);
        if report.crossed {
            st.node.ask_crossed(cut.to);
        }
        self.sync_round(st);
        if let Some(round) = st.rounds.get_mut(&cut.to) {
            if round.sent {
                // The protocol rules this out (the simulation checks it): a settled node has
                // no actor left behind the snapshot.
                tracing::error!(epoch = %cut.to, actor = %report.entry.id, "a cut after this node's part was sent: the checkpoint misses it");
            }
            round.actors.push(report.entry);
            match report.state {
                Ok(state) => round.states.push(state),
                Err(p) => round.problems.push(p),
            }
            round.problems.extend(report.unrecorded);
            // Kept whole: no record is copied under the lock (one big vector, grown record
            // by record, would be copied again and again as it grew).
            if !report.backlog.is_empty() {
                round.backlog.push(report.backlog);
            }
        }
    }

    /// The actor `id`, whose epoch was `epoch` and ask depth `depth`, stopped.
    pub(crate) fn stopped(&self, id: ActorId, epoch: Epoch, depth: u8) -> Effects {
        let mut st = self.lock();
        st.actors_hint = st.actors_hint.saturating_sub(1);
        // Almost always empty: not even hashed then (every actor that stops passes here).
        if !st.deferring.is_empty() {
            st.deferring.remove(&id);
        }
        st.node.actor_stopped(epoch, depth);
        self.pump(&mut st)
    }

    /// The actor `id` in `epoch` became deeper by serving an ask (see
    /// [`ActorCut::on_ask`](amber_snapshot::ActorCut::on_ask)).
    pub(crate) fn deepened(&self, id: ActorId, epoch: Epoch, from: u8, to: u8) -> Effects {
        let mut st = self.lock();
        if !st.deferring.is_empty()
            && let Some(entry) = st.deferring.get_mut(&id)
        {
            entry.0 = to;
        }
        st.node.actor_deepened(epoch, from, to);
        self.pump(&mut st)
    }

    /// An ask crossed the cut of snapshot `epoch` (see
    /// [`NodeSnapshot::ask_crossed`](amber_snapshot::NodeSnapshot::ask_crossed)).
    pub(crate) fn ask_crossed(&self, epoch: Epoch) -> Effects {
        let mut st = self.lock();
        st.node.ask_crossed(epoch);
        self.pump(&mut st)
    }

    /// The actor `id` of ask depth `depth` dequeued a marker: the depth the node releases
    /// now (see [`NodeSnapshot::released`]). If that is below `depth` the actor defers its
    /// cut, and is registered here to be told when its depth is released.
    pub(crate) fn release_for(&self, id: ActorId, depth: u8, mailbox: &Arc<dyn AnyMailbox>) -> u8 {
        let mut st = self.lock();
        let released = st.node.released();
        if depth > released {
            st.deferring.insert(id, (depth, mailbox.clone()));
        }
        released
    }

    /// An actor whose epoch was `epoch` left this node for `peer` (live migration; the
    /// package is already on the link). It counts as a message tagged `epoch` on that link
    /// and as stopped here, in one step: a running snapshot it has not cut for waits until
    /// `peer` has admitted it (then it cuts there), and never sees it on neither node.
    pub(crate) fn migrated_out(&self, id: ActorId, peer: &str, epoch: Epoch, depth: u8) -> Effects {
        let mut st = self.lock();
        if !st.deferring.is_empty() {
            st.deferring.remove(&id);
        }
        st.node.remote_sent(peer, epoch);
        st.actors_hint = st.actors_hint.saturating_sub(1);
        st.node.actor_stopped(epoch, depth);
        self.pump(&mut st)
    }

    /// An actor whose epoch is `epoch` arrives from `peer` (live migration): `register`
    /// makes it visible (under the engine lock, as for a spawn), then the package is counted
    /// as received from `peer`, whether or not it was admitted. Returns what `register`
    /// returned, the marker the actor must get first (a snapshot this node runs that it has
    /// not cut for), and the effects to carry out.
    pub(crate) fn migrated_in<R, E>(
        &self,
        peer: &str,
        epoch: Epoch,
        register: impl FnOnce() -> Result<R, E>,
    ) -> (Result<(R, Option<Epoch>), E>, Effects) {
        let mut st = self.lock();
        let marker = st.node.actor_spawned(epoch);
        let admitted = match register() {
            Ok(r) => {
                st.actors_hint += 1;
                Ok((r, marker))
            }
            Err(e) => {
                st.node.actor_stopped(epoch, 0);
                Err(e)
            }
        };
        st.node.remote_received(peer, epoch);
        let effects = self.pump(&mut st);
        (admitted, effects)
    }

    /// A message tagged `tag` arrived for an actor that moved away (it will be relayed):
    /// the node learns of a later snapshot before relaying it, so that the relay never
    /// carries a tag beyond the node's target.
    pub(crate) fn saw(&self, tag: Epoch) -> Effects {
        let mut st = self.lock();
        st.node.saw(tag);
        self.pump(&mut st)
    }

    /// Relays a message to an actor that moved to `peer`, under the engine lock: `send` gets
    /// the node's target epoch, hands the message to the link and returns its tag if it is
    /// counted. A message from before the target crosses that snapshot's cut here (the relay
    /// has cut for it): `send` records it in flight and tags it with the target, so this
    /// node's count of earlier-tagged messages, final once its actors have cut, never grows.
    pub(crate) fn relay<E>(
        &self,
        peer: &str,
        send: impl FnOnce(Epoch) -> Result<Option<Epoch>, E>,
    ) -> Result<(), E> {
        let mut st = self.lock();
        let counted = send(st.node.epoch())?;
        if let Some(tag) = counted {
            st.node.remote_sent(peer, tag);
        }
        let mut effects = self.pump(&mut st);
        drop(st);
        debug_assert!(effects.markers.is_none());
        effects.resolve();
        Ok(())
    }

    /// A data message from a local actor, tagged `tag`, was taken by the link to `peer`.
    pub(crate) fn remote_sent(&self, peer: &str, tag: Epoch) {
        let mut st = self.lock();
        st.node.remote_sent(peer, tag);
        // A sender's tag never exceeds the node's target (its cut told the node first), and
        // a send count alone completes nothing: there is nothing to carry out.
        let mut effects = self.pump(&mut st);
        drop(st);
        debug_assert!(effects.markers.is_none());
        effects.resolve();
    }

    /// A data message from an actor on `peer`, tagged `tag`, arrived (queued, recorded, or
    /// refused as a dead letter).
    pub(crate) fn remote_received(&self, peer: &str, tag: Epoch) -> Effects {
        let mut st = self.lock();
        st.node.remote_received(peer, tag);
        self.pump(&mut st)
    }

    /// A snapshot message from node `from`.
    pub(crate) fn on_wire(self: &Arc<Self>, from: &str, wire: Wire) -> Effects {
        let wire = match wire {
            Wire::Part { epoch, bytes, records, last } => {
                self.on_piece(from, epoch, Piece { bytes, records, last });
                return Effects::default();
            }
            other => other,
        };
        let mut st = self.lock();
        let mut effects = Effects::default();
        match wire {
            Wire::Command(command) => self.on_command(&mut st, from, command, &mut effects),
            Wire::Report(report) if report.node == from => {
                tracing::debug!(epoch = %report.epoch, node = %from, locally_done = report.locally_done, "snapshot report received");
                st.coordinator.handle_report(report)
            }
            Wire::Report(report) => {
                tracing::warn!(%from, node = %report.node, "snapshot report naming another node; ignored");
            }
            Wire::Reject { epoch, reason } => {
                st.coordinator.reject(from.to_owned(), epoch, reason);
            }
            Wire::RestorePending { epoch } => {
                st.coordinator.restore_pending(from.to_owned(), epoch);
            }
            Wire::Part { .. } => unreachable!("handled above"),
        }
        let more = self.pump(&mut st);
        merge(&mut effects, more);
        effects
    }

    /// Node `node` is down: a snapshot it takes part in, or coordinates, aborts.
    pub(crate) fn node_down(&self, node: &str) -> Effects {
        let mut st = self.lock();
        st.coordinator.node_down(&node.to_owned());
        let st_ = &mut *st;
        if let Some(epoch) = st_.follow.coordinator_down(&mut st_.node, &node.to_owned()) {
            tracing::warn!(%epoch, coordinator = %node, "snapshot coordinator went down; aborted here");
        }
        // What was on the link may be lost: its counts start again (both ends do this), and a
        // snapshot still running here cannot add up any more.
        if let Some(epoch) = st.node.link_down(node)
            && let Some(leader) = st.follow.leader_of(epoch).cloned()
        {
            tracing::info!(%epoch, peer = %node, "refusing a snapshot: a link went down during it");
            let reason = amber_snapshot::Refusal::LinkLost { peer: node.to_owned() };
            if leader == self.me {
                st.coordinator.reject(self.me.clone(), epoch, reason);
            } else {
                self.send(&leader, &Wire::Reject { epoch, reason });
            }
        }
        // Rounds whose part was owed to it are dropped by the next sync.
        self.pump(&mut st)
    }

    /// Starts a snapshot of every node this node is linked to (and itself), which aborts
    /// if not complete within `deadline`.
    pub(crate) fn start(
        &self,
        deadline: Duration,
    ) -> Result<(Epoch, Outcome, Effects), SnapshotError> {
        let mut st = self.lock();
        if st.follow.restore_pending() {
            return Err(SnapshotError::RestorePending { node: self.me.clone() });
        }
        // A snapshot this node follows blocks a new one; one that reached it only through a
        // tagged message (its coordinator unknown, perhaps gone) is superseded.
        let followed = st.follow.followed(&st.node);
        if let Some(running) = st.coordinator.running().or(followed) {
            return Err(SnapshotError::InProgress { running });
        }
        let seen = st.node.epoch();
        st.coordinator.skip_to(seen);
        let mut nodes = vec![self.me.clone()];
        if let Some(remote) = &self.remote {
            nodes.extend(remote.peers().into_iter().filter(|p| *p != self.me));
        }
        let due = self.now_ms().saturating_add(deadline.as_millis() as u64);
        let epoch =
            st.coordinator.start(nodes.iter().cloned(), Some(due)).map_err(|e| match e {
                amber_snapshot::StartError::InProgress { running } => {
                    SnapshotError::InProgress { running }
                }
                other => {
                    SnapshotError::Aborted { epoch: Epoch::ZERO, reason: AbortCause::Start(other) }
                }
            })?;
        let (tx, rx) = oneshot::channel();
        st.collect = Some(Collect {
            epoch,
            started: Instant::now(),
            waiter: tx,
            parts: BTreeMap::new(),
            inbound: HashMap::new(),
            unreadable: None,
        });
        tracing::debug!(%epoch, nodes = nodes.len(), "snapshot started");
        let effects = self.pump(&mut st);
        Ok((epoch, rx, effects))
    }

    /// The deadline of the running snapshot may have passed.
    pub(crate) fn check_deadline(&self) -> Effects {
        let mut st = self.lock();
        st.coordinator.handle_timeout(self.now_ms());
        self.pump(&mut st)
    }

    /// Aborts the snapshot this node coordinates, if any (shutdown).
    pub(crate) fn cancel(&self) -> Effects {
        let mut st = self.lock();
        st.coordinator.cancel();
        self.pump(&mut st)
    }

    /// Whether this node coordinates a snapshot now (before or after its decision).
    pub(crate) fn coordinating(&self) -> bool {
        self.lock().coordinator.running().is_some()
    }

    /// The snapshot this node takes part in, if any.
    pub(crate) fn running(&self) -> Option<Epoch> {
        self.lock().node.running()
    }

    /// The last snapshot epoch this node saw complete.
    #[cfg(loom)]
    pub(crate) fn completed(&self) -> Epoch {
        self.lock().node.completed()
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Hands a message to node `to`. A failure means the link is gone; its node-down event
    /// aborts whatever waited on it.
    fn send(&self, to: &str, wire: &Wire) {
        let Some(remote) = &self.remote else {
            tracing::warn!(node = %to, "snapshot message for another node, but this system has no remoting");
            return;
        };
        if let Err(e) = remote.send_snapshot(to, wire.encode()) {
            tracing::debug!(node = %to, error = %e, "snapshot message not sent");
        }
    }

    /// Opens the round of the snapshot this node runs, if it has none for it yet, and drops
    /// the rounds nobody will ask for ([`Participant::keeps`]): aborted, overtaken before a
    /// coordinator was known, or owed to a coordinator that is gone. A round a later snapshot
    /// overtook here stays until its coordinator's `Complete` or `Abort`.
    fn sync_round(&self, st: &mut EngineState) {
        if let Some(epoch) = st.node.running()
            && !st.rounds.contains_key(&epoch)
        {
            st.rounds.insert(epoch, Round::new(st.actors_hint));
        }
        let EngineState { rounds, follow, node, .. } = st;
        let mut dropped = false;
        rounds.retain(|&epoch, _| {
            let keep = follow.keeps(node, epoch);
            if !keep {
                tracing::debug!(%epoch, "what this node captured for a snapshot nobody will complete is dropped");
                dropped = true;
            }
            keep
        });
        if dropped {
            self.drop_unowed_records(st);
        }
    }

    /// Drops the messages recorded for snapshots this node will send no part of: those it
    /// holds no round for, up to its target (a recording for a later epoch may come before
    /// the cut that tells the node of it).
    fn drop_unowed_records(&self, st: &EngineState) {
        let target = st.node.epoch();
        self.late.retain(|epoch| epoch > target || st.rounds.contains_key(&epoch));
    }

    /// Drains the node's and the coordinator's actions until both are quiet.
    fn pump(&self, st: &mut EngineState) -> Effects {
        let mut effects = Effects::default();
        loop {
            let mut progressed = false;
            self.sync_round(st);
            while let Some(action) = st.node.poll() {
                progressed = true;
                match action {
                    NodeAction::Markers(epoch) => effects.markers(epoch),
                    NodeAction::Report(report) => {
                        tracing::debug!(
                            epoch = %report.epoch, node = %self.me, locally_done = report.locally_done,
                            "snapshot report"
                        );
                        self.report(st, report)
                    }
                    NodeAction::Release { epoch, depth } => {
                        let released: Vec<ActorId> = st
                            .deferring
                            .iter()
                            .filter(|(_, (d, _))| *d <= depth)
                            .map(|(id, _)| *id)
                            .collect();
                        for id in released {
                            if let Some((_, mailbox)) = st.deferring.remove(&id) {
                                effects.releases.push((mailbox, epoch));
                            }
                        }
                    }
                }
            }
            while let Some(action) = st.coordinator.poll() {
                progressed = true;
                match action {
                    CoordinatorAction::Send { to, command } if to == self.me => {
                        let me = self.me.clone();
                        self.on_command(st, &me, command, &mut effects);
                    }
                    CoordinatorAction::Send { to, command } => {
                        if let NodeCommand::Expect { epoch, .. } = &command {
                            tracing::debug!(%epoch, node = %to, "snapshot expect sent");
                        }
                        self.send(&to, &Wire::Command(command));
                    }
                    CoordinatorAction::Completed(epoch) => {
                        if let Some(collect) = st.collect.as_ref().filter(|c| c.epoch == epoch) {
                            let ms = collect.started.elapsed().as_secs_f64() * 1e3;
                            tracing::debug!(%epoch, ms, "snapshot completion decided");
                        }
                    }
                    CoordinatorAction::PartsIn(epoch) => {
                        if let Some(collect) = st.collect.take_if(|c| c.epoch == epoch) {
                            let Collect { started, waiter, parts, .. } = collect;
                            let parts = parts.into_values().collect();
                            effects.answer(waiter, Answer::Assemble { epoch, started, parts });
                        }
                    }
                    CoordinatorAction::Aborted { epoch, reason } => {
                        tracing::warn!(%epoch, %reason, "snapshot aborted");
                        if let Some(collect) = st.collect.take_if(|c| c.epoch == epoch) {
                            let err = abort_error(epoch, reason, collect.unreadable);
                            effects.answer(collect.waiter, Answer::Done(Err(err)));
                        }
                    }
                }
            }
            if !progressed {
                self.send_settled(st, &mut effects);
                return effects;
            }
        }
    }

    /// Sends this node's part of the snapshot it runs as soon as the node is settled
    /// ([`NodeSnapshot::settled`]: every local actor has cut, and every message the other
    /// nodes sent before their cuts has arrived), before the coordinator decides: the part
    /// is final then, and the coordinator takes it ([`Coordinator::part_received`]), which
    /// saves the `Complete` and the part crossing the links after the decision. Not to this
    /// node itself, nor before the coordinator is known.
    fn send_settled(&self, st: &mut EngineState, effects: &mut Effects) {
        let Some(remote) = &self.remote else { return };
        let Some(epoch) = st.node.settled() else { return };
        let Some(to) = st.follow.leader_of(epoch).filter(|l| **l != self.me).cloned() else {
            return;
        };
        let Some(round) = st.rounds.get_mut(&epoch).filter(|r| !r.sent) else { return };
        let taken = std::mem::replace(round, Round::new(0));
        round.sent = true;
        let part = self.part(epoch, Some(taken));
        tracing::debug!(%epoch, coordinator = %to, "node settled: its part goes before the decision");
        effects.send_part(Outgoing { remote: remote.clone(), to, epoch, part });
    }

    /// Sends this node's report to the coordinator it follows, or holds it until that is
    /// known.
    fn report(&self, st: &mut EngineState, report: NodeReport<String>) {
        match st.follow.route(report) {
            Some((leader, report)) if leader == self.me => st.coordinator.handle_report(report),
            Some((leader, report)) => self.send(leader.as_str(), &Wire::Report(report)),
            None => {} // held until the coordinator's Start arrives
        }
    }

    /// A command from the coordinator `from` (possibly this node's own): the participant
    /// machine decides whether to obey it, and where a completed snapshot's part goes.
    fn on_command(
        &self,
        st: &mut EngineState,
        from: &str,
        command: NodeCommand<String>,
        effects: &mut Effects,
    ) {
        let from_owned = from.to_owned();
        let epoch = match &command {
            NodeCommand::Start(epoch) => *epoch,
            _ => Epoch::ZERO,
        };
        let EngineState { follow, node, .. } = st;
        match follow.on_command(node, &from_owned, command) {
            CommandVerdict::Start(verdict) => self.on_start(st, from, epoch, verdict),
            CommandVerdict::Ignored => {
                tracing::debug!(%from, "snapshot command from a coordinator this node does not follow; ignored");
            }
            CommandVerdict::Obeyed => {}
            // What was captured for it is dropped by the next sync (no longer kept).
            CommandVerdict::Discard(_) => {}
            CommandVerdict::SendPart { epoch, .. }
                if st.rounds.get(&epoch).is_some_and(|r| r.sent) =>
            {
                // Sent when the node settled; nothing can have been captured since.
                let round = st.rounds.remove(&epoch);
                let late = self.late.take(epoch);
                if round.is_some_and(|r| !r.actors.is_empty() || !r.problems.is_empty())
                    || !late.records.is_empty()
                    || !late.taints.is_empty()
                {
                    tracing::error!(%epoch, "captured after this node's part was sent: the checkpoint misses it");
                }
                self.drop_unowed_records(st);
            }
            CommandVerdict::SendPart { epoch, to } => {
                let round = st.rounds.remove(&epoch);
                let part = self.part(epoch, round);
                // Recordings for snapshots this node ended without a part (it aborted one
                // whose coordinator went down) would otherwise stay.
                self.drop_unowed_records(st);
                if to == self.me {
                    if let Some(collect) = st.collect.as_mut().filter(|c| c.epoch == epoch)
                        && st.coordinator.awaits_part(epoch, &to)
                    {
                        collect.parts.insert(to.clone(), part);
                        st.coordinator.part_received(&to, epoch);
                    }
                } else if let Some(remote) = &self.remote {
                    // Written and sent once the engine lock is released.
                    let remote = remote.clone();
                    effects.send_part(Outgoing { remote, to, epoch, part });
                } else {
                    tracing::warn!(node = %to, "snapshot part for another node, but this system has no remoting");
                }
            }
        }
    }

    /// What the participant machine decided about coordinator `from`'s `Start(epoch)`: send
    /// a held report, or the refusal.
    fn on_start(
        &self,
        st: &mut EngineState,
        from: &str,
        epoch: Epoch,
        verdict: StartVerdict<String>,
    ) {
        match verdict {
            StartVerdict::Follow { held } => {
                tracing::debug!(%epoch, node = %self.me, coordinator = %from, "snapshot followed");
                if let Some(held) = held {
                    self.report(st, held);
                }
            }
            StartVerdict::Repeated => {}
            StartVerdict::RestorePending => {
                // Restored actors not started yet would be missing from the snapshot.
                tracing::info!(%epoch, coordinator = %from, "refusing a snapshot: a restore is pending here");
                if from == self.me {
                    st.coordinator.restore_pending(self.me.clone(), epoch);
                } else {
                    self.send(from, &Wire::RestorePending { epoch });
                }
            }
            StartVerdict::Refuse(reason) => {
                tracing::info!(%epoch, coordinator = %from, %reason, "refusing a snapshot");
                if from == self.me {
                    st.coordinator.reject(self.me.clone(), epoch, reason);
                } else {
                    self.send(from, &Wire::Reject { epoch, reason });
                }
            }
        }
    }

    /// A piece of node `from`'s part of snapshot `epoch`: queued for the task reading that
    /// node's part, started if there is none. Reading takes milliseconds per piece: not on
    /// this link's task, nor under the engine lock; the parts of different nodes are read in
    /// parallel, and each piece as soon as it is in. The task files the part once its last
    /// piece is read.
    fn on_piece(self: &Arc<Self>, from: &str, epoch: Epoch, piece: Piece) {
        let mut st = self.lock();
        if !st.coordinator.takes_part(epoch, &from.to_owned()) {
            return;
        }
        let Some(collect) = st.collect.as_mut().filter(|c| c.epoch == epoch) else { return };
        let inbound = collect.inbound.entry(from.to_owned()).or_default();
        inbound.first.get_or_insert_with(Instant::now);
        inbound.queue.push_back(piece);
        if inbound.reading {
            return;
        }
        inbound.reading = true;
        drop(st);
        let engine = self.clone();
        let from = from.to_owned();
        offload(move || engine.read_pieces(&from, epoch));
    }

    /// The collection of snapshot `epoch`, if it still takes `node`'s part, before the
    /// decision (from a settled node) or after (not once the node is down, the snapshot
    /// aborted, the deadline passed, the system shuts down, or a piece did not read).
    fn awaiting<'a>(st: &'a mut EngineState, epoch: Epoch, node: &str) -> Option<&'a mut Collect> {
        if !st.coordinator.takes_part(epoch, &node.to_owned()) {
            return None;
        }
        st.collect.as_mut().filter(|c| c.epoch == epoch)
    }

    /// Reads the queued pieces of node `from`'s part of snapshot `epoch` until there are
    /// none, filing the part after its last; stops once the snapshot no longer waits for it.
    fn read_pieces(&self, from: &str, epoch: Epoch) {
        loop {
            let (piece, mut reader) = {
                let mut st = self.lock();
                let Some(inbound) =
                    Self::awaiting(&mut st, epoch, from).and_then(|c| c.inbound.get_mut(from))
                else {
                    return;
                };
                let Some(piece) = inbound.queue.pop_front() else {
                    inbound.reading = false;
                    return;
                };
                (piece, inbound.reader.take().unwrap_or_default())
            };
            let Piece { bytes, records, last } = piece;
            let t = Instant::now();
            let read = reader.piece(bytes, records);
            let spent = t.elapsed();
            let mut st = self.lock();
            let Some(collect) = Self::awaiting(&mut st, epoch, from) else { return };
            let read = match read {
                Ok(()) if !last => {
                    if let Some(inbound) = collect.inbound.get_mut(from) {
                        inbound.reader = Some(reader);
                        inbound.spent += spent;
                    }
                    continue;
                }
                Ok(()) => reader.finish(),
                Err(e) => Err(e),
            };
            let inbound = collect.inbound.remove(from);
            let arriving = inbound.as_ref().and_then(|i| i.first).map(|t| t.elapsed());
            let spent = inbound.map_or(spent, |i| i.spent + spent);
            match read {
                Ok(part) => {
                    let ms = spent.as_secs_f64() * 1e3;
                    let arriving_ms = arriving.map(|t| t.as_secs_f64() * 1e3);
                    tracing::debug!(%epoch, node = %from, actors = part.actors.len(), ms, arriving_ms, "snapshot part read");
                    collect.parts.insert(from.to_owned(), part);
                    st.coordinator.part_received(&from.to_owned(), epoch);
                }
                Err(error) => {
                    tracing::warn!(%epoch, node = %from, %error, "snapshot part does not decode");
                    collect.unreadable = Some((from.to_owned(), error));
                    st.coordinator.part_unreadable(&from.to_owned(), epoch);
                }
            }
            let mut effects = self.pump(&mut st);
            drop(st);
            // Filing a part only ends the collection: an answer at most, never markers.
            debug_assert!(effects.markers.is_none());
            effects.resolve();
            return;
        }
    }

    /// This node's share of completed snapshot `epoch`: every cut state, and per receiver its
    /// backlog at the cut followed by the messages recorded after it, in arrival order.
    fn part(&self, epoch: Epoch, round: Option<Round>) -> NodePart {
        let started = Instant::now();
        let round = round.unwrap_or_else(|| {
            // Never a part that silently leaves this node's actors out: the checkpoint is
            // refused instead (`SnapshotError::Capture`).
            tracing::warn!(%epoch, "completion of a snapshot this node holds no cuts for");
            let mut round = Round::new(0);
            round.problems.push(CaptureProblem::NoCuts { node: self.me.clone(), epoch });
            round
        });
        let mut problems = round.problems;
        let recorded = self.late.take(epoch);
        // Per receiver, the backlog at its cut comes first, then what was recorded after it.
        // Backlogs arrive at the cuts, each already in queue order; late records are in
        // arrival order. So every backlog, then every late record of this node's actors,
        // keeps each receiver's order without grouping records by receiver: one look-up per
        // late record, none per backlog record.
        // Each backlog becomes a chunk of the checkpoint as it is: no record is copied (at
        // ~1M records, one vector of them all took 50-120 ms to fill, most of it page faults).
        let mut in_flight = InFlight::new();
        for backlog in round.backlog {
            in_flight.append_backlog(backlog);
        }
        let own: HashSet<ActorId> = if recorded.records.is_empty() {
            HashSet::new()
        } else {
            round.actors.iter().map(|a| a.id).collect()
        };
        // Recorded here for actors that cut elsewhere (relayed to an actor that moved away,
        // or sent to one that arrived after its cut): they follow this node's own records,
        // grouped per receiver in id order, each group in arrival order.
        let mut elsewhere: BTreeMap<ActorId, Vec<InFlightRecord>> = BTreeMap::new();
        for record in recorded.records {
            match record {
                Ok(r) if own.contains(&r.to) => in_flight.push(r),
                Ok(r) => elsewhere.entry(r.to).or_default().push(r),
                Err(p) => problems.push(p),
            }
        }
        for (_, records) in elsewhere {
            in_flight.append_chunk(records);
        }
        let address = self.remote.as_ref().and_then(|r| r.address());
        let ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(%epoch, actors = round.actors.len(), in_flight = in_flight.len(), ms, "snapshot part made");
        NodePart {
            node: NodeEntry { node: self.me.clone(), address, annotations: self.annotations() },
            actors: round.actors,
            states: round.states,
            in_flight,
            taints: recorded.taints,
            problems,
        }
    }
}

/// The error for the caller of snapshot `epoch`, aborted for `reason`; `unreadable` is the
/// node whose part did not read, and why, if that was the reason.
fn abort_error(
    epoch: Epoch,
    reason: AbortReason<String>,
    unreadable: Option<(String, PartError)>,
) -> SnapshotError {
    let reason = match reason {
        AbortReason::RestorePending(node) => return SnapshotError::RestorePending { node },
        AbortReason::PartLost(node) => AbortCause::PartLost { node },
        AbortReason::PartsLate => AbortCause::PartsLate,
        AbortReason::PartUnreadable(node) => match unreadable {
            Some((n, error)) if n == node => AbortCause::PartDecode { node, error },
            _ => AbortCause::Protocol(AbortReason::PartUnreadable(node)),
        },
        AbortReason::Cancelled => AbortCause::ShuttingDown,
        reason => AbortCause::Protocol(reason),
    };
    SnapshotError::Aborted { epoch, reason }
}

/// One checkpoint from every node's part, or why the cut cannot be used.
///
/// The largest part's vectors become the checkpoint's (its actors come first; on a single
/// node nothing is copied), the others' are appended to them.
fn assemble(epoch: Epoch, mut parts: Vec<NodePart>) -> Result<Checkpoint, SnapshotError> {
    let taints: Vec<Taint> = parts.iter_mut().flat_map(|p| p.taints.drain(..)).collect();
    if !taints.is_empty() {
        return Err(SnapshotError::Inconsistent { epoch, taints });
    }
    let problems: Vec<CaptureProblem> =
        parts.iter_mut().flat_map(|p| p.problems.drain(..)).collect();
    if !problems.is_empty() {
        tracing::warn!(%epoch, problems = problems.len(), "snapshot could not capture everything");
        let captured: HashSet<ActorId> =
            parts.iter().flat_map(|p| p.states.iter().map(|s| s.id)).collect();
        let actors = parts
            .iter()
            .flat_map(|p| p.actors.iter().map(|a| a.id))
            .filter(|id| !captured.contains(id))
            .collect();
        return Err(SnapshotError::Capture { epoch, actors, problems });
    }
    // A part holds its own actors' records first, then those it made for actors that cut
    // elsewhere (relayed after they moved away: they arrived after that cut). Each
    // receiver's own node's records come first, in order; the others follow, in node order.
    let mut relayed = InFlight::new();
    for part in &mut parts {
        // The relayed records are the tail after the last record to one of the part's own
        // actors: found from the end, one look-up per relayed record (there are few) and
        // none per own record.
        if !part.in_flight.is_empty() {
            let own: HashSet<ActorId> = part.actors.iter().map(|a| a.id).collect();
            let split =
                part.in_flight.iter().rposition(|r| own.contains(&r.to)).map_or(0, |i| i + 1);
            relayed.append(&mut part.in_flight.split_off(split));
        }
    }
    let actors: usize = parts.iter().map(|p| p.actors.len()).sum();
    let with_state: usize = parts.iter().map(|p| p.states.len()).sum();
    let nodes = parts.iter().map(|p| p.node.clone()).collect();
    // The first of the largest parts (in node order, as the parts come).
    let largest =
        parts.iter().enumerate().rev().max_by_key(|(_, p)| p.actors.len()).map_or(0, |(i, _)| i);
    let (mut entries, mut states, mut records) = if parts.is_empty() {
        (Vec::new(), Vec::new(), InFlight::new())
    } else {
        let base = parts.remove(largest);
        (base.actors, base.states, base.in_flight)
    };
    entries.reserve_exact(actors - entries.len());
    states.reserve_exact(with_state - states.len());
    for mut part in parts {
        entries.append(&mut part.actors);
        states.append(&mut part.states);
        records.append(&mut part.in_flight);
    }
    records.append(&mut relayed);
    let manifest = Manifest {
        id: CheckpointId(epoch.0),
        epoch,
        created_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        nodes,
        actors: entries,
    };
    Ok(Checkpoint { manifest, states, in_flight: records })
}

/// Runs `work` (milliseconds of writing or reading a part) on the runtime's blocking pool
/// if there is a runtime, else right here.
fn offload(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(work)),
        Err(_) => work(),
    }
}

fn merge(into: &mut Effects, mut more: Effects) {
    if let Some(epoch) = more.markers.take() {
        into.markers(epoch);
    }
    into.releases.append(&mut more.releases);
    if let Some((waiter, answer)) = more.resolve.take() {
        into.answer(waiter, answer);
    }
    if let Some(outgoing) = more.part.take() {
        into.send_part(outgoing);
    }
}

#[cfg(all(test, not(loom)))]
#[path = "engine_tests.rs"]
mod tests;
