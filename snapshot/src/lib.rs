//! amber-snapshot: the snapshot protocol as pure state machines and the checkpoint format.
//!
//! This crate knows nothing of tokio, sockets or clocks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod epoch;
mod id;

pub use epoch::Epoch;
pub use id::{ActorId, SystemId};
