//! Freeing asks that nobody waits for any more.
//!
//! An ask to an actor on another node is kept, until its reply arrives, in the cluster's
//! table of pending asks. If the asker gives up first (its ask timed out, or its future was
//! dropped) and the peer stays up but never replies, nothing else would ever remove the
//! entry. A sweep looks at the table every [`ASK_SWEEP`] and drops the entries whose asker
//! is gone ([`ReplyHandler::is_abandoned`](amber_actors::remote::ReplyHandler::is_abandoned));
//! a reply that arrives later finds no entry and is dropped.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::{Cluster, Shared};

/// How often abandoned asks are looked for.
pub(super) const ASK_SWEEP: Duration = Duration::from_secs(1);

/// Sweeps the asks of `shared` until the cluster is dropped.
pub(super) async fn sweep(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(ASK_SWEEP);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        let freed = shared.asks.retain(|handler| !handler.is_abandoned());
        if freed > 0 {
            tracing::debug!(freed, "dropped asks whose askers gave up");
        }
    }
}

impl Cluster {
    /// The asks sent from this node to actors on other nodes that still await their reply
    /// (for diagnostics). Asks whose askers gave up (timed out) are freed within about a
    /// second.
    pub fn pending_asks(&self) -> usize {
        self.shared.asks.len()
    }
}
