//! Cross-node snapshot latency: three nodes in one process, meshed over 127.0.0.1, each with
//! N idle actors; snapshots started from node `a` span all three. For the cross-node overhead,
//! the same rounds alternate with snapshots of one plain system holding all 3N actors.
//!
//! Prints the latency of every round, p50 / min / max, the actors and nodes in the checkpoint
//! (asserted: 3N actors, 3 nodes) and the encoded checkpoint size. `--busy` links the first
//! actors of every node into a ring whose every hop crosses nodes (the single system gets the
//! same ring, locally) with tokens circulating during the snapshots; the two setups then run
//! one after the other, each competing with its own load only.
//!
//! `cargo run --release --example cluster_snapshot_bench [-- --actors 30000 --rounds 7 --busy --json]`
//!
//! With `RUST_LOG=amber_actors::snapshot::engine=debug` the engine logs when every snapshot
//! starts and completes (with its time on the coordinator).

#[path = "flags/mod.rs"]
mod flags;

use std::time::{Duration, Instant};

use amber::prelude::*;
use amber::{Cluster, TransportConfig};
use clap::Parser;
use hdrhistogram::Histogram;

/// An actor with a little state; idle unless it is part of the `--busy` ring.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bench.ClusterCell")]
pub struct Cell {
    value: u64,
    next: Option<ActorRef<Cell>>,
    passed: u64,
}

#[amber::actor]
impl Cell {
    fn link(&mut self, next: ActorRef<Cell>) {
        self.next = Some(next);
    }

    async fn token(&mut self) {
        self.passed += 1;
        if let Some(next) = &self.next {
            let _ = next.token().await;
        }
    }
}

/// Relays per node in the `--busy` ring, and tokens circulating on it.
const RING_PER_NODE: usize = 1_000;
const TOKENS: usize = 200;

