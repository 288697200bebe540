//! Live migration of a running actor to another node: the runtime's side. `amber-remote`
//! carries the package over its links (`Cluster::migrate`); the runtime knows no sockets.
//!
//! # How an actor moves
//!
//! 1. Between two messages, the actor's task captures its state (as a snapshot cut would:
//!    [`ActorState::encode_state`]) and its timers.
//! 2. Under its mailbox lock, every message it had not handled yet leaves with the state in
//!    one [`Departure`], handed to the link; from that moment the mailbox forwards whatever
//!    is sent to it to the new node. Nothing sent after the hand-off can overtake what left
//!    with it, so per-sender order holds, and nothing is lost or delivered twice.
//! 3. The new node admits the actor with the same [`ActorId`], name, epoch and queued
//!    messages ([`Host::accept_migrant`]) and starts it without `on_start`: it
//!    carries on.
//!
//! Refs keep working: a ref held on the old node (or decoded there later) forwards through
//! it; refs on other nodes reach the old node, which forwards; refs to it on the new node
//! are local. Asks in flight are answered through the same path. The old node keeps a
//! forwarding entry until the actor stops on its new node, or until the remoting layer
//! gives that node up for good (it restarted, or was declared down: not a link that
//! merely dropped, see [`RemoteRoute::watch`]): then the entry ends and tells the watchers
//! it kept. While the link to the new node is down, what the entry cannot forward is
//! refused as anything sent to that node (an ask fails with
//! [`AskError::NodeDown`](crate::AskError::NodeDown)).
//!
//! # Snapshots
//!
//! The package counts as one message on the link, tagged with the actor's epoch, and the
//! actor counts as gone from the old node in the same step: a snapshot running meanwhile
//! either has the actor's cut from the old node (then its later messages are recorded on
//! the new node, which carries the actor's latest cut on) or waits until the new node has
//! admitted it and cut it there. A snapshot never sees the actor on neither node, nor on
//! both.
//!
//! # What does not move
//!
//! Actors with a parent or children (supervision stays on one node), actors whose type is
//! not registered as an [`ActorState`], and an actor going back to a node
//! it left (that node still forwards to it, and messages on their way around the chain
//! would be overtaken: refused, [`MigrateRefusal::StillForwarding`]). A sender that holds both a ref
//! made before the move (which goes through the old node) and one made on the new node
//! after it (direct) may see its messages through the two refs reordered.
//!
//! # Spawn options
//!
//! The actor keeps its mailbox capacity and its restart policy. Its factory, a closure,
//! cannot travel: on its new node a restart rebuilds it from the state it arrived with, as
//! for a restored actor (see the restore module's `factory_from_state`).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use amber_snapshot::{ActorCut, Epoch, SpawnCapacity, SpawnRestart, TimerEntry};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::oneshot;

use crate::any_mailbox::AnyMailbox;
use crate::envelope::{Envelope, Origin};
use crate::remote::Host;
use crate::remote::{InboundMessage, OutboundMessage, RemoteRoute, ReplyError, RouteError};
use crate::runner::Runner;
use crate::signal::Signal;
use crate::supervision::{RestartPolicy, Restarts};
use crate::target::{Forward, Mailbox};
use crate::turn::Panic;
use crate::{
    Actor, ActorId, ActorState, ActorSystem, Context, ExitReason, MailboxCapacity, SpawnError,
};

