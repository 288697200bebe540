//! Sample checkpoints and a hand-rolled record writer for the checkpoint tests.

#![allow(dead_code, unreachable_pub)]

use amber_snapshot::{
    ActorEntry, ActorId, Checkpoint, CheckpointId, Epoch, InFlightRecord, Manifest, NodeEntry,
    SpawnCapacity, SpawnRestart, StateRecord, SystemId, TimerEntry,
};
use serde::Serialize;

/// The state the sample accounts carry.
#[derive(Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Account {
    pub balance: u64,
}

pub fn actor(seq: u64) -> ActorId {
    ActorId::new(SystemId(0x1a2b_3c4d_0000_0001), seq)
}

/// A checkpoint with two nodes, three actors (one supervising the others), timers and
/// in-flight messages.
pub fn sample(id: u64) -> Checkpoint {
    let entry = |seq: u64, name: Option<&str>, node: &str, parent: Option<u64>| ActorEntry {
        id: actor(seq),
        type_name: if seq == 1 { "bank.Bank".into() } else { "bank.Account".into() },
        name: name.map(str::to_owned),
        node: node.into(),
        parent: parent.map(actor),
        watchers: parent.map(actor).into_iter().collect(),
        watching: parent.map(actor).into_iter().collect(),
        state_version: seq as u32,
        capacity: if seq == 2 {
            SpawnCapacity::Unbounded
        } else {
            SpawnCapacity::Bounded(seq * 10)
        },
        restart: if seq == 3 {
            SpawnRestart::OnPanic { max_restarts: 3, within: std::time::Duration::from_secs(10) }
        } else {
            SpawnRestart::Never
        },
    };
    let state = |seq: u64, balance: u64| StateRecord {
        id: actor(seq),
        state: rmp_serde::to_vec_named(&Account { balance }).unwrap(),
        timers: Vec::new(),
    };
    let mut bank = state(1, 0);
    bank.timers = vec![
        TimerEntry { timer: 1, remaining_us: 1_500, period_us: Some(10_000), msg: vec![0xc0] },
        TimerEntry { timer: 2, remaining_us: 0, period_us: None, msg: vec![0x91, 0x01] },
    ];
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(id),
            epoch: Epoch(id + 10),
            created_unix_ms: 1_700_000_000_000 + id,
            nodes: vec![
                NodeEntry::new("node-a", Some("10.0.0.1:7000".into())),
                NodeEntry::new("node-b", None),
            ],
            actors: vec![
                entry(1, Some("bank"), "node-a", None),
                entry(2, Some("alice"), "node-a", Some(1)),
                entry(3, None, "node-b", Some(1)),
            ],
        },
        states: vec![bank, state(2, 100 + id), state(3, 42)],
        in_flight: vec![
            InFlightRecord {
                to: actor(2),
                from: Some(actor(3)),
                epoch: Epoch(id + 9),
                ask: true,
                payload: vec![0x81, 0xa6, b'a', b'm', b'o', b'u', b'n', b't', 0x05].into(),
            },
            InFlightRecord {
                to: actor(2),
                from: None,
                epoch: Epoch(id + 9),
                ask: false,
                payload: vec![0xa3, b'h', b'e', b'y'].into(),
            },
            InFlightRecord {
                to: actor(1),
                from: Some(actor(2)),
                epoch: Epoch(id + 9),
                ask: false,
                payload: Vec::new().into(),
            },
        ]
        .into(),
    }
}

/// The file header: magic and format version 1.
pub fn file_header() -> Vec<u8> {
    let mut out = b"AMBERCKP".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out
}

/// A record with a correct checksum: CRC32C over kind, length and payload.
pub fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A record whose payload is `value` as MessagePack with named fields.
pub fn record_of<T: Serialize>(kind: u8, value: &T) -> Vec<u8> {
    record(kind, &rmp_serde::to_vec_named(value).unwrap())
}

/// The end record's payload.
#[derive(Serialize)]
pub struct End {
    pub states: u64,
    pub in_flight: u64,
}

/// Encodes a checkpoint in format version 1 (as files written before version 2 are), record
/// by record, without validating it.
pub fn encode_unchecked(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut out = file_header();
    out.extend(record_of(1, &checkpoint.manifest));
    for state in &checkpoint.states {
        out.extend(record_of(2, state));
    }
    for message in &checkpoint.in_flight {
        out.extend(record_of(3, message));
    }
    out.extend(record_of(
        4,
        &End {
            states: checkpoint.states.len() as u64,
            in_flight: checkpoint.in_flight.len() as u64,
        },
    ));
    out
}

/// The records of an encoded checkpoint: (start offset, kind byte, payload length).
pub fn records(bytes: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut out = Vec::new();
    let mut pos = 12;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 1..pos + 5].try_into().unwrap()) as usize;
        out.push((pos, bytes[pos], len));
        pos += 9 + len;
    }
    out
}

/// A small deterministic pseudo-random generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
