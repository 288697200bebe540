//! Names across the cluster: looking a name up on every node at once
//! ([`Cluster::lookup_any`]), and the rule that picks one registration when several nodes
//! hold the name ([`Cluster::lookup_any_resolved`]).
//!
//! Names are registered per node (`spawn_named` checks only its own node), so two nodes may
//! register the same name. A cluster-wide lookup asks this node's system and every linked
//! node concurrently, each with one `Lookup` on its link, and waits for the answers until the
//! system's ask timeout ([`SystemBuilder::ask_timeout`](amber_actors::SystemBuilder)) at
//! most. A node that is down, goes down while asked, or does not answer by then is *silent*:
//! it is named in the error when the name is not found, and logged otherwise. What the
//! lookup sees is what the nodes that answered hold; a silent node may hold the name too.

use std::sync::Arc;

use amber_actors::{Actor, ActorRef};
use amber_snapshot::ActorId;
use tokio::time::Instant;

use super::control::Control;
use super::{Cluster, ClusterError, Shared};
use crate::{Frame, NodeId};

/// Where a name is registered, as far as the nodes that answered know.
#[derive(Debug)]
pub(super) struct Search {
    /// The nodes that hold the name, with the actor's id and stable type name, sorted by
    /// node name.
    pub(super) holders: Vec<(NodeId, ActorId, String)>,
    /// The nodes that did not answer (down, went down, or too slow), sorted.
    pub(super) silent: Vec<NodeId>,
}

impl Cluster {
    /// The actor registered under `name` on whichever node holds it (this one included),
    /// without naming the node, if it is an `A`.
    ///
    /// Asks this node and every linked node concurrently and waits at most the system's
    /// ask timeout; works from inside an actor's handler as from outside. Returns:
    ///
    /// - the ref, if exactly one node that answered holds the name (a node that did not
    ///   answer might hold it too: such nodes are logged);
    /// - [`ClusterError::WrongType`] if that one registration is not an `A`;
    /// - [`ClusterError::NameNotFound`] if no node that answered holds it, naming the nodes
    ///   that did not answer (down, or not in time);
    /// - [`ClusterError::NameConflict`] naming the nodes if several hold it
    ///   ([`lookup_any_resolved`](Self::lookup_any_resolved) picks one of them).
    ///
    /// ```
    /// # use amber_actors::{Actor, ActorSystem, Context};
    /// # use amber_remote::{Cluster, TransportConfig};
    /// # struct Echo;
    /// # impl Actor for Echo {
    /// #     type Msg = String;
    /// #     type Reply = String;
    /// #     async fn handle(&mut self, s: String, _: &mut Context<Self>) -> String { s }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let secret = b"a long random shared secret".to_vec();
    /// # let addr = "127.0.0.1:0".parse().unwrap();
    /// # let a = Cluster::start(ActorSystem::builder(), TransportConfig::new("a", addr, secret.clone())).await.unwrap();
    /// # let b = Cluster::start(ActorSystem::builder(), TransportConfig::new("b", addr, secret)).await.unwrap();
    /// b.system().spawn_named("echo", Echo).unwrap();
    /// a.connect(b.local_addr()).await.unwrap();
    /// let echo = a.lookup_any::<Echo>("echo").await.unwrap(); // found on b
    /// assert_eq!(echo.ask("hi".into()).await.unwrap(), "hi");
    /// # a.shutdown().await;
    /// # b.shutdown().await;
    /// # }
    /// ```
    pub async fn lookup_any<A: Actor>(&self, name: &str) -> Result<ActorRef<A>, ClusterError> {
        let search = self.shared.search(name).await;
        match search.holders.as_slice() {
            [] => Err(ClusterError::NameNotFound { name: name.to_owned(), silent: search.silent }),
            [(node, id, found)] => {
                if !search.silent.is_empty() {
                    tracing::info!(
                        name,
                        %node,
                        silent = %names(&search.silent),
                        "name found on one node; the nodes that did not answer were not checked"
                    );
                }
                self.shared.typed_ref(node, name, *id, found)
            }
            several => Err(ClusterError::NameConflict {
                name: name.to_owned(),
                nodes: several.iter().map(|(node, ..)| node.clone()).collect(),
            }),
        }
    }

