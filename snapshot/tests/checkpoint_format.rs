//! The checkpoint file format: round trips, and every way bytes can fail to be a checkpoint.

mod checkpoint_support;

use amber_snapshot::{
    Bytes, CHECKPOINT_FORMAT_VERSION, Checkpoint, CheckpointId, Compression, Epoch, FormatError,
    Manifest, RecordKind, ValidationError, decode, decode_manifest, encode, encode_with,
};
use checkpoint_support::{
    Account, End, Rng, actor, encode_unchecked, file_header, record, record_of, records, sample,
};

fn kind_of(byte: u8) -> RecordKind {
    match byte {
        1 => RecordKind::Manifest,
        2 => RecordKind::State,
        3 => RecordKind::InFlight,
        4 => RecordKind::End,
        other => panic!("not a record kind: {other}"),
    }
}

#[test]
fn round_trip() {
    let checkpoint = sample(42);
    let bytes = encode(&checkpoint).unwrap();
    assert_eq!(decode(&bytes).unwrap(), checkpoint);
    assert_eq!(decode_manifest(&bytes).unwrap(), checkpoint.manifest);
    // A file in format version 1 (the tests' writer) reads back the same.
    let old = encode_unchecked(&checkpoint);
    assert_eq!(&old[8..12], &1u32.to_le_bytes());
    assert_eq!(decode(&old).unwrap(), checkpoint);
    assert_eq!(decode_manifest(&old).unwrap(), checkpoint.manifest);
}

#[test]
fn round_trip_keeps_in_flight_order_and_state_bytes() {
    let checkpoint = decode(&encode(&sample(7)).unwrap()).unwrap();
    let to_alice: Vec<_> = checkpoint.in_flight_to(actor(2)).map(|m| m.payload.clone()).collect();
    assert_eq!(
        to_alice,
        vec![sample(7).in_flight[0].payload.clone(), Bytes::from_static(b"\xa3hey")]
    );
    let alice = checkpoint.state(actor(2)).unwrap();
    let account: Account = rmp_serde::from_slice(&alice.state).unwrap();
    assert_eq!(account, Account { balance: 107 });
    assert_eq!(checkpoint.actor(actor(3)).unwrap().node, "node-b");
}

#[test]
fn round_trip_empty_checkpoint() {
    let checkpoint = Checkpoint {
        manifest: Manifest {
            id: CheckpointId(0),
            epoch: Epoch::ZERO,
            created_unix_ms: 0,
            nodes: Vec::new(),
            actors: Vec::new(),
        },
        states: Vec::new(),
        in_flight: Default::default(),
    };
    let bytes = encode(&checkpoint).unwrap();
    assert_eq!(decode(&bytes).unwrap(), checkpoint);
}

#[test]
fn state_bytes_are_stored_as_msgpack_bin() {
    // 300 bytes of state cost 300 bytes plus a bin header, not an array of integers.
    let mut checkpoint = sample(1);
    checkpoint.states[0].state = vec![0xff; 300];
    let small = encode(&sample(1)).unwrap().len();
    let big = encode(&checkpoint).unwrap().len();
    assert!(big - small < 310, "{big} - {small}");
}

#[test]
fn checkpoint_id_prints_zero_padded() {
    assert_eq!(CheckpointId(42).to_string(), "ckpt-00000000000000000042");
    assert_eq!(CheckpointId(u64::MAX).to_string(), "ckpt-18446744073709551615");
    assert_eq!(CheckpointId(u64::MAX).next(), CheckpointId(u64::MAX));
}

#[test]
fn bad_magic() {
    let mut bytes = encode(&sample(1)).unwrap();
    bytes[0] = b'X';
    assert_eq!(decode(&bytes), Err(FormatError::BadMagic));
    assert_eq!(decode(b"{\"not\": \"a checkpoint\"}"), Err(FormatError::BadMagic));
    assert_eq!(decode(b"AMX"), Err(FormatError::BadMagic));
    assert_eq!(decode_manifest(b"hello world, long enough"), Err(FormatError::BadMagic));
}

