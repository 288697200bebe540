//! Incremental checkpoints (format version 5): unchanged states are references to the
//! checkpoint that stores them; loads follow them and check them; retention keeps what a kept
//! checkpoint refers to; a missing or tampered base is a typed error.

mod incremental_world;

use std::fs;
use std::path::Path;

use amber_snapshot::{
    ActorId, Checkpoint, CheckpointId, CheckpointStore, Compression, FormatError, FsStore,
    ReferenceProblem, StoreError, decode, encode,
};
use incremental_world::{Rng, actor, change, world};

fn version_of(path: &Path) -> u32 {
    let bytes = fs::read(path).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[test]
fn one_percent_changed_of_100k_actors_writes_under_a_tenth_of_the_bytes_and_loads_equal() {
    const ACTORS: usize = 100_000;
    const STATE: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path().join("incr")).unwrap().with_incremental(16);
    let full_store = FsStore::open(tmp.path().join("full")).unwrap();
    let mut rng = Rng(7);
    let mut versions = vec![0u64; ACTORS];
    let first = world(1, &versions, STATE);
    let full = store.save(&first).unwrap();
    assert_eq!(version_of(Path::new(&full.path_or_key)), 2, "the first checkpoint is whole");
    change(&mut versions, ACTORS / 100, &mut rng);
    let second = world(2, &versions, STATE);
    let incremental = store.save(&second).unwrap();
    let whole = full_store.save(&second).unwrap();
    let ratio = incremental.bytes as f64 / whole.bytes as f64;
    println!(
        "100k actors, {STATE}-byte states, 1 % changed: full {} bytes, incremental {} bytes \
         ({:.2} %)",
        whole.bytes,
        incremental.bytes,
        ratio * 100.0
    );
    assert_eq!(version_of(Path::new(&incremental.path_or_key)), 7);
    assert!(incremental.bytes * 10 <= whole.bytes, "{} of {}", incremental.bytes, whole.bytes);
    // The incremental checkpoint reads back as the full one does, every state byte-equal.
    let loaded = store.load(CheckpointId(2)).unwrap();
    assert_eq!(loaded, full_store.load(CheckpointId(2)).unwrap());
    assert_eq!(loaded, second);
    assert_eq!(store.latest().unwrap(), Some(second.clone()));
    // Bytes alone do not reach the referenced states: a typed error, naming the base.
    let bytes = fs::read(&incremental.path_or_key).unwrap();
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::Unresolved { base: CheckpointId(1), states }) if states > 90_000
    ));
    // A file read on its own follows the references to its neighbours.
    assert_eq!(FsStore::load_file(Path::new(&incremental.path_or_key)).unwrap(), second);
}

#[test]
fn small_states_and_compression_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store =
        FsStore::open(tmp.path()).unwrap().with_compression(Compression::ZSTD).with_incremental(8);
    let mut rng = Rng(11);
    let mut versions = vec![0u64; 3_000];
    let mut saved = Vec::new();
    for id in 1..=6 {
        let checkpoint = world(id, &versions, 12);
        store.save(&checkpoint).unwrap();
        saved.push(checkpoint);
        change(&mut versions, 30, &mut rng);
    }
    for checkpoint in &saved {
        assert_eq!(&store.load(checkpoint.manifest.id).unwrap(), checkpoint);
    }
    assert_eq!(version_of(&store.path_of(CheckpointId(1))), 4);
    assert_eq!(version_of(&store.path_of(CheckpointId(6))), 7);
}

