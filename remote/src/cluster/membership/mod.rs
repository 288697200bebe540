//! Membership: a cluster that forms by itself from seed addresses.
//!
//! [`Cluster::join`] starts a node like [`Cluster::start`] and runs the SWIM protocol
//! ([foca](https://docs.rs/foca), which implements SWIM with its suspicion and infection
//! extensions and leaves all I/O to its caller) over UDP beside the links:
//!
//! - **Joining**: the node announces itself to its seeds until one answers; from then on,
//!   gossip tells every member of every other (node name, link address, gossip address,
//!   incarnation), piggybacked on SWIM's probes and on periodic gossip.
//! - **Links follow membership**: for each pair of members, the one whose node name sorts
//!   first dials the other's link address ([`Cluster::connect`]'s path), when it learns of
//!   it and again on every probe period while the member is up and not linked. The other
//!   waits to be dialled, so two members never race to link (the transport would keep one
//!   link anyway).
//! - **Failures**: a member that does not answer probes, directly or through others, is
//!   suspected, then declared down ([`MembershipConfig::suspect_after`]). A member declared
//!   down has its link closed ([`Transport::disconnect`](crate::Transport::disconnect)),
//!   which is the transport's `PeerDown`: asks to it fail with `NodeDown`, watchers of its
//!   actors hear `ExitReason::NodeDown`, a snapshot spanning it aborts — the same path as a
//!   link lost. A member wrongly declared down (it was only slow) learns it from the others
//!   and rejoins under a renewed identity; the links come back.
//! - **Incarnations**: a restarted node (same name, new actor system) is a new identity that
//!   replaces the old one in the membership; it is linked again, and its link reports
//!   [`ClusterEvent::Restarted`](crate::ClusterEvent::Restarted) as usual.
//! - **Leaving**: [`Cluster::shutdown`] first leaves the membership (foca's leave, with a
//!   notice that tells the others it left rather than failed), then closes the links.
//!
//! Gossip datagrams are authenticated with the cluster's shared secret (see
//! `datagram.rs`); one that does not verify, or that foca cannot read, is dropped and
//! counted ([`GossipStats`]), with a warning limited per sender address.

mod config;
mod datagram;
mod driver;
mod identity;
mod leave;
mod member;
mod roster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use amber_actors::SystemBuilder;
use tokio::sync::{mpsc, oneshot, watch};

pub use self::config::MembershipConfig;
pub use self::member::{GossipStats, Member, MemberStatus};
use super::{Cluster, ClusterError};
use crate::TransportConfig;

/// How long [`Cluster::shutdown`] waits for the leave to be sent.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the membership driver shares with the cluster's handles.
#[derive(Debug)]
struct View {
    members: watch::Sender<Vec<Member>>,
    /// Joining through seeds and no other member heard of yet: this node does not know
    /// which nodes the cluster has (see [`Handle::joining`]).
    joining: AtomicBool,
    received: AtomicU64,
    sent: AtomicU64,
    rejected: AtomicU64,
}

/// A request to the membership driver.
#[derive(Debug)]
enum Command {
    /// A link came up or went down: the view's `linked` may have changed.
    Links,
    /// Leave the cluster, answer, and stop.
    Leave(oneshot::Sender<()>),
}

/// The cluster's handle on its membership driver.
#[derive(Debug)]
pub(super) struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    view: Arc<View>,
    /// How long a suspected member has to refute before it is declared down.
    suspect_after: std::time::Duration,
}

impl Handle {
    /// A link came up or went down.
    pub(super) fn links_changed(&self) {
        let _ = self.commands.send(Command::Links);
    }

    /// How long a suspected member has to refute the suspicion before it is declared down.
    pub(super) fn suspect_after(&self) -> std::time::Duration {
        self.suspect_after
    }

    /// Whether this node joins through seeds and has heard of no other member yet: its
    /// view of the cluster is empty, not the cluster's (a sharding starts no entity then).
    pub(super) fn joining(&self) -> bool {
        self.view.joining.load(Ordering::Acquire)
    }

    /// Leaves the membership (bounded: [`LEAVE_TIMEOUT`]).
    async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, rx).await;
        }
    }
}

