//! Restarting a lost node's entities from a checkpoint: each node starts, from their state
//! in the checkpoint, the entities whose shard it owns now and that run nowhere it can see.

use amber_actors::{ActorState, SpawnError};
use amber_snapshot::Checkpoint;

use super::region::Region;
use super::{ShardRefusal, hash};

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
        let mut started = false;
        let found = region
            .find_or(key, &nodes, |system, name| {
                let (id, _) = system.spawn_registered(
                    E::TYPE_NAME,
                    Some(name),
                    actor.state_version,
                    &state.state,
                )?;
                started = true;
                system.lookup_id::<E>(id).map_err(|_| SpawnError::ShuttingDown)
            })
            .await;
        match found {
            Ok(_) if started => report.restarted.push(key.to_owned()),
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
