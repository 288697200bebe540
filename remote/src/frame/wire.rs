//! The frame bodies' binary layout (documented in [`FrameCodec`](super::FrameCodec)): one
//! type byte, then the frame's fields in a fixed order, written and read by hand over
//! `bytes`, in the manner of quinn-proto's `coding.rs`.
//!
//! Decoding parses the body where it lies in the read buffer, then takes a `Message`'s
//! payload out of the buffer as [`Bytes`] (one reference count, no copy). It never panics,
//! and allocates at most what the body holds (text fields and `Control`/`Reply` bytes are
//! copied once): every length is checked against the bytes left before anything is taken.

use amber_actors::remote::ReplyError;
use amber_snapshot::varint::{self, VarintError};
use amber_snapshot::{ActorId, Epoch, SystemId};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Frame, FrameError, FrameKind, HandshakeFrame, names};
use crate::{NodeId, Refusal};

/// A `Message`'s flag: a `from` actor follows `to`.
const HAS_FROM: u8 = 0x01;
/// A `Message`'s flag: an `ask` id follows `tag`.
const HAS_ASK: u8 = 0x02;

/// A `Reply`'s outcome byte: the answer's bytes follow.
const REPLY_OK: u8 = 0x00;
/// A `Reply`'s outcome byte: a MessagePack `ReplyError` follows.
const REPLY_ERR: u8 = 0x01;

/// How deeply a `Reply`'s MessagePack error may nest (it needs 3 levels): a crafted one
/// cannot overflow the stack.
const MAX_NESTING: usize = 16;

/// What frame types the [`FrameCodec`](super::FrameCodec) reads and writes: [`Frame`] on a
/// link, [`HandshakeFrame`] during the handshake. Sealed: no other type is a frame.
pub trait FrameBody: sealed::Body {}

impl FrameBody for Frame {}
impl FrameBody for HandshakeFrame {}

pub(super) mod sealed {
    use bytes::BytesMut;

    use crate::FrameError;

    /// Encoding and decoding of one frame type's bodies.
    pub trait Body: Sized {
        /// About how many bytes the body takes, to reserve room.
        fn size_hint(&self) -> usize;
        /// Appends the body (type byte and fields) to `dst`; on error, what was appended is
        /// left for the caller to truncate.
        fn encode_body(&self, dst: &mut BytesMut) -> Result<(), FrameError>;
        /// Decodes the body that is the first `len` bytes of `src` (`len` is at most
        /// `src.len()`): exactly one frame, nothing after it. Takes the `len` bytes out of
        /// `src`, whether they decode or not.
        fn decode_body(src: &mut BytesMut, len: usize) -> Result<Self, FrameError>;
    }
}

/// The most bytes a frame's body takes beside its byte strings: type, flags, two actors, up
/// to two more varints, depth, two length varints.
const BODY_OVERHEAD: usize =
    1 + 1 + 2 * (8 + varint::MAX_LEN) + 2 * varint::MAX_LEN + 1 + 2 * varint::MAX_LEN;

/// A `Message` frame's fields, borrowed: it encodes as the [`Frame::Message`] with these
/// fields does ([`FrameCodec::encode_message`](super::FrameCodec::encode_message)), without
/// one being built (a remote tell's payload is not moved into `Bytes` for it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageRef<'a> {
    pub(crate) to: ActorId,
    pub(crate) from: Option<ActorId>,
    pub(crate) tag: Epoch,
    pub(crate) ask: Option<u64>,
    pub(crate) depth: u8,
    pub(crate) type_name: &'a str,
    pub(crate) payload: &'a [u8],
}

