//! Prints the snapshot benchmark figures: snapshot latency (in memory and to disk) for idle
//! and busy systems of 1k / 10k / 100k actors, bank throughput with snapshots every 1 s and
//! every 100 ms against none (ratios from one run), restore time, and checkpoint bytes
//! against raw state bytes.
//!
//! `cargo run --release --example snapshot_bench [-- --max 100000] [--idle-only] [--json]`
//!
//! With `--json` it prints only the snapshot figures, one JSON object per line and case:
//! `{"case":"idle","actors":N,"cut_ms":..,"disk_ms":..,"restore_ms":..,"checkpoint_bytes":..,
//! "state_bytes":..}` (medians; `restore_ms` rebuilds the system from the checkpoint loaded
//! from disk) and `{"case":"busy","actors":N,"cut_ms":..}`; the throughput comparison is
//! left out.

#[path = "flags/mod.rs"]
mod flags;

use std::sync::Arc;
use std::time::{Duration, Instant};

use amber::prelude::*;
use amber::snapshot::{CheckpointStore, FsStore, Store};
use clap::Parser;
use hdrhistogram::Histogram;

/// Snapshot latency (in memory and to disk) of idle and busy systems, restore time,
/// checkpoint bytes against state bytes, and ring throughput with and without snapshots.
#[derive(Debug, Parser)]
#[command(name = "snapshot_bench")]
struct Options {
    /// The largest system measured (of 1000, 10000 and 100000 actors).
    #[arg(long, value_name = "ACTORS", default_value = "100000", value_parser = flags::number)]
    max: usize,
    /// Only the idle systems (no busy ones, no throughput).
    #[arg(long)]
    idle_only: bool,
    /// Print the snapshot figures only, one JSON object per line and case.
    #[arg(long)]
    json: bool,
    /// Measure checkpoints in this store (a directory or URL) instead: whole and incremental
    /// writes and restores of `--max` idle actors.
    #[arg(long, value_name = "DIR|URL")]
    store: Option<String>,
}

/// An idle actor with a little state.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bench.Cell")]
pub struct Cell {
    value: u64,
    label: String,
}

#[amber::actor]
impl Cell {
    fn set(&mut self, value: u64) {
        self.value = value;
    }
}

/// A busy actor: keeps passing a token to a neighbour, so mailboxes are never quiet.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bench.Relay")]
pub struct Relay {
    next: Option<ActorRef<Relay>>,
    passed: u64,
}

#[amber::actor]
impl Relay {
    fn link(&mut self, next: ActorRef<Relay>) {
        self.next = Some(next);
    }

