//! The embedded default store: one file per checkpoint in a directory.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::checkpoint::error::{FormatError, ReferenceProblem, StoreError};
use crate::checkpoint::format::{
    Compression, Head, MANIFEST_HEADER_LEN, VERSION_HEADER_LEN, decode_head, decode_parts_from,
    encode_planned_into, manifest_len, version_of,
};
use crate::checkpoint::incremental::{self, Chain, Memory, Parts};
use crate::checkpoint::model::{Checkpoint, CheckpointId};
use crate::checkpoint::store::{CheckpointInfo, CheckpointStore};

/// The start of a checkpoint's file name; the id follows, zero-padded to 20 digits.
const FILE_PREFIX: &str = "ckpt-";
/// The end of a checkpoint's file name (and object key).
pub(crate) const FILE_SUFFIX: &str = ".amber";
/// The start of a temporary file written by [`FsStore::save`].
const TEMP_PREFIX: &str = ".ckpt-";
/// The end of a temporary file written by [`FsStore::save`].
const TEMP_SUFFIX: &str = ".tmp";

/// A [`CheckpointStore`] in a directory of the local filesystem: checkpoint `42` is the file
/// `ckpt-00000000000000000042.amber`.
///
/// A save writes a temporary file (`.ckpt-….tmp`) in the same directory, syncs it, renames it
/// over the final name and syncs the directory, so a crash leaves either the whole new
/// checkpoint or none of it, and the earlier ones intact. Files with other names, including
/// the temporary files of an interrupted save, are ignored when listing; `save` deletes the
/// temporary files it finds. One system writes to a directory at a time; any number of readers
/// (such as the `amber` inspector) may read it meanwhile.
///
/// With [`with_incremental`](Self::with_incremental), a checkpoint stores only the actors that
/// changed since the one before; the others are references to the checkpoint that holds their
/// entries and states (format version 7), which [`load`](CheckpointStore::load) follows and retention keeps.
///
/// The store (and its clones) keeps the buffer its last save encoded into, up to 64 MiB, and
/// encodes the next save into it: a system that checkpoints often does not map, fault in
/// and zero a new buffer of the checkpoint's size every time.
///
/// # Example
///
/// ```
/// use amber_snapshot::{
///     ActorEntry, ActorId, Checkpoint, CheckpointStore, Epoch, FsStore, Manifest, NodeEntry,
///     SpawnCapacity, SpawnRestart, StateRecord, SystemId,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("checkpoints");
/// let store = FsStore::open(&dir)?.with_retention(3);
/// let account = ActorId::new(SystemId(7), 1);
/// let checkpoint = Checkpoint {
///     manifest: Manifest {
///         id: store.next_id()?,
///         epoch: Epoch(1),
///         created_unix_ms: 1_700_000_000_000,
///         nodes: vec![NodeEntry::new("local", None)],
///         actors: vec![ActorEntry {
///             id: account,
///             type_name: "bank.Account".into(),
///             name: None,
///             node: "local".into(),
///             parent: None,
///             watchers: vec![],
///             watching: vec![],
///             state_version: 1,
///             capacity: SpawnCapacity::Unbounded,
///             restart: SpawnRestart::Never,
///         }],
///     },
///     states: vec![StateRecord { id: account, state: vec![0x80], timers: vec![] }],
///     in_flight: Default::default(),
/// };
/// let info = store.save(&checkpoint)?;
/// assert!(info.path_or_key.ends_with("ckpt-00000000000000000001.amber"));
/// assert_eq!(store.latest()?, Some(checkpoint));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: PathBuf,
    keep_last: Option<usize>,
    compression: Compression,
    /// Every how many checkpoints one is full, if the store writes incrementally.
    full_every: Option<u32>,
    /// Whether a save waits for the file and the directory to reach the disk.
    durable: bool,
    /// The chain the store writes on and the bases it knows; shared by its clones.
    memory: Arc<Mutex<Memory>>,
    /// The buffer of the last checkpoint written, emptied, for the next save to encode
    /// into (up to [`MAX_SPARE`] bytes); shared by the store's clones. A loaded system's
    /// checkpoints are megabytes: a new buffer at each save cost the page faults and the
    /// zeroing of every page of it, at every snapshot.
    spare: Arc<Mutex<Vec<u8>>>,
}

/// The largest encoding buffer a store keeps between saves; a larger one is freed.
const MAX_SPARE: usize = 64 << 20;

