//! Sharded entities against plain refs: tell throughput through an [`EntityRef`] kept by the
//! sender versus a direct [`ActorRef`] to the same kind of actor, on one node and across two;
//! what addressing a key afresh each time costs (a new `EntityRef` per message); how long a
//! join takes to move the shards the new node owns; and, while a sender on another node
//! streams to 100 probe entities through the join, the longest gap each probe saw between
//! two of its messages (for those that moved: the move's pause plus the stream's cycle).
//!
//! `cargo run --release -p amber-remote --example sharding_bench`

#[path = "support/counter.rs"]
mod counter;

use std::time::{Duration, Instant};

use amber_actors::{Actor, ActorRef, ActorState, ActorSystem, CodecError, Context, StateError};
use amber_remote::{Cluster, EntityRef, Sharding, TransportConfig};
use counter::{Count, Counter};
use serde::{Deserialize, Serialize};

/// When this process started, for times that travel in a probe's state.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A probe entity: on each `Tick` it notes the longest gap since the previous one, on
/// whichever node it runs (the time travels in its state; the nodes share one process).
#[derive(Default, Serialize, Deserialize)]
struct Probe {
    last_ns: u64,
    max_gap_ns: u64,
}

/// `true`: a tick; `false`: asks for the longest gap (ns).
type Tick = bool;

impl Actor for Probe {
    type Msg = Tick;
    type Reply = u64;
    async fn handle(&mut self, tick: Tick, _: &mut Context<Self>) -> u64 {
        if tick {
            let now = now_ns();
            if self.last_ns > 0 {
                self.max_gap_ns = self.max_gap_ns.max(now - self.last_ns);
            }
            self.last_ns = now;
        }
        self.max_gap_ns
    }
}

impl ActorState for Probe {
    const TYPE_NAME: &'static str = "bench.Probe";
    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(self)
    }
    fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        Ok(system.decode(bytes)?)
    }
}

/// A ref the benchmark sends through: plain or sharded.
trait Target {
    fn send(&self, m: Count) -> impl std::future::Future<Output = ()>;
    fn get(&self) -> impl std::future::Future<Output = u64>;
}

impl Target for ActorRef<Counter> {
    async fn send(&self, m: Count) {
        assert!(self.tell(m).await.is_ok(), "tell");
    }
    async fn get(&self) -> u64 {
        self.ask(Count::Get).await.expect("ask")
    }
}

impl Target for EntityRef<Counter> {
    async fn send(&self, m: Count) {
        assert!(self.tell(m).await.is_ok(), "tell");
    }
    async fn get(&self) -> u64 {
        self.ask(Count::Get).await.expect("ask")
    }
}

