//! Frame errors.

use std::io;

use super::FrameKind;

/// Why a frame could not be read or written. Any of them ends the link it happened on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces a body larger than the receiver's limit (or a frame to
    /// send encodes larger than it).
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced or encoded body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length prefix announces an empty body: every frame has at least its type byte.
    #[error("empty frame (a length prefix of 0)")]
    Empty,
    /// The body's first byte is no frame type.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// The body ends inside one of its fields.
    #[error("{kind} frame ends inside its {field}")]
    Short {
        /// The frame's kind.
        kind: FrameKind,
        /// The field cut short.
        field: &'static str,
    },
    /// The body goes on after the frame's last field.
    #[error("{extra} bytes after the end of a {kind} frame")]
    Trailing {
        /// The frame's kind.
        kind: FrameKind,
        /// How many bytes are left over.
        extra: usize,
    },
    /// A text field is not UTF-8.
    #[error("{kind} frame's {field} is not UTF-8")]
    NotUtf8 {
        /// The frame's kind.
        kind: FrameKind,
        /// The field.
        field: &'static str,
    },
    /// A field holds a value it may not take (an unknown flag or code, an integer written
    /// in more bytes than it needs or too large, an undecodable reply error).
    #[error("{kind} frame's {field} is invalid: {reason}")]
    Invalid {
        /// The frame's kind.
        kind: FrameKind,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needs, prefix included, as far as it is known.
        need: usize,
    },
    /// A well-formed frame that makes no sense at this point of the protocol: a handshake
    /// frame on an established link, or a link frame during the handshake.
    #[error("unexpected {kind} frame {during}")]
    Unexpected {
        /// The frame received.
        kind: FrameKind,
        /// Where in the protocol, e.g. "on an established link".
        during: &'static str,
    },
    /// The frame could not be encoded (a [`ReplyError`](amber_actors::remote::ReplyError)
    /// that does not serialize).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// Reading or writing the stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}
