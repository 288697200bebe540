//! The handshake exchange over in-memory streams, including arbitrary input.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use tokio::io::{AsyncWriteExt, DuplexStream};

use super::exchange::{Identity, PeerHello, Verdict, accept, handshake_codec, initiate};
use super::proof::{self, Nonces, Role};
use super::{HandshakeError, MAGIC, PREAMBLE_LEN, PROTOCOL_VERSION, Refusal};
use crate::frame::FrameReader;
use crate::{Frame, FrameError, FrameKind, HandshakeFrame, NodeId};

fn identity(node: &str, secret: &[u8]) -> Identity {
    Identity {
        node: NodeId::from(node),
        incarnation: 7,
        listen_port: 4000,
        secret: Arc::from(secret),
        version: PROTOCOL_VERSION,
    }
}

fn reader(stream: DuplexStream) -> FrameReader<DuplexStream> {
    FrameReader::with_buffer(stream, BytesMut::new(), handshake_codec())
}

type Outcomes = (
    Result<(PeerHello, Verdict, Option<()>), HandshakeError>,
    Result<(PeerHello, Option<()>), HandshakeError>,
);

/// Runs a dialler `a` against an acceptor `b` that welcomes iff `welcome`.
async fn run(a: Identity, b: Identity, welcome: bool) -> Outcomes {
    let (left, right) = tokio::io::duplex(4096);
    let (mut left, mut right) = (reader(left), reader(right));
    // Each side drops its stream when done, as the transport does, so a failure on one side
    // ends the other's wait.
    let dialler = async move { initiate(&mut left, &a, |_| Some(())).await };
    let acceptor = async move { accept(&mut right, &b, |_| welcome.then_some(())).await };
    let both = async { tokio::join!(dialler, acceptor) };
    tokio::time::timeout(Duration::from_secs(5), both).await.expect("handshake hangs")
}

#[tokio::test]
async fn both_sides_learn_each_other() {
    let (dialled, accepted) = run(identity("a", b"s"), identity("b", b"s"), true).await;
    let (peer, verdict, registered) = dialled.unwrap();
    assert_eq!(registered, Some(()));
    assert_eq!((peer.node.as_str(), peer.incarnation, peer.listen_port), ("b", 7, 4000));
    assert_eq!(verdict, Verdict::Welcome);
    let (peer, kept) = accepted.unwrap();
    assert_eq!(peer.node.as_str(), "a");
    assert_eq!(kept, Some(()));
}

#[tokio::test]
async fn the_acceptor_can_call_it_a_duplicate() {
    let (dialled, accepted) = run(identity("a", b"s"), identity("b", b"s"), false).await;
    assert_eq!(dialled.unwrap().1, Verdict::Duplicate);
    assert_eq!(accepted.unwrap().1, None);
}

#[tokio::test]
async fn a_dialler_already_linked_stops_before_its_proof() {
    let (left, right) = tokio::io::duplex(4096);
    let (mut left, mut right) = (reader(left), reader(right));
    let (a, b) = (identity("a", b"s"), identity("b", b"s"));
    let dialler = async move { initiate(&mut left, &a, |_| None::<()>).await };
    let acceptor = async move {
        accept(&mut right, &b, |_| -> Option<()> { panic!("nothing to judge") }).await
    };
    let (dialled, accepted) = tokio::join!(dialler, acceptor);
    let (peer, verdict, registered) = dialled.unwrap();
    assert_eq!((peer.node.as_str(), verdict, registered), ("b", Verdict::Duplicate, None));
    assert_eq!(accepted.unwrap().1, None);
}

#[tokio::test]
async fn different_secrets_fail_on_both_sides() {
    let (dialled, accepted) = run(identity("a", b"one"), identity("b", b"two"), true).await;
    assert!(matches!(dialled, Err(HandshakeError::Auth)), "{dialled:?}");
    assert!(matches!(accepted, Err(HandshakeError::Auth)), "{accepted:?}");
}