    async fn token(&mut self) {
        self.passed += 1;
        if let Some(next) = &self.next {
            let _ = next.token().await;
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `v` (milliseconds, or any positive figure), through a histogram of its
/// thousandths (microseconds) with 3 significant figures: within 0.1 % of the exact one.
fn median(v: Vec<f64>) -> f64 {
    let mut h = Histogram::<u64>::new(3).expect("3 significant figures is a valid precision");
    for x in v {
        h.record((x * 1e3).round() as u64).expect("a resizing histogram takes any value");
    }
    h.value_at_quantile(0.5) as f64 / 1e3
}

fn system() -> ActorSystem {
    ActorSystem::builder().register::<Cell>().register::<Relay>().build()
}

async fn idle(n: usize, dir: &std::path::Path, json: bool) {
    let system = system();
    for i in 0..n {
        let cell = Cell { value: i as u64, label: format!("cell-{i}") };
        system.spawn(cell).expect("spawn");
    }
    // Let every actor run its start so the system is idle.
    let warm = system.snapshot().await.expect("snapshot");
    assert_eq!(warm.manifest.actors.len(), n);
    let mut memory = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let cp = system.snapshot().await.expect("snapshot");
        memory.push(ms(t.elapsed()));
        std::hint::black_box(cp);
    }
    // The same, called from a task on a runtime worker rather than from `main`.
    let mut from_task = Vec::new();
    for _ in 0..5 {
        let s = system.clone();
        let took = tokio::spawn(async move {
            let t = Instant::now();
            std::hint::black_box(s.snapshot().await.expect("snapshot"));
            ms(t.elapsed())
        });
        from_task.push(took.await.expect("task"));
    }
    if !json {
        println!(
            "  (idle {n}: from main {:.1} ms, from a task {:.1} ms)",
            median(memory.clone()),
            median(from_task)
        );
    }
    let store =
        Arc::new(FsStore::open(dir.join(format!("idle-{n}"))).expect("store").with_retention(2));
    let mut disk = Vec::new();
    let mut info = None;
    for _ in 0..3 {
        let t = Instant::now();
        info = Some(system.checkpoint(&store).await.expect("checkpoint"));
        disk.push(ms(t.elapsed()));
    }
    let raw: usize = warm.states.iter().map(|s| s.state.len()).sum();
    let bytes = info.map_or(0, |i| i.bytes);
    system.shutdown().await;

    let checkpoint = store.latest().expect("load").expect("a checkpoint");
    let t = Instant::now();
    let restored = ActorSystem::builder()
        .register::<Cell>()
        .register::<Relay>()
        .restore(&checkpoint)
        .expect("restore");
    let restore = ms(t.elapsed());
    restored.shutdown().await;
    if json {
        let line = serde_json::json!({
            "case": "idle",
            "actors": n,
            "cut_ms": median(memory),
            "disk_ms": median(disk),
            "restore_ms": restore,
            "checkpoint_bytes": bytes,
            "state_bytes": raw,
        });
        println!("{line}");
        return;
    }
    println!(
        "idle {n:>6} actors: snapshot in memory {:>7.1} ms, to disk {:>7.1} ms, restore {:>7.1} ms, checkpoint {:>9} B for {:>8} B of state ({:.2}x)",
        median(memory),
        median(disk),
        restore,
        bytes,
        raw,
        bytes as f64 / raw.max(1) as f64
    );
}

/// Checkpoints of `n` idle cells in the store `url` names: a whole one, then an incremental
/// chain (a whole checkpoint, 1 % of the cells changed, an incremental one), each restored.
/// Prefixes `whole/` and `incremental/` keep the two apart in the store.
async fn store_case(n: usize, url: &str, json: bool) -> Result<(), String> {
    let open = |prefix: &str| -> Result<Store, String> {
        let url = format!("{}/{prefix}", url.trim_end_matches('/'));
        Store::from_url(&url).map_err(|e| format!("cannot open {url}: {e}"))
    };
    let (whole, incremental) =
        (Arc::new(open("whole")?), Arc::new(open("incremental")?.with_incremental(8)));
    let system = system();
    let cells: Vec<_> = (0..n)
        .map(|i| {
            let cell = Cell { value: i as u64, label: format!("cell-{i}") };
            system.spawn(cell).expect("spawn")
        })
        .collect();
    std::hint::black_box(system.snapshot().await.expect("snapshot")); // every actor started
    let timed = |store: Arc<Store>| {
        let system = system.clone();
        async move {
            let t = Instant::now();
            let info = system.checkpoint(&store).await.expect("checkpoint");
            (ms(t.elapsed()), info.bytes)
        }
    };
    let (whole_ms, whole_bytes) = timed(whole.clone()).await;
    let (first_ms, first_bytes) = timed(incremental.clone()).await;
    for (i, cell) in cells.iter().enumerate().step_by(100) {
        cell.set(i as u64 + 1).await.expect("set");
    }
    let (incremental_ms, incremental_bytes) = timed(incremental.clone()).await;
    system.shutdown().await;
    let restore = |store: Arc<Store>| {
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let restored = ActorSystem::builder()
                .register::<Cell>()
                .register::<Relay>()
                .restore_latest(&*store)
                .expect("restore");
            let took = ms(t.elapsed());
            assert_eq!(restored.checkpoint.manifest.actors.len(), n);
            (took, restored.system)
        })
    };
    let (whole_restore_ms, a) = restore(whole).await.expect("restore task");
    a.shutdown().await;
    let (incremental_restore_ms, b) = restore(incremental).await.expect("restore task");
    b.shutdown().await;
    let line = serde_json::json!({
        "case": "store",
        "store": url,
        "actors": n,
        "whole_write_ms": whole_ms,
        "whole_bytes": whole_bytes,
        "whole_restore_ms": whole_restore_ms,
        "chain_first_write_ms": first_ms,
        "chain_first_bytes": first_bytes,
        "incremental_write_ms": incremental_ms,
        "incremental_bytes": incremental_bytes,
        "incremental_restore_ms": incremental_restore_ms,
    });
    if json {
        println!("{line}");
    } else {
        println!(
            "{n} idle actors in {url}: whole write {whole_ms:.1} ms ({whole_bytes} B), restore {whole_restore_ms:.1} ms; incremental chain: first {first_ms:.1} ms ({first_bytes} B), 1 % changed {incremental_ms:.1} ms ({incremental_bytes} B, {:.1} % of whole), restore {incremental_restore_ms:.1} ms",
            100.0 * incremental_bytes as f64 / whole_bytes.max(1) as f64
        );
    }
    Ok(())
}

