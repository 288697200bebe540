//! Asks served on the asker's thread.
//!
//! An ask to an idle actor of this node (its task parked, its runner in its cell) would wake
//! the actor's task, which handles the request and wakes the asker: two hand-offs between
//! tasks, often between workers, for a handler that takes less time than either. Instead,
//! the asker takes the idle actor's runner out of its cell
//! ([`Cell::take_inline`](crate::cell::Cell::take_inline)) and runs the actor's own slice of
//! work — the same code its task runs — on its own thread, then gives the runner back.
//!
//! Nothing about the message changes: it is pushed through the mailbox as any ask is (tagged
//! with its sender's epoch, recorded if it crosses a cut, refused if the actor stopped), only
//! without waking the task ([`push_quiet`](crate::mailbox::core::MailboxCore::push_quiet)),
//! and taken from it by the runner, as the task would take it. Only an idle actor's runner
//! is taken (nothing in hand or set aside), and the ask is served only if it is first in
//! line (pushed behind messages that came first, it is queued for the task, woken as for
//! any push, as the asker gives the runner back); the asker handles that one message (and
//! any control signal that overtakes it), never other senders' messages: those are the
//! task's, woken by their push as always. While the asker
//! holds the runner, the cell counts it as out: the task waits for it, and a snapshot's
//! broadcast that comes by leaves the cut to whoever puts the runner back, as it does for a
//! runner its task holds (see [`crate::cell`]).
//!
//! The asker hands the runner to the task instead of giving it back
//! ([`Cell::hand_off`](crate::cell::Cell::hand_off)) when the rest is the task's to do: a
//! handler that did not finish at once (it awaits something: the task finishes it, so an
//! asker that gives up waiting never cuts a handler short), a stop, or room owed on a link.
//! An ask is not served this way when the asker is not on the actor's runtime, runs inside
//! more than [`MAX_NESTED`] asks served so, when the actor's task runs in a tracing span, or
//! when the system does not serve asks so
//! ([`SystemBuilder::inline_asks`](crate::SystemBuilder::inline_asks)).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::Actor;
use crate::current;
use crate::envelope::Envelope;
use crate::mailbox::PushError;
use crate::runner::{ActorCell, Runner, Slice};
use crate::target::Mailbox;

/// How many asks served on their askers' threads may run inside one another on one thread
/// (an actor's handler asking another idle actor, and so on): deeper asks go through the
/// mailbox, so that a chain of asks does not grow the thread's stack without bound.
pub(crate) const MAX_NESTED: u8 = 4;

/// What an ask served on its asker's thread leaves for the actor's task (see
/// [`Cell::hand_off`](crate::cell::Cell::hand_off)): the rest of the slice, whose handler
/// did not finish at once, or a slice that ended where only the task goes on (a stop, room
/// owed on a link; noted in the runner for the task's next slice to return at once).
pub(crate) type Rest<A> = Pin<Box<dyn Future<Output = Box<Runner<A>>> + Send>>;

/// Asks served on their askers' threads with a timeout under this are timed (the clock read
/// before and after): one whose handler computed past its timeout fails as timed out.
/// Longer timeouts are not: two reads of the clock cost a third of such an ask's speed
/// (6.0 against 4.3 M asks/s, measured), and a handler that computes for a second without
/// awaiting holds its worker up for longer than any asker's wait.
pub(crate) const TIMED_BELOW: std::time::Duration = std::time::Duration::from_secs(1);

/// How many asks served on their askers' threads spend one unit of the asker's cooperative
/// budget (see [`spend_budget`]).
pub(crate) const ASKS_PER_BUDGET_UNIT: u8 = 16;

