//! The length-prefixed MessagePack codec.

use bytes::{Buf, BufMut, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, FrameError, fast};

/// Bytes in a frame's length prefix.
pub const HEADER_LEN: usize = 4;

/// The default largest frame body: 8 MiB.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// How deeply a frame body may nest MessagePack arrays and maps. Frames need 4 levels; the
/// limit keeps a crafted body (say 100 000 nested arrays in an unknown field) from
/// overflowing the stack.
const MAX_NESTING: usize = 16;

/// Bodies up to this size grow the read buffer the usual (doubling) way; larger ones get a
/// buffer of exactly the size they announce, so one frame never costs more than the limit.
const EXACT_GROWTH_FROM: usize = 64 * 1024;

/// Encodes and decodes [`Frame`]s as `u32` big-endian length + MessagePack body, refusing
/// bodies larger than a maximum.
///
/// After the handshake preamble (see [the handshake](crate#handshake)), a link carries
/// frames back to back:
///
/// ```text
/// +----------------+--------------------------------+
/// | length: u32 BE | body: one Frame in MessagePack |
/// +----------------+--------------------------------+
/// ```
///
/// `length` counts the body only and is 1 to the receiver's maximum
/// ([`TransportConfig::max_frame`](crate::TransportConfig::max_frame), 8 MiB by default; 1 KiB
/// during the handshake). The body is [`Frame`] as `rmp-serde` writes it by default: an enum
/// variant is a one-entry map from the variant's name to its fields (a unit variant is just
/// its name), struct fields are a positional array, and byte fields (`payload`, `Control`,
/// `Reply` results, nonces, MACs) are MessagePack `bin`. A body holds exactly one value;
/// trailing bytes are an error. `Frame::Heartbeat`, for instance, is
/// `00 00 00 0a a9 "Heartbeat"`.
///
/// It implements tokio-util's [`Decoder`] and [`Encoder`], so it can drive a
/// [`Framed`](tokio_util::codec::Framed) stream. The decoder never panics on any input, checks
/// a length prefix before reserving room for the body, and never allocates more than about
/// the maximum frame size for one frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec for bodies of at most `max_frame` bytes (clamped to `u32::MAX`).
    pub fn new(max_frame: usize) -> FrameCodec {
        FrameCodec { max_frame: max_frame.min(u32::MAX as usize) }
    }

    /// The largest body this codec accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends `frame`, length prefix included, to `dst`. On error `dst` is left as it was.
    pub fn encode_frame(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let start = dst.len();
        dst.put_u32(0);
        if !fast::encode(frame, dst)
            && let Err(error) = rmp_serde::encode::write(&mut dst.writer(), frame)
        {
            dst.truncate(start);
            return Err(FrameError::Encode(error.to_string()));
        }
        let len = dst.len() - start - HEADER_LEN;
        if len > self.max_frame {
            dst.truncate(start);
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        let prefix = (len as u32).to_be_bytes();
        dst[start..start + HEADER_LEN].copy_from_slice(&prefix);
        Ok(())
    }

    /// Decodes one body: exactly one [`Frame`], nothing after it.
    fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
        if let Some(frame) = fast::decode(body) {
            return Ok(frame);
        }
        let mut de = rmp_serde::Deserializer::from_read_ref(body);
        de.set_max_depth(MAX_NESTING);
        let frame =
            Frame::deserialize(&mut de).map_err(|e| FrameError::Malformed(e.to_string()))?;
        // Anything after the frame, even a single byte, is an error. `IgnoredAny` reports an
        // end-of-input read when the body is used up.
        match IgnoredAny::deserialize(&mut de) {
            Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                Ok(frame)
            }
            _ => Err(FrameError::Malformed("bytes after the frame".to_owned())),
        }
    }
}

impl Default for FrameCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME`] limit.
    fn default() -> FrameCodec {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(prefix) = src.get(..HEADER_LEN) else {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        if len == 0 {
            return Err(FrameError::Malformed("empty frame".to_owned()));
        }
        let total = HEADER_LEN + len;
        if src.len() < total {
            reserve_for_frame(src, total);
            return Ok(None);
        }
        let frame = Self::decode_body(&src[HEADER_LEN..total]);
        src.advance(total);
        frame.map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated { have: src.len(), need: frame_len(src) }),
        }
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_frame(frame, dst)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_frame(&frame, dst)
    }
}

/// Bytes the frame at the start of `src` needs in all, as far as its prefix tells.
pub(super) fn frame_len(src: &[u8]) -> usize {
    match src.get(..HEADER_LEN) {
        Some(p) => HEADER_LEN + u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize,
        None => HEADER_LEN,
    }
}

/// Makes room for a whole frame of `total` bytes. Small frames grow the buffer as usual; a
/// large one gets exactly its size, since doubling could allocate twice the limit.
fn reserve_for_frame(src: &mut BytesMut, total: usize) {
    if src.capacity() >= total {
        return;
    }
    if total <= EXACT_GROWTH_FROM {
        src.reserve(total - src.len());
    } else {
        let mut grown = BytesMut::with_capacity(total);
        grown.extend_from_slice(src);
        *src = grown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode_frame(frame, &mut buf).unwrap();
        buf
    }

    #[test]
    fn round_trips_a_heartbeat() {
        let mut buf = encode(&Frame::Heartbeat);
        assert_eq!(&buf[..HEADER_LEN], &[0, 0, 0, 10]);
        assert_eq!(&buf[HEADER_LEN..], b"\xa9Heartbeat");
        assert_eq!(FrameCodec::default().decode(&mut buf).unwrap(), Some(Frame::Heartbeat));
        assert!(buf.is_empty());
    }

    #[test]
    fn waits_for_the_rest_of_a_frame() {
        let full = encode(&Frame::Control(vec![1, 2, 3]));
        let mut codec = FrameCodec::default();
        for cut in 0..full.len() {
            let mut partial = BytesMut::from(&full[..cut]);
            assert_eq!(codec.decode(&mut partial).unwrap(), None, "cut at {cut}");
            assert_eq!(partial.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn refuses_an_oversized_prefix_before_reserving() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 0xffff_ffff, max: 1024 }), "{err}");
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn refuses_to_encode_an_oversized_frame() {
        let codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&b"keep"[..]);
        let err = codec.encode_frame(&Frame::Control(vec![0; 200]), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 100, .. }), "{err}");
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn refuses_trailing_bytes() {
        let mut body = encode(&Frame::Heartbeat)[HEADER_LEN..].to_vec();
        body.push(0xc0);
        let mut buf = BytesMut::new();
        buf.put_u32(body.len() as u32);
        buf.extend_from_slice(&body);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[test]
    fn reports_a_truncated_frame_at_eof() {
        let full = encode(&Frame::Control(vec![7; 10]));
        let mut buf = BytesMut::from(&full[..full.len() - 3]);
        let err = FrameCodec::default().decode_eof(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { have, need } if have + 3 == need), "{err}");
        let mut empty = BytesMut::new();
        assert_eq!(FrameCodec::default().decode_eof(&mut empty).unwrap(), None);
    }

    #[test]
    fn bytes_fields_are_msgpack_bin() {
        let buf = encode(&Frame::Control(vec![0xff; 3]));
        // {"Control": bin8(3) ff ff ff}
        assert_eq!(&buf[HEADER_LEN..], b"\x81\xa7Control\xc4\x03\xff\xff\xff");
    }
}
