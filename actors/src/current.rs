//! The actor whose handler is running on this thread, if any.
//!
//! A send reads it to stamp the envelope with the sender's id and epoch; a send from code that
//! is not inside a handler (plain code, a detached task) is a send from outside the system.

use std::cell::Cell;
use std::sync::Arc;

use amber_snapshot::Epoch;

use crate::ActorId;
use crate::remote::RemoteRoute;

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

thread_local! {
    static OWED_ROOM: Cell<Option<Arc<dyn RemoteRoute>>> = const { Cell::new(None) };
}

/// A send from the running handler queued beyond the bound of the link `route` leads to:
/// the actor waits for room on it before its next message (see [`take_owed_room`]).
pub(crate) fn owe_room(route: Arc<dyn RemoteRoute>) {
    OWED_ROOM.with(|owed| owed.set(Some(route)));
}

/// The link a send of the turn just polled on this thread overfilled, if any, taken (the
/// turn's poll wrapper moves it to the actor's runner after each poll).
pub(crate) fn take_owed_room() -> Option<Arc<dyn RemoteRoute>> {
    OWED_ROOM.with(Cell::take)
}
