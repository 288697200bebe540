//! Criterion benchmark of writing a checkpoint's bytes (the store's encoder, no I/O) for a
//! busy bank's snapshot: 5,000 accounts, each with 42 deposits queued at its cut, recorded
//! as the runtime records them (one backlog per actor). This is the per-message cost a
//! snapshot of a loaded system pays after the cut. `cargo bench --bench checkpoint`.

#[path = "../snapshot/tests/incremental_world/mod.rs"]
mod world;

use std::sync::atomic::{AtomicU64, Ordering};

use amber::prelude::*;
use amber::snapshot::{Backlog, Checkpoint, Epoch, InFlight};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ACCOUNTS: u64 = 5_000;
const QUEUED: u64 = 42;

/// The bank's message, as a handler's generated enum encodes it.
#[derive(Serialize)]
enum Queued {
    Deposit { amount: u64 },
}

/// The incremental tests' world of accounts (60-byte states), with every account's backlog.
fn bank() -> Checkpoint {
    let mut checkpoint = world::world(3, &vec![1; ACCOUNTS as usize], 60);
    let mut in_flight = InFlight::new();
    for to in 1..=ACCOUNTS {
        let mut backlog = Backlog::builder(world::actor(to));
        for m in 0..QUEUED {
            let from = Some(world::actor(1 + (to * 7 + m) % ACCOUNTS));
            let msg = Queued::Deposit { amount: 1 + (to * m) % 120 };
            backlog
                .push_with(from, Epoch(3), false, |out| rmp_serde::encode::write_named(out, &msg))
                .expect("encode");
        }
        in_flight.append_backlog(backlog.finish());
    }
    checkpoint.in_flight = in_flight;
    checkpoint
}

fn benches(c: &mut Criterion) {
    let checkpoint = bank();
    let mut g = c.benchmark_group("checkpoint_encode");
    g.throughput(Throughput::Elements(ACCOUNTS * QUEUED));
    g.bench_function("bank_5000x42_queued", |b| {
        b.iter(|| amber::snapshot::encode(&checkpoint).expect("encode").len())
    });
    g.finish();
}

/// Deposits handled by the cut benchmark's accounts.
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// A bank account as the bank demo has it, for the cut benchmark.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bench.Account")]
struct Account {
    balance: u64,
    received: u64,
}

#[amber::actor]
impl Account {
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
        self.received += 1;
        HANDLED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The cost of cutting loaded actors: 5,000 accounts are given 42 deposits each on a
/// current-thread runtime, where none of them runs until the filling task yields; a snapshot
/// taken then cuts every account on the spot (parked, its task not yet polled), recording
/// all 210,000 messages (encoded into backlogs, filed with the engine), and the accounts then
/// handle them. `fill_snapshot_drain` against `fill_drain` is what the snapshot adds (run
/// both under callgrind for instruction counts that other load does not change).
fn queued_cut(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (system, accounts) = rt.block_on(async {
        let system = ActorSystem::builder().name("bench").register::<Account>().build();
        let accounts: Vec<_> =
            (0..ACCOUNTS).map(|_| system.spawn(Account::default()).expect("spawn")).collect();
        (system, accounts)
    });
    let round = |snapshot: bool| {
        rt.block_on(async {
            let target = HANDLED.load(Ordering::Relaxed) + ACCOUNTS * QUEUED;
            for (a, account) in (0..).zip(&accounts) {
                for m in 0..QUEUED {
                    account.deposit(1 + (a * m) % 120).await.expect("tell");
                }
            }
            if snapshot {
                let checkpoint = system.snapshot().await.expect("snapshot");
                assert_eq!(checkpoint.in_flight.len() as u64, ACCOUNTS * QUEUED, "recorded");
            }
            while HANDLED.load(Ordering::Relaxed) < target {
                tokio::task::yield_now().await;
            }
        })
    };
    let mut g = c.benchmark_group("snapshot_cut");
    g.throughput(Throughput::Elements(ACCOUNTS * QUEUED));
    g.sample_size(10);
    g.bench_function("fill_drain", |b| b.iter(|| round(false)));
    g.bench_function("fill_snapshot_drain", |b| b.iter(|| round(true)));
    g.finish();
}

criterion_group!(checkpoint, benches, queued_cut);
criterion_main!(checkpoint);