/// An actor on its way between two nodes: its state, timers, place in the snapshot
/// protocol, the actors it watches, and the messages it had not handled yet, in order.
/// `M` is [`OutboundMessage`] leaving ([`Departure`]), [`InboundMessage`] arriving
/// ([`Arrival`]).
#[derive(Debug)]
pub struct Migrant<M> {
    /// The actor's id, which it keeps.
    pub id: ActorId,
    /// Its stable type name (as registered).
    pub type_name: String,
    /// Its registered name, if any: it moves with the actor.
    pub name: Option<String>,
    /// The state's layout version.
    pub state_version: u32,
    /// The state, as [`ActorState::encode_state`] wrote it.
    pub state: Vec<u8>,
    /// Its live timers, with their remaining delays.
    pub timers: Vec<TimerEntry>,
    /// Its snapshot epoch.
    pub epoch: Epoch,
    /// The snapshot of its latest cut, if it ever cut.
    pub last_cut: Option<Epoch>,
    /// The actors it watches.
    pub watching: Vec<ActorId>,
    /// The messages it had not handled, in order.
    pub queued: Vec<M>,
    /// Its mailbox capacity, which it keeps.
    pub capacity: SpawnCapacity,
    /// Its restart policy, which it keeps (`Never` for an actor that had no factory).
    pub restart: SpawnRestart,
}

/// An actor leaving this node.
pub type Departure = Migrant<OutboundMessage>;

/// An actor arriving at this node.
pub type Arrival = Migrant<InboundMessage>;

/// Why an actor could not move.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateError {
    /// No live actor with this id runs on this node.
    NotHere(ActorId),
    /// The actor's type is not registered as an `ActorState`: its state cannot travel.
    NotRegistered {
        /// The actor.
        actor: ActorId,
        /// Its type.
        type_name: String,
    },
    /// The actor has a parent or children: supervision does not cross nodes.
    Supervised(ActorId),
    /// The actor is stopping (or restarting) and cannot move now.
    Stopping(ActorId),
    /// Its state, a timer or a queued message does not encode or decode.
    Codec {
        /// The actor.
        actor: ActorId,
        /// Why.
        error: String,
    },
    /// The target node is down or unknown.
    NodeDown(String),
    /// The target node refused the actor, for the reason it gave.
    Refused {
        /// The target node.
        node: String,
        /// Why.
        reason: MigrateRefusal,
    },
    /// The target node's answer could not be read (a malformed message, or one of a
    /// protocol this node does not speak). After the actor left, it may or may not run
    /// there.
    BadAnswer(String),
    /// The target node did not confirm in time; the actor may or may not run there.
    Timeout(String),
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::NotHere(id) => write!(f, "no live actor {id} on this node"),
            MigrateError::NotRegistered { actor, type_name } => write!(
                f,
                "actor {actor} ({type_name}) is not registered as an ActorState, so it cannot move"
            ),
            MigrateError::Supervised(id) => {
                write!(f, "actor {id} has a parent or children; supervision does not cross nodes")
            }
            MigrateError::Stopping(id) => write!(f, "actor {id} is stopping"),
            MigrateError::Codec { actor, error } => write!(f, "actor {actor}: {error}"),
            MigrateError::NodeDown(node) => write!(f, "node {node} is down"),
            MigrateError::Refused { node, reason } => {
                write!(f, "node {node} refused the actor: {reason}")
            }
            MigrateError::BadAnswer(node) => {
                write!(f, "node {node} answered the move with a message this node cannot read")
            }
            MigrateError::Timeout(node) => {
                write!(f, "node {node} did not confirm the move in time")
            }
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Why a node refused an actor moving to it: before it left
/// ([`Host::can_accept`]) or on arrival ([`Host::accept_migrant`]). It
/// travels back to the node the actor leaves as it is.
///
/// On the wire it is a MessagePack enum; a plain string (the reason as nodes that predate
/// this type sent it) reads as [`Other`](Self::Other), and a refusal this node does not know
/// (a newer node's) as [`Unrecognized`](Self::Unrecognized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateRefusal {
    /// No actor type is registered under this name there.
    #[error("no actor type is registered as {0:?}")]
    UnknownType(String),
    /// The actor left that node before and that node still forwards to it: moving it back
    /// is not supported (messages still on their way around the forwarding chain would be
    /// overtaken by those delivered there directly).
    #[error(
        "actor {0} left this node before and this node still forwards to it; moving it back is not supported"
    )]
    StillForwarding(ActorId),
    /// Another live actor already has the actor's name there.
    #[error("an actor named {0:?} already exists")]
    NameTaken(String),
    /// Its actor system is shutting down.
    #[error("the actor system is shutting down")]
    ShuttingDown,
    /// The state does not decode there (the decoder's message).
    #[error("the state does not decode: {0}")]
    State(String),
    /// A timer's message does not decode there (the decoder's message).
    #[error("a timer's message does not decode: {0}")]
    Timer(String),
    /// A reason given as text only, by a node that predates typed refusals.
    #[error("{0}")]
    Other(String),
    /// A refusal this node cannot read (a newer node's kind of refusal).
    #[error("a refusal this node does not know")]
    Unrecognized,
}

