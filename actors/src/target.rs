//! Where an [`ActorRef`](crate::ActorRef)'s messages go: the mailbox of an actor of this
//! node, forwarded on from that mailbox once the actor has moved to another node, or the
//! route to an actor on another node.
//!
//! The mailbox core only says what became of a push (queued, full, closed, or moved, with
//! where to); the decisions that involve other nodes are taken here: encoding a message for
//! a link, cross-node backpressure, and counting what leaves for the snapshot protocol.
//! What must be atomic with the mailbox (whether the actor is still here or has left, the
//! recording of a message arriving after its cut) is decided under the mailbox lock; a
//! message the mailbox refuses as moved was pushed after the hand-off took the queue, so
//! forwarding it after the departed backlog keeps per-sender order.

use std::sync::{Arc, OnceLock};
use std::task::Context;

use amber_snapshot::InFlightRecord;

use crate::current;
use crate::envelope::Envelope;
use crate::mailbox::PushError;
use crate::mailbox::core::{Late, MailboxCore, Meta};
use crate::remote::RemoteRoute;
use crate::snapshot::SnapshotEngine;
use crate::{Actor, ExitReason};

/// The mailbox of an actor of type `A`; once the actor moves, it refuses pushes with the
/// [`Forward`] to its new node.
pub(crate) type Mailbox<A> = MailboxCore<Envelope<A>, Forward>;

/// Why a send did not reach its actor; the envelope is given back.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// A bounded mailbox (or the link to the actor's node) is full.
    Full(T),
    /// The actor has stopped, its node is down, or the message does not encode for it.
    Stopped(T),
}

/// Where an [`ActorRef`](crate::ActorRef) sends.
pub(crate) enum Target<A: Actor> {
    /// An actor of this node (or one that left it: its mailbox forwards, see [`Forward`]).
    Local(Arc<Mailbox<A>>),
    /// An actor on another node.
    Remote(Arc<Remote>),
}

impl<A: Actor> Clone for Target<A> {
    fn clone(&self) -> Self {
        match self {
            Target::Local(mailbox) => Target::Local(mailbox.clone()),
            Target::Remote(remote) => Target::Remote(remote.clone()),
        }
    }
}

impl<A: Actor> Target<A> {
    /// What the ref knows of its actor.
    #[inline]
    pub(crate) fn meta(&self) -> &Meta {
        match self {
            Target::Local(mailbox) => &mailbox.meta,
            Target::Remote(remote) => &remote.meta,
        }
    }

    /// Sends an envelope without waiting; with `wait` (the sender's context and its place in
    /// the mailbox's line, see [`MailboxCore::poll_push`]), waits in line to be woken when
    /// room is granted to it if the mailbox (or link) is full.
    #[inline]
    pub(crate) fn send(
        &self,
        env: Envelope<A>,
        wait: Option<(&mut Context<'_>, &mut Option<u64>)>,
    ) -> Result<(), Refused<Envelope<A>>> {
        match self {
            Target::Local(mailbox) => {
                let (pushed, cx) = match wait {
                    None => (mailbox.try_push(env), None),
                    Some((cx, ticket)) => (mailbox.poll_push(cx, env, ticket), Some(cx)),
                };
                match pushed {
                    Ok(()) => Ok(()),
                    Err(PushError::Full(env)) => Err(Refused::Full(env)),
                    // A local sender to a passivated actor gets its message back (it may
                    // look the actor up again).
                    Err(PushError::Closed(env) | PushError::Passivated(env)) => {
                        Err(Refused::Stopped(env))
                    }
                    Err(PushError::Moved(env, to)) => to.send(&mailbox.meta, env, cx, true),
                }
            }
            Target::Remote(remote) => remote.send(env, wait.map(|(cx, _)| cx), true),
        }
    }

    /// Serves an ask on this thread if its actor is of this node and idle (see
    /// [`crate::inline::serve`]); `Err` gives the envelope back to be sent.
    #[inline]
    pub(crate) fn serve_inline(
        &self,
        env: Envelope<A>,
        timed: bool,
    ) -> Result<Option<std::time::Instant>, Envelope<A>> {
        match self {
            Target::Local(mailbox) => crate::inline::serve(mailbox, env, timed),
            Target::Remote(_) => Err(env),
        }
    }

    /// A sender that waited in line for room gives up its place (see
    /// [`MailboxCore::cancel_wait`]).
    pub(crate) fn cancel_wait(&self, ticket: u64) {
        if let Target::Local(mailbox) = self {
            mailbox.cancel_wait(ticket);
        }
    }

    /// Sends an envelope from inside a handler that found the mailbox full: queued beyond
    /// the bound instead of waiting (see [`ActorRef::tell`](crate::ActorRef::tell)). A full
    /// link to another node takes it too, and the running actor owes the link room: it
    /// waits for the link to drain after its handler, before its next message (see
    /// [`current::owe_room`]) — between two messages, where a snapshot can cut it, not
    /// inside the handler, where the cut would wait for the link.
    pub(crate) fn send_overflow(&self, env: Envelope<A>) -> Result<(), Refused<Envelope<A>>> {
        match self {
            Target::Local(mailbox) => match mailbox.push_overflow(env) {
                Ok(()) => Ok(()),
                Err(PushError::Full(env)) => Err(Refused::Full(env)),
                Err(PushError::Closed(env) | PushError::Passivated(env)) => {
                    Err(Refused::Stopped(env))
                }
                Err(PushError::Moved(env, to)) => {
                    to.owe_room_if_full();
                    to.send(&mailbox.meta, env, None, false)
                }
            },
            Target::Remote(remote) => {
                if !remote.route.poll_ready(None) {
                    current::owe_room(remote.route.clone());
                }
                remote.send(env, None, false)
            }
        }
    }
}

/// Where the messages of an actor that moved to another node go: the route to that node,
/// and this node's snapshot engine, which counts what the link takes and relays across a
/// running snapshot (see [`SnapshotEngine::relay`]).
#[derive(Debug, Clone)]
pub(crate) struct Forward {
    route: Arc<dyn RemoteRoute>,
    engine: Arc<SnapshotEngine>,
}

impl Forward {
    /// Forwarding to the node `route` leads to, counted by `engine`.
    pub(crate) fn new(route: Arc<dyn RemoteRoute>, engine: Arc<SnapshotEngine>) -> Self {
        Forward { route, engine }
    }