#[test]
fn unsupported_version() {
    for found in [0, 3, 6, 8, u32::MAX] {
        let mut bytes = encode(&sample(1)).unwrap();
        bytes[8..12].copy_from_slice(&found.to_le_bytes());
        assert_eq!(
            decode(&bytes),
            Err(FormatError::UnsupportedVersion { found, supported: CHECKPOINT_FORMAT_VERSION })
        );
        assert_eq!(
            decode_manifest(&bytes),
            Err(FormatError::UnsupportedVersion { found, supported: CHECKPOINT_FORMAT_VERSION })
        );
    }
    assert_eq!(CHECKPOINT_FORMAT_VERSION, 7);
    // Uncompressed checkpoints are still written as version 2, which older builds read.
    assert_eq!(encode(&sample(1)).unwrap()[8..12], 2u32.to_le_bytes());
    // Version 5 only adds to versions 2 and 4: their files, read as version 5, read the same.
    for compression in [Compression::None, Compression::ZSTD] {
        let mut bytes = encode_with(&sample(1), compression).unwrap();
        bytes[8..12].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(decode(&bytes), Ok(sample(1)));
    }
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let bytes = encode(&sample(1)).unwrap();
    let starts: Vec<usize> = records(&bytes).iter().map(|r| r.0).collect();
    for len in 0..bytes.len() {
        let record = if len < 12 {
            None
        } else {
            Some(starts.iter().filter(|&&start| start <= len).count() as u64 - 1)
        };
        let record = match record {
            // Cut exactly at a record boundary: the next record is missing.
            Some(r) if starts.contains(&len) => Some(r),
            other => other,
        };
        assert_eq!(
            decode(&bytes[..len]),
            Err(FormatError::Truncated { offset: len as u64, record }),
            "cut at {len}"
        );
    }
}

#[test]
fn truncation_at_a_record_boundary_is_caught_by_the_end_record() {
    let bytes = encode(&sample(1)).unwrap();
    let all = records(&bytes);
    let (end_start, end_kind, _) = *all.last().unwrap();
    assert_eq!(end_kind, 4);
    assert_eq!(
        decode(&bytes[..end_start]),
        Err(FormatError::Truncated {
            offset: end_start as u64,
            record: Some(all.len() as u64 - 1)
        })
    );
}

