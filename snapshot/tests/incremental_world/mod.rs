//! The generated world of the incremental-checkpoint tests: `n` actors whose states are
//! random bytes at given versions, and a helper that bumps a few versions.
#![allow(dead_code, unreachable_pub)]

use amber_snapshot::{
    ActorEntry, ActorId, Checkpoint, CheckpointId, Epoch, Manifest, NodeEntry, SpawnCapacity,
    SpawnRestart, StateRecord, SystemId, TimerEntry,
};

/// A small deterministic generator (xorshift), so that the tests need no seed file.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn actor(seq: u64) -> ActorId {
    ActorId::new(SystemId(0x5eed_0000_0000_0001), seq)
}

/// The state of account `seq` at `version`: a MessagePack-ish blob of `len` bytes.
pub fn state_of(seq: u64, version: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ version.wrapping_add(1));
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A checkpoint of `n` actors whose states are `len` bytes at the versions `versions` gives;
/// every 100th actor has a pending timer.
pub fn world(id: u64, versions: &[u64], len: usize) -> Checkpoint {
    let n = versions.len() as u64;
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(id),
            epoch: Epoch(id),
            created_unix_ms: 1_700_000_000_000 + id,
            nodes: vec![NodeEntry::new("local", None)],
            actors: (1..=n)
                .map(|seq| ActorEntry {
                    id: actor(seq),
                    type_name: "bank.Account".into(),
                    name: None,
                    node: "local".into(),
                    parent: None,
                    watchers: vec![],
                    watching: vec![],
                    state_version: 1,
                    capacity: SpawnCapacity::SystemDefault,
                    restart: SpawnRestart::Never,
                })
                .collect(),
        },
        states: (1..=n)
            .map(|seq| StateRecord {
                id: actor(seq),
                state: state_of(seq, versions[seq as usize - 1], len),
                timers: if seq % 100 == 0 {
                    vec![TimerEntry {
                        timer: 1,
                        remaining_us: id * 10,
                        period_us: Some(1_000),
                        msg: vec![0xc0],
                    }]
                } else {
                    vec![]
                },
            })
            .collect(),
        in_flight: Default::default(),
    }
}

/// Changes the versions of `changes` actors picked at random.
pub fn change(versions: &mut [u64], changes: usize, rng: &mut Rng) {
    for _ in 0..changes {
        let at = rng.below(versions.len() as u64) as usize;
        versions[at] += 1;
    }
}