impl<'de> Deserialize<'de> for MigrateRefusal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The typed refusals, as derived.
        #[derive(Deserialize)]
        enum Typed {
            UnknownType(String),
            StillForwarding(ActorId),
            NameTaken(String),
            ShuttingDown,
            State(String),
            Timer(String),
            Other(String),
            Unrecognized,
        }
        /// What a peer may send: a typed refusal, an older node's text, or anything else.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Typed(Typed),
            Text(String),
            Unknown(IgnoredAny),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Typed(Typed::UnknownType(t)) => MigrateRefusal::UnknownType(t),
            Repr::Typed(Typed::StillForwarding(id)) => MigrateRefusal::StillForwarding(id),
            Repr::Typed(Typed::NameTaken(n)) => MigrateRefusal::NameTaken(n),
            Repr::Typed(Typed::ShuttingDown) => MigrateRefusal::ShuttingDown,
            Repr::Typed(Typed::State(e)) => MigrateRefusal::State(e),
            Repr::Typed(Typed::Timer(e)) => MigrateRefusal::Timer(e),
            Repr::Typed(Typed::Other(text)) | Repr::Text(text) => MigrateRefusal::Other(text),
            Repr::Typed(Typed::Unrecognized) | Repr::Unknown(_) => MigrateRefusal::Unrecognized,
        })
    }
}

impl From<SpawnError> for MigrateRefusal {
    fn from(e: SpawnError) -> Self {
        match e {
            SpawnError::UnknownType(t) => MigrateRefusal::UnknownType(t),
            SpawnError::State(e) => MigrateRefusal::State(e.to_string()),
            SpawnError::NameTaken(n) => MigrateRefusal::NameTaken(n),
            SpawnError::ShuttingDown => MigrateRefusal::ShuttingDown,
        }
    }
}

/// Hands a departing actor to the link; gives it back if the link is gone. What it returns
/// when the link took the actor is held until the departure is counted as a message on that
/// link (the snapshot engine's `migrated_out`), then dropped: a link that drops meanwhile
/// must not be reported down before (its counts are reset then; see
/// [`RemoteRoute::route_then`]).
pub type HandOff =
    Box<dyn FnOnce(Departure) -> Result<HandedOff, (RouteError, Box<Departure>)> + Send>;

/// See [`HandOff`]: held until the departure is counted.
pub type HandedOff = Box<dyn Send>;

/// A request, on an actor's control lane, to move to another node.
pub(crate) struct Departing {
    route: Arc<dyn RemoteRoute>,
    hand_off: HandOff,
    done: oneshot::Sender<Result<(), MigrateError>>,
}

impl fmt::Debug for Departing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Departing(to {})", self.route.node())
    }
}

