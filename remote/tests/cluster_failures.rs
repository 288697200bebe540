//! Remote refs when things go wrong (two clusters in one process, over 127.0.0.1 with port
//! 0): watching actors on another node and waiting for them to stop, that node going down
//! (link closed, link silent, node shut down) and coming back, asks nobody waits for any more,
//! and spawning on another node with the refusals it can answer.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use amber_actors::{
    Actor, ActorId, ActorRef, ActorState, ActorSystem, AskError, CodecError, Context, Down,
    ExitReason, StateError, SystemBuilder,
};
use amber_remote::{Cluster, ClusterError, NodeId, SpawnRefusal, TransportConfig};
use serde::{Deserialize, Serialize};
use support::bounded;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Waits (bounded) until `cond` holds, checking again every few milliseconds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let wait = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), wait).await.is_err() {
        panic!("waited 20 s for: {what}");
    }
}

async fn node_with(name: &str, builder: SystemBuilder) -> Cluster {
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = TransportConfig::new(name, addr, b"cluster failures test secret".to_vec())
        .with_heartbeat(Duration::from_millis(100), Duration::from_millis(600));
    Cluster::start(builder.ask_timeout(Duration::from_secs(5)), config).await.expect("start")
}

async fn pair_with(b_builder: SystemBuilder) -> (Cluster, Cluster, NodeId) {
    let a = node_with("a", ActorSystem::builder()).await;
    let b = node_with("b", b_builder).await;
    let peer = bounded(a.connect(b.local_addr())).await.expect("connect");
    (a, b, peer)
}

async fn pair() -> (Cluster, Cluster, NodeId) {
    pair_with(ActorSystem::builder()).await
}

/// The actor being watched.
struct Target;

#[derive(Debug, Serialize, Deserialize)]
enum TargetMsg {
    Ping,
    Panic,
    Stop,
}

impl Actor for Target {
    type Msg = TargetMsg;
    type Reply = ();
    async fn handle(&mut self, msg: TargetMsg, ctx: &mut Context<Self>) {
        match msg {
            TargetMsg::Ping => {}
            TargetMsg::Panic => panic!("boom"),
            TargetMsg::Stop => ctx.stop(),
        }
    }
}

/// Watches what it is told to, and reports every `Down` to the test.
struct Watcher {
    downs: mpsc::UnboundedSender<Down>,
}

#[derive(Debug, Serialize, Deserialize)]
enum WatcherMsg {
    Watch(ActorRef<Target>),
    Unwatch(ActorRef<Target>),
}

impl Actor for Watcher {
    type Msg = WatcherMsg;
    type Reply = ();
    async fn handle(&mut self, msg: WatcherMsg, ctx: &mut Context<Self>) {
        match msg {
            WatcherMsg::Watch(target) => ctx.watch(&target),
            WatcherMsg::Unwatch(target) => ctx.unwatch(&target),
        }
    }
    async fn on_down(&mut self, _: &mut Context<Self>, down: Down) {
        let _ = self.downs.send(down);
    }
}

fn watcher(cluster: &Cluster) -> (ActorRef<Watcher>, mpsc::UnboundedReceiver<Down>) {
    let (downs, rx) = mpsc::unbounded_channel();
    (cluster.system().spawn(Watcher { downs }).unwrap(), rx)
}

/// Spawns a target named `name` on `b` and returns `a`'s ref to it.
async fn target(a: &Cluster, b: &Cluster, peer: &NodeId, name: &str) -> ActorRef<Target> {
    b.system().spawn_named(name, Target).unwrap();
    bounded(a.lookup::<Target>(peer, name)).await.expect("lookup")
}

/// Waits until the actor `id` of `cluster`'s node has stopped.
async fn stopped_on(cluster: &Cluster, id: ActorId) {
    if let Ok(actor) = cluster.system().lookup_id::<Target>(id) {
        bounded(actor.wait_stopped()).await;
    }
}

