//! Live migration between nodes: [`Cluster::migrate`] moves a running actor to another
//! node (the runtime's side, and what holds: `amber_actors::migrate`).
//!
//! 1. `Prepare`: the target says whether it can take the actor (type registered, name
//!    free), before the actor pauses.
//! 2. The actor's task hands its package over between two messages; the package travels as
//!    one `Arrive` frame on the link, ahead of everything forwarded to the actor afterwards
//!    (the link is FIFO, so per-sender order holds). Asks among its queued messages are
//!    registered here, so their replies come back through this node.
//! 3. The target starts the actor and answers `Arrived`.
//!
//! This node then forwards to the actor through its old mailbox, a *forwarding entry* that
//! watches the actor on its new node; how that watch outlives a dropped link and when the
//! entry ends: `watch.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amber_actors::migrate::{
    Arrival, Departure, HandOff, HandedOff, Migrant, MigrateError, MigrateRefusal,
};
use amber_actors::remote::{InboundMessage, RouteError};
use amber_actors::{ActorId, Epoch};
use amber_snapshot::{SpawnCapacity, SpawnRestart, TimerEntry};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracing::Instrument;

use super::control::Control;
use super::{Cluster, ClusterError, Shared, reply_handler};
use crate::{Frame, NodeId};

/// The migration messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MigrateControl {
    /// Could the receiving node take actor `id` of type `type_name`, named `name`?
    Prepare { request: u64, id: ActorId, type_name: String, name: Option<String> },
    /// The answer to `Prepare`.
    Ready { request: u64, result: Answer },
    /// The actor itself.
    Arrive { request: u64, package: Package },
    /// The answer to `Arrive`: whether the actor runs on the receiving node now.
    Arrived { request: u64, result: Answer },
}

/// A target's answer to `Prepare` or `Arrive`.
///
/// On the wire it is a `Result<(), MigrateRefusal>` (`{"Ok": nil}` or `{"Err": refusal}`),
/// the shape of the `Result<(), String>` that nodes predating typed refusals send, whose
/// text reads as [`MigrateRefusal::Other`]. Anything else reads as `Unreadable`: the waiter
/// gets [`MigrateError::BadAnswer`], never a panic, and the frame's other fields (its
/// request) still count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Yes, or why not.
    Given(Result<(), MigrateRefusal>),
    /// An answer this node cannot read (received only, never sent).
    Unreadable,
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Given(result) => result.serialize(serializer),
            Answer::Unreadable => serializer.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Given(Result<(), MigrateRefusal>),
            Unreadable(IgnoredAny),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Given(result) => Answer::Given(result),
            Repr::Unreadable(_) => Answer::Unreadable,
        })
    }
}

impl From<Result<(), MigrateRefusal>> for Answer {
    fn from(result: Result<(), MigrateRefusal>) -> Self {
        Answer::Given(result)
    }
}

impl Answer {
    /// The answer of `node` as the migration's outcome.
    fn into_result(self, node: &NodeId) -> Result<(), MigrateError> {
        match self {
            Answer::Given(Ok(())) => Ok(()),
            Answer::Given(Err(reason)) => {
                Err(MigrateError::Refused { node: node.to_string(), reason })
            }
            Answer::Unreadable => Err(MigrateError::BadAnswer(node.to_string())),
        }
    }
}

/// A moving actor on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Package {
    id: ActorId,
    type_name: String,
    name: Option<String>,
    state_version: u32,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
    timers: Vec<TimerEntry>,
    epoch: Epoch,
    last_cut: Option<Epoch>,
    watching: Vec<ActorId>,
    queued: Vec<Carried>,
    /// Its mailbox capacity (absent from a node that predates it: the system's default).
    #[serde(default)]
    capacity: SpawnCapacity,
    /// Its restart policy (absent from a node that predates it: `Never`).
    #[serde(default)]
    restart: SpawnRestart,
}

/// One of a moving actor's queued messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Carried {
    from: Option<ActorId>,
    tag: Epoch,
    /// The ask id on the sending node, for an ask.
    ask: Option<u64>,
    /// The asker's ask depth, for an ask.
    #[serde(default)]
    depth: u8,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

