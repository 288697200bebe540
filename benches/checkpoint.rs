//! Criterion benchmark of writing a checkpoint's bytes (the store's encoder, no I/O) for a
//! busy bank's snapshot: 5,000 accounts, each with 42 deposits queued at its cut, recorded
//! as the runtime records them (one backlog per actor). This is the per-message cost a
//! snapshot of a loaded system pays after the cut. `cargo bench --bench checkpoint`.

#[path = "../snapshot/tests/incremental_world/mod.rs"]
mod world;

use amber::snapshot::{Backlog, Checkpoint, Epoch, InFlight};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;

const ACCOUNTS: u64 = 5_000;
const QUEUED: u64 = 42;

/// The bank's message, as a handler's generated enum encodes it.
#[derive(Serialize)]
enum AccountMsg {
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
            let msg = AccountMsg::Deposit { amount: 1 + (to * m) % 120 };
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

criterion_group!(checkpoint, benches);
criterion_main!(checkpoint);
