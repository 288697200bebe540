//! The checkpoint file format: bytes in, bytes out, usable by any store.
//!
//! ```text
//! file    = header record*
//! header  = magic "AMBERCKP" (8 bytes) | format version (u32 LE)
//! record  = kind (u8) | payload length (u32 LE) | CRC32C (u32 LE) | payload
//! ```
//!
//! The CRC32C covers the kind byte, the length and the payload, so a flipped bit anywhere in a
//! record is caught. The records are, in this order: one manifest (kind 1), the states (kind
//! 2), the in-flight messages (kind 3, in re-enqueueing order), and an end record (kind 4)
//! with the number of states and of in-flight messages, so that a file cut at a record
//! boundary is rejected too. Nothing follows the end record.
//!
//! Version 2 (written now) stores payloads as positional MessagePack with the ids, type
//! names and node names written once (see `compact.rs`), and a state or in-flight record
//! holds a batch of states or messages (up to about [`BATCH_BYTES`] each). Version 1
//! (still read) stored payloads as MessagePack with named fields, one state or message per
//! record. The end record is the same in both: MessagePack with named fields.
//!
//! Version 4 (written by [`encode_with`] with [`Compression::Zstd`]; there is no version 3,
//! see [`CHECKPOINT_FORMAT_VERSION`]) is version 2 whose
//! records may be compressed: a record whose kind byte has its high bit set (`0x80 | kind`)
//! holds one zstd frame, with its content size, that decompresses to the version 2 payload.
//! The CRC32C covers the stored (compressed) bytes, so damage is caught before anything is
//! decompressed. A record that compression would not shrink is stored as in version 2.
//! [`encode`] (no compression) writes version 2, which older builds read too.
//!
//! Version 5 (written by the build before version 7 for a checkpoint that refers to an
//! earlier one; still read) is version 4 plus references: a state item may be a *run*,
//! `[actor, count, checkpoint, digest, bytes]`, saying that `count` actors from manifest place
//! `actor` on have (and had, without timers) the very state bytes stored in checkpoint
//! `checkpoint`; `digest` is a BLAKE3 digest of those states (16 bytes) and `bytes` their
//! total length, which a reader checks. A run names the checkpoint that stores the bytes,
//! never one that refers on. The manifest gets an eighth element, the ids of every checkpoint
//! the runs name (its *bases*), so that retention knows what a checkpoint needs from its
//! manifest alone. Its manifest is written whole.
//!
//! Version 7 (written by a store with incremental checkpoints, e.g.
//! [`FsStore::with_incremental`](crate::FsStore::with_incremental), for a checkpoint that
//! refers to an earlier one) makes the manifest incremental too: an item of the manifest's
//! actors may be an *actor run*, `[nil, first, home place, count, checkpoint, digest, bytes]`,
//! saying that the next `count` actors are, entry and state, the actors at places `home
//! place` on of checkpoint `checkpoint`, which stores both itself (`first` names the first
//! of them; `digest` and `bytes` check their states as in version 5). The state records hold
//! only the states of the actors whose entries are written out. The bases are as in version
//! 5. See `compact.rs` for the payloads.
//!
//! [`decode`] (and [`decode_manifest`]) read a version 5 or 7 file only if it has no runs;
//! one with runs is [`FormatError::Unresolved`]: the store reads it
//! ([`CheckpointStore::load`](crate::CheckpointStore::load)), fetching the bases. A
//! checkpoint with no references is written as version 2 or 4, as before.
//!
//! Decoding checks each length against the bytes that remain before using it, so a lying
//! length field cannot make it allocate; a compressed record may expand to at most
//! [`MAX_EXPANSION`] times its stored size (plus 1 MiB), checked against its frame header before
//! decompressing. It never panics.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Cursor, Read};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ActorId;
use crate::checkpoint::compact::{
    self, InFlightIn, ManifestRaw, ManifestRead, StateIn, StateItem, StateOut, Systems,
};
use crate::checkpoint::error::FormatError;
use crate::checkpoint::in_flight::InFlightRun;
use crate::checkpoint::incremental::{Parts, Plan, Slot, StoredPlaces};
use crate::checkpoint::model::{Checkpoint, CheckpointId, InFlightRecord, Manifest, StateRecord};

/// The bytes every checkpoint starts with.
const MAGIC: &[u8; 8] = b"AMBERCKP";

/// The newest format version: an incremental checkpoint with references is written in it
/// (see the module docs), and [`decode`] reads it and every earlier version (from
/// [`OLDEST_READABLE_VERSION`]) but 3 and 6. [`encode_with`] writes version 4 when it
/// compresses.
///
/// There are no versions 3 and 6: the versions 1, 2, 4 and 7 differ pairwise in two bits,
/// so a single flipped bit in a file's version field never turns one into another that
/// reads. Version 5 (written by the build before 7) is one bit from 4, 1 and 7, but
/// harmlessly: a version 4 file read as 5 reads the same, and a version 5 file read as 4, 1
/// or 7, or a version 7 file read as 5, is refused.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 7;

/// The format versions [`decode`] reads.
const READABLE_VERSIONS: [u32; 5] = [1, 2, 4, 5, 7];

/// The version of a checkpoint with references to earlier ones.
const INCREMENTAL_VERSION: u32 = 7;

/// The version of a checkpoint whose states (not its entries) refer to earlier ones, as the
/// build before version 7 wrote them; still read.
const STATE_RUNS_VERSION: u32 = 5;

/// The version of a compressed checkpoint without references.
const COMPRESSED_VERSION: u32 = 4;

/// The version of an uncompressed checkpoint ([`encode`]).
const UNCOMPRESSED_VERSION: u32 = 2;

/// The high bit of a version 4 record's kind byte: its payload is a zstd frame.
const COMPRESSED: u8 = 0x80;

/// How many times its stored size a compressed record may decompress to (plus 1 MiB): a few
/// bytes of input cannot make a reader allocate gigabytes. The encoder stores a record
/// uncompressed rather than beyond this ratio.
pub const MAX_EXPANSION: u64 = 1024;

