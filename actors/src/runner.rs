//! The task that runs one actor: start, the message loop, restarts, and the ordered stop.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use amber_snapshot::{ActorEntry, Epoch, StateRecord};

use crate::any_mailbox::{AnyMailbox, terminated};
use crate::cell::{Cell, Cuttable};
use crate::current::Running;
use crate::envelope::{Envelope, Origin};
use crate::inline::Rest;
use crate::mailbox::core::{CutNow, Cutting};
use crate::mailbox::{CutFor, Inbox, Next};
use crate::migrate::Departing;
use crate::remote::RemoteRoute;
use crate::signal::Signal;
use crate::snapshot::recording::Recording;
use crate::snapshot::types::StateCodec;
use crate::snapshot::{CaptureProblem, CutReport};
use crate::supervision::{AfterPanic, Restarts};
use crate::system::{CutBatch, Factory, Held};
use crate::target::Forward;
use crate::turn::{Panic, turn, turn_sync};
use crate::{Actor, ChildEvent, Context, Down, ExitReason};

/// How a start attempt failed.
enum StartFailure {
    Panicked(Panic),
    Failed(ExitReason),
}

pub(crate) struct Runner<A: Actor> {
    pub(crate) actor: Option<A>,
    pub(crate) factory: Option<Factory<A>>,
    pub(crate) ctx: Context<A>,
    pub(crate) inbox: Inbox<Envelope<A>, Forward>,
    pub(crate) restarts: Restarts,
    /// How to capture the state at a cut; `None` if the type is not registered.
    pub(crate) codec: Option<StateCodec<A>>,
    /// Rebuilt from a checkpoint: it resumes, so `on_start` does not run again.
    pub(crate) resumed: bool,
    /// Moved to another node: the task ends without stopping the actor.
    pub(crate) departed: bool,
    /// The actor's ask depth: a copy of its mailbox's `ActorCut::depth`, which only this
    /// task changes (so asks that do not deepen it take no lock).
    pub(crate) depth: u8,
    /// A panic of the state's encoder in a cut the driver took, for the task to handle.
    pub(crate) panicked: Option<Panic>,
    /// The link to another node that a send of the last turn queued beyond its bound: the
    /// actor waits for room on it before its next message (see [`Slice::Room`]).
    pub(crate) owed: Option<Arc<dyn RemoteRoute>>,
    /// Its task runs inside a tracing span (a subscriber wants it): asks are not served on
    /// their askers' threads, outside that span (see [`crate::inline`]).
    pub(crate) traced: bool,
    /// In its cell while its task waits for room on a link to another node (see
    /// [`Slice::Room`]): no ask is served on its asker's thread meanwhile.
    pub(crate) waits_room: bool,
    /// Where a slice run for an ask served on its asker's thread ended, if the task must
    /// act on it (a stop, room owed on a link): its next slice returns it at once.
    pub(crate) ended: Option<Box<Slice>>,
}

/// The cell an actor's runner is shared through (see [`crate::cell`]).
pub(crate) type ActorCell<A> = Cell<Runner<A>>;

impl<A: Actor> Cuttable for Runner<A> {
    type Rest = Rest<A>;

    fn poll_rest(rest: &mut Rest<A>, cx: &mut std::task::Context<'_>) -> Poll<Box<Self>> {
        rest.as_mut().poll(cx)
    }

    /// The cut for `epoch` of a runner being put back in its cell, filed at once. A panic
    /// of the state's encoder is left for the task, as in
    /// [`cut_between`](Runner::cut_between).
    fn cut_missed(&mut self, epoch: Epoch) {
        let mut batch = CutBatch::new();
        self.cut_between(epoch, &mut batch);
        batch.file();
    }
}

/// A runner out of its cell for a cut on the spot. Dropping it gives the runner back (and
/// wakes the task if it waits for it) — at once if the cut was not batched, or if the cut
/// panicked (a message's encoder), so that no task waits forever for a runner that is gone;
/// [`park_held`](Self::park_held) instead parks it in its cell, held until the batch is
/// filed.
struct OutForCut<'a, A: Actor> {
    cell: &'a ActorCell<A>,
    runner: Option<Box<Runner<A>>>,
}

