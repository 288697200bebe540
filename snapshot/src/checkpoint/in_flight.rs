//! [`InFlight`]: a checkpoint's messages in flight, kept in the chunks they were captured in.

use std::fmt;
use std::iter::{FlatMap, FusedIterator};
use std::ops::{Index, IndexMut};

use super::backlog::{Backlog, InFlightMessage};
use super::model::InFlightRecord;
use crate::{ActorId, SystemId};

/// The messages in flight of a [`Checkpoint`](super::Checkpoint), in order: for each
/// receiver, in the order they are to be re-enqueued.
///
/// It reads like a `Vec<InFlightRecord>` (`len`, `iter`, `push`, indexing, `for` loops,
/// `collect`), but holds its records in chunks as they were put in: vectors of records, and
/// [`Backlog`]s, each actor's backlog as its cut captured it. Nothing is copied into one big
/// vector (a copy that took tens of milliseconds of every large snapshot, on its critical
/// path), and a backlog becomes records only when it is read as records: writing a
/// checkpoint, validating it and dropping it take `O(chunks)` allocations, not one per
/// message. Indexing walks the chunks: `O(chunks)`, meant for tests and tools; iterate for
/// everything else.
///
/// ```
/// use amber_snapshot::{ActorId, Epoch, InFlight, InFlightRecord, SystemId};
///
/// let to = ActorId::new(SystemId(1), 7);
/// let record = |n: u8| InFlightRecord { to, from: None, epoch: Epoch(1), ask: false, payload: vec![n].into() };
/// let mut in_flight = InFlight::from(vec![record(1), record(2)]);
/// in_flight.append_chunk(vec![record(3)]);
/// in_flight.push(record(4));
/// assert_eq!(in_flight.len(), 4);
/// assert_eq!(in_flight[2].payload, vec![3]);
/// let payloads: Vec<u8> = in_flight.iter().map(|r| r.payload[0]).collect();
/// assert_eq!(payloads, [1, 2, 3, 4]);
/// ```
#[derive(Clone, Default)]
pub struct InFlight {
    /// Never an empty chunk.
    chunks: Vec<Chunk>,
    len: usize,
}

/// Records as they were put in: a vector of them, or an actor's backlog from its cut.
#[derive(Clone)]
enum Chunk {
    Records(Vec<InFlightRecord>),
    Backlog(Backlog),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Records(records) => records.len(),
            Chunk::Backlog(backlog) => backlog.len(),
        }
    }

    fn records(&self) -> &[InFlightRecord] {
        match self {
            Chunk::Records(records) => records,
            Chunk::Backlog(backlog) => backlog.records(),
        }
    }

    /// The records, to change them (a backlog becomes its records first).
    fn records_mut(&mut self) -> &mut Vec<InFlightRecord> {
        if let Chunk::Backlog(backlog) = self {
            let records = std::mem::replace(backlog, Backlog::builder(backlog.to()).finish());
            *self = Chunk::Records(records.into_records());
        }
        match self {
            Chunk::Records(records) => records,
            Chunk::Backlog(_) => unreachable!("made records above"),
        }
    }

    fn into_records(self) -> Vec<InFlightRecord> {
        match self {
            Chunk::Records(records) => records,
            Chunk::Backlog(backlog) => backlog.into_records(),
        }
    }
}