impl MessageRef<'_> {
    /// The frame's body, kind byte included.
    pub(crate) fn encode_body(&self, dst: &mut BytesMut) {
        dst.reserve(BODY_OVERHEAD + self.type_name.len() + self.payload.len());
        dst.put_u8(FrameKind::Message.code());
        self.put_fields(dst);
    }

    /// The body after the kind byte.
    fn put_fields(&self, dst: &mut BytesMut) {
        let mut flags = 0;
        if self.from.is_some() {
            flags |= HAS_FROM;
        }
        if self.ask.is_some() {
            flags |= HAS_ASK;
        }
        dst.put_u8(flags);
        put_actor(dst, self.to);
        if let Some(from) = self.from {
            put_actor(dst, from);
        }
        varint::put(dst, self.tag.0);
        if let Some(ask) = self.ask {
            varint::put(dst, ask);
        }
        dst.put_u8(self.depth);
        put_bytes(dst, self.type_name.as_bytes());
        put_bytes(dst, self.payload);
    }
}

impl sealed::Body for Frame {
    fn size_hint(&self) -> usize {
        BODY_OVERHEAD + self.payload_len()
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(self.size_hint());
        dst.put_u8(self.kind().code());
        match self {
            Frame::Message { to, from, tag, ask, depth, type_name, payload } => {
                let message = MessageRef {
                    to: *to,
                    from: *from,
                    tag: *tag,
                    ask: *ask,
                    depth: *depth,
                    type_name,
                    payload,
                };
                message.put_fields(dst);
            }
            Frame::Reply { ask, epoch, result } => {
                varint::put(dst, *ask);
                varint::put(dst, epoch.0);
                match result {
                    Ok(bytes) => {
                        dst.put_u8(REPLY_OK);
                        put_bytes(dst, bytes);
                    }
                    Err(error) => {
                        let encoded = rmp_serde::to_vec(error)
                            .map_err(|e| FrameError::Encode(e.to_string()))?;
                        dst.put_u8(REPLY_ERR);
                        put_bytes(dst, &encoded);
                    }
                }
            }
            Frame::Control(bytes) => put_bytes(dst, bytes),
            Frame::Heartbeat => {}
            Frame::Goodbye { reason } => put_bytes(dst, reason.as_bytes()),
        }
        Ok(())
    }

    fn decode_body(src: &mut BytesMut, len: usize) -> Result<Frame, FrameError> {
        let mut payload_at = 0..0;
        let mut frame = parse_frame(&src[..len], &mut payload_at);
        // The payload is the only field that stays in the buffer: split off, not copied.
        if let Ok(Frame::Message { payload, .. }) = &mut frame
            && !payload_at.is_empty()
        {
            src.advance(payload_at.start);
            *payload = src.split_to(payload_at.len()).freeze();
            src.advance(len - payload_at.end);
        } else {
            src.advance(len);
        }
        frame
    }
}

/// Parses a link frame's body; a `Message`'s payload is left empty, its place in `body`
/// written to `payload_at`.
fn parse_frame(body: &[u8], payload_at: &mut std::ops::Range<usize>) -> Result<Frame, FrameError> {
    let mut r = Reader::start(body)?;
    let kind = r.kind;
    let frame = match kind {
        FrameKind::Message => {
            let flags = r.u8("flags")?;
            if flags & !(HAS_FROM | HAS_ASK) != 0 {
                return Err(r.invalid("flags", "unknown flag bits set"));
            }
            let to = r.actor("to")?;
            let from = if flags & HAS_FROM != 0 { Some(r.actor("from")?) } else { None };
            let tag = Epoch(r.varint("tag")?);
            let ask = if flags & HAS_ASK != 0 { Some(r.varint("ask")?) } else { None };
            let depth = r.u8("depth")?;
            let type_name = names::shared(r.slice("type name")?)
                .ok_or(FrameError::NotUtf8 { kind, field: "type name" })?;
            *payload_at = r.counted("payload")?;
            Frame::Message { to, from, tag, ask, depth, type_name, payload: Bytes::new() }
        }
        FrameKind::Reply => {
            let ask = r.varint("ask")?;
            let epoch = Epoch(r.varint("epoch")?);
            let result = match r.u8("outcome")? {
                REPLY_OK => Ok(r.slice("answer")?.to_vec()),
                REPLY_ERR => Err(reply_error(r.slice("error")?)
                    .ok_or_else(|| r.invalid("error", "not one MessagePack ReplyError"))?),
                _ => return Err(r.invalid("outcome", "neither 0 (answer) nor 1 (error)")),
            };
            Frame::Reply { ask, epoch, result }
        }
        FrameKind::Control => Frame::Control(r.slice("bytes")?.to_vec()),
        FrameKind::Heartbeat => Frame::Heartbeat,
        FrameKind::Goodbye => Frame::Goodbye { reason: r.string("reason")? },
        FrameKind::Hello
        | FrameKind::Proof
        | FrameKind::Welcome
        | FrameKind::Duplicate
        | FrameKind::Refuse => {
            return Err(FrameError::Unexpected { kind, during: "on an established link" });
        }
    };
    r.finish()?;
    Ok(frame)
}

