//! Passivation: an idle actor hands its state to a keeper and stops, atomically with
//! respect to its messages and to snapshots.
//!
//! [`ActorSystem::passivate`] puts a request on the actor's control lane. The actor's own
//! task takes it between two messages (no handler runs, the task holds the actor):
//!
//! 1. It checks the actor can passivate: a registered type (its state encodes), top level
//!    (no parent, no children), no timers, watching nobody; and that it is idle: no
//!    message handled since the count the caller saw last, if it gave one
//!    ([`PassivateRequest::if_handled`]).
//! 2. It encodes the state.
//! 3. It closes the data lane *if and only if* nothing waits in the mailbox (no data
//!    message, no signal, no sender waiting for room, no deferred cut), under the
//!    mailbox's lock. A sender either got its message in before (then the actor is not
//!    idle: [`Passivation::Busy`], nothing changed) or is refused after, and gets its
//!    message back as from any stopped actor. No message is ever queued in a mailbox that
//!    passivates, so none is lost with it or handled twice.
//! 4. It leaves the registry (a lookup by name no longer finds it), and calls the caller's
//!    `keep` with the state, *as the actor*: a message `keep` sends is the actor's, tagged
//!    with its epoch and counted among its sends like any message its handlers send. If
//!    `keep` refuses, the actor is registered again, its data lane opens again and it runs
//!    on ([`PassivateError::NotKept`]).
//! 5. It stops as any actor stops (`on_stop` runs, watchers hear [`ExitReason::Stopped`],
//!    it leaves a running snapshot).
//!
//! A request may carry a [`Redirect`]: where the tells that arrive *from other nodes* for
//! the actor go once it has passivated (a tell across a link is never reported back to its
//! sender, so a refusal there would lose it silently). The redirect is known to the system
//! before the mailbox closes, and the close marks the mailbox as redirecting under its lock
//! (see `mailbox/core/idle.rs`): a tell that arrives after the close, whether the actor is
//! still registered, has stopped, or has left the registry, is handed to the redirect's
//! actor, with its sender, its tag and its payload wrapped by the redirect, and counted
//! once for snapshots (it is queued, and recorded if it crosses a cut, in the mailbox it
//! goes to; never recorded as a dead letter of the passivated actor). An ask from another
//! node is redirected the same way if the redirect says how ([`Redirect::wrap_ask`]): its
//! reply route stays on this node, parked under a ticket the wrapped message carries, for
//! the redirect's actor to claim and send the request on with, so that the actor started
//! again answers the asker itself (see [`crate::parked_reply`]); without `wrap_ask` the
//! asker gets an error (not delivered, send again). Local senders get their message back
//! (a tell) or [`AskError::Stopped`](crate::AskError::Stopped) (an ask: not delivered), as
//! from any stopped actor, and may look the actor up again
//! ([`ActorRef::ask_or_return`](crate::ActorRef::ask_or_return) gives an ask's request
//! back). The redirect stays known for as long as the system runs (a ref to the actor may
//! be held anywhere).
//!
//! Snapshots stay exact without any rule of their own: if `keep` sends the state to a
//! keeper actor, the state's move is a message of the snapshot protocol like any other.
//! Before the actor's cut for a snapshot, the actor is not in it (it stopped before its
//! cut) and the state is in the keeper's cut, or recorded in flight to it; after the
//! actor's cut, the actor's own cut holds the state, and the keeper cuts before it handles
//! the message. [`Context::spawn_registered_detached`] is the way back: the keeper starts
//! the actor again from the kept state inside a handler, born in the keeper's epoch, so the
//! started actor is in a running snapshot exactly when the keeper's cut does not hold the
//! state any more. An actor started that way after the keeper's cut is not in the
//! snapshot, so a tell from a sender that had not cut that reaches it would vanish from the
//! snapshot (it taints it); [`Context::spawn_registered_from_kept`] records such a tell as
//! sent to the keeper instead, wrapped by the same [`Redirect`] as the passivated actor's
//! tells: the keeper restored from the snapshot starts the actor again and sends it on.

use std::any::Any;
use std::fmt;

use tokio::sync::oneshot;

