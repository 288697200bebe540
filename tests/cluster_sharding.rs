//! Sharded entities across nodes in one process (over 127.0.0.1): keys reach one entity
//! from every node, however the first messages race; a node that joins takes exactly the
//! shards it owns now, by live migration, while senders on the other nodes keep numbering
//! their messages (the entities check that nothing is lost, repeated or reordered per
//! sender); and a sharded bank adds up in every snapshot and after a restore onto fewer
//! nodes, its accounts still reachable by key.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amber::cluster::{EntityRef, Sharding, ShardingError};
use amber::prelude::*;
use amber::{ActorState, Cluster, StateError, SystemBuilder};
use support::bank::{Account, AccountMsg, audit};
use support::bounded;
use support::cluster::{audited_snapshots, mesh, node, refs_on, restore_onto};

/// A sharded entity that adds up what it is sent and checks each sender's numbering.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    key: String,
    sum: u64,
    last: BTreeMap<u32, u64>,
    violations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TallyMsg {
    Add(u64),
    /// Message `n` (from 1) of `sender`.
    Push {
        sender: u32,
        n: u64,
    },
    Report,
}

/// What an entity has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TallyReport {
    key: String,
    sum: u64,
    last: BTreeMap<u32, u64>,
    violations: Vec<String>,
}

impl Actor for Tally {
    type Msg = TallyMsg;
    type Reply = TallyReport;

    async fn handle(&mut self, msg: TallyMsg, _: &mut Context<Self>) -> TallyReport {
        match msg {
            TallyMsg::Add(n) => self.sum += n,
            TallyMsg::Push { sender, n } => {
                let last = self.last.entry(sender).or_insert(0);
                if n != *last + 1 && self.violations.len() < 10 {
                    self.violations.push(format!("sender {sender}: got {n} after {last}"));
                }
                *last = n;
            }
            TallyMsg::Report => {}
        }
        TallyReport {
            key: self.key.clone(),
            sum: self.sum,
            last: self.last.clone(),
            violations: self.violations.clone(),
        }
    }
}

impl ActorState for Tally {
    const TYPE_NAME: &'static str = "test.Tally";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(self)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        Ok(system.decode(bytes)?)
    }
}

fn tally_builder() -> SystemBuilder {
    ActorSystem::builder().register::<Tally>()
}

/// A node with a sharding of `Tally` over `shards` shards, its entities built from their key.
async fn tally_node(name: &str, shards: u32) -> (Cluster, Sharding<Tally>) {
    let n = node(name, tally_builder()).await;
    let sharding = Sharding::<Tally>::start_with(&n, shards, |key| Tally {
        key: key.to_owned(),
        ..Tally::default()
    })
    .expect("sharding starts");
    (n, sharding)
}

/// The nodes (their indexes) each key's entity is registered on, for every key registered
/// somewhere. While an entity moves, its new node may register it a moment before its old
/// node lets go of the name.
fn registered(shardings: &[&Sharding<Tally>]) -> HashMap<String, Vec<usize>> {
    let mut at: HashMap<String, Vec<usize>> = HashMap::new();
    for (k, sharding) in shardings.iter().enumerate() {
        for key in sharding.local_keys() {
            at.entry(key).or_default().push(k);
        }
    }
    at
}

/// Where each key's entity runs: the index of its node, for every key running somewhere.
/// A key running on two nodes fails the test.
fn locations(shardings: &[&Sharding<Tally>]) -> HashMap<String, usize> {
    let mut at = HashMap::new();
    for (key, nodes) in registered(shardings) {
        assert_eq!(nodes.len(), 1, "entity {key} runs on nodes {nodes:?}");
        at.insert(key, nodes[0]);
    }
    at
}

