//! The frame codec against arbitrary frames and arbitrary bytes: round trips of every frame
//! kind, every truncation, corrupted and random bodies, and the documented bytes.

use amber_actors::migrate::MigrateRefusal;
use amber_actors::remote::{DeliverError, ReplyError};
use amber_remote::{
    Frame, FrameBody, FrameCodec, FrameError, FrameKind, HEADER_LEN, HandshakeFrame, NodeId,
    Refusal,
};
use amber_snapshot::{ActorId, Epoch, SystemId};
use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// The answers a node sends back in place of a reply.
fn reply_error() -> BoxedStrategy<ReplyError> {
    prop_oneof![
        ".{0,30}".prop_map(ReplyError::NodeDown),
        actor_id().prop_map(ReplyError::Stopped),
        actor_id().prop_map(|id| ReplyError::NotDelivered(DeliverError::NoSuchActor(id))),
        (actor_id(), refusal())
            .prop_map(|(actor, reason)| ReplyError::NotArrived { actor, reason }),
    ]
    .boxed()
}

/// Why a node refused a moving actor.
fn refusal() -> BoxedStrategy<MigrateRefusal> {
    prop_oneof![
        ".{0,30}".prop_map(MigrateRefusal::UnknownType),
        actor_id().prop_map(MigrateRefusal::StillForwarding),
        ".{0,30}".prop_map(MigrateRefusal::NameTaken),
        Just(MigrateRefusal::ShuttingDown),
        ".{0,30}".prop_map(MigrateRefusal::State),
        ".{0,30}".prop_map(MigrateRefusal::Timer),
        ".{0,30}".prop_map(MigrateRefusal::Other),
        Just(MigrateRefusal::Unrecognized),
    ]
    .boxed()
}

/// Integers at and around every varint length boundary, and any.
fn int() -> BoxedStrategy<u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        (0u32..64).prop_flat_map(|bits| {
            let edge = 1u64 << bits;
            (edge.saturating_sub(2)..=edge.saturating_add(1)).boxed()
        }),
        (1u32..10).prop_map(|bytes| (1u64 << (7 * bytes)) - 1),
        any::<u64>(),
    ]
    .boxed()
}

fn actor_id() -> BoxedStrategy<ActorId> {
    (int(), int()).prop_map(|(system, seq)| ActorId::new(SystemId(system), seq)).boxed()
}

/// Empty, small, and large (past the 1- and 2-byte varint lengths) byte strings.
fn payload() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        8 => vec(any::<u8>(), 0..300),
        1 => vec(any::<u8>(), 16_380..16_390),
        1 => (0usize..3).prop_map(|extra| vec![0xa5; 70_000 + extra]),
    ]
    .boxed()
}

fn frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        (
            actor_id(),
            option::of(actor_id()),
            int(),
            option::of(int()),
            any::<u8>(),
            prop_oneof![Just(String::new()), ".{0,30}", ".{125,135}"],
            payload(),
        )
            .prop_map(|(to, from, tag, ask, depth, type_name, payload)| Frame::Message {
                to,
                from,
                tag: Epoch(tag),
                ask,
                depth,
                type_name: type_name.into(),
                payload: payload.into(),
            }),
        (int(), int(), prop_oneof![payload().prop_map(Ok), reply_error().prop_map(Err)])
            .prop_map(|(ask, epoch, result)| Frame::Reply { ask, epoch: Epoch(epoch), result }),
        payload().prop_map(Frame::Control),
        Just(Frame::Heartbeat),
        prop_oneof![Just(String::new()), ".{0,50}"].prop_map(|reason| Frame::Goodbye { reason }),
    ]
    .boxed()
}

fn handshake_frame() -> BoxedStrategy<HandshakeFrame> {
    prop_oneof![
        (".{0,40}", int(), any::<u16>(), any::<[u8; 32]>()).prop_map(
            |(node, incarnation, listen_port, nonce)| HandshakeFrame::Hello {
                node: NodeId::new(node),
                incarnation,
                listen_port,
                nonce
            }
        ),
        any::<[u8; 32]>().prop_map(|mac| HandshakeFrame::Proof { mac }),
        Just(HandshakeFrame::Welcome),
        Just(HandshakeFrame::Duplicate),
        Just(HandshakeFrame::Refuse(Refusal::Auth)),
        Just(HandshakeFrame::Refuse(Refusal::TooManyPending)),
    ]
    .boxed()
}

