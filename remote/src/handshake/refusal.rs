//! Why a node refuses a connection during the handshake, as the other side learns it.

use serde::{Deserialize, Serialize};

/// The reason in a [`Frame::Refuse`](crate::Frame::Refuse): the accepting node turns the
/// connection away and closes it. The dialler reports it as a typed
/// [`HandshakeError`](crate::HandshakeError).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The dialler's proof did not verify (a different shared secret):
    /// [`HandshakeError::Auth`](crate::HandshakeError::Auth).
    Auth,
    /// Too many connections are in their handshake, in all or from the dialler's address
    /// ([`TransportConfig::max_pending_handshakes`](crate::TransportConfig::max_pending_handshakes),
    /// [`TransportConfig::max_pending_per_address`](crate::TransportConfig::max_pending_per_address)):
    /// [`HandshakeError::TooManyPending`](crate::HandshakeError::TooManyPending). Retry later.
    TooManyPending,
}
