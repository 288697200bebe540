//! The runtime's side of remoting: how a message leaves for an actor on another node, and how
//! one arriving from another node is delivered. `amber-remote` implements the routes over
//! TCP; the runtime knows nothing of sockets.
//!
//! A ref to an actor on another node is an ordinary [`ActorRef`](crate::ActorRef) that
//! leads to a [`RemoteRoute`] instead of a mailbox: `tell` and `ask` encode the message and
//! hand it to the route. A ref to an actor that moved away leads to its old mailbox, which
//! refuses the message as moved; the ref forwards it on the route to the actor's new node.
//! Refs decoded inside an [`ActorSystem`] whose id is not local are resolved through the
//! system's [`RemoteDirectory`].
//!
//! # Installing a remoting layer
//!
//! A remoting layer gives the system its directory with
//! [`SystemBuilder::remote`](crate::SystemBuilder::remote). When the system is built (or
//! restored), the directory receives the system's [`Host`] through
//! [`RemoteDirectory::attach`]: the one handle through which the layer delivers inbound
//! messages, makes refs to other nodes' actors, and passes on snapshot messages, node
//! failures, watches and migrations. The [`ActorSystem`] users hold has none of these
//! methods.

use std::fmt;

use amber_snapshot::Epoch;
use serde::{Deserialize, Serialize};

pub use crate::system::Host;
pub use crate::turn::panic_message;
use crate::{ActorId, ActorSystem, CodecError};

type Complete = Box<dyn FnOnce(&ActorSystem, Result<Vec<u8>, ReplyError>, Epoch) + Send + Sync>;

/// Why an ask across nodes has no reply: the answer the responder's node sends back in
/// place of one (the asker then gets [`AskError::NoReply`](crate::AskError::NoReply), or
/// [`AskError::NodeDown`](crate::AskError::NodeDown)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The request was not delivered on the responder's node.
    #[error("not delivered: {0}")]
    NotDelivered(DeliverError),
    /// The responder stopped, or dropped the request, before it replied.
    #[error("actor {0} stopped before replying")]
    Stopped(ActorId),
    /// The reply does not encode.
    #[error("the reply does not encode: {0}")]
    Encode(CodecError),
    /// The request was queued for an actor moving to another node, which refused it on
    /// arrival (the refusal, as the migration reports it).
    #[error("the actor did not arrive: {reason}")]
    NotArrived {
        /// The actor.
        actor: ActorId,
        /// Why the node refused it.
        reason: crate::migrate::MigrateRefusal,
    },
    /// The responder's node went down before it replied.
    #[error("node {0} went down")]
    NodeDown(String),
}

/// Completes an ask across nodes from its encoded reply: on the asking node it decodes the
/// reply (refs inside resolve against the given system) and wakes the asker; on the
/// answering node it sends the reply back over the link.
pub struct ReplyHandler {
    complete: Complete,
    /// Whether nobody waits for the reply any more.
    abandoned: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl ReplyHandler {
    /// A handler that runs `f` with the system, the encoded reply (or why there is none) and
    /// the responder's epoch.
    pub fn new(
        f: impl FnOnce(&ActorSystem, Result<Vec<u8>, ReplyError>, Epoch) + Send + Sync + 'static,
    ) -> Self {
        ReplyHandler { complete: Box::new(f), abandoned: None }
    }

    /// Adds a check of whether the asker has given up (its ask timed out or was dropped), so
    /// a route can free the ask without waiting for a reply that nobody reads.
    pub fn with_abandoned(mut self, abandoned: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.abandoned = Some(Box::new(abandoned));
        self
    }

    /// Whether the asker has given up; `false` if the handler cannot tell.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.as_ref().is_some_and(|abandoned| abandoned())
    }

    /// Completes the ask.
    pub fn complete(self, system: &ActorSystem, result: Result<Vec<u8>, ReplyError>, epoch: Epoch) {
        (self.complete)(system, result, epoch)
    }
}

impl fmt::Debug for ReplyHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyHandler(..)")
    }
}

/// A message leaving for an actor on another node, encoded.
#[derive(Debug)]
pub struct OutboundMessage {
    /// The receiving actor.
    pub to: ActorId,
    /// The sending actor, or `None` from outside the system.
    pub from: Option<ActorId>,
    /// The sender's epoch (for actors); tagged on arrival when from outside.
    pub tag: Epoch,
    /// For an ask from an actor, the asker's ask depth (see
    /// [`ActorCut::depth`](amber_snapshot::ActorCut::depth)); 0 otherwise.
    pub depth: u8,
    /// The receiving actor's type, as the sender knows it (for diagnostics).
    pub type_name: &'static str,
    /// The message, MessagePack with field names.
    pub payload: Vec<u8>,
    /// Where the reply goes, for an ask.
    pub reply: Option<ReplyHandler>,
}

