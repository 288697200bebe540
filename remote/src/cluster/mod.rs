//! A node of a cluster: an [`ActorSystem`] whose refs reach actors on other nodes over the
//! [`Transport`].
//!
//! - Every link starts with a `Hello` naming the peer's system id: a ref whose [`ActorId`] was
//!   first spawned by that system routes to that node.
//! - `tell` and `ask` on a ref to a remote actor encode the message straight into the link's
//!   queue when it has room and nothing waits ahead, else hand it to a per-peer forwarder,
//!   which sends in order (per sender→receiver FIFO holds) and waits on the link's
//!   backpressure without blocking the sender (see `outbound.rs`). A reply comes back as a `Reply` frame matched
//!   by ask id. The cluster's own control messages (watches, spawns, lookups, migrations)
//!   stay on the link's data lane too, in order with the data; snapshot messages and the
//!   `Hello` take its urgent lane instead ([`Transport::send_urgent`]), ahead of the queued
//!   data (why that is safe: `Directory::send_snapshot`).
//! - `ctx.watch` and `ctx.unwatch` on a ref to a remote actor register the watch with its node,
//!   which sends the actor's `Down` with its real [`ExitReason`] back.
//! - [`Cluster::lookup`] finds a named actor on a given node, [`Cluster::lookup_any`] on
//!   whichever node holds the name (a name on several nodes is a conflict).
//! - [`Cluster::spawn_on`] starts an actor of a registered type on another node from its
//!   encoded state.
//! - When a peer goes down, everything waiting on it fails at once (below).
//! - [`Cluster::join`] forms the cluster from seed addresses instead of `connect` calls:
//!   members learn each other through gossip (SWIM, the `membership` module) and link to
//!   each other by themselves; [`Cluster::members`] lists them.
//!
//! # Failures and reconnection
//!
//! A node is *down* for this one from the transport's `PeerDown` (link lost, heartbeat timeout,
//! the peer shut down or disconnected) until it links and introduces itself again. Meanwhile:
//!
//! - `tell` to its actors fails, giving the message back; `ask` fails with
//!   [`AskError::NodeDown`], and so do the asks already sent to it, handled there or not.
//! - Every local actor watching one of its actors gets `Down` with [`ExitReason::NodeDown`]
//!   (the actor may still be running there), and a new watch of one is answered so at once.
//!   The other node, seeing this one down, drops the watches it held for this node's actors.
//! - Lookups and spawns waiting on it fail with [`ClusterError::NodeDown`].
//!
//! An ask that times out while its node stays up is forgotten within about a second (see
//! [`Cluster::pending_asks`]); a late reply is dropped.
//!
//! The node that dialled a link redials it after an unasked drop (see
//! [`ReconnectPolicy`](crate::ReconnectPolicy)); otherwise call [`Cluster::connect`] again.
//! Refs made before work again once the same incarnation of the node is back; a restarted
//! node (a new system id in its `Hello`) has new actors: refs to the old ones are refused
//! here, as to stopped actors ([`ClusterEvent::Restarted`]). Watches do not come back: watch
//! again after a `NodeDown`. The exception is the forwarding entry a node keeps for an actor
//! that moved away from it ([`Cluster::migrate`]): it outlives a dropped link, watches the
//! actor again once the same incarnation is back, and ends only when the actor stops there
//! or its node is gone for good (restarted, declared down or left, given up on).
//! [`Cluster::subscribe`] reports links down and up, reconnections and restarts. Delivery is
//! at most once, never retried nor duplicated. What was queued for a link when it went down
//! is lost: a `tell` that returned `Ok` may never arrive, and an ask that failed with
//! `NodeDown` may or may not have been handled. What the other node acknowledged holds: an ask whose reply arrived was
//! handled once, and a `Down` or a spawn's answer that arrived is true.
//!
//! [`AskError::NodeDown`]: amber_actors::AskError::NodeDown
//! [`ExitReason`]: amber_actors::ExitReason
//! [`ExitReason::NodeDown`]: amber_actors::ExitReason::NodeDown
//!
//! Snapshots: `system().snapshot()` on any node spans it and every node linked to it (see the
//! runtime's snapshot engine); [`Cluster::restore`] rehydrates a checkpoint of N nodes onto M
//! under a [`Placement`]. The guide: `amber::docs::cluster` (`docs/cluster.md`).
//!
//! [`Sharding`] addresses entities by key from any node, started on the node that owns
//! their shard and moved when nodes join.
//!
//! [`Cluster::migrate`] moves one running actor to another node while it runs; refs to it
//! keep working.
//!
//! `wait_stopped` on a ref to an actor of another node waits through a watch (its real exit
//! reason, or `NodeDown`); `is_stopped` on such a ref is true once a wait has seen it stop.

