//! Ask timeouts without a tokio timer per ask.
//!
//! Every [`ask`](crate::ActorRef::ask) waits under a timeout (5 s by default). Done with
//! `tokio::time::timeout`, each ask registered an entry in the runtime's timer wheel (the
//! runtime handle looked up, a wheel shard locked) and removed it again (locked again),
//! almost always microseconds later, answered. Counted with callgrind on 100k sequential
//! asks from outside the runtime (BENCHMARKS.md, session 12), the asker's side of an ask
//! took ~1,770 instructions with that timeout and ~1,100 without any; with the clock below
//! it takes ~1,470, of which the deadline's own part (enter, poll, leave) is ~210.
//!
//! So an ask records its deadline in its system's [`AskClock`] instead: a few sharded
//! slabs, one short uncontended lock to enter and one to leave. While asks come or wait,
//! the clock's one task ticks every [`tick`](AskClock::tick) (a fiftieth of the system's
//! ask timeout, between 5 and 100 ms), counting its ticks, and wakes the asks whose
//! deadline has passed, which then fail with [`AskError::Timeout`](crate::AskError::Timeout).
//! A deadline is a count of ticks, not a time: an ask reads the count (one atomic load, no
//! clock read — that was 4.7 % of an ask's CPU) and waits for the whole ticks its timeout
//! spans, plus one for the tick under way. Ticks are at least a tick apart, so an ask never
//! times out early, and at most two ticks late (a tokio timer's granularity is 1 ms). An
//! ask whose own timeout is shorter than ten ticks (at most 20 % late), or made when the
//! clock cannot run (no runtime, or after the system shut down), uses a tokio timer as
//! before.
//!
//! The clock starts with the first ask and stops after a tick with no ask made and none
//! waiting (so an idle system keeps no timer, which matters to tests on paused time). At
//! shutdown it takes no new asks, and stops once the ones waiting are done.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The clock's tick: this fraction of the system's ask timeout...
const TICKS_PER_TIMEOUT: u32 = 50;
/// ...but no shorter than this (a clock would tick too often for what it saves)...
const SHORTEST_TICK: Duration = Duration::from_millis(5);
/// ...and no longer than this (the granularity of every swept ask's timeout).
const LONGEST_TICK: Duration = Duration::from_millis(100);
/// An ask's timeout must be at least this many ticks to be swept (it is then at most
/// a fifth late); a shorter one gets a tokio timer.
const SWEPT_FROM_TICKS: u32 = 10;
/// Deadline shards: askers on different threads rarely take the same lock.
const SHARDS: usize = 4;

/// One system's ask timeout, and the clock that times its asks out (see the module docs).
#[derive(Debug)]
pub(crate) struct AskClock {
    /// How long an ask waits for its reply ([`SystemBuilder::ask_timeout`](crate::SystemBuilder::ask_timeout)).
    timeout: Duration,
    /// How often the clock sweeps the deadlines while it runs.
    tick: Duration,
    /// The ticks of `timeout`, rounded up.
    timeout_ticks: u64,
    /// How many times the clock has ticked (it counts on from where it stopped when it
    /// starts again): deadlines are counts of ticks.
    ticks: AtomicU64,
    /// Where the clock's task runs; `None` in unit tests without a runtime (every ask then
    /// gets a tokio timer).
    runtime: Option<tokio::runtime::Handle>,
    /// Asks to idle actors are served on their askers' threads (see [`crate::inline`]).
    inline: bool,
    /// The clock's task is running.
    running: AtomicBool,
    /// An ask was made since the clock last ticked.
    used: AtomicBool,
    /// The system shut down: the clock takes no new deadlines.
    stopped: AtomicBool,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    shards: [Shard; SHARDS],
}

/// One lock's worth of deadlines (cache-line aligned: shards do not share lines).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard(Mutex<Deadlines>);

/// The deadlines of the asks waiting in one shard: a slab, whose slots only their asks free.
#[derive(Debug, Default)]
struct Deadlines {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots in use (waiting or expired, not yet freed by their asks).
    live: usize,
    /// No waiting ask's deadline is earlier (a lower bound: a sweep before it has nothing
    /// to do).
    earliest: Option<u64>,
}

#[derive(Debug)]
struct Slot {
    /// The tick count at which it expires.
    deadline: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Free for the next ask.
    Free,
    /// Its ask waits: the waker to wake at its deadline.
    Waiting(Waker),
    /// The deadline passed (its ask was woken): it times out at its next poll.
    Expired,
}

/// An ask's place in its clock: the shard and the slot.
#[derive(Debug, Clone, Copy)]
struct Key {
    shard: usize,
    slot: u32,
}