/// One frame, length prefix included.
fn encode<F: FrameBody>(frame: &F) -> BytesMut {
    let mut bytes = BytesMut::new();
    FrameCodec::default().encode_frame(frame, &mut bytes).unwrap();
    bytes
}

/// Decodes `body` (no prefix) as one `F` through the codec.
fn decode_body<F: FrameBody>(body_bytes: &[u8]) -> Result<Option<F>, FrameError> {
    FrameCodec::default().decode_as(&mut body(body_bytes))
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let codec = FrameCodec::default();
    let mut bytes = BytesMut::new();
    for frame in frames {
        codec.encode_frame(frame, &mut bytes).unwrap();
    }
    bytes
}

/// Feeds `input` to a decoder in pieces of the given sizes (cycled), collecting frames until
/// the input ends or an error.
fn decode_in_pieces(
    codec: &mut FrameCodec,
    input: &[u8],
    pieces: &[usize],
) -> (Vec<Frame>, Option<FrameError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut sizes = pieces.iter().copied().cycle();
    while pos < input.len() {
        let n = sizes.next().unwrap_or(input.len()).clamp(1, input.len() - pos);
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(frame)) => frames.push(frame),
        Ok(None) => {}
        Err(error) => return (frames, Some(error)),
    }
    (frames, None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_frame_round_trips(frame in frame()) {
        let mut bytes = encode(&frame);
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        prop_assert_eq!(len + HEADER_LEN, bytes.len());
        prop_assert_eq!(bytes[HEADER_LEN], frame.kind().code());
        prop_assert_eq!(FrameCodec::default().decode(&mut bytes).unwrap(), Some(frame));
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn every_handshake_frame_round_trips(frame in handshake_frame()) {
        let mut bytes = encode(&frame);
        prop_assert_eq!(bytes[HEADER_LEN], frame.kind().code());
        let decoded = FrameCodec::default().decode_as::<HandshakeFrame>(&mut bytes).unwrap();
        prop_assert_eq!(decoded, Some(frame));
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn every_truncation_is_a_typed_error(frame in frame(), handshake in handshake_frame()) {
        // Every strict prefix of a body, framed as a whole body, is refused: empty, or a
        // field cut short (never decoded as another frame, never a panic).
        let link = encode(&frame);
        let link = &link[HEADER_LEN..];
        // Cut everywhere in small bodies, and around the fields of large ones.
        let cuts: Vec<usize> = if link.len() <= 400 {
            (0..link.len()).collect()
        } else {
            (0..200).chain(link.len() - 200..link.len()).collect()
        };
        for cut in cuts {
            let result = decode_body::<Frame>(&link[..cut]);
            prop_assert!(
                matches!(result, Err(FrameError::Empty | FrameError::Short { .. })),
                "{:?} cut at {}: {:?}", frame.kind(), cut, result
            );
        }
        let hs = encode(&handshake);
        let hs = &hs[HEADER_LEN..];
        for cut in 0..hs.len() {
            let result = decode_body::<HandshakeFrame>(&hs[..cut]);
            prop_assert!(
                matches!(result, Err(FrameError::Empty | FrameError::Short { .. })),
                "{:?} cut at {}: {:?}", handshake.kind(), cut, result
            );
        }
    }

    #[test]
    fn a_byte_after_any_frame_is_trailing(
        frame in frame(),
        handshake in handshake_frame(),
        extra in any::<u8>(),
    ) {
        let mut link = encode(&frame)[HEADER_LEN..].to_vec();
        link.push(extra);
        let result = decode_body::<Frame>(&link);
        let trailing = matches!(result, Err(FrameError::Trailing { extra: 1, .. }));
        prop_assert!(trailing, "{:?}", result);
        let mut hs = encode(&handshake)[HEADER_LEN..].to_vec();
        hs.push(extra);
        let result = decode_body::<HandshakeFrame>(&hs);
        let trailing = matches!(result, Err(FrameError::Trailing { extra: 1, .. }));
        prop_assert!(trailing, "{:?}", result);
    }

    #[test]
    fn each_kind_is_refused_where_the_other_is_expected(
        frame in frame(),
        handshake in handshake_frame(),
    ) {
        let result = decode_body::<HandshakeFrame>(&encode(&frame)[HEADER_LEN..]);
        let refused =
            matches!(result, Err(FrameError::Unexpected { kind, .. }) if kind == frame.kind());
        prop_assert!(refused, "{:?}", result);
        let result = decode_body::<Frame>(&encode(&handshake)[HEADER_LEN..]);
        let refused =
            matches!(result, Err(FrameError::Unexpected { kind, .. }) if kind == handshake.kind());
        prop_assert!(refused, "{:?}", result);
    }

    #[test]
    fn a_stream_decodes_the_same_however_it_is_cut(
        frames in vec(frame(), 0..20),
        pieces in vec(1usize..64, 1..10),
    ) {
        let bytes = encode_all(&frames);
        let (decoded, error) = decode_in_pieces(&mut FrameCodec::default(), &bytes, &pieces);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..4096),
        pieces in vec(1usize..512, 1..5),
    ) {
        let mut codec = FrameCodec::new(1024);
        let (_, error) = decode_in_pieces(&mut codec, &bytes, &pieces);
        if let Some(FrameError::TooLarge { len, max }) = error {
            prop_assert!(len > max && max == 1024);
        }
    }

    #[test]
    fn corrupted_frames_never_panic(
        frames in vec(frame(), 1..3),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode_all(&frames).to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        let _ = decode_in_pieces(&mut FrameCodec::default(), &bytes, &[7, 100]);
    }

    #[test]
    fn frames_over_the_limit_are_refused_both_ways(payload in vec(any::<u8>(), 100..400)) {
        let codec = FrameCodec::new(100);
        let frame = Frame::Control(payload);
        let mut out = BytesMut::new();
        prop_assert!(
            matches!(codec.encode_frame(&frame, &mut out), Err(FrameError::TooLarge { .. })),
            "encoding"
        );
        prop_assert!(out.is_empty());
        let mut bytes = encode_all(&[frame]);
        let refused = FrameCodec::new(100).decode(&mut bytes);
        prop_assert!(matches!(refused, Err(FrameError::TooLarge { .. })), "decoding");
    }
}

fn body(body: &[u8]) -> BytesMut {
    let mut bytes = BytesMut::new();
    bytes.put_u32(body.len() as u32);
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn a_frame_exactly_at_the_limit_is_accepted() {
    let frame = Frame::Control(vec![1; 1000]);
    let mut bytes = encode_all(std::slice::from_ref(&frame));
    let len = bytes.len() - HEADER_LEN;
    assert_eq!(FrameCodec::new(len).decode(&mut bytes.clone()).unwrap(), Some(frame));
    assert!(matches!(
        FrameCodec::new(len - 1).decode(&mut bytes),
        Err(FrameError::TooLarge { .. })
    ));
}

/// A small deterministic generator (splitmix64), so the random-bytes test is the same run
/// to run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn random_bodies_never_panic() {
    let mut rng = SplitMix(0x00a3_be12);
    let mut decoded = 0;
    for _ in 0..50_000 {
        let len = 1 + (rng.next() % 96) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly a known type byte, so that the fields get exercised.
        if !rng.next().is_multiple_of(8) {
            let kinds = FrameKind::ALL;
            bytes[0] = kinds[(rng.next() % kinds.len() as u64) as usize].code();
        }
        decoded += usize::from(matches!(decode_body::<Frame>(&bytes), Ok(Some(_))));
        decoded += usize::from(matches!(decode_body::<HandshakeFrame>(&bytes), Ok(Some(_))));
    }
    // Some random bodies are valid frames (a Heartbeat is one byte).
    assert!(decoded > 0);
}

/// A malformed body: what it is, its bytes, and the error expected.
type Case = (&'static str, Vec<u8>, Box<dyn Fn(&FrameError) -> bool>);

#[test]
fn explicit_malformed_bodies() {
    use FrameKind::*;
    // A Message body: type, flags, `to` (system 1, seq 1), then `rest`.
    let message =
        |flags: u8, rest: &[u8]| [&[0x10, flags][..], &1u64.to_be_bytes(), &[1], rest].concat();
    let cases: Vec<Case> = vec![
        ("empty body", vec![], Box::new(|e| matches!(e, FrameError::Empty))),
        ("unknown type", vec![0x00], Box::new(|e| matches!(e, FrameError::UnknownType(0x00)))),
        (
            "unknown type",
            vec![0xff, 1, 2],
            Box::new(|e| matches!(e, FrameError::UnknownType(0xff))),
        ),
        (
            "unit frame with a field",
            vec![0x13, 0x00],
            Box::new(|e| matches!(e, FrameError::Trailing { kind: Heartbeat, extra: 1 })),
        ),
        (
            "unknown message flag",
            message(0x04, &[0, 0, 0, 0]),
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Message, field: "flags", .. })),
        ),
        (
            "varint not in its shortest form",
            [&[0x10, 0x00][..], &[0; 8], &[0x81, 0x00, 0, 0, 0, 0]].concat(),
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Message, field: "to", .. })),
        ),
        (
            "varint over 64 bits",
            [&[0x11][..], &[0xff; 9], &[0x02, 0, 0, 0]].concat(),
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Reply, field: "ask", .. })),
        ),
        (
            "varint of 11 bytes",
            [&[0x11][..], &[0x80; 10], &[0x00]].concat(),
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Reply, field: "ask", .. })),
        ),
        (
            "type name not UTF-8",
            message(0x00, &[0, 0, 2, 0xff, 0xfe, 0]),
            Box::new(|e| matches!(e, FrameError::NotUtf8 { kind: Message, field: "type name" })),
        ),
        (
            "payload longer than the body",
            message(0x00, &[0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]),
            Box::new(|e| matches!(e, FrameError::Short { kind: Message, field: "payload" })),
        ),
        (
            "bytes longer than the body",
            vec![0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            Box::new(|e| matches!(e, FrameError::Short { kind: Control, field: "bytes" })),
        ),
        (
            "reason not UTF-8",
            vec![0x14, 2, 0xff, 0xfe],
            Box::new(|e| matches!(e, FrameError::NotUtf8 { kind: Goodbye, field: "reason" })),
        ),
        (
            "unknown reply outcome",
            vec![0x11, 1, 1, 2, 0],
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Reply, field: "outcome", .. })),
        ),
        (
            "reply error that is not a ReplyError",
            vec![0x11, 1, 1, 1, 1, 0xc0],
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Reply, field: "error", .. })),
        ),
        (
            "two frames in one body",
            vec![0x13, 0x13],
            Box::new(|e| matches!(e, FrameError::Trailing { kind: Heartbeat, extra: 1 })),
        ),
        (
            "a handshake frame on a link",
            vec![0x03],
            Box::new(|e| {
                matches!(
                    e,
                    FrameError::Unexpected { kind: Welcome, during: "on an established link" }
                )
            }),
        ),
    ];
    for (what, bytes, expected) in cases {
        let error = decode_body::<Frame>(&bytes).expect_err(what);
        assert!(expected(&error), "{what}: got {error:?}");
        assert!(!error.to_string().is_empty());
    }
    let handshake_cases: Vec<Case> = vec![
        (
            "unknown refusal",
            vec![0x05, 0x07],
            Box::new(|e| matches!(e, FrameError::Invalid { kind: Refuse, field: "reason", .. })),
        ),
        (
            "node id not UTF-8",
            [&[0x01, 1, 0xff][..], &[0; 42]].concat(),
            Box::new(|e| matches!(e, FrameError::NotUtf8 { kind: Hello, field: "node id" })),
        ),
        (
            "short nonce",
            [&[0x01, 1, b'a'][..], &[0; 41]].concat(),
            Box::new(|e| matches!(e, FrameError::Short { kind: Hello, field: "nonce" })),
        ),
        (
            "a link frame in the handshake",
            vec![0x12, 0],
            Box::new(|e| {
                matches!(
                    e,
                    FrameError::Unexpected { kind: Control, during: "during the handshake" }
                )
            }),
        ),
    ];
    for (what, bytes, expected) in handshake_cases {
        let error = decode_body::<HandshakeFrame>(&bytes).expect_err(what);
        assert!(expected(&error), "{what}: got {error:?}");
    }
}

