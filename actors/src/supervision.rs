//! Spawn options and restart policies (one-for-one supervision).
//!
//! Every actor spawned from inside another actor (through [`Context::spawn`] and friends) is
//! that actor's child. When a child panics it is either stopped or, if it was spawned with a
//! [`RestartPolicy::OnPanic`] and a factory, rebuilt in place: same [`ActorId`], same mailbox,
//! queued messages kept (the one that panicked is dropped, and its asker gets
//! [`AskError::NoReply`]). The parent hears of each restart and of the final exit through
//! [`Actor::on_child_event`]. A parent stops its children, and waits for them, before its own
//! `on_stop` runs.
//!
//! ```text
//!   system ── root ──┬── child A        (RestartPolicy::Never: a panic stops A)
//!                    └── child B        (OnPanic { 3 in 10 s }: rebuilt from its factory;
//!                                        the 4th panic in 10 s stops it: RestartLimit)
//! ```
//!
//! [`Context::spawn`]: crate::Context::spawn
//! [`ActorId`]: crate::ActorId
//! [`AskError::NoReply`]: crate::AskError::NoReply
//! [`Actor::on_child_event`]: crate::Actor::on_child_event

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use amber_snapshot::{SpawnCapacity, SpawnRestart};

use crate::runner::Runner;
use crate::{Actor, MailboxCapacity};

/// What happens when an actor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// The actor stops with [`ExitReason::Panicked`](crate::ExitReason::Panicked).
    #[default]
    Never,
    /// The actor is rebuilt from its factory, at most `max_restarts` times within any window
    /// of length `within`; one more panic stops it with
    /// [`ExitReason::RestartLimit`](crate::ExitReason::RestartLimit).
    OnPanic {
        /// Restarts allowed within the window.
        max_restarts: u32,
        /// The window.
        within: Duration,
    },
}

impl RestartPolicy {
    /// Restart on panic, at most `max_restarts` times within `within`.
    pub fn on_panic(max_restarts: u32, within: Duration) -> Self {
        RestartPolicy::OnPanic { max_restarts, within }
    }

    /// The policy as a checkpoint records it.
    pub(crate) fn recorded(self) -> SpawnRestart {
        match self {
            RestartPolicy::Never => SpawnRestart::Never,
            RestartPolicy::OnPanic { max_restarts, within } => {
                SpawnRestart::OnPanic { max_restarts, within }
            }
        }
    }

    /// The policy a checkpoint recorded.
    pub(crate) fn from_recorded(recorded: SpawnRestart) -> Self {
        match recorded {
            SpawnRestart::Never => RestartPolicy::Never,
            SpawnRestart::OnPanic { max_restarts, within } => {
                RestartPolicy::OnPanic { max_restarts, within }
            }
        }
    }
}

impl MailboxCapacity {
    /// The capacity of a mailbox whose data lane holds at most `limit` messages
    /// (`usize::MAX`: unbounded), as a checkpoint records it.
    pub(crate) fn recorded(limit: usize) -> SpawnCapacity {
        if limit == usize::MAX {
            SpawnCapacity::Unbounded
        } else {
            SpawnCapacity::Bounded(limit as u64)
        }
    }

    /// The mailbox limit a checkpoint recorded; `None`: the system's default.
    pub(crate) fn limit_of(recorded: SpawnCapacity) -> Option<usize> {
        match recorded {
            SpawnCapacity::SystemDefault => None,
            SpawnCapacity::Bounded(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            SpawnCapacity::Unbounded => Some(usize::MAX),
        }
    }
}

impl<A: Actor> Runner<A> {
    /// The spawn options a snapshot or a move records for this actor, so that its restore
    /// or arrival gives them back: its mailbox capacity, and its restart policy if it can
    /// restart at all (an actor without a factory stops on a panic whatever its policy, so
    /// it is recorded as [`SpawnRestart::Never`]).
    pub(crate) fn spawn_record(&self) -> (SpawnCapacity, SpawnRestart) {
        let capacity = MailboxCapacity::recorded(self.inbox.core().capacity());
        let restart = match self.factory {
            Some(_) => self.restarts.policy.recorded(),
            None => SpawnRestart::Never,
        };
        (capacity, restart)
    }
}

/// How to spawn an actor: its name, mailbox capacity and restart policy.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    pub(crate) name: Option<String>,
    pub(crate) capacity: Option<MailboxCapacity>,
    pub(crate) restart: RestartPolicy,
    /// Where a message recorded for a snapshot the actor was born after goes (see
    /// [`Context::spawn_registered_from_kept`](crate::Context::spawn_registered_from_kept)).
    pub(crate) born_of: Option<std::sync::Arc<crate::passivate::Redirect>>,
}

impl SpawnOptions {
    /// Default options: no name, the system's mailbox capacity, no restarts.
    pub fn new() -> Self {
        SpawnOptions::default()
    }

    /// Registers the actor under `name` (unique among live actors of the system).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the mailbox capacity.
    pub fn capacity(mut self, capacity: MailboxCapacity) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Sets the restart policy (used with a factory: see `spawn_with`).
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }
}

/// What follows a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterPanic {
    /// The policy never restarts: stop.
    Stop,
    /// Restart; this is the `n`th restart within the window.
    Restart(u32),
    /// The limit was reached after `n` restarts within the window: stop.
    LimitReached(u32),
}

/// The restarts an actor has used within its policy's window.
#[derive(Debug)]
pub(crate) struct Restarts {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl Restarts {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        Restarts { policy, recent: VecDeque::new() }
    }

    /// Records a panic at `now` and decides what follows it.
    pub(crate) fn on_panic(&mut self, now: Instant) -> AfterPanic {
        match self.policy {
            RestartPolicy::Never => AfterPanic::Stop,
            RestartPolicy::OnPanic { max_restarts, within } => {
                while self.recent.front().is_some_and(|t| now.duration_since(*t) > within) {
                    self.recent.pop_front();
                }
                let used = self.recent.len() as u32;
                if used >= max_restarts {
                    return AfterPanic::LimitReached(used);
                }
                self.recent.push_back(now);
                AfterPanic::Restart(used + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_restarts_and_forgets_old_ones() {
        let mut r = Restarts::new(RestartPolicy::on_panic(2, Duration::from_secs(10)));
        let t0 = Instant::now();
        assert_eq!(r.on_panic(t0), AfterPanic::Restart(1));
        assert_eq!(r.on_panic(t0 + Duration::from_secs(1)), AfterPanic::Restart(2));
        assert_eq!(r.on_panic(t0 + Duration::from_secs(2)), AfterPanic::LimitReached(2));
        assert_eq!(r.on_panic(t0 + Duration::from_millis(10_500)), AfterPanic::Restart(2));
    }

    #[test]
    fn never_never_restarts() {
        assert_eq!(Restarts::new(RestartPolicy::Never).on_panic(Instant::now()), AfterPanic::Stop);
    }
}
