//! The one place that picks std or loom synchronization primitives.
//!
//! Everything concurrent in the mailbox core imports `crate::loom::sync::…`; building with
//! `RUSTFLAGS="--cfg loom"` swaps in loom's model-checked versions.

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
