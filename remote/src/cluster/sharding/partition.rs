//! The majority rule across partitions ([`ShardingConfig::take_over_after`]): on a cluster
//! formed by membership, a node declared down still counts as its shards' owner until the
//! verdict has stood a while (`stable`), and a side of the cluster that holds no majority
//! takes nothing over, starts no entity, and after `stable / 2` stops the entities it hosts.
//!
//! A partition makes each side declare the other's nodes down at about the same time (the
//! failure detectors' timers are alike on every member). The minority stops its entities
//! half a `stable` after its verdict; the majority takes their shards over a whole `stable`
//! after its own: a key does not run on both sides, if the two verdicts are less than
//! `stable / 2` apart. A node wrongly declared down that rejoins within `stable` keeps its
//! entities (nothing was taken over). A lone node of three, or the second of two by name
//! when the first is lost, is a minority: it stops serving its entities (see the guide).
//!
//! [`ShardingConfig::take_over_after`]: super::ShardingConfig::take_over_after

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use amber_actors::ActorState;
use tokio::time::Instant;

use super::super::{Cluster, MemberStatus};
use super::config::Guard;
use super::keeper::ShardKeeper;
use super::region::Region;
use crate::NodeId;

/// One region's view of the majority rule.
#[derive(Debug)]
pub(super) struct Partition {
    guard: Guard,
    /// When this node first saw each member declared down.
    down_since: Mutex<HashMap<NodeId, Instant>>,
    /// Whether this node's side held the majority when last looked at, and since when.
    side: Mutex<Option<(bool, Instant)>>,
    /// This node stopped its entities for want of a majority (and has not had one since).
    stopped: AtomicBool,
}

impl Partition {
    pub(super) fn new(guard: Guard) -> Partition {
        Partition {
            guard,
            down_since: Mutex::new(HashMap::new()),
            side: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }
    }

    /// How long a verdict must stand before its node is taken over; `None` without the
    /// rule (turned off, or a cluster without membership: no verdicts there).
    pub(super) fn stable(&self, cluster: &Cluster) -> Option<Duration> {
        let membership = cluster.shared.membership.get()?;
        match self.guard {
            Guard::Off => None,
            Guard::After(stable) => Some(stable),
            Guard::Default => Some(membership.suspect_after()),
        }
    }

    /// The members declared down whose verdict has not stood `stable` yet, or not for
    /// `stable` of this side holding the majority (they still count as owners of their
    /// shards), and when the first of them will have. A side that just regained the
    /// majority waits too: a verdict it reached while cut off may be wrong now that it
    /// sees the others again (until the node declared down hears of it and rejoins).
    pub(super) fn pending_down(&self, cluster: &Cluster) -> (Vec<NodeId>, Option<Instant>) {
        let Some(stable) = self.stable(cluster) else { return (Vec::new(), None) };
        let now = Instant::now();
        let held = match *self.side.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((true, since)) => since,
            // Without the majority (or not looked at yet) nothing is taken over anyway.
            _ => now,
        };
        let members = cluster.members();
        let mut since = self.down_since.lock().unwrap_or_else(PoisonError::into_inner);
        since.retain(|node, _| {
            members.iter().any(|m| m.node == *node && m.status == MemberStatus::Down)
        });
        let mut pending = Vec::new();
        let mut next: Option<Instant> = None;
        for member in members.iter().filter(|m| m.status == MemberStatus::Down) {
            let at = *since.entry(member.node.clone()).or_insert(now);
            let until = at.max(held) + stable;
            if until > now {
                pending.push(member.node.clone());
                next = Some(next.map_or(until, |n| n.min(until)));
            }
        }
        (pending, next)
    }

    /// Whether this node's side of the cluster holds the majority: more members up than
    /// declared down (members that left do not count), or as many and the first of them
    /// all by name up. Always without the rule. Notes since when it holds none.
    pub(super) fn majority(&self, cluster: &Cluster) -> bool {
        if self.stable(cluster).is_none() {
            return true;
        }
        let members = cluster.members();
        let up = members.iter().filter(|m| m.status.is_up()).count();
        let down = members.iter().filter(|m| m.status == MemberStatus::Down).count();
        let first = members
            .iter()
            .filter(|m| m.status.is_up() || m.status == MemberStatus::Down)
            .min_by(|a, b| a.node.cmp(&b.node));
        let holds = up > down || (up == down && first.is_some_and(|m| m.status.is_up()));
        let mut side = self.side.lock().unwrap_or_else(PoisonError::into_inner);
        if side.is_none_or(|(held, _)| held != holds) {
            *side = Some((holds, Instant::now()));
        }
        holds
    }

    /// When this node, without a majority, stops its entities (`None`: it holds one, or
    /// has stopped them already).
    pub(super) fn stop_at(&self, cluster: &Cluster) -> Option<Instant> {
        let stable = self.stable(cluster)?;
        if self.stopped.load(Ordering::Acquire) {
            return None;
        }
        match *self.side.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((false, since)) => Some(since + stable / 2),
            _ => None,
        }
    }

    /// Marks the entities stopped (returns whether they were running).
    fn mark_stopped(&self) -> bool {
        !self.stopped.swap(true, Ordering::AcqRel)
    }

    /// With a majority again: whether this node had stopped its entities (cleared).
    pub(super) fn take_stopped(&self) -> bool {
        self.stopped.swap(false, Ordering::AcqRel)
    }
}

/// Without a majority for half a `stable`: stops every entity of `E` and every keeper of
/// its shards on this node (the majority restarts them from the checkpoint).
pub(super) fn stop_hosted<E: ActorState>(region: &Region<E>, cluster: &Cluster) {
    if !region.guard.mark_stopped() {
        return;
    }
    let system = cluster.system();
    let mut entities = 0;
    for (_, id) in system.names_with_prefix(&region.prefix) {
        if let Ok(entity) = system.lookup_id::<E>(id) {
            entity.stop();
            entities += 1;
        }
    }
    let mut keepers = 0;
    for (_, id) in system.names_with_prefix(&region.keeper_prefix) {
        if let Ok(keeper) = system.lookup_id::<ShardKeeper>(id) {
            keeper.stop();
            keepers += 1;
        }
    }
    tracing::warn!(
        r#type = E::TYPE_NAME,
        entities,
        keepers,
        "this node's side of the cluster holds no majority: its entities stop (the majority takes their shards over)"
    );
}

/// With a majority again after stopping its entities: restarts, from the newest checkpoint
/// of the region's store, the entities of this node's shards that run nowhere (none the
/// majority took over); without a store they start anew on their next message.
pub(super) async fn restart_own<E: ActorState>(region: &Region<E>) {
    let Some(store) = region.restart_from.clone() else {
        tracing::warn!(
            r#type = E::TYPE_NAME,
            "a majority again: the entities stopped here start anew (no checkpoint store)"
        );
        return;
    };
    let loaded = tokio::task::spawn_blocking(move || store.latest_valid()).await;
    match loaded {
        Ok(Ok(latest)) => {
            if let Some(checkpoint) = latest.checkpoint {
                let report = super::restart::restart_lost(region, &checkpoint).await;
                tracing::info!(
                    r#type = E::TYPE_NAME,
                    restarted = report.restarted.len(),
                    running = report.running.len(),
                    failed = report.failed.len(),
                    "a majority again: restarted this node's entities that run nowhere from the checkpoint"
                );
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "a majority again: no checkpoint to restart from"),
        Err(e) => tracing::warn!(error = %e, "a majority again: the checkpoint store was not read"),
    }
}
