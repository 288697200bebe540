//! One node's share of a sharding: the entities of one type that run here, found by their
//! registered names, and started here, one per key, under the registry's name lock.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use amber_actors::{
    ActorId, ActorRef, ActorState, ActorSystem, KeptState, MailboxCapacity, PassivateError,
    PassivateRequest, Passivation, SpawnError, SpawnOptions,
};
use amber_snapshot::CheckpointStore;
use tokio::sync::watch;

use super::super::{Cluster, ClusterError, Shared};
use super::control::Resolved;
use super::keeper::{self, KeeperMsg, KeeperReply, ShardKeeper};
use super::restart::LostShards;
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
    /// `None` on a proxy, which starts no entity.
    pub(super) factory: Option<Factory<E>>,
    /// The nodes this node's latest rebalance was for (see [`Sharding::rebalanced`]).
    ///
    /// [`Sharding::rebalanced`]: super::Sharding::rebalanced
    pub(super) rebalanced: watch::Sender<Vec<NodeId>>,
    /// `shard-kept:<type name>/`: a shard's keeper is registered as this and the shard.
    pub(super) keeper_prefix: String,
    /// Passivate entities idle for this long (`None`: passivation is off).
    pub(super) passivate_after: Option<Duration>,
    /// Restart a lost node's shards from this store's latest checkpoint (`None`: off).
    pub(super) restart_from: Option<Arc<dyn CheckpointStore>>,
    /// The nodes this region has dealt with the loss of (and rebalanced for): a shard whose
    /// owner among them is gone is being restarted from a checkpoint, and its entities are
    /// not started anew meanwhile (see [`Self::find_or_at`]).
    pub(super) settled: Mutex<Vec<NodeId>>,
    /// The latest report of a lost node's shards restarted here.
    pub(super) lost: watch::Sender<Option<Arc<LostShards>>>,
    /// The clock of the entity refs' last sends (see `EntityRef::refresh`).
    pub(super) clock: std::time::Instant,
    /// Whether this node hosts entities of `E` (else it is a proxy: it sends to them and
    /// owns no shard; see [`ShardingConfig::proxy`](super::ShardingConfig::proxy)).
    pub(super) hosts: bool,
    /// The majority rule across partitions (see `partition.rs`).
    pub(super) guard: super::partition::Partition,
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

    /// The name the keeper of `shard` is registered under, on whichever node it runs.
    pub(super) fn keeper_name(&self, shard: u32) -> String {
        format!("{}{shard}", self.keeper_prefix)
    }

    /// The keeper of `shard` on this node, started if there is none.
    fn keeper(
        &self,
        system: &ActorSystem,
        shard: u32,
    ) -> Result<ActorRef<ShardKeeper>, SpawnError> {
        let name = self.keeper_name(shard);
        if let Ok(keeper) = system.lookup::<ShardKeeper>(&name) {
            return Ok(keeper);
        }
        let keeper = ShardKeeper::new(E::TYPE_NAME, &self.prefix, shard);
        // Unbounded: an entity that passivates hands its state over without waiting.
        let options = SpawnOptions::new().name(name.clone()).capacity(MailboxCapacity::Unbounded);
        match system.spawn_with(options, {
            let mut keeper = Some(keeper);
            move || keeper.take().unwrap_or_default()
        }) {
            Ok(keeper) => Ok(keeper),
            Err(SpawnError::NameTaken(_)) => {
                system.lookup::<ShardKeeper>(&name).map_err(|_| SpawnError::NameTaken(name))
            }
            Err(e) => Err(e),
        }
    }

    /// Passivates the entity `key` (the actor `id`, running here) if it is idle (see
    /// [`PassivateRequest::if_handled`]): its state goes to its shard's keeper here.
    pub(super) async fn passivate(
        &self,
        key: &str,
        id: ActorId,
        if_handled: Option<u64>,
    ) -> Result<Passivation, PassivateError> {
        let Some(cluster) = self.cluster() else { return Err(PassivateError::NotHere(id)) };
        let system = cluster.system();
        let shard = hash::shard_of(key, self.shards);
        // Only on the shard's owner: a shard on its way elsewhere moves with its keeper,
        // which waits for the passivations begun before (see `rebalance.rs`).
        if self.owner(shard, &self.nodes(&cluster)) != Some(cluster.node()) {
            return Ok(Passivation::Busy { handled: 0 });
        }
        let keeper = self.keeper(system, shard).map_err(|_| PassivateError::NotKept(id))?;
        // The keeper hears of it first: it starts no actor for the key until the state
        // is in, or the passivation called off.
        let begin = KeeperMsg::Begin { key: key.to_owned(), asker: Some(system.id()) };
        let asking = keeper.clone();
        // From a task of its own: never as an actor (see `wake`).
        let begun = tokio::spawn(async move { asking.ask(begin).await }).await;
        match begun.unwrap_or(Err(amber_actors::AskError::NoReply)) {
            Ok(KeeperReply::Begun) => {}
            Ok(_) => return Ok(Passivation::Busy { handled: 0 }),
            Err(_) => {
                // The keeper may still take the `Begin` (a slow keeper, an ask that timed
                // out): called off after it, or the key would wait for a state that never
                // comes (its tells held, its requests told to retry, for good).
                let _ = keeper.tell(KeeperMsg::Abort { key: key.to_owned() }).await;
                return Err(PassivateError::NotKept(id));
            }
        }
        let abort = keeper.clone();
        let key = key.to_owned();
        let aborted = KeeperMsg::Abort { key: key.clone() };
        // Tells from other nodes that arrive for it once it passivated go to the keeper,
        // which sends them on to it (started again from its kept state): none is lost.
        let redirect = keeper::redirect_to(keeper.id(), key.clone());
        let keep = Box::new(move |kept: KeptState| {
            let KeptState { id, type_name, name, version, state } = kept;
            match keeper.try_tell(KeeperMsg::Keep { key, version, state }) {
                Ok(()) => Ok(()),
                Err(refused) => match refused.into_inner() {
                    KeeperMsg::Keep { version, state, .. } => {
                        Err(KeptState { id, type_name, name, version, state })
                    }
                    _ => unreachable!("the message given back is the one sent"),
                },
            }
        });
        let request = PassivateRequest { if_handled, keep, redirect: Some(redirect) };
        let result = system.passivate(id, request).await;
        if !matches!(result, Ok(Passivation::Passivated)) {
            let _ = abort.tell(aborted).await;
        }
        result
    }

    /// The messages the entity `id` (running here) has handled, as a passivation request
    /// that cannot succeed finds them (the keeper is not involved).
    pub(super) async fn handled(&self, id: ActorId) -> Result<Passivation, PassivateError> {
        let Some(cluster) = self.cluster() else { return Err(PassivateError::NotHere(id)) };
        let keep: amber_actors::passivate::Keep = Box::new(Err);
        let probe = PassivateRequest { if_handled: Some(u64::MAX), keep, redirect: None };
        cluster.system().passivate(id, probe).await
    }

    /// The keys of the entities passivated on this node (kept by its keepers).
    pub(super) async fn passivated(&self) -> Vec<String> {
        let Some(cluster) = self.cluster() else { return Vec::new() };
        let mut keys = Vec::new();
        for (_, id) in cluster.system().names_with_prefix(&self.keeper_prefix) {
            let Ok(keeper) = cluster.system().lookup_id::<ShardKeeper>(id) else { continue };
            if let Ok(KeeperReply::Keys(kept)) = keeper.ask(KeeperMsg::Keys).await {
                keys.extend(kept);
            }
        }
        keys
    }

    /// A new entity `key`, from the factory (a proxy has none: it starts no entity).
    fn fresh(&self, key: &str) -> Result<E, ShardRefusal> {
        match &self.factory {
            Some(factory) => Ok(factory(key)),
            None => Err(ShardRefusal::Spawn(format!(
                "this node is a proxy of the sharding of {}: it starts no entity",
                E::TYPE_NAME
            ))),
        }
    }

    /// The cluster, while it lives.
    pub(super) fn cluster(&self) -> Option<Cluster> {
        self.shared.upgrade().map(|shared| Cluster { shared })
    }

    /// Whether `node` is known to be a proxy of the sharding of `E` (this node when it
    /// is one; another when it said so): it owns no shard.
    pub(super) fn is_proxy(&self, cluster: &Cluster, node: &NodeId) -> bool {
        if node == cluster.node() {
            !self.hosts
        } else {
            cluster.shared.sharding.is_proxy(node, E::TYPE_NAME)
        }
    }

    /// The nodes shards are spread over, as this node sees them now, sorted: the members
    /// that are up and linked (this node included) on a cluster formed by membership
    /// ([`Cluster::join`]), else this node and the nodes linked to it; but for the nodes
    /// known to be proxies of the sharding of `E` (this one, if it is one).
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
        nodes.retain(|n| !self.is_proxy(cluster, n));
        nodes.sort();
        nodes
    }

    /// The nodes that may hold shards though this node cannot reach them yet, given its
    /// view `mine` ([`Self::nodes`]): the members known up but not linked, and the other
    /// nodes of the restore this node was restored in that `mine` has not held yet; but
    /// for the nodes known to be proxies of `E` (a proxy of the restore counts as seen).
    pub(super) fn unreached(&self, cluster: &Cluster, mine: &[NodeId]) -> Vec<NodeId> {
        let proxies: Vec<NodeId> =
            cluster.nodes().into_iter().filter(|n| self.is_proxy(cluster, n)).collect();
        let seen: Vec<NodeId> = mine.iter().chain(&proxies).cloned().collect();
        let mut unreached = cluster.shared.restore_unseen(&seen);
        if cluster.shared.membership.get().is_some() {
            let members = cluster.members();
            let up = members.into_iter().filter(|m| m.status.is_up() && !m.linked);
            unreached.extend(up.map(|m| m.node).filter(|n| !mine.contains(n)));
            // Declared down, but not for long enough to be taken over (`partition.rs`).
            unreached.extend(self.guard.pending_down(cluster).0);
        }
        unreached.retain(|n| !self.is_proxy(cluster, n));
        unreached.sort();
        unreached.dedup();
        unreached
    }

    /// The nodes that may own shards as this node knows them, given its view `mine`
    /// ([`Self::nodes`]): `mine` and the [unreached](Self::unreached) ones, sorted. A node
    /// leaves it only once it is gone (declared down or left, or unlinked on a cluster
    /// without membership), not when its link drops while the membership still counts it
    /// up: that is when its shards are lost (see `rebalance::watch`).
    pub(super) fn claim(&self, cluster: &Cluster, mine: &[NodeId]) -> Vec<NodeId> {
        let mut claim: Vec<NodeId> = mine.to_vec();
        claim.extend(self.unreached(cluster, mine));
        claim.sort();
        claim.dedup();
        claim
    }

    /// Whether this node joins its cluster through seeds and has heard from none yet: it
    /// cannot tell which nodes own what.
    fn joining(&self, cluster: &Cluster) -> bool {
        cluster.shared.membership.get().is_some_and(|m| m.joining())
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
    /// yet, counts), and so does every node this node knows may hold shards but cannot
    /// reach yet ([`Self::unreached`]: a member up but not linked, a node of this node's
    /// restore not seen yet): a shard such a node owns waits for it
    /// ([`ShardRefusal::Unsettled`]) rather than start its entities here, where they may run
    /// already. A node still joining through seeds, that has heard from none, starts no
    /// entity. Before starting an entity, this node asks the nodes that owned the
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
        self.find_or_at(key, theirs, Fresh::Factory, false).await.map(|(e, n, _)| (e, n))
    }

    /// [`find_or_start`](Self::find_or_start), starting a missing entity from `fresh`
    /// instead of always its factory; `restarting`: called by the restart of lost shards
    /// itself (which must not wait for itself). Returns also whether it started the entity
    /// from `fresh`.
    ///
    /// With passivation on, every start goes through the shard's keeper here, which starts
    /// an entity passivated here from its kept state (and waits while one passivates); a
    /// shard whose keeper is still on a previous owner (its rebalance has not moved it here
    /// yet) makes the request wait ([`ShardRefusal::Unsettled`]). With the restart of lost
    /// shards on, so does a shard whose owner was lost and that this node has not
    /// restarted from the checkpoint yet.
    pub(super) async fn find_or_at(
        &self,
        key: &str,
        theirs: &[NodeId],
        fresh: Fresh<'_>,
        restarting: bool,
    ) -> Result<(ActorRef<E>, NodeId, bool), ShardRefusal> {
        let Some(cluster) = self.cluster() else {
            return Err(ShardRefusal::Spawn(SpawnError::ShuttingDown.to_string()));
        };
        if !self.guard.majority(&cluster) {
            return Err(ShardRefusal::Unsettled(
                "this node's side of the cluster holds no majority".to_owned(),
            ));
        }
        let system = cluster.system();
        let name = self.name_of(key);
        let me = cluster.node().clone();
        let running = system.lookup::<E>(&name).ok();
        if let Some(entity) = &running
            && self.passivate_after.is_none()
        {
            return Ok((entity.clone(), me, false));
        }
        let mine = self.nodes(&cluster);
        let mut both: Vec<NodeId> = mine.iter().chain(theirs).cloned().collect();
        both.sort();
        both.dedup();
        let shard = hash::shard_of(key, self.shards);
        // The nodes neither view holds but that may run the shard: they count as owners.
        let unreached: Vec<NodeId> =
            self.unreached(&cluster, &mine).into_iter().filter(|n| !both.contains(n)).collect();
        let mut all: Vec<NodeId> = both.iter().chain(&unreached).cloned().collect();
        if !self.hosts {
            // A proxy owns no shard, whatever a requester's view says.
            all.retain(|n| *n != me);
        }
        all.sort();
        let owner = self.owner(shard, &all);
        if owner != Some(&me) {
            if let Some(entity) = running {
                return Ok((entity, me, false));
            }
            if let Some(owner) = owner.filter(|o| unreached.contains(o)) {
                return Err(ShardRefusal::Unsettled(format!(
                    "shard {shard}'s owner {owner} is not linked to this node yet"
                )));
            }
            return Err(ShardRefusal::NotOwner { owner: owner.map(|n| n.to_string()) });
        }
        if running.is_none() && self.joining(&cluster) {
            return Err(ShardRefusal::Unsettled(
                "this node has not heard from its cluster yet".to_owned(),
            ));
        }
        if let Some(entity) = running {
            // With passivation on, found through the shard's keeper here all the same: the
            // tells redirected to it for the key (sent to an actor of it that passivated)
            // reach the entity before the requester learns of it, so each sender's order
            // holds. (No keeper here: none were redirected here.)
            if system.lookup::<ShardKeeper>(&self.keeper_name(shard)).is_err() {
                return Ok((entity, me, false));
            }
            return self.wake(system, key, shard, fresh).await.map(|(e, started)| (e, me, started));
        }
        if self.restart_from.is_some() && !restarting {
            let settled = self.settled.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if let Some(lost) = hash::owner(shard, &settled)
                && *lost != me
                && !mine.contains(lost)
            {
                return Err(ShardRefusal::Unsettled(format!(
                    "shard {shard} of the lost node {lost} is being restarted from a checkpoint"
                )));
            }
        }
        let without_me = |view: &[NodeId]| -> Vec<NodeId> {
            view.iter().filter(|n| **n != me).cloned().collect()
        };
        let mut previous: Vec<NodeId> = [&mine[..], theirs, &both[..], &all[..]]
            .iter()
            .filter_map(|view| hash::owner(shard, &without_me(view)).cloned())
            .collect();
        previous.sort();
        previous.dedup();
        for node in &previous {
            match cluster.lookup::<E>(node, &name).await {
                Ok(entity) => return Ok((entity, node.clone(), false)),
                Err(ClusterError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::debug!(key, %node, error = %e, "could not ask a shard's previous owner for an entity");
                    return Err(ShardRefusal::Unsettled(format!("{node}: {e}")));
                }
            }
        }
        if self.passivate_after.is_some() {
            // The shard's passivated states must be here before a key of it starts anew.
            let keeper = self.keeper_name(shard);
            for node in &previous {
                match cluster.lookup::<ShardKeeper>(node, &keeper).await {
                    Ok(_) => {
                        return Err(ShardRefusal::Unsettled(format!(
                            "the passivated entities of shard {shard} are still on {node}"
                        )));
                    }
                    Err(ClusterError::NotFound { .. }) => {}
                    Err(e) => return Err(ShardRefusal::Unsettled(format!("{node}: {e}"))),
                }
            }
        }
        if self.passivate_after.is_some() {
            return self.wake(system, key, shard, fresh).await.map(|(e, started)| (e, me, started));
        }
        let started = match fresh {
            Fresh::Factory => system.spawn_named(name.clone(), self.fresh(key)?),
            Fresh::State { version, state } => {
                system.spawn_registered(E::TYPE_NAME, Some(name.clone()), version, state).and_then(
                    |(id, _)| system.lookup_id::<E>(id).map_err(|_| SpawnError::ShuttingDown),
                )
            }
        };
        match started {
            Ok(entity) => {
                tracing::debug!(entity = %entity.id(), key, r#type = E::TYPE_NAME, "started an entity");
                Ok((entity, me, true))
            }
            // Started meanwhile by a concurrent request, or arrived from the previous owner.
            Err(SpawnError::NameTaken(_)) => match system.lookup::<E>(&name) {
                Ok(entity) => Ok((entity, me, false)),
                Err(e) => Err(ShardRefusal::Spawn(e.to_string())),
            },
            Err(e) => {
                tracing::warn!(key, r#type = E::TYPE_NAME, error = %e, "could not start an entity");
                Err(ShardRefusal::Spawn(e.to_string()))
            }
        }
    }
}

/// The state a missing entity starts from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fresh<'a> {
    /// Its factory's.
    Factory,
    /// This one (a checkpoint's), at layout `version`.
    State {
        /// The layout version of `state`.
        version: u32,
        /// The state.
        state: &'a [u8],
    },
}

