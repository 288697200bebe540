//! Snapshots of a cluster that formed by itself: three nodes in one process over 127.0.0.1,
//! b and c given only a's address as their seed, linked by the membership, with accounts
//! moving money across those links; every snapshot audited to the unit.

mod support;

use std::time::Duration;

use amber::cluster::{Member, MemberStatus};
use amber::prelude::*;
use amber::{Cluster, MembershipConfig, SystemBuilder};
use support::bank::{Account, open_cluster_bank};
use support::bounded;
use support::cluster::{audited_snapshots, config};

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
    audited_snapshots(&nodes, &local, total, 20, 91).await;
    for n in &nodes {
        let members = n.members();
        assert!(members.iter().all(|m| m.status == MemberStatus::Alive), "{members:?}");
    }
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