/// Cross-node snapshot latency: three nodes in one process over loopback, N actors each,
/// snapshots started from node a, alternating with snapshots of one system holding all 3N.
#[derive(Debug, Parser)]
#[command(
    name = "cluster_snapshot_bench",
    after_help = "With RUST_LOG=amber_actors::snapshot::engine=debug the engine logs when \
                  every snapshot starts and completes."
)]
struct Options {
    /// Actors per node (underscores allowed: 30_000).
    #[arg(long, value_name = "N", default_value = "30000", value_parser = flags::positive)]
    actors: usize,
    /// Snapshots measured per setup.
    #[arg(long, value_name = "N", default_value = "7", value_parser = flags::positive)]
    rounds: usize,
    /// A ring whose every hop crosses nodes carries tokens during the snapshots.
    #[arg(long)]
    busy: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 (from a histogram of microseconds with 3 significant figures: within 0.1 % of the
/// exact one, and between the min and the max), min and max of latencies in milliseconds.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut h = Histogram::<u64>::new(3).expect("3 significant figures is a valid precision");
    for ms in v {
        h.record((ms * 1e3).round() as u64).expect("a resizing histogram takes any value");
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    (((h.value_at_quantile(0.5) as f64) / 1e3).clamp(min, max), min, max)
}

fn builder() -> amber::SystemBuilder {
    ActorSystem::builder().register::<Cell>()
}

fn spawn_cells(system: &ActorSystem, n: usize, first: usize) -> Vec<ActorRef<Cell>> {
    (0..n)
        .map(|i| {
            let cell = Cell { value: (first + i) as u64, ..Cell::default() };
            system.spawn(cell).expect("spawn")
        })
        .collect()
}

/// Links `ring` (refs as seen from the system of each one's predecessor) into a ring and
/// starts `TOKENS` tokens on it.
async fn start_ring(ring: &[(ActorRef<Cell>, ActorRef<Cell>)]) {
    for (relay, next) in ring {
        relay.link(next.clone()).await.expect("link");
    }
    for (relay, _) in ring.iter().step_by((ring.len() / TOKENS).max(1)) {
        relay.token().await.expect("token");
    }
}

/// Three meshed nodes `a`, `b`, `c` with `n` cells each; node `a` first.
async fn cluster(n: usize, busy: bool) -> Vec<Cluster> {
    let addr = "127.0.0.1:0".parse().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let config = TransportConfig::new(name, addr, b"benchmark secret, 32 bytes long!".to_vec());
        nodes.push(Cluster::start(builder(), config).await.expect("node starts"));
    }
    for i in 0..nodes.len() {
        for j in i + 1..nodes.len() {
            nodes[i].connect(nodes[j].local_addr()).await.expect("connect");
        }
    }
    while nodes.iter().any(|n| n.nodes().len() < 2) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cells: Vec<_> =
        nodes.iter().enumerate().map(|(k, node)| spawn_cells(node.system(), n, k * n)).collect();
    if busy {
        // Relay j of node k passes to relay j of node k+1; node c's passes to relay j+1 of
        // node a: every hop crosses nodes. Each next ref is resolved on the sender's node.
        let k = RING_PER_NODE.min(n);
        let on = |from: usize, to: usize| -> Vec<ActorRef<Cell>> {
            let bytes = nodes[to].system().encode(&cells[to][..k]).expect("refs encode");
            nodes[from].system().decode(&bytes).expect("refs resolve")
        };
        let (ab, bc, ca) = (on(0, 1), on(1, 2), on(2, 0));
        let mut ring = Vec::with_capacity(3 * k);
        for j in 0..k {
            ring.push((cells[0][j].clone(), ab[j].clone()));
            ring.push((cells[1][j].clone(), bc[j].clone()));
            ring.push((cells[2][j].clone(), ca[(j + 1) % k].clone()));
        }
        start_ring(&ring).await;
    }
    nodes
}

/// One plain system with `3n` cells (and, if busy, the same ring, all local).
async fn single(n: usize, busy: bool) -> ActorSystem {
    let system = builder().build();
    let cells = spawn_cells(&system, 3 * n, 0);
    if busy {
        let k = RING_PER_NODE.min(n);
        let order: Vec<&ActorRef<Cell>> =
            (0..k).flat_map(|j| [&cells[j], &cells[n + j], &cells[2 * n + j]]).collect();
        let ring: Vec<_> = (0..order.len())
            .map(|i| (order[i].clone(), order[(i + 1) % order.len()].clone()))
            .collect();
        start_ring(&ring).await;
    }
    system
}

/// Takes one snapshot of `system` and checks it holds `actors` actors of `nodes` nodes.
/// Returns its latency and the messages in flight it recorded.
async fn snapshot(system: &ActorSystem, actors: usize, nodes: usize) -> (f64, usize) {
    let t = Instant::now();
    let cp = system.snapshot().await.expect("snapshot");
    let took = ms(t.elapsed());
    assert_eq!(cp.manifest.nodes.len(), nodes, "the manifest lists every node");
    assert_eq!(cp.manifest.actors.len(), actors, "the checkpoint holds every node's actors");
    (took, cp.in_flight.len())
}

/// Latencies and in-flight counts of the rounds taken so far, of one setup.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    in_flight: usize,
}

impl Series {
    fn push(&mut self, (ms, in_flight): (f64, usize)) {
        self.ms.push(ms);
        self.in_flight += in_flight;
    }
}

