//! Format versions: files written in version 1 (by the code before version 2 existed) still
//! read; version 2 batches records, writes ids, type and node names once, and refuses damaged
//! compact payloads with typed errors.

mod checkpoint_support;

use amber_snapshot::{
    ActorEntry, ActorId, BATCH_BYTES, Checkpoint, CheckpointId, CheckpointStore, Epoch,
    FormatError, FsStore, InFlightRecord, Manifest, NodeEntry, RecordKind, SpawnCapacity,
    SpawnRestart, StateRecord, SystemId, decode, decode_manifest, encode,
};
use checkpoint_support::{encode_unchecked, record, records, sample};
use serde::Deserialize;

/// Checkpoints written by the bank example of the build before format version 2 (3
/// accounts of 1000 each; one taken while the accounts were busy, with deposits in flight).
const V1_FILES: [&[u8]; 2] = [
    include_bytes!("fixtures/v1-bank-3-accounts.amber"),
    include_bytes!("fixtures/v1-bank-3-accounts-busy.amber"),
];

/// The bank's audit: balances plus the deposits in flight.
fn bank_total(checkpoint: &Checkpoint) -> u64 {
    #[derive(Deserialize)]
    struct State {
        balance: u64,
    }
    #[derive(Deserialize)]
    enum Msg {
        Deposit {
            amount: u64,
        },
        #[serde(other)]
        Other,
    }
    let balances: u64 = checkpoint
        .states
        .iter()
        .map(|s| rmp_serde::from_slice::<State>(&s.state).unwrap().balance)
        .sum();
    let in_flight: u64 = checkpoint
        .in_flight
        .iter()
        .map(|m| match rmp_serde::from_slice::<Msg>(&m.payload) {
            Ok(Msg::Deposit { amount }) => amount,
            _ => 0,
        })
        .sum();
    balances + in_flight
}

/// `sample(7)` as the build before format version 5 wrote it: uncompressed (version 2) and
/// with zstd (version 4).
const V2_SAMPLE_7: &[u8] = include_bytes!("fixtures/v2-sample-7.amber");
const V4_SAMPLE_7: &[u8] = include_bytes!("fixtures/v4-sample-7.amber");

#[test]
fn version_2_and_4_files_of_the_previous_build_still_read() {
    for (bytes, version) in [(V2_SAMPLE_7, 2u32), (V4_SAMPLE_7, 4)] {
        assert_eq!(&bytes[8..12], &version.to_le_bytes());
        assert_eq!(decode(bytes).unwrap(), sample(7));
        assert_eq!(decode_manifest(bytes).unwrap(), sample(7).manifest);
        // And through a store, which follows references (there are none here).
        let tmp = tempfile::tempdir().unwrap();
        let store = FsStore::open(tmp.path()).unwrap().with_retention(1).with_incremental(4);
        std::fs::write(store.path_of(CheckpointId(7)), bytes).unwrap();
        assert_eq!(store.load(CheckpointId(7)).unwrap(), sample(7));
        assert_eq!(store.latest().unwrap(), Some(sample(7)));
    }
    // Version 4 compressed at least one record (the high bit of its kind byte).
    assert!(records(V4_SAMPLE_7).iter().any(|&(_, kind, _)| kind & 0x80 != 0));
    // The encoder still writes them byte for byte.
    assert_eq!(encode(&sample(7)).unwrap(), V2_SAMPLE_7);
    assert_eq!(
        amber_snapshot::encode_with(&sample(7), amber_snapshot::Compression::ZSTD).unwrap(),
        V4_SAMPLE_7
    );
}

