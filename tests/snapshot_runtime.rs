//! Snapshots under the conditions that break naive implementations: backlogs, spawns,
//! stops and panics during the snapshot, handlers awaiting asks, deadlines, timers.

mod support;

use std::time::{Duration, Instant};

use amber::prelude::*;
use amber::{AbortCause, AbortReason, CaptureProblem, SnapshotError, SpawnError, Taint};
use support::worker::{Probe, Work, Worker, view};
use support::{bounded, next};

fn system() -> ActorSystem {
    ActorSystem::builder().register::<Worker>().build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cut_does_not_wait_for_a_backlog_it_records_it() {
    let system = system();
    let worker = system
        .spawn_with(SpawnOptions::new().capacity(MailboxCapacity::Unbounded), Worker::default)
        .unwrap();
    // 2,000 messages of 5 ms each: 10 s of work queued.
    for _ in 0..2000 {
        worker.tell(Work::Unit(5)).await.unwrap();
    }
    let start = Instant::now();
    let checkpoint = system.snapshot_within(Duration::from_secs(5)).await.expect("snapshot");
    let took = start.elapsed();
    let state = view(&checkpoint.states[0].state);
    assert_eq!(
        state.done as usize + checkpoint.in_flight.len(),
        2000,
        "every queued message is either reflected in the state or recorded in flight"
    );
    assert!(checkpoint.in_flight.len() > 1000, "most of the backlog is recorded, not handled");
    // Not a timing assertion on speed: a cut that waited for the backlog could not finish
    // before the 5 s deadline at all.
    assert!(took < Duration::from_secs(5));
    worker.stop();
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_spawned_before_the_parents_cut_belong_to_the_snapshot_and_later_ones_do_not() {
    let system = system();
    let parent = system.spawn(Worker::default()).unwrap();
    // One child exists before any snapshot, whatever the scheduling of the spammer below.
    parent.ask(Work::SpawnChild).await.unwrap();
    let spammer = {
        let parent = parent.clone();
        tokio::spawn(async move {
            for _ in 0..3000 {
                if parent.tell(Work::SpawnChild).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut seen_children = 0;
    for round in 0..20 {
        let checkpoint = bounded(system.snapshot()).await.expect("snapshot");
        let parent_entry = checkpoint.actor(parent.id()).expect("parent in the snapshot");
        let spawned = view(&checkpoint.state(parent_entry.id).unwrap().state).spawned;
        let children =
            checkpoint.manifest.actors.iter().filter(|a| a.parent == Some(parent.id())).count();
        assert_eq!(
            children as u64, spawned,
            "round {round}: exactly the children spawned before the parent's cut"
        );
        seen_children = children;
    }
    bounded(spammer).await.unwrap();
    assert!(seen_children > 0);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_and_panics_during_snapshots_never_hang_them() {
    let system = system();
    let policy = RestartPolicy::on_panic(1000, Duration::from_secs(60));
    let mut restarting = Vec::new();
    let mut quitting = Vec::new();
    for _ in 0..50 {
        restarting
            .push(system.spawn_with(SpawnOptions::new().restart(policy), Worker::default).unwrap());
        quitting.push(system.spawn(Worker::default()).unwrap());
    }
    let chaos = {
        let (restarting, quitting) = (restarting.clone(), quitting.clone());
        tokio::spawn(async move {
            for i in 0..500 {
                let _ = restarting[i % 50]
                    .tell(if i % 3 == 0 { Work::Panic } else { Work::Unit(0) })
                    .await;
                if i % 10 == 0 {
                    let _ = quitting[i / 10].tell(Work::Quit).await;
                }
            }
        })
    };
    for _ in 0..20 {
        let checkpoint = bounded(system.snapshot()).await.expect("snapshot completes");
        assert!(checkpoint.manifest.actors.len() >= 50);
        for entry in &checkpoint.manifest.actors {
            assert!(checkpoint.state(entry.id).is_some());
        }
    }
    bounded(chaos).await.unwrap();
    bounded(system.shutdown()).await;
}

/// Waits until `actor` has taken everything queued (it is inside a handler or idle).
async fn taken(actor: &ActorRef<Worker>) {
    bounded(async {
        while actor.queued() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A slow responder and an asker waiting inside its handler when the snapshot starts.
async fn asker_waiting_on_slow_partner(
    system: &ActorSystem,
) -> (ActorRef<Worker>, ActorRef<Worker>) {
    let slow = system.spawn(Worker::default()).unwrap();
    let asker = system.spawn(Worker::default()).unwrap();
    asker.tell(Work::SetPartner(slow.clone())).await.unwrap();
    slow.tell(Work::Unit(300)).await.unwrap();
    taken(&slow).await; // slow is busy for 300 ms
    asker.tell(Work::AskPartner).await.unwrap();
    taken(&asker).await; // the asker waits inside its handler for slow's reply
    (slow, asker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_from_after_the_cut_makes_that_attempt_inconsistent() {
    let system = system();
    let (slow, asker) = asker_waiting_on_slow_partner(&system).await;
    // slow cuts after its 300 ms handler, then answers the asker's request from after its
    // cut; the asker, still before its cut, absorbs that reply. That attempt is refused.
    match bounded(system.snapshot_within(Duration::from_secs(10))).await {
        Err(SnapshotError::Inconsistent { taints, .. }) => {
            let taint = Taint::AskReplyAfterCut { asker: asker.id(), responder: slow.id() };
            assert_eq!(taints, [taint], "{taints:?}");
            let text = taints[0].to_string();
            assert!(text.contains("ask reply"), "{text}");
            assert!(text.contains(&slow.id().to_string()), "{text}");
        }
        other => panic!("expected an inconsistent snapshot, got {other:?}"),
    }
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_retries_until_the_cut_is_consistent() {
    let system = system();
    let (slow, asker) = asker_waiting_on_slow_partner(&system).await;
    let checkpoint = bounded(system.snapshot()).await.expect("a retry succeeds");
    let slow_state = view(&checkpoint.state(slow.id()).unwrap().state);
    let asker_state = view(&checkpoint.state(asker.id()).unwrap().state);
    assert_eq!(slow_state.done, 1);
    assert_eq!(asker_state.done, 1, "the asker cut after its handler absorbed the reply");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_past_its_deadline_aborts_and_the_next_one_works() {
    let system = system();
    let stuck = system.spawn(Worker::default()).unwrap();
    stuck.tell(Work::Unit(1500)).await.unwrap();
    taken(&stuck).await; // inside its handler before the snapshot starts
    match system.snapshot_within(Duration::from_millis(200)).await {
        Err(SnapshotError::Aborted { reason, .. }) => {
            assert_eq!(reason, AbortCause::Protocol(AbortReason::Deadline));
            assert!(reason.to_string().contains("deadline"), "{reason}");
        }
        other => panic!("expected an abort, got {other:?}"),
    }
    let checkpoint = bounded(system.snapshot()).await.expect("the next snapshot completes");
    assert!(checkpoint.manifest.epoch.0 >= 2, "epochs only grow after an abort");
    assert_eq!(view(&checkpoint.state(stuck.id()).unwrap().state).done, 1);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_snapshot_at_a_time() {
    let system = system();
    let stuck = system.spawn(Worker::default()).unwrap();
    stuck.tell(Work::Unit(300)).await.unwrap();
    taken(&stuck).await;
    let first = system.snapshot();
    tokio::pin!(first);
    // Poll it once: starting a snapshot happens on the first poll, and it cannot complete
    // while `stuck` is inside its handler.
    tokio::select! {
        biased;
        _ = &mut first => panic!("completed while an actor was inside a 300 ms handler"),
        _ = std::future::ready(()) => {}
    }
    match system.snapshot_within(Duration::from_secs(5)).await {
        Err(SnapshotError::InProgress { running }) => assert_eq!(running.0, 1),
        other => panic!("expected InProgress, got {other:?}"),
    }
    bounded(first).await.expect("the first completes");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timers_are_captured_and_rearmed_on_restore() {
    let system = system();
    let worker = system.spawn(Worker::default()).unwrap();
    // Long enough that even a slow, shared machine takes the snapshot before it fires.
    bounded(worker.ask(Work::Arm(2000))).await.unwrap();
    let checkpoint = bounded(system.snapshot()).await.unwrap();
    let timers = &checkpoint.state(worker.id()).unwrap().timers;
    assert_eq!(timers.len(), 1);
    assert!(timers[0].remaining_us > 0 && timers[0].remaining_us <= 2_000_000);
    assert_eq!(timers[0].period_us, None);
    bounded(system.shutdown()).await;

    let restored = ActorSystem::builder().register::<Worker>().restore(&checkpoint).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    restored.spawn_named("probe", Probe(tx)).unwrap();
    assert_eq!(next(&mut rx).await, 1, "the restored timer fired once");
    let again: ActorRef<Worker> = restored.lookup_id(worker.id()).unwrap();
    assert_eq!(bounded(again.ask(Work::Get)).await.unwrap(), 0);
    bounded(restored.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_actor_type_fails_the_snapshot_with_its_name() {
    let system = system();
    system.spawn(Worker::default()).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    system.spawn(Probe(tx)).unwrap();
    match bounded(system.snapshot()).await {
        Err(SnapshotError::Capture { problems, .. }) => {
            assert_eq!(problems.len(), 1);
            assert!(
                matches!(&problems[0], CaptureProblem::NotRegistered { type_name, .. } if type_name.contains("Probe")),
                "{problems:?}"
            );
            assert!(problems[0].to_string().contains("Probe"), "{problems:?}");
        }
        other => panic!("expected a capture error, got {other:?}"),
    }
    bounded(system.shutdown()).await;
    assert!(matches!(system.spawn(Worker::default()), Err(SpawnError::ShuttingDown)));
    assert!(matches!(system.snapshot().await, Err(SnapshotError::ShuttingDown)));
}
