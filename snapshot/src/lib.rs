//! amber-snapshot: the snapshot protocol as pure state machines and the checkpoint format.
//!
//! This crate knows nothing of tokio, sockets or clocks, except behind feature `s3`, which adds
//! a store for object storage (see below).
//!
//! The snapshot protocol ([`Coordinator`], [`NodeSnapshot`], [`ActorCut`]) takes events and
//! answers with actions; `src/protocol/mod.rs` explains the algorithm and why its snapshots
//! are consistent cuts.
//!
//! Checkpoints are plain data ([`Checkpoint`]) written in a versioned, checksummed format
//! ([`encode`], [`decode`]) to a [`CheckpointStore`]; [`FsStore`] keeps them as files, with
//! blocking `std::fs` calls. [`Store::from_url`] opens a store named by a path or URL.
//!
//! States and messages are MessagePack; [`msgpack`] writes it as `rmp-serde` does, faster.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `s3` | off | `ObjectStoreCheckpoints`: checkpoints in S3 and S3-compatible object storage (through the `object_store` crate), `s3://BUCKET/PREFIX` URLs in [`Store::from_url`], and `AsyncCheckpointStore`, the async twin of [`CheckpointStore`] (implemented by [`FsStore`] too) |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod checkpoint;
mod epoch;
mod id;
pub mod msgpack;
mod protocol;
pub mod varint;

/// The byte buffer type of [`InFlightRecord::payload`] (re-exported from the `bytes` crate).
pub use bytes::Bytes;
pub use checkpoint::{
    ActorEntry, AnnotationConflict, BATCH_BYTES, Backlog, BacklogBuilder, BacklogMessage,
    CHECKPOINT_FORMAT_VERSION, Checkpoint, CheckpointId, CheckpointInfo, CheckpointStore,
    Compression, FormatError, FsStore, InFlight, InFlightIntoIter, InFlightIter, InFlightMessage,
    InFlightMessages, InFlightRecord, InFlightRun, LatestValid, MAX_EXPANSION, Manifest, NodeEntry,
    OLDEST_READABLE_VERSION, PackedBacklogError, RecordKind, ReferenceProblem, SpawnCapacity,
    SpawnRestart, StateRecord, Store, StoreError, TimerEntry, ValidationError, decode,
    decode_manifest, encode, encode_with,
};
#[cfg(feature = "s3")]
pub use checkpoint::{AsyncCheckpointStore, DEFAULT_PART_SIZE, ObjectStoreCheckpoints};
pub use epoch::Epoch;
pub use id::{ActorId, SystemId};
/// The `object_store` crate, whose stores [`ObjectStoreCheckpoints`] keeps checkpoints in.
/// Feature `s3`.
#[cfg(feature = "s3")]
pub use object_store;
pub use protocol::{
    AbortReason, ActorCut, CommandVerdict, Coordinator, CoordinatorAction, Cut, Dequeue, MAX_DEPTH,
    Marker, NodeAction, NodeCommand, NodeReport, NodeSnapshot, Participant, Refusal, StartError,
    StartVerdict,
};
