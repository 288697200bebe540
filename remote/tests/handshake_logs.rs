//! The warning a failed handshake logs, on both sides. In its own test binary: `tracing`
//! caches per call site whether anyone listens, which races with tests on other threads.

mod support;

use amber_remote::{Frame, HandshakeError, TransportConfig, TransportError, TransportEvent};
use support::logs::Logs;
use support::{Node, any_port, config};

#[tokio::test]
async fn a_wrong_secret_fails_on_both_sides_with_a_warning_and_no_link() {
    let (logs, _guard) = Logs::capture();

    let mut a =
        Node::bind(TransportConfig::new("a", any_port(), b"one secret, not the others".to_vec()))
            .await;
    let mut b = Node::bind(config("b")).await;
    let error = a.transport.connect(b.addr()).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Handshake { addr, source: HandshakeError::Auth }
            if addr == b.addr()),
        "{error}"
    );
    let TransportEvent::HandshakeFailed { addr, error } = b.next().await else {
        panic!("expected HandshakeFailed")
    };
    assert!(matches!(error, HandshakeError::Auth), "{error}");
    assert!(a.transport.peers().is_empty() && b.transport.peers().is_empty());
    assert!(a.events.try_recv().is_err(), "no PeerUp on the dialler");
    let sent = a.transport.send(&b.id(), &Frame::Control(vec![])).await.unwrap_err();
    assert!(matches!(sent, TransportError::UnknownPeer(_)), "{sent}");

    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 2, "{}", logs.text());
    let outgoing = warnings.iter().find(|line| line.contains("outgoing")).unwrap();
    assert!(outgoing.contains(&b.addr().to_string()), "{outgoing}");
    assert!(outgoing.contains("authentication"), "{outgoing}");
    let incoming = warnings.iter().find(|line| line.contains("incoming")).unwrap();
    assert!(incoming.contains(&addr.to_string()), "{incoming}");
    assert!(incoming.contains("authentication"), "{incoming}");
}