#[test]
fn every_payload_bit_flip_is_a_checksum_mismatch() {
    let bytes = encode(&sample(1)).unwrap();
    for (index, &(start, kind, len)) in records(&bytes).iter().enumerate() {
        for byte in start + 9..start + 9 + len {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[byte] ^= 1 << bit;
                match decode(&flipped) {
                    Err(FormatError::ChecksumMismatch { record, kind: found, offset, .. }) => {
                        assert_eq!(record, index as u64, "byte {byte}");
                        assert_eq!(found, kind_of(kind), "byte {byte}");
                        assert_eq!(offset, start as u64, "byte {byte}");
                    }
                    other => panic!("bit {bit} of byte {byte}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn every_header_bit_flip_is_a_typed_error() {
    let bytes = encode(&sample(1)).unwrap();
    let record_headers: Vec<usize> = records(&bytes).iter().flat_map(|r| r.0..r.0 + 9).collect();
    for byte in (0..12).chain(record_headers) {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[byte] ^= 1 << bit;
            let err = decode(&flipped).expect_err("a flipped bit must not decode");
            let expected = match byte {
                0..8 => matches!(err, FormatError::BadMagic),
                8..12 => matches!(err, FormatError::UnsupportedVersion { .. }),
                // Kind, length or checksum of a record.
                _ => matches!(
                    err,
                    FormatError::UnknownRecordKind { .. }
                        | FormatError::ChecksumMismatch { .. }
                        | FormatError::Truncated { .. }
                ),
            };
            assert!(expected, "bit {bit} of byte {byte}: {err:?}");
        }
    }
}

#[test]
fn unknown_record_kind() {
    let checkpoint = sample(1);
    let mut bytes = file_header();
    bytes.extend(record_of(1, &checkpoint.manifest));
    let at = bytes.len() as u64;
    bytes.extend(record(9, b"\xc0"));
    assert_eq!(
        decode(&bytes),
        Err(FormatError::UnknownRecordKind { record: 1, offset: at, kind: 9 })
    );
    let mut first = file_header();
    first.extend(record(0, b""));
    assert_eq!(
        decode(&first),
        Err(FormatError::UnknownRecordKind { record: 0, offset: 12, kind: 0 })
    );
}

#[test]
fn payload_that_does_not_decode() {
    let mut bytes = file_header();
    bytes.extend(record_of(1, &"a string, not a manifest"));
    match decode(&bytes) {
        Err(FormatError::Payload { record: 0, kind: RecordKind::Manifest, reason }) => {
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }

    // A well-formed state followed by stray bytes inside the same record.
    let checkpoint = sample(1);
    let mut state = rmp_serde::to_vec_named(&checkpoint.states[0]).unwrap();
    state.push(0xc0);
    let mut bytes = file_header();
    bytes.extend(record_of(1, &checkpoint.manifest));
    bytes.extend(record(2, &state));
    match decode(&bytes) {
        Err(FormatError::Payload { record: 1, kind: RecordKind::State, reason }) => {
            assert!(reason.contains("left over"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lying_lengths_do_not_allocate() {
    // A record header claiming 4 GiB of payload in a 21-byte input.
    let mut bytes = file_header();
    bytes.push(1);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode(&bytes), Err(FormatError::Truncated { offset: 21, record: Some(0) }));

    // A state whose bytes claim (as MessagePack bin 32) to be 4 GiB long.
    let checkpoint = sample(1);
    let mut state = vec![0x83, 0xa2, b'i', b'd'];
    state.extend(rmp_serde::to_vec_named(&actor(1)).unwrap());
    state.extend([0xa5, b's', b't', b'a', b't', b'e', 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
    let mut bytes = file_header();
    bytes.extend(record_of(1, &checkpoint.manifest));
    bytes.extend(record(2, &state));
    assert!(
        matches!(
            decode(&bytes),
            Err(FormatError::Payload { record: 1, kind: RecordKind::State, .. })
        ),
        "{:?}",
        decode(&bytes)
    );

    // A manifest whose actor list claims 4 billion entries.
    let mut manifest = rmp_serde::to_vec_named(&checkpoint.manifest).unwrap();
    let at = manifest.windows(7).position(|w| w == b"\xa6actors").unwrap() + 7;
    manifest.truncate(at);
    manifest.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    let mut bytes = file_header();
    bytes.extend(record(1, &manifest));
    assert!(matches!(decode(&bytes), Err(FormatError::Payload { record: 0, .. })));
}

#[test]
fn counts_mismatch() {
    let checkpoint = sample(1);
    let mut bytes = file_header();
    bytes.extend(record_of(1, &checkpoint.manifest));
    for state in &checkpoint.states {
        bytes.extend(record_of(2, state));
    }
    bytes.extend(record_of(4, &End { states: 4, in_flight: 0 }));
    assert_eq!(
        decode(&bytes),
        Err(FormatError::CountMismatch { kind: RecordKind::State, declared: 4, found: 3 })
    );

    let mut bytes = file_header();
    bytes.extend(record_of(1, &checkpoint.manifest));
    for state in &checkpoint.states {
        bytes.extend(record_of(2, state));
    }
    bytes.extend(record_of(4, &End { states: 3, in_flight: 2 }));
    assert_eq!(
        decode(&bytes),
        Err(FormatError::CountMismatch { kind: RecordKind::InFlight, declared: 2, found: 0 })
    );
}

#[test]
fn records_out_of_order() {
    let checkpoint = sample(1);
    let manifest = record_of(1, &checkpoint.manifest);
    let state = record_of(2, &checkpoint.states[0]);
    let message = record_of(3, &checkpoint.in_flight[0]);
    let end = record_of(4, &End { states: 1, in_flight: 1 });
    let cases: [(&[&Vec<u8>], FormatError); 4] = [
        (
            &[&state, &manifest],
            FormatError::OutOfOrder { record: 0, kind: RecordKind::State, previous: None },
        ),
        (
            &[&manifest, &manifest],
            FormatError::OutOfOrder {
                record: 1,
                kind: RecordKind::Manifest,
                previous: Some(RecordKind::Manifest),
            },
        ),
        (
            &[&manifest, &message, &state],
            FormatError::OutOfOrder {
                record: 2,
                kind: RecordKind::State,
                previous: Some(RecordKind::InFlight),
            },
        ),
        (&[&end], FormatError::OutOfOrder { record: 0, kind: RecordKind::End, previous: None }),
    ];
    for (records, expected) in cases {
        let mut bytes = file_header();
        for r in records {
            bytes.extend_from_slice(r);
        }
        assert_eq!(decode(&bytes), Err(expected));
    }
}

#[test]
fn trailing_bytes_after_the_end_record() {
    let mut bytes = encode(&sample(1)).unwrap();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(b"junk");
    assert_eq!(decode(&bytes), Err(FormatError::TrailingBytes { offset: len, len: 4 }));
    // A second end record is trailing bytes too.
    let mut bytes = encode(&sample(1)).unwrap();
    bytes.extend(record_of(4, &End { states: 3, in_flight: 3 }));
    assert!(
        matches!(decode(&bytes), Err(FormatError::TrailingBytes { offset, .. }) if offset == len)
    );
}

/// A change that makes a checkpoint inconsistent.
type Spoil = Box<dyn Fn(&mut Checkpoint)>;

#[test]
fn validation_failures() {
    let a = actor(1);
    let cases: Vec<(Spoil, ValidationError)> = vec![
        (
            Box::new(|c| c.manifest.nodes.push(c.manifest.nodes[0].clone())),
            ValidationError::DuplicateNode { node: "node-a".into() },
        ),
        (
            Box::new(|c| c.manifest.actors[0].node = "node-z".into()),
            ValidationError::UnknownNode { actor: a, node: "node-z".into() },
        ),
        (
            Box::new(|c| c.manifest.actors.push(c.manifest.actors[0].clone())),
            ValidationError::DuplicateActor { actor: a },
        ),
        (
            Box::new(|c| c.states[2].id = actor(9)),
            ValidationError::StateOfUnknownActor { actor: actor(9) },
        ),
        (
            Box::new(|c| c.states.push(c.states[0].clone())),
            ValidationError::DuplicateState { actor: a },
        ),
        (Box::new(|c| drop(c.states.remove(0))), ValidationError::MissingState { actor: a }),
        (
            Box::new(|c| c.in_flight[1].to = actor(9)),
            ValidationError::InFlightToUnknownActor { index: 1, to: actor(9) },
        ),
    ];
    for (spoil, expected) in cases {
        let mut checkpoint = sample(1);
        spoil(&mut checkpoint);
        assert_eq!(checkpoint.validate(), Err(expected.clone()));
        // Encode refuses it; bytes written some other way are rejected on decode.
        assert_eq!(encode(&checkpoint), Err(FormatError::Invalid(expected.clone())));
        assert_eq!(
            decode(&encode_unchecked(&checkpoint)),
            Err(FormatError::Invalid(expected.clone()))
        );
    }
    assert_eq!(sample(1).validate(), Ok(()));
}

#[test]
fn decode_manifest_reads_only_the_start() {
    let bytes = encode(&sample(5)).unwrap();
    let (_, _, len) = records(&bytes)[0];
    let prefix = &bytes[..12 + 9 + len];
    assert_eq!(decode_manifest(prefix).unwrap(), sample(5).manifest);
    assert_eq!(
        decode_manifest(&prefix[..prefix.len() - 1]),
        Err(FormatError::Truncated { offset: prefix.len() as u64 - 1, record: Some(0) })
    );
    // The rest is not checked: a corrupt state does not matter to the manifest.
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert_eq!(decode_manifest(&damaged).unwrap(), sample(5).manifest);
    assert!(decode(&damaged).is_err());
}

#[test]
fn error_messages_name_the_place() {
    let err = FormatError::Truncated { offset: 17, record: Some(3) };
    assert_eq!(err.to_string(), "truncated at byte 17, in record 3");
    let err = FormatError::Truncated { offset: 5, record: None };
    assert_eq!(err.to_string(), "truncated at byte 5, in the file header");
    let bytes = encode(&sample(1)).unwrap();
    let mut flipped = bytes.clone();
    flipped[30] ^= 1;
    let message = decode(&flipped).unwrap_err().to_string();
    assert!(
        message.starts_with("checksum mismatch in record 0 (manifest) at byte 12"),
        "{message}"
    );
}

/// Random bytes, random bytes after a valid header, and random damage to a valid checkpoint:
/// decoding returns (almost always an error) and never panics.
#[test]
fn decode_never_panics() {
    let valid = encode(&sample(3)).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..6_000 {
        let bytes = match round % 4 {
            0 => (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>(),
            1 => {
                let mut bytes = file_header();
                bytes.extend((0..rng.below(200)).map(|_| rng.next_u64() as u8));
                bytes
            }
            2 => {
                let mut bytes = valid.clone();
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next_u64() as u8;
                }
                bytes.truncate(bytes.len() - rng.below(bytes.len() / 4));
                bytes
            }
            _ => {
                // Valid framing around random payloads: reaches the MessagePack decoder.
                let mut bytes = file_header();
                for kind in [1, 2, 3, 4] {
                    let payload: Vec<u8> =
                        (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
                    bytes.extend(record(kind, &payload));
                }
                bytes
            }
        };
        let decoded = decode(&bytes);
        let _ = decode_manifest(&bytes);
        if round % 4 != 2 {
            assert!(decoded.is_err(), "round {round}");
        }
    }
}

#[test]
fn deeply_nested_unknown_fields_do_not_overflow_the_stack() {
    for levels in [1_000, 100_000] {
        // A manifest with an unknown field holding `levels` nested arrays.
        let mut manifest = vec![0x81, 0xa3, b'z', b'z', b'z'];
        manifest.extend(std::iter::repeat_n(0x91, levels));
        manifest.push(0xc0);
        let mut bytes = file_header();
        bytes.extend(record(1, &manifest));
        assert!(matches!(decode(&bytes), Err(FormatError::Payload { record: 0, .. })));
    }
    // Unknown fields nested a little are skipped: a newer writer's extra field is not an error.
    let checkpoint = sample(1);
    let mut manifest = rmp_serde::to_vec_named(&checkpoint.manifest).unwrap();
    assert_eq!(manifest[0], 0x85, "a map of the manifest's five fields");
    manifest[0] = 0x86;
    manifest.extend([0xa3, b'z', b'z', b'z']);
    manifest.extend(std::iter::repeat_n(0x91, 40));
    manifest.push(0xc0);
    let mut bytes = file_header();
    bytes.extend(record(1, &manifest));
    assert_eq!(decode_manifest(&bytes), Ok(checkpoint.manifest));
}

/// The sample's messages in flight, regrouped as backlogs (runs per receiver), with more
/// messages from senders of other systems.
fn as_backlogs(checkpoint: &Checkpoint) -> (Checkpoint, Checkpoint) {
    use amber_snapshot::{ActorId, Backlog, InFlight, InFlightRecord, SystemId};
    let mut records: Vec<InFlightRecord> = checkpoint.in_flight.iter().cloned().collect();
    for n in 0..300u64 {
        let from = match n % 3 {
            0 => None,
            1 => Some(ActorId::new(SystemId(77), n)),
            _ => Some(ActorId::new(SystemId(u64::MAX - n % 2), n << 20)),
        };
        let to = actor(1 + (n / 100) % 3);
        let payload: Bytes = vec![n as u8; (n as usize * 7) % 300].into();
        records.push(InFlightRecord { to, from, epoch: Epoch(n * 1000), ask: n % 5 == 0, payload });
    }
    let mut backlogs = InFlight::new();
    let mut run: Option<amber_snapshot::BacklogBuilder> = None;
    for (i, r) in records.iter().enumerate() {
        if i == 0 || records[i - 1].to != r.to {
            if let Some(done) = run.take() {
                backlogs.append_backlog(done.finish());
            }
            run = Some(Backlog::builder(r.to));
        }
        let builder = run.as_mut().unwrap();
        builder
            .push_with(r.from, r.epoch, r.ask, |out| {
                out.extend_from_slice(&r.payload);
                Ok::<(), ()>(())
            })
            .unwrap();
    }
    backlogs.append_backlog(run.unwrap().finish());
    let mut plain = checkpoint.clone();
    plain.in_flight = records.into();
    let mut chunked = checkpoint.clone();
    chunked.in_flight = backlogs;
    (plain, chunked)
}

#[test]
fn backlogs_are_written_as_the_records_they_hold() {
    let (plain, chunked) = as_backlogs(&sample(5));
    let bytes = encode(&chunked).unwrap();
    assert_eq!(bytes, encode(&plain).unwrap());
    assert_eq!(decode(&bytes).unwrap(), plain);
    assert_eq!(chunked, plain);
}

#[test]
fn a_backlog_to_an_unlisted_actor_is_refused_with_its_first_index() {
    let (_, mut chunked) = as_backlogs(&sample(5));
    let before = chunked.in_flight.len();
    let stranger = actor(99);
    let mut backlog = amber_snapshot::Backlog::builder(stranger);
    backlog
        .push_with(None, Epoch(1), false, |out| {
            out.push(1);
            Ok::<(), ()>(())
        })
        .unwrap();
    chunked.in_flight.append_backlog(backlog.finish());
    match chunked.validate() {
        Err(ValidationError::InFlightToUnknownActor { index, to }) => {
            assert_eq!((index, to), (before, stranger));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Backlogs of many messages — senders of up to three systems, in the file's order of
/// systems or not, none, payloads on every length boundary of a MessagePack `bin` — between
/// runs kept as records, make exactly the bytes their records make, compressed or not,
/// records split where the records' are.
#[test]
fn random_backlogs_make_the_bytes_of_their_records() {
    use amber_snapshot::{ActorId, Backlog, InFlight, InFlightRecord, SystemId};
    let here = actor(1).system();
    let (other, third) = (SystemId(77), SystemId(u64::MAX));
    let sizes = [0usize, 1, 127, 128, 255, 256, 65_535, 65_536];
    for seed in 0..24u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let base = sample(seed);
        let mut records: Vec<InFlightRecord> = Vec::new();
        let mut backlogs = InFlight::new();
        // Enough messages for several records of a batch each.
        for b in 0..40u64 {
            let to = actor(1 + (b % 3));
            // The first backlogs see `other` before `third`; later ones sometimes the other
            // way round (then their places are not the file's).
            let senders = match rng.below(4) {
                0 => vec![here],
                1 => vec![here, other],
                2 => vec![here, other, third],
                _ => vec![third, here],
            };
            if rng.below(3) == 0 {
                // Records kept as records, to the backlog's receiver (or the one before's):
                // a record's receiver is named once across the two kinds of runs too.
                let chunk: Vec<InFlightRecord> = (0..1 + rng.below(3))
                    .map(|k| InFlightRecord {
                        to: if k == 0 && rng.below(2) == 0 { actor(1 + ((b + 2) % 3)) } else { to },
                        from: Some(ActorId::new(senders[0], rng.next_u64() >> rng.below(64))),
                        epoch: Epoch(rng.below(5) as u64),
                        ask: false,
                        payload: vec![k as u8; rng.below(300)].into(),
                    })
                    .collect();
                records.extend(chunk.iter().cloned());
                backlogs.append_chunk(chunk);
            }
            let mut builder = Backlog::builder(to);
            for n in 0..rng.below(200) as u64 {
                let from = match rng.below(senders.len() + 1) {
                    0 => None,
                    k => Some(ActorId::new(senders[k - 1], rng.next_u64() >> rng.below(64))),
                };
                let len =
                    if rng.below(50) == 0 { sizes[rng.below(sizes.len())] } else { rng.below(40) };
                let payload: Bytes = vec![(n ^ b) as u8; len].into();
                let epoch = Epoch(rng.next_u64() >> rng.below(64));
                let ask = rng.below(3) == 0;
                builder
                    .push_with(from, epoch, ask, |out| {
                        out.extend_from_slice(&payload);
                        Ok::<(), ()>(())
                    })
                    .unwrap();
                records.push(InFlightRecord { to, from, epoch, ask, payload });
            }
            backlogs.append_backlog(builder.finish());
        }
        let mut plain = base.clone();
        plain.in_flight = records.into();
        let mut chunked = base;
        chunked.in_flight = backlogs;
        let bytes = encode(&chunked).unwrap();
        assert_eq!(bytes, encode(&plain).unwrap(), "seed {seed}");
        assert_eq!(decode(&bytes).unwrap(), plain, "seed {seed}");
        let compressed = encode_with(&chunked, Compression::ZSTD).unwrap();
        assert_eq!(compressed, encode_with(&plain, Compression::ZSTD).unwrap(), "seed {seed}");
    }
}
