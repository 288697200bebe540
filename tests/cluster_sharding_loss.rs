//! A node's loss restarts its shards on the surviving nodes by themselves (over 127.0.0.1):
//! each survivor takes the lost shards rendezvous hashing gives it among the remaining
//! nodes and starts their entities — running and passivated — from the newest checkpoint
//! of the cluster's store; it reports what was lost (the work since the checkpoint's epoch,
//! and the entities that had no checkpointed state, which start anew); messages sent to a
//! lost shard meanwhile wait for its restart; a torn newest checkpoint is skipped.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use amber::cluster::{LostShards, Sharding, ShardingConfig};
use amber::prelude::*;
use amber::snapshot::{CheckpointStore, FsStore};
use amber::{ActorState, Cluster, StateError, SystemBuilder};
use support::bounded;
use support::cluster::mesh;

/// A room that adds up what it is sent.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Room {
    key: String,
    sum: u64,
}

impl Actor for Room {
    type Msg = u64;
    type Reply = (String, u64);

    async fn handle(&mut self, add: u64, _: &mut Context<Self>) -> (String, u64) {
        self.sum += add;
        (self.key.clone(), self.sum)
    }
}

impl ActorState for Room {
    const TYPE_NAME: &'static str = "test.Room";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(self)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        Ok(system.decode(bytes)?)
    }
}

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Room>()
}

const SHARDS: u32 = 32;

async fn room_node(name: &str, store: Arc<dyn CheckpointStore>) -> (Cluster, Sharding<Room>) {
    // A peer is lost here when it shuts down (its links close at once): a heartbeat that
    // times out on a loaded machine would be a loss too, so it is given long.
    let config = support::cluster::config(name)
        .with_heartbeat(Duration::from_millis(100), Duration::from_secs(10));
    let n = bounded(Cluster::start(builder(), config)).await.expect("node starts");
    let config = ShardingConfig::new(SHARDS)
        .passivate_after(Duration::from_secs(3600))
        .restart_lost_from(store);
    let sharding =
        Sharding::<Room>::start_config_with(&n, config, |key| Room { key: key.to_owned(), sum: 0 })
            .expect("sharding starts");
    (n, sharding)
}

async fn sum(sharding: &Sharding<Room>, key: &str) -> u64 {
    bounded(sharding.entity(key.to_owned()).ask(0)).await.expect("ask").1
}