use crate::any_mailbox::Undelivered;
use crate::current::{self, Running};
use crate::remote::{DeliverError, InboundMessage};
use crate::runner::Runner;
use crate::signal::Signal;
use crate::turn::turn_sync;
use crate::{Actor, ActorId, ActorSystem, CodecError, Context, ExitReason, SpawnError};

/// The state of an actor that passivates, handed to the caller's `keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptState {
    /// The actor.
    pub id: ActorId,
    /// Its registered type name ([`ActorState::TYPE_NAME`](crate::ActorState::TYPE_NAME)).
    pub type_name: &'static str,
    /// The name it was registered under, if any.
    pub name: Option<String>,
    /// The layout version of `state` ([`ActorState::VERSION`](crate::ActorState::VERSION)).
    pub version: u32,
    /// The state, as [`ActorState::encode_state`](crate::ActorState::encode_state) wrote it.
    pub state: Vec<u8>,
}

/// Keeps the state of an actor that passivates (see [`ActorSystem::passivate`]); runs in
/// the actor's task, as the actor. `Err` gives the state back and refuses the passivation.
pub type Keep = Box<dyn FnOnce(KeptState) -> Result<(), KeptState> + Send>;

/// Makes the message for a [`Redirect`]'s actor out of a tell for the passivated actor
/// (its payload, MessagePack of the passivated actor's message type).
pub type Wrap = Box<dyn Fn(Vec<u8>) -> Result<Vec<u8>, CodecError> + Send + Sync>;

/// Makes the message for a [`Redirect`]'s actor out of an ask for the passivated actor
/// (its payload) and the ticket of its parked reply route (see [`crate::parked_reply`]).
pub type WrapAsk =
    Box<dyn Fn(Vec<u8>, crate::ReplyTicket) -> Result<Vec<u8>, CodecError> + Send + Sync>;

/// Where the tells (and asks) from other nodes for an actor that passivated go from then
/// on (see the [module docs](crate::passivate)).
pub struct Redirect {
    /// The actor of this node (or one that moved on from it) that gets them.
    pub to: ActorId,
    /// Wraps each tell for `to` (its message type's encoding).
    pub wrap: Wrap,
    /// Wraps each ask for `to`, with the ticket `to` claims its reply route by
    /// ([`Context::claim_reply`]); `None`: asks are refused (their askers get an error).
    pub wrap_ask: Option<WrapAsk>,
}

impl fmt::Debug for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redirect").field("to", &self.to).finish()
    }
}

/// A request to passivate an actor if it is idle ([`ActorSystem::passivate`]).
pub struct PassivateRequest {
    /// Passivate only if the actor has handled exactly this many messages (the count a
    /// previous [`Passivation::Busy`] gave): none since then. `None`: whatever it handled
    /// (the mailbox must still be empty).
    pub if_handled: Option<u64>,
    /// Where the state goes.
    pub keep: Keep,
    /// Where the tells from other nodes for the actor go once it passivated (`None`: they
    /// are refused as to any stopped actor, and their senders never learn).
    pub redirect: Option<Redirect>,
}

impl fmt::Debug for PassivateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassivateRequest")
            .field("if_handled", &self.if_handled)
            .field("redirect", &self.redirect)
            .finish()
    }
}

/// A [`Context::tell_encoded`] that did not reach its actor: the payload, given back, and
/// why.
#[derive(Debug)]
pub struct EncodedSendError {
    /// The payload sent.
    pub payload: Vec<u8>,
    /// Why it was not delivered.
    pub error: DeliverError,
}

impl fmt::Display for EncodedSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "encoded message not delivered: {}", self.error)
    }
}

impl std::error::Error for EncodedSendError {}

/// What a passivation request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passivation {
    /// The state went to `keep` and the actor stops.
    Passivated,
    /// The actor is not idle (it handled messages since the count given, or messages or
    /// signals wait): it runs on. `handled`: the messages it has handled so far, to give as
    /// [`PassivateRequest::if_handled`] next time.
    Busy {
        /// The data messages the actor has handled since it started on this node.
        handled: u64,
    },
}