thread_local! {
    /// A payload buffer a route gave back ([`recycle_payload`]), for the next message
    /// encoded on this thread.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer kept for reuse by [`recycle_payload`]; a larger one is freed.
const MAX_SPARE: usize = 4096;

/// A buffer to encode an outbound message's payload into: the one this thread's route
/// gave back last ([`recycle_payload`]), emptied, or a new one.
pub(crate) fn payload_buffer() -> Vec<u8> {
    let mut buffer = SPARE.with(std::cell::Cell::take);
    buffer.clear();
    if buffer.capacity() == 0 {
        buffer.reserve(64);
    }
    buffer
}

/// Gives the buffer of an [`OutboundMessage`]'s payload back, for the next message encoded
/// on this thread: a route that copied the payload where it goes (its link's send buffer)
/// calls it instead of dropping the buffer, and remote sends allocate nothing for their
/// payloads. A buffer over 4 KiB is freed instead.
pub fn recycle_payload(payload: Vec<u8>) {
    if payload.capacity() <= MAX_SPARE {
        // `try_with`: a thread being torn down keeps nothing.
        let _ = SPARE.try_with(|spare| spare.set(payload));
    }
}

/// A message that arrived from another node for a local actor.
#[derive(Debug)]
pub struct InboundMessage {
    /// The receiving (local) actor.
    pub to: ActorId,
    /// The sending actor, or `None` from outside its system.
    pub from: Option<ActorId>,
    /// The sender's epoch.
    pub tag: Epoch,
    /// For an ask from an actor, the asker's ask depth on its node; 0 otherwise.
    pub depth: u8,
    /// The message, MessagePack (as it arrived: a slice of the link's read buffer, not a
    /// copy).
    pub payload: bytes::Bytes,
    /// Where the reply goes, for an ask.
    pub reply: Option<ReplyHandler>,
}

/// Why a message could not be handed to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The node that hosts the actor is down or unknown.
    NodeDown(String),
    /// The link's send queue is full.
    Full(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NodeDown(n) => write!(f, "node {n} is down"),
            RouteError::Full(n) => write!(f, "the link to node {n} is full"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Why an inbound message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliverError {
    /// No live actor has this id here.
    NoSuchActor(ActorId),
    /// The payload does not decode as the actor's message type.
    Decode(CodecError),
    /// The actor has stopped.
    Stopped(ActorId),
}

impl fmt::Display for DeliverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliverError::NoSuchActor(id) => write!(f, "no actor {id} on this node"),
            DeliverError::Decode(e) => write!(f, "message does not decode: {e}"),
            DeliverError::Stopped(id) => write!(f, "actor {id} has stopped"),
        }
    }
}

impl std::error::Error for DeliverError {}

