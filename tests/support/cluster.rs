//! Clusters of nodes in one process, over 127.0.0.1 with port 0.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use amber::prelude::*;
use amber::{Cluster, SystemBuilder, TransportConfig};

use super::bounded;

pub const SECRET: &[u8] = b"test cluster secret";

/// The transport settings of a test node named `name`: loopback, port 0, fast to notice a
/// dead peer.
pub fn config(name: &str) -> TransportConfig {
    let addr = "127.0.0.1:0".parse().unwrap();
    TransportConfig::new(name, addr, SECRET.to_vec())
        .with_heartbeat(Duration::from_millis(100), Duration::from_millis(1000))
}

/// A node named `name` whose system is built from `builder`.
pub async fn node(name: &str, builder: SystemBuilder) -> Cluster {
    Cluster::start(builder, config(name)).await.expect("node starts")
}

/// Links every pair of `nodes` and waits until each has been introduced to all others.
pub async fn mesh(nodes: &[Cluster]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            bounded(a.connect(b.local_addr())).await.expect("connect");
        }
    }
    for n in nodes {
        bounded(async {
            while n.nodes().len() < nodes.len() - 1 {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
}

/// The same actors as seen from `on`'s system: the refs travel as ids and resolve there,
/// locally or through the links.
pub fn refs_on<A: Actor>(from: &Cluster, on: &Cluster, refs: &[ActorRef<A>]) -> Vec<ActorRef<A>> {
    let bytes = from.system().encode(refs).expect("refs encode");
    on.system().decode(&bytes).expect("refs resolve")
}

/// Restores `checkpoint` under `placement` onto one new node per name (systems built by
/// `builder`), links them all and resumes them (all at once: each node's resume returns
/// once every node has resumed).
pub async fn restore_onto(
    names: &[&str],
    builder: impl Fn() -> SystemBuilder,
    checkpoint: &amber::snapshot::Checkpoint,
    placement: &amber::cluster::Placement,
) -> Vec<Cluster> {
    let mut restored = Vec::new();
    for name in names {
        let node = bounded(Cluster::restore(builder(), config(name), checkpoint, placement)).await;
        restored.push(node.expect("restore a share"));
    }
    mesh(&restored).await;
    let resumes = restored.iter().map(|n| bounded(n.resume(Duration::from_secs(10))));
    for resumed in futures::future::join_all(resumes).await {
        resumed.expect("resume");
    }
    restored
}

/// How many of a checkpoint's recorded messages were sent by an actor of another system
/// (node) than their receiver's.
pub fn in_flight_between_nodes(checkpoint: &amber::snapshot::Checkpoint) -> usize {
    checkpoint
        .in_flight
        .iter()
        .filter(|m| m.from.is_some_and(|from| from.system() != m.to.system()))
        .count()
}

/// Takes snapshots of the three nodes `a`, `b`, `c` of `nodes`, started by each in turn,
/// while outside load (seeded by `seed`) moves money among the `local` accounts of each:
/// at least `rounds`, and until one caught a transfer between nodes in flight. Every
/// snapshot spans the three nodes, holds every account once and adds up to `total`.
/// Returns the last one.
pub async fn audited_snapshots(
    nodes: &[Cluster],
    local: &[Vec<ActorRef<super::bank::Account>>],
    total: u64,
    rounds: usize,
    seed: u64,
) -> amber::snapshot::Checkpoint {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::bank::{audit, outside_load};
    let accounts: usize = local.iter().map(Vec::len).sum();
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, mine)| outside_load(mine.clone(), seed + k as u64, 6, true, stop.clone()))
        .collect();
    let (mut cross_node_in_flight, mut round) = (0, 0);
    let mut last = None;
    while round < rounds || (cross_node_in_flight == 0 && round < 3000) {
        // Any node can start a snapshot of the whole cluster.
        let starter = &nodes[round % nodes.len()];
        round += 1;
        let checkpoint = bounded(starter.system().snapshot()).await.expect("snapshot");
        let mut names: Vec<&str> =
            checkpoint.manifest.nodes.iter().map(|n| n.node.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c"], "round {round}: one manifest for every node");
        assert_eq!(checkpoint.manifest.actors.len(), accounts, "round {round}");
        let audit = audit(&checkpoint);
        assert_eq!(audit.total(), total, "round {round}: {audit:?}");
        cross_node_in_flight += in_flight_between_nodes(&checkpoint);
        last = Some(checkpoint);
    }
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        assert!(bounded(l).await.unwrap() > 0, "the outside load ran");
    }
    assert!(cross_node_in_flight > 0, "some snapshot caught a transfer between nodes in flight");
    last.expect("at least one snapshot")
}

/// Whether a snapshot was aborted because `node` went down (before or after it sent its
/// part).
pub fn aborted_by_loss_of(
    result: &Result<amber::snapshot::Checkpoint, amber::SnapshotError>,
    node: &str,
) -> bool {
    use amber::snapshot::{AbortReason, Refusal};
    use amber::{AbortCause, SnapshotError};
    // The coordinator may hear of the loss first (NodeDown, or the part never came), or
    // another node may: it refuses the snapshot because its link to `node` dropped.
    matches!(
        result,
        Err(SnapshotError::Aborted {
            reason: AbortCause::Protocol(
                AbortReason::NodeDown(n)
                    | AbortReason::Rejected { reason: Refusal::LinkLost { peer: n }, .. }
            ) | AbortCause::PartLost { node: n },
            ..
        }) if n == node
    )
}

/// Which of `nodes` actor `id` runs on now (more than one would be a bug; none, while it
/// is on its way).
pub fn host(nodes: &[Cluster], id: amber::ActorId) -> Vec<usize> {
    (0..nodes.len()).filter(|&k| nodes[k].system().actor_info(id).is_some()).collect()
}

/// Moves randomly chosen actors among `ids` from the node they run on to another of `nodes`,
/// one move after the other, until `stop`; notes each move in `moves` ("id: from -> to"). A
/// move back to a node the actor left is refused (`StillForwarding`: that node still
/// forwards to it) and skipped; any other failure fails the test.
pub fn keep_moving(
    nodes: Vec<Cluster>,
    ids: Vec<amber::ActorId>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    moves: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    use amber::{ClusterError, MigrateError, MigrateRefusal};
    tokio::spawn(async move {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let id = ids[(rng % ids.len() as u64) as usize];
            let Some(&from) = host(&nodes, id).first() else { continue };
            let to = (from + 1 + (rng >> 32) as usize % (nodes.len() - 1)) % nodes.len();
            match nodes[from].migrate(id, nodes[to].node()).await {
                Ok(()) => moves.lock().unwrap().push(format!("{id}: {from} -> {to}")),
                Err(ClusterError::Migrate(MigrateError::Refused {
                    reason: MigrateRefusal::StillForwarding(_),
                    ..
                })) => tokio::task::yield_now().await,
                Err(e) => panic!("an actor did not move: {e}"),
            }
        }
    })
}