impl AskClock {
    /// The clock of a system that serves asks on their askers' threads, or not
    /// ([`SystemBuilder::inline_asks`](crate::SystemBuilder::inline_asks)).
    pub(crate) fn serving_inline(mut self, inline: bool) -> AskClock {
        self.inline = inline;
        self
    }

    /// Whether an ask may be served on its asker's thread (see [`crate::inline`]): the
    /// system does so, and this thread runs (or has entered) the runtime its actors run on.
    pub(crate) fn inline_here(&self) -> bool {
        self.inline
            && self.runtime.as_ref().is_some_and(|runtime| {
                tokio::runtime::Handle::try_current().is_ok_and(|here| here.id() == runtime.id())
            })
    }

    /// The clock of a system whose asks wait `ask_timeout`, on `runtime`.
    pub(crate) fn new(ask_timeout: Duration, runtime: Option<tokio::runtime::Handle>) -> AskClock {
        let tick = (ask_timeout / TICKS_PER_TIMEOUT).clamp(SHORTEST_TICK, LONGEST_TICK);
        AskClock {
            timeout: ask_timeout,
            tick,
            timeout_ticks: ticks_of(ask_timeout, tick),
            ticks: AtomicU64::new(0),
            runtime,
            inline: true,
            running: AtomicBool::new(false),
            used: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            task: Mutex::new(None),
            shards: Default::default(),
        }
    }

    /// How long an ask waits for its reply, unless it says otherwise.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The granularity of swept asks' timeouts: they fail at most this late.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn tick(&self) -> Duration {
        self.tick
    }

    /// A timer for an ask that waits `timeout` from now, kept by this clock; `None` if the
    /// ask needs a tokio timer (its timeout is too short for the clock's tick, or too long
    /// to be a deadline, or the clock cannot run).
    #[inline]
    pub(crate) fn timer(self: &Arc<Self>, timeout: Duration) -> Option<AskTimer<'_>> {
        if self.runtime.is_none()
            || timeout < self.tick * SWEPT_FROM_TICKS
            || self.stopped.load(Ordering::Relaxed)
        {
            return None;
        }
        let ticks =
            if timeout == self.timeout { self.timeout_ticks } else { ticks_of(timeout, self.tick) };
        // The tick under way is partly gone: one more (see the module docs).
        let deadline = self.ticks.load(Ordering::Relaxed).checked_add(ticks)?.checked_add(1)?;
        Some(AskTimer { clock: self, deadline, timeout, key: None, fallback: None })
    }

    /// Takes an ask's deadline, to wake `waker` once it has passed; `None` if the clock
    /// has stopped (the ask needs a tokio timer).
    fn enter(self: &Arc<Self>, deadline: u64, waker: &Waker) -> Option<Key> {
        let shard = shard_of_this_thread();
        let mut d = self.lock(shard);
        // Read under the lock: `stop` sets it before it looks for waiting asks.
        if self.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let slot = d.insert(deadline, waker.clone());
        drop(d);
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        // After the deadline is in: a clock deciding to stop looks for it after it clears
        // `running` (see `run`), so one of the two sees the other.
        if !self.running.load(Ordering::SeqCst) {
            self.start();
        }
        Some(Key { shard, slot })
    }

    /// Whether the ask at `key` has expired; if not, `waker` is the one to wake.
    fn poll_key(&self, key: Key, waker: &Waker) -> Poll<()> {
        let mut d = self.lock(key.shard);
        match &mut d.slots[key.slot as usize].state {
            State::Expired => Poll::Ready(()),
            State::Waiting(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                Poll::Pending
            }
            State::Free => unreachable!("an ask's slot is freed only by its ask"),
        }
    }

    /// The ask at `key` is done (answered, failed, expired or dropped): its slot is free.
    fn leave(&self, key: Key) {
        let waker = self.lock(key.shard).remove(key.slot);
        drop(waker); // outside the lock
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Deadlines> {
        self.shards[shard].0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cold]
    fn start(self: &Arc<Self>) {
        let Some(runtime) = &self.runtime else { return };
        if self.running.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return;
        }
        let task = runtime.spawn(run(Arc::downgrade(self), self.tick));
        let mut slot = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(task.abort_handle());
    }

    /// Counts a tick and wakes every ask whose deadline it reaches; returns how many asks
    /// still hold a slot.
    fn tick_and_sweep(&self) -> usize {
        let now = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        let mut live = 0;
        let mut expired = Vec::new();
        for shard in 0..SHARDS {
            let mut d = self.lock(shard);
            d.expire(now, &mut expired);
            live += d.live;
            drop(d);
            // Woken outside the lock: they take it again to see they expired.
            expired.drain(..).for_each(Waker::wake);
        }
        live
    }

    /// How many asks hold a slot.
    fn live(&self) -> usize {
        (0..SHARDS).map(|shard| self.lock(shard).live).sum()
    }

    /// The system shuts down: the clock takes no new asks, and stops once none waits (at
    /// once, if none does).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if self.live() > 0 {
            return; // the clock stops by itself once they are done
        }
        self.running.store(false, Ordering::SeqCst);
        let slot = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = slot {
            task.abort();
        }
    }

    /// Whether the clock's task is running (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

