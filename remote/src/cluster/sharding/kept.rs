//! The ref an [`EntityRef`](super::EntityRef) found, shared by its clones.
//!
//! The first ref found is read without a lock for as long as it works (the steady state:
//! an entity that runs where it was found, or was moved and is forwarded to); once it has
//! failed, the refs found after it are kept under a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use amber_actors::{Actor, ActorId, ActorRef, TrySendError};

pub(super) struct Kept<E: Actor> {
    first: OnceLock<ActorRef<E>>,
    /// Set once `first` failed: from then on `later` holds the ref, if any.
    failed: AtomicBool,
    later: Mutex<Option<ActorRef<E>>>,
    /// When a message last went through this ref (nanoseconds on the region's clock), with
    /// passivation on (see [`Kept::stale`]).
    last: AtomicU64,
}

impl<E: Actor> Default for Kept<E> {
    fn default() -> Self {
        Kept {
            first: OnceLock::new(),
            failed: AtomicBool::new(false),
            later: Mutex::new(None),
            last: AtomicU64::new(0),
        }
    }
}

/// What [`Kept::try_tell`] did with a message: sent it, or gave it back (the kept ref, if
/// any, was full, or failed and is dropped).
pub(super) enum Sent<M> {
    Done,
    Back(M),
}

impl<E: Actor> Kept<E> {
    /// Sends `message` through the kept ref without waiting, if there is one.
    pub(super) fn try_tell(&self, message: E::Msg) -> Sent<E::Msg> {
        let tried = if !self.failed.load(Ordering::Acquire) {
            match self.first.get() {
                Some(entity) => (entity.id(), entity.try_tell(message)),
                None => return Sent::Back(message),
            }
        } else {
            let later = self.later.lock().unwrap_or_else(PoisonError::into_inner);
            match later.as_ref() {
                Some(entity) => (entity.id(), entity.try_tell(message)),
                None => return Sent::Back(message),
            }
        };
        match tried {
            (_, Ok(())) => Sent::Done,
            (_, Err(TrySendError::Full(back))) => Sent::Back(back),
            (id, Err(TrySendError::Stopped(back))) => {
                self.forget(id);
                Sent::Back(back)
            }
        }
    }

    /// Notes a message sent through this ref at `now` (nanoseconds on the region's clock);
    /// if the one before went more than `after` earlier, the entity may have passivated
    /// since (it had no message from here for that long): the kept ref is dropped, so that
    /// the entity is looked up again through its shard's owner (which starts it again from
    /// its kept state) instead of sent to where it was. A tell sent to where it was would
    /// still arrive (a tell from another node to a passivated entity is redirected to its
    /// keeper: see `keeper.rs`), but through the keeper, a detour that this avoids.
    pub(super) fn stale(&self, now: u64, after: u64) {
        let last = self.last.swap(now, Ordering::Relaxed);
        if now.saturating_sub(last) <= after {
            return;
        }
        if let Some(entity) = self.get() {
            self.forget(entity.id());
        }
    }

    /// The kept ref, if there is one.
    pub(super) fn get(&self) -> Option<ActorRef<E>> {
        if !self.failed.load(Ordering::Acquire) {
            return self.first.get().cloned();
        }
        self.later.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Keeps `entity` (a ref found concurrently may be kept instead: both reach the entity).
    pub(super) fn set(&self, entity: ActorRef<E>) {
        if !self.failed.load(Ordering::Acquire) {
            let _ = self.first.set(entity);
            return;
        }
        *self.later.lock().unwrap_or_else(PoisonError::into_inner) = Some(entity);
    }

    /// Drops the kept ref if it is still the one to `id` (it failed).
    pub(super) fn forget(&self, id: ActorId) {
        if !self.failed.load(Ordering::Acquire) {
            if self.first.get().is_some_and(|first| first.id() == id) {
                self.failed.store(true, Ordering::Release);
            }
            return;
        }
        let mut later = self.later.lock().unwrap_or_else(PoisonError::into_inner);
        if later.as_ref().is_some_and(|l| l.id() == id) {
            *later = None;
        }
    }
}