impl<A: Actor> OutForCut<'_, A> {
    /// Parks the runner in its cell, held until [`Cell::release`].
    fn park_held(mut self) {
        if let Some(runner) = self.runner.take() {
            self.cell.park_held(runner);
        }
    }
}

impl<A: Actor> Drop for OutForCut<'_, A> {
    fn drop(&mut self) {
        if let Some(runner) = self.runner.take() {
            self.cell.give_back(runner);
        }
    }
}

impl<A: Actor> Held for ActorCell<A> {
    fn release(&self) {
        Cell::release(self);
    }
}

impl<A: Actor> CutNow for ActorCell<A> {
    fn abort_task(&self) {
        Cell::abort_task(self);
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn cut_now(self: Arc<Self>, epoch: Epoch, batch: &mut CutBatch) -> bool {
        // Not in the cell: the task runs it, or a batch holds it (or it is not started, or
        // has ended): the marker goes on the control lane, and whoever puts the runner back
        // cuts it first.
        let Some(runner) = self.take_for_cut(epoch) else { return false };
        let mut out = OutForCut { cell: &self, runner: Some(runner) };
        let filed = batch.len();
        let cut = out.runner.as_mut().is_some_and(|runner| runner.cut_between(epoch, batch));
        if batch.len() > filed {
            // Its cut waits in the batch: the actor must not run until it is filed.
            out.park_held();
            batch.hold(self);
        }
        // Else `out` drops here, and the runner goes back at once.
        cut
    }
}

/// Where a slice of the task's work ended.
pub(crate) enum Slice {
    /// The mailbox is empty (the task's waker is registered with it); for a slice run for
    /// an ask served on its asker's thread, also: the ask is handled (see
    /// [`Runner::slice`]).
    Park,
    /// The task's coop budget, or its turn's messages
    /// ([`SystemBuilder::messages_per_turn`](crate::SystemBuilder::messages_per_turn)), are
    /// spent: other tasks run first.
    Yield,
    /// A handler's send queued beyond the bound of this link to another node (handlers
    /// never wait for room inside a turn): the actor waits for room on it before its next
    /// message, between two messages, where a snapshot can cut it on the spot.
    Room(Arc<dyn RemoteRoute>),
    /// The actor must stop (or has left for another node).
    Stop(ExitReason),
}

impl<A: Actor> Runner<A> {
    /// Runs the actor until it stops. The task starts holding its runner (the cell is empty
    /// until the actor has started: no cut before `on_start`), or, for an actor that resumes
    /// (`runner` is `None`), takes it from the cell; it lets it go only between two messages.
    pub(crate) async fn run(cell: Arc<ActorCell<A>>, runner: Option<Box<Runner<A>>>) {
        let mut runner = match runner {
            Some(runner) => runner,
            None => cell.take().await,
        };
        tracing::debug!(actor = %runner.ctx.id(), "starting");
        let reason = 'live: {
            if let Some(reason) = runner.start().await {
                break 'live reason;
            }
            loop {
                match runner.slice::<false>().await {
                    Slice::Stop(reason) => break 'live reason,
                    Slice::Park => {
                        cell.put(runner);
                        // Woken by the mailbox (a message or a signal), whose waker the
                        // slice registered before it ended.
                        crate::cell::parked().await;
                    }
                    Slice::Yield => {
                        cell.put(runner);
                        if tokio::task::coop::has_budget_remaining() {
                            // Its turn's messages are used up, not the budget: yield anyway.
                            tokio::task::yield_now().await;
                        } else {
                            tokio::task::consume_budget().await;
                        }
                    }
                    Slice::Room(route) => {
                        runner.waits_room = true;
                        cell.put(runner);
                        // Woken once the link has drained (or is gone: the next send fails).
                        poll_fn(|cx| {
                            if route.poll_ready(Some(cx)) { Poll::Ready(()) } else { Poll::Pending }
                        })
                        .await;
                    }
                }
                runner = cell.take().await;
                runner.waits_room = false;
            }
        };
        // The cell stays empty from here on: the driver never cuts it again (it stops, and
        // its final cut is taken as it leaves any running snapshot, or it has left for
        // another node).
        if runner.departed {
            return;
        }
        runner.finish(reason).await;
    }

