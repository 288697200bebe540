//! What the snapshot engines of different nodes say to each other. The cluster carries these
//! as opaque bytes ([`RemoteDirectory::send_snapshot`](crate::remote::RemoteDirectory::send_snapshot)
//! out, [`Host::on_snapshot_message`](crate::remote::Host::on_snapshot_message) in),
//! in order among themselves; they may overtake data messages sent to the same node before
//! them, never those sent after.

use std::collections::HashMap;

use amber_snapshot::{
    ActorEntry, ActorId, Epoch, InFlight, InFlightRecord, InFlightRun, NodeCommand, NodeEntry,
    NodeReport, Refusal, SpawnCapacity, SpawnRestart, StateRecord, SystemId, TimerEntry,
};
use serde::{Deserialize, Serialize};

use super::backlog_wire::{BacklogIn, BacklogOut};
use super::error::{CaptureProblem, PartError, Taint};
use crate::CodecError;

/// The largest piece of a node's part sent in one message (unless one record is larger):
/// well under any sane frame limit, and small enough that the coordinator reads the first
/// pieces while the later ones are still being written and carried.
pub(crate) const PART_CHUNK: usize = 256 << 10;

/// One snapshot message between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// From a coordinator to a node.
    Command(NodeCommand<String>),
    /// From a node to the coordinator it follows.
    Report(NodeReport<String>),
    /// A node refuses to follow the sending coordinator for `epoch`.
    Reject { epoch: Epoch, reason: Refusal<String> },
    /// A piece of a node's [`NodePart`] of completed snapshot `epoch`, sent to its
    /// coordinator in order; `last` ends it. The part is a stream of records (see
    /// [`PartReader`]); `records` of them end in this piece (a record larger than a piece
    /// spans several).
    Part {
        epoch: Epoch,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        records: u32,
        last: bool,
    },
    /// A node refuses snapshot `epoch` because it holds a restore whose actors have not
    /// started yet ([`AbortReason::RestorePending`](amber_snapshot::AbortReason)).
    RestorePending { epoch: Epoch },
}

impl Wire {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data without maps keyed by non-strings: encoding cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Wire, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| CodecError::new(e.to_string()))
    }
}

/// One node's share of a completed snapshot: its actors, their states and the messages in
/// flight to them, per receiver in order (backlog at the cut, then recorded arrivals).
#[derive(Debug, PartialEq)]
pub(crate) struct NodePart {
    pub(crate) node: NodeEntry,
    pub(crate) actors: Vec<ActorEntry>,
    pub(crate) states: Vec<StateRecord>,
    pub(crate) in_flight: InFlight,
    /// Why the cut is not consistent, if it is not ([`SnapshotError::Inconsistent`]).
    ///
    /// [`SnapshotError::Inconsistent`]: crate::SnapshotError::Inconsistent
    pub(crate) taints: Vec<Taint>,
    /// What could not be captured ([`SnapshotError::Capture`]).
    ///
    /// [`SnapshotError::Capture`]: crate::SnapshotError::Capture
    pub(crate) problems: Vec<CaptureProblem>,
}

impl Default for NodePart {
    fn default() -> Self {
        NodePart {
            node: NodeEntry::new(String::new(), None),
            actors: Vec::new(),
            states: Vec::new(),
            in_flight: InFlight::new(),
            taints: Vec::new(),
            problems: Vec::new(),
        }
    }
}

// A part travels as a stream of records, each one MessagePack value: the node first (with
// the counts that follow), then every actor (with its state when the states line up with
// the actors, as they do), the messages in flight in order, taints, problems, and an end
// record with the number of records before it. What repeats from actor to actor is sent
// once: the node's name, the type names (a `Type` record before the first actor of each
// type) and the system of the actors' ids. Pieces end on record boundaries (but for a
// record larger than a piece), so the coordinator reads each piece as it arrives.

