//! Links over loopback: one per node pair, ordering, batching, backpressure, failure
//! detection, reconnection, shutdown.

mod support;

use std::time::{Duration, Instant};

use amber_remote::{DownReason, Frame, FrameError, FrameKind, NodeId, TransportError};
use support::raw::RawPeer;
use support::{Node, SECRET, WAIT, config, linked, number, numbered, still_linked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_keep_exactly_one_link() {
    for round in 0..20 {
        // Alternate which node has the smaller id, and which dials first.
        let (x, y) = if round % 2 == 0 { ("a", "b") } else { ("z", "y") };
        let mut a = Node::bind(config(x)).await;
        let mut b = Node::bind(config(y)).await;
        let (a_addr, b_addr) = (a.addr(), b.addr());
        let dial = |from: &Node, to| {
            let transport = from.transport.clone();
            tokio::spawn(async move { transport.connect(to).await })
        };
        // Every third round, a dials twice at once as well.
        let twice = round % 3 == 0;
        let both = tokio::time::timeout(WAIT, async {
            tokio::join!(dial(&a, b_addr), dial(&b, a_addr), async {
                if twice { Some(dial(&a, b_addr).await) } else { None }
            },)
        });
        let (from_a, from_b, again) = both.await.expect("connects hang");
        assert_eq!(from_a.unwrap().unwrap(), b.id(), "round {round}");
        assert_eq!(from_b.unwrap().unwrap(), a.id(), "round {round}");
        if let Some(again) = again {
            assert_eq!(again.unwrap().unwrap(), b.id(), "round {round}");
        }
        assert_eq!(a.expect_up().await.0, b.id());
        assert_eq!(b.expect_up().await.0, a.id());
        // The next events are the frames: no second PeerUp, no PeerDown in between.
        still_linked(&mut a, &mut b).await;
        assert_eq!(a.transport.stats().links, 1);
        assert_eq!(b.transport.stats().links, 1);
        assert!(a.events.try_recv().is_err() && b.events.try_recv().is_err());
    }
}

#[tokio::test]
async fn connecting_again_reuses_the_link() {
    let (mut a, mut b) = linked(config("a"), config("b")).await;
    for _ in 0..3 {
        assert_eq!(a.transport.connect(b.addr()).await.unwrap(), b.id());
        assert_eq!(b.transport.connect(a.addr()).await.unwrap(), a.id());
    }
    still_linked(&mut a, &mut b).await;
    assert!(a.events.try_recv().is_err() && b.events.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_frames_arrive_in_order() {
    const N: u64 = 100_000;
    let (a, mut b) = linked(config("a"), config("b")).await;
    let to = b.id();
    let sender = a.transport.clone();
    let sending = tokio::spawn(async move {
        for n in 0..N {
            sender.send(&to, &numbered(n)).await.unwrap();
        }
    });
    let receiving = tokio::time::timeout(Duration::from_secs(60), async {
        for n in 0..N {
            let (from, frame) = b.expect_frame().await;
            assert_eq!(from, a.id());
            assert_eq!(number(&frame), n, "frames out of order");
        }
    });
    receiving.await.expect("100k frames within a minute");
    sending.await.unwrap();
    let stats = a.transport.stats();
    println!(
        "{} frames in {} writes ({:.1} frames per write)",
        stats.frames_sent,
        stats.writes,
        stats.frames_sent as f64 / stats.writes as f64
    );
    assert!(stats.frames_sent >= N);
    // How many frames share a write depends on scheduling (3.9 to 20+ per write on this
    // machine, depending on load): a figure for the benchmarks, not an assertion here. A
    // write always carries at least one frame.
    assert!(stats.writes <= stats.frames_sent, "{stats:?}");
    assert!(b.transport.stats().frames_received >= N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_the_queue_cross_small_socket_buffers_in_order() {
    // 8 KiB socket buffers and a 16-frame queue: every batch of 100 takes the whole queue
    // and waits for it to empty; nothing is lost or reordered.
    const N: u64 = 20_000;
    let small = |node: &str| config(node).with_queues(16, 16).with_socket_buffer(8 * 1024);
    let (a, mut b) = linked(small("a"), small("b")).await;
    let to = b.id();
    let sender = a.transport.clone();
    let sending = tokio::spawn(async move {
        for first in (0..N).step_by(100) {
            let batch: Vec<Frame> = (first..first + 100).map(numbered).collect();
            sender.send_all(&to, &batch).await.unwrap();
        }
    });
    for n in 0..N {
        let (from, frame) = b.expect_frame().await;
        assert_eq!(from, a.id());
        assert_eq!(number(&frame), n, "frames out of order");
    }
    sending.await.unwrap();
}

#[tokio::test]
async fn a_lone_frame_is_written_at_once() {
    // No heartbeat for an hour: nothing but the send itself can get the frame out.
    let hour = Duration::from_secs(3600);
    let quiet = config("a").with_heartbeat(hour, 2 * hour);
    let (a, mut b) = linked(quiet, config("b")).await;
    // A writer that held a lone frame back for company would never deliver it here:
    // `expect_frame` is bounded, the heartbeat an hour away.
    a.transport.send(&b.id(), &numbered(7)).await.unwrap();
    assert_eq!(number(&b.expect_frame().await.1), 7);
    assert_eq!(a.transport.stats().writes, a.transport.stats().frames_sent);
}

#[tokio::test]
async fn heartbeats_keep_an_idle_link_up() {
    let fast = || config("n").with_heartbeat(Duration::from_millis(50), Duration::from_secs(1));
    let mut a_config = fast();
    a_config.node = NodeId::from("a");
    let mut b_config = fast();
    b_config.node = NodeId::from("b");
    let (mut a, mut b) = linked(a_config, b_config).await;
    // Three timeouts' worth of idleness, and nothing happens.
    a.expect_quiet(Duration::from_secs(3)).await;
    assert!(a.transport.is_up(&b.id()) && b.transport.is_up(&a.id()));
    assert!(a.transport.stats().frames_received >= 10, "{:?}", a.transport.stats());
    still_linked(&mut a, &mut b).await;
}

#[tokio::test]
async fn a_silent_peer_is_declared_down_after_the_timeout() {
    let timeout = Duration::from_millis(300);
    let mut a = Node::bind(config("a").with_heartbeat(Duration::from_millis(100), timeout)).await;
    // Completes the handshake, then neither reads nor writes.
    let raw = RawPeer::handshake(a.addr(), "mute", SECRET).await;
    let (mute, _, _) = a.expect_up().await;
    let silent_since = Instant::now();
    let (node, reason) = a.expect_down().await;
    let after = silent_since.elapsed();
    assert_eq!(node, mute);
    assert!(matches!(reason, DownReason::Timeout), "{reason}");
    assert_eq!(reason.to_string(), "timeout");
    assert!(after >= timeout && after < timeout * 10, "declared down after {after:?}");
    let error = a.transport.send(&mute, &numbered(1)).await.unwrap_err();
    assert!(matches!(error, TransportError::PeerDown(ref n) if *n == mute), "{error}");
    let error = a.transport.try_send(&mute, &numbered(1)).unwrap_err();
    assert!(matches!(error, TransportError::PeerDown(_)), "{error}");
    drop(raw);
}

#[tokio::test]
async fn a_node_that_stops_heartbeating_is_declared_down() {
    let hour = Duration::from_secs(3600);
    let watchful =
        config("a").with_heartbeat(Duration::from_millis(100), Duration::from_millis(300));
    let (mut a, mut b) = linked(watchful, config("b").with_heartbeat(hour, 2 * hour)).await;
    let (node, reason) = a.expect_down().await;
    assert_eq!(node, b.id());
    assert!(matches!(reason, DownReason::Timeout), "{reason}");
    // a closed the connection, and b notices.
    let (node, reason) = b.expect_down().await;
    assert_eq!(node, a.id());
    assert!(matches!(reason, DownReason::Closed | DownReason::Io(_)), "{reason}");
}

#[tokio::test]
async fn a_node_whose_runtime_dies_is_reported_down() {
    let mut a = Node::bind(config("a")).await;
    // b lives on its own thread and runtime, like another process.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let b_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let b = Node::bind(config("b")).await;
            addr_tx.send(b.addr()).unwrap();
            let _ = stop_rx.await;
            // The process dies: no shutdown, no goodbye; its sockets close with the runtime.
            std::mem::forget(b);
        });
    });
    let b_addr = addr_rx.await.unwrap();
    assert_eq!(a.transport.connect(b_addr).await.unwrap().as_str(), "b");
    a.expect_up().await;
    stop_tx.send(()).unwrap();
    b_thread.join().unwrap();
    let (node, reason) = a.expect_down().await;
    assert_eq!(node.as_str(), "b");
    assert!(matches!(reason, DownReason::Closed | DownReason::Io(_)), "{reason}");
    let error = a.transport.send(&node, &numbered(1)).await.unwrap_err();
    assert!(matches!(error, TransportError::PeerDown(_)), "{error}");
}

#[tokio::test]
async fn sends_fail_with_typed_errors() {
    let (a, b) = linked(config("a").with_max_frame(4096), config("b")).await;
    let stranger = NodeId::from("stranger");
    let error = a.transport.send(&stranger, &numbered(1)).await.unwrap_err();
    assert!(matches!(error, TransportError::UnknownPeer(ref n) if *n == stranger), "{error}");
    let error = a.transport.send(&b.id(), &Frame::Heartbeat).await.unwrap_err();
    assert!(matches!(error, TransportError::Reserved(FrameKind::Heartbeat)), "{error}");
    let big = Frame::Control(vec![0; 5000]);
    let error = a.transport.send(&b.id(), &big).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Frame(FrameError::TooLarge { max: 4096, .. })),
        "{error}"
    );
}

