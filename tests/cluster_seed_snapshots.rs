//! Snapshots of a cluster that formed by itself: three nodes in one process over 127.0.0.1,
//! b and c given only a's address as their seed, linked by the membership, with accounts
//! moving money across those links; every snapshot audited to the unit.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber::cluster::{Member, MemberStatus};
use amber::prelude::*;
use amber::{Cluster, MembershipConfig, SystemBuilder};
use support::bank::{Account, audit, open_cluster_bank, outside_load};
use support::bounded;
use support::cluster::{config, in_flight_between_nodes};

const PER_NODE: usize = 30;
const EACH: u64 = 1_000;

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>()
}

async fn join(name: &str, seeds: &[std::net::SocketAddr]) -> Cluster {
    let ms = Duration::from_millis;
    let membership = MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(500), ms(200), ms(3000))
        .with_gossip_interval(ms(50));
    bounded(Cluster::join(builder(), config(name), membership)).await.expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_of_a_bank_on_a_cluster_formed_from_one_seed_adds_up() {
    let a = join("a", &[]).await;
    let b = join("b", &[a.local_addr()]).await;
    let c = join("c", &[a.local_addr()]).await;
    let nodes = vec![a, b, c];
    let formed = |m: &[Member]| m.len() == 3 && m.iter().all(|m| m.linked);
    for n in &nodes {
        bounded(n.members_watch().wait_for(|m| formed(m))).await.expect("formed");
    }
    let local = open_cluster_bank(&nodes, PER_NODE, EACH).await;
    let total = 3 * PER_NODE as u64 * EACH;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| outside_load(accounts.clone(), 91 + k as u64, 6, true, stop.clone()))
        .collect();

    let (mut cross_node_in_flight, mut round) = (0, 0);
    while round < 20 || (cross_node_in_flight == 0 && round < 3000) {
        let starter = &nodes[round % 3];
        round += 1;
        let checkpoint = bounded(starter.system().snapshot()).await.expect("snapshot");
        let mut names: Vec<&str> =
            checkpoint.manifest.nodes.iter().map(|n| n.node.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c"], "round {round}: the snapshot spans every member");
        assert_eq!(checkpoint.manifest.actors.len(), 3 * PER_NODE, "round {round}");
        let audit = audit(&checkpoint);
        assert_eq!(audit.total(), total, "round {round}: {audit:?}");
        cross_node_in_flight += in_flight_between_nodes(&checkpoint);
    }
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        assert!(bounded(l).await.unwrap() > 0, "the outside load ran");
    }
    assert!(cross_node_in_flight > 0, "some snapshot caught a transfer between nodes in flight");
    for n in &nodes {
        let members = n.members();
        assert!(members.iter().all(|m| m.status == MemberStatus::Alive), "{members:?}");
    }
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
