//! The task that drives foca: it owns the gossip socket, foca's timers and its state, and
//! turns what foca decides into links, disconnects, events and the members' view.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use amber_snapshot::SystemId;
use foca::{AccumulatingRuntime, Foca, OwnedNotification, PeriodicParams, PostcardCodec};
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tokio_util::time::DelayQueue;

use super::datagram::{GossipError, GossipKey, OVERHEAD};
use super::identity::Identity;
use super::leave::{Notice, Notices};
use super::roster::{Change, Roster, changes, roster};
use super::{Command, Handle, Member, MemberStatus, MembershipConfig, View};
use crate::NodeId;
use crate::cluster::{Cluster, ClusterError, ClusterEvent, Shared};
use crate::log_limit::LogLimit;
use crate::net::Datagrams;

/// Probe periods a member may stay up and unlinked before the second-named node of the pair
/// dials it too (the first-named dials at once, and again every period while unlinked).
const DIAL_ANYWAY: u32 = 5;

type Swim = Foca<Identity, PostcardCodec, StdRng, Notices>;

/// The largest foca packet, as foca's own default: below a usual MTU.
const MAX_PACKET: usize = 1400;

/// Binds the gossip socket, announces this node to its seeds and starts the driver.
pub(super) async fn start(
    shared: &Arc<Shared>,
    key: GossipKey,
    config: MembershipConfig,
) -> Result<Handle, ClusterError> {
    let local = shared.transport.local_addr();
    let suspect_after = config.suspect_after;
    let link = config.advertise.unwrap_or(local);
    if link.ip().is_unspecified() {
        return Err(ClusterError::Membership(
            "the link listens on an unspecified address: set MembershipConfig::advertise",
        ));
    }
    let socket =
        Datagrams::bind(config.gossip.unwrap_or(local)).await.map_err(ClusterError::Gossip)?;
    let bound = socket.local_addr().map_err(ClusterError::Gossip)?;
    let gossip = config.advertise_gossip.unwrap_or(SocketAddr::new(link.ip(), bound.port()));
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let me = Identity {
        gossip,
        node: shared.transport.node().to_string(),
        link,
        system: shared.system().id(),
        started: u64::try_from(started).unwrap_or(u64::MAX),
        bump: 0,
    };
    let notices = Notices::default();
    let swim = Foca::with_custom_broadcast(
        me.clone(),
        foca_config(&config),
        rand::make_rng::<StdRng>(),
        PostcardCodec,
        notices.clone(),
    );
    let view = Arc::new(View {
        members: watch::Sender::new(vec![shared.myself_at(&me)]),
        joining: AtomicBool::new(true),
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let (commands, rx) = mpsc::unbounded_channel();
    let (dialled, dials) = mpsc::unbounded_channel();
    let mut driver = Driver {
        swim,
        runtime: AccumulatingRuntime::new(),
        timers: DelayQueue::new(),
        socket,
        key,
        me: shared.transport.node().clone(),
        seeds: config.seeds.into_iter().filter(|s| *s != gossip && *s != bound).collect(),
        notices,
        shared: Arc::downgrade(shared),
        view: view.clone(),
        known: Roster::new(),
        dialing: HashSet::new(),
        unlinked: HashMap::new(),
        dialled,
        warnings: LogLimit::new(),
    };
    if driver.seeds.is_empty() {
        // The first node of a cluster: the cluster is what it sees.
        view.joining.store(false, Ordering::Release);
    }
    tracing::info!(node = %driver.me, %gossip, %link, seeds = ?driver.seeds, "joining the cluster");
    driver.announce_to_seeds();
    driver.drain().await;
    tokio::spawn(driver.run(rx, dials, config.probe_period));
    Ok(Handle { commands, view, suspect_after })
}

/// foca's configuration from ours: SWIM with suspicion, periodic gossip and announces, and
/// telling members declared down that they are (so they renew and rejoin).
fn foca_config(config: &MembershipConfig) -> foca::Config {
    let few = |n| NonZeroUsize::new(n).expect("not zero");
    let mut swim = foca::Config::simple();
    swim.probe_period = config.probe_period;
    swim.probe_rtt = config.probe_rtt;
    swim.suspect_to_down_after = config.suspect_after;
    swim.max_packet_size = few(MAX_PACKET);
    swim.max_transmissions = max_transmissions(config);
    swim.notify_down_members = true;
    swim.periodic_gossip =
        Some(PeriodicParams { frequency: config.gossip_interval, num_members: few(3) });
    swim.periodic_announce =
        Some(PeriodicParams { frequency: config.probe_period * 10, num_members: few(1) });
    // Often: two nodes that declared each other down while cut off (each sees the other
    // down, so neither probes nor gossips to it) learn it only from these once the cut
    // heals, and rejoin; until then each counts the other's shards as its own to take
    // over (see the sharding's majority rule).
    swim.periodic_announce_to_down_members =
        Some(PeriodicParams { frequency: config.probe_period, num_members: few(2) });
    swim
}

/// How many times an update (a member suspected, declared down, alive again) is passed on:
/// enough to keep passing it on for as long as a suspicion lasts. foca's default, 10, is
/// spent within a second of periodic gossip: a suspicion raised while a node was cut off
/// was spent on datagrams the cut lost, so once the network healed the suspected node never
/// heard of it, never refuted it, and was declared down a few seconds *after* the heal (in
/// simulation, 37 of 64 runs of a 2 s cut under a 3 s suspicion). Passed on at least once
/// per gossip round (to 3 members) for the whole suspicion, it reaches the suspected node
/// as soon as the cut heals. Updates go out fewest-sent first, within a datagram's size.
fn max_transmissions(config: &MembershipConfig) -> NonZeroU8 {
    let rounds = config.suspect_after.as_millis() / config.gossip_interval.as_millis().max(1);
    let sends = (rounds + 1).saturating_mul(3).clamp(10, u128::from(u8::MAX));
    NonZeroU8::new(u8::try_from(sends).unwrap_or(u8::MAX)).unwrap_or(NonZeroU8::MIN)
}

struct Driver {
    swim: Swim,
    runtime: AccumulatingRuntime<Identity>,
    timers: DelayQueue<foca::Timer<Identity>>,
    socket: Datagrams,
    key: GossipKey,
    me: NodeId,
    seeds: Vec<SocketAddr>,
    notices: Notices,
    shared: Weak<Shared>,
    view: Arc<View>,
    /// What the view last said of each other node: the identity and its status (kept after
    /// foca forgets a node down for long).
    known: Roster,
    /// Nodes being dialled by this one.
    dialing: HashSet<NodeId>,
    /// Members up and not linked, with how many ticks in a row they have been so: after
    /// [`DIAL_ANYWAY`] of them the second-named of a pair dials too.
    unlinked: HashMap<NodeId, u32>,
    /// Dials tell here that they are over.
    dialled: mpsc::UnboundedSender<NodeId>,
    /// Warnings about dropped datagrams, per sender.
    warnings: LogLimit<SocketAddr>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut dials: mpsc::UnboundedReceiver<NodeId>,
        period: std::time::Duration,
    ) {
        let mut buf = vec![0; MAX_PACKET + OVERHEAD + 1];
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let leave = loop {
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.on_datagram(&buf[..len], from),
                    // An earlier send's ICMP error, on some systems: nothing to do.
                    Err(e) => tracing::debug!(error = %e, "gossip socket"),
                },
                Some(expired) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)),
                    if !self.timers.is_empty() =>
                {
                    let timer = expired.into_inner();
                    if let Err(e) = self.swim.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!(error = %e, "membership timer");
                    }
                }
                _ = tick.tick() => self.on_tick(),
                Some(node) = dials.recv() => {
                    self.dialing.remove(&node);
                }
                command = commands.recv() => match command {
                    Some(Command::Links) => {}
                    Some(Command::Leave(done)) => break Some(done),
                    None => break None, // the cluster is gone
                },
            }
            self.drain().await;
        };
        if let Some(done) = leave {
            self.leave().await;
            drop(self); // the socket is closed before `shutdown` returns: its port is free
            let _ = done.send(());
        }
    }

    /// A datagram from `from`: foca reads it only if it verifies.
    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let result = self.key.open(datagram).and_then(|packet| {
            self.swim
                .handle_data(packet, &mut self.runtime)
                .map_err(|e| GossipError::Membership(e.to_string()))
        });
        match result {
            Ok(()) => {
                self.view.received.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.view.rejected.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.warnings.admit(&from, Instant::now()) {
                    tracing::warn!(%from, %error, suppressed, "dropped a gossip datagram");
                }
            }
        }
    }

    /// Once per probe period: announce to the seeds while alone, and dial the members this
    /// node should be linked to and is not.
    fn on_tick(&mut self) {
        if self.swim.num_members() == 0 {
            self.announce_to_seeds();
        }
        let Some(shared) = self.shared.upgrade() else { return };
        let up: Vec<(NodeId, Identity)> = self
            .known
            .iter()
            .filter(|(_, (_, status))| status.is_up())
            .map(|(node, (id, _))| (node.clone(), id.clone()))
            .collect();
        self.unlinked.retain(|node, _| up.iter().any(|(n, _)| n == node));
        for (node, id) in &up {
            let ticks = if shared.transport.is_up(node) {
                self.unlinked.remove(node);
                0
            } else {
                let ticks = self.unlinked.entry(node.clone()).or_default();
                *ticks += 1;
                *ticks
            };
            self.link(&shared, node, id, ticks >= DIAL_ANYWAY);
        }
    }

    fn announce_to_seeds(&mut self) {
        for seed in &self.seeds {
            if let Err(e) = self.swim.announce(Identity::seed(*seed), &mut self.runtime) {
                tracing::debug!(%seed, error = %e, "announce");
            }
        }
    }

    /// Leaves: a notice that this is a leave, then foca's leave, sent before returning.
    async fn leave(&mut self) {
        let me = self.swim.identity();
        let notice = Notice { node: me.node.clone(), system: me.system };
        if let Err(e) = self.swim.add_broadcast(&notice.encode()) {
            tracing::debug!(error = %e, "leave notice");
        }
        if let Err(e) = self.swim.leave_cluster(&mut self.runtime) {
            tracing::debug!(error = %e, "leaving the cluster");
        }
        self.drain().await;
        tracing::info!(node = %self.me, "left the cluster");
    }

    /// Does what foca asked for: sends its datagrams, arms its timers, then brings the view
    /// up to date with its state.
    async fn drain(&mut self) {
        while let Some((to, packet)) = self.runtime.to_send() {
            let datagram = self.key.seal(&packet);
            match self.socket.send_to(&datagram, to.gossip).await {
                Ok(_) => {
                    self.view.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(to = ?to, error = %e, "gossip not sent"),
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timers.insert(timer, after);
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(identity = ?id, "declared down while alive: rejoined")
                }
                OwnedNotification::Idle => tracing::debug!("no other member up"),
                other => tracing::trace!(notification = ?other, "membership"),
            }
        }
        self.refresh();
    }

    /// Recomputes each node's identity and status from foca's state; reports and acts on
    /// what changed.
    fn refresh(&mut self) {
        let Some(shared) = self.shared.upgrade() else { return };
        let notices = &self.notices;
        let now = roster(self.swim.iter_membership_state(), &self.me, |id| notices.left(id));
        let changes = changes(&self.known, &now);
        self.known.extend(now);
        for change in changes {
            match change {
                Change::Up(node, id) => {
                    tracing::info!(%node, addr = %id.link, "member up");
                    let event = ClusterEvent::MemberUp { node: node.clone(), addr: id.link };
                    shared.incarnations.publish(event);
                    self.link(&shared, &node, &id, false);
                }
                Change::Gone(node, status) => {
                    let system = self.known.get(&node).map(|(id, _)| id.system);
                    gone(&shared, node, status, system)
                }
            }
        }
        self.unlink_down(&shared);
        self.publish_view(&shared);
    }

    /// Closes the links to incarnations the membership holds down or gone: this fails what
    /// waits on them (the transport's `PeerDown`, handled as any other). Also closes such a
    /// link again if it comes back (a redial of the link level, or the member dialling this
    /// node): the goodbye stops the redials. A member wrongly declared down rejoins under a
    /// renewed identity, and is linked again then.
    fn unlink_down(&self, shared: &Shared) {
        for (node, (id, status)) in &self.known {
            if !status.is_up()
                && shared.nodes.get(node).is_some_and(|system| *system == id.system)
                && shared.transport.is_up(node)
            {
                let reason = "declared down by the cluster's membership";
                let _ = shared.transport.disconnect(node, reason);
            }
        }
    }

    /// Dials `node` if this node is the one of the pair to dial (the first-named), or
    /// `anyway` (the pair stayed unlinked: the first-named may not reach this one's address
    /// while this one reaches its), and it is not linked nor being dialled. Two dials at once
    /// make one link: the transport keeps one per pair.
    fn link(&mut self, shared: &Arc<Shared>, node: &NodeId, id: &Identity, anyway: bool) {
        if (self.me >= *node && !anyway)
            || *node == self.me
            || shared.transport.is_up(node)
            || self.dialing.contains(node)
        {
            return;
        }
        if self.me > *node {
            tracing::info!(%node, addr = %id.link, "a member that should have linked to this node has not: dialling it");
        }
        self.dialing.insert(node.clone());
        let (cluster, node, addr) = (Cluster { shared: shared.clone() }, node.clone(), id.link);
        let done = self.dialled.clone();
        tokio::spawn(async move {
            match cluster.connect(addr).await {
                Ok(found) if found == node => tracing::debug!(%node, %addr, "linked to a member"),
                Ok(found) => {
                    tracing::warn!(%node, %addr, %found, "a member's link address is another node's")
                }
                Err(e) => tracing::debug!(%node, %addr, error = %e, "could not link to a member"),
            }
            let _ = done.send(node);
        });
    }

    /// The members' view: this node, then every other by name, with whether it is linked.
    fn publish_view(&self, shared: &Shared) {
        let me = self.swim.identity();
        let mut members = vec![shared.myself_at(me)];
        members.extend(self.known.iter().map(|(node, (id, status))| Member {
            node: node.clone(),
            addr: id.link,
            gossip: id.gossip,
            system: id.system,
            status: *status,
            linked: shared.nodes.get(node).is_some_and(|s| *s == id.system)
                && shared.transport.is_up(node),
        }));
        members.sort_by(|a, b| a.node.cmp(&b.node));
        if members.len() > 1 {
            self.view.joining.store(false, Ordering::Release);
        }
        self.view.members.send_if_modified(|view| {
            let changed = *view != members;
            *view = members;
            changed
        });
    }
}

impl Shared {
    /// This node as the member `me`.
    fn myself_at(&self, me: &Identity) -> Member {
        Member {
            node: self.transport.node().clone(),
            addr: me.link,
            gossip: me.gossip,
            system: me.system,
            status: MemberStatus::Alive,
            linked: true,
        }
    }
}

/// `node`, up until now, is down or left (as the incarnation `system`): the forwarding
/// entries to it end (unless it is linked as another incarnation, whose entries are not its
/// own), and it is reported (its link is closed by [`Driver::unlink_down`]).
fn gone(shared: &Shared, node: NodeId, status: MemberStatus, system: Option<SystemId>) {
    let linked = shared.nodes.get(&node).map(|s| *s);
    if linked.is_none() || linked == system {
        crate::cluster::watch::forwards_end(shared, &node);
    }
    let event = if status == MemberStatus::Left {
        tracing::info!(%node, "member left");
        ClusterEvent::MemberLeft { node }
    } else {
        tracing::info!(%node, "member declared down");
        ClusterEvent::MemberDown { node }
    };
    shared.incarnations.publish(event);
}
