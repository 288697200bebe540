//! Shutting down with a deadline: actors still running when it passes are aborted.

use std::time::Duration;

use crate::any_mailbox::AnyMailbox;
use crate::{ActorId, ActorSystem, Down, ExitReason};

/// What [`ActorSystem::shutdown_within`] had to abort.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a shutdown that aborted actors says which"]
pub struct ShutdownReport {
    /// The actors still running when the deadline passed (a handler or `on_stop` that did
    /// not return, or an actor waiting on one), by id and stable type name, in id order.
    /// Their tasks were aborted.
    pub aborted: Vec<(ActorId, &'static str)>,
}

impl ShutdownReport {
    /// Whether every actor stopped in time.
    pub fn is_clean(&self) -> bool {
        self.aborted.is_empty()
    }
}

impl ActorSystem {
    /// Shuts the system down as [`shutdown`](Self::shutdown) does, but gives up waiting
    /// after `deadline`: actors still running then are aborted (their tasks cancelled at
    /// their next `.await`, without `on_stop`; watchers are told
    /// [`ExitReason::Aborted`]) and listed in the report.
    ///
    /// A handler that never returns keeps [`shutdown`](Self::shutdown) waiting forever, and
    /// its parent with it; this is the way out. (A handler that never yields, spinning on a
    /// worker thread, cannot be cancelled by anyone: its thread stays busy.)
    pub async fn shutdown_within(&self, deadline: Duration) -> ShutdownReport {
        self.inner.shutting_down.store(true, std::sync::atomic::Ordering::Release);
        self.inner.asks.stop();
        if tokio::time::timeout(deadline, self.stop_all()).await.is_ok() {
            return ShutdownReport::default();
        }
        let mut live: Vec<(ActorId, &'static str)> = Vec::new();
        self.inner.registry.for_each(|m| live.push((m.id(), m.type_name())));
        live.sort_unstable_by_key(|(id, _)| *id);
        for (id, _) in &live {
            if let Some(mailbox) = self.inner.registry.get(*id) {
                mailbox.abort_task();
            }
        }
        for (id, _) in &live {
            if let Some(mailbox) = self.inner.registry.get(*id) {
                self.reap(&*mailbox);
            }
        }
        tracing::warn!(
            system = %self.inner.id,
            aborted = live.len(),
            ?deadline,
            "shutdown deadline passed; actors still running were aborted"
        );
        ShutdownReport { aborted: live }
    }

    /// Does for an aborted actor what its own stop would have: leaves the registry, tells
    /// its watchers, and leaves any running snapshot.
    fn reap(&self, mailbox: &dyn AnyMailbox) {
        let id = mailbox.id();
        let (watchers, cut) = mailbox.reap(ExitReason::Aborted);
        self.unregister(id, mailbox.name(), true);
        for watcher in watchers {
            watcher.down(Down { actor: id, reason: ExitReason::Aborted });
        }
        let effects = self.engine().stopped(id, cut.epoch(), cut.depth());
        self.run_effects(effects);
    }
}
