//! One peer's outbound path, and the sections in which a frame is handed to it and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::credit::Credit;
use crate::Frame;

/// One peer's outbound path: the forwarder that hands its frames to the link in order, and
/// the bound on the data messages queued in it (see `credit.rs`).
#[derive(Debug)]
pub(super) struct Outbound {
    pub(super) tx: mpsc::UnboundedSender<Frame>,
    pub(super) credit: Arc<Credit>,
    /// Cleared when the peer goes down (`peer_down`), before its asks are swept: a route
    /// that registered an ask and then finds it set is sure `peer_down` sees the ask.
    live: AtomicBool,
    /// Sections in which a frame is being handed to the path and counted
    /// ([`sending`](Outbound::sending)).
    senders: AtomicUsize,
}

impl Outbound {
    /// A live path handing frames to `tx`, within `credit`.
    pub(super) fn new(tx: mpsc::UnboundedSender<Frame>, credit: Arc<Credit>) -> Outbound {
        Outbound { tx, credit, live: AtomicBool::new(true), senders: AtomicUsize::new(0) }
    }

    /// Whether frames given to it may still reach the peer.
    pub(super) fn is_open(&self) -> bool {
        self.live.load(Ordering::Acquire) && !self.tx.is_closed()
    }

    /// Enters a section in which a frame is handed to the path and counted, if the path is
    /// still live; [`close`](Self::close) waits until every section entered has ended.
    pub(super) fn sending(&self) -> Option<Sending<'_>> {
        // SeqCst, here and in `close`: either this sees the path closed, or `close` sees
        // this section (a store then a load on each side, on different variables).
        self.senders.fetch_add(1, Ordering::SeqCst);
        let section = Sending(self);
        self.live.load(Ordering::SeqCst).then_some(section)
    }

    /// [`sending`](Self::sending), for a section that outlives the borrow: a migration's
    /// hand-off, counted by the runtime after the package is on the path.
    pub(super) fn sending_owned(self: &Arc<Self>) -> Option<OwnedSending> {
        self.senders.fetch_add(1, Ordering::SeqCst);
        let section = OwnedSending(self.clone());
        self.live.load(Ordering::SeqCst).then_some(section)
    }

    /// Closes the path (routes that cached it look the peer up again, and find it down),
    /// then waits out the sections in which a frame was being handed to it and counted.
    pub(super) fn close(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.credit.wake_all();
        while self.senders.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
    }
}

/// A section of [`Outbound::sending_owned`]; ends when dropped.
pub(super) struct OwnedSending(Arc<Outbound>);

impl Drop for OwnedSending {
    fn drop(&mut self) {
        self.0.senders.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A section of [`Outbound::sending`]; ends when dropped.
pub(super) struct Sending<'a>(&'a Outbound);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.senders.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;

    fn path() -> Arc<Outbound> {
        let (tx, rx) = mpsc::unbounded_channel();
        std::mem::forget(rx);
        Arc::new(Outbound::new(tx, Arc::new(Credit::new(8))))
    }

    #[test]
    fn close_waits_for_the_sections_entered_before_it_and_refuses_later_ones() {
        let out = path();
        closes_after(&out, out.sending().expect("a live path"));
        let out = path();
        // A migration's hand-off: the section is dropped after the runtime counted it.
        closes_after(&out, out.sending_owned().expect("a live path"));
        assert!(out.sending_owned().is_none());
    }

    /// Checks that closing `out` waits until `section` is dropped.
    fn closes_after<S>(out: &Arc<Outbound>, section: S) {
        let closed = Arc::new(AtomicBool::new(false));
        let closer = {
            let (out, closed) = (out.clone(), closed.clone());
            std::thread::spawn(move || {
                out.close();
                closed.store(true, Ordering::SeqCst);
            })
        };
        // The closer is blocked for as long as the section lasts (observed, not timed: it
        // cannot have finished while the section is held).
        while out.live.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(10));
        assert!(!closed.load(Ordering::SeqCst), "close returned inside a section");
        assert!(out.sending().is_none(), "a closed path takes nothing more");
        drop(section);
        closer.join().unwrap();
        assert!(closed.load(Ordering::SeqCst));
        assert!(!out.is_open());
    }
}
