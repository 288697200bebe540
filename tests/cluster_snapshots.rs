//! Snapshots that span nodes: three clusters in one process over 127.0.0.1, accounts
//! moving money across the links, every snapshot audited to the unit.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber::cluster::Placement;
use amber::prelude::*;
use amber::{Cluster, ClusterError, NodeId, SnapshotError, SystemBuilder};
use support::bank::{Account, AccountMsg, audit, open_cluster_bank, outside_load};
use support::bounded;
use support::cluster::{audited_snapshots, mesh, node, refs_on, restore_onto};
use support::worker::{Work, Worker};

const PER_NODE: usize = 40;
const EACH: u64 = 1_000;

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>()
}

/// Three meshed nodes with `PER_NODE` accounts each, every account linked to all accounts
/// of all nodes. Returns the nodes and, per node, its local accounts.
async fn bank(names: [&str; 3]) -> (Vec<Cluster>, Vec<Vec<ActorRef<Account>>>) {
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(node(name, builder()).await);
    }
    mesh(&nodes).await;
    let local = open_cluster_bank(&nodes, PER_NODE, EACH).await;
    (nodes, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_of_a_bank_across_three_nodes_adds_up() {
    let (nodes, local) = bank(["a", "b", "c"]).await;
    let total = 3 * PER_NODE as u64 * EACH;
    let checkpoint = audited_snapshots(&nodes, &local, total, 30, 77).await;

    // Three nodes' checkpoint, rehydrated on one node: every ref inside the states now
    // resolves locally, and the money still adds up after trading on.
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
    let restored = builder().restore(&checkpoint).expect("restore onto one node");
    assert_eq!(restored.actor_count(), 3 * PER_NODE);
    let account: ActorRef<Account> = restored.lookup_id(checkpoint.manifest.actors[0].id).unwrap();
    for i in 0..200u32 {
        account.tell(AccountMsg::Transfer { to: i, amount: 3, hops: 4 }).await.unwrap();
    }
    let after = bounded(restored.snapshot()).await.expect("snapshot after restore");
    assert_eq!(audit(&after).total(), total);
    bounded(restored.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_add_up_with_each_transport_on_its_own_thread() {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let config = support::cluster::config(name).with_io_thread(true);
        nodes.push(bounded(Cluster::start(builder(), config)).await.expect("node starts"));
    }
    mesh(&nodes).await;
    let local = open_cluster_bank(&nodes, PER_NODE, EACH).await;
    let total = 3 * PER_NODE as u64 * EACH;
    let checkpoint = audited_snapshots(&nodes, &local, total, 20, 78).await;
    assert_eq!(checkpoint.manifest.actors.len(), 3 * PER_NODE);
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_during_a_snapshot_aborts_it_and_the_previous_one_still_restores() {
    let (nodes, local) = bank(["p", "q", "r"]).await;
    let total = 3 * PER_NODE as u64 * EACH;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| outside_load(accounts.clone(), 5 + k as u64, 6, true, stop.clone()))
        .collect();
    let good = bounded(nodes[0].system().snapshot()).await.expect("a first snapshot");
    assert_eq!(audit(&good).total(), total);

    // Node r's accounts stall inside a handler, so a snapshot cannot finish without r;
    // then r disappears mid-snapshot.
    let (gated, control) = support::Gated::new();
    let gate = nodes[2].system().spawn(gated).unwrap();
    gate.tell(1).await.unwrap();
    bounded(control.entered).await.unwrap();
    let snapshot = {
        let system = nodes[0].system().clone();
        tokio::spawn(async move { system.snapshot().await })
    };
    // Wait until the snapshot has reached r (r's gated actor holds it back), then kill r.
    bounded(async {
        while nodes[2].system().snapshot_running().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    nodes[2].transport().shutdown().await;
    let result = bounded(snapshot).await.unwrap();
    assert!(support::cluster::aborted_by_loss_of(&result, "r"), "{result:?}");
    drop(control.open);
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        let _ = bounded(l).await;
    }

    // The previous checkpoint is intact: restored onto two nodes named like the survivors,
    // p's and q's accounts stay on them and r's are spread over both.
    for n in &nodes[..2] {
        bounded(n.shutdown()).await;
    }
    let placement = Placement::spread(["p", "q"]);
    let restored = restore_onto(&["p", "q"], builder, &good, &placement).await;
    let counts: Vec<usize> = restored.iter().map(|n| n.system().actor_count()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 3 * PER_NODE, "{counts:?}");
    assert!(
        counts.iter().all(|c| *c >= PER_NODE + PER_NODE / 2 - 1),
        "r's accounts spread: {counts:?}"
    );

    // The restored bank trades across the two nodes and still adds up, snapshot after
    // snapshot; its epochs follow the checkpoint's.
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = restored
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let accounts: Vec<ActorRef<Account>> = good
                .manifest
                .actors
                .iter()
                .filter_map(|a| n.system().lookup_id(a.id).ok())
                .collect();
            assert_eq!(accounts.len(), counts[k]);
            outside_load(accounts, 99 + k as u64, 6, true, stop.clone())
        })
        .collect();
    for round in 0..10 {
        let checkpoint = bounded(restored[round % 2].system().snapshot()).await.expect("snapshot");
        assert!(checkpoint.manifest.epoch > good.manifest.epoch);
        assert_eq!(checkpoint.manifest.nodes.len(), 2);
        assert_eq!(audit(&checkpoint).total(), total, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        assert!(bounded(l).await.unwrap() > 0);
    }
    for n in &restored {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_between_nodes_come_back_with_a_restore_onto_other_nodes() {
    let builder = || ActorSystem::builder().register::<Worker>();
    let nodes = [node("a", builder()).await, node("b", builder()).await];
    mesh(&nodes).await;
    // A worker on each node watches a worker on the other node.
    let watched_on_a = nodes[0].system().spawn(Worker::default()).unwrap();
    let watched_on_b = nodes[1].system().spawn(Worker::default()).unwrap();
    let watcher_on_a = nodes[0].system().spawn(Worker::default()).unwrap();
    let watcher_on_b = nodes[1].system().spawn(Worker::default()).unwrap();
    let far = refs_on(&nodes[1], &nodes[0], std::slice::from_ref(&watched_on_b));
    watcher_on_a.ask(Work::Watch(far[0].clone())).await.unwrap();
    let far = refs_on(&nodes[0], &nodes[1], std::slice::from_ref(&watched_on_a));
    watcher_on_b.ask(Work::Watch(far[0].clone())).await.unwrap();
    let checkpoint = bounded(nodes[0].system().snapshot()).await.unwrap();
    // Each watcher's cut records what it watches (the watched side may not have heard of
    // the watch yet: it crosses a link).
    assert_eq!(checkpoint.actor(watcher_on_a.id()).unwrap().watching, vec![watched_on_b.id()]);
    assert_eq!(checkpoint.actor(watcher_on_b.id()).unwrap().watching, vec![watched_on_a.id()]);
    for n in &nodes {
        bounded(n.shutdown()).await;
    }

    // Restored onto two new nodes, each watcher again on another node than the actor it
    // watches: the watches are taken again across the link.
    let placement = Placement::spread(["c", "d"])
        .pin(watcher_on_a.id(), "c")
        .pin(watched_on_b.id(), "d")
        .pin(watcher_on_b.id(), "d")
        .pin(watched_on_a.id(), "c");
    let restored = restore_onto(&["c", "d"], builder, &checkpoint, &placement).await;
    bounded(async {
        while restored.iter().any(|n| n.watched_by_remote() < 1 || n.watching_remote() < 1) {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // Each watched worker stops; its watcher on the other node hears it (+100).
    let (c, d) = (restored[0].system(), restored[1].system());
    for (host, watched) in [(d, watched_on_b.id()), (c, watched_on_a.id())] {
        let watched: ActorRef<Worker> = host.lookup_id(watched).unwrap();
        watched.tell(Work::Quit).await.unwrap();
    }
    for (host, watcher) in [(c, watcher_on_a.id()), (d, watcher_on_b.id())] {
        let watcher: ActorRef<Worker> = host.lookup_id(watcher).unwrap();
        bounded(async {
            while watcher.ask(Work::Get).await.unwrap() < 100 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert_eq!(watcher.ask(Work::Get).await.unwrap(), 100);
    }
    for n in &restored {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_snapshots_a_cluster_restore_before_every_node_has_resumed() {
    let (nodes, _local) = bank(["s", "t", "u"]).await;
    let checkpoint = bounded(nodes[0].system().snapshot()).await.expect("a snapshot");
    let total = audit(&checkpoint).total();
    for n in &nodes {
        bounded(n.shutdown()).await;
    }

    let placement = Placement::spread(["v", "w"]);
    let mut restored = Vec::new();
    for name in ["v", "w"] {
        let node =
            Cluster::restore(builder(), support::cluster::config(name), &checkpoint, &placement);
        restored.push(bounded(node).await.expect("restore a share"));
    }
    mesh(&restored).await;
    // Neither has resumed: each refuses, naming itself.
    for n in &restored {
        match bounded(n.system().snapshot()).await {
            Err(SnapshotError::RestorePending { node }) => assert_eq!(node, n.node().as_str()),
            other => panic!("expected RestorePending, got {:?}", other.map(|c| c.manifest)),
        }
    }
    // v resumes: it starts its share, then waits for w, which has not resumed.
    let v = restored[0].clone();
    let mut v_resumes = tokio::spawn(async move { v.resume(Duration::from_secs(10)).await });
    started_waiting_for(&restored[0], "w").await;
    // Only "still pending" is shown with a bound: nothing w does can finish v's resume.
    let early = tokio::time::timeout(Duration::from_millis(100), &mut v_resumes).await;
    assert!(early.is_err(), "v's resume returned before w resumed: {early:?}");
    // A snapshot from v would hold only v's accounts: w refuses it.
    match bounded(restored[0].system().snapshot()).await {
        Err(SnapshotError::RestorePending { node }) => assert_eq!(node, "w"),
        other => panic!("expected w to refuse, got {:?}", other.map(|c| c.manifest)),
    }
    bounded(restored[1].resume(Duration::from_secs(10))).await.expect("w resumes");
    bounded(v_resumes).await.unwrap().expect("v resumes once w has");
    for n in &restored {
        let again = bounded(n.system().snapshot()).await.expect("a snapshot once all resumed");
        assert_eq!(again.manifest.actors.len(), checkpoint.manifest.actors.len());
        assert_eq!(audit(&again).total(), total);
    }
    for n in &restored {
        bounded(n.shutdown()).await;
    }
}

/// Returns once `node` has started its restored share and is waiting for `other`: its
/// snapshots are refused by `other`, no longer by itself.
async fn started_waiting_for(node: &Cluster, other: &str) {
    loop {
        match bounded(node.system().snapshot()).await {
            Err(SnapshotError::RestorePending { node: pending }) if pending == other => return,
            Err(SnapshotError::RestorePending { node: pending })
                if pending == node.node().as_str() =>
            {
                tokio::task::yield_now().await;
            }
            other => panic!(
                "expected a refusal for a pending restore, got {:?}",
                other.map(|c| c.manifest)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_resume_fails_the_others_resume_naming_it() {
    let (nodes, _local) = bank(["s", "t", "u"]).await;
    let checkpoint = bounded(nodes[0].system().snapshot()).await.expect("a snapshot");
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
    let restore = async |names: [&str; 2]| {
        let placement = Placement::spread(names);
        let mut restored = Vec::new();
        for name in names {
            let node = Cluster::restore(
                builder(),
                support::cluster::config(name),
                &checkpoint,
                &placement,
            );
            restored.push(bounded(node).await.expect("restore a share"));
        }
        mesh(&restored).await;
        restored
    };

    // y never resumes: x's resume gives up at its timeout, naming y. x's share runs.
    let restored = restore(["x", "y"]).await;
    let late = bounded(restored[0].resume(Duration::from_millis(500))).await;
    match late {
        Err(ClusterError::NotResumed(missing)) => assert_eq!(missing, vec![NodeId::from("y")]),
        other => panic!("expected NotResumed naming y, got {other:?}"),
    }
    started_waiting_for(&restored[0], "y").await;
    for n in &restored {
        bounded(n.shutdown()).await;
    }

    // q goes down while p waits for it: p's resume fails at once, naming q.
    let restored = restore(["p", "q"]).await;
    let p = restored[0].clone();
    let p_resumes = tokio::spawn(async move { p.resume(Duration::from_secs(30)).await });
    started_waiting_for(&restored[0], "q").await;
    bounded(restored[1].shutdown()).await;
    match bounded(p_resumes).await.unwrap() {
        Err(ClusterError::NodeDown(down)) => assert_eq!(down, NodeId::from("q")),
        other => panic!("expected NodeDown naming q, got {other:?}"),
    }
    bounded(restored[0].shutdown()).await;
}
