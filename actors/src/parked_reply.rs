//! The reply routes of asks from other nodes redirected away from an actor that
//! passivated (see [`Redirect::wrap_ask`](crate::passivate::Redirect::wrap_ask)).
//!
//! A redirected message reaches the redirect's actor (a keeper) as a tell of *its* message
//! type, which cannot carry the ask's reply route (a [`ReplyHandler`], not data). The node
//! parks the route under a [`ReplyTicket`] and the ticket travels in the wrapped message.
//! The keeper claims the route ([`Context::claim_reply`]) and sends the request on with it
//! ([`Context::ask_encoded`]): the passivated actor, started again, answers the asker
//! itself, with its own epoch, as if the ask had reached it directly.
//!
//! A route is never part of a snapshot: a ticket names a route of one running system (its
//! [`SystemId`]); in a system restored from a checkpoint, or on another node, it names
//! none, and [`Context::claim_reply`] finds nothing (the request is then
//! handled as a tell: its asker waited in the system the snapshot was taken of). A claimed
//! route that is dropped unanswered ([`ParkedReply`]'s `Drop`: its keeper stopped or moved)
//! answers its asker with an error, which the asker sees as
//! [`AskError::NoReply`](crate::AskError::NoReply); so does a parked route that nobody
//! claimed within twice the system's ask timeout (its asker has given up by then).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use amber_snapshot::Epoch;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::remote::{DeliverError, InboundMessage, ReplyError, ReplyHandler};
use crate::{Actor, ActorId, ActorSystem, Context, EncodedSendError, SystemId};

/// Names the parked reply route of an ask redirected from an actor that passivated (see
/// the [module docs](crate::parked_reply)): valid in the system that parked it only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplyTicket {
    system: SystemId,
    n: u64,
}

/// A parked route: the asker's handler, the passivated actor it asked, the asker's depth.
struct Parked {
    handler: ReplyHandler,
    actor: ActorId,
    depth: u8,
    since: Instant,
}

/// A system's parked routes.
#[derive(Default)]
pub(crate) struct ParkedReplies {
    next: AtomicU64,
    routes: DashMap<u64, Parked>,
}

impl ParkedReplies {
    /// Parks `handler`, the route of an ask for `actor` from an asker at `depth`; first
    /// answers (with an error) the routes parked longer than `expiry` ago: nobody claimed
    /// them, and their askers have given up.
    pub(crate) fn park(
        &self,
        system: &ActorSystem,
        handler: ReplyHandler,
        actor: ActorId,
        depth: u8,
        expiry: std::time::Duration,
    ) -> ReplyTicket {
        if !self.routes.is_empty() {
            let now = Instant::now();
            let expired: Vec<u64> = self
                .routes
                .iter()
                .filter(|r| now.duration_since(r.since) > expiry)
                .map(|r| *r.key())
                .collect();
            for n in expired {
                if let Some((_, parked)) = self.routes.remove(&n) {
                    tracing::debug!(actor = %parked.actor, "a redirected ask was never claimed");
                    parked.handler.complete(
                        system,
                        Err(ReplyError::Stopped(parked.actor)),
                        Epoch::ZERO,
                    );
                }
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.routes.insert(n, Parked { handler, actor, depth, since: Instant::now() });
        ReplyTicket { system: system.id(), n }
    }

    /// Takes back the route of `ticket` (a redirect that did not happen: its caller
    /// answers the asker).
    pub(crate) fn unpark(&self, ticket: ReplyTicket) -> Option<ReplyHandler> {
        self.routes.remove(&ticket.n).map(|(_, parked)| parked.handler)
    }
}

/// The reply route of a redirected ask, claimed by the actor it was redirected to
/// ([`Context::claim_reply`]): kept (outside its state) until it sends the request on with
/// [`Context::ask_encoded`]. Dropped unsent, it answers the asker with an error (the asker
/// sees [`AskError::NoReply`](crate::AskError::NoReply)).
pub struct ParkedReply {
    handler: Option<ReplyHandler>,
    actor: ActorId,
    depth: u8,
    system: ActorSystem,
}

impl ParkedReply {
    /// The passivated actor the ask was for.
    pub fn actor(&self) -> ActorId {
        self.actor
    }
}

impl Drop for ParkedReply {
    fn drop(&mut self) {
        if let Some(handler) = self.handler.take() {
            tracing::debug!(actor = %self.actor, "a redirected ask dropped unanswered");
            handler.complete(&self.system, Err(ReplyError::Stopped(self.actor)), Epoch::ZERO);
        }
    }
}

impl fmt::Debug for ParkedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParkedReply").field("actor", &self.actor).finish_non_exhaustive()
    }
}

