//! Stable identities of actor systems and actors.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

/// The identity of one actor system instance (`amber_actors::ActorSystem`), random per start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SystemId(pub u64);

impl SystemId {
    /// A fresh, random system id.
    pub fn random() -> SystemId {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        h.write_u32(std::process::id());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        SystemId(h.finish())
    }
}

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The stable identity of an actor.
///
/// It names the actor, not a place: it is kept across restarts, checkpoints, restores and
/// migrations. It is made of the id of the system that first spawned the actor and a
/// sequence number within that system, so ids never collide across systems.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId {
    system: SystemId,
    seq: u64,
}

impl ActorId {
    /// The id with sequence number `seq` in system `system`.
    #[inline]
    pub const fn new(system: SystemId, seq: u64) -> ActorId {
        ActorId { system, seq }
    }

    /// The system that first spawned this actor.
    #[inline]
    pub const fn system(&self) -> SystemId {
        self.system
    }

    /// The sequence number within that system.
    #[inline]
    pub const fn seq(&self) -> u64 {
        self.seq
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{:016x}", self.seq, self.system.0)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids_differ() {
        assert_ne!(SystemId::random(), SystemId::random());
    }

    #[test]
    fn actor_id_round_trips_through_msgpack() {
        let id = ActorId::new(SystemId(7), 42);
        let bytes = rmp_serde::to_vec(&id).unwrap();
        assert_eq!(rmp_serde::from_slice::<ActorId>(&bytes).unwrap(), id);
    }
}
