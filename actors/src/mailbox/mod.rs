//! Mailboxes: a bounded (or unbounded) data lane plus a control lane that overtakes it.
//!
//! The synchronization core lives in [`core`]: the queue, the control lane, the actor's cut
//! and its lifecycle, nothing else. It is generic over the item type so loom can model it
//! with plain integers; [`Mailbox`](crate::target::Mailbox) binds it to an actor type, and
//! [`target`](crate::target) decides what a refused push becomes (forwarded to where the
//! actor moved, or given back to its sender).

pub(crate) mod core;

pub(crate) use self::core::{CutFor, Inbox, Next, PushError, Watch, Watcher};

/// How many messages an actor's data lane holds before senders wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxCapacity {
    /// At most this many messages wait in the queue; `tell` waits and `try_tell` fails
    /// with [`TrySendError::Full`](crate::TrySendError::Full) beyond it.
    Bounded(usize),
    /// No limit: sends never wait. Use where a producer cannot be slowed down.
    Unbounded,
}

impl Default for MailboxCapacity {
    fn default() -> Self {
        MailboxCapacity::Bounded(DEFAULT_CAPACITY)
    }
}

/// The default data-lane capacity of a mailbox.
pub const DEFAULT_CAPACITY: usize = 1024;

impl MailboxCapacity {
    pub(crate) fn limit(self) -> usize {
        match self {
            MailboxCapacity::Bounded(n) => n.max(1),
            MailboxCapacity::Unbounded => usize::MAX,
        }
    }
}