/// A record of a part, as written (borrowing from the part).
#[derive(Serialize)]
enum RecordOut<'a> {
    /// The node, and how many actors, states and messages in flight follow (to size the
    /// vectors they go to).
    Node(&'a NodeEntry, u64, u64, u64),
    Type(&'a str),
    Actor(ActorOut<'a>),
    State(&'a StateRecord),
    InFlight(&'a InFlightRecord),
    Taint(&'a Taint),
    Problem(&'a CaptureProblem),
    /// The last record: how many came before it.
    End(u64),
    /// One actor's backlog at its cut, packed (see `backlog_wire`: no record made of each
    /// message, none read as one, nothing per message through serde: a loaded node's part
    /// holds tens of thousands).
    Backlog(BacklogOut<'a>),
}

/// A record of a part, as read: [`RecordOut`]'s twin.
#[derive(Deserialize)]
enum RecordIn {
    Node(NodeEntry, u64, u64, u64),
    Type(String),
    Actor(ActorIn),
    State(StateRecord),
    InFlight(InFlightRecord),
    Taint(Taint),
    Problem(CaptureProblem),
    End(u64),
    Backlog(BacklogIn),
}

/// An [`ActorEntry`] and, if it has one in the part, its state.
#[derive(Serialize)]
struct ActorOut<'a> {
    /// The system of its id; `None`: the previous actor's.
    system: Option<SystemId>,
    seq: u64,
    /// Index of its type name among the part's `Type` records so far.
    type_index: u32,
    name: &'a Option<String>,
    /// The node it ran on; `None`: the part's node.
    node: Option<&'a str>,
    parent: &'a Option<ActorId>,
    watchers: &'a [ActorId],
    watching: &'a [ActorId],
    state_version: u32,
    state: Option<StateOut<'a>>,
    capacity: SpawnCapacity,
    restart: SpawnRestart,
}

#[derive(Deserialize)]
struct ActorIn {
    system: Option<SystemId>,
    seq: u64,
    type_index: u32,
    name: Option<String>,
    node: Option<String>,
    parent: Option<ActorId>,
    watchers: Vec<ActorId>,
    watching: Vec<ActorId>,
    state_version: u32,
    state: Option<StateIn>,
    #[serde(default)]
    capacity: SpawnCapacity,
    #[serde(default)]
    restart: SpawnRestart,
}

/// A [`StateRecord`] without its id (the actor's).
#[derive(Serialize)]
struct StateOut<'a> {
    #[serde(with = "serde_bytes")]
    state: &'a [u8],
    timers: &'a [TimerEntry],
}

#[derive(Deserialize)]
struct StateIn {
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
    timers: Vec<TimerEntry>,
}

impl NodePart {
    /// Writes the part as encoded [`Wire::Part`] messages of at most [`PART_CHUNK`] bytes of
    /// records each (more only for a single larger record), handing each to `send` as soon
    /// as it is full, the last one flagged. Stops at the first error of `send`.
    pub(crate) fn write_pieces<E>(
        &self,
        epoch: Epoch,
        send: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), PiecesError<E>> {
        let buf = Vec::with_capacity(PART_CHUNK);
        let mut w = PieceWriter { epoch, buf, records: 0, written: 0, send };
        let [actors, states, in_flight] =
            [self.actors.len(), self.states.len(), self.in_flight.len()].map(|n| n as u64);
        w.record(&RecordOut::Node(&self.node, actors, states, in_flight))?;
        let mut types: HashMap<&str, u32> = HashMap::new();
        let mut system = None;
        let mut states = self.states.iter().peekable();
        for entry in &self.actors {
            let type_index = match types.get(entry.type_name.as_str()) {
                Some(&i) => i,
                None => {
                    let i = types.len() as u32;
                    types.insert(&entry.type_name, i);
                    w.record(&RecordOut::Type(&entry.type_name))?;
                    i
                }
            };
            let id = entry.id;
            let state = states
                .next_if(|s| s.id == id)
                .map(|s| StateOut { state: &s.state, timers: &s.timers });
            let actor = ActorOut {
                system: (system != Some(id.system())).then_some(id.system()),
                seq: id.seq(),
                type_index,
                name: &entry.name,
                node: (entry.node != self.node.node).then_some(entry.node.as_str()),
                parent: &entry.parent,
                watchers: &entry.watchers,
                watching: &entry.watching,
                state_version: entry.state_version,
                state,
                capacity: entry.capacity,
                restart: entry.restart,
            };
            system = Some(id.system());
            w.record(&RecordOut::Actor(actor))?;
        }
        for state in states {
            w.record(&RecordOut::State(state))?;
        }
        for run in self.in_flight.runs() {
            match run {
                InFlightRun::Records(records) => {
                    for record in records {
                        w.record(&RecordOut::InFlight(record))?;
                    }
                }
                InFlightRun::Backlog(backlog) => {
                    w.record(&RecordOut::Backlog(BacklogOut(backlog)))?
                }
            }
        }
        for taint in &self.taints {
            w.record(&RecordOut::Taint(taint))?;
        }
        for problem in &self.problems {
            w.record(&RecordOut::Problem(problem))?;
        }
        w.record(&RecordOut::End(w.written))?;
        w.flush(true)
    }

    /// The part as encoded pieces (see [`write_pieces`](Self::write_pieces)).
    #[cfg(test)]
    pub(crate) fn pieces(
        &self,
        epoch: Epoch,
    ) -> Result<Vec<Vec<u8>>, PiecesError<std::convert::Infallible>> {
        let mut pieces = Vec::new();
        self.write_pieces(epoch, |p| {
            pieces.push(p);
            Ok::<(), std::convert::Infallible>(())
        })?;
        Ok(pieces)
    }
}

/// Why a part's pieces were not all written.
#[derive(Debug)]
pub(crate) enum PiecesError<E> {
    /// A record does not encode.
    Encode(CodecError),
    /// Handing a piece on failed.
    Send(E),
}

impl<E: std::fmt::Display> std::fmt::Display for PiecesError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PiecesError::Encode(e) => write!(f, "does not encode: {e}"),
            PiecesError::Send(e) => write!(f, "not sent: {e}"),
        }
    }
}

struct PieceWriter<F> {
    epoch: Epoch,
    /// Records not yet sent.
    buf: Vec<u8>,
    /// Records ending in `buf`.
    records: u32,
    /// Records written so far.
    written: u64,
    send: F,
}

impl<F, E> PieceWriter<F>
where
    F: FnMut(Vec<u8>) -> Result<(), E>,
{
    fn record(&mut self, record: &RecordOut<'_>) -> Result<(), PiecesError<E>> {
        let start = self.buf.len();
        rmp_serde::encode::write(&mut self.buf, record)
            .map_err(|e| PiecesError::Encode(CodecError::new(e.to_string())))?;
        if self.buf.len() > PART_CHUNK && start > 0 {
            // It does not fit: it starts the next piece.
            let record = self.buf.split_off(start);
            self.flush(false)?;
            self.buf = record;
        }
        while self.buf.len() > PART_CHUNK {
            // One record larger than a piece: its bytes span several.
            let rest = self.buf.split_off(PART_CHUNK);
            self.flush(false)?;
            self.buf = rest;
        }
        self.records += 1;
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self, last: bool) -> Result<(), PiecesError<E>> {
        let piece = PieceRef { epoch: self.epoch, bytes: &self.buf, records: self.records, last };
        let bytes = rmp_serde::to_vec(&piece)
            .map_err(|e| PiecesError::Encode(CodecError::new(e.to_string())))?;
        self.buf.clear();
        self.records = 0;
        (self.send)(bytes).map_err(PiecesError::Send)
    }
}

/// [`Wire::Part`] borrowing its bytes: encodes exactly as the owned message does (checked
/// by a test), without copying the piece's records first.
struct PieceRef<'a> {
    epoch: Epoch,
    bytes: &'a [u8],
    records: u32,
    last: bool,
}

impl Serialize for PieceRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStructVariant;
        // `Wire::Part` is the fourth variant of `Wire`.
        let mut part = serializer.serialize_struct_variant("Wire", 3, "Part", 4)?;
        part.serialize_field("epoch", &self.epoch)?;
        part.serialize_field("bytes", serde_bytes::Bytes::new(self.bytes))?;
        part.serialize_field("records", &self.records)?;
        part.serialize_field("last", &self.last)?;
        part.end()
    }
}

