//! Restore: a round trip reproduces the snapshot byte for byte; bad checkpoints are refused
//! with typed errors and never half-start a system.

mod support;

use std::sync::Arc;

use amber::RestoreError;
use amber::prelude::*;
use amber::snapshot::{Checkpoint, CheckpointStore, FsStore, StoreError};
use support::bank::{Account, AccountMsg, audit, open_bank};
use support::bounded;
use support::worker::{Work, Worker, view};

/// A snapshot of a busy bank, taken on the multi-threaded runtime (with deposits in flight).
fn busy_bank_snapshot() -> Checkpoint {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let system = ActorSystem::builder().register::<Account>().build();
        let accounts = open_bank(&system, 32, 1_000).await;
        for (i, a) in accounts.iter().enumerate() {
            a.tell(AccountMsg::Transfer { to: i as u32 * 7 + 1, amount: 300, hops: 10_000 })
                .await
                .unwrap();
        }
        let mut best = None;
        for _ in 0..20 {
            let cp = bounded(system.snapshot()).await.unwrap();
            if !cp.in_flight.is_empty() {
                best = Some(cp);
                break;
            }
        }
        bounded(system.shutdown()).await;
        best.expect("a busy bank has messages in flight in some snapshot")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_systems_checkpoint_annotations_are_in_its_snapshots_and_not_restored() {
    let system = ActorSystem::builder().register::<Account>().build();
    open_bank(&system, 3, 10).await;
    assert_eq!(system.annotate_checkpoints("k", "1"), None);
    assert_eq!(system.annotate_checkpoints("k", "2"), Some("1".to_owned()));
    system.annotate_checkpoints("gone", "x");
    assert_eq!(system.remove_checkpoint_annotation("gone"), Some("x".to_owned()));
    let checkpoint = bounded(system.snapshot()).await.unwrap();
    let node = &checkpoint.manifest.nodes[0];
    assert_eq!(node.annotations, [("k".to_owned(), "2".to_owned())].into_iter().collect());
    assert_eq!(checkpoint.manifest.annotation("k"), Ok(Some("2")));
    // Through a file and back.
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path()).unwrap().with_durability(false);
    store.save(&checkpoint).unwrap();
    assert_eq!(store.latest().unwrap().unwrap().manifest, checkpoint.manifest);
    bounded(system.shutdown()).await;
    // A restored system records nothing until told again.
    let restored = ActorSystem::builder().register::<Account>().restore(&checkpoint).unwrap();
    assert!(restored.checkpoint_annotations().is_empty());
    let again = bounded(restored.snapshot()).await.unwrap();
    assert!(again.manifest.nodes[0].annotations.is_empty());
    bounded(restored.shutdown()).await;
}

