//! Rehydrating a checkpoint onto the nodes of a cluster: each node rebuilds its share, links
//! to the others, and only then lets its actors run.
//!
//! # Resuming
//!
//! [`Cluster::resume`] on each node: waits for the other nodes of the placement to introduce
//! themselves, starts this node's share, tells every other node of the placement
//! `Resumed(epoch)` (on the link's urgent lane: it has no order to keep with data, and must
//! not wait behind what the restored actors send), then waits until every one of them has
//! told it the same. Every node starts its own share before it waits for the others, so two
//! nodes resuming at once never wait on each other. A `Resumed` that arrives before this
//! node resumes is kept ([`Shared::resumed`]) until it does.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Duration;

use amber_actors::{PendingRestore, SystemBuilder};
use amber_snapshot::{Checkpoint, Epoch};
use tokio::time::Instant;

use super::control::Control;
use super::{Cluster, ClusterError, Placement, Shared};
use crate::{Frame, NodeId, TransportConfig};

/// A restore this node has not finished resuming: its share (until started), the other
/// nodes of the placement, and the checkpoint's epoch.
pub(super) struct Pending {
    /// The share, until this node starts it.
    restore: Option<PendingRestore>,
    nodes: Vec<NodeId>,
    epoch: Epoch,
}

/// Which nodes told this one they resumed their share of a restore, and of which
/// checkpoint (its epoch).
#[derive(Debug, Default)]
pub(super) struct Resumed {
    nodes: std::sync::Mutex<HashMap<NodeId, Epoch>>,
    /// Woken when a node announces it resumed, or goes down.
    changed: tokio::sync::Notify,
}

impl Resumed {
    /// `node` resumed its share of the restore of the checkpoint of `epoch`.
    pub(super) fn announced(&self, node: NodeId, epoch: Epoch) {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner).insert(node, epoch);
        self.changed.notify_waiters();
    }

    /// A node went down: whoever waits looks again.
    pub(super) fn peer_down(&self) {
        self.changed.notify_waiters();
    }

    /// Those of `nodes` that have not announced `epoch`.
    fn missing(&self, nodes: &[NodeId], epoch: Epoch) -> Vec<NodeId> {
        let resumed = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.iter().filter(|n| resumed.get(*n) != Some(&epoch)).cloned().collect()
    }
}

