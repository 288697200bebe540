//! Checkpoints in object storage (S3 and S3-compatible stores), through the `object_store`
//! crate. Feature `s3`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, WriteMultipart};

use crate::checkpoint::async_store::AsyncCheckpointStore;
use crate::checkpoint::error::{FormatError, ReferenceProblem, StoreError};
use crate::checkpoint::format::{
    Compression, Encoder, Head, MANIFEST_HEADER_LEN, VERSION_HEADER_LEN, decode_head, decode_parts,
    manifest_len, version_of,
};
use crate::checkpoint::fs::{FILE_SUFFIX, parse_checkpoint_name};
use crate::checkpoint::incremental::{self, Chain, Memory, Parts};
use crate::checkpoint::model::{Checkpoint, CheckpointId};
use crate::checkpoint::store::{CheckpointInfo, CheckpointStore, LatestValid};

/// The part size of a multipart upload, unless set with
/// [`with_part_size`](ObjectStoreCheckpoints::with_part_size): S3's smallest part (all parts
/// but the last must be at least 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 5 * 1024 * 1024;

/// How many parts of one checkpoint are uploaded at once; the encoder waits for one to finish
/// before it fills another, so a save holds at most this many parts (plus one record) in memory.
const PARTS_IN_FLIGHT: usize = 4;

/// How many bytes of an object [`list`](CheckpointStore::list) reads first: the manifest of a
/// checkpoint of a few thousand actors. A larger manifest takes a second ranged read.
const MANIFEST_PREFETCH: u64 = 64 * 1024;

/// How many manifests [`list`](CheckpointStore::list) reads at once.
const LIST_CONCURRENCY: usize = 8;

/// A checkpoint store in object storage: checkpoint `42` is the object
/// `PREFIX/ckpt-00000000000000000042.amber`, in the same format as [`FsStore`](crate::FsStore)'s
/// files. Feature `s3`.
///
/// Any [`object_store::ObjectStore`] works; [`from_s3_url`](Self::from_s3_url) (and
/// [`Store::from_url`](crate::Store::from_url)) builds one for S3 or an S3-compatible service
/// (MinIO, moto, …) from the standard AWS environment variables.
///
/// - **Saves stream.** A checkpoint is encoded record by record into the parts of a multipart
///   upload ([`DEFAULT_PART_SIZE`]), never built whole in memory.
/// - **A reader never sees half a checkpoint.** The object appears under its final key only
///   when the upload completes, and object stores make that step atomic; an interrupted upload
///   leaves no object (only unfinished parts, which the store does not list and a bucket's
///   lifecycle rule for incomplete multipart uploads cleans up). Listing counts only keys of the
///   exact form above, directly under the prefix; anything else there is ignored.
/// - **Same behaviour as the filesystem store**: the same ids and order, retention
///   ([`with_retention`](Self::with_retention)), [`latest`](CheckpointStore::latest) and
///   [`latest_valid`](CheckpointStore::latest_valid), and the same [`StoreError`]s for the same
///   cases (a torn or tampered object is [`StoreError::Format`], a missing one
///   [`StoreError::NotFound`]); the object store's own failures are [`StoreError::Backend`].
///
/// Its native interface is [`AsyncCheckpointStore`] (call it inside a tokio runtime). It also
/// implements the blocking [`CheckpointStore`], for the callers that take one (the runtime's
/// `checkpoint_every`, `restore_latest`, the `amber` tool): each blocking call runs on a small
/// runtime the store starts on first use. Use one face or the other for a given store value.
///
/// One system writes to a prefix at a time; any number of readers may read it meanwhile.
#[derive(Debug, Clone)]
pub struct ObjectStoreCheckpoints {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// What locations are shown under, e.g. `s3://bucket`; empty for bare keys.
    base: String,
    keep_last: Option<usize>,
    part_size: usize,
    compression: Compression,
    /// Every how many checkpoints one is full, if the store writes incrementally.
    full_every: Option<u32>,
    /// The chain the store writes on and the bases it knows; shared by its clones.
    memory: Arc<Mutex<Memory>>,
    blocking: Arc<BlockingRuntime>,
}

