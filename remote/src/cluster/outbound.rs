//! One peer's outbound path, and the sections in which a frame is handed to it and counted.
//!
//! A frame takes one of two ways to the link: through the peer's forwarder task, which
//! waits on the link's backpressure without blocking the sender, or, when the forwarder has
//! nothing pending and the link's queue has room, straight into the link's queue from the
//! sending thread ([`Outbound::try_direct`]): no hand-off to the forwarder, no wake-up of
//! its task. Order holds either way: a frame goes direct only once every frame handed to
//! the forwarder before it is in the link's queue, so frames to one peer are queued on the
//! link in the order their sends returned, whichever way each took.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::credit::Credit;
use crate::Frame;
use crate::frame::MessageRef;
use crate::transport::{Link, Transport};

/// One peer's outbound path: the forwarder that hands its frames to the link in order, and
/// the bound on the data messages queued in it (see `credit.rs`).
#[derive(Debug)]
pub(super) struct Outbound {
    tx: mpsc::UnboundedSender<Frame>,
    pub(super) credit: Arc<Credit>,
    /// The link the path was opened on, for frames that skip the forwarder (none if it was
    /// not up then: every frame takes the forwarder).
    direct: Option<(Transport, Arc<Link>)>,
    /// Cleared when the peer goes down (`peer_down`), before its asks are swept: a route
    /// that registered an ask and then finds it set is sure `peer_down` sees the ask.
    live: AtomicBool,
    /// Sections in which a frame is being handed to the path and counted
    /// ([`sending`](Outbound::sending)).
    senders: AtomicUsize,
}

impl Outbound {
    /// A live path handing frames to `tx`, within `credit`; frames may skip the forwarder
    /// onto `direct`'s link.
    pub(super) fn new(
        tx: mpsc::UnboundedSender<Frame>,
        credit: Arc<Credit>,
        direct: Option<(Transport, Arc<Link>)>,
    ) -> Outbound {
        Outbound { tx, credit, direct, live: AtomicBool::new(true), senders: AtomicUsize::new(0) }
    }

    /// Hands `frame` to the forwarder, behind every frame handed to the path before; `Err`
    /// if the forwarder is gone (the frame is dropped).
    pub(super) fn send(&self, frame: Frame) -> Result<(), Gone> {
        // Counted first: from now on no frame goes direct until the link has taken this one.
        // (If the forwarder is gone, the count stays: the path is closed for good.)
        self.credit.forwarding();
        self.tx.send(frame).map_err(|_| Gone)
    }

    /// Whether a bounded send to the peer may go now; if not, `cx` (if any) is woken when
    /// it may try again. With nothing pending on the forwarder, it waits for room in the
    /// link's queue: it would otherwise go behind the forwarder, and every later send with
    /// it (in order), each handed over twice instead of once. Else it waits for the credit.
    pub(super) fn poll_ready(&self, cx: Option<&mut std::task::Context<'_>>) -> bool {
        if let Some((_, link)) = &self.direct
            && self.credit.forwarder_idle()
        {
            return link.poll_room(cx);
        }
        self.credit.poll_room(cx)
    }

    /// Queues the `Message` frame with `message`'s fields on the link at once, if the
    /// forwarder has nothing pending (every frame handed to the path before is in the
    /// link's queue by now) and the link's queue has room. `false`: not queued; the caller
    /// hands the frame to the forwarder with [`send`](Self::send), where it waits its turn.
    pub(super) fn try_direct(&self, message: &MessageRef<'_>) -> bool {
        let Some((transport, link)) = &self.direct else { return false };
        self.credit.forwarder_idle() && transport.try_send_message_on(link, message)
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

/// A frame was not taken: the path's forwarder is gone (the peer went down).
#[derive(Debug)]
pub(super) struct Gone;

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
        Arc::new(Outbound::new(tx, Arc::new(Credit::new(8)), None))
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
