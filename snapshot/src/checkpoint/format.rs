//! The checkpoint file format: bytes in, bytes out, usable by any store.
//!
//! ```text
//! file    = header record*
//! header  = magic "AMBERCKP" (8 bytes) | format version (u32 LE)
//! record  = kind (u8) | payload length (u32 LE) | CRC32C (u32 LE) | payload
//! ```
//!
//! The CRC32C covers the kind byte, the length and the payload, so a flipped bit anywhere in a
//! record is caught. Payloads are MessagePack with named fields. The records are, in this
//! order: one manifest (kind 1), one state per actor (kind 2), one per in-flight message (kind
//! 3, in re-enqueueing order), and an end record (kind 4) with the number of state and
//! in-flight records, so that a file cut at a record boundary is rejected too. Nothing follows
//! the end record.
//!
//! Decoding checks each length against the bytes that remain before using it, so a lying
//! length field cannot make it allocate; it never panics.

use std::fmt;
use std::io::Cursor;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::error::FormatError;
use crate::checkpoint::model::{Checkpoint, Manifest};

/// The bytes every checkpoint starts with.
const MAGIC: &[u8; 8] = b"AMBERCKP";

/// The format version [`encode`] writes and [`decode`] reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

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
    /// One actor's [`StateRecord`](crate::StateRecord).
    State,
    /// One [`InFlightRecord`](crate::InFlightRecord).
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
///         nodes: vec![NodeEntry { node: "local".into(), address: None }],
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
///     in_flight: vec![],
/// };
/// let bytes = encode(&checkpoint)?;
/// assert_eq!(decode(&bytes)?, checkpoint);
/// # Ok::<(), amber_snapshot::FormatError>(())
/// ```
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, FormatError> {
    checkpoint.validate()?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
    let mut record = 0;
    push_record(&mut out, &mut record, RecordKind::Manifest, &checkpoint.manifest)?;
    for state in &checkpoint.states {
        push_record(&mut out, &mut record, RecordKind::State, state)?;
    }
    for message in &checkpoint.in_flight {
        push_record(&mut out, &mut record, RecordKind::InFlight, message)?;
    }
    let end = EndRecord {
        states: checkpoint.states.len() as u64,
        in_flight: checkpoint.in_flight.len() as u64,
    };
    push_record(&mut out, &mut record, RecordKind::End, &end)?;
    Ok(out)
}

fn push_record<T: Serialize>(
    out: &mut Vec<u8>,
    record: &mut u64,
    kind: RecordKind,
    value: &T,
) -> Result<(), FormatError> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    rmp_serde::encode::write_named(out, value).map_err(|err| FormatError::Encode {
        record: *record,
        kind,
        reason: err.to_string(),
    })?;
    let payload_len = out.len() - start - RECORD_HEADER_LEN;
    let len = u32::try_from(payload_len).map_err(|_| FormatError::RecordTooLarge {
        record: *record,
        kind,
        len: payload_len as u64,
    })?;
    out[start] = kind.byte();
    out[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    let crc = record_crc(&out[start..start + 5], &out[start + RECORD_HEADER_LEN..]);
    out[start + 5..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    *record += 1;
    Ok(())
}

/// The checksum of a record: CRC32C over its kind and length bytes, then its payload.
fn record_crc(kind_and_len: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(kind_and_len), payload)
}

/// Decodes a checkpoint written by [`encode`], checking every record's checksum, the record
/// order and counts, and the checkpoint's [consistency](Checkpoint::validate).
///
/// Never panics, whatever the input.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
    let mut reader = Reader::new(bytes)?;
    let manifest = reader.manifest()?;
    let mut states = Vec::new();
    let mut in_flight = Vec::new();
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
            RecordKind::State => states.push(raw.decode()?),
            RecordKind::InFlight => in_flight.push(raw.decode()?),
            RecordKind::End => {
                let end: EndRecord = raw.decode()?;
                check_count(RecordKind::State, end.states, states.len())?;
                check_count(RecordKind::InFlight, end.in_flight, in_flight.len())?;
                reader.finish()?;
                break;
            }
        }
    }
    let checkpoint = Checkpoint { manifest, states, in_flight };
    checkpoint.validate()?;
    Ok(checkpoint)
}

