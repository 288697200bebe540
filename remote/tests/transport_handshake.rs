//! Connection setup over loopback: successful handshakes, and every way one can fail.

mod support;

use std::time::{Duration, Instant};

use amber_remote::{
    ConfigError, Frame, FrameError, HandshakeError, HandshakeFrame, NodeId, NodeIdError,
    PROTOCOL_VERSION, Refusal, TransportConfig, TransportError, TransportEvent,
};
use support::raw::{RawPeer, encode, preamble, proof};
use support::{Node, SECRET, WAIT, any_port, config, linked, still_linked};

#[tokio::test]
async fn handshakes_succeed_in_both_directions() {
    let (mut a, mut b) = linked(config("a"), config("b")).await;
    still_linked(&mut a, &mut b).await;

    // And the other way round: b dials a third node, c.
    let mut c = Node::bind(config("c")).await;
    assert_eq!(b.transport.connect(c.addr()).await.unwrap(), c.id());
    let (node, addr, listen) = b.expect_up().await;
    assert_eq!((node, addr, listen), (c.id(), c.addr(), c.addr()));
    let (node, _, listen) = c.expect_up().await;
    assert_eq!(node, b.id());
    assert_eq!(listen, b.addr(), "the acceptor learns where the dialler listens");
    still_linked(&mut b, &mut c).await;

    let mut peers = b.transport.peers();
    peers.sort();
    assert_eq!(peers, vec![a.id(), c.id()]);
    assert_eq!(b.transport.stats().links, 2);
}

#[tokio::test]
async fn another_protocol_version_is_refused_naming_both_versions() {
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::connect(b.addr()).await;
    raw.write(&preamble(PROTOCOL_VERSION + 1)).await;
    // The transport still tells us its own version before hanging up.
    assert_eq!(raw.read_exact(6).await, preamble(PROTOCOL_VERSION));
    let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    let (ours, theirs) = (PROTOCOL_VERSION, PROTOCOL_VERSION + 1);
    assert!(
        matches!(error, HandshakeError::Version { ours: o, theirs: t } if o == ours && t == theirs),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains(&format!("speaks {ours}")) && text.contains(&format!("speaks {theirs}")));
    raw.read_until_closed::<HandshakeFrame>().await;
}

#[tokio::test]
async fn a_dialler_told_an_older_version_by_the_acceptor_reports_both() {
    // A version-2 acceptor wrote its preamble and hello at once, before reading anything.
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let old = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut raw = RawPeer { stream, buf: Default::default(), peer: None };
        let mut hello = preamble(2);
        hello.extend(encode(&HandshakeFrame::Hello {
            node: NodeId::from("old"),
            incarnation: 1,
            listen_port: 1,
            nonce: [2; 32],
        }));
        raw.write(&hello).await;
        assert_eq!(raw.read_exact(6).await, preamble(PROTOCOL_VERSION));
        raw.read_until_closed::<HandshakeFrame>().await
    });
    let a = Node::bind(config("a")).await;
    let error = a.transport.connect(addr).await.unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Handshake {
                source: HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: 2 },
                ..
            }
        ),
        "{error}"
    );
    // The old node got our preamble and hello, and no proof.
    let frames = tokio::time::timeout(WAIT, old).await.unwrap().unwrap();
    assert!(frames.iter().all(|f| !matches!(f, HandshakeFrame::Proof { .. })), "{frames:?}");
}

#[tokio::test]
async fn a_silent_peer_is_dropped_after_the_first_byte_timeout_and_told_nothing() {
    let timeout = Duration::from_millis(300);
    let mut b = Node::bind(config("b").with_first_byte_timeout(timeout)).await;
    let started = Instant::now();
    let mut raw = RawPeer::connect(b.addr()).await;
    let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    assert!(matches!(error, HandshakeError::Idle(t) if t == timeout), "{error}");
    assert!(started.elapsed() >= timeout);
    // The acceptor speaks only after the dialler's preamble: nothing, then the end.
    let sent = tokio::time::timeout(WAIT, raw.stream_bytes_until_closed());
    assert_eq!(sent.await.expect("the connection is closed"), b"");
}

#[tokio::test]
async fn idle_connections_fill_their_address_share_then_a_dialler_there_is_told_why() {
    let first_byte = Duration::from_millis(400);
    let limits = config("b").with_pending_handshakes(64, 4).with_first_byte_timeout(first_byte);
    let mut b = Node::bind(limits).await;
    let a = Node::bind(config("a")).await;
    // Accepted in the order they connected: these four take 127.0.0.1's places first.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(RawPeer::connect(b.addr()).await);
    }
    let error = a.transport.connect(b.addr()).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Handshake { source: HandshakeError::TooManyPending, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("handshake refused: too many pending"), "{error}");
    // The idle ones are dropped at their first-byte timeout, which frees the places.
    for _ in 0..4 {
        let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
            panic!("expected HandshakeFailed")
        };
        assert!(matches!(error, HandshakeError::Idle(_)), "{error}");
    }
    assert_eq!(a.transport.connect(b.addr()).await.unwrap(), b.id());
}

/// The flood comes from 127.0.0.2 (loopback too; Linux routes all of 127/8 to it) so that it
/// is another address than the node's 127.0.0.1.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_flood_of_idle_connections_from_another_address_does_not_lock_a_node_out() {
    let mut b = Node::bind(config("b").with_first_byte_timeout(Duration::from_secs(30))).await;
    let a = Node::bind(config("a")).await;
    let mut flood = Vec::new();
    for _ in 0..64 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        flood.push(socket.connect(b.addr()).await.unwrap());
    }
    // Every place the flood did not get is still there for other addresses, at once.
    assert_eq!(a.transport.connect(b.addr()).await.unwrap(), b.id());
    b.expect_up().await;
    // Past its address's share (8 by default), the flood was refused with a typed refusal.
    let stream = flood.pop().unwrap();
    let mut refused = RawPeer { stream, buf: Default::default(), peer: None };
    assert_eq!(refused.read_exact(6).await, preamble(PROTOCOL_VERSION));
    assert_eq!(refused.read_frame().await, Some(HandshakeFrame::Refuse(Refusal::TooManyPending)));
    assert_eq!(refused.read_frame::<HandshakeFrame>().await, None);
}

