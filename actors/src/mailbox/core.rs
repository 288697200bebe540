//! The mailbox synchronization core: one mutex-guarded queue pair, batch hand-off to the
//! consumer, and an atomic flag that lets the consumer see control signals between any two
//! data messages without taking the lock.
//!
//! Senders push under the lock and wake the consumer only when it has parked. The consumer
//! takes the whole data queue in one swap (one lock per batch, not per message), so senders
//! and the consumer rarely contend. Capacity bounds the messages waiting in the shared queue;
//! the batch the consumer has already taken does not count against it.
//!
//! Epoch tagging for snapshots happens here too: items that are stamped on arrival (messages
//! from outside the system, timer messages) take the receiver's epoch under the same lock the
//! cut takes, so each is either before the cut or after it, never both.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use amber_snapshot::{ActorCut, Cut, Dequeue, Epoch, InFlightRecord, Marker};

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::{Arc, Mutex};
use crate::loom::{lock, lock_queue};
use crate::signal::Signal;
use crate::snapshot::{CaptureProblem, Taint};
use crate::system::CutBatch;
use crate::{ActorId, CodecError, Down, ExitReason};

/// Closing an idle mailbox for passivation (`Inbox::close_if_idle`).
mod idle;

/// An actor to tell when this one terminates (or, for an actor on another node, a stand-in
/// that passes the news on).
pub(crate) trait Watch: Send + Sync + 'static {
    /// The watching actor's id.
    fn id(&self) -> ActorId;
    /// Tells it that an actor it watches terminated.
    fn down(&self, down: Down);
}

/// A task to notify when this actor stops.
pub(crate) type Watcher = Arc<dyn Watch>;

impl std::fmt::Debug for dyn Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Watcher({})", self.id())
    }
}

/// What a mailbox knows about its actor.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) id: ActorId,
    pub(crate) type_name: &'static str,
    pub(crate) name: Option<Arc<str>>,
    /// The system's ask timeout and clock (see [`AskClock`](crate::ask_clock::AskClock)).
    pub(crate) asks: Arc<crate::ask_clock::AskClock>,
    pub(crate) late: Arc<LateSink>,
    /// For an actor of this node: its task, as the marker broadcast reaches it to cut the
    /// actor on the spot while the task is between two messages (see [`CutNow`]). Set once
    /// the task exists; empty for refs to actors on other nodes.
    pub(crate) task: std::sync::OnceLock<std::sync::Weak<dyn CutNow>>,
    /// For an actor started again by the keeper of its passivated state after the keeper
    /// cut for a snapshot: where a tell from before that snapshot's cut that reaches it is
    /// recorded (wrapped for the keeper) instead of tainting the snapshot (see
    /// [`Context::spawn_registered_from_kept`](crate::Context::spawn_registered_from_kept)). Set
    /// before the actor is registered.
    pub(crate) born_of: std::sync::OnceLock<std::sync::Arc<crate::passivate::Redirect>>,
}

/// How the marker broadcast cuts an actor whose task is between two messages, without
/// waiting for the task to be scheduled: the cut is the one the task would take on finding
/// the marker first on its control lane, at the same point of its message stream.
pub(crate) trait CutNow: Send + Sync {
    /// Takes the actor's cut for snapshot `epoch` now (or defers it by the ask rule) if its
    /// task is parked or waiting for its turn between two messages; `true` then, and when it
    /// has already cut for `epoch`. `false` if the task is inside a handler, not started
    /// yet, or gone: the marker then goes on its control lane.
    ///
    /// A cut it takes goes into `batch`, to be filed with the engine with the batch's
    /// others; the actor's runner stays with the batch until then.
    fn cut_now(self: std::sync::Arc<Self>, epoch: Epoch, batch: &mut CutBatch) -> bool;

    /// Aborts the task (the system's shutdown deadline passed while it still ran).
    fn abort_task(&self);

    /// The actor's cell as `Any`, for an ask to serve on its asker's thread (see
    /// [`crate::inline`]), which knows the actor's type.
    fn as_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
}

/// An item that can be carried by a mailbox.
pub(crate) trait Stamp {
    /// Called under the mailbox lock when the item is enqueued, with the receiver's epoch.
    fn on_arrival(&mut self, receiver_epoch: Epoch);
    /// The item's epoch tag (after [`on_arrival`](Stamp::on_arrival)).
    fn tag(&self) -> Epoch;
    /// A copy of the item as an in-flight record addressed to `to`.
    fn record(&self, to: ActorId) -> Result<InFlightRecord, CodecError>;
    /// Whether the item is an ask from an actor (whose handler awaits the reply).
    fn asked_by_actor(&self) -> bool;
}

/// Where messages that cross a cut after it was taken ("late" messages, and dead letters
/// refused by an actor that stopped after its cut) are recorded, in arrival order.
///
/// Its lock is a leaf: it is taken under a mailbox lock and takes no other lock.
#[derive(Default)]
pub(crate) struct LateSink {
    records: Mutex<Vec<Late>>,
    taints: Mutex<Vec<(Epoch, Taint)>>,
    /// Told when something waits across a cut (see [`LateSink::cut_crossed`]).
    on_cross: Mutex<Option<CrossHook>>,
}

/// What [`LateSink::cut_crossed`] calls (set once by the system; not part of the modelled
/// synchronization, so a plain `std` `Arc`).
pub(crate) type CrossHook = std::sync::Arc<dyn Fn(Epoch) + Send + Sync>;

impl std::fmt::Debug for LateSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateSink").finish_non_exhaustive()
    }
}

/// One late recording: for snapshot `snapshot`, the message, or why it could not be copied.
#[derive(Debug)]
pub(crate) struct Late {
    pub(crate) snapshot: Epoch,
    pub(crate) record: Result<InFlightRecord, CaptureProblem>,
}

/// What [`LateSink::take`] hands over for one snapshot.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// Messages recorded after their receiver's cut, in arrival order (or why one could not
    /// be copied).
    pub(crate) records: Vec<Result<InFlightRecord, CaptureProblem>>,
    /// Why the snapshot is not a consistent cut: information crossed it through a side
    /// channel (an ask reply from after the cut, a ref to an actor born after it).
    pub(crate) taints: Vec<Taint>,
}

impl LateSink {
    /// Appends a recording.
    pub(crate) fn push(&self, late: Late) {
        lock(&self.records).push(late);
    }

    /// Sets what [`cut_crossed`](Self::cut_crossed) calls (the snapshot engine).
    pub(crate) fn on_cross(&self, hook: CrossHook) {
        *lock(&self.on_cross) = Some(hook);
    }