/// What a compressed record may decompress to beyond [`MAX_EXPANSION`] times its size.
const EXPANSION_SLACK: u64 = 1 << 20;

/// Records shorter than this are never compressed (a zstd frame has a dozen bytes of framing).
const MIN_COMPRESSED_LEN: usize = 64;

/// How a checkpoint's records are compressed when it is written ([`encode_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Not compressed: format version 2, as [`encode`] writes it.
    #[default]
    None,
    /// Each record compressed with zstd at this level (1 fastest … 19 smallest; 3 is zstd's
    /// default): format version 4.
    Zstd {
        /// The zstd compression level.
        level: i32,
    },
}

impl Compression {
    /// zstd at its default level (3): fast, and a good deal smaller for typical states.
    pub const ZSTD: Compression = Compression::Zstd { level: 3 };

    /// The zstd level, if any.
    fn level(self) -> Option<i32> {
        match self {
            Compression::None => None,
            Compression::Zstd { level } => Some(level),
        }
    }
}

/// The oldest format version [`decode`] reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// About how many payload bytes a version 2 state or in-flight record holds: a batch ends
/// with the item that reaches it.
pub const BATCH_BYTES: usize = 256 * 1024;

/// Magic and version.
const FILE_HEADER_LEN: usize = 12;

/// Kind, length and checksum.
const RECORD_HEADER_LEN: usize = 9;

/// How deep a record's MessagePack may nest. The model needs 6 levels; the limit keeps a
/// crafted payload (e.g. an unknown field of 100 000 nested arrays) from overflowing the stack.
const MAX_NESTING: usize = 64;

/// How many bytes [`manifest_len`] needs to see.
pub(crate) const MANIFEST_HEADER_LEN: usize = FILE_HEADER_LEN + RECORD_HEADER_LEN;

/// The kind of a record in a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// The [`Manifest`](crate::Manifest); always the first record.
    Manifest,
    /// [`StateRecord`](crate::StateRecord)s: one (version 1) or a batch (version 2).
    State,
    /// [`InFlightRecord`](crate::InFlightRecord)s: one (version 1) or a batch (version 2).
    InFlight,
    /// The last record, with the number of state and in-flight records.
    End,
}

impl RecordKind {
    fn byte(self) -> u8 {
        match self {
            RecordKind::Manifest => 1,
            RecordKind::State => 2,
            RecordKind::InFlight => 3,
            RecordKind::End => 4,
        }
    }

    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Manifest),
            2 => Some(RecordKind::State),
            3 => Some(RecordKind::InFlight),
            4 => Some(RecordKind::End),
            _ => None,
        }
    }

    /// Whether a record of this kind may follow one of kind `previous` (`None`: the header).
    fn may_follow(self, previous: Option<RecordKind>) -> bool {
        use RecordKind::{End, InFlight, Manifest, State};
        match previous {
            None => self == Manifest,
            Some(Manifest | State) => matches!(self, State | InFlight | End),
            Some(InFlight) => matches!(self, InFlight | End),
            Some(End) => false,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Manifest => "manifest",
            RecordKind::State => "state",
            RecordKind::InFlight => "in-flight",
            RecordKind::End => "end",
        })
    }
}

/// The payload of the end record.
#[derive(Serialize, Deserialize)]
struct EndRecord {
    states: u64,
    in_flight: u64,
}

/// Encodes a checkpoint in the checkpoint file format.
///
/// The checkpoint is [validated](Checkpoint::validate) first: an inconsistent checkpoint is not
/// written, since it could not be read back.
///
/// # Example
///
/// ```
/// use amber_snapshot::{
///     decode, encode, ActorEntry, ActorId, Checkpoint, CheckpointId, Epoch, Manifest,
///     NodeEntry, SpawnCapacity, SpawnRestart, StateRecord, SystemId,
/// };
///
/// let account = ActorId::new(SystemId(7), 1);
/// let checkpoint = Checkpoint {
///     manifest: Manifest {
///         id: CheckpointId(1),
///         epoch: Epoch(1),
///         created_unix_ms: 1_700_000_000_000,
///         nodes: vec![NodeEntry::new("local", None)],
///         actors: vec![ActorEntry {
///             id: account,
///             type_name: "bank.Account".into(),
///             name: Some("alice".into()),
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
/// let bytes = encode(&checkpoint)?;
/// assert_eq!(decode(&bytes)?, checkpoint);
/// # Ok::<(), amber_snapshot::FormatError>(())
/// ```
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, FormatError> {
    encode_with(checkpoint, Compression::None)
}

/// Encodes a checkpoint as [`encode`] does, with its records compressed as `compression`
/// says (format version 4 with [`Compression::Zstd`]). [`decode`] reads either.
pub fn encode_with(
    checkpoint: &Checkpoint,
    compression: Compression,
) -> Result<Vec<u8>, FormatError> {
    checkpoint.validate()?;
    encode_planned(checkpoint, compression, None)
}

/// Encodes a checkpoint its caller validated as [`encode_with`] does, its states written as
/// `plan` says (format version 5) if there is one.
pub(crate) fn encode_planned(
    checkpoint: &Checkpoint,
    compression: Compression,
    plan: Option<&Plan>,
) -> Result<Vec<u8>, FormatError> {
    encode_planned_into(checkpoint, compression, plan, Vec::new())
}

