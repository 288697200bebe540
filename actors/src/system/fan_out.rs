//! Sharing a batch of work between the calling thread and the runtime's workers, for work
//! whose items are cheap and many (starting the actors of a restore: 100k spawns).
//!
//! The caller hands the items out in chunks: one helper task per runtime worker claims
//! chunks, and so does the caller itself, which returns once every chunk is done. Work done
//! on a worker is cheaper where it spawns tasks (a spawn from a worker goes to its local run
//! queue; one from any other thread takes the runtime's inject-queue lock and wakes a worker)
//! and it runs on every core at once. The caller claiming chunks too means the work never
//! waits for a helper to be scheduled: if no worker is free (or the runtime has a single
//! thread, the caller's own), the caller does it all, and a helper that runs late finds
//! nothing left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// A batch of items, handed out in chunks, and how many chunks are not finished yet.
struct Batch<T> {
    chunks: Mutex<Vec<Vec<T>>>,
    unfinished: Mutex<usize>,
    finished: Condvar,
    /// Whether a call panicked (on a helper: the caller panics too once all are done).
    panicked: AtomicBool,
}

impl<T> Batch<T> {
    /// Claims and processes chunks until none is left to claim.
    fn work(&self, each: fn(T)) {
        loop {
            let chunk = self.chunks.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some(chunk) = chunk else { return };
            // A panicking item must not leave the caller waiting forever for its chunk.
            let done = Done(self);
            chunk.into_iter().for_each(each);
            drop(done);
        }
    }
}

/// Marks a chunk finished when dropped (a panic in it included).
struct Done<'a, T>(&'a Batch<T>);

impl<T> Drop for Done<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.panicked.store(true, Ordering::Relaxed);
        }
        let mut unfinished = self.0.unfinished.lock().unwrap_or_else(PoisonError::into_inner);
        *unfinished -= 1;
        if *unfinished == 0 {
            self.0.finished.notify_all();
        }
    }
}

/// Calls `each` on every item, in chunks of `chunk`, on the calling thread and on one task
/// per worker of `runtime`; returns when every call has returned. Items are processed in no
/// particular order.
///
/// # Panics
///
/// If a call panicked (the calls of other chunks still ran).
pub(crate) fn fan_out<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    items: Vec<T>,
    chunk: usize,
    each: fn(T),
) {
    let workers = runtime.metrics().num_workers();
    if items.len() <= chunk || workers < 2 {
        items.into_iter().for_each(each);
        return;
    }
    let mut items = items.into_iter();
    let mut chunks = Vec::with_capacity(items.len().div_ceil(chunk));
    loop {
        let next: Vec<T> = items.by_ref().take(chunk).collect();
        if next.is_empty() {
            break;
        }
        chunks.push(next);
    }
    // Claimed from the end: the first items go first.
    chunks.reverse();
    let batch = Arc::new(Batch {
        unfinished: Mutex::new(chunks.len()),
        chunks: Mutex::new(chunks),
        finished: Condvar::new(),
        panicked: AtomicBool::new(false),
    });
    for _ in 0..workers {
        let batch = batch.clone();
        runtime.spawn(async move { batch.work(each) });
    }
    batch.work(each);
    // Only chunks a helper is in the middle of are left: each takes as long as one of ours.
    let mut unfinished = batch.unfinished.lock().unwrap_or_else(PoisonError::into_inner);
    while *unfinished > 0 {
        unfinished = batch.finished.wait(unfinished).unwrap_or_else(PoisonError::into_inner);
    }
    assert!(!batch.panicked.load(Ordering::Relaxed), "a call shared out to a runtime worker panicked");
}

/// Calls `work` on contiguous parts of `items` at once, on the calling thread and on scoped
/// threads (as many parts as the machine has cores, none shorter than `min_part`), each
/// inside `runtime`'s context; returns their results in the order of the parts.
///
/// For work that borrows (a checkpoint being restored) and so cannot go to the runtime's
/// tasks. If a thread cannot be started, its part runs on the calling thread.
pub(crate) fn in_parts<T: Send, R: Send>(
    runtime: &tokio::runtime::Handle,
    mut items: Vec<T>,
    min_part: usize,
    work: impl Fn(Vec<T>) -> R + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let parts = cores.min(items.len() / min_part.max(1)).max(1);
    if parts == 1 {
        return vec![work(items)];
    }
    let size = items.len().div_ceil(parts);
    let mut others = Vec::with_capacity(parts - 1);
    while items.len() > size {
        let at = (items.len() - 1) / size * size;
        others.push(items.split_off(at));
    }
    others.reverse();
    // A part stays in its slot until its thread takes it (or the caller, if the thread
    // cannot be started).
    let slots: Vec<Mutex<Option<Vec<T>>>> =
        others.into_iter().map(|part| Mutex::new(Some(part))).collect();
    let take = |slot: &Mutex<Option<Vec<T>>>| {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default()
    };
    let (work, take) = (&work, &take);
    std::thread::scope(|scope| {
        let threads: Vec<_> = slots
            .iter()
            .map(|slot| {
                std::thread::Builder::new().name("amber-restore".into()).spawn_scoped(
                    scope,
                    move || {
                        let _runtime = runtime.enter();
                        work(take(slot))
                    },
                )
            })
            .collect();
        let mut results = Vec::with_capacity(parts);
        results.push(work(items));
        for (thread, slot) in threads.into_iter().zip(&slots) {
            results.push(match thread {
                Ok(thread) => match thread.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(_) => work(take(slot)),
            });
        }
        results
    })
}