/// Decodes only the manifest, from the start of a checkpoint.
///
/// `bytes` need only hold the file header and the manifest record; the rest of the checkpoint
/// is neither read nor checked. A store uses this to list checkpoints cheaply.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, FormatError> {
    Reader::new(bytes)?.manifest()
}

/// How many bytes from the start of a checkpoint [`decode_manifest`] needs, given at least the
/// first [`MANIFEST_HEADER_LEN`] bytes (fewer: the checkpoint is truncated).
pub(crate) fn manifest_len(prefix: &[u8]) -> Result<usize, FormatError> {
    let reader = Reader::new(prefix)?;
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

/// Walks the records of a checkpoint, checking framing, checksums and order.
struct Reader<'a> {
    bytes: &'a [u8],
    /// Where the next record starts.
    pos: usize,
    /// The number of the next record.
    record: u64,
    /// The kind of the last record read.
    previous: Option<RecordKind>,
}

/// A record's header as stored.
struct RecordHeader {
    kind: RecordKind,
    len: usize,
    stored_crc: u32,
}

/// A record whose framing and checksum are good.
struct RawRecord<'a> {
    record: u64,
    kind: RecordKind,
    payload: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the file header.
    fn new(bytes: &'a [u8]) -> Result<Reader<'a>, FormatError> {
        let seen = bytes.len().min(MAGIC.len());
        if bytes[..seen] != MAGIC[..seen] {
            return Err(FormatError::BadMagic);
        }
        let Some(version) = bytes.get(MAGIC.len()..FILE_HEADER_LEN) else {
            return Err(FormatError::Truncated { offset: bytes.len() as u64, record: None });
        };
        let found = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
        if found != CHECKPOINT_FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found,
                supported: CHECKPOINT_FORMAT_VERSION,
            });
        }
        Ok(Reader { bytes, pos: FILE_HEADER_LEN, record: 0, previous: None })
    }

    fn truncated(&self) -> FormatError {
        FormatError::Truncated { offset: self.bytes.len() as u64, record: Some(self.record) }
    }

    /// Reads the header of the next record, checking its kind; does not advance.
    fn record_header(&self) -> Result<RecordHeader, FormatError> {
        let rest = &self.bytes[self.pos..];
        let Some(header) = rest.get(..RECORD_HEADER_LEN) else {
            return Err(self.truncated());
        };
        let Some(kind) = RecordKind::from_byte(header[0]) else {
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
        Ok(RecordHeader { kind, len, stored_crc })
    }

    /// Reads the next record: framing, checksum, order.
    fn next_record(&mut self) -> Result<RawRecord<'a>, FormatError> {
        let header = self.record_header()?;
        let start = self.pos;
        let body = &self.bytes[start + RECORD_HEADER_LEN..];
        if body.len() < header.len {
            return Err(self.truncated());
        }
        let payload = &body[..header.len];
        let computed = record_crc(&self.bytes[start..start + 5], payload);
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
        let raw = RawRecord { record: self.record, kind: header.kind, payload };
        self.pos = start + RECORD_HEADER_LEN + header.len;
        self.record += 1;
        self.previous = Some(header.kind);
        Ok(raw)
    }

    /// Reads the first record, which must be the manifest.
    fn manifest(&mut self) -> Result<Manifest, FormatError> {
        // `next_record` accepts only a manifest as the first record.
        self.next_record()?.decode()
    }

    /// Checks that nothing follows the end record.
    fn finish(&self) -> Result<(), FormatError> {
        let len = self.bytes.len() - self.pos;
        if len == 0 {
            Ok(())
        } else {
            Err(FormatError::TrailingBytes { offset: self.pos as u64, len: len as u64 })
        }
    }
}

impl RawRecord<'_> {
    /// Decodes the payload as `T`, which must use all of it.
    fn decode<T: DeserializeOwned>(&self) -> Result<T, FormatError> {
        let payload_error =
            |reason: String| FormatError::Payload { record: self.record, kind: self.kind, reason };
        let mut de = rmp_serde::Deserializer::new(Cursor::new(self.payload));
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
    fn crc32c_known_vector() {
        // The check value of CRC-32C (Castagnoli).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(record_crc(b"1234", b"56789"), 0xe306_9283);
    }
}