mod asks;
mod control;
mod credit;
mod error;
mod event;
mod inbound;
mod membership;
mod migrate;
mod names;
mod outbound;
mod placement;
mod requests;
mod restore;
mod sharding;
mod spawn;
mod strikes;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use amber_actors::remote::{
    Host, InboundMessage, OutboundMessage, RemoteDirectory, RemoteRoute, ReplyError, ReplyHandler,
    RouteError, StoppedFuture,
};
use amber_actors::{Actor, ActorRef, ActorSystem, ExitReason, SystemBuilder};
use amber_snapshot::{ActorId, Epoch, SystemId};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::{Notify, mpsc, oneshot};

use self::control::Control;
pub use self::error::ClusterError;
pub use self::event::ClusterEvent;
use self::inbound::Inbound;
pub use self::membership::{GossipStats, Member, MemberStatus, MembershipConfig};
use self::outbound::Outbound;
pub use self::placement::{Placement, PlacementError};
use self::requests::{RequestIds, Requests};
pub use self::sharding::{
    EntityRef, KeeperMsg, KeeperReply, LostShards, Rebalance, RestartSourceError, Restarted,
    ShardKeeper, ShardRefusal, Sharding, ShardingConfig, ShardingError, TellError,
};
pub use self::spawn::SpawnRefusal;
use self::strikes::Strike;
use crate::frame::MessageRef;
use crate::{Frame, NodeId, Transport, TransportConfig, TransportEvent};

/// A lookup's answer: the actor's id and stable type name, or `None` if no actor is
/// registered under the name.
type Found = Option<(ActorId, String)>;

/// How long [`Cluster::connect`] waits for the peer's introduction after the link is up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's membership in a cluster: its actor system and its links to other nodes.
///
/// ```
/// use amber_actors::{Actor, ActorSystem, Context};
/// use amber_remote::{Cluster, TransportConfig};
///
/// struct Echo;
/// impl Actor for Echo {
///     type Msg = String;
///     type Reply = String;
///     async fn handle(&mut self, s: String, _: &mut Context<Self>) -> String {
///         s
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let addr = "127.0.0.1:0".parse().unwrap();
/// let a = Cluster::start(ActorSystem::builder(), TransportConfig::new("a", addr, b"a long random shared secret".to_vec()))
///     .await
///     .unwrap();
/// let b = Cluster::start(ActorSystem::builder(), TransportConfig::new("b", addr, b"a long random shared secret".to_vec()))
///     .await
///     .unwrap();
/// b.system().spawn_named("echo", Echo).unwrap();
/// let peer = a.connect(b.local_addr()).await.unwrap();
/// let echo = a.lookup::<Echo>(&peer, "echo").await.unwrap();
/// assert_eq!(echo.ask("over tcp".into()).await.unwrap(), "over tcp");
/// a.shutdown().await;
/// b.shutdown().await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Cluster {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    transport: Transport,
    /// The system, as its users hold it (this handle owns it, until the cluster shuts down).
    system: OnceLock<ActorSystem>,
    /// The system's side for the links, attached when the system is built (see
    /// [`Directory`]'s `attach`).
    host: OnceLock<Host>,
    /// Which node hosts the actors first spawned by each system.
    systems: DashMap<SystemId, NodeId>,
    /// The system id each connected node introduced itself with.
    nodes: DashMap<NodeId, SystemId>,
    /// Where a restore placed actors of a checkpoint (their ids name the systems of the
    /// checkpoint's nodes, not the live ones): consulted before `systems`.
    placed: DashMap<ActorId, NodeId>,
    /// A restore whose [`Cluster::resume`] has not returned `Ok` yet.
    pending: std::sync::Mutex<Option<restore::Pending>>,
    /// The nodes that announced they resumed their share of a restore.
    resumed: restore::Resumed,
    /// The other nodes of the restore this node was restored in that its shardings have
    /// not seen yet (see [`Shared::restore_unseen`]).
    unseen: std::sync::Mutex<Vec<NodeId>>,
    hello: Notify,
    /// Per-peer outbound paths: a forwarder of frames, in order, and its credit.
    outbound: DashMap<NodeId, Arc<Outbound>>,
    /// Data messages that may be queued for one peer before bounded sends wait: the
    /// transport's `send_queue`, so that one setting bounds both queues.
    credit: usize,
    /// Asks sent to other nodes, awaiting their `Reply`. Its ids, like those of the other
    /// request tables below, come from one counter.
    asks: Requests<ReplyHandler>,
    /// Name lookups sent to other nodes.
    lookups: Requests<oneshot::Sender<Found>>,
    /// Watches crossing the links, per node.
    watches: watch::Watches,
    /// Spawns sent to other nodes.
    spawns: Requests<oneshot::Sender<spawn::Spawned>>,
    /// Migrations waiting for the target's answer (`Ready` or `Arrived`).
    migrations: Requests<oneshot::Sender<migrate::Answer>>,
    /// Per-peer warning budgets, and malformed control messages counted per linked peer.
    strikes: strikes::Strikes,
    /// Each peer's incarnation, the retired ones, and the subscribers to peer events.
    incarnations: event::Incarnations,
    /// The membership driver, on a node started with [`Cluster::join`].
    membership: OnceLock<membership::Handle>,
    /// This node's shardings.
    sharding: sharding::Regions,
    /// Entity requests (`Resolve`) sent to the owners of shards on other nodes.
    entities: Requests<oneshot::Sender<sharding::Resolved>>,
}