impl FsStore {
    /// Opens the store in directory `dir`, creating it (and its parents) if needed.
    ///
    /// Opening neither reads nor changes the checkpoints already there.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(FsStore::at(dir))
    }

    /// Opens the store in directory `dir`, which must exist: for readers, which must not
    /// create directories. Fails with [`StoreError::Io`] (of kind `NotFound` or
    /// `NotADirectory`) otherwise.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let dir = dir.into();
        let metadata = fs::metadata(&dir).map_err(io_error("open", &dir))?;
        if !metadata.is_dir() {
            let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(io_error("open", &dir)(source));
        }
        Ok(FsStore::at(dir))
    }

    /// The store in `dir`, unchecked.
    fn at(dir: PathBuf) -> FsStore {
        FsStore {
            dir,
            keep_last: None,
            compression: Compression::None,
            full_every: None,
            durable: true,
            memory: Arc::default(),
            spare: Arc::default(),
        }
    }

    /// Writes checkpoints incrementally: an actor whose manifest entry is equal and whose
    /// state is the same (same fingerprint, a keyed 128-bit SipHash, and length) as in the
    /// checkpoint this store wrote before, and which has no pending timers, is not written
    /// again but referred to where its entry and state are stored (format version 7). A
    /// checkpoint of 100 000 actors of which 1 % changed then writes the changed entries and
    /// states and about one small reference per run of unchanged actors.
    ///
    /// Every `full_every`-th checkpoint is written whole, which ends the chain (`0` and `1`:
    /// every one; 16 is a fair choice); so is one whose earlier checkpoints were removed, and
    /// the one after a save that failed. The first checkpoint this store value writes goes on
    /// from the latest one in the directory, if it loads. References always point at the
    /// checkpoint that holds the actors, so a load reads at most one other checkpoint per
    /// referenced base, and retention ([`with_retention`](Self::with_retention)) keeps every
    /// checkpoint a kept one refers to: a store keeps up to about `keep_last + full_every`
    /// checkpoints.
    ///
    /// Reading needs no option: every store value reads incremental checkpoints.
    #[must_use]
    pub fn with_incremental(self, full_every: u32) -> FsStore {
        FsStore { full_every: Some(full_every.max(1)), ..self }
    }

    /// Writes checkpoints compressed as `compression` says ([`encode_with`](crate::encode_with));
    /// by default they are not ([`Compression::None`]: format version 2, which older builds
    /// read too). Every checkpoint reads back whatever it was written with.
    #[must_use]
    pub fn with_compression(self, compression: Compression) -> FsStore {
        FsStore { compression, ..self }
    }

    /// Keeps only the `keep_last` newest (highest-id) checkpoints: after each successful save,
    /// the older ones are deleted. At least one is always kept (`0` counts as `1`).
    ///
    /// A checkpoint that a kept one refers to (an incremental checkpoint's bases, and theirs)
    /// is kept too, until nothing kept refers to it. If the bases of a kept checkpoint cannot
    /// be read (an I/O error), nothing is deleted at that save.
    ///
    /// A deletion that fails is not reported (the save did succeed); it is retried at the next
    /// save.
    #[must_use]
    pub fn with_retention(self, keep_last: usize) -> FsStore {
        FsStore { keep_last: Some(keep_last.max(1)), ..self }
    }

    /// Whether a save (and a removal) waits until the disk holds it (`fsync` of the file, then
    /// of the directory): on by default, so that a checkpoint `save` returned survives a
    /// crash of the machine.
    ///
    /// Off, a save returns once the operating system has the file: a machine crash (not a
    /// process crash) may lose the latest checkpoints, or leave one torn, which a load then
    /// refuses (its checksums) and `restore_latest` skips. For scratch stores and tests,
    /// where an `fsync` can wait many seconds behind other writers' data on a busy disk.
    #[must_use]
    pub fn with_durability(self, durable: bool) -> FsStore {
        FsStore { durable, ..self }
    }

    /// The directory the store is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file checkpoint `id` is (or would be) stored in.
    pub fn path_of(&self, id: CheckpointId) -> PathBuf {
        self.dir.join(format!("{id}{FILE_SUFFIX}"))
    }

    /// Reads and checks the checkpoint in file `path`, wherever it is. The states of an
    /// incremental checkpoint that are stored in other checkpoints are read from the files of
    /// those checkpoints in the same directory.
    pub fn load_file(path: &Path) -> Result<Checkpoint, StoreError> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let parts = read_parts(path, io_error("read", path))?;
        FsStore::at(dir.to_owned()).resolve(parts, path)
    }

    /// Puts `parts`, read from `path`, back together with the states it refers to, and checks
    /// it.
    fn resolve(&self, parts: Parts, path: &Path) -> Result<Checkpoint, StoreError> {
        let id = parts.manifest.id;
        let homes = parts.homes().into_iter().map(|home| (home, self.load_home(home))).collect();
        let checkpoint = incremental::resolve(parts, homes).map_err(|(actor, base, problem)| {
            StoreError::Unresolved { id, location: location(path), actor, base, problem }
        })?;
        checkpoint.validate().map_err(|err| StoreError::Format {
            location: location(path),
            source: FormatError::Invalid(err),
        })?;
        Ok(checkpoint)
    }

    /// The chain of the latest checkpoint before `id` in the directory, if it loads: what an
    /// incremental store opened on checkpoints that an earlier process wrote goes on from.
    fn chain_of_latest(&self, id: CheckpointId) -> Option<Chain> {
        let latest = self.ids().ok()?.into_iter().rev().find(|&other| other < id)?;
        let path = self.path_of(latest);
        let parts = read_parts(&path, io_error("read", &path)).ok()?;
        if parts.manifest.id != latest {
            return None;
        }
        let homes = parts.homes().into_iter().map(|home| (home, self.load_home(home))).collect();
        incremental::chain_of_stored(parts, homes)
    }

    /// Reads checkpoint `home`, which holds states another checkpoint refers to.
    fn load_home(&self, home: CheckpointId) -> Result<Parts, ReferenceProblem> {
        let path = self.path_of(home);
        let parts = read_parts(&path, |err| not_found_or(home, &path, "read", err));
        let parts = match parts {
            Ok(parts) => parts,
            Err(StoreError::NotFound { .. }) => return Err(ReferenceProblem::Missing),
            Err(err) => return Err(ReferenceProblem::Unreadable(Box::new(err))),
        };
        check_id(home, parts.manifest.id, &path)
            .map_err(|err| ReferenceProblem::Unreadable(Box::new(err)))?;
        Ok(parts)
    }

    /// The bases of checkpoint `id` (the checkpoints it refers to), remembered once read.
    /// `None` if they cannot be read now (an I/O error); a checkpoint that is gone or does not
    /// decode has none (it does not load either way).
    fn bases_of(&self, memory: &mut Memory, id: CheckpointId) -> Option<Vec<CheckpointId>> {
        if let Some(bases) = memory.bases.get(&id) {
            return Some(bases.clone());
        }
        let bases = match self.read_bases(id) {
            Ok(bases) => bases,
            Err(StoreError::NotFound { .. } | StoreError::Format { .. }) => Vec::new(),
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Vec::new()
            }
            Err(_) => return None,
        };
        memory.bases.insert(id, bases.clone());
        Some(bases)
    }

    /// Reads the bases of checkpoint `id` from its file: none before version 5, without
    /// reading the manifest.
    fn read_bases(&self, id: CheckpointId) -> Result<Vec<CheckpointId>, StoreError> {
        let path = self.path_of(id);
        let (mut file, _) = open_regular(&path, io_error("open", &path))?;
        let mut head = Vec::with_capacity(VERSION_HEADER_LEN);
        read_up_to(&mut file, VERSION_HEADER_LEN, &mut head).map_err(io_error("read", &path))?;
        let version = version_of(&head)
            .map_err(|source| StoreError::Format { location: location(&path), source })?;
        if version < 5 {
            return Ok(Vec::new());
        }
        Ok(self.read_head(id)?.0.bases)
    }

    /// The memory, even if a thread panicked holding it (it is consistent between calls).
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the head (id, epoch, time, bases) of checkpoint `id` and the file's size.
    fn read_head(&self, id: CheckpointId) -> Result<(Head, u64), StoreError> {
        let path = self.path_of(id);
        let format_error = |source| StoreError::Format { location: location(&path), source };
        let (mut file, bytes) = open_regular(&path, io_error("open", &path))?;
        let mut head = Vec::with_capacity(MANIFEST_HEADER_LEN);
        read_up_to(&mut file, MANIFEST_HEADER_LEN, &mut head).map_err(io_error("read", &path))?;
        let needed = manifest_len(&head).map_err(format_error)?;
        // Reads at most what the file holds, whatever the length field claims.
        read_up_to(&mut file, needed - head.len(), &mut head).map_err(io_error("read", &path))?;
        let head = decode_head(&head).map_err(format_error)?;
        check_id(id, head.id, &path)?;
        Ok((head, bytes))
    }

    /// Deletes the temporary files of interrupted saves, as far as it can.
    fn remove_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            if is_temp_file(&entry.file_name()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Deletes the oldest checkpoints beyond the retention limit that no kept checkpoint
    /// refers to, as far as it can.
    fn apply_retention(&self) {
        let Some(keep_last) = self.keep_last else { return };
        let Ok(ids) = self.ids() else { return };
        if ids.len() <= keep_last {
            return;
        }
        let mut memory = self.memory();
        let memory = &mut *memory;
        let removed =
            incremental::beyond_retention(&ids, keep_last, |id| self.bases_of(memory, id));
        if removed.is_empty() {
            return;
        }
        for id in removed {
            if fs::remove_file(self.path_of(id)).is_ok() {
                memory.bases.remove(&id);
            }
        }
        if self.durable {
            let _ = sync_dir(&self.dir);
        }
    }
}

