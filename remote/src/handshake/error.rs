//! Handshake errors.

use std::time::Duration;

use crate::{FrameError, NodeId, NodeIdError};

/// Why a connection was dropped before it became a link.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's first bytes are not amber's magic: it is not an amber node.
    #[error("peer is not an amber node (first bytes {got:02x?})")]
    NotAmber {
        /// The four bytes received instead.
        got: [u8; 4],
    },
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: this node speaks {ours}, the peer speaks {theirs}")]
    Version {
        /// Our version, [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The peer's proof does not match the shared secret (or was tampered with).
    #[error("peer failed authentication (a different shared secret?)")]
    Auth,
    /// The peer's node id is unusable (empty or too long).
    #[error("peer sent an invalid node id: {0}")]
    InvalidNodeId(#[source] NodeIdError),
    /// The peer claims this node's own id: a connection to itself, or two nodes configured
    /// with the same id.
    #[error("peer claims this node's own id {0}")]
    SameNodeId(NodeId),
    /// The peer said goodbye during the handshake (it failed to authenticate us, or is
    /// shutting down).
    #[error("peer refused the connection: {0}")]
    Refused(String),
    /// The peer closed the connection between two handshake frames.
    #[error("peer closed the connection during the handshake")]
    Closed,
    /// The handshake did not complete in time (e.g. a peer that connects and says nothing).
    #[error("no complete handshake within {0:?}")]
    Timeout(Duration),
    /// A handshake frame was oversized, malformed, out of order, or the stream failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The TLS handshake failed (a certificate not trusted or not valid for the expected
    /// name, no client certificate, a peer not speaking TLS, or one speaking TLS to a node
    /// that does not).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// No random nonce could be drawn from the operating system.
    #[error("cannot draw a random nonce: {0}")]
    Entropy(String),
}
