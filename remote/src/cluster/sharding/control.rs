//! The sharding messages between nodes: asking a shard's owner for an entity
//! (`Resolve`), which it finds or starts under its own lock, and its answer.

use std::sync::Arc;

use amber_actors::ActorId;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use super::super::control::Control;
use super::super::{ClusterError, Shared};
use super::ShardRefusal;
use super::region::RegionHost;
use crate::{Frame, NodeId};

/// An owner's answer: the entity's id and the node it runs on, or why there is none.
pub(in super::super) type Resolved = Result<(ActorId, String), ShardRefusal>;

/// The sharding messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ShardControl {
    /// Find, or start if the receiving node owns its shard, the entity `key` of the sharded
    /// type `type_name`; `nodes` is the sender's view of the nodes.
    Resolve {
        request: u64,
        type_name: String,
        key: String,
        #[serde(default)]
        nodes: Vec<String>,
    },
    /// The answer.
    Resolved { request: u64, result: Resolved },
}

/// This node's shardings, by entity type name (its requests to other nodes awaiting their
/// answer are `Shared::entities`).
#[derive(Debug, Default)]
pub(in super::super) struct Regions {
    pub(super) regions: DashMap<String, Arc<dyn RegionHost>>,
}

impl Shared {
    /// Asks `node` for the entity `key` of `type_name`, and waits for the answer within the
    /// system's ask timeout.
    pub(super) async fn resolve_on(
        self: &Arc<Self>,
        node: &NodeId,
        type_name: &str,
        key: &str,
        nodes: &[NodeId],
    ) -> Result<Resolved, ClusterError> {
        if !self.is_up(node) {
            return Err(ClusterError::NotConnected(node.clone()));
        }
        let (request, rx) = self.entities.open(node);
        let message = ShardControl::Resolve {
            request,
            type_name: type_name.to_owned(),
            key: key.to_owned(),
            nodes: nodes.iter().map(NodeId::to_string).collect(),
        };
        let frame = Frame::Control(Control::Shard(message).encode());
        if self.forwarder(node).send(frame).is_err() {
            self.entities.remove(request);
            return Err(ClusterError::NodeDown(node.clone()));
        }
        self.entities.answer(node, request, rx, self.system().ask_timeout()).await
    }
}

/// Handles a sharding message from `from`.
pub(in super::super) fn on_control(shared: &Arc<Shared>, from: NodeId, message: ShardControl) {
    match message {
        ShardControl::Resolve { request, type_name, key, nodes } => {
            let theirs: Vec<NodeId> = nodes.into_iter().map(NodeId::from).collect();
            let region = shared.sharding.regions.get(&type_name).map(|r| r.value().clone());
            let shared = Arc::downgrade(shared);
            // It may ask the shard's previous owner first: answered from a task of its own,
            // so that the links are served meanwhile.
            tokio::spawn(async move {
                let result = match region {
                    Some(region) => region.resolve_here(&key, &theirs).await,
                    None => Err(ShardRefusal::NotStarted(type_name.clone())),
                };
                if let Err(reason) = &result {
                    tracing::debug!(node = %from, %type_name, key, %reason, "refused an entity request");
                }
                let Some(shared) = shared.upgrade() else { return };
                let answer = ShardControl::Resolved { request, result };
                let frame = Frame::Control(Control::Shard(answer).encode());
                let _ = shared.forwarder(&from).send(frame);
            });
        }
        ShardControl::Resolved { request, result } => {
            // Only the node asked answers a request.
            match shared.entities.take_from(request, &from) {
                Some(tx) => {
                    let _ = tx.send(result);
                }
                // Late (the request timed out), or never asked.
                None => tracing::debug!(node = %from, request, "answer to no entity request"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(bytes: &[u8]) -> Resolved {
        match Control::decode(bytes) {
            Ok(Control::Shard(ShardControl::Resolved { request: 9, result })) => result,
            other => panic!("not the answer to request 9: {other:?}"),
        }
    }

    /// The answer to request 9 as a node would send it, with any `result`.
    fn answer(result: impl Serialize) -> Vec<u8> {
        #[derive(Serialize)]
        enum Control<R> {
            Shard(ShardControl<R>),
        }
        #[derive(Serialize)]
        enum ShardControl<R> {
            Resolved { request: u64, result: R },
        }
        rmp_serde::to_vec(&Control::Shard(ShardControl::Resolved { request: 9, result })).unwrap()
    }

    #[test]
    fn requests_and_answers_travel_typed() {
        let request = ShardControl::Resolve {
            request: 3,
            type_name: "bank.Account".into(),
            key: "account 42".into(),
            nodes: vec!["a".into(), "b".into()],
        };
        let bytes = Control::Shard(request.clone()).encode();
        assert_eq!(Control::decode(&bytes).unwrap(), Control::Shard(request));
        for result in [
            Ok((ActorId::new(amber_snapshot::SystemId::random(), 1), "b".to_owned())),
            Err(ShardRefusal::NotOwner { owner: Some("c".into()) }),
            Err(ShardRefusal::Unsettled("b: timed out".into())),
        ] {
            let bytes =
                Control::Shard(ShardControl::Resolved { request: 9, result: result.clone() })
                    .encode();
            assert_eq!(resolved(&bytes), result);
        }
    }

    #[test]
    fn a_refusal_this_node_does_not_know_reads_as_unrecognized() {
        #[derive(Serialize)]
        enum Newer {
            Overloaded { retry_ms: u64 },
            Moving,
        }
        let refused = |r: Newer| answer(Err::<(), _>(r));
        for bytes in [refused(Newer::Overloaded { retry_ms: 20 }), refused(Newer::Moving)] {
            assert_eq!(resolved(&bytes), Err(ShardRefusal::Unrecognized));
        }
    }
}