impl FsStore {
    /// Encodes `checkpoint` for [`write_encoded`](Self::write_encoded): the CPU half of a save.
    pub(crate) fn encode_for_save(&self, checkpoint: &Checkpoint) -> Result<Encoded, StoreError> {
        let manifest = &checkpoint.manifest;
        let id = manifest.id;
        let unencodable =
            |source| StoreError::Unencodable { id, location: location(&self.path_of(id)), source };
        // Refused before anything is planned: planning assumes a consistent checkpoint.
        checkpoint.validate().map_err(|err| unencodable(FormatError::Invalid(err)))?;
        let (plan, chain) = match self.full_every {
            Some(full_every) => {
                let mut memory = self.memory();
                if memory.chain.is_none() && !memory.looked_back {
                    memory.looked_back = true;
                    memory.chain = self.chain_of_latest(id);
                }
                let exists = |home| fs::symlink_metadata(self.path_of(home)).is_ok();
                let (plan, chain) =
                    incremental::plan(memory.chain.take(), checkpoint, full_every, exists);
                (plan, Some(chain))
            }
            None => (None, None),
        };
        let spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(PoisonError::into_inner));
        let bytes = encode_planned_into(checkpoint, self.compression, plan.as_ref(), spare)
            .map_err(unencodable)?;
        let bases =
            plan.map_or_else(Vec::new, |plan| plan.bases.into_iter().map(CheckpointId).collect());
        Ok(Encoded {
            id,
            epoch: manifest.epoch,
            created_unix_ms: manifest.created_unix_ms,
            bytes,
            chain,
            bases,
        })
    }

    /// Writes an encoded checkpoint: the I/O half of a save.
    pub(crate) fn write_encoded(&self, encoded: Encoded) -> Result<CheckpointInfo, StoreError> {
        let Encoded { id, epoch, created_unix_ms, bytes, chain, bases } = encoded;
        let len = bytes.len() as u64;
        let saved = self.write_bytes(id, &bytes, chain, bases);
        // Kept for the next save (whether this one was written or not).
        if bytes.capacity() <= MAX_SPARE {
            let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
            if bytes.capacity() > spare.capacity() {
                let mut bytes = bytes;
                bytes.clear();
                *spare = bytes;
            }
        }
        Ok(CheckpointInfo { id, epoch, created_unix_ms, path_or_key: saved?, bytes: len })
    }

    /// Writes `bytes`, checkpoint `id` encoded, to its file; returns its location.
    fn write_bytes(
        &self,
        id: CheckpointId,
        bytes: &[u8],
        chain: Option<Chain>,
        bases: Vec<CheckpointId>,
    ) -> Result<String, StoreError> {
        let path = self.path_of(id);
        self.remove_temp_files();
        if fs::symlink_metadata(&path).is_ok() {
            return Err(StoreError::AlreadyExists { id, location: location(&path) });
        }
        let temp = self.dir.join(format!("{TEMP_PREFIX}{id}{FILE_SUFFIX}{TEMP_SUFFIX}"));
        if let Err(err) = write_file(&temp, bytes, self.durable) {
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        if let Err(err) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(io_error("rename into", &path)(err));
        }
        if self.durable {
            sync_dir(&self.dir)?;
        }
        {
            let mut memory = self.memory();
            memory.bases.insert(id, bases);
            if chain.is_some() {
                memory.chain = chain;
            }
        }
        self.apply_retention();
        Ok(location(&path))
    }
}

