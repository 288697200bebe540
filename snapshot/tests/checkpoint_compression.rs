//! Compressed checkpoints (format version 4): round trips, what is and is not compressed,
//! and compressed records that are damaged, forged or claim too much.

mod checkpoint_support;

use amber_snapshot::{
    Checkpoint, CheckpointStore, Compression, FormatError, FsStore, MAX_EXPANSION, RecordKind,
    StateRecord, decode, decode_manifest, encode, encode_with,
};
use checkpoint_support::{Rng, actor, file_header, record, records, sample};

/// `sample(id)` with its states' bytes replaced: `repetitive` ones (a pattern, as typical
/// states are: field names, small numbers), or random ones.
fn with_states(id: u64, bytes: usize, repetitive: bool) -> Checkpoint {
    let mut checkpoint = sample(id);
    let mut rng = Rng(id * 7919 + 1);
    for state in &mut checkpoint.states {
        state.state = (0..bytes)
            .map(|i| if repetitive { (i % 17) as u8 } else { rng.next_u64() as u8 })
            .collect();
    }
    checkpoint
}

/// The kind bytes of the records of an encoded checkpoint.
fn kind_bytes(bytes: &[u8]) -> Vec<u8> {
    records(bytes).iter().map(|r| r.1).collect()
}

#[test]
fn round_trip_smaller_and_version_4() {
    let checkpoint = with_states(1, 64 * 1024, true);
    let plain = encode(&checkpoint).unwrap();
    let compressed = encode_with(&checkpoint, Compression::ZSTD).unwrap();
    assert_eq!(plain[8..12], 2u32.to_le_bytes());
    assert_eq!(compressed[8..12], 4u32.to_le_bytes());
    assert_eq!(encode_with(&checkpoint, Compression::None).unwrap(), plain);
    assert!(compressed.len() * 10 < plain.len(), "{} vs {}", compressed.len(), plain.len());
    assert_eq!(decode(&compressed).unwrap(), checkpoint);
    assert_eq!(decode_manifest(&compressed).unwrap(), checkpoint.manifest);
    // The state record is compressed (high bit of its kind byte); the records too small to
    // gain are not.
    let kinds = kind_bytes(&compressed);
    assert!(kinds.contains(&(0x80 | 2)), "{kinds:x?}");
    assert!(kinds.contains(&4), "the end record is a few bytes: {kinds:x?}");
    for level in [1, 19] {
        let bytes = encode_with(&checkpoint, Compression::Zstd { level }).unwrap();
        assert_eq!(decode(&bytes).unwrap(), checkpoint, "level {level}");
    }
}

#[test]
fn what_does_not_shrink_is_stored_as_is() {
    let random = with_states(2, 64 * 1024, false);
    let bytes = encode_with(&random, Compression::ZSTD).unwrap();
    assert_eq!(bytes[8..12], 4u32.to_le_bytes());
    assert!(
        kind_bytes(&bytes).iter().all(|k| k & 0x80 == 0 || *k == 0x81),
        "{:x?}",
        kind_bytes(&bytes)
    );
    assert_eq!(decode(&bytes).unwrap(), random);

    // A state that would compress beyond MAX_EXPANSION (8 MiB of zeros) is stored raw, so
    // that a reader's bound never refuses what a writer wrote.
    let mut zeros = sample(3);
    zeros.states[0] = StateRecord { id: actor(1), state: vec![0; 8 << 20], timers: vec![] };
    let bytes = encode_with(&zeros, Compression::ZSTD).unwrap();
    let state_records: Vec<_> = records(&bytes).into_iter().filter(|r| r.1 & 0x7f == 2).collect();
    assert!(state_records.iter().any(|r| r.1 == 2 && r.2 > 8 << 20), "{state_records:?}");
    assert_eq!(decode(&bytes).unwrap(), zeros);
}

