//! The filesystem checkpoint store: saving, listing, loading, retention and crash leftovers.

mod checkpoint_support;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use amber_snapshot::{
    CheckpointId, CheckpointStore, FormatError, FsStore, StoreError, ValidationError, encode,
};
use checkpoint_support::{actor, sample};

fn store() -> (tempfile::TempDir, FsStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path().join("checkpoints")).unwrap();
    (tmp, store)
}

/// The names of the files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn ids(store: &FsStore) -> Vec<u64> {
    store.ids().unwrap().into_iter().map(|id| id.0).collect()
}

#[test]
fn save_list_load_latest() {
    let (_tmp, store) = store();
    assert_eq!(store.ids().unwrap(), []);
    assert_eq!(store.list().unwrap(), []);
    assert_eq!(store.latest().unwrap(), None);
    assert_eq!(store.next_id().unwrap(), CheckpointId(1));

    for id in 1..=3 {
        let info = store.save(&sample(id)).unwrap();
        assert_eq!(info.id, CheckpointId(id));
        assert_eq!(info.epoch, sample(id).manifest.epoch);
        assert_eq!(info.bytes, encode(&sample(id)).unwrap().len() as u64);
        assert_eq!(info.path_or_key, store.path_of(CheckpointId(id)).display().to_string());
    }
    assert_eq!(
        files(store.dir()),
        [
            "ckpt-00000000000000000001.amber",
            "ckpt-00000000000000000002.amber",
            "ckpt-00000000000000000003.amber"
        ]
    );

    let list = store.list().unwrap();
    assert_eq!(list.iter().map(|i| i.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    for info in &list {
        assert_eq!(info.created_unix_ms, sample(info.id.0).manifest.created_unix_ms);
        assert_eq!(info.bytes, fs::metadata(&info.path_or_key).unwrap().len());
    }
    for id in 1..=3 {
        assert_eq!(store.load(CheckpointId(id)).unwrap(), sample(id));
    }
    assert_eq!(store.latest().unwrap(), Some(sample(3)));
    let latest = store.latest_valid().unwrap();
    assert_eq!(latest.checkpoint, Some(sample(3)));
    assert!(latest.skipped.is_empty());
    assert_eq!(store.next_id().unwrap(), CheckpointId(4));

    // Another handle on the same directory sees the same checkpoints.
    let again = FsStore::open(store.dir()).unwrap();
    assert_eq!(again.latest().unwrap(), Some(sample(3)));
    assert_eq!(FsStore::load_file(&store.path_of(CheckpointId(2))).unwrap(), sample(2));
}

#[test]
fn a_store_without_durability_writes_the_same_files_with_retention() {
    let (_tmp, durable) = store();
    let tmp = tempfile::tempdir().unwrap();
    let scratch = FsStore::open(tmp.path().join("checkpoints"))
        .unwrap()
        .with_durability(false)
        .with_retention(2);
    for id in 1..=4 {
        let (a, b) = (durable.save(&sample(id)).unwrap(), scratch.save(&sample(id)).unwrap());
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(fs::read(&a.path_or_key).unwrap(), fs::read(&b.path_or_key).unwrap());
    }
    assert_eq!(ids(&scratch), [3, 4], "retention as usual");
    assert_eq!(scratch.latest().unwrap(), Some(sample(4)));
    scratch.remove(CheckpointId(4)).unwrap();
    assert_eq!(ids(&scratch), [3]);
}

/// A FIFO (which blocks every reader until someone writes to it) and a symlink to a device
/// that never ends, under checkpoint names: each is refused before it is read, and the
/// latest good checkpoint is still found.
#[cfg(unix)]
#[test]
fn entries_that_are_not_regular_files_are_refused_before_they_are_read() {
    let (tmp, store) = store();
    store.save(&sample(1)).unwrap();
    let fifo = store.path_of(CheckpointId(2));
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", store.path_of(CheckpointId(3))).unwrap();
    // On a thread of its own: a read that blocks fails the test instead of hanging it.
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for id in [2, 3] {
            match store.load(CheckpointId(id)) {
                Err(StoreError::NotAFile { location, kind }) => {
                    assert!(location.ends_with(&format!("{id}.amber")), "{location}");
                    assert_eq!(kind, if id == 2 { "a FIFO" } else { "a device" });
                }
                other => panic!("checkpoint {id}: {other:?}"),
            }
        }
        assert!(matches!(store.latest(), Err(StoreError::NotAFile { .. })));
        let latest = store.latest_valid().unwrap();
        assert_eq!(latest.checkpoint, Some(sample(1)));
        assert_eq!(latest.skipped.len(), 2, "{:?}", latest.skipped);
        assert!(matches!(store.list(), Err(StoreError::NotAFile { .. })));
        let read = FsStore::load_file(&store.path_of(CheckpointId(3)));
        assert!(matches!(read, Err(StoreError::NotAFile { .. })));
        done.send(()).unwrap();
    });
    outcome.recv_timeout(std::time::Duration::from_secs(30)).expect("no read blocked");
    drop(tmp);
}