impl Host {
    /// Moves the live actor `id` to the node `route` leads to, between two of its messages.
    /// `hand_off` puts the [`Departure`] on the link to that node (in order with the
    /// messages routed there after it), whose system must pass it to
    /// [`accept_migrant`](Self::accept_migrant); from then on this node forwards the
    /// actor's messages there. Returns once the actor has left this node.
    ///
    /// Remoting layers call this (`amber_remote::Cluster::migrate` does); see the module
    /// documentation for what holds.
    pub async fn migrate(
        &self,
        id: ActorId,
        route: Arc<dyn RemoteRoute>,
        hand_off: HandOff,
    ) -> Result<(), MigrateError> {
        let mailbox = self.system().registry().get(id).ok_or(MigrateError::NotHere(id))?;
        if !route.is_up() {
            return Err(MigrateError::NodeDown(route.node().to_owned()));
        }
        let (done, answer) = oneshot::channel();
        let departing = Departing { route, hand_off, done };
        mailbox
            .signal(Signal::Migrate(Box::new(departing)))
            .map_err(|_| MigrateError::Stopping(id))?;
        // A task that ends before it reads the request drops it: the actor stopped.
        answer.await.unwrap_or(Err(MigrateError::Stopping(id)))
    }

    /// Whether an actor of type `type_name`, registered under `name`, could arrive here
    /// now: the type is registered, this node does not forward to the actor `id` (it never
    /// left here), and the name is free (or held by the actor `id` itself). If not, why.
    pub fn can_accept(
        &self,
        id: ActorId,
        type_name: &str,
        name: Option<&str>,
    ) -> Result<(), MigrateRefusal> {
        let system = self.system();
        if system.config().types.named(type_name).is_none() {
            return Err(MigrateRefusal::UnknownType(type_name.to_owned()));
        }
        if system.moved().contains_key(&id) {
            // Messages still on their way around the forwarding chain would be overtaken by
            // those delivered here directly.
            return Err(MigrateRefusal::StillForwarding(id));
        }
        if let Some(name) = name
            && let Some((holder, _)) = system.whereis(name)
            && holder != id
        {
            return Err(MigrateRefusal::NameTaken(name.to_owned()));
        }
        if system.is_shutting_down() {
            return Err(MigrateRefusal::ShuttingDown);
        }
        Ok(())
    }

    /// Starts an actor that arrived from node `node` ([`migrate`](Self::migrate) there): it
    /// keeps its id, name and epoch, its queued messages go first, its timers are armed
    /// again, it watches what it watched, and it resumes without `on_start`.
    ///
    /// Whether admitted or not, the package counts as received from `node` for the snapshot
    /// protocol: call this for every arrival, in link order. On failure the queued asks are
    /// answered with an error.
    pub fn accept_migrant(&self, node: &str, arrival: Arrival) -> Result<(), MigrateError> {
        let system = self.system();
        let Some(arrive) = system.config().types.named(&arrival.type_name).map(|r| r.arrive) else {
            let reason = MigrateRefusal::UnknownType(arrival.type_name);
            count_refused(system, node, arrival.epoch);
            fail_asks(system, arrival.queued, arrival.id, &reason);
            return Err(MigrateError::Refused { node: system.node().to_owned(), reason });
        };
        arrive(system, node, arrival)
    }
}

impl ActorSystem {
    /// The actor `id` left for another node: it is no longer registered here, and its
    /// mailbox stays reachable by id to forward what is sent to it. Reachable as moved
    /// first, unregistered second: a message from another node looks in the registry, then
    /// among the moved, so in between it would find neither and be dropped as sent to no
    /// actor.
    fn departed(&self, id: ActorId, name: Option<&str>, mailbox: Arc<dyn AnyMailbox>) {
        self.moved().entry(id).or_default().push(mailbox);
        self.unregister(id, name, true);
    }
}

/// A refused arrival counts as received all the same, so that a running snapshot is not
/// left waiting for it.
fn count_refused(system: &ActorSystem, node: &str, epoch: Epoch) {
    let (_, effects) = system.engine().migrated_in(node, epoch, || Err::<(), ()>(()));
    system.run_effects(effects);
}