/// [`encode_planned`], into `out` (emptied first): a store encodes into the buffer of its
/// previous save.
pub(crate) fn encode_planned_into(
    checkpoint: &Checkpoint,
    compression: Compression,
    plan: Option<&Plan>,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, FormatError> {
    let mut encoder = Encoder::of_valid(checkpoint, compression, plan);
    let Checkpoint { manifest, states, in_flight } = checkpoint;
    let payload_bytes: usize = states.iter().map(|s| s.state.len() + 16).sum::<usize>()
        + in_flight.payload_bytes()
        + in_flight.len() * 16;
    out.clear();
    out.reserve(payload_bytes + manifest.actors.len() * 16 + 1024);
    while encoder.next_into(&mut out)? {}
    Ok(out)
}

/// Encodes a checkpoint piece by piece, for a store that writes it as a stream (e.g. the
/// parts of a multipart upload) instead of building it whole: the file header with the
/// manifest first, then one record (a batch of about [`BATCH_BYTES`]) per call. The pieces
/// put together are exactly [`encode`]'s bytes.
pub(crate) struct Encoder<'a> {
    checkpoint: &'a Checkpoint,
    systems: Systems,
    /// The number of the next record.
    record: u64,
    stage: Stage,
    /// Where each actor is in the manifest, made when a state is not in the manifest's order.
    places: Option<HashMap<ActorId, u32>>,
    /// The zstd level records are compressed at, if they are.
    level: Option<i32>,
    /// Where the writer is in the in-flight messages.
    in_flight: InFlightCursor<'a>,
    /// How the states are written, for an incremental checkpoint (version 5).
    plan: Option<&'a Plan>,
}

/// What [`Encoder::next_into`] writes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The file header and the manifest.
    Start,
    /// The state record starting at this state.
    States(usize),
    /// The in-flight record starting at this message.
    InFlight(usize),
    /// The end record.
    End,
    /// Nothing more.
    Done,
}

impl<'a> Encoder<'a> {
    /// An encoder of `checkpoint`, which its caller has [validated](Checkpoint::validate)
    /// (a store validates before it plans; validating 100k actors twice took milliseconds of
    /// every save), whose states are written as `plan` says (format version 5), if there is
    /// one; `plan` must have been made for this checkpoint.
    pub(crate) fn of_valid(
        checkpoint: &'a Checkpoint,
        compression: Compression,
        plan: Option<&'a Plan>,
    ) -> Encoder<'a> {
        let items = plan.map(|plan| &plan.items[..]);
        let systems = Systems::of(&checkpoint.manifest, &checkpoint.in_flight, items);
        let level = compression.level();
        Encoder {
            checkpoint,
            systems,
            record: 0,
            stage: Stage::Start,
            places: None,
            level,
            in_flight: InFlightCursor {
                runs: checkpoint.in_flight.runs().collect(),
                run: 0,
                at: 0,
                last_to: None,
            },
            plan,
        }
    }

    /// Appends the next piece to `out`; `false` (and nothing appended) once the end record
    /// is written.
    pub(crate) fn next_into(&mut self, out: &mut Vec<u8>) -> Result<bool, FormatError> {
        let Checkpoint { manifest, states, in_flight } = self.checkpoint;
        match self.stage {
            Stage::Start => {
                out.extend_from_slice(MAGIC);
                let version = if self.plan.is_some() {
                    INCREMENTAL_VERSION
                } else if self.level.is_some() {
                    COMPRESSED_VERSION
                } else {
                    UNCOMPRESSED_VERSION
                };
                out.extend_from_slice(&version.to_le_bytes());
                let systems = &self.systems;
                let bases = self.plan.map_or(&[][..], |plan| &plan.bases[..]);
                let items = self.plan.map(|plan| &plan.items[..]);
                push_record(out, &mut self.record, RecordKind::Manifest, self.level, |out| {
                    compact::write_manifest(out, manifest, systems, bases, items)
                })?;
                self.stage = Stage::States(0);
            }
            Stage::States(i) if self.plan.is_some_and(|plan| i < plan.stored.len()) => {
                let stored = self.plan.map_or(&[][..], |plan| &plan.stored[..]);
                let next = push_batch(
                    out,
                    &mut self.record,
                    RecordKind::State,
                    self.level,
                    i,
                    stored.len(),
                    |out, i, _| {
                        let (place, at) = stored[i];
                        Ok(crate::msgpack::write(out, &StateOut::new(place, &states[at as usize]))?)
                    },
                )?;
                self.stage = Stage::States(next);
            }
            Stage::States(i) if self.plan.is_none() && i < states.len() => {
                let places = &mut self.places;
                let mut place =
                    |i: usize, state: &StateRecord| place_of(manifest, places, i, state);
                let next = push_batch(
                    out,
                    &mut self.record,
                    RecordKind::State,
                    self.level,
                    i,
                    states.len(),
                    |out, i, _| {
                        Ok(crate::msgpack::write(
                            out,
                            &StateOut::new(place(i, &states[i]), &states[i]),
                        )?)
                    },
                )?;
                self.stage = Stage::States(next);
            }
            Stage::States(_) => {
                self.stage = Stage::InFlight(0);
                return self.next_into(out);
            }
            Stage::InFlight(i) if i < in_flight.len() => {
                let (cursor, systems) = (&mut self.in_flight, &self.systems);
                let written = push_array_record(
                    out,
                    &mut self.record,
                    RecordKind::InFlight,
                    self.level,
                    |out, array| cursor.fill(out, array, systems),
                )?;
                self.stage = Stage::InFlight(i + written as usize);
            }
            Stage::InFlight(_) => {
                self.stage = Stage::End;
                return self.next_into(out);
            }
            Stage::End => {
                let end =
                    EndRecord { states: states.len() as u64, in_flight: in_flight.len() as u64 };
                push_record(out, &mut self.record, RecordKind::End, self.level, |out| {
                    Ok(crate::msgpack::write_named(out, &end)?)
                })?;
                self.stage = Stage::Done;
            }
            Stage::Done => return Ok(false),
        }
        Ok(true)
    }
}

/// Where the writer is in a checkpoint's in-flight messages, as they are kept (walked, not
/// indexed).
struct InFlightCursor<'a> {
    runs: Vec<InFlightRun<'a>>,
    /// The run and the message in it written next.
    run: usize,
    at: usize,
    /// The receiver of the last message written.
    last_to: Option<ActorId>,
}

