//! Sharded entities: actors addressed by a key from any node, started on first message on
//! the node that owns the key's shard, and moved when nodes join (or hand them off before
//! leaving).
//!
//! - A key maps to one of a fixed number of shards by a stable hash; a shard maps to one
//!   of the current nodes by rendezvous hashing (`hash.rs`), which every node computes
//!   alike from its view of the members. A join moves only the shards the new node takes.
//!   Nodes started as proxies ([`Sharding::start_proxy`]) own none: they say so when they
//!   link (`control.rs`), and the others leave them out.
//! - An entity is an actor of a registered type `E`, registered on its node under the name
//!   `shard:<E::TYPE_NAME>/<key>`. A node finds or starts one only for a shard it owns,
//!   under the registry's name lock, so requests for one key that race from several nodes
//!   reach one entity (`region.rs`). Requests to another node's shards travel as a
//!   `Resolve` control message (`control.rs`); [`EntityRef`] keeps the ref it gets.
//! - When the nodes change, each node moves the entities of the shards it lost to their
//!   new owner by live migration ([`Cluster::migrate`]; `rebalance.rs`).
//! - [`Sharding::hand_off`] moves a leaving node's entities to their next owners;
//!   [`Sharding::restart_lost`] starts a lost node's entities from a checkpoint
//!   (`restart.rs`).
//! - Entities are plain actors: snapshots hold them, and [`Sharding::placement`] puts a
//!   checkpoint's entities on their shard's owner among the nodes it is restored onto.
//!   Each node records its shard count in its entry of the checkpoints it takes part in
//!   (annotation `sharding:<type name>`, [`Sharding::annotation_key`]), which
//!   [`Sharding::placement_recorded`] and `amber graph --shards` read back.
//! - Passivation ([`ShardingConfig::passivate_after`]; `passivate.rs`): an idle entity
//!   hands its state to its shard's keeper (`keeper.rs`, an actor of type
//!   [`ShardKeeper`], kept in memory on the shard's owner, checkpointed and moved with the
//!   shard) and stops; its next message starts it again from that state. Tells from other
//!   nodes that arrive for it once it passivated are redirected to the keeper, which sends
//!   them on to it (`keeper.rs`).
//! - With [`ShardingConfig::restart_lost_from`], a node's loss restarts its shards on the
//!   nodes that take them over, from the newest checkpoint of the store that loads
//!   (`restart.rs`), reported as [`LostShards`].
//!
//! The guide: `docs/cluster.md`, "Sharded entities".

mod config;
mod control;
mod entity;
mod error;
mod hash;
mod keeper;
mod kept;
mod partition;
mod passivate;
mod rebalance;
mod region;
mod restart;

use std::fmt;
use std::sync::Arc;

use amber_actors::ActorState;
use amber_snapshot::Checkpoint;

pub use self::config::ShardingConfig;
pub(crate) use self::control::ShardControl;
pub(super) use self::control::{Regions, Resolved, on_control};
pub use self::entity::EntityRef;
pub use self::error::{RestartSourceError, ShardRefusal, ShardingError, TellError};
pub use self::keeper::{KeeperMsg, KeeperReply, ShardKeeper};
pub use self::rebalance::Rebalance;
use self::region::Region;
pub use self::restart::{LostShards, Restarted};
use super::{Cluster, Placement};
use crate::NodeId;

