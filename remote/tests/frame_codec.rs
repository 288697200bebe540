//! The frame codec against arbitrary frames and arbitrary bytes.

use amber_actors::migrate::MigrateRefusal;
use amber_actors::remote::{DeliverError, ReplyError};
use amber_remote::{Frame, FrameCodec, FrameError, HEADER_LEN, NodeId};
use amber_snapshot::{ActorId, Epoch, SystemId};
use bytes::{BufMut, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// The answers a node sends back in place of a reply.
fn reply_error() -> impl Strategy<Value = ReplyError> {
    prop_oneof![
        ".{0,30}".prop_map(ReplyError::NodeDown),
        actor_id().prop_map(ReplyError::Stopped),
        actor_id().prop_map(|id| ReplyError::NotDelivered(DeliverError::NoSuchActor(id))),
        (actor_id(), refusal())
            .prop_map(|(actor, reason)| ReplyError::NotArrived { actor, reason }),
    ]
}

/// Why a node refused a moving actor.
fn refusal() -> impl Strategy<Value = MigrateRefusal> {
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
}

fn actor_id() -> impl Strategy<Value = ActorId> {
    (any::<u64>(), any::<u64>()).prop_map(|(system, seq)| ActorId::new(SystemId(system), seq))
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (".{0,40}", any::<u64>(), any::<u16>(), any::<[u8; 32]>()).prop_map(
            |(node, incarnation, listen_port, nonce)| Frame::Hello {
                node: NodeId::new(node),
                incarnation,
                listen_port,
                nonce
            }
        ),
        any::<[u8; 32]>().prop_map(|mac| Frame::Proof { mac }),
        Just(Frame::Welcome),
        Just(Frame::Duplicate),
        (
            actor_id(),
            option::of(actor_id()),
            any::<u64>(),
            option::of(any::<u64>()),
            any::<u8>(),
            ".{0,30}",
            vec(any::<u8>(), 0..300)
        )
            .prop_map(|(to, from, tag, ask, depth, type_name, payload)| Frame::Message {
                to,
                from,
                tag: Epoch(tag),
                ask,
                depth,
                type_name: type_name.into(),
                payload
            }),
        (
            any::<u64>(),
            any::<u64>(),
            prop_oneof![vec(any::<u8>(), 0..300).prop_map(Ok), reply_error().prop_map(Err)]
        )
            .prop_map(|(ask, epoch, result)| Frame::Reply {
                ask,
                epoch: Epoch(epoch),
                result
            }),
        vec(any::<u8>(), 0..300).prop_map(Frame::Control),
        Just(Frame::Heartbeat),
        ".{0,50}".prop_map(|reason| Frame::Goodbye { reason }),
    ]
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
        let mut bytes = encode_all(std::slice::from_ref(&frame));
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        prop_assert_eq!(len + HEADER_LEN, bytes.len());
        prop_assert_eq!(FrameCodec::default().decode(&mut bytes).unwrap(), Some(frame));
        prop_assert!(bytes.is_empty());
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
        frames in vec(frame(), 1..5),
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

#[test]
fn explicit_malformed_bodies() {
    let cases: &[(&str, &[u8])] = &[
        ("empty body", b""),
        ("reserved marker", b"\xc1"),
        ("unknown variant", b"\xa4Ping"),
        ("unit variant with fields", b"\x81\xa9Heartbeat\x90"),
        ("wrong field type", b"\x81\xa7Control\x05"),
        ("missing fields", b"\x81\xa7Goodbye\x90"),
        ("string longer than the body", b"\x81\xa7Goodbye\x91\xdb\xff\xff\xff\xff"),
        ("bytes longer than the body", b"\x81\xa7Control\xc6\xff\xff\xff\xff\x00"),
        ("array longer than the body", b"\x81\xa7Control\xdd\xff\xff\xff\xff"),
        ("invalid utf-8", b"\x81\xa7Goodbye\x91\xa2\xff\xfe"),
        ("two values", b"\xa9Heartbeat\xa9Heartbeat"),
    ];
    for (what, bytes) in cases {
        let result = FrameCodec::default().decode(&mut body(bytes));
        assert!(
            matches!(result, Err(FrameError::Malformed(_))),
            "{what}: expected Malformed, got {result:?}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // A Message written as a map, with an unknown key whose value is 100 000 nested arrays.
    let mut nested = b"\x81\xa7Message\x81\xa7unknown".to_vec();
    nested.extend(std::iter::repeat_n(0x91u8, 100_000));
    nested.push(0xc0);
    let result = FrameCodec::default().decode(&mut body(&nested));
    assert!(matches!(result, Err(FrameError::Malformed(_))), "{result:?}");
}

#[test]
fn heartbeat_bytes_are_as_documented() {
    assert_eq!(&encode_all(&[Frame::Heartbeat])[..], b"\x00\x00\x00\x0a\xa9Heartbeat");
}
