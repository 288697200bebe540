//! Global snapshots of a running system, checkpoints, and restore: the runtime's side.
//!
//! [`ActorSystem::snapshot`](crate::ActorSystem::snapshot) returns a consistent cut of every
//! actor's state plus every message in flight across the cuts, taken while the system runs;
//! [`SystemBuilder::restore`](crate::SystemBuilder::restore) rebuilds a system from one. The
//! engine here drives the pure state machines of `amber-snapshot` (per-actor cut, per-node
//! counting, the coordinator) from the mailboxes and the actor loop.
//!
//! What is consistent, what outside messages, timers and asks mean, when a cut is refused as
//! [`SnapshotError::Inconsistent`], and what a restore replays: `docs/snapshots.md` in the
//! repository (rendered as `amber::docs::snapshots`).

mod backlog_wire;
mod engine;
mod error;
pub(crate) mod recording;
pub(crate) mod restore;
pub(crate) mod types;
pub(crate) mod wire;

pub(crate) use engine::{CutReport, Effects, SnapshotEngine};
pub use error::{
    AbortCause, CaptureProblem, PartError, RestoreError, Skipped, SnapshotError, Taint,
};