/// A checkpoint encoded for [`FsStore::write_encoded`].
#[derive(Debug)]
pub(crate) struct Encoded {
    id: CheckpointId,
    epoch: crate::Epoch,
    created_unix_ms: u64,
    bytes: Vec<u8>,
    /// What an incremental store remembers once it is written.
    chain: Option<Chain>,
    /// The checkpoints it refers to.
    bases: Vec<CheckpointId>,
}

impl CheckpointStore for FsStore {
    fn save(&self, checkpoint: &Checkpoint) -> Result<CheckpointInfo, StoreError> {
        self.write_encoded(self.encode_for_save(checkpoint)?)
    }

    fn ids(&self) -> Result<Vec<CheckpointId>, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(io_error("list", &self.dir))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.dir))?;
            if let Some(id) = parse_file_name(&entry.file_name()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn list(&self) -> Result<Vec<CheckpointInfo>, StoreError> {
        let mut infos = Vec::new();
        for id in self.ids()? {
            match self.read_head(id) {
                Ok((head, bytes)) => infos.push(CheckpointInfo {
                    id,
                    epoch: head.epoch,
                    created_unix_ms: head.created_unix_ms,
                    path_or_key: location(&self.path_of(id)),
                    bytes,
                }),
                // Removed since it was listed (retention by the writer): no longer stored.
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(infos)
    }

    fn load(&self, id: CheckpointId) -> Result<Checkpoint, StoreError> {
        let path = self.path_of(id);
        let parts = read_parts(&path, |err| not_found_or(id, &path, "read", err))?;
        check_id(id, parts.manifest.id, &path)?;
        self.resolve(parts, &path)
    }

    /// Removes checkpoint `id`. An incremental checkpoint that refers to it no longer loads
    /// ([`StoreError::Unresolved`]); the next checkpoint this store writes incrementally is
    /// written whole if its chain relied on it.
    fn remove(&self, id: CheckpointId) -> Result<(), StoreError> {
        let path = self.path_of(id);
        fs::remove_file(&path).map_err(|err| not_found_or(id, &path, "remove", err))?;
        {
            let mut memory = self.memory();
            memory.bases.remove(&id);
            if memory.chain.as_ref().is_some_and(|chain| chain.relies_on(id)) {
                memory.chain = None;
            }
        }
        if self.durable { sync_dir(&self.dir) } else { Ok(()) }
    }
}

/// Reads and decodes the checkpoint in file `path`, its references left unresolved; `read`
/// makes the error of a failed read.
fn read_parts(path: &Path, read: impl Fn(io::Error) -> StoreError) -> Result<Parts, StoreError> {
    let read = &read;
    let (file, len) = open_regular(path, read)?;
    // Record by record, and at most what the file held when opened, however it grows.
    let mut stream = io::BufReader::with_capacity(STREAM_BUFFER, file.take(len));
    decode_parts_from(&mut stream, len).map_err(|failed| match failed {
        Ok(source) => StoreError::Format { location: location(path), source },
        Err(error) => read(error),
    })
}

/// The buffer a checkpoint file is read through (records are read whole into their own).
const STREAM_BUFFER: usize = 64 * 1024;

/// Opens `path` for reading if it is a regular file (a symlink to one is fine), with its
/// length then. Anything else is refused before it is opened, with a warning: opening a FIFO
/// blocks until someone writes to it, and a device (`/dev/zero`) never ends.
/// `failed` says what an I/O error means to the caller.
fn open_regular(
    path: &Path,
    failed: impl Fn(io::Error) -> StoreError,
) -> Result<(File, u64), StoreError> {
    let refuse = |kind| {
        tracing::warn!(path = %path.display(), kind, "store entry is not a regular file; not read");
        StoreError::NotAFile { location: location(path), kind }
    };
    let kind = fs::metadata(path).map_err(&failed)?.file_type();
    if !kind.is_file() {
        return Err(refuse(kind_of(kind)));
    }
    let file = File::open(path).map_err(&failed)?;
    // Checked again on what was opened: the entry may have been replaced in between.
    let metadata = file.metadata().map_err(&failed)?;
    if !metadata.is_file() {
        return Err(refuse(kind_of(metadata.file_type())));
    }
    Ok((file, metadata.len()))
}

/// What kind of entry a file type that is not a regular file is.
fn kind_of(kind: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a file" }
}

/// The id in a checkpoint's file name, `None` for any other file.
fn parse_file_name(name: &OsStr) -> Option<CheckpointId> {
    parse_checkpoint_name(name.to_str()?)
}

/// The id in a checkpoint's file name or the last segment of its object key
/// (`ckpt-00000000000000000042.amber`), `None` for any other name.
pub(crate) fn parse_checkpoint_name(name: &str) -> Option<CheckpointId> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// Whether a file is a temporary file of a save.
fn is_temp_file(name: &OsStr) -> bool {
    name.to_str().is_some_and(|name| name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX))
}

/// Writes `bytes` to a new file at `path` and syncs it to disk.
/// Writes `bytes` to a new file at `path`, and waits until the disk holds them if `durable`.
fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(io_error("create", path))?;
    file.write_all(bytes).map_err(io_error("write", path))?;
    if durable {
        file.sync_all().map_err(io_error("sync", path))?;
    }
    Ok(())
}

