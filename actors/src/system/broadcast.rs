//! The marker broadcast of a snapshot, shared out: every actor of the node must cut for the
//! snapshot, and an actor whose task is between two messages can be cut on the spot by
//! anyone (see [`CutNow`](crate::mailbox::core::CutNow)). The thread that starts the
//! broadcast cuts actors in turn, and so does every actor's task at the start of each of
//! its slices of work while the broadcast lasts: the cuts get the CPU of every worker at
//! once, instead of each actor waiting for its own turn in the run queue (a full sweep of
//! it, under load) or for one starved thread. Idle workers are put to it too: one task each
//! helps once.
//!
//! Busy actors' slices may be told to wait before they help
//! ([`SystemBuilder::cut_help_delay`](crate::SystemBuilder::cut_help_delay)): the actors
//! then keep working while the broadcast's own thread (and idle workers) cut, and join in
//! only if it lasts longer, which trades a longer snapshot for less of the actors' time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use amber_snapshot::Epoch;

use super::CutBatch;
use crate::registry::{Mailboxes, slot};
use crate::signal::Signal;

/// How many slots of the roster a helper claims at a time.
const CLAIM: usize = 32;

/// One snapshot's broadcast: the actors to cut, and how far the helpers got.
struct Broadcast {
    epoch: Epoch,
    /// The roster's slots as the broadcast started (see [`Registry::mailboxes`]
    /// (crate::registry::Registry::mailboxes)), and the actors in them.
    mailboxes: Mailboxes,
    actors: usize,
    /// The slots there are.
    slots: usize,
    /// The next slot to claim.
    next: AtomicUsize,
    /// Slots done with (their actor cut here, or its marker sent).
    done: AtomicUsize,
    /// Of those, the ones whose marker went on their control lane.
    sent: AtomicUsize,
    /// How many calls of `work` took at least one claim (for the log line).
    helpers: AtomicUsize,
    /// When it started (for the log line).
    started: Instant,
}

/// The running broadcast, if any, and a flag the tasks read without locking.
pub(crate) struct Markers {
    pending: AtomicBool,
    current: Mutex<Option<Arc<Broadcast>>>,
    /// How long a broadcast runs before actors' slices help
    /// ([`SystemBuilder::cut_help_delay`](crate::SystemBuilder::cut_help_delay)).
    slice_delay: Duration,
    /// When the running broadcast's slices may help, in nanoseconds after `since`.
    slices_from: AtomicU64,
    since: Instant,
}

impl Markers {
    /// No broadcast yet; slices help broadcasts once they have run for `slice_delay`.
    pub(crate) fn new(slice_delay: Duration) -> Self {
        Markers {
            pending: AtomicBool::new(false),
            current: Mutex::new(None),
            slice_delay,
            slices_from: AtomicU64::new(0),
            since: Instant::now(),
        }
    }

    /// Starts the broadcast of `epoch` to `mailboxes` (a newer snapshot's replaces an older
    /// one's: markers are only ever for the node's latest epoch); [`help`](Self::help) then
    /// carries it out.
    pub(crate) fn start(&self, epoch: Epoch, (mailboxes, actors): (Mailboxes, usize)) {
        let slots = mailboxes.len() * crate::registry::CHUNK;
        let broadcast = Arc::new(Broadcast {
            epoch,
            mailboxes,
            actors,
            slots,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            sent: AtomicUsize::new(0),
            helpers: AtomicUsize::new(0),
            started: Instant::now(),
        });
        // A newer snapshot overtakes an older one here before every actor got the older
        // marker: the rest get theirs on their control lanes first, so that every actor sees
        // the older marker before the newer one, as when every marker went on the control
        // lanes at once. (Helpers of the older one finish the actors they already claimed.)
        let older = self.lock().take();
        if let Some(older) = older {
            self.work(&older, false);
        }
        if broadcast.actors == 0 {
            // Nothing to hand out, and nobody would ever finish it: every task would take
            // the lock at each slice for as long as it stayed installed.
            return;
        }
        let from = self.since.elapsed().checked_add(self.slice_delay);
        let from = from.and_then(|from| u64::try_from(from.as_nanos()).ok()).unwrap_or(u64::MAX);
        self.slices_from.store(from, Ordering::Relaxed);
        *self.lock() = Some(broadcast);
        self.pending.store(true, Ordering::Release);
    }

    /// Cuts actors of the running broadcast, if there is one, until none is left to claim.
    #[inline]
    pub(crate) fn help(&self) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        let Some(broadcast) = self.lock().clone() else { return };
        self.work(&broadcast, true);
    }

    /// [`help`](Self::help) from an actor's slice: only once the running broadcast has
    /// lasted the slice delay (read without locking: a slice that finds the broadcast
    /// too young goes on with its own messages).
    #[inline]
    pub(crate) fn help_slice(&self) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        if !self.slice_delay.is_zero() {
            let now = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if now < self.slices_from.load(Ordering::Relaxed) {
                return;
            }
        }
        self.help();
    }

    /// Claims actors of `broadcast` until none is left: each is cut on the spot if
    /// `on_the_spot` and its task is between two messages, else gets the marker on its
    /// control lane.
    fn work(&self, broadcast: &Arc<Broadcast>, on_the_spot: bool) {
        let total = broadcast.slots;
        let mut claimed = false;
        loop {
            let from = broadcast.next.fetch_add(CLAIM, Ordering::Relaxed);
            if from >= total {
                break;
            }
            if !std::mem::replace(&mut claimed, true) {
                broadcast.helpers.fetch_add(1, Ordering::Relaxed);
            }
            let to = (from + CLAIM).min(total);
            let mut sent = 0;
            let mut batch = CutBatch::with_capacity(to - from);
            for mailbox in (from..to).filter_map(|i| slot(&broadcast.mailboxes, i)) {
                // Between two messages: cut here and now. In a handler (or not started): it
                // finds the marker first on its control lane.
                if !(on_the_spot && mailbox.cut_now(broadcast.epoch, &mut batch)) {
                    let _ = mailbox.signal(Signal::Marker(broadcast.epoch));
                    sent += 1;
                }
            }
            // The claim's cuts are filed before it counts as done (the snapshot cannot
            // complete without them anyway).
            batch.file();
            let sent = broadcast.sent.fetch_add(sent, Ordering::Relaxed) + sent;
            let done = broadcast.done.fetch_add(to - from, Ordering::AcqRel) + (to - from);
            if done == total {
                self.finished(broadcast, sent);
            }
        }
    }

    /// Every actor of `broadcast` is done with: it is over (unless a newer one replaced it).
    fn finished(&self, broadcast: &Arc<Broadcast>, sent: usize) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, broadcast)) {
            *current = None;
            self.pending.store(false, Ordering::Release);
        }
        drop(current);
        let epoch = broadcast.epoch;
        let actors = broadcast.actors;
        let helpers = broadcast.helpers.load(Ordering::Relaxed);
        let ms = broadcast.started.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(%epoch, actors, sent, helpers, ms, "snapshot markers: actors cut on the spot, markers sent to the rest");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Broadcast>>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
