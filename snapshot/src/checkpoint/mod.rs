//! Checkpoints: consistent global snapshots as stored data.
//!
//! - `model`: the checkpoint as plain data ([`Checkpoint`], [`Manifest`], …).
//! - `format`: the versioned, checksummed file format ([`encode`], [`decode`]), shared by
//!   every store.
//! - `store`: the [`CheckpointStore`] trait; `fs`: [`FsStore`], the embedded default.
//! - `error`: what goes wrong.
//!
//! Restore reads a checkpoint back, rebuilds every actor of its manifest from its
//! [`StateRecord`] (found by [`ActorEntry::type_name`]), re-enqueues the in-flight messages to
//! each receiver in their stored order, then starts them all.

mod compact;
mod error;
mod format;
mod fs;
mod model;
mod store;

pub use error::{FormatError, StoreError, ValidationError};
pub use format::{
    BATCH_BYTES, CHECKPOINT_FORMAT_VERSION, OLDEST_READABLE_VERSION, RecordKind, decode,
    decode_manifest, encode,
};
pub use fs::FsStore;
pub use model::{
    ActorEntry, Checkpoint, CheckpointId, InFlightRecord, Manifest, NodeEntry, SpawnCapacity,
    SpawnRestart, StateRecord, TimerEntry,
};
pub use store::{CheckpointInfo, CheckpointStore, LatestValid};
