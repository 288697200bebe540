//! The object-storage checkpoint store against a real S3 endpoint (moto's server on
//! 127.0.0.1): saving, listing, loading, retention, interrupted uploads and tampered objects,
//! through the async and the blocking interfaces. Feature `s3`.

mod checkpoint_support;
mod s3_support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use amber_snapshot::object_store::aws::AmazonS3Builder;
use amber_snapshot::object_store::path::Path;
use amber_snapshot::object_store::{ObjectStore, PutPayload};
use amber_snapshot::{
    ActorEntry, AsyncCheckpointStore, Checkpoint, CheckpointId, CheckpointStore, Compression,
    FormatError, ObjectStoreCheckpoints, SpawnCapacity, SpawnRestart, StateRecord, Store,
    StoreError, ValidationError, encode, encode_with,
};
use checkpoint_support::{Rng, actor, sample};
use futures::TryStreamExt;
use s3_support::S3Server;

/// Starts the server, or skips the test (see `s3_support`).
macro_rules! s3_server {
    () => {
        match S3Server::start() {
            Some(server) => server,
            None => return,
        }
    };
}

/// Runs `fut`, failing the test if it takes longer than 60 s.
async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), fut).await.expect("test step hung for 60 s")
}

/// A client of `bucket` on `server` (created here).
fn bucket(server: &S3Server, bucket: &str) -> Arc<dyn ObjectStore> {
    server.create_bucket(bucket);
    let s3 = AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id(s3_support::ACCESS_KEY)
        .with_secret_access_key(s3_support::SECRET_KEY)
        .with_region(s3_support::REGION)
        .build()
        .unwrap();
    Arc::new(s3)
}

fn checkpoints(s3: &Arc<dyn ObjectStore>, prefix: &str) -> ObjectStoreCheckpoints {
    ObjectStoreCheckpoints::new(Arc::clone(s3), Path::from(prefix)).with_url_base("s3://bucket")
}

/// Every key in the bucket, sorted.
async fn keys(s3: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut keys: Vec<String> =
        s3.list(None).map_ok(|meta| meta.location.to_string()).try_collect().await.unwrap();
    keys.sort();
    keys
}

async fn ids(store: &ObjectStoreCheckpoints) -> Vec<u64> {
    AsyncCheckpointStore::ids(store).await.unwrap().into_iter().map(|id| id.0).collect()
}

async fn put(s3: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    s3.put(&Path::from(key), PutPayload::from(bytes)).await.unwrap();
}

/// What the object store writes by default: zstd-compressed, format version 4.
fn encoded(checkpoint: &Checkpoint) -> Vec<u8> {
    encode_with(checkpoint, Compression::ZSTD).unwrap()
}

