//! Incremental checkpoints (format version 7) over a system that changes shape: actors added,
//! removed, moved between nodes, their metadata changed; each checkpoint loads equal to what
//! was saved. Version 5 files of the build before still load, and a store goes on from them.
//! A crafted version 7 file whose runs claim more than any base holds is a typed error.

mod checkpoint_support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use amber_snapshot::{
    ActorEntry, ActorId, Checkpoint, CheckpointId, CheckpointStore, Compression, Epoch,
    FormatError, FsStore, InFlightRecord, Manifest, NodeEntry, ReferenceProblem, SpawnCapacity,
    SpawnRestart, StateRecord, StoreError, SystemId, TimerEntry, decode, decode_manifest,
};
use checkpoint_support::{Rng, record, sample};
use serde::Serialize;

fn actor(seq: u64) -> ActorId {
    ActorId::new(SystemId(0xc0ffee), seq)
}

/// One actor of the model world: its entry's fields and its state's version.
#[derive(Clone)]
struct Model {
    seq: u64,
    node: usize,
    name: Option<String>,
    parent: Option<u64>,
    watchers: Vec<u64>,
    capacity: SpawnCapacity,
    restart: SpawnRestart,
    state_version: u32,
    version: u64,
    timer: bool,
}

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn checkpoint(id: u64, world: &[Model], shuffle_states: bool) -> Checkpoint {
    let mut actors: Vec<&Model> = world.iter().collect();
    // Actors of a node come together, as systems write them.
    actors.sort_by_key(|m| (m.node, m.seq));
    let states: Vec<StateRecord> = actors
        .iter()
        .map(|m| StateRecord {
            id: actor(m.seq),
            state: format!("{}:{}:{}", m.seq, m.version, "x".repeat((m.seq % 37) as usize))
                .into_bytes(),
            timers: if m.timer {
                vec![TimerEntry { timer: 1, remaining_us: id, period_us: None, msg: vec![1] }]
            } else {
                vec![]
            },
        })
        .collect();
    let mut states = states;
    if shuffle_states {
        states.reverse();
    }
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(id),
            epoch: Epoch(id),
            created_unix_ms: 1_700_000_000_000 + id,
            nodes: NODES.iter().map(|n| NodeEntry::new(*n, Some(format!("{n}:1")))).collect(),
            actors: actors
                .iter()
                .map(|m| ActorEntry {
                    id: actor(m.seq),
                    type_name: if m.seq % 2 == 0 { "Even".into() } else { "Odd".into() },
                    name: m.name.clone(),
                    node: NODES[m.node].into(),
                    parent: m.parent.map(actor),
                    watchers: m.watchers.iter().copied().map(actor).collect(),
                    watching: m.parent.map(actor).into_iter().collect(),
                    state_version: m.state_version,
                    capacity: m.capacity,
                    restart: m.restart,
                })
                .collect(),
        },
        states,
        in_flight: vec![InFlightRecord {
            to: actor(world[0].seq),
            from: None,
            epoch: Epoch(id),
            ask: false,
            payload: vec![id as u8].into(),
        }]
        .into(),
    }
}

/// A world of `n` actors, every one at version 0.
fn world(n: u64) -> Vec<Model> {
    (1..=n)
        .map(|seq| Model {
            seq,
            node: (seq % 2) as usize,
            name: (seq % 10 == 0).then(|| format!("actor-{seq}")),
            parent: (seq > 1).then_some(1),
            watchers: if seq % 7 == 0 { vec![1] } else { vec![] },
            capacity: if seq % 3 == 0 {
                SpawnCapacity::Bounded(seq)
            } else {
                SpawnCapacity::SystemDefault
            },
            restart: SpawnRestart::Never,
            state_version: 1,
            version: 0,
            timer: seq % 50 == 0,
        })
        .collect()
}

