//! Watches across nodes.
//!
//! An actor on node A watching an actor on node B (`ctx.watch(&remote_ref)`) goes through
//! the ref's route: A records the watch as (watched, watcher) → B and sends
//! [`WatchControl::Watch`]; B registers a stand-in watcher on its actor
//! ([`Host::watch_for`](amber_actors::remote::Host::watch_for)) and records the watch
//! as (watched, watcher) → A. When the actor stops, the stand-in sends
//! [`WatchControl::Down`] with the real [`ExitReason`], and A hands it to the watcher.
//! Watching an id B does not know answers `Down` at once, as locally.
//!
//! When B goes down (link lost, heartbeat timeout, shut down), A tells every watcher of an
//! actor on B: `Down` with [`ExitReason::NodeDown`]. B, seeing A go down, drops the watches
//! it held for A's actors. Both lists are keyed per node, so nothing outlives the link (but
//! the forwarding entries' watches, below).
//!
//! One kind of watch outlives a dropped link: a *forwarding entry*'s. An actor that moved
//! from A to B leaves an entry on A that forwards to B, and that entry watches the actor on
//! B under the actor's own id (watched = watcher, which no other watch has), to learn when
//! it stops there. When the link drops, A keeps that watch instead of firing it (B drops
//! its side, as for any watch): while the link is down, what A forwards is refused as
//! anything sent to B is; when the same incarnation of B introduces itself again, A sends
//! the `Watch` again ([`reconnected`]), and the entry works as before (if the actor stopped
//! meanwhile, B answers `Down` with `Stopped` at once). The entry ends, with `NodeDown`,
//! only once B is gone for good ([`forwards_end`]): B restarted (a new incarnation, which
//! never had the actor), the membership declared B down or saw it leave, or redialling B
//! gave up. From then on this node refuses what is still forwarded to the actor there.
//!
//! `wait_stopped` on a ref to an actor of B is a watch too, whose watcher is not an actor: a
//! synthetic id of A's system (sequence numbers from [`WAIT_SEQ`] up, which no actor gets)
//! standing for one waiting future, which the `Down` completes ([`StopWait`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use amber_actors::remote::RouteError;
use amber_actors::{ActorId, Down, ExitReason};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::control::Control;
use super::{Cluster, Shared};
use crate::{Frame, NodeId};

/// A watch between an actor of one node and an actor of another: (watched, watcher).
type Pair = (ActorId, ActorId);

/// The watch messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WatchControl {
    /// Tell `watcher` (an actor of the sending node) when `watched` (an actor of the
    /// receiving node) stops.
    Watch { watched: ActorId, watcher: ActorId },
    /// Withdraws a `Watch`.
    Unwatch { watched: ActorId, watcher: ActorId },
    /// `watched` (an actor of the sending node) stopped, for `reason`.
    Down { watched: ActorId, watcher: ActorId, reason: ExitReason },
}

/// The watches crossing this node's links, per node.
#[derive(Debug, Default)]
pub(super) struct Watches {
    /// Actors on other nodes watched by local actors, with the node hosting each.
    remote: DashMap<Pair, NodeId>,
    /// Local actors watched by actors on other nodes, with the watcher's node.
    local: DashMap<Pair, NodeId>,
    /// `wait_stopped` calls on refs to actors of other nodes, by synthetic watcher id.
    waits: DashMap<ActorId, oneshot::Sender<ExitReason>>,
    next_wait: AtomicU64,
    /// Actors whose forwarding entry to a node ended because that node is gone for good,
    /// with that node: what is still forwarded to them there is refused (see
    /// [`forwards_end`]).
    gone: DashMap<ActorId, NodeId, foldhash::fast::RandomState>,
    /// Set before the first entry goes into `gone`: until then every send skips the
    /// look-up ([`is_gone`](Self::is_gone) is on the path of every remote message).
    any_gone: AtomicBool,
}

impl Watches {
    /// Whether the forwarding entry of `actor` to `node` ended because `node` is gone for
    /// good (what is still sent to it there is refused).
    pub(super) fn is_gone(&self, actor: ActorId, node: &NodeId) -> bool {
        self.any_gone.load(Ordering::Acquire) && self.gone.get(&actor).is_some_and(|n| *n == *node)
    }
}

/// Whether `pair` is the watch of a forwarding entry: an actor that moved to another node,
/// watched there under its own id (no other watch has its watcher watched).
fn is_forward((watched, watcher): &Pair) -> bool {
    watched == watcher
}

/// The first sequence number of the synthetic watcher ids of stop waits (actors count up
/// from 1 and never get this far).
const WAIT_SEQ: u64 = 1 << 63;

impl Cluster {
    /// How many watches local actors (and `wait_stopped` calls in progress) hold on actors of
    /// other nodes (for diagnostics). The forwarding entries of actors that moved from this
    /// node to another count too, one each, also while their link is down.
    pub fn watching_remote(&self) -> usize {
        self.shared.watches.remote.len()
    }

