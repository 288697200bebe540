//! Checkpoints for the crate's unit tests.

use crate::checkpoint::in_flight::InFlight;
use crate::checkpoint::model::{
    ActorEntry, Checkpoint, CheckpointId, Manifest, NodeEntry, SpawnCapacity, SpawnRestart,
    StateRecord,
};
use crate::{ActorId, Epoch, SystemId};

/// The `i`-th actor of [`checkpoint`] (from 0).
pub(crate) fn actor(i: usize) -> ActorId {
    ActorId::new(SystemId(1), i as u64 + 1)
}

/// Checkpoint `id` (of epoch `id`) on one node: an actor per state of `states`, each with
/// that state, nothing in flight.
pub(crate) fn checkpoint(id: u64, states: &[&[u8]]) -> Checkpoint {
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(id),
            epoch: Epoch(id),
            created_unix_ms: 0,
            nodes: vec![NodeEntry::new("n", None)],
            actors: (0..states.len())
                .map(|i| ActorEntry {
                    id: actor(i),
                    type_name: "t".into(),
                    name: None,
                    node: "n".into(),
                    parent: None,
                    watchers: vec![],
                    watching: vec![],
                    state_version: 1,
                    capacity: SpawnCapacity::SystemDefault,
                    restart: SpawnRestart::Never,
                })
                .collect(),
        },
        states: states
            .iter()
            .enumerate()
            .map(|(i, s)| StateRecord { id: actor(i), state: s.to_vec(), timers: vec![] })
            .collect(),
        in_flight: InFlight::default(),
    }
}
