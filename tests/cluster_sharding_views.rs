//! A sharding whose node does not see every node yet never starts a second entity for a
//! key: a restore whose nodes find each other through one seed (the first restored node
//! sees none of the others, the next sees only the seed) reaches the restored entities, and
//! a node still joining its cluster starts none.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use amber::cluster::{Member, Sharding, ShardingError};
use amber::prelude::*;
use amber::{ActorId, Cluster, MembershipConfig, SystemBuilder};
use support::bank::{Account, AccountMsg};
use support::bounded;
use support::cluster::{config, mesh, node};

const SHARDS: u32 = 32;

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>()
}

/// Accounts of 100 each, keyed.
fn sharding(n: &Cluster) -> Sharding<Account> {
    Sharding::<Account>::start_with(n, SHARDS, |_| Account::new(100, 7)).expect("sharding starts")
}

fn membership(seeds: &[std::net::SocketAddr]) -> MembershipConfig {
    let ms = Duration::from_millis;
    MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(500), ms(200), ms(3000))
        .with_gossip_interval(ms(50))
}

/// Waits until `n` sees `k` members up and linked.
async fn sees(n: &Cluster, k: usize) {
    let formed = |m: &Vec<Member>| m.iter().filter(|m| m.status.is_up() && m.linked).count() >= k;
    bounded(n.members_watch().wait_for(formed)).await.expect("the membership runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_joined_through_one_seed_reaches_the_restored_entities_only() {
    // A sharded bank on three nodes, every account started, then checkpointed.
    let names = ["a", "b", "c"];
    let mut nodes = Vec::new();
    let mut shardings = Vec::new();
    for name in names {
        let n = node(name, builder()).await;
        shardings.push(sharding(&n));
        nodes.push(n);
    }
    mesh(&nodes).await;
    let keys: Vec<String> = (0..60).map(|k| format!("acct-{k}")).collect();
    for key in &keys {
        let balance = bounded(shardings[0].entity(key.clone()).ask(AccountMsg::Balance)).await;
        assert_eq!(balance.unwrap(), 100);
    }
    let checkpoint = bounded(nodes[0].system().snapshot()).await.expect("snapshot");
    for n in &nodes {
        n.shutdown().await;
    }
    let ids: HashMap<String, ActorId> = checkpoint
        .manifest
        .actors
        .iter()
        .filter_map(|a| {
            Some((a.name.as_deref()?.strip_prefix("shard:test.Account/")?.into(), a.id))
        })
        .collect();
    assert_eq!(ids.len(), keys.len());

    // Restored onto the same three, which find each other through a's address: a first
    // (it sees nobody), then c (it sees a only), and only then b.
    let placement = Sharding::<Account>::placement(&checkpoint, SHARDS, names);
    let restore = |name: &'static str| {
        let placement = placement.clone();
        let checkpoint = checkpoint.clone();
        async move {
            let n = bounded(Cluster::restore(builder(), config(name), &checkpoint, &placement))
                .await
                .expect("restore a share");
            let s = sharding(&n);
            (n, s)
        }
    };
    let (a, on_a) = restore("a").await;
    bounded(a.join_membership(membership(&[]))).await.unwrap();
    let (c, on_c) = restore("c").await;
    bounded(c.join_membership(membership(&[a.local_addr()]))).await.unwrap();
    sees(&c, 2).await;
    // c asks for every account while it cannot see b, and a while it may not either: the
    // accounts of b's shards wait for b instead of starting anew here.
    let mut asks = Vec::new();
    for key in &keys {
        for s in [&on_a, &on_c] {
            let entity = s.entity(key.clone());
            asks.push(tokio::spawn(async move { entity.entity().await.map(|e| e.id()) }));
        }
    }
    let (b, on_b) = restore("b").await;
    bounded(b.join_membership(membership(&[a.local_addr()]))).await.unwrap();
    let restored = [&a, &b, &c];
    let resumes = restored.iter().map(|n| bounded(n.resume(Duration::from_secs(10))));
    for resumed in futures::future::join_all(resumes).await {
        resumed.expect("resume");
    }
    let mut found = Vec::new();
    for ask in asks {
        found.push(bounded(ask).await.unwrap());
    }
    for (k, key) in keys.iter().enumerate() {
        for id in &found[2 * k..2 * k + 2] {
            assert_eq!(id.as_ref().ok(), Some(&ids[key]), "{key}: the restored account");
        }
    }
    let mut running: HashMap<String, usize> = HashMap::new();
    for s in [&on_a, &on_b, &on_c] {
        for key in s.local_keys() {
            *running.entry(key).or_default() += 1;
        }
    }
    assert_eq!(running.len(), keys.len(), "no account started anew");
    assert!(running.values().all(|&n| n == 1), "one account per key: {running:?}");
    let after = bounded(a.system().snapshot()).await.expect("snapshot after");
    assert_eq!(after.manifest.actors.len(), keys.len(), "the restored accounts, no more");
    for n in restored {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_still_joining_its_cluster_starts_no_entity() {
    // A seed that never answers: the node stays alone, joining.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = bounded(Cluster::join(
        builder(),
        config("late"),
        membership(&[silent.local_addr().unwrap()]),
    ))
    .await
    .expect("join");
    let s = sharding(&n);
    let refused = bounded(s.entity("acct-1").entity()).await;
    match refused {
        Err(ShardingError::Unreachable { .. }) => {}
        other => panic!("a joining node started or found an entity: {other:?}"),
    }
    assert!(s.local_keys().is_empty(), "nothing started");
    n.shutdown().await;
}