#[test]
fn version_1_files_of_the_previous_build_still_read() {
    let mut with_in_flight = 0;
    for bytes in V1_FILES {
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        let checkpoint = decode(bytes).unwrap();
        assert_eq!(decode_manifest(bytes).unwrap(), checkpoint.manifest);
        assert_eq!(checkpoint.manifest.actors.len(), 3);
        assert!(checkpoint.manifest.actors.iter().all(|a| a.type_name == "bank.Account"));
        assert_eq!(bank_total(&checkpoint), 3000);
        with_in_flight += usize::from(!checkpoint.in_flight.is_empty());
        // Written again, in version 2, it reads back the same.
        let again = encode(&checkpoint).unwrap();
        assert_eq!(&again[8..12], &2u32.to_le_bytes());
        assert_eq!(decode(&again).unwrap(), checkpoint);
        assert!(again.len() < bytes.len(), "{} >= {}", again.len(), bytes.len());
    }
    assert!(with_in_flight > 0, "a fixture holds messages in flight");
}

#[test]
fn a_damaged_version_1_file_is_still_refused() {
    let bytes = V1_FILES[1];
    for at in [12, 30, bytes.len() / 2, bytes.len() - 1] {
        let mut damaged = bytes.to_vec();
        damaged[at] ^= 0x10;
        assert!(decode(&damaged).is_err(), "a bit flipped at {at}");
    }
    assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(FormatError::Truncated { .. })));
}

/// `n` actors over two nodes and two systems, with parents, watchers, names, options, timers,
/// and `messages` in-flight messages of `payload` bytes, runs per receiver.
fn many(n: u64, messages: u64, payload: usize) -> Checkpoint {
    let id = |seq: u64| ActorId::new(SystemId(if seq.is_multiple_of(7) { 99 } else { 5 }), seq);
    let actors: Vec<ActorEntry> = (0..n)
        .map(|seq| ActorEntry {
            id: id(seq),
            type_name: if seq.is_multiple_of(3) { "t.Parent".into() } else { "t.Child".into() },
            name: (seq.is_multiple_of(5)).then(|| format!("actor-{seq}")),
            node: if seq.is_multiple_of(2) { "a".into() } else { "b".into() },
            parent: (seq > 0).then(|| id(seq / 2)),
            watchers: (seq % 4 == 1).then(|| id(seq - 1)).into_iter().collect(),
            watching: (seq % 4 == 2).then(|| id(12_345_678)).into_iter().collect(),
            state_version: (seq % 3) as u32,
            capacity: match seq % 3 {
                0 => SpawnCapacity::SystemDefault,
                1 => SpawnCapacity::Bounded(seq),
                _ => SpawnCapacity::Unbounded,
            },
            restart: if seq.is_multiple_of(2) {
                SpawnRestart::Never
            } else {
                SpawnRestart::OnPanic {
                    max_restarts: seq as u32,
                    within: std::time::Duration::new(seq, 7),
                }
            },
        })
        .collect();
    // States in another order than the manifest's, for some.
    let mut states: Vec<StateRecord> = (0..n)
        .map(|seq| StateRecord {
            id: id(seq),
            state: vec![seq as u8; (seq % 40) as usize],
            timers: if seq.is_multiple_of(9) {
                vec![amber_snapshot::TimerEntry {
                    timer: seq,
                    remaining_us: 10,
                    period_us: Some(5),
                    msg: vec![1, 2],
                }]
            } else {
                Vec::new()
            },
        })
        .collect();
    states.swap(0, (n - 1) as usize);
    let in_flight = (0..messages)
        .map(|i| InFlightRecord {
            to: id((i / 3) % n),
            from: (!i.is_multiple_of(4))
                .then(|| id(i % n))
                .or((i.is_multiple_of(8)).then(|| id(777_777))),
            epoch: Epoch(40 + i % 2),
            ask: i.is_multiple_of(5),
            payload: vec![i as u8; payload].into(),
        })
        .collect();
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(3),
            epoch: Epoch(41),
            created_unix_ms: 1_700_000_000_000,
            nodes: vec![NodeEntry::new("a", Some("127.0.0.1:1".into())), NodeEntry::new("b", None)],
            actors,
        },
        states,
        in_flight,
    }
}

