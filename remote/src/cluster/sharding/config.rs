//! [`ShardingConfig`]: how a sharding runs — its shard count, passivation, and what a
//! node's loss does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use amber_snapshot::CheckpointStore;

/// How a sharding runs ([`Sharding::start_config`](super::Sharding::start_config)). Every
/// node of a sharding must use the same shard count, and should use the same settings.
///
/// Both passivation and the automatic restart of a lost node's shards are off unless
/// turned on here.
#[derive(Clone)]
pub struct ShardingConfig {
    pub(super) shards: u32,
    pub(super) passivate_after: Option<Duration>,
    pub(super) restart_from: Option<Arc<dyn CheckpointStore>>,
    pub(super) proxy: bool,
    pub(super) guard: Guard,
}

/// How a sharding on a cluster formed by membership acts on nodes declared down (see
/// [`ShardingConfig::take_over_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// Keep the majority; take over after the membership's `suspect_after`.
    Default,
    /// Keep the majority; take over after this long.
    After(Duration),
    /// Take a down node's shards over at once, whatever the majority.
    Off,
}

impl fmt::Debug for ShardingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardingConfig")
            .field("shards", &self.shards)
            .field("passivate_after", &self.passivate_after)
            .field("restart_lost", &self.restart_from.is_some())
            .field("proxy", &self.proxy)
            .field("guard", &self.guard)
            .finish()
    }
}

impl ShardingConfig {
    /// `shards` shards; no passivation, no automatic restart of a lost node's shards.
    pub fn new(shards: u32) -> Self {
        ShardingConfig {
            shards,
            passivate_after: None,
            restart_from: None,
            proxy: false,
            guard: Guard::Default,
        }
    }

    /// Passivates an entity once it has handled no message for `idle` (checked every
    /// `idle / 2`: an entity passivates after between `idle` and `1.5 × idle` of
    /// idleness). Its state is kept in memory on its shard's owner, by the shard's keeper
    /// actor (checkpointed, restored and moved with the shard like any actor), and its next
    /// message starts it again from that state. See the guide, "Passivation".
    ///
    /// Entities with timers, watches, a supervisor or children are not passivated.
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.passivate_after = Some(idle.max(Duration::from_millis(2)));
        self
    }

    /// When a node is lost, the nodes that take over its shards restart its entities (and
    /// its shards' passivated states) from the newest checkpoint in `store` that loads
    /// ([`CheckpointStore::latest_valid`]), by themselves. Messages to the lost shards'
    /// entities wait (their senders retry) until that is done. What was lost is logged and
    /// reported ([`Sharding::lost_shards`](super::Sharding::lost_shards)). See the guide,
    /// "A node's loss".
    pub fn restart_lost_from(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.restart_from = Some(store);
        self
    }

    /// This node only sends to the entities (by key, as any node does) and hosts none: it
    /// owns no shard, and the other nodes leave it out when they spread the shards over
    /// the nodes (they learn which nodes host the type when they link to them). Its
    /// entity refs reach the entities on the hosting nodes; with no hosting node linked,
    /// a request waits and retries, then fails (`Unreachable`). Passivation and the
    /// restart of lost shards are for hosting nodes and do nothing here. See
    /// [`Sharding::start_proxy`](super::Sharding::start_proxy).
    pub fn proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    /// On a cluster formed by membership, how long a node must have been declared down
    /// before this node takes its shards over (starts or restarts their entities); by
    /// default the membership's
    /// [`suspect_after`](crate::MembershipConfig::suspect_after). With it, shards follow
    /// the majority across a partition (the side that sees more members up than down, or
    /// as many and the first of them all by name up):
    ///
    /// - a node declared down is taken over only once the verdict has stood this long (a
    ///   node wrongly declared down that rejoins meanwhile keeps its entities);
    /// - a side without the majority takes over nothing, starts no entity (requests are
    ///   refused, `Unsettled`), and once it has been without it for half this long stops
    ///   every entity (and passivated state) it hosts, for the majority to restart them
    ///   from the checkpoint, as after a crash; when it has a majority again, it restarts
    ///   those of its shards that run nowhere from the newest checkpoint (with
    ///   [`restart_lost_from`](Self::restart_lost_from); else they start anew).
    ///
    /// So a key does not run on both sides of a partition, if each side reaches its verdict
    /// on the other within half this long of the other side's (the failure detectors'
    /// timers are alike on every member). The price: a crash's shards are taken over this
    /// long later, and a minority (a lone survivor of three; the second of two nodes by
    /// name when the first is lost) stops serving its entities. See the guide, "Partitions".
    pub fn take_over_after(mut self, stable: Duration) -> Self {
        self.guard = Guard::After(stable);
        self
    }

    /// Takes a node's shards over as soon as it is declared down, without the majority
    /// rule of [`take_over_after`](Self::take_over_after): faster, but across a partition
    /// (or a wrong verdict) both sides may run an entity for one key.
    pub fn without_partition_guard(mut self) -> Self {
        self.guard = Guard::Off;
        self
    }

    /// Whether this node is a proxy ([`proxy`](Self::proxy)).
    pub fn is_proxy(&self) -> bool {
        self.proxy
    }

    /// The number of shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }
}
