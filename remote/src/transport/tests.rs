//! [`Transport::send_all`] against [`Transport::send`]'s contract.

use std::time::Duration;

use tokio::sync::mpsc::Receiver;

use super::{Transport, TransportConfig, TransportError, TransportEvent};
use crate::{Frame, FrameKind, NodeId};

const WAIT: Duration = Duration::from_secs(10);

async fn node(name: &str) -> (Transport, Receiver<TransportEvent>) {
    let config = TransportConfig::new(
        name,
        "127.0.0.1:0".parse().unwrap(),
        b"transport unit-test secret".to_vec(),
    );
    Transport::bind(config).await.unwrap()
}

async fn next(events: &mut Receiver<TransportEvent>) -> TransportEvent {
    tokio::time::timeout(WAIT, events.recv()).await.expect("an event").expect("events go on")
}

/// `a` linked to `b`; returns `b`'s id and `b`'s events, past its `PeerUp`.
async fn linked() -> (Transport, NodeId, Transport, Receiver<TransportEvent>) {
    let ((a, _a_events), (b, mut b_events)) = (node("a").await, node("b").await);
    let to = a.connect(b.local_addr()).await.unwrap();
    assert!(matches!(next(&mut b_events).await, TransportEvent::PeerUp { .. }));
    while !a.is_up(&to) {
        tokio::task::yield_now().await;
    }
    (a, to, b, b_events)
}

fn numbered(n: u64, len: usize) -> Frame {
    let mut bytes = n.to_be_bytes().to_vec();
    bytes.resize(len.max(8), 0);
    Frame::Control(bytes)
}