/// A [`Context::ask_encoded`] that did not reach its actor: the payload and route, given
/// back, and why.
#[derive(Debug)]
pub struct EncodedAskError {
    /// The payload and why it was not delivered.
    pub send: EncodedSendError,
    /// The route, to send again later (or drop: the asker then gets an error).
    pub reply: ParkedReply,
}

impl fmt::Display for EncodedAskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "encoded ask not delivered: {}", self.send.error)
    }
}

impl std::error::Error for EncodedAskError {}

impl<A: Actor> Context<A> {
    /// Claims the reply route `ticket` names (see the [module docs](crate::parked_reply)):
    /// `None` if this system parked none under it (the ticket comes from a checkpoint or
    /// another node, or the route was claimed or expired).
    pub fn claim_reply(&self, ticket: ReplyTicket) -> Option<ParkedReply> {
        if ticket.system != self.system.id() {
            return None;
        }
        let (_, parked) = self.system.parked_replies().routes.remove(&ticket.n)?;
        Some(ParkedReply {
            handler: Some(parked.handler),
            actor: parked.actor,
            depth: parked.depth,
            system: self.system.internal(),
        })
    }

    /// [`tell_encoded`](Self::tell_encoded) for a redirected ask: sends `payload` to the
    /// actor `to` of this node as a request whose reply goes along `reply`, straight to
    /// the original asker (the reply carries `to`'s epoch, as any reply). Sent as this
    /// actor (its epoch, in its order with its other sends to `to`). Fails, giving both
    /// back, if `to` is not here or has stopped (or passivated), or the payload does not
    /// decode.
    pub fn ask_encoded(
        &self,
        to: ActorId,
        payload: Vec<u8>,
        mut reply: ParkedReply,
    ) -> Result<(), EncodedAskError> {
        let Some(mailbox) = self.system.local_or_moved(to) else {
            let error = DeliverError::NoSuchActor(to);
            return Err(EncodedAskError { send: EncodedSendError { payload, error }, reply });
        };
        let handler = reply.handler.take();
        let message = InboundMessage {
            to,
            from: Some(self.id()),
            tag: self.epoch(),
            depth: reply.depth,
            payload: payload.clone().into(),
            reply: handler,
        };
        // Refused, the handler comes back: it waits here for the next attempt.
        let (handler, error) = match mailbox.deliver(&self.system, message, true) {
            Ok(()) => return Ok(()),
            Err(crate::any_mailbox::Undelivered::Refused(error, handler)) => (handler, error),
            Err(crate::any_mailbox::Undelivered::Passivated(message)) => {
                (message.reply, DeliverError::Stopped(to))
            }
        };
        reply.handler = handler;
        Err(EncodedAskError { send: EncodedSendError { payload, error }, reply })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde::{Deserialize, Serialize};
    use tokio::sync::oneshot;

    use super::*;
    use crate::passivate::tests::Counter;
    use crate::passivate::{PassivateRequest, Passivation, Redirect};

    /// What the redirect hands the relay: an ask for the passivated counter.
    #[derive(Serialize, Deserialize)]
    struct Relayed {
        payload: Vec<u8>,
        ticket: ReplyTicket,
    }

    /// Plays a keeper: sends each redirected ask on to `to` (a request for 0 is held
    /// instead, until the relay stops), and says whether it could claim its route.
    struct Relay {
        to: ActorId,
        held: Vec<ParkedReply>,
        claimed: Arc<Mutex<Vec<bool>>>,
    }

    impl Actor for Relay {
        type Msg = Relayed;
        type Reply = ();
        async fn handle(&mut self, msg: Relayed, ctx: &mut Context<Self>) {
            let reply = ctx.claim_reply(msg.ticket);
            self.claimed.lock().unwrap().push(reply.is_some());
            let Some(reply) = reply else { return };
            if ctx.system().decode::<u64>(&msg.payload).unwrap() == 0 {
                self.held.push(reply);
            } else if let Err(e) = ctx.ask_encoded(self.to, msg.payload, reply) {
                panic!("not sent on: {e}");
            }
        }
    }

    /// An ask for `to` as it arrives from another node; its result comes out of the
    /// receiver.
    fn ask(
        to: ActorId,
        n: u64,
    ) -> (InboundMessage, oneshot::Receiver<Result<Vec<u8>, ReplyError>>) {
        let (tx, rx) = oneshot::channel();
        let handler = ReplyHandler::new(move |_, result, _| {
            let _ = tx.send(result);
        });
        let payload = crate::encode(&n).unwrap();
        let message = InboundMessage {
            to,
            from: None,
            tag: Epoch::ZERO,
            depth: 0,
            payload: payload.into(),
            reply: Some(handler),
        };
        (message, rx)
    }

    /// An ask from another node for an actor that passivated with a redirect taking asks
    /// reaches the redirect's actor with a ticket; claimed, its route answers the asker
    /// with the reply of the actor it is sent on to. A route held and dropped unanswered
    /// answers with an error; a ticket of another system names no route.
    #[tokio::test]
    async fn a_redirected_ask_is_answered_through_its_claimed_route() {
        let system = ActorSystem::builder().register::<Counter>().build();
        let passivating = system.spawn(Counter(0)).unwrap();
        let woken = system.spawn(Counter(40)).unwrap();
        let claimed = Arc::new(Mutex::new(Vec::new()));
        let relay = Relay { to: woken.id(), held: Vec::new(), claimed: claimed.clone() };
        let relay = system.spawn(relay).unwrap();
        let redirect = Redirect {
            to: relay.id(),
            wrap: Box::new(|_| Err(crate::CodecError::new("tells are not relayed here".into()))),
            wrap_ask: Some(Box::new(|payload, ticket| crate::encode(&Relayed { payload, ticket }))),
        };
        let request = PassivateRequest {
            if_handled: None,
            keep: Box::new(|_| Ok(())),
            redirect: Some(redirect),
        };
        let id = passivating.id();
        assert_eq!(system.passivate(id, request).await, Ok(Passivation::Passivated));

        let (message, answer) = ask(id, 2);
        system.deliver_inbound(message, true).expect("redirected");
        let reply = answer.await.unwrap().expect("answered");
        assert_eq!(system.decode::<u64>(&reply).unwrap(), 42, "by the actor it went on to");

        let (message, answer) = ask(id, 0);
        system.deliver_inbound(message, true).expect("redirected");
        relay
            .ask(Relayed {
                payload: crate::encode(&1u64).unwrap(),
                ticket: ReplyTicket { system: crate::SystemId(system.id().0 ^ 1), n: 0 },
            })
            .await
            .unwrap();
        assert_eq!(*claimed.lock().unwrap(), [true, true, false], "another system's ticket");
        relay.stop();
        relay.wait_stopped().await;
        assert_eq!(answer.await.unwrap(), Err(ReplyError::Stopped(id)), "held, then dropped");
        assert_eq!(woken.ask(0).await.unwrap(), 42, "the held request was not sent on");
        system.shutdown().await;
    }
}
