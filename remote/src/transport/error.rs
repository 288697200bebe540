//! Transport errors and the reasons a link goes down.

use std::io;
use std::net::SocketAddr;

use crate::{FrameError, FrameKind, HandshakeError, NodeId};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The [`TransportConfig`](crate::TransportConfig) is unusable.
    #[error("invalid transport configuration: {0}")]
    Config(#[source] crate::ConfigError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The TCP connection could not be opened (refused, unreachable, timed out).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The connection was opened but the handshake failed; nothing was accepted from it.
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        /// The address dialled.
        addr: SocketAddr,
        /// What went wrong.
        source: HandshakeError,
    },
    /// The peer already has a link with this node that this node has not seen come up within
    /// the handshake timeout (it may hold a dead link it has not detected yet). Retry later.
    #[error("{0} reports an existing link to this node that is not up here")]
    Duplicate(NodeId),
    /// This node never had a link to that node.
    #[error("no link to unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The link to that node is down (or went down while the frame waited in its queue).
    #[error("peer {0} is down")]
    PeerDown(NodeId),
    /// [`try_send`](crate::Transport::try_send): the peer's send queue is full.
    #[error("send queue to {0} is full")]
    Full(NodeId),
    /// Only data frames (`Message`, `Reply`, `Control`) can be sent; the others belong to
    /// the transport.
    #[error("{0} frames are written by the transport itself")]
    Reserved(FrameKind),
    /// [`send_urgent`](crate::Transport::send_urgent): only `Control` frames may take the
    /// urgent lane.
    #[error("{0} frames cannot take the urgent lane (only Control frames can)")]
    NotUrgent(FrameKind),
    /// The frame cannot be encoded (e.g. larger than `max_frame`).
    #[error("cannot send frame: {0}")]
    Frame(FrameError),
    /// The operating system gave no randomness for the node's incarnation number.
    #[error("cannot draw random numbers: {0}")]
    Entropy(String),
    /// The transport's own thread ([`TransportConfig::io_thread`](crate::TransportConfig))
    /// could not be started.
    #[error("cannot start the transport's thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The transport was shut down (or every handle to it dropped).
    #[error("the transport is shut down")]
    Shutdown,
}

/// Why a link went down, in [`TransportEvent::PeerDown`](crate::TransportEvent::PeerDown).
#[derive(Debug, thiserror::Error)]
pub enum DownReason {
    /// Nothing arrived from the peer for the configured `peer_timeout`.
    #[error("timeout")]
    Timeout,
    /// The peer closed the connection between frames without a goodbye.
    #[error("connection closed by the peer")]
    Closed,
    /// The peer closed the link on purpose ([`Frame::Goodbye`](crate::Frame::Goodbye)).
    #[error("peer said goodbye: {0}")]
    Goodbye(String),
    /// The peer sent an oversized, malformed, unexpected or truncated frame.
    #[error("protocol error: {0}")]
    Frame(FrameError),
    /// Reading or writing the socket failed (e.g. connection reset).
    #[error("i/o error: {0}")]
    Io(io::Error),
    /// The peer restarted (new incarnation) and connected again; the new link replaces this
    /// one and its `PeerUp` follows.
    #[error("replaced by a new connection from the restarted peer")]
    Replaced,
    /// This node closed the link with [`Transport::disconnect`](crate::Transport::disconnect).
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// This node shut down.
    #[error("transport shut down")]
    Shutdown,
}