#[tokio::test]
async fn a_dialler_with_another_secret_gets_a_refusal_and_no_proof() {
    let acceptor = identity("b", b"the acceptor's secret");
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let accepting = tokio::spawn(async move {
        let mut io = reader(ours);
        accept(&mut io, &acceptor, |_| Some(())).await.map(|(peer, _)| peer)
    });
    // The dialler, by hand: preamble, hello, a proof keyed with the wrong secret.
    let nonce = [9; 32];
    let mut out = preamble();
    handshake_codec().encode_frame(&hello_with("a", nonce), &mut out).unwrap();
    theirs.write_all(&out).await.unwrap();
    let mut sent = Vec::new();
    let mut chunk = [0; 1024];
    // Preamble and hello first; the acceptor then waits for our proof.
    while sent.len() < PREAMBLE_LEN + 4 || !decodes_one_frame(&sent[PREAMBLE_LEN..]) {
        let n = tokio::io::AsyncReadExt::read(&mut theirs, &mut chunk).await.unwrap();
        assert!(n > 0, "the acceptor closed before its hello");
        sent.extend_from_slice(&chunk[..n]);
    }
    let mut first = BytesMut::from(&sent[PREAMBLE_LEN..]);
    let decoded = handshake_codec().decode_as::<HandshakeFrame>(&mut first);
    let Ok(Some(HandshakeFrame::Hello { nonce: acceptor_nonce, .. })) = decoded else {
        panic!("expected the acceptor's hello, got {decoded:?}")
    };
    let nonces = Nonces { initiator: nonce, acceptor: acceptor_nonce };
    let (a, b) = (NodeId::from("a"), NodeId::from("b"));
    let mac = proof::proof(b"not the acceptor's secret", Role::Initiator, &a, &b, &nonces);
    let mut out = BytesMut::new();
    handshake_codec().encode_frame(&HandshakeFrame::Proof { mac }, &mut out).unwrap();
    theirs.write_all(&out).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), accepting).await.unwrap().unwrap();
    assert!(matches!(result, Err(HandshakeError::Auth)), "{result:?}");
    tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut sent).await.unwrap();

    // Everything the acceptor wrote: its preamble, its hello, the refusal. No proof, and
    // nowhere the 32 bytes its proof would have been.
    let mut frames = Vec::new();
    let mut rest = BytesMut::from(&sent[PREAMBLE_LEN..]);
    while let Some(frame) = handshake_codec().decode_as::<HandshakeFrame>(&mut rest).unwrap() {
        frames.push(frame);
    }
    assert!(rest.is_empty(), "only whole frames");
    assert!(
        matches!(frames[..], [HandshakeFrame::Hello { .. }, HandshakeFrame::Refuse(Refusal::Auth)]),
        "{frames:?}"
    );
    let proof = proof::proof(b"the acceptor's secret", Role::Acceptor, &b, &a, &nonces);
    assert!(!sent.windows(32).any(|w| w == proof), "the acceptor's proof was sent");
}

#[tokio::test]
async fn different_versions_fail_on_both_sides_naming_both() {
    let newer = Identity { version: 9, ..identity("b", b"s") };
    let (dialled, accepted) = run(identity("a", b"s"), newer, true).await;
    assert!(matches!(dialled, Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: 9 })));
    assert!(matches!(accepted, Err(HandshakeError::Version { ours: 9, theirs: PROTOCOL_VERSION })));
    let text = dialled.err().unwrap().to_string();
    assert!(text.contains(&PROTOCOL_VERSION.to_string()) && text.contains('9'), "{text}");
}

#[tokio::test]
async fn a_peer_with_our_own_id_is_refused() {
    let (dialled, accepted) = run(identity("a", b"s"), identity("a", b"s"), true).await;
    assert!(matches!(dialled, Err(HandshakeError::SameNodeId(_))));
    assert!(matches!(accepted, Err(HandshakeError::SameNodeId(_))));
}

