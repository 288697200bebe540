//! Spawning an actor of a registered type from its encoded state, by type name: how
//! another node (or any code that only has bytes) starts an actor here.

use std::panic::AssertUnwindSafe;

use super::{ActorSystem, Make};
use crate::{ActorId, ActorState, SpawnError, SpawnOptions, StateError};

/// Builds an actor of one registered type from `(name, version, state)` and spawns it.
/// With an epoch, the actor is born in it (see
/// [`Context::spawn_registered_detached`](crate::Context::spawn_registered_detached)); else
/// in the node's spawn epoch.
pub(crate) type SpawnFn = fn(
    &ActorSystem,
    SpawnOptions,
    u32,
    &[u8],
    Option<amber_snapshot::Epoch>,
) -> Result<ActorId, SpawnError>;

/// The [`SpawnFn`] of `A`.
pub(crate) fn spawn_from_state<A: ActorState>(
    system: &ActorSystem,
    options: SpawnOptions,
    version: u32,
    state: &[u8],
    epoch: Option<amber_snapshot::Epoch>,
) -> Result<ActorId, SpawnError> {
    // The state comes from elsewhere: a panicking decode hook is that state's error, not
    // the caller's crash.
    let decoded =
        std::panic::catch_unwind(AssertUnwindSafe(|| A::decode_state(version, state, system)))
            .map_err(|panic| {
                StateError::Hook(format!(
                    "decode_state panicked: {}",
                    crate::turn::panic_message(panic.as_ref())
                ))
            })
            .and_then(|result| result)
            .map_err(SpawnError::State)?;
    system.spawn_inner(options, Make::Instance(decoded), None, epoch).map(|actor| actor.id())
}

impl ActorSystem {
    /// Spawns a top-level actor of the type registered under `type_name`
    /// ([`SystemBuilder::register`](crate::SystemBuilder::register)), built from `state`
    /// written by [`ActorState::encode_state`] at layout `version` (refs inside resolve
    /// against this system), optionally registered under `name`. Its `on_start` runs as for
    /// any spawn. Returns its id and stable type name.
    ///
    /// Fails with [`SpawnError::UnknownType`] if no type is registered under that name,
    /// [`SpawnError::State`] if the state does not decode (a panicking decode hook
    /// included), and the usual [`SpawnError::NameTaken`] or [`SpawnError::ShuttingDown`].
    pub fn spawn_registered(
        &self,
        type_name: &str,
        name: Option<String>,
        version: u32,
        state: &[u8],
    ) -> Result<(ActorId, &'static str), SpawnError> {
        let registered = self
            .config()
            .types
            .named(type_name)
            .ok_or_else(|| SpawnError::UnknownType(type_name.to_owned()))?;
        let (spawn, type_name) = (registered.spawn, registered.type_name);
        let options = match name {
            Some(name) => SpawnOptions::new().name(name),
            None => SpawnOptions::new(),
        };
        let id = spawn(self, options, version, state, None)?;
        Ok((id, type_name))
    }
}