/// One round of changes: states, metadata, moves, removals and additions.
fn churn(world: &mut Vec<Model>, next_seq: &mut u64, rng: &mut Rng) {
    let n = world.len();
    for _ in 0..n / 50 {
        world[rng.below(n)].version += 1;
    }
    let m = &mut world[rng.below(n)];
    m.node = (m.node + 1) % NODES.len();
    let m = &mut world[rng.below(n)];
    m.name = Some(format!("renamed-{}", m.seq));
    let m = &mut world[rng.below(n)];
    m.state_version += 1;
    let m = &mut world[rng.below(n)];
    m.restart = SpawnRestart::OnPanic { max_restarts: 2, within: Duration::from_millis(1500) };
    let m = &mut world[rng.below(n)];
    m.capacity = SpawnCapacity::Unbounded;
    let m = &mut world[rng.below(n)];
    m.watchers.push(2);
    let m = &mut world[rng.below(n)];
    m.timer = !m.timer;
    // Two actors stop (never the first), three are spawned.
    for _ in 0..2 {
        world.remove(1 + rng.below(world.len() - 1));
    }
    for _ in 0..3 {
        let mut spawned = world[0].clone();
        spawned.seq = *next_seq;
        spawned.name = None;
        spawned.timer = false;
        spawned.node = (*next_seq % 3) as usize;
        *next_seq += 1;
        world.push(spawned);
    }
}

/// `checkpoint` with its states in its manifest's order (states may come in any order; an
/// incremental checkpoint loads them in the manifest's).
fn in_manifest_order(mut checkpoint: Checkpoint) -> Checkpoint {
    let places: std::collections::HashMap<ActorId, usize> =
        checkpoint.manifest.actors.iter().enumerate().map(|(i, a)| (a.id, i)).collect();
    let mut states = std::mem::take(&mut checkpoint.states);
    states.sort_by_key(|s| places.get(&s.id).copied());
    checkpoint.states = states;
    checkpoint
}

fn version_of(path: &Path) -> u32 {
    let bytes = fs::read(path).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[test]
fn a_chain_of_changing_checkpoints_loads_equal_to_what_was_saved() {
    for compression in [Compression::None, Compression::ZSTD] {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsStore::open(tmp.path().join("incr"))
            .unwrap()
            .with_compression(compression)
            .with_incremental(8)
            .with_retention(3);
        let full = FsStore::open(tmp.path().join("full")).unwrap();
        let mut rng = Rng(0x1234);
        let mut model = world(2_000);
        let mut next_seq = 2_001;
        let mut saved = Vec::new();
        for id in 1..=12 {
            if id > 1 {
                churn(&mut model, &mut next_seq, &mut rng);
            }
            // Now and then the states come in another order than the manifest's.
            let checkpoint = checkpoint(id, &model, id % 5 == 0);
            let info = store.save(&checkpoint).unwrap();
            let whole = full.save(&checkpoint).unwrap();
            let version = version_of(Path::new(&info.path_or_key));
            if id % 8 == 1 {
                assert_ne!(version, 7, "checkpoint {id} starts a chain: whole");
            } else {
                assert_eq!(version, 7, "checkpoint {id}");
                assert!(info.bytes * 3 < whole.bytes, "{id}: {} of {}", info.bytes, whole.bytes);
            }
            // Loads equal (its states in the manifest's order, as they are stored).
            let loaded = store.load(CheckpointId(id)).unwrap();
            assert_eq!(loaded.manifest, checkpoint.manifest, "checkpoint {id}");
            let checkpoint = in_manifest_order(checkpoint);
            assert!(loaded == checkpoint, "checkpoint {id} loads equal");
            assert!(loaded == in_manifest_order(full.load(CheckpointId(id)).unwrap()));
            saved.push(checkpoint);
        }
        // Every checkpoint retention kept (and what they refer to) still loads.
        for id in store.ids().unwrap() {
            let loaded = store.load(id).unwrap();
            assert!(loaded == in_manifest_order(full.load(id).unwrap()), "checkpoint {id}");
        }
        assert!(store.load(CheckpointId(1)).is_err(), "retention removed what nothing needs");
        assert_eq!(store.latest().unwrap().unwrap().manifest, saved[11].manifest);
        // The manifest alone does not tell the actors of an incremental checkpoint.
        let bytes = fs::read(store.path_of(CheckpointId(12))).unwrap();
        assert!(matches!(decode_manifest(&bytes), Err(FormatError::Unresolved { .. })));
        assert!(matches!(decode(&bytes), Err(FormatError::Unresolved { .. })));
        // Listing reads the head of each without resolving anything.
        let listed: Vec<u64> = store.list().unwrap().iter().map(|i| i.epoch.0).collect();
        let ids: Vec<u64> = store.ids().unwrap().iter().map(|i| i.0).collect();
        assert_eq!(listed, ids);
    }
}

/// `sample(1..=3)` written by the build before version 7 with `with_incremental(16)`:
/// checkpoint 1 whole (version 2), 2 and 3 version 5 (their states refer to 1).
const V5_CHAIN: [(&str, &[u8]); 3] = [
    (
        "ckpt-00000000000000000001.amber",
        include_bytes!("fixtures/v5-sample-chain/ckpt-00000000000000000001.amber"),
    ),
    (
        "ckpt-00000000000000000002.amber",
        include_bytes!("fixtures/v5-sample-chain/ckpt-00000000000000000002.amber"),
    ),
    (
        "ckpt-00000000000000000003.amber",
        include_bytes!("fixtures/v5-sample-chain/ckpt-00000000000000000003.amber"),
    ),
];

#[test]
fn version_5_checkpoints_of_the_previous_build_load_and_a_store_goes_on_from_them() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in V5_CHAIN {
        fs::write(tmp.path().join(name), bytes).unwrap();
    }
    assert_eq!(version_of(&tmp.path().join(V5_CHAIN[2].0)), 5);
    let store = FsStore::open(tmp.path()).unwrap().with_incremental(16);
    for id in 1..=3 {
        assert_eq!(store.load(CheckpointId(id)).unwrap(), sample(id), "checkpoint {id}");
    }
    assert!(matches!(decode(V5_CHAIN[2].1), Err(FormatError::Unresolved { .. })));
    assert_eq!(decode_manifest(V5_CHAIN[2].1).unwrap(), sample(3).manifest);
    // A new checkpoint goes on from the version 5 one (or starts afresh): either way it
    // loads equal, and 1 to 3 still do.
    store.save(&sample(4)).unwrap();
    assert_eq!(store.load(CheckpointId(4)).unwrap(), sample(4));
    store.save(&sample(5)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(5))), 7);
    assert_eq!(store.load(CheckpointId(5)).unwrap(), sample(5));
    for id in 1..=3 {
        assert_eq!(store.load(CheckpointId(id)).unwrap(), sample(id));
    }
}