impl ObjectStoreCheckpoints {
    /// The store of the checkpoints under `prefix` (empty: the root) in `store`.
    ///
    /// Creating it contacts nothing.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> ObjectStoreCheckpoints {
        ObjectStoreCheckpoints {
            store,
            prefix,
            base: String::new(),
            keep_last: None,
            part_size: DEFAULT_PART_SIZE,
            compression: Compression::ZSTD,
            full_every: None,
            memory: Arc::default(),
            blocking: Arc::default(),
        }
    }

    /// The store of the checkpoints at `url`, `s3://BUCKET` or `s3://BUCKET/PREFIX`, with the
    /// region, endpoint and credentials of the standard AWS environment variables
    /// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`, …; see `object_store::aws::AmazonS3Builder::from_env`).
    ///
    /// Creating it contacts nothing: a wrong bucket or credentials show at the first call.
    pub fn from_s3_url(url: &str) -> Result<ObjectStoreCheckpoints, StoreError> {
        let bad = |reason: String| StoreError::Url { url: url.to_owned(), reason };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not an s3:// URL".to_owned()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket (s3://BUCKET/PREFIX)".to_owned()));
        }
        let prefix = Path::parse(prefix.trim_end_matches('/'))
            .map_err(|err| bad(format!("bad prefix: {err}")))?;
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|err| bad(err.to_string()))?;
        Ok(ObjectStoreCheckpoints::new(Arc::new(store), prefix)
            .with_url_base(format!("s3://{bucket}")))
    }

    /// Shows locations (in errors and [`CheckpointInfo::path_or_key`]) as `BASE/KEY`, e.g.
    /// `s3://bucket/prefix/ckpt-00000000000000000001.amber`, instead of the bare key.
    #[must_use]
    pub fn with_url_base(self, base: impl Into<String>) -> ObjectStoreCheckpoints {
        ObjectStoreCheckpoints { base: base.into(), ..self }
    }

    /// Keeps only the `keep_last` newest (highest-id) checkpoints: after each successful save,
    /// the older ones are deleted. At least one is always kept (`0` counts as `1`). As with
    /// [`FsStore::with_retention`](crate::FsStore::with_retention), a failed deletion is not
    /// reported and is retried at the next save.
    #[must_use]
    pub fn with_retention(self, keep_last: usize) -> ObjectStoreCheckpoints {
        ObjectStoreCheckpoints { keep_last: Some(keep_last.max(1)), ..self }
    }

    /// Writes checkpoints compressed as `compression` says; by default with zstd
    /// ([`Compression::ZSTD`], format version 4: about a third of the bytes for typical states,
    /// which is what a network and a bill count). [`Compression::None`] writes format version
    /// 2, as [`FsStore`](crate::FsStore) does by default. Every checkpoint reads back whatever
    /// it was written with.
    #[must_use]
    pub fn with_compression(self, compression: Compression) -> ObjectStoreCheckpoints {
        ObjectStoreCheckpoints { compression, ..self }
    }

    /// Writes checkpoints incrementally, as
    /// [`FsStore::with_incremental`](crate::FsStore::with_incremental) does: unchanged actors
    /// are references to the checkpoint that stores them (format version 7), every
    /// `full_every`-th checkpoint is full, and retention keeps every checkpoint a kept one
    /// refers to. Every store value reads incremental checkpoints, whatever this option.
    #[must_use]
    pub fn with_incremental(self, full_every: u32) -> ObjectStoreCheckpoints {
        ObjectStoreCheckpoints { full_every: Some(full_every.max(1)), ..self }
    }

    /// Uploads checkpoints in parts of `bytes` (S3 needs at least 5 MiB for every part but the
    /// last; smaller values are raised to 5 MiB).
    #[must_use]
    pub fn with_part_size(self, bytes: usize) -> ObjectStoreCheckpoints {
        ObjectStoreCheckpoints { part_size: bytes.max(DEFAULT_PART_SIZE), ..self }
    }

    /// The object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix the checkpoints are under.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The key checkpoint `id` is (or would be) stored under.
    pub fn key_of(&self, id: CheckpointId) -> Path {
        self.prefix.child(format!("{id}{FILE_SUFFIX}"))
    }

    /// How checkpoint `id` is named in errors and listings: `BASE/KEY` (see
    /// [`with_url_base`](Self::with_url_base)).
    pub fn location_of(&self, id: CheckpointId) -> String {
        self.location(&self.key_of(id))
    }

    /// The size in bytes of the object of checkpoint `id` ([`StoreError::NotFound`] if there is
    /// none), without reading it.
    pub async fn bytes_of(&self, id: CheckpointId) -> Result<u64, StoreError> {
        let key = self.key_of(id);
        let meta = self
            .store
            .head(&key)
            .await
            .map_err(|err| not_found_or(id, self.location(&key), err))?;
        Ok(meta.size)
    }

    /// [`bytes_of`](Self::bytes_of), blocking (see the blocking face above).
    pub(crate) fn bytes_of_blocking(&self, id: CheckpointId) -> Result<u64, StoreError> {
        self.blocking.run(self, self.bytes_of(id))
    }

    /// How the object at `key` is shown: `BASE/KEY` (see [`with_url_base`](Self::with_url_base)).
    fn location(&self, key: &Path) -> String {
        if self.base.is_empty() { key.to_string() } else { format!("{}/{key}", self.base) }
    }

    /// The stored checkpoints, oldest first, with their objects' metadata.
    async fn listing(&self) -> Result<Vec<(CheckpointId, ObjectMeta)>, StoreError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed = self.store.list_with_delimiter(prefix).await.map_err(|err| {
            StoreError::Backend { location: self.location(&self.prefix), source: err.into() }
        })?;
        let mut found: Vec<(CheckpointId, ObjectMeta)> = listed
            .objects
            .into_iter()
            .filter(|meta| meta.location.prefix_match(&self.prefix).is_some_and(|p| p.count() == 1))
            .filter_map(|meta| Some((parse_checkpoint_name(meta.location.filename()?)?, meta)))
            .collect();
        found.sort_unstable_by_key(|(id, _)| *id);
        Ok(found)
    }

    /// The memory, even if a thread panicked holding it (it is consistent between calls).
    /// Never held across an await.
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads and decodes checkpoint `id`, its references left unresolved.
    async fn read_parts(&self, id: CheckpointId) -> Result<Parts, StoreError> {
        let key = self.key_of(id);
        let location = self.location(&key);
        let not_found_or = |err| not_found_or(id, location.clone(), err);
        let bytes = self
            .store
            .get(&key)
            .await
            .map_err(not_found_or)?
            .bytes()
            .await
            .map_err(not_found_or)?;
        let parts = decode_parts(&bytes)
            .map_err(|source| StoreError::Format { location: location.clone(), source })?;
        check_id(id, parts.manifest.id, &location)?;
        Ok(parts)
    }

    /// The chain of the latest checkpoint before `id` in the store, if it loads: what an
    /// incremental store value goes on from when it has written nothing yet (a restart).
    async fn chain_of_latest(&self, id: CheckpointId) -> Option<Chain> {
        let ids: Vec<CheckpointId> =
            self.listing().await.ok()?.into_iter().map(|(other, _)| other).collect();
        let latest = ids.into_iter().filter(|&other| other < id).max()?;
        let parts = self.read_parts(latest).await.ok()?;
        let mut homes = std::collections::HashMap::new();
        for home in parts.homes() {
            homes.insert(home, self.load_home(home).await);
        }
        incremental::chain_of_stored(parts, homes)
    }

    /// Reads checkpoint `home`, which holds states another checkpoint refers to.
    async fn load_home(&self, home: CheckpointId) -> Result<Parts, ReferenceProblem> {
        match self.read_parts(home).await {
            Ok(parts) => Ok(parts),
            Err(StoreError::NotFound { .. }) => Err(ReferenceProblem::Missing),
            Err(err) => Err(ReferenceProblem::Unreadable(Box::new(err))),
        }
    }

    /// The bases of checkpoint `id`, whose object is `size` bytes (none before version 5,
    /// read from the first bytes only); `None` if they cannot be read now. A checkpoint that
    /// is gone or does not decode has none (it does not load either way).
    async fn read_bases(&self, id: CheckpointId, size: u64) -> Option<Vec<CheckpointId>> {
        let key = self.key_of(id);
        let head = match self.read_range(id, &key, 0..size.min(VERSION_HEADER_LEN as u64)).await {
            Ok(head) => head,
            Err(StoreError::NotFound { .. }) => return Some(Vec::new()),
            Err(_) => return None,
        };
        match version_of(&head) {
            Ok(version) if version >= 5 => {}
            _ => return Some(Vec::new()),
        }
        match self.read_head(id, size).await {
            Ok(head) => Some(head.bases),
            Err(StoreError::NotFound { .. } | StoreError::Format { .. }) => Some(Vec::new()),
            Err(_) => None,
        }
    }

    /// Reads the head (id, epoch, time, bases) of checkpoint `id`, whose object is `size`
    /// bytes, from its manifest record: the
    /// first [`MANIFEST_PREFETCH`] bytes, and the rest of the manifest if it is longer.
    async fn read_head(&self, id: CheckpointId, size: u64) -> Result<Head, StoreError> {
        let key = self.key_of(id);
        let location = self.location(&key);
        let format_error = |source| StoreError::Format { location: location.clone(), source };
        let mut head = self.read_range(id, &key, 0..size.min(MANIFEST_PREFETCH)).await?;
        if head.len() >= MANIFEST_HEADER_LEN {
            let needed = manifest_len(&head).map_err(format_error)? as u64;
            // Reads at most what the object holds, whatever the length field claims.
            let end = needed.min(size);
            if end > head.len() as u64 {
                let rest = self.read_range(id, &key, head.len() as u64..end).await?;
                head.extend_from_slice(&rest);
            }
        }
        let head = decode_head(&head).map_err(format_error)?;
        check_id(id, head.id, &location)?;
        Ok(head)
    }

    async fn read_range(
        &self,
        id: CheckpointId,
        key: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self
            .store
            .get_range(key, range)
            .await
            .map_err(|err| not_found_or(id, self.location(key), err))?;
        Ok(bytes.to_vec())
    }

    /// Deletes the oldest checkpoints beyond the retention limit that no kept checkpoint
    /// refers to, as far as it can.
    async fn apply_retention(&self) {
        let Some(keep_last) = self.keep_last else { return };
        let Ok(listing) = self.listing().await else { return };
        if listing.len() <= keep_last {
            return;
        }
        // The bases of every listed checkpoint, read once (a ranged read of the first bytes
        // before version 5) and remembered.
        let unknown: Vec<(CheckpointId, u64)> = {
            let memory = self.memory();
            listing
                .iter()
                .filter(|(id, _)| !memory.bases.contains_key(id))
                .map(|(id, meta)| (*id, meta.size))
                .collect()
        };
        let read: Vec<(CheckpointId, Option<Vec<CheckpointId>>)> = stream::iter(unknown)
            .map(|(id, size)| async move { (id, self.read_bases(id, size).await) })
            .buffered(LIST_CONCURRENCY)
            .collect()
            .await;
        let ids: Vec<CheckpointId> = listing.iter().map(|(id, _)| *id).collect();
        let removed = {
            let mut memory = self.memory();
            let mut unreadable = HashSet::new();
            for (id, bases) in read {
                match bases {
                    Some(bases) => {
                        memory.bases.insert(id, bases);
                    }
                    None => {
                        unreadable.insert(id);
                    }
                }
            }
            let known = &memory.bases;
            incremental::beyond_retention(&ids, keep_last, |id| {
                if unreadable.contains(&id) { None } else { known.get(&id).cloned() }
            })
        };
        let keys: HashMap<CheckpointId, &ObjectMeta> =
            listing.iter().map(|(id, meta)| (*id, meta)).collect();
        for id in removed {
            if let Some(meta) = keys.get(&id)
                && self.store.delete(&meta.location).await.is_ok()
            {
                self.memory().bases.remove(&id);
            }
        }
    }

    /// Streams `encoder`'s pieces into `upload`; the caller aborts the upload on error.
    async fn write_parts(
        &self,
        encoder: &mut Encoder<'_>,
        upload: &mut WriteMultipart,
        id: CheckpointId,
        location: &str,
    ) -> Result<u64, StoreError> {
        let mut piece = Vec::new();
        let mut written = 0;
        loop {
            piece.clear();
            let more = encoder.next_into(&mut piece).map_err(|source| StoreError::Unencodable {
                id,
                location: location.to_owned(),
                source,
            })?;
            if !more {
                return Ok(written);
            }
            upload.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|err| StoreError::Backend {
                location: location.to_owned(),
                source: err.into(),
            })?;
            upload.write(&piece);
            written += piece.len() as u64;
        }
    }
}