    /// Whether an ask may be served on its asker's thread now (see [`crate::inline`]): the
    /// actor is started and runs no other way than its task would run it.
    pub(crate) fn serves_inline(&self) -> bool {
        self.inbox.is_idle()
            && !self.traced
            && !self.waits_room
            && !self.ctx.stop
            && self.panicked.is_none()
            && self.owed.is_none()
            && self.ended.is_none()
            && self.actor.is_some()
    }

    /// The driver's cut between two messages (see [`CutNow::cut_now`]), added to `batch`.
    fn cut_between(&mut self, epoch: Epoch, batch: &mut CutBatch) -> bool {
        if epoch <= self.inbox.epoch() {
            return true; // already cut (for a message tagged with it, or a marker)
        }
        if self.panicked.is_some() {
            return false;
        }
        let released = self.released(epoch);
        match self.take_cut(CutFor::Marker(epoch), released, Some(batch)) {
            Ok(_) => true,
            Err(panic) => {
                // The state's encoder panicked: the task handles it as a panicking
                // handler's, woken by the (then stale) marker on its control lane.
                self.panicked = Some(panic);
                false
            }
        }
    }

    fn running(&self) -> Running {
        Running { id: self.ctx.id(), epoch: self.inbox.epoch(), depth: self.depth }
    }

    /// Starts the actor (unless it resumes); `Some` if it must stop at once.
    async fn start(&mut self) -> Option<ExitReason> {
        let started = if self.resumed { Ok(()) } else { self.start_once().await };
        match started {
            Ok(()) => None,
            Err(StartFailure::Failed(reason)) => Some(reason),
            Err(StartFailure::Panicked(panic)) => Box::pin(self.recover(panic)).await,
        }
    }

    /// Handles messages and signals until the mailbox is empty, the coop budget is spent,
    /// or the actor must stop.
    ///
    /// `INLINE`: run for an ask served on its asker's thread (see [`crate::inline`]), by
    /// the asker or, if its handler did not finish at once, by the task: the slice ends
    /// with [`Slice::Park`] after the first data message (the ask, first in an idle
    /// mailbox), so an asker never serves other senders' messages and a task that finishes
    /// the slice soon goes back to its own; an empty mailbox registers no waker (the task's
    /// stays registered), and no coop budget is spent (the asker's is not the actor's).
    pub(crate) async fn slice<const INLINE: bool>(&mut self) -> Slice {
        if !INLINE && self.ended.is_some() {
            // By a slice run for an ask served on its asker's thread (see `inline::serve`).
            if let Some(ended) = self.ended.take() {
                return *ended;
            }
        }
        // A snapshot's markers are being handed out: cut actors that wait for their turn
        // before taking this one (this actor's own cut, if it is still due, is in its
        // control lane: it comes first below).
        self.ctx.system.help_broadcast();
        if let Some(panic) = self.panicked.take()
            && let Some(reason) = Box::pin(self.recover(panic)).await
        {
            return Slice::Stop(reason);
        }
        let mut turn = self.ctx.system.messages_per_turn();
        loop {
            let next = if INLINE {
                self.inbox.try_next()
            } else {
                poll_fn(|cx| Poll::Ready(self.inbox.next_or_register(cx))).await
            };
            let data = INLINE && matches!(next, Next::Data(_));
            turn = turn.saturating_sub(1);
            let outcome = match next {
                Next::Data(env) => self.handle(env).await,
                Next::Control(signal) => self.control(signal).await,
                // Drained while deferring a cut: the messages set aside for after it are
                // still to be handled, so the cut is taken now.
                Next::Closed if let Some(deferred) = self.inbox.deferred() => {
                    match self.take_cut(CutFor::Marker(deferred), amber_snapshot::MAX_DEPTH, None) {
                        Ok(_) => None,
                        Err(panic) => Box::pin(self.recover(panic)).await,
                    }
                }
                Next::Closed => Some(ExitReason::Stopped),
                Next::Empty => return Slice::Park,
            };
            if let Some(reason) = outcome {
                return Slice::Stop(reason);
            }
            if self.ctx.stop {
                return Slice::Stop(ExitReason::Stopped);
            }
            if self.owed.is_some() {
                // Signals first: a marker that came while the handler ran is taken now,
                // not once the link has drained.
                while let Some(signal) = self.inbox.next_control() {
                    if let Some(reason) = self.control(signal).await {
                        return Slice::Stop(reason);
                    }
                }
                if let Some(route) = self.owed.take()
                    && !route.poll_ready(None)
                {
                    return Slice::Room(route);
                }
            }
            if INLINE {
                if data {
                    return Slice::Park;
                }
                continue;
            }
            if turn == 0 || !tokio::task::coop::has_budget_remaining() {
                return Slice::Yield;
            }
            tokio::task::consume_budget().await;
        }
    }

