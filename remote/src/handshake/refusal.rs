//! Why a node refuses a connection during the handshake, as the other side learns it.

/// The reason in a [`HandshakeFrame::Refuse`](crate::HandshakeFrame::Refuse): the accepting
/// node turns the connection away and closes it. The dialler reports it as a typed
/// [`HandshakeError`](crate::HandshakeError). On the wire: `0x00` for `Auth`, `0x01` for
/// `TooManyPending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
