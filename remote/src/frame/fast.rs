//! A hand-written MessagePack path for [`Frame::Message`], the frame every remote `tell` and
//! `ask` travels in: the same bytes `rmp-serde` writes (see [`FrameCodec`](super::FrameCodec)
//! for the layout), without serde's machinery per field.
//!
//! Encoding writes exactly what `rmp-serde` would. Decoding reads only that canonical form
//! (`{"Message": [to, from, tag, ask, depth, type_name, payload]}` with unsigned integers, `str` and
//! `bin`); anything else — another frame kind, another but valid encoding, a malformed body —
//! is left to the serde decoder, so what is accepted and what it decodes to are unchanged.
//! The tests check both against `rmp-serde`.

use amber_snapshot::{ActorId, Epoch, SystemId};
use bytes::{BufMut, BytesMut};

use super::{Frame, names};

/// The body's first bytes for a `Message`: a one-entry map, then the variant's name.
const PREFIX: &[u8] = b"\x81\xa7Message";

/// Appends the body of `frame` if it is a `Message` (and returns true); otherwise appends
/// nothing and returns false.
pub(super) fn encode(frame: &Frame, dst: &mut BytesMut) -> bool {
    let Frame::Message { to, from, tag, ask, depth, type_name, payload } = frame else {
        return false;
    };
    if u32::try_from(type_name.len()).is_err() || u32::try_from(payload.len()).is_err() {
        return false; // the serde path reports what it does with these
    }
    // Prefix, array marker, two ids of at most 19 bytes, three ints of at most 9, the
    // string and bin headers (at most 5 bytes each).
    dst.reserve(PREFIX.len() + 1 + 2 * 19 + 3 * 9 + 10 + type_name.len() + payload.len());
    dst.put_slice(PREFIX);
    dst.put_u8(0x97); // fixarray, 7 fields
    actor_id(*to, dst);
    match from {
        Some(from) => actor_id(*from, dst),
        None => dst.put_u8(NIL),
    }
    uint(tag.0, dst);
    match ask {
        Some(ask) => uint(*ask, dst),
        None => dst.put_u8(NIL),
    }
    uint(u64::from(*depth), dst);
    str_header(type_name.len(), dst);
    dst.put_slice(type_name.as_bytes());
    bin_header(payload.len(), dst);
    dst.put_slice(payload);
    true
}

/// The `Message` in `body` if it is one in the canonical form, the whole body and nothing
/// more; `None` otherwise (the caller then decodes it the general way).
pub(super) fn decode(body: &[u8]) -> Option<Frame> {
    let mut r = Reader { rest: body.strip_prefix(PREFIX)? };
    if r.byte()? != 0x97 {
        return None;
    }
    let to = r.actor_id()?;
    let from = if r.nil() { None } else { Some(r.actor_id()?) };
    let tag = Epoch(r.uint()?);
    let ask = if r.nil() { None } else { Some(r.uint()?) };
    let depth = u8::try_from(r.uint()?).ok()?;
    let type_name = names::shared(r.str_bytes()?)?;
    let payload = r.bin()?.to_vec();
    if !r.rest.is_empty() {
        return None;
    }
    Some(Frame::Message { to, from, tag, ask, depth, type_name, payload })
}

const NIL: u8 = 0xc0;

fn actor_id(id: ActorId, dst: &mut BytesMut) {
    dst.put_u8(0x92); // fixarray, 2 fields: system, seq
    uint(id.system().0, dst);
    uint(id.seq(), dst);
}

/// An unsigned integer in its shortest form, as `rmp::encode::write_uint` writes it.
fn uint(n: u64, dst: &mut BytesMut) {
    if n < 0x80 {
        dst.put_u8(n as u8);
    } else if n <= u64::from(u8::MAX) {
        dst.put_u8(0xcc);
        dst.put_u8(n as u8);
    } else if n <= u64::from(u16::MAX) {
        dst.put_u8(0xcd);
        dst.put_u16(n as u16);
    } else if n <= u64::from(u32::MAX) {
        dst.put_u8(0xce);
        dst.put_u32(n as u32);
    } else {
        dst.put_u8(0xcf);
        dst.put_u64(n);
    }
}

fn str_header(len: usize, dst: &mut BytesMut) {
    if len < 32 {
        dst.put_u8(0xa0 | len as u8);
    } else if len <= usize::from(u8::MAX) {
        dst.put_u8(0xd9);
        dst.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        dst.put_u8(0xda);
        dst.put_u16(len as u16);
    } else {
        dst.put_u8(0xdb);
        dst.put_u32(len as u32);
    }
}

