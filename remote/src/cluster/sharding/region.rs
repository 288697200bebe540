//! One node's share of a sharding: the entities of one type that run here, found by their
//! registered names, and started here, one per key, under the registry's name lock.

use std::fmt;
use std::sync::{Arc, Weak};

use std::future::Future;
use std::pin::Pin;

use amber_actors::{ActorRef, ActorState, ActorSystem, SpawnError};
use tokio::sync::watch;

use super::super::{Cluster, ClusterError, Shared};
use super::control::Resolved;
use super::{ShardRefusal, hash};
use crate::NodeId;

/// A boxed future, as a trait object's async method returns it.
pub(in super::super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds an entity's initial state from its key.
pub(super) type Factory<E> = Box<dyn Fn(&str) -> E + Send + Sync>;

/// A region as the control messages see it, whatever its entity type.
pub(in super::super) trait RegionHost: Send + Sync + fmt::Debug {
    /// The entity `key` (see `Region::find_or_start`; `theirs`: the requester's view of the
    /// nodes): its id and the node it runs on, or why not.
    fn resolve_here<'a>(&'a self, key: &'a str, theirs: &'a [NodeId]) -> BoxFuture<'a, Resolved>;
}

/// This node's region of the sharding of `E`.
pub(super) struct Region<E: ActorState> {
    pub(super) shared: Weak<Shared>,
    pub(super) shards: u32,
    /// `shard:<type name>/`: an entity is registered as this prefix and its key.
    pub(super) prefix: String,
    pub(super) factory: Factory<E>,
    /// The nodes this node's latest rebalance was for (see [`Sharding::rebalanced`]).
    ///
    /// [`Sharding::rebalanced`]: super::Sharding::rebalanced
    pub(super) rebalanced: watch::Sender<Vec<NodeId>>,
}

impl<E: ActorState> fmt::Debug for Region<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region").field("type", &E::TYPE_NAME).field("shards", &self.shards).finish()
    }
}