#[test]
fn damage_in_a_compressed_record_is_a_checksum_mismatch() {
    let bytes = encode_with(&with_states(4, 64 * 1024, true), Compression::ZSTD).unwrap();
    let (start, kind, len) =
        records(&bytes).into_iter().find(|r| r.1 == 0x80 | 2).expect("a compressed state record");
    assert_eq!(kind & 0x7f, 2);
    for at in [start, start + 9, start + 9 + len / 2, start + 9 + len - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x04;
        match decode(&damaged) {
            Err(FormatError::ChecksumMismatch { .. } | FormatError::UnknownRecordKind { .. }) => {}
            other => panic!("flip at {at}: {other:?}"),
        }
    }
    // Every cut is a truncation.
    for len in [12, 20, start + 5, start + 9 + len / 2, bytes.len() - 1] {
        assert!(
            matches!(decode(&bytes[..len]), Err(FormatError::Truncated { .. })),
            "cut at {len}"
        );
    }
}

/// A file whose records are `manifest` then `rest`, in format version 4.
fn version_4(manifest_record: &[u8], rest: &[Vec<u8>]) -> Vec<u8> {
    let mut out = file_header();
    out[8..12].copy_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(manifest_record);
    for record in rest {
        out.extend_from_slice(record);
    }
    out
}

#[test]
fn forged_compressed_records_are_typed_errors() {
    let good = encode_with(&sample(5), Compression::ZSTD).unwrap();
    let (start, _, len) = records(&good)[0];
    let manifest_record = &good[start..start + 9 + len];
    let decompress_error = |bytes: &[u8]| match decode(bytes) {
        Err(FormatError::Decompress { record: 1, kind: RecordKind::State, reason }) => reason,
        other => panic!("{other:?}"),
    };
    // Correct checksums around bytes that are not a zstd frame.
    let reason = decompress_error(&version_4(manifest_record, &[record(0x82, b"not zstd at all")]));
    assert!(reason.contains("not a zstd frame"), "{reason}");
    // A frame that claims to expand beyond the bound: 16 MiB of zeros from a few bytes.
    let bomb = zstd::bulk::compress(&vec![0u8; 16 << 20], 19).unwrap();
    assert!((16u64 << 20) > bomb.len() as u64 * MAX_EXPANSION + (1 << 20));
    let reason = decompress_error(&version_4(manifest_record, &[record(0x82, &bomb)]));
    assert!(reason.contains("more than"), "{reason}");
    // A frame cut short (its checksum recomputed).
    let frame = zstd::bulk::compress(&[7u8; 4096], 3).unwrap();
    let reason =
        decompress_error(&version_4(manifest_record, &[record(0x82, &frame[..frame.len() - 3])]));
    assert!(!reason.is_empty());
    // The compressed flag means nothing before version 4.
    let mut old = good.clone();
    old[8..12].copy_from_slice(&2u32.to_le_bytes());
    let flagged = records(&old).into_iter().find(|r| r.1 & 0x80 != 0);
    if let Some((start, kind, _)) = flagged {
        assert!(matches!(
            decode(&old),
            Err(FormatError::UnknownRecordKind { kind: k, offset, .. }) if k == kind && offset == start as u64
        ));
    }
}

#[test]
fn a_filesystem_store_writes_compressed_when_asked_and_reads_both() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = FsStore::open(tmp.path()).unwrap();
    let compressed = plain.clone().with_compression(Compression::ZSTD);
    let checkpoint = |id| with_states(id, 32 * 1024, true);
    let a = plain.save(&checkpoint(1)).unwrap();
    let b = compressed.save(&checkpoint(2)).unwrap();
    assert_eq!(a.bytes, encode(&checkpoint(1)).unwrap().len() as u64);
    assert_eq!(b.bytes, encode_with(&checkpoint(2), Compression::ZSTD).unwrap().len() as u64);
    assert!(b.bytes * 5 < a.bytes, "{} vs {}", b.bytes, a.bytes);
    for store in [&plain, &compressed] {
        assert_eq!(store.load(a.id).unwrap(), checkpoint(1));
        assert_eq!(store.load(b.id).unwrap(), checkpoint(2));
        let list = store.list().unwrap();
        assert_eq!(list.iter().map(|i| i.bytes).collect::<Vec<_>>(), [a.bytes, b.bytes]);
    }
}