impl InFlightCursor<'_> {
    /// Appends the messages from the next one not yet written on as the items of a record
    /// whose array starts at `array` in `out`, until its payload reaches [`BATCH_BYTES`] or
    /// the last message is written (as [`push_batch`] ends a batch); returns how many.
    fn fill(
        &mut self,
        out: &mut Vec<u8>,
        array: usize,
        systems: &Systems,
    ) -> Result<u32, rmp_serde::encode::Error> {
        let mut n: u32 = 0;
        while let Some(run) = self.runs.get(self.run)
            && out.len() - array < BATCH_BYTES
            && n < u32::MAX
        {
            // A record's first message names its receiver; the others only when it changes.
            let len = match *run {
                InFlightRun::Records(records) => {
                    if let Some(message) = records.get(self.at) {
                        let same = n > 0 && self.last_to == Some(message.to);
                        compact::write_in_flight(out, message.into(), same, systems)?;
                        self.last_to = Some(message.to);
                        self.at += 1;
                        n += 1;
                    }
                    records.len()
                }
                InFlightRun::Backlog(backlog) => {
                    let same = n > 0 && self.last_to == Some(backlog.to());
                    let limits = (array, BATCH_BYTES, u32::MAX - n);
                    let written =
                        compact::write_backlog_items(out, backlog, self.at, same, systems, limits)?;
                    if written > 0 {
                        self.last_to = Some(backlog.to());
                    }
                    self.at += written as usize;
                    n += written;
                    backlog.len()
                }
            };
            if self.at >= len {
                self.run += 1;
                self.at = 0;
            }
        }
        if n == 0 {
            // Only if the runs held fewer messages than counted (never for an `InFlight`):
            // an error, not an endless run of empty records.
            return Err(rmp_serde::encode::Error::Syntax("fewer messages than counted".into()));
        }
        Ok(n)
    }
}

/// The place in `manifest` of the actor whose state is `state`, the `i`-th state written. A
/// state names its actor by its place in the manifest; states mostly come in the manifest's
/// order, so `places` (every actor's place) is made only for a state that does not.
fn place_of(
    manifest: &Manifest,
    places: &mut Option<HashMap<ActorId, u32>>,
    i: usize,
    state: &StateRecord,
) -> u32 {
    if manifest.actors.get(i).is_some_and(|a| a.id == state.id) {
        return i as u32;
    }
    let places = places.get_or_insert_with(|| {
        manifest.actors.iter().enumerate().map(|(i, a)| (a.id, i as u32)).collect()
    });
    // Validation checked that every state is of a listed actor.
    places.get(&state.id).copied().unwrap_or(u32::MAX)
}

/// Appends one record of `kind` whose payload `write` appends.
fn push_record(
    out: &mut Vec<u8>,
    record: &mut u64,
    kind: RecordKind,
    level: Option<i32>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), rmp_serde::encode::Error>,
) -> Result<(), FormatError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    write(out).map_err(|err| FormatError::Encode {
        record: *record,
        kind,
        reason: err.to_string(),
    })?;
    seal_record(out, start, record, kind, level)
}

/// Appends one record of `kind`: a MessagePack array of the items from `from` on that
/// `write(out, i, first)` appends (`first`: item `i` starts its record), ending once its
/// payload reaches [`BATCH_BYTES`] or at item `items`. Returns the first item not written.
fn push_batch(
    out: &mut Vec<u8>,
    record: &mut u64,
    kind: RecordKind,
    level: Option<i32>,
    from: usize,
    items: usize,
    mut write: impl FnMut(&mut Vec<u8>, usize, bool) -> Result<(), rmp_serde::encode::Error>,
) -> Result<usize, FormatError> {
    let mut i = from;
    push_array_record(out, record, kind, level, |out, array| {
        let mut n: u32 = 0;
        while i < items && out.len() - array < BATCH_BYTES && n < u32::MAX {
            write(out, i, n == 0)?;
            i += 1;
            n += 1;
        }
        Ok(n)
    })?;
    Ok(i)
}

/// Appends one record of `kind` whose payload is a MessagePack array (of 32-bit length) of
/// the items `fill(out, array)` appends: `array` is where the array starts in `out` (a
/// batch ends once its payload reaches [`BATCH_BYTES`]); `fill` returns how many it
/// appended, which this returns too.
fn push_array_record(
    out: &mut Vec<u8>,
    record: &mut u64,
    kind: RecordKind,
    level: Option<i32>,
    fill: impl FnOnce(&mut Vec<u8>, usize) -> Result<u32, rmp_serde::encode::Error>,
) -> Result<u32, FormatError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    // An array of 32-bit length, patched once the batch is known.
    let array = out.len();
    out.extend_from_slice(&[0xdd, 0, 0, 0, 0]);
    let n = fill(out, array).map_err(|err| FormatError::Encode {
        record: *record,
        kind,
        reason: err.to_string(),
    })?;
    out[array + 1..array + 5].copy_from_slice(&n.to_be_bytes());
    seal_record(out, start, record, kind, level)?;
    Ok(n)
}