impl<E: ActorState> Region<E> {
    /// The entity `key` through its shard's keeper here (started if there is none): the
    /// running one, else one started from its kept state if it passivated here, else from
    /// `fresh`. Returns also whether it started from `fresh`.
    async fn wake(
        &self,
        system: &ActorSystem,
        key: &str,
        shard: u32,
        fresh: Fresh<'_>,
    ) -> Result<(ActorRef<E>, bool), ShardRefusal> {
        let keeper = self.keeper(system, shard).map_err(|e| ShardRefusal::Spawn(e.to_string()))?;
        let (version, fresh) = match fresh {
            Fresh::Factory => {
                let entity = self.fresh(key)?;
                let state =
                    entity.encode_state().map_err(|e| ShardRefusal::Spawn(e.to_string()))?;
                (E::VERSION, state)
            }
            Fresh::State { version, state } => (version, state.to_vec()),
        };
        let unsettled =
            |why: String| ShardRefusal::Unsettled(format!("shard {shard}'s keeper: {why}"));
        let wake =
            KeeperMsg::Wake { key: key.to_owned(), version, fresh, asker: Some(system.id()) };
        // Asked from a task of its own, not as the entity that may be looking a key up from
        // its handler: the keeper is never asked by actors, so it never defers its cut for
        // a snapshot (the ask rule), and a state an entity sent it after its own cut is
        // never held back behind requests that wait for it.
        let asked = tokio::spawn(async move { keeper.ask(wake).await }).await;
        let asked = asked.unwrap_or(Err(amber_actors::AskError::NoReply));
        let (id, started) = match asked {
            Ok(KeeperReply::Started { id, kept }) => (id, !kept),
            Ok(KeeperReply::Running(id)) => (id, false),
            Ok(KeeperReply::Retry(why)) => return Err(unsettled(why)),
            Ok(KeeperReply::Failed(e)) => return Err(ShardRefusal::Spawn(e)),
            Ok(other) => return Err(unsettled(format!("unexpected answer {other:?}"))),
            // The keeper moved away meanwhile: ask again.
            Err(e) => return Err(unsettled(e.to_string())),
        };
        // Passivated again already, or moved on: the requester asks again.
        let entity = system.lookup_id::<E>(id).map_err(|e| unsettled(e.to_string()))?;
        Ok((entity, started))
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