impl Cluster {
    /// Starts a node as [`Cluster::start`] does, and joins the cluster its seeds belong to:
    /// it learns every member through gossip and links to each by itself (see
    /// [`MembershipConfig`] and [`members`](Cluster::members)).
    ///
    /// Returns once the node serves links and gossip, without waiting for the cluster:
    /// watch [`members_watch`](Cluster::members_watch) or [`subscribe`](Cluster::subscribe)
    /// for members coming up. Fails if the gossip socket cannot be bound
    /// ([`ClusterError::Gossip`]) or the configuration is unusable
    /// ([`ClusterError::Membership`]).
    ///
    /// ```
    /// use amber_actors::ActorSystem;
    /// use amber_remote::{Cluster, MembershipConfig, TransportConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), amber_remote::ClusterError> {
    /// let secret = b"a long random shared secret".to_vec();
    /// let any = "127.0.0.1:0".parse().unwrap();
    /// let a = Cluster::join(ActorSystem::builder(), TransportConfig::new("a", any, secret.clone()),
    ///     MembershipConfig::new([])).await?;
    /// let b = Cluster::join(ActorSystem::builder(), TransportConfig::new("b", any, secret),
    ///     MembershipConfig::new([a.local_addr()])).await?;
    /// // b announced itself to a; a dials b's link once it hears of it.
    /// let mut members = b.members_watch();
    /// members.wait_for(|m| m.len() == 2 && m.iter().all(|m| m.linked)).await.unwrap();
    /// b.shutdown().await;
    /// a.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn join(
        builder: SystemBuilder,
        config: TransportConfig,
        membership: MembershipConfig,
    ) -> Result<Cluster, ClusterError> {
        membership.check()?;
        let cluster = Cluster::start(builder, config).await?;
        match cluster.join_membership(membership).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                cluster.shutdown().await;
                Err(e)
            }
        }
    }

    /// Joins the cluster `membership`'s seeds belong to with a node started by
    /// [`Cluster::start`] or [`Cluster::restore`], as [`Cluster::join`] does: for a node
    /// that sets something up before it links to the others (a restored share, waiting for
    /// [`resume`](Cluster::resume); a sharding), or a restore whose nodes find each other
    /// from one seed. The restored node's resume waits for the others as ever, who now link
    /// by themselves.
    ///
    /// Fails with [`ClusterError::Membership`] if the node has a membership already or the
    /// configuration is unusable, and with [`ClusterError::Gossip`] if the gossip socket
    /// cannot be bound; the node keeps running without a membership.
    pub async fn join_membership(&self, membership: MembershipConfig) -> Result<(), ClusterError> {
        membership.check()?;
        if self.shared.membership.get().is_some() {
            return Err(ClusterError::Membership("this node has joined a membership already"));
        }
        let key = datagram::GossipKey::derive(self.shared.transport.secret());
        let handle = driver::start(&self.shared, key, membership).await?;
        if let Err(handle) = self.shared.membership.set(handle) {
            // Joined twice at once: the second driver leaves again.
            handle.leave().await;
            return Err(ClusterError::Membership("this node has joined a membership already"));
        }
        Ok(())
    }

    /// The members of the cluster as this node knows them, sorted by node name, this node
    /// included: those up, and those seen down or leaving (until their node name is seen up
    /// again). Only this node on a cluster started without membership ([`Cluster::start`]).
    pub fn members(&self) -> Vec<Member> {
        match self.shared.membership.get() {
            Some(handle) => handle.view.members.borrow().clone(),
            None => vec![self.shared.myself()],
        }
    }

    /// [`members`](Cluster::members), as a watch that changes with them: wait on it for the
    /// cluster to reach a state (`wait_for`).
    pub fn members_watch(&self) -> watch::Receiver<Vec<Member>> {
        match self.shared.membership.get() {
            Some(handle) => handle.view.members.subscribe(),
            None => watch::channel(vec![self.shared.myself()]).1,
        }
    }

    /// Counters of this node's gossip datagrams (all zero without membership).
    pub fn gossip_stats(&self) -> GossipStats {
        let Some(handle) = self.shared.membership.get() else { return GossipStats::default() };
        let view = &handle.view;
        GossipStats {
            received: view.received.load(Ordering::Relaxed),
            sent: view.sent.load(Ordering::Relaxed),
            rejected: view.rejected.load(Ordering::Relaxed),
        }
    }

    /// Leaves the membership, if this node has one: called first by
    /// [`shutdown`](Cluster::shutdown).
    pub(super) async fn leave(&self) {
        if let Some(handle) = self.shared.membership.get() {
            handle.leave().await;
        }
    }
}

impl super::Shared {
    /// This node as a member, before or without a membership.
    fn myself(&self) -> Member {
        let addr = self.transport.local_addr();
        Member {
            node: self.transport.node().clone(),
            addr,
            gossip: addr,
            system: self.system().id(),
            status: MemberStatus::Alive,
            linked: true,
        }
    }
}