#[test]
fn retention_never_deletes_a_base_a_kept_checkpoint_needs() {
    for full_every in [4, 1_000] {
        let tmp = tempfile::tempdir().unwrap();
        let store =
            FsStore::open(tmp.path()).unwrap().with_retention(2).with_incremental(full_every);
        let mut rng = Rng(3);
        let mut versions = vec![0u64; 400];
        let mut saved = std::collections::HashMap::new();
        for id in 1..=20u64 {
            // Actors 1..=100 never change: their bytes stay in the first full checkpoint of
            // each chain.
            change(&mut versions[100..], 4, &mut rng);
            let checkpoint = world(id, &versions, 40);
            store.save(&checkpoint).unwrap();
            saved.insert(id, checkpoint);
            let ids = store.ids().unwrap();
            let newest: Vec<CheckpointId> =
                (id.saturating_sub(1).max(1)..=id).map(CheckpointId).collect();
            assert!(ids.ends_with(&newest), "{ids:?}");
            // Every kept checkpoint loads, equal to what was saved: no unresolvable reference.
            for kept in &ids {
                assert_eq!(&store.load(*kept).unwrap(), &saved[&kept.0], "{kept} after {id}");
            }
            if full_every == 4 {
                // A chain is at most 4 checkpoints: nothing older than the last full one
                // before the two newest is kept.
                assert!(ids.len() <= 2 + 4, "{ids:?}");
            } else {
                // One chain: its full checkpoint holds the never-changed states, so it stays.
                assert_eq!(ids[0], CheckpointId(1), "{ids:?}");
            }
        }
        if full_every == 4 {
            // Checkpoints 17 (full), 18, 19, 20 form the last chain.
            let ids = store.ids().unwrap();
            assert!(ids.iter().all(|id| id.0 >= 17), "{ids:?}");
            assert_eq!(version_of(&store.path_of(CheckpointId(17))), 2);
        }
    }
}

#[test]
fn retention_keeps_bases_across_store_values() {
    let tmp = tempfile::tempdir().unwrap();
    let mut versions = vec![0u64; 500];
    let mut rng = Rng(5);
    {
        let store = FsStore::open(tmp.path()).unwrap().with_incremental(100);
        for id in 1..=4 {
            store.save(&world(id, &versions, 40)).unwrap();
            change(&mut versions, 5, &mut rng);
        }
    }
    // A new store value (a restarted system) with retention goes on from the latest
    // checkpoint in the directory (4, and the checkpoints it refers to), and reads the bases
    // of the others from their manifests.
    let store = FsStore::open(tmp.path()).unwrap().with_retention(2).with_incremental(100);
    store.save(&world(5, &versions, 40)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(5))), 7, "incremental at once");
    // Kept: 4 and 5, and the bases they refer to.
    let ids = store.ids().unwrap();
    assert!(ids.contains(&CheckpointId(1)), "{ids:?}");
    for id in ids {
        store.load(id).unwrap();
    }
    assert_eq!(store.load(CheckpointId(5)).unwrap(), world(5, &versions, 40));
    change(&mut versions, 5, &mut rng);
    store.save(&world(6, &versions, 40)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(6))), 7);
    // Every checkpoint kept loads (5 and 6, and whatever they refer to).
    for id in store.ids().unwrap() {
        store.load(id).unwrap();
    }
    assert_eq!(store.load(CheckpointId(6)).unwrap(), world(6, &versions, 40));
}

#[test]
fn a_restarted_store_goes_on_from_the_latest_checkpoint() {
    const ACTORS: usize = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut versions = vec![0u64; ACTORS];
    let mut rng = Rng(11);
    // The same checkpoints written by one store value, without a restart.
    let unbroken = FsStore::open(tmp.path().join("unbroken")).unwrap().with_incremental(16);
    {
        let store = FsStore::open(tmp.path()).unwrap().with_incremental(16);
        for id in 1..=2 {
            if id > 1 {
                change(&mut versions, ACTORS / 100, &mut rng);
            }
            store.save(&world(id, &versions, 200)).unwrap();
            unbroken.save(&world(id, &versions, 200)).unwrap();
        }
    }
    // A restart: a new store value on the same directory, 1 % of the states changed again.
    change(&mut versions, ACTORS / 100, &mut rng);
    let store = FsStore::open(tmp.path()).unwrap().with_incremental(16);
    let third = store.save(&world(3, &versions, 200)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(3))), 7);
    // As small as the one written without the restart: the chain read back from the files
    // is the one the store had in memory.
    let third_unbroken = unbroken.save(&world(3, &versions, 200)).unwrap();
    assert_eq!(third.bytes, third_unbroken.bytes);
    let whole = fs::metadata(store.path_of(CheckpointId(1))).unwrap().len();
    assert!(third.bytes * 5 <= whole, "{} bytes of a whole {whole}", third.bytes);
    assert_eq!(store.load(CheckpointId(3)).unwrap(), world(3, &versions, 200));
    // It refers to where the bytes are (1, and 2 for what changed there), never through 2 to 1.
    let on_disk = fs::read(store.path_of(CheckpointId(3))).unwrap();
    assert!(matches!(decode(&on_disk), Err(FormatError::Unresolved { .. })));
    // A directory whose latest checkpoint does not load: the first save is whole.
    let other = tempfile::tempdir().unwrap();
    fs::copy(
        store.path_of(CheckpointId(2)),
        other.path().join(store.path_of(CheckpointId(2)).file_name().unwrap()),
    )
    .unwrap();
    let lone = FsStore::open(other.path()).unwrap().with_incremental(16);
    lone.save(&world(4, &versions, 200)).unwrap();
    assert_eq!(version_of(&lone.path_of(CheckpointId(4))), 2, "2's base is not there");
    assert_eq!(lone.load(CheckpointId(4)).unwrap(), world(4, &versions, 200));
}