/// A checkpoint of `actors` actors whose states are `state_bytes` random (incompressible)
/// bytes each, and whose random names make the manifest about 200 bytes per actor (about 100
/// compressed).
fn wide(id: u64, actors: u64, state_bytes: usize) -> Checkpoint {
    let mut checkpoint = sample(id);
    checkpoint.in_flight.clear();
    for seq in 10..10 + actors {
        checkpoint.manifest.actors.push(ActorEntry {
            id: actor(seq),
            type_name: "bank.Account".into(),
            name: Some({
                let mut rng = Rng(seq * 31 + id);
                let suffix: String =
                    (0..180).map(|_| format!("{:x}", rng.next_u64() % 16)).collect();
                format!("account-{seq}-{suffix}")
            }),
            node: "node-b".into(),
            parent: None,
            watchers: vec![],
            watching: vec![],
            state_version: 1,
            capacity: SpawnCapacity::SystemDefault,
            restart: SpawnRestart::Never,
        });
        checkpoint.states.push(StateRecord {
            id: actor(seq),
            state: {
                let mut rng = Rng(seq * 7919 + id);
                (0..state_bytes).map(|_| rng.next_u64() as u8).collect()
            },
            timers: vec![],
        });
    }
    checkpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_list_load_latest_and_retention() {
    let server = s3_server!();
    let s3 = bucket(&server, "bucket");
    let store = checkpoints(&s3, "bank/checkpoints");
    bounded(async {
        assert_eq!(ids(&store).await, Vec::<u64>::new());
        assert_eq!(AsyncCheckpointStore::list(&store).await.unwrap(), []);
        assert_eq!(AsyncCheckpointStore::latest(&store).await.unwrap(), None);
        assert_eq!(AsyncCheckpointStore::next_id(&store).await.unwrap(), CheckpointId(1));

        for id in 1..=3 {
            let info = AsyncCheckpointStore::save(&store, &sample(id)).await.unwrap();
            assert_eq!(info.id, CheckpointId(id));
            assert_eq!(info.epoch, sample(id).manifest.epoch);
            assert_eq!(info.bytes, encoded(&sample(id)).len() as u64);
            assert_eq!(
                info.path_or_key,
                format!("s3://bucket/bank/checkpoints/ckpt-{id:020}.amber")
            );
        }
        assert_eq!(
            keys(&s3).await,
            [
                "bank/checkpoints/ckpt-00000000000000000001.amber",
                "bank/checkpoints/ckpt-00000000000000000002.amber",
                "bank/checkpoints/ckpt-00000000000000000003.amber",
            ]
        );
        let list = AsyncCheckpointStore::list(&store).await.unwrap();
        assert_eq!(list.iter().map(|i| i.id.0).collect::<Vec<_>>(), [1, 2, 3]);
        for info in &list {
            let expected = sample(info.id.0);
            assert_eq!(info.created_unix_ms, expected.manifest.created_unix_ms);
            assert_eq!(info.epoch, expected.manifest.epoch);
            assert_eq!(info.bytes, encoded(&expected).len() as u64);
        }
        for id in 1..=3 {
            assert_eq!(
                AsyncCheckpointStore::load(&store, CheckpointId(id)).await.unwrap(),
                sample(id)
            );
        }
        assert_eq!(AsyncCheckpointStore::latest(&store).await.unwrap(), Some(sample(3)));
        let latest = AsyncCheckpointStore::latest_valid(&store).await.unwrap();
        assert_eq!(latest.checkpoint, Some(sample(3)));
        assert!(latest.skipped.is_empty());
        assert_eq!(AsyncCheckpointStore::next_id(&store).await.unwrap(), CheckpointId(4));

        // Another prefix in the same bucket is another store.
        let other = checkpoints(&s3, "bank/other");
        assert_eq!(ids(&other).await, Vec::<u64>::new());

        // Never overwritten; an inconsistent checkpoint is not written.
        let mut changed = sample(3);
        changed.manifest.epoch.0 += 100;
        assert!(matches!(
            AsyncCheckpointStore::save(&store, &changed).await,
            Err(StoreError::AlreadyExists { id: CheckpointId(3), .. })
        ));
        assert_eq!(AsyncCheckpointStore::load(&store, CheckpointId(3)).await.unwrap(), sample(3));
        let mut bad = sample(9);
        bad.states.pop();
        match AsyncCheckpointStore::save(&store, &bad).await {
            Err(StoreError::Unencodable { id: CheckpointId(9), source, .. }) => assert_eq!(
                source,
                FormatError::Invalid(ValidationError::MissingState { actor: actor(3) })
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(keys(&s3).await.len(), 3);

        // Retention: keeps the last two after each save.
        let kept = store.clone().with_retention(2);
        for id in 4..=5 {
            AsyncCheckpointStore::save(&kept, &sample(id)).await.unwrap();
        }
        assert_eq!(ids(&store).await, [4, 5]);
        assert_eq!(keys(&s3).await.len(), 2);

        // Remove, and NotFound for what is not there.
        AsyncCheckpointStore::remove(&store, CheckpointId(4)).await.unwrap();
        assert_eq!(ids(&store).await, [5]);
        for err in [
            AsyncCheckpointStore::remove(&store, CheckpointId(4)).await,
            AsyncCheckpointStore::load(&store, CheckpointId(4)).await.map(drop),
        ] {
            match err {
                Err(StoreError::NotFound { id: CheckpointId(4), location }) => assert_eq!(
                    location,
                    "s3://bucket/bank/checkpoints/ckpt-00000000000000000004.amber"
                ),
                other => panic!("{other:?}"),
            }
        }

        // A checkpoint larger than a part is streamed in parts (a multipart ETag ends in
        // "-PARTS"), and a manifest larger than the first read of `list` is read whole.
        let big = wide(6, 1000, 12 * 1024);
        let bytes = encoded(&big);
        assert!(bytes.len() > 2 * amber_snapshot::DEFAULT_PART_SIZE, "{}", bytes.len());
        let manifest_len = u32::from_le_bytes(bytes[13..17].try_into().unwrap());
        assert!(manifest_len > 64 * 1024, "the manifest takes two reads: {manifest_len}");
        let info = AsyncCheckpointStore::save(&store, &big).await.unwrap();
        assert_eq!(info.bytes, bytes.len() as u64);
        let meta = s3.head(&store.key_of(CheckpointId(6))).await.unwrap();
        assert_eq!(meta.size, bytes.len() as u64);
        assert_eq!(
            s3.get(&store.key_of(CheckpointId(6))).await.unwrap().bytes().await.unwrap(),
            bytes
        );
        let parts = bytes.len().div_ceil(amber_snapshot::DEFAULT_PART_SIZE);
        let e_tag = meta.e_tag.unwrap();
        assert!(e_tag.trim_matches('"').ends_with(&format!("-{parts}")), "{e_tag}");
        assert_eq!(AsyncCheckpointStore::load(&store, CheckpointId(6)).await.unwrap(), big);
        let list = AsyncCheckpointStore::list(&store).await.unwrap();
        assert_eq!(
            list.iter().map(|i| (i.id.0, i.epoch)).collect::<Vec<_>>(),
            [(5, sample(5).manifest.epoch), (6, big.manifest.epoch)]
        );

        // Without compression, the objects are the files' bytes (format version 2).
        let plain = store.clone().with_compression(Compression::None);
        let info = AsyncCheckpointStore::save(&plain, &sample(8)).await.unwrap();
        let object = s3.get(&store.key_of(CheckpointId(8))).await.unwrap().bytes().await.unwrap();
        assert_eq!(object, encode(&sample(8)).unwrap());
        assert_eq!(info.bytes, object.len() as u64);
        assert_eq!(AsyncCheckpointStore::load(&store, CheckpointId(8)).await.unwrap(), sample(8));
        AsyncCheckpointStore::remove(&store, CheckpointId(8)).await.unwrap();

        // The store named by a URL is the same store.
        let named = Store::Object(store.clone());
        assert_eq!(
            AsyncCheckpointStore::ids(&named).await.unwrap(),
            [CheckpointId(5), CheckpointId(6)]
        );
    })
    .await;

    // The blocking face, from a blocking thread of the runtime and from a plain thread.
    let blocking = store.clone();
    let from_pool = tokio::task::spawn_blocking(move || {
        let ids = CheckpointStore::ids(&blocking).unwrap();
        CheckpointStore::save(&blocking, &sample(7)).unwrap();
        (ids, CheckpointStore::latest(&blocking).unwrap())
    });
    let (before, latest) = bounded(from_pool).await.unwrap();
    assert_eq!(before, [CheckpointId(5), CheckpointId(6)]);
    assert_eq!(latest, Some(sample(7)));
    let plain = std::thread::spawn(move || {
        let store: Arc<dyn CheckpointStore> = Arc::new(store);
        (store.list().unwrap().len(), store.load(CheckpointId(5)).unwrap())
    });
    assert_eq!(plain.join().unwrap(), (3, sample(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_is_never_listed_nor_loaded() {
    let server = s3_server!();
    let s3 = bucket(&server, "bucket");
    let store = checkpoints(&s3, "ckpts");
    bounded(async {
        AsyncCheckpointStore::save(&store, &sample(1)).await.unwrap();

        // Checkpoint 2's upload: one part sent under the final key, never completed.
        let big = wide(2, 400, 40 * 1024);
        let bytes = encode(&big).unwrap();
        let mut upload = s3.put_multipart(&store.key_of(CheckpointId(2))).await.unwrap();
        upload
            .put_part(PutPayload::from(bytes[..amber_snapshot::DEFAULT_PART_SIZE].to_vec()))
            .await
            .unwrap();
        drop(upload);
        let uploads = server.get("/bucket?uploads");
        assert!(uploads.contains("ckpts/ckpt-00000000000000000002.amber"), "{uploads}");

        // A save of ours dropped mid-upload (its multipart upload begun, not completed; as
        // when the writing process dies) leaves no object either.
        let third = wide(3, 400, 40 * 1024);
        // Boxed, so that dropping it below drops the future itself (its part uploads too).
        let mut save = Box::pin(AsyncCheckpointStore::save(&store, &third));
        let mut polls = 0;
        loop {
            tokio::select! {
                result = &mut save => panic!("a 16 MiB upload finished before it was seen: {result:?}"),
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
            polls += 1;
            assert!(polls < 5_000, "the upload of checkpoint 3 never began");
            if server.get("/bucket?uploads").contains("ckpts/ckpt-00000000000000000003.amber") {
                break;
            }
        }
        drop(save);

        // Leftovers of other writers: temporary and partial names, other prefixes.
        put(&s3, "ckpts/.ckpt-00000000000000000004.amber.tmp", encode(&sample(4)).unwrap()).await;
        put(&s3, "ckpts/ckpt-00000000000000000005.amber.part", encode(&sample(5)).unwrap()).await;
        put(&s3, "ckpts/nested/ckpt-00000000000000000006.amber", encode(&sample(6)).unwrap()).await;
        put(&s3, "ckpts-old/ckpt-00000000000000000007.amber", encode(&sample(7)).unwrap()).await;
        put(&s3, "ckpts/notes.txt", b"keep me".to_vec()).await;

        assert_eq!(ids(&store).await, [1]);
        assert_eq!(AsyncCheckpointStore::list(&store).await.unwrap().len(), 1);
        assert_eq!(AsyncCheckpointStore::latest(&store).await.unwrap(), Some(sample(1)));
        assert_eq!(AsyncCheckpointStore::next_id(&store).await.unwrap(), CheckpointId(2));
        for id in [2, 3] {
            assert!(matches!(
                AsyncCheckpointStore::load(&store, CheckpointId(id)).await,
                Err(StoreError::NotFound { .. })
            ));
        }

        // The interrupted id is free: the next save of it completes.
        AsyncCheckpointStore::save(&store, &big).await.unwrap();
        assert_eq!(ids(&store).await, [1, 2]);
        assert_eq!(AsyncCheckpointStore::latest(&store).await.unwrap(), Some(big));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_torn_object_is_a_typed_format_error() {
    let server = s3_server!();
    let s3 = bucket(&server, "bucket");
    let store = checkpoints(&s3, "ckpts");
    let key = |id: u64| format!("ckpts/ckpt-{id:020}.amber");
    bounded(async {
        for id in 1..=2 {
            AsyncCheckpointStore::save(&store, &sample(id)).await.unwrap();
        }
        // A bit flipped after the manifest: listed, but does not load.
        let mut bytes = encode(&sample(3)).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 0x01;
        put(&s3, &key(3), bytes).await;
        let err = AsyncCheckpointStore::latest(&store).await.unwrap_err();
        match &err {
            StoreError::Format { location, source: FormatError::ChecksumMismatch { .. } } => {
                assert_eq!(location, &format!("s3://bucket/{}", key(3)));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("ckpt-00000000000000000003.amber"), "{err}");
        let latest = AsyncCheckpointStore::latest_valid(&store).await.unwrap();
        assert_eq!(latest.checkpoint, Some(sample(2)));
        assert_eq!(latest.skipped.len(), 1);
        assert_eq!(AsyncCheckpointStore::list(&store).await.unwrap().len(), 3);

        // Torn: the tail is missing.
        let bytes = encode(&sample(4)).unwrap();
        put(&s3, &key(4), bytes[..bytes.len() - 10].to_vec()).await;
        assert!(matches!(
            AsyncCheckpointStore::load(&store, CheckpointId(4)).await,
            Err(StoreError::Format { source: FormatError::Truncated { .. }, .. })
        ));

        // Another id's checkpoint under this id's key.
        put(&s3, &key(5), encode(&sample(1)).unwrap()).await;
        assert!(matches!(
            AsyncCheckpointStore::load(&store, CheckpointId(5)).await,
            Err(StoreError::IdMismatch { expected: CheckpointId(5), found: CheckpointId(1), .. })
        ));
        assert!(matches!(
            AsyncCheckpointStore::list(&store).await,
            Err(StoreError::IdMismatch { expected: CheckpointId(5), .. })
        ));

        // A corrupt manifest fails the listing, naming the object.
        let mut bytes = encode(&sample(5)).unwrap();
        bytes[30] ^= 0x10;
        put(&s3, &key(5), bytes).await;
        match AsyncCheckpointStore::list(&store).await {
            Err(StoreError::Format { location, source: FormatError::ChecksumMismatch { .. } }) => {
                assert_eq!(location, format!("s3://bucket/{}", key(5)));
            }
            other => panic!("{other:?}"),
        }
        // Empty, tiny and foreign objects.
        put(&s3, &key(5), Vec::new()).await;
        assert!(matches!(
            AsyncCheckpointStore::list(&store).await,
            Err(StoreError::Format {
                source: FormatError::Truncated { offset: 0, record: None },
                ..
            })
        ));
        put(&s3, &key(5), b"AMBERCKP\x01\0\0\0\x01\xff\xff\xff\xff".to_vec()).await;
        assert!(matches!(
            AsyncCheckpointStore::list(&store).await,
            Err(StoreError::Format { source: FormatError::Truncated { record: Some(0), .. }, .. })
        ));
        put(&s3, &key(5), b"garbage".to_vec()).await;
        assert!(matches!(
            AsyncCheckpointStore::load(&store, CheckpointId(5)).await,
            Err(StoreError::Format { source: FormatError::BadMagic, .. })
        ));
        let latest = AsyncCheckpointStore::latest_valid(&store).await.unwrap();
        assert_eq!(latest.checkpoint, Some(sample(2)));
        assert_eq!(latest.skipped.len(), 3, "{:?}", latest.skipped);
    })
    .await;
}

/// A bucket that does not exist, or a server that is gone, is a backend error naming the
/// location, not a panic or an empty store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_failures_are_typed() {
    let server = s3_server!();
    let s3 = bucket(&server, "bucket");
    let missing = AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_bucket_name("no-such-bucket")
        .with_access_key_id(s3_support::ACCESS_KEY)
        .with_secret_access_key(s3_support::SECRET_KEY)
        .with_region(s3_support::REGION)
        .build()
        .unwrap();
    let store = ObjectStoreCheckpoints::new(Arc::new(missing), Path::from("x"))
        .with_url_base("s3://no-such-bucket");
    bounded(async {
        match AsyncCheckpointStore::ids(&store).await {
            Err(StoreError::Backend { location, .. }) => {
                assert_eq!(location, "s3://no-such-bucket/x")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            AsyncCheckpointStore::save(&store, &sample(1)).await,
            Err(StoreError::Backend { .. })
        ));
        // The real bucket works meanwhile.
        AsyncCheckpointStore::save(&checkpoints(&s3, "x"), &sample(1)).await.unwrap();
    })
    .await;
}

/// The filesystem store through the async trait, as a caller holding either store sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filesystem_store_through_the_async_trait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let store: Arc<dyn AsyncCheckpointStore> =
        Arc::new(Store::from_url(&format!("file://{}", dir.display())).unwrap().with_retention(2));
    bounded(async {
        assert_eq!(store.latest().await.unwrap(), None);
        for id in 1..=3 {
            let info = store.save(&sample(id)).await.unwrap();
            assert_eq!(
                info.path_or_key,
                dir.join(format!("ckpt-{id:020}.amber")).display().to_string()
            );
        }
        assert_eq!(store.ids().await.unwrap(), [CheckpointId(2), CheckpointId(3)]);
        assert_eq!(store.list().await.unwrap().len(), 2);
        assert_eq!(store.load(CheckpointId(2)).await.unwrap(), sample(2));
        assert_eq!(store.latest().await.unwrap(), Some(sample(3)));
        assert!(matches!(
            store.save(&sample(3)).await,
            Err(StoreError::AlreadyExists { id: CheckpointId(3), .. })
        ));
        store.remove(CheckpointId(3)).await.unwrap();
        assert!(matches!(store.remove(CheckpointId(3)).await, Err(StoreError::NotFound { .. })));
        std::fs::write(dir.join("ckpt-00000000000000000004.amber"), b"garbage").unwrap();
        let latest = store.latest_valid().await.unwrap();
        assert_eq!(latest.checkpoint, Some(sample(2)));
        assert!(matches!(
            latest.skipped[..],
            [StoreError::Format { source: FormatError::BadMagic, .. }]
        ));
        assert_eq!(store.next_id().await.unwrap(), CheckpointId(5));
    })
    .await;
}

/// `base` as checkpoint `id`, with the states of `changed` actors (by index) altered.
fn changed(base: &Checkpoint, id: u64, changed: impl IntoIterator<Item = usize>) -> Checkpoint {
    let mut checkpoint = base.clone();
    checkpoint.manifest.id = CheckpointId(id);
    for at in changed {
        let state = &mut checkpoint.states[at].state;
        state[0] = state[0].wrapping_add(id as u8);
        state.push(id as u8);
    }
    checkpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_checkpoints_in_object_storage() {
    let server = s3_server!();
    let s3 = bucket(&server, "bucket");
    let store = checkpoints(&s3, "incr").with_retention(2).with_incremental(4);
    let full = checkpoints(&s3, "full");
    bounded(async {
        // 2,000 actors of 2,000 random bytes (and 200-byte names), 1 % changed: the incremental
        // checkpoint is a
        // tenth of the full one or less, and reads back equal.
        let base = wide(1, 2_000, 2_000);
        AsyncCheckpointStore::save(&store, &base).await.unwrap();
        let second = changed(&base, 2, (0..2_000).step_by(100));
        let incremental = AsyncCheckpointStore::save(&store, &second).await.unwrap();
        let whole = AsyncCheckpointStore::save(&full, &second).await.unwrap();
        println!("2,000 actors, 1 % changed: {} of {} bytes", incremental.bytes, whole.bytes);
        assert!(incremental.bytes * 10 <= whole.bytes, "{} of {}", incremental.bytes, whole.bytes);
        // The format a directory store writes (version 7: actor runs in the manifest).
        let object = s3.get(&Path::from("incr/ckpt-00000000000000000002.amber")).await.unwrap();
        let object = object.bytes().await.unwrap();
        assert_eq!(object[8..12], 7u32.to_le_bytes());
        assert_eq!(AsyncCheckpointStore::load(&store, CheckpointId(2)).await.unwrap(), second);
        assert_eq!(CheckpointStore::load(&store, CheckpointId(2)).unwrap(), second);
        // Retention keeps the two newest and what they refer to; every kept one loads.
        let mut saved = vec![base.clone(), second.clone()];
        for id in 3..=9u64 {
            let next = changed(&saved[id as usize - 2], id, [id as usize * 13]);
            AsyncCheckpointStore::save(&store, &next).await.unwrap();
            saved.push(next);
            let kept = ids(&store).await;
            assert!(kept.ends_with(&[id - 1, id]), "{kept:?}");
            assert!(kept.len() <= 2 + 4, "{kept:?}");
            for kept in kept {
                let loaded = AsyncCheckpointStore::load(&store, CheckpointId(kept)).await.unwrap();
                assert_eq!(loaded, saved[kept as usize - 1], "{kept} after {id}");
            }
        }
        // Checkpoint 9 (full every 4: 1, 5, 9) refers to nothing: 8 and 9 are kept, and 5, the
        // base of 8.
        assert_eq!(ids(&store).await, [5, 6, 7, 8, 9]);
        // A restart: a new store value on the prefix goes on from checkpoint 9 at once.
        let restarted = checkpoints(&s3, "incr").with_incremental(4);
        let tenth = changed(&saved[8], 10, [7usize]);
        let written = AsyncCheckpointStore::save(&restarted, &tenth).await.unwrap();
        assert!(written.bytes * 10 <= whole.bytes, "{} of {}", written.bytes, whole.bytes);
        assert_eq!(AsyncCheckpointStore::load(&restarted, CheckpointId(10)).await.unwrap(), tenth);
        // A deleted base is a typed error.
        s3.delete(&Path::from("incr/ckpt-00000000000000000005.amber")).await.unwrap();
        match AsyncCheckpointStore::load(&store, CheckpointId(8)).await {
            Err(StoreError::Unresolved { base: CheckpointId(5), problem, .. }) => {
                assert!(matches!(problem, amber_snapshot::ReferenceProblem::Missing))
            }
            other => panic!("expected Unresolved, got {other:?}"),
        }
    })
    .await;
}