    /// Something waits across the cut of `snapshot`, and deferred cuts must not add to the
    /// wait, or actors could wait on each other for good. Called without any mailbox lock,
    /// when:
    /// - an ask from an actor that had not cut reached its responder after the responder's
    ///   cut (the asker will take in a reply from after that cut: the snapshot cannot be
    ///   consistent, its asker taints it);
    /// - a sender that has not cut waits for room in the mailbox of an actor that has.
    ///
    /// Every deferred cut of the node is released, and through the coordinator those of
    /// every other node ([`amber_snapshot::NodeSnapshot::ask_crossed`]): a wait across a
    /// cut is the first link of every cycle of waits deferred cuts could close.
    pub(crate) fn cut_crossed(&self, snapshot: Epoch) {
        let hook = lock(&self.on_cross).clone();
        if let Some(hook) = hook {
            hook(snapshot);
        }
    }

    /// Marks snapshot `snapshot` as not a consistent cut, with the reason.
    pub(crate) fn taint(&self, snapshot: Epoch, taint: Taint) {
        lock(&self.taints).push((snapshot, taint));
    }

    /// Takes every recording and taint for `snapshot`; those of other snapshots stay (an
    /// earlier one may still owe its part: a later snapshot overtook it on this node before
    /// its coordinator's `Complete`). What nobody will take, [`retain`](Self::retain) drops.
    pub(crate) fn take(&self, snapshot: Epoch) -> Recorded {
        let mut out = Recorded::default();
        let mut records = lock(&self.records);
        for late in std::mem::take(&mut *records) {
            if late.snapshot == snapshot {
                out.records.push(late.record);
            } else {
                records.push(late);
            }
        }
        drop(records);
        let mut taints = lock(&self.taints);
        for (epoch, reason) in std::mem::take(&mut *taints) {
            if epoch == snapshot {
                out.taints.push(reason);
            } else {
                taints.push((epoch, reason));
            }
        }
        out
    }

    /// Drops the recordings and taints of every snapshot `keep` says nobody will take
    /// (aborted, or completed without this node's part).
    pub(crate) fn retain(&self, keep: impl Fn(Epoch) -> bool) {
        lock(&self.records).retain(|late| keep(late.snapshot));
        lock(&self.taints).retain(|(epoch, _)| keep(*epoch));
    }
}

/// Why a push did not queue the item; the item is given back.
#[derive(Debug)]
pub(crate) enum PushError<T, M = ()> {
    /// The bounded queue is at capacity.
    Full(T),
    /// The mailbox no longer accepts data messages.
    Closed(T),
    /// The actor moved to another node (see [`Inbox::depart`]): the item was not queued,
    /// and goes on to where it moved, `M`, as the mailbox was told at the hand-off. The
    /// mailbox only says so; the caller forwards it.
    Moved(T, M),
    /// The actor passivated with a redirect (see [`Inbox::close_if_idle`]): the item was
    /// neither queued nor recorded; the caller redirects it (a message from another node)
    /// or gives it back to its sender (a local send).
    Passivated(T),
}

/// Whether the sender of a message learns that the mailbox refused it, which decides whether
/// a refused message is in flight across a cut (DESIGN.md, "Global snapshots", point 9).
///
/// A message refused because its receiver stopped (closed, drained, terminated) after its cut
/// is, for a snapshot, either still with its sender or lost in the channel:
///
/// - If the sender is told ([`Reported`](Refusal::Reported): every local send, whose error
///   comes back to the caller, and every ask, whose asker gets an error reply), it still
///   holds what the message carried (a bank keeps the money it could not pay): recording the
///   message too would count it twice. It is not recorded.
/// - If the sender is never told ([`Silent`](Refusal::Silent): a tell from another node,
///   which that node's link accepted), the message left its sender for good, exactly as one
///   accepted and then dropped as a dead letter: it was in flight at the receiver's cut and
///   is recorded, like any message arriving after that cut. (Once the actor has left the
///   registry, `Host::deliver` records such a tell from the cut it kept.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The sender learns of the refusal: a refused message is not recorded.
    Reported,
    /// The sender never learns of it: a refused message that crosses the receiver's cut is
    /// recorded in flight.
    Silent,
}

/// What brings the consumer to its cut: the actor's [`ActorCut`] decides, under the lock,
/// whether it cuts now, defers, or is not behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CutFor {
    /// `Marker(e)` came off the control lane (or the node released the cut deferred for
    /// `e`): [`ActorCut::on_marker_at`].
    Marker(Epoch),
    /// A data message tagged `e`, ahead of the actor, was dequeued (its sender had already
    /// cut for `e`): [`ActorCut::on_dequeue_at`]. The message is not part of the backlog.
    Dequeued(Epoch),
}

/// What the consumer gets next.
#[derive(Debug)]
pub(crate) enum Next<T> {
    /// A control signal; it overtakes every queued data message.
    Control(Signal),
    /// The next data message, in per-sender FIFO order.
    Data(T),
    /// Nothing is queued now (only from [`Inbox::try_next`]).
    Empty,
    /// The mailbox is closed and its data queue is drained.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// Accepts data and control.
    Open,
    /// Refuses new data; the queued rest may still be drained. Control is still accepted.
    Closed,
    /// The actor has finished; everything is refused.
    Terminated,
    /// The actor moved to another node (live migration): data messages are refused with
    /// [`PushError::Moved`], for the sender to forward; control signals are refused.
    Moved,
}

#[derive(Debug)]
struct Queue<T, M> {
    data: VecDeque<T>,
    control: VecDeque<Signal>,
    capacity: usize,
    lifecycle: Lifecycle,
    /// The consumer's waker, present only while it is parked.
    rx_waker: Option<Waker>,
    /// Senders waiting for room in a full bounded queue, first come first served: room that
    /// frees up is granted to them in order (the first `granted` hold a slot each, reserved
    /// until they take it), and a sender that is not waiting gets room only once every
    /// waiting sender has been granted one.
    tx_waiters: VecDeque<Waiting>,
    /// How many of `tx_waiters` (a prefix) have been granted a slot.
    granted: usize,
    /// The ticket of the next sender to wait.
    next_ticket: u64,
    /// Tasks waiting for the actor to terminate.
    exit_waiters: Vec<Waker>,
    /// The receiving actor's place in the snapshot protocol (its epoch, its latest cut),
    /// moved forward only by the consumer's cut, always under this lock.
    cut: ActorCut,
    /// Actors watching this one; told once it terminates.
    watchers: Vec<Watcher>,
    /// Why the actor terminated, once it has.
    exit: Option<ExitReason>,
    /// Where the actor went, once it moved to another node.
    moved: Option<M>,
    /// Set when the data lane was closed for a passivation whose messages are redirected
    /// (see [`Inbox::close_if_idle`]): refused pushes are [`PushError::Passivated`], never
    /// recorded here, also once the actor has terminated.
    passivated: bool,
}

/// A sender waiting in line for room in a full bounded queue.
#[derive(Debug)]
struct Waiting {
    ticket: u64,
    waker: Waker,
}

