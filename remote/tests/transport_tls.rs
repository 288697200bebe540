//! Links over TLS (mutual, by certificate), over 127.0.0.1 with port 0: frames and a
//! cluster's tell and ask cross them; a node with a certificate from another CA, or without
//! TLS, is refused with a typed error on both sides and never becomes a link.

mod support;

use amber_actors::{Actor, ActorSystem, Context};
use amber_remote::{
    Cluster, HandshakeError, TlsConfig, TlsError, TransportConfig, TransportError, TransportEvent,
};
use support::{Node, WAIT, config, linked, number, numbered};

fn tls(ca: &str, node: &str) -> TlsConfig {
    let read =
        |name: &str| std::fs::read(format!("{}/tests/tls/{name}", env!("CARGO_MANIFEST_DIR")));
    let (ca, cert, key) = (
        read(&format!("{ca}-ca.pem")),
        read(&format!("{node}-node.pem")),
        read(&format!("{node}-node.key")),
    );
    TlsConfig::from_pem(&ca.unwrap(), &cert.unwrap(), &key.unwrap(), "amber-test")
        .expect("tls config")
}

/// A node trusting and presenting the cluster CA's certificate.
fn secured(name: &str) -> TransportConfig {
    config(name).with_tls(tls("cluster", "cluster"))
}

#[tokio::test]
async fn frames_cross_a_mutual_tls_link_both_ways() {
    let (mut a, mut b) = linked(secured("a"), secured("b")).await;
    a.transport.send(&b.id(), &numbered(7)).await.unwrap();
    let (from, frame) = b.expect_frame().await;
    assert_eq!((from, number(&frame)), (a.id(), 7));
    b.transport.send(&a.id(), &numbered(8)).await.unwrap();
    assert_eq!(number(&a.expect_frame().await.1), 8);
}

/// Dials `b` from `a` and returns the dialling error and the one `b` reports.
async fn refused(a: TransportConfig, b: TransportConfig) -> (TransportError, HandshakeError) {
    let (a, mut b) = (Node::bind(a).await, Node::bind(b).await);
    let dialled = tokio::time::timeout(WAIT, a.transport.connect(b.addr())).await.unwrap();
    let dialled = dialled.expect_err("the link must not come up");
    match b.next().await {
        TransportEvent::HandshakeFailed { error, .. } => (dialled, error),
        other => panic!("expected HandshakeFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_on_both_sides() {
    // The rogue node trusts the cluster CA but presents a rogue certificate: the accepting
    // node refuses it; and a node trusting only the rogue CA refuses the cluster's server.
    let (dialled, seen) =
        refused(config("rogue").with_tls(tls("cluster", "rogue")), secured("b")).await;
    assert!(matches!(seen, HandshakeError::Tls(_)), "{seen:?}");
    assert!(matches!(dialled, TransportError::Handshake { .. }), "{dialled:?}");

    let (dialled, _) = refused(config("wary").with_tls(tls("rogue", "rogue")), secured("b")).await;
    assert!(
        matches!(&dialled, TransportError::Handshake { source: HandshakeError::Tls(m), .. } if m.contains("certificate")),
        "{dialled:?}"
    );
}

#[tokio::test]
async fn a_node_without_tls_is_refused_by_one_with_it() {
    let (dialled, seen) = refused(config("plain"), secured("b")).await;
    assert!(matches!(seen, HandshakeError::Tls(_)), "{seen:?}");
    assert!(matches!(dialled, TransportError::Handshake { .. }), "{dialled:?}");
}

#[test]
fn bad_pem_input_is_a_typed_error() {
    let cert = std::fs::read(format!("{}/tests/tls/cluster-node.pem", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let no_ca = TlsConfig::from_pem(b"", &cert, b"", "amber-test");
    assert!(matches!(no_ca, Err(TlsError::Pem(_))), "{no_ca:?}");
    let ca =
        std::fs::read(format!("{}/tests/tls/cluster-ca.pem", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let no_key = TlsConfig::from_pem(&ca, &cert, b"not a key", "amber-test");
    assert!(matches!(no_key, Err(TlsError::Pem(_))), "{no_key:?}");
}

struct Echo;

impl Actor for Echo {
    type Msg = String;
    type Reply = String;
    async fn handle(&mut self, s: String, _: &mut Context<Self>) -> String {
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_tells_and_asks() {
    let a = Cluster::start(ActorSystem::builder(), secured("a")).await.unwrap();
    let b = Cluster::start(ActorSystem::builder(), secured("b")).await.unwrap();
    b.system().spawn_named("echo", Echo).unwrap();
    let peer = tokio::time::timeout(WAIT, a.connect(b.local_addr())).await.unwrap().unwrap();
    let echo = a.lookup::<Echo>(&peer, "echo").await.unwrap();
    echo.tell("first".into()).await.unwrap();
    assert_eq!(echo.ask("over tls".into()).await.unwrap(), "over tls");
    a.shutdown().await;
    b.shutdown().await;
}