impl Drop for AskClock {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The clock's task: every tick, wakes the asks whose deadline passed; stops after a tick
/// without any ask made or waiting, or once the system has shut down and none waits.
async fn run(clock: std::sync::Weak<AskClock>, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(clock) = clock.upgrade() else { return };
        let live = clock.tick_and_sweep();
        let asked = clock.used.swap(false, Ordering::Relaxed);
        if live == 0 && (!asked || clock.stopped.load(Ordering::SeqCst)) {
            clock.running.store(false, Ordering::SeqCst);
            // An ask that took a slot meanwhile may have seen the clock still running and
            // not started it: look again, after clearing `running` (see `AskClock::enter`).
            if clock.live() == 0
                || clock
                    .running
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                return;
            }
        }
    }
}

/// How many ticks `timeout` spans, rounded up.
fn ticks_of(timeout: Duration, tick: Duration) -> u64 {
    let (timeout, tick) = (timeout.as_nanos(), tick.as_nanos().max(1));
    u64::try_from(timeout.div_ceil(tick)).unwrap_or(u64::MAX)
}

impl Deadlines {
    fn insert(&mut self, deadline: u64, waker: Waker) -> u32 {
        self.live += 1;
        if self.earliest.is_none_or(|e| deadline < e) {
            self.earliest = Some(deadline);
        }
        let slot = Slot { deadline, state: State::Waiting(waker) };
        match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 asks wait")
            }
        }
    }

    /// Frees a slot; gives back its waker, to drop outside the lock.
    fn remove(&mut self, at: u32) -> Option<Waker> {
        let state = std::mem::replace(&mut self.slots[at as usize].state, State::Free);
        self.free.push(at);
        self.live -= 1;
        if self.live == 0 {
            self.earliest = None;
            if self.slots.len() > 1024 {
                // A burst of waiting asks is over: give the room back.
                self.slots = Vec::new();
                self.free = Vec::new();
            }
        }
        match state {
            State::Waiting(w) => Some(w),
            State::Expired | State::Free => None,
        }
    }

    /// Marks the waiting asks whose deadline passed as expired, their wakers into `woken`.
    fn expire(&mut self, now: u64, woken: &mut Vec<Waker>) {
        if self.earliest.is_none_or(|e| now < e) {
            return;
        }
        let mut earliest = None;
        for slot in &mut self.slots {
            if !matches!(slot.state, State::Waiting(_)) {
                continue;
            }
            if slot.deadline <= now {
                if let State::Waiting(w) = std::mem::replace(&mut slot.state, State::Expired) {
                    woken.push(w);
                }
            } else if earliest.is_none_or(|e| slot.deadline < e) {
                earliest = Some(slot.deadline);
            }
        }
        self.earliest = earliest;
    }
}

/// Which shard this thread's asks take their deadlines in.
fn shard_of_this_thread() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SHARD: Cell<usize> = const { Cell::new(usize::MAX) });
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

/// An ask's timeout, kept by its system's [`AskClock`]: ready once its deadline has passed
/// (and the clock has seen it). Leaves the clock when dropped.
#[derive(Debug)]
pub(crate) struct AskTimer<'a> {
    clock: &'a Arc<AskClock>,
    /// The tick count at which it expires.
    deadline: u64,
    /// The ask's timeout (for a tokio timer instead, counted from its first wait).
    timeout: Duration,
    /// Its slot, once it waited.
    key: Option<Key>,
    /// A tokio timer instead, if the clock stopped before the ask first waited.
    fallback: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl AskTimer<'_> {
    /// Ready once the ask's deadline has passed; registers `cx` to be woken then.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(key) = self.key {
            return self.clock.poll_key(key, cx.waker());
        }
        if self.fallback.is_none() {
            match self.clock.enter(self.deadline, cx.waker()) {
                Some(key) => {
                    self.key = Some(key);
                    return Poll::Pending;
                }
                None => self.fallback = Some(Box::pin(tokio::time::sleep(self.timeout))),
            }
        }
        self.fallback.as_mut().map_or(Poll::Pending, |sleep| sleep.as_mut().poll(cx))
    }
}

