//! The spans and lines a snapshot, a checkpoint write and a restore leave in `tracing`: one
//! span each (`snapshot`, `checkpoint`, `restore`) carrying its key figures, and one INFO line
//! per checkpoint written and per restore. Nothing here runs per message: only once per
//! snapshot, checkpoint or restore.
//!
//! The INFO lines carry the figures themselves and are logged beside their span, not in it:
//! a log-line subscriber (`tracing_subscriber::fmt`) prints each figure once, and a
//! span-aware one (OpenTelemetry, `FmtSpan::CLOSE`) gets the span with the same figures.
//!
//! The figures: `epoch`, `checkpoint` (its id), `actors`, `in_flight` (messages recorded in
//! flight), `bytes` (the checkpoint as written) and `ms` (how long it took).

use std::time::Duration;

use amber_snapshot::{Checkpoint, CheckpointInfo, Epoch};
use tracing::Span;
use tracing::field::{Empty, display};

/// Milliseconds, to the microsecond.
fn ms(took: Duration) -> f64 {
    took.as_micros() as f64 / 1e3
}

/// The span of one snapshot attempt; its figures are recorded as they become known.
pub(crate) fn snapshot_span() -> Span {
    tracing::info_span!("snapshot", epoch = Empty, actors = Empty, in_flight = Empty, ms = Empty)
}

/// The snapshot being taken is `epoch`: recorded on the current span, the snapshot's.
pub(crate) fn snapshot_started(epoch: amber_snapshot::Epoch) {
    Span::current().record("epoch", display(epoch));
}

/// The snapshot of `span` ended after `took`, with `checkpoint` if it completed (its epoch
/// is recorded as it starts, by [`snapshot_started`]).
pub(crate) fn snapshot_ended(span: &Span, checkpoint: Option<&Checkpoint>, took: Duration) {
    if let Some(checkpoint) = checkpoint {
        span.record("actors", checkpoint.manifest.actors.len());
        span.record("in_flight", checkpoint.in_flight.len());
    }
    span.record("ms", ms(took));
}

/// The span of one checkpoint write: a snapshot and its write to a store.
pub(crate) fn checkpoint_span() -> Span {
    tracing::info_span!(
        "checkpoint",
        checkpoint = Empty,
        epoch = Empty,
        actors = Empty,
        in_flight = Empty,
        bytes = Empty,
        ms = Empty
    )
}

/// What a written checkpoint held, for its figures (taken where the checkpoint is, so that it
/// need not travel to where they are logged).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    epoch: Epoch,
    actors: usize,
    in_flight: usize,
}

impl Written {
    pub(crate) fn of(checkpoint: &Checkpoint) -> Written {
        Written {
            epoch: checkpoint.manifest.epoch,
            actors: checkpoint.manifest.actors.len(),
            in_flight: checkpoint.in_flight.len(),
        }
    }
}

/// A checkpoint holding `written` was written (as `info`, in `took`): its figures on `span`,
/// and the INFO line.
pub(crate) fn checkpoint_written(
    span: &Span,
    written: &Written,
    info: &CheckpointInfo,
    took: Duration,
) {
    let Written { epoch, actors, in_flight } = *written;
    span.record("checkpoint", display(info.id));
    span.record("epoch", display(epoch));
    span.record("actors", actors);
    span.record("in_flight", in_flight);
    span.record("bytes", info.bytes);
    span.record("ms", ms(took));
    tracing::info!(
        checkpoint = %info.id,
        %epoch,
        actors,
        in_flight,
        bytes = info.bytes,
        ms = ms(took),
        "checkpoint written"
    );
}

/// The span of one restore from `checkpoint` (all of it, or this node's share).
pub(crate) fn restore_span(checkpoint: &Checkpoint) -> Span {
    tracing::info_span!(
        "restore",
        checkpoint = %checkpoint.manifest.id,
        epoch = %checkpoint.manifest.epoch,
        actors = Empty,
        in_flight = Empty,
        ms = Empty
    )
}

/// The restore of `span` rebuilt `actors` actors and queued `in_flight` recorded messages in
/// `took`: its figures on `span`, and the INFO line.
pub(crate) fn restored(
    span: &Span,
    checkpoint: &Checkpoint,
    actors: usize,
    in_flight: usize,
    took: Duration,
) {
    span.record("actors", actors);
    span.record("in_flight", in_flight);
    span.record("ms", ms(took));
    tracing::info!(
        checkpoint = %checkpoint.manifest.id,
        epoch = %checkpoint.manifest.epoch,
        actors,
        in_flight,
        ms = ms(took),
        "restored from checkpoint"
    );
}