/// A store with a full checkpoint 1 and an incremental checkpoint 2 that refers to it.
fn chain_of_two(dir: &Path, actors: usize, len: usize) -> (FsStore, Checkpoint) {
    let store = FsStore::open(dir).unwrap().with_incremental(16);
    let mut versions = vec![0u64; actors];
    store.save(&world(1, &versions, len)).unwrap();
    versions[7] += 1;
    let second = world(2, &versions, len);
    store.save(&second).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(2))), 7);
    (store, second)
}

fn unresolved(err: StoreError) -> (ActorId, CheckpointId, ReferenceProblem) {
    match err {
        StoreError::Unresolved { id, actor, base, problem, .. } => {
            assert_eq!(id, CheckpointId(2));
            (actor, base, problem)
        }
        other => panic!("expected Unresolved, got {other}"),
    }
}

#[test]
fn a_deleted_base_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = chain_of_two(tmp.path(), 300, 32);
    fs::remove_file(store.path_of(CheckpointId(1))).unwrap();
    let err = store.load(CheckpointId(2)).unwrap_err();
    let message = err.to_string();
    let (actor_id, base, problem) = unresolved(err);
    assert_eq!(base, CheckpointId(1));
    assert_eq!(actor_id, actor(1));
    assert!(matches!(problem, ReferenceProblem::Missing));
    assert!(message.contains("is not stored"), "{message}");
    // latest_valid reports it and finds nothing else.
    let latest = store.latest_valid().unwrap();
    assert!(latest.checkpoint.is_none());
    assert!(matches!(latest.skipped[0], StoreError::Unresolved { .. }));
    // The next checkpoint of this store cannot refer to the deleted base: it is whole.
    store.save(&world(3, &[0; 300], 32)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(3))), 2);
}

#[test]
fn a_base_removed_through_the_store_restarts_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = chain_of_two(tmp.path(), 300, 32);
    store.remove(CheckpointId(1)).unwrap();
    assert!(matches!(store.load(CheckpointId(2)), Err(StoreError::Unresolved { .. })));
    store.save(&world(3, &[0; 300], 32)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(3))), 2);
    assert_eq!(store.load(CheckpointId(3)).unwrap(), world(3, &[0; 300], 32));
}

