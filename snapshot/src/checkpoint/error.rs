//! Why a checkpoint is inconsistent, unreadable or could not be stored.

use std::io;
use std::path::PathBuf;

use crate::ActorId;
use crate::checkpoint::format::RecordKind;
use crate::checkpoint::model::CheckpointId;

/// A checkpoint is not consistent in itself (see [`Checkpoint::validate`]).
///
/// [`Checkpoint::validate`]: crate::Checkpoint::validate
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Two node entries have the same name.
    #[error("node {node:?} is listed twice")]
    DuplicateNode {
        /// The repeated node name.
        node: String,
    },
    /// An actor runs on a node the manifest does not list.
    #[error("actor {actor} runs on node {node:?}, which is not listed")]
    UnknownNode {
        /// The actor.
        actor: ActorId,
        /// The node name it names.
        node: String,
    },
    /// Two actor entries have the same id.
    #[error("actor {actor} is listed twice")]
    DuplicateActor {
        /// The repeated id.
        actor: ActorId,
    },
    /// A state belongs to an actor the manifest does not list.
    #[error("state of actor {actor}, which is not listed")]
    StateOfUnknownActor {
        /// The actor the state names.
        actor: ActorId,
    },
    /// An actor has two states.
    #[error("actor {actor} has two states")]
    DuplicateState {
        /// The actor.
        actor: ActorId,
    },
    /// A listed actor has no state.
    #[error("actor {actor} has no state")]
    MissingState {
        /// The actor.
        actor: ActorId,
    },
    /// An in-flight message goes to an actor the manifest does not list.
    #[error("in-flight message {index} goes to actor {to}, which is not listed")]
    InFlightToUnknownActor {
        /// The message's position in [`Checkpoint::in_flight`](crate::Checkpoint::in_flight).
        index: usize,
        /// The receiver it names.
        to: ActorId,
    },
}

/// Bytes are not a checkpoint this code reads, or a checkpoint cannot be encoded.
///
/// Records are numbered from 0 (the manifest); offsets are in bytes from the start of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input does not start with the checkpoint magic bytes.
    #[error("not an amber checkpoint (bad magic bytes)")]
    BadMagic,
    /// The input is a checkpoint of a format version this code does not read.
    #[error("unsupported checkpoint format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the input.
        found: u32,
        /// The version this code reads and writes.
        supported: u32,
    },
    /// The input ends inside the file header, inside a record, or before the end record.
    #[error("truncated at byte {offset}, in {}", place(*record))]
    Truncated {
        /// The length of the input: where more bytes were needed.
        offset: u64,
        /// The record being read, or `None` inside the file header.
        record: Option<u64>,
    },
    /// A record's kind byte is not one this code knows.
    #[error("record {record} at byte {offset} has unknown kind {kind}")]
    UnknownRecordKind {
        /// The record's number.
        record: u64,
        /// Where the record starts.
        offset: u64,
        /// The kind byte.
        kind: u8,
    },
    /// A record's checksum does not match its bytes: the record is torn or corrupt.
    #[error(
        "checksum mismatch in record {record} ({kind}) at byte {offset}: \
         stored {stored:#010x}, computed {computed:#010x}"
    )]
    ChecksumMismatch {
        /// The record's number.
        record: u64,
        /// The record's kind as stored.
        kind: RecordKind,
        /// Where the record starts.
        offset: u64,
        /// The checksum stored in the record header.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A record appears where the format does not allow it (the order is: the manifest, the
    /// states, the in-flight messages, the end record).
    #[error("record {record} ({kind}) cannot follow {}", after(*previous))]
    OutOfOrder {
        /// The record's number.
        record: u64,
        /// Its kind.
        kind: RecordKind,
        /// The kind of the record before it, `None` if it is the first.
        previous: Option<RecordKind>,
    },
    /// A record's payload does not decode as its kind (its checksum matched: it was written
    /// this way).
    #[error("record {record} ({kind}) does not decode: {reason}")]
    Payload {
        /// The record's number.
        record: u64,
        /// Its kind.
        kind: RecordKind,
        /// What the decoder reported.
        reason: String,
    },
    /// The end record's count of some kind differs from the records read.
    #[error("the end record counts {declared} {kind} records but {found} were read")]
    CountMismatch {
        /// The kind counted.
        kind: RecordKind,
        /// The count in the end record.
        declared: u64,
        /// The number of records read.
        found: u64,
    },
    /// Bytes follow the end record.
    #[error("{len} bytes follow the end record at byte {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: u64,
        /// How many there are.
        len: u64,
    },
    /// A record is too large for the format (a payload is at most `u32::MAX` bytes).
    #[error("record {record} ({kind}) is {len} bytes, more than a record holds")]
    RecordTooLarge {
        /// The record's number.
        record: u64,
        /// Its kind.
        kind: RecordKind,
        /// Its payload length.
        len: u64,
    },
    /// A compressed record (format version 4) does not decompress, or claims to decompress to
    /// more than [`MAX_EXPANSION`](crate::MAX_EXPANSION) times its size. Its checksum matched:
    /// it was written this way.
    #[error("record {record} ({kind}) does not decompress: {reason}")]
    Decompress {
        /// The record's number.
        record: u64,
        /// Its kind.
        kind: RecordKind,
        /// What is wrong.
        reason: String,
    },
    /// A record could not be encoded. The model types always encode, so this reports a bug
    /// rather than bad input.
    #[error("record {record} ({kind}) does not encode: {reason}")]
    Encode {
        /// The record's number.
        record: u64,
        /// Its kind.
        kind: RecordKind,
        /// What the encoder reported.
        reason: String,
    },
    /// The checkpoint is well-formed but not consistent in itself.
    #[error("inconsistent checkpoint: {0}")]
    Invalid(#[from] ValidationError),
    /// The checkpoint is incremental (format version 5 or 7): some of its states (version
    /// 7: actors, entry and state) are stored in another checkpoint, which bytes alone do not
    /// reach. Read it through its store
    /// ([`CheckpointStore::load`](crate::CheckpointStore::load), or
    /// [`FsStore::load_file`](crate::FsStore::load_file)), which follows the references.
    #[error(
        "{states} states are stored in checkpoint {base} (an incremental checkpoint): \
         read it through its store"
    )]
    Unresolved {
        /// The first checkpoint it refers to.
        base: CheckpointId,
        /// How many of its states are stored there.
        states: u64,
    },
}