/// Fills in the header of the record that starts at `start` and runs to the end of `out`,
/// first compressing its payload at zstd level `level` if that shrinks it (within
/// [`MAX_EXPANSION`]).
fn seal_record(
    out: &mut Vec<u8>,
    start: usize,
    record: &mut u64,
    kind: RecordKind,
    level: Option<i32>,
) -> Result<(), FormatError> {
    let mut kind_byte = kind.byte();
    let raw_len = out.len() - start - RECORD_HEADER_LEN;
    if let Some(level) = level.filter(|_| raw_len >= MIN_COMPRESSED_LEN) {
        let compressed =
            zstd::bulk::compress(&out[start + RECORD_HEADER_LEN..], level).map_err(|err| {
                FormatError::Encode { record: *record, kind, reason: err.to_string() }
            })?;
        if compressed.len() < raw_len && raw_len as u64 <= expansion_limit(compressed.len()) {
            out.truncate(start + RECORD_HEADER_LEN);
            out.extend_from_slice(&compressed);
            kind_byte |= COMPRESSED;
        }
    }
    let payload_len = out.len() - start - RECORD_HEADER_LEN;
    let len = u32::try_from(payload_len).map_err(|_| FormatError::RecordTooLarge {
        record: *record,
        kind,
        len: payload_len as u64,
    })?;
    out[start] = kind_byte;
    out[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    let crc = record_crc(&out[start..start + 5], &out[start + RECORD_HEADER_LEN..]);
    out[start + 5..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    *record += 1;
    Ok(())
}

/// The most a compressed record of `stored` bytes may decompress to.
fn expansion_limit(stored: usize) -> u64 {
    (stored as u64)
        .saturating_mul(MAX_EXPANSION)
        .saturating_add(EXPANSION_SLACK)
        .min(u32::MAX as u64)
}

/// Decompresses the zstd frame of compressed record `record`, after checking the size it
/// claims.
fn decompress(record: u64, kind: RecordKind, frame: &[u8]) -> Result<Vec<u8>, FormatError> {
    let error = |reason: String| FormatError::Decompress { record, kind, reason };
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => return Err(error("the zstd frame does not say its size".to_owned())),
        Err(_) => return Err(error("not a zstd frame".to_owned())),
    };
    let limit = expansion_limit(frame.len());
    if size > limit {
        return Err(error(format!(
            "{} bytes claim to decompress to {size}, more than the {limit} allowed",
            frame.len()
        )));
    }
    let payload =
        zstd::bulk::decompress(frame, size as usize).map_err(|err| error(err.to_string()))?;
    if payload.len() as u64 != size {
        return Err(error(format!("decompressed to {} bytes, not {size}", payload.len())));
    }
    Ok(payload)
}

/// The checksum of a record: CRC32C over its kind and length bytes, then its payload.
fn record_crc(kind_and_len: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(kind_and_len), payload)
}

/// Decodes a checkpoint written by [`encode`], checking every record's checksum, the record
/// order and counts, and the checkpoint's [consistency](Checkpoint::validate).
///
/// An incremental checkpoint (format version 5) whose states refer to other checkpoints is
/// [`FormatError::Unresolved`]: read it through its store, which follows the references.
///
/// Never panics, whatever the input.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
    decode_parts(bytes)?.into_checkpoint()
}

/// Decodes a checkpoint as [`decode`] does, leaving the runs of an incremental checkpoint
/// (version 5) unresolved and the checkpoint not yet [validated](Checkpoint::validate).
pub(crate) fn decode_parts(bytes: &[u8]) -> Result<Parts, FormatError> {
    decode_records(Reader::new(bytes)?)
}

/// Decodes a checkpoint as [`decode_parts`] does, reading it record by record from `read`,
/// which holds `len` bytes: the whole file is never in memory at once, a record that claims
/// more bytes than are left is refused before anything is allocated for it, and nothing
/// after the end record is read (only counted, from `len`). An error reading `read` comes
/// back as `Err(Err(error))`.
pub(crate) fn decode_parts_from(
    read: &mut dyn Read,
    len: u64,
) -> Result<Parts, Result<FormatError, io::Error>> {
    let mut failed = None;
    let decoded = Reader::stream(read, len, &mut failed).and_then(decode_records);
    match (decoded, failed) {
        (_, Some(error)) => Err(Err(error)),
        (decoded, None) => decoded.map_err(Ok),
    }
}

fn decode_records(mut reader: Reader<'_>) -> Result<Parts, FormatError> {
    let ManifestRead { manifest, systems, bases, runs } = reader.manifest()?;
    let mut states = Vec::new();
    // How many actors the states cover (a run covers many; so does an actor run).
    let mut covered: u64 = runs.iter().map(|(_, run)| u64::from(run.count)).sum();
    // Version 7: which entry written out each place is, and whether its state was read.
    let places = StoredPlaces::of(&runs, manifest.actors.len());
    let mut seen = vec![false; if runs.is_empty() { 0 } else { manifest.actors.len() }];
    let mut in_flight: Vec<InFlightRecord> = Vec::new();
    loop {
        let raw = reader.next_record()?;
        match raw.kind {
            // `next_record` rejects a manifest anywhere but first; this arm is never taken.
            RecordKind::Manifest => {
                return Err(FormatError::OutOfOrder {
                    record: raw.record,
                    kind: raw.kind,
                    previous: None,
                });
            }
            RecordKind::State if reader.version == 1 => {
                states.push(Slot::Here(u32::MAX, raw.decode()?));
                covered += 1;
            }
            RecordKind::State if !runs.is_empty() => {
                let batch: Vec<StateIn> = raw.decode()?;
                states.reserve(batch.len());
                for StateIn(place, state, timers) in batch {
                    let Some(at) = places.stored(place) else {
                        return Err(raw.payload_error(format!(
                            "a state for place {place}, which holds no entry written out"
                        )));
                    };
                    if std::mem::replace(&mut seen[at], true) {
                        return Err(raw.payload_error(format!("two states for place {place}")));
                    }
                    let id = manifest.actors[at].id;
                    states.push(Slot::Here(place, StateRecord { id, state, timers }));
                    covered += 1;
                }
            }
            RecordKind::State if reader.version == STATE_RUNS_VERSION => {
                let batch: Vec<StateItem> = raw.decode()?;
                states.reserve(batch.len());
                for item in batch {
                    match item {
                        StateItem::Here(StateIn(actor, state, timers)) => {
                            let Some(entry) = manifest.actors.get(actor as usize) else {
                                return Err(
                                    raw.payload_error(format!("no actor {actor} in the manifest"))
                                );
                            };
                            let id = entry.id;
                            states.push(Slot::Here(actor, StateRecord { id, state, timers }));
                            covered += 1;
                        }
                        StateItem::Run(run) => {
                            let end = u64::from(run.place) + u64::from(run.count);
                            if end > manifest.actors.len() as u64 {
                                return Err(raw.payload_error(format!(
                                    "a run of {} states from actor {} passes the manifest's end",
                                    run.count, run.place
                                )));
                            }
                            if run.home >= manifest.id || bases.binary_search(&run.home).is_err() {
                                return Err(raw.payload_error(format!(
                                    "a run refers to checkpoint {}, not an earlier one among \
                                     its bases",
                                    run.home
                                )));
                            }
                            states.push(Slot::Run(run));
                            covered += u64::from(run.count);
                        }
                    }
                }
            }
            RecordKind::State => {
                let batch: Vec<StateIn> = raw.decode()?;
                let batch_len = batch.len() as u64;
                states.reserve(batch.len());
                for StateIn(actor, state, timers) in batch {
                    let Some(entry) = manifest.actors.get(actor as usize) else {
                        return Err(raw.payload_error(format!("no actor {actor} in the manifest")));
                    };
                    states.push(Slot::Here(actor, StateRecord { id: entry.id, state, timers }));
                }
                covered += batch_len;
            }
            RecordKind::InFlight if reader.version == 1 => in_flight.push(raw.decode()?),
            RecordKind::InFlight => {
                let batch: Vec<InFlightIn> = raw.decode()?;
                in_flight.reserve(batch.len());
                let mut previous = None;
                for message in batch {
                    let message =
                        message.resolve(previous, &systems).map_err(|e| raw.payload_error(e))?;
                    previous = Some(message.to);
                    in_flight.push(message);
                }
            }
            RecordKind::End => {
                let end: EndRecord = raw.decode()?;
                check_count(RecordKind::State, end.states, covered as usize)?;
                check_count(RecordKind::InFlight, end.in_flight, in_flight.len())?;
                reader.finish()?;
                break;
            }
        }
    }
    Ok(Parts { manifest, runs, slots: states, in_flight: in_flight.into() })
}