#[async_trait::async_trait]
impl AsyncCheckpointStore for ObjectStoreCheckpoints {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        let manifest = &checkpoint.manifest;
        let id = manifest.id;
        let key = self.key_of(id);
        let location = self.location(&key);
        let backend = |err: object_store::Error| StoreError::Backend {
            location: location.clone(),
            source: err.into(),
        };
        let unencodable =
            |source| StoreError::Unencodable { id, location: location.clone(), source };
        // Validates the checkpoint before anything is planned or written.
        checkpoint.validate().map_err(|err| unencodable(FormatError::Invalid(err)))?;
        let (plan, chain) = match self.full_every {
            Some(full_every) => {
                // A store value that has written nothing goes on from the latest checkpoint
                // in the bucket, once.
                let look_back = {
                    let mut memory = self.memory();
                    let look = memory.chain.is_none() && !memory.looked_back;
                    memory.looked_back = true;
                    look
                };
                if look_back && let Some(chain) = self.chain_of_latest(id).await {
                    let mut memory = self.memory();
                    if memory.chain.is_none() {
                        memory.chain = Some(chain);
                    }
                }
                // Which checkpoints the chain relies on are gone (looked up without the lock).
                let homes: Vec<CheckpointId> =
                    self.memory().chain.as_ref().map(|c| c.homes().collect()).unwrap_or_default();
                let mut missing = HashSet::new();
                for home in homes {
                    if self.store.head(&self.key_of(home)).await.is_err() {
                        missing.insert(home);
                    }
                }
                let mut memory = self.memory();
                let exists = |home| !missing.contains(&home);
                let (plan, chain) =
                    incremental::plan(memory.chain.take(), checkpoint, full_every, exists);
                (plan, Some(chain))
            }
            None => (None, None),
        };
        // Validated above, before planning.
        let mut encoder = Encoder::of_valid(checkpoint, self.compression, plan.as_ref());
        match self.store.head(&key).await {
            Ok(_) => return Err(StoreError::AlreadyExists { id, location }),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(backend(err)),
        }
        let upload = self.store.put_multipart(&key).await.map_err(backend)?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let bytes = match self.write_parts(&mut encoder, &mut upload, id, &location).await {
            Ok(bytes) => bytes,
            Err(err) => {
                let _ = upload.abort().await;
                return Err(err);
            }
        };
        // The object appears, whole, only now.
        upload.finish().await.map_err(backend)?;
        {
            let mut memory = self.memory();
            let bases = plan.as_ref().map_or_else(Vec::new, |plan| {
                plan.bases.iter().map(|&base| CheckpointId(base)).collect()
            });
            memory.bases.insert(id, bases);
            if chain.is_some() {
                memory.chain = chain;
            }
        }
        self.apply_retention().await;
        Ok(CheckpointInfo {
            id,
            epoch: manifest.epoch,
            created_unix_ms: manifest.created_unix_ms,
            path_or_key: location,
            bytes,
        })
    }

    async fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        Ok(self.listing().await?.into_iter().map(|(id, _)| id).collect())
    }

    async fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        let listing = self.listing().await?;
        let infos: Vec<Option<CheckpointInfo>> = stream::iter(listing)
            .map(|(id, meta)| async move {
                match self.read_head(id, meta.size).await {
                    Ok(head) => Ok(Some(CheckpointInfo {
                        id,
                        epoch: head.epoch,
                        created_unix_ms: head.created_unix_ms,
                        path_or_key: self.location(&meta.location),
                        bytes: meta.size,
                    })),
                    // Removed since it was listed (retention by the writer): no longer stored.
                    Err(StoreError::NotFound { .. }) => Ok(None),
                    Err(err) => Err(err),
                }
            })
            .buffered(LIST_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(infos.into_iter().flatten().collect())
    }

    async fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        let parts = self.read_parts(id).await?;
        let location = self.location_of(id);
        let mut homes = HashMap::new();
        for home in parts.homes() {
            homes.insert(home, self.load_home(home).await);
        }
        let checkpoint = incremental::resolve(parts, homes).map_err(|(actor, base, problem)| {
            StoreError::Unresolved { id, location: location.clone(), actor, base, problem }
        })?;
        checkpoint
            .validate()
            .map_err(|err| StoreError::Format { location, source: FormatError::Invalid(err) })?;
        Ok(checkpoint)
    }

    async fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        let key = self.key_of(id);
        let location = self.location(&key);
        // S3 deletes a missing key without complaint: look first, to report NotFound.
        self.store.head(&key).await.map_err(|err| not_found_or(id, location.clone(), err))?;
        self.store.delete(&key).await.map_err(|err| not_found_or(id, location, err))?;
        let mut memory = self.memory();
        memory.bases.remove(&id);
        if memory.chain.as_ref().is_some_and(|chain| chain.relies_on(id)) {
            memory.chain = None;
        }
        Ok(())
    }
}

