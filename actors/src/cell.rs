//! The cell through which an actor's task and a snapshot's marker broadcast share the actor.
//!
//! The task takes its runner out of the cell while it runs it (starting the actor, handling
//! a message or a signal, stopping it) and puts it back between two messages — when its
//! mailbox is empty, and when it yields its worker to other tasks — so a task that waits for
//! its turn on a worker has left it in the cell. Whoever finds it there may take the actor's
//! cut: the broadcast cuts the actor on the spot, at the same point of its message stream as
//! the task would on finding the marker first on its control lane, instead of waiting for the
//! task's next turn (see [`CutNow`](crate::mailbox::core::CutNow)).
//!
//! A broadcast that finds the runner out notes it came by ([`take_for_cut`](Cell::take_for_cut));
//! whoever puts the runner back — the task ([`put`](Cell::put)) or the batch that held it for
//! an earlier cut ([`release`](Cell::release)) — cuts it for that snapshot first, under
//! the same lock. So a runner is never back in the cell with a cut owed to a broadcast that
//! has passed: one that comes later finds it there. (Left to the marker on its control lane,
//! a task that yields its worker after the handler the marker came in would cut only at its
//! next turn: a whole sweep of the run queue later, under load.)
//!
//! An ask from this node may also take an idle actor's runner out of its cell
//! ([`take_inline`](Cell::take_inline)) to serve the request on the asker's thread (see
//! [`crate::inline`]). It holds the runner as a cut on the spot does — the task waits, a
//! broadcast that comes by notes it missed it — and either gives it back
//! ([`give_back`](Cell::give_back)) or leaves the task what remains to do with it
//! ([`hand_off`](Cell::hand_off)): the rest of a handler that could not finish at once, or
//! the end of a slice (a stop, room owed on a link) that only the task acts on. The task's
//! [`take`](Cell::take) finishes that rest and returns the runner, as if it had been in the
//! cell.
//!
//! The lock is `crate::loom`'s: the loom models run this very code with a stand-in runner.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Poll, Waker};

use amber_snapshot::Epoch;

use crate::loom::lock;
use crate::loom::sync::Mutex;

/// The task's wait after it put its runner in the cell with its mailbox empty: pending once,
/// done when polled again (woken by the mailbox, whose waker the task registered as it found
/// the mailbox empty).
pub(crate) fn parked() -> impl Future<Output = ()> {
    let mut parked = false;
    poll_fn(
        move |_| if std::mem::replace(&mut parked, true) { Poll::Ready(()) } else { Poll::Pending },
    )
}

/// What a cell holds: a runner that can be cut for a snapshot between two messages.
pub(crate) trait Cuttable {
    /// What an ask served on its asker's thread leaves for the task to finish (see
    /// [`Cell::hand_off`]); the runner is inside it.
    type Rest: Send;

    /// Polls what an ask left for the task, on the task: the runner once it is done.
    fn poll_rest(rest: &mut Self::Rest, cx: &mut std::task::Context<'_>) -> Poll<Box<Self>>;

    /// Takes the cut for snapshot `epoch` now, filing it at once (nothing if it already cut
    /// for `epoch`).
    fn cut_missed(&mut self, epoch: Epoch);
}

/// See the module docs.
pub(crate) struct Cell<R: Cuttable> {
    slot: Mutex<Slot<R>>,
    /// The task that owns the cell, to abort it if it outlives a shutdown's deadline; set
    /// once it is spawned (dropped with the cell, so a finished task's memory goes with it).
    task: std::sync::OnceLock<tokio::task::AbortHandle>,
}

struct Slot<R: Cuttable> {
    runner: Option<Box<R>>,
    /// The runner is out with a cut taken on the spot (see [`Cell::take_for_cut`]), until
    /// it is given back: the task waits for it (without blocking its worker).
    held: bool,
    /// The task waiting for the runner to come back.
    waiting: Option<Waker>,
    /// The latest snapshot whose broadcast found the runner out of the cell. Whoever puts
    /// the runner back cuts it for that snapshot first.
    missed: Option<Epoch>,
    /// What an ask served on its asker's thread left for the task to finish, the runner
    /// inside it (`runner` is `None` meanwhile).
    rest: Option<R::Rest>,
}

impl<R: Cuttable> Cell<R> {
    /// A new, empty cell: the task to be spawned holds its runner from the start and puts
    /// it here only between two messages of the started actor (no cut before `on_start`).
    pub(crate) fn new() -> Arc<Self> {
        let slot = Slot { runner: None, held: false, waiting: None, missed: None, rest: None };
        Arc::new(Cell { slot: Mutex::new(slot), task: std::sync::OnceLock::new() })
    }

    /// The task lets its runner go, between two messages (or the spawner, for an actor
    /// that resumes, before its task first runs); cut first for a broadcast that found it
    /// out meanwhile.
    pub(crate) fn put(&self, mut runner: Box<R>) {
        loop {
            let mut slot = lock(&self.slot);
            let Some(epoch) = slot.missed.take() else {
                slot.runner = Some(runner);
                return;
            };
            drop(slot);
            runner.cut_missed(epoch);
        }
    }

