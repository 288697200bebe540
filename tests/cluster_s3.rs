//! A bank on a three-node cluster checkpoints to an S3 bucket (moto's server on 127.0.0.1);
//! node r is killed (its links cut without goodbye) and a checkpoint without it fails,
//! leaving the bucket's intact; then every node is gone, and the last checkpoint is restored
//! onto two new nodes from the bucket alone. The restored bank trades on, adds up, and
//! checkpoints to the same bucket after the ids it found there. Features `remote` and `s3`.

#[path = "../snapshot/tests/s3_support/mod.rs"]
mod s3_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber::SystemBuilder;
use amber::cluster::Placement;
use amber::prelude::*;
use amber::snapshot::object_store::aws::AmazonS3Builder;
use amber::snapshot::object_store::path::Path;
use amber::snapshot::{AsyncCheckpointStore, CheckpointId, ObjectStoreCheckpoints};
use s3_support::S3Server;
use support::bank::{Account, audit, open_cluster_bank, outside_load};
use support::bounded;
use support::cluster::{mesh, node, restore_onto};

const PER_NODE: usize = 20;
const EACH: u64 = 1_000;
const TOTAL: u64 = 3 * PER_NODE as u64 * EACH;

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>()
}

/// A new client of the bucket's `bank` prefix: shares nothing with the others.
fn bucket_store(server: &S3Server) -> ObjectStoreCheckpoints {
    let s3 = AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_bucket_name("cluster")
        .with_access_key_id(s3_support::ACCESS_KEY)
        .with_secret_access_key(s3_support::SECRET_KEY)
        .with_region(s3_support::REGION)
        .build()
        .unwrap();
    ObjectStoreCheckpoints::new(Arc::new(s3), Path::from("bank")).with_url_base("s3://cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_checkpoints_to_a_bucket_and_is_restored_from_it_alone() {
    let Some(server) = S3Server::start() else { return };
    server.create_bucket("cluster");

    let nodes =
        vec![node("p", builder()).await, node("q", builder()).await, node("r", builder()).await];
    mesh(&nodes).await;
    let local = open_cluster_bank(&nodes, PER_NODE, EACH).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| outside_load(accounts.clone(), 11 + k as u64, 6, true, stop.clone()))
        .collect();

    // Three checkpoints of the whole cluster, written by p to the bucket; two are kept.
    let store = Arc::new(bucket_store(&server).with_retention(2));
    let mut written = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let info = bounded(nodes[0].system().checkpoint(&store)).await.expect("checkpoint");
        assert!(info.path_or_key.starts_with("s3://cluster/bank/ckpt-"), "{}", info.path_or_key);
        written.push(info);
    }
    assert_eq!(written.iter().map(|i| i.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        bounded(AsyncCheckpointStore::ids(&*store)).await.unwrap(),
        [CheckpointId(2), CheckpointId(3)]
    );

    // r dies while a checkpoint runs (r holds the snapshot back inside a handler until then):
    // the checkpoint fails, and what the bucket holds is untouched. (Started after p has seen
    // r go, a snapshot would span the nodes left.)
    let (gated, control) = support::Gated::new();
    let gate = nodes[2].system().spawn(gated).unwrap();
    gate.tell(1).await.unwrap();
    bounded(control.entered).await.unwrap();
    let pending = {
        let (system, store) = (nodes[0].system().clone(), store.clone());
        tokio::spawn(async move { system.checkpoint(&store).await })
    };
    bounded(async {
        while nodes[2].system().snapshot_running().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    nodes[2].transport().shutdown().await;
    let failed = bounded(pending).await.unwrap();
    assert!(failed.is_err(), "a checkpoint without r: {failed:?}");
    drop(control.open);
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        let _ = bounded(load).await;
    }
    for n in &nodes[..2] {
        bounded(n.shutdown()).await;
    }
    drop((nodes, local, store));

    // Every node is gone. A new client finds the last checkpoint in the bucket and it
    // restores onto two new nodes, r's accounts spread over both.
    let reader = bucket_store(&server);
    let latest = bounded(AsyncCheckpointStore::latest_valid(&reader)).await.unwrap();
    assert!(latest.skipped.is_empty(), "{:?}", latest.skipped);
    let checkpoint = latest.checkpoint.expect("a checkpoint in the bucket");
    assert_eq!(checkpoint.manifest.id, CheckpointId(3));
    assert_eq!(checkpoint.manifest.epoch, written[2].epoch);
    let mut names: Vec<&str> = checkpoint.manifest.nodes.iter().map(|n| n.node.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["p", "q", "r"]);
    assert_eq!(checkpoint.manifest.actors.len(), 3 * PER_NODE);
    assert_eq!(audit(&checkpoint).total(), TOTAL, "{:?}", audit(&checkpoint));

    let placement = Placement::spread(["p", "q"]);
    let restored = restore_onto(&["p", "q"], builder, &checkpoint, &placement).await;
    let counts: Vec<usize> = restored.iter().map(|n| n.system().actor_count()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 3 * PER_NODE, "{counts:?}");
    assert!(
        counts.iter().all(|c| *c >= PER_NODE + PER_NODE / 2 - 1),
        "r's accounts spread: {counts:?}"
    );

    // It trades on, adds up, and checkpoints to the bucket after the ids it found there.
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = restored
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let accounts: Vec<ActorRef<Account>> = checkpoint
                .manifest
                .actors
                .iter()
                .filter_map(|a| n.system().lookup_id(a.id).ok())
                .collect();
            outside_load(accounts, 31 + k as u64, 6, true, stop.clone())
        })
        .collect();
    let store = Arc::new(reader.with_retention(2));
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let info = bounded(restored[0].system().checkpoint(&store)).await.expect("checkpoint");
        assert_eq!(info.id, CheckpointId(4 + round));
        assert!(info.epoch > checkpoint.manifest.epoch);
    }
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        assert!(bounded(load).await.unwrap() > 0, "the load ran on the restored bank");
    }
    let newest = bounded(AsyncCheckpointStore::latest(&*store)).await.unwrap().unwrap();
    assert_eq!(newest.manifest.id, CheckpointId(5));
    assert_eq!(newest.manifest.nodes.len(), 2);
    assert_eq!(audit(&newest).total(), TOTAL, "{:?}", audit(&newest));
    assert_eq!(
        bounded(AsyncCheckpointStore::ids(&*store)).await.unwrap(),
        [CheckpointId(4), CheckpointId(5)]
    );
    for n in &restored {
        bounded(n.shutdown()).await;
    }
}