/// A system with a ring of `n` relays and `tokens` tokens passed around it.
async fn ring(n: usize, tokens: usize) -> ActorSystem {
    let system = system();
    let relays: Vec<_> = (0..n).map(|_| system.spawn(Relay::default()).expect("spawn")).collect();
    for (i, r) in relays.iter().enumerate() {
        r.link(relays[(i + 1) % n].clone()).await.expect("link");
    }
    for r in relays.iter().step_by((n / tokens).max(1)) {
        r.token().await.expect("token");
    }
    system
}

async fn busy(n: usize, tokens: usize, json: bool) {
    let system = ring(n, tokens).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // let the tokens spread (load, not sync)
    let mut memory = Vec::new();
    let mut in_flight = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let cp = system.snapshot().await.expect("snapshot");
        memory.push(ms(t.elapsed()));
        in_flight += cp.in_flight.len();
    }
    system.shutdown().await;
    if json {
        println!(
            "{}",
            serde_json::json!({ "case": "busy", "actors": n, "cut_ms": median(memory) })
        );
        return;
    }
    println!(
        "busy {n:>6} actors ({tokens} tokens circulating): snapshot in memory {:>7.1} ms, {} in flight per snapshot",
        median(memory),
        in_flight / 5
    );
}

/// Token hops per second on a ring of `n` relays with `tokens` tokens, over `window`, taking
/// a snapshot every `every` (if any).
async fn throughput(n: usize, tokens: usize, window: Duration, every: Option<Duration>) -> f64 {
    let system = ring(n, tokens).await;
    let passed = |cp: &amber::snapshot::Checkpoint| -> u64 {
        #[derive(serde::Deserialize)]
        struct View {
            passed: u64,
        }
        cp.states
            .iter()
            .map(|s| rmp_serde::from_slice::<View>(&s.state).expect("state").passed)
            .sum()
    };
    let start_cp = system.snapshot().await.expect("snapshot");
    let t0 = Instant::now();
    let deadline = t0 + window;
    if let Some(every) = every {
        let s = system.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            while Instant::now() < deadline {
                ticks.tick().await;
                std::hint::black_box(s.snapshot().await.expect("snapshot"));
            }
        })
        .await
        .expect("snapshot task");
    } else {
        tokio::time::sleep_until(deadline.into()).await;
    }
    let end_cp = system.snapshot().await.expect("snapshot");
    let elapsed = t0.elapsed();
    system.shutdown().await;
    (passed(&end_cp) - passed(&start_cp)) as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Opt-in timeline of each snapshot's steps (e.g. RUST_LOG=amber_actors=debug).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let Options { max, idle_only, json, store } = Options::parse();
    if let Some(url) = store {
        if let Err(e) = store_case(max, &url, json).await {
            eprintln!("snapshot_bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("amber-snapshot-bench-{}", std::process::id()));
    if !json {
        println!("amber snapshot benchmarks (tokio multi-thread, 2 workers)");
    }
    for n in [1_000, 10_000, 100_000].into_iter().filter(|&n| n <= max) {
        idle(n, &dir, json).await;
    }
    if idle_only {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    for n in [1_000, 10_000, 100_000].into_iter().filter(|&n| n <= max) {
        busy(n, 200.min(n), json).await;
    }
    if json {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let window = Duration::from_secs(2);
    let (n, tokens) = (1_000, 1_000); // every relay busy: a uniform load (fewer tokens make the ring bimodal)
    // Alternate the three settings and keep each one's median, so load drift on a shared
    // machine and the ring's own variance (how the tokens bunch up) hit all of them alike.
    let rounds = 5;
    let mut none = Vec::new();
    let mut per_second = Vec::new();
    let mut per_100ms = Vec::new();
    for _ in 0..rounds {
        none.push(throughput(n, tokens, window, None).await);
        per_second.push(throughput(n, tokens, window, Some(Duration::from_secs(1))).await);
        per_100ms.push(throughput(n, tokens, window, Some(Duration::from_millis(100))).await);
    }
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{:.1}-{:.1}", lo / 1e6, hi / 1e6)
    };
    let (base, s1, s100) =
        (median(none.clone()), median(per_second.clone()), median(per_100ms.clone()));
    println!(
        "throughput, ring of {n} relays with {tokens} tokens, median of {rounds} alternating {window:?} windows (range):"
    );
    println!("  no snapshots     {:.2} M hops/s ({})", base / 1e6, spread(&none));
    println!(
        "  every 1 s        {:.2} M hops/s ({}), {:+.1} %",
        s1 / 1e6,
        spread(&per_second),
        (s1 / base - 1.0) * 100.0
    );
    println!(
        "  every 100 ms     {:.2} M hops/s ({}), {:+.1} %",
        s100 / 1e6,
        spread(&per_100ms),
        (s100 / base - 1.0) * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
