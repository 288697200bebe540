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
use crate::target::Mailbox;
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
    /// The message, encoded when the timer was armed, for snapshots.
    msg: Result<Vec<u8>, crate::CodecError>,
}

/// An actor's live timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    next: u64,
    live: HashMap<TimerId, Entry, crate::LocalHash>,
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
        let bytes = crate::encode(&msg);
        let target = ActorRef::from_mailbox(mailbox.clone());
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = target.push(timer_envelope::<A>(id, msg)).await;
        });
        // A delay too long to add (e.g. `Duration::MAX`) saturates: the timer never fires.
        let deadline = far_future(delay);
        self.live
            .insert(id, Entry { task: task.abort_handle(), deadline, period: None, msg: bytes });
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
        let bytes = crate::encode(&msg);
        self.interval(mailbox, period, period, bytes, move || Some(msg.clone()))
    }

    /// Re-arms an interval timer from a checkpoint: its message is decoded from `bytes` for
    /// each tick (refs inside resolve against `system`).
    pub(crate) fn restore_every<A: Actor>(
        &mut self,
        mailbox: &Arc<Mailbox<A>>,
        system: crate::ActorSystem,
        first: Duration,
        period: Duration,
        bytes: Vec<u8>,
    ) -> TimerId {
        let msg_bytes = bytes.clone();
        self.interval(mailbox, first, period, Ok(bytes), move || {
            system.decode::<A::Msg>(&msg_bytes).ok()
        })
    }

    fn interval<A: Actor>(
        &mut self,
        mailbox: &Arc<Mailbox<A>>,
        first: Duration,
        period: Duration,
        bytes: Result<Vec<u8>, crate::CodecError>,
        mut make: impl FnMut() -> Option<A::Msg> + Send + 'static,
    ) -> TimerId {
        let id = self.next_id();
        let target = ActorRef::from_mailbox(mailbox.clone());
        let period = period.max(Duration::from_micros(1));
        let start = far_future(first);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(msg) = make() else { return };
                if target.push(timer_envelope::<A>(id, msg)).await.is_err() {
                    return;
                }
            }
        });
        let entry =
            Entry { task: task.abort_handle(), deadline: start, period: Some(period), msg: bytes };
        self.live.insert(id, entry);
        id
    }

    /// The live timers as checkpoint entries, with their remaining delay from now. One-shot
    /// timers whose message is already queued (`queued`) are left out: the queued message is
    /// recorded in flight instead. An interval timer's next tick is the first one after now.
    pub(crate) fn capture(
        &self,
        queued: &std::collections::HashSet<TimerId>,
    ) -> Result<Vec<amber_snapshot::TimerEntry>, crate::CodecError> {
        if self.live.is_empty() {
            return Ok(Vec::new());
        }
        let now = Instant::now();
        let mut out = Vec::with_capacity(self.live.len());
        let mut ids: Vec<_> = self.live.keys().copied().collect();
        ids.sort();
        for id in ids {
            let entry = &self.live[&id];
            if entry.period.is_none() && queued.contains(&id) {
                continue;
            }
            let mut due = entry.deadline;
            if let Some(period) = entry.period {
                while due <= now {
                    due += period;
                }
            }
            out.push(amber_snapshot::TimerEntry {
                timer: id.0,
                remaining_us: due.saturating_duration_since(now).as_micros() as u64,
                period_us: entry.period.map(|p| p.as_micros() as u64),
                msg: entry.msg.clone()?,
            });
        }
        Ok(out)
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
        if self.live.is_empty() {
            return; // most actors have none (a drain walks the table even then)
        }
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
    Envelope {
        origin: Origin::Timer(id),
        epoch: amber_snapshot::Epoch::ZERO,
        msg,
        reply: None,
        depth: 0,
    }
}

/// `now + delay`, saturating far in the future (about thirty years) instead of overflowing.
fn far_future(delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(delay).unwrap_or_else(|| now + FAR)
}