async fn next_down(downs: &mut mpsc::UnboundedReceiver<Down>) -> Down {
    bounded(downs.recv()).await.expect("the watcher is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_remote_actor_reports_its_real_exit_reason() {
    let (a, b, peer) = pair().await;
    let panics = target(&a, &b, &peer, "panics").await;
    let stops = target(&a, &b, &peer, "stops").await;
    let (watcher, mut downs) = watcher(&a);
    bounded(watcher.ask(WatcherMsg::Watch(panics.clone()))).await.unwrap();
    bounded(watcher.ask(WatcherMsg::Watch(stops.clone()))).await.unwrap();
    until("b holds both watches", || b.watched_by_remote() == 2).await;
    assert_eq!(a.watching_remote(), 2);

    panics.tell(TargetMsg::Panic).await.unwrap();
    let down = next_down(&mut downs).await;
    assert_eq!(down.actor, panics.id());
    assert!(matches!(&down.reason, ExitReason::Panicked(m) if m.contains("boom")), "{down:?}");

    stops.tell(TargetMsg::Stop).await.unwrap();
    assert_eq!(
        next_down(&mut downs).await,
        Down { actor: stops.id(), reason: ExitReason::Stopped }
    );
    assert_eq!((a.watching_remote(), b.watched_by_remote()), (0, 0), "fired watches are gone");
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_remote_actor_that_is_gone_reports_down_at_once() {
    let (a, b, peer) = pair().await;
    let gone = target(&a, &b, &peer, "gone").await;
    gone.tell(TargetMsg::Stop).await.unwrap();
    stopped_on(&b, gone.id()).await;
    let (watcher, mut downs) = watcher(&a);
    bounded(watcher.ask(WatcherMsg::Watch(gone.clone()))).await.unwrap();
    assert_eq!(next_down(&mut downs).await, Down { actor: gone.id(), reason: ExitReason::Stopped });
    until("a forgets the answered watch", || a.watching_remote() == 0).await;
    assert_eq!(b.watched_by_remote(), 0);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatch_and_a_stopping_watcher_withdraw_the_watch_on_the_other_node() {
    let (a, b, peer) = pair().await;
    let first = target(&a, &b, &peer, "first").await;
    let second = target(&a, &b, &peer, "second").await;
    let (w, mut downs) = watcher(&a);
    bounded(w.ask(WatcherMsg::Watch(first.clone()))).await.unwrap();
    until("b holds the watch", || b.watched_by_remote() == 1).await;
    bounded(w.ask(WatcherMsg::Unwatch(first.clone()))).await.unwrap();
    assert_eq!(a.watching_remote(), 0);
    until("b drops the watch", || b.watched_by_remote() == 0).await;

    // `first` stops before `second`, and b sends their `Down`s in that order on one link:
    // the first `Down` the watcher sees is `second`'s only if `first`'s was never sent.
    bounded(w.ask(WatcherMsg::Watch(second.clone()))).await.unwrap();
    until("b holds the new watch", || b.watched_by_remote() == 1).await;
    first.tell(TargetMsg::Stop).await.unwrap();
    stopped_on(&b, first.id()).await;
    second.tell(TargetMsg::Stop).await.unwrap();
    assert_eq!(next_down(&mut downs).await.actor, second.id());

    // A watcher that stops withdraws its remote watches too.
    let third = target(&a, &b, &peer, "third").await;
    bounded(w.ask(WatcherMsg::Watch(third.clone()))).await.unwrap();
    until("b holds the watch of third", || b.watched_by_remote() == 1).await;
    w.stop();
    bounded(w.wait_stopped()).await;
    until("b drops the stopped watcher's watch", || b.watched_by_remote() == 0).await;
    assert_eq!(a.watching_remote(), 0);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_stopped_on_a_remote_ref_returns_the_real_reason_or_node_down() {
    let (a, b, peer) = pair().await;
    let panics = target(&a, &b, &peer, "panics").await;
    let gone = target(&a, &b, &peer, "gone").await;
    let stays = target(&a, &b, &peer, "stays").await;

    // A wait in progress hears the actor's real exit reason; the ref then says stopped.
    let waiting = {
        let panics = panics.clone();
        tokio::spawn(async move { panics.wait_stopped().await })
    };
    until("b holds the wait's watch", || b.watched_by_remote() == 1).await;
    assert!(!panics.is_stopped());
    panics.tell(TargetMsg::Panic).await.unwrap();
    let reason = bounded(waiting).await.unwrap();
    assert!(matches!(&reason, ExitReason::Panicked(m) if m.contains("boom")), "{reason:?}");
    assert!(panics.is_stopped());
    assert_eq!(bounded(panics.wait_stopped()).await, reason);
    assert_eq!((a.watching_remote(), b.watched_by_remote()), (0, 0), "the wait's watch is gone");

    // An actor already gone is answered at once.
    gone.tell(TargetMsg::Stop).await.unwrap();
    stopped_on(&b, gone.id()).await;
    assert_eq!(bounded(gone.wait_stopped()).await, ExitReason::Stopped);

    // A wait given up withdraws its watch on both nodes. (The ask's message follows the
    // withdrawal on the link, so b has handled it once the answer is back.)
    let mut abandoned = Box::pin(stays.wait_stopped());
    assert!(poll_once(abandoned.as_mut()).is_none());
    assert_eq!(a.watching_remote(), 1);
    drop(abandoned);
    assert_eq!(a.watching_remote(), 0);
    bounded(stays.ask(TargetMsg::Ping)).await.unwrap();
    assert_eq!(b.watched_by_remote(), 0);

    // The node going down ends a wait with NodeDown; the actor may still run there, so the
    // ref is not marked stopped.
    let waiting = {
        let stays = stays.clone();
        tokio::spawn(async move { stays.wait_stopped().await })
    };
    until("b holds the wait's watch", || b.watched_by_remote() == 1).await;
    b.transport().shutdown().await;
    assert_eq!(bounded(waiting).await.unwrap(), ExitReason::NodeDown("b".into()));
    assert!(!stays.is_stopped());
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

/// Polls `fut` once, with a waker that does nothing.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// A TCP relay to `to` that can be frozen: it then holds both connections open and passes
/// nothing more, like a link whose peer hangs.
async fn relay(to: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
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
async fn a_silent_link_times_out_into_node_down_and_a_reconnect_brings_refs_back() {
    let a = node_with("a", ActorSystem::builder()).await;
    let b = node_with("b", ActorSystem::builder()).await;
    let (via, freeze) = relay(b.local_addr()).await;
    let peer = bounded(a.connect(via)).await.expect("connect through the relay");
    let t = target(&a, &b, &peer, "t").await;
    let (w, mut downs) = watcher(&a);
    bounded(w.ask(WatcherMsg::Watch(t.clone()))).await.unwrap();
    until("b holds the watch", || b.watched_by_remote() == 1).await;

    freeze.send(true).unwrap(); // no more bytes either way: heartbeats time out on both sides
    let node_down = ExitReason::NodeDown("b".into());
    assert_eq!(next_down(&mut downs).await, Down { actor: t.id(), reason: node_down });
    assert_eq!(bounded(t.ask(TargetMsg::Ping)).await, Err(AskError::NodeDown("b".into())));
    until("b drops the watch of the lost node", || b.watched_by_remote() == 0).await;
    let a_id = NodeId::new("a");
    until("b sees the link down too", || !b.transport().is_up(&a_id)).await;

    // Back on a direct link: the old ref works again; the fired watch does not come back.
    assert_eq!(bounded(a.connect(b.local_addr())).await.unwrap(), peer);
    assert_eq!(bounded(t.ask(TargetMsg::Ping)).await, Ok(()));
    assert_eq!((a.watching_remote(), b.watched_by_remote()), (0, 0));
    bounded(w.ask(WatcherMsg::Watch(t.clone()))).await.unwrap();
    until("b holds the new watch", || b.watched_by_remote() == 1).await;
    t.tell(TargetMsg::Stop).await.unwrap();
    assert_eq!(next_down(&mut downs).await, Down { actor: t.id(), reason: ExitReason::Stopped });
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

/// Never answers while its gate is closed.
struct Parked {
    gate: watch::Receiver<bool>,
}

impl Actor for Parked {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {
        let _ = self.gate.wait_for(|open| *open).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_tells_every_watcher_and_fails_sends_and_asks_with_node_down() {
    let (a, b, peer) = pair().await;
    let one = target(&a, &b, &peer, "one").await;
    let two = target(&a, &b, &peer, "two").await;
    let (_gate, closed) = watch::channel(false);
    b.system().spawn_named("parked", Parked { gate: closed }).unwrap();
    let parked = bounded(a.lookup::<Parked>(&peer, "parked")).await.unwrap();
    let (w1, mut downs1) = watcher(&a);
    let (w2, mut downs2) = watcher(&a);
    bounded(w1.ask(WatcherMsg::Watch(one.clone()))).await.unwrap();
    bounded(w1.ask(WatcherMsg::Watch(two.clone()))).await.unwrap();
    bounded(w2.ask(WatcherMsg::Watch(two.clone()))).await.unwrap();
    until("b holds the three watches", || b.watched_by_remote() == 3).await;
    let pending = {
        let parked = parked.clone();
        tokio::spawn(async move { parked.ask_timeout((), Duration::from_secs(15)).await })
    };
    until("the ask is pending", || a.pending_asks() == 1).await;

    b.transport().shutdown().await; // the node disappears; its actors are still running

    let node_down = ExitReason::NodeDown("b".into());
    let mut seen = vec![next_down(&mut downs1).await, next_down(&mut downs1).await];
    seen.sort_by_key(|d| d.actor != one.id());
    assert_eq!(
        seen,
        [
            Down { actor: one.id(), reason: node_down.clone() },
            Down { actor: two.id(), reason: node_down.clone() }
        ]
    );
    assert_eq!(next_down(&mut downs2).await, Down { actor: two.id(), reason: node_down.clone() });
    assert!(node_down.is_failure());
    assert_eq!(a.watching_remote(), 0);
    assert_eq!(bounded(pending).await.unwrap(), Err(AskError::NodeDown("b".into())));
    assert_eq!(a.pending_asks(), 0);

    // Later: sends fail, asks say why, and a new watch is answered at once.
    assert!(one.tell(TargetMsg::Ping).await.is_err());
    assert_eq!(bounded(one.ask(TargetMsg::Ping)).await, Err(AskError::NodeDown("b".into())));
    let (w3, mut downs3) = watcher(&a);
    bounded(w3.ask(WatcherMsg::Watch(one.clone()))).await.unwrap();
    assert_eq!(next_down(&mut downs3).await, Down { actor: one.id(), reason: node_down });
    bounded(a.shutdown()).await;
    // b's parked actor never finishes its handler, so b's system is left to the runtime.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_tells_watchers_and_the_other_side_drops_its_watches() {
    let (a, b, peer) = pair().await;
    let t = target(&a, &b, &peer, "t").await;
    let (w, mut downs) = watcher(&a);
    bounded(w.ask(WatcherMsg::Watch(t.clone()))).await.unwrap();
    until("b holds the watch", || b.watched_by_remote() == 1).await;
    bounded(b.shutdown()).await;
    // The actor's own `Down` races the link's closing: either tells the watcher, once.
    let down = next_down(&mut downs).await;
    assert_eq!(down.actor, t.id());
    assert!(
        down.reason == ExitReason::Shutdown || down.reason == ExitReason::NodeDown("b".into()),
        "{down:?}"
    );
    until("a forgets the watch", || a.watching_remote() == 0).await;
    assert_eq!(b.watched_by_remote(), 0, "b's stand-in fired and was dropped");
    bounded(a.shutdown()).await;

    // The watched side: when the watcher's node goes, its watches are dropped.
    let (a, b, peer) = pair().await;
    let t = target(&a, &b, &peer, "t").await;
    let (w, _downs) = watcher(&a);
    bounded(w.ask(WatcherMsg::Watch(t.clone()))).await.unwrap();
    until("b holds the watch", || b.watched_by_remote() == 1).await;
    a.transport().shutdown().await;
    until("b drops the lost node's watch", || b.watched_by_remote() == 0).await;
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_abandoned_by_their_timeout_are_freed_while_live_ones_are_kept() {
    let (a, b, peer) = pair().await;
    let (open, closed) = watch::channel(false);
    b.system().spawn_named("parked", Parked { gate: closed }).unwrap();
    let parked = bounded(a.lookup::<Parked>(&peer, "parked")).await.unwrap();
    let live = {
        let parked = parked.clone();
        tokio::spawn(async move { parked.ask_timeout((), Duration::from_secs(15)).await })
    };
    until("the live ask is pending", || a.pending_asks() == 1).await;

    let short = Duration::from_millis(50);
    let abandoned: Vec<_> = (0..100)
        .map(|_| {
            let parked = parked.clone();
            tokio::spawn(async move { parked.ask_timeout((), short).await })
        })
        .collect();
    for ask in abandoned {
        assert_eq!(bounded(ask).await.unwrap(), Err(AskError::Timeout(short)));
    }
    until("the abandoned asks are freed", || a.pending_asks() == 1).await;

    open.send(true).unwrap(); // b answers everything: the live ask gets its reply
    assert_eq!(bounded(live).await.unwrap(), Ok(()));
    until("no ask is pending", || a.pending_asks() == 0).await;
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

/// A counter whose state travels to another node.
struct Counter {
    count: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type Reply = u64;
    async fn handle(&mut self, msg: CounterMsg, _: &mut Context<Self>) -> u64 {
        if let CounterMsg::Add(n) = msg {
            self.count += n;
        }
        self.count
    }
}

impl ActorState for Counter {
    const TYPE_NAME: &'static str = "test.Counter";

    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(&self.count)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        if version != Self::VERSION {
            return Err(StateError::UnknownVersion {
                type_name: Self::TYPE_NAME,
                found: version,
                current: Self::VERSION,
            });
        }
        Ok(Counter { count: system.decode(bytes)? })
    }
}

/// The same stored name as [`Counter`], from newer code: a layout the other node cannot read.
struct CounterV2 {
    count: u64,
}

impl Actor for CounterV2 {
    type Msg = CounterMsg;
    type Reply = u64;
    async fn handle(&mut self, _: CounterMsg, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

impl ActorState for CounterV2 {
    const TYPE_NAME: &'static str = "test.Counter";
    const VERSION: u32 = 2;

    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(&(self.count, "v2"))
    }

    fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        let (count, _): (u64, String) = system.decode(bytes)?;
        Ok(CounterV2 { count })
    }
}

/// Registered on the other node, but its decode hook panics.
struct Fragile;

impl Actor for Fragile {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
}

impl ActorState for Fragile {
    const TYPE_NAME: &'static str = "test.Fragile";

    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(&())
    }

    fn decode_state(_: u32, _: &[u8], _: &ActorSystem) -> Result<Self, StateError> {
        panic!("a bug in a decode hook")
    }
}

/// Known here, not registered on the other node.
struct Unregistered;

impl Actor for Unregistered {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
}

impl ActorState for Unregistered {
    const TYPE_NAME: &'static str = "test.Unregistered";

    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(&())
    }

    fn decode_state(_: u32, _: &[u8], _: &ActorSystem) -> Result<Self, StateError> {
        Ok(Unregistered)
    }
}

/// The reason of a refused spawn on node b.
fn refusal<T>(result: Result<T, ClusterError>) -> SpawnRefusal {
    match result {
        Err(ClusterError::SpawnRefused { node, reason }) => {
            assert_eq!(node.as_str(), "b");
            reason
        }
        Err(other) => panic!("not a refusal: {other}"),
        Ok(_) => panic!("spawned"),
    }
}

fn registering() -> SystemBuilder {
    ActorSystem::builder().register::<Counter>().register::<Fragile>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_on_builds_a_registered_actor_on_the_other_node() {
    let (a, b, peer) = pair_with(registering()).await;
    let counter = bounded(a.spawn_on(&peer, Some("counter"), Counter { count: 5 })).await.unwrap();
    assert_eq!(bounded(counter.ask(CounterMsg::Add(2))).await.unwrap(), 7);
    assert_eq!(counter.id().system(), b.system().id(), "it lives on b");
    let there = b.system().lookup::<Counter>("counter").expect("registered under its name");
    assert_eq!(there.id(), counter.id());
    assert_eq!(bounded(there.ask(CounterMsg::Get)).await.unwrap(), 7);

    let anonymous = bounded(a.spawn_on(&peer, None, Counter { count: 1 })).await.unwrap();
    assert_eq!(bounded(anonymous.ask(CounterMsg::Get)).await.unwrap(), 1);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_on_refusals_are_typed_errors() {
    let (a, b, peer) = pair_with(registering()).await;
    assert_eq!(
        refusal(bounded(a.spawn_on(&peer, None, Unregistered)).await),
        SpawnRefusal::UnknownType("test.Unregistered".into())
    );
    let unreadable = refusal(bounded(a.spawn_on(&peer, None, CounterV2 { count: 1 })).await);
    assert!(
        matches!(&unreadable, SpawnRefusal::State(m) if m.contains("version 2")),
        "{unreadable}"
    );
    let panicked = refusal(bounded(a.spawn_on(&peer, None, Fragile)).await);
    assert!(matches!(&panicked, SpawnRefusal::State(m) if m.contains("decode hook")), "{panicked}");
    bounded(a.spawn_on(&peer, Some("taken"), Counter { count: 0 })).await.unwrap();
    assert_eq!(
        refusal(bounded(a.spawn_on(&peer, Some("taken"), Counter { count: 1 })).await),
        SpawnRefusal::NameTaken("taken".into())
    );
    let stranger = NodeId::new("c");
    assert!(matches!(
        bounded(a.spawn_on(&stranger, None, Counter { count: 0 })).await,
        Err(ClusterError::NotConnected(_))
    ));

    // b survived all of it and still spawns.
    let ok = bounded(a.spawn_on(&peer, None, Counter { count: 3 })).await.unwrap();
    assert_eq!(bounded(ok.ask(CounterMsg::Get)).await.unwrap(), 3);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}
