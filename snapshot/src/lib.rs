//! amber-snapshot: the snapshot protocol as pure state machines and the checkpoint format.
//!
//! This crate knows nothing of tokio, sockets or clocks.
//!
//! The snapshot protocol ([`Coordinator`], [`NodeSnapshot`], [`ActorCut`]) takes events and
//! answers with actions; `src/protocol/mod.rs` explains the algorithm and why its snapshots
//! are consistent cuts.
//!
//! Checkpoints are plain data ([`Checkpoint`]) written in a versioned, checksummed format
//! ([`encode`], [`decode`]) to a [`CheckpointStore`]; [`FsStore`] keeps them as files, with
//! blocking `std::fs` calls.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod checkpoint;
mod epoch;
mod id;
mod protocol;

pub use checkpoint::{
    ActorEntry, BATCH_BYTES, CHECKPOINT_FORMAT_VERSION, Checkpoint, CheckpointId, CheckpointInfo,
    CheckpointStore, FormatError, FsStore, InFlightRecord, LatestValid, Manifest, NodeEntry,
    OLDEST_READABLE_VERSION, RecordKind, SpawnCapacity, SpawnRestart, StateRecord, StoreError,
    TimerEntry, ValidationError, decode, decode_manifest, encode,
};
pub use epoch::Epoch;
pub use id::{ActorId, SystemId};
pub use protocol::{
    AbortReason, ActorCut, CommandVerdict, Coordinator, CoordinatorAction, Cut, Dequeue, MAX_DEPTH,
    Marker, NodeAction, NodeCommand, NodeReport, NodeSnapshot, Participant, Refusal, StartError,
    StartVerdict,
};
