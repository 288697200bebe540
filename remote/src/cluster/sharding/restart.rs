//! Restarting a lost node's entities from a checkpoint: each node starts, from their state
//! in the checkpoint, the entities whose shard it owns now and that run nowhere it can see;
//! by hand ([`Sharding::restart_lost`](super::Sharding::restart_lost)), or by itself when
//! its view of the nodes loses one ([`LostShards`]: the lost node's shards that rendezvous
//! hashing gives this node among the remaining ones, their keepers and entities, from the
//! newest checkpoint of the store that loads).

use amber_actors::{ActorState, SpawnError};
use amber_snapshot::{Checkpoint, CheckpointId, Epoch, StoreError};

use super::error::RestartSourceError;
use super::keeper::{KEEPER_TYPE, KeeperMsg, ShardKeeper};
use super::region::{Fresh, Region};
use super::{ShardRefusal, hash};
use crate::NodeId;

/// What [`Sharding::restart_lost`](super::Sharding::restart_lost) did on this node.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Restarted {
    /// The keys of the entities started here from the checkpoint.
    pub restarted: Vec<String>,
    /// The keys of entities of this node's shards that were found running (here or on the
    /// shard's previous owner), left as they are.
    pub running: Vec<String>,
    /// The keys that could not be restarted, and why.
    pub failed: Vec<(String, ShardRefusal)>,
}

/// Starts from `checkpoint` the entities of the shards this node owns now that run nowhere.
pub(super) async fn restart_lost<E: ActorState>(
    region: &Region<E>,
    checkpoint: &Checkpoint,
) -> Restarted {
    let mut report = Restarted::default();
    let Some(cluster) = region.cluster() else { return report };
    let me = cluster.node().clone();
    let nodes = region.nodes(&cluster);
    for actor in &checkpoint.manifest.actors {
        if actor.type_name != E::TYPE_NAME {
            continue;
        }
        let Some(key) = actor.name.as_deref().and_then(|n| n.strip_prefix(&region.prefix)) else {
            continue;
        };
        if hash::owner(hash::shard_of(key, region.shards), &nodes) != Some(&me) {
            continue;
        }
        let Some(state) = checkpoint.states.iter().find(|s| s.id == actor.id) else {
            report
                .failed
                .push((key.to_owned(), ShardRefusal::Spawn("no state in the checkpoint".into())));
            continue;
        };
        let fresh = Fresh::State { version: actor.state_version, state: &state.state };
        let found = region.find_or_at(key, &nodes, fresh, false).await;
        match found {
            Ok((_, _, true)) => report.restarted.push(key.to_owned()),
            Ok(_) => report.running.push(key.to_owned()),
            Err(reason) => {
                tracing::warn!(key, %reason, "an entity was not restarted from the checkpoint");
                report.failed.push((key.to_owned(), reason));
            }
        }
    }
    if !report.restarted.is_empty() {
        tracing::info!(
            r#type = E::TYPE_NAME,
            checkpoint = %checkpoint.manifest.id.0,
            restarted = report.restarted.len(),
            "restarted entities from a checkpoint"
        );
    }
    report
}

/// What this node did when nodes were lost ([`ShardingConfig::restart_lost_from`]): the
/// lost nodes' shards it took over, and their entities restarted from a checkpoint.
///
/// What is lost, for each restarted entity: everything it did after the checkpoint's
/// snapshot (`epoch`), and the messages that were in flight to it then (they are not
/// replayed); a restarted entity is no longer consistent with the others as a snapshot
/// would be (a bank's total may change). An entity of these shards that is in no
/// checkpoint starts anew from its factory on its next message.
///
/// [`ShardingConfig::restart_lost_from`]: super::ShardingConfig::restart_lost_from
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct LostShards {
    /// The nodes lost.
    pub lost: Vec<NodeId>,
    /// The lost nodes' shards this node owns now, sorted.
    pub shards: Vec<u32>,
    /// The checkpoint the entities restarted from (`None`: there was none that loads, or
    /// the store could not be read: see `error`), and its snapshot's epoch: the work of the
    /// restarted entities after that epoch is lost.
    pub checkpoint: Option<(CheckpointId, Epoch)>,
    /// Why each newer checkpoint did not load (newest first).
    pub skipped: Vec<StoreError>,
    /// The store could not be read.
    pub error: Option<RestartSourceError>,
    /// The keys of the entities started here from the checkpoint.
    pub restarted: Vec<String>,
    /// The keys of passivated entities whose kept states came back from the checkpoint
    /// (they start on their next message).
    pub kept: Vec<String>,
    /// Entities of these shards found running (here or elsewhere), left as they are.
    pub running: Vec<String>,
    /// The shards of `shards` with no entity (running or passivated) in the checkpoint:
    /// their entities start anew from the factory on their next message.
    pub without_checkpoint: Vec<u32>,
    /// The keys that could not be restarted, and why.
    pub failed: Vec<(String, ShardRefusal)>,
}

