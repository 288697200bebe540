//! The handshake: version check, node ids, shared-secret challenge–response.
//!
//! The wire format is described in the crate docs ([handshake](crate#handshake)). This module
//! holds the pure parts ([`proof`]) and the async exchange over any byte stream
//! ([`exchange`]), which the transport runs on every new connection before it accepts a
//! single data frame.

mod error;
pub(crate) mod exchange;
pub(crate) mod proof;
mod refusal;

#[cfg(test)]
mod tests;

pub use error::HandshakeError;
pub use refusal::Refusal;

/// The protocol version this crate speaks. Both sides send theirs first thing; a connection
/// between different versions is refused with [`HandshakeError::Version`].
///
/// 2: asks carry the asker's depth (the ask rule), migration answers and `NotArrived`
/// reasons are typed refusals, and restores announce `Resumed`; a version-1 node could not
/// read them, so the two refuse each other at the handshake.
///
/// 3: the dialler proves itself first (the acceptor sends no proof before it has verified
/// the dialler's), the acceptor speaks only after the dialler's preamble, and a refusal is a
/// typed `Refuse` frame. The preamble comes first in every
/// version, so a version-2 node and a version-3 node each report
/// [`HandshakeError::Version`] naming both.
///
/// 4: a link's `Hello` names the sharded entity types its sender is a proxy of (it sends to
/// their entities and hosts none), and a proxy started later is announced; a version-3
/// node could not read them.
///
/// 5: frame bodies are amber's own binary layout (a type byte, then fixed fields; see
/// [`FrameCodec`](crate::FrameCodec)) instead of the Rust enum as MessagePack; handshake
/// frames have type bytes of their own. The preamble is unchanged, so a version-4 node and
/// a version-5 node report [`HandshakeError::Version`] before any frame.
///
/// 6: a node's part of a cross-node snapshot carries each actor's backlog packed (the
/// messages' fields as varints, the payloads as one byte string) instead of one MessagePack
/// tuple per message; a version-5 node could not read it.
pub const PROTOCOL_VERSION: u16 = 6;

/// The first bytes on every connection, before the version.
pub(crate) const MAGIC: [u8; 4] = *b"AMBR";

/// Magic and version.
pub(crate) const PREAMBLE_LEN: usize = 6;

/// The largest frame accepted before the peer is authenticated.
pub(crate) const HANDSHAKE_MAX_FRAME: usize = 1024;
