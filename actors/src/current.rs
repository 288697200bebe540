//! The actor whose handler is running on this thread, if any.
//!
//! A send reads it to stamp the envelope with the sender's id and epoch; a send from code that
//! is not inside a handler (plain code, a detached task) is a send from outside the system.

use std::cell::Cell;

use amber_snapshot::Epoch;

use crate::ActorId;

/// The running actor's identity, epoch and ask depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) id: ActorId,
    pub(crate) epoch: Epoch,
    /// Its ask depth (see [`amber_snapshot::ActorCut::depth`]), carried by its asks.
    pub(crate) depth: u8,
}

thread_local! {
    static CURRENT: Cell<Option<Running>> = const { Cell::new(None) };
}

/// The actor whose handler is being polled on this thread.
#[inline]
pub(crate) fn current() -> Option<Running> {
    CURRENT.with(Cell::get)
}

/// Sets the running actor and returns the previous one, to be restored after the poll.
#[inline]
pub(crate) fn enter(running: Option<Running>) -> Option<Running> {
    CURRENT.with(|c| c.replace(running))
}