impl InFlight {
    /// No messages.
    pub fn new() -> InFlight {
        InFlight::default()
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a message at the end.
    pub fn push(&mut self, record: InFlightRecord) {
        match self.chunks.last_mut() {
            Some(Chunk::Records(last)) => last.push(record),
            _ => self.chunks.push(Chunk::Records(vec![record])),
        }
        self.len += 1;
    }

    /// Adds `chunk`'s messages at the end, in order, without copying them.
    pub fn append_chunk(&mut self, chunk: Vec<InFlightRecord>) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(Chunk::Records(chunk));
        }
    }

    /// Adds `backlog`'s messages at the end, in order, as they are: records are made of them
    /// only if they are read as records (writing a checkpoint does not).
    pub fn append_backlog(&mut self, backlog: Backlog) {
        if !backlog.is_empty() {
            self.len += backlog.len();
            self.chunks.push(Chunk::Backlog(backlog));
        }
    }

    /// Moves every message of `other` to the end of this one, without copying them.
    pub fn append(&mut self, other: &mut InFlight) {
        self.len += std::mem::take(&mut other.len);
        self.chunks.append(&mut other.chunks);
    }

    /// The messages in runs as they are kept, in order: vectors of records, and backlogs
    /// whose messages can be read without making records of them ([`Backlog::messages`]).
    pub fn runs(&self) -> impl Iterator<Item = InFlightRun<'_>> {
        self.chunks.iter().map(|chunk| match chunk {
            Chunk::Records(records) => InFlightRun::Records(records),
            Chunk::Backlog(backlog) => InFlightRun::Backlog(backlog),
        })
    }

    /// The messages, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { inner: self.chunks.iter().flat_map(Chunk::records as _), left: self.len }
    }

    /// The messages, in order, to change them.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut InFlightRecord> {
        self.chunks.iter_mut().flat_map(Chunk::records_mut)
    }

    /// The chunks the messages are held in, in order (none is empty).
    pub fn chunks(&self) -> impl ExactSizeIterator<Item = &[InFlightRecord]> {
        self.chunks.iter().map(Chunk::records)
    }

    /// The messages, borrowed, in order, without making records of backlogs: the cheap way
    /// to read every message of a large snapshot (an audit, the writer).
    pub fn messages(&self) -> InFlightMessages<'_> {
        InFlightMessages::new(&self.chunks, self.len)
    }

    /// Every system a receiver or sender is of, each at least once, in order of first sight
    /// (`O(chunks)` for backlogs, which know theirs).
    pub(crate) fn for_each_system(&self, mut f: impl FnMut(SystemId)) {
        for chunk in &self.chunks {
            match chunk {
                Chunk::Records(records) => {
                    for record in records {
                        f(record.to.system());
                        if let Some(from) = record.from {
                            f(from.system());
                        }
                    }
                }
                Chunk::Backlog(backlog) => {
                    f(backlog.to().system());
                    backlog.sender_systems().iter().copied().for_each(&mut f);
                }
            }
        }
    }

    /// The receivers, once per run of messages to the same one: `(index of the run's first
    /// message, receiver)` (`O(chunks)` for backlogs, whose messages have one receiver).
    pub(crate) fn receiver_runs(&self) -> impl Iterator<Item = (usize, ActorId)> + '_ {
        let mut index = 0;
        let mut last = None;
        self.chunks
            .iter()
            .flat_map(move |chunk| {
                let first = index;
                index += chunk.len();
                let receivers: Box<dyn Iterator<Item = (usize, ActorId)>> = match chunk {
                    Chunk::Records(records) => {
                        Box::new(records.iter().enumerate().map(move |(i, r)| (first + i, r.to)))
                    }
                    Chunk::Backlog(backlog) => Box::new(std::iter::once((first, backlog.to()))),
                };
                receivers
            })
            // One filter for every chunk: a run may go on from one chunk into the next.
            .filter(move |&(_, to)| last.replace(to) != Some(to))
    }

    /// The bytes of every payload (`O(chunks)` for backlogs).
    pub fn payload_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|chunk| match chunk {
                Chunk::Records(records) => records.iter().map(|r| r.payload.len()).sum(),
                Chunk::Backlog(backlog) => backlog.payload_bytes(),
            })
            .sum()
    }

    /// The message at `index`, if there is one (`O(chunks)`).
    pub fn get(&self, index: usize) -> Option<&InFlightRecord> {
        let (chunk, at) = self.locate(index)?;
        Some(&self.chunks[chunk].records()[at])
    }

    /// The message at `index`, to change it, if there is one (`O(chunks)`).
    pub fn get_mut(&mut self, index: usize) -> Option<&mut InFlightRecord> {
        let (chunk, at) = self.locate(index)?;
        Some(&mut self.chunks[chunk].records_mut()[at])
    }

    /// Removes every message.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Keeps the first `len` messages (all of them if there are no more).
    pub fn truncate(&mut self, len: usize) {
        drop(self.split_off(len.min(self.len)));
    }

    /// Splits off the messages from `at` on and returns them; this keeps the first `at`.
    ///
    /// # Panics
    /// If `at` is greater than [`len`](Self::len), as [`Vec::split_off`] does.
    pub fn split_off(&mut self, at: usize) -> InFlight {
        assert!(at <= self.len, "split index {at} is past the end ({} messages)", self.len);
        if at == self.len {
            return InFlight::new();
        }
        let (chunk, offset) = self.locate(at).expect("at < len");
        let mut tail = self.chunks.split_off(chunk);
        if offset > 0 {
            let rest = tail[0].records_mut().split_off(offset);
            self.chunks.push(std::mem::replace(&mut tail[0], Chunk::Records(rest)));
        }
        let tail = InFlight { len: self.len - at, chunks: tail };
        self.len = at;
        tail
    }

    /// The messages as one vector (moved if there is one chunk of records, else copied once).
    pub fn into_vec(mut self) -> Vec<InFlightRecord> {
        if self.chunks.len() == 1 {
            return self.chunks.pop().expect("one chunk").into_records();
        }
        let mut all = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            all.append(&mut chunk.into_records());
        }
        all
    }

    /// The chunk holding message `index`, and its place in it.
    fn locate(&self, mut index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        for (i, chunk) in self.chunks.iter().enumerate() {
            if index < chunk.len() {
                return Some((i, index));
            }
            index -= chunk.len();
        }
        None
    }
}

