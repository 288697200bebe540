//! Per-peer limits on warnings, so that a peer that keeps misbehaving cannot flood the log.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Warnings logged per peer in one [`WARN_INTERVAL`]; later ones in that interval are counted
/// and reported on the peer's next logged line.
pub(crate) const WARN_BURST: u32 = 5;

/// The interval [`WARN_BURST`] counts over.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Peers tracked at once; past that, expired peers are forgotten, and warnings about new
/// peers are not logged while every tracked one is still in its interval.
const MAX_PEERS: usize = 4096;

/// Per-peer warning budgets: the first [`WARN_BURST`] warnings about a peer in each
/// [`WARN_INTERVAL`] are logged, the rest counted; the first warning logged in a later
/// interval carries that count (`suppressed`), so a steady flood costs one burst and one
/// count per interval instead of a line per event.
#[derive(Debug)]
pub(crate) struct LogLimit<K> {
    peers: HashMap<K, Budget>,
}

#[derive(Debug)]
struct Budget {
    since: Instant,
    logged: u32,
    suppressed: u64,
}

impl<K: Eq + Hash + Clone> LogLimit<K> {
    /// No peer has warned yet.
    pub(crate) fn new() -> LogLimit<K> {
        LogLimit { peers: HashMap::new() }
    }

    /// Whether to log a warning about `peer` now: `Some(n)` logs it, `n` being the warnings
    /// about that peer not logged since its last logged one; `None` stays quiet (counted).
    pub(crate) fn admit(&mut self, peer: &K, now: Instant) -> Option<u64> {
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_PEERS {
            self.peers.retain(|_, budget| now.duration_since(budget.since) < WARN_INTERVAL);
            if self.peers.len() >= MAX_PEERS {
                return None;
            }
        }
        let budget = self.peers.entry(peer.clone()).or_insert(Budget {
            since: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(budget.since) >= WARN_INTERVAL {
            let suppressed = std::mem::take(&mut budget.suppressed);
            *budget = Budget { since: now, logged: 1, suppressed: 0 };
            return Some(suppressed);
        }
        if budget.logged < WARN_BURST {
            budget.logged += 1;
            return Some(0);
        }
        budget.suppressed += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_interval_then_one_line_with_the_count() {
        let mut limit = LogLimit::new();
        let start = Instant::now();
        let logged = (0..100).filter(|_| limit.admit(&"junk", start).is_some()).count();
        assert_eq!(logged, WARN_BURST as usize);
        // Another peer has its own budget.
        assert_eq!(limit.admit(&"other", start), Some(0));
        // The next interval's first line reports what was held back.
        let later = start + WARN_INTERVAL;
        assert_eq!(limit.admit(&"junk", later), Some(100 - u64::from(WARN_BURST)));
        assert_eq!(limit.admit(&"junk", later), Some(0));
    }

    #[test]
    fn the_table_of_peers_is_bounded() {
        let mut limit = LogLimit::new();
        let start = Instant::now();
        for peer in 0..MAX_PEERS {
            assert_eq!(limit.admit(&peer, start), Some(0));
        }
        assert_eq!(limit.admit(&MAX_PEERS, start), None, "full: a new peer is not tracked");
        assert_eq!(limit.peers.len(), MAX_PEERS);
        // Once the others' intervals are over, they make room.
        assert_eq!(limit.admit(&MAX_PEERS, start + WARN_INTERVAL), Some(0));
        assert_eq!(limit.peers.len(), 1);
    }
}
