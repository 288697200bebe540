//! Where the actors of a checkpoint go when it is rehydrated onto a set of nodes.

use std::collections::{HashMap, HashSet};

use amber_snapshot::{ActorId, Checkpoint};

use crate::NodeId;

/// Which node each actor of a checkpoint is rebuilt on, when a checkpoint taken on N nodes
/// is restored onto M nodes ([`Cluster::restore`](super::Cluster::restore)).
///
/// The default, [`spread`](Self::spread), keeps every actor whose node (by name) is among
/// the new nodes where it was, and spreads the actors of the other nodes over the new ones,
/// each family (a top-level actor and its descendants: supervision is local to a node) to
/// the node with the fewest actors so far. [`pin`](Self::pin) overrides it per actor.
/// Every node of a restore must use the same placement: each computes the whole
/// assignment from the checkpoint, so all agree on where every actor lives.
///
/// ```
/// use amber_remote::Placement;
/// let placement = Placement::spread(["n1", "n2"]);
/// assert_eq!(placement.nodes().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Placement {
    nodes: Vec<NodeId>,
    pinned: HashMap<ActorId, NodeId>,
}

/// Why a placement cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// A placement needs at least one node.
    #[error("a placement needs at least one node")]
    NoNodes,
    /// An actor is pinned to a node that is not one of the placement's nodes.
    #[error("actor {actor} is pinned to {node}, which is not one of the placement's nodes")]
    UnknownNode {
        /// The actor.
        actor: ActorId,
        /// The node it is pinned to.
        node: NodeId,
    },
    /// The node restoring is not one of the placement's nodes.
    #[error("node {0} is not one of the placement's nodes")]
    NotMember(NodeId),
}

impl Placement {
    /// Actors stay on nodes of the same name; the others are spread over `nodes`, a family
    /// at a time, to the least loaded node.
    pub fn spread<N: Into<NodeId>>(nodes: impl IntoIterator<Item = N>) -> Placement {
        Placement { nodes: nodes.into_iter().map(Into::into).collect(), pinned: HashMap::new() }
    }

    /// Places `actor` on `node`, with the descendants that are not pinned themselves. A
    /// pinned actor whose parent lands elsewhere is restored as a top-level actor.
    #[must_use]
    pub fn pin(mut self, actor: ActorId, node: impl Into<NodeId>) -> Placement {
        self.pinned.insert(actor, node.into());
        self
    }

    /// The nodes actors are placed on.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The node of every actor of `checkpoint`.
    pub fn assign(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<HashMap<ActorId, NodeId>, PlacementError> {
        if self.nodes.is_empty() {
            return Err(PlacementError::NoNodes);
        }
        if let Some((actor, node)) = self.pinned.iter().find(|(_, n)| !self.nodes.contains(n)) {
            return Err(PlacementError::UnknownNode { actor: *actor, node: node.clone() });
        }
        let actors = &checkpoint.manifest.actors;
        let ids: HashSet<ActorId> = actors.iter().map(|a| a.id).collect();
        let parent: HashMap<ActorId, ActorId> =
            actors.iter().filter_map(|a| a.parent.map(|p| (a.id, p))).collect();
        // The family head of an actor: the nearest pinned ancestor (or itself), else its
        // top-level ancestor. Bounded walk: a malformed parent cycle ends at the bound.
        let head = |mut id: ActorId| {
            for _ in 0..=actors.len() {
                if self.pinned.contains_key(&id) {
                    return id;
                }
                match parent.get(&id) {
                    Some(p) if ids.contains(p) => id = *p,
                    _ => return id,
                }
            }
            id
        };
        let mut family: HashMap<ActorId, usize> = HashMap::new();
        let heads: Vec<ActorId> = actors.iter().map(|a| head(a.id)).collect();
        for h in &heads {
            *family.entry(*h).or_default() += 1;
        }
        let mut load: HashMap<&NodeId, usize> = self.nodes.iter().map(|n| (n, 0)).collect();
        let mut of_head: HashMap<ActorId, NodeId> = HashMap::new();
        // Pinned and staying families first, so the spread sees their load.
        for entry in actors.iter().filter(|a| family.contains_key(&a.id)) {
            let stays = self.nodes.iter().find(|n| n.as_str() == entry.node);
            if let Some(node) = self.pinned.get(&entry.id).or(stays) {
                *load.get_mut(node).expect("a placement node") += family[&entry.id];
                of_head.insert(entry.id, node.clone());
            }
        }
        for entry in actors.iter().filter(|a| family.contains_key(&a.id)) {
            if of_head.contains_key(&entry.id) {
                continue;
            }
            let node =
                self.nodes.iter().min_by_key(|n| load[n]).expect("at least one node").clone();
            *load.get_mut(&node).expect("a placement node") += family[&entry.id];
            of_head.insert(entry.id, node);
        }
        Ok(actors.iter().zip(heads).map(|(a, h)| (a.id, of_head[&h].clone())).collect())
    }
}