#[test]
fn remove_and_not_found() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    store.save(&sample(2)).unwrap();
    store.remove(CheckpointId(1)).unwrap();
    assert_eq!(ids(&store), [2]);
    for err in [store.remove(CheckpointId(1)), store.load(CheckpointId(1)).map(drop)] {
        match err {
            Err(StoreError::NotFound { id, location }) => {
                assert_eq!(id, CheckpointId(1));
                assert!(location.ends_with("ckpt-00000000000000000001.amber"), "{location}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_existing_checkpoint_is_never_overwritten() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    let mut other = sample(1);
    other.manifest.epoch.0 += 100;
    assert!(matches!(
        store.save(&other),
        Err(StoreError::AlreadyExists { id: CheckpointId(1), .. })
    ));
    assert_eq!(store.load(CheckpointId(1)).unwrap(), sample(1));
}

#[test]
fn an_inconsistent_checkpoint_is_not_written() {
    let (_tmp, store) = store();
    let mut bad = sample(1);
    bad.states.pop();
    match store.save(&bad) {
        Err(StoreError::Unencodable { id, source, .. }) => {
            assert_eq!(id, CheckpointId(1));
            assert_eq!(
                source,
                FormatError::Invalid(ValidationError::MissingState { actor: actor(3) })
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(files(store.dir()), Vec::<String>::new());
}

#[test]
fn retention_keeps_exactly_the_last_n() {
    let (_tmp, store) = store();
    let store = store.with_retention(2);
    for id in 1..=5 {
        store.save(&sample(id)).unwrap();
        assert_eq!(ids(&store), (1.max(id.saturating_sub(1))..=id).collect::<Vec<_>>());
    }
    assert_eq!(
        files(store.dir()),
        ["ckpt-00000000000000000004.amber", "ckpt-00000000000000000005.amber"]
    );
    assert_eq!(store.load(CheckpointId(4)).unwrap(), sample(4));

    // Zero counts as one: the checkpoint just saved is kept.
    let store = store.with_retention(0);
    store.save(&sample(6)).unwrap();
    assert_eq!(ids(&store), [6]);
}

#[test]
fn without_retention_everything_is_kept() {
    let (_tmp, store) = store();
    for id in 1..=4 {
        store.save(&sample(id)).unwrap();
    }
    assert_eq!(ids(&store), [1, 2, 3, 4]);
}

#[test]
fn leftover_temp_files_are_ignored_then_cleaned() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    // A save of checkpoint 2 that crashed before its rename, and an unrelated file.
    let bytes = encode(&sample(2)).unwrap();
    let temp = store.dir().join(".ckpt-00000000000000000002.amber.tmp");
    fs::write(&temp, &bytes[..bytes.len() / 2]).unwrap();
    fs::write(store.dir().join("notes.txt"), "keep me").unwrap();

    assert_eq!(ids(&store), [1]);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.latest().unwrap(), Some(sample(1)));
    assert_eq!(store.next_id().unwrap(), CheckpointId(2));

    // Opening does not touch it (a reader may open while the writer saves); saving does.
    let _reader = FsStore::open(store.dir()).unwrap();
    assert!(temp.exists());
    store.save(&sample(2)).unwrap();
    assert!(!temp.exists());
    assert_eq!(
        files(store.dir()),
        ["ckpt-00000000000000000001.amber", "ckpt-00000000000000000002.amber", "notes.txt"]
    );
    assert_eq!(store.latest().unwrap(), Some(sample(2)));
}

/// A crash that left the newest file torn (e.g. copied in by hand, or a filesystem that lost
/// the tail): `latest` reports it, `latest_valid` falls back to the one before.
#[test]
fn a_truncated_newest_checkpoint() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    store.save(&sample(2)).unwrap();
    let bytes = encode(&sample(3)).unwrap();
    let torn = store.path_of(CheckpointId(3));
    fs::write(&torn, &bytes[..bytes.len() - 10]).unwrap();

    let err = store.latest().unwrap_err();
    match &err {
        StoreError::Format { location, source: FormatError::Truncated { .. } } => {
            assert_eq!(location, &torn.display().to_string());
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("ckpt-00000000000000000003.amber"), "{message}");
    assert!(message.contains("truncated at byte"), "{message}");

    let latest = store.latest_valid().unwrap();
    assert_eq!(latest.checkpoint, Some(sample(2)));
    assert_eq!(latest.skipped.len(), 1);
    assert!(latest.skipped[0].to_string().contains("ckpt-00000000000000000003.amber"));

    // Its manifest is intact, so it is still listed; the next id is past it.
    assert_eq!(store.list().unwrap().len(), 3);
    assert_eq!(store.next_id().unwrap(), CheckpointId(4));
}

#[test]
fn a_corrupt_manifest_fails_list_naming_the_file() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    store.save(&sample(2)).unwrap();
    let path = store.path_of(CheckpointId(2));
    let mut bytes = fs::read(&path).unwrap();
    bytes[30] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    match store.list() {
        Err(StoreError::Format { location, source: FormatError::ChecksumMismatch { .. } }) => {
            assert!(location.ends_with("ckpt-00000000000000000002.amber"));
        }
        other => panic!("{other:?}"),
    }
    // Empty and tiny files too.
    fs::write(&path, b"").unwrap();
    assert!(matches!(
        store.list(),
        Err(StoreError::Format { source: FormatError::Truncated { offset: 0, record: None }, .. })
    ));
    fs::write(&path, b"AMBERCKP\x01\0\0\0\x01\xff\xff\xff\xff").unwrap();
    assert!(matches!(
        store.list(),
        Err(StoreError::Format { source: FormatError::Truncated { record: Some(0), .. }, .. })
    ));
    let latest = store.latest_valid().unwrap();
    assert_eq!(latest.checkpoint, Some(sample(1)));
}

#[test]
fn every_checkpoint_corrupt() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    fs::write(store.path_of(CheckpointId(1)), b"garbage").unwrap();
    let latest = store.latest_valid().unwrap();
    assert_eq!(latest.checkpoint, None);
    assert!(matches!(
        latest.skipped[..],
        [StoreError::Format { source: FormatError::BadMagic, .. }]
    ));
}

#[test]
fn a_file_holding_another_id_is_rejected() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    fs::copy(store.path_of(CheckpointId(1)), store.path_of(CheckpointId(7))).unwrap();
    for result in [store.load(CheckpointId(7)).map(drop), store.list().map(drop)] {
        assert!(matches!(
            result,
            Err(StoreError::IdMismatch { expected: CheckpointId(7), found: CheckpointId(1), .. })
        ));
    }
}

#[test]
fn open_creates_the_directory_and_rejects_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let nested = tmp.path().join("a/b/c");
    let store = FsStore::open(&nested).unwrap();
    assert!(nested.is_dir());
    assert_eq!(store.dir(), nested);

    let file = tmp.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let err = FsStore::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }));
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[test]
fn load_file_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.amber");
    let err = FsStore::load_file(&missing).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("cannot read "), "{message}");
    assert!(message.contains("nope.amber"), "{message}");
}