#[test]
fn deep_nesting_in_a_reply_error_is_refused_without_overflowing_the_stack() {
    // A Reply whose error is 100 000 nested arrays.
    let mut nested = vec![0x91u8; 100_000];
    nested.push(0xc0);
    let mut body_bytes = vec![0x11, 1, 1, 1];
    let mut len = nested.len() as u64;
    while len >= 0x80 {
        body_bytes.push(len as u8 | 0x80);
        len >>= 7;
    }
    body_bytes.push(len as u8);
    body_bytes.extend(nested);
    let result = decode_body::<Frame>(&body_bytes);
    assert!(matches!(result, Err(FrameError::Invalid { field: "error", .. })), "{result:?}");
}

#[test]
fn a_message_payload_shares_the_read_buffer() {
    let frame = Frame::Message {
        to: ActorId::new(SystemId(1), 2),
        from: None,
        tag: Epoch(0),
        ask: None,
        depth: 0,
        type_name: "t".into(),
        payload: Bytes::from(vec![7; 1000]),
    };
    let mut bytes = encode(&frame);
    let start = bytes.as_ptr() as usize;
    let end = start + bytes.len();
    let Some(Frame::Message { payload, .. }) = FrameCodec::default().decode(&mut bytes).unwrap()
    else {
        panic!("a message")
    };
    let at = payload.as_ptr() as usize;
    assert!(start <= at && at + payload.len() <= end, "the payload is a slice, not a copy");
}