/// Why an actor cannot passivate (it runs on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassivateError {
    /// No live actor with this id on this node.
    #[error("no live actor {0} on this node")]
    NotHere(ActorId),
    /// The actor is stopping (or stopped before it read the request).
    #[error("actor {0} is stopping")]
    Stopping(ActorId),
    /// The actor's type is not registered: its state cannot be encoded.
    #[error("actor {0} is of an unregistered type")]
    NotRegistered(ActorId),
    /// The actor has a parent or children, timers, or watches other actors: what it would
    /// lose is not part of its state.
    #[error("actor {actor} cannot passivate: {why}")]
    Unsupported {
        /// The actor.
        actor: ActorId,
        /// What it has that passivation would lose.
        why: &'static str,
    },
    /// The state did not encode (or its encoder panicked).
    #[error("actor {actor}: state does not encode: {error}")]
    Encode {
        /// The actor.
        actor: ActorId,
        /// The encoder's error.
        error: String,
    },
    /// `keep` refused the state.
    #[error("actor {0}: the state was not kept")]
    NotKept(ActorId),
}

/// The request as the control lane carries it.
pub(crate) struct Passivating {
    request: PassivateRequest,
    done: oneshot::Sender<Result<Passivation, PassivateError>>,
}

impl ActorSystem {
    /// Passivates the actor `id` of this node if it is idle: its state goes to
    /// `request.keep` (called in the actor's task, as the actor) and it stops, atomically
    /// with respect to its messages (see the [module docs](crate::passivate)). Returns
    /// [`Passivation::Busy`] (and changes nothing) if it is not idle.
    pub async fn passivate(
        &self,
        id: ActorId,
        request: PassivateRequest,
    ) -> Result<Passivation, PassivateError> {
        let mailbox = self.registry().get(id).ok_or(PassivateError::NotHere(id))?;
        let (done, answer) = oneshot::channel();
        let passivating = Passivating { request, done };
        mailbox
            .signal(Signal::Passivate(Box::new(passivating)))
            .map_err(|_| PassivateError::Stopping(id))?;
        // A task that ends before it reads the request drops it: the actor stopped.
        answer.await.unwrap_or(Err(PassivateError::Stopping(id)))
    }
}

impl<A: Actor> Context<A> {
    /// Spawns a top-level actor of the type registered under `type_name` from its encoded
    /// `state` (as [`ActorSystem::spawn_registered`] does), *born in this actor's epoch*:
    /// like a child, it belongs to a running snapshot if, and only if, this actor has not
    /// cut for it yet; unlike a child, it is not supervised by this actor (it can move to
    /// another node, and outlives it). The way back from a passivation whose state this
    /// actor keeps. Returns the new actor's id.
    pub fn spawn_registered_detached(
        &self,
        type_name: &str,
        name: Option<String>,
        version: u32,
        state: &[u8],
    ) -> Result<ActorId, SpawnError> {
        self.spawn_detached(type_name, name, None, version, state)
    }

    /// [`spawn_registered_detached`](Self::spawn_registered_detached), for an actor started
    /// again from the state of one that passivated, which this actor kept (a keeper):
    /// `kept_by` says where that actor's tells go (see [`Redirect`]; usually this actor).
    /// If this actor had already cut for a running snapshot (so its cut still holds the
    /// state, and the new actor is not in the snapshot), a tell from a sender that had not
    /// cut yet that reaches the new actor is in flight across the cut: it is recorded as
    /// sent to `kept_by.to`, wrapped by it (the keeper, restored with the state, would start
    /// the actor from it and send it on), instead of making the snapshot inconsistent
    /// ([`Taint::BornAfterSnapshot`](crate::Taint::BornAfterSnapshot)). Asks are not: they
    /// still make it inconsistent.
    pub fn spawn_registered_from_kept(
        &self,
        type_name: &str,
        name: Option<String>,
        version: u32,
        state: &[u8],
        kept_by: Redirect,
    ) -> Result<ActorId, SpawnError> {
        self.spawn_detached(type_name, name, Some(kept_by), version, state)
    }