    /// How many watches actors of other nodes hold on local actors (for diagnostics).
    pub fn watched_by_remote(&self) -> usize {
        self.shared.watches.local.len()
    }
}

fn send(shared: &Arc<Shared>, node: &NodeId, message: WatchControl) -> bool {
    let frame = Frame::Control(Control::Watch(message).encode());
    shared.outbound(node).send(frame).is_ok()
}

/// Registers, on behalf of the local actor `watcher`, a watch of `watched` on `node`.
pub(super) fn watch(
    shared: &Arc<Shared>,
    node: &NodeId,
    watched: ActorId,
    watcher: ActorId,
) -> Result<(), RouteError> {
    let pair = (watched, watcher);
    if is_forward(&pair) {
        return forward(shared, node, watched);
    }
    // Recorded first, then the peer checked: `peer_down` forgets the peer first, then fires
    // the watches it finds, so every watch is either fired by it or refused here.
    shared.watches.remote.insert(pair, node.clone());
    if !shared.is_retired(watched, node)
        && shared.is_up(node)
        && send(shared, node, WatchControl::Watch { watched, watcher })
    {
        return Ok(());
    }
    match shared.watches.remote.remove(&pair) {
        Some(_) => Err(RouteError::NodeDown(node.to_string())),
        None => Ok(()), // `peer_down` got there first and has told the watcher
    }
}

/// Registers the forwarding entry of `actor`, which moved from this node to `node`: its
/// watch there, sent now if the link is up, else kept for when the same incarnation is
/// back ([`reconnected`]) or until `node` is gone for good ([`forwards_end`]). Refused only
/// if the actor is known gone from `node` already.
fn forward(shared: &Arc<Shared>, node: &NodeId, actor: ActorId) -> Result<(), RouteError> {
    let pair = (actor, actor);
    // It left for `node` again (it came back here after an entry to `node` ended): what was
    // refused for the earlier entry does not hold for this one.
    shared.watches.gone.remove_if(&actor, |_, n| n == node);
    // Recorded first, then the peer checked: a `reconnected` or a `forwards_end` that runs
    // meanwhile finds the entry (a `Watch` sent twice replaces itself there).
    shared.watches.remote.insert(pair, node.clone());
    if shared.is_retired(actor, node) {
        shared.watches.remote.remove(&pair);
        return Err(RouteError::NodeDown(node.to_string()));
    }
    if shared.is_up(node) {
        // Lost with the link if it drops now: `reconnected` sends it again.
        let _ = send(shared, node, WatchControl::Watch { watched: actor, watcher: actor });
    }
    Ok(())
}

/// Withdraws the local actor `watcher`'s watch of `watched` on `node`.
pub(super) fn unwatch(shared: &Arc<Shared>, node: &NodeId, watched: ActorId, watcher: ActorId) {
    if shared.watches.remote.remove(&(watched, watcher)).is_some() {
        let _ = send(shared, node, WatchControl::Unwatch { watched, watcher });
    }
}

/// Handles a watch message from `from`.
pub(super) fn on_control(shared: &Arc<Shared>, from: NodeId, message: WatchControl) {
    let host = shared.host();
    match message {
        WatchControl::Watch { watched, watcher } => {
            let pair = (watched, watcher);
            shared.watches.local.insert(pair, from.clone());
            let (weak, node) = (Arc::downgrade(shared), from.clone());
            let registered = host.watch_for(watched, watcher, move |down| {
                let Some(shared) = weak.upgrade() else { return };
                if shared.watches.local.remove_if(&pair, |_, n| *n == node).is_some() {
                    let reason = down.reason;
                    let _ = send(&shared, &node, WatchControl::Down { watched, watcher, reason });
                }
            });
            if let Err(reason) = registered {
                tracing::debug!(node = %from, actor = %watched, %reason, "watched actor is not alive here");
                shared.watches.local.remove(&pair);
                let _ = send(shared, &from, WatchControl::Down { watched, watcher, reason });
            }
        }
        WatchControl::Unwatch { watched, watcher } => {
            if shared.watches.local.remove_if(&(watched, watcher), |_, n| *n == from).is_some() {
                host.unwatch_for(watched, watcher);
            }
        }
        WatchControl::Down { watched, watcher, reason } => {
            // Absent if unwatched meanwhile, or already told that the node went down.
            if shared.watches.remote.remove_if(&(watched, watcher), |_, n| *n == from).is_some() {
                tell(shared, watcher, Down { actor: watched, reason });
            }
        }
    }
}

