//! Rebalancing: when the nodes change, each node moves the entities of the shards it no
//! longer owns to their new owner, by live migration ([`Cluster::migrate`]): no message to
//! a moving entity is lost, delivered twice or reordered per sender, and refs to it keep
//! working (its old node forwards).
//!
//! Rendezvous hashing moves only the shards a new node takes; every node decides for its
//! own entities from its own view of the members, so there is no coordinator to agree with.

use std::sync::{Arc, PoisonError};

use amber_actors::ActorState;
use tokio::sync::broadcast::error::RecvError;

use super::super::{Cluster, ClusterError};
use super::hash;
use super::keeper::{KeeperMsg, KeeperReply, ShardKeeper};
use super::region::Region;
use super::restart::{LostShards, restart_lost_shards};
use crate::NodeId;

/// Logs what a node's loss cost here (WARN if entities were restarted from a checkpoint or
/// had none).
fn log_lost(report: &LostShards) {
    if report.shards.is_empty() {
        tracing::debug!(lost = ?report.lost, "lost nodes' shards: none taken here");
        return;
    }
    let (checkpoint, epoch) = match report.checkpoint {
        Some((id, epoch)) => (id.to_string(), epoch.to_string()),
        None => ("none".to_owned(), "none".to_owned()),
    };
    tracing::warn!(
        lost = ?report.lost,
        shards = ?report.shards,
        %checkpoint,
        %epoch,
        restarted = report.restarted.len(),
        kept = report.kept.len(),
        running = report.running.len(),
        without_checkpoint = ?report.without_checkpoint,
        failed = report.failed.len(),
        skipped = report.skipped.len(),
        error = report.error.as_ref().map(ToString::to_string).unwrap_or_default(),
        "restarted a lost node's shards here from a checkpoint: what their entities did after its snapshot is lost"
    );
}

/// What a rebalance did on this node.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Rebalance {
    /// The entities that moved: their key and the node they moved to.
    pub moved: Vec<(String, NodeId)>,
    /// The entities that should have moved but did not, and why (they run here still,
    /// unless the error says the move may have happened: `NodeDown`, `Timeout`).
    pub failed: Vec<(String, ClusterError)>,
}

/// Moves this node's entities whose shard another node owns now.
pub(super) async fn run<E: ActorState>(region: &Region<E>) -> Rebalance {
    let Some(cluster) = region.cluster() else { return Rebalance::default() };
    let nodes = region.nodes(&cluster);
    move_to_owners(region, &cluster, &nodes).await
}

/// Moves every entity of this node to the owner of its shard among the other nodes.
pub(super) async fn hand_off<E: ActorState>(region: &Region<E>) -> Rebalance {
    let Some(cluster) = region.cluster() else { return Rebalance::default() };
    let me = cluster.node().clone();
    let mut others = region.nodes(&cluster);
    others.retain(|n| *n != me);
    move_to_owners(region, &cluster, &others).await
}

/// Waits (a little, at most) until the keeper `id` has no passivation under way: a state on
/// its way to it arrives before it moves. No passivation of its shard begins here any more
/// (this node no longer owns it); one that begins at the keeper once it moved is refused
/// there (the entity does not run on its node).
async fn quiesce(cluster: &Cluster, id: amber_actors::ActorId) {
    let Ok(keeper) = cluster.system().lookup_id::<ShardKeeper>(id) else { return };
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 0..10 {
        match keeper.ask(KeeperMsg::Passivating).await {
            Ok(KeeperReply::Keys(keys)) if !keys.is_empty() => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_millis(100));
            }
            _ => return,
        }
    }
    tracing::warn!(keeper = %id, "a shard's keeper moves with passivations under way");
}

/// Moves this node's entities whose shard's owner among `nodes` is another node to it.
async fn move_to_owners<E: ActorState>(
    region: &Region<E>,
    cluster: &Cluster,
    nodes: &[NodeId],
) -> Rebalance {
    let mut report = Rebalance::default();
    let me = cluster.node().clone();
    // The keepers of passivated entities first: an entity that arrives on its shard's new
    // owner, and passivates there, finds its shard's keeper there.
    let keepers = &region.keeper_prefix;
    let mut moved_keepers = Vec::new();
    for (name, id) in cluster.system().names_with_prefix(keepers) {
        let Ok(shard) = name[keepers.len()..].parse::<u32>() else { continue };
        let Some(owner) = hash::owner(shard, nodes) else { continue };
        if *owner == me {
            continue;
        }
        quiesce(cluster, id).await;
        match cluster.migrate(id, owner).await {
            Ok(()) => {
                tracing::debug!(shard, node = %owner, "moved a shard's passivated entities");
                moved_keepers.push((name.clone(), owner.clone()));
            }
            Err(e) => {
                tracing::warn!(shard, keeper = %id, node = %owner, error = %e, "a shard's passivated entities did not move to its owner");
                report.failed.push((name.clone(), e));
            }
        }
    }
    let prefix = &region.prefix;
    for (name, id) in cluster.system().names_with_prefix(prefix) {
        let key = &name[prefix.len()..];
        let Some(owner) = hash::owner(hash::shard_of(key, region.shards), nodes) else {
            continue;
        };
        if *owner == me {
            continue;
        }
        match cluster.migrate(id, owner).await {
            Ok(()) => report.moved.push((key.to_owned(), owner.clone())),
            Err(e) => {
                tracing::warn!(key, entity = %id, node = %owner, error = %e, "an entity did not move to its shard's owner");
                report.failed.push((key.to_owned(), e));
            }
        }
    }
    wake_keepers(cluster, &moved_keepers).await;
    if !report.moved.is_empty() || !report.failed.is_empty() {
        tracing::info!(
            r#type = E::TYPE_NAME,
            moved = report.moved.len(),
            failed = report.failed.len(),
            "rebalanced"
        );
    }
    report
}

