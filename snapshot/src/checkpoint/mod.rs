//! Checkpoints: consistent global snapshots as stored data.
//!
//! - `model`: the checkpoint as plain data ([`Checkpoint`], [`Manifest`], …).
//! - `format`: the versioned, checksummed file format ([`encode`], [`decode`]), shared by
//!   every store.
//! - `incremental`: incremental checkpoints (actors that did not change are references to
//!   the checkpoint that stores them): how a checkpoint is put back together, and what
//!   retention must keep; `chain`: what the writer remembers and how it plans the next one.
//! - `store`: the [`CheckpointStore`] trait; `fs`: [`FsStore`], the embedded default;
//!   `url`: [`Store`], a store named by a path or URL.
//! - feature `s3`: `async_store`, the `AsyncCheckpointStore` trait; `object`,
//!   `ObjectStoreCheckpoints`, checkpoints in object storage.
//! - `error`: what goes wrong.
//!
//! Restore reads a checkpoint back, rebuilds every actor of its manifest from its
//! [`StateRecord`] (found by [`ActorEntry::type_name`]), re-enqueues the in-flight messages to
//! each receiver in their stored order, then starts them all.

#[cfg(feature = "s3")]
mod async_store;
mod backlog;
mod chain;
mod compact;
mod error;
mod format;
mod fs;
mod in_flight;
mod incremental;
mod model;
#[cfg(feature = "s3")]
mod object;
mod store;
#[cfg(test)]
mod test_checkpoint;
mod url;

pub use backlog::{Backlog, BacklogBuilder, BacklogMessage, InFlightMessage, PackedBacklogError};
pub use error::{FormatError, ReferenceProblem, StoreError, ValidationError};
pub use format::{
    BATCH_BYTES, CHECKPOINT_FORMAT_VERSION, Compression, MAX_EXPANSION, OLDEST_READABLE_VERSION,
    RecordKind, decode, decode_manifest, encode, encode_with,
};
pub use fs::FsStore;
pub use in_flight::{
    InFlight, InFlightMessages, InFlightRun, IntoIter as InFlightIntoIter, Iter as InFlightIter,
};
pub use model::{
    ActorEntry, AnnotationConflict, Checkpoint, CheckpointId, InFlightRecord, Manifest, NodeEntry,
    SpawnCapacity, SpawnRestart, StateRecord, TimerEntry,
};
pub use store::{CheckpointInfo, CheckpointStore, LatestValid};
pub use url::Store;

#[cfg(feature = "s3")]
pub use async_store::AsyncCheckpointStore;
#[cfg(feature = "s3")]
pub use object::{DEFAULT_PART_SIZE, ObjectStoreCheckpoints};
