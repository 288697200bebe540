//! Cluster-wide names (three clusters in one process, over 127.0.0.1 with port 0): a name
//! found without naming its node, from outside and from inside an actor; a name on two nodes
//! is a conflict naming both, resolved to the node that sorts first; a missing name; a wrong
//! type; and nodes that are down or do not answer, named instead of waited for.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use amber_actors::{Actor, ActorSystem, Context, SystemBuilder};
use amber_remote::{Cluster, ClusterError, ClusterEvent, NodeId, TransportConfig};
use support::bounded;
use support::relay::Relay;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

async fn node_with(name: &str, builder: SystemBuilder) -> Cluster {
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = TransportConfig::new(name, addr, b"cluster names test secret".to_vec());
    Cluster::start(builder, config).await.expect("start")
}

async fn node(name: &str) -> Cluster {
    node_with(name, ActorSystem::builder().ask_timeout(Duration::from_secs(5))).await
}

/// Waits (bounded) until `cluster` has `peers` linked and introduced.
async fn until_linked(cluster: &Cluster, peers: &[&str]) {
    let wait = async {
        loop {
            let nodes = cluster.nodes();
            if peers.iter().all(|p| nodes.contains(&NodeId::new(*p))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), wait).await.is_err() {
        panic!("{} never linked to {peers:?}", cluster.node());
    }
}

/// Three nodes `a`, `b`, `c`, each linked to the other two.
async fn mesh() -> (Cluster, Cluster, Cluster) {
    let (a, b, c) = (node("a").await, node("b").await, node("c").await);
    bounded(a.connect(b.local_addr())).await.expect("a to b");
    bounded(a.connect(c.local_addr())).await.expect("a to c");
    bounded(b.connect(c.local_addr())).await.expect("b to c");
    until_linked(&a, &["b", "c"]).await;
    until_linked(&b, &["a", "c"]).await;
    until_linked(&c, &["a", "b"]).await;
    (a, b, c)
}

async fn shutdown(nodes: &[&Cluster]) {
    for node in nodes {
        bounded(node.shutdown()).await;
    }
}

/// Answers with the name of the node it runs on.
struct Named(String);

impl Actor for Named {
    type Msg = ();
    type Reply = String;
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> String {
        self.0.clone()
    }
}

fn named(on: &Cluster, name: &str) {
    on.system().spawn_named(name, Named(on.node().to_string())).unwrap();
}

/// Another type, for lookups of the wrong one.
struct Other;

impl Actor for Other {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
}

/// Looks a name up cluster-wide from inside its handler and asks what it finds.
struct Finder(Cluster);

impl Actor for Finder {
    type Msg = String;
    type Reply = Result<String, String>;
    async fn handle(&mut self, name: String, _: &mut Context<Self>) -> Result<String, String> {
        let found = self.0.lookup_any::<Named>(&name).await.map_err(|e| e.to_string())?;
        found.ask(()).await.map_err(|e| e.to_string())
    }
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|n| NodeId::new(*n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_on_one_node_is_found_from_any_node_and_the_ref_works() {
    let (a, b, c) = mesh().await;
    named(&c, "solo");
    for from in [&a, &b, &c] {
        let solo = bounded(from.lookup_any::<Named>("solo")).await.expect("found");
        assert_eq!(bounded(solo.ask(())).await.unwrap(), "c", "looked up from {}", from.node());
    }
    // From inside an actor, as from outside.
    let finder = a.system().spawn(Finder(a.clone())).unwrap();
    assert_eq!(bounded(finder.ask("solo".into())).await.unwrap(), Ok("c".to_owned()));
    // The per-node lookup still works.
    let solo = bounded(b.lookup::<Named>(&NodeId::new("c"), "solo")).await.unwrap();
    assert_eq!(bounded(solo.ask(())).await.unwrap(), "c");
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_on_two_nodes_is_a_conflict_resolved_to_the_node_that_sorts_first() {
    let (a, b, c) = mesh().await;
    named(&c, "twice");
    named(&b, "twice");
    for from in [&a, &b, &c] {
        match bounded(from.lookup_any::<Named>("twice")).await {
            Err(ClusterError::NameConflict { name, nodes }) => {
                assert_eq!((name.as_str(), nodes), ("twice", ids(&["b", "c"])));
            }
            other => panic!("expected a conflict from {}, got {other:?}", from.node()),
        }
        // Whoever asks, the registration on b (it sorts before c) is picked.
        let picked = bounded(from.lookup_any_resolved::<Named>("twice")).await.unwrap();
        assert_eq!(bounded(picked.ask(())).await.unwrap(), "b", "resolved from {}", from.node());
    }
    let error = bounded(a.lookup_any::<Named>("twice")).await.unwrap_err();
    assert_eq!(error.to_string(), r#"actor name "twice" is registered on several nodes: b, c"#);
    let finder = c.system().spawn(Finder(c.clone())).unwrap();
    let refused = bounded(finder.ask("twice".into())).await.unwrap();
    assert_eq!(refused, Err(error.to_string()));
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_name_is_not_found_and_a_wrong_type_is_typed() {
    let (a, b, c) = mesh().await;
    match bounded(a.lookup_any::<Named>("nobody")).await {
        Err(ClusterError::NameNotFound { name, silent }) => {
            assert_eq!((name.as_str(), silent), ("nobody", vec![]));
        }
        other => panic!("expected not found, got {other:?}"),
    }
    match bounded(a.lookup_any_resolved::<Named>("nobody")).await {
        Err(ClusterError::NameNotFound { silent, .. }) => assert!(silent.is_empty()),
        other => panic!("expected not found, got {other:?}"),
    }
    b.system().spawn_named("other", Other).unwrap();
    match bounded(a.lookup_any::<Named>("other")).await {
        Err(ClusterError::WrongType { node, name, .. }) => {
            assert_eq!((node, name.as_str()), (NodeId::new("b"), "other"));
        }
        other => panic!("expected a wrong type, got {other:?}"),
    }
    // The rule picks b's registration (before c's) whatever type is asked for.
    named(&c, "other");
    match bounded(a.lookup_any_resolved::<Named>("other")).await {
        Err(ClusterError::WrongType { node, .. }) => assert_eq!(node, NodeId::new("b")),
        other => panic!("expected a wrong type, got {other:?}"),
    }
    assert!(bounded(a.lookup_any_resolved::<Other>("other")).await.is_ok());
    shutdown(&[&a, &b, &c]).await;
}

/// The next `Down` of `node` among `events`.
async fn down(events: &mut broadcast::Receiver<ClusterEvent>, node: &str) {
    bounded(async {
        loop {
            if let ClusterEvent::Down { node: n, .. } = events.recv().await.expect("alive")
                && n.as_str() == node
            {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_node_is_named_as_not_answering() {
    let (a, b, c) = (node("a").await, node("b").await, node("c").await);
    let relay = Relay::start(c.local_addr()).await;
    bounded(a.connect(b.local_addr())).await.unwrap();
    bounded(a.connect(relay.addr())).await.unwrap();
    named(&b, "on-b");
    named(&c, "on-c");
    assert_eq!(
        bounded(bounded(a.lookup_any::<Named>("on-c")).await.unwrap().ask(())).await.unwrap(),
        "c"
    );

    let mut events = a.subscribe();
    relay.cut(false); // the link drops, and redials fail while the relay stays closed
    down(&mut events, "c").await;
    match bounded(a.lookup_any::<Named>("on-c")).await {
        Err(ClusterError::NameNotFound { silent, .. }) => assert_eq!(silent, ids(&["c"])),
        other => panic!("expected not found with c silent, got {other:?}"),
    }
    let error = bounded(a.lookup_any::<Named>("on-c")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"no actor named "on-c" on any node that answered (did not answer: c)"#
    );
    // What the others hold is still found.
    let on_b = bounded(a.lookup_any::<Named>("on-b")).await.unwrap();
    assert_eq!(bounded(on_b.ask(())).await.unwrap(), "b");
    shutdown(&[&a, &b, &c]).await;
}

/// A TCP relay to `to` that can be frozen: it then holds both connections open and passes
/// nothing more, like a peer that hangs.
async fn freezing_relay(to: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (freeze, frozen) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(to).await else { continue };
            let mut frozen = frozen.clone();
            tokio::spawn(async move {
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                tokio::select! {
                    _ = tokio::io::copy(&mut in_read, &mut out_write) => {}
                    _ = tokio::io::copy(&mut out_read, &mut in_write) => {}
                    _ = frozen.wait_for(|f| *f) => {}
                }
                let _open = (in_read, in_write, out_read, out_write);
                std::future::pending::<()>().await
            });
        }
    });
    (addr, freeze)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_hangs_is_named_after_the_lookup_timeout_not_waited_for() {
    let timeout = Duration::from_millis(500);
    let a = node_with("a", ActorSystem::builder().ask_timeout(timeout)).await;
    let (b, c) = (node("b").await, node("c").await);
    let (via, freeze) = freezing_relay(c.local_addr()).await;
    bounded(a.connect(b.local_addr())).await.unwrap();
    bounded(a.connect(via)).await.unwrap();
    named(&b, "on-b");

    freeze.send(true).unwrap(); // c stays linked (until its heartbeats time out) but silent
    let started = Instant::now();
    match bounded(a.lookup_any::<Named>("anywhere")).await {
        Err(ClusterError::NameNotFound { silent, .. }) => assert_eq!(silent, ids(&["c"])),
        other => panic!("expected not found with c silent, got {other:?}"),
    }
    // One timeout for all the nodes asked, not one per node.
    assert!(started.elapsed() < timeout * 4, "took {:?}", started.elapsed());
    let on_b = bounded(a.lookup_any::<Named>("on-b")).await.unwrap();
    assert_eq!(bounded(on_b.ask(())).await.unwrap(), "b");
    shutdown(&[&a, &b, &c]).await;
}