/// Rebuilds a node's [`NodePart`] from its pieces, one piece at a time as they arrive.
#[derive(Debug, Default)]
pub(crate) struct PartReader {
    part: NodePart,
    /// The messages in flight read so far: one chunk, sized as the `Node` record announced.
    in_flight: Vec<InFlightRecord>,
    /// Whether the `Node` record was read (it comes first).
    node: bool,
    types: Vec<String>,
    /// The system of the last actor's id.
    system: Option<SystemId>,
    /// The start of a record that continues in the next piece.
    carry: Vec<u8>,
    /// Records read so far.
    read: u64,
    /// The `End` record was read.
    end: bool,
}

impl PartReader {
    /// Reads the `records` records that end in `bytes` (the next piece), keeping what
    /// follows them for the next piece.
    pub(crate) fn piece(&mut self, bytes: Vec<u8>, records: u32) -> Result<(), PartError> {
        let bytes = if self.carry.is_empty() {
            bytes
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(&bytes);
            joined
        };
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes.as_slice()));
        for _ in 0..records {
            let record = RecordIn::deserialize(&mut de)
                .map_err(|e| PartError::Record(CodecError::new(e.to_string())))?;
            self.read(record)?;
        }
        let read = usize::try_from(de.position()).unwrap_or(usize::MAX).min(bytes.len());
        self.carry = bytes[read..].to_vec();
        Ok(())
    }

    /// The part, once its last piece was read.
    pub(crate) fn finish(mut self) -> Result<NodePart, PartError> {
        if !self.carry.is_empty() {
            return Err(PartError::TrailingBytes(self.carry.len()));
        }
        if !self.end {
            return Err(PartError::Truncated);
        }
        self.part.in_flight.append_chunk(self.in_flight);
        Ok(self.part)
    }

    fn read(&mut self, record: RecordIn) -> Result<(), PartError> {
        if self.end {
            return Err(PartError::AfterEnd);
        }
        if !self.node && !matches!(record, RecordIn::Node(..)) {
            return Err(PartError::BeforeNode);
        }
        let before = self.read;
        self.read += 1;
        match record {
            RecordIn::Node(..) if self.node => return Err(PartError::SecondNode),
            RecordIn::Node(node, actors, states, in_flight) => {
                // Sized as announced, within reason (the records still have to come).
                let size = |n: u64| n.min(1 << 20) as usize;
                self.part.actors.reserve_exact(size(actors));
                self.part.states.reserve_exact(size(states));
                // Most come in backlogs, which bring their own buffers.
                self.in_flight.reserve_exact(size(in_flight).min(4096));
                self.part.node = node;
                self.node = true;
            }
            RecordIn::Type(name) => self.types.push(name),
            RecordIn::Actor(actor) => {
                let system = actor.system.or(self.system).ok_or(PartError::NoSystem)?;
                self.system = Some(system);
                let id = ActorId::new(system, actor.seq);
                let type_name = self
                    .types
                    .get(actor.type_index as usize)
                    .ok_or(PartError::UnknownType { actor: id, index: actor.type_index })?
                    .clone();
                self.part.actors.push(ActorEntry {
                    id,
                    type_name,
                    name: actor.name,
                    node: actor.node.unwrap_or_else(|| self.part.node.node.clone()),
                    parent: actor.parent,
                    watchers: actor.watchers,
                    watching: actor.watching,
                    state_version: actor.state_version,
                    capacity: actor.capacity,
                    restart: actor.restart,
                });
                if let Some(StateIn { state, timers }) = actor.state {
                    self.part.states.push(StateRecord { id, state, timers });
                }
            }
            RecordIn::State(state) => self.part.states.push(state),
            RecordIn::InFlight(record) => self.in_flight.push(record),
            RecordIn::Backlog(BacklogIn(backlog)) => {
                // After the records read before it, in order.
                self.part.in_flight.append_chunk(std::mem::take(&mut self.in_flight));
                self.part.in_flight.append_backlog(backlog);
            }
            RecordIn::Taint(taint) => self.part.taints.push(taint),
            RecordIn::Problem(problem) => self.part.problems.push(problem),
            RecordIn::End(n) if n == before => self.end = true,
            RecordIn::End(n) => return Err(PartError::Count { read: before, sent: n }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use amber_snapshot::{ActorId, StateRecord, SystemId};

    use super::*;

    fn entry(system: u64, seq: u64, type_name: &str, node: &str) -> ActorEntry {
        ActorEntry {
            id: ActorId::new(SystemId(system), seq),
            type_name: type_name.to_owned(),
            name: seq.is_multiple_of(3).then(|| format!("cell-{seq}")),
            node: node.to_owned(),
            parent: seq.is_multiple_of(2).then(|| ActorId::new(SystemId(system), 1)),
            watchers: if seq.is_multiple_of(5) {
                vec![ActorId::new(SystemId(9), seq)]
            } else {
                Vec::new()
            },
            watching: if seq.is_multiple_of(4) {
                vec![ActorId::new(SystemId(8), seq + 1)]
            } else {
                Vec::new()
            },
            state_version: (seq % 4) as u32,
            capacity: match seq % 3 {
                0 => SpawnCapacity::Unbounded,
                1 => SpawnCapacity::Bounded(seq),
                _ => SpawnCapacity::SystemDefault,
            },
            restart: if seq.is_multiple_of(2) {
                SpawnRestart::OnPanic {
                    max_restarts: seq as u32,
                    within: Duration::from_millis(seq),
                }
            } else {
                SpawnRestart::Never
            },
        }
    }

    fn state(id: ActorId, len: usize) -> StateRecord {
        let timers = if id.seq().is_multiple_of(7) {
            vec![TimerEntry { timer: 1, remaining_us: 5, period_us: Some(9), msg: vec![1, 2] }]
        } else {
            Vec::new()
        };
        StateRecord { id, state: vec![id.seq() as u8; len], timers }
    }

    /// `actors` actors (some from another system or node, of a few types), each with a
    /// state of `len` bytes, and messages in flight to the first three.
    fn part(actors: u64, len: usize) -> NodePart {
        let types = ["test.Cell", "test.Other", "test.Third"];
        let actors: Vec<ActorEntry> = (0..actors)
            .map(|i| {
                let system = if i % 10 == 3 { 8 } else { 7 };
                let node = if i % 50 == 7 { "c" } else { "b" };
                entry(system, i, types[(i / 4 % 3) as usize], node)
            })
            .collect();
        let states = actors.iter().map(|a| state(a.id, len)).collect();
        let record = |a: &ActorEntry| InFlightRecord {
            to: a.id,
            from: None,
            epoch: Epoch(2),
            ask: false,
            payload: vec![3; 4].into(),
        };
        // Records, then backlogs (every third actor's, of 0 to 6 messages of all kinds),
        // then records recorded late: the order a part keeps them in.
        let mut in_flight: InFlight = actors.iter().take(3).map(record).collect();
        for (i, a) in actors.iter().enumerate().skip(3).step_by(3) {
            let mut backlog = amber_snapshot::Backlog::builder(a.id);
            for m in 0..i % 7 {
                let from = (m % 2 == 1).then(|| ActorId::new(SystemId(8 + m as u64), i as u64));
                backlog
                    .push_with(from, Epoch(m as u64), m % 3 == 0, |out| {
                        out.extend(std::iter::repeat_n(m as u8, (i + m) % 300));
                        Ok::<(), ()>(())
                    })
                    .unwrap();
            }
            in_flight.append_backlog(backlog.finish());
        }
        for a in actors.iter().rev().take(2) {
            in_flight.push(record(a));
        }
        let mut node = NodeEntry::new("b", Some("127.0.0.1:1".to_owned()));
        node.annotations.insert("sharding:test.Cell".to_owned(), "16".to_owned());
        NodePart {
            node,
            actors,
            states,
            in_flight,
            taints: vec![Taint::AskReplyAfterCut {
                asker: ActorId::new(SystemId(7), 1),
                responder: ActorId::new(SystemId(8), 2),
            }],
            problems: vec![
                CaptureProblem::StateEncode {
                    actor: ActorId::new(SystemId(7), 3),
                    type_name: "test.Cell".to_owned(),
                    error: CodecError::new("no".to_owned()),
                },
                CaptureProblem::NoCuts { node: "b".to_owned(), epoch: Epoch(2) },
            ],
        }
    }

    /// The pieces decoded as any snapshot message is, then read as the coordinator does.
    fn read(pieces: Vec<Vec<u8>>, epoch: Epoch) -> Result<NodePart, PartError> {
        let mut reader = PartReader::default();
        let n = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            match Wire::decode(&piece).expect("a piece decodes as a message") {
                Wire::Part { epoch: e, bytes, records, last } => {
                    assert_eq!(e, epoch);
                    assert_eq!(last, i + 1 == n, "only the last piece is last");
                    reader.piece(bytes, records)?;
                }
                other => panic!("not a piece: {other:?}"),
            }
        }
        reader.finish()
    }

    #[test]
    fn a_borrowed_piece_encodes_as_the_owned_message() {
        let bytes = vec![1, 2, 3, 200];
        let owned = Wire::Part { epoch: Epoch(5), bytes: bytes.clone(), records: 2, last: true };
        let borrowed = PieceRef { epoch: Epoch(5), bytes: &bytes, records: 2, last: true };
        assert_eq!(rmp_serde::to_vec(&borrowed).unwrap(), owned.encode());
    }

    #[test]
    fn a_part_survives_its_pieces() {
        for (actors, len) in [(0, 0), (3, 10), (20_000, 40)] {
            let part = part(actors, len);
            let pieces = part.pieces(Epoch(9)).expect("encodes");
            assert!(pieces.iter().all(|p| p.len() <= PART_CHUNK + 64), "pieces stay small");
            if actors == 20_000 {
                assert!(pieces.len() > 2, "a large part takes several pieces");
            }
            assert_eq!(read(pieces, Epoch(9)).expect("reads"), part);
        }
    }

    #[test]
    fn records_larger_than_a_piece_span_pieces() {
        let mut part = part(6, 10);
        part.states[1].state = vec![5; 3 * PART_CHUNK + 17];
        part.states[4].state = vec![6; PART_CHUNK];
        let pieces = part.pieces(Epoch(3)).expect("encodes");
        assert!(pieces.len() >= 5);
        assert_eq!(read(pieces, Epoch(3)).expect("reads"), part);
    }

    #[test]
    fn states_that_do_not_line_up_with_the_actors_travel_on_their_own() {
        let mut part = part(10, 3);
        part.states.remove(4); // its capture failed
        part.states.swap(0, 1);
        part.states.push(state(ActorId::new(SystemId(1), 99), 2));
        let pieces = part.pieces(Epoch(3)).expect("encodes");
        let back = read(pieces, Epoch(3)).expect("reads");
        let mut states = back.states.clone();
        let mut expected = part.states.clone();
        states.sort_by_key(|s| s.id);
        expected.sort_by_key(|s| s.id);
        assert_eq!(states, expected);
        assert_eq!(back.actors, part.actors);
        assert_eq!(back.in_flight, part.in_flight);
    }

    #[test]
    fn a_damaged_part_does_not_read() {
        let part = part(20_000, 10);
        let mut pieces = part.pieces(Epoch(3)).expect("encodes");
        assert!(pieces.len() > 2);
        // A piece lost: the records do not add up.
        let mut lost = pieces.clone();
        lost.remove(1);
        assert!(read(lost, Epoch(3)).is_err());
        // Garbage instead of the records.
        let last = pieces.len() - 1;
        let garbage = Wire::Part { epoch: Epoch(3), bytes: vec![0xc1; 8], records: 1, last: true };
        pieces[last] = garbage.encode();
        assert!(read(pieces, Epoch(3)).is_err());
        // Nothing at all.
        let empty = Wire::Part { epoch: Epoch(3), bytes: Vec::new(), records: 0, last: true };
        assert_eq!(read(vec![empty.encode()], Epoch(3)), Err(PartError::Truncated));
    }

    /// Every byte of a part's records (backlogs among them) changed, one at a time, and every
    /// cut short: the reader returns (a part or an error), it never panics.
    #[test]
    fn a_part_with_any_byte_changed_or_cut_short_reads_or_fails_without_panicking() {
        let part = part(12, 3);
        let mut bytes = Vec::new();
        let mut records = 0;
        for piece in part.pieces(Epoch(4)).expect("encodes") {
            match Wire::decode(&piece).expect("a piece") {
                Wire::Part { bytes: b, records: r, .. } => {
                    bytes.extend(b);
                    records += r;
                }
                other => panic!("not a piece: {other:?}"),
            }
        }
        let attempt = |bytes: Vec<u8>| {
            let mut reader = PartReader::default();
            let _ = reader.piece(bytes, records).and_then(|()| reader.finish());
        };
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut changed = bytes.clone();
                changed[at] ^= flip;
                attempt(changed);
            }
            attempt(bytes[..at].to_vec());
        }
    }

    #[test]
    fn refusals_travel_typed_and_garbage_does_not_decode() {
        let refusals = [
            Refusal::AlreadySeen { epoch: Epoch(4) },
            Refusal::FollowsOther { coordinator: "a".to_owned(), epoch: Epoch(3) },
            Refusal::Finished { epoch: Epoch(3) },
            Refusal::TakingOther { coordinator: "c".to_owned(), epoch: Epoch(2) },
        ];
        for refusal in refusals {
            let sent = Wire::Reject { epoch: Epoch(3), reason: refusal.clone() };
            match Wire::decode(&sent.encode()) {
                Ok(Wire::Reject { epoch, reason }) => {
                    assert_eq!((epoch, reason), (Epoch(3), refusal))
                }
                other => panic!("not the refusal: {other:?}"),
            }
        }
        for garbage in [&[][..], &[0xc1], &[0x81, 0xa6, b'R', b'e', b'j', b'e', b'c', b't', 0x07]] {
            assert!(Wire::decode(garbage).is_err(), "{garbage:?}");
        }
    }
}