thread_local! {
    static NESTED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    static SERVED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Spends a unit of the asker's tokio cooperative budget for every
/// [`ASKS_PER_BUDGET_UNIT`]th ask served on this thread; `false` if the budget is spent (the
/// ask then goes through the mailbox, and the asker's wait for its reply yields its worker,
/// as tokio's channels make a task do). An ask served at once never waits: without this, a
/// task looping on such asks would never let the other tasks of its worker run. A unit per
/// ask made a loop of asks yield every 128 (tokio's budget), and each yield handed the task
/// to the other worker (1M asks/s less, measured); one per 16 lets about 2,000 asks run
/// between two yields (well under a millisecond).
fn spend_budget() -> bool {
    let spends = SERVED.with(|served| {
        let n = served.get().wrapping_add(1) % ASKS_PER_BUDGET_UNIT;
        served.set(n);
        n == 0
    });
    if !spends {
        return true;
    }
    // No waker: when the budget is spent the ask is not served here, and the asker's wait
    // for the reply registers its own.
    match tokio::task::coop::poll_proceed(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(proceed) => {
            proceed.made_progress();
            true
        }
        Poll::Pending => false,
    }
}

/// One level of asks served on this thread, for as long as it lives.
struct Nested;

impl Nested {
    fn enter() -> Option<Nested> {
        NESTED.with(|n| {
            let depth = n.get();
            (depth < MAX_NESTED).then(|| {
                n.set(depth + 1);
                Nested
            })
        })
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        NESTED.with(|n| n.set(n.get() - 1));
    }
}

/// Serves the ask `env` on this thread if its actor is idle: the request is then in the
/// actor's hands (handled, or left to its task to finish, or queued for it behind messages
/// that came first) and its reply on the way as any reply is; with `timed`, when its handler
/// started if it ran here. `Err(env)` if not: the caller sends it.
pub(crate) fn serve<A: Actor>(
    mailbox: &Mailbox<A>,
    env: Envelope<A>,
    timed: bool,
) -> Result<Option<Instant>, Envelope<A>> {
    let Some(cell) = cell_of(mailbox) else { return Err(env) };
    if !spend_budget() {
        return Err(env);
    }
    let Some(_nested) = Nested::enter() else { return Err(env) };
    let Some(runner) = cell.take_inline() else { return Err(env) };
    if !runner.serves_inline() {
        cell.give_back(runner);
        return Err(env);
    }
    match mailbox.push_quiet(env) {
        Ok(true) => {}
        Ok(false) => {
            // Behind messages that came first: queued for the task, which was woken.
            cell.give_back(runner);
            return Ok(None);
        }
        Err(refused) => {
            cell.give_back(runner);
            return Err(match refused {
                PushError::Full(env)
                | PushError::Closed(env)
                | PushError::Passivated(env)
                | PushError::Moved(env, _) => env,
            });
        }
    }
    let started = timed.then(Instant::now);
    // The actor's handlers run as its task would run them: with no asker marked as running
    // around them (the slice marks the actor itself), and with a link the asker's own turn
    // owes room on kept aside (the actor's turns note theirs in its runner).
    let asker = current::enter(None);
    let owed = current::take_owed_room();
    let mut rest: Rest<A> = Box::pin(async move {
        let mut runner = runner;
        let slice = runner.slice::<true>().await;
        // A slice that found the mailbox empty registered no waker for the task (its own
        // next slice does, if it runs it); one that must stop or wait for room is the
        // task's to act on.
        if !matches!(slice, Slice::Park) {
            runner.ended = Some(Box::new(slice));
        }
        runner
    });
    // No waker: a slice that does not finish here is the task's, which polls it again.
    let polled = rest.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    if let Some(route) = owed {
        current::owe_room(route);
    }
    current::enter(asker);
    let left: Rest<A> = match polled {
        Poll::Ready(runner) if runner.ended.is_none() => {
            cell.give_back(runner);
            return Ok(started);
        }
        Poll::Ready(runner) => Box::pin(std::future::ready(runner)),
        Poll::Pending => rest,
    };
    match cell.hand_off(left) {
        Some(task) => task.wake(),
        // Not waiting for its runner: parked on its mailbox, or on its way to the cell.
        None => mailbox.wake_consumer(),
    }
    Ok(started)
}

/// The cell of the actor `mailbox` belongs to, if it is of this node, its system serves asks
/// on their askers' threads, and the asker runs on its runtime.
fn cell_of<A: Actor>(mailbox: &Mailbox<A>) -> Option<Arc<ActorCell<A>>> {
    if !mailbox.meta.asks.inline_here() {
        return None;
    }
    let task = mailbox.meta.task.get()?.upgrade()?;
    task.as_any().downcast::<ActorCell<A>>().ok()
}