impl Cluster {
    /// Binds the transport, builds the system from `builder` with remoting, and starts
    /// serving links.
    pub async fn start(
        builder: SystemBuilder,
        config: TransportConfig,
    ) -> Result<Cluster, ClusterError> {
        let (shared, inbound) = Shared::bind(config).await?;
        // The keepers of sharded entities' passivated states are actors of every node.
        let builder = builder.register::<sharding::ShardKeeper>();
        let system =
            builder.node(shared.transport.node().as_str()).remote(shared.directory()).build();
        let _ = shared.system.set(system);
        shared.serve(&inbound);
        Ok(Cluster { shared })
    }

    /// This node's actor system.
    pub fn system(&self) -> &ActorSystem {
        self.shared.system()
    }

    /// This node's name.
    pub fn node(&self) -> &NodeId {
        self.shared.transport.node()
    }

    /// Where this node accepts links.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.transport.local_addr()
    }

    /// The nodes linked to this one that have introduced themselves (a snapshot started
    /// here spans them and this node).
    pub fn nodes(&self) -> Vec<NodeId> {
        self.shared.nodes.iter().map(|e| e.key().clone()).collect()
    }

    /// The transport (for its stats and events of interest).
    pub fn transport(&self) -> &Transport {
        &self.shared.transport
    }

    /// Links to the node listening at `addr` and waits until it has introduced itself, so
    /// refs to its actors resolve. Returns its name.
    pub async fn connect(&self, addr: SocketAddr) -> Result<NodeId, ClusterError> {
        let node = self.shared.transport.connect(addr).await?;
        tokio::time::timeout(HELLO_TIMEOUT, self.shared.introduced(std::slice::from_ref(&node)))
            .await
            .map_err(|_| ClusterError::NoHello(node.clone()))?;
        Ok(node)
    }

    /// The actor registered under `name` on `node`, if it is an `A` (to look a name up on
    /// whichever node holds it: [`Cluster::lookup_any`]).
    pub async fn lookup<A: Actor>(
        &self,
        node: &NodeId,
        name: &str,
    ) -> Result<ActorRef<A>, ClusterError> {
        let shared = &self.shared;
        if !shared.nodes.contains_key(node) {
            return Err(ClusterError::NotConnected(node.clone()));
        }
        let (request, rx) = shared.lookups.open(node);
        let frame = Frame::Control(Control::Lookup { request, name: name.to_owned() }.encode());
        if let Err(e) = shared.transport.send(node, &frame).await {
            shared.lookups.remove(request);
            return Err(e.into());
        }
        let answer = shared.lookups.answer(node, request, rx, self.system().ask_timeout()).await?;
        let (id, found) = answer
            .ok_or_else(|| ClusterError::NotFound { node: node.clone(), name: name.to_owned() })?;
        shared.typed_ref(node, name, id, &found)
    }

    /// Stops the actor system, leaves the membership (if it joined one,
    /// [`Cluster::join`]), then closes every link.
    pub async fn shutdown(&self) {
        self.system().shutdown().await;
        self.leave().await;
        self.shared.transport.shutdown().await;
    }
}

impl Shared {
    fn new(transport: Transport, credit: usize) -> Arc<Shared> {
        let ids = RequestIds::new();
        Arc::new(Shared {
            transport,
            credit,
            system: OnceLock::new(),
            host: OnceLock::new(),
            systems: DashMap::new(),
            nodes: DashMap::new(),
            placed: DashMap::new(),
            pending: std::sync::Mutex::new(None),
            resumed: restore::Resumed::default(),
            unseen: std::sync::Mutex::new(Vec::new()),
            hello: Notify::new(),
            outbound: DashMap::new(),
            asks: Requests::new(&ids),
            lookups: Requests::new(&ids),
            watches: watch::Watches::default(),
            spawns: Requests::new(&ids),
            migrations: Requests::new(&ids),
            strikes: strikes::Strikes::default(),
            incarnations: event::Incarnations::default(),
            membership: OnceLock::new(),
            sharding: sharding::Regions::default(),
            entities: Requests::new(&ids),
        })
    }