impl Index<usize> for InFlight {
    type Output = InFlightRecord;

    fn index(&self, index: usize) -> &InFlightRecord {
        let len = self.len;
        self.get(index)
            .unwrap_or_else(|| panic!("index {index} out of range for {len} messages in flight"))
    }
}

impl IndexMut<usize> for InFlight {
    fn index_mut(&mut self, index: usize) -> &mut InFlightRecord {
        let len = self.len;
        self.get_mut(index)
            .unwrap_or_else(|| panic!("index {index} out of range for {len} messages in flight"))
    }
}

impl PartialEq for InFlight {
    /// The same messages in the same order, however they are chunked.
    fn eq(&self, other: &InFlight) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for InFlight {}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<InFlightRecord>> for InFlight {
    fn from(records: Vec<InFlightRecord>) -> InFlight {
        let mut in_flight = InFlight::new();
        in_flight.append_chunk(records);
        in_flight
    }
}

impl From<InFlight> for Vec<InFlightRecord> {
    fn from(in_flight: InFlight) -> Vec<InFlightRecord> {
        in_flight.into_vec()
    }
}

impl FromIterator<InFlightRecord> for InFlight {
    fn from_iter<I: IntoIterator<Item = InFlightRecord>>(records: I) -> InFlight {
        InFlight::from(records.into_iter().collect::<Vec<_>>())
    }
}

impl Extend<InFlightRecord> for InFlight {
    fn extend<I: IntoIterator<Item = InFlightRecord>>(&mut self, records: I) {
        for record in records {
            self.push(record);
        }
    }
}

impl<'a> IntoIterator for &'a InFlight {
    type Item = &'a InFlightRecord;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The records of an owned [`InFlight`], in order.
pub struct IntoIter {
    chunks: std::vec::IntoIter<Chunk>,
    current: std::vec::IntoIter<InFlightRecord>,
}

impl Iterator for IntoIter {
    type Item = InFlightRecord;

    fn next(&mut self) -> Option<InFlightRecord> {
        loop {
            if let Some(next) = self.current.next() {
                return Some(next);
            }
            self.current = self.chunks.next()?.into_records().into_iter();
        }
    }
}

impl fmt::Debug for IntoIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter").finish_non_exhaustive()
    }
}

impl IntoIterator for InFlight {
    type Item = InFlightRecord;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter { chunks: self.chunks.into_iter(), current: Vec::new().into_iter() }
    }
}

/// How a chunk is read as records.
type ChunkRecords = fn(&Chunk) -> &[InFlightRecord];

