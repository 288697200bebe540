//! Criterion benchmark of writing a checkpoint's bytes (the store's encoder, no I/O) for a
//! busy bank's snapshot: 5,000 accounts, each with 42 deposits queued at its cut, recorded
//! as the runtime records them (one backlog per actor). This is the per-message cost a
//! snapshot of a loaded system pays after the cut. `cargo bench --bench checkpoint`.

use amber::snapshot::{
    ActorEntry, ActorId, Backlog, Checkpoint, CheckpointId, Epoch, InFlight, Manifest, NodeEntry,
    SpawnCapacity, SpawnRestart, StateRecord, SystemId,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;

const ACCOUNTS: u64 = 5_000;
const QUEUED: u64 = 42;

/// The bank's message, as a handler's generated enum encodes it.
#[derive(Serialize)]
enum AccountMsg {
    Deposit { amount: u64 },
}

fn bank() -> Checkpoint {
    let system = SystemId(0x5eed_0000_0000_0001);
    let id = |seq| ActorId::new(system, seq);
    let mut in_flight = InFlight::new();
    for to in 1..=ACCOUNTS {
        let mut backlog = Backlog::builder(id(to));
        for m in 0..QUEUED {
            let from = Some(id(1 + (to * 7 + m) % ACCOUNTS));
            let msg = AccountMsg::Deposit { amount: 1 + (to * m) % 120 };
            backlog
                .push_with(from, Epoch(3), false, |out| rmp_serde::encode::write_named(out, &msg))
                .expect("encode");
        }
        in_flight.append_backlog(backlog.finish());
    }
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(3),
            epoch: Epoch(3),
            created_unix_ms: 1_700_000_000_000,
            nodes: vec![NodeEntry { node: "local".into(), address: None }],
            actors: (1..=ACCOUNTS)
                .map(|seq| ActorEntry {
                    id: id(seq),
                    type_name: "bank.Account".into(),
                    name: None,
                    node: "local".into(),
                    parent: None,
                    watchers: vec![],
                    watching: vec![],
                    state_version: 1,
                    capacity: SpawnCapacity::SystemDefault,
                    restart: SpawnRestart::Never,
                })
                .collect(),
        },
        states: (1..=ACCOUNTS)
            .map(|seq| StateRecord { id: id(seq), state: vec![0x94; 60], timers: vec![] })
            .collect(),
        in_flight,
    }
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
