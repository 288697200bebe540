//! [`Host`]: what only the remoting layer may do with a system. It is handed to the layer's
//! [`RemoteDirectory`](crate::remote::RemoteDirectory) when the system is built, and to no
//! one else.
//!
//! The methods are written beside the machinery they drive: messages and refs here,
//! watches in `remote_watch.rs`, snapshot messages in `snapshots.rs`, migrations in
//! `crate::migrate`.

use std::fmt;
use std::sync::Arc;

use super::ActorSystem;
use crate::any_mailbox::Undelivered;
use crate::parked_reply::ReplyTicket;
use crate::remote::{DeliverError, InboundMessage, RemoteRoute};
use crate::target::Remote;
use crate::{Actor, ActorId, ActorRef};

/// The local system as a remoting layer sees it: delivers what arrives from other nodes,
/// makes refs that lead to them, and feeds the snapshot protocol, watches and migrations
/// from the links.
///
/// A system built with [`SystemBuilder::remote`](crate::SystemBuilder::remote) hands its
/// `Host` to the directory, once, through
/// [`RemoteDirectory::attach`](crate::remote::RemoteDirectory::attach); there is no other
/// way to get one. Users holding an [`ActorSystem`] cannot reach these methods, so they
/// cannot, say, declare a node down (which aborts the running snapshot) or inject a message
/// as if it came from another node.
///
/// Cheap to clone. A `Host` does not own its system: holding one does not keep the system
/// from shutting down once its users drop their handles (as for the handle a handler gets
/// from [`Context::system`](crate::Context::system)).
#[derive(Clone)]
pub struct Host {
    system: ActorSystem,
}

impl Host {
    /// The remoting layer's handle on `system` (a handle that does not own it).
    pub(crate) fn new(system: &ActorSystem) -> Host {
        Host { system: system.internal() }
    }

    /// The system this host serves, for what any user can do with it too (spawn, look up,
    /// decode, take snapshots). The handle does not own the system (see [`Host`]).
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// A ref to actor `id`, of type `A`, living on the node `route` leads to. Its `tell` and
    /// `ask` encode the message and hand it to the route.
    pub fn remote_ref<A: Actor>(&self, id: ActorId, route: Arc<dyn RemoteRoute>) -> ActorRef<A> {
        self.system.remote_ref(id, route)
    }

    /// The stable type name actors of type `A` are known by across nodes: the registered
    /// name ([`SystemBuilder::register`](crate::SystemBuilder::register)), or the Rust type
    /// path.
    pub fn type_name_of<A: Actor>(&self) -> &'static str {
        self.system.type_name_of::<A>()
    }

    /// Delivers a message that arrived from node `node` to the local actor it names.
    ///
    /// Whatever its fate (queued, or refused as a dead letter), a message from an actor is
    /// counted for the snapshot protocol once this returns: call it for every such message,
    /// in the order the link delivered them.
    ///
    /// A refused *tell* (the actor stopped or drained; its sender's link took it, so the
    /// sender never learns) that crosses the actor's cut is recorded in flight, even once
    /// the actor has left the registry. A refused *ask* is not: the caller answers its asker
    /// with the error, so the asker keeps what it asked for.
    ///
    /// A tell to an actor that passivated with a
    /// [`Redirect`](crate::passivate::Redirect) (closed, or gone from the registry) goes
    /// where the redirect says, with its sender and tag: it is queued (and recorded, if it
    /// crosses a cut) there, and counted once, here. So does an ask, if the redirect takes
    /// asks ([`Redirect::wrap_ask`](crate::passivate::Redirect::wrap_ask)), its reply
    /// route parked here (see [`crate::parked_reply`]); if not, it is refused.
    pub fn deliver(&self, node: &str, message: InboundMessage) -> Result<(), DeliverError> {
        let system = &self.system;
        let counted = message.from.map(|_| message.tag);
        let result = system.deliver_inbound(message, true);
        if let Some(tag) = counted {
            system.run_effects(system.inner.engine.remote_received(node, tag));
        }
        result
    }
}

