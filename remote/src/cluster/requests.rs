//! Requests sent to other nodes that await their answer: asks, name lookups, spawns,
//! migrations, entity requests. Each kind keeps its waiters in a [`Requests`] table, keyed
//! by a request id that the answer names; every table of a node takes its ids from one
//! counter ([`RequestIds`]), so an id names one request of one kind. Each entry remembers
//! the node it awaits, so that when that node goes down one sweep
//! ([`Requests::peer_down`], called for every table from `Shared::peer_down`) hands back
//! every waiter on it, to be failed with its kind's node-down error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::oneshot;

use super::ClusterError;
use crate::NodeId;

/// The request ids of one node, shared by all its [`Requests`] tables: unique across them.
#[derive(Debug, Clone)]
pub(super) struct RequestIds(Arc<AtomicU64>);

impl RequestIds {
    /// A counter whose first id is 1.
    pub(super) fn new() -> RequestIds {
        RequestIds(Arc::new(AtomicU64::new(1)))
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Requests of one kind sent to other nodes, awaiting their answer: per request id, the
/// node asked and what the answer goes to (`T`: a reply handler, or the sender of a
/// oneshot channel whose receiver the requester waits on).
#[derive(Debug)]
pub(super) struct Requests<T> {
    ids: RequestIds,
    pending: DashMap<u64, (NodeId, T), foldhash::fast::RandomState>,
}

impl<T> Requests<T> {
    /// An empty table whose ids come from `ids`.
    pub(super) fn new(ids: &RequestIds) -> Requests<T> {
        Requests { ids: ids.clone(), pending: DashMap::default() }
    }

    /// Registers a request to `node` whose answer goes to `waiter`; returns its new id.
    pub(super) fn insert(&self, node: &NodeId, waiter: T) -> u64 {
        let id = self.ids.next();
        self.pending.insert(id, (node.clone(), waiter));
        id
    }

    /// The waiter of request `id`, removed from the table (`None` if it is not there: never
    /// sent, answered already, timed out or failed).
    pub(super) fn take(&self, id: u64) -> Option<T> {
        self.pending.remove(&id).map(|(_, (_, waiter))| waiter)
    }

    /// Like [`take`](Self::take), but only if the request was sent to `node`: an answer
    /// counts only from the node asked.
    pub(super) fn take_from(&self, id: u64, node: &NodeId) -> Option<T> {
        self.pending.remove_if(&id, |_, (n, _)| n == node).map(|(_, (_, waiter))| waiter)
    }

    /// Forgets request `id` (sending it failed, or its requester gave up), dropping its
    /// waiter.
    pub(super) fn remove(&self, id: u64) {
        self.pending.remove(&id);
    }

    /// Keeps only the requests whose waiter `keep` accepts; returns how many it dropped.
    pub(super) fn retain(&self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let before = self.pending.len();
        self.pending.retain(|_, (_, waiter)| keep(waiter));
        before.saturating_sub(self.pending.len())
    }

    /// How many requests await their answer.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Removes every request awaiting `node` and returns their waiters, in the order the
    /// requests were registered, for the caller to fail (outside the table's locks).
    pub(super) fn peer_down(&self, node: &NodeId) -> Vec<T> {
        let mut ids: Vec<u64> =
            self.pending.iter().filter(|e| e.value().0 == *node).map(|e| *e.key()).collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.take_from(id, node)).collect()
    }
}

impl<A> Requests<oneshot::Sender<A>> {
    /// Registers a request to `node` answered through a channel: its id and the receiver
    /// of its answer (to pass to [`answer`](Self::answer)).
    pub(super) fn open(&self, node: &NodeId) -> (u64, oneshot::Receiver<A>) {
        let (tx, rx) = oneshot::channel();
        (self.insert(node, tx), rx)
    }