#[test]
fn version_2_round_trips_in_batches_and_is_smaller() {
    let checkpoint = many(2_000, 30_000, 20);
    let bytes = encode(&checkpoint).unwrap();
    assert_eq!(decode(&bytes).unwrap(), checkpoint);
    assert_eq!(decode_manifest(&bytes).unwrap(), checkpoint.manifest);
    let kinds: Vec<u8> = records(&bytes).iter().map(|r| r.1).collect();
    let count = |k: u8| kinds.iter().filter(|&&x| x == k).count();
    assert_eq!(count(1), 1);
    assert_eq!(count(2), 1, "2000 small states fit one batch");
    assert!(count(3) > 1, "30000 messages take several batches");
    assert!(records(&bytes).iter().all(|r| r.2 < BATCH_BYTES + 1024));
    let old = encode_unchecked(&checkpoint);
    assert_eq!(decode(&old).unwrap(), checkpoint);
    assert!(
        bytes.len() * 2 < old.len(),
        "version 2: {} bytes, version 1: {}",
        bytes.len(),
        old.len()
    );
}

#[test]
fn every_bit_flip_of_a_batched_file_is_a_typed_error() {
    let bytes = encode(&many(40, 200, 3)).unwrap();
    for at in 12..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        assert!(decode(&damaged).is_err(), "a bit flipped at {at}");
    }
}

/// The file of `checkpoint` with its record number `index` given `payload` instead.
fn with_payload(checkpoint: &Checkpoint, index: usize, payload: &[u8]) -> Vec<u8> {
    let bytes = encode(checkpoint).unwrap();
    let mut out = bytes[..12].to_vec();
    for (i, (start, kind, len)) in records(&bytes).into_iter().enumerate() {
        if i == index {
            out.extend(record(kind, payload));
        } else {
            out.extend_from_slice(&bytes[start..start + 9 + len]);
        }
    }
    out
}