/// The checkpoint of a first snapshot, not counted (every actor has run its start): its
/// encoded size.
async fn warm_up(system: &ActorSystem, actors: usize, nodes: &[&str]) -> usize {
    let warm = system.snapshot().await.expect("snapshot");
    let mut names: Vec<&str> = warm.manifest.nodes.iter().map(|e| e.node.as_str()).collect();
    names.sort_unstable();
    if nodes.len() > 1 {
        assert_eq!(names, nodes, "the manifest lists the nodes");
    }
    assert_eq!(warm.manifest.actors.len(), actors, "the checkpoint holds every actor");
    amber::snapshot::encode(&warm).expect("encode").len()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let Options { actors: n, rounds, busy, json } = Options::parse();
    let settle = || tokio::time::sleep(Duration::from_millis(200)); // let the tokens spread (load, not sync)
    let (mut across, mut local) = (Series::default(), Series::default());
    let (cluster_bytes, one_bytes);
    let t = Instant::now();
    if busy {
        // One setup at a time, so each snapshot competes with its own system's load only.
        let nodes = cluster(n, true).await;
        settle().await;
        cluster_bytes = warm_up(nodes[0].system(), 3 * n, &["a", "b", "c"]).await;
        for _ in 0..rounds {
            across.push(snapshot(nodes[0].system(), 3 * n, 3).await);
        }
        for node in &nodes {
            node.shutdown().await;
        }
        let one = single(n, true).await;
        settle().await;
        one_bytes = warm_up(&one, 3 * n, &[]).await;
        for _ in 0..rounds {
            local.push(snapshot(&one, 3 * n, 1).await);
        }
        one.shutdown().await;
    } else {
        // Both idle setups side by side, rounds alternating, so load drift on a shared
        // machine hits both alike.
        let nodes = cluster(n, false).await;
        let one = single(n, false).await;
        cluster_bytes = warm_up(nodes[0].system(), 3 * n, &["a", "b", "c"]).await;
        one_bytes = warm_up(&one, 3 * n, &[]).await;
        for _ in 0..rounds {
            across.push(snapshot(nodes[0].system(), 3 * n, 3).await);
            local.push(snapshot(&one, 3 * n, 1).await);
        }
        one.shutdown().await;
        for node in &nodes {
            node.shutdown().await;
        }
    }
    let total = ms(t.elapsed());
    let (p50, min, max) = stats(&across.ms);
    let (one_p50, one_min, one_max) = stats(&local.ms);
    let target_ms = 200.0;
    if json {
        let out = serde_json::json!({
            "bench": "cluster_snapshot",
            "nodes": 3,
            "actors_per_node": n,
            "actors_total": 3 * n,
            "busy": busy,
            "rounds": rounds,
            "cluster_ms": across.ms,
            "cluster_p50_ms": p50,
            "cluster_min_ms": min,
            "cluster_max_ms": max,
            "cluster_checkpoint_bytes": cluster_bytes,
            "cluster_in_flight_per_snapshot": across.in_flight / rounds,
            "single_ms": local.ms,
            "single_p50_ms": one_p50,
            "single_min_ms": one_min,
            "single_max_ms": one_max,
            "single_checkpoint_bytes": one_bytes,
            "single_in_flight_per_snapshot": local.in_flight / rounds,
            "ratio_p50": p50 / one_p50,
            "target_ms": target_ms,
            "target_met": p50 < target_ms,
            "total_ms": total,
        });
        println!("{out}");
        return;
    }
    let load = if busy {
        format!(
            "busy: {TOKENS} tokens on a ring of {} relays, setups one after the other",
            3 * RING_PER_NODE.min(n)
        )
    } else {
        "idle, rounds alternating".to_owned()
    };
    println!(
        "amber cross-node snapshots (tokio multi-thread, 2 workers, 3 nodes in one process over loopback; {load})"
    );
    for (i, (c, o)) in across.ms.iter().zip(&local.ms).enumerate() {
        println!("  round {}: 3 nodes {c:>7.1} ms, 1 node {o:>7.1} ms", i + 1);
    }
    println!(
        "3 nodes x {n} actors, from node a: p50 {p50:.1} ms, min {min:.1} ms, max {max:.1} ms; checkpoint {} actors, 3 nodes, {cluster_bytes} B; {} in flight per snapshot",
        3 * n,
        across.in_flight / rounds
    );
    println!(
        "1 node x {} actors:                p50 {one_p50:.1} ms, min {one_min:.1} ms, max {one_max:.1} ms; checkpoint {one_bytes} B; {} in flight per snapshot",
        3 * n,
        local.in_flight / rounds
    );
    println!(
        "cross-node / one node (p50): {:.2}x; target p50 < {target_ms} ms: {}",
        p50 / one_p50,
        if p50 < target_ms { "met" } else { "MISSED" },
    );
}