    fn spawn_detached(
        &self,
        type_name: &str,
        name: Option<String>,
        kept_by: Option<Redirect>,
        version: u32,
        state: &[u8],
    ) -> Result<ActorId, SpawnError> {
        let registered = self
            .system
            .config()
            .types
            .named(type_name)
            .ok_or_else(|| SpawnError::UnknownType(type_name.to_owned()))?;
        let epoch = self.epoch();
        let mut options = match name {
            Some(name) => crate::SpawnOptions::new().name(name),
            None => crate::SpawnOptions::new(),
        };
        options.born_of = kept_by.map(std::sync::Arc::new);
        (registered.spawn)(&self.system, options, version, state, Some(epoch))
    }

    /// Sends `payload`, a message encoded as the receiver's message type (MessagePack, as
    /// [`encode`](crate::encode) writes it), to the actor `to` of this node (or on to
    /// where it moved), as this actor: tagged with its epoch like any tell from its
    /// handlers, queued regardless of the receiver's capacity (the mailbox rule), in this
    /// actor's order with its other sends to `to`. For an actor that forwards messages it
    /// cannot decode (a passivated actor's keeper). Fails, giving the payload back, if `to`
    /// is not here or has stopped (or passivated), or the payload does not decode.
    pub fn tell_encoded(&self, to: ActorId, payload: Vec<u8>) -> Result<(), EncodedSendError> {
        let Some(mailbox) = self.system.local_or_moved(to) else {
            return Err(EncodedSendError { payload, error: DeliverError::NoSuchActor(to) });
        };
        let epoch = self.epoch();
        let message = InboundMessage {
            to,
            from: Some(self.id()),
            tag: epoch,
            depth: 0,
            payload: payload.clone().into(),
            reply: None,
        };
        match mailbox.deliver(&self.system, message, true) {
            Ok(()) => Ok(()),
            Err(Undelivered::Refused(error, _)) => Err(EncodedSendError { payload, error }),
            Err(Undelivered::Passivated(_)) => {
                Err(EncodedSendError { payload, error: DeliverError::Stopped(to) })
            }
        }
    }

    /// The data messages this actor has handled since it started on this node.
    pub fn handled(&self) -> u64 {
        self.handled
    }
}

impl<A: Actor> Runner<A> {
    /// Handles a passivation request (a [`Passivating`]); `Some` if the actor must stop.
    pub(crate) fn passivate(&mut self, request: Box<dyn Any + Send>) -> Option<ExitReason> {
        let Ok(passivating) = request.downcast::<Passivating>() else {
            tracing::error!(actor = %self.ctx.id(), "a passivation request of another kind: ignored");
            return None;
        };
        let Passivating { request, done } = *passivating;
        let result = self.try_passivate(request);
        match &result {
            Ok(Passivation::Passivated) => {
                tracing::debug!(actor = %self.ctx.id(), "passivated");
            }
            Ok(Passivation::Busy { .. }) => {}
            Err(e) => tracing::debug!(actor = %self.ctx.id(), error = %e, "did not passivate"),
        }
        let stop = matches!(result, Ok(Passivation::Passivated));
        let _ = done.send(result);
        stop.then_some(ExitReason::Stopped)
    }