impl<T, M> Queue<T, M> {
    /// Whether a bounded push may take a slot now: a sender granted one takes it (leaving
    /// the line); any other only if nobody waits in line and a slot is free beyond those
    /// granted. (`wait`: the sender's context and place in line, if it waits.)
    #[inline]
    fn room_for(&mut self, wait: &Option<(&mut Context<'_>, &mut Option<u64>)>) -> bool {
        if let Some((_, Some(ticket))) = wait
            && let Some(at) = self.tx_waiters.iter().position(|w| w.ticket == *ticket)
        {
            if at >= self.granted {
                return false; // still in line
            }
            self.tx_waiters.remove(at);
            self.granted -= 1;
            return true; // the slot reserved for it
        }
        self.tx_waiters.len() == self.granted && self.data.len() + self.granted < self.capacity
    }

    /// Puts the sender in line (once), or refreshes its waker.
    fn wait_in_line(&mut self, cx: &mut Context<'_>, ticket: &mut Option<u64>) {
        if let Some(t) = *ticket
            && let Some(w) = self.tx_waiters.iter_mut().find(|w| w.ticket == t)
        {
            if !w.waker.will_wake(cx.waker()) {
                w.waker = cx.waker().clone();
            }
            return;
        }
        let t = self.next_ticket;
        self.next_ticket += 1;
        *ticket = Some(t);
        self.tx_waiters.push_back(Waiting { ticket: t, waker: cx.waker().clone() });
    }

    /// Grants the free slots to the senders in line, first come first served; returns the
    /// wakers of those granted one now.
    #[inline]
    fn grant(&mut self) -> Vec<Waker> {
        if self.granted == self.tx_waiters.len() {
            return Vec::new(); // nobody waits for a slot (every batch taken checks)
        }
        self.grant_in_line()
    }

    #[cold]
    fn grant_in_line(&mut self) -> Vec<Waker> {
        let mut wake = Vec::new();
        while self.granted < self.tx_waiters.len() && self.data.len() + self.granted < self.capacity
        {
            wake.push(self.tx_waiters[self.granted].waker.clone());
            self.granted += 1;
        }
        wake
    }

    /// Empties the line (the mailbox no longer takes data): every waiting sender is woken,
    /// to find out.
    fn release_all(&mut self) -> Vec<Waker> {
        self.granted = 0;
        if self.tx_waiters.is_empty() {
            return Vec::new(); // the usual case: no collecting over an empty drain
        }
        self.tx_waiters.drain(..).map(|w| w.waker).collect()
    }
}

/// The shared half of a mailbox: senders and the consumer both hold it.
///
/// `T` is the data item; `M` says where the actor went if it moves to another node (the
/// mailbox keeps it and hands it back with every refused push, see [`PushError::Moved`];
/// it knows nothing else of other nodes).
#[derive(Debug)]
pub(crate) struct MailboxCore<T, M = ()> {
    pub(crate) meta: Meta,
    queue: crate::loom::QueueMutex<Queue<T, M>>,
    /// Set (under the lock) when the control lane is non-empty; read by the consumer between
    /// data messages without locking.
    control_pending: AtomicBool,
}

impl<T: Stamp, M: Clone> MailboxCore<T, M> {
    /// A new open mailbox holding at most `capacity` waiting data messages (for unit and
    /// loom tests; the system builds mailboxes [`with_cut`](Self::with_cut)).
    #[cfg(any(test, loom))]
    pub(crate) fn new(meta: Meta, capacity: usize, epoch: Epoch) -> Self {
        Self::with_cut(meta, capacity, ActorCut::new(epoch))
    }

    /// A new open mailbox whose actor is at `cut` in the snapshot protocol.
    pub(crate) fn with_cut(meta: Meta, capacity: usize, cut: ActorCut) -> Self {
        MailboxCore {
            meta,
            queue: crate::loom::QueueMutex::new(Queue {
                data: VecDeque::new(),
                control: VecDeque::new(),
                capacity: capacity.max(1),
                lifecycle: Lifecycle::Open,
                rx_waker: None,
                tx_waiters: VecDeque::new(),
                granted: 0,
                next_ticket: 0,
                exit_waiters: Vec::new(),
                cut,
                watchers: Vec::new(),
                exit: None,
                moved: None,
                passivated: false,
            }),
            control_pending: AtomicBool::new(false),
        }
    }

    /// Pushes a data message without waiting (no room while senders wait for it).
    #[inline]
    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T, M>> {
        self.push(item, None, true, Refusal::Reported, false).map(drop)
    }

    /// Pushes a data message, or waits in line for room: `ticket` is the sender's place in
    /// line (`None` until it first waits); `cx` is woken once room is granted to it. A sender
    /// that stops waiting must [`cancel_wait`](Self::cancel_wait) its ticket.
    #[inline]
    pub(crate) fn poll_push(
        &self,
        cx: &mut Context<'_>,
        item: T,
        ticket: &mut Option<u64>,
    ) -> Result<(), PushError<T, M>> {
        self.push(item, Some((cx, ticket)), true, Refusal::Reported, false).map(drop)
    }

    /// A sender gives up its place in line (its send was dropped while waiting); a slot
    /// granted to it goes to the next in line.
    pub(crate) fn cancel_wait(&self, ticket: u64) {
        let wake = {
            let mut q = lock_queue(&self.queue);
            let Some(at) = q.tx_waiters.iter().position(|w| w.ticket == ticket) else { return };
            if at < q.granted {
                q.granted -= 1;
            }
            q.tx_waiters.remove(at);
            q.grant()
        };
        wake.into_iter().for_each(Waker::wake);
    }

    /// Pushes a message sent from inside a handler, regardless of capacity (the mailbox
    /// rule: a handler never waits for room, or actors telling each other, or themselves,
    /// could wait on each other for good). Refused only if closed; if moved, the caller
    /// forwards it.
    #[inline]
    pub(crate) fn push_overflow(&self, item: T) -> Result<(), PushError<T, M>> {
        self.push(item, None, false, Refusal::Reported, false).map(drop)
    }

    /// Pushes a message that arrived from another node, regardless of capacity: the link's
    /// reader must not block behind one actor (backpressure across nodes is the link's
    /// bounded queue and TCP), and per-sender order must hold. `refusal` says whether the
    /// sender learns of a refusal (an ask: its asker gets an error reply) or not (a tell).
    pub(crate) fn push_remote(&self, item: T, refusal: Refusal) -> Result<(), PushError<T, M>> {
        self.push(item, None, false, refusal, false).map(drop)
    }

    /// Pushes a data message without waiting, as [`try_push`](Self::try_push) does, for a
    /// sender that holds the consumer's runner to handle the message itself (an ask served
    /// on its asker's thread, see [`crate::inline`]): into an empty queue, leaving the
    /// consumer's waker registered (`Ok(true)`: the sender's to handle); behind other
    /// messages as any push, waking the consumer (`Ok(false)`: the consumer's to handle, in
    /// order, once the sender gives its runner back).
    #[inline]
    pub(crate) fn push_quiet(&self, item: T) -> Result<bool, PushError<T, M>> {
        self.push(item, None, true, Refusal::Reported, true)
    }