impl sealed::Body for HandshakeFrame {
    fn size_hint(&self) -> usize {
        match self {
            HandshakeFrame::Hello { node, .. } => {
                1 + varint::MAX_LEN + node.as_str().len() + 8 + 2 + 32
            }
            HandshakeFrame::Proof { .. } => 1 + 32,
            HandshakeFrame::Welcome | HandshakeFrame::Duplicate | HandshakeFrame::Refuse(_) => 2,
        }
    }

    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(self.size_hint());
        dst.put_u8(self.kind().code());
        match self {
            HandshakeFrame::Hello { node, incarnation, listen_port, nonce } => {
                put_bytes(dst, node.as_str().as_bytes());
                dst.put_u64(*incarnation);
                dst.put_u16(*listen_port);
                dst.put_slice(nonce);
            }
            HandshakeFrame::Proof { mac } => dst.put_slice(mac),
            HandshakeFrame::Welcome | HandshakeFrame::Duplicate => {}
            HandshakeFrame::Refuse(reason) => dst.put_u8(match reason {
                Refusal::Auth => 0x00,
                Refusal::TooManyPending => 0x01,
            }),
        }
        Ok(())
    }

    fn decode_body(src: &mut BytesMut, len: usize) -> Result<HandshakeFrame, FrameError> {
        let frame = parse_handshake(&src[..len]);
        src.advance(len);
        frame
    }
}

/// Parses a handshake frame's body.
fn parse_handshake(body: &[u8]) -> Result<HandshakeFrame, FrameError> {
    let mut r = Reader::start(body)?;
    let kind = r.kind;
    let frame = match kind {
        FrameKind::Hello => {
            let node = NodeId::new(r.string("node id")?);
            let incarnation = u64::from_be_bytes(r.array("incarnation")?);
            let listen_port = u16::from_be_bytes(r.array("listen port")?);
            let nonce = r.array("nonce")?;
            HandshakeFrame::Hello { node, incarnation, listen_port, nonce }
        }
        FrameKind::Proof => HandshakeFrame::Proof { mac: r.array("mac")? },
        FrameKind::Welcome => HandshakeFrame::Welcome,
        FrameKind::Duplicate => HandshakeFrame::Duplicate,
        FrameKind::Refuse => HandshakeFrame::Refuse(match r.u8("reason")? {
            0x00 => Refusal::Auth,
            0x01 => Refusal::TooManyPending,
            _ => return Err(r.invalid("reason", "unknown refusal code")),
        }),
        FrameKind::Message
        | FrameKind::Reply
        | FrameKind::Control
        | FrameKind::Heartbeat
        | FrameKind::Goodbye => {
            return Err(FrameError::Unexpected { kind, during: "during the handshake" });
        }
    };
    r.finish()?;
    Ok(frame)
}

/// An actor id: its system's id as a `u64` big-endian (system ids are random: a varint
/// would take 9 or 10 bytes), then its sequence number as a varint.
fn put_actor(dst: &mut BytesMut, id: ActorId) {
    dst.put_u64(id.system().0);
    varint::put(dst, id.seq());
}