/// The messages of an [`InFlight`], in order.
#[derive(Clone)]
pub struct Iter<'a> {
    inner: FlatMap<std::slice::Iter<'a, Chunk>, &'a [InFlightRecord], ChunkRecords>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a InFlightRecord;

    fn next(&mut self) -> Option<&'a InFlightRecord> {
        let next = self.inner.next()?;
        self.left -= 1;
        Some(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let next = self.inner.next_back()?;
        self.left -= 1;
        Some(next)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("left", &self.left).finish_non_exhaustive()
    }
}

/// A run of an [`InFlight`]'s messages as it is kept ([`InFlight::runs`]).
#[derive(Debug, Clone, Copy)]
pub enum InFlightRun<'a> {
    /// Messages kept as records.
    Records(&'a [InFlightRecord]),
    /// One actor's backlog at its cut.
    Backlog(&'a Backlog),
}

/// The messages of an [`InFlight`], borrowed ([`InFlight::messages`]): a cursor in the chunk
/// being walked, so that a backlog's messages come one after the other without indexing
/// (hundreds of thousands per snapshot of a loaded system).
pub struct InFlightMessages<'a> {
    chunks: std::slice::Iter<'a, Chunk>,
    current: Cursor<'a>,
    left: usize,
}

impl std::fmt::Debug for InFlightMessages<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightMessages").field("left", &self.left).finish_non_exhaustive()
    }
}

impl ExactSizeIterator for InFlightMessages<'_> {}

