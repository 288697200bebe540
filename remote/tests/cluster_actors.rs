//! Actors on different nodes (two clusters in one process, over 127.0.0.1 with port 0):
//! remote tell and ask, refs inside messages, per-sender order, lookups, node down.

mod support;

use std::time::Duration;

use amber_actors::{Actor, ActorRef, ActorSystem, AskError, Context};
use amber_remote::{Cluster, ClusterError, NodeId, TransportConfig};
use serde::{Deserialize, Serialize};
use support::bounded;

async fn node(name: &str, secret: &[u8]) -> Cluster {
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = TransportConfig::new(name, addr, secret.to_vec())
        .with_heartbeat(Duration::from_millis(100), Duration::from_millis(600));
    let builder = ActorSystem::builder().ask_timeout(Duration::from_secs(5));
    Cluster::start(builder, config).await.expect("start")
}

async fn pair() -> (Cluster, Cluster, NodeId) {
    let a = node("a", b"cluster actors test secret").await;
    let b = node("b", b"cluster actors test secret").await;
    let peer = bounded(a.connect(b.local_addr())).await.expect("connect");
    (a, b, peer)
}

/// Records what it is told, in order; answers with the count.
#[derive(Default)]
struct Log {
    seen: Vec<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
enum LogMsg {
    Push(u64),
    Len,
    Ordered,
    /// Reply to the given ref with our length (a ref travelling inside a message).
    Report(ActorRef<Log>),
}

impl Actor for Log {
    type Msg = LogMsg;
    type Reply = u64;
    async fn handle(&mut self, msg: LogMsg, _: &mut Context<Self>) -> u64 {
        match msg {
            LogMsg::Push(n) => self.seen.push(n),
            LogMsg::Len => {}
            LogMsg::Ordered => return u64::from(self.seen.windows(2).all(|w| w[0] < w[1])),
            LogMsg::Report(to) => {
                let _ = to.tell(LogMsg::Push(self.seen.len() as u64)).await;
            }
        }
        self.seen.len() as u64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_and_ask_reach_an_actor_on_another_node() {
    let (a, b, peer) = pair().await;
    b.system().spawn_named("log", Log::default()).unwrap();
    let log = bounded(a.lookup::<Log>(&peer, "log")).await.expect("lookup");
    for i in 0..10 {
        log.tell(LogMsg::Push(i)).await.unwrap();
    }
    assert_eq!(bounded(log.ask(LogMsg::Len)).await.unwrap(), 10);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_sender_order_holds_across_the_link() {
    let (a, b, peer) = pair().await;
    b.system().spawn_named("log", Log::default()).unwrap();
    let log = bounded(a.lookup::<Log>(&peer, "log")).await.unwrap();
    for i in 0..20_000 {
        log.tell(LogMsg::Push(i)).await.unwrap();
    }
    assert_eq!(bounded(log.ask(LogMsg::Len)).await.unwrap(), 20_000);
    assert_eq!(bounded(log.ask(LogMsg::Ordered)).await.unwrap(), 1);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_inside_messages_route_back_to_their_node() {
    let (a, b, peer) = pair().await;
    b.system().spawn_named("remote-log", Log::default()).unwrap();
    let local = a.system().spawn(Log::default()).unwrap();
    let remote = bounded(a.lookup::<Log>(&peer, "remote-log")).await.unwrap();
    remote.tell(LogMsg::Push(1)).await.unwrap();
    remote.tell(LogMsg::Push(2)).await.unwrap();
    // `local` lives on a; b's actor decodes the ref and tells it across the link.
    remote.tell(LogMsg::Report(local.clone())).await.unwrap();
    bounded(async {
        while local.ask(LogMsg::Len).await.unwrap() < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(local.ask(LogMsg::Len).await.unwrap(), 1);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

struct Other;
impl Actor for Other {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_fail_with_typed_errors() {
    let (a, b, peer) = pair().await;
    b.system().spawn_named("log", Log::default()).unwrap();
    assert!(matches!(
        bounded(a.lookup::<Log>(&peer, "nobody")).await,
        Err(ClusterError::NotFound { .. })
    ));
    assert!(matches!(
        bounded(a.lookup::<Other>(&peer, "log")).await,
        Err(ClusterError::WrongType { .. })
    ));
    let stranger = NodeId::new("c");
    assert!(matches!(
        bounded(a.lookup::<Log>(&stranger, "log")).await,
        Err(ClusterError::NotConnected(_))
    ));
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

/// Never answers: holds the ask until its node goes away.
struct Sink;
impl Actor for Sink {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {
        std::future::pending::<()>().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_going_down_fails_pending_asks_and_later_sends() {
    let (a, b, peer) = pair().await;
    b.system().spawn_named("sink", Sink).unwrap();
    let sink = bounded(a.lookup::<Sink>(&peer, "sink")).await.unwrap();
    let before = a.transport().stats().frames_sent;
    let pending = {
        let sink = sink.clone();
        tokio::spawn(async move { sink.ask_timeout((), Duration::from_secs(15)).await })
    };
    // Let the ask leave before the node goes away.
    bounded(async {
        while a.transport().stats().frames_sent <= before {
            tokio::task::yield_now().await;
        }
    })
    .await;
    b.transport().shutdown().await; // the node disappears (its actors are unreachable)
    assert_eq!(
        bounded(pending).await.unwrap(),
        Err(AskError::NodeDown("b".into())),
        "failed at node down, not at timeout"
    );
    bounded(async {
        while a.transport().is_up(&peer) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(sink.tell(()).await.is_err(), "sends to a down node fail");
    assert_eq!(sink.ask(()).await, Err(AskError::NodeDown("b".into())));
    bounded(a.shutdown()).await;
    // b's sink is still inside its never-ending handler, so b's system cannot shut down
    // gracefully; its tasks end with the test's runtime.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_a_lone_node_snapshots_itself() {
    let a = node("a", b"the right shared secret").await;
    let b = node("b", b"the wrong shared secret").await;
    assert!(bounded(a.connect(b.local_addr())).await.is_err());
    let checkpoint = bounded(a.system().snapshot()).await.expect("a snapshot of node a alone");
    let nodes: Vec<&str> = checkpoint.manifest.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(nodes, ["a"], "the refused node is not part of it");
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}