/// Decodes only the manifest, from the start of a checkpoint.
///
/// `bytes` need only hold the file header and the manifest record; the rest of the checkpoint
/// is neither read nor checked. A store uses this to list checkpoints cheaply.
///
/// The manifest of an incremental checkpoint whose actors refer to other checkpoints (format
/// version 7) is [`FormatError::Unresolved`]: load the checkpoint through its store.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, FormatError> {
    let ManifestRead { manifest, runs, .. } = Reader::new(bytes)?.manifest()?;
    if let Some((_, first)) = runs.first() {
        let states = runs
            .iter()
            .filter(|(_, run)| run.home == first.home)
            .map(|(_, run)| u64::from(run.count))
            .sum();
        return Err(FormatError::Unresolved { base: first.home, states });
    }
    Ok(manifest)
}

/// What a checkpoint's manifest record says of it as a whole, without its actors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The checkpoint's id.
    pub(crate) id: CheckpointId,
    /// Its epoch.
    pub(crate) epoch: crate::Epoch,
    /// When it was taken.
    pub(crate) created_unix_ms: u64,
    /// The checkpoints it refers to (none before version 5).
    pub(crate) bases: Vec<CheckpointId>,
}

/// Decodes the head of a checkpoint (its manifest record, whose actors may be runs that
/// refer to other checkpoints in version 7) from its start, as [`decode_manifest`] does.
pub(crate) fn decode_head(bytes: &[u8]) -> Result<Head, FormatError> {
    let ManifestRead { manifest, bases, .. } = Reader::new(bytes)?.manifest()?;
    let Manifest { id, epoch, created_unix_ms, .. } = manifest;
    Ok(Head { id, epoch, created_unix_ms, bases })
}

/// The format version of a checkpoint, from its first 12 bytes.
pub(crate) fn version_of(prefix: &[u8]) -> Result<u32, FormatError> {
    Ok(Reader::new(prefix)?.version)
}

/// How many bytes the file header is: [`version_of`] needs them.
pub(crate) const VERSION_HEADER_LEN: usize = FILE_HEADER_LEN;

/// How many bytes from the start of a checkpoint [`decode_manifest`] needs, given at least the
/// first [`MANIFEST_HEADER_LEN`] bytes (fewer: the checkpoint is truncated).
pub(crate) fn manifest_len(prefix: &[u8]) -> Result<usize, FormatError> {
    let mut reader = Reader::new(prefix)?;
    let header = reader.record_header()?;
    Ok(FILE_HEADER_LEN + RECORD_HEADER_LEN + header.len)
}

fn check_count(kind: RecordKind, declared: u64, found: usize) -> Result<(), FormatError> {
    let found = found as u64;
    if declared == found {
        Ok(())
    } else {
        Err(FormatError::CountMismatch { kind, declared, found })
    }
}

/// Checks a checkpoint's file header, the first bytes of a checkpoint of `len` bytes, and
/// returns its format version.
fn file_version(head: &[u8], len: u64) -> Result<u32, FormatError> {
    let seen = head.len().min(MAGIC.len());
    if head[..seen] != MAGIC[..seen] {
        return Err(FormatError::BadMagic);
    }
    let Some(version) = head.get(MAGIC.len()..FILE_HEADER_LEN) else {
        return Err(FormatError::Truncated { offset: len, record: None });
    };
    let found = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    if !READABLE_VERSIONS.contains(&found) {
        return Err(FormatError::UnsupportedVersion {
            found,
            supported: CHECKPOINT_FORMAT_VERSION,
        });
    }
    Ok(found)
}

/// Walks the records of a checkpoint, checking framing, checksums and order.
struct Reader<'a> {
    input: Input<'a>,
    /// Where the next record starts.
    pos: usize,
    /// The number of the next record.
    record: u64,
    /// The kind of the last record read.
    previous: Option<RecordKind>,
    /// The file's format version.
    version: u32,
}

/// What a [`Reader`] reads: the whole checkpoint in memory, or a stream of it.
enum Input<'a> {
    Slice(&'a [u8]),
    Stream {
        read: &'a mut dyn Read,
        /// The stream's length: how many bytes are left is known before they are read.
        len: u64,
        /// The header of the next record, once read (before its record is).
        header: Option<[u8; RECORD_HEADER_LEN]>,
        /// Where an I/O error reading the stream goes (the reader reports it as truncation).
        failed: &'a mut Option<io::Error>,
    },
}

impl Input<'_> {
    /// How many bytes the checkpoint has.
    fn len(&self) -> u64 {
        match self {
            Input::Slice(bytes) => bytes.len() as u64,
            Input::Stream { len, .. } => *len,
        }
    }
}

