//! Passivating idle entities: every `idle / 2`, each node asks each entity of its own
//! shards how many messages it has handled; one that handled none for two sweeps in a row
//! is passivated ([`Region::passivate`]: its state goes to its shard's keeper here, and it
//! stops, if and only if no message waits for it — see [`amber_actors::passivate`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use amber_actors::{ActorId, ActorState, PassivateError, Passivation};

use super::region::Region;
use super::{ShardingError, hash};

/// What a sweep knows of an entity: the messages it had handled, and for how many sweeps
/// in a row that count stayed the same.
#[derive(Clone, Copy)]
struct Seen {
    handled: u64,
    quiet: u32,
}

/// Passivates this node's entities idle for `idle`, until the cluster shuts down.
pub(super) fn sweep<E: ActorState>(region: Arc<Region<E>>, idle: Duration) {
    let period = (idle / 2).max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut seen: HashMap<ActorId, Seen> = HashMap::new();
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(cluster) = region.cluster() else { return };
            if cluster.system().is_shutting_down() {
                return;
            }
            let me = cluster.node().clone();
            let nodes = region.nodes(&cluster);
            let entities = cluster.system().names_with_prefix(&region.prefix);
            drop(cluster);
            let mut next = HashMap::with_capacity(entities.len());
            let mut passivated = 0usize;
            for (name, id) in entities {
                let key = &name[region.prefix.len()..];
                // Only the owner's entities: one on its way elsewhere goes with its shard.
                if hash::owner(hash::shard_of(key, region.shards), &nodes) != Some(&me) {
                    continue;
                }
                let before = seen.get(&id).copied();
                // Two quiet sweeps: nothing handled for `idle`. Before that, only ask.
                let asked = match before {
                    Some(s) if s.quiet >= 1 => region.passivate(key, id, Some(s.handled)).await,
                    _ => region.handled(id).await,
                };
                match asked {
                    Ok(Passivation::Passivated) => passivated += 1,
                    Ok(Passivation::Busy { handled }) => {
                        let quiet = match before {
                            Some(s) if s.handled == handled => s.quiet + 1,
                            _ => 0,
                        };
                        next.insert(id, Seen { handled, quiet });
                    }
                    Err(PassivateError::Unsupported { .. }) => {}
                    Err(e) => tracing::debug!(key, error = %e, "entity not passivated"),
                }
            }
            seen = next;
            if passivated > 0 {
                tracing::debug!(r#type = E::TYPE_NAME, passivated, "passivated idle entities");
            }
        }
    });
}

/// Passivates the entity `key` now if it runs here, on its shard's owner, and is idle.
pub(super) async fn one<E: ActorState>(
    region: &Region<E>,
    key: &str,
) -> Result<bool, ShardingError> {
    if region.passivate_after.is_none() {
        return Err(ShardingError::Passivation("the sharding runs without passivation".into()));
    }
    let Some(cluster) = region.cluster() else { return Err(ShardingError::ShutDown) };
    let nodes = region.nodes(&cluster);
    if hash::owner(hash::shard_of(key, region.shards), &nodes) != Some(cluster.node()) {
        return Ok(false);
    }
    let Some((id, _)) = cluster.system().whereis(&region.name_of(key)) else { return Ok(false) };
    drop(cluster);
    match region.passivate(key, id, None).await {
        Ok(Passivation::Passivated) => Ok(true),
        Ok(Passivation::Busy { .. }) => Ok(false),
        Err(PassivateError::NotHere(_) | PassivateError::Stopping(_)) => Ok(false),
        Err(e) => Err(ShardingError::Passivation(e.to_string())),
    }
}