/// Makes the directory's entries (a created, renamed or removed file) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|dir| dir.sync_all()).map_err(io_error("sync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Appends at most `limit` more bytes of `reader` to `buf`.
fn read_up_to(reader: &mut impl Read, limit: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    reader.take(limit as u64).read_to_end(buf).map(|_| ())
}

fn check_id(expected: CheckpointId, found: CheckpointId, path: &Path) -> Result<(), StoreError> {
    if expected == found {
        Ok(())
    } else {
        Err(StoreError::IdMismatch { expected, found, location: location(path) })
    }
}

fn not_found_or(id: CheckpointId, path: &Path, op: &'static str, err: io::Error) -> StoreError {
    if err.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound { id, location: location(path) }
    } else {
        io_error(op, path)(err)
    }
}

fn io_error(op: &'static str, path: &Path) -> impl Fn(io::Error) -> StoreError {
    move |source| StoreError::Io { op, path: path.to_owned(), source }
}

fn location(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let id = CheckpointId(42);
        let name = format!("{id}{FILE_SUFFIX}");
        assert_eq!(name, "ckpt-00000000000000000042.amber");
        assert_eq!(parse_file_name(OsStr::new(&name)), Some(id));
        assert_eq!(
            parse_file_name(OsStr::new("ckpt-18446744073709551615.amber")),
            Some(CheckpointId(u64::MAX))
        );
        for other in [
            "ckpt-42.amber",
            "ckpt-99999999999999999999.amber",
            "ckpt-0000000000000000004x.amber",
            "ckpt-00000000000000000042.amber.tmp",
            ".ckpt-00000000000000000042.amber.tmp",
            "notes.txt",
        ] {
            assert_eq!(parse_file_name(OsStr::new(other)), None, "{other}");
        }
        assert!(is_temp_file(OsStr::new(".ckpt-00000000000000000042.amber.tmp")));
        assert!(!is_temp_file(OsStr::new(&name)));
    }

    /// A save leaves its buffer, emptied, for the next save of the store or of a clone.
    #[test]
    fn a_save_keeps_its_buffer_for_the_next() {
        use crate::checkpoint::test_checkpoint::checkpoint;
        let tmp = tempfile::tempdir().unwrap();
        let store = FsStore::open(tmp.path()).unwrap();
        let (large, small) = (vec![7; 100_000], vec![7; 10]);
        let first = store.save(&checkpoint(1, &[&large])).unwrap();
        let kept = store.spare.lock().unwrap().capacity();
        assert!(kept as u64 >= first.bytes, "the save's buffer is kept");
        assert!(store.spare.lock().unwrap().is_empty());
        // A smaller one after it, through a clone: written whole, nothing of the first left.
        let clone = store.clone();
        let second = clone.save(&checkpoint(2, &[&small])).unwrap();
        assert!(second.bytes < 1_000);
        assert_eq!(store.load(CheckpointId(2)).unwrap(), checkpoint(2, &[&small]));
        assert_eq!(store.load(CheckpointId(1)).unwrap(), checkpoint(1, &[&large]));
        assert_eq!(store.spare.lock().unwrap().capacity(), kept, "the larger buffer stays");
    }
}
