//! A peer that breaks the frame protocol after its handshake loses its link, with a typed
//! reason, while the node's other links keep working.

mod support;

use amber_remote::{DownReason, Frame, FrameError, FrameKind, HandshakeFrame, NodeId};
use support::raw::{RawPeer, encode};
use support::{Node, SECRET, WAIT, config, linked, still_linked};
use tokio::io::AsyncWriteExt;

/// `b` has a good link to `a`; a raw peer links to `b`, writes `bytes` (then closes its
/// side if `hang_up`). Returns why `b` dropped the raw peer, after checking that the raw
/// peer's connection was closed and that `a` and `b` still talk.
async fn fault(bytes: &[u8], hang_up: bool) -> DownReason {
    let (mut a, mut b) = linked(config("a"), config("b")).await;
    let mut raw = RawPeer::handshake(b.addr(), "raw", SECRET).await;
    assert_eq!(b.expect_up().await.0.as_str(), "raw");

    raw.write(bytes).await;
    if hang_up {
        raw.stream.shutdown().await.unwrap();
    }
    let (node, reason) = b.expect_down().await;
    assert_eq!(node.as_str(), "raw");
    assert!(!b.transport.is_up(&node));
    tokio::time::timeout(WAIT, raw.read_until_closed::<Frame>())
        .await
        .expect("b closes the connection");

    still_linked(&mut a, &mut b).await;
    assert_eq!(b.transport.peers(), vec![a.id()]);
    reason
}

#[tokio::test]
async fn a_malformed_body_closes_only_that_link() {
    // A valid length prefix around bytes that are no frame (0xc1 is no frame type).
    let reason = fault(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1], false).await;
    assert!(matches!(reason, DownReason::Frame(FrameError::UnknownType(0xc1))), "{reason}");
}

#[tokio::test]
async fn random_garbage_closes_only_that_link() {
    let garbage: Vec<u8> =
        (0u32..200).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let reason = fault(&garbage, false).await;
    assert!(matches!(reason, DownReason::Frame(_)), "{reason}");
}

#[tokio::test]
async fn an_oversized_length_prefix_closes_only_that_link() {
    let reason = fault(&u32::MAX.to_be_bytes(), false).await;
    assert!(
        matches!(reason, DownReason::Frame(FrameError::TooLarge { max, .. })
            if max == amber_remote::DEFAULT_MAX_FRAME),
        "{reason}"
    );
}

#[tokio::test]
async fn a_truncated_frame_closes_only_that_link() {
    let frame = encode(&Frame::Control(vec![9; 100]));
    let reason = fault(&frame[..50], true).await;
    assert!(
        matches!(reason, DownReason::Frame(FrameError::Truncated { have: 50, need })
            if need == frame.len()),
        "{reason}"
    );
}

#[tokio::test]
async fn a_handshake_frame_on_an_established_link_closes_it() {
    let hello = HandshakeFrame::Hello {
        node: NodeId::from("x"),
        incarnation: 1,
        listen_port: 1,
        nonce: [0; 32],
    };
    let reason = fault(&encode(&hello), false).await;
    assert!(
        matches!(reason, DownReason::Frame(FrameError::Unexpected { kind: FrameKind::Hello, .. })),
        "{reason}"
    );
}

#[tokio::test]
async fn trailing_bytes_in_a_body_close_the_link() {
    let mut frame = encode(&Frame::Heartbeat);
    frame[3] += 1;
    frame.push(0x00);
    let reason = fault(&frame, false).await;
    assert!(
        matches!(
            reason,
            DownReason::Frame(FrameError::Trailing { kind: FrameKind::Heartbeat, extra: 1 })
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn a_peer_vanishing_between_frames_is_reported_closed() {
    let reason = fault(&encode(&Frame::Heartbeat), true).await;
    assert!(matches!(reason, DownReason::Closed), "{reason}");
}

#[tokio::test]
async fn frames_before_a_fault_are_delivered_in_order() {
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::handshake(b.addr(), "raw", SECRET).await;
    b.expect_up().await;
    let mut bytes = encode(&Frame::Control(vec![1]));
    bytes.extend(encode(&Frame::Control(vec![2])));
    bytes.extend_from_slice(&[0, 0, 0, 1, 0xc1]);
    raw.write(&bytes).await;
    assert_eq!(b.expect_frame().await.1, Frame::Control(vec![1]));
    assert_eq!(b.expect_frame().await.1, Frame::Control(vec![2]));
    assert!(matches!(b.expect_down().await.1, DownReason::Frame(FrameError::UnknownType(0xc1))));
}