/// A byte string: its length as a varint, then the bytes.
fn put_bytes(dst: &mut BytesMut, bytes: &[u8]) {
    varint::put(dst, bytes.len() as u64);
    dst.put_slice(bytes);
}

/// One MessagePack `ReplyError`, the whole of `bytes`; `None` if they are anything else.
fn reply_error(bytes: &[u8]) -> Option<ReplyError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_NESTING);
    let error = ReplyError::deserialize(&mut de).ok()?;
    // Anything after it is an error: `IgnoredAny` reports an end-of-input read when the
    // bytes are used up.
    match IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Some(error)
        }
        _ => None,
    }
}

/// Reads one body's fields in order; every read checks the bytes left first.
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
    kind: FrameKind,
}

impl<'a> Reader<'a> {
    /// Reads the type byte.
    fn start(body: &'a [u8]) -> Result<Reader<'a>, FrameError> {
        let code = *body.first().ok_or(FrameError::Empty)?;
        let kind = FrameKind::from_code(code).ok_or(FrameError::UnknownType(code))?;
        Ok(Reader { body, pos: 1, kind })
    }

    fn short(&self, field: &'static str) -> FrameError {
        FrameError::Short { kind: self.kind, field }
    }

    fn invalid(&self, field: &'static str, reason: &'static str) -> FrameError {
        FrameError::Invalid { kind: self.kind, field, reason }
    }

    /// The next `n` bytes' range in the body.
    #[inline(always)]
    fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<std::ops::Range<usize>, FrameError> {
        let start = self.pos;
        let end = start.checked_add(n).filter(|&end| end <= self.body.len());
        let end = end.ok_or_else(|| self.short(field))?;
        self.pos = end;
        Ok(start..end)
    }

    #[inline(always)]
    fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        let byte = *self.body.get(self.pos).ok_or_else(|| self.short(field))?;
        self.pos += 1;
        Ok(byte)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FrameError> {
        let range = self.take(N, field)?;
        let mut array = [0; N];
        array.copy_from_slice(&self.body[range]);
        Ok(array)
    }

    /// A varint in its shortest form (no trailing zero byte) that fits 64 bits.
    #[inline(always)]
    fn varint(&mut self, field: &'static str) -> Result<u64, FrameError> {
        varint::take(self.body, &mut self.pos).map_err(|error| match error {
            VarintError::Truncated => self.short(field),
            error => self.invalid(field, error.reason()),
        })
    }

    #[inline(always)]
    fn actor(&mut self, field: &'static str) -> Result<ActorId, FrameError> {
        let system = SystemId(u64::from_be_bytes(self.array(field)?));
        Ok(ActorId::new(system, self.varint(field)?))
    }

    /// A byte string's range: its varint length, then that many bytes.
    #[inline(always)]
    fn counted(&mut self, field: &'static str) -> Result<std::ops::Range<usize>, FrameError> {
        let len = self.varint(field)?;
        let len = usize::try_from(len).map_err(|_| self.short(field))?;
        self.take(len, field)
    }

    /// A byte string, borrowed.
    #[inline(always)]
    fn slice(&mut self, field: &'static str) -> Result<&'a [u8], FrameError> {
        let range = self.counted(field)?;
        Ok(&self.body[range])
    }

    /// A byte string that must be UTF-8, copied.
    fn string(&mut self, field: &'static str) -> Result<String, FrameError> {
        let kind = self.kind;
        let bytes = self.slice(field)?;
        let text = std::str::from_utf8(bytes).map_err(|_| FrameError::NotUtf8 { kind, field })?;
        Ok(text.to_owned())
    }

    /// Checks that the body has been read to its end.
    fn finish(self) -> Result<(), FrameError> {
        match self.body.len() - self.pos {
            0 => Ok(()),
            extra => Err(FrameError::Trailing { kind: self.kind, extra }),
        }
    }
}