    /// Returns once every one of `nodes` has introduced itself.
    async fn introduced(&self, nodes: &[NodeId]) {
        loop {
            let notified = self.hello.notified();
            if nodes.iter().all(|n| self.nodes.contains_key(n)) {
                return;
            }
            notified.await;
        }
    }

    /// The directory the system resolves refs to other nodes' actors through.
    fn directory(self: &Arc<Self>) -> Arc<dyn RemoteDirectory> {
        Arc::new(Directory { shared: Arc::downgrade(self) })
    }

    /// Binds the transport, its events handled in place once [`serve`](Self::serve) is
    /// called (those before wait in `Inbound`).
    async fn bind(config: TransportConfig) -> Result<(Arc<Shared>, Arc<Inbound>), ClusterError> {
        let credit = config.send_queue;
        let inbound = Arc::new(Inbound::default());
        let handler = inbound.clone();
        let transport =
            Transport::bind_with_handler(config, move |event| handler.handle(event)).await?;
        Ok((Shared::new(transport, credit), inbound))
    }

    /// Starts handling the transport's events (the system must be set).
    fn serve(self: &Arc<Self>, inbound: &Inbound) {
        inbound.attach(Arc::downgrade(self), self.transport.has_own_runtime());
        tokio::spawn(asks::sweep(Arc::downgrade(self)));
    }

    fn system(&self) -> &ActorSystem {
        self.system.get().expect("the system is set before the cluster is returned")
    }

    /// What the links hand to the system goes through this.
    fn host(&self) -> &Host {
        self.host.get().expect("the system attaches its host as it is built")
    }

    /// Whether `actor` lived on a previous incarnation of `node` (it restarted since), and
    /// was not placed there again by a restore, or moved from this node to `node` and its
    /// forwarding entry ended because `node` is gone for good: it is gone for good.
    fn is_retired(&self, actor: ActorId, node: &NodeId) -> bool {
        (self.incarnations.is_retired(actor.system(), node) && !self.placed.contains_key(&actor))
            || self.watches.is_gone(actor, node)
    }

    /// Tells the membership (if any) that a link came up or went down.
    fn links_changed(&self) {
        if let Some(membership) = self.membership.get() {
            membership.links_changed();
        }
    }

    /// Whether `node` has introduced itself and its link is up.
    fn is_up(&self, node: &NodeId) -> bool {
        self.nodes.contains_key(node) && self.transport.is_up(node)
    }

    fn route(self: &Arc<Self>, node: NodeId) -> Arc<dyn RemoteRoute> {
        Arc::new(PeerRoute { node, shared: Arc::downgrade(self), cached: Mutex::new(Weak::new()) })
    }

    /// The outbound path of `node`: its forwarder, started on first use and again after the
    /// link came back, and the forwarder's credit.
    fn outbound(self: &Arc<Self>, node: &NodeId) -> Arc<Outbound> {
        if let Some(out) = self.outbound.get(node).filter(|o| o.is_open()) {
            return out.clone();
        }
        // Decided under the entry's lock: one open path per peer at a time, so a sender's
        // frames to a peer never take two forwarders (which could reorder them).
        let entry = match self.outbound.entry(node.clone()) {
            Entry::Occupied(open) if open.get().is_open() => return open.get().clone(),
            entry => entry,
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
        let credit = Arc::new(credit::Credit::new(self.credit));
        let direct = self.transport.link(node).ok().map(|link| (self.transport.clone(), link));
        let out = Arc::new(Outbound::new(tx, credit.clone(), direct));
        drop(entry.insert(out.clone()));
        // The forwarder ends once every sender is gone: the map lets go of the path when the
        // peer goes down, and routes hold it only while they send.
        let (transport, node) = (self.transport.clone(), node.clone());
        let depth = metrics::gauge!("amber_link_queue_depth", "peer" => node.to_string());
        tokio::spawn(async move {
            // Everything queued (up to a batch) goes to the link in one call, in order. A
            // short batch first lets the worker run once more (the senders may add to it):
            // fewer, larger batches cost less per frame (wake-ups, writes) under load.
            const BATCH: usize = 128;
            let mut frames = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut frames, BATCH).await > 0 {
                if frames.len() < BATCH {
                    tokio::task::yield_now().await;
                    while frames.len() < BATCH {
                        let Ok(frame) = rx.try_recv() else { break };
                        frames.push(frame);
                    }
                }
                let data = frames.iter().filter(|f| matches!(f, Frame::Message { .. })).count();
                if let Err(e) = transport.send_all(&node, &frames).await {
                    // Their sends returned `Ok`: say that they are lost (at most once).
                    let lost = frames.len() + rx.len();
                    tracing::warn!(%node, error = %e, lost, "link gone; frames queued for it are lost");
                    // `rx` drops: later routes see a closed forwarder; waiting senders wake
                    // to find the node down.
                    credit.wake_all();
                    return;
                }
                credit.forwarded(frames.len());
                frames.clear();
                credit.sent_many(data);
                // Sampled once per batch the link takes, not per message.
                depth.set(credit.depth() as f64);
            }
        });
        out
    }

