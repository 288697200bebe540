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
    /// The proofs do not match: on the accepting side, the dialler's proof failed; on the
    /// dialling side, the acceptor refused our proof ([`Refusal::Auth`](crate::Refusal::Auth))
    /// or its own proof failed. A different shared secret, or a tampered connection.
    #[error("authentication failed (a different shared secret?)")]
    Auth,
    /// The accepting node has too many connections in their handshake, in all or from this
    /// node's address, and refused this one
    /// ([`Refusal::TooManyPending`](crate::Refusal::TooManyPending)). Retry later.
    #[error("handshake refused: too many pending")]
    TooManyPending,
    /// The peer's node id is unusable (empty or too long).
    #[error("peer sent an invalid node id: {0}")]
    InvalidNodeId(#[source] NodeIdError),
    /// The peer claims this node's own id: a connection to itself, or two nodes configured
    /// with the same id.
    #[error("peer claims this node's own id {0}")]
    SameNodeId(NodeId),
    /// The peer closed the connection between two handshake frames.
    #[error("peer closed the connection during the handshake")]
    Closed,
    /// The handshake did not complete in time (e.g. a peer that stops half-way).
    #[error("no complete handshake within {0:?}")]
    Timeout(Duration),
    /// The dialler sent nothing within
    /// [`TransportConfig::first_byte_timeout`](crate::TransportConfig::first_byte_timeout)
    /// of connecting (an idle connection holding a handshake slot).
    #[error("the peer sent nothing within {0:?} of connecting")]
    Idle(Duration),
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