/// Has each keeper that moved (registered as `name`, now on `node`) send on the messages
/// waiting in it for entities that have arrived there since (it moved first; a migrated
/// actor does not start again, so it would otherwise send them only on its next message).
async fn wake_keepers(cluster: &Cluster, moved: &[(String, NodeId)]) {
    for (name, node) in moved {
        let asked = match cluster.lookup::<ShardKeeper>(node, name).await {
            Ok(keeper) => keeper.ask(KeeperMsg::Waiting).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = asked {
            // Its next message (a lookup, a passivation of its shard) sends them on.
            tracing::debug!(keeper = name, %node, %error, "a moved keeper was not woken");
        }
    }
}

/// Rebalances this node's entities each time the nodes it sees change, until the cluster
/// shuts down.
pub(super) fn watch<E: ActorState>(cluster: &Cluster, region: Arc<Region<E>>) {
    let mut members = cluster.shared.membership.get().map(|_| cluster.members_watch());
    let mut events = cluster.subscribe();
    // Which linked nodes are proxies changes too (a proxy started after the links).
    let mut hosted = cluster.shared.sharding.changed.subscribe();
    let mut seen = region.nodes(cluster);
    // The nodes that may own shards, unreached ones included: a node is lost when it
    // leaves this, not `seen` (a member whose link dropped but that the membership still
    // counts up may be alive: its shards wait for it, see `Region::find_or_at`).
    let mut claimed = region.claim(cluster, &seen);
    *region.settled.lock().unwrap_or_else(PoisonError::into_inner) = claimed.clone();
    region.rebalanced.send_replace(seen.clone());
    tokio::spawn(async move {
        loop {
            let changed = async {
                match members.as_mut() {
                    Some(members) => members.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            // The next moment the majority rule acts by itself: a verdict that has stood
            // long enough, or this side's entities to stop (`partition.rs`).
            let wake = region.cluster().and_then(|cluster| {
                let due = region.guard.pending_down(&cluster).1;
                let stop = region.guard.stop_at(&cluster);
                due.into_iter().chain(stop).min()
            });
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                alive = changed => if !alive { return },
                event = events.recv() => if let Err(RecvError::Closed) = event { return },
                alive = hosted.changed() => if alive.is_err() { return },
                () = timer => {}
            }
            let Some(mut cluster) = region.cluster() else { return };
            if members.is_none() {
                // The node joined a membership after this sharding started
                // (`Cluster::join_membership`): follow its view from now on.
                members = cluster.shared.membership.get().map(|_| cluster.members_watch());
            }
            if !region.guard.majority(&cluster) {
                // No majority: nothing is taken over or moved from here; the entities stop
                // once it has lasted (their owners' view changes are dealt with once a
                // majority is back, against the view before it was lost).
                if region
                    .guard
                    .stop_at(&cluster)
                    .is_some_and(|at| at <= tokio::time::Instant::now())
                {
                    super::partition::stop_hosted(&region, &cluster);
                }
                continue;
            }
            if region.guard.take_stopped() {
                drop(cluster);
                super::partition::restart_own(&region).await;
                let Some(again) = region.cluster() else { return };
                cluster = again;
            }
            let nodes = region.nodes(&cluster);
            let claim = region.claim(&cluster, &nodes);
            if nodes == seen && claim == claimed {
                continue;
            }
            tracing::debug!(r#type = E::TYPE_NAME, nodes = ?nodes, unreached = ?claim.iter().filter(|n| !nodes.contains(n)).collect::<Vec<_>>(), "the nodes changed: rebalancing");
            seen = nodes.clone();
            let before = std::mem::replace(&mut claimed, claim.clone());
            // A node that left the view because it said it is a proxy is not lost: it runs
            // no entity of `E`.
            let lost: Vec<NodeId> = before
                .iter()
                .filter(|n| !claim.contains(n) && !region.is_proxy(&cluster, n))
                .cloned()
                .collect();
            drop(cluster);
            if region.restart_from.is_some() && !lost.is_empty() {
                let report = restart_lost_shards(&region, lost, &before, &claim).await;
                log_lost(&report);
                region.lost.send_replace(Some(Arc::new(report)));
            }
            *region.settled.lock().unwrap_or_else(PoisonError::into_inner) = claim;
            run(&region).await;
            region.rebalanced.send_replace(nodes);
        }
    });
}
