//! Helpers shared by the transport tests: configs, bounded waits on events, and a raw peer
//! that speaks the wire protocol by hand (from the crate docs, not the crate's internals).
#![allow(dead_code, unreachable_pub)]

pub mod logs;
pub mod raw;
pub mod relay;
pub mod stalled;
pub mod watcher;

use std::net::SocketAddr;
use std::time::Duration;

use amber_remote::{DownReason, Frame, NodeId, Transport, TransportConfig, TransportEvent};
use tokio::sync::mpsc::Receiver;

pub const SECRET: &[u8] = b"integration-test-shared-secret-0123456789";

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs `fut`, failing the test if it takes longer than 20 s (a hang is a bug, not a wait).
pub async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("test step hung for 20 s")
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn config(node: &str) -> TransportConfig {
    TransportConfig::new(node, any_port(), SECRET.to_vec())
}

/// A bound transport and its events.
#[derive(Debug)]
pub struct Node {
    pub transport: Transport,
    pub events: Receiver<TransportEvent>,
}

impl Node {
    pub async fn bind(config: TransportConfig) -> Node {
        let (transport, events) = Transport::bind(config).await.expect("bind");
        Node { transport, events }
    }

    pub fn id(&self) -> NodeId {
        self.transport.node().clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The next event, failing the test if none comes within [`WAIT`].
    pub async fn next(&mut self) -> TransportEvent {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("{}: event stream ended", self.id()),
            Err(_) => panic!("{}: no event within {WAIT:?}", self.id()),
        }
    }

    pub async fn expect_up(&mut self) -> (NodeId, SocketAddr, SocketAddr) {
        match self.next().await {
            TransportEvent::PeerUp { node, addr, listen, .. } => (node, addr, listen),
            other => panic!("{}: expected PeerUp, got {other:?}", self.id()),
        }
    }

    pub async fn expect_down(&mut self) -> (NodeId, DownReason) {
        match self.next().await {
            TransportEvent::PeerDown { node, reason } => (node, reason),
            other => panic!("{}: expected PeerDown, got {other:?}", self.id()),
        }
    }

    pub async fn expect_frame(&mut self) -> (NodeId, Frame) {
        match self.next().await {
            TransportEvent::Frame { from, frame } => (from, frame),
            other => panic!("{}: expected a frame, got {other:?}", self.id()),
        }
    }

    /// Asserts that no event arrives for `quiet`.
    pub async fn expect_quiet(&mut self, quiet: Duration) {
        if let Ok(event) = tokio::time::timeout(quiet, self.events.recv()).await {
            panic!("{}: expected no event, got {event:?}", self.id());
        }
    }
}

/// Two nodes, `a` dialled `b`; both have seen `PeerUp`.
pub async fn linked(a: TransportConfig, b: TransportConfig) -> (Node, Node) {
    let (mut a, mut b) = (Node::bind(a).await, Node::bind(b).await);
    let id = tokio::time::timeout(WAIT, a.transport.connect(b.addr())).await.unwrap().unwrap();
    assert_eq!(id, b.id());
    assert_eq!(a.expect_up().await.0, b.id());
    assert_eq!(b.expect_up().await.0, a.id());
    (a, b)
}

/// A control frame carrying `n`.
pub fn numbered(n: u64) -> Frame {
    Frame::Control(n.to_be_bytes().to_vec())
}

/// The number in a [`numbered`] frame.
pub fn number(frame: &Frame) -> u64 {
    match frame {
        Frame::Control(bytes) => u64::from_be_bytes(bytes[..8].try_into().unwrap()),
        other => panic!("expected a numbered control frame, got {other:?}"),
    }
}

/// Checks that `a` and `b` can still exchange frames both ways.
pub async fn still_linked(a: &mut Node, b: &mut Node) {
    let (a_id, b_id) = (a.id(), b.id());
    a.transport.send(&b_id, &numbered(1)).await.unwrap();
    assert_eq!(b.expect_frame().await, (a_id, numbered(1)));
    b.transport.send(&a.id(), &numbered(2)).await.unwrap();
    assert_eq!(a.expect_frame().await, (b_id, numbered(2)));
}