/// Waits until the room `key` holds `value`: the tells sent to it before have arrived (an
/// ask through another ref is not ordered after them). A checkpoint taken then holds them
/// in the rooms' states, not in flight (the restart of a lost shard does not replay what
/// was in flight).
async fn arrived(sharding: &Sharding<Room>, key: &str, value: u64) {
    bounded(async {
        while sum(sharding, key).await != value {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_nodes_shards_restart_on_the_survivors_from_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointStore> = Arc::new(FsStore::open(dir.path()).unwrap());
    let (a, on_a) = room_node("a", store.clone()).await;
    let (b, on_b) = room_node("b", store.clone()).await;
    let (c, on_c) = room_node("c", store.clone()).await;
    mesh(&[a.clone(), b.clone(), c.clone()]).await;
    let keys: Vec<String> = (0..60).map(|k| format!("room {k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        assert_eq!(sum(&on_a, key).await, 0);
        bounded(on_a.entity(key.clone()).tell(k as u64 + 1)).await.unwrap();
    }
    for (k, key) in keys.iter().enumerate() {
        arrived(&on_a, key, k as u64 + 1).await;
    }
    let b_shards: BTreeSet<u32> =
        (0..SHARDS).filter(|&s| on_a.owner_of(s).is_some_and(|o| o.as_str() == "b")).collect();
    let on_b_keys: BTreeSet<String> = on_b.local_keys().into_iter().collect();
    assert!(on_b_keys.len() >= 4, "b runs some of the rooms: {on_b_keys:?}");
    // Two of b's rooms are passivated when the checkpoint is taken: kept by b's keepers.
    let passivated: BTreeSet<String> = on_b_keys.iter().take(2).cloned().collect();
    for key in &passivated {
        assert!(bounded(on_b.passivate(key)).await.unwrap(), "{key} passivates");
    }
    let running_on_b: BTreeSet<String> = on_b_keys.difference(&passivated).cloned().collect();

    let written = bounded(a.system().checkpoint(&store)).await.expect("checkpoint");
    // Work after the checkpoint: lost with b for b's rooms.
    for key in &keys {
        bounded(on_c.entity(key.clone()).tell(1000)).await.unwrap();
    }
    // Rooms that b started after the checkpoint: in no checkpoint.
    let late: Vec<String> = (0..)
        .map(|k| format!("late {k}"))
        .filter(|k| b_shards.contains(&on_a.shard_of(k)))
        .take(3)
        .collect();
    for key in &late {
        bounded(on_a.entity(key.clone()).tell(7)).await.unwrap();
    }

    bounded(b.shutdown()).await;
    // Sent at once, while the survivors find out and restart b's shards: each message waits
    // for its room's restart (it is not sent to a room started afresh meanwhile).
    let during: Vec<_> = on_b_keys
        .iter()
        .map(|key| {
            let entity = on_a.entity(key.clone());
            tokio::spawn(async move { entity.tell(100_000).await.map_err(|e| e.error.to_string()) })
        })
        .collect();
    for sent in during {
        bounded(sent).await.unwrap().expect("a message during the restart is delivered");
    }
    let mut reports: Vec<Arc<LostShards>> = Vec::new();
    for s in [&on_a, &on_c] {
        let mut watch = s.lost_shards();
        let seen = bounded(watch.wait_for(|r| r.is_some())).await.unwrap().clone();
        reports.push(seen.unwrap());
    }
    let mut shards = BTreeSet::new();
    let (mut restarted, mut kept) = (BTreeSet::new(), BTreeSet::new());
    for r in &reports {
        assert_eq!(r.lost.iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(r.checkpoint, Some((written.id, written.epoch)), "the latest checkpoint");
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(r.error.is_none() && r.skipped.is_empty());
        for s in &r.shards {
            assert!(shards.insert(*s), "shard {s} taken by one survivor only");
        }
        restarted.extend(r.restarted.iter().cloned());
        kept.extend(r.kept.iter().cloned());
    }
    assert_eq!(shards, b_shards, "every shard of b was taken over");
    assert_eq!(restarted, running_on_b, "exactly b's running rooms restarted");
    assert_eq!(kept, passivated, "b's passivated rooms came back kept");

    // Every room of b is at its checkpoint (its work since is lost) plus what was sent
    // during the restart; the others are at their latest; the rooms b started after the
    // checkpoint start anew.
    for (k, key) in keys.iter().enumerate() {
        let expected =
            if on_b_keys.contains(key) { k as u64 + 1 + 100_000 } else { k as u64 + 1001 };
        assert_eq!(sum(&on_a, key).await, expected, "{key}");
        assert_eq!(sum(&on_c, key).await, expected, "{key}, from c");
    }
    for key in &late {
        assert_eq!(sum(&on_c, key).await, 0, "{key}: no checkpointed state, started anew");
    }
    let mut running: Vec<String> = on_a.local_keys();
    running.extend(on_c.local_keys());
    let unique: BTreeSet<&String> = running.iter().collect();
    assert_eq!(unique.len(), running.len(), "one room per key");
    bounded(a.shutdown()).await;
    bounded(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_newest_checkpoint_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointStore> = Arc::new(FsStore::open(dir.path()).unwrap());
    let (a, on_a) = room_node("ta", store.clone()).await;
    let (b, on_b) = room_node("tb", store.clone()).await;
    mesh(&[a.clone(), b.clone()]).await;
    let keys: Vec<String> = (0..20).map(|k| format!("room {k}")).collect();
    for key in &keys {
        bounded(on_a.entity(key.clone()).tell(1)).await.unwrap();
    }
    for key in &keys {
        arrived(&on_a, key, 1).await;
    }
    let on_b_keys: BTreeSet<String> = on_b.local_keys().into_iter().collect();
    assert!(!on_b_keys.is_empty(), "b runs some of the rooms");
    let older = bounded(a.system().checkpoint(&store)).await.expect("checkpoint");
    for key in &keys {
        bounded(on_a.entity(key.clone()).tell(10)).await.unwrap();
    }
    let newer = bounded(a.system().checkpoint(&store)).await.expect("checkpoint");
    // The newest is torn (as by a crash mid-copy): the restart falls back to the older.
    let file = std::fs::OpenOptions::new().write(true).open(&newer.path_or_key).unwrap();
    file.set_len(file.metadata().unwrap().len() / 2).unwrap();
    drop(file);

    bounded(b.shutdown()).await;
    let mut watch = on_a.lost_shards();
    let report = bounded(watch.wait_for(|r| r.is_some())).await.unwrap().clone().unwrap();
    assert_eq!(report.checkpoint, Some((older.id, older.epoch)), "the newest that loads");
    assert_eq!(report.skipped.len(), 1, "the torn one, reported: {:?}", report.skipped);
    let restarted: BTreeSet<String> = report.restarted.iter().cloned().collect();
    assert_eq!(restarted, on_b_keys, "b's rooms, from the older checkpoint");
    for key in &keys {
        let expected = if on_b_keys.contains(key) { 1 } else { 11 };
        assert_eq!(sum(&on_a, key).await, expected, "{key}");
    }
    bounded(a.shutdown()).await;
}

/// A member of a cluster formed by membership from `seeds`, with rooms restarted from
/// `store` when a member is lost.
async fn room_member(
    name: &str,
    seeds: &[std::net::SocketAddr],
    store: Arc<dyn CheckpointStore>,
) -> (Cluster, Sharding<Room>) {
    let ms = Duration::from_millis;
    let membership = amber::MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(500), ms(200), ms(3000))
        .with_gossip_interval(ms(50));
    let n = bounded(Cluster::join(builder(), support::cluster::config(name), membership))
        .await
        .expect("join");
    let config = ShardingConfig::new(SHARDS).restart_lost_from(store);
    let sharding =
        Sharding::<Room>::start_config_with(&n, config, |key| Room { key: key.to_owned(), sum: 0 })
            .expect("sharding starts");
    (n, sharding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_formed_by_membership_a_member_that_leaves_has_its_shards_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointStore> = Arc::new(FsStore::open(dir.path()).unwrap());
    let (a, on_a) = room_member("ma", &[], store.clone()).await;
    let (b, on_b) = room_member("mb", &[a.local_addr()], store.clone()).await;
    for n in [&a, &b] {
        let formed = |m: &Vec<amber::cluster::Member>| m.len() == 2 && m.iter().all(|m| m.linked);
        bounded(n.members_watch().wait_for(formed)).await.expect("formed");
    }
    let keys: Vec<String> = (0..20).map(|k| format!("room {k}")).collect();
    for key in &keys {
        bounded(on_a.entity(key.clone()).tell(3)).await.unwrap();
    }
    for key in &keys {
        arrived(&on_a, key, 3).await;
    }
    let on_b_keys: BTreeSet<String> = on_b.local_keys().into_iter().collect();
    assert!(!on_b_keys.is_empty(), "b runs some of the rooms");
    let written = bounded(a.system().checkpoint(&store)).await.expect("checkpoint");
    for key in &keys {
        bounded(on_a.entity(key.clone()).tell(100)).await.unwrap();
    }
    bounded(b.shutdown()).await;
    let mut watch = on_a.lost_shards();
    let report = bounded(watch.wait_for(|r| r.is_some())).await.unwrap().clone().unwrap();
    assert_eq!(report.checkpoint, Some((written.id, written.epoch)));
    let restarted: BTreeSet<String> = report.restarted.iter().cloned().collect();
    assert_eq!(restarted, on_b_keys);
    for key in &keys {
        let expected = if on_b_keys.contains(key) { 3 } else { 103 };
        assert_eq!(sum(&on_a, key).await, expected, "{key}");
    }
    bounded(a.shutdown()).await;
}

/// Starts member `name` joining through `seed` in a runtime of its own, on a thread of its
/// own, once it runs; returns what crashes it (its runtime is dropped with every task of the
/// node: its links and gossip end without a goodbye) and its thread.
fn crashable_member(
    name: &'static str,
    seed: std::net::SocketAddr,
    store: Arc<dyn CheckpointStore>,
) -> (tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
    let (ready, started) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let node = runtime.block_on(async move {
            let (n, sharding) = room_member(name, &[seed], store).await;
            ready.send(()).unwrap();
            (n, sharding)
        });
        let _ = runtime.block_on(crashed);
        // A crash: no shutdown, no leave; every task of the node is dropped mid-flight.
        runtime.shutdown_background();
        std::mem::forget(node);
    });
    started.recv_timeout(Duration::from_secs(20)).expect("the member starts");
    (crash, thread)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_link_drops_is_lost_only_once_the_membership_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointStore> = Arc::new(FsStore::open(dir.path()).unwrap());
    let (a, on_a) = room_member("xa", &[], store.clone()).await;
    let (crash, thread) = crashable_member("xb", a.local_addr(), store.clone());
    let formed = |m: &Vec<amber::cluster::Member>| m.len() == 2 && m.iter().all(|m| m.linked);
    bounded(a.members_watch().wait_for(formed)).await.expect("formed");
    let keys: Vec<String> = (0..20).map(|k| format!("room {k}")).collect();
    for key in &keys {
        bounded(on_a.entity(key.clone()).tell(3)).await.unwrap();
    }
    for key in &keys {
        arrived(&on_a, key, 3).await;
    }
    let on_b: BTreeSet<String> = keys
        .iter()
        .filter(|k| on_a.owner_of(on_a.shard_of(k)).is_some_and(|o| o.as_str() == "xb"))
        .cloned()
        .collect();
    assert!(!on_b.is_empty(), "b runs some of the rooms");
    let written = bounded(a.system().checkpoint(&store)).await.expect("checkpoint");
    crash.send(()).unwrap();
    // The link drops at once; the membership declares b down only after its suspicion
    // timeout. Requests for b's rooms meanwhile wait (or give up): none starts a room anew.
    let asker = {
        let on_a = on_a.clone();
        let key = on_b.iter().next().unwrap().clone();
        tokio::spawn(async move {
            let entity = on_a.entity(key);
            for _ in 0..20 {
                let _ = entity.ask(0).await;
            }
        })
    };
    let mut watch = on_a.lost_shards();
    let report = bounded(watch.wait_for(|r| r.is_some())).await.unwrap().clone().unwrap();
    assert_eq!(report.lost, vec![amber::cluster::NodeId::from("xb")]);
    assert_eq!(report.checkpoint, Some((written.id, written.epoch)));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.running.is_empty(), "started anew before the restart: {:?}", report.running);
    let restarted: BTreeSet<String> = report.restarted.iter().cloned().collect();
    assert_eq!(restarted, on_b);
    asker.abort();
    for key in &on_b {
        assert_eq!(sum(&on_a, key).await, 3, "{key}: from the checkpoint");
    }
    thread.join().unwrap();
    bounded(a.shutdown()).await;
}
