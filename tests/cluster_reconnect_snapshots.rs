//! A snapshot in progress when a link drops aborts, even though the link comes back by
//! itself; once it is back, snapshots across the two nodes are exact again.

#[allow(dead_code, unreachable_pub)]
#[path = "../remote/tests/support/relay.rs"]
mod relay;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amber::prelude::*;
use amber::{ClusterEvent, NodeId, SystemBuilder};
use relay::Relay;
use support::bank::{Account, audit, open_cluster_bank, outside_load};
use support::bounded;
use support::cluster::{aborted_by_loss_of, node};

const PER_NODE: usize = 20;
const EACH: u64 = 1_000;

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_across_a_dropped_link_aborts_and_the_next_one_after_the_redial_is_exact() {
    let nodes = [node("a", builder()).await, node("b", builder()).await];
    let relay = Relay::start(nodes[1].local_addr()).await;
    let mut events = nodes[0].subscribe();
    bounded(nodes[0].connect(relay.addr())).await.expect("connect through the relay");
    bounded(async {
        while nodes[1].nodes().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let local = open_cluster_bank(&nodes, PER_NODE, EACH).await;
    let total = 2 * PER_NODE as u64 * EACH;
    // Money moves across the link, then stops: what is in flight when the link drops may be
    // lost (delivery is at most once), and this test audits to the unit.
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| outside_load(accounts.clone(), 11 + k as u64, 6, true, stop.clone()))
        .collect();
    let good = bounded(nodes[0].system().snapshot()).await.expect("a snapshot under load");
    assert_eq!(audit(&good).total(), total);
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        let _ = bounded(l).await;
    }
    // The transfers' deposit chains go on for a few hops after the load stops: the link must
    // not drop with one on it (it would be lost, and the money with it).
    let settled = bounded(async {
        loop {
            let settled = nodes[0].system().snapshot().await.expect("a settled snapshot");
            if settled.in_flight.is_empty() {
                return settled;
            }
        }
    })
    .await;
    assert_eq!(audit(&settled).total(), total);

    // b holds the next snapshot back inside a handler; the link drops while it is running.
    let (gated, control) = support::Gated::new();
    let gate = nodes[1].system().spawn(gated).unwrap();
    gate.tell(1).await.unwrap();
    bounded(control.entered).await.unwrap();
    let snapshot = {
        let system = nodes[0].system().clone();
        tokio::spawn(async move { system.snapshot().await })
    };
    bounded(async {
        while nodes[1].system().snapshot_running().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    relay.cut(true);
    let result = bounded(snapshot).await.unwrap();
    assert!(aborted_by_loss_of(&result, "b"), "{result:?}");
    let b = NodeId::from("b");
    bounded(async {
        loop {
            if let ClusterEvent::Reconnected { node } = events.recv().await.unwrap()
                && node == b
            {
                return;
            }
        }
    })
    .await;
    drop(control.open);
    gate.stop(); // it holds no state a checkpoint could hold
    bounded(gate.wait_stopped()).await;

    // Back on the redialled link, the same accounts move money and every snapshot adds up.
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| outside_load(accounts.clone(), 21 + k as u64, 6, true, stop.clone()))
        .collect();
    for round in 0..3 {
        let checkpoint = loop {
            // b may still be finishing the aborted round when the link comes back.
            match bounded(nodes[round % 2].system().snapshot()).await {
                Ok(checkpoint) => break checkpoint,
                Err(amber::SnapshotError::InProgress { .. }) => tokio::task::yield_now().await,
                Err(other) => panic!("round {round}: {other:?}"),
            }
        };
        assert!(checkpoint.manifest.epoch > settled.manifest.epoch);
        assert_eq!(checkpoint.manifest.nodes.len(), 2, "round {round}");
        assert_eq!(audit(&checkpoint).total(), total, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        assert!(bounded(l).await.unwrap() > 0);
    }
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
