//! What the runtime reports through the [`metrics`] facade. amber installs no recorder: with
//! none installed (the default) every call here is a no-op; install one (e.g.
//! `metrics-exporter-prometheus`) to collect them. Names and labels:
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `amber_snapshots_total` | counter | `outcome` | snapshot attempts started on this node: `completed`, `aborted`, `inconsistent`, `capture`, `refused` |
//! | `amber_snapshot_aborts_total` | counter | `reason` | aborted attempts by reason (`node_down`, `deadline`, `rejected`, …) |
//! | `amber_snapshot_duration_seconds` | histogram | | start to checkpoint in hand, completed attempts |
//! | `amber_snapshot_actors` | histogram | | actors in a completed snapshot |
//! | `amber_snapshot_in_flight` | histogram | | messages recorded in flight in a completed snapshot |
//! | `amber_checkpoint_bytes` | histogram | | size of a checkpoint written by `checkpoint`/`checkpoint_every`/`write_checkpoint` |
//! | `amber_checkpoint_write_seconds` | histogram | | time to write it to its store |
//! | `amber_mailbox_depth` | histogram | | messages queued at an actor's cut, one cut in [`SAMPLE`] |
//! | `amber_ask_latency_seconds` | histogram | | ask round trips, one ask in [`SAMPLE`] per thread |
//!
//! The remote crate adds the link metrics (`amber_link_queue_depth`, `amber_links_up_total`,
//! `amber_links_down_total`). Per-message paths are sampled, never measured every time.

use std::cell::Cell;
use std::time::Duration;

use amber_snapshot::{AbortReason, Checkpoint};

use crate::snapshot::{AbortCause, SnapshotError};

/// One in this many cuts (mailbox depth) and asks (latency, per thread) is measured.
pub const SAMPLE: u32 = 64;

thread_local! {
    static ASKS: Cell<u32> = const { Cell::new(0) };
    static CUTS: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread's next event of `counter` is the sampled one.
fn sampled(counter: &'static std::thread::LocalKey<Cell<u32>>) -> bool {
    counter.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n % SAMPLE == 0
    })
}

/// Whether to time this ask (see [`ask_latency`]).
#[inline]
pub(crate) fn sample_ask() -> bool {
    sampled(&ASKS)
}

/// A sampled ask's round trip.
pub(crate) fn ask_latency(elapsed: Duration) {
    metrics::histogram!("amber_ask_latency_seconds").record(elapsed.as_secs_f64());
}

/// An actor's cut found `queued` messages in its mailbox (recorded for one cut in
/// [`SAMPLE`]).
#[inline]
pub(crate) fn mailbox_depth(queued: usize) {
    if sampled(&CUTS) {
        metrics::histogram!("amber_mailbox_depth").record(queued as f64);
    }
}

/// The outcome of one snapshot attempt started on this node, after `elapsed`.
pub(crate) fn snapshot_attempt(result: &Result<Checkpoint, SnapshotError>, elapsed: Duration) {
    let outcome = match result {
        Ok(checkpoint) => {
            metrics::histogram!("amber_snapshot_duration_seconds").record(elapsed.as_secs_f64());
            metrics::histogram!("amber_snapshot_actors")
                .record(checkpoint.manifest.actors.len() as f64);
            metrics::histogram!("amber_snapshot_in_flight")
                .record(checkpoint.in_flight.len() as f64);
            "completed"
        }
        Err(SnapshotError::Aborted { reason, .. }) => {
            metrics::counter!("amber_snapshot_aborts_total", "reason" => abort_label(reason))
                .increment(1);
            "aborted"
        }
        Err(SnapshotError::Inconsistent { .. }) => "inconsistent",
        Err(SnapshotError::Capture { .. }) => "capture",
        Err(_) => "refused",
    };
    metrics::counter!("amber_snapshots_total", "outcome" => outcome).increment(1);
}

/// A checkpoint of `bytes` written to its store in `elapsed`.
pub(crate) fn checkpoint_written(bytes: u64, elapsed: Duration) {
    metrics::histogram!("amber_checkpoint_bytes").record(bytes as f64);
    metrics::histogram!("amber_checkpoint_write_seconds").record(elapsed.as_secs_f64());
}

/// The `reason` label of an aborted snapshot.
fn abort_label(cause: &AbortCause) -> &'static str {
    match cause {
        AbortCause::Protocol(reason) => match reason {
            AbortReason::NodeDown(_) => "node_down",
            AbortReason::Deadline => "deadline",
            AbortReason::Cancelled => "cancelled",
            AbortReason::Rejected { .. } => "rejected",
            AbortReason::RestorePending(_) => "restore_pending",
            AbortReason::Outsider { .. } => "outsider",
            AbortReason::CountMismatch { .. } => "count_mismatch",
            AbortReason::PartLost(_) => "part_lost",
            AbortReason::PartsLate => "parts_late",
            AbortReason::PartUnreadable(_) => "part_unreadable",
            _ => "protocol",
        },
        AbortCause::PartLost { .. } => "part_lost",
        AbortCause::PartsLate => "parts_late",
        AbortCause::PartDecode { .. } => "part_unreadable",
        AbortCause::ShuttingDown => "shutting_down",
        AbortCause::SystemDropped => "system_dropped",
        AbortCause::Start(_) => "start",
        AbortCause::Writer { .. } => "writer",
    }
}