fn bin_header(len: usize, dst: &mut BytesMut) {
    if len <= usize::from(u8::MAX) {
        dst.put_u8(0xc4);
        dst.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        dst.put_u8(0xc5);
        dst.put_u16(len as u16);
    } else {
        dst.put_u8(0xc6);
        dst.put_u32(len as u32);
    }
}

/// Reads the canonical form; every method returns `None` on anything else.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0, |acc, &b| acc << 8 | u64::from(b)))
    }

    /// Consumes a `nil` if there is one.
    fn nil(&mut self) -> bool {
        if self.rest.first() == Some(&NIL) {
            self.rest = &self.rest[1..];
            true
        } else {
            false
        }
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            n @ 0x00..=0x7f => Some(u64::from(n)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    fn actor_id(&mut self) -> Option<ActorId> {
        if self.byte()? != 0x92 {
            return None;
        }
        let system = SystemId(self.uint()?);
        Some(ActorId::new(system, self.uint()?))
    }

    /// A `str`'s bytes (not checked for UTF-8 here).
    fn str_bytes(&mut self) -> Option<&'a [u8]> {
        let len = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return None,
        };
        self.take(len)
    }

    fn bin(&mut self) -> Option<&'a [u8]> {
        let len = match self.byte()? {
            0xc4 => self.be(1)?,
            0xc5 => self.be(2)?,
            0xc6 => self.be(4)?,
            _ => return None,
        };
        self.take(len as usize)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde_body(frame: &Frame) -> Vec<u8> {
        rmp_serde::to_vec(frame).unwrap()
    }

    fn fast_body(frame: &Frame) -> Vec<u8> {
        let mut buf = BytesMut::new();
        assert!(encode(frame, &mut buf));
        buf.to_vec()
    }

    fn serde_decode(body: &[u8]) -> Frame {
        rmp_serde::from_slice(body).unwrap()
    }

    fn interesting_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..0x100u64,
            0xf0..0x1_0010u64,
            0xffff_fff0..0x1_0000_0010u64,
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    fn actor() -> impl Strategy<Value = ActorId> {
        (interesting_u64(), interesting_u64()).prop_map(|(s, q)| ActorId::new(SystemId(s), q))
    }

    fn message() -> impl Strategy<Value = Frame> {
        (
            actor(),
            proptest::option::of(actor()),
            interesting_u64(),
            proptest::option::of(interesting_u64()),
            any::<u8>(),
            prop_oneof![".{0,40}", ".{250,300}"],
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(any::<u8>(), 65_530..65_540),
            ],
        )
            .prop_map(|(to, from, tag, ask, depth, type_name, payload)| Frame::Message {
                to,
                from,
                tag: Epoch(tag),
                ask,
                depth,
                type_name: type_name.into(),
                payload,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn encodes_as_rmp_serde_does(frame in message()) {
            prop_assert_eq!(fast_body(&frame), serde_body(&frame));
        }

        #[test]
        fn decodes_what_rmp_serde_writes(frame in message()) {
            let body = serde_body(&frame);
            prop_assert_eq!(decode(&body), Some(frame));
        }

        #[test]
        fn never_decodes_differently_from_serde(frame in message(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            // A body damaged in one place is either left to serde or decoded as serde does.
            let mut body = serde_body(&frame);
            let at = cut.index(body.len());
            body[at] = byte;
            if let Some(fast) = decode(&body) {
                let slow: Result<Frame, _> = rmp_serde::from_slice(&body);
                prop_assert_eq!(Some(fast), slow.ok());
            }
            // Truncated: never decoded.
            prop_assert_eq!(decode(&body[..at]), None);
        }
    }

    #[test]
    fn leaves_other_frames_and_other_encodings_to_serde() {
        let mut buf = BytesMut::new();
        assert!(!encode(&Frame::Heartbeat, &mut buf));
        assert!(buf.is_empty());
        assert_eq!(decode(&serde_body(&Frame::Control(vec![1, 2]))), None);
        let frame = Frame::Message {
            to: ActorId::new(SystemId(1), 2),
            from: None,
            tag: Epoch(3),
            ask: None,
            depth: 0,
            type_name: "t".into(),
            payload: vec![9],
        };
        // The same message with its fields as a map (named): valid, but not the canonical
        // form, so not the fast path's.
        let named = rmp_serde::to_vec_named(&frame).unwrap();
        assert_eq!(decode(&named), None);
        assert_eq!(serde_decode(&named), frame);
        // One byte after the frame.
        let mut body = serde_body(&frame);
        body.push(0xc0);
        assert_eq!(decode(&body), None);
    }
}
