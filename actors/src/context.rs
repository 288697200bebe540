//! [`Context`]: what a running actor can do besides handling its message.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use amber_snapshot::Epoch;

use crate::any_mailbox::AnyMailbox;
use crate::envelope::Origin;
use crate::signal::Signal;
use crate::system::Make;
use crate::target::Mailbox;
use crate::timer::Timers;
use crate::{
    Actor, ActorId, ActorRef, ActorSystem, Down, ExitReason, SpawnError, SpawnOptions, TimerId,
};

/// The running actor's view of itself and its system, passed to every handler and hook.
pub struct Context<A: Actor> {
    pub(crate) me: ActorRef<A>,
    /// This actor's own mailbox (`me` leads to it).
    pub(crate) mailbox: Arc<Mailbox<A>>,
    pub(crate) system: ActorSystem,
    pub(crate) parent: Option<Arc<dyn AnyMailbox>>,
    pub(crate) children: HashMap<ActorId, Arc<dyn AnyMailbox>, crate::LocalHash>,
    pub(crate) watching: HashSet<ActorId>,
    pub(crate) timers: Timers,
    pub(crate) origin: Origin,
    pub(crate) stop: bool,
    /// The data messages handled since the actor started on this node (see
    /// [`crate::passivate`]).
    pub(crate) handled: u64,
}

impl<A: Actor> Context<A> {
    /// The context of the actor whose mailbox is `mailbox`.
    pub(crate) fn new(
        mailbox: Arc<Mailbox<A>>,
        system: ActorSystem,
        parent: Option<Arc<dyn AnyMailbox>>,
    ) -> Self {
        Context {
            me: ActorRef::from_mailbox(mailbox.clone()),
            mailbox,
            system,
            parent,
            children: HashMap::default(),
            watching: HashSet::new(),
            timers: Timers::default(),
            origin: Origin::Outside,
            stop: false,
            handled: 0,
        }
    }

    /// This actor's epoch in the snapshot protocol, as its mailbox's cut has it. Inside a
    /// handler or hook (where the context is lent) it is the running actor's, which the
    /// task passes along without locking; it changes only at cuts, between two messages.
    pub(crate) fn epoch(&self) -> Epoch {
        match crate::current::current() {
            Some(running) if running.id == self.id() => running.epoch,
            _ => self.mailbox.cut_state().epoch(),
        }
    }

    /// This actor's own ref.
    pub fn myself(&self) -> &ActorRef<A> {
        &self.me
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.me.id()
    }

    /// The system this actor runs in.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// Where the message being handled came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The ids of this actor's live children.
    pub fn children(&self) -> impl Iterator<Item = ActorId> + '_ {
        self.children.keys().copied()
    }

    /// Spawns a child of this actor (stopped when a panic reaches it; see
    /// [`spawn_with`](Self::spawn_with) for restarts).
    pub fn spawn<C: Actor>(&mut self, child: C) -> Result<ActorRef<C>, SpawnError> {
        self.spawn_child(SpawnOptions::new(), Make::Instance(child))
    }

    /// Spawns a named child of this actor.
    pub fn spawn_named<C: Actor>(
        &mut self,
        name: impl Into<String>,
        child: C,
    ) -> Result<ActorRef<C>, SpawnError> {
        self.spawn_child(SpawnOptions::new().name(name), Make::Instance(child))
    }

    /// Spawns a child built by `factory`, which is called again for each restart its
    /// [`RestartPolicy`](crate::RestartPolicy) allows.
    pub fn spawn_with<C: Actor>(
        &mut self,
        options: SpawnOptions,
        factory: impl FnMut() -> C + Send + 'static,
    ) -> Result<ActorRef<C>, SpawnError> {
        self.spawn_child(options, Make::Factory(Box::new(factory)))
    }

    fn spawn_child<C: Actor>(
        &mut self,
        options: SpawnOptions,
        make: Make<C>,
    ) -> Result<ActorRef<C>, SpawnError> {
        let parent: Arc<dyn AnyMailbox> = self.mailbox.clone();
        let child = self.system.spawn_inner(options, make, Some(parent), Some(self.epoch()))?;
        if let Some(mailbox) = child.local() {
            self.children.insert(child.id(), mailbox.clone());
        }
        Ok(child)
    }

    /// Stops this actor once the current handler returns.
    pub fn stop(&mut self) {
        self.stop = true;
    }

    /// Watches `other`: when it stops, [`Actor::on_down`] runs with the reason. Watching an
    /// actor that has already stopped calls `on_down` at once (as the next control signal).
    pub fn watch<B: Actor>(&mut self, other: &ActorRef<B>) {
        if other.id() == self.id() || !self.watching.insert(other.id()) {
            return;
        }
        if let Err((_, reason)) = other.add_watcher(self.mailbox.clone()) {
            let down = Down { actor: other.id(), reason };
            let _ = self.mailbox.push_control(Signal::Down(down));
        }
    }

    /// Watches the actor `watched`, wherever it lives, by id: a local mailbox, or through the
    /// remote route of its node (a restored or arrived actor knows only the ids it watched).
    /// An actor that cannot be watched is reported `Down` at once, as by [`watch`](Self::watch).
    pub(crate) fn watch_id(&mut self, watched: ActorId) {
        if watched == self.id() || !self.watching.insert(watched) {
            return;
        }
        let me = self.mailbox.clone();
        let refused = if let Some(mailbox) = self.system.registry().get(watched) {
            mailbox.add_watcher(me).err().map(|(_, reason)| reason)
        } else if let Some(route) = self.system.remote_route(watched) {
            route
                .watch(watched, self.id())
                .err()
                .map(|_| ExitReason::NodeDown(route.node().to_owned()))
        } else {
            Some(ExitReason::Stopped)
        };
        if let Some(reason) = refused {
            let _ = self.mailbox.push_control(Signal::Down(Down { actor: watched, reason }));
        }
    }

    /// Stops watching `other`.
    pub fn unwatch<B: Actor>(&mut self, other: &ActorRef<B>) {
        if self.watching.remove(&other.id()) {
            other.remove_watcher(self.id());
        }
    }

    /// Sends `msg` to this actor after `delay`. Cancel with [`cancel_timer`](Self::cancel_timer).
    pub fn send_after(&mut self, delay: Duration, msg: A::Msg) -> TimerId {
        self.timers.send_after(&self.mailbox, delay, msg)
    }

    /// Sends a clone of `msg` to this actor every `period`, first after one period.
    pub fn send_interval(&mut self, period: Duration, msg: A::Msg) -> TimerId
    where
        A::Msg: Clone,
    {
        self.timers.send_interval(&self.mailbox, period, msg)
    }

    /// Cancels a timer. Once this returns, the handler never sees a message of that timer,
    /// even one already queued. `false` if the timer was not live.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// The number of live timers.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("actor", &self.me)
            .field("children", &self.children.len())
            .field("timers", &self.timers.len())
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}