#[test]
fn a_replaced_base_is_a_typed_error_never_a_wrong_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = chain_of_two(tmp.path(), 300, 32);
    let base = store.path_of(CheckpointId(1));
    // A well-formed checkpoint 1 whose actor 5 has other bytes of the same length.
    let mut versions = vec![0u64; 300];
    versions[4] = 99;
    fs::write(&base, encode(&world(1, &versions, 32)).unwrap()).unwrap();
    let (actor_id, found, problem) = unresolved(store.load(CheckpointId(2)).unwrap_err());
    assert_eq!(found, CheckpointId(1));
    assert_eq!(actor_id, actor(1), "the run that starts at actor 1 covers actor 5");
    assert!(matches!(problem, ReferenceProblem::Mismatch));
    // A checkpoint 1 that lacks actor 9: a run takes actors by place there, and finds
    // another than the first it names (actor 8 changed: a run starts at actor 9).
    let mut lacking = world(1, &[0; 300], 32);
    lacking.manifest.actors.remove(8);
    lacking.states.remove(8);
    fs::write(&base, encode(&lacking).unwrap()).unwrap();
    let (actor_id, _, problem) = unresolved(store.load(CheckpointId(2)).unwrap_err());
    assert_eq!(actor_id, actor(9));
    assert!(matches!(problem, ReferenceProblem::Mismatch));
    // One whose actors 20 and 21 swapped places: the run's first actor is right, its digest
    // (which covers the actors' ids) is not.
    let mut swapped = world(1, &[0; 300], 32);
    swapped.manifest.actors.swap(19, 20);
    fs::write(&base, encode(&swapped).unwrap()).unwrap();
    let (actor_id, _, problem) = unresolved(store.load(CheckpointId(2)).unwrap_err());
    assert_eq!(actor_id, actor(9));
    assert!(matches!(problem, ReferenceProblem::Mismatch));
    // A checkpoint 1 with fewer actors than the runs take: no state there.
    let few = world(1, &[0; 5], 32);
    fs::write(&base, encode(&few).unwrap()).unwrap();
    let (_, _, problem) = unresolved(store.load(CheckpointId(2)).unwrap_err());
    assert!(matches!(problem, ReferenceProblem::NoState));
    // A damaged checkpoint 1.
    let mut bytes = encode(&world(1, &[0; 300], 32)).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(&base, &bytes).unwrap();
    let (_, _, problem) = unresolved(store.load(CheckpointId(2)).unwrap_err());
    assert!(
        matches!(&problem, ReferenceProblem::Unreadable(err) if matches!(**err, StoreError::Format { .. })),
        "{problem}"
    );
    // Another checkpoint under checkpoint 1's name.
    fs::write(&base, encode(&world(9, &[0; 300], 32)).unwrap()).unwrap();
    let (_, _, problem) = unresolved(store.load(CheckpointId(2)).unwrap_err());
    assert!(
        matches!(&problem, ReferenceProblem::Unreadable(err) if matches!(**err, StoreError::IdMismatch { .. }))
    );
}

#[test]
fn every_damage_to_an_incremental_file_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    // Small, so that every cut and flip is tried in a few seconds.
    let (store, second) = chain_of_two(tmp.path(), 30, 8);
    let path = store.path_of(CheckpointId(2));
    let good = fs::read(&path).unwrap();
    let check = |bytes: &[u8], what: &str| {
        fs::write(&path, bytes).unwrap();
        match store.load(CheckpointId(2)) {
            Err(_) => {}
            Ok(checkpoint) => panic!("{what}: loaded {:?}", checkpoint.manifest.id),
        }
    };
    for len in 0..good.len() {
        check(&good[..len], &format!("cut at {len}"));
    }
    for at in 0..good.len() {
        for bit in [0x01, 0x80] {
            let mut bytes = good.clone();
            bytes[at] ^= bit;
            check(&bytes, &format!("bit {bit:#x} of byte {at}"));
        }
    }
    // Read as version 4 or 1, an incremental file is refused.
    for version in [1u32, 4] {
        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        assert!(decode(&bytes).is_err());
        check(&bytes, &format!("as version {version}"));
    }
    fs::write(&path, &good).unwrap();
    assert_eq!(store.load(CheckpointId(2)).unwrap(), second);
}

#[test]
fn clones_of_a_store_continue_one_chain() {
    // Clones share the store's memory (the async face saves through a clone): a clone that
    // saves continues the chain of the value it was cloned from.
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path()).unwrap().with_incremental(16);
    let mut versions = vec![0u64; 300];
    store.save(&world(1, &versions, 32)).unwrap();
    versions[3] += 1;
    let clone = store.clone();
    clone.save(&world(2, &versions, 32)).unwrap();
    assert_eq!(version_of(&store.path_of(CheckpointId(2))), 7);
    assert_eq!(store.load(CheckpointId(2)).unwrap(), world(2, &versions, 32));
}
