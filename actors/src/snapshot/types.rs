//! The actor types a system can capture and rebuild, registered by stable name.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::restore::{RestoreFns, restore_fns};
use crate::{Actor, ActorState, CodecError};

/// How to capture the state of an actor of type `A` (copied into its runner at spawn).
pub(crate) struct StateCodec<A> {
    pub(crate) type_name: &'static str,
    pub(crate) version: u32,
    pub(crate) encode: fn(&A) -> Result<Vec<u8>, CodecError>,
}

impl<A> Clone for StateCodec<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for StateCodec<A> {}

/// One registered actor type.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) type_name: &'static str,
    codec: Arc<dyn Any + Send + Sync>,
    pub(crate) restore: RestoreFns,
    /// Spawns a live actor of this type from its encoded state.
    pub(crate) spawn: crate::system::SpawnFn,
    /// Starts an actor of this type that moved here from another node.
    pub(crate) arrive: crate::migrate::ArriveFn,
}

/// The registered actor types of a system.
#[derive(Clone, Default)]
pub(crate) struct TypeRegistry {
    by_name: HashMap<&'static str, Registered>,
    by_type: HashMap<TypeId, &'static str>,
}

impl TypeRegistry {
    /// Registers `A` under its stable name.
    ///
    /// # Panics
    ///
    /// If another type already has that name (a programming error: checkpoints would be
    /// ambiguous).
    pub(crate) fn register<A: ActorState>(&mut self) {
        if let Some(existing) = self.by_name.get(A::TYPE_NAME)
            && self.by_type.get(&TypeId::of::<A>()) != Some(&existing.type_name)
        {
            panic!("two actor types are registered under the name {:?}", A::TYPE_NAME);
        }
        let codec = StateCodec::<A> {
            type_name: A::TYPE_NAME,
            version: A::VERSION,
            encode: <A as ActorState>::encode_state,
        };
        let registered = Registered {
            type_name: A::TYPE_NAME,
            codec: Arc::new(codec),
            restore: restore_fns::<A>(),
            spawn: crate::system::spawn_from_state::<A>,
            arrive: crate::migrate::arrive::<A>,
        };
        self.by_name.insert(A::TYPE_NAME, registered);
        self.by_type.insert(TypeId::of::<A>(), A::TYPE_NAME);
    }

    /// The state codec of `A`, if `A` is registered.
    pub(crate) fn codec<A: Actor>(&self) -> Option<StateCodec<A>> {
        let name = self.by_type.get(&TypeId::of::<A>())?;
        self.by_name.get(name)?.codec.downcast_ref::<StateCodec<A>>().copied()
    }

    /// The registration under `type_name`.
    pub(crate) fn named(&self, type_name: &str) -> Option<&Registered> {
        self.by_name.get(type_name)
    }
}

impl fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}