fn place(record: Option<u64>) -> String {
    match record {
        Some(record) => format!("record {record}"),
        None => "the file header".to_owned(),
    }
}

fn after(previous: Option<RecordKind>) -> String {
    match previous {
        Some(kind) => format!("a {kind} record"),
        None => "the file header".to_owned(),
    }
}

/// A [`CheckpointStore`](crate::CheckpointStore) operation failed.
///
/// Every error names the file (or object key) and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `"read"` or `"rename"`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The reason.
        #[source]
        source: io::Error,
    },
    /// A stored checkpoint is not readable as a checkpoint: torn, corrupt or from an
    /// unsupported version.
    #[error("{location}: {source}")]
    Format {
        /// The file path or object key.
        location: String,
        /// The reason.
        #[source]
        source: FormatError,
    },
    /// A store entry is not a regular file (a directory, a FIFO, a device, or a symlink to
    /// one): it is refused before it is opened, since reading it could block forever or
    /// never end.
    #[error("{location}: not a regular file ({kind}); not read")]
    NotAFile {
        /// The file path.
        location: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// A checkpoint to save is not encodable (it is inconsistent); nothing was written.
    #[error("cannot save checkpoint {id} to {location}: {source}")]
    Unencodable {
        /// The checkpoint's id.
        id: CheckpointId,
        /// Where it would have been written.
        location: String,
        /// The reason.
        #[source]
        source: FormatError,
    },
    /// No checkpoint with this id is stored.
    #[error("{location}: checkpoint {id} not found")]
    NotFound {
        /// The id asked for.
        id: CheckpointId,
        /// Where it was looked for.
        location: String,
    },
    /// A checkpoint with this id is already stored; it is never overwritten.
    #[error("{location}: checkpoint {id} already exists")]
    AlreadyExists {
        /// The id.
        id: CheckpointId,
        /// Where it is stored.
        location: String,
    },
    /// A stored checkpoint's manifest names another id than its file name or key.
    #[error("{location}: holds checkpoint {found}, expected {expected}")]
    IdMismatch {
        /// The id the name or key says.
        expected: CheckpointId,
        /// The id in the manifest.
        found: CheckpointId,
        /// The file path or object key.
        location: String,
    },
    /// A store URL (see [`Store::from_url`](crate::Store::from_url)) is malformed, or names a
    /// kind of store this build does not have.
    #[error("cannot open store {url}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A state of an incremental checkpoint cannot be read back from the checkpoint that
    /// stores it: that checkpoint is missing or unreadable, or does not hold the very bytes
    /// the reference names. The checkpoint does not load (no state is made up).
    #[error(
        "{location}: the state of actor {actor} is stored in checkpoint {base}, which {problem}"
    )]
    Unresolved {
        /// The checkpoint being loaded.
        id: CheckpointId,
        /// Where it is stored.
        location: String,
        /// The first actor whose state cannot be read back.
        actor: ActorId,
        /// The checkpoint its state is stored in.
        base: CheckpointId,
        /// What is wrong.
        #[source]
        problem: ReferenceProblem,
    },
    /// Another store backend failed (for stores other than [`FsStore`](crate::FsStore), e.g. an
    /// object store's client error).
    #[error("{location}: {source}")]
    Backend {
        /// The object key or other location.
        location: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Why a reference of an incremental checkpoint does not resolve (see
/// [`StoreError::Unresolved`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceProblem {
    /// The checkpoint it names is not stored (deleted, or never written here).
    #[error("is not stored")]
    Missing,
    /// The checkpoint it names does not load.
    #[error("does not load: {0}")]
    Unreadable(#[source] Box<StoreError>),
    /// The checkpoint it names holds no state of the actor.
    #[error("holds no state of it")]
    NoState,
    /// The checkpoint it names holds other bytes than the reference's digest and length
    /// say (replaced or tampered with).
    #[error("holds other bytes for it (digest or length differs)")]
    Mismatch,
}