/// `node` went down: every local watcher of one of its actors is told, and the watches it
/// held on local actors are dropped. The forwarding entries' watches are kept (see the
/// module's documentation).
pub(super) fn peer_down(shared: &Shared, node: &NodeId) {
    let host = shared.host();
    let fired: Vec<Pair> = shared
        .watches
        .remote
        .iter()
        .filter(|e| e.value() == node && !is_forward(e.key()))
        .map(|e| *e.key())
        .collect();
    for pair @ (watched, watcher) in fired {
        if shared.watches.remote.remove_if(&pair, |_, n| n == node).is_some() {
            let reason = ExitReason::NodeDown(node.to_string());
            tell(shared, watcher, Down { actor: watched, reason });
        }
    }
    let dropped: Vec<Pair> =
        shared.watches.local.iter().filter(|e| e.value() == node).map(|e| *e.key()).collect();
    for pair @ (watched, watcher) in dropped {
        if shared.watches.local.remove_if(&pair, |_, n| n == node).is_some() {
            host.unwatch_for(watched, watcher);
        }
    }
}

/// The forwarding entries to `node`, by actor.
fn forwards_to(shared: &Shared, node: &NodeId) -> Vec<ActorId> {
    let remote = &shared.watches.remote;
    remote.iter().filter(|e| e.value() == node && is_forward(e.key())).map(|e| e.key().0).collect()
}

/// `node` is back as the incarnation it was before its link dropped: the forwarding entries
/// to it take their watches there again (it dropped them with the link). An actor that
/// stopped meanwhile is answered `Down` at once, and its entry ends.
pub(super) fn reconnected(shared: &Arc<Shared>, node: &NodeId) {
    for actor in forwards_to(shared, node) {
        let _ = send(shared, node, WatchControl::Watch { watched: actor, watcher: actor });
    }
}

/// `node` is gone for good (it restarted, the membership declared it down or saw it leave,
/// redialling it gave up): the forwarding entries to it end, telling their watchers
/// `NodeDown`, and what is still forwarded to their actors there is refused from now on
/// ([`Watches::is_gone`]), as for the actors of a restarted node.
pub(super) fn forwards_end(shared: &Shared, node: &NodeId) {
    for actor in forwards_to(shared, node) {
        let pair = (actor, actor);
        if shared.watches.remote.remove_if(&pair, |_, n| n == node).is_some() {
            tracing::debug!(%actor, %node, "forwarding to an actor ended: its node is gone");
            // Refused first, then ended: nothing forwarded after the end reaches `node`.
            shared.watches.any_gone.store(true, Ordering::Release);
            shared.watches.gone.insert(actor, node.clone());
            let reason = ExitReason::NodeDown(node.to_string());
            tell(shared, actor, Down { actor, reason });
        }
    }
}

/// Hands a `Down` to the local watcher it is for: a waiting `wait_stopped`, or an actor.
fn tell(shared: &Shared, watcher: ActorId, down: Down) {
    match shared.watches.waits.remove(&watcher) {
        Some((_, wait)) => drop(wait.send(down.reason)),
        None => drop(shared.host().notify_down(watcher, down)),
    }
}

/// Waits until the actor `watched` of `node` stops (see [`StopWait`]).
pub(super) fn stopped(shared: &Arc<Shared>, node: &NodeId, watched: ActorId) -> StopWait {
    let seq = WAIT_SEQ | shared.watches.next_wait.fetch_add(1, Ordering::Relaxed);
    let watcher = ActorId::new(shared.system().id(), seq);
    let (tx, rx) = oneshot::channel();
    shared.watches.waits.insert(watcher, tx);
    let wait = StopWait {
        shared: Arc::downgrade(shared),
        node: node.clone(),
        watched,
        watcher,
        rx,
        done: false,
    };
    if watch(shared, node, watched, watcher).is_err() {
        // The node is down: answer now (the `Drop` forgets the wait).
        if let Some((_, tx)) = shared.watches.waits.remove(&watcher) {
            let _ = tx.send(ExitReason::NodeDown(node.to_string()));
        }
    }
    wait
}

/// One `wait_stopped` on a ref to an actor of another node: a watch under a synthetic
/// watcher id, completed by the actor's `Down` (its real exit reason, or `NodeDown`).
/// Dropped before that, it withdraws the watch.
pub(super) struct StopWait {
    shared: Weak<Shared>,
    node: NodeId,
    watched: ActorId,
    watcher: ActorId,
    rx: oneshot::Receiver<ExitReason>,
    done: bool,
}

impl Future for StopWait {
    type Output = ExitReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason> {
        let reason = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(reason)) => reason,
            // The cluster is gone: so is the link.
            Poll::Ready(Err(_)) => ExitReason::NodeDown(self.node.to_string()),
        };
        self.done = true;
        Poll::Ready(reason)
    }
}

impl Drop for StopWait {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(shared) = self.shared.upgrade()
            && shared.watches.waits.remove(&self.watcher).is_some()
        {
            unwatch(&shared, &self.node, self.watched, self.watcher);
        }
    }
}
