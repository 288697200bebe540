//! [`ActorState`]: actors whose state can be captured in a snapshot and rebuilt on restore.
//!
//! The state derive of `amber-macros` implements this trait; hand-written implementations
//! are fine too. A type must also be registered with the system
//! ([`SystemBuilder::register`](crate::SystemBuilder::register)) under its
//! [`TYPE_NAME`](ActorState::TYPE_NAME) so that a restore can rebuild its actors from bytes.

use crate::error::StateError;
use crate::{Actor, ActorSystem, CodecError};

/// An actor whose state can be written into a checkpoint and read back.
pub trait ActorState: Actor {
    /// The stable name the type is registered and stored under, e.g. `"bank.Account"`.
    /// Changing it orphans existing checkpoints.
    const TYPE_NAME: &'static str;

    /// The version of the state layout that [`encode_state`](Self::encode_state) writes.
    const VERSION: u32 = 1;

    /// Encodes the state (MessagePack; fields excluded from snapshots are left out).
    fn encode_state(&self) -> Result<Vec<u8>, CodecError>;

    /// Rebuilds an actor from state written at `version` (upgrading older layouts), resolving
    /// refs inside it against `system` and rebuilding the fields excluded from snapshots.
    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError>;
}