    /// Whether the link to the node the actor moved to is up now (a message forwarded while
    /// it is down is refused, as one sent straight to an actor of that node).
    pub(crate) fn is_up(&self) -> bool {
        self.route.is_up()
    }

    /// The node the actor moved to.
    pub(crate) fn node(&self) -> &str {
        self.route.node()
    }

    /// A send from a handler is about to go beyond the bound of the link: the running
    /// actor owes it room (see [`Target::send_overflow`]).
    fn owe_room_if_full(&self) {
        if !self.route.poll_ready(None) {
            current::owe_room(self.route.clone());
        }
    }

    /// Sends on an envelope the mailbox described by `meta` refused because its actor
    /// moved: under the engine's lock, a message from an actor tagged before the node's
    /// target epoch is recorded in flight for that snapshot and goes on tagged with it.
    /// `bounded`: a send that waits for room on the link (registering `cx`, if any);
    /// messages from other nodes are relayed regardless.
    #[cold]
    pub(crate) fn send<A: Actor>(
        &self,
        meta: &Meta,
        mut env: Envelope<A>,
        cx: Option<&mut Context<'_>>,
        bounded: bool,
    ) -> Result<(), Refused<Envelope<A>>> {
        if bounded && !self.route.poll_ready(cx) {
            return Err(Refused::Full(env));
        }
        let mut outbound = match env.encode_outbound(meta.id, meta.type_name) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(actor = %meta.id, error = %e, "message does not encode for a moved actor");
                return Err(Refused::Stopped(env));
            }
        };
        let relayed = self.engine.relay(self.route.node(), |target| {
            let late = (outbound.from.is_some() && outbound.tag < target).then(|| {
                let record = InFlightRecord {
                    to: meta.id,
                    from: outbound.from,
                    epoch: outbound.tag,
                    ask: outbound.reply.is_some(),
                    payload: outbound.payload.clone().into(),
                };
                outbound.tag = target;
                record
            });
            let counted = outbound.from.map(|_| outbound.tag);
            self.route.route(outbound)?;
            // Recorded only once the link took it: one it refused (the new node's link is
            // down) goes back to its sender, and must not also be in flight.
            if let Some(record) = late {
                meta.late.push(Late { snapshot: target, record: Ok(record) });
            }
            Ok::<_, crate::remote::RouteError>(counted)
        });
        relayed.map_err(|e| {
            tracing::debug!(actor = %meta.id, error = %e, "relay to a moved actor failed");
            Refused::Stopped(env)
        })
    }
}

/// An actor on another node, as refs on this node reach it: through the route to its node.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) meta: Meta,
    pub(crate) route: Arc<dyn RemoteRoute>,
    /// This node's snapshot engine, which counts the epoch-tagged messages the link takes.
    engine: Arc<SnapshotEngine>,
    /// Why the actor stopped, once a wait on this ref (or a clone) has seen it stop.
    exit: OnceLock<ExitReason>,
}

impl Remote {
    /// The actor described by `meta`, on the node `route` leads to.
    pub(crate) fn new(
        meta: Meta,
        route: Arc<dyn RemoteRoute>,
        engine: Arc<SnapshotEngine>,
    ) -> Self {
        Remote { meta, route, engine, exit: OnceLock::new() }
    }

    /// Encodes the envelope and hands it to the route (if `bounded`, only if the link has
    /// room, registering `cx` to be woken when it has if given); the link's taking a
    /// message from an actor is counted.
    fn send<A: Actor>(
        &self,
        mut env: Envelope<A>,
        cx: Option<&mut Context<'_>>,
        bounded: bool,
    ) -> Result<(), Refused<Envelope<A>>> {
        if bounded && !self.route.poll_ready(cx) {
            return Err(Refused::Full(env));
        }
        let outbound = match env.encode_outbound(self.meta.id, self.meta.type_name) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(actor = %self.meta.id, error = %e, "message does not encode for a remote actor");
                return Err(Refused::Stopped(env));
            }
        };
        // Messages from actors carry their sender's epoch and are counted once the link
        // took them; outside messages are tagged on arrival and never counted.
        let routed = match outbound.from.map(|_| outbound.tag) {
            Some(tag) => self.route.route_then(outbound, &mut || {
                self.engine.remote_sent(self.route.node(), tag);
            }),
            None => self.route.route(outbound),
        };
        match routed {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(actor = %self.meta.id, error = %e, "remote send failed");
                Err(Refused::Stopped(env))
            }
        }
    }

    /// Why the actor stopped, if a wait has seen it stop.
    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        self.exit.get().cloned()
    }

    /// Waits until the actor has stopped (see [`ActorRef::wait_stopped`](crate::ActorRef::wait_stopped)).
    pub(crate) async fn wait_stopped(&self) -> ExitReason {
        if let Some(reason) = self.exit_reason() {
            return reason;
        }
        let reason = self.route.stopped(self.meta.id).await;
        if !matches!(reason, ExitReason::NodeDown(_)) {
            // Known stopped for good: `is_stopped` says so from now on.
            let _ = self.exit.set(reason.clone());
        }
        reason
    }
}