    /// Like [`lookup_any`](Self::lookup_any), but a name held by several nodes resolves to
    /// one of them instead of a [`ClusterError::NameConflict`]: the registration on the node
    /// whose name sorts first (byte-wise, as [`NodeId`] orders), whichever node asks and in
    /// whatever order the answers arrive. If that registration is not an `A`, the error is
    /// [`ClusterError::WrongType`] (the rule does not depend on the type asked for).
    ///
    /// Deterministic among the nodes that answered: while a node that sorts first is down
    /// or slow, the next one's registration is picked (such a node is logged).
    pub async fn lookup_any_resolved<A: Actor>(
        &self,
        name: &str,
    ) -> Result<ActorRef<A>, ClusterError> {
        let search = self.shared.search(name).await;
        let Some((node, id, found)) = search.holders.first() else {
            return Err(ClusterError::NameNotFound {
                name: name.to_owned(),
                silent: search.silent,
            });
        };
        if search.holders.len() > 1 || !search.silent.is_empty() {
            tracing::info!(
                name,
                picked = %node,
                holders = %names(&search.holders.iter().map(|h| h.0.clone()).collect::<Vec<_>>()),
                silent = %names(&search.silent),
                "name resolved to the node that sorts first"
            );
        }
        self.shared.typed_ref(node, name, *id, found)
    }
}

impl Shared {
    /// Asks this node and every linked node which actor is registered under `name`, all at
    /// once, and collects the answers that arrive within the system's ask timeout.
    pub(super) async fn search(self: &Arc<Self>, name: &str) -> Search {
        let deadline = Instant::now() + self.system().ask_timeout();
        let me = self.transport.node().clone();
        let mut holders = Vec::new();
        if let Some((id, found)) = self.system().whereis(name) {
            holders.push((me.clone(), id, found.to_owned()));
        }
        let mut silent = Vec::new();
        // Nodes seen before but not linked now: down (or being redialled).
        for node in self.incarnations.known() {
            if node != me && !self.nodes.contains_key(&node) {
                tracing::debug!(%node, name, "cluster-wide lookup: node is down");
                silent.push(node);
            }
        }
        let mut waiting = Vec::new();
        let linked: Vec<NodeId> = self.nodes.iter().map(|e| e.key().clone()).collect();
        for node in linked {
            let (request, rx) = self.lookups.open(&node);
            let frame = Frame::Control(Control::Lookup { request, name: name.to_owned() }.encode());
            if self.outbound(&node).send(frame).is_err() {
                self.lookups.remove(request);
                tracing::debug!(%node, name, "cluster-wide lookup: the link to the node is gone");
                silent.push(node);
                continue;
            }
            waiting.push((node, request, rx));
        }
        // All asked already: waiting on each in turn under one deadline waits for the
        // slowest at most.
        for (node, request, rx) in waiting {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(Some((id, found)))) => holders.push((node, id, found)),
                Ok(Ok(None)) => {}
                Ok(Err(_)) => {
                    tracing::info!(%node, name, "cluster-wide lookup: node went down before it answered");
                    silent.push(node);
                }
                Err(_) => {
                    self.lookups.remove(request);
                    tracing::info!(%node, name, "cluster-wide lookup: node did not answer in time");
                    silent.push(node);
                }
            }
        }
        holders.sort_by(|a, b| a.0.cmp(&b.0));
        silent.sort();
        silent.dedup();
        Search { holders, silent }
    }

    /// A ref to actor `id`, registered under `name` on `node` (this one or another) as a
    /// `found`, if that is an `A`.
    pub(super) fn typed_ref<A: Actor>(
        self: &Arc<Self>,
        node: &NodeId,
        name: &str,
        id: ActorId,
        found: &str,
    ) -> Result<ActorRef<A>, ClusterError> {
        let expected = self.host().type_name_of::<A>();
        if found != expected {
            return Err(ClusterError::WrongType {
                node: node.clone(),
                name: name.to_owned(),
                expected: expected.to_owned(),
                found: found.to_owned(),
            });
        }
        if node == self.transport.node() {
            // It may have stopped since.
            return self
                .system()
                .lookup_id::<A>(id)
                .map_err(|_| ClusterError::NotFound { node: node.clone(), name: name.to_owned() });
        }
        Ok(self.host().remote_ref(id, self.route(node.clone())))
    }
}

/// `a, b, c`, or `none`.
fn names(nodes: &[NodeId]) -> String {
    if nodes.is_empty() {
        return "none".to_owned();
    }
    nodes.iter().map(NodeId::as_str).collect::<Vec<_>>().join(", ")
}