/// Answers every ask among `queued` (for `actor`, refused on arrival) with `reason`.
fn fail_asks(
    system: &ActorSystem,
    queued: Vec<InboundMessage>,
    actor: ActorId,
    reason: &MigrateRefusal,
) {
    for message in queued {
        if let Some(reply) = message.reply {
            let error = ReplyError::NotArrived { actor, reason: reason.clone() };
            reply.complete(system, Err(error), Epoch::ZERO);
        }
    }
}

/// Starts an actor of a registered type that arrived from another node.
pub(crate) type ArriveFn = fn(&ActorSystem, &str, Arrival) -> Result<(), MigrateError>;

/// The [`ArriveFn`] of `A`.
pub(crate) fn arrive<A: ActorState>(
    system: &ActorSystem,
    node: &str,
    arrival: Arrival,
) -> Result<(), MigrateError> {
    let Migrant {
        id,
        name,
        state_version,
        state,
        timers,
        epoch,
        last_cut,
        watching,
        queued,
        capacity,
        restart,
        ..
    } = arrival;
    let here = system.node().to_owned();
    let refuse = |reason: MigrateRefusal| {
        count_refused(system, node, epoch);
        MigrateError::Refused { node: here.clone(), reason }
    };
    // The state comes from elsewhere: a panicking decode hook is that state's error.
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        A::decode_state(state_version, &state, system)
    }))
    .map_err(|_| "decode_state panicked".to_owned())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let actor = match decoded {
        Ok(actor) => actor,
        Err(e) => {
            let reason = MigrateRefusal::State(e);
            fail_asks(system, queued, id, &reason);
            return Err(refuse(reason));
        }
    };
    let timers = match crate::snapshot::restore::decode_timers::<A>(system, &timers) {
        Ok(timers) => timers,
        Err(e) => {
            let reason = MigrateRefusal::Timer(e.to_string());
            fail_asks(system, queued, id, &reason);
            return Err(refuse(reason));
        }
    };
    let mut envelopes = VecDeque::with_capacity(queued.len());
    for message in queued {
        // An undecodable message is a dead letter, as it would be if sent now.
        match crate::any_mailbox::inbound_envelope::<A>(system, id, message) {
            Ok(env) => envelopes.push_back(env),
            Err(e) => {
                tracing::warn!(actor = %id, error = %e, "a queued message of a moving actor does not decode; dropped")
            }
        }
    }
    let restart = RestartPolicy::from_recorded(restart);
    let factory = (restart != RestartPolicy::Never).then(|| {
        crate::snapshot::restore::factory_from_state::<A>(system, id, state_version, &state)
    });
    let mailbox: Arc<Mailbox<A>> = system.mailbox_resumed::<A>(
        id,
        name.clone(),
        MailboxCapacity::limit_of(capacity),
        ActorCut::resume(epoch, last_cut),
    );
    // Queued before it is visible: nothing sent here after the arrival overtakes them.
    mailbox.restore_queue(envelopes);
    let (admitted, effects) = system.engine().migrated_in(node, epoch, || {
        system.registry().insert(mailbox.clone() as Arc<dyn AnyMailbox>)
    });
    system.run_effects(effects);
    let ((), marker) =
        admitted.map_err(|e| MigrateError::Refused { node: here, reason: e.into() })?;
    system.add_root(mailbox.clone());
    if let Some(marker) = marker {
        let _ = mailbox.push_control(Signal::Marker(marker));
    }
    let mut ctx = Context::new(mailbox.clone(), system.internal(), None);
    for watched in watching {
        ctx.watch_id(watched);
    }
    crate::snapshot::restore::arm_timers(&mut ctx, &mailbox, timers);
    tracing::debug!(actor = %id, from = %node, "actor arrived");
    system.start_runner_restored(mailbox, actor, factory, ctx, Restarts::new(restart));
    Ok(())
}