#[tokio::test]
async fn a_peer_that_stops_mid_handshake_is_dropped_after_the_timeout() {
    let timeout = Duration::from_millis(300);
    let mut b = Node::bind(config("b").with_handshake_timeout(timeout)).await;
    let mut raw = RawPeer::connect(b.addr()).await;
    let mut hello = preamble(PROTOCOL_VERSION);
    hello.extend(encode(&HandshakeFrame::Hello {
        node: NodeId::from("slow"),
        incarnation: 1,
        listen_port: 1,
        nonce: [1; 32],
    }));
    raw.write(&hello).await;
    let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    assert!(matches!(error, HandshakeError::Timeout(_)), "{error}");
}

#[tokio::test]
async fn bytes_that_are_not_amber_are_refused() {
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::connect(b.addr()).await;
    raw.write(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n").await;
    let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    assert!(matches!(error, HandshakeError::NotAmber { got } if &got == b"GET "), "{error}");
}

#[tokio::test]
async fn an_oversized_hello_is_refused_before_it_is_read() {
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::connect(b.addr()).await;
    let mut bytes = preamble(PROTOCOL_VERSION);
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    raw.write(&bytes).await;
    let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    assert!(
        matches!(error, HandshakeError::Frame(FrameError::TooLarge { len, max: 1024 })
            if len == u32::MAX as usize),
        "{error}"
    );
}

#[tokio::test]
async fn a_node_cannot_connect_to_itself() {
    let a = Node::bind(config("a")).await;
    let error = a.transport.connect(a.addr()).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Handshake { source: HandshakeError::SameNodeId(_), .. }),
        "{error}"
    );
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_with_a_connect_error() {
    let a = Node::bind(config("a")).await;
    let gone = Node::bind(config("gone")).await;
    let addr = gone.addr();
    gone.transport.shutdown().await;
    drop(gone);
    let error = a.transport.connect(addr).await.unwrap_err();
    assert!(matches!(error, TransportError::Connect { .. }), "{error}");
}

#[tokio::test]
async fn a_raw_peer_that_follows_the_documented_handshake_is_accepted() {
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::handshake(b.addr(), "raw", SECRET).await;
    assert_eq!(raw.peer, Some(b.id()));
    let (node, _, listen) = b.expect_up().await;
    assert_eq!((node.as_str(), listen.port()), ("raw", 9));
    raw.write(&encode(&Frame::Control(b"hi".to_vec()))).await;
    assert_eq!(b.expect_frame().await, (NodeId::from("raw"), Frame::Control(b"hi".to_vec())));
    b.transport.send(&NodeId::from("raw"), &Frame::Control(b"ho".to_vec())).await.unwrap();
    assert_eq!(raw.read_frame().await, Some(Frame::Control(b"ho".to_vec())));
}

#[tokio::test]
async fn a_dialler_with_another_secret_is_refused_before_the_acceptor_proves_anything() {
    let mut b = Node::bind(config("b")).await;
    let mut raw = RawPeer::connect(b.addr()).await;
    let nonce = [0x42; 32];
    let mut hello = preamble(PROTOCOL_VERSION);
    hello.extend(encode(&HandshakeFrame::Hello {
        node: NodeId::from("guesser"),
        incarnation: 1,
        listen_port: 1,
        nonce,
    }));
    raw.write(&hello).await;
    assert_eq!(raw.read_exact(6).await, preamble(PROTOCOL_VERSION));
    let Some(HandshakeFrame::Hello { nonce: b_nonce, .. }) = raw.read_frame().await else {
        panic!("expected b's hello")
    };
    let guess = proof(b"a guessed shared secret", 1, "guesser", "b", &nonce, &b_nonce);
    raw.write(&encode(&HandshakeFrame::Proof { mac: guess })).await;
    let after = raw.stream_bytes_until_closed().await;
    let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    assert!(matches!(error, HandshakeError::Auth), "{error}");
    assert_eq!(after, encode(&HandshakeFrame::Refuse(Refusal::Auth)), "only the refusal follows");
    let real = proof(SECRET, 2, "b", "guesser", &nonce, &b_nonce);
    assert!(!after.windows(32).any(|w| w == real), "b's proof was sent");
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let empty = TransportConfig::new("a", any_port(), Vec::new());
    let error = amber_remote::Transport::bind(empty).await.unwrap_err();
    assert!(matches!(error, TransportError::Config(ConfigError::EmptySecret)), "{error}");
    let short = TransportConfig::new("a", any_port(), b"password".to_vec());
    let error = amber_remote::Transport::bind(short).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Config(ConfigError::ShortSecret { len: 8, min: 16 })),
        "{error}"
    );
    assert!(error.to_string().contains("at least 16"), "{error}");
    let unnamed = TransportConfig::new("", any_port(), SECRET.to_vec());
    let error = amber_remote::Transport::bind(unnamed).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Config(ConfigError::Node(NodeIdError::Empty))),
        "{error}"
    );
    let taken = Node::bind(config("a")).await;
    let twice = TransportConfig::new("b", taken.addr(), SECRET.to_vec());
    let error = amber_remote::Transport::bind(twice).await.unwrap_err();
    assert!(matches!(error, TransportError::Bind { .. }), "{error}");
}
