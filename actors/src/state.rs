//! [`ActorState`]: actors whose state can be captured in a snapshot and rebuilt on restore.
//!
//! The state derive of `amber-macros` implements this trait; hand-written implementations
//! are fine too. A type must also be registered with the system
//! ([`SystemBuilder::register`](crate::SystemBuilder::register)) under its
//! [`TYPE_NAME`](ActorState::TYPE_NAME) so that a restore can rebuild its actors from bytes.

use std::fmt;

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

/// Rebuilding an actor from stored state failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The stored state has a version this code does not know.
    UnknownVersion {
        /// The actor type.
        type_name: &'static str,
        /// The version found in the checkpoint.
        found: u32,
        /// The newest version this code reads.
        current: u32,
    },
    /// The bytes do not decode as the state.
    Codec(CodecError),
    /// The upgrade hook or the rebuild hook failed.
    Hook(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::UnknownVersion { type_name, found, current } => write!(
                f,
                "state of {type_name} has version {found}, but this code reads versions up to {current}"
            ),
            StateError::Codec(e) => write!(f, "state does not decode: {e}"),
            StateError::Hook(m) => write!(f, "state hook failed: {m}"),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Codec(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CodecError> for StateError {
    fn from(e: CodecError) -> Self {
        StateError::Codec(e)
    }
}