    /// Fails everything pending on `node`. The peer is forgotten before its requests are
    /// swept (see [`PeerRoute::route_then`]).
    fn peer_down(&self, node: &NodeId) {
        if let Some((_, system)) = self.nodes.remove(node) {
            self.systems.remove_if(&system, |_, n| n == node);
        }
        if let Some((_, out)) = self.outbound.remove(node) {
            // Before the snapshot engine hears of it (`node_down`, below): every message
            // this path took is counted by then, on the account the engine resets.
            out.close();
        }
        watch::peer_down(self, node);
        self.strikes.peer_down(node);
        // Every request awaiting the peer fails, each kind with its node-down error: a
        // lookup, spawn, migration or entity request with `ClusterError::NodeDown` (its
        // requester sees its channel's sender dropped); an ask with `ReplyError::NodeDown`.
        // Spawns, migrations and entity requests fail before the system hears of the loss,
        // asks and lookups after, in the order the separate tables were swept before.
        drop(self.spawns.peer_down(node));
        drop(self.migrations.peer_down(node));
        drop(self.entities.peer_down(node));
        self.sharding.peer_down(node);
        self.resumed.peer_down();
        self.host().node_down(node.as_str());
        for handler in self.asks.peer_down(node) {
            let error = ReplyError::NodeDown(node.to_string());
            handler.complete(self.system(), Err(error), Epoch::ZERO);
        }
        drop(self.lookups.peer_down(node));
    }
}

/// Resolves ids of actors on other nodes by the system that first spawned them.
struct Directory {
    shared: Weak<Shared>,
}

impl RemoteDirectory for Directory {
    fn attach(&self, host: Host) {
        if let Some(shared) = self.shared.upgrade()
            && shared.host.set(host).is_err()
        {
            // A directory serves the one system its cluster builds.
            tracing::error!("a cluster's directory was attached to a second system");
        }
    }

    fn route_to(&self, id: ActorId) -> Option<Arc<dyn RemoteRoute>> {
        let shared = self.shared.upgrade()?;
        let node = match shared.placed.get(&id) {
            Some(node) => node.clone(),
            None => shared.systems.get(&id.system())?.clone(),
        };
        Some(shared.route(node))
    }

    fn peers(&self) -> Vec<String> {
        let Some(shared) = self.shared.upgrade() else { return Vec::new() };
        shared.nodes.iter().map(|e| e.key().to_string()).collect()
    }