/// How messages reach the actors of one other node.
pub trait RemoteRoute: Send + Sync + 'static {
    /// Hands an encoded message to the link, without waiting. On error the message is
    /// dropped (the caller still holds the original and gives it back to its sender).
    fn route(&self, message: OutboundMessage) -> Result<(), RouteError>;

    /// [`route`](Self::route), then, if the link took the message, `taken` (the snapshot
    /// engine counts the message as sent on that link), both before the link can be
    /// reported down. Snapshots count each link's messages from zero again once it drops
    /// ([`Host::node_down`]): a message taken by a link that then dropped must be counted
    /// before that reset, never after it (on the next link's account, where it would never
    /// arrive and the counts would never add up again). The default calls one after the
    /// other, which is right for a route whose down notice cannot come in between.
    fn route_then(
        &self,
        message: OutboundMessage,
        taken: &mut dyn FnMut(),
    ) -> Result<(), RouteError> {
        self.route(message)?;
        taken();
        Ok(())
    }

    /// The node's name, for errors and logs.
    fn node(&self) -> &str;

    /// Whether the link has room for another data message: cross-node backpressure for
    /// bounded sends. If not, and `cx` is given, its waker is woken once there is room
    /// (or the node is down). Routes without a limit say `true`.
    fn poll_ready(&self, cx: Option<&mut std::task::Context<'_>>) -> bool {
        let _ = cx;
        true
    }

    /// Whether the node is reachable now. A send or an ask that fails while it is not is
    /// reported as the node being down ([`AskError::NodeDown`](crate::AskError::NodeDown))
    /// rather than as a stopped actor. Routes that cannot tell say `true`.
    fn is_up(&self) -> bool {
        true
    }

    /// Asks the node to tell `watcher` (a local actor) when `watched` (one of its actors)
    /// stops, through [`Host::notify_down`]; and to tell it with
    /// [`ExitReason::NodeDown`](crate::ExitReason::NodeDown) if the node goes down first.
    /// On error the watcher is told at once that the node is down. Routes that cannot watch
    /// refuse.
    ///
    /// A watch whose watcher is `watched` itself is the forwarding entry of an actor that
    /// moved from this node to that one ([`Host::migrate`]): a route that can should keep
    /// it across a dropped link (take it again when the same node is back) and tell it
    /// `NodeDown` only once that node is gone for good (restarted, declared down), so that
    /// the entry outlives a network blip.
    fn watch(&self, watched: ActorId, watcher: ActorId) -> Result<(), RouteError> {
        let _ = (watched, watcher);
        Err(RouteError::NodeDown(self.node().to_owned()))
    }

    /// Withdraws a [`watch`](Self::watch); nothing if there is none.
    fn unwatch(&self, watched: ActorId, watcher: ActorId) {
        let _ = (watched, watcher);
    }

    /// Resolves once `id` (one of the node's actors) has stopped, with its exit reason, or
    /// with [`ExitReason::NodeDown`](crate::ExitReason::NodeDown) once the node is down or
    /// unreachable (the actor may still run there). Dropping the future withdraws the wait.
    /// Routes that cannot watch resolve at once with `NodeDown`.
    fn stopped(&self, id: ActorId) -> StoppedFuture {
        let _ = id;
        let reason = crate::ExitReason::NodeDown(self.node().to_owned());
        Box::pin(std::future::ready(reason))
    }
}

/// What [`RemoteRoute::stopped`] returns.
pub type StoppedFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = crate::ExitReason> + Send + 'static>>;

/// Where actors that are not local live: the remoting layer's side of a system built with
/// [`SystemBuilder::remote`](crate::SystemBuilder::remote).
pub trait RemoteDirectory: Send + Sync + 'static {
    /// Receives the [`Host`] of a system built (or restored) with this directory, once per
    /// system, before any of its actors runs: what arrives on the links is handed to the
    /// system through it. This is the only way to get a system's `Host`.
    fn attach(&self, host: Host);

    /// The route to the node hosting `id`, if it is known.
    fn route_to(&self, id: ActorId) -> Option<std::sync::Arc<dyn RemoteRoute>>;

    /// The other nodes a snapshot started here spans: every node linked to this one.
    /// A snapshot aborts ([`AbortReason::Outsider`](amber_snapshot::AbortReason::Outsider))
    /// if a node it spans exchanged messages with a node outside this list.
    fn peers(&self) -> Vec<String> {
        Vec::new()
    }

    /// Hands an encoded snapshot protocol message to the link to `node`, to be delivered
    /// there through [`Host::on_snapshot_message`]: in order with the other snapshot
    /// messages to that node, and before every data message (or migrating actor) handed to
    /// a route to that node after this returns. It may overtake data handed over before it,
    /// and should (snapshot latency then does not grow with a link's backlog): the engine
    /// counts messages per epoch tag and never needs a link flushed. Must not block.
    fn send_snapshot(&self, node: &str, bytes: Vec<u8>) -> Result<(), RouteError> {
        let _ = bytes;
        Err(RouteError::NodeDown(node.to_owned()))
    }

    /// Where this node accepts links, as written into checkpoint manifests.
    fn address(&self) -> Option<String> {
        None
    }
}

impl fmt::Debug for dyn RemoteRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteRoute({})", self.node())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A payload buffer given back is the next one handed out, emptied; one over the limit
    /// is freed, not kept.
    #[test]
    fn a_recycled_payload_buffer_serves_the_next_message() {
        let fresh = payload_buffer();
        assert!(fresh.is_empty() && fresh.capacity() >= 64);
        // A capacity no fresh buffer has: seen again, it is the buffer given back.
        let mut first = Vec::with_capacity(1000);
        first.extend_from_slice(b"an encoded message");
        recycle_payload(first);
        let second = payload_buffer();
        assert!(second.is_empty(), "handed out emptied");
        assert_eq!(second.capacity(), 1000, "the buffer given back");
        let mut large = Vec::with_capacity(MAX_SPARE + 1);
        large.push(1u8);
        recycle_payload(large);
        let third = payload_buffer();
        assert!(third.capacity() <= MAX_SPARE, "a large buffer is not kept");
        drop(second);
    }
}