    /// The task takes its runner back (waiting, at most, for the cut on the spot or the ask
    /// that holds it, yielding its worker meanwhile), finishing first what an ask served on
    /// its asker's thread left it (see [`hand_off`](Self::hand_off)).
    ///
    /// A plain [`poll_fn`], not an `async fn`: no state machine around it in the task's.
    pub(crate) fn take(&self) -> impl Future<Output = Box<R>> + Send + '_
    where
        R: Send,
    {
        let mut rest = None;
        poll_fn(move |cx| {
            if let Some(rest) = rest.as_mut() {
                return R::poll_rest(rest, cx);
            }
            let mut slot = lock(&self.slot);
            if !slot.held {
                if let Some(runner) = slot.runner.take() {
                    return Poll::Ready(runner);
                }
                if let Some(left) = slot.rest.take() {
                    drop(slot);
                    return R::poll_rest(rest.insert(left), cx);
                }
            }
            assert!(slot.held, "only the task takes its runner out of its cell");
            slot.waiting = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Notes the task that owns the cell (once).
    pub(crate) fn set_task(&self, task: tokio::task::AbortHandle) {
        let _ = self.task.set(task);
    }

    /// Aborts the task that owns the cell, if it was set.
    pub(crate) fn abort_task(&self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }

    /// For snapshot `epoch`'s broadcast: the runner, if it is in the cell (it is held until
    /// [`give_back`](Self::give_back)); else `None`, and whoever puts it back cuts it for
    /// `epoch` first. The lock is only ever held for a moment (never across a cut).
    pub(crate) fn take_for_cut(&self, epoch: Epoch) -> Option<Box<R>> {
        let mut slot = lock(&self.slot);
        match slot.runner.take() {
            Some(runner) if !slot.held => {
                slot.held = true;
                Some(runner)
            }
            runner => {
                // Out, or parked here by a batch that still holds it: the same to a cut.
                slot.runner = runner;
                slot.missed = slot.missed.max(Some(epoch));
                None
            }
        }
    }

    /// For an ask served on the asker's thread: the runner, if it is in the cell and free
    /// (held until [`give_back`](Self::give_back) or [`hand_off`](Self::hand_off), as for a
    /// cut on the spot: the task waits, a broadcast notes it missed it); else `None`.
    pub(crate) fn take_inline(&self) -> Option<Box<R>> {
        let mut slot = lock(&self.slot);
        if slot.held {
            return None;
        }
        let runner = slot.runner.take()?;
        slot.held = true;
        Some(runner)
    }

    /// Ends the hold of a runner [`take_inline`](Self::take_inline) took by leaving the task
    /// `rest` to finish, the runner inside it: the task's next [`take`](Self::take) does. A
    /// cut a broadcast missed meanwhile stays owed: the task, which then runs the actor,
    /// takes it when it puts the runner back (its marker is on the control lane too).
    /// Returns the task's waker if it was waiting for the runner; the caller wakes it, or
    /// the task where else it waits (its mailbox).
    #[must_use = "the task must be woken to take what is left to it"]
    pub(crate) fn hand_off(&self, rest: R::Rest) -> Option<Waker> {
        let mut slot = lock(&self.slot);
        debug_assert!(
            slot.held && slot.runner.is_none(),
            "only a runner taken inline is handed off"
        );
        slot.rest = Some(rest);
        slot.held = false;
        slot.waiting.take()
    }

    /// Gives back a runner taken by [`take_for_cut`](Self::take_for_cut) or
    /// [`take_inline`](Self::take_inline): as
    /// [`park_held`](Self::park_held) then [`release`](Self::release).
    pub(crate) fn give_back(&self, runner: Box<R>) {
        self.park_held(runner);
        self.release();
    }

    /// Puts a runner taken by [`take_for_cut`](Self::take_for_cut) back in the cell, still
    /// held: neither the task nor a broadcast takes it until [`release`](Self::release) (a
    /// broadcast that comes by meanwhile finds it held, as if it were out). This lets a
    /// batch hold runners without keeping each somewhere of its own.
    pub(crate) fn park_held(&self, runner: Box<R>) {
        let mut slot = lock(&self.slot);
        debug_assert!(
            slot.held && slot.runner.is_none(),
            "only a runner taken for a cut is parked held"
        );
        slot.runner = Some(runner);
    }

    /// Ends the hold of a runner [`park_held`](Self::park_held) in the cell: it is cut
    /// first for a newer broadcast that found it held meanwhile, then free to take, and the
    /// task is woken if it waits for it.
    pub(crate) fn release(&self) {
        let mut slot = lock(&self.slot);
        while let Some(epoch) = slot.missed.take() {
            // Still held while it is out for this cut: the task keeps waiting.
            let Some(mut runner) = slot.runner.take() else {
                // Never: a batch parks a runner before it releases it. Were it to happen, the
                // cut would still be taken, later: the broadcast that found the runner held
                // also put the marker on its control lane.
                debug_assert!(false, "a held runner is parked in its cell before it is released");
                tracing::error!(%epoch, "a held runner was released without being parked");
                break;
            };
            drop(slot);
            runner.cut_missed(epoch);
            slot = lock(&self.slot);
            slot.runner = Some(runner);
        }
        slot.held = false;
        let waiting = slot.waiting.take();
        drop(slot);
        if let Some(task) = waiting {
            task.wake();
        }
    }
}