impl Drop for AskTimer<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.clock.leave(key);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::future::{Future, poll_fn};
    use tokio::time::Instant;

    /// The clock starts with the first ask, keeps running while asks come, stops after a
    /// tick without one, starts again with the next, and never after a shutdown. On paused
    /// time: the runtime advances the clock's sleeps itself, no waiting.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn runs_while_asked_and_stops_when_idle_or_shut_down() {
        let clock = Arc::new(AskClock::new(
            Duration::from_secs(2),
            Some(tokio::runtime::Handle::current()),
        ));
        let tick = clock.tick();
        let ask = |clock: &Arc<AskClock>| {
            let mut timer = clock.timer(Duration::from_secs(2)).expect("swept");
            poll_fn(|cx| {
                assert!(timer.poll_expired(cx).is_pending());
                Poll::Ready(())
            })
            .now_or_never();
        };
        assert!(!clock.is_running());
        ask(&clock);
        assert!(clock.is_running());
        for _ in 0..5 {
            tokio::time::sleep(tick * 9 / 10).await;
            ask(&clock);
            assert!(clock.is_running(), "asked within every tick");
        }
        tokio::time::sleep(tick * 3).await;
        assert!(!clock.is_running(), "a whole tick without an ask");
        ask(&clock);
        assert!(clock.is_running());
        clock.stop();
        tokio::time::sleep(tick * 3).await;
        assert!(clock.timer(Duration::from_secs(2)).is_none(), "never again after a shutdown");
        assert!(!clock.is_running());
    }

    /// An ask waiting times out at its deadline, at most two ticks late; the clock keeps
    /// running while it waits (no ask comes meanwhile) and stops after it. One answered
    /// first leaves no slot behind.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_waiting_ask_expires_within_two_ticks_of_its_deadline() {
        let clock = Arc::new(AskClock::new(
            Duration::from_secs(1),
            Some(tokio::runtime::Handle::current()),
        ));
        let start = Instant::now();
        let timeout = Duration::from_millis(300);
        let mut answered = clock.timer(timeout).expect("swept");
        poll_fn(|cx| {
            assert!(answered.poll_expired(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        drop(answered);
        let mut timer = clock.timer(timeout).expect("swept");
        poll_fn(|cx| timer.poll_expired(cx)).await;
        let waited = start.elapsed();
        assert!(waited >= timeout && waited <= timeout + 2 * clock.tick(), "{waited:?}");
        drop(timer);
        assert_eq!(clock.live(), 0);
        tokio::time::sleep(clock.tick() * 3).await;
        assert!(!clock.is_running());
    }

    /// At shutdown the clock stops only once the asks waiting are done, and asks made
    /// after it get a tokio timer.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_shutdown_lets_waiting_asks_expire_first() {
        let clock = Arc::new(AskClock::new(
            Duration::from_secs(1),
            Some(tokio::runtime::Handle::current()),
        ));
        let start = Instant::now();
        let mut timer = clock.timer(Duration::from_secs(1)).expect("swept");
        poll_fn(|cx| {
            assert!(timer.poll_expired(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        clock.stop();
        assert!(clock.is_running(), "an ask still waits");
        poll_fn(|cx| timer.poll_expired(cx)).await;
        assert!(start.elapsed() >= Duration::from_secs(1));
        drop(timer);
        tokio::time::sleep(clock.tick() * 3).await;
        assert!(!clock.is_running());
        assert!(clock.timer(Duration::from_secs(1)).is_none());
    }

    #[test]
    fn short_timeouts_or_no_runtime_get_a_tokio_timer() {
        let clock = Arc::new(AskClock::new(Duration::from_secs(5), None));
        assert!(clock.timer(Duration::from_secs(5)).is_none());
        assert_eq!(clock.tick(), LONGEST_TICK);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let clock = Arc::new(AskClock::new(Duration::from_secs(5), Some(rt.handle().clone())));
        let _guard = rt.enter();
        assert!(clock.timer(LONGEST_TICK * SWEPT_FROM_TICKS - Duration::from_millis(1)).is_none());
        assert!(clock.timer(LONGEST_TICK * SWEPT_FROM_TICKS).is_some());
        assert_eq!(AskClock::new(Duration::from_millis(60), None).tick(), SHORTEST_TICK);
    }

    /// Polls once; for the tests' synchronous steps.
    trait NowOrNever: Future + Sized {
        fn now_or_never(self) -> Option<Self::Output> {
            let mut fut = std::pin::pin!(self);
            let waker = Waker::noop();
            match fut.as_mut().poll(&mut Context::from_waker(waker)) {
                Poll::Ready(out) => Some(out),
                Poll::Pending => None,
            }
        }
    }
    impl<F: Future> NowOrNever for F {}
}
