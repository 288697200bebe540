//! Decoding values that hold [`ActorRef`]s: refs resolve against the system doing the
//! decoding.

use std::cell::RefCell;
use std::sync::Arc;

use amber_snapshot::Epoch;

use crate::target::Mailbox;
use crate::{Actor, ActorId, ActorRef, ActorSystem, ExitReason, LookupError};

thread_local! {
    static DECODING: RefCell<Vec<ActorSystem>> = const { RefCell::new(Vec::new()) };
}

/// Marks the system that refs decoded on this thread resolve against, until dropped.
pub(crate) struct DecodeScope;

impl DecodeScope {
    pub(crate) fn enter(system: ActorSystem) -> DecodeScope {
        DECODING.with(|d| d.borrow_mut().push(system));
        DecodeScope
    }
}

impl Drop for DecodeScope {
    fn drop(&mut self) {
        DECODING.with(|d| d.borrow_mut().pop());
    }
}

/// Resolves a decoded [`ActorId`] to a ref, against the system of the enclosing
/// [`ActorSystem::decode`].
pub(crate) fn resolve<A: Actor>(id: ActorId) -> Result<ActorRef<A>, String> {
    let system = DECODING
        .with(|d| d.borrow().last().cloned())
        .ok_or_else(|| format!("ActorRef {id} can only be decoded through ActorSystem::decode"))?;
    match system.lookup_id::<A>(id) {
        Ok(r) => Ok(r),
        Err(LookupError::NotFound(_)) => Ok(match system.remote_route(id) {
            Some(route) => system.remote_ref(id, route),
            None => dead_ref(&system, id),
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// A ref to an actor that no longer exists: every send fails with a stopped error.
fn dead_ref<A: Actor>(system: &ActorSystem, id: ActorId) -> ActorRef<A> {
    let mailbox: Arc<Mailbox<A>> = system.new_mailbox::<A>(id, None, Some(1), Epoch::ZERO);
    mailbox.terminate(ExitReason::Stopped);
    ActorRef::from_mailbox(mailbox)
}