/// The blocking face: each call runs the async one on the store's own runtime.
impl CheckpointStore for ObjectStoreCheckpoints {
    fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::save(self, checkpoint))
    }

    fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::ids(self))
    }

    fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::list(self))
    }

    fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::load(self, id))
    }

    fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::remove(self, id))
    }

    fn latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::latest(self))
    }

    fn latest_valid(&self) -> Result<LatestValid, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::latest_valid(self))
    }

    fn next_id(&self) -> Result<CheckpointId, StoreError> {
        self.blocking.run(self, AsyncCheckpointStore::next_id(self))
    }
}

/// The runtime the blocking calls of an [`ObjectStoreCheckpoints`] run on, started on first
/// use and shared by the store's clones.
#[derive(Debug, Default)]
struct BlockingRuntime {
    runtime: OnceLock<tokio::runtime::Runtime>,
}

impl BlockingRuntime {
    /// Runs `call` to completion and returns its result, from any thread: on a thread of its
    /// own, so that it never starts a runtime inside another (which tokio forbids).
    fn run<T: Send>(
        &self,
        store: &ObjectStoreCheckpoints,
        call: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        let runtime = match self.runtime.get() {
            Some(runtime) => runtime,
            None => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("amber-object-store")
                    .enable_all()
                    .build()
                    .map_err(|err| StoreError::Backend {
                        location: store.location(&store.prefix),
                        source: format!("cannot start a runtime for blocking calls: {err}").into(),
                    })?;
                if let Err(unused) = self.runtime.set(runtime) {
                    // Another thread started one first.
                    unused.shutdown_background();
                }
                self.runtime.get().expect("set just above")
            }
        };
        std::thread::scope(|scope| match scope.spawn(|| runtime.block_on(call)).join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio refuses inside another runtime; the store may
        // well be dropped there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn check_id(expected: CheckpointId, found: CheckpointId, location: &str) -> Result<(), StoreError> {
    if expected == found {
        Ok(())
    } else {
        Err(StoreError::IdMismatch { expected, found, location: location.to_owned() })
    }
}

fn not_found_or(id: CheckpointId, location: String, err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::NotFound { id, location },
        err => StoreError::Backend { location, source: err.into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let store = ObjectStoreCheckpoints::from_s3_url("s3://bucket/a/b/").unwrap();
        assert_eq!(store.prefix().as_ref(), "a/b");
        assert_eq!(store.key_of(CheckpointId(7)).as_ref(), "a/b/ckpt-00000000000000000007.amber");
        assert_eq!(
            store.location(&store.key_of(CheckpointId(7))),
            "s3://bucket/a/b/ckpt-00000000000000000007.amber"
        );
        let root = ObjectStoreCheckpoints::from_s3_url("s3://bucket").unwrap();
        assert_eq!(root.key_of(CheckpointId(1)).as_ref(), "ckpt-00000000000000000001.amber");
        for bad in ["s3://", "s3:///prefix", "file:///tmp", "s3://bucket/a//b"] {
            assert!(
                matches!(ObjectStoreCheckpoints::from_s3_url(bad), Err(StoreError::Url { .. })),
                "{bad}"
            );
        }
    }
}