    /// Sends a snapshot message on the link's urgent lane ([`Transport::send_urgent`]), not
    /// through the forwarder: it overtakes the data queued for that node (in the forwarder,
    /// up to the credit bound, and in the link's queue), so that the snapshot's messages do
    /// not wait behind the backlog, as the markers overtake the mailboxes' backlog locally.
    ///
    /// # Why the snapshot protocol allows this
    ///
    /// What the lane keeps: snapshot messages to one node stay in order among themselves
    /// (a coordinator's `Start`, `Expect` and final command; a part's pieces, which its
    /// reader needs in order), the `Hello` goes first (it takes the same lane, see
    /// [`on_event`]: a node answers snapshot messages only to nodes that introduced
    /// themselves, so a `Start` that overtook its sender's `Hello` would be followed but
    /// never answered), and data handed to the link after a snapshot message never overtakes
    /// it. What changes: a snapshot message may now overtake data (messages, replies,
    /// migrations) handed to the link before it. The engine
    /// (`amber_actors::snapshot`) does not rely on that order, because completion is decided
    /// by counts per tag, not by markers flushing channels (Lai–Yang, not Chandy–Lamport):
    ///
    /// - `Start(E)` ahead of data tagged below `E`: that data is counted below `E` on both
    ///   ends whenever it arrives (`NodeSnapshot::remote_sent`/`remote_received`), and its
    ///   receiver either has not cut yet (it is in the receiver's state or backlog at the
    ///   cut) or has (it is recorded in flight on arrival). Data tagged `E` ahead of
    ///   `Start(E)` was already possible across links and starts `E` on arrival.
    /// - A `Report` ahead of the data its counts include: the coordinator sees the receiver
    ///   short and sends it `Expect`; `Expect` ahead of that data: the receiver reports only
    ///   once the expected counts have arrived (`check_expectation`).
    /// - `Complete(E)` is only decided once every message tagged below `E` that was sent
    ///   has been counted received, which happens after it was queued or recorded: nothing
    ///   it can overtake belongs to snapshot `E`. What it overtakes is tagged `E` or later,
    ///   or not counted (outside messages, tagged on arrival; replies, which are not channel
    ///   messages).
    /// - `Abort(E)` ahead of data: the counters are cumulative, not per snapshot; data of
    ///   any tag arriving after it is counted for the next snapshot as before.
    /// - Parts go from a participant to its coordinator after `Complete`; the coordinator
    ///   drops pieces of a snapshot it no longer collects (aborted, node down).
    /// - A migration frame counts as a message on its link (`migrated_out`/`migrated_in`):
    ///   overtaking it is overtaking data, above. Migration frames themselves stay on the
    ///   forwarder, behind what the actor sent before moving.
    ///
    /// On one link the lane keeps data tagged `E + 1` behind `Complete(E)`: a node sends data
    /// tagged `E + 1` only once its actors cut for `E + 1`, hence after it handed to the lane
    /// the `Complete(E)` (if it coordinated `E`) and the `Start(E + 1)` (if it coordinates
    /// `E + 1`) for that receiver. Across links nothing orders them (another node's data
    /// tagged `E + 1` can reach a node before its coordinator's `Complete(E)`): the engine
    /// keeps the overtaken round until that `Complete` (`EngineState::finishing`). On the
    /// receiving side, frames come out of the link in the order they were written and
    /// the link's reader hands them to the cluster one at a time in that order (`inbound`):
    /// what the lane overtakes there is
    /// only what the sender had not written yet.
    ///
    /// Other control messages stay on the forwarder, in order with the data: a `Watch` down
    /// notice must not overtake what the stopped actor sent before it stopped, and a
    /// `Migrate` arrival must not overtake what the actor sent before it moved (nor be
    /// overtaken by what its old node forwards after). Lookups and spawns are answered
    /// requests with no ordering need either way; they keep the data lane.
    fn send_snapshot(&self, node: &str, bytes: Vec<u8>) -> Result<(), RouteError> {
        let down = || RouteError::NodeDown(node.to_owned());
        let shared = self.shared.upgrade().ok_or_else(down)?;
        let node = NodeId::from(node);
        if !shared.nodes.contains_key(&node) {
            return Err(down());
        }
        let frame = Frame::Control(Control::Snapshot(bytes).encode());
        shared.transport.send_urgent(&node, &frame).map_err(|_| down())
    }

    fn address(&self) -> Option<String> {
        let shared = self.shared.upgrade()?;
        Some(shared.transport.local_addr().to_string())
    }
}

/// The route to one peer node.
struct PeerRoute {
    node: NodeId,
    shared: Weak<Shared>,
    /// The peer's outbound path, once looked up, while it stays open: a send then costs no
    /// look-up by node name. Weak: a route does not keep a closed path's forwarder alive.
    cached: Mutex<Weak<Outbound>>,
}

impl PeerRoute {
    /// The peer's open outbound path, if the peer is up (introduced, link up).
    fn open(&self, shared: &Arc<Shared>) -> Option<Arc<Outbound>> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(out) = cached.upgrade().filter(|out| out.is_open()) {
            return Some(out);
        }
        let out = shared.is_up(&self.node).then(|| shared.outbound(&self.node))?;
        *cached = Arc::downgrade(&out);
        Some(out)
    }
}

impl RemoteRoute for PeerRoute {
    fn route(&self, message: OutboundMessage) -> Result<(), RouteError> {
        self.route_then(message, &mut || {})
    }

