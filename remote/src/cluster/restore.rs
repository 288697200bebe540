//! Rehydrating a checkpoint onto the nodes of a cluster: each node rebuilds its share, links
//! to the others, and only then lets its actors run.

use std::sync::PoisonError;
use std::time::Duration;

use amber_actors::{PendingRestore, SystemBuilder};
use amber_snapshot::Checkpoint;

use super::{Cluster, ClusterError, Placement, Shared};
use crate::{NodeId, Transport, TransportConfig};

/// A restored share waiting for the other nodes: its actors and the nodes they need.
pub(super) struct Pending {
    restore: PendingRestore,
    nodes: Vec<NodeId>,
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
        let credit = config.send_queue;
        let (transport, events) = Transport::bind(config).await?;
        let shared = Shared::new(transport, credit);
        for (id, node) in assigned.iter().filter(|(_, node)| **node != me) {
            shared.placed.insert(*id, node.clone());
        }
        let restore = builder
            .node(me.as_str())
            .remote(shared.directory())
            .restore_where(checkpoint, |entry| assigned.get(&entry.id) == Some(&me))?;
        let _ = shared.system.set(restore.system().clone());
        let nodes = placement.nodes().iter().filter(|n| **n != me).cloned().collect();
        *shared.pending.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Pending { restore, nodes });
        shared.serve(events);
        tracing::info!(node = %me, epoch = %checkpoint.manifest.epoch, "restored; waiting to resume");
        Ok(Cluster { shared })
    }

    /// Waits (up to `timeout`) until every other node of the restore's placement has
    /// introduced itself, then starts this node's restored actors. Nothing happens for a
    /// node that was not restored or has resumed already.
    ///
    /// This resumes this node only: the restored cluster runs once every node of the
    /// placement has resumed. Until then, each node still holding its pending share refuses
    /// every snapshot (its own, and those other nodes ask it to take part in) with
    /// [`SnapshotError::RestorePending`](amber_actors::SnapshotError::RestorePending)
    /// naming it, so no checkpoint misses its actors.
    pub async fn resume(&self, timeout: Duration) -> Result<(), ClusterError> {
        let shared = &self.shared;
        let nodes = match &*shared.pending.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(pending) => pending.nodes.clone(),
            None => return Ok(()),
        };
        if tokio::time::timeout(timeout, shared.introduced(&nodes)).await.is_err() {
            let missing = nodes.iter().find(|n| !shared.nodes.contains_key(*n)).cloned();
            return Err(ClusterError::NotConnected(missing.unwrap_or_else(|| self.node().clone())));
        }
        let pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(pending) = pending {
            let actors = pending.restore.actors();
            let _ = pending.restore.start();
            tracing::info!(node = %self.node(), actors, "this node's restored actors resumed");
        }
        Ok(())
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("actors", &self.restore.actors()).finish()
    }
}
