//! Snapshot epochs.

use serde::{Deserialize, Serialize};

/// The epoch (colour) of an actor or a message.
///
/// Every actor starts in epoch 0. Snapshot `E` moves every actor that belongs to it from
/// epoch `E - 1` to epoch `E` at its cut; every message carries its sender's epoch at send
/// time. A message tagged `< E` that an actor dequeues after its cut for `E` crossed the cut
/// and is recorded as in flight.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch every actor starts in.
    pub const ZERO: Epoch = Epoch(0);

    /// The epoch after this one.
    #[must_use]
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "e{}", self.0)
    }
}