    /// Hands the message to the peer's forwarder and calls `taken` inside the path's
    /// `sending` section, which `Shared::peer_down` waits out after closing the path and
    /// before the snapshot engine hears that the link dropped: a message the path took is
    /// counted on that link's account (and forgotten with it), never on the next link's.
    fn route_then(
        &self,
        message: OutboundMessage,
        taken: &mut dyn FnMut(),
    ) -> Result<(), RouteError> {
        let down = || RouteError::NodeDown(self.node.to_string());
        let shared = self.shared.upgrade().ok_or_else(down)?;
        // Register the ask first, then check the peer: `peer_down` forgets the peer (and
        // closes its path) first, then fails the asks it finds, so every ask is either found
        // by it or refused here.
        let ask = message.reply.map(|handler| shared.asks.insert(&self.node, handler));
        let refused = |shared: &Shared| {
            if let Some(ask) = ask {
                shared.asks.remove(ask);
            }
            Err(down())
        };
        if shared.is_retired(message.to, &self.node) {
            return refused(&shared);
        }
        let Some(out) = self.open(&shared) else { return refused(&shared) };
        let Some(_sending) = out.sending() else { return refused(&shared) };
        let direct = MessageRef {
            to: message.to,
            from: message.from,
            tag: message.tag,
            ask,
            depth: message.depth,
            type_name: message.type_name,
            payload: &message.payload,
        };
        if out.try_direct(&direct) {
            taken();
            // Copied into the link's buffer: the payload's buffer serves the next send.
            amber_actors::remote::recycle_payload(message.payload);
            return Ok(());
        }
        let frame = Frame::Message {
            to: message.to,
            from: message.from,
            tag: message.tag,
            ask,
            depth: message.depth,
            type_name: message.type_name.into(),
            payload: message.payload.into(),
        };
        out.credit.queued();
        if out.send(frame).is_err() {
            out.credit.sent();
            return refused(&shared);
        }
        taken();
        Ok(())
    }

    fn poll_ready(&self, cx: Option<&mut std::task::Context<'_>>) -> bool {
        let Some(shared) = self.shared.upgrade() else { return true };
        // The peer is down: nothing to wait for (the send fails).
        let Some(out) = self.open(&shared) else { return true };
        out.poll_ready(cx)
    }

    fn node(&self) -> &str {
        self.node.as_str()
    }

    fn is_up(&self) -> bool {
        self.shared.upgrade().is_some_and(|shared| shared.is_up(&self.node))
    }

    fn watch(&self, watched: ActorId, watcher: ActorId) -> Result<(), RouteError> {
        let down = || RouteError::NodeDown(self.node.to_string());
        let shared = self.shared.upgrade().ok_or_else(down)?;
        watch::watch(&shared, &self.node, watched, watcher)
    }

    fn unwatch(&self, watched: ActorId, watcher: ActorId) {
        if let Some(shared) = self.shared.upgrade() {
            watch::unwatch(&shared, &self.node, watched, watcher);
        }
    }

    fn stopped(&self, id: ActorId) -> StoppedFuture {
        match self.shared.upgrade() {
            Some(shared) => Box::pin(watch::stopped(&shared, &self.node, id)),
            None => Box::pin(std::future::ready(ExitReason::NodeDown(self.node.to_string()))),
        }
    }
}

/// Sends the reply to ask `ask` of node `node` back over the link.
fn reply_handler(shared: &Arc<Shared>, node: &NodeId, ask: u64) -> ReplyHandler {
    let (shared, node) = (Arc::downgrade(shared), node.clone());
    ReplyHandler::new(move |_, result, epoch| {
        if let Some(shared) = shared.upgrade() {
            let _ = shared.outbound(&node).send(Frame::Reply { ask, epoch, result });
        }
    })
}

/// A control message from `from` that this node cannot read: warned about within the peer's
/// budget, and the link dropped at the [`MAX_MALFORMED`](strikes::MAX_MALFORMED)th within
/// [`MALFORMED_WINDOW`](strikes::MALFORMED_WINDOW).
fn malformed(shared: &Shared, from: &NodeId, error: &dyn std::fmt::Display) {
    match shared.strikes.malformed(from, Instant::now()) {
        Strike::Warn { suppressed } => {
            tracing::warn!(node = %from, %error, suppressed, "malformed control message")
        }
        Strike::Quiet => {}
        Strike::Drop => {
            tracing::warn!(
                node = %from,
                %error,
                limit = strikes::MAX_MALFORMED,
                window = ?strikes::MALFORMED_WINDOW,
                "dropping the link to {from}: too many malformed control messages"
            );
            let _ = shared.transport.disconnect(from, "too many malformed control messages");
        }
    }
}