/// Restarts here, from the newest checkpoint of the region's store that loads, the
/// entities and keepers of the shards that `lost` owned among `before` and this node owns
/// among `now`.
pub(super) async fn restart_lost_shards<E: ActorState>(
    region: &Region<E>,
    lost: Vec<NodeId>,
    before: &[NodeId],
    now: &[NodeId],
) -> LostShards {
    let mut report = LostShards { lost, ..LostShards::default() };
    let Some(cluster) = region.cluster() else { return report };
    let Some(store) = region.restart_from.clone() else { return report };
    let me = cluster.node().clone();
    report.shards = (0..region.shards)
        .filter(|&s| hash::owner(s, before).is_some_and(|o| report.lost.contains(o)))
        .filter(|&s| hash::owner(s, now) == Some(&me))
        .collect();
    if report.shards.is_empty() {
        return report;
    }
    drop(cluster);
    let loaded = tokio::task::spawn_blocking(move || store.latest_valid()).await;
    let checkpoint = match loaded {
        Ok(Ok(latest)) => {
            report.skipped = latest.skipped;
            latest.checkpoint
        }
        Ok(Err(e)) => {
            report.error = Some(e.into());
            None
        }
        Err(e) => {
            report.error = Some(RestartSourceError::Reader(e.to_string()));
            None
        }
    };
    let mut with_state = std::collections::BTreeSet::new();
    if let Some(checkpoint) = &checkpoint {
        report.checkpoint = Some((checkpoint.manifest.id, checkpoint.manifest.epoch));
        restart_keepers(region, checkpoint, &mut report, &mut with_state);
        restart_entities(region, checkpoint, now, &mut report, &mut with_state).await;
    }
    report.without_checkpoint =
        report.shards.iter().copied().filter(|s| !with_state.contains(s)).collect();
    report
}

/// Starts the keepers of the report's shards from the checkpoint (unless one runs here).
fn restart_keepers<E: ActorState>(
    region: &Region<E>,
    checkpoint: &Checkpoint,
    report: &mut LostShards,
    with_state: &mut std::collections::BTreeSet<u32>,
) {
    let Some(cluster) = region.cluster() else { return };
    let system = cluster.system();
    for actor in &checkpoint.manifest.actors {
        if actor.type_name != KEEPER_TYPE {
            continue;
        }
        let Some(shard) = actor
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix(&region.keeper_prefix))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if !report.shards.contains(&shard) {
            continue;
        }
        let name = region.keeper_name(shard);
        let Some(state) = checkpoint.states.iter().find(|s| s.id == actor.id) else { continue };
        match system.spawn_registered(
            KEEPER_TYPE,
            Some(name.clone()),
            actor.state_version,
            &state.state,
        ) {
            Ok(_) => {}
            Err(SpawnError::NameTaken(_)) => continue,
            Err(e) => {
                tracing::warn!(shard, error = %e, "a lost shard's passivated entities were not restored");
                report.failed.push((name, ShardRefusal::Spawn(e.to_string())));
                continue;
            }
        }
        // The keys it keeps, as its state holds them.
        let mut keys = system
            .decode::<KeeperKeys>(&state.state)
            .map(|k| k.kept.into_keys().collect::<Vec<_>>())
            .unwrap_or_default();
        // And the states that were on their way to it (entities that passivated after its
        // cut): handed to it now, before any request for its keys is served (they wait
        // until this restart is done). Other messages in flight are not replayed.
        if let Ok(keeper) = system.lookup::<ShardKeeper>(&name) {
            for m in checkpoint.in_flight.iter().filter(|m| m.to == actor.id) {
                if let Ok(KeeperMsg::Keep { key, version, state }) =
                    system.decode::<KeeperMsg>(&m.payload)
                {
                    keys.push(key.clone());
                    let _ = keeper.try_tell(KeeperMsg::Keep { key, version, state });
                }
            }
        }
        if !keys.is_empty() {
            with_state.insert(shard);
        }
        report.kept.extend(keys);
    }
}

/// The keys a keeper's state holds (its state read without its values).
#[derive(serde::Deserialize)]
struct KeeperKeys {
    kept: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// Starts the entities of the report's shards from the checkpoint (unless they run).
async fn restart_entities<E: ActorState>(
    region: &Region<E>,
    checkpoint: &Checkpoint,
    now: &[NodeId],
    report: &mut LostShards,
    with_state: &mut std::collections::BTreeSet<u32>,
) {
    for actor in &checkpoint.manifest.actors {
        if actor.type_name != E::TYPE_NAME {
            continue;
        }
        let Some(key) = actor.name.as_deref().and_then(|n| n.strip_prefix(&region.prefix)) else {
            continue;
        };
        let shard = hash::shard_of(key, region.shards);
        if !report.shards.contains(&shard) {
            continue;
        }
        with_state.insert(shard);
        let Some(state) = checkpoint.states.iter().find(|s| s.id == actor.id) else {
            report
                .failed
                .push((key.to_owned(), ShardRefusal::Spawn("no state in the checkpoint".into())));
            continue;
        };
        let fresh = Fresh::State { version: actor.state_version, state: &state.state };
        let found = region.find_or_at(key, now, fresh, true).await;
        match found {
            Ok((_, _, true)) => report.restarted.push(key.to_owned()),
            Ok(_) => report.running.push(key.to_owned()),
            Err(reason) => {
                tracing::warn!(key, %reason, "a lost shard's entity was not restarted from the checkpoint");
                report.failed.push((key.to_owned(), reason));
            }
        }
    }
}