/// Reads exactly `buf.len()` bytes; `false` if the stream ended first or failed (the error
/// kept in `failed`).
fn read_fully(read: &mut dyn Read, buf: &mut [u8], failed: &mut Option<io::Error>) -> bool {
    match read.read_exact(buf) {
        Ok(()) => true,
        Err(error) => {
            if error.kind() != io::ErrorKind::UnexpectedEof {
                *failed = Some(error);
            }
            false
        }
    }
}

/// A record's header as stored.
struct RecordHeader {
    kind: RecordKind,
    /// Whether the payload is a zstd frame (version 4).
    compressed: bool,
    len: usize,
    stored_crc: u32,
}

/// A record whose framing and checksum are good.
struct RawRecord<'a> {
    record: u64,
    kind: RecordKind,
    /// The payload, decompressed if it was stored compressed.
    payload: Cow<'a, [u8]>,
}

impl<'a> Reader<'a> {
    /// Checks the file header.
    fn new(bytes: &'a [u8]) -> Result<Reader<'a>, FormatError> {
        let version = file_version(bytes, bytes.len() as u64)?;
        Ok(Reader {
            input: Input::Slice(bytes),
            pos: FILE_HEADER_LEN,
            record: 0,
            previous: None,
            version,
        })
    }

    /// Reads and checks the file header of a checkpoint of `len` bytes from `read`.
    fn stream(
        read: &'a mut dyn Read,
        len: u64,
        failed: &'a mut Option<io::Error>,
    ) -> Result<Reader<'a>, FormatError> {
        let mut head = [0; FILE_HEADER_LEN];
        let have = usize::try_from(len).unwrap_or(usize::MAX).min(FILE_HEADER_LEN);
        if !read_fully(read, &mut head[..have], failed) {
            return Err(FormatError::Truncated { offset: len, record: None });
        }
        let version = file_version(&head[..have], len)?;
        let input = Input::Stream { read, len, header: None, failed };
        Ok(Reader { input, pos: FILE_HEADER_LEN, record: 0, previous: None, version })
    }

    fn truncated(&self) -> FormatError {
        FormatError::Truncated { offset: self.input.len(), record: Some(self.record) }
    }

    /// The stored bytes of the next record's header (read from a stream once, and kept until
    /// its record is read).
    fn header_bytes(&mut self) -> Result<[u8; RECORD_HEADER_LEN], FormatError> {
        let pos = self.pos;
        let truncated = self.truncated();
        match &mut self.input {
            Input::Slice(bytes) => bytes[pos..]
                .get(..RECORD_HEADER_LEN)
                .map(|h| h.try_into().expect("the header's length"))
                .ok_or(truncated),
            Input::Stream { read, len, header, failed } => {
                if let Some(stored) = header {
                    return Ok(*stored);
                }
                let mut stored = [0; RECORD_HEADER_LEN];
                let left = len.saturating_sub(pos as u64);
                if left < RECORD_HEADER_LEN as u64 || !read_fully(*read, &mut stored, failed) {
                    return Err(truncated);
                }
                *header = Some(stored);
                Ok(stored)
            }
        }
    }

    /// Reads the header of the next record, checking its kind; does not advance.
    fn record_header(&mut self) -> Result<RecordHeader, FormatError> {
        let header = self.header_bytes()?;
        let compressed = self.version >= 4 && header[0] & COMPRESSED != 0;
        let kind_byte = if compressed { header[0] & !COMPRESSED } else { header[0] };
        let Some(kind) = RecordKind::from_byte(kind_byte) else {
            return Err(FormatError::UnknownRecordKind {
                record: self.record,
                offset: self.pos as u64,
                kind: header[0],
            });
        };
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let stored_crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
        // A length beyond the address space is certainly beyond the input.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        Ok(RecordHeader { kind, compressed, len, stored_crc })
    }

    /// Reads the next record: framing, checksum, order.
    fn next_record(&mut self) -> Result<RawRecord<'a>, FormatError> {
        let header = self.record_header()?;
        let stored_header = self.header_bytes()?;
        let start = self.pos;
        let truncated = self.truncated();
        let payload: Cow<'a, [u8]> = match &mut self.input {
            Input::Slice(bytes) => {
                let bytes: &'a [u8] = bytes;
                let body = &bytes[start + RECORD_HEADER_LEN..];
                if body.len() < header.len {
                    return Err(truncated);
                }
                Cow::Borrowed(&body[..header.len])
            }
            Input::Stream { read, len, header: kept, failed } => {
                // Refused before anything is allocated for a length the stream cannot hold.
                let left = len.saturating_sub((start + RECORD_HEADER_LEN) as u64);
                if left < header.len as u64 {
                    return Err(truncated);
                }
                let mut payload = vec![0; header.len];
                if !read_fully(*read, &mut payload, failed) {
                    return Err(truncated);
                }
                *kept = None;
                Cow::Owned(payload)
            }
        };
        let computed = record_crc(&stored_header[..5], &payload);
        if computed != header.stored_crc {
            return Err(FormatError::ChecksumMismatch {
                record: self.record,
                kind: header.kind,
                offset: start as u64,
                stored: header.stored_crc,
                computed,
            });
        }
        if !header.kind.may_follow(self.previous) {
            return Err(FormatError::OutOfOrder {
                record: self.record,
                kind: header.kind,
                previous: self.previous,
            });
        }
        let payload = if header.compressed {
            Cow::Owned(decompress(self.record, header.kind, &payload)?)
        } else {
            payload
        };
        let raw = RawRecord { record: self.record, kind: header.kind, payload };
        self.pos = start + RECORD_HEADER_LEN + header.len;
        self.record += 1;
        self.previous = Some(header.kind);
        Ok(raw)
    }

    /// Reads the first record, which must be the manifest, and the systems its ids index
    /// (version 2; none in version 1) and its bases (version 5; none before).
    fn manifest(&mut self) -> Result<ManifestRead, FormatError> {
        // `next_record` accepts only a manifest as the first record.
        let raw = self.next_record()?;
        if self.version == 1 {
            let manifest = raw.decode()?;
            let (systems, bases, runs) = (Vec::new(), Vec::new(), Vec::new());
            return Ok(ManifestRead { manifest, systems, bases, runs });
        }
        let manifest: ManifestRaw = raw.decode()?;
        let read = compact::read_manifest(manifest).map_err(|e| raw.payload_error(e))?;
        if self.version < STATE_RUNS_VERSION && !read.bases.is_empty() {
            return Err(raw.payload_error(format!(
                "a version {} manifest names bases (only versions 5 and 7 do)",
                self.version
            )));
        }
        if self.version < INCREMENTAL_VERSION && !read.runs.is_empty() {
            return Err(raw.payload_error(format!(
                "a version {} manifest has actor runs (only version 7 does)",
                self.version
            )));
        }
        if !read.bases.windows(2).all(|w| w[0] < w[1]) {
            return Err(raw.payload_error("the bases are not in ascending order"));
        }
        let id = read.manifest.id;
        if let Some((_, run)) = read
            .runs
            .iter()
            .find(|(_, run)| run.home >= id || read.bases.binary_search(&run.home).is_err())
        {
            return Err(raw.payload_error(format!(
                "a run refers to checkpoint {}, not an earlier one among its bases",
                run.home
            )));
        }
        Ok(read)
    }

    /// Checks that nothing follows the end record (for a stream, from its length: what
    /// follows is not read).
    fn finish(&self) -> Result<(), FormatError> {
        let len = self.input.len().saturating_sub(self.pos as u64);
        if len == 0 {
            Ok(())
        } else {
            Err(FormatError::TrailingBytes { offset: self.pos as u64, len })
        }
    }
}

