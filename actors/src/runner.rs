//! The task that runs one actor: start, the message loop, restarts, and the ordered stop.

use std::collections::HashSet;
use std::future::poll_fn;
use std::time::Instant;

use amber_snapshot::{ActorEntry, Epoch, StateRecord};

use crate::current::Running;
use crate::envelope::{Envelope, Origin};
use crate::mailbox::core::Stamp;
use crate::mailbox::{Inbox, Next, terminated};
use crate::signal::Signal;
use crate::snapshot::CutReport;
use crate::snapshot::types::StateCodec;
use crate::supervision::{AfterPanic, Restarts};
use crate::system::Factory;
use crate::turn::{turn, turn_sync};
use crate::{Actor, ChildEvent, Context, Down, ExitReason};

/// How a start attempt failed.
enum StartFailure {
    Panicked(String),
    Failed(ExitReason),
}

pub(crate) struct Runner<A: Actor> {
    pub(crate) actor: Option<A>,
    pub(crate) factory: Option<Factory<A>>,
    pub(crate) ctx: Context<A>,
    pub(crate) inbox: Inbox<Envelope<A>>,
    pub(crate) restarts: Restarts,
    /// How to capture the state at a cut; `None` if the type is not registered.
    pub(crate) codec: Option<StateCodec<A>>,
    /// Rebuilt from a checkpoint: it resumes, so `on_start` does not run again.
    pub(crate) resumed: bool,
    /// Moved to another node: the task ends without stopping the actor.
    pub(crate) departed: bool,
}

impl<A: Actor> Runner<A> {
    /// Runs the actor until it stops.
    pub(crate) async fn run(mut self) {
        tracing::debug!(actor = %self.ctx.id(), "starting");
        let reason = self.live().await;
        if self.departed {
            return;
        }
        self.finish(reason).await;
    }

    fn running(&self) -> Running {
        Running { id: self.ctx.id(), epoch: self.ctx.epoch }
    }