async fn received(events: &mut Receiver<TransportEvent>) -> u64 {
    match next(events).await {
        TransportEvent::Frame { frame: Frame::Control(bytes), .. } => {
            u64::from_be_bytes(bytes[..8].try_into().unwrap())
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test]
async fn send_all_delivers_in_order_across_several_queue_entries() {
    let (a, to, _b, mut events) = linked().await;
    // 300 frames of 1 KiB: more than one 64 KiB entry.
    let frames: Vec<Frame> = (0..300).map(|n| numbered(n, 1024)).collect();
    a.send_all(&to, &frames).await.unwrap();
    a.send(&to, &numbered(300, 8)).await.unwrap();
    for n in 0..=300 {
        assert_eq!(received(&mut events).await, n);
    }
    assert_eq!(a.stats().frames_sent, 301, "every frame counted, not every entry");
    a.send_all(&to, &[]).await.unwrap();
}

#[tokio::test]
async fn send_all_stops_at_the_first_frame_it_cannot_send() {
    let (a, to, _b, mut events) = linked().await;
    let frames = [numbered(0, 8), numbered(1, 8), Frame::Heartbeat, numbered(3, 8)];
    let error = a.send_all(&to, &frames).await.unwrap_err();
    assert!(matches!(error, TransportError::Reserved(FrameKind::Heartbeat)), "{error}");
    a.send(&to, &numbered(4, 8)).await.unwrap();
    for n in [0, 1, 4] {
        assert_eq!(received(&mut events).await, n);
    }
    let stranger = NodeId::from("stranger");
    let error = a.send_all(&stranger, &frames).await.unwrap_err();
    assert!(matches!(error, TransportError::UnknownPeer(ref n) if *n == stranger), "{error}");
}

/// What a handler saw: the events (frames by number) and the threads it ran on.
#[derive(Debug, PartialEq)]
enum Seen {
    Up,
    Frame(u64),
    Down,
}

/// `b` with a handler that records what it sees and fails the test if two calls overlap.
async fn handled(
    io_thread: bool,
) -> (Transport, tokio::sync::mpsc::UnboundedReceiver<(Seen, String)>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let config = TransportConfig::new(
        "b",
        "127.0.0.1:0".parse().unwrap(),
        b"transport unit-test secret".to_vec(),
    )
    .with_io_thread(io_thread);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let busy = Arc::new(AtomicBool::new(false));
    let transport = Transport::bind_with_handler(config, move |event| {
        assert!(!busy.swap(true, Ordering::AcqRel), "two calls at once for one link");
        let seen = match event {
            TransportEvent::PeerUp { .. } => Some(Seen::Up),
            TransportEvent::PeerDown { .. } => Some(Seen::Down),
            TransportEvent::Frame { frame: Frame::Control(bytes), .. } => {
                Some(Seen::Frame(u64::from_be_bytes(bytes[..8].try_into().unwrap())))
            }
            _ => None,
        };
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        if let Some(seen) = seen {
            let _ = tx.send((seen, thread));
        }
        busy.store(false, Ordering::Release);
    })
    .await
    .unwrap();
    (transport, rx)
}

async fn handler_sees_each_link_in_order(io_thread: bool) {
    let (b, mut seen) = handled(io_thread).await;
    let mut threads = std::collections::HashSet::new();
    let mut next = async || {
        let (event, thread) =
            tokio::time::timeout(WAIT, seen.recv()).await.expect("an event").expect("events go on");
        threads.insert(thread);
        event
    };
    // Two links from `a`, one after the other (a restarted `a`): each whole, in order, the
    // second's PeerUp after the first's PeerDown.
    for _ in 0..2 {
        let (a, _events) = node("a").await;
        let to = a.connect(b.local_addr()).await.unwrap();
        let frames: Vec<Frame> = (0..500).map(|n| numbered(n, 64)).collect();
        a.send_all(&to, &frames).await.unwrap();
        a.shutdown().await;
        assert_eq!(next().await, Seen::Up);
        for n in 0..500 {
            assert_eq!(next().await, Seen::Frame(n));
        }
        assert_eq!(next().await, Seen::Down);
    }
    if io_thread {
        assert_eq!(threads, ["amber-io".to_owned()].into(), "on the transport's thread");
    } else {
        assert!(!threads.contains("amber-io"), "on the runtime that bound it: {threads:?}");
    }
    b.shutdown().await;
    assert!(matches!(
        b.connect("127.0.0.1:1".parse().unwrap()).await,
        Err(TransportError::Shutdown)
    ));
}

#[tokio::test]
async fn a_handler_sees_each_link_whole_and_in_order() {
    handler_sees_each_link_in_order(false).await;
}

#[tokio::test]
async fn on_its_own_thread_a_handler_sees_each_link_whole_and_in_order() {
    handler_sees_each_link_in_order(true).await;
}

#[tokio::test]
async fn a_handler_that_panics_loses_that_event_not_the_link() {
    let config = TransportConfig::new(
        "b",
        "127.0.0.1:0".parse().unwrap(),
        b"transport unit-test secret".to_vec(),
    );
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let b = Transport::bind_with_handler(config, move |event| match event {
        TransportEvent::Frame { frame: Frame::Control(bytes), .. } if bytes[0] == 0xff => {
            panic!("a bug in the handler")
        }
        TransportEvent::Frame { frame: Frame::Control(bytes), .. } => {
            let _ = tx.send(Some(bytes[0]));
        }
        TransportEvent::PeerDown { .. } => {
            let _ = tx.send(None);
        }
        _ => {}
    })
    .await
    .unwrap();
    let mut next = async || tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    for round in 0..2 {
        let (a, _events) = node("a").await;
        let to = a.connect(b.local_addr()).await.unwrap();
        for byte in [1, 0xff, 2] {
            a.send(&to, &Frame::Control(vec![byte])).await.unwrap();
        }
        assert_eq!(next().await, Some(1), "round {round}");
        assert_eq!(next().await, Some(2), "the link reads on after the panic");
        a.shutdown().await;
        assert_eq!(next().await, None, "PeerDown reported: the peer may link again");
    }
}