impl RawRecord<'_> {
    /// A payload error about this record.
    fn payload_error(&self, reason: impl Into<String>) -> FormatError {
        FormatError::Payload { record: self.record, kind: self.kind, reason: reason.into() }
    }

    /// Decodes the payload as `T`, which must use all of it. MessagePack structs read from
    /// maps with field names (version 1, the end record) and from arrays (version 2) alike.
    fn decode<T: DeserializeOwned>(&self) -> Result<T, FormatError> {
        let payload_error = |reason: String| self.payload_error(reason);
        let mut de = rmp_serde::Deserializer::new(Cursor::new(&*self.payload));
        de.set_max_depth(MAX_NESTING);
        let value = T::deserialize(&mut de).map_err(|err| payload_error(err.to_string()))?;
        let used = de.position();
        let len = self.payload.len() as u64;
        if used != len {
            return Err(payload_error(format!("{} bytes left over", len.saturating_sub(used))));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_order() {
        use RecordKind::{End, InFlight, Manifest, State};
        assert!(Manifest.may_follow(None));
        assert!(!State.may_follow(None));
        assert!(End.may_follow(Some(Manifest)));
        assert!(InFlight.may_follow(Some(State)));
        assert!(!State.may_follow(Some(InFlight)));
        assert!(!Manifest.may_follow(Some(State)));
        assert!(!End.may_follow(Some(End)));
    }

    #[test]
    fn kind_bytes_round_trip() {
        for kind in [RecordKind::Manifest, RecordKind::State, RecordKind::InFlight, RecordKind::End]
        {
            assert_eq!(RecordKind::from_byte(kind.byte()), Some(kind));
        }
        assert_eq!(RecordKind::from_byte(0), None);
        assert_eq!(RecordKind::from_byte(5), None);
    }

    #[test]
    fn the_encoder_writes_encode_bytes_piece_by_piece() {
        use crate::checkpoint::model::{ActorEntry, NodeEntry, SpawnCapacity, SpawnRestart};
        use crate::{CheckpointId, Epoch, SystemId};
        let actors: Vec<ActorId> = (1..=40).map(|seq| ActorId::new(SystemId(9), seq)).collect();
        let checkpoint = Checkpoint {
            manifest: Manifest {
                id: CheckpointId(3),
                epoch: Epoch(5),
                created_unix_ms: 1,
                nodes: vec![NodeEntry::new("a", None)],
                actors: actors
                    .iter()
                    .map(|&id| ActorEntry {
                        id,
                        type_name: "t".into(),
                        name: None,
                        node: "a".into(),
                        parent: None,
                        watchers: vec![],
                        watching: vec![],
                        state_version: 1,
                        capacity: SpawnCapacity::SystemDefault,
                        restart: SpawnRestart::Never,
                    })
                    .collect(),
            },
            // 40 states of 64 KiB: about ten state records.
            states: actors
                .iter()
                .rev()
                .map(|&id| StateRecord {
                    id,
                    state: vec![id.seq() as u8; 64 * 1024],
                    timers: vec![],
                })
                .collect(),
            in_flight: (0..3)
                .map(|i| InFlightRecord {
                    to: actors[i],
                    from: None,
                    epoch: Epoch(4),
                    ask: false,
                    payload: vec![7; 300 * 1024].into(),
                })
                .collect(),
        };
        checkpoint.validate().unwrap();
        let mut encoder = Encoder::of_valid(&checkpoint, Compression::None, None);
        let mut pieces = Vec::new();
        loop {
            let mut piece = Vec::new();
            if !encoder.next_into(&mut piece).unwrap() {
                assert!(piece.is_empty());
                break;
            }
            pieces.push(piece);
        }
        assert!(!encoder.next_into(&mut Vec::new()).unwrap(), "done stays done");
        // Header and manifest, at least two state records, three in-flight records (each
        // message is larger than a batch), the end record.
        assert!(pieces.len() >= 7, "{} pieces", pieces.len());
        assert_eq!(decode_manifest(&pieces[0]).unwrap(), checkpoint.manifest);
        for piece in &pieces[1..pieces.len() - 1] {
            assert!(piece.len() < BATCH_BYTES + 300 * 1024 + 64, "{}", piece.len());
        }
        let whole = pieces.concat();
        assert_eq!(whole, encode(&checkpoint).unwrap());
        assert_eq!(decode(&whole).unwrap(), checkpoint);
    }

    #[test]
    fn crc32c_known_vector() {
        // The check value of CRC-32C (Castagnoli).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(record_crc(b"1234", b"56789"), 0xe306_9283);
    }
}
