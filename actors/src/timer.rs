//! Timers: messages an actor sends itself after a delay or on an interval.
//!
//! Each timer is a small task that pushes an envelope with [`Origin::Timer`] into the actor's
//! own mailbox, so timer messages queue behind earlier messages like any other. Cancelling a
//! timer is exact: once [`Context::cancel_timer`](crate::Context::cancel_timer) returns, the
//! handler never sees that timer's message, even one already queued. All timers stop with the
//! actor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::envelope::{Envelope, Origin};
use crate::mailbox::Mailbox;
use crate::{Actor, ActorRef};

/// Identifies one timer of one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

#[derive(Debug)]
struct Entry {
    task: AbortHandle,
    /// When the next message is due.
    deadline: Instant,
    /// `Some` for an interval timer.
    period: Option<Duration>,
}

/// An actor's live timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    next: u64,
    live: HashMap<TimerId, Entry>,
}

impl Timers {
    /// Arms a one-shot timer.
    pub(crate) fn send_after<A: Actor>(
        &mut self,
        mailbox: &Arc<Mailbox<A>>,
        delay: Duration,
        msg: A::Msg,
    ) -> TimerId {
        let id = self.next_id();
        let target = ActorRef::from_mailbox(mailbox.clone());
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = target.push(timer_envelope::<A>(id, msg)).await;
        });
        let deadline = Instant::now() + delay;
        self.live.insert(id, Entry { task: task.abort_handle(), deadline, period: None });
        id
    }

    /// Arms an interval timer; the first message is due after one `period`.
    pub(crate) fn send_interval<A: Actor>(
        &mut self,
        mailbox: &Arc<Mailbox<A>>,
        period: Duration,
        msg: A::Msg,
    ) -> TimerId
    where
        A::Msg: Clone,
    {
        let id = self.next_id();
        let target = ActorRef::from_mailbox(mailbox.clone());
        let period = period.max(Duration::from_micros(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if target.push(timer_envelope::<A>(id, msg.clone())).await.is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + period;
        self.live.insert(id, Entry { task: task.abort_handle(), deadline, period: Some(period) });
        id
    }

    /// Cancels a timer; `false` if it was not live (already fired or cancelled).
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.live.remove(&id) {
            Some(entry) => {
                entry.task.abort();
                true
            }
            None => false,
        }
    }

    /// Called when a timer message is dequeued: whether to deliver it. A one-shot timer is
    /// done; an interval timer moves its deadline on.
    pub(crate) fn fire(&mut self, id: TimerId) -> bool {
        match self.live.get_mut(&id) {
            None => false,
            Some(entry) => {
                match entry.period {
                    None => {
                        self.live.remove(&id);
                    }
                    Some(period) => entry.deadline += period,
                }
                true
            }
        }
    }

    /// The number of live timers.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Cancels every timer.
    pub(crate) fn cancel_all(&mut self) {
        for (_, entry) in self.live.drain() {
            entry.task.abort();
        }
    }

    fn next_id(&mut self) -> TimerId {
        self.next += 1;
        TimerId(self.next)
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

fn timer_envelope<A: Actor>(id: TimerId, msg: A::Msg) -> Envelope<A> {
    Envelope { origin: Origin::Timer(id), epoch: amber_snapshot::Epoch::ZERO, msg, reply: None }
}
