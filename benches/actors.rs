//! Criterion benchmarks of the local runtime against a raw tokio baseline, in the same group
//! so the ratio comes from one run. `cargo bench --bench actors`.

#[path = "support/workloads.rs"]
mod workloads;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const TELLS: u64 = 20_000;
const ASKS: u64 = 10_000;
const RING: usize = 1000;
const HOPS: u64 = 20_000;
const SPAWNS: usize = 1000;

fn sum<F: Fn() -> Duration>(iters: u64, f: F) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn benches(c: &mut Criterion) {
    let rt = workloads::runtime();

    let mut g = c.benchmark_group("tell");
    g.throughput(Throughput::Elements(TELLS));
    g.bench_function(BenchmarkId::new("amber", TELLS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::amber_tell(TELLS))))
    });
    g.bench_function(BenchmarkId::new("tokio", TELLS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::tokio_tell(TELLS))))
    });
    g.finish();

    let mut g = c.benchmark_group("ask");
    g.throughput(Throughput::Elements(1));
    g.bench_function("amber", |b| {
        b.iter_custom(|n| rt.block_on(workloads::amber_ask(n)).into_iter().sum())
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|n| rt.block_on(workloads::tokio_ask(n)).into_iter().sum())
    });
    g.finish();

    // Round trips asked from a task on the runtime, one after the other.
    let mut g = c.benchmark_group("ask_round_trips");
    g.throughput(Throughput::Elements(ASKS));
    g.bench_function(BenchmarkId::new("amber", ASKS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::amber_ask_round_trips(ASKS))))
    });
    g.bench_function(BenchmarkId::new("tokio", ASKS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::tokio_ask_round_trips(ASKS))))
    });
    g.finish();

    let mut g = c.benchmark_group("fan_in");
    g.throughput(Throughput::Elements(TELLS));
    g.bench_function(BenchmarkId::new("amber", TELLS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::amber_fan_in(TELLS))))
    });
    g.bench_function(BenchmarkId::new("tokio", TELLS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::tokio_fan_in(TELLS))))
    });
    g.finish();

    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(HOPS));
    g.bench_function(BenchmarkId::new("amber", RING), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::amber_ring(RING, HOPS))))
    });
    g.bench_function(BenchmarkId::new("tokio", RING), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::tokio_ring(RING, HOPS))))
    });
    g.finish();

    let mut g = c.benchmark_group("spawn");
    g.throughput(Throughput::Elements(SPAWNS as u64));
    g.bench_function(BenchmarkId::new("amber", SPAWNS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::amber_spawn(SPAWNS))))
    });
    g.bench_function(BenchmarkId::new("tokio", SPAWNS), |b| {
        b.iter_custom(|n| sum(n, || rt.block_on(workloads::tokio_spawn(SPAWNS))))
    });
    g.finish();
}

criterion_group! {
    name = actors;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(actors);
