//! What the snapshot engines of different nodes say to each other. The cluster carries these
//! as opaque bytes ([`RemoteDirectory::send_snapshot`](crate::remote::RemoteDirectory::send_snapshot)
//! out, [`ActorSystem::on_snapshot_message`](crate::ActorSystem::on_snapshot_message) in),
//! in order with the data messages on the same link.

use amber_snapshot::{
    ActorEntry, Epoch, InFlightRecord, NodeCommand, NodeEntry, NodeReport, StateRecord,
};
use serde::{Deserialize, Serialize};

/// The largest piece of a node's part sent in one message: well under any sane frame limit.
pub(crate) const PART_CHUNK: usize = 1 << 20;

/// One snapshot message between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// From a coordinator to a node.
    Command(NodeCommand<String>),
    /// From a node to the coordinator it follows.
    Report(NodeReport<String>),
    /// A node refuses to follow the sending coordinator for `epoch`.
    Reject { epoch: Epoch, reason: String },
    /// A piece of a node's encoded [`NodePart`] of completed snapshot `epoch`, sent to its
    /// coordinator in order; `last` ends it.
    Part {
        epoch: Epoch,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        last: bool,
    },
}

impl Wire {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data without maps keyed by non-strings: encoding cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Wire, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// One node's share of a completed snapshot: its actors, their states and the messages in
/// flight to them, per receiver in order (backlog at the cut, then recorded arrivals).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodePart {
    pub(crate) node: NodeEntry,
    pub(crate) actors: Vec<ActorEntry>,
    pub(crate) states: Vec<StateRecord>,
    pub(crate) in_flight: Vec<InFlightRecord>,
    /// Why the cut is not consistent, if it is not ([`SnapshotError::Inconsistent`]).
    ///
    /// [`SnapshotError::Inconsistent`]: crate::SnapshotError::Inconsistent
    pub(crate) taints: Vec<String>,
    /// What could not be captured ([`SnapshotError::Capture`]).
    ///
    /// [`SnapshotError::Capture`]: crate::SnapshotError::Capture
    pub(crate) problems: Vec<String>,
}

impl NodePart {
    /// The part as [`Wire::Part`] pieces of at most [`PART_CHUNK`] bytes.
    pub(crate) fn into_pieces(self, epoch: Epoch) -> Result<Vec<Wire>, String> {
        let bytes = rmp_serde::to_vec(&self).map_err(|e| e.to_string())?;
        let chunks: Vec<&[u8]> = bytes.chunks(PART_CHUNK).collect();
        let n = chunks.len().max(1);
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let bytes = chunks.get(i).map_or_else(Vec::new, |c| c.to_vec());
            pieces.push(Wire::Part { epoch, bytes, last: i + 1 == n });
        }
        Ok(pieces)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<NodePart, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}
