//! [`ActorRef`]: the typed, cloneable, serializable handle to an actor.

use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use crate::any_mailbox::terminated;
use crate::envelope::{Envelope, Origin};
use crate::mailbox::Watcher;
use crate::signal::Signal;
use crate::snapshot::Taint;
use crate::target::{Mailbox, Refused, Remote, Target};
use crate::{Actor, ActorId, AskError, ExitReason, SendError, TrySendError};

/// A typed handle to an actor of type `A`.
///
/// Cheap to clone (one reference count), `Send + Sync`, and serializable: it serializes as
/// the actor's stable [`ActorId`], never as a pointer, and deserializes back to a working
/// handle inside [`ActorSystem::decode`](crate::ActorSystem::decode). Sends from inside a
/// handler are stamped with the sending actor's id and epoch; sends from anywhere else are
/// messages from outside the system.
pub struct ActorRef<A: Actor> {
    /// The actor's id, kept beside the target: read without touching the mailbox (a state
    /// that holds refs reads one per ref each time it is encoded, at every snapshot).
    id: ActorId,
    target: Target<A>,
}

impl<A: Actor> ActorRef<A> {
    /// A ref to the actor of this node whose mailbox this is.
    pub(crate) fn from_mailbox(mailbox: Arc<Mailbox<A>>) -> Self {
        ActorRef { id: mailbox.meta.id, target: Target::Local(mailbox) }
    }

    /// A ref to an actor on another node.
    pub(crate) fn remote(remote: Remote) -> Self {
        ActorRef { id: remote.meta.id, target: Target::Remote(Arc::new(remote)) }
    }

    /// The actor's mailbox, if it is (or was) an actor of this node.
    pub(crate) fn local(&self) -> Option<&Arc<Mailbox<A>>> {
        match &self.target {
            Target::Local(mailbox) => Some(mailbox),
            Target::Remote(_) => None,
        }
    }

    /// The actor's stable id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The actor's registered name, if it was spawned with one.
    pub fn name(&self) -> Option<&str> {
        self.target.meta().name.as_deref()
    }

    /// Sends a message without waiting for a reply; fails, giving the message back, if the
    /// actor has stopped, or if it lives on another node that is down (the same
    /// [`SendError`]; an [`ask`](Self::ask) tells the two apart with
    /// [`AskError::NodeDown`]).
    ///
    /// # The mailbox rule: handlers never wait for room
    ///
    /// Sent from outside the system (plain code, a detached task, a timer), a message waits
    /// while a bounded mailbox is full: backpressure. Waiting senders are served first come,
    /// first served: room that frees up goes to them in line, and no
    /// [`try_tell`](Self::try_tell) takes it meanwhile. Sent from inside a handler (a `tell`
    /// or an [`ask`](Self::ask)), it never waits for room: it is queued beyond the bound.
    /// Otherwise an actor telling itself, or two actors telling each other, with full
    /// mailboxes would each wait inside a handler for the other to take a message, and
    /// neither ever would. So actors can never deadlock on capacity, whatever they send to
    /// whom; the bound limits what the outside pours in. An actor that floods another with
    /// tells from its handlers is not slowed down by the bound: use
    /// [`try_tell`](Self::try_tell) (which fails with [`TrySendError::Full`] from anywhere)
    /// or asks where a handler needs to pace itself.
    ///
    /// A link to another node is different: it is drained by the network, not by an actor,
    /// so a handler's tell to an actor there, finding the link's queue full, is queued
    /// beyond the link's bound too, and then its actor waits for the link to drain before it
    /// takes its next message. The link stays bounded (by one handler's sends beyond it),
    /// and the wait is between two messages, where a snapshot can still cut the actor.
    pub async fn tell(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        let sent = match self.send_at_once(Envelope::new(msg, None)) {
            Ok(sent) => sent,
            Err(full) => self.wait_for_room(full).await,
        };
        sent.map_err(|env| SendError(env.msg))
    }

    /// Sends a message without waiting at all: fails with [`TrySendError::Full`] if a bounded
    /// mailbox is full (or has room only for senders waiting in line for it: waiting
    /// [`tell`](Self::tell)s are served first, in the order they came), or
    /// [`TrySendError::Stopped`] if the actor has stopped. The message is given back either
    /// way.
    pub fn try_tell(&self, msg: A::Msg) -> Result<(), TrySendError<A::Msg>> {
        match self.target.send(Envelope::new(msg, None), None) {
            Ok(()) => Ok(()),
            Err(Refused::Full(env)) => Err(TrySendError::Full(env.msg)),
            Err(Refused::Stopped(env)) => Err(TrySendError::Stopped(env.msg)),
        }
    }