/// This node's handle on the sharding of entity type `E` across the cluster.
///
/// Start one on every node that hosts entities of `E` (with the same shard count, and
/// the type registered with
/// [`SystemBuilder::register`](amber_actors::SystemBuilder::register)), before the node
/// links to the others, so that a request from another node finds it; on a node that only
/// sends to them, start a proxy ([`start_proxy`](Self::start_proxy)), which owns no shard.
///
/// ```
/// use amber_actors::{Actor, ActorState, ActorSystem, CodecError, Context, StateError};
/// use amber_remote::{Cluster, Sharding, TransportConfig};
///
/// #[derive(Default)]
/// struct Counter(u64);
/// impl Actor for Counter {
///     type Msg = u64;
///     type Reply = u64;
///     async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> u64 {
///         self.0 += n;
///         self.0
///     }
/// }
/// impl ActorState for Counter {
///     const TYPE_NAME: &'static str = "doc.Counter";
///     fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
///         amber_actors::encode(&self.0)
///     }
///     fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
///         Ok(Counter(system.decode(bytes)?))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let secret = b"a long random shared secret".to_vec();
/// let addr = "127.0.0.1:0".parse().unwrap();
/// let builder = || ActorSystem::builder().register::<Counter>();
/// let a = Cluster::start(builder(), TransportConfig::new("a", addr, secret.clone())).await.unwrap();
/// let b = Cluster::start(builder(), TransportConfig::new("b", addr, secret)).await.unwrap();
/// let on_a = Sharding::<Counter>::start(&a, 16).unwrap();
/// let on_b = Sharding::<Counter>::start(&b, 16).unwrap();
/// a.connect(b.local_addr()).await.unwrap();
/// // The same entity, whichever node asks and wherever it runs.
/// assert_eq!(on_a.entity("kitchen").ask(2).await.unwrap(), 2);
/// assert_eq!(on_b.entity("kitchen").ask(3).await.unwrap(), 5);
/// # a.shutdown().await;
/// # b.shutdown().await;
/// # }
/// ```
pub struct Sharding<E: ActorState> {
    region: Arc<Region<E>>,
}

impl<E: ActorState> Clone for Sharding<E> {
    fn clone(&self) -> Self {
        Sharding { region: self.region.clone() }
    }
}

impl<E: ActorState> fmt::Debug for Sharding<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sharding").field("region", &self.region).finish()
    }
}

impl<E: ActorState + Default> Sharding<E> {
    /// Starts this node's share of the sharding of `E` over `shards` shards; entities
    /// start from `E::default()`. See [`start_with`](Self::start_with).
    pub fn start(cluster: &Cluster, shards: u32) -> Result<Self, ShardingError> {
        Self::start_with(cluster, shards, |_| E::default())
    }

    /// Starts this node's share of the sharding of `E` as `config` says; entities start
    /// from `E::default()`. See [`start_config_with`](Self::start_config_with).
    pub fn start_config(cluster: &Cluster, config: ShardingConfig) -> Result<Self, ShardingError> {
        Self::start_config_with(cluster, config, |_| E::default())
    }
}

impl<E: ActorState> Sharding<E> {
    /// Starts this node's share of the sharding of `E` over `shards` shards; an entity
    /// starts from `factory(key)`.
    ///
    /// Also starts this node's rebalancing: whenever the nodes it sees change, it moves
    /// the entities of the shards it no longer owns to their new owner ([`Rebalance`]).
    ///
    /// Fails if `shards` is 0 ([`ShardingError::NoShards`]), if `E` is not registered on
    /// this node ([`ShardingError::NotRegistered`]), or if a sharding of `E` runs here
    /// already ([`ShardingError::AlreadyStarted`]).
    pub fn start_with(
        cluster: &Cluster,
        shards: u32,
        factory: impl Fn(&str) -> E + Send + Sync + 'static,
    ) -> Result<Self, ShardingError> {
        Self::start_config_with(cluster, ShardingConfig::new(shards), factory)
    }

    /// Starts this node's share of the sharding of `E` as `config` says (shard count,
    /// passivation, restart of a lost node's shards, proxy); an entity starts from
    /// `factory(key)` (not used on a proxy, [`ShardingConfig::proxy`]). See
    /// [`start_with`](Self::start_with).
    pub fn start_config_with(
        cluster: &Cluster,
        config: ShardingConfig,
        factory: impl Fn(&str) -> E + Send + Sync + 'static,
    ) -> Result<Self, ShardingError> {
        let factory: Option<region::Factory<E>> =
            if config.proxy { None } else { Some(Box::new(factory)) };
        Self::start_region(cluster, config, factory)
    }

    /// Starts this node's share of the sharding of `E` over `shards` shards as a proxy
    /// ([`ShardingConfig::proxy`]): it sends to the entities by key and hosts none. Fails as
    /// [`start_with`](Self::start_with) does.
    pub fn start_proxy(cluster: &Cluster, shards: u32) -> Result<Self, ShardingError> {
        Self::start_region(cluster, ShardingConfig::new(shards).proxy(), None)
    }