    /// Builds the actor (from the factory if there is no instance) and runs `on_start`.
    async fn start_once(&mut self) -> Result<(), StartFailure> {
        if self.actor.is_none() {
            let Some(factory) = self.factory.as_mut() else {
                return Err(StartFailure::Failed(ExitReason::Panicked(
                    "actor has no instance and no factory".into(),
                )));
            };
            self.actor = Some(turn_sync(factory).map_err(StartFailure::Panicked)?);
        }
        let running = self.running();
        let Some(actor) = self.actor.as_mut() else {
            return Err(StartFailure::Failed(ExitReason::Panicked("actor missing".into())));
        };
        match turn(running, actor.on_start(&mut self.ctx), &mut self.owed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StartFailure::Failed(ExitReason::StartFailed(e.to_string()))),
            Err(panic) => Err(StartFailure::Panicked(panic)),
        }
    }

    /// After a panic: restart if the policy allows (possibly several times, if the fresh
    /// instance's `on_start` panics too), else return the reason to stop.
    ///
    /// Its callers await it boxed: it runs only after a panic, and held inline its state
    /// made every actor's task 72 bytes larger (600 against 528 for a small actor, measured
    /// with `-Zprint-type-sizes`).
    async fn recover(&mut self, panic: Panic) -> Option<ExitReason> {
        let mut panic = panic.into_message();
        loop {
            tracing::error!(actor = %self.ctx.id(), %panic, "actor panicked");
            if self.factory.is_none() {
                return Some(ExitReason::Panicked(panic));
            }
            let restarts = match self.restarts.on_panic(Instant::now()) {
                AfterPanic::Restart(n) => n,
                AfterPanic::Stop => return Some(ExitReason::Panicked(panic)),
                AfterPanic::LimitReached(n) => {
                    return Some(ExitReason::RestartLimit { restarts: n, last_panic: panic });
                }
            };
            // The panicked instance's state cannot be trusted: it is dropped, not stopped.
            self.actor = None;
            tracing::warn!(actor = %self.ctx.id(), restarts, "restarting");
            if let Some(parent) = &self.ctx.parent {
                let event =
                    ChildEvent::Restarted { child: self.ctx.id(), panic: panic.clone(), restarts };
                let _ = parent.signal(Signal::Child(event));
            }
            match self.start_once().await {
                Ok(()) => return None,
                Err(StartFailure::Failed(reason)) => return Some(reason),
                Err(StartFailure::Panicked(p)) => panic = p.into_message(),
            }
        }
    }

    /// Handles one data message; `Some` if the actor must stop.
    async fn handle(&mut self, env: Envelope<A>) -> Option<ExitReason> {
        if env.epoch > self.inbox.epoch() && self.inbox.deferred().is_none() {
            // Sent by an actor that already cut for a later snapshot: cut first, or this
            // message would be inside our cut but outside its sender's. An actor that may
            // still be asked by actors that have not cut defers the cut instead, and sets
            // the message aside until it has cut (the inbox sets aside the later ones).
            let released = self.released(env.epoch);
            match self.take_cut(CutFor::Dequeued(env.epoch), released, None) {
                Ok(true) => {}
                Ok(false) => {
                    self.inbox.hold_back(env);
                    return None;
                }
                Err(panic) => {
                    // The message is dropped, as with a panicking handler.
                    return Box::pin(self.recover(panic)).await;
                }
            }
        }
        if env.reply.is_some()
            && matches!(env.origin, Origin::Actor(_))
            && env.depth >= self.depth
            && self.depth < amber_snapshot::MAX_DEPTH
            && let Some((from, to)) = self.inbox.on_ask(env.depth)
        {
            // Answering an ask makes this actor deeper than its asker (the ask rule).
            self.depth = to;
            let effects =
                self.ctx.system.engine().deepened(self.ctx.id(), self.inbox.epoch(), from, to);
            self.ctx.system.run_effects(effects);
        }
        let Envelope { origin, msg, reply, .. } = env;
        if let Origin::Timer(id) = origin
            && !self.ctx.timers.fire(id)
        {
            return None; // cancelled after it was queued
        }
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!(actor = %self.ctx.id(), ?origin, ask = reply.is_some(), "message");
        }
        self.ctx.origin = origin;
        self.ctx.handled += 1;
        let running = self.running();
        let actor = self.actor.as_mut()?;
        match turn(running, actor.handle(msg, &mut self.ctx), &mut self.owed).await {
            Ok(out) => {
                if let Some(tx) = reply {
                    let _ = tx.send((out, self.inbox.epoch()));
                }
                None
            }
            Err(panic) => {
                drop(reply); // the asker gets NoReply
                Box::pin(self.recover(panic)).await
            }
        }
    }

    /// Handles one control signal; `Some` if the actor must stop.
    async fn control(&mut self, signal: Signal) -> Option<ExitReason> {
        let running = self.running();
        let result = match signal {
            Signal::Stop(reason) => return Some(reason),
            Signal::Drain => {
                tracing::debug!(actor = %self.ctx.id(), "draining");
                self.inbox.core().close();
                return None;
            }
            Signal::Child(event) => {
                if let ChildEvent::Exited { child, .. } = &event {
                    self.ctx.children.remove(child);
                }
                let actor = self.actor.as_mut()?;
                turn(running, actor.on_child_event(&mut self.ctx, event), &mut self.owed).await
            }
            Signal::Marker(epoch) => {
                let released = self.released(epoch);
                self.take_cut(CutFor::Marker(epoch), released, None).map(drop)
            }
            Signal::Release(epoch) => match self.inbox.deferred().filter(|d| *d <= epoch) {
                // Asks served meanwhile may have made this actor deeper than the release:
                // it asks again (and stays registered if it must still wait).
                Some(deferred) => {
                    let released = self.released(deferred);
                    self.take_cut(CutFor::Marker(deferred), released, None).map(drop)
                }
                None => return None,
            },
            Signal::Migrate(request) => {
                let Ok(departing) = request.downcast::<Departing>() else {
                    tracing::error!(actor = %self.ctx.id(), "a migration request of another kind: ignored");
                    return None;
                };
                match self.depart(*departing) {
                    Ok(departed) => {
                        self.departed = departed;
                        return departed.then_some(ExitReason::Stopped);
                    }
                    Err(panic) => Err(panic),
                }
            }
            Signal::Passivate(request) => return self.passivate(request),
            Signal::Down(down) => {
                if !self.ctx.watching.remove(&down.actor) {
                    return None; // unwatched meanwhile
                }
                let actor = self.actor.as_mut()?;
                turn(running, actor.on_down(&mut self.ctx, down), &mut self.owed).await
            }
        };
        match result {
            Ok(()) => None,
            Err(panic) => Box::pin(self.recover(panic)).await,
        }
    }

    /// The ask depth the node releases for a cut for `epoch` (registering this actor to be
    /// told when its own depth is released, if it is not yet). Actors nobody asks never wait.
    fn released(&self, epoch: Epoch) -> u8 {
        if epoch <= self.inbox.epoch() || self.depth == 0 {
            return amber_snapshot::MAX_DEPTH;
        }
        let me: std::sync::Arc<dyn AnyMailbox> = self.ctx.mailbox.clone();
        self.ctx.system.engine().release_for(self.ctx.id(), self.depth, &me)
    }

    /// Takes the cut `why` calls for if behind it (the mailbox's [`ActorCut`] decides, under
    /// its lock): captures the state and pending timers,
    /// moves the backlog into the batch atomically with the epoch switch, records the part of
    /// the backlog that is in flight, and hands it all to the snapshot engine (or to
    /// `filing`, a batch of cuts taken on the spot that files it with the others). If the
    /// actor's ask depth is above `released`, it defers the cut instead (the ask rule).
    /// Returns `Ok(false)` if it deferred the cut.
    ///
    /// A panic in the state's encoder (its `Serialize`) is caught: the cut is still taken
    /// and reported, as a capture problem naming the actor (the snapshot fails at once, it
    /// does not hang), and the panic is returned for the caller to handle as a panicking
    /// handler's (supervision: restart or stop, watchers told).
    #[must_use = "a panic in the state encoder must go to supervision"]
    fn take_cut(
        &mut self,
        why: CutFor,
        released: u8,
        filing: Option<&mut CutBatch>,
    ) -> Result<bool, Panic> {
        let (CutFor::Marker(to) | CutFor::Dequeued(to)) = why;
        if to <= self.inbox.epoch() {
            return Ok(true); // a stale marker: already cut (the epoch only moves here, at cuts)
        }
        let id = self.ctx.id();
        let type_name = self.inbox.core().meta.type_name;
        let (cut, batch, mut watchers) = match self.inbox.cut(why, released) {
            Cutting::Cut(cut, batch, watchers) => (cut, batch, watchers),
            Cutting::Stale => return Ok(true),
            Cutting::Deferred => {
                tracing::trace!(actor = %id, epoch = %to, depth = self.depth, "cut deferred");
                return Ok(false);
            }
        };
        // The state is captured after the decision (a deferred cut encodes nothing); nothing
        // runs on this actor in between.
        let mut panicked = None;
        let encoded = match (&self.codec, &self.actor) {
            (Some(codec), Some(actor)) => match turn_sync(|| (codec.encode)(actor)) {
                Ok(encoded) => encoded.map_err(|error| CaptureProblem::StateEncode {
                    actor: id,
                    type_name: codec.type_name.to_owned(),
                    error,
                }),
                Err(panic) => {
                    let problem = CaptureProblem::EncoderPanicked {
                        actor: id,
                        type_name: codec.type_name.to_owned(),
                        panic: panic.to_string(),
                    };
                    panicked = Some(panic);
                    Err(problem)
                }
            },
            (None, _) => {
                Err(CaptureProblem::NotRegistered { actor: id, type_name: type_name.to_owned() })
            }
            (Some(_), None) => Err(CaptureProblem::NoInstance { actor: id }),
        };
        // A moved actor's forwarding entry watches it under its own id: not a watcher.
        watchers.retain(|w| *w != id);
        crate::metrics::mailbox_depth(batch.len());
        // A message's `Serialize` is user code: a panic in it fails the snapshot (naming the
        // message) instead of the actor's task, mid-cut. The whole backlog is recorded under
        // one guard; only if an encoder panics is it recorded again one guarded message at a
        // time, to tell which (encoders only read their message).
        let Recording { backlog, unrecorded, crossed, queued_timers } =
            turn_sync(|| Recording::of(id, batch, &cut, false))
                .unwrap_or_else(|_| Recording::of(id, batch, &cut, true));
        let state = encoded.and_then(|bytes| {
            let timers = self
                .ctx
                .timers
                .capture(&queued_timers)
                .map_err(|error| CaptureProblem::TimerEncode { actor: id, error })?;
            Ok(StateRecord { id, state: bytes, timers })
        });
        let (capacity, restart) = self.spawn_record();
        let core = self.inbox.core();
        let entry = ActorEntry {
            id,
            type_name: core.meta.type_name.to_owned(),
            name: core.meta.name.as_deref().map(str::to_owned),
            node: self.ctx.system.node().to_owned(),
            parent: self.ctx.parent.as_ref().map(|p| p.id()),
            watchers,
            watching: self.ctx.watching.iter().copied().collect(),
            state_version: self.codec.map_or(0, |c| c.version),
            capacity,
            restart,
        };
        tracing::trace!(actor = %id, epoch = %cut.to, backlog = backlog.len(), "cut");
        let report = CutReport { entry, state, backlog, unrecorded, crossed };
        match filing {
            // Batched only when the lock is most of the cost of filing it: a cut with a
            // backlog to record is filed at once (its actor runs again sooner).
            Some(filing) if report.backlog.is_empty() => {
                filing.push(&self.ctx.system, cut, report);
            }
            _ => {
                let effects = self.ctx.system.engine().cut(cut, report);
                self.ctx.system.run_effects(effects);
            }
        }
        panicked.map_or(Ok(true), Err)
    }

    /// Stops the actor in order: refuse new messages, stop and await the children, cancel
    /// timers, run `on_stop`, unregister, drop dead letters, tell watchers and the parent.
    async fn finish(&mut self, reason: ExitReason) {
        let id = self.ctx.id();
        self.inbox.core().close();
        let children: Vec<_> = self.ctx.children.drain().map(|(_, c)| c).collect();
        for child in &children {
            let _ = child.signal(Signal::Stop(ExitReason::Shutdown));
        }
        for child in &children {
            terminated(&**child).await;
        }
        self.ctx.timers.cancel_all();
        let running = self.running();
        if let Some(actor) = self.actor.as_mut()
            && let Err(panic) =
                turn(running, actor.on_stop(&mut self.ctx, &reason), &mut None).await
        {
            tracing::error!(actor = %id, %panic, "on_stop panicked");
        }
        for watched in self.ctx.watching.drain() {
            if let Some(mailbox) = self.ctx.system.registry().get(watched) {
                mailbox.remove_watcher(id);
            } else if let Some(route) = self.ctx.system.remote_route(watched) {
                route.unwatch(watched, id); // its node holds a watch for this actor
            }
        }
        // No handler runs any more: the cut is final. Kept for tells from other nodes that
        // arrive once the actor has left the registry.
        self.ctx.system.remember_cut(id, self.inbox.core().cut_state());
        self.ctx.system.unregister(id, self.ctx.me.name(), self.ctx.parent.is_none());
        let (dead_letters, watchers) = self.inbox.terminate(reason.clone());
        if dead_letters > 0 {
            tracing::debug!(actor = %id, dead_letters, "dropped queued messages");
        }
        for watcher in watchers {
            watcher.down(Down { actor: id, reason: reason.clone() });
        }
        if let Some(parent) = &self.ctx.parent {
            let _ = parent
                .signal(Signal::Child(ChildEvent::Exited { child: id, reason: reason.clone() }));
        }
        // Only now, with its mailbox terminated, has the actor left any running snapshot.
        let effects = self.ctx.system.engine().stopped(id, self.inbox.epoch(), self.depth);
        self.ctx.system.run_effects(effects);
        if reason.is_failure() {
            tracing::warn!(actor = %id, %reason, "stopped");
        } else {
            tracing::debug!(actor = %id, %reason, "stopped");
        }
    }
}
