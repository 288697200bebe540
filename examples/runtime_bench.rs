//! Prints the local runtime benchmark table: amber vs a raw tokio baseline (a task reading a
//! tokio mpsc channel, oneshot replies) on a 2-worker tokio runtime, with the ratio from this
//! one run. Each workload alternates amber and tokio rounds and keeps each side's median.
//! The target column is the local-speed goal: tell at least tokio's rate, ask round trips
//! from a task on the runtime at least tokio's rate, ask p50 (from outside the runtime, each
//! ask timed) within 1.3x tokio's, fan-in 1.2x, ring 1.0x, spawn + ask + stop 0.8x.
//!
//! `cargo run --release --example runtime_bench [-- --rounds N]`

#[path = "flags/mod.rs"]
mod flags;
#[path = "../benches/support/workloads.rs"]
mod workloads;

use std::time::Duration;

use clap::Parser;
use hdrhistogram::Histogram;

/// The local runtime against raw tokio: tell, ask, fan-in, ring and spawn, with the ratio
/// from this one run (each workload alternates amber and tokio rounds and keeps each side's
/// median).
#[derive(Debug, Parser)]
#[command(name = "runtime_bench")]
struct Options {
    /// Alternating rounds per workload.
    #[arg(long, value_name = "N", default_value = "5", value_parser = flags::positive)]
    rounds: usize,
}

const TELLS: u64 = 200_000;
const ASKS: u64 = 20_000;
const RING: usize = 1000;
const HOPS: u64 = 100_000;
const SPAWNS: usize = 10_000;

/// Durations in nanoseconds, 3 significant figures (a percentile within 0.1 % of the exact
/// one).
fn histogram(v: impl IntoIterator<Item = Duration>) -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant figures is a valid precision");
    for d in v {
        h.record(d.as_nanos().try_into().unwrap_or(u64::MAX))
            .expect("a resizing histogram takes any value");
    }
    h
}

/// The duration at quantile `q` of `h`.
fn pct(h: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_nanos(h.value_at_quantile(q))
}

fn median(v: Vec<Duration>) -> Duration {
    pct(&histogram(v), 0.5)
}

fn main() {
    let Options { rounds } = Options::parse();
    let rt = workloads::runtime();
    println!("amber local runtime vs raw tokio (2 workers, {rounds} alternating rounds, median)");
    println!("{:<8} {:>18} {:>18} {:>7} {:>7}", "workload", "amber", "tokio", "ratio", "target");

    let throughput = |name: &str,
                      unit: &str,
                      n: u64,
                      target: f64,
                      amber: &dyn Fn() -> Duration,
                      tokio: &dyn Fn() -> Duration| {
        let (mut a, mut t) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(amber());
            t.push(tokio());
        }
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let (ra, rt_) = (rate(median(a)), rate(median(t)));
        println!(
            "{name:<8} {:>12.2} M{unit} {:>12.2} M{unit} {:>6.2}x {:>6.2}x",
            ra / 1e6,
            rt_ / 1e6,
            ra / rt_,
            target
        );
    };

    throughput("tell", "/s", TELLS, 1.0, &|| rt.block_on(workloads::amber_tell(TELLS)), &|| {
        rt.block_on(workloads::tokio_tell(TELLS))
    });

    throughput(
        "ask",
        "rt/s",
        ASKS,
        1.0,
        &|| rt.block_on(workloads::amber_ask_round_trips(ASKS)),
        &|| rt.block_on(workloads::tokio_ask_round_trips(ASKS)),
    );

    let (mut a, mut t) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.extend(rt.block_on(workloads::amber_ask(ASKS / rounds as u64)));
        t.extend(rt.block_on(workloads::tokio_ask(ASKS / rounds as u64)));
    }
    let (a, t) = (histogram(a), histogram(t));
    let (a50, t50) = (pct(&a, 0.5), pct(&t, 0.5));
    let (a99, t99) = (pct(&a, 0.99), pct(&t, 0.99));
    println!(
        "{:<8} {:>9.1} us p50 {:>9.1} us p50 {:>6.2}x {:>6.2}x",
        "ask",
        a50.as_secs_f64() * 1e6,
        t50.as_secs_f64() * 1e6,
        t50.as_secs_f64() / a50.as_secs_f64(),
        1.0 / 1.3
    );
    println!(
        "{:<8} {:>9.1} us p99 {:>9.1} us p99 {:>6.2}x",
        "",
        a99.as_secs_f64() * 1e6,
        t99.as_secs_f64() * 1e6,
        t99.as_secs_f64() / a99.as_secs_f64()
    );

    throughput(
        "fan-in",
        "/s",
        TELLS,
        1.2,
        &|| rt.block_on(workloads::amber_fan_in(TELLS)),
        &|| rt.block_on(workloads::tokio_fan_in(TELLS)),
    );
    throughput(
        "ring",
        "hop/s",
        HOPS,
        1.0,
        &|| rt.block_on(workloads::amber_ring(RING, HOPS)),
        &|| rt.block_on(workloads::tokio_ring(RING, HOPS)),
    );
    throughput(
        "spawn",
        "/s",
        SPAWNS as u64,
        0.8,
        &|| rt.block_on(workloads::amber_spawn(SPAWNS)),
        &|| rt.block_on(workloads::tokio_spawn(SPAWNS)),
    );
    println!("ratio = amber / tokio throughput (for ask: tokio latency / amber latency)");
}