/// Where [`InFlightMessages`] is in its current chunk.
enum Cursor<'a> {
    Records(std::slice::Iter<'a, InFlightRecord>),
    Backlog(super::backlog::Cursor<'a>),
}

impl<'a> InFlightMessages<'a> {
    fn new(chunks: &'a [Chunk], left: usize) -> InFlightMessages<'a> {
        InFlightMessages { chunks: chunks.iter(), current: Cursor::Records([].iter()), left }
    }
}

impl<'a> Iterator for InFlightMessages<'a> {
    type Item = InFlightMessage<'a>;

    #[inline]
    fn next(&mut self) -> Option<InFlightMessage<'a>> {
        loop {
            let view = match &mut self.current {
                Cursor::Backlog(cursor) => cursor.next(),
                Cursor::Records(records) => records.next().map(InFlightMessage::from),
            };
            if let Some(view) = view {
                self.left -= 1;
                return Some(view);
            }
            self.current = match self.chunks.next()? {
                Chunk::Records(records) => Cursor::Records(records.iter()),
                Chunk::Backlog(backlog) => Cursor::Backlog(backlog.cursor()),
            };
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorId, Epoch, SystemId};

    fn record(n: u8) -> InFlightRecord {
        InFlightRecord {
            to: ActorId::new(SystemId(1), u64::from(n % 3)),
            from: None,
            epoch: Epoch(1),
            ask: false,
            payload: vec![n].into(),
        }
    }

    /// An `InFlight` of chunks of these sizes, alternately vectors of records and backlogs
    /// (a backlog's messages all go to one receiver), and the same records in one vector.
    fn chunked(sizes: &[usize]) -> (InFlight, Vec<InFlightRecord>) {
        let (mut in_flight, mut flat, mut n) = (InFlight::new(), Vec::new(), 0u8);
        for (k, &size) in sizes.iter().enumerate() {
            if k % 2 == 0 {
                let chunk: Vec<_> = (0..size).map(|_| (record(n), n += 1).0).collect();
                flat.extend(chunk.iter().cloned());
                in_flight.append_chunk(chunk);
            } else {
                let to = ActorId::new(SystemId(1), 100 + k as u64);
                let mut backlog = Backlog::builder(to);
                for _ in 0..size {
                    let mut record = record(n);
                    record.to = to;
                    backlog
                        .push_with(record.from, record.epoch, record.ask, |out| {
                            out.extend_from_slice(&record.payload);
                            Ok::<(), ()>(())
                        })
                        .unwrap();
                    flat.push(record);
                    n += 1;
                }
                in_flight.append_backlog(backlog.finish());
            }
        }
        (in_flight, flat)
    }

    /// Every operation against a plain vector, over chunkings that include empty chunks and
    /// every split point.
    #[test]
    fn reads_and_splits_like_a_vector() {
        for sizes in
            [&[][..], &[0], &[3], &[0, 3], &[1, 0, 2], &[2, 2, 2], &[0, 4, 1, 0, 3], &[1, 2, 0, 3]]
        {
            let (in_flight, flat) = chunked(sizes);
            assert_eq!(in_flight.len(), flat.len());
            assert_eq!(in_flight.is_empty(), flat.is_empty());
            assert!(in_flight.iter().eq(flat.iter()));
            assert!(
                in_flight
                    .messages()
                    .map(|v| (v.to, v.from, v.epoch, v.ask, v.payload))
                    .eq(flat.iter().map(|r| (r.to, r.from, r.epoch, r.ask, &r.payload[..])))
            );
            assert_eq!(in_flight.messages().count(), flat.len());
            assert_eq!(
                in_flight.payload_bytes(),
                flat.iter().map(|r| r.payload.len()).sum::<usize>()
            );
            let mut runs = Vec::new();
            for (i, r) in flat.iter().enumerate() {
                if i == 0 || flat[i - 1].to != r.to {
                    runs.push((i, r.to));
                }
            }
            assert_eq!(in_flight.receiver_runs().collect::<Vec<_>>(), runs, "{sizes:?}");
            assert!(in_flight.iter().rev().eq(flat.iter().rev()));
            assert_eq!(in_flight.iter().len(), flat.len());
            assert!(in_flight.chunks().all(|c| !c.is_empty()));
            for (i, r) in flat.iter().enumerate() {
                assert_eq!(&in_flight[i], r);
            }
            assert_eq!(in_flight.get(flat.len()), None);
            assert_eq!(in_flight.clone().into_vec(), flat);
            assert_eq!(in_flight.clone().into_iter().collect::<Vec<_>>(), flat);
            assert_eq!(in_flight, InFlight::from(flat.clone()));
            for at in 0..=flat.len() {
                let mut head = in_flight.clone();
                let tail = head.split_off(at);
                assert_eq!(head.into_vec(), flat[..at].to_vec(), "{sizes:?} at {at}");
                assert_eq!(tail.len(), flat.len() - at);
                assert_eq!(tail.into_vec(), flat[at..].to_vec(), "{sizes:?} at {at}");
                let mut cut = in_flight.clone();
                cut.truncate(at);
                cut.push(record(200));
                let mut expected = flat[..at].to_vec();
                expected.push(record(200));
                assert_eq!(cut.into_vec(), expected);
            }
        }
    }

    #[test]
    fn append_moves_every_chunk_and_index_mut_changes_one_record() {
        let (mut a, mut flat) = chunked(&[2, 1]);
        let (mut b, more) = chunked(&[0, 3]);
        a.append(&mut b);
        flat.extend(more);
        assert!(b.is_empty());
        assert_eq!(a.len(), flat.len());
        a[3].ask = true;
        flat[3].ask = true;
        assert_eq!(a.into_vec(), flat);
    }

    #[test]
    fn a_run_of_one_receiver_goes_on_across_chunks() {
        let to = ActorId::new(SystemId(1), 5);
        let mut in_flight = InFlight::new();
        let mut one = record(1);
        one.to = to;
        in_flight.append_chunk(vec![one.clone(), one.clone()]);
        let mut backlog = Backlog::builder(to);
        backlog
            .push_with(None, Epoch(1), false, |out| {
                out.push(2);
                Ok::<(), ()>(())
            })
            .unwrap();
        in_flight.append_backlog(backlog.finish());
        in_flight.push(record(3)); // to another receiver
        let other = record(3).to;
        assert_eq!(in_flight.receiver_runs().collect::<Vec<_>>(), [(0, to), (3, other)]);
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn split_past_the_end_panics_like_a_vector() {
        let (mut a, _) = chunked(&[2]);
        let _ = a.split_off(3);
    }
}