    fn start_region(
        cluster: &Cluster,
        config: ShardingConfig,
        factory: Option<region::Factory<E>>,
    ) -> Result<Self, ShardingError> {
        let shards = config.shards;
        let hosts = !config.proxy;
        if shards == 0 {
            return Err(ShardingError::NoShards);
        }
        let system = cluster.system();
        if system.registered_name::<E>().is_none() {
            tracing::warn!(r#type = std::any::type_name::<E>(), "sharding of an unregistered type");
            return Err(ShardingError::NotRegistered(std::any::type_name::<E>().to_owned()));
        };
        let region = Arc::new(Region {
            shared: Arc::downgrade(&cluster.shared),
            shards,
            prefix: prefix(E::TYPE_NAME),
            factory,
            rebalanced: tokio::sync::watch::Sender::new(Vec::new()),
            keeper_prefix: keeper_prefix(E::TYPE_NAME),
            passivate_after: config.passivate_after,
            restart_from: config.restart_from,
            settled: std::sync::Mutex::new(Vec::new()),
            lost: tokio::sync::watch::Sender::new(None),
            clock: std::time::Instant::now(),
            hosts,
            guard: partition::Partition::new(config.guard),
        });
        let regions = &cluster.shared.sharding.regions;
        match regions.entry(E::TYPE_NAME.to_owned()) {
            dashmap::Entry::Occupied(_) => {
                return Err(ShardingError::AlreadyStarted(E::TYPE_NAME.to_owned()));
            }
            dashmap::Entry::Vacant(slot) => {
                slot.insert(region::host(&region));
            }
        }
        if !hosts {
            // The linked nodes leave this one out of the shards' owners once they hear it;
            // the nodes it links to later hear it in its `Hello`.
            cluster.shared.sharding.proxy(&cluster.shared, E::TYPE_NAME);
        }
        // Readers of this node's checkpoints (a restore, `amber graph --shards`) learn the
        // shard count from it.
        system.annotate_checkpoints(annotation_key(E::TYPE_NAME), shards.to_string());
        rebalance::watch(cluster, region.clone());
        if let Some(idle) = region.passivate_after.filter(|_| hosts) {
            passivate::sweep(region.clone(), idle);
        }
        Ok(Sharding { region })
    }

    /// The entity `key`, usable from this node whichever node it runs on (it starts on its
    /// first message). Keep the returned ref for the next messages: it keeps what it found.
    pub fn entity(&self, key: impl Into<String>) -> EntityRef<E> {
        EntityRef::new(self.region.clone(), key.into())
    }

    /// The number of shards.
    pub fn shards(&self) -> u32 {
        self.region.shards
    }

    /// The shard of `key`.
    pub fn shard_of(&self, key: &str) -> u32 {
        hash::shard_of(key, self.region.shards)
    }

    /// The node that owns `shard` as this node sees the members now (`None` once the
    /// cluster has shut down).
    pub fn owner_of(&self, shard: u32) -> Option<NodeId> {
        let cluster = self.region.cluster()?;
        let nodes = self.region.nodes(&cluster);
        self.region.owner(shard, &nodes).cloned()
    }

    /// Whether this node's side of the cluster holds the majority the partition rule asks
    /// for ([`ShardingConfig::take_over_after`]): without it, this node starts no entity,
    /// takes nothing over, and stops the entities it hosts (requests for them are refused
    /// with [`ShardRefusal::Unsettled`] naming the cause). Always `true` without a
    /// membership or with [`ShardingConfig::without_partition_guard`].
    pub fn holds_majority(&self) -> bool {
        self.region.cluster().is_none_or(|cluster| self.region.guard.majority(&cluster))
    }

    /// The keys of the entities running on this node, in no particular order.
    pub fn local_keys(&self) -> Vec<String> {
        let Some(cluster) = self.region.cluster() else { return Vec::new() };
        let prefix = &self.region.prefix;
        let names = cluster.system().names_with_prefix(prefix);
        names.into_iter().map(|(name, _)| name[prefix.len()..].to_owned()).collect()
    }

    /// Moves the entities running here whose shard another node owns now to that node, one
    /// after the other, and says which moved. Rebalancing runs by itself when the nodes
    /// change; this runs one more at once.
    pub async fn rebalance(&self) -> Rebalance {
        rebalance::run(&self.region).await
    }

    /// Before this node leaves: moves every entity running here to the owner of its shard
    /// among the other nodes (the node that owns it once this one is gone), by live
    /// migration, and says which moved. Call it right before [`Cluster::shutdown`]: the
    /// entities keep their state, and refs to them keep working (through this node while it
    /// runs; afterwards a kept ref fails once and finds the entity on its new node). An
    /// entity started here after the hand-off is lost with the node, and one that came here
    /// from the node that owns it next cannot go back (migration refuses it:
    /// `StillForwarding`, reported in [`Rebalance::failed`]).
    pub async fn hand_off(&self) -> Rebalance {
        rebalance::hand_off(&self.region).await
    }

    /// The nodes (sorted) that this node's latest automatic rebalance moved its entities
    /// for, as a watch: when it shows a set of nodes, this node has moved (or tried to
    /// move, and logged what failed) every entity whose shard another of them owns. Wait on
    /// it for a join to have taken effect here (`wait_for`).
    pub fn rebalanced(&self) -> tokio::sync::watch::Receiver<Vec<NodeId>> {
        self.region.rebalanced.subscribe()
    }

    /// After a node was lost: starts on this node, each from its state in `checkpoint`,
    /// the entities of `E` of the shards this node owns now that run nowhere (not here, and
    /// not on the shard's previous owners, asked as for a first message), and says which.
    /// Call it on every remaining node with the latest checkpoint once the loss is seen.
    ///
    /// What is lost: for each restarted entity, everything it did since the checkpoint, and
    /// the messages that were in flight to it then (they are not replayed); the entity is
    /// no longer consistent with the others as a snapshot would be (a bank's total may
    /// change). An entity a message started afresh from its factory before this call is
    /// left as it is (reported as running). Only entities running at the checkpoint are
    /// restarted: the passivated states of the lost node's keepers come back with
    /// [`ShardingConfig::restart_lost_from`], which also does all this by itself.
    pub async fn restart_lost(&self, checkpoint: &Checkpoint) -> Restarted {
        restart::restart_lost(&self.region, checkpoint).await
    }

    /// Passivates the entity `key` now if it runs on this node, its shard is this node's,
    /// and it is idle (no message waits for it): its state goes to its shard's keeper and
    /// it stops; its next message starts it again from that state (a tell from another
    /// node sent to the actor that passivated is redirected to the keeper, which sends it
    /// on). Returns whether it passivated. Idle entities passivate by themselves with
    /// [`ShardingConfig::passivate_after`]; this is for doing it at once.
    ///
    /// Fails with [`ShardingError::Passivation`] if the sharding was not started with
    /// passivation on, or the entity cannot passivate (timers, watches, supervision).
    pub async fn passivate(&self, key: &str) -> Result<bool, ShardingError> {
        passivate::one(&self.region, key).await
    }

    /// The keys of the entities passivated on this node (their states kept here), in no
    /// particular order.
    pub async fn passivated_keys(&self) -> Vec<String> {
        self.region.passivated().await
    }

    /// The latest report of a lost node's shards restarted on this node from a checkpoint
    /// ([`ShardingConfig::restart_lost_from`]), as a watch: wait on it for a loss to have
    /// been dealt with here (`wait_for`). `None` until a loss is.
    pub fn lost_shards(&self) -> tokio::sync::watch::Receiver<Option<Arc<LostShards>>> {
        self.region.lost.subscribe()
    }

    /// The key under which a sharding of `E` records its shard count (in decimal) in its
    /// node's entry of the checkpoints it takes part in
    /// ([`ActorSystem::annotate_checkpoints`](amber_actors::ActorSystem::annotate_checkpoints)):
    /// `sharding:<E::TYPE_NAME>`.
    pub fn annotation_key() -> String {
        annotation_key(E::TYPE_NAME)
    }

    /// The shard count of `E` that `checkpoint` records: every sharding records its own in
    /// its node's entry of the checkpoints it takes part in (annotation
    /// [`annotation_key`](Self::annotation_key)). `None` if no node of the checkpoint recorded
    /// one (a checkpoint taken before they were recorded, or with no sharding of `E`);
    /// [`ShardingError::RecordedShards`] if two nodes recorded different counts, or one
    /// is not a positive number.
    pub fn recorded_shards(checkpoint: &Checkpoint) -> Result<Option<u32>, ShardingError> {
        recorded_shards(checkpoint, E::TYPE_NAME)
    }

    /// [`placement`](Self::placement) over the shard count `checkpoint` records
    /// ([`recorded_shards`](Self::recorded_shards)); [`ShardingError::NoRecordedShards`]
    /// if it records none (give the count to [`placement`](Self::placement) then).
    pub fn placement_recorded<N: Into<NodeId>>(
        checkpoint: &Checkpoint,
        nodes: impl IntoIterator<Item = N>,
    ) -> Result<Placement, ShardingError> {
        let shards = Self::recorded_shards(checkpoint)?
            .ok_or_else(|| ShardingError::NoRecordedShards(E::TYPE_NAME.to_owned()))?;
        Ok(Self::placement(checkpoint, shards, nodes))
    }

    /// A placement that restores a checkpoint's entities of `E` (sharded over `shards`
    /// shards), and the keepers of their shards' passivated states, onto the owners of
    /// their shards among `nodes`, and the other actors as [`Placement::spread`] does.
    /// Compute it alike on every node of the restore. [`placement_recorded`](
    /// Self::placement_recorded) reads `shards` from the checkpoint.
    pub fn placement<N: Into<NodeId>>(
        checkpoint: &Checkpoint,
        shards: u32,
        nodes: impl IntoIterator<Item = N>,
    ) -> Placement {
        let mut nodes: Vec<NodeId> = nodes.into_iter().map(Into::into).collect();
        nodes.sort();
        nodes.dedup();
        let mut placement = Placement::spread(nodes.iter().cloned());
        let prefix = prefix(E::TYPE_NAME);
        let keepers = keeper_prefix(E::TYPE_NAME);
        for actor in &checkpoint.manifest.actors {
            if actor.type_name == keeper::KEEPER_TYPE
                && let Some(shard) = actor
                    .name
                    .as_deref()
                    .and_then(|name| name.strip_prefix(keepers.as_str()))
                    .and_then(|shard| shard.parse::<u32>().ok())
                && let Some(owner) = hash::owner(shard, &nodes)
            {
                placement = placement.pin(actor.id, owner.clone());
                continue;
            }
            let key = actor.name.as_deref().and_then(|name| name.strip_prefix(prefix.as_str()));
            if actor.type_name != E::TYPE_NAME {
                continue;
            }
            let Some(key) = key else { continue };
            if let Some(owner) = hash::owner(hash::shard_of(key, shards), &nodes) {
                placement = placement.pin(actor.id, owner.clone());
            }
        }
        placement
    }
}

/// The annotation key of the shard count of the type registered as `type_name`
/// ([`Sharding::annotation_key`]).
fn annotation_key(type_name: &str) -> String {
    format!("sharding:{type_name}")
}

/// The shard count of the entity type registered as `type_name` that `checkpoint` records
/// ([`Sharding::recorded_shards`]).
fn recorded_shards(checkpoint: &Checkpoint, type_name: &str) -> Result<Option<u32>, ShardingError> {
    let problem = |problem: String| ShardingError::RecordedShards {
        type_name: type_name.to_owned(),
        problem,
    };
    let Some(value) = checkpoint
        .manifest
        .annotation(&annotation_key(type_name))
        .map_err(|e| problem(e.to_string()))?
    else {
        return Ok(None);
    };
    match value.parse::<u32>() {
        Ok(shards) if shards > 0 => Ok(Some(shards)),
        _ => Err(problem(format!("{value:?} is not a shard count"))),
    }
}

/// The registered-name prefix of the entities of the type registered as `type_name`.
fn prefix(type_name: &str) -> String {
    format!("shard:{type_name}/")
}

/// The registered-name prefix of the keepers of the shards of the type registered as
/// `type_name` (followed by the shard's number).
fn keeper_prefix(type_name: &str) -> String {
    format!("shard-kept:{type_name}/")
}
