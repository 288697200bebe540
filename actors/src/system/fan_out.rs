//! Sharing a batch of work out over the runtime's workers or over threads, for work whose
//! items are cheap and many (a restore's 100k actors to decode and to start).
//!
//! [`fan_out`] hands the items out in chunks to one helper task per runtime worker. Work
//! done on a worker is cheaper where it spawns tasks (a spawn from a worker goes to its
//! local run queue; one from any other thread takes the runtime's inject-queue lock and
//! wakes a worker) and it runs on every core at once. The caller claims chunks too if it is
//! itself a task (its worker would sit blocked otherwise) or if no chunk finishes for a
//! while (no worker is free): the work never waits for a helper that does not come, and a
//! helper that runs late finds nothing left.
//!
//! [`in_parts`] does the same with scoped threads, for work that borrows.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// How long a caller of [`fan_out`] waits for the workers to finish a chunk before it helps.
const STALL: std::time::Duration = std::time::Duration::from_millis(5);

/// Calls `each` on every item, in chunks of `chunk`, on one task per worker of `runtime`
/// and on the calling thread if it is a task itself or the workers do not get to it;
/// returns when every call has returned. Items are processed in no particular order.
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
    // A caller that is one of the runtime's tasks helps from the start: its worker would
    // otherwise sit blocked. Any other (`main` in `block_on`, a plain thread) leaves the work
    // to the workers, whose spawns are cheaper and who have the cores, and steps in only if
    // no chunk finishes for a while (the workers are busy elsewhere, or blocked).
    if tokio::task::try_id().is_some() {
        batch.work(each);
    }
    let mut unfinished = batch.unfinished.lock().unwrap_or_else(PoisonError::into_inner);
    let mut seen = usize::MAX;
    while *unfinished > 0 {
        if *unfinished == seen {
            drop(unfinished);
            batch.work(each);
            seen = usize::MAX;
            unfinished = batch.unfinished.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        seen = *unfinished;
        unfinished = batch
            .finished
            .wait_timeout(unfinished, STALL)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    drop(unfinished);
    assert!(
        !batch.panicked.load(Ordering::Relaxed),
        "a call shared out to a runtime worker panicked"
    );
}

/// Calls `work` on every chunk of `chunk` items of `items`, on the calling thread and, when
/// there are at least `threads_from` items, on scoped threads too (one per core, the caller
/// included), each inside `runtime`'s context; returns the results in the order of the
/// chunks. Threads claim chunks one at a time, so a thread that gets less CPU (a shared
/// machine) does less of the work instead of holding up the rest.
///
/// For work that borrows (a checkpoint being restored) and so cannot go to the runtime's
/// tasks. If a thread cannot be started, the others do its share.
pub(crate) fn in_parts<T: Sync, R: Send>(
    runtime: &tokio::runtime::Handle,
    items: &[T],
    chunk: usize,
    threads_from: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let chunk = chunk.max(1);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 || items.len() < threads_from.max(chunk + 1) {
        return items.chunks(chunk).map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let claim = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let from = index.saturating_mul(chunk);
            if from >= items.len() {
                return done;
            }
            done.push((index, work(&items[from..(from + chunk).min(items.len())])));
        }
    };
    let mut results = std::thread::scope(|scope| {
        let claim = &claim;
        let threads: Vec<_> = (1..cores)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("amber-restore".into())
                    .spawn_scoped(scope, move || {
                        let _runtime = runtime.enter();
                        claim()
                    })
                    .ok()
            })
            .collect();
        let mut results = claim();
        for thread in threads {
            match thread.join() {
                Ok(done) => results.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}
