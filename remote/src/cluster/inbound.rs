//! The transport's events, handled in place on the links' own tasks
//! ([`Transport::bind_with_handler`]): a frame is handled by the task that read it, as soon
//! as it is decoded, instead of waiting in a queue for one task that serves every link.
//!
//! Under load that task waited for its turn behind every runnable actor, and so did the
//! link's reader after it, once the queue was full: everything a link carried, snapshot
//! messages included, waited out about two sweeps of the run queue per queueful of frames,
//! and the backlog stood in the sockets' buffers.
//!
//! The transport calls the handler one event at a time per link, in the link's order, and
//! a peer's next link only after its previous link's `PeerDown` was handled: what the
//! cluster relied on from a single serving task, per peer, holds. Events of different
//! peers' links are handled concurrently, as actors on different workers send and stop
//! concurrently: each handler takes the locks it needs.

use std::sync::{Mutex, OnceLock, Weak};

use tokio::runtime::Handle;

use super::{Shared, on_event};
use crate::TransportEvent;
use crate::transport::lock;

/// Where the transport's handler sends events: the cluster, once it is built. Events that
/// come before (a peer dialling in while the cluster starts) wait here, in order, and are
/// handled when it is set, before any later one.
///
/// Events are handled in the context of the cluster's runtime (whatever they spawn, their
/// timers, run there), also when the transport runs on a thread of its own.
#[derive(Default)]
pub(super) struct Inbound {
    cluster: OnceLock<Target>,
    early: Mutex<Vec<TransportEvent>>,
}

/// The cluster, and the runtime it runs on if the transport's tasks run on another.
struct Target {
    cluster: Weak<Shared>,
    /// `None` when the transport's tasks run on the cluster's runtime (they were spawned
    /// from it as the cluster bound the transport): its handler already runs in it, no
    /// need to enter it for every frame.
    runtime: Option<Handle>,
}

impl Inbound {
    /// Handles `event`, or keeps it until the cluster is set.
    pub(super) fn handle(&self, event: TransportEvent) {
        if let Some(cluster) = self.cluster.get() {
            return deliver(cluster, event);
        }
        let mut early = lock(&self.early);
        // Set while this waited for the lock: the early events are handled already.
        match self.cluster.get() {
            Some(cluster) => {
                drop(early);
                deliver(cluster, event);
            }
            None => early.push(event),
        }
    }

    /// Sets the cluster and hands it the events that came before, in order. Events that
    /// arrive meanwhile wait for the lock, then see the cluster set: none overtakes an
    /// early one.
    /// Must be called on the cluster's runtime, the one that bound the transport unless
    /// the transport has a runtime of its own (`own_runtime`).
    pub(super) fn attach(&self, cluster: Weak<Shared>, own_runtime: bool) {
        let target = Target { cluster, runtime: own_runtime.then(Handle::current) };
        let mut early = lock(&self.early);
        for event in early.drain(..) {
            deliver(&target, event);
        }
        let _ = self.cluster.set(target);
    }
}

fn deliver(target: &Target, event: TransportEvent) {
    // Entered first, left last: the cluster, if this is its last handle, drops inside it.
    let _context = target.runtime.as_ref().map(Handle::enter);
    if let Some(shared) = target.cluster.upgrade() {
        on_event(&shared, event);
    }
}