    /// Starts the actor and handles messages until it must stop; returns why.
    async fn live(&mut self) -> ExitReason {
        let started = if self.resumed { Ok(()) } else { self.start_once().await };
        match started {
            Ok(()) => {}
            Err(StartFailure::Failed(reason)) => return reason,
            Err(StartFailure::Panicked(panic)) => {
                if let Some(reason) = self.recover(panic).await {
                    return reason;
                }
            }
        }
        loop {
            let next = poll_fn(|cx| self.inbox.poll_next(cx)).await;
            let outcome = match next {
                Next::Data(env) => self.handle(env).await,
                Next::Control(signal) => self.control(signal).await,
                Next::Closed => Some(ExitReason::Stopped),
                Next::Empty => None,
            };
            if let Some(reason) = outcome {
                return reason;
            }
            if self.ctx.stop {
                return ExitReason::Stopped;
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
        match turn(running, actor.on_start(&mut self.ctx)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StartFailure::Failed(ExitReason::StartFailed(e.to_string()))),
            Err(panic) => Err(StartFailure::Panicked(panic)),
        }
    }

    /// After a panic: restart if the policy allows (possibly several times, if the fresh
    /// instance's `on_start` panics too), else return the reason to stop.
    async fn recover(&mut self, mut panic: String) -> Option<ExitReason> {
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
                Err(StartFailure::Panicked(p)) => panic = p,
            }
        }
    }

    /// Handles one data message; `Some` if the actor must stop.
    async fn handle(&mut self, env: Envelope<A>) -> Option<ExitReason> {
        if env.epoch > self.ctx.epoch {
            // Sent by an actor that already cut for a later snapshot: cut first, or this
            // message would be inside our cut but outside its sender's.
            self.take_cut(env.epoch);
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
        let running = self.running();
        let actor = self.actor.as_mut()?;
        match turn(running, actor.handle(msg, &mut self.ctx)).await {
            Ok(out) => {
                if let Some(tx) = reply {
                    let _ = tx.send((out, self.ctx.epoch));
                }
                None
            }
            Err(panic) => {
                drop(reply); // the asker gets NoReply
                self.recover(panic).await
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
                turn(running, actor.on_child_event(&mut self.ctx, event)).await
            }
            Signal::Marker(epoch) => {
                self.take_cut(epoch);
                return None;
            }
            Signal::Migrate(departing) => {
                self.departed = self.depart(*departing);
                return self.departed.then_some(ExitReason::Stopped);
            }
            Signal::Down(down) => {
                if !self.ctx.watching.remove(&down.actor) {
                    return None; // unwatched meanwhile
                }
                let actor = self.actor.as_mut()?;
                turn(running, actor.on_down(&mut self.ctx, down)).await
            }
        };
        match result {
            Ok(()) => None,
            Err(panic) => self.recover(panic).await,
        }
    }

    /// Takes the cut for snapshot `to` if behind it: captures the state and pending timers,
    /// moves the backlog into the batch atomically with the epoch switch, records the part of
    /// the backlog that is in flight, and hands it all to the snapshot engine.
    fn take_cut(&mut self, to: Epoch) {
        if to <= self.ctx.epoch {
            return; // a stale marker: already cut (the epoch only moves here, at cuts)
        }
        let id = self.ctx.id();
        let encoded = match (&self.codec, &self.actor) {
            (Some(codec), Some(actor)) => (codec.encode)(actor).map_err(|e| {
                format!("actor {id} ({}): state does not encode: {e}", codec.type_name)
            }),
            (None, _) => Err(format!(
                "actor {id} ({}) is not registered as an ActorState, so it cannot be captured",
                self.inbox.core().meta.type_name
            )),
            (Some(_), None) => Err(format!("actor {id} has no instance")),
        };
        let Some((cut, batch, mut watchers)) = self.inbox.cut(to) else { return };
        // A moved actor's forwarding entry watches it under its own id: not a watcher.
        watchers.retain(|w| *w != id);
        let mut queued_timers = HashSet::new();
        let mut backlog = Vec::new();
        for env in batch {
            if let Origin::Timer(timer) = env.origin {
                queued_timers.insert(timer);
            }
            if env.epoch < cut.to {
                backlog.push(env.record(id));
            }
        }
        self.ctx.epoch = cut.to;
        let state = encoded.and_then(|bytes| {
            let timers = self.ctx.timers.capture(&queued_timers)?;
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
        let effects = self.ctx.system.engine().cut(cut, CutReport { entry, state, backlog });
        self.ctx.system.run_effects(effects);
    }

    /// Stops the actor in order: refuse new messages, stop and await the children, cancel
    /// timers, run `on_stop`, unregister, drop dead letters, tell watchers and the parent.
    async fn finish(mut self, reason: ExitReason) {
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
            && let Err(panic) = turn(running, actor.on_stop(&mut self.ctx, &reason)).await
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
        self.ctx.system.unregister(id, self.ctx.me.name(), self.ctx.parent.is_none());
        let (dead_letters, watchers) = self.inbox.terminate(reason.clone());
        if dead_letters > 0 {
            tracing::debug!(actor = %id, dead_letters, "dropped queued messages");
        }
        for watcher in watchers {
            let _ = watcher.signal(Signal::Down(Down { actor: id, reason: reason.clone() }));
        }
        if let Some(parent) = &self.ctx.parent {
            let _ = parent
                .signal(Signal::Child(ChildEvent::Exited { child: id, reason: reason.clone() }));
        }
        // Only now, with its mailbox terminated, has the actor left any running snapshot.
        let effects = self.ctx.system.engine().stopped(self.ctx.epoch);
        self.ctx.system.run_effects(effects);
        if reason.is_failure() {
            tracing::warn!(actor = %id, %reason, "stopped");
        } else {
            tracing::debug!(actor = %id, %reason, "stopped");
        }
    }
}