#[tokio::test]
async fn a_full_queue_pushes_back_and_a_waiting_send_fails_when_the_link_dies() {
    // A peer that never reads: TCP buffers fill, then the one-frame queue.
    let mut a = Node::bind(config("a").with_queues(1, 16)).await;
    let raw = RawPeer::handshake(a.addr(), "sink", SECRET).await;
    let (sink, _, _) = a.expect_up().await;
    let big = Frame::Control(vec![0; 1 << 20]);
    let full = tokio::time::timeout(WAIT, async {
        loop {
            match a.transport.try_send(&sink, &big) {
                Ok(()) => tokio::task::yield_now().await,
                Err(TransportError::Full(node)) => return node,
                Err(other) => panic!("unexpected {other}"),
            }
        }
    });
    assert_eq!(full.await.expect("the queue fills"), sink);

    let waiting = {
        let (transport, sink) = (a.transport.clone(), sink.clone());
        tokio::spawn(async move { transport.send(&sink, &Frame::Control(vec![1])).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "send waits while the queue is full");
    drop(raw);
    let result = tokio::time::timeout(WAIT, waiting).await.expect("the send ends").unwrap();
    assert!(matches!(result, Err(TransportError::PeerDown(_))), "{result:?}");
    a.expect_down().await;
}

#[tokio::test]
async fn reconnecting_after_a_restart_works() {
    let (mut a, b) = linked(config("a"), config("b")).await;
    let b_addr = b.addr();
    b.transport.shutdown().await;
    let (node, reason) = a.expect_down().await;
    assert_eq!(node, b.id());
    assert!(matches!(reason, DownReason::Goodbye(ref why) if why == "shutdown"), "{reason}");
    let error = a.transport.send(&node, &numbered(1)).await.unwrap_err();
    assert!(matches!(error, TransportError::PeerDown(_)), "{error}");
    drop(b);

    // The same node comes back on the same address; a dials it again.
    let mut b =
        Node::bind(amber_remote::TransportConfig::new("b", b_addr, support::SECRET.to_vec())).await;
    assert_eq!(a.transport.connect(b_addr).await.unwrap(), b.id());
    assert_eq!(a.expect_up().await.0, b.id());
    assert_eq!(b.expect_up().await.0, a.id());
    still_linked(&mut a, &mut b).await;

    // And once more the other way: b restarts and dials a itself.
    b.transport.shutdown().await;
    a.expect_down().await;
    drop(b);
    let mut b = Node::bind(config("b")).await;
    assert_eq!(b.transport.connect(a.addr()).await.unwrap(), a.id());
    a.expect_up().await;
    b.expect_up().await;
    still_linked(&mut a, &mut b).await;
}

#[tokio::test]
async fn reconnecting_after_a_disconnect_works() {
    let (mut a, mut b) = linked(config("a"), config("b")).await;
    a.transport.send(&b.id(), &numbered(1)).await.unwrap();
    a.transport.disconnect(&b.id(), "rebalancing").unwrap();
    // What was queued before the goodbye is still delivered.
    assert_eq!(number(&b.expect_frame().await.1), 1);
    let (_, reason) = b.expect_down().await;
    assert!(matches!(reason, DownReason::Goodbye(ref why) if why == "rebalancing"), "{reason}");
    let (_, reason) = a.expect_down().await;
    assert!(matches!(reason, DownReason::Disconnected(_)), "{reason}");
    assert!(a.transport.peers().is_empty());

    assert_eq!(a.transport.connect(b.addr()).await.unwrap(), b.id());
    a.expect_up().await;
    b.expect_up().await;
    still_linked(&mut a, &mut b).await;
}

#[tokio::test]
async fn a_restarted_peer_replaces_its_old_link() {
    let (mut a, mut b1) = linked(config("a"), config("b")).await;
    // Another incarnation of "b" dials a while a still holds the link to the first one.
    let mut b2 = Node::bind(config("b")).await;
    assert_eq!(b2.transport.connect(a.addr()).await.unwrap(), a.id());
    let (node, reason) = a.expect_down().await;
    assert_eq!(node.as_str(), "b");
    assert!(matches!(reason, DownReason::Replaced), "{reason}");
    let (node, _, listen) = a.expect_up().await;
    assert_eq!((node.as_str(), listen), ("b", b2.addr()));
    b2.expect_up().await;
    still_linked(&mut a, &mut b2).await;
    // The first incarnation sees its link closed.
    assert_eq!(b1.expect_down().await.0, a.id());
}

#[tokio::test]
async fn shutdown_says_goodbye_and_ends_the_event_stream() {
    let (mut a, mut b) = linked(config("a"), config("b")).await;
    a.transport.send(&b.id(), &numbered(5)).await.unwrap();
    a.transport.shutdown().await;
    assert_eq!(number(&b.expect_frame().await.1), 5);
    let (node, reason) = b.expect_down().await;
    assert_eq!(node, a.id());
    assert!(matches!(reason, DownReason::Goodbye(_)), "{reason}");
    let (node, reason) = a.expect_down().await;
    assert_eq!(node, b.id());
    assert!(matches!(reason, DownReason::Shutdown), "{reason}");
    let end = tokio::time::timeout(WAIT, a.events.recv()).await.expect("the stream ends");
    assert!(end.is_none());
    let error = a.transport.connect(b.addr()).await.unwrap_err();
    assert!(matches!(error, TransportError::Shutdown), "{error}");
    let error = a.transport.send(&b.id(), &numbered(1)).await.unwrap_err();
    assert!(matches!(error, TransportError::Shutdown), "{error}");
}

#[tokio::test]
async fn dropping_every_handle_closes_the_links() {
    let (a, mut b) = linked(config("a"), config("b")).await;
    drop(a);
    let (node, reason) = b.expect_down().await;
    assert_eq!(node.as_str(), "a");
    assert!(matches!(reason, DownReason::Goodbye(_)), "{reason}");
}
