//! What travels on a connection: the link's [`Frame`]s, the handshake's [`HandshakeFrame`]s,
//! their wire encoding ([`FrameCodec`], which documents the layout byte for byte) and its
//! errors.

mod codec;
mod error;
mod names;
mod reader;
mod wire;

pub use codec::{DEFAULT_MAX_FRAME, FrameCodec, HEADER_LEN};
pub use error::FrameError;
pub(crate) use reader::FrameReader;
pub use wire::FrameBody;
pub(crate) use wire::MessageRef;

use std::fmt;

use amber_actors::remote::ReplyError;
use amber_snapshot::{ActorId, Epoch};
use bytes::Bytes;

use crate::{NodeId, Refusal};

/// One unit of the link protocol, once the handshake is over.
///
/// The application sends the data frames `Message`, `Reply` and `Control`, whose payloads
/// are opaque bytes (MessagePack by convention) that the transport never looks into; the
/// link's own `Heartbeat` and `Goodbye` are written by the transport itself. The handshake's
/// frames are another type, [`HandshakeFrame`]: a link never reads one, and the application
/// cannot send one.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message for an actor on the receiving node.
    Message {
        /// The receiving actor.
        to: ActorId,
        /// The sending actor, if the message was sent from inside an actor.
        from: Option<ActorId>,
        /// The sender's snapshot epoch at send time.
        tag: Epoch,
        /// The request id if this is an ask, to be echoed in the [`Frame::Reply`].
        ask: Option<u64>,
        /// For an ask from an actor, the asker's ask depth (the snapshot protocol's ask rule:
        /// the responder becomes deeper than its askers); 0 otherwise.
        depth: u8,
        /// The message type's registered name (borrowed when sent: no copy per message).
        type_name: std::borrow::Cow<'static, str>,
        /// The encoded message; a decoded frame's payload is a slice of the read buffer,
        /// not a copy.
        payload: Bytes,
    },
    /// The answer to a [`Frame::Message`] that was an ask.
    Reply {
        /// The request id of the ask.
        ask: u64,
        /// The responder's epoch when it answered.
        epoch: Epoch,
        /// The encoded answer, or why there is none.
        result: Result<Vec<u8>, ReplyError>,
    },
    /// Opaque bytes for the runtime's own protocols (snapshots, lookups, spawns, ...).
    Control(Vec<u8>),
    /// Keeps an idle link alive; sent by the transport when it has written nothing for a
    /// heartbeat interval.
    Heartbeat,
    /// The sender is closing the link on purpose.
    Goodbye {
        /// Why, for the logs.
        reason: String,
    },
}

/// One unit of the handshake (see [the handshake](crate#handshake)), written and read by
/// the transport only, before a connection becomes a link.
#[derive(Clone, PartialEq, Eq)]
pub enum HandshakeFrame {
    /// Both sides: who I am and my challenge to you.
    Hello {
        /// The sender's node id.
        node: NodeId,
        /// A random number drawn when the sender's transport started; a new value for a known
        /// node id means that node restarted.
        incarnation: u64,
        /// The port the sender accepts connections on.
        listen_port: u16,
        /// A fresh random challenge.
        nonce: [u8; 32],
    },
    /// Both sides: the sender's answer to the challenges (an HMAC-SHA256).
    Proof {
        /// The MAC (see [the handshake](crate#handshake) for what it covers).
        mac: [u8; 32],
    },
    /// Accepting side: the link is established.
    Welcome,
    /// The nodes already have (or are establishing) another link; this connection is
    /// dropped and the other one kept. Sent by the accepting side as its verdict, or by the
    /// dialling side instead of its proof when it finds itself already linked.
    Duplicate,
    /// Accepting side: the connection is refused, for a typed reason; the acceptor closes it
    /// next.
    Refuse(Refusal),
}

impl Frame {
    /// Which kind of frame this is.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Message { .. } => FrameKind::Message,
            Frame::Reply { .. } => FrameKind::Reply,
            Frame::Control(_) => FrameKind::Control,
            Frame::Heartbeat => FrameKind::Heartbeat,
            Frame::Goodbye { .. } => FrameKind::Goodbye,
        }
    }

    /// Bytes of payload it carries, to size encoding buffers.
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Frame::Message { payload, type_name, .. } => payload.len() + type_name.len(),
            Frame::Reply { result: Ok(bytes), .. } | Frame::Control(bytes) => bytes.len(),
            Frame::Reply { result: Err(_), .. } => 64,
            Frame::Goodbye { reason: text } => text.len(),
            Frame::Heartbeat => 0,
        }
    }
}