impl<E: ActorState> Region<E> {
    /// The name the entity `key` is registered under, on whichever node it runs.
    pub(super) fn name_of(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The cluster, while it lives.
    pub(super) fn cluster(&self) -> Option<Cluster> {
        self.shared.upgrade().map(|shared| Cluster { shared })
    }

    /// The nodes shards are spread over, as this node sees them now, sorted: the members
    /// that are up and linked (this node included) on a cluster formed by membership
    /// ([`Cluster::join`]), else this node and the nodes linked to it.
    pub(super) fn nodes(&self, cluster: &Cluster) -> Vec<NodeId> {
        let me = cluster.node().clone();
        let mut nodes: Vec<NodeId> = if cluster.shared.membership.get().is_some() {
            cluster
                .members()
                .into_iter()
                .filter(|m| m.node == me || (m.status.is_up() && m.linked))
                .map(|m| m.node)
                .collect()
        } else {
            cluster.nodes()
        };
        if !nodes.contains(&me) {
            nodes.push(me);
        }
        nodes.sort();
        nodes
    }

    /// The owner of `shard` among `nodes`.
    pub(super) fn owner<'a>(&self, shard: u32, nodes: &'a [NodeId]) -> Option<&'a NodeId> {
        hash::owner(shard, nodes)
    }

    /// The entity `key`: the one running on this node, else the one running on the node
    /// that owned its shard before this one, else a new one here if this node owns its
    /// shard. `theirs` is the requester's view of the nodes (this node's own for a request
    /// of its own). Two requests for one key, from anywhere, find one entity: the registry
    /// admits one actor per name, and the loser of a race finds the winner.
    ///
    /// While nodes join, views differ: the owner is computed over this node's view and the
    /// requester's together (a node both know of, even if this one has not linked to it
    /// yet, counts). Before starting an entity, this node asks the nodes that owned the
    /// shard without it — in its view, in the requester's, in both — whether they run it (a
    /// name lookup): one that does (its rebalance has not moved it here yet) is the
    /// answer; one that cannot be asked now makes the request wait
    /// ([`ShardRefusal::Unsettled`]; the requester asks again). If the entity moved here
    /// meanwhile, its move's frame came on the same link before the lookup's answer, so it
    /// runs here by then.
    ///
    /// Returns the entity and the node it runs on.
    pub(super) async fn find_or_start(
        &self,
        key: &str,
        theirs: &[NodeId],
    ) -> Result<(ActorRef<E>, NodeId), ShardRefusal> {
        self.find_or(key, theirs, |system, name| system.spawn_named(name, (self.factory)(key)))
            .await
    }

    /// [`find_or_start`](Self::find_or_start), starting a missing entity with `start`
    /// (given the system and the entity's name) instead of its factory.
    pub(super) async fn find_or(
        &self,
        key: &str,
        theirs: &[NodeId],
        start: impl FnOnce(&ActorSystem, String) -> Result<ActorRef<E>, SpawnError>,
    ) -> Result<(ActorRef<E>, NodeId), ShardRefusal> {
        let Some(cluster) = self.cluster() else {
            return Err(ShardRefusal::Spawn(SpawnError::ShuttingDown.to_string()));
        };
        let system = cluster.system();
        let name = self.name_of(key);
        let me = cluster.node().clone();
        if let Ok(entity) = system.lookup::<E>(&name) {
            return Ok((entity, me));
        }
        let mine = self.nodes(&cluster);
        let mut both: Vec<NodeId> = mine.iter().chain(theirs).cloned().collect();
        both.sort();
        both.dedup();
        let shard = hash::shard_of(key, self.shards);
        let owner = self.owner(shard, &both);
        if owner != Some(&me) {
            return Err(ShardRefusal::NotOwner { owner: owner.map(|n| n.to_string()) });
        }
        let without_me = |view: &[NodeId]| -> Vec<NodeId> {
            view.iter().filter(|n| **n != me).cloned().collect()
        };
        let mut previous: Vec<NodeId> = [&mine[..], theirs, &both[..]]
            .iter()
            .filter_map(|view| hash::owner(shard, &without_me(view)).cloned())
            .collect();
        previous.sort();
        previous.dedup();
        for node in &previous {
            match cluster.lookup::<E>(node, &name).await {
                Ok(entity) => return Ok((entity, node.clone())),
                Err(ClusterError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::debug!(key, %node, error = %e, "could not ask a shard's previous owner for an entity");
                    return Err(ShardRefusal::Unsettled(format!("{node}: {e}")));
                }
            }
        }
        match start(system, name.clone()) {
            Ok(entity) => {
                tracing::debug!(entity = %entity.id(), key, r#type = E::TYPE_NAME, "started an entity");
                Ok((entity, me))
            }
            // Started meanwhile by a concurrent request, or arrived from the previous owner.
            Err(SpawnError::NameTaken(_)) => match system.lookup::<E>(&name) {
                Ok(entity) => Ok((entity, me)),
                Err(e) => Err(ShardRefusal::Spawn(e.to_string())),
            },
            Err(e) => {
                tracing::warn!(key, r#type = E::TYPE_NAME, error = %e, "could not start an entity");
                Err(ShardRefusal::Spawn(e.to_string()))
            }
        }
    }
}

impl<E: ActorState> RegionHost for Region<E> {
    fn resolve_here<'a>(&'a self, key: &'a str, theirs: &'a [NodeId]) -> BoxFuture<'a, Resolved> {
        Box::pin(async move {
            let (entity, node) = self.find_or_start(key, theirs).await?;
            Ok((entity.id(), node.to_string()))
        })
    }
}

/// `Arc<Region<E>>` as a region host.
pub(super) fn host<E: ActorState>(region: &Arc<Region<E>>) -> Arc<dyn RegionHost> {
    region.clone()
}
