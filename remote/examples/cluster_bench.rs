//! Remote actor throughput and latency over loopback, with local tell in the same run:
//! one sender tells N small messages to an actor on another node, then asks once to confirm
//! all arrived; then sequential remote asks.
//!
//! `cargo run --release -p amber-remote --example cluster_bench`

#[path = "support/counter.rs"]
mod counter;

use std::time::{Duration, Instant};

use amber_actors::{ActorRef, ActorSystem};
use amber_remote::{Cluster, TransportConfig};
use counter::{Count, Counter};

async fn tells(counter: &ActorRef<Counter>, n: u64) -> f64 {
    let before = counter.ask(Count::Get).await.expect("ask");
    let start = Instant::now();
    for _ in 0..n {
        counter.tell(Count::Add(1)).await.expect("tell");
    }
    assert_eq!(counter.ask(Count::Get).await.expect("ask"), before + n);
    n as f64 / start.elapsed().as_secs_f64()
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let secret = b"benchmark secret, 32 bytes long!".to_vec();
    let builder = || ActorSystem::builder().ask_timeout(Duration::from_secs(30));
    let a =
        Cluster::start(builder(), TransportConfig::new("a", addr, secret.clone())).await.unwrap();
    let b = Cluster::start(builder(), TransportConfig::new("b", addr, secret)).await.unwrap();
    b.system().spawn_named("counter", Counter::default()).unwrap();
    let peer = a.connect(b.local_addr()).await.unwrap();
    let remote = a.lookup::<Counter>(&peer, "counter").await.unwrap();
    let local = a.system().spawn(Counter::default()).unwrap();

    let n = 500_000;
    tells(&remote, 50_000).await; // warm up
    let (mut r, mut l) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        r.push(tells(&remote, n).await);
        l.push(tells(&local, n).await);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!("amber cluster over loopback (2 workers, 2 nodes in one process)");
    println!(
        "tell, 1 sender -> 1 actor, {n} small messages: remote {:.2} M msg/s, local {:.2} M msg/s (remote/local {:.2}), best of 3",
        best(&r) / 1e6,
        best(&l) / 1e6,
        best(&r) / best(&l)
    );
    let each =
        |v: &[f64]| v.iter().map(|x| format!("{:.2}", x / 1e6)).collect::<Vec<_>>().join(", ");
    println!("  each round (M msg/s): remote {}; local {}", each(&r), each(&l));
    let mut times = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        remote.ask(Count::Get).await.expect("ask");
        times.push(t.elapsed());
    }
    println!(
        "ask round trip, remote, 10k sequential: p50 {:.1} us, p99 {:.1} us",
        pct(times.clone(), 0.5),
        pct(times, 0.99)
    );
    a.shutdown().await;
    b.shutdown().await;
}
