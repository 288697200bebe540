//! A restore keeps each actor's spawn options: its mailbox capacity (bounded or not, whatever
//! the restoring system's default) and its restart policy, with a factory to restart it.

mod support;

use std::time::Duration;

use amber::prelude::*;
use amber::snapshot::{Checkpoint, SpawnCapacity, SpawnRestart};
use amber::{ExitReason, MailboxCapacity, RestartPolicy, SpawnOptions, TrySendError};
use support::bounded;
use support::worker::{Work, Worker};

/// A snapshot of three workers: `unbounded` (unbounded mailbox, restarts up to 3 times in a
/// minute, 3 units done), `small` (a mailbox of 4, no restarts) and `once` (restarts once).
async fn spawned_with_options() -> (Checkpoint, [ActorId; 3]) {
    let system = ActorSystem::builder().register::<Worker>().build();
    let unbounded = system
        .spawn_with(
            SpawnOptions::new()
                .name("unbounded")
                .capacity(MailboxCapacity::Unbounded)
                .restart(RestartPolicy::on_panic(3, Duration::from_secs(60))),
            Worker::default,
        )
        .unwrap();
    for _ in 0..3 {
        unbounded.ask(Work::Unit(0)).await.unwrap();
    }
    let small = system
        .spawn_with(
            SpawnOptions::new().name("small").capacity(MailboxCapacity::Bounded(4)),
            Worker::default,
        )
        .unwrap();
    let once = system
        .spawn_with(
            SpawnOptions::new().name("once").restart(RestartPolicy::on_panic(1, Duration::MAX)),
            Worker::default,
        )
        .unwrap();
    let checkpoint = bounded(system.snapshot()).await.unwrap();
    bounded(system.shutdown()).await;
    (checkpoint, [unbounded.id(), small.id(), once.id()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_records_capacity_and_restart_policy() {
    let (checkpoint, [unbounded, small, once]) = spawned_with_options().await;
    let entry = |id| checkpoint.actor(id).unwrap();
    assert_eq!(entry(unbounded).capacity, SpawnCapacity::Unbounded);
    assert_eq!(
        entry(unbounded).restart,
        SpawnRestart::OnPanic { max_restarts: 3, within: Duration::from_secs(60) }
    );
    assert_eq!(entry(small).capacity, SpawnCapacity::Bounded(4));
    assert_eq!(entry(small).restart, SpawnRestart::Never);
    assert_eq!(entry(once).capacity, SpawnCapacity::Bounded(amber::DEFAULT_CAPACITY as u64));
    // And the file format carries them.
    let bytes = amber::snapshot::encode(&checkpoint).unwrap();
    assert_eq!(amber::snapshot::decode(&bytes).unwrap(), checkpoint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_mailboxes_keep_their_capacity_whatever_the_system_default() {
    let (checkpoint, [unbounded, small, _]) = spawned_with_options().await;
    // Not started yet: nothing is consumed, so each mailbox holds what its capacity allows.
    let pending = ActorSystem::builder()
        .register::<Worker>()
        .mailbox_capacity(MailboxCapacity::Bounded(8))
        .restore_where(&checkpoint, |_| true)
        .unwrap();
    let system = pending.system().clone();
    let unbounded: ActorRef<Worker> = system.lookup_id(unbounded).unwrap();
    let small: ActorRef<Worker> = system.lookup_id(small).unwrap();
    let beyond = amber::DEFAULT_CAPACITY + 100;
    for i in 0..beyond {
        if let Err(e) = unbounded.try_tell(Work::Unit(0)) {
            panic!("the unbounded mailbox refused message {i}: {e:?}");
        }
    }
    for _ in 0..4 {
        small.try_tell(Work::Unit(0)).unwrap();
    }
    assert!(
        matches!(small.try_tell(Work::Unit(0)), Err(TrySendError::Full(_))),
        "a mailbox of 4 comes back bounded at 4, not at the system default of 8"
    );
    let system = pending.start();
    assert_eq!(bounded(unbounded.ask(Work::Get)).await.unwrap(), 3 + beyond as u64);
    assert_eq!(bounded(small.ask(Work::Get)).await.unwrap(), 4);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_actors_keep_their_restart_policy_and_restart_from_the_restored_state() {
    let (checkpoint, [unbounded, small, once]) = spawned_with_options().await;
    let system = ActorSystem::builder().register::<Worker>().restore(&checkpoint).unwrap();
    let unbounded: ActorRef<Worker> = system.lookup_id(unbounded).unwrap();
    let small: ActorRef<Worker> = system.lookup_id(small).unwrap();
    let once: ActorRef<Worker> = system.lookup_id(once).unwrap();

    // A panic restarts it: rebuilt from the state it was restored with (3 units done), not
    // from the panicked instance (5).
    unbounded.tell(Work::Unit(0)).await.unwrap();
    unbounded.tell(Work::Unit(0)).await.unwrap();
    assert_eq!(bounded(unbounded.ask(Work::Get)).await.unwrap(), 5);
    assert!(bounded(unbounded.ask(Work::Panic)).await.is_err(), "the panicking ask gets no reply");
    assert_eq!(bounded(unbounded.ask(Work::Get)).await.unwrap(), 3, "restarted, not stopped");
    assert!(!unbounded.is_stopped());

    // Its limit holds too: one restart, then the second panic stops it.
    assert!(bounded(once.ask(Work::Panic)).await.is_err());
    assert_eq!(bounded(once.ask(Work::Get)).await.unwrap(), 0, "restarted once");
    let _ = once.tell(Work::Panic).await;
    match bounded(once.wait_stopped()).await {
        ExitReason::RestartLimit { restarts: 1, .. } => {}
        other => panic!("expected the restart limit after one restart, got {other:?}"),
    }

    // An actor spawned without restarts still stops on its first panic.
    let _ = small.tell(Work::Panic).await;
    assert!(matches!(bounded(small.wait_stopped()).await, ExitReason::Panicked(_)));

    // And a snapshot of the restored system records the same options again.
    let again = bounded(system.snapshot()).await.unwrap();
    assert_eq!(again.actor(unbounded.id()).unwrap().capacity, SpawnCapacity::Unbounded);
    assert_eq!(
        again.actor(unbounded.id()).unwrap().restart,
        checkpoint.actor(unbounded.id()).unwrap().restart
    );
    bounded(system.shutdown()).await;
}