/// Tells `n` messages round-robin over `refs`, then checks they all arrived; returns
/// messages per second.
async fn rate<R: Target>(refs: &[R], n: u64) -> f64 {
    let mut before = 0;
    for r in refs {
        before += r.get().await;
    }
    let start = Instant::now();
    for i in 0..n {
        refs[(i % refs.len() as u64) as usize].send(Count::Add(1)).await;
    }
    let mut after = 0;
    for r in refs {
        after += r.get().await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(after, before + n, "every message arrived");
    n as f64 / elapsed
}

fn builder() -> amber_actors::SystemBuilder {
    ActorSystem::builder()
        .register::<Counter>()
        .register::<Probe>()
        .ask_timeout(Duration::from_secs(30))
}

fn config(name: &str) -> TransportConfig {
    let addr = "127.0.0.1:0".parse().unwrap();
    TransportConfig::new(name, addr, b"benchmark secret, 32 bytes long!".to_vec())
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn each(v: &[f64]) -> String {
    v.iter().map(|x| format!("{:.2}", x / 1e6)).collect::<Vec<_>>().join(", ")
}

/// Rounds of `n` tells over `keys` entities, direct and sharded alternately; prints them.
async fn compare(
    label: &str,
    direct_refs: &[ActorRef<Counter>],
    entities: &[EntityRef<Counter>],
    n: u64,
) {
    rate(direct_refs, n / 10).await; // warm up
    rate(entities, n / 10).await;
    let (mut d, mut s) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        d.push(rate(direct_refs, n).await);
        s.push(rate(entities, n).await);
    }
    println!(
        "{label}: direct {:.2} M msg/s, sharded {:.2} M msg/s (sharded/direct {:.2}), best of 5",
        best(&d) / 1e6,
        best(&s) / 1e6,
        best(&s) / best(&d)
    );
    println!("  each round (M msg/s): direct {}; sharded {}", each(&d), each(&s));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Cluster::start(builder(), config("a")).await.unwrap();
    let on_a = Sharding::<Counter>::start(&a, 64).unwrap();
    println!("amber sharded entities (2 workers, nodes in one process over loopback)");

    // One node: the entities and the plain actors live where the sender does.
    for keys in [1usize, 1000] {
        let direct_refs: Vec<_> =
            (0..keys).map(|_| a.system().spawn(Counter::default()).unwrap()).collect();
        let entities: Vec<_> = (0..keys).map(|k| on_a.entity(format!("local {k}"))).collect();
        compare(
            &format!("one node, tell to {keys} actor(s), 500k msgs"),
            &direct_refs,
            &entities,
            500_000,
        )
        .await;
    }

    // A new EntityRef per message: the key is hashed and looked up by name each time.
    let keys = 1000u64;
    for k in 0..keys {
        on_a.entity(format!("fresh {k}")).ask(Count::Get).await.unwrap();
    }
    let n = 200_000u64;
    let start = Instant::now();
    for i in 0..n {
        on_a.entity(format!("fresh {}", i % keys)).tell(Count::Add(1)).await.unwrap();
    }
    let fresh = n as f64 / start.elapsed().as_secs_f64();
    println!("one node, a new EntityRef per message over 1000 keys: {:.2} M msg/s", fresh / 1e6);

    // Two nodes: the entity on b, the sender on a.
    let b = Cluster::start(builder(), config("b")).await.unwrap();
    let on_b = Sharding::<Counter>::start(&b, 64).unwrap();
    a.connect(b.local_addr()).await.unwrap();
    let key = (0..)
        .map(|k| format!("remote {k}"))
        .find(|k| on_a.owner_of(on_a.shard_of(k)) == Some(b.node().clone()))
        .unwrap();
    let entity = on_a.entity(key.clone());
    entity.ask(Count::Get).await.unwrap();
    b.system().spawn_named("plain", Counter::default()).unwrap();
    let plain = a.lookup::<Counter>(b.node(), "plain").await.unwrap();
    compare("two nodes, tell a -> b, 1 actor, 500k msgs", &[plain], &[entity], 500_000).await;

    // A join: c takes the shards it owns now from a and b, which move those entities live.
    let keys = 2000;
    for k in 0..keys {
        on_a.entity(format!("account {k}")).ask(Count::Add(k)).await.unwrap();
    }
    let before = on_a.local_keys().len() + on_b.local_keys().len();
    let probes_a = Sharding::<Probe>::start(&a, 64).unwrap();
    let probes_b = Sharding::<Probe>::start(&b, 64).unwrap();
    let probes: Vec<_> = (0..100).map(|k| probes_b.entity(format!("probe {k}"))).collect();
    for p in &probes {
        p.ask(true).await.unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let (probes, stop) = (probes.clone(), stop.clone());
        tokio::spawn(async move {
            let mut after = 0;
            while after < 200 {
                for p in &probes {
                    p.tell(true).await.unwrap();
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    after += 1;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let c = Cluster::start(builder(), config("c")).await.unwrap();
    let on_c = Sharding::<Counter>::start(&c, 64).unwrap();
    let probes_c = Sharding::<Probe>::start(&c, 64).unwrap();
    let start = Instant::now();
    c.connect(a.local_addr()).await.unwrap();
    c.connect(b.local_addr()).await.unwrap();
    for s in [&on_a, &on_b] {
        s.rebalanced().wait_for(|n| n.len() == 3).await.unwrap();
    }
    let took = start.elapsed();
    for s in [&probes_a, &probes_b] {
        s.rebalanced().wait_for(|n| n.len() == 3).await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    stream.await.unwrap();
    let moved_probes = probes_c.local_keys();
    let (mut moved_gaps, mut stayed_gaps) = (Vec::new(), Vec::new());
    for (k, p) in probes.iter().enumerate() {
        let gap = p.ask(false).await.unwrap() as f64 / 1e6;
        match moved_probes.contains(&format!("probe {k}")) {
            true => moved_gaps.push(gap),
            false => stayed_gaps.push(gap),
        }
    }
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(f64::NAN)
    };
    println!(
        "longest gap between two messages of a probe streamed to from b during the join: {} moved: p50 {:.2} ms, max {:.2} ms; {} stayed: p50 {:.2} ms, max {:.2} ms",
        moved_gaps.len(),
        q(&mut moved_gaps, 0.5),
        q(&mut moved_gaps, 1.0),
        stayed_gaps.len(),
        q(&mut stayed_gaps, 0.5),
        q(&mut stayed_gaps, 1.0)
    );
    let moved = on_c.local_keys().len();
    let shards = (0..64).filter(|&s| on_c.owner_of(s).as_ref() == Some(c.node())).count();
    println!(
        "join of a third node with {before} entities on two (the {keys} accounts and the earlier rounds'): it owns {shards} of 64 shards; {moved} entities moved in {:.0} ms ({:.2} ms per entity, moves one after the other on each node)",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / moved.max(1) as f64
    );
    for k in 0..keys {
        let n = on_c.entity(format!("account {k}")).ask(Count::Get).await.unwrap();
        assert_eq!(n, k, "account {k} kept its count");
    }
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}