impl HandshakeFrame {
    /// Which kind of frame this is.
    pub fn kind(&self) -> FrameKind {
        match self {
            HandshakeFrame::Hello { .. } => FrameKind::Hello,
            HandshakeFrame::Proof { .. } => FrameKind::Proof,
            HandshakeFrame::Welcome => FrameKind::Welcome,
            HandshakeFrame::Duplicate => FrameKind::Duplicate,
            HandshakeFrame::Refuse(_) => FrameKind::Refuse,
        }
    }
}

impl fmt::Debug for Frame {
    /// Payloads are shown by length, not content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Message { to, from, tag, ask, depth, type_name, payload } => f
                .debug_struct("Message")
                .field("to", to)
                .field("from", from)
                .field("tag", tag)
                .field("ask", ask)
                .field("depth", depth)
                .field("type_name", type_name)
                .field("payload", &format_args!("{} bytes", payload.len()))
                .finish(),
            Frame::Reply { ask, epoch, result } => f
                .debug_struct("Reply")
                .field("ask", ask)
                .field("epoch", epoch)
                .field(
                    "result",
                    &match result {
                        Ok(bytes) => format!("Ok({} bytes)", bytes.len()),
                        Err(error) => format!("Err({error:?})"),
                    },
                )
                .finish(),
            Frame::Control(bytes) => write!(f, "Control({} bytes)", bytes.len()),
            Frame::Heartbeat => f.write_str("Heartbeat"),
            Frame::Goodbye { reason } => f.debug_struct("Goodbye").field("reason", reason).finish(),
        }
    }
}

impl fmt::Debug for HandshakeFrame {
    /// Nonces and MACs are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFrame::Hello { node, incarnation, listen_port, .. } => f
                .debug_struct("Hello")
                .field("node", node)
                .field("incarnation", &format_args!("{incarnation:016x}"))
                .field("listen_port", listen_port)
                .finish_non_exhaustive(),
            HandshakeFrame::Proof { .. } => f.write_str("Proof"),
            HandshakeFrame::Welcome => f.write_str("Welcome"),
            HandshakeFrame::Duplicate => f.write_str("Duplicate"),
            HandshakeFrame::Refuse(reason) => f.debug_tuple("Refuse").field(reason).finish(),
        }
    }
}

/// The kind of a [`Frame`] or [`HandshakeFrame`], without its contents: the frame's type
/// byte on the wire (its first body byte, see [`FrameCodec`]), and used in errors.
///
/// Handshake kinds are `0x01..=0x05`, link kinds `0x10..=0x14`; other bytes are no frame
/// ([`FrameError::UnknownType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// [`HandshakeFrame::Hello`].
    Hello = 0x01,
    /// [`HandshakeFrame::Proof`].
    Proof = 0x02,
    /// [`HandshakeFrame::Welcome`].
    Welcome = 0x03,
    /// [`HandshakeFrame::Duplicate`].
    Duplicate = 0x04,
    /// [`HandshakeFrame::Refuse`].
    Refuse = 0x05,
    /// [`Frame::Message`].
    Message = 0x10,
    /// [`Frame::Reply`].
    Reply = 0x11,
    /// [`Frame::Control`].
    Control = 0x12,
    /// [`Frame::Heartbeat`].
    Heartbeat = 0x13,
    /// [`Frame::Goodbye`].
    Goodbye = 0x14,
}

impl FrameKind {
    /// Every kind, in type-byte order.
    pub const ALL: [FrameKind; 10] = [
        FrameKind::Hello,
        FrameKind::Proof,
        FrameKind::Welcome,
        FrameKind::Duplicate,
        FrameKind::Refuse,
        FrameKind::Message,
        FrameKind::Reply,
        FrameKind::Control,
        FrameKind::Heartbeat,
        FrameKind::Goodbye,
    ];

    /// The kind's type byte.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind a type byte stands for, if any.
    pub fn from_code(code: u8) -> Option<FrameKind> {
        Some(match code {
            0x01 => FrameKind::Hello,
            0x02 => FrameKind::Proof,
            0x03 => FrameKind::Welcome,
            0x04 => FrameKind::Duplicate,
            0x05 => FrameKind::Refuse,
            0x10 => FrameKind::Message,
            0x11 => FrameKind::Reply,
            0x12 => FrameKind::Control,
            0x13 => FrameKind::Heartbeat,
            0x14 => FrameKind::Goodbye,
            _ => return None,
        })
    }

    /// Whether this is a [`HandshakeFrame`]'s kind (otherwise a [`Frame`]'s).
    pub fn is_handshake(self) -> bool {
        (self as u8) < 0x10
    }

    /// Whether the application may send this kind through
    /// [`Transport::send`](crate::Transport::send): only the data frames `Message`, `Reply`
    /// and `Control`.
    pub fn is_data(self) -> bool {
        matches!(self, FrameKind::Message | FrameKind::Reply | FrameKind::Control)
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