/// Every node of `shardings` asks every key at once (the first messages race); returns
/// where each key's entity runs, checking there is one per key and none extra.
async fn first_messages(shardings: &[&Sharding<Tally>], keys: &[String]) -> HashMap<String, usize> {
    let firsts = keys.iter().flat_map(|key| {
        shardings.iter().map(move |s| {
            let entity = s.entity(key.clone());
            async move { entity.ask(TallyMsg::Add(1)).await }
        })
    });
    for reply in bounded(futures::future::join_all(firsts)).await {
        reply.expect("an entity answers");
    }
    let at = locations(shardings);
    assert_eq!(at.len(), keys.len(), "one entity per key, none extra");
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_messages_from_every_node_reach_one_entity_per_key() {
    let (a, on_a) = tally_node("a", 32).await;
    let (b, on_b) = tally_node("b", 32).await;
    let (c, on_c) = tally_node("c", 32).await;
    let nodes = [a, b, c];
    mesh(&nodes).await;
    let shardings = [&on_a, &on_b, &on_c];
    let keys: Vec<String> = (0..40).map(|k| format!("room {k}")).collect();
    // Every node sends the first message to every key at once.
    let at = first_messages(&shardings, &keys).await;
    for key in &keys {
        let owner = on_a.owner_of(on_a.shard_of(key)).expect("an owner");
        assert_eq!(nodes[at[key]].node(), &owner, "{key} runs on its shard's owner");
        for s in shardings {
            assert_eq!(s.owner_of(s.shard_of(key)), Some(owner.clone()), "every node agrees");
        }
        let report = bounded(on_b.entity(key.clone()).ask(TallyMsg::Report)).await.unwrap();
        assert_eq!(report.sum, 3, "{key}: the three first messages reached one entity");
        assert_eq!(&report.key, key, "{key}: built by the factory from its key");
    }
    let used: std::collections::HashSet<usize> = at.values().copied().collect();
    assert_eq!(used.len(), 3, "the keys spread over the three nodes");
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_node_sends_to_entities_by_key_and_hosts_none() {
    let (a, on_a) = tally_node("a", 32).await;
    let (b, on_b) = tally_node("b", 32).await;
    let c = node("c", tally_builder()).await;
    let on_c = Sharding::<Tally>::start_proxy(&c, 32).unwrap();
    let nodes = [a, b, c];
    mesh(&nodes).await;
    let shardings = [&on_a, &on_b, &on_c];
    // Every shard is a's or b's, as every node sees it (the proxy included).
    for shard in 0..32 {
        let owner = on_a.owner_of(shard).unwrap();
        assert_ne!(owner, *nodes[2].node(), "shard {shard} owned by the proxy");
        for s in shardings {
            assert_eq!(s.owner_of(shard), Some(owner.clone()), "shard {shard}: every node agrees");
        }
    }
    // Every node sends the first message to every key at once, the proxy too.
    let keys: Vec<String> = (0..40).map(|k| format!("room {k}")).collect();
    let at = first_messages(&shardings, &keys).await;
    assert!(on_c.local_keys().is_empty(), "none on the proxy: {:?}", on_c.local_keys());
    let used: std::collections::HashSet<usize> = at.values().copied().collect();
    assert_eq!(used, [0, 1].into_iter().collect(), "the keys spread over a and b");
    for key in &keys {
        let owner = on_a.owner_of(on_a.shard_of(key)).unwrap();
        assert_eq!(nodes[at[key]].node(), &owner, "{key} runs on its shard's owner");
        // The proxy's asks reach the one entity.
        let report = bounded(on_c.entity(key.clone()).ask(TallyMsg::Add(10))).await.unwrap();
        assert_eq!((report.sum, &report.key), (13, key), "{key}: three firsts, then this");
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_started_after_linking_is_left_out_once_announced_and_a_lone_one_waits() {
    // c is linked first, running no sharding of Tally: a and b count it as an owner (whose
    // requests it refuses until it starts one).
    let (a, on_a) = tally_node("a", 32).await;
    let (b, on_b) = tally_node("b", 32).await;
    let c = node("c", tally_builder()).await;
    let nodes = [a, b, c];
    mesh(&nodes).await;
    for sharding in [&on_a, &on_b] {
        bounded(sharding.rebalanced().wait_for(|n| n.len() == 3)).await.unwrap();
    }
    // c starts as a proxy: a and b hear of it and spread the shards over themselves.
    let on_c = Sharding::<Tally>::start_proxy(&nodes[2], 32).unwrap();
    for sharding in [&on_a, &on_b] {
        bounded(sharding.rebalanced().wait_for(|n| n.len() == 2)).await.unwrap();
    }
    let shardings = [&on_a, &on_b, &on_c];
    let keys: Vec<String> = (0..40).map(|k| format!("desk {k}")).collect();
    let at = first_messages(&shardings, &keys).await;
    assert!(on_c.local_keys().is_empty());
    for key in &keys {
        let owner = on_c.owner_of(on_c.shard_of(key)).unwrap();
        assert_ne!(owner, *nodes[2].node());
        assert_eq!(nodes[at[key]].node(), &owner, "{key} runs on its shard's owner");
        let report = bounded(on_c.entity(key.clone()).ask(TallyMsg::Report)).await.unwrap();
        assert_eq!(report.sum, 3, "{key}: the three first messages reached one entity");
    }
    for n in &nodes {
        n.shutdown().await;
    }

    // A proxy with no hosting node: no owner, and a request fails (after its retries)
    // rather than start an entity on the proxy.
    let lone = node("lone", tally_builder()).await;
    let proxy = Sharding::<Tally>::start_proxy(&lone, 8).unwrap();
    assert_eq!(proxy.owner_of(0), None);
    let error = bounded(proxy.entity("k").ask(TallyMsg::Report)).await.unwrap_err();
    assert!(matches!(error, ShardingError::Unreachable { .. }), "{error}");
    assert!(proxy.local_keys().is_empty());
    lone.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharding_is_refused_without_shards_a_registered_type_or_twice() {
    let plain = node("plain", ActorSystem::builder()).await;
    assert!(matches!(Sharding::<Tally>::start(&plain, 8), Err(ShardingError::NotRegistered(_))));
    let (n, _sharding) = tally_node("n", 8).await;
    assert!(matches!(Sharding::<Tally>::start(&n, 0), Err(ShardingError::NoShards)));
    assert!(matches!(
        Sharding::<Tally>::start(&n, 16),
        Err(ShardingError::AlreadyStarted(t)) if t == "test.Tally"
    ));
    // The sharding that runs records its count for checkpoints; the refused ones nothing.
    let recorded = n.system().checkpoint_annotations();
    assert_eq!(recorded.get(&Sharding::<Tally>::annotation_key()).map(String::as_str), Some("8"));
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(plain.system().checkpoint_annotations().is_empty());
    plain.shutdown().await;
    n.shutdown().await;
}

/// Sends numbered `Push` messages to every key in turn, through refs kept across the run,
/// until `stop`; returns how many it sent to each key.
fn pusher(
    sharding: Sharding<Tally>,
    sender: u32,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let entities: Vec<_> = keys.iter().map(|k| sharding.entity(k.clone())).collect();
        let mut sent = vec![0u64; keys.len()];
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) || round < 3 {
            for (k, entity) in entities.iter().enumerate() {
                sent[k] += 1;
                entity.tell(TallyMsg::Push { sender, n: sent[k] }).await.expect("tell");
            }
            round += 1;
            // Paced, so that the nodes' links and heartbeats keep their turns on a loaded
            // machine.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_moves_only_the_shards_the_new_node_owns_and_loses_no_message() {
    let (a, on_a) = tally_node("a", 64).await;
    let (b, on_b) = tally_node("b", 64).await;
    mesh(&[a.clone(), b.clone()]).await;
    let keys: Vec<String> = (0..60).map(|k| format!("account {k}")).collect();
    for key in &keys {
        bounded(on_a.entity(key.clone()).ask(TallyMsg::Report)).await.unwrap();
    }
    let before = locations(&[&on_a, &on_b]);
    assert_eq!(before.len(), keys.len());

    let stop = Arc::new(AtomicBool::new(false));
    let pushers = [
        pusher(on_a.clone(), 1, keys.clone(), stop.clone()),
        pusher(on_b.clone(), 2, keys.clone(), stop.clone()),
    ];
    // c joins once both pushers are well under way: a and b see it and hand it its shards
    // while the pushers run.
    let first = on_a.entity(keys[0].clone());
    bounded(async {
        loop {
            let report = first.ask(TallyMsg::Report).await.unwrap();
            if report.last.get(&1) >= Some(&20) && report.last.get(&2) >= Some(&20) {
                return;
            }
        }
    })
    .await;
    let (c, on_c) = tally_node("c", 64).await;
    bounded(c.connect(a.local_addr())).await.unwrap();
    bounded(c.connect(b.local_addr())).await.unwrap();
    let owner_now = |key: &String| on_c.owner_of(on_c.shard_of(key)).unwrap();
    // a and b have each moved what c owns now once they see c.
    for sharding in [&on_a, &on_b] {
        bounded(sharding.rebalanced().wait_for(|nodes| nodes.len() == 3)).await.unwrap();
    }
    // The last moves may still be admitting their actors on c: wait until each key's
    // entity is registered on one node only.
    bounded(async {
        while registered(&[&on_a, &on_b, &on_c]).values().any(|n| n.len() != 1) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for p in pushers {
        sent.push(bounded(p).await.unwrap());
    }

    let after = locations(&[&on_a, &on_b, &on_c]);
    let moved: Vec<&String> = keys.iter().filter(|k| before[*k] != after[*k]).collect();
    assert!(!moved.is_empty(), "c took some shards");
    for key in &keys {
        if owner_now(key).as_str() == "c" {
            assert_eq!(after[key], 2, "{key} moved to c, its shard's owner now");
        } else {
            assert_eq!(before[key], after[key], "{key}: its shard kept its owner, it stayed");
        }
    }
    // Every message arrived once, in each sender's order, moved or not. The pushers' last
    // tells may still be on their way (this ask is another sender's, nothing orders it after
    // them): wait until each sender's last number is in. A gap would be a violation; a lost
    // last message, a step that never ends.
    for (k, key) in keys.iter().enumerate() {
        let entity = on_c.entity(key.clone());
        let report = bounded(async {
            loop {
                let report = entity.ask(TallyMsg::Report).await.unwrap();
                let arrived = |sender, sent: u64| report.last.get(&sender) >= Some(&sent);
                if arrived(1, sent[0][k]) && arrived(2, sent[1][k]) {
                    return report;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(report.violations.is_empty(), "{key}: {:?}", report.violations);
        assert_eq!(report.last.get(&1), Some(&sent[0][k]), "{key}: everything a sent");
        assert_eq!(report.last.get(&2), Some(&sent[1][k]), "{key}: everything b sent");
    }
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

fn bank_builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>()
}

/// The sharded bank on `n`: accounts of 100 each, keyed.
fn bank_sharding(n: &Cluster, shards: u32) -> Sharding<Account> {
    Sharding::<Account>::start_with(n, shards, |key| {
        let seed = key.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Account::new(100, seed)
    })
    .expect("sharding starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_bank_adds_up_in_snapshots_and_after_a_restore_onto_two_nodes() {
    const SHARDS: u32 = 64;
    let names = ["a", "b", "c"];
    let mut shardings = Vec::new();
    let mut nodes = Vec::new();
    for name in names {
        let n = node(name, bank_builder()).await;
        shardings.push(bank_sharding(&n, SHARDS));
        nodes.push(n);
    }
    mesh(&nodes).await;
    let keys: Vec<String> = (0..30).map(|k| format!("acct-{k}")).collect();
    // Every account knows every other by ref, as the plain bank's do (the refs travel to
    // each node as ids: a ref of one node's system is not used by another's).
    let mut refs = Vec::new();
    for key in &keys {
        refs.push(bounded(shardings[0].entity(key.clone()).entity()).await.unwrap());
    }
    for (k, s) in shardings.iter().enumerate() {
        let peers = refs_on(&nodes[0], &nodes[k], &refs);
        for key in s.local_keys() {
            let entity = s.entity(key);
            bounded(entity.tell(AccountMsg::SetPeers(peers.clone()))).await.unwrap();
            assert_eq!(bounded(entity.ask(AccountMsg::Balance)).await.unwrap(), 100);
        }
    }
    let total = 100 * keys.len() as u64;
    let mut local = Vec::new();
    for s in &shardings {
        let mut mine = Vec::new();
        for key in s.local_keys() {
            mine.push(bounded(s.entity(key).entity()).await.unwrap());
        }
        local.push(mine);
    }
    assert!(local.iter().all(|l| !l.is_empty()), "every node holds accounts");
    let checkpoint = audited_snapshots(&nodes, &local, total, 6, 11).await;
    for n in &nodes {
        n.shutdown().await;
    }

    // Every node recorded the shard count in the checkpoint.
    assert_eq!(checkpoint.manifest.nodes.len(), 3);
    for node in &checkpoint.manifest.nodes {
        let count = node.annotations.get("sharding:test.Account");
        assert_eq!(count.map(String::as_str), Some("64"), "node {}", node.node);
    }
    assert_eq!(Sharding::<Account>::recorded_shards(&checkpoint).unwrap(), Some(SHARDS));

    // Onto two nodes: every account lands on its shard's owner among them, by the count the
    // checkpoint records.
    let placement = Sharding::<Account>::placement_recorded(&checkpoint, ["a", "b"]).unwrap();
    let restored = restore_onto(&["a", "b"], bank_builder, &checkpoint, &placement).await;
    let shardings: Vec<_> = restored.iter().map(|n| bank_sharding(n, SHARDS)).collect();
    let ids: HashMap<String, amber::ActorId> = checkpoint
        .manifest
        .actors
        .iter()
        .map(|a| {
            (a.name.clone().unwrap().strip_prefix("shard:test.Account/").unwrap().into(), a.id)
        })
        .collect();
    for key in &keys {
        // Reached by key from either node: the restored account, not a new one.
        for s in &shardings {
            let entity = bounded(s.entity(key.clone()).entity()).await.unwrap();
            assert_eq!(entity.id(), ids[key], "{key}: the restored account");
        }
        let owner = shardings[0].owner_of(shardings[0].shard_of(key)).unwrap();
        let here = restored.iter().position(|n| n.node() == &owner).unwrap();
        assert!(shardings[here].local_keys().contains(key), "{key} runs on its owner {owner}");
    }
    let live: usize = shardings.iter().map(|s| s.local_keys().len()).sum();
    assert_eq!(live, keys.len(), "no account started twice");
    let after = bounded(restored[1].system().snapshot()).await.unwrap();
    assert_eq!(after.manifest.actors.len(), keys.len());
    assert_eq!(audit(&after).total(), total, "the restored bank adds up");
    for n in &restored {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_records_each_nodes_shard_count_and_a_restore_reads_it() {
    // Two nodes shard Tally over 8 shards; the third runs no sharding of it (it still owns
    // some of its shards: the keys sent to are the others') but one of accounts.
    let (a, on_a) = tally_node("a", 8).await;
    let (b, _on_b) = tally_node("b", 8).await;
    let c = node("c", tally_builder().register::<Account>()).await;
    let _accounts = bank_sharding(&c, 4);
    let nodes = [a, b, c];
    mesh(&nodes).await;
    let keys: Vec<String> = (0..)
        .map(|k| format!("k{k}"))
        .filter(|key| {
            on_a.owner_of(on_a.shard_of(key)).is_some_and(|owner| owner != *nodes[2].node())
        })
        .take(12)
        .collect();
    for key in &keys {
        bounded(on_a.entity(key.clone()).tell(TallyMsg::Push { sender: 0, n: 1 })).await.unwrap();
    }
    let checkpoint = bounded(nodes[2].system().snapshot()).await.unwrap();
    let recorded: Vec<(&str, Option<&str>)> = checkpoint
        .manifest
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.annotations.get("sharding:test.Tally").map(String::as_str)))
        .collect();
    assert_eq!(recorded, [("a", Some("8")), ("b", Some("8")), ("c", None)]);
    assert_eq!(Sharding::<Tally>::recorded_shards(&checkpoint).unwrap(), Some(8));
    assert_eq!(Sharding::<Account>::recorded_shards(&checkpoint).unwrap(), Some(4));
    // The recorded count places every entity as the count given does (a restore with it is
    // in the sharded bank's test).
    let onto = ["a", "c"];
    let given = Sharding::<Tally>::placement(&checkpoint, 8, onto).assign(&checkpoint).unwrap();
    let recorded = Sharding::<Tally>::placement_recorded(&checkpoint, onto).unwrap();
    assert_eq!(recorded.assign(&checkpoint).unwrap(), given);
    let entities = checkpoint.manifest.actors.iter().filter(|e| e.type_name == "test.Tally");
    assert_eq!(entities.count(), keys.len());
    // A checkpoint without recorded counts (as taken before they were recorded) needs the
    // count given.
    let mut old = checkpoint.clone();
    for node in &mut old.manifest.nodes {
        node.annotations.clear();
    }
    assert!(matches!(Sharding::<Tally>::recorded_shards(&old), Ok(None)));
    assert!(matches!(
        Sharding::<Tally>::placement_recorded(&old, onto),
        Err(ShardingError::NoRecordedShards(t)) if t == "test.Tally"
    ));
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_sharded_over_different_counts_make_a_checkpoint_with_no_usable_count() {
    let (a, _on_a) = tally_node("a", 8).await;
    let (b, _on_b) = tally_node("b", 16).await;
    let nodes = [a, b];
    mesh(&nodes).await;
    let checkpoint = bounded(nodes[0].system().snapshot()).await.unwrap();
    let error = Sharding::<Tally>::recorded_shards(&checkpoint).unwrap_err();
    assert!(
        matches!(&error, ShardingError::RecordedShards { type_name, .. } if type_name == "test.Tally"),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("node a recorded \"8\"") && message.contains("node b recorded \"16\""),
        "{message}"
    );
    assert!(Sharding::<Tally>::placement_recorded(&checkpoint, ["a"]).is_err());
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_whose_node_is_lost_starts_afresh_on_its_shards_new_owner() {
    let (a, on_a) = tally_node("a", 32).await;
    let (b, _on_b) = tally_node("b", 32).await;
    let (c, on_c) = tally_node("c", 32).await;
    mesh(&[a.clone(), b.clone(), c.clone()]).await;
    let key = (0..)
        .map(|k| format!("room {k}"))
        .find(|k| on_a.owner_of(on_a.shard_of(k)).is_some_and(|o| o.as_str() == "b"))
        .unwrap();
    let kept = on_a.entity(key.clone());
    assert_eq!(bounded(kept.ask(TallyMsg::Add(5))).await.unwrap().sum, 5, "runs on b");
    let other = on_a.entity(key.clone()); // not a clone: it keeps a ref of its own
    bounded(other.entity()).await.unwrap();

    b.shutdown().await;
    bounded(async {
        while a.nodes().iter().any(|n| n.as_str() == "b") {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // An ask through the kept ref fails (its node is down), and drops it.
    let asked = bounded(kept.ask(TallyMsg::Report)).await;
    assert!(
        matches!(asked, Err(ShardingError::Ask(amber::AskError::NodeDown(ref n))) if n == "b"),
        "{asked:?}"
    );
    // The entity is looked up again and starts on the shard's owner among a and c, from its
    // factory; what it held on b is lost. A tell through a failing kept ref sends again.
    bounded(other.tell(TallyMsg::Add(1))).await.expect("sent to the entity started anew");
    let report = bounded(kept.ask(TallyMsg::Report)).await.unwrap();
    assert_eq!((report.key.as_str(), report.sum), (key.as_str(), 1));
    let owner = on_a.owner_of(on_a.shard_of(&key)).unwrap();
    assert_ne!(owner.as_str(), "b");
    let at = locations(&[&on_a, &on_c]);
    assert_eq!([a.node(), c.node()][at[&key]], &owner, "{key} runs on its new owner");
    a.shutdown().await;
    c.shutdown().await;
}

/// Three meshed nodes, and 30 rooms each holding its number plus one (k + 1), addressed from
/// a through the refs in `kept`.
struct Rooms {
    nodes: [Cluster; 3],
    shardings: [Sharding<Tally>; 3],
    keys: Vec<String>,
    kept: Vec<EntityRef<Tally>>,
}

async fn rooms() -> Rooms {
    let (a, on_a) = tally_node("a", 32).await;
    let (b, on_b) = tally_node("b", 32).await;
    let (c, on_c) = tally_node("c", 32).await;
    mesh(&[a.clone(), b.clone(), c.clone()]).await;
    let keys: Vec<String> = (0..30).map(|k| format!("room {k}")).collect();
    let kept: Vec<_> = keys.iter().map(|k| on_a.entity(k.clone())).collect();
    for (k, entity) in kept.iter().enumerate() {
        bounded(entity.ask(TallyMsg::Add(k as u64 + 1))).await.unwrap();
    }
    Rooms { nodes: [a, b, c], shardings: [on_a, on_b, on_c], keys, kept }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_hands_its_entities_off_before_leaving_loses_none() {
    let Rooms { nodes: [a, b, c], shardings: [on_a, on_b, on_c], keys, kept } = rooms().await;
    let on_c_before = on_c.local_keys();
    assert!(!on_c_before.is_empty(), "c runs some of the entities");

    let handed = bounded(on_c.hand_off()).await;
    assert!(handed.failed.is_empty(), "{:?}", handed.failed);
    assert_eq!(handed.moved.len(), on_c_before.len(), "every entity of c moved");
    assert!(on_c.local_keys().is_empty());
    c.shutdown().await;
    bounded(async {
        while a.nodes().iter().any(|n| n.as_str() == "c")
            || b.nodes().iter().any(|n| n.as_str() == "c")
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Every entity kept its state, through the refs kept before (those to c's entities
    // fail once and find them on their new node) and through new ones.
    for (k, entity) in kept.iter().enumerate() {
        bounded(entity.tell(TallyMsg::Add(1000))).await.expect("sent");
        // Asked through the same ref: after the tell, in the sender's order.
        let report = bounded(entity.ask(TallyMsg::Report)).await.unwrap();
        assert_eq!(report.sum, k as u64 + 1 + 1000, "{}: its state and the new message", keys[k]);
        let fresh = bounded(on_b.entity(keys[k].clone()).ask(TallyMsg::Report)).await.unwrap();
        assert_eq!(fresh, report, "{}: the same entity from b", keys[k]);
    }
    let at = locations(&[&on_a, &on_b]);
    assert_eq!(at.len(), keys.len(), "none started anew, none lost");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_nodes_entities_restart_from_the_checkpoint_on_their_new_owners() {
    let Rooms { nodes: [a, b, c], shardings: [on_a, _on_b, on_c], keys, kept } = rooms().await;
    let on_b_keys: Vec<String> = {
        let at = registered(&[&on_a, &_on_b, &on_c]);
        keys.iter().filter(|k| at[*k] == [1]).cloned().collect()
    };
    assert!(!on_b_keys.is_empty(), "b runs some of the entities");
    let checkpoint = bounded(a.system().snapshot()).await.expect("snapshot");
    // Work after the checkpoint: what b's entities did since is lost with b.
    for entity in &kept {
        bounded(entity.ask(TallyMsg::Add(1000))).await.unwrap();
    }

    b.shutdown().await;
    bounded(async {
        while a.nodes().iter().any(|n| n.as_str() == "b")
            || c.nodes().iter().any(|n| n.as_str() == "b")
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut restarted = Vec::new();
    for s in [&on_a, &on_c] {
        let report = bounded(s.restart_lost(&checkpoint)).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        restarted.extend(report.restarted);
    }
    restarted.sort();
    let mut expected = on_b_keys.clone();
    expected.sort();
    assert_eq!(restarted, expected, "exactly b's entities restarted");
    for (k, key) in keys.iter().enumerate() {
        let report = bounded(on_c.entity(key.clone()).ask(TallyMsg::Report)).await.unwrap();
        let sum = if on_b_keys.contains(key) { k as u64 + 1 } else { k as u64 + 1001 };
        assert_eq!(report.sum, sum, "{key}: at its checkpoint if it was b's, else its latest");
    }
    assert_eq!(locations(&[&on_a, &on_c]).len(), keys.len(), "one entity per key");
    // A second call finds them all running.
    let again = bounded(on_a.restart_lost(&checkpoint)).await;
    assert!(again.restarted.is_empty());
    a.shutdown().await;
    c.shutdown().await;
}

/// A node of a cluster formed by membership from `seeds`, with a sharding of `Tally`.
async fn tally_member(name: &str, seeds: &[std::net::SocketAddr]) -> (Cluster, Sharding<Tally>) {
    let ms = std::time::Duration::from_millis;
    let membership = amber::MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(500), ms(200), ms(3000))
        .with_gossip_interval(ms(50));
    let n = bounded(Cluster::join(tally_builder(), support::cluster::config(name), membership))
        .await
        .expect("join");
    let sharding = Sharding::<Tally>::start_with(&n, 32, |key| Tally {
        key: key.to_owned(),
        ..Tally::default()
    })
    .expect("sharding starts");
    (n, sharding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_formed_by_membership_shards_follow_the_members() {
    let (a, on_a) = tally_member("a", &[]).await;
    let (b, on_b) = tally_member("b", &[a.local_addr()]).await;
    let formed = |n: usize| {
        move |m: &Vec<amber::cluster::Member>| m.len() == n && m.iter().all(|m| m.linked)
    };
    for n in [&a, &b] {
        bounded(n.members_watch().wait_for(formed(2))).await.expect("formed");
    }
    let keys: Vec<String> = (0..40).map(|k| format!("room {k}")).collect();
    for key in &keys {
        bounded(on_b.entity(key.clone()).ask(TallyMsg::Add(1))).await.unwrap();
        bounded(on_a.entity(key.clone()).ask(TallyMsg::Add(1))).await.unwrap();
    }
    assert_eq!(locations(&[&on_a, &on_b]).len(), keys.len());

    let (c, on_c) = tally_member("c", &[a.local_addr()]).await;
    for n in [&a, &b, &c] {
        bounded(n.members_watch().wait_for(formed(3))).await.expect("formed");
    }
    for s in [&on_a, &on_b] {
        bounded(s.rebalanced().wait_for(|nodes| nodes.len() == 3)).await.unwrap();
    }
    bounded(async {
        while registered(&[&on_a, &on_b, &on_c]).values().any(|n| n.len() != 1) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let at = locations(&[&on_a, &on_b, &on_c]);
    let names = [a.node(), b.node(), c.node()];
    for key in &keys {
        let owner = on_c.owner_of(on_c.shard_of(key)).unwrap();
        assert_eq!(on_a.owner_of(on_a.shard_of(key)).as_ref(), Some(&owner), "{key}");
        assert_eq!(names[at[key]], &owner, "{key} runs on its owner among the members");
        let report = bounded(on_c.entity(key.clone()).ask(TallyMsg::Report)).await.unwrap();
        assert_eq!(report.sum, 2, "{key}: one entity had both messages, and kept them");
    }
    assert!(at.values().any(|&n| n == 2), "c took some");
    for n in [&a, &b, &c] {
        bounded(n.shutdown()).await;
    }
}
