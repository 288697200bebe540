//! What travels on a link: [`Frame`]s, their wire encoding ([`FrameCodec`]) and its errors.

mod codec;
mod error;
mod fast;
mod names;
mod reader;

pub use codec::{DEFAULT_MAX_FRAME, FrameCodec, HEADER_LEN};
pub use error::FrameError;
pub(crate) use reader::FrameReader;

use std::fmt;

use amber_actors::remote::ReplyError;
use amber_snapshot::{ActorId, Epoch};
use serde::{Deserialize, Serialize};

use crate::{NodeId, Refusal};

/// One unit of the link protocol.
///
/// The handshake frames (`Hello`, `Proof`, `Welcome`, `Duplicate`, `Refuse`) and the link's own
/// `Heartbeat` and `Goodbye` are written by the transport itself; the application sends the
/// data frames `Message`, `Reply` and `Control`, whose payloads are opaque bytes (MessagePack
/// by convention) that the transport never looks into.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Handshake, both sides: who I am and my challenge to you.
    Hello {
        /// The sender's node id.
        node: NodeId,
        /// A random number drawn when the sender's transport started; a new value for a known
        /// node id means that node restarted.
        incarnation: u64,
        /// The port the sender accepts connections on.
        listen_port: u16,
        /// A fresh random challenge.
        #[serde(with = "serde_bytes")]
        nonce: [u8; 32],
    },
    /// Handshake, both sides: the sender's answer to the challenges (an HMAC-SHA256).
    Proof {
        /// The MAC (see [the handshake](crate#handshake) for what it covers).
        #[serde(with = "serde_bytes")]
        mac: [u8; 32],
    },
    /// Handshake, accepting side: the link is established.
    Welcome,
    /// Handshake: the nodes already have (or are establishing) another link; this connection
    /// is dropped and the other one kept. Sent by the accepting side as its verdict, or by the
    /// dialling side instead of its proof when it finds itself already linked.
    Duplicate,
    /// Handshake, accepting side: the connection is refused, for a typed reason; the
    /// acceptor closes it next.
    Refuse(Refusal),
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
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// The answer to a [`Frame::Message`] that was an ask.
    Reply {
        /// The request id of the ask.
        ask: u64,
        /// The responder's epoch when it answered.
        epoch: Epoch,
        /// The encoded answer, or why there is none.
        #[serde(with = "result_bytes")]
        result: Result<Vec<u8>, ReplyError>,
    },
    /// Opaque bytes for the runtime's own protocols (snapshots, lookups, spawns, ...).
    Control(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Keeps an idle link alive; sent by the transport when it has written nothing for a
    /// heartbeat interval.
    Heartbeat,
    /// The sender is closing the link on purpose.
    Goodbye {
        /// Why, for the logs.
        reason: String,
    },
}

impl Frame {
    /// Which kind of frame this is.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello { .. } => FrameKind::Hello,
            Frame::Proof { .. } => FrameKind::Proof,
            Frame::Welcome => FrameKind::Welcome,
            Frame::Duplicate => FrameKind::Duplicate,
            Frame::Refuse(_) => FrameKind::Refuse,
            Frame::Message { .. } => FrameKind::Message,
            Frame::Reply { .. } => FrameKind::Reply,
            Frame::Control(_) => FrameKind::Control,
            Frame::Heartbeat => FrameKind::Heartbeat,
            Frame::Goodbye { .. } => FrameKind::Goodbye,
        }
    }
}

impl Frame {
    /// Bytes of payload it carries, to size encoding buffers.
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Frame::Message { payload, type_name, .. } => payload.len() + type_name.len(),
            Frame::Reply { result: Ok(bytes), .. } | Frame::Control(bytes) => bytes.len(),
            Frame::Reply { result: Err(_), .. } => 64,
            Frame::Goodbye { reason: text } => text.len(),
            _ => 0,
        }
    }
}

impl fmt::Debug for Frame {
    /// Payloads are shown by length, not content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Hello { node, incarnation, listen_port, .. } => f
                .debug_struct("Hello")
                .field("node", node)
                .field("incarnation", &format_args!("{incarnation:016x}"))
                .field("listen_port", listen_port)
                .finish_non_exhaustive(),
            Frame::Proof { .. } => f.write_str("Proof"),
            Frame::Welcome => f.write_str("Welcome"),
            Frame::Duplicate => f.write_str("Duplicate"),
            Frame::Refuse(reason) => f.debug_tuple("Refuse").field(reason).finish(),
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

/// The kind of a [`Frame`], without its contents; used in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// [`Frame::Hello`].
    Hello,
    /// [`Frame::Proof`].
    Proof,
    /// [`Frame::Welcome`].
    Welcome,
    /// [`Frame::Duplicate`].
    Duplicate,
    /// [`Frame::Refuse`].
    Refuse,
    /// [`Frame::Message`].
    Message,
    /// [`Frame::Reply`].
    Reply,
    /// [`Frame::Control`].
    Control,
    /// [`Frame::Heartbeat`].
    Heartbeat,
    /// [`Frame::Goodbye`].
    Goodbye,
}

impl FrameKind {
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

/// `Result<Vec<u8>, ReplyError>` with the `Ok` bytes as MessagePack `bin`.
mod result_bytes {
    use amber_actors::remote::ReplyError;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    #[derive(Serialize)]
    enum Borrowed<'a> {
        Ok(&'a Bytes),
        Err(&'a ReplyError),
    }

    #[derive(Deserialize)]
    enum Owned {
        Ok(ByteBuf),
        Err(ReplyError),
    }

    pub(super) fn serialize<S: Serializer>(
        result: &Result<Vec<u8>, ReplyError>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match result {
            Ok(bytes) => Borrowed::Ok(Bytes::new(bytes)),
            Err(error) => Borrowed::Err(error),
        }
        .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<Vec<u8>, ReplyError>, D::Error> {
        Ok(match Owned::deserialize(deserializer)? {
            Owned::Ok(bytes) => Ok(bytes.into_vec()),
            Owned::Err(error) => Err(error),
        })
    }
}