/// Handles one of the transport's events, on the task of the link it concerns (see
/// [`inbound`]).
fn on_event(shared: &Arc<Shared>, event: TransportEvent) {
    match event {
        TransportEvent::PeerUp { node, .. } => {
            // On the urgent lane, so that no snapshot message to that node overtakes it (see
            // `Directory::send_snapshot`). Nothing else was sent on the new link yet.
            // With the sharded types this node is a proxy of, read and sent under the lock
            // their announcements take (`Regions::proxy`): a proxy started meanwhile is in
            // this `Hello`, or announced to this node after it.
            shared.sharding.hello(|proxies, announced| {
                let system = shared.system().id();
                let hello = Control::Hello { system, proxies, announced };
                let hello = Frame::Control(hello.encode());
                let _ = shared.transport.send_urgent(&node, &hello);
            });
        }
        TransportEvent::PeerDown { node, reason } => {
            tracing::info!(%node, %reason, "node down");
            shared.peer_down(&node);
            shared.incarnations.publish(ClusterEvent::Down { node, reason: reason.to_string() });
            shared.links_changed();
        }
        TransportEvent::GaveUp { node, attempts, .. } => {
            tracing::info!(%node, attempts, "gave up redialling the node");
            // Given up on, unless it linked again meanwhile (by dialling in).
            if !shared.transport.is_up(&node) {
                watch::forwards_end(shared, &node);
            }
            shared.incarnations.publish(ClusterEvent::GaveUp { node, attempts });
        }
        TransportEvent::HandshakeFailed { addr, error } => {
            // The transport logged it already (within that address's warning budget).
            tracing::debug!(%addr, %error, "refused a node");
        }
        TransportEvent::Frame { from, frame } => on_frame(shared, from, frame),
    }
}

fn on_frame(shared: &Arc<Shared>, from: NodeId, frame: Frame) {
    match frame {
        Frame::Message { to, from: sender, tag, ask, depth, payload, .. } => {
            let reply = ask.map(|ask| reply_handler(shared, &from, ask));
            let message = InboundMessage { to, from: sender, tag, depth, payload, reply };
            if let Err(e) = shared.host().deliver(from.as_str(), message) {
                tracing::debug!(node = %from, actor = %to, error = %e, "remote message not delivered");
                if let Some(ask) = ask {
                    let result = Err(ReplyError::NotDelivered(e));
                    let reply = Frame::Reply { ask, epoch: Epoch::ZERO, result };
                    let _ = shared.outbound(&from).send(reply);
                }
            }
        }
        Frame::Reply { ask, epoch, result } => {
            if let Some(handler) = shared.asks.take(ask) {
                handler.complete(shared.system(), result, epoch);
            }
        }
        Frame::Control(bytes) => match Control::decode(&bytes) {
            Ok(Control::Hello { system, proxies, announced }) => {
                // Known before the node counts as up: a sharding never counts a proxy that
                // said so in its `Hello` as an owner.
                shared.sharding.proxies_of(&from, proxies, announced);
                let event = shared.incarnations.introduced(&from, system);
                if let ClusterEvent::Restarted { .. } = event {
                    // Before the node counts as up: no actor can have left for the new
                    // incarnation yet, so every forwarding entry to it is to the old one.
                    watch::forwards_end(shared, &from);
                }
                shared.systems.insert(system, from.clone());
                shared.nodes.insert(from.clone(), system);
                shared.hello.notify_waiters();
                if let ClusterEvent::Reconnected { .. } = event {
                    watch::reconnected(shared, &from);
                }
                shared.incarnations.publish(event);
                shared.links_changed();
            }
            Ok(Control::Lookup { request, name }) => {
                let result = shared.system().whereis(&name).map(|(id, ty)| (id, ty.to_owned()));
                let found = Frame::Control(Control::Found { request, result }.encode());
                let _ = shared.outbound(&from).send(found);
            }
            Ok(Control::Found { request, result }) => {
                // Only the node asked answers a lookup.
                match shared.lookups.take_from(request, &from) {
                    Some(tx) => {
                        let _ = tx.send(result);
                    }
                    None => {
                        tracing::debug!(node = %from, request, "answer to no lookup of this node's")
                    }
                }
            }
            Ok(Control::Resumed { epoch }) => {
                tracing::debug!(node = %from, %epoch, "node resumed its share of a restore");
                shared.resumed.announced(from, epoch);
            }
            Ok(Control::Snapshot(bytes)) => {
                shared.host().on_snapshot_message(from.as_str(), &bytes)
            }
            Ok(Control::Watch(message)) => watch::on_control(shared, from, message),
            Ok(Control::Spawn(message)) => spawn::on_control(shared, from, message),
            Ok(Control::Migrate(message)) => migrate::on_control(shared, from, message),
            Ok(Control::Shard(message)) => sharding::on_control(shared, from, message),
            Err(e) => malformed(shared, &from, &e),
        },
        other => tracing::debug!(node = %from, kind = ?other.kind(), "unexpected frame"),
    }
}