    /// Sends a request and waits for the reply, for at most the system's ask timeout.
    ///
    /// An ask to an idle actor of this node is served on the asker's thread: its handler
    /// runs here, inside the asker's task, as the actor's own turn (same order, same
    /// snapshot tagging; a handler that awaits is finished by the actor's task). See
    /// [`SystemBuilder::inline_asks`](crate::SystemBuilder::inline_asks).
    pub async fn ask(&self, msg: A::Msg) -> Result<A::Reply, AskError> {
        // Not through `ask_timeout`: an `async fn` layer less per ask.
        let timeout = self.target.meta().asks.timeout();
        self.ask_or_return(msg, timeout).await.map_err(|(error, _)| error)
    }

    /// Sends a request and waits at most `timeout` for the reply (waiting for room in a full
    /// mailbox counts against it). On timeout the request may still be handled later; its
    /// reply is then dropped.
    ///
    /// The timeout is kept by the system's ask clock, not a timer per ask: the ask fails
    /// with [`AskError::Timeout`] once `timeout` has passed and at most two clock ticks
    /// later (a tick is a fiftieth of the system's
    /// [`ask_timeout`](crate::SystemBuilder::ask_timeout), between 5 and 100 ms: 100 ms by
    /// default). A `timeout` shorter than ten ticks gets a tokio timer instead (1 ms
    /// granularity).
    ///
    /// An ask served on the asker's thread (see [`ask`](Self::ask)) whose handler computes
    /// for longer than a `timeout` under a second without awaiting fails with
    /// [`AskError::Timeout`] once the handler is done (handled, its reply dropped, as any
    /// ask that timed out), not at the deadline: nothing interrupts a handler that does not
    /// await. With a timeout of a second or more (the default is 5 s) such an ask is not
    /// timed: it answers once the handler is done. Systems built with
    /// [`inline_asks(false)`](crate::SystemBuilder::inline_asks) fail it at the deadline.
    pub async fn ask_timeout(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, AskError> {
        self.ask_or_return(msg, timeout).await.map_err(|(error, _)| error)
    }

    /// [`ask_timeout`](Self::ask_timeout), giving back a request that was not delivered:
    /// `Err((error, Some(msg)))` if the actor had stopped (or passivated, see
    /// [`crate::passivate`]) before it took the request ([`AskError::Stopped`]), or its
    /// node was down ([`AskError::NodeDown`]); nothing was handled, and the request may be
    /// sent again (to the actor found again). A request that was delivered and then not
    /// answered, or not in time, does not come back (`Err((error, None))`).
    pub async fn ask_or_return(
        &self,
        msg: A::Msg,
        timeout: Duration,
    ) -> Result<A::Reply, (AskError, Option<A::Msg>)> {
        let (tx, mut rx) = oneshot::channel();
        let asker = crate::current::current();
        let env = Envelope::from(asker, msg, Some(tx));
        let sampled = crate::metrics::sample_ask().then(std::time::Instant::now);
        // An idle actor of this node serves it on this thread (see `crate::inline`); if its
        // handler finished at once, the reply is there already. Timed only if its timeout
        // is short (reading the clock twice cost a third of such an ask's speed).
        let timed = timeout < crate::inline::TIMED_BELOW;
        let env = match self.target.serve_inline(env, timed) {
            Ok(started) => match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => None,
                answered => {
                    if let Some(started) = sampled {
                        crate::metrics::ask_latency(started.elapsed());
                    }
                    if started.is_some_and(|started| started.elapsed() > timeout) {
                        // As if timed out while the actor's task served it: handled, and its
                        // reply dropped (a handler that does not await is not interrupted).
                        return Err((AskError::Timeout(timeout), None));
                    }
                    return self.answered(asker, answered.map_err(drop));
                }
            },
            Err(env) => Some(env),
        };
        let exchange = async {
            if let Some(env) = env {
                let sent = match self.send_at_once(env) {
                    Ok(sent) => sent,
                    Err(full) => self.wait_for_room(full).await,
                };
                if let Err(env) = sent {
                    return Err((self.node_down().unwrap_or(AskError::Stopped), Some(env.msg)));
                }
            }
            self.answered(asker, rx.await.map_err(drop))
        };
        let asks = &self.target.meta().asks;
        let result = match asks.timer(timeout) {
            // Timed out by the system's ask clock, no tokio timer (see `AskClock`).
            Some(mut timer) => {
                let mut exchange = std::pin::pin!(exchange);
                poll_fn(|cx| match exchange.as_mut().poll(cx) {
                    Poll::Ready(result) => Poll::Ready(result),
                    Poll::Pending => {
                        timer.poll_expired(cx).map(|()| Err((AskError::Timeout(timeout), None)))
                    }
                })
                .await
            }
            None => match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err((AskError::Timeout(timeout), None)),
            },
        };
        if let Some(started) = sampled {
            crate::metrics::ask_latency(started.elapsed());
        }
        result
    }

    /// What an ask delivered to its actor gets: the reply (tainting a snapshot it would
    /// make inconsistent), or, if the reply was dropped, why.
    fn answered(
        &self,
        asker: Option<crate::current::Running>,
        reply: Result<(A::Reply, amber_snapshot::Epoch), ()>,
    ) -> Result<A::Reply, (AskError, Option<A::Msg>)> {
        let Ok((reply, responder_epoch)) = reply else {
            self.taint_if_dropped_after_cut(asker);
            return Err((self.node_down().unwrap_or(AskError::NoReply), None));
        };
        if let Some(asker) = asker
            && responder_epoch > asker.epoch
        {
            // The reply was computed after the responder's cut for a snapshot the asker has
            // not cut for yet: that snapshot would not be a consistent cut.
            let taint = Taint::AskReplyAfterCut { asker: asker.id, responder: self.id() };
            self.target.meta().late.taint(responder_epoch, taint);
        }
        Ok(reply)
    }

    /// The request of `asker` was dropped unanswered (the responder stopped). If the
    /// responder had cut for a snapshot the asker has not cut for, the request was recorded
    /// in flight at that cut (queued then, or arriving after), yet the asker, still before
    /// its own cut, learns it failed and keeps what it asked for: that snapshot would count
    /// the request twice, so it is marked inconsistent (and retried).
    fn taint_if_dropped_after_cut(&self, asker: Option<crate::current::Running>) {
        let Some(asker) = asker else { return };
        // On another node: its refusal answers carry no epoch.
        let Target::Local(mailbox) = &self.target else { return };
        let responder = mailbox.cut_state().epoch();
        if responder > asker.epoch {
            let taint = Taint::AskDroppedAfterCut { asker: asker.id, responder: self.id() };
            mailbox.meta.late.taint(responder, taint);
        }
    }

    /// For an actor on another node that is down now: the error to report. That includes
    /// an actor that moved from this node to another one whose link is down now (its
    /// forwarding entry here refuses what it cannot forward, as a ref to an actor of that
    /// node would).
    fn node_down(&self) -> Option<AskError> {
        match &self.target {
            Target::Remote(remote) => {
                let route = &remote.route;
                (!route.is_up()).then(|| AskError::NodeDown(route.node().to_owned()))
            }
            Target::Local(mailbox) => {
                let to = mailbox.moved_to()?;
                (!to.is_up()).then(|| AskError::NodeDown(to.node().to_owned()))
            }
        }
    }

    /// Asks the actor to stop after its current message. Queued messages are not handled
    /// (pending asks fail with [`AskError::NoReply`]). Returns at once; see
    /// [`wait_stopped`](Self::wait_stopped).
    pub fn stop(&self) {
        self.signal(Signal::Stop(ExitReason::Stopped));
    }

    /// Asks the actor to refuse new messages, handle everything already queued, then stop.
    pub fn drain(&self) {
        self.signal(Signal::Drain);
    }

    /// Pushes a control signal to an actor of this node; signals do not cross nodes.
    fn signal(&self, signal: Signal) {
        if let Target::Local(mailbox) = &self.target {
            let _ = mailbox.push_control(signal);
        }
    }

    /// Waits until the actor has stopped and returns why.
    ///
    /// For an actor on another node, the wait goes through a watch taken on that node for
    /// as long as it lasts (cancelling it withdraws the watch); it returns the real exit
    /// reason, or [`ExitReason::NodeDown`] if that node goes down or is unreachable first
    /// (the actor may still be running there: a later wait asks again).
    ///
    /// For an actor that moved from this node to another one (a ref that reaches it through
    /// this node's forwarding entry), the wait lasts as long as the entry: it returns the
    /// actor's exit reason there, or [`ExitReason::NodeDown`] once its new node is gone for
    /// good (restarted, declared down by the membership, given up on). A dropped link that
    /// comes back does not end it.
    pub async fn wait_stopped(&self) -> ExitReason {
        match &self.target {
            Target::Local(mailbox) => {
                terminated(&**mailbox).await;
                mailbox.exit_reason().unwrap_or(ExitReason::Stopped)
            }
            Target::Remote(remote) => remote.wait_stopped().await,
        }
    }

    /// Whether the actor has stopped. For an actor on another node: whether a
    /// [`wait_stopped`](Self::wait_stopped) on this ref (or a clone) has seen it stop.
    pub fn is_stopped(&self) -> bool {
        match &self.target {
            Target::Local(mailbox) => mailbox.is_terminated(),
            Target::Remote(remote) => remote.exit_reason().is_some(),
        }
    }

    /// The number of messages waiting in the actor's mailbox (not counting the batch it has
    /// already taken). For diagnostics.
    pub fn queued(&self) -> usize {
        match &self.target {
            Target::Local(mailbox) => mailbox.queued(),
            Target::Remote(_) => 0,
        }
    }

    /// Registers `watcher` to be told when this actor terminates (for an actor on another
    /// node, through a watch that node keeps). If it already has, or its node is down, the
    /// watcher is given back with the reason, so it can be told at once.
    pub(crate) fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, ExitReason)> {
        match &self.target {
            Target::Local(mailbox) => mailbox.add_watcher(watcher),
            Target::Remote(remote) => {
                let route = &remote.route;
                route
                    .watch(self.id(), watcher.id())
                    .map_err(|_| (watcher, ExitReason::NodeDown(route.node().to_owned())))
            }
        }
    }

    /// Withdraws the watch of the actor `watcher` (on another node: the watch there).
    pub(crate) fn remove_watcher(&self, watcher: ActorId) {
        match &self.target {
            Target::Local(mailbox) => mailbox.remove_watcher(watcher),
            Target::Remote(remote) => remote.route.unwatch(self.id(), watcher),
        }
    }

    /// Pushes an envelope, waiting for room; gives it back if the actor has stopped. (`tell`
    /// and `ask` do the same in their own bodies: an `async fn` layer less per message.)
    pub(crate) async fn push(&self, env: Envelope<A>) -> Result<(), Envelope<A>> {
        match self.send_at_once(env) {
            Ok(sent) => sent,
            Err(full) => self.wait_for_room(full).await,
        }
    }

    /// The first try of a send, without waiting: `Ok` with the outcome if it is over (sent,
    /// or the envelope given back because the actor has stopped), `Err` with the envelope if
    /// the mailbox is full ([`wait_for_room`](Self::wait_for_room) then). Room at once is the
    /// common case: it costs no waiting send's state machine.
    #[inline]
    fn send_at_once(&self, env: Envelope<A>) -> Result<Result<(), Envelope<A>>, Envelope<A>> {
        match self.target.send(env, None) {
            Ok(()) => Ok(Ok(())),
            Err(Refused::Stopped(env)) => Ok(Err(env)),
            Err(Refused::Full(env)) => Err(env),
        }
    }

    /// Sends an envelope that found the mailbox full ([`send_at_once`](Self::send_at_once)),
    /// waiting for room; gives it back if the actor has stopped.
    async fn wait_for_room(&self, env: Envelope<A>) -> Result<(), Envelope<A>> {
        // The mailbox rule: a handler never waits for room (see `tell`).
        let mut env = if matches!(env.origin, Origin::Actor(_)) {
            match self.target.send_overflow(env) {
                Ok(()) => return Ok(()),
                Err(Refused::Stopped(env)) => return Err(env),
                Err(Refused::Full(env)) => Some(env),
            }
        } else {
            Some(env)
        };
        // Waits in the mailbox's line, first come first served; leaves it if dropped.
        let mut line = InLine { target: &self.target, ticket: None };
        poll_fn(|cx| {
            let item = env.take().expect("polled after completion");
            match self.target.send(item, Some((cx, &mut line.ticket))) {
                Ok(()) => {
                    line.ticket = None; // served: it took its slot and left the line
                    Poll::Ready(Ok(()))
                }
                Err(Refused::Stopped(item)) => Poll::Ready(Err(item)),
                Err(Refused::Full(item)) => {
                    env = Some(item);
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// A send's place in its mailbox's line for room, given up if the send is dropped while
/// it waits (a slot granted to it then goes to the next in line).
struct InLine<'a, A: Actor> {
    target: &'a Target<A>,
    ticket: Option<u64>,
}

impl<A: Actor> Drop for InLine<'_, A> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.target.cancel_wait(ticket);
        }
    }
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef { id: self.id, target: self.target.clone() }
    }
}

impl<A: Actor> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<A: Actor> Eq for ActorRef<A> {}

impl<A: Actor> Hash for ActorRef<A> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef<{}>({})", self.target.meta().type_name, self.id())
    }
}

impl<A: Actor> Serialize for ActorRef<A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.id().serialize(serializer)
    }
}

impl<'de, A: Actor> Deserialize<'de> for ActorRef<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = ActorId::deserialize(deserializer)?;
        crate::system::resolve::<A>(id).map_err(serde::de::Error::custom)
    }
}