impl Cluster {
    /// Moves the running local actor `id` to node `to`, while it runs: between two of its
    /// messages it leaves with its state, timers and unhandled messages; it keeps its id and
    /// name; every ref to it keeps working (refs on this node and on other nodes reach it
    /// through this node, which forwards); no message is lost or delivered twice, and each
    /// sender's messages arrive in the order sent. Returns once it runs on `to`.
    ///
    /// This node keeps a forwarding entry for it, which outlives a dropped link to `to`
    /// (what goes through it meanwhile is refused, as anything sent to `to`; it forwards
    /// again once the same incarnation of `to` is back) and ends when the actor stops there,
    /// or with [`ExitReason::NodeDown`](amber_actors::ExitReason::NodeDown) when `to` is gone
    /// for good: it restarted, the membership declared it down or saw it leave, or
    /// redialling it gave up. Refs through this node then fail at once, typed.
    ///
    /// `to` must have registered the actor's type. Actors with a parent or children do not
    /// move ([`MigrateError::Supervised`]). Fails with [`ClusterError::Migrate`] if the actor
    /// cannot move or `to` refuses it before it leaves (it then stays here, untouched), and
    /// with [`ClusterError::NodeDown`] or [`ClusterError::Timeout`] if `to` goes down or
    /// stays silent after it left (it may or may not run there).
    pub async fn migrate(&self, id: ActorId, to: &NodeId) -> Result<(), ClusterError> {
        // One span per migration, with its figures (never per message).
        let span = tracing::info_span!(
            "migration",
            actor = %id,
            from = %self.node(),
            to = %to,
            ms = tracing::field::Empty,
            ok = tracing::field::Empty
        );
        let started = std::time::Instant::now();
        let moved = self.move_actor(id, to).instrument(span.clone()).await;
        span.record("ms", started.elapsed().as_secs_f64() * 1e3);
        span.record("ok", moved.is_ok());
        moved
    }

    /// [`migrate`](Self::migrate), in its span.
    async fn move_actor(&self, id: ActorId, to: &NodeId) -> Result<(), ClusterError> {
        let shared = &self.shared;
        let system = self.system();
        if !shared.is_up(to) {
            return Err(ClusterError::NotConnected(to.clone()));
        }
        let (type_name, name) =
            system.actor_info(id).ok_or(ClusterError::Migrate(MigrateError::NotHere(id)))?;
        let timeout = system.ask_timeout();
        let prepare =
            MigrateControl::Prepare { request: 0, id, type_name: type_name.to_owned(), name };
        self.exchange(to, prepare, timeout)
            .await?
            .into_result(to)
            .map_err(ClusterError::Migrate)?;
        let (request, answer) = shared.migrations.open(to);
        let hand_off = hand_off(shared.clone(), to.clone(), request);
        let moved = shared.host().migrate(id, shared.route(to.clone()), hand_off).await;
        if let Err(e) = moved {
            shared.migrations.remove(request);
            return Err(ClusterError::Migrate(e));
        }
        let arrived = shared.migrations.answer(to, request, answer, timeout).await?;
        arrived.into_result(to).map_err(|error| {
            tracing::error!(actor = %id, node = %to, %error, "a moved actor was refused on arrival");
            ClusterError::Migrate(error)
        })
    }

    /// Sends `message` (its request id set here) to `to` and waits for the answer.
    async fn exchange(
        &self,
        to: &NodeId,
        mut message: MigrateControl,
        timeout: Duration,
    ) -> Result<Answer, ClusterError> {
        let shared = &self.shared;
        let (request, answer) = shared.migrations.open(to);
        if let MigrateControl::Prepare { request: r, .. } = &mut message {
            *r = request;
        }
        let frame = Frame::Control(Control::Migrate(message).encode());
        if shared.outbound(to).send(frame).is_err() {
            shared.migrations.remove(request);
            return Err(ClusterError::NodeDown(to.clone()));
        }
        shared.migrations.answer(to, request, answer, timeout).await
    }
}

/// Puts a departing actor on the link to `to` as one `Arrive` frame, registering the asks
/// among its messages; gives everything back if the link is gone.
fn hand_off(shared: Arc<Shared>, to: NodeId, request: u64) -> HandOff {
    Box::new(move |mut departure: Departure| {
        let queued = departure
            .queued
            .iter_mut()
            .map(|message| {
                let ask = message.reply.take().map(|handler| shared.asks.insert(&to, handler));
                let payload = std::mem::take(&mut message.payload);
                Carried { from: message.from, tag: message.tag, ask, depth: message.depth, payload }
            })
            .collect::<Vec<_>>();
        let package = Package {
            id: departure.id,
            type_name: departure.type_name.clone(),
            name: departure.name.clone(),
            state_version: departure.state_version,
            state: std::mem::take(&mut departure.state),
            timers: std::mem::take(&mut departure.timers),
            epoch: departure.epoch,
            last_cut: departure.last_cut,
            watching: departure.watching.clone(),
            queued,
            capacity: departure.capacity,
            restart: departure.restart,
        };
        // Asks registered first, then the peer checked (as for any remote ask): `peer_down`
        // forgets the peer first, then fails the asks it finds.
        let control = Control::Migrate(MigrateControl::Arrive { request, package });
        // In a section of the path, which the runtime holds until it has counted the
        // departure on this link: `peer_down` waits it out before the link's counts reset.
        if shared.is_up(&to) {
            let out = shared.outbound(&to);
            if let Some(section) = out.sending_owned()
                && out.send(Frame::Control(control.encode())).is_ok()
            {
                return Ok(Box::new(section) as HandedOff);
            }
        }
        // Not sent: everything goes back where it was taken from.
        if let Control::Migrate(MigrateControl::Arrive { package, .. }) = control {
            departure.state = package.state;
            departure.timers = package.timers;
            for (message, carried) in departure.queued.iter_mut().zip(package.queued) {
                message.payload = carried.payload;
                if let Some(ask) = carried.ask {
                    message.reply = shared.asks.take(ask);
                }
            }
        }
        Err((RouteError::NodeDown(to.to_string()), Box::new(departure)))
    })
}