    fn try_passivate(&mut self, request: PassivateRequest) -> Result<Passivation, PassivateError> {
        let id = self.ctx.id();
        let codec = self.codec.ok_or(PassivateError::NotRegistered(id))?;
        let unsupported = |why| PassivateError::Unsupported { actor: id, why };
        if self.ctx.parent.is_some() || !self.ctx.children.is_empty() {
            return Err(unsupported("it is supervised or supervises"));
        }
        if self.ctx.timers.len() > 0 {
            return Err(unsupported("it has timers"));
        }
        if !self.ctx.watching.is_empty() {
            return Err(unsupported("it watches other actors"));
        }
        let handled = self.ctx.handled;
        let busy = Ok(Passivation::Busy { handled });
        if request.if_handled.is_some_and(|n| n != handled)
            || self.panicked.is_some()
            || self.ctx.stop
        {
            return busy;
        }
        let actor = self.actor.as_ref().ok_or(PassivateError::Stopping(id))?;
        let state = match turn_sync(|| (codec.encode)(actor)) {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => return Err(PassivateError::Encode { actor: id, error: e.to_string() }),
            Err(panic) => {
                let error = format!("its encoder panicked: {panic}");
                return Err(PassivateError::Encode { actor: id, error });
            }
        };
        // Known before the close: whoever finds the mailbox redirecting (or the actor gone)
        // finds where to.
        let redirect = request.redirect.map(std::sync::Arc::new);
        let system = self.ctx.system.clone();
        if let Some(redirect) = &redirect {
            system.inner_passivated().insert(id, redirect.clone());
        }
        let forget = |system: &ActorSystem| {
            if redirect.is_some() {
                system.inner_passivated().remove(&id);
            }
        };
        if !self.inbox.close_if_idle(redirect.is_some()) {
            forget(&system);
            return busy;
        }
        // It leaves the registry before its state leaves it: whoever is told the state is
        // kept no longer finds the actor by its name (a ref found by name now would lead to
        // a closed mailbox). Its final cut is remembered first, as a stop does.
        let root = self.ctx.parent.is_none();
        system.remember_cut(id, self.inbox.core().cut_state());
        system.unregister(id, self.ctx.me.name(), root);
        let kept = KeptState {
            id,
            type_name: codec.type_name,
            name: self.inbox.core().meta.name.as_deref().map(str::to_owned),
            version: codec.version,
            state,
        };
        // As the actor: what `keep` sends is the actor's, in its epoch.
        let running = Running { id, epoch: self.inbox.epoch(), depth: self.depth };
        let previous = current::enter(Some(running));
        let kept = turn_sync(|| (request.keep)(kept));
        current::enter(previous);
        if let Some(route) = current::take_owed_room() {
            self.owed = Some(route);
        }
        match kept {
            // The stop that follows unregisters it again, harmlessly.
            Ok(Ok(())) => Ok(Passivation::Passivated),
            Ok(Err(_)) | Err(_) => {
                // Back in the registry (unless its name was taken meanwhile: it runs on
                // unnamed), and open again.
                let mailbox: std::sync::Arc<dyn crate::any_mailbox::AnyMailbox> =
                    self.ctx.mailbox.clone();
                if let Err(e) = system.registry().insert(mailbox.clone()) {
                    tracing::warn!(actor = %id, error = %e, "a passivation called off could not register the actor again");
                } else if root {
                    system.add_root(mailbox);
                }
                self.inbox.reopen();
                forget(&system);
                Err(PassivateError::NotKept(id))
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{ActorState, CodecError, SendError, StateError};

    /// A counter that passivates (also used by `parked_reply`'s tests).
    #[derive(Default)]
    pub(crate) struct Counter(pub(crate) u64);

    impl Actor for Counter {
        type Msg = u64;
        type Reply = u64;
        async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> u64 {
            self.0 += n;
            self.0
        }
    }

    impl ActorState for Counter {
        const TYPE_NAME: &'static str = "test.PassivatingCounter";
        fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
            crate::encode(&self.0)
        }
        fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
            Ok(Counter(system.decode(bytes)?))
        }
    }

    fn system() -> ActorSystem {
        ActorSystem::builder().register::<Counter>().build()
    }

    /// A `keep` that stores the state in `into` (or refuses it, if `refuse`).
    fn keep_into(into: &Arc<Mutex<Option<KeptState>>>, refuse: bool) -> Keep {
        let into = into.clone();
        Box::new(move |kept| {
            if refuse {
                return Err(kept);
            }
            *into.lock().unwrap() = Some(kept);
            Ok(())
        })
    }

    #[tokio::test]
    async fn an_idle_actor_hands_its_state_over_and_stops() {
        let system = system();
        let counter = system.spawn_named("c", Counter(0)).unwrap();
        assert_eq!(counter.ask(5).await.unwrap(), 5);
        let kept = Arc::new(Mutex::new(None));
        let request =
            PassivateRequest { redirect: None, if_handled: None, keep: keep_into(&kept, false) };
        assert_eq!(system.passivate(counter.id(), request).await, Ok(Passivation::Passivated));
        let state = kept.lock().unwrap().take().expect("kept");
        assert_eq!(state.type_name, "test.PassivatingCounter");
        assert_eq!(state.name.as_deref(), Some("c"));
        assert_eq!(system.decode::<u64>(&state.state).unwrap(), 5);
        assert!(system.lookup::<Counter>("c").is_err(), "gone from the registry at once");
        assert_eq!(counter.wait_stopped().await, ExitReason::Stopped);
        assert!(matches!(counter.tell(1).await, Err(SendError(1))), "refused, given back");
        // Back from the kept state.
        let (id, _) = system
            .spawn_registered(state.type_name, state.name, state.version, &state.state)
            .unwrap();
        let again = system.lookup_id::<Counter>(id).unwrap();
        assert_eq!(again.ask(1).await.unwrap(), 6);
        system.shutdown().await;
    }

    #[tokio::test]
    async fn an_actor_that_handled_messages_since_the_count_runs_on() {
        let system = system();
        let counter = system.spawn(Counter(0)).unwrap();
        counter.ask(1).await.unwrap();
        let kept = Arc::new(Mutex::new(None));
        let request =
            PassivateRequest { redirect: None, if_handled: Some(0), keep: keep_into(&kept, false) };
        let busy = system.passivate(counter.id(), request).await;
        assert_eq!(busy, Ok(Passivation::Busy { handled: 1 }), "one handled since");
        assert!(kept.lock().unwrap().is_none());
        assert_eq!(counter.ask(1).await.unwrap(), 2, "runs on");
        let request =
            PassivateRequest { redirect: None, if_handled: Some(2), keep: keep_into(&kept, false) };
        assert_eq!(system.passivate(counter.id(), request).await, Ok(Passivation::Passivated));
        system.shutdown().await;
    }

    #[tokio::test]
    async fn a_refused_state_leaves_the_actor_running_with_its_mailbox_open() {
        let system = system();
        let counter = system.spawn(Counter(0)).unwrap();
        let kept = Arc::new(Mutex::new(None));
        let request =
            PassivateRequest { redirect: None, if_handled: None, keep: keep_into(&kept, true) };
        let refused = system.passivate(counter.id(), request).await;
        assert_eq!(refused, Err(PassivateError::NotKept(counter.id())));
        counter.tell(3).await.expect("open again");
        assert_eq!(counter.ask(0).await.unwrap(), 3);
        system.shutdown().await;
    }

    /// Collects the payloads redirected to it (as a passivated actor's keeper would).
    #[derive(Default)]
    struct Sink(Vec<u64>);

    impl Actor for Sink {
        type Msg = Vec<u8>;
        type Reply = Vec<u64>;
        async fn handle(&mut self, payload: Vec<u8>, ctx: &mut Context<Self>) -> Vec<u64> {
            if !payload.is_empty() {
                self.0.push(ctx.system().decode::<u64>(&payload).unwrap());
            }
            self.0.clone()
        }
    }

    /// A tell to `to` as it arrives from another node.
    fn inbound(to: ActorId, n: u64) -> InboundMessage {
        let payload = crate::encode(&n).unwrap();
        InboundMessage {
            to,
            from: None,
            tag: amber_snapshot::Epoch::ZERO,
            depth: 0,
            payload: payload.into(),
            reply: None,
        }
    }

    fn redirect_to(sink: ActorId) -> Option<Redirect> {
        Some(Redirect {
            to: sink,
            wrap: Box::new(|payload| crate::encode(&payload)),
            wrap_ask: None,
        })
    }

    /// Tells from another node that arrive once the mailbox closed for a passivation that
    /// redirects go to the redirect, in order: one that arrives between the close and the
    /// hand-over of the state (driven from inside `keep`), and ones after the actor left.
    /// Asks are refused; local sends get their message back.
    #[tokio::test]
    async fn tells_from_another_node_after_the_close_go_to_the_redirect_in_order() {
        let system = system();
        let counter = system.spawn_named("c", Counter(0)).unwrap();
        let sink = system.spawn(Sink::default()).unwrap();
        let id = counter.id();
        let kept = Arc::new(Mutex::new(None));
        let keep: Keep = {
            let (kept, system) = (kept.clone(), system.clone());
            Box::new(move |state| {
                // Closed, unregistered, the state not handed over yet.
                assert!(system.deliver_inbound(inbound(id, 1), true).is_ok(), "redirected");
                *kept.lock().unwrap() = Some(state);
                Ok(())
            })
        };
        let request = PassivateRequest { if_handled: None, keep, redirect: redirect_to(sink.id()) };
        assert_eq!(system.passivate(id, request).await, Ok(Passivation::Passivated));
        assert!(system.deliver_inbound(inbound(id, 2), true).is_ok(), "gone: redirected");
        assert_eq!(counter.wait_stopped().await, ExitReason::Stopped);
        assert!(system.deliver_inbound(inbound(id, 3), true).is_ok(), "stopped: redirected");
        assert!(system.deliver_inbound(inbound(id, 4), false).is_err(), "never twice");
        let mut ask = inbound(id, 5);
        ask.reply = Some(crate::remote::ReplyHandler::new(|_, _, _| {}));
        assert!(matches!(system.deliver_inbound(ask, true), Err(DeliverError::Stopped(_))));
        assert!(matches!(counter.tell(6).await, Err(SendError(6))), "a local send: given back");
        assert_eq!(sink.ask(Vec::new()).await.unwrap(), [1, 2, 3], "in arrival order, once each");
        system.shutdown().await;
    }

    /// A passivation whose state is refused (it runs on) forgets its redirect: tells from
    /// other nodes reach the actor again.
    #[tokio::test]
    async fn a_passivation_called_off_forgets_its_redirect() {
        let system = system();
        let counter = system.spawn(Counter(0)).unwrap();
        let sink = system.spawn(Sink::default()).unwrap();
        let kept = Arc::new(Mutex::new(None));
        let keep = keep_into(&kept, true);
        let request = PassivateRequest { if_handled: None, keep, redirect: redirect_to(sink.id()) };
        let refused = system.passivate(counter.id(), request).await;
        assert_eq!(refused, Err(PassivateError::NotKept(counter.id())));
        assert!(system.deliver_inbound(inbound(counter.id(), 4), true).is_ok());
        assert_eq!(counter.ask(0).await.unwrap(), 4, "delivered to the actor itself");
        assert!(sink.ask(Vec::new()).await.unwrap().is_empty());
        system.shutdown().await;
    }

    /// Sends racing a passivation: every send either is refused (given back) or is in the
    /// kept state, never both, never neither — over many interleavings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_send_racing_a_passivation_is_in_the_kept_state_or_given_back() {
        let system = system();
        let mut passivated = 0;
        for round in 0..300u64 {
            let counter = system.spawn(Counter(0)).unwrap();
            let sender = {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut accepted = 0u64;
                    for k in 0..64u64 {
                        match counter.try_tell(1) {
                            Ok(()) => accepted += 1,
                            Err(crate::TrySendError::Stopped(_)) => break,
                            Err(crate::TrySendError::Full(_)) => {}
                        }
                        if (k + round).is_multiple_of(7) {
                            tokio::task::yield_now().await;
                        }
                    }
                    accepted
                })
            };
            for _ in 0..(round % 5) {
                tokio::task::yield_now().await;
            }
            let kept = Arc::new(Mutex::new(None));
            let outcome = loop {
                let request = PassivateRequest {
                    redirect: None,
                    if_handled: None,
                    keep: keep_into(&kept, false),
                };
                match system.passivate(counter.id(), request).await {
                    Ok(Passivation::Busy { .. }) if !sender.is_finished() => {
                        tokio::task::yield_now().await;
                    }
                    Ok(Passivation::Busy { .. }) => {
                        // The sender is done: the last messages drain, then it passivates.
                        tokio::task::yield_now().await;
                    }
                    other => break other,
                }
            };
            assert_eq!(outcome, Ok(Passivation::Passivated), "round {round}");
            passivated += 1;
            let accepted = sender.await.unwrap();
            let state = kept.lock().unwrap().take().expect("kept");
            let n = system.decode::<u64>(&state.state).unwrap();
            assert_eq!(n, accepted, "round {round}: accepted sends are in the state, exactly");
        }
        assert_eq!(passivated, 300);
        system.shutdown().await;
    }
}
