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

fn membership(seeds: &[std::net::SocketAddr]) -> MembershipConfig {
    let ms = Duration::from_millis;
    MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(500), ms(200), ms(3000))
        .with_gossip_interval(ms(50))
}

async fn join(name: &str, seeds: &[std::net::SocketAddr]) -> Cluster {
    bounded(Cluster::join(builder(), config(name), membership(seeds))).await.expect("join")
}

/// Nodes started first (`Cluster::start`) join a membership afterwards, and form as
/// `Cluster::join`'s do; joining twice is a typed error, and the node keeps its membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_first_join_a_membership_later_and_only_once() {
    let a = bounded(Cluster::start(builder(), config("a"))).await.expect("a starts");
    let b = bounded(Cluster::start(builder(), config("b"))).await.expect("b starts");
    assert_eq!(a.members().len(), 1, "without a membership: only itself");
    bounded(a.join_membership(membership(&[]))).await.expect("a joins");
    bounded(b.join_membership(membership(&[a.local_addr()]))).await.expect("b joins");
    let again = bounded(b.join_membership(membership(&[a.local_addr()]))).await;
    assert!(matches!(again, Err(amber::ClusterError::Membership(_))), "{again:?}");
    let formed = |m: &[Member]| m.len() == 2 && m.iter().all(|m| m.linked);
    for n in [&a, &b] {
        bounded(n.members_watch().wait_for(|m| formed(m))).await.expect("formed");
    }
    for n in [&b, &a] {
        bounded(n.shutdown()).await;
    }
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
