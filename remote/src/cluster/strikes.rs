//! Peers that keep sending what this node cannot read: their warnings are limited per peer,
//! and a linked peer that sends too many malformed control messages is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::NodeId;
use crate::log_limit::LogLimit;

/// Malformed control messages a linked peer may send within [`MALFORMED_WINDOW`]; the one
/// that reaches it drops the link.
pub(crate) const MAX_MALFORMED: u32 = 16;

/// The window [`MAX_MALFORMED`] counts over.
pub(crate) const MALFORMED_WINDOW: Duration = Duration::from_secs(10);

/// Per-peer warning budgets and malformed-message counts.
#[derive(Debug)]
pub(crate) struct Strikes {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    warnings: LogLimit<NodeId>,
    malformed: HashMap<NodeId, Count>,
}

#[derive(Debug)]
struct Count {
    since: Instant,
    count: u32,
    dropped: bool,
}

/// What to do about one malformed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strike {
    /// Log it; `suppressed` warnings about the peer were held back since the last one logged.
    Warn {
        /// Warnings not logged since the last one that was.
        suppressed: u64,
    },
    /// Stay quiet: the peer's warning budget is spent, or it is being dropped already.
    Quiet,
    /// This one reached [`MAX_MALFORMED`]: drop the peer (logged once).
    Drop,
}

impl Default for Strikes {
    fn default() -> Strikes {
        let inner = Inner { warnings: LogLimit::new(), malformed: HashMap::new() };
        Strikes { inner: Mutex::new(inner) }
    }
}

impl Strikes {
    /// Counts a malformed message from `peer` at `now`.
    pub(crate) fn malformed(&self, peer: &NodeId, now: Instant) -> Strike {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = inner.malformed.entry(peer.clone()).or_insert(Count {
            since: now,
            count: 0,
            dropped: false,
        });
        if count.dropped {
            return Strike::Quiet;
        }
        if now.duration_since(count.since) >= MALFORMED_WINDOW {
            *count = Count { since: now, count: 0, dropped: false };
        }
        count.count += 1;
        if count.count >= MAX_MALFORMED {
            count.dropped = true;
            return Strike::Drop;
        }
        match inner.warnings.admit(peer, now) {
            Some(suppressed) => Strike::Warn { suppressed },
            None => Strike::Quiet,
        }
    }

    /// Whether to log another warning caused by `peer` now (see
    /// [`LogLimit::admit`](crate::log_limit::LogLimit::admit)).
    pub(crate) fn warn(&self, peer: &NodeId, now: Instant) -> Option<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.warnings.admit(peer, now)
    }

    /// The link to `peer` is down: a new link starts with a clean count (its warnings stay
    /// limited).
    pub(crate) fn peer_down(&self, peer: &NodeId) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.malformed.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_limit::WARN_BURST;

    #[test]
    fn a_few_warnings_then_one_drop_then_quiet() {
        let strikes = Strikes::default();
        let (peer, now) = (NodeId::from("junk"), Instant::now());
        let verdicts: Vec<_> = (0..100).map(|_| strikes.malformed(&peer, now)).collect();
        let warned = verdicts.iter().filter(|v| matches!(v, Strike::Warn { .. })).count();
        assert_eq!(warned, WARN_BURST as usize);
        assert_eq!(verdicts[MAX_MALFORMED as usize - 1], Strike::Drop);
        assert_eq!(verdicts.iter().filter(|v| **v == Strike::Drop).count(), 1);
        // A new link starts a new count.
        strikes.peer_down(&peer);
        assert_eq!(strikes.malformed(&peer, now), Strike::Quiet, "warnings stay limited");
    }

    #[test]
    fn a_slow_trickle_is_not_dropped() {
        let strikes = Strikes::default();
        let (peer, start) = (NodeId::from("old"), Instant::now());
        for n in 0..(3 * MAX_MALFORMED) {
            let now = start + MALFORMED_WINDOW * n / (MAX_MALFORMED / 2);
            assert_ne!(strikes.malformed(&peer, now), Strike::Drop, "message {n}");
        }
    }
}