#[test]
fn restore_then_snapshot_reproduces_states_and_in_flight_byte_for_byte() {
    let original = busy_bank_snapshot();
    assert_eq!(audit(&original).total(), 32_000);
    // On a current-thread runtime the restored actors cannot run before the next snapshot's
    // markers are queued, and markers overtake the restored messages: each actor cuts before
    // handling anything, with its restored queue as its backlog.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let again = rt.block_on(async {
        let system = ActorSystem::builder().register::<Account>().restore(&original).unwrap();
        let cp = bounded(system.snapshot()).await.unwrap();
        bounded(system.shutdown()).await;
        cp
    });
    assert_eq!(again.manifest.epoch.0, original.manifest.epoch.0 + 1);
    let by_id = |cp: &Checkpoint| {
        let mut v: Vec<_> = cp
            .manifest
            .actors
            .iter()
            .map(|a| (a.id, a.name.clone(), a.type_name.clone(), a.parent))
            .collect();
        v.sort();
        v
    };
    assert_eq!(by_id(&again), by_id(&original), "same actors, ids, names, types, parents");
    for state in &original.states {
        assert_eq!(again.state(state.id).unwrap().state, state.state, "state of {}", state.id);
    }
    let strip = |cp: &Checkpoint| {
        let mut v: Vec<_> = cp
            .in_flight
            .iter()
            .map(|m| (m.to, m.from, m.epoch, m.ask, m.payload.clone()))
            .collect();
        // Order matters per receiver only.
        v.sort_by_key(|m| m.0);
        v
    };
    assert_eq!(
        strip(&again),
        strip(&original),
        "the same messages in flight, in order per receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_written_to_disk_restore_and_torn_ones_are_skipped_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(FsStore::open(dir.path()).unwrap().with_durability(false).with_retention(3));
    let system = ActorSystem::builder().register::<Account>().build();
    let accounts = open_bank(&system, 8, 100).await;
    for a in &accounts {
        a.tell(AccountMsg::Transfer { to: 3, amount: 10, hops: 1000 }).await.unwrap();
    }
    let mut infos = Vec::new();
    for _ in 0..5 {
        infos.push(bounded(system.checkpoint(&store)).await.unwrap());
    }
    bounded(system.shutdown()).await;
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 3, "retention keeps the last 3");
    assert_eq!(listed.last().unwrap().id, infos.last().unwrap().id);

    // Tear the newest file: restore_latest skips it (naming it) and uses the one before.
    let newest = store.path_of(infos[4].id);
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    match store.load(infos[4].id) {
        Err(e @ StoreError::Format { .. }) => {
            assert!(e.to_string().contains(&newest.display().to_string()), "{e}")
        }
        other => panic!("expected a format error naming the file, got {other:?}"),
    }
    let amber::Restored { system: restored, checkpoint, skipped } =
        ActorSystem::builder().register::<Account>().restore_latest(&*store).unwrap();
    assert_eq!(checkpoint.manifest.id, infos[3].id);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].id, infos[4].id);
    assert!(matches!(skipped[0].error, RestoreError::Store(StoreError::Format { .. })));
    assert_eq!(restored.actor_count(), 8);
    let cp = bounded(restored.snapshot()).await.unwrap();
    assert_eq!(audit(&cp).total(), 800);
    bounded(restored.shutdown()).await;

    // Tamper with one byte of every remaining checkpoint: nothing loads, nothing restores.
    for info in &infos[2..4] {
        let path = store.path_of(info.id);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
    }
    match ActorSystem::builder().register::<Account>().restore_latest(&*store) {
        Err(RestoreError::NoneRestores(skipped)) => {
            let ids: Vec<_> = skipped.iter().map(|s| s.id).collect();
            assert_eq!(ids, [infos[4].id, infos[3].id, infos[2].id], "newest first");
            assert!(skipped.iter().all(|s| matches!(s.error, RestoreError::Store(_))));
        }
        Err(e) => panic!("expected NoneRestores, got {e}"),
        Ok(_) => panic!("restored from tampered checkpoints"),
    }
    // An empty store is another matter: there is nothing to restore.
    let empty = FsStore::open(dir.path().join("empty")).unwrap().with_durability(false);
    assert!(matches!(
        ActorSystem::builder().register::<Account>().restore_latest(&empty),
        Err(RestoreError::NoCheckpoint)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_checkpoints_of_a_running_bank_restore() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        FsStore::open(dir.path())
            .unwrap()
            .with_durability(false)
            .with_retention(2)
            .with_incremental(8),
    );
    let system = ActorSystem::builder().register::<Account>().build();
    let accounts = open_bank(&system, 200, 100).await;
    // Every account has its peers before the first checkpoint (an ask after the tell that
    // set them): otherwise most states change between the first two checkpoints, none stays
    // stored in the first, and retention rightly deletes it.
    for account in &accounts {
        bounded(account.ask(AccountMsg::Balance)).await.unwrap();
    }
    let mut infos = Vec::new();
    for round in 0..4u32 {
        // A few accounts change between checkpoints; the others are references.
        accounts[round as usize]
            .tell(AccountMsg::Transfer { to: round * 7 + 1, amount: 5, hops: 3 })
            .await
            .unwrap();
        infos.push(bounded(system.checkpoint(&store)).await.unwrap());
    }
    bounded(system.shutdown()).await;
    let newest = infos.last().unwrap();
    let version = std::fs::read(store.path_of(newest.id)).unwrap()[8..12].to_vec();
    assert_eq!(version, 7u32.to_le_bytes(), "the newest checkpoint is incremental");
    // Retention kept the first (full) checkpoint: the kept ones refer to it.
    assert!(store.ids().unwrap().contains(&infos[0].id));
    let amber::Restored { system: restored, checkpoint, skipped } =
        ActorSystem::builder().register::<Account>().restore_latest(&*store).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(checkpoint.manifest.id, newest.id);
    assert_eq!(restored.actor_count(), 200);
    let cp = bounded(restored.snapshot()).await.unwrap();
    assert_eq!(audit(&cp).total(), 200 * 100);
    bounded(restored.shutdown()).await;
}