impl ActorSystem {
    /// Delivers `message` (from another node, or relayed) to the local actor it names, or
    /// relays it to where that actor moved, or (`redirect`) redirects it to an actor
    /// that passivated with a [`Redirect`](crate::passivate::Redirect). Counts nothing
    /// itself but a relay's tag (see [`Host::deliver`]).
    pub(crate) fn deliver_inbound(
        &self,
        message: InboundMessage,
        redirect: bool,
    ) -> Result<(), DeliverError> {
        let inner = &self.inner;
        let to = message.to;
        let undelivered = match inner.registry.get(to) {
            Some(mailbox) => match mailbox.deliver(self, message, false) {
                Ok(()) => return Ok(()),
                Err(undelivered) => undelivered,
            },
            None => match inner.moved.get(&to).and_then(|m| m.value().last().cloned()) {
                Some(moved) => {
                    // Relayed on: the node first learns of any later snapshot it carries.
                    if message.from.is_some() {
                        self.run_effects(inner.engine.saw(message.tag));
                    }
                    match moved.deliver(self, message, false) {
                        Ok(()) => return Ok(()),
                        Err(undelivered) => undelivered,
                    }
                }
                None if inner.passivated.contains_key(&to) => Undelivered::Passivated(message),
                None => {
                    self.record_refused(&message);
                    return Err(DeliverError::NoSuchActor(to));
                }
            },
        };
        let message = match undelivered {
            Undelivered::Refused(e, _) => return Err(e),
            Undelivered::Passivated(message) => message,
        };
        let Some(target) = inner.passivated.get(&to).map(|r| r.value().clone()) else {
            tracing::warn!(actor = %to, "a message for a passivated actor with no redirect: dropped");
            return Err(DeliverError::Stopped(to));
        };
        if !redirect {
            // A redirect is not redirected again.
            return Err(DeliverError::Stopped(to));
        }
        let mut message = message;
        // An ask's route is parked here, named by a ticket in the redirected message.
        let (payload, ticket) = match message.reply.take() {
            None => ((target.wrap)(Vec::from(message.payload)), None),
            Some(handler) => {
                let Some(wrap_ask) = &target.wrap_ask else {
                    // Not redirected: the caller answers the asker with the error.
                    return Err(DeliverError::Stopped(to));
                };
                let expiry = self.ask_timeout().saturating_mul(2);
                let ticket = self.parked_replies().park(self, handler, to, message.depth, expiry);
                (wrap_ask(Vec::from(message.payload), ticket), Some(ticket))
            }
        };
        // A redirect that did not happen gives an ask's route back to the caller, which
        // answers the asker with the error.
        let unpark = |ticket: Option<ReplyTicket>| {
            if let Some(ticket) = ticket {
                drop(self.parked_replies().unpark(ticket));
            }
        };
        let payload = match payload {
            Ok(payload) => payload,
            Err(e) => {
                unpark(ticket);
                tracing::warn!(actor = %to, error = %e, "a message for a passivated actor could not be redirected: dropped");
                return Err(DeliverError::Decode(e));
            }
        };
        tracing::trace!(actor = %to, to = %target.to, ask = ticket.is_some(), "redirected a message for a passivated actor");
        // A tell to the redirect's actor (an ask's depth stays with its parked route).
        let redirected =
            InboundMessage { to: target.to, payload: payload.into(), depth: 0, ..message };
        self.deliver_inbound(redirected, false).inspect_err(|e| {
            unpark(ticket);
            tracing::warn!(actor = %to, to = %target.to, error = %e, "a message for a passivated actor was not taken where it was redirected: dropped");
        })
    }

    /// A ref to actor `id` on the node `route` leads to (see [`Host::remote_ref`]).
    pub(crate) fn remote_ref<A: Actor>(
        &self,
        id: ActorId,
        route: Arc<dyn RemoteRoute>,
    ) -> ActorRef<A> {
        let meta = self.meta_of::<A>(id, None);
        ActorRef::remote(Remote::new(meta, route, self.inner.engine.clone()))
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Host").field(&self.system).finish()
    }
}