/// An actor run as written: `[nil, first, home place, count, checkpoint, digest, bytes]`.
type RunOut = (Option<u32>, (u32, u64), u32, u32, u64, serde_bytes::ByteBuf, u64);

/// A version 7 manifest with one actor run, built by hand.
#[derive(Serialize)]
struct CraftedManifest(
    u64,
    u64,
    u64,
    Vec<(String, Option<String>)>,
    Vec<u64>,
    Vec<String>,
    Vec<RunOut>,
    Vec<u64>,
);

#[test]
fn a_run_that_claims_more_than_its_base_holds_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path()).unwrap();
    store.save(&sample(1)).unwrap();
    for (home_place, count) in [(0u32, u32::MAX - 1), (u32::MAX - 1, 1), (2, 2)] {
        let manifest = CraftedManifest(
            2,
            2,
            0,
            vec![("node-a".into(), None)],
            vec![sample(1).manifest.actors[0].id.system().0],
            vec![],
            vec![(None, (0, 1), home_place, count, 1, serde_bytes::ByteBuf::from(vec![0; 16]), 0)],
            vec![1],
        );
        #[derive(Serialize)]
        struct End {
            states: u64,
            in_flight: u64,
        }
        let mut bytes = b"AMBERCKP".to_vec();
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend(record(1, &rmp_serde::to_vec(&manifest).unwrap()));
        let end = End { states: u64::from(count), in_flight: 0 };
        bytes.extend(record(4, &rmp_serde::to_vec_named(&end).unwrap()));
        let path = store.path_of(CheckpointId(2));
        fs::write(&path, &bytes).unwrap();
        match store.load(CheckpointId(2)) {
            Err(StoreError::Unresolved { base, problem, .. }) => {
                assert_eq!(base, CheckpointId(1));
                assert!(
                    matches!(problem, ReferenceProblem::NoState | ReferenceProblem::Mismatch),
                    "{problem}"
                );
            }
            other => panic!("run at {home_place} of {count}: {other:?}"),
        }
        fs::remove_file(&path).unwrap();
    }
}