/// Saves `checkpoint` as the store's next one, with valid checksums whatever it holds.
fn save_next(store: &FsStore, mut checkpoint: Checkpoint) -> amber::snapshot::CheckpointId {
    checkpoint.manifest.id = store.next_id().unwrap();
    store.save(&checkpoint).unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_latest_falls_back_past_checkpoints_that_load_but_do_not_restore() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap().with_durability(false));
    let system = ActorSystem::builder().register::<Account>().build();
    open_bank(&system, 4, 25).await;
    let good = bounded(system.checkpoint(&store)).await.unwrap().id;
    let newer = bounded(system.snapshot()).await.unwrap();
    bounded(system.shutdown()).await;

    // Newer checkpoints that load (their checksums are right) but do not restore: one
    // actor's state is not MessagePack; one actor's type is not registered.
    let mut undecodable = newer.clone();
    let victim = undecodable.states[1].id;
    undecodable.states[1].state = vec![0xc1];
    let undecodable = save_next(&store, undecodable);
    let mut unknown = newer.clone();
    unknown.manifest.actors[2].type_name = "bank.Vanished".into();
    let unknown = save_next(&store, unknown);
    store.load(unknown).unwrap();
    store.load(undecodable).unwrap();

    let restored = ActorSystem::builder().register::<Account>().restore_latest(&*store).unwrap();
    assert_eq!(restored.checkpoint.manifest.id, good, "the newest one that restores");
    let skipped: Vec<_> = restored.skipped.iter().map(|s| s.id).collect();
    assert_eq!(skipped, [unknown, undecodable], "newest first");
    match &restored.skipped[0].error {
        RestoreError::UnknownType { type_name, .. } => assert_eq!(type_name, "bank.Vanished"),
        e => panic!("expected UnknownType, got {e}"),
    }
    match &restored.skipped[1].error {
        RestoreError::State { actor, .. } => assert_eq!(*actor, victim),
        e => panic!("expected State, got {e}"),
    }
    assert!(restored.skipped[1].to_string().contains(&undecodable.to_string()));
    assert_eq!(restored.system.actor_count(), 4);
    let cp = bounded(restored.system.snapshot()).await.unwrap();
    assert_eq!(audit(&cp).total(), 100);
    bounded(restored.system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_unknown_types_unknown_versions_and_bad_messages_and_starts_nothing() {
    let system = ActorSystem::builder().register::<Account>().register::<Worker>().build();
    open_bank(&system, 4, 10).await;
    system.spawn_named("w", Worker::default()).unwrap();
    let cp = bounded(system.snapshot()).await.unwrap();
    bounded(system.shutdown()).await;

    // A type this system does not know.
    match ActorSystem::builder().register::<Account>().restore(&cp) {
        Err(RestoreError::UnknownType { type_name, .. }) => assert_eq!(type_name, "test.Worker"),
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("restored an unknown type"),
    }
    // A state version the code does not read.
    let mut newer = cp.clone();
    newer.manifest.actors[0].state_version = 99;
    match ActorSystem::builder().register::<Account>().register::<Worker>().restore(&newer) {
        Err(RestoreError::State {
            error: amber::StateError::UnknownVersion { found: 99, .. },
            ..
        }) => {}
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("restored an unknown version"),
    }
    // A recorded message that does not decode.
    let mut garbled = cp.clone();
    let to = garbled.manifest.actors[0].id;
    garbled.in_flight.push(amber::snapshot::InFlightRecord {
        to,
        from: None,
        epoch: cp.manifest.epoch,
        ask: false,
        payload: vec![0xc1].into(),
    });
    match ActorSystem::builder().register::<Account>().register::<Worker>().restore(&garbled) {
        Err(RestoreError::Message { actor, .. }) => assert_eq!(actor, to),
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("restored a garbled message"),
    }
    // An inconsistent checkpoint (state of an actor missing from the manifest).
    let mut invalid = cp.clone();
    invalid.manifest.actors.pop();
    assert!(matches!(
        ActorSystem::builder().register::<Account>().register::<Worker>().restore(&invalid),
        Err(RestoreError::Invalid(_))
    ));
    // And the good one restores, names and all.
    let ok =
        ActorSystem::builder().register::<Account>().register::<Worker>().restore(&cp).unwrap();
    assert!(ok.lookup::<Worker>("w").is_ok());
    assert_eq!(ok.actor_count(), 5);
    bounded(ok.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_keeps_parent_child_and_watch_links() {
    let system = ActorSystem::builder().register::<Worker>().build();
    let parent = system.spawn(Worker::default()).unwrap();
    let watcher = system.spawn(Worker::default()).unwrap();
    parent.ask(Work::SpawnChild).await.unwrap();
    let cp = bounded(system.snapshot()).await.unwrap();
    let child_id = cp.manifest.actors.iter().find(|a| a.parent == Some(parent.id())).unwrap().id;
    let child: ActorRef<Worker> = system.lookup_id(child_id).unwrap();
    watcher.ask(Work::Watch(child)).await.unwrap();
    let cp = bounded(system.snapshot()).await.unwrap();
    assert_eq!(cp.actor(child_id).unwrap().watchers, vec![watcher.id()]);
    assert_eq!(cp.actor(watcher.id()).unwrap().watching, vec![child_id]);
    bounded(system.shutdown()).await;

    let restored = ActorSystem::builder().register::<Worker>().restore(&cp).unwrap();
    let parent: ActorRef<Worker> = restored.lookup_id(parent.id()).unwrap();
    let watcher: ActorRef<Worker> = restored.lookup_id(watcher.id()).unwrap();
    let child: ActorRef<Worker> = restored.lookup_id(child_id).unwrap();
    child.tell(Work::Quit).await.unwrap();
    bounded(child.wait_stopped()).await;
    // The restored parent hears its restored child exit; the restored watcher hears it stop.
    bounded(async {
        while parent.ask(Work::Get).await.unwrap() < 1000
            || watcher.ask(Work::Get).await.unwrap() < 100
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(parent.ask(Work::Get).await.unwrap(), 1000);
    assert_eq!(watcher.ask(Work::Get).await.unwrap(), 100);
    bounded(restored.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_checkpoints_are_written_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap().with_durability(false));
    let system = ActorSystem::builder().register::<Worker>().build();
    for _ in 0..10 {
        system.spawn(Worker::default()).unwrap();
    }
    assert_eq!(
        system.checkpoint_every(store.clone(), std::time::Duration::ZERO).unwrap_err(),
        amber::ScheduleError::ZeroInterval,
        "a zero interval is refused, not a dead schedule"
    );
    let schedule =
        system.checkpoint_every(store.clone(), std::time::Duration::from_millis(20)).unwrap();
    bounded(async {
        while schedule.written() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    schedule.stop();
    assert_eq!(schedule.failed(), 0);
    let listed = store.list().unwrap();
    assert!(listed.len() >= 3);
    let epochs: Vec<_> = listed.iter().map(|i| i.epoch).collect();
    assert!(
        epochs.windows(2).all(|w| w[0] < w[1]),
        "each checkpoint is a later snapshot: {epochs:?}"
    );
    let again = ActorSystem::builder().register::<Worker>().restore_latest(&*store).unwrap();
    assert!(again.skipped.is_empty());
    let again = again.system;
    assert_eq!(again.actor_count(), 10);
    bounded(again.shutdown()).await;
    bounded(system.shutdown()).await;
}

#[test]
fn a_restore_that_has_not_started_refuses_snapshots_instead_of_missing_its_actors() {
    let checkpoint = busy_bank_snapshot();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let pending = ActorSystem::builder()
            .register::<Account>()
            .restore_where(&checkpoint, |_| true)
            .expect("restore");
        let system = pending.system().clone();
        match bounded(system.snapshot()).await {
            Err(amber::SnapshotError::RestorePending { node }) => assert_eq!(node, system.node()),
            other => panic!("a snapshot of an unstarted restore: {:?}", other.map(|c| c.manifest)),
        }
        let system = pending.start();
        let again = bounded(system.snapshot()).await.expect("a snapshot once started");
        assert_eq!(again.manifest.actors.len(), checkpoint.manifest.actors.len());
        assert_eq!(audit(&again).total(), audit(&checkpoint).total());
        bounded(system.shutdown()).await;
    });
}

/// Enough actors that a restore decodes them on several threads (one per core, from 4,096
/// actors a part) and starts them from the runtime's workers (256 at a time).
const MANY: usize = 9_000;

/// A checkpoint of `MANY` workers: half of them parents of the other half, each parent
/// watching the previous parent's child, some with timers armed, every one with its own
/// count; plus recorded messages to a third of them, interleaved across receivers, whose
/// order per receiver shows (`Unit` and `Get` in a pattern of the receiver's own).
fn many_workers_checkpoint() -> (Checkpoint, Vec<(ActorId, Vec<Work>)>) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let system = ActorSystem::builder().register::<Worker>().build();
        let parents: Vec<_> =
            (0..MANY / 2).map(|_| system.spawn(Worker::default()).unwrap()).collect();
        for (i, p) in parents.iter().enumerate() {
            p.ask(Work::SpawnChild).await.unwrap();
            for _ in 0..i % 5 {
                p.tell(Work::Unit(0)).await.unwrap();
            }
            if i % 97 == 0 {
                p.ask(Work::Arm(600_000)).await.unwrap();
            }
        }
        let cp = bounded(system.snapshot()).await.unwrap();
        let child_of: std::collections::HashMap<_, _> =
            cp.manifest.actors.iter().filter_map(|a| Some((a.parent?, a.id))).collect();
        for (i, p) in parents.iter().enumerate().skip(1) {
            let child: ActorRef<Worker> = system.lookup_id(child_of[&parents[i - 1].id()]).unwrap();
            p.ask(Work::Watch(child)).await.unwrap();
        }
        let mut cp = bounded(system.snapshot()).await.unwrap();
        bounded(system.shutdown()).await;
        assert_eq!(cp.manifest.actors.len(), MANY);
        let mut recorded: Vec<(ActorId, Vec<Work>)> = cp
            .manifest
            .actors
            .iter()
            .step_by(3)
            .enumerate()
            .map(|(n, a)| {
                let msgs = (0..1 + n % 4)
                    .map(|j| if (n + j) % 2 == 0 { Work::Unit(0) } else { Work::Get })
                    .collect();
                (a.id, msgs)
            })
            .collect();
        recorded.sort_by_key(|(id, _)| *id);
        for round in 0..4 {
            for (to, msgs) in &recorded {
                if let Some(msg) = msgs.get(round) {
                    cp.in_flight.push(amber::snapshot::InFlightRecord {
                        to: *to,
                        from: None,
                        epoch: cp.manifest.epoch,
                        ask: false,
                        payload: amber::encode(msg).unwrap().into(),
                    });
                }
            }
        }
        (cp, recorded)
    })
}

#[test]
fn a_restore_of_many_actors_reproduces_states_links_timers_and_messages_in_order() {
    let (original, _) = many_workers_checkpoint();
    // Current-thread runtime: the restored actors cannot run before the next snapshot's
    // markers are queued (see the byte-for-byte test above).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let again = rt.block_on(async {
        let system = ActorSystem::builder().register::<Worker>().restore(&original).unwrap();
        assert_eq!(system.actor_count(), MANY);
        let cp = bounded(system.snapshot()).await.unwrap();
        bounded(system.shutdown()).await;
        cp
    });
    let links = |cp: &Checkpoint| {
        let mut v: Vec<_> = cp
            .manifest
            .actors
            .iter()
            .map(|a| {
                let (mut watchers, mut watching) = (a.watchers.clone(), a.watching.clone());
                watchers.sort();
                watching.sort();
                (a.id, a.parent, watchers, watching, a.capacity, a.restart)
            })
            .collect();
        v.sort_by_key(|l| l.0);
        v
    };
    assert_eq!(links(&again), links(&original), "parents, watches and spawn options");
    for state in &original.states {
        let restored = again.state(state.id).unwrap();
        assert_eq!(restored.state, state.state, "state of {}", state.id);
        assert_eq!(restored.timers.len(), state.timers.len(), "timers of {}", state.id);
    }
    let per_receiver = |cp: &Checkpoint| {
        let mut v: Vec<_> = cp.in_flight.iter().map(|m| (m.to, m.payload.clone())).collect();
        v.sort_by_key(|m| m.0); // stable: the order per receiver stays
        v
    };
    assert_eq!(per_receiver(&again), per_receiver(&original), "in flight, in order per receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_restored_actors_handle_their_recorded_messages_before_new_ones_and_keep_their_links()
{
    let (original, recorded) = tokio::task::spawn_blocking(many_workers_checkpoint).await.unwrap();
    let done_at_cut: std::collections::HashMap<_, _> =
        original.states.iter().map(|s| (s.id, view(&s.state).done)).collect();
    let system = ActorSystem::builder().register::<Worker>().restore(&original).unwrap();
    assert_eq!(system.actor_count(), MANY);
    // Each worker's first answer counts every recorded `Unit` of its own: they were queued
    // before anything sent after the restore.
    for (id, msgs) in &recorded {
        let w: ActorRef<Worker> = system.lookup_id(*id).unwrap();
        let units = msgs.iter().filter(|m| matches!(m, Work::Unit(_))).count() as u64;
        assert_eq!(bounded(w.ask(Work::Get)).await.unwrap(), done_at_cut[id] + units, "{id}");
    }
    // Links hold: a child that quits is heard by its parent (+1000) and by its watcher (+100).
    let actors = &original.manifest.actors;
    let mut quit = 0;
    for parent in actors.iter().filter(|a| a.parent.is_none()).step_by(500) {
        let child = actors.iter().find(|a| a.parent == Some(parent.id)).unwrap();
        let Some(watcher) = actors.iter().find(|a| a.watching.contains(&child.id)) else {
            continue; // the last parent's child is watched by nobody
        };
        quit += 1;
        let child: ActorRef<Worker> = system.lookup_id(child.id).unwrap();
        let (parent, watcher): (ActorRef<Worker>, ActorRef<Worker>) =
            (system.lookup_id(parent.id).unwrap(), system.lookup_id(watcher.id).unwrap());
        let (p0, w0) =
            (parent.ask(Work::Get).await.unwrap(), watcher.ask(Work::Get).await.unwrap());
        child.tell(Work::Quit).await.unwrap();
        bounded(child.wait_stopped()).await;
        bounded(async {
            while parent.ask(Work::Get).await.unwrap() < p0 + 1000
                || watcher.ask(Work::Get).await.unwrap() < w0 + 100
            {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
    let after = bounded(system.snapshot()).await.unwrap();
    assert_eq!(after.manifest.actors.len(), MANY - quit);
    bounded(system.shutdown()).await;
}
