//! A flood of junk connections from one address costs a bounded number of warnings. In its
//! own test binary (see `support/logs.rs`).

mod support;

use amber_remote::{HandshakeError, TransportEvent};
use support::logs::Logs;
use support::raw::RawPeer;
use support::{Node, config};

#[tokio::test]
async fn junk_connections_from_one_address_log_a_burst_not_a_line_each() {
    let (logs, _guard) = Logs::capture();
    let mut b = Node::bind(config("b")).await;
    for _ in 0..200 {
        let mut raw = RawPeer::connect(b.addr()).await;
        raw.write(b"GET / HTTP/1.1\r\n\r\n").await;
        let TransportEvent::HandshakeFailed { error, .. } = b.next().await else {
            panic!("expected HandshakeFailed")
        };
        assert!(matches!(error, HandshakeError::NotAmber { .. }), "{error}");
    }
    // Every failure is still reported as an event; the log holds a burst of them.
    let warnings = logs.warnings();
    assert!(!warnings.is_empty() && warnings.len() <= 5, "{}", logs.text());
    assert!(warnings.iter().all(|line| line.contains("incoming handshake failed")));
}
