//! Mailboxes: a bounded (or unbounded) data lane plus a control lane that overtakes it.
//!
//! The synchronization core lives in [`core`] and is generic over the item type so loom can
//! model it with plain integers; [`Mailbox`] binds it to an actor type.

pub(crate) mod core;
mod typed;

pub(crate) use self::core::{Inbox, Next, PushError};
pub(crate) use typed::{AnyMailbox, Mailbox, inbound_envelope, terminated};

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
