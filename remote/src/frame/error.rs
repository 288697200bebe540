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
    /// The body is not one valid MessagePack [`Frame`](super::Frame).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needs, prefix included, as far as it is known.
        need: usize,
    },
    /// A well-formed frame that makes no sense at this point of the protocol, such as a
    /// `Hello` on an established link or a `Message` during the handshake.
    #[error("unexpected {kind} frame {during}")]
    Unexpected {
        /// The frame received.
        kind: FrameKind,
        /// Where in the protocol, e.g. "on an established link".
        during: &'static str,
    },
    /// The frame could not be serialized.
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// Reading or writing the stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}
