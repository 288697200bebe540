//! Watches that cross nodes: a local actor watched on behalf of an actor on another node,
//! and a `Down` from another node handed to the local watcher.
//!
//! The runtime keeps no per-node state: the remoting layer registers a watch for each
//! remote watcher with [`Host::watch_for`] (a stand-in watcher whose only job is to
//! run the given callback with the `Down`), withdraws it with
//! [`Host::unwatch_for`], and hands the `Down`s it receives to local watchers with
//! [`Host::notify_down`].

use std::sync::Arc;

use super::Host;
use crate::mailbox::{Watch, Watcher};
use crate::signal::Signal;
use crate::{ActorId, Down, ExitReason};

impl Host {
    /// Watches the local actor `watched` on behalf of `watcher`, an actor on another node:
    /// when `watched` stops, `notify` runs once with the [`Down`] (on the task of the
    /// stopping actor; it must not block).
    ///
    /// If `watched` has already stopped or never lived here, returns the reason
    /// ([`ExitReason::Stopped`] when it is no longer known), so the caller can tell the
    /// watcher at once. Watching again for the same pair replaces the earlier watch.
    pub fn watch_for(
        &self,
        watched: ActorId,
        watcher: ActorId,
        notify: impl Fn(Down) + Send + Sync + 'static,
    ) -> Result<(), ExitReason> {
        let mailbox = self.system().local_or_moved(watched).ok_or(ExitReason::Stopped)?;
        mailbox.remove_watcher(watcher);
        let stand_in: Watcher = Arc::new(RemoteWatcher { watcher, notify: Box::new(notify) });
        mailbox.add_watcher(stand_in).map_err(|(_, reason)| reason)
    }

    /// Withdraws a [`watch_for`](Self::watch_for); nothing if there is none.
    pub fn unwatch_for(&self, watched: ActorId, watcher: ActorId) {
        if let Some(mailbox) = self.system().local_or_moved(watched) {
            mailbox.remove_watcher(watcher);
        }
    }

    /// Tells the local actor `watcher` that an actor it watches stopped (a `Down` that came
    /// from another node, or the node itself going down). `false` if `watcher` no longer
    /// lives here. A watcher that has stopped watching `down.actor` ignores it.
    ///
    /// A `Down` of an actor that moved to another node, addressed to that actor itself, is
    /// how its forwarding entry here learns that it stopped there (or that the remoting
    /// layer gave that node up for good: it restarted, or was declared down): the entry
    /// ends and tells the watchers it kept. A dropped link alone does not end it.
    pub fn notify_down(&self, watcher: ActorId, down: Down) -> bool {
        if down.actor == watcher
            && let Some((_, moved)) = self.system().moved().remove(&watcher)
        {
            // Every entry this node kept for it (it may have left more than once) ends.
            let mut ended = false;
            for entry in moved {
                ended |= entry.end_moved(down.reason.clone());
            }
            return ended;
        }
        self.system()
            .registry()
            .get(watcher)
            .is_some_and(|mailbox| mailbox.signal(Signal::Down(down)).is_ok())
    }
}

/// Stands in, among a local actor's watchers, for an actor on another node.
struct RemoteWatcher {
    watcher: ActorId,
    notify: Box<dyn Fn(Down) + Send + Sync>,
}

impl Watch for RemoteWatcher {
    fn id(&self) -> ActorId {
        self.watcher
    }

    fn down(&self, down: Down) {
        (self.notify)(down);
    }
}