impl<A: Actor> Runner<A> {
    /// Handles a request to move: `Ok(true)` if the actor left (its task then ends without
    /// stopping it). `Err(panic)` if the state's encoder panicked: the actor stays, the
    /// requester gets [`MigrateError::Codec`], and the caller handles the panic as a
    /// panicking handler's (supervision).
    pub(crate) fn depart(&mut self, departing: Departing) -> Result<bool, Panic> {
        let Departing { route, hand_off, done } = departing;
        let mut panicked = None;
        let result = self.try_depart(&route, hand_off, &mut panicked);
        if let Err(e) = &result {
            tracing::warn!(actor = %self.ctx.id(), to = %route.node(), error = %e, "actor did not move");
        }
        let departed = result.is_ok();
        let _ = done.send(result);
        panicked.map_or(Ok(departed), Err)
    }

    fn try_depart(
        &mut self,
        route: &Arc<dyn RemoteRoute>,
        hand_off: HandOff,
        panicked: &mut Option<Panic>,
    ) -> Result<(), MigrateError> {
        let id = self.ctx.id();
        let core = self.inbox.core().clone();
        let type_name = core.meta.type_name;
        let codec = self.codec.ok_or_else(|| MigrateError::NotRegistered {
            actor: id,
            type_name: type_name.into(),
        })?;
        if self.ctx.parent.is_some() || !self.ctx.children.is_empty() {
            return Err(MigrateError::Supervised(id));
        }
        let actor = self.actor.as_ref().ok_or(MigrateError::Stopping(id))?;
        let codec_error = |error: String| MigrateError::Codec { actor: id, error };
        let state = match crate::turn::turn_sync(|| (codec.encode)(actor)) {
            Ok(encoded) => {
                encoded.map_err(|e| codec_error(format!("state does not encode: {e}")))?
            }
            Err(panic) => {
                let error = codec_error(format!("state encoder panicked: {panic}"));
                *panicked = Some(panic);
                return Err(error);
            }
        };
        let name = core.meta.name.as_deref().map(str::to_owned);
        let (capacity, restart) = self.spawn_record();
        let watching: Vec<ActorId> = self.ctx.watching.iter().copied().collect();
        let system = self.ctx.system.clone();
        let timers = &self.ctx.timers;
        let moved = Forward::new(route.clone(), system.engine_arc());
        let outcome = self.inbox.depart(moved, |queue: &mut VecDeque<Envelope<A>>, cut| {
            // Everything encodes before anything moves: a failure leaves the actor here.
            let mut queued_timers = HashSet::new();
            let mut payloads = Vec::with_capacity(queue.len());
            for env in queue.iter() {
                if let Origin::Timer(timer) = env.origin {
                    queued_timers.insert(timer);
                }
                let payload = crate::encode_msg::<A>(&env.msg)
                    .map_err(|e| codec_error(format!("a queued message does not encode: {e}")))?;
                payloads.push(payload);
            }
            let timers = timers
                .capture(&queued_timers)
                .map_err(|e| codec_error(format!("timer message does not encode: {e}")))?;
            let queued = queue
                .drain(..)
                .zip(payloads)
                .map(|(mut env, payload)| env.outbound_with(id, type_name, payload))
                .collect();
            let departure = Migrant {
                id,
                type_name: type_name.to_owned(),
                name: name.clone(),
                state_version: codec.version,
                state,
                timers,
                epoch: cut.epoch(),
                last_cut: cut.last_cut(),
                watching,
                queued,
                capacity,
                restart,
            };
            hand_off(departure).map_err(|(error, departure)| {
                // The link is gone: the messages come back, in order, as they would arrive.
                for message in departure.queued {
                    let inbound = InboundMessage {
                        to: message.to,
                        from: message.from,
                        tag: message.tag,
                        depth: message.depth,
                        payload: message.payload.into(),
                        reply: message.reply,
                    };
                    match crate::any_mailbox::inbound_envelope::<A>(&system, id, inbound) {
                        Ok(env) => queue.push_back(env),
                        Err(e) => tracing::warn!(actor = %id, error = %e, "a queued message did not come back"),
                    }
                }
                MigrateError::NodeDown(match error {
                    RouteError::NodeDown(n) | RouteError::Full(n) => n,
                })
            })
        });
        let handed_off = match outcome {
            None => return Err(MigrateError::Stopping(id)),
            Some(Err(e)) => return Err(e),
            Some(Ok(handed_off)) => handed_off,
        };
        // Gone from here: its timers travelled, its watches are taken again there.
        let epoch = self.inbox.epoch();
        self.ctx.timers.cancel_all();
        for watched in self.ctx.watching.drain() {
            if let Some(mailbox) = system.registry().get(watched) {
                mailbox.remove_watcher(id);
            } else if let Some(route) = system.remote_route(watched) {
                route.unwatch(watched, id);
            }
        }
        system.departed(id, name.as_deref(), core.clone());
        system.run_effects(system.engine().migrated_out(id, route.node(), epoch, self.depth));
        // Counted: the link may be reported down now.
        drop(handed_off);
        // The forwarding entry ends when the actor stops there, or when the remoting layer
        // gives that node up for good (a restart, a membership's verdict); not when the link
        // merely drops (the route keeps this watch across it and takes it again when the same
        // node is back). Refused at once only if that node is already gone for good.
        if route.watch(id, id).is_err() {
            core.end_moved(ExitReason::NodeDown(route.node().to_owned()));
        }
        tracing::debug!(actor = %id, to = %route.node(), "actor moved");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use amber_snapshot::SystemId;

    use super::*;

    fn decode(bytes: &[u8]) -> MigrateRefusal {
        rmp_serde::from_slice(bytes).expect("a refusal always decodes")
    }

    #[test]
    fn refusals_travel_as_themselves() {
        let refusals = [
            MigrateRefusal::UnknownType("Account".into()),
            MigrateRefusal::StillForwarding(ActorId::new(SystemId(7), 3)),
            MigrateRefusal::NameTaken("bank".into()),
            MigrateRefusal::ShuttingDown,
            MigrateRefusal::State("bad".into()),
            MigrateRefusal::Timer("bad".into()),
            MigrateRefusal::Other("why".into()),
            MigrateRefusal::Unrecognized,
        ];
        for refusal in refusals {
            let bytes = rmp_serde::to_vec(&refusal).unwrap();
            assert_eq!(decode(&bytes), refusal);
            assert_eq!(decode(&rmp_serde::to_vec_named(&refusal).unwrap()), refusal);
        }
    }

    #[test]
    fn an_older_nodes_text_and_a_newer_nodes_refusal_still_decode() {
        // What nodes that predate typed refusals send: the reason's text.
        let text = rmp_serde::to_vec("no actor type is registered as \"X\"").unwrap();
        assert_eq!(
            decode(&text),
            MigrateRefusal::Other("no actor type is registered as \"X\"".into())
        );
        // A kind of refusal this node does not know, and something that is no refusal.
        #[derive(Serialize)]
        enum Newer {
            TooBusy { load: u32 },
        }
        let newer = rmp_serde::to_vec(&Newer::TooBusy { load: 9 }).unwrap();
        assert_eq!(decode(&newer), MigrateRefusal::Unrecognized);
        assert_eq!(decode(&rmp_serde::to_vec(&42u64).unwrap()), MigrateRefusal::Unrecognized);
    }

    #[test]
    fn refusals_read_as_they_did() {
        assert_eq!(
            MigrateRefusal::UnknownType("X".into()).to_string(),
            "no actor type is registered as \"X\""
        );
        let error =
            MigrateError::Refused { node: "b".into(), reason: MigrateRefusal::ShuttingDown };
        assert_eq!(
            error.to_string(),
            "node b refused the actor: the actor system is shutting down"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