#[test]
fn the_store_is_usable_as_a_shared_trait_object() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn CheckpointStore>();
    assert_send_sync::<FsStore>();
    assert_send_sync::<StoreError>();

    let (_tmp, store) = store();
    let store: Arc<dyn CheckpointStore> = Arc::new(store.with_retention(3));
    let threads: Vec<_> = (1..=4)
        .map(|id| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.load(CheckpointId(id)).is_err())
        })
        .collect();
    for thread in threads {
        assert!(thread.join().unwrap());
    }
    store.save(&sample(1)).unwrap();
    assert_eq!(store.latest().unwrap(), Some(sample(1)));
}

/// A file read through the store (a stream, record by record) fails exactly as the same
/// bytes decoded in memory do, for every truncation and every flipped byte of it.
#[test]
fn a_stored_file_fails_as_its_bytes_do_in_memory() {
    let (_tmp, store) = store();
    let bytes = encode(&sample(7)).unwrap();
    let path = store.path_of(CheckpointId(7));
    let format_error = |result: Result<_, StoreError>| match result {
        Err(StoreError::Format { source, .. }) => format!("{source:?}"),
        other => panic!("not a format error: {other:?}"),
    };
    for cut in 0..bytes.len() {
        fs::write(&path, &bytes[..cut]).unwrap();
        let in_memory = format!("{:?}", amber_snapshot::decode(&bytes[..cut]).unwrap_err());
        assert_eq!(format_error(FsStore::load_file(&path)), in_memory, "cut at {cut}");
    }
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x40;
        fs::write(&path, &flipped).unwrap();
        match amber_snapshot::decode(&flipped) {
            Ok(checkpoint) => assert_eq!(FsStore::load_file(&path).unwrap(), checkpoint),
            Err(error) => {
                assert_eq!(
                    format_error(FsStore::load_file(&path)),
                    format!("{error:?}"),
                    "byte {at}"
                )
            }
        }
    }
}

/// A file far longer than its records (a checkpoint followed by 8 GiB, sparse: nothing is on
/// disk) is refused from its length, without reading what follows the end record; a record
/// that claims more bytes than the file has is refused before anything is allocated for it.
#[test]
fn a_file_longer_or_shorter_than_its_records_is_refused_without_reading_it() {
    let (_tmp, store) = store();
    store.save(&sample(1)).unwrap();
    let path = store.path_of(CheckpointId(1));
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len + (8 << 30)).unwrap();
    match store.load(CheckpointId(1)) {
        Err(StoreError::Format {
            source: FormatError::TrailingBytes { offset, len: extra },
            ..
        }) => {
            assert_eq!((offset, extra), (len, 8 << 30));
        }
        other => panic!("{other:?}"),
    }
    // The first record's length field (bytes 13..17 after the 12-byte file header and its
    // kind byte) claims 4 GiB.
    let mut bytes = encode(&sample(2)).unwrap();
    bytes[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
    let path = store.path_of(CheckpointId(2));
    fs::write(&path, &bytes).unwrap();
    assert!(
        matches!(
            store.load(CheckpointId(2)),
            Err(StoreError::Format { source: FormatError::Truncated { .. }, .. })
        ),
        "a record longer than the file"
    );
}
