//! The sharding messages between nodes: asking a shard's owner for an entity
//! (`Resolve`), which it finds or starts under its own lock, and its answer; and which
//! sharded types a node hosts entities of.
//!
//! Proxies: a node that started a sharding as a proxy
//! ([`ShardingConfig::proxy`](super::ShardingConfig::proxy)) sends to its entities and owns
//! no shard. It names the types it is a proxy of in the `Hello` that opens each link, and
//! announces them again (`Proxies`) to every linked node when they change (a proxy started
//! after the links). Each announcement is numbered: a receiver keeps the latest (the
//! `Hello` takes the urgent lane and may overtake an announcement queued before it). A
//! node leaves the nodes it knows to be proxies of a type out of that type's shard
//! ownership (`Region::nodes`); every other node it sees counts, as before (a node that
//! runs no sharding of the type refuses requests until it starts one), so a node not yet
//! known to be a proxy only makes requests wait or go elsewhere: it never starts an entity.

use std::sync::{Arc, Mutex, PoisonError};

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
    /// The sharded types the sender is a proxy of now, as of its announcement number
    /// `announced` (higher is newer); sent to every linked node when they change.
    Proxies { types: Vec<String>, announced: u64 },
}

/// This node's shardings, by entity type name (its requests to other nodes awaiting their
/// answer are `Shared::entities`).
#[derive(Debug, Default)]
pub(in super::super) struct Regions {
    pub(super) regions: DashMap<String, Arc<dyn RegionHost>>,
    /// The types this node is a proxy of, sorted, and the number of its latest
    /// announcement of them; held while a `Hello` or an announcement is sent.
    proxying: Mutex<(Vec<String>, u64)>,
    /// The types each linked node is a proxy of, as it last announced, with that
    /// announcement's number.
    peers: DashMap<NodeId, (u64, Vec<String>)>,
    /// Bumped when the types a linked node is a proxy of change after its `Hello` (the
    /// rebalances follow it).
    pub(super) changed: tokio::sync::watch::Sender<u64>,
}

impl Regions {
    /// Forgets what `node` is a proxy of (its next `Hello` says it again). (Its requests
    /// waiting for an answer are failed with the cluster's other requests.)
    pub(in super::super) fn peer_down(&self, node: &NodeId) {
        self.peers.remove(node);
    }

    /// Calls `send` with the types this node is a proxy of and their announcement's
    /// number, under the lock announcements take: for a new link's `Hello`.
    pub(in super::super) fn hello(&self, send: impl FnOnce(Vec<String>, u64)) {
        let proxying = self.proxying.lock().unwrap_or_else(PoisonError::into_inner);
        send(proxying.0.clone(), proxying.1);
    }

    /// Records the types `node` is a proxy of, from its announcement number `announced`
    /// (an older one than recorded is ignored). Returns whether that changed them.
    pub(in super::super) fn proxies_of(
        &self,
        node: &NodeId,
        mut types: Vec<String>,
        announced: u64,
    ) -> bool {
        types.sort();
        types.dedup();
        match self.peers.entry(node.clone()) {
            dashmap::Entry::Occupied(mut known) => {
                let (number, before) = known.get();
                if *number > announced || *before == types {
                    return false;
                }
                known.insert((announced, types));
                true
            }
            dashmap::Entry::Vacant(slot) => {
                let changed = !types.is_empty();
                slot.insert((announced, types));
                changed
            }
        }
    }

    /// Whether `node` said it is a proxy of `type_name`.
    pub(super) fn is_proxy(&self, node: &NodeId, type_name: &str) -> bool {
        self.peers
            .get(node)
            .is_some_and(|known| known.1.binary_search_by(|t| t.as_str().cmp(type_name)).is_ok())
    }

    /// Adds `type_name` to the types this node is a proxy of and announces them to every
    /// node linked now (a node linked later gets them in its `Hello`).
    pub(super) fn proxy(&self, shared: &Arc<Shared>, type_name: &str) {
        let mut proxying = self.proxying.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(at) = proxying.0.binary_search_by(|t| t.as_str().cmp(type_name)) {
            proxying.0.insert(at, type_name.to_owned());
        }
        proxying.1 += 1;
        let message = ShardControl::Proxies { types: proxying.0.clone(), announced: proxying.1 };
        let frame = Frame::Control(Control::Shard(message).encode());
        // Every node a `Hello` went to, or may have: those whose link is up.
        for node in shared.transport.peers() {
            let _ = shared.outbound(&node).send(frame.clone());
        }
    }
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
        if self.outbound(node).send(frame).is_err() {
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
                let _ = shared.outbound(&from).send(frame);
            });
        }
        ShardControl::Proxies { types, announced } => {
            if shared.sharding.proxies_of(&from, types, announced) {
                tracing::debug!(node = %from, "the sharded types a node is a proxy of changed");
                shared.sharding.changed.send_modify(|n| *n += 1);
            }
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
    fn proxy_announcements_travel_typed_and_an_older_one_is_ignored() {
        let message =
            ShardControl::Proxies { types: vec!["a.T".into(), "b.U".into()], announced: 4 };
        let bytes = Control::Shard(message.clone()).encode();
        assert_eq!(Control::decode(&bytes).unwrap(), Control::Shard(message));
        let hello = Control::Hello {
            system: amber_snapshot::SystemId::random(),
            proxies: vec!["a.T".into()],
            announced: 2,
        };
        assert_eq!(Control::decode(&hello.encode()).unwrap(), hello);

        let regions = Regions::default();
        let node = NodeId::from("p");
        assert!(!regions.is_proxy(&node, "a.T"));
        // A `Hello` with none is no change; then announcements, newest kept.
        assert!(!regions.proxies_of(&node, Vec::new(), 0));
        assert!(regions.proxies_of(&node, vec!["b.U".into(), "a.T".into()], 3));
        assert!(regions.is_proxy(&node, "a.T") && regions.is_proxy(&node, "b.U"));
        assert!(!regions.is_proxy(&node, "c.V"));
        // An older one (a `Hello` overtook it) changes nothing; the same one neither.
        assert!(!regions.proxies_of(&node, vec!["a.T".into()], 2));
        assert!(!regions.proxies_of(&node, vec!["a.T".into(), "b.U".into()], 3));
        assert!(regions.is_proxy(&node, "b.U"));
        assert!(regions.proxies_of(&node, vec!["a.T".into()], 5));
        assert!(!regions.is_proxy(&node, "b.U"));
        // Forgotten when its link goes down.
        regions.peer_down(&node);
        assert!(!regions.is_proxy(&node, "a.T"));
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
