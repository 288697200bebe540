//! What the transport tells the application.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{DownReason, Frame, HandshakeError, NodeId};

/// Something that happened on the transport, in the order it happened per link.
///
/// For each link: one `PeerUp`, then its `Frame`s in the order the peer wrote them (the
/// order of its sends, except that frames sent with
/// [`Transport::send_urgent`](crate::Transport::send_urgent) may come ahead of data frames
/// sent before them), then one `PeerDown` (as long as the event receiver lives). A peer's
/// next link, after a reconnect, starts with a new `PeerUp` after the previous link's
/// `PeerDown`.
#[derive(Debug)]
pub enum TransportEvent {
    /// A link to `node` was established (either side may have opened it).
    PeerUp {
        /// The peer.
        node: NodeId,
        /// The peer's end of the TCP connection.
        addr: SocketAddr,
        /// Where the peer accepts connections, as far as known: the dialled address if this
        /// node connected, else the peer's IP with the listening port it announced. Dial this
        /// to reconnect.
        listen: SocketAddr,
        /// The peer's incarnation: a random number it drew when its transport started. A
        /// `PeerUp` with another incarnation than the last one seen for that node means the
        /// peer restarted (what it held before is gone).
        incarnation: u64,
    },
    /// The link to `node` is gone; sends to it fail with
    /// [`TransportError::PeerDown`](crate::TransportError::PeerDown) until it is back. If
    /// this node dialled it and `reason` is not deliberate, it is being redialled (see
    /// [`ReconnectPolicy`](crate::ReconnectPolicy)): a `PeerUp` follows when it is back, or
    /// [`GaveUp`](TransportEvent::GaveUp).
    PeerDown {
        /// The peer.
        node: NodeId,
        /// Why.
        reason: DownReason,
    },
    /// A data frame (`Message`, `Reply` or `Control`) from `from`.
    Frame {
        /// The sending node.
        from: NodeId,
        /// The frame.
        frame: Frame,
    },
    /// Redialling `node` (see [`ReconnectPolicy`](crate::ReconnectPolicy)) gave up after
    /// `attempts` failed attempts; it stays down until someone connects again.
    GaveUp {
        /// The peer.
        node: NodeId,
        /// The address redialled.
        addr: SocketAddr,
        /// How many attempts failed.
        attempts: u32,
    },
    /// An incoming connection failed its handshake and was dropped (also logged as a
    /// warning). Outgoing handshakes report through
    /// [`Transport::connect`](crate::Transport::connect) instead.
    HandshakeFailed {
        /// Where the connection came from.
        addr: SocketAddr,
        /// What went wrong.
        error: HandshakeError,
    },
}

/// Where a transport's events go: a channel the application drains
/// ([`Transport::bind`](crate::Transport::bind)), or a handler called in place on the
/// transport's own tasks ([`Transport::bind_with_handler`](crate::Transport::bind_with_handler)).
#[derive(Clone)]
pub(crate) enum Events {
    Channel(mpsc::Sender<TransportEvent>),
    Inline(Handler),
}

/// A handler of a transport's events, called in place (see
/// [`Transport::bind_with_handler`](crate::Transport::bind_with_handler)).
pub(crate) type Handler = Arc<dyn Fn(TransportEvent) + Send + Sync>;

impl Events {
    /// Hands `event` over, waiting for room in the channel; dropped if nobody listens.
    pub(crate) async fn send(&self, event: TransportEvent) {
        match self {
            Events::Channel(tx) => {
                let _ = tx.send(event).await;
            }
            Events::Inline(handle) => call(handle, event),
        }
    }

    /// Hands `event` over without waiting, or gives it back when the channel is full (it
    /// is dropped if nobody listens).
    pub(crate) fn try_send(&self, event: TransportEvent) -> Option<TransportEvent> {
        match self {
            Events::Channel(tx) => match tx.try_send(event) {
                Err(mpsc::error::TrySendError::Full(event)) => Some(event),
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            },
            Events::Inline(handle) => {
                call(handle, event);
                None
            }
        }
    }
}

/// Calls `handle`; a panic in it is logged and the event dropped, and the link goes on
/// (its task must still report its `PeerDown` and leave the peer table, or the peer could
/// never link again).
fn call(handle: &Handler, event: TransportEvent) {
    let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(event)));
    if let Err(panic) = called {
        let panic = amber_actors::remote::panic_message(panic.as_ref());
        tracing::error!(%panic, "the transport's event handler panicked; the event is dropped");
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Events::Channel(tx) => f.debug_tuple("Channel").field(tx).finish(),
            Events::Inline(_) => f.write_str("Inline"),
        }
    }
}