#[test]
fn bytes_are_as_documented() {
    assert_eq!(&encode(&Frame::Heartbeat)[..], b"\x00\x00\x00\x01\x13");
    assert_eq!(
        &encode(&Frame::Control(vec![0xff; 3]))[..],
        b"\x00\x00\x00\x05\x12\x03\xff\xff\xff"
    );
    let goodbye = Frame::Goodbye { reason: "bye".into() };
    assert_eq!(&encode(&goodbye)[..], b"\x00\x00\x00\x05\x14\x03bye");
    let message = Frame::Message {
        to: ActorId::new(SystemId(1), 300),
        from: Some(ActorId::new(SystemId(2), 3)),
        tag: Epoch(4),
        ask: Some(5),
        depth: 6,
        type_name: "T".into(),
        payload: Bytes::from_static(b"\x80"),
    };
    let expected: &[&[u8]] = &[
        b"\x10\x03",                   // type, flags: from and ask
        b"\0\0\0\0\0\0\0\x01\xac\x02", // to: system 1 (u64), seq 300
        b"\0\0\0\0\0\0\0\x02\x03",     // from: system 2, seq 3
        b"\x04\x05\x06",               // tag, ask, depth
        b"\x01T",                      // type name
        b"\x01\x80",                   // payload
    ];
    assert_eq!(&encode(&message)[HEADER_LEN..], &expected.concat()[..]);
    let reply = Frame::Reply { ask: 1, epoch: Epoch(2), result: Ok(vec![9]) };
    assert_eq!(&encode(&reply)[HEADER_LEN..], b"\x11\x01\x02\x00\x01\x09");
    let hello = HandshakeFrame::Hello {
        node: NodeId::from("ab"),
        incarnation: 0x0102_0304_0506_0708,
        listen_port: 0x0a0b,
        nonce: [0xee; 32],
    };
    let mut expected = b"\x01\x02ab\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x0b".to_vec();
    expected.extend([0xee; 32]);
    assert_eq!(&encode(&hello)[HEADER_LEN..], &expected[..]);
    assert_eq!(
        &encode(&HandshakeFrame::Proof { mac: [1; 32] })[HEADER_LEN..],
        &[&[0x02][..], &[1; 32]].concat()[..]
    );
    assert_eq!(&encode(&HandshakeFrame::Welcome)[..], b"\x00\x00\x00\x01\x03");
    assert_eq!(&encode(&HandshakeFrame::Duplicate)[..], b"\x00\x00\x00\x01\x04");
    assert_eq!(&encode(&HandshakeFrame::Refuse(Refusal::Auth))[..], b"\x00\x00\x00\x02\x05\x00");
    assert_eq!(
        &encode(&HandshakeFrame::Refuse(Refusal::TooManyPending))[..],
        b"\x00\x00\x00\x02\x05\x01"
    );
}