#[test]
fn compact_payloads_that_point_nowhere_are_refused() {
    let checkpoint = sample(1);
    let kinds: Vec<u8> = records(&encode(&checkpoint).unwrap()).iter().map(|r| r.1).collect();
    let state_record = kinds.iter().position(|&k| k == 2).unwrap();
    let in_flight_record = kinds.iter().position(|&k| k == 3).unwrap();
    let payload = |kind: RecordKind, reason: &str, bytes: Vec<u8>| {
        let index = if kind == RecordKind::State { state_record } else { in_flight_record };
        match decode(&bytes) {
            Err(FormatError::Payload { record, kind: k, reason: r }) => {
                assert_eq!((record as usize, k), (index, kind));
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("expected a payload error, got {other:?}"),
        }
    };
    // A state of actor number 9 of 3.
    let bad_state = rmp_serde::to_vec(&vec![(9u32, serde_bytes::ByteBuf::new(), ())]).unwrap();
    let bad_state = {
        // `()` encodes as nil; timers are an array: write one.
        let mut b = bad_state;
        *b.last_mut().unwrap() = 0x90;
        b
    };
    payload(RecordKind::State, "no actor 9", with_payload(&checkpoint, state_record, &bad_state));
    // A first message without a receiver; one naming system number 5 of 1.
    let message = |to: Option<(u32, u64)>| {
        let mut b = vec![0x91, 0x95];
        b.extend(rmp_serde::to_vec(&to).unwrap());
        b.extend([0xc0, 0x01, 0xc2, 0xc4, 0x00]);
        b
    };
    payload(
        RecordKind::InFlight,
        "without a receiver",
        with_payload(&checkpoint, in_flight_record, &message(None)),
    );
    payload(
        RecordKind::InFlight,
        "no system 5",
        with_payload(&checkpoint, in_flight_record, &message(Some((5, 1)))),
    );
    // The well-formed message of the same shape reads (the counts then disagree).
    assert!(matches!(
        decode(&with_payload(&checkpoint, in_flight_record, &message(Some((0, 2))))),
        Err(FormatError::CountMismatch { kind: RecordKind::InFlight, .. })
    ));
}

/// `sample(id)` with its nodes' annotations: node a records two, node b none.
fn annotated(id: u64) -> Checkpoint {
    let mut checkpoint = sample(id);
    let a = &mut checkpoint.manifest.nodes[0].annotations;
    a.insert("sharding:bank.Account".into(), "16".into());
    a.insert("note".into(), "a longer value, with \"quotes\" and ünïcode".into());
    checkpoint
}

#[test]
fn node_annotations_round_trip_in_every_written_version() {
    let checkpoint = annotated(7);
    assert!(checkpoint.manifest.nodes[1].annotations.is_empty());
    // Version 2 and version 4.
    let plain = encode(&checkpoint).unwrap();
    assert_eq!(&plain[8..12], &2u32.to_le_bytes());
    assert_eq!(decode(&plain).unwrap(), checkpoint);
    assert_eq!(decode_manifest(&plain).unwrap(), checkpoint.manifest);
    // Only the annotated node's entry grows: the file is the unannotated one's plus them.
    assert!(plain.len() > encode(&sample(7)).unwrap().len());
    let zstd = amber_snapshot::encode_with(&checkpoint, amber_snapshot::Compression::ZSTD);
    assert_eq!(decode(&zstd.unwrap()).unwrap(), checkpoint);
    // Version 7, through an incremental store: the second checkpoint refers to the first and
    // still carries its own (changed) annotations.
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path()).unwrap().with_incremental(4);
    store.save(&checkpoint).unwrap();
    let mut next = annotated(8);
    next.manifest.nodes[1].annotations.insert("sharding:bank.Account".into(), "16".into());
    next.manifest.nodes[0].annotations.remove("note");
    let info = store.save(&next).unwrap();
    let bytes = std::fs::read(&info.path_or_key).unwrap();
    assert_eq!(&bytes[8..12], &7u32.to_le_bytes(), "the second checkpoint refers to the first");
    assert_eq!(store.load(CheckpointId(8)).unwrap(), next);
    assert_eq!(store.load(CheckpointId(7)).unwrap(), checkpoint);
    assert_eq!(next.manifest.annotation("sharding:bank.Account"), Ok(Some("16")));
}

#[test]
fn checkpoints_written_before_annotations_read_with_none() {
    for bytes in V1_FILES.into_iter().chain([V2_SAMPLE_7, V4_SAMPLE_7]) {
        let checkpoint = decode(bytes).unwrap();
        assert!(checkpoint.manifest.nodes.iter().all(|n| n.annotations.is_empty()));
        assert_eq!(checkpoint.manifest.annotation("sharding:bank.Account"), Ok(None));
    }
}

#[test]
fn an_annotation_two_nodes_recorded_differently_is_a_conflict() {
    let mut checkpoint = annotated(7);
    let b = &mut checkpoint.manifest.nodes[1].annotations;
    b.insert("sharding:bank.Account".into(), "8".into());
    let conflict = checkpoint.manifest.annotation("sharding:bank.Account").unwrap_err();
    assert_eq!(conflict.first, ("node-a".to_owned(), "16".to_owned()));
    assert_eq!(conflict.other, ("node-b".to_owned(), "8".to_owned()));
    assert!(conflict.to_string().contains("node node-a recorded \"16\""), "{conflict}");
    // Keys no node disagrees on still read.
    assert!(checkpoint.manifest.annotation("note").unwrap().unwrap().starts_with("a longer"));
    // And a conflict survives the file: both values are kept, each on its node.
    let read = decode(&encode(&checkpoint).unwrap()).unwrap();
    assert_eq!(read.manifest.annotation("sharding:bank.Account"), Err(conflict));
}