impl Cluster {
    /// Starts this node (named and bound as `config` says) with its share of `checkpoint`
    /// under `placement`, its actors rebuilt with their recorded in-flight messages queued
    /// but not yet running; refs to actors placed on other nodes route there. Link to the
    /// other nodes ([`connect`](Self::connect)), then call [`resume`](Self::resume).
    ///
    /// Every node of the restore must be given the same checkpoint and placement. The
    /// restored system starts at the checkpoint's epoch, so its next snapshot follows it.
    pub async fn restore(
        builder: SystemBuilder,
        config: TransportConfig,
        checkpoint: &Checkpoint,
        placement: &Placement,
    ) -> Result<Cluster, ClusterError> {
        let me = config.node.clone();
        if !placement.nodes().contains(&me) {
            return Err(super::PlacementError::NotMember(me).into());
        }
        let assigned = placement.assign(checkpoint)?;
        let (shared, inbound) = Shared::bind(config).await?;
        for (id, node) in assigned.iter().filter(|(_, node)| **node != me) {
            shared.placed.insert(*id, node.clone());
        }
        let restore = builder
            .register::<super::sharding::ShardKeeper>()
            .node(me.as_str())
            .remote(shared.directory())
            .restore_where(checkpoint, |entry| assigned.get(&entry.id) == Some(&me))?;
        let _ = shared.system.set(restore.system().clone());
        let nodes: Vec<NodeId> = placement.nodes().iter().filter(|n| **n != me).cloned().collect();
        *shared.unseen.lock().unwrap_or_else(PoisonError::into_inner) = nodes.clone();
        let epoch = checkpoint.manifest.epoch;
        *shared.pending.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Pending { restore: Some(restore), nodes, epoch });
        shared.serve(&inbound);
        tracing::info!(node = %me, epoch = %checkpoint.manifest.epoch, "restored; waiting to resume");
        Ok(Cluster { shared })
    }

    /// Resumes the restored cluster: waits (up to `timeout` in all) until every other node
    /// of the restore's placement has introduced itself, starts this node's restored actors,
    /// tells the other nodes, and returns once every node of the placement has resumed its
    /// share. Returns at once for a node that was not restored or whose resume returned
    /// `Ok` already.
    ///
    /// Call it on every node of the placement, concurrently: each node starts its own
    /// share before it waits for the others, so none waits on another that waits on it.
    /// Until every node of the placement has resumed, each node still holding its pending
    /// share refuses every snapshot (its own, and those other nodes ask it to take part in)
    /// with [`SnapshotError::RestorePending`](amber_actors::SnapshotError::RestorePending)
    /// naming it, so no checkpoint misses its actors; once `resume` returns `Ok` on a node,
    /// snapshots from it hold every restored actor.
    ///
    /// Fails with [`ClusterError::NotConnected`] naming a node that did not introduce itself
    /// in time (this node's actors did not start), [`ClusterError::NotResumed`] naming the
    /// nodes that did not resume in time, or [`ClusterError::NodeDown`] naming a node that
    /// went down before it resumed. In the last two cases this node's actors run already;
    /// calling `resume` again waits for the others again.
    pub async fn resume(&self, timeout: Duration) -> Result<(), ClusterError> {
        let shared = &self.shared;
        let deadline = Instant::now() + timeout;
        let (nodes, epoch) = match &*shared.pending.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(pending) => (pending.nodes.clone(), pending.epoch),
            None => return Ok(()),
        };
        if tokio::time::timeout_at(deadline, shared.introduced(&nodes)).await.is_err() {
            let missing = nodes.iter().find(|n| !shared.nodes.contains_key(*n)).cloned();
            return Err(ClusterError::NotConnected(missing.unwrap_or_else(|| self.node().clone())));
        }
        let restore = shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|p| p.restore.take());
        if let Some(restore) = restore {
            let actors = restore.actors();
            let _ = restore.start();
            tracing::info!(node = %self.node(), actors, %epoch, "this node's restored actors resumed");
        }
        // Told (again, on a second call) after the start: a node that hears it may snapshot.
        let resumed = Frame::Control(Control::Resumed { epoch }.encode());
        for node in &nodes {
            if let Err(e) = shared.transport.send_urgent(node, &resumed) {
                tracing::debug!(%node, error = %e, "could not tell a node this one resumed");
            }
        }
        let waited = tokio::time::timeout_at(deadline, self.others_resumed(&nodes, epoch)).await;
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(down)) => {
                tracing::warn!(node = %self.node(), %down, "a node went down before it resumed");
                return Err(ClusterError::NodeDown(down));
            }
            Err(_) => {
                let missing = shared.resumed.missing(&nodes, epoch);
                tracing::warn!(node = %self.node(), ?missing, "nodes did not resume in time");
                return Err(ClusterError::NotResumed(missing));
            }
        }
        let mut pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.as_ref().is_some_and(|p| p.epoch == epoch && p.restore.is_none()) {
            *pending = None;
        }
        tracing::info!(node = %self.node(), %epoch, "every node of the restore resumed");
        Ok(())
    }

    /// Returns once every one of `nodes` has announced it resumed `epoch`, or with the
    /// first one found down before it did.
    async fn others_resumed(&self, nodes: &[NodeId], epoch: Epoch) -> Result<(), NodeId> {
        let shared = &self.shared;
        loop {
            let changed = shared.resumed.changed.notified();
            let missing = shared.resumed.missing(nodes, epoch);
            if missing.is_empty() {
                return Ok(());
            }
            if let Some(down) = missing.into_iter().find(|n| !shared.is_up(n)) {
                return Err(down);
            }
            changed.await;
        }
    }
}

impl Shared {
    /// The other nodes of the restore this node was restored in that `view` (the nodes a
    /// sharding here sees) has not held yet: they hold shards of the restored entities this
    /// node cannot reach yet. A node `view` holds is forgotten here for good.
    pub(super) fn restore_unseen(&self, view: &[NodeId]) -> Vec<NodeId> {
        let mut unseen = self.unseen.lock().unwrap_or_else(PoisonError::into_inner);
        unseen.retain(|n| !view.contains(n));
        unseen.clone()
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("actors", &self.restore.as_ref().map(PendingRestore::actors))
            .field("nodes", &self.nodes)
            .field("epoch", &self.epoch)
            .finish()
    }
}
