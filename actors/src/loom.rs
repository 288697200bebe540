//! The one place that picks std or loom synchronization primitives.
//!
//! Every lock in this crate (the mailbox core, the late sink, the snapshot engine, a remote
//! ask's reply slot) and every atomic of the mailbox core is `crate::loom::sync::…` (or,
//! for a mailbox's queue, [`QueueMutex`]: parking_lot's outside loom);
//! building with `RUSTFLAGS="--cfg loom"` swaps in loom's model-checked versions, so a loom
//! model runs the very code that runs in production. What loom cannot run stays plain and
//! unmodelled under `cfg(loom)` too: the tokio oneshot answering a snapshot's caller (it
//! does not block), and the snapshot engine's `offload`, which runs its work inline when
//! there is no tokio runtime (as in a loom model).

// `Arc` stays std's under loom too: loom's `Arc` cannot hold trait objects, and the
// reference count is not what the models check.
#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::{Mutex, MutexGuard};
    pub(crate) use std::sync::Arc;

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
    }
}

/// Locks a mutex, ignoring poisoning: the critical sections in this crate run no user code,
/// so a poisoned lock still guards consistent data.
pub(crate) fn lock<T>(m: &sync::Mutex<T>) -> sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The lock of a mailbox's queue: taken by every send and by the consumer at every batch, so
/// contended under fan-in; parking_lot's (adaptive spinning, no poisoning) outside loom.
#[cfg(not(loom))]
pub(crate) type QueueMutex<T> = parking_lot::Mutex<T>;
#[cfg(loom)]
pub(crate) type QueueMutex<T> = loom::sync::Mutex<T>;

/// Locks a mailbox's queue (see [`QueueMutex`]).
#[cfg(not(loom))]
#[inline]
pub(crate) fn lock_queue<T>(m: &QueueMutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

/// Locks a mailbox's queue (see [`QueueMutex`]).
#[cfg(loom)]
pub(crate) fn lock_queue<T>(m: &QueueMutex<T>) -> sync::MutexGuard<'_, T> {
    lock(m)
}