#[tokio::test]
async fn an_empty_node_id_is_refused() {
    let (dialled, accepted) = run(identity("", b"s"), identity("b", b"s"), true).await;
    assert!(dialled.is_err());
    assert!(
        matches!(accepted, Err(HandshakeError::InvalidNodeId(crate::NodeIdError::Empty))),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn http_is_not_amber() {
    let result = feed_acceptor(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
    assert!(matches!(result, Err(HandshakeError::NotAmber { got }) if &got == b"GET "));
}

#[tokio::test]
async fn an_oversized_handshake_frame_is_refused_before_reading_it() {
    let mut bytes = preamble();
    bytes.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    let result = feed_acceptor(bytes.to_vec()).await;
    assert!(
        matches!(result, Err(HandshakeError::Frame(FrameError::TooLarge { max: 1024, .. }))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_data_frame_before_authentication_is_unexpected() {
    let mut bytes = preamble();
    handshake_codec().encode_frame(&Frame::Control(vec![1]), &mut bytes).unwrap();
    let result = feed_acceptor(bytes.to_vec()).await;
    assert!(
        matches!(
            result,
            Err(HandshakeError::Frame(FrameError::Unexpected { kind: FrameKind::Control, .. }))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn closing_after_the_hello_is_reported() {
    let mut bytes = preamble();
    handshake_codec().encode_frame(&hello("z"), &mut bytes).unwrap();
    let result = feed_acceptor(bytes.to_vec()).await;
    assert!(matches!(result, Err(HandshakeError::Closed)), "{result:?}");
}

fn preamble() -> BytesMut {
    let mut bytes = BytesMut::from(&MAGIC[..]);
    bytes.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    bytes
}

fn hello(node: &str) -> HandshakeFrame {
    hello_with(node, [3; 32])
}

fn hello_with(node: &str, nonce: [u8; 32]) -> HandshakeFrame {
    HandshakeFrame::Hello { node: NodeId::from(node), incarnation: 1, listen_port: 1, nonce }
}

/// Whether `bytes` start with one whole handshake frame.
fn decodes_one_frame(bytes: &[u8]) -> bool {
    let mut buf = BytesMut::from(bytes);
    matches!(handshake_codec().decode_as::<HandshakeFrame>(&mut buf), Ok(Some(_)))
}

/// Plays a peer that writes `bytes` and then closes its side, against our acceptor.
async fn feed_acceptor(bytes: Vec<u8>) -> Result<(PeerHello, Option<()>), HandshakeError> {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    theirs.write_all(&bytes).await.unwrap();
    theirs.shutdown().await.unwrap();
    let mut io = reader(ours);
    let me = identity("a", b"secret");
    let result = tokio::time::timeout(Duration::from_secs(5), accept(&mut io, &me, |_| Some(())));
    let result = result.await.expect("a closed stream must end the handshake");
    drop(theirs);
    result
}

/// The same against our dialler.
async fn feed_initiator(
    bytes: Vec<u8>,
) -> Result<(PeerHello, Verdict, Option<()>), HandshakeError> {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    theirs.write_all(&bytes).await.unwrap();
    theirs.shutdown().await.unwrap();
    let mut io = reader(ours);
    let me = identity("a", b"secret");
    let result = tokio::time::timeout(Duration::from_secs(5), initiate(&mut io, &me, |_| Some(())));
    let result = result.await.expect("a closed stream must end the handshake");
    drop(theirs);
    result
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(future)
}

/// A valid start (preamble, hello) followed by `tail`, to reach the later steps.
fn after_hello(tail: &[u8]) -> Vec<u8> {
    let mut bytes = preamble();
    handshake_codec().encode_frame(&hello("z"), &mut bytes).unwrap();
    bytes.extend_from_slice(tail);
    bytes.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary input never panics and never authenticates.
    #[test]
    fn arbitrary_bytes_never_pass(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(block_on(feed_acceptor(bytes.clone())).is_err());
        prop_assert!(block_on(feed_initiator(bytes)).is_err());
    }

    /// Arbitrary input after a valid hello (the proof and verdict steps) never panics and
    /// never authenticates.
    #[test]
    fn arbitrary_proofs_never_pass(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(block_on(feed_acceptor(after_hello(&tail))).is_err());
        prop_assert!(block_on(feed_initiator(after_hello(&tail))).is_err());
    }

    /// A well-formed but forged proof is refused.
    #[test]
    fn forged_proofs_never_pass(mac in any::<[u8; 32]>()) {
        let mut tail = BytesMut::new();
        handshake_codec().encode_frame(&HandshakeFrame::Proof { mac }, &mut tail).unwrap();
        handshake_codec().encode_frame(&HandshakeFrame::Welcome, &mut tail).unwrap();
        let accepted = block_on(feed_acceptor(after_hello(&tail)));
        prop_assert!(matches!(accepted, Err(HandshakeError::Auth)), "{:?}", accepted);
        let dialled = block_on(feed_initiator(after_hello(&tail)));
        prop_assert!(matches!(dialled, Err(HandshakeError::Auth)), "{:?}", dialled);
    }
}
