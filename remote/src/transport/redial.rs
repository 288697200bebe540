//! Redialling a link that dropped: the policy and the task that follows it.
//!
//! Only the node that dialled a link redials it (the acceptor waits), so two nodes never race
//! to make two links after a drop; and only after a drop that nobody asked for: a timeout, a
//! closed or reset connection, a malformed frame. A peer's `Goodbye` (it shut down or
//! disconnected on purpose), this node's own [`disconnect`](crate::Transport::disconnect) or
//! shutdown, and a link replaced by a newer one are not redialled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Shared, lock};
use crate::{DownReason, NodeId, TransportEvent};

/// How a node redials a link it dialled after the link drops
/// ([`TransportConfig::reconnect`](crate::TransportConfig::reconnect)).
///
/// The first attempt waits about [`initial`](Self::initial); each failed attempt doubles the
/// wait, up to [`max`](Self::max). Every wait is drawn at random between half of it and all
/// of it (jitter), so nodes that lost the same peer do not dial it in step. After
/// [`attempts`](Self::attempts) failed attempts the node gives up
/// ([`TransportEvent::GaveUp`]); `None` (the default) tries until the peer is back or the
/// transport shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// The wait before the first attempt. Default 100 ms.
    pub initial: Duration,
    /// The longest wait between two attempts. Default 5 s.
    pub max: Duration,
    /// How many attempts before giving up; `None`: forever. Default `None`.
    pub attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// A policy waiting `initial` first, at most `max` between attempts, forever.
    pub fn new(initial: Duration, max: Duration) -> ReconnectPolicy {
        ReconnectPolicy { initial, max, attempts: None }
    }

    /// Gives up after `attempts` failed attempts.
    #[must_use]
    pub fn with_attempts(mut self, attempts: u32) -> ReconnectPolicy {
        self.attempts = Some(attempts);
        self
    }

    /// The wait before attempt `n` (0-based), before jitter.
    fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Whether the policy is usable: a wait of zero would spin, and `max` below `initial`
    /// is a mistake.
    pub(crate) fn is_valid(&self) -> bool {
        !self.initial.is_zero() && self.max >= self.initial && self.attempts != Some(0)
    }
}

/// `delay` with equal jitter: between half of it and all of it.
fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    // Without randomness the wait is just longer (no jitter); nothing else depends on it.
    let random = getrandom::u64().unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

/// Whether a link that went down for `reason` is redialled by the node that dialled it.
pub(crate) fn redials(reason: &DownReason) -> bool {
    match reason {
        DownReason::Timeout | DownReason::Closed | DownReason::Frame(_) | DownReason::Io(_) => true,
        DownReason::Goodbye(_)
        | DownReason::Replaced
        | DownReason::Disconnected(_)
        | DownReason::Shutdown => false,
    }
}

impl Shared {
    /// Starts redialling `node` at `addr`, unless the transport is shutting down, redialling
    /// is off, or that node is being redialled already.
    pub(crate) fn start_redial(self: &Arc<Shared>, node: NodeId, addr: SocketAddr) {
        let Some(policy) = self.config.reconnect else { return };
        if self.shutdown.is_cancelled() || !lock(&self.redialling).insert(node.clone()) {
            return;
        }
        tracing::info!(peer = %node, %addr, "link lost; redialling");
        let shared = self.clone();
        self.spawn(async move {
            let _done = Redialling { shared: shared.clone(), node: node.clone() };
            shared.redial(node, addr, policy).await;
        });
    }

    /// The redial loop: waits, dials, until the peer is linked again (by this dial or any
    /// other), the policy gives up, or the transport shuts down.
    async fn redial(self: &Arc<Shared>, node: NodeId, addr: SocketAddr, policy: ReconnectPolicy) {
        let mut attempt = 0;
        loop {
            let wait = jittered(policy.delay(attempt));
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if lock(&self.peers).is_up(&node) {
                tracing::debug!(peer = %node, "linked again by another dial; redial ends");
                return;
            }
            attempt += 1;
            match self.dial_addr(addr).await {
                Ok(found) if found == node => {
                    tracing::info!(peer = %node, %addr, attempt, "link redialled");
                    return;
                }
                Ok(found) => {
                    // That address is another node's now: keep its link, stop looking there.
                    tracing::warn!(
                        peer = %node, %addr, found = %found,
                        "redialled address answers as another node; redial ends"
                    );
                    return;
                }
                Err(crate::TransportError::Shutdown) => return,
                Err(error) => {
                    tracing::debug!(peer = %node, %addr, attempt, %error, "redial failed")
                }
            }
            if policy.attempts.is_some_and(|max| attempt >= max) {
                tracing::warn!(peer = %node, %addr, attempts = attempt, "redial gave up");
                if let Ok(events) = self.events() {
                    let gave_up = TransportEvent::GaveUp { node, addr, attempts: attempt };
                    events.send(gave_up).await;
                }
                return;
            }
        }
    }
}

/// A node being redialled, forgotten when its redial task ends.
struct Redialling {
    shared: Arc<Shared>,
    node: NodeId,
}

impl Drop for Redialling {
    fn drop(&mut self) {
        lock(&self.shared.redialling).remove(&self.node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max_and_jitter_stays_within_half() {
        let ms = Duration::from_millis;
        let policy = ReconnectPolicy::new(ms(100), ms(1000));
        let delays: Vec<_> = (0..6).map(|n| policy.delay(n)).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(policy.delay(u32::MAX), ms(1000), "no overflow");
        for _ in 0..100 {
            let wait = jittered(ms(400));
            assert!(wait >= ms(200) && wait <= ms(400), "{wait:?}");
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn only_unasked_drops_are_redialled_and_bad_policies_are_refused() {
        assert!(redials(&DownReason::Timeout));
        assert!(redials(&DownReason::Closed));
        assert!(!redials(&DownReason::Goodbye("shutdown".into())));
        assert!(!redials(&DownReason::Disconnected("bye".into())));
        assert!(!redials(&DownReason::Replaced));
        assert!(!redials(&DownReason::Shutdown));
        let ms = Duration::from_millis;
        assert!(ReconnectPolicy::default().is_valid());
        assert!(!ReconnectPolicy::new(ms(0), ms(10)).is_valid());
        assert!(!ReconnectPolicy::new(ms(20), ms(10)).is_valid());
        assert!(!ReconnectPolicy::new(ms(10), ms(10)).with_attempts(0).is_valid());
    }
}