/// Handles a migration message from `from`.
pub(super) fn on_control(shared: &Arc<Shared>, from: NodeId, message: MigrateControl) {
    let host = shared.host();
    let answer = |message: MigrateControl| {
        let frame = Frame::Control(Control::Migrate(message).encode());
        let _ = shared.outbound(&from).send(frame);
    };
    match message {
        MigrateControl::Prepare { request, id, type_name, name } => {
            let result = host.can_accept(id, &type_name, name.as_deref());
            if let Err(reason) = &result {
                tracing::info!(actor = %id, node = %from, %reason, "refused to take an actor");
            }
            answer(MigrateControl::Ready { request, result: result.into() });
        }
        MigrateControl::Arrive { request, package } => {
            let id = package.id;
            let arrival = arrival(shared, &from, package);
            let result = host.accept_migrant(from.as_str(), arrival).map_err(|e| {
                tracing::error!(actor = %id, node = %from, error = %e, "refused an arriving actor");
                match e {
                    MigrateError::Refused { reason, .. } => reason,
                    // `accept_migrant` refuses with `Refused` only; anything else as its text.
                    other => MigrateRefusal::Other(other.to_string()),
                }
            });
            answer(MigrateControl::Arrived { request, result: result.into() });
        }
        MigrateControl::Ready { request, result } | MigrateControl::Arrived { request, result } => {
            let unreadable = matches!(
                result,
                Answer::Unreadable | Answer::Given(Err(MigrateRefusal::Unrecognized))
            );
            if unreadable && let Some(suppressed) = shared.strikes.warn(&from, Instant::now()) {
                tracing::warn!(node = %from, request, ?result, suppressed, "unreadable answer to a migration");
            }
            if let Some(tx) = shared.migrations.take(request) {
                let _ = tx.send(result);
            }
        }
    }
}

/// The arriving actor, its asks answered back to `from`.
fn arrival(shared: &Arc<Shared>, from: &NodeId, package: Package) -> Arrival {
    let Package {
        id,
        type_name,
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
    } = package;
    let queued = queued
        .into_iter()
        .map(|Carried { from: sender, tag, ask, depth, payload }| InboundMessage {
            to: id,
            from: sender,
            tag,
            depth,
            payload: payload.into(),
            reply: ask.map(|ask| reply_handler(shared, from, ask)),
        })
        .collect();
    Migrant {
        id,
        type_name,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(result: impl Serialize) -> Vec<u8> {
        #[derive(Serialize)]
        enum Control<R> {
            Migrate(MigrateControl<R>),
        }
        #[derive(Serialize)]
        enum MigrateControl<R> {
            Ready { request: u64, result: R },
        }
        rmp_serde::to_vec(&Control::Migrate(MigrateControl::Ready { request: 5, result })).unwrap()
    }

    fn answer(bytes: &[u8]) -> Answer {
        match super::Control::decode(bytes) {
            Ok(super::Control::Migrate(super::MigrateControl::Ready { request: 5, result })) => {
                result
            }
            other => panic!("not the Ready of request 5: {other:?}"),
        }
    }

    #[test]
    fn answers_travel_typed() {
        let node = NodeId::from("b");
        for given in [Ok(()), Err(MigrateRefusal::UnknownType("Account".into()))] {
            let message = MigrateControl::Ready { request: 5, result: given.clone().into() };
            let bytes = super::Control::Migrate(message).encode();
            assert_eq!(answer(&bytes), Answer::Given(given));
        }
        assert_eq!(
            answer(&ready(Err::<(), _>(MigrateRefusal::ShuttingDown))).into_result(&node),
            Err(MigrateError::Refused { node: "b".into(), reason: MigrateRefusal::ShuttingDown })
        );
    }

    #[test]
    fn an_older_nodes_answers_read_as_before() {
        let node = NodeId::from("b");
        assert_eq!(answer(&ready(Ok::<(), String>(()))).into_result(&node), Ok(()));
        let refused = answer(&ready(Err::<(), _>("the system is shutting down".to_owned())));
        assert_eq!(
            refused.into_result(&node),
            Err(MigrateError::Refused {
                node: "b".into(),
                reason: MigrateRefusal::Other("the system is shutting down".into()),
            })
        );
    }

    #[test]
    fn an_unreadable_answer_is_a_typed_error_for_its_request() {
        let node = NodeId::from("b");
        for junk in [ready(17u8), ready(vec!["what"; 3]), ready(Some(2.5f64))] {
            assert_eq!(answer(&junk), Answer::Unreadable);
            assert_eq!(answer(&junk).into_result(&node), Err(MigrateError::BadAnswer("b".into())));
        }
    }
}
