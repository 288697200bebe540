//! The length-prefixed frame codec.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, FrameBody, FrameError, MessageRef};

/// Bytes in a frame's length prefix.
pub const HEADER_LEN: usize = 4;

/// The default largest frame body: 8 MiB.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// Bodies up to this size grow the read buffer the usual (doubling) way; larger ones get a
/// buffer of exactly the size they announce, so one frame never costs more than the limit.
const EXACT_GROWTH_FROM: usize = 64 * 1024;

/// Encodes and decodes frames as `u32` big-endian length + body, refusing bodies larger than
/// a maximum.
///
/// After the handshake preamble (see [the handshake](crate#handshake)), a connection carries
/// frames back to back:
///
/// ```text
/// +----------------+-----------------+---------------------------------+
/// | length: u32 BE | type: u8        | fields, as the type says        |
/// +----------------+-----------------+---------------------------------+
///                  |<------------------ body: `length` bytes ---------->|
/// ```
///
/// `length` counts the body only and is 1 to the receiver's maximum
/// ([`TransportConfig::max_frame`](crate::TransportConfig::max_frame), 8 MiB by default; 1 KiB
/// during the handshake). The body is one type byte ([`FrameKind::code`](super::FrameKind::code))
/// and the frame's fields, in this order, with nothing after them:
///
/// | type | frame | fields |
/// |------|-------|--------|
/// | `0x01` | [`HandshakeFrame::Hello`](super::HandshakeFrame::Hello) | node id: *text*; incarnation: `u64` BE; listen port: `u16` BE; nonce: 32 bytes |
/// | `0x02` | [`HandshakeFrame::Proof`](super::HandshakeFrame::Proof) | mac: 32 bytes |
/// | `0x03` | [`HandshakeFrame::Welcome`](super::HandshakeFrame::Welcome) | — |
/// | `0x04` | [`HandshakeFrame::Duplicate`](super::HandshakeFrame::Duplicate) | — |
/// | `0x05` | [`HandshakeFrame::Refuse`](super::HandshakeFrame::Refuse) | reason: `u8` (`0x00` [`Auth`](crate::Refusal::Auth), `0x01` [`TooManyPending`](crate::Refusal::TooManyPending)) |
/// | `0x10` | [`Frame::Message`] | flags: `u8` (`0x01` from present, `0x02` ask present; other bits 0); to: *actor*; from: *actor* if flagged; tag: *varint*; ask: *varint* if flagged; depth: `u8`; type name: *text*; payload: *bytes* |
/// | `0x11` | [`Frame::Reply`] | ask: *varint*; epoch: *varint*; outcome: `u8`; then for `0x00` the answer: *bytes*, for `0x01` the error: *bytes* holding one [`ReplyError`](amber_actors::remote::ReplyError) in MessagePack (as `rmp-serde` writes it) |
/// | `0x12` | [`Frame::Control`] | *bytes* |
/// | `0x13` | [`Frame::Heartbeat`] | — |
/// | `0x14` | [`Frame::Goodbye`] | reason: *text* |
///
/// - *varint*: an unsigned LEB128 integer of 1 to 10 bytes (7 bits a byte, least
///   significant first, high bit set on all bytes but the last), in its shortest form and
///   at most `u64::MAX`.
/// - *actor*: an [`ActorId`](amber_snapshot::ActorId): its system's id as a `u64`
///   big-endian (system ids are random, so a varint would be longer), then its sequence
///   number as a varint.
/// - *bytes*: a varint length, then that many bytes. *text*: *bytes* that are UTF-8.
///
/// Payloads, `Control` bytes and reply answers are opaque to the codec (MessagePack by
/// convention). `Frame::Heartbeat`, for instance, is `00 00 00 01 13`, and
/// `Frame::Control(vec![0xff; 3])` is `00 00 00 05 12 03 ff ff ff`.
///
/// Handshake frames ([`HandshakeFrame`](super::HandshakeFrame), types `0x0_`) and link frames
/// ([`Frame`], types `0x1_`) are different types: decoding one where the other is expected
/// is [`FrameError::Unexpected`]. Any other type byte is [`FrameError::UnknownType`]; a body
/// that ends inside a field, goes on after the last one, or holds a value a field may not
/// take is [`FrameError::Short`], [`FrameError::Trailing`], [`FrameError::NotUtf8`] or
/// [`FrameError::Invalid`].
///
/// It implements tokio-util's [`Decoder`] and [`Encoder`] for [`Frame`], so it can drive a
/// [`Framed`](tokio_util::codec::Framed) stream; [`decode_as`](FrameCodec::decode_as) reads
/// handshake frames. The decoder never panics on any input, checks a length prefix before
/// reserving room for the body, and never allocates more than about the maximum frame size
/// for one frame; a decoded `Message`'s payload shares the read buffer.
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

    /// Appends `frame` (a [`Frame`] or a [`HandshakeFrame`](super::HandshakeFrame)), length
    /// prefix included, to `dst`. On error `dst` is left as it was.
    pub fn encode_frame<F: FrameBody>(
        &self,
        frame: &F,
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        let start = dst.len();
        dst.put_u32(0);
        if let Err(error) = frame.encode_body(dst) {
            dst.truncate(start);
            return Err(error);
        }
        self.finish(dst, start)
    }

    /// Encodes the `Message` frame with `message`'s fields at the end of `dst`: the bytes
    /// [`encode_frame`](Self::encode_frame) writes for that `Frame::Message`.
    pub(crate) fn encode_message(
        &self,
        message: &MessageRef<'_>,
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        let start = dst.len();
        dst.put_u32(0);
        message.encode_body(dst);
        self.finish(dst, start)
    }

    /// Writes the length prefix of the frame encoded from `start` on, or takes the frame
    /// out again if it is too large.
    fn finish(&self, dst: &mut BytesMut, start: usize) -> Result<(), FrameError> {
        let len = dst.len() - start - HEADER_LEN;
        if len > self.max_frame {
            dst.truncate(start);
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        let prefix = (len as u32).to_be_bytes();
        dst[start..start + HEADER_LEN].copy_from_slice(&prefix);
        Ok(())
    }

    /// Decodes the frame at the start of `src` as an `F` and takes it out of `src`; `None`
    /// (with room reserved for the rest) if it has not all arrived yet. A frame that does
    /// not decode is taken out too.
    pub fn decode_as<F: FrameBody>(&self, src: &mut BytesMut) -> Result<Option<F>, FrameError> {
        let Some(prefix) = src.get(..HEADER_LEN) else {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        let total = HEADER_LEN + len;
        if src.len() < total {
            reserve_for_frame(src, total);
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        F::decode_body(src, len).map(Some)
    }

    /// [`decode_as`](FrameCodec::decode_as) at the end of the stream: bytes left that are
    /// not a whole frame are [`FrameError::Truncated`].
    pub fn decode_eof_as<F: FrameBody>(&self, src: &mut BytesMut) -> Result<Option<F>, FrameError> {
        match self.decode_as(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated { have: src.len(), need: frame_len(src) }),
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
        self.decode_as(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        self.decode_eof_as(src)
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
    use crate::FrameKind;

    fn encode(frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode_frame(frame, &mut buf).unwrap();
        buf
    }

    #[test]
    fn a_borrowed_message_encodes_as_the_frame_does() {
        use amber_snapshot::{ActorId, Epoch, SystemId};
        let to = ActorId::new(SystemId(7), 3);
        let from = Some(ActorId::new(SystemId(9), 11));
        for (from, ask) in [(None, None), (from, Some(300)), (from, None), (None, Some(1))] {
            let frame = Frame::Message {
                to,
                from,
                tag: Epoch(5),
                ask,
                depth: 2,
                type_name: "a.Type".into(),
                payload: bytes::Bytes::from_static(b"payload"),
            };
            let message = MessageRef {
                to,
                from,
                tag: Epoch(5),
                ask,
                depth: 2,
                type_name: "a.Type",
                payload: b"payload",
            };
            let mut borrowed = BytesMut::new();
            FrameCodec::default().encode_message(&message, &mut borrowed).unwrap();
            assert_eq!(borrowed, encode(&frame));
        }
        let mut buf = BytesMut::from(&b"kept"[..]);
        let big = vec![0; 64];
        let message = MessageRef {
            payload: &big,
            ..MessageRef {
                to,
                from: None,
                tag: Epoch(0),
                ask: None,
                depth: 0,
                type_name: "t",
                payload: b"",
            }
        };
        assert!(FrameCodec::new(16).encode_message(&message, &mut buf).is_err());
        assert_eq!(&buf[..], b"kept", "a frame too large is taken out again");
    }

    #[test]
    fn round_trips_a_heartbeat() {
        let mut buf = encode(&Frame::Heartbeat);
        assert_eq!(&buf[..], &[0, 0, 0, 1, 0x13]);
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
        body.push(0x00);
        let mut buf = BytesMut::new();
        buf.put_u32(body.len() as u32);
        buf.extend_from_slice(&body);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::Trailing { kind: FrameKind::Heartbeat, extra: 1 }),
            "{err}"
        );
        assert!(buf.is_empty(), "the bad frame is taken out");
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
    fn bytes_fields_are_counted() {
        let buf = encode(&Frame::Control(vec![0xff; 3]));
        assert_eq!(&buf[..], b"\x00\x00\x00\x05\x12\x03\xff\xff\xff");
    }

    #[test]
    fn refuses_an_empty_body() {
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Empty), "{err}");
    }
}