    /// Waits at most `timeout` for the answer to request `id` of `node`:
    /// [`ClusterError::NodeDown`] if the request was failed (`node` went down: its sender
    /// was dropped), [`ClusterError::Timeout`] if no answer came in time (the request is
    /// forgotten; a late answer finds no entry).
    pub(super) async fn answer(
        &self,
        node: &NodeId,
        id: u64,
        answer: oneshot::Receiver<A>,
        timeout: Duration,
    ) -> Result<A, ClusterError> {
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ClusterError::NodeDown(node.clone())),
            Err(_) => {
                self.remove(id);
                Err(ClusterError::Timeout(node.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeId {
        NodeId::from(name)
    }

    #[test]
    fn a_request_is_taken_once() {
        let requests = Requests::new(&RequestIds::new());
        let id = requests.insert(&node("b"), "waiter");
        assert_eq!(requests.len(), 1);
        assert_eq!(requests.take(id), Some("waiter"));
        assert_eq!(requests.take(id), None);
        assert_eq!(requests.len(), 0);
    }

    #[test]
    fn an_answer_counts_only_from_the_node_asked() {
        let requests = Requests::new(&RequestIds::new());
        let id = requests.insert(&node("b"), 7);
        assert_eq!(requests.take_from(id, &node("c")), None);
        assert_eq!(requests.take_from(id, &node("b")), Some(7));
        assert_eq!(requests.take_from(id, &node("b")), None);
    }

    #[test]
    fn a_removed_request_is_gone() {
        let requests = Requests::new(&RequestIds::new());
        let id = requests.insert(&node("b"), ());
        requests.remove(id);
        assert_eq!(requests.take(id), None);
        assert_eq!(requests.len(), 0);
    }

    #[test]
    fn ids_are_unique_across_kinds() {
        let ids = RequestIds::new();
        let asks = Requests::new(&ids);
        let lookups = Requests::new(&ids);
        let mut seen = std::collections::HashSet::new();
        for i in 0..100 {
            assert!(seen.insert(asks.insert(&node("b"), i)));
            assert!(seen.insert(lookups.insert(&node("b"), i.to_string())));
        }
        assert!(!seen.contains(&0), "ids start at 1");
        // An id of one table is no request of another.
        let ask = asks.insert(&node("b"), 1000);
        assert_eq!(lookups.take(ask), None);
        assert_eq!(asks.take(ask), Some(1000));
    }

    #[test]
    fn a_peer_down_sweeps_its_requests_only_in_the_order_registered() {
        let requests = Requests::new(&RequestIds::new());
        let mut on_b = Vec::new();
        let mut on_c = Vec::new();
        for i in 0..50 {
            on_b.push((requests.insert(&node("b"), i), i));
            on_c.push((requests.insert(&node("c"), 100 + i), 100 + i));
        }
        let swept = requests.peer_down(&node("b"));
        assert_eq!(swept, (0..50).collect::<Vec<_>>());
        assert_eq!(requests.len(), on_c.len());
        for (id, _) in &on_b {
            assert_eq!(requests.take(*id), None);
        }
        assert!(requests.peer_down(&node("b")).is_empty());
        for (id, waiter) in on_c {
            assert_eq!(requests.take(id), Some(waiter));
        }
        assert!(requests.peer_down(&node("c")).is_empty());
    }

    #[test]
    fn retain_drops_the_waiters_refused() {
        let requests = Requests::new(&RequestIds::new());
        let ids: Vec<u64> = (0..10).map(|i| requests.insert(&node("b"), i)).collect();
        assert_eq!(requests.retain(|i| i % 2 == 0), 5);
        assert_eq!(requests.len(), 5);
        for (i, id) in ids.into_iter().enumerate() {
            assert_eq!(requests.take(id), (i % 2 == 0).then_some(i));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_a_timeout_and_a_node_down() {
        let requests = Requests::<oneshot::Sender<u8>>::new(&RequestIds::new());
        let (b, wait) = (node("b"), Duration::from_secs(5));

        let (id, rx) = requests.open(&b);
        requests.take(id).unwrap().send(3).unwrap();
        assert_eq!(requests.answer(&b, id, rx, wait).await.unwrap(), 3);

        let (id, rx) = requests.open(&b);
        let timed_out = requests.answer(&b, id, rx, wait).await;
        assert!(matches!(timed_out, Err(ClusterError::Timeout(n)) if n == b));
        assert_eq!(requests.len(), 0, "a timed out request is forgotten");

        let (id, rx) = requests.open(&b);
        drop(requests.peer_down(&b));
        let down = requests.answer(&b, id, rx, wait).await;
        assert!(matches!(down, Err(ClusterError::NodeDown(n)) if n == b));
    }
}
