//! The canonical consistency test: accounts move money among themselves at full speed on the
//! multi-threaded runtime (and outside code sends transfer commands) while snapshots are
//! taken. In every snapshot, balances plus recorded in-flight deposits equal the total,
//! exactly; after a restore, the total is still exact.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber::prelude::*;
use support::bank::{Account, AccountMsg, audit, open_bank, outside_load};
use support::bounded;

const ACCOUNTS: usize = 64;
const EACH: u64 = 1_000;
const TOTAL: u64 = ACCOUNTS as u64 * EACH;

fn bank_system() -> ActorSystem {
    ActorSystem::builder().register::<Account>().build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_of_a_busy_bank_adds_up_and_a_restore_keeps_it() {
    let system = bank_system();
    let accounts = open_bank(&system, ACCOUNTS, EACH).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = outside_load(accounts.clone(), 0x9E37_79B9_7F4A_7C15, 8, false, stop.clone());

    let mut in_flight_seen = 0;
    let mut last = None;
    // At least 40 rounds, and on until one caught a deposit in flight (the load task may
    // start late on a busy machine); bounded by `bounded` around each step and the cap.
    let mut round = 0;
    while round < 40 || (in_flight_seen == 0 && round < 4000) {
        round += 1;
        let checkpoint = bounded(system.snapshot()).await.expect("snapshot");
        assert_eq!(checkpoint.manifest.actors.len(), ACCOUNTS, "round {round}");
        let audit = audit(&checkpoint);
        assert_eq!(audit.total(), TOTAL, "round {round}: {audit:?}");
        in_flight_seen += audit.deposits_in_flight;
        last = Some(checkpoint);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = bounded(load).await.unwrap();
    assert!(sent > 0, "the outside load ran");
    assert!(in_flight_seen > 0, "snapshots of a busy bank record deposits in flight");
    bounded(system.shutdown()).await;

    // Restore the last snapshot into a new system and keep trading.
    let checkpoint = last.unwrap();
    let restored =
        ActorSystem::builder().register::<Account>().restore(&checkpoint).expect("restore");
    assert_eq!(restored.actor_count(), ACCOUNTS);
    let accounts: Vec<ActorRef<Account>> = checkpoint
        .manifest
        .actors
        .iter()
        .map(|a| restored.lookup_id(a.id).expect("same ids after restore"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = outside_load(accounts, 0x9E37_79B9_7F4A_7C15, 8, false, stop.clone());
    for round in 0..10 {
        let checkpoint = bounded(restored.snapshot()).await.expect("snapshot after restore");
        let audit = audit(&checkpoint);
        assert_eq!(audit.total(), TOTAL, "restored round {round}: {audit:?}");
    }
    stop.store(true, Ordering::Relaxed);
    bounded(load).await.unwrap();
    bounded(restored.shutdown()).await;
}

/// Who cuts the accounts does not change what a snapshot holds: with busy actors' tasks
/// helping at once, after a short delay, or never (the snapshot's own thread and idle
/// workers cut alone), every snapshot adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_adds_up_whoever_cuts() {
    for delay in [Duration::ZERO, Duration::from_micros(300), Duration::MAX] {
        let system = ActorSystem::builder().register::<Account>().cut_help_delay(delay).build();
        let accounts = open_bank(&system, ACCOUNTS, EACH).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = outside_load(accounts.clone(), 0x2545_F491_4F6C_DD1D, 8, false, stop.clone());
        let mut in_flight_seen = 0;
        let mut round = 0;
        while round < 30 || (in_flight_seen == 0 && round < 4000) {
            round += 1;
            let checkpoint = bounded(system.snapshot()).await.expect("snapshot");
            let audit = audit(&checkpoint);
            assert_eq!(audit.total(), TOTAL, "delay {delay:?} round {round}: {audit:?}");
            in_flight_seen += audit.deposits_in_flight;
        }
        stop.store(true, Ordering::Relaxed);
        bounded(load).await.unwrap();
        assert!(in_flight_seen > 0, "delay {delay:?}: deposits caught in flight");
        bounded(system.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_runs_all_add_up() {
    for run in 0..8 {
        let system = bank_system();
        let accounts = open_bank(&system, 16, EACH).await;
        // Internal traffic only: long deposit chains started from outside.
        for (i, a) in accounts.iter().enumerate() {
            a.tell(AccountMsg::Transfer { to: i as u32 + 1, amount: 500, hops: 200 })
                .await
                .unwrap();
        }
        for round in 0..10 {
            let checkpoint = bounded(system.snapshot()).await.expect("snapshot");
            let audit = audit(&checkpoint);
            assert_eq!(audit.total(), 16 * EACH, "run {run} round {round}: {audit:?}");
        }
        bounded(system.shutdown()).await;
    }
}

/// Many accounts, few of them busy at any time: most cuts are taken on the spot with an
/// empty backlog, so they are filed in batches, each cut actor's runner held until its
/// batch is filed (see `CutBatch`). Deposits keep arriving at held actors (their tasks
/// wake, and wait for their runners without blocking a worker). Every snapshot adds up,
/// and afterwards every account still answers: no task was left waiting for its runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_bank_cut_in_batches_adds_up_and_every_account_still_answers() {
    // Each account's state names every other (n² refs per snapshot): kept small.
    const SPARSE: usize = 600;
    let system = bank_system();
    let accounts = open_bank(&system, SPARSE, EACH).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Paced, short chains: mailboxes stay nearly empty, deposits keep moving.
    let load = outside_load(accounts.clone(), 0x51ED_2701_A5A5_0F0F, 4, true, stop.clone());
    let mut in_flight_seen = 0;
    for round in 0..20 {
        let checkpoint = bounded(system.snapshot()).await.expect("snapshot");
        assert_eq!(checkpoint.manifest.actors.len(), SPARSE, "round {round}");
        let audit = audit(&checkpoint);
        assert_eq!(audit.total(), SPARSE as u64 * EACH, "round {round}: {audit:?}");
        in_flight_seen += audit.deposits_in_flight;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(bounded(load).await.unwrap() > 0, "the outside load ran");
    assert!(in_flight_seen > 0, "snapshots of a trading bank record deposits in flight");
    for (i, account) in accounts.iter().enumerate() {
        bounded(account.ask(AccountMsg::Balance))
            .await
            .unwrap_or_else(|e| panic!("account {i} does not answer after the snapshots: {e}"));
    }
    bounded(system.shutdown()).await;
}
