//! Backpressure across nodes: a bound on the data messages queued for one peer's link.
//!
//! A `tell` to a remote actor hands the encoded message to the peer's forwarder and returns;
//! without a bound, a sender faster than the link would queue without limit (memory, and
//! latency for everything queued behind). Each forwarder has a
//! [`Credit`]: routes count the data messages they queue, the forwarder counts them out as
//! the link takes them, and a bounded send to a peer with its limit of messages queued (the
//! transport's `send_queue`, default 1024) waits until the queue is down to half. (A send from
//! an actor's handler does not wait inside the handler: it is queued beyond the limit, and the
//! actor waits for room before its next message — see `ActorRef::tell`.) Replies and the cluster's control frames are not
//! counted and never wait. (Snapshot messages skip the forwarder altogether: they take the
//! link's urgent lane.)
//!
//! A data message a route queues straight on the link (when the forwarder has nothing
//! pending, see `outbound.rs`) is not counted here: the link's own bound holds it (its
//! queue, `send_queue` frames). While the forwarder has nothing pending, a bounded send
//! waits for room in the link's queue rather than for credit (`Outbound::poll_ready`), so
//! that it goes straight on the link instead of behind the forwarder; the credit bounds what
//! the forwarder holds (sends from handlers, and sends that found the link's queue full).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Waker};

/// The data messages queued for one peer's link, and the senders waiting for room.
#[derive(Debug)]
pub(super) struct Credit {
    /// Data messages queued for the peer beyond which bounded sends wait.
    limit: usize,
    queued: AtomicUsize,
    waiting: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    /// Frames of any kind handed to the forwarder and not yet taken by the link: while
    /// there are any, a route must queue behind them (see `Outbound::send_direct`).
    forwarding: AtomicUsize,
}

impl Credit {
    /// A credit of `limit` queued messages (at least 1).
    pub(super) fn new(limit: usize) -> Credit {
        Credit {
            limit: limit.max(1),
            queued: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            forwarding: AtomicUsize::new(0),
        }
    }

    /// Whether there is room; if not, `cx` (if any) is woken once there is.
    pub(super) fn poll_room(&self, cx: Option<&mut Context<'_>>) -> bool {
        if self.queued.load(Ordering::Acquire) < self.limit {
            return true;
        }
        let Some(cx) = cx else { return false };
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        self.waiting.store(true, Ordering::Release);
        // The forwarder may have drained between the check and the registration.
        if self.queued.load(Ordering::Acquire) < self.limit {
            self.waiting.store(false, Ordering::Release);
            waiters.drain(..).for_each(Waker::wake);
            return true;
        }
        false
    }

    /// The data messages queued now.
    pub(super) fn depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A data message was queued.
    pub(super) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// The link took a data message.
    pub(super) fn sent(&self) {
        self.sent_many(1);
    }

    /// The link took `n` data messages.
    pub(super) fn sent_many(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.queued.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        if now <= self.limit / 2 && self.waiting.load(Ordering::Acquire) {
            self.wake_all();
        }
    }

    /// A frame is handed to the forwarder.
    pub(super) fn forwarding(&self) {
        self.forwarding.fetch_add(1, Ordering::AcqRel);
    }

    /// The link took `n` frames from the forwarder: they are in its queue, ahead of any
    /// frame queued there after this returns.
    pub(super) fn forwarded(&self, n: usize) {
        self.forwarding.fetch_sub(n, Ordering::AcqRel);
    }

    /// Whether every frame handed to the forwarder is in the link's queue by now.
    pub(super) fn forwarder_idle(&self) -> bool {
        self.forwarding.load(Ordering::Acquire) == 0
    }

    /// Wakes every waiting sender (room, or the link is gone and their sends will fail).
    pub(super) fn wake_all(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        self.waiting.store(false, Ordering::Release);
        waiters.drain(..).for_each(Waker::wake);
    }
}