    /// Wakes the consumer if it parked (its task has work that did not come through the
    /// queue: what an ask served on its asker's thread left it).
    pub(crate) fn wake_consumer(&self) {
        let waker = lock_queue(&self.queue).rx_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The one push path: say where it went if the actor moved (the caller forwards it);
    /// refuse if closed (a refusal the sender never learns of is recorded if it crosses the
    /// cut, see [`Refusal`]); refuse if full (registering `cx`, if any, to be woken when room
    /// frees up); else stamp, record if late, enqueue, and wake the consumer if it parked
    /// (unless `quiet` and the queue was empty: the sender handles it in the consumer's
    /// place, and `Ok(true)` says so).
    #[inline]
    fn push(
        &self,
        mut item: T,
        wait: Option<(&mut Context<'_>, &mut Option<u64>)>,
        bounded: bool,
        refusal: Refusal,
        quiet: bool,
    ) -> Result<bool, PushError<T, M>> {
        let (waker, crossed, alone) = {
            let mut q = lock_queue(&self.queue);
            if q.lifecycle != Lifecycle::Open {
                if let Some(moved) = &q.moved {
                    // Decided under the lock that the hand-off took: whatever was queued
                    // before left with the actor, so this goes after it.
                    return Err(PushError::Moved(item, moved.clone()));
                }
                if q.passivated {
                    // Decided under the lock that closed the lane: the caller redirects it
                    // (whoever it goes to records it), so it is not recorded here.
                    return Err(PushError::Passivated(item));
                }
                if refusal == Refusal::Silent {
                    // Lost in the channel, as a dead letter: stamped like any arrival (an
                    // outside message is input, after the cut), recorded if it crosses it.
                    item.on_arrival(q.cut.arrival_tag());
                    let _ = self.record_if_late(&q, &item);
                }
                return Err(PushError::Closed(item));
            }
            if bounded && !q.room_for(&wait) {
                // A sender that has not cut waits on an actor that has: it must not also
                // wait on a deferred cut (see `LateSink::cut_crossed`).
                let waits_across = q.cut.recording(item.tag()).filter(|_| wait.is_some());
                if let Some((cx, ticket)) = wait {
                    q.wait_in_line(cx, ticket);
                }
                drop(q);
                if let Some(snapshot) = waits_across {
                    self.meta.late.cut_crossed(snapshot);
                }
                return Err(PushError::Full(item));
            }
            item.on_arrival(q.cut.arrival_tag());
            let crossed = self.record_if_late(&q, &item).filter(|_| item.asked_by_actor());
            let alone = quiet && q.data.is_empty();
            q.data.push_back(item);
            (if alone { None } else { q.rx_waker.take() }, crossed, alone)
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(snapshot) = crossed {
            self.meta.late.cut_crossed(snapshot);
        }
        Ok(alone)
    }

    /// `item`, for `actor`, recorded as in flight to the actor of `of` (wrapped for it);
    /// `None` if it is an ask (asks are not redirected) or does not encode.
    fn record_for(
        of: &crate::passivate::Redirect,
        item: &T,
        actor: ActorId,
    ) -> Option<Result<InFlightRecord, CaptureProblem>> {
        let mut record = item.record(actor).ok()?;
        if record.ask {
            return None;
        }
        match (of.wrap)(record.payload.to_vec()) {
            Ok(payload) => {
                record.to = of.to;
                record.payload = payload.into();
                Some(Ok(record))
            }
            Err(error) => Some(Err(CaptureProblem::MessageEncode { to: of.to, error })),
        }
    }

    /// Under the lock: if the item crosses this actor's latest cut (sent before its sender's
    /// cut, arriving after ours), records a copy for that snapshot.
    ///
    /// A message from an older epoch into an actor that never cut means the sender, still
    /// before its cut, found an actor born after that snapshot started (through the
    /// registry, or a ref from outside): the message would vanish from the snapshot, so the
    /// snapshot is tainted instead.
    /// Returns the snapshot it was recorded for, if any.
    #[inline]
    fn record_if_late(&self, q: &Queue<T, M>, item: &T) -> Option<Epoch> {
        let tag = item.tag();
        if let Some(snapshot) = q.cut.recording(tag) {
            let to = self.meta.id;
            let record =
                item.record(to).map_err(|error| CaptureProblem::MessageEncode { to, error });
            self.meta.late.push(Late { snapshot, record });
            return Some(snapshot);
        } else if tag < q.cut.epoch() && q.cut.last_cut().is_none() {
            let snapshot = q.cut.epoch();
            let actor = self.meta.id;
            if let Some(of) = self.meta.born_of.get()
                && !item.asked_by_actor()
                && let Some(record) = Self::record_for(of, item, actor)
            {
                // Started from a state the keeper's cut holds: the tell is in flight to
                // the keeper, which would start it again from that state and send it on.
                self.meta.late.push(Late { snapshot, record });
                return Some(snapshot);
            }
            self.meta.late.taint(snapshot, Taint::BornAfterSnapshot { actor, tag, born: snapshot });
        }
        None
    }

    /// Pushes a control signal. Control ignores capacity and is refused only once the actor
    /// has terminated (the signal is given back).
    pub(crate) fn push_control(&self, signal: Signal) -> Result<(), Signal> {
        let waker = {
            let mut q = lock_queue(&self.queue);
            if matches!(q.lifecycle, Lifecycle::Terminated | Lifecycle::Moved) {
                return Err(signal);
            }
            q.control.push_back(signal);
            self.control_pending.store(true, Ordering::Release);
            q.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Refuses further data messages; queued ones can still be drained.
    pub(crate) fn close(&self) {
        let (rx, txs) = {
            let mut q = lock_queue(&self.queue);
            if q.lifecycle == Lifecycle::Open {
                q.lifecycle = Lifecycle::Closed;
            }
            (q.rx_waker.take(), q.release_all())
        };
        wake_all(rx, txs);
    }

    /// Marks the actor finished: refuses everything, wakes every waiter, and returns the data
    /// and control items still queued (dead letters, dropped by the caller outside the lock)
    /// and the watchers to tell.
    pub(crate) fn terminate(&self, reason: ExitReason) -> Terminated<T> {
        let (data, rx, txs, exits, watchers) = {
            let mut q = lock_queue(&self.queue);
            q.lifecycle = Lifecycle::Terminated;
            q.exit = Some(reason);
            q.control.clear(); // signals hold no user values
            self.control_pending.store(false, Ordering::Release);
            (
                std::mem::take(&mut q.data),
                q.rx_waker.take(),
                q.release_all(),
                std::mem::take(&mut q.exit_waiters),
                std::mem::take(&mut q.watchers),
            )
        };
        wake_all(rx, txs);
        for w in exits {
            w.wake();
        }
        Terminated { data, watchers }
    }

    /// Where the actor went, if it moved to another node (also once its forwarding ended:
    /// what is still pushed goes on there).
    pub(crate) fn moved_to(&self) -> Option<M> {
        lock_queue(&self.queue).moved.clone()
    }

    /// Ends the forwarding of a moved actor (it stopped on its new node, or that node is
    /// gone for good): the mailbox terminates with `reason`. Returns the watchers to tell,
    /// or `None` if the actor had not moved.
    pub(crate) fn terminate_moved(&self, reason: ExitReason) -> Option<Vec<Watcher>> {
        if lock_queue(&self.queue).lifecycle != Lifecycle::Moved {
            return None;
        }
        Some(self.terminate(reason).watchers)
    }

    /// Whether the actor has terminated.
    pub(crate) fn is_terminated(&self) -> bool {
        lock_queue(&self.queue).lifecycle == Lifecycle::Terminated
    }

    /// Ready once the actor has terminated.
    pub(crate) fn poll_terminated(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = lock_queue(&self.queue);
        if q.lifecycle == Lifecycle::Terminated {
            return Poll::Ready(());
        }
        if !q.exit_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            q.exit_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Why the actor terminated, if it has.
    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        lock_queue(&self.queue).exit.clone()
    }

    /// Registers `watcher` to be told when this actor terminates. If it already has, the
    /// watcher is given back with the reason, so it can be told at once.
    pub(crate) fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, ExitReason)> {
        let mut q = lock_queue(&self.queue);
        match &q.exit {
            Some(reason) => Err((watcher, reason.clone())),
            None => {
                q.watchers.push(watcher);
                Ok(())
            }
        }
    }

    /// Enqueues restored in-flight messages, in order and regardless of capacity, before
    /// the actor starts. They keep the tags they were recorded with.
    pub(crate) fn restore_queue(&self, items: impl IntoIterator<Item = T>) {
        lock_queue(&self.queue).data.extend(items);
    }

    /// How many data messages the queue holds before senders wait (`usize::MAX`:
    /// unbounded), as a snapshot records it.
    pub(crate) fn capacity(&self) -> usize {
        lock_queue(&self.queue).capacity
    }

    /// Removes `id` from the watchers.
    pub(crate) fn remove_watcher(&self, id: ActorId) {
        lock_queue(&self.queue).watchers.retain(|w| w.id() != id);
    }

    /// The actor's place in the snapshot protocol (its epoch and latest cut).
    pub(crate) fn cut_state(&self) -> ActorCut {
        lock_queue(&self.queue).cut
    }

    /// The number of data messages waiting in the shared queue (not the consumer's batch).
    pub(crate) fn queued(&self) -> usize {
        lock_queue(&self.queue).data.len()
    }
}

impl<T, M> Watch for MailboxCore<T, M>
where
    T: Stamp + Send + 'static,
    M: Clone + Send + Sync + 'static,
{
    fn id(&self) -> ActorId {
        self.meta.id
    }

    fn down(&self, down: Down) {
        let _ = self.push_control(Signal::Down(down));
    }
}

/// What [`MailboxCore::terminate`] leaves behind.
pub(crate) struct Terminated<T> {
    /// Data messages never handled (dead letters).
    pub(crate) data: VecDeque<T>,
    /// Actors to tell.
    pub(crate) watchers: Vec<Watcher>,
}

fn wake_all(rx: Option<Waker>, txs: Vec<Waker>) {
    if let Some(w) = rx {
        w.wake();
    }
    for w in txs {
        w.wake();
    }
}

/// The consumer's half: the shared core plus the batch it has taken out of it.
#[derive(Debug)]
pub(crate) struct Inbox<T, M = ()> {
    core: Arc<MailboxCore<T, M>>,
    batch: VecDeque<T>,
    /// The actor's epoch, as its [`ActorCut`] under the lock has it: only the consumer's
    /// cut moves it, and it reads it here without locking (every message it handles needs
    /// it).
    epoch: Epoch,
    /// While the actor defers its cut for a snapshot (the ask rule): that snapshot's epoch;
    /// data messages tagged with it or later (sent after their senders' cuts) are set aside
    /// in `held` until the cut. (Tags between the actor's epoch and it belong to aborted
    /// snapshots: processing them before the cut is sound.)
    hold: Option<Epoch>,
    /// Messages set aside while the cut is deferred, in arrival order.
    held: VecDeque<T>,
}

impl<T: Stamp, M: Clone> Inbox<T, M> {
    /// The consumer for `core`. There must be exactly one per mailbox.
    pub(crate) fn new(core: Arc<MailboxCore<T, M>>) -> Self {
        let epoch = core.cut_state().epoch();
        Inbox { core, batch: VecDeque::new(), epoch, hold: None, held: VecDeque::new() }
    }

    /// The actor's epoch (see [`ActorCut::epoch`]), without locking: the consumer's own
    /// cuts are the only thing that moves it.
    #[inline]
    pub(crate) fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The snapshot whose cut the actor defers, if any.
    pub(crate) fn deferred(&self) -> Option<Epoch> {
        self.hold
    }

    /// Sets aside a message the consumer took but must not process before its deferred cut
    /// (see [`cut`](Self::cut)); it is the first of those set aside.
    pub(crate) fn hold_back(&mut self, item: T) {
        debug_assert!(self.hold.is_some(), "nothing is held back while no cut is deferred");
        self.held.push_front(item);
    }

    /// The actor is about to serve an ask from an actor of depth `asker` (see
    /// [`ActorCut::on_ask`]): its new depth, if it changed, as `(from, to)`.
    pub(crate) fn on_ask(&mut self, asker: u8) -> Option<(u8, u8)> {
        lock_queue(&self.core.queue).cut.on_ask(asker)
    }

    /// The next item, or `Poll::Pending` with the consumer's waker registered.
    #[cfg(loom)]
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next<T>> {
        match self.next_inner(Some(cx)) {
            Next::Empty => Poll::Pending,
            next => Poll::Ready(next),
        }
    }

    /// The next item; [`Next::Empty`] when nothing is queued, with the consumer's waker
    /// registered (where a poll would return `Poll::Pending`).
    pub(crate) fn next_or_register(&mut self, cx: &mut Context<'_>) -> Next<T> {
        self.next_inner(Some(cx))
    }

    /// Nothing is waiting on the consumer's side: no message in hand or set aside, no
    /// control signal (the queue itself is checked as a message is pushed, see
    /// [`MailboxCore::push_quiet`]).
    pub(crate) fn is_idle(&self) -> bool {
        self.batch.is_empty()
            && self.held.is_empty()
            && !self.core.control_pending.load(Ordering::Acquire)
    }

    /// The next control signal, if one is waiting (data messages stay queued).
    pub(crate) fn next_control(&mut self) -> Option<Signal> {
        if !self.core.control_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut q = lock_queue(&self.core.queue);
        let signal = q.control.pop_front();
        if q.control.is_empty() {
            self.core.control_pending.store(false, Ordering::Release);
        }
        signal
    }

    /// The next item without waiting: [`Next::Empty`] when nothing is queued (a waker the
    /// consumer registered earlier stays registered).
    pub(crate) fn try_next(&mut self) -> Next<T> {
        self.next_inner(None)
    }

    fn next_inner(&mut self, mut cx: Option<&mut Context<'_>>) -> Next<T> {
        let Some(hold) = self.hold else { return self.next_raw(cx) };
        loop {
            match self.next_raw(cx.as_deref_mut()) {
                // Sent after its sender's cut while ours is deferred: it waits for our cut.
                Next::Data(item) if ActorCut::held(hold, item.tag()) => self.held.push_back(item),
                next => return next,
            }
        }
    }

    fn next_raw(&mut self, cx: Option<&mut Context<'_>>) -> Next<T> {
        // Fast path: a batch in hand and no control signal waiting.
        if !self.core.control_pending.load(Ordering::Acquire)
            && let Some(item) = self.batch.pop_front()
        {
            return Next::Data(item);
        }
        let txs;
        let next = {
            let mut q = lock_queue(&self.core.queue);
            if let Some(signal) = q.control.pop_front() {
                if q.control.is_empty() {
                    self.core.control_pending.store(false, Ordering::Release);
                }
                return Next::Control(signal);
            }
            if let Some(item) = self.batch.pop_front() {
                return Next::Data(item);
            }
            if q.data.is_empty() {
                if q.lifecycle != Lifecycle::Open {
                    return Next::Closed;
                }
                if let Some(cx) = cx {
                    match &q.rx_waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => q.rx_waker = Some(cx.waker().clone()),
                    }
                }
                return Next::Empty;
            }
            std::mem::swap(&mut self.batch, &mut q.data);
            txs = q.grant();
            match self.batch.pop_front() {
                Some(item) => Next::Data(item),
                None => Next::Empty,
            }
        };
        for w in txs {
            w.wake();
        }
        next
    }

    /// Takes the cut `why` calls for if the actor is behind it: atomically with respect to
    /// senders, moves every waiting message into the consumer's batch and advances the
    /// actor's epoch. Returns the cut; the batch, which now holds exactly the backlog at the
    /// cut (in queue order: messages in it tagged below `cut.to` are in flight); and the ids
    /// of the actors watching this one, read under the same lock.
    ///
    /// `released` is the ask depth the node releases (see [`ActorCut::on_marker_at`]): an
    /// actor deeper than that defers its cut instead ([`Cutting::Deferred`]); from then on,
    /// data messages tagged above its epoch are set aside until the cut, which puts them
    /// back at the front of the batch, in arrival order. (A set-aside message tagged below
    /// the cut's epoch, sent in an aborted snapshot's epoch, is in flight across this cut
    /// like any other in the batch.)
    pub(crate) fn cut(&mut self, why: CutFor, released: u8) -> Cutting<'_, T> {
        let (cut, txs, watchers) = {
            let mut q = lock_queue(&self.core.queue);
            if matches!(q.lifecycle, Lifecycle::Terminated | Lifecycle::Moved) {
                // Stopped (its final cut is taken) or gone to another node (it cuts there):
                // a marker reaching it late finds nothing to cut.
                return Cutting::Stale;
            }
            let cut = match why {
                CutFor::Marker(to) => match q.cut.on_marker_at(to, released) {
                    Marker::Ignore => return Cutting::Stale,
                    Marker::Defer(deferred) => {
                        self.hold = Some(q.cut.deferred().unwrap_or(deferred));
                        return Cutting::Deferred;
                    }
                    Marker::Cut(cut) => cut,
                },
                CutFor::Dequeued(tag) => match q.cut.on_dequeue_at(tag, released) {
                    Dequeue::Process => return Cutting::Stale,
                    Dequeue::Hold => {
                        self.hold = Some(q.cut.deferred().unwrap_or(tag));
                        return Cutting::Deferred;
                    }
                    Dequeue::CutThenProcess(cut) => cut,
                },
            };
            if self.batch.is_empty() {
                // The queue's buffer becomes the batch whole (nothing is copied), and the
                // queue gets the batch's drained one.
                std::mem::swap(&mut self.batch, &mut q.data);
            } else if self.batch.capacity() - self.batch.len() < q.data.len()
                && q.data.capacity() - q.data.len() >= self.batch.len()
            {
                // The batch's buffer has no room for the queue, the queue's has room for the
                // batch: the batch goes in front of the queue, in its buffer (no reallocation
                // under the lock), which then becomes the batch.
                while let Some(item) = self.batch.pop_back() {
                    q.data.push_front(item);
                }
                std::mem::swap(&mut self.batch, &mut q.data);
            } else {
                self.batch.append(&mut q.data);
            }
            if !self.held.is_empty() {
                self.held.append(&mut self.batch);
                std::mem::swap(&mut self.held, &mut self.batch);
            }
            self.hold = None;
            self.epoch = q.cut.epoch();
            let watchers = q.watchers.iter().map(|w| w.id()).collect();
            (cut, q.grant(), watchers)
        };
        for w in txs {
            w.wake();
        }
        Cutting::Cut(cut, &self.batch, watchers)
    }

    /// Hands the actor over to another node (live migration). Under the lock, the consumer's
    /// batch and then every waiting message, in order, are given to `hand_off` with the
    /// actor's cut; if it takes them (it must drain the queue it is given), the mailbox
    /// refuses every message pushed from then on with [`PushError::Moved`] and `moved`, for
    /// its sender to forward, so nothing sent after the hand-off can overtake what left
    /// with it. If it fails, everything stays queued.
    ///
    /// `None` if the mailbox no longer accepts messages (the actor is stopping).
    pub(crate) fn depart<R, E>(
        &mut self,
        moved: M,
        hand_off: impl FnOnce(&mut VecDeque<T>, ActorCut) -> Result<R, E>,
    ) -> Option<Result<R, E>> {
        let (result, rx, txs) = {
            let mut q = lock_queue(&self.core.queue);
            if q.lifecycle != Lifecycle::Open {
                return None;
            }
            self.batch.append(&mut q.data);
            if !self.held.is_empty() {
                self.held.append(&mut self.batch);
                std::mem::swap(&mut self.held, &mut self.batch);
            }
            match hand_off(&mut self.batch, q.cut) {
                Ok(r) => {
                    debug_assert!(self.batch.is_empty(), "hand_off must take every message");
                    q.lifecycle = Lifecycle::Moved;
                    q.moved = Some(moved);
                    (Ok(r), q.rx_waker.take(), q.release_all())
                }
                Err(e) => (Err(e), None, Vec::new()),
            }
        };
        // Senders waiting for room retry, and now forward.
        wake_all(rx, txs);
        Some(result)
    }

    /// Terminates the mailbox and drops everything still queued, the consumer's batch
    /// included. Returns the number of dead letters and the watchers to tell.
    pub(crate) fn terminate(&mut self, reason: ExitReason) -> (usize, Vec<Watcher>) {
        let mut batch = std::mem::take(&mut self.held);
        batch.append(&mut self.batch);
        self.hold = None;
        let rest = self.core.terminate(reason);
        let dead = batch.len() + rest.data.len();
        drop(batch);
        drop(rest.data);
        (dead, rest.watchers)
    }

    /// The shared core.
    pub(crate) fn core(&self) -> &Arc<MailboxCore<T, M>> {
        &self.core
    }
}

/// What [`Inbox::cut`] did.
#[derive(Debug)]
pub(crate) enum Cutting<'a, T> {
    /// The actor is not behind the marker: nothing to do.
    Stale,
    /// The actor defers its cut by the ask rule.
    Deferred,
    /// The cut is taken: the batch now holds exactly the backlog at the cut, in queue order,
    /// and the ids of the actors watching this one, read under the same lock.
    Cut(Cut, &'a VecDeque<T>, Vec<ActorId>),
}

impl<'a, T> Cutting<'a, T> {
    /// The cut, if one was taken.
    #[cfg(any(test, loom))]
    pub(crate) fn taken(self) -> Option<(Cut, &'a VecDeque<T>, Vec<ActorId>)> {
        match self {
            Cutting::Cut(cut, batch, watchers) => Some((cut, batch, watchers)),
            Cutting::Stale | Cutting::Deferred => None,
        }
    }
}

/// Test items: the value is the tag (sent by an actor of that epoch).
#[cfg(test)]
impl Stamp for u32 {
    fn on_arrival(&mut self, _receiver_epoch: Epoch) {}
    fn tag(&self) -> Epoch {
        Epoch(u64::from(*self) / 1000)
    }
    fn record(&self, to: ActorId) -> Result<InFlightRecord, CodecError> {
        Ok(InFlightRecord {
            to,
            from: None,
            epoch: self.tag(),
            ask: false,
            payload: amber_snapshot::Bytes::new(),
        })
    }
    fn asked_by_actor(&self) -> bool {
        false
    }
}

/// Metadata for mailboxes in unit and loom tests.
#[cfg(test)]
pub(crate) fn test_meta() -> Meta {
    Meta {
        id: ActorId::new(crate::SystemId(1), 1),
        type_name: "test",
        name: None,
        asks: Arc::new(crate::ask_clock::AskClock::new(std::time::Duration::from_secs(1), None)),
        late: Arc::default(),
        task: std::sync::OnceLock::new(),
        born_of: std::sync::OnceLock::new(),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn inbox(cap: usize) -> (Arc<MailboxCore<u32>>, Inbox<u32>) {
        let core = Arc::new(MailboxCore::new(test_meta(), cap, Epoch::ZERO));
        (core.clone(), Inbox::new(core))
    }

    #[test]
    fn fifo_within_and_across_batches() {
        let (core, mut rx) = inbox(8);
        for i in 0..5 {
            core.try_push(i).unwrap();
        }
        assert!(matches!(rx.try_next(), Next::Data(0)));
        core.try_push(5).unwrap();
        let mut got = vec![];
        while let Next::Data(i) = rx.try_next() {
            got.push(i);
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn full_gives_the_message_back_and_batch_frees_room() {
        let (core, mut rx) = inbox(2);
        core.try_push(1).unwrap();
        core.try_push(2).unwrap();
        assert!(matches!(core.try_push(3), Err(PushError::Full(3))));
        assert!(matches!(rx.try_next(), Next::Data(1)));
        core.try_push(3).unwrap();
    }

    /// A context whose wakes count.
    fn counting() -> (Arc<std::sync::atomic::AtomicUsize>, Waker) {
        struct Count(Arc<std::sync::atomic::AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        (n.clone(), Waker::from(Arc::new(Count(n))))
    }

    #[test]
    fn waiting_senders_are_served_first_come_first_served() {
        let (core, mut rx) = inbox(1);
        core.try_push(0).unwrap();
        let (woken_a, waker_a) = counting();
        let (woken_b, waker_b) = counting();
        let (mut a, mut b) = (None, None);
        let mut cx_a = Context::from_waker(&waker_a);
        let mut cx_b = Context::from_waker(&waker_b);
        // a, then b, wait in line.
        assert!(matches!(core.poll_push(&mut cx_a, 1, &mut a), Err(PushError::Full(1))));
        assert!(matches!(core.poll_push(&mut cx_b, 2, &mut b), Err(PushError::Full(2))));
        // Room frees up: it is granted to a, and only a is woken.
        assert!(matches!(rx.try_next(), Next::Data(0)));
        assert_eq!((woken_a.load(Ordering::SeqCst), woken_b.load(Ordering::SeqCst)), (1, 0));
        // Nobody overtakes a: neither a sender that does not wait, nor b.
        assert!(matches!(core.try_push(9), Err(PushError::Full(9))));
        assert!(matches!(core.poll_push(&mut cx_b, 2, &mut b), Err(PushError::Full(2))));
        core.poll_push(&mut cx_a, 1, &mut a).unwrap();
        assert!(matches!(rx.try_next(), Next::Data(1)));
        // Then b's turn, and only then anyone else's.
        assert_eq!(woken_b.load(Ordering::SeqCst), 1);
        assert!(matches!(core.try_push(9), Err(PushError::Full(9))));
        core.poll_push(&mut cx_b, 2, &mut b).unwrap();
        assert!(matches!(rx.try_next(), Next::Data(2)));
        core.try_push(9).unwrap();
    }

    #[test]
    fn a_sender_that_leaves_the_line_passes_its_slot_on() {
        let (core, mut rx) = inbox(1);
        core.try_push(0).unwrap();
        let (_, waker_a) = counting();
        let (woken_b, waker_b) = counting();
        let (mut a, mut b) = (None, None);
        let mut cx_a = Context::from_waker(&waker_a);
        let mut cx_b = Context::from_waker(&waker_b);
        assert!(core.poll_push(&mut cx_a, 1, &mut a).is_err());
        assert!(core.poll_push(&mut cx_b, 2, &mut b).is_err());
        assert!(matches!(rx.try_next(), Next::Data(0))); // granted to a
        core.cancel_wait(a.unwrap()); // a's send was dropped
        assert_eq!(woken_b.load(Ordering::SeqCst), 1, "the slot went to b");
        core.poll_push(&mut cx_b, 2, &mut b).unwrap();
        assert!(matches!(rx.try_next(), Next::Data(2)));
    }

    #[test]
    fn control_overtakes_a_batch_in_hand() {
        let (core, mut rx) = inbox(8);
        for i in 0..4 {
            core.try_push(i).unwrap();
        }
        assert!(matches!(rx.try_next(), Next::Data(0)));
        core.push_control(Signal::Stop(ExitReason::Stopped)).unwrap();
        assert!(matches!(rx.try_next(), Next::Control(Signal::Stop(_))));
        assert!(matches!(rx.try_next(), Next::Data(1)));
    }

    #[test]
    fn close_refuses_data_but_drains_the_rest() {
        let (core, mut rx) = inbox(8);
        core.try_push(1).unwrap();
        core.close();
        assert!(matches!(core.try_push(2), Err(PushError::Closed(2))));
        assert!(core.push_control(Signal::Stop(ExitReason::Stopped)).is_ok());
        assert!(matches!(rx.try_next(), Next::Control(Signal::Stop(_))));
        assert!(matches!(rx.try_next(), Next::Data(1)));
        assert!(matches!(rx.try_next(), Next::Closed));
    }

    /// A cut between two messages, with part of the last batch still to handle: the
    /// backlog it takes is that rest and then the queue, in order, whichever buffer ends up
    /// holding it; and the messages are then handled in that order, then the later ones.
    #[test]
    fn a_cut_takes_the_rest_of_the_batch_then_the_queue_in_order() {
        let mut prepended = false;
        for first in 1..40u32 {
            for handled in 0..first {
                for queued in 0..40u32 {
                    let (core, mut rx) = inbox(usize::MAX);
                    for i in 0..first {
                        core.try_push(i).unwrap();
                    }
                    for i in 0..handled {
                        assert!(matches!(rx.try_next(), Next::Data(n) if n == i));
                    }
                    for i in first..first + queued {
                        core.try_push(i).unwrap();
                    }
                    let (rest, room) = (rx.batch.len(), rx.batch.capacity() - rx.batch.len());
                    prepended |= rest > 0 && room < queued as usize;
                    let cut = rx.cut(CutFor::Marker(Epoch(1)), amber_snapshot::MAX_DEPTH);
                    let (_, backlog, _) = cut.taken().expect("cut");
                    let expected: Vec<u32> = (handled..first + queued).collect();
                    assert_eq!(backlog.iter().copied().collect::<Vec<_>>(), expected);
                    core.try_push(1000).unwrap();
                    let mut got = vec![];
                    while let Next::Data(n) = rx.try_next() {
                        got.push(n);
                    }
                    assert_eq!(got, expected.into_iter().chain([1000]).collect::<Vec<_>>());
                }
            }
        }
        assert!(prepended, "some cuts found the batch's buffer too small for the queue");
    }

    #[test]
    fn a_refusal_the_sender_learns_of_is_not_recorded_one_it_never_learns_of_is() {
        let (core, mut rx) = inbox(8);
        assert!(rx.cut(CutFor::Marker(Epoch(1)), amber_snapshot::MAX_DEPTH).taken().is_some());
        core.close();
        // Sent by an actor before its cut (tag 0), refused after ours.
        assert!(matches!(core.try_push(0), Err(PushError::Closed(0))));
        assert!(matches!(core.push_remote(1, Refusal::Reported), Err(PushError::Closed(1))));
        assert!(core.meta.late.take(Epoch(1)).records.is_empty(), "the senders were told");
        assert!(matches!(core.push_remote(2, Refusal::Silent), Err(PushError::Closed(2))));
        assert!(matches!(rx.try_next(), Next::Closed));
        let _ = rx.terminate(ExitReason::Stopped);
        assert!(matches!(core.push_remote(3, Refusal::Silent), Err(PushError::Closed(3))));
        assert_eq!(core.meta.late.take(Epoch(1)).records.len(), 2, "lost in the channel");
    }

    #[test]
    fn a_failed_hand_off_keeps_everything_a_taken_one_refuses_later_pushes_as_moved() {
        let core = Arc::new(MailboxCore::<u32, &'static str>::new(test_meta(), 8, Epoch::ZERO));
        let mut rx = Inbox::new(core.clone());
        for i in 1..=3 {
            core.try_push(i).unwrap();
        }
        assert!(matches!(rx.try_next(), Next::Data(1)));
        // The link is gone: nothing moves, the order is kept, pushes still queue.
        let failed = rx.depart("b", |queue, _| Err::<(), _>(queue.len()));
        assert!(matches!(failed, Some(Err(2))));
        core.try_push(4).unwrap();
        // Taken: the batch in hand and the queue leave, in order; later pushes say where to.
        let mut left = Vec::new();
        let taken = rx.depart("b", |queue, _| {
            left.extend(queue.drain(..));
            Ok::<_, ()>(())
        });
        assert!(matches!(taken, Some(Ok(()))));
        assert_eq!(left, vec![2, 3, 4]);
        assert!(matches!(core.try_push(5), Err(PushError::Moved(5, "b"))));
        assert!(matches!(core.push_remote(6, Refusal::Silent), Err(PushError::Moved(6, "b"))));
        assert!(core.push_control(Signal::Drain).is_err(), "control does not follow it");
        assert!(core.meta.late.take(Epoch(1)).records.is_empty());
        // It stopped over there: the entry terminates (for its watchers), and what is still
        // sent to it goes on to where it went, whose node answers for it.
        assert!(core.terminate_moved(ExitReason::Stopped).is_some());
        assert!(core.is_terminated());
        assert!(matches!(core.try_push(7), Err(PushError::Moved(7, "b"))));
    }

    #[test]
    fn terminate_refuses_everything_and_counts_dead_letters() {
        let (core, mut rx) = inbox(8);
        core.try_push(1).unwrap();
        core.try_push(2).unwrap();
        assert!(matches!(rx.try_next(), Next::Data(1)));
        core.try_push(3).unwrap();
        assert_eq!(rx.terminate(ExitReason::Stopped).0, 2);
        assert_eq!(core.exit_reason(), Some(ExitReason::Stopped));
        assert!(core.is_terminated());
        assert!(core.push_control(Signal::Stop(ExitReason::Stopped)).is_err());
        assert!(matches!(core.try_push(4), Err(PushError::Closed(4))));
    }

    /// An actor born after a snapshot's cut (never cut) gets a message from before it: the
    /// snapshot is tainted, unless the actor was started from a kept state
    /// (`Meta::born_of`): then the message is recorded as in flight to the keeper,
    /// wrapped for it. Asks are not redirected.
    #[test]
    fn a_message_from_before_the_cut_of_an_actor_born_after_it_is_recorded_for_its_keeper() {
        let keeper = ActorId::new(crate::SystemId(1), 99);
        let plain = MailboxCore::<u32>::new(test_meta(), 4, Epoch(1));
        plain.try_push(5).unwrap(); // tagged 0, into an actor born in epoch 1
        let taken = plain.meta.late.take(Epoch(1));
        assert_eq!((taken.records.len(), taken.taints.len()), (0, 1), "tainted");

        let born = MailboxCore::<u32>::new(test_meta(), 4, Epoch(1));
        let wrap: crate::passivate::Wrap = Box::new(|mut payload| {
            payload.push(7);
            Ok(payload)
        });
        let redirect = crate::passivate::Redirect { to: keeper, wrap, wrap_ask: None };
        let _ = born.meta.born_of.set(Arc::new(redirect));
        born.try_push(5).unwrap();
        born.try_push(1005).unwrap(); // tagged 1: after the cut, not in flight
        let taken = born.meta.late.take(Epoch(1));
        assert!(taken.taints.is_empty(), "not tainted");
        let records: Vec<_> = taken.records.into_iter().map(Result::unwrap).collect();
        assert_eq!(records.len(), 1, "the message from before the cut only");
        assert_eq!((records[0].to, &records[0].payload[..]), (keeper, &[7u8][..]), "wrapped");
    }
}
