//! [`Backlog`]: one actor's messages in flight as its cut captured them.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;

use super::model::InFlightRecord;
use crate::{ActorId, Epoch, SystemId};

mod pack;

pub use pack::PackedBacklogError;

/// The messages in flight to one actor as its cut captured them: their payloads encoded back
/// to back in one buffer, beside what each record says of its message.
///
/// A snapshot records every message queued at every cut, hundreds of thousands of them under
/// load; a backlog holds them as two allocations instead of one record each, and a checkpoint
/// is written from it directly. It reads as [`InFlightRecord`]s
/// ([`records`](Backlog::records)): those are made on first use, once.
///
/// ```
/// use amber_snapshot::{ActorId, Backlog, Epoch, InFlight, SystemId};
///
/// let to = ActorId::new(SystemId(1), 7);
/// let mut backlog = Backlog::builder(to);
/// backlog.push_with(None, Epoch(1), false, |out| {
///     out.extend_from_slice(&[1, 2]);
///     Ok::<(), ()>(())
/// })?;
/// // A message whose encoder fails is left out, its bytes with it.
/// assert!(backlog.push_with(None, Epoch(1), true, |out| { out.push(9); Err(()) }).is_err());
/// let backlog = backlog.finish();
/// assert_eq!(backlog.len(), 1);
/// assert_eq!(backlog.records()[0].payload, vec![1, 2]);
///
/// let mut in_flight = InFlight::new();
/// in_flight.append_backlog(backlog);
/// assert_eq!(in_flight[0].to, to);
/// # Ok::<(), ()>(())
/// ```
#[derive(Clone)]
pub struct Backlog {
    to: ActorId,
    messages: Vec<Message>,
    payloads: Bytes,
    /// The system of every sender, each once (checkpoints index them without a pass over
    /// every message).
    sender_systems: Vec<SystemId>,
    /// The records, made on first use.
    records: OnceLock<Vec<InFlightRecord>>,
}

/// What a record says of one message of a backlog, but its receiver and payload, in 32
/// bytes (a snapshot of a loaded system writes one per queued message, hundreds of
/// thousands: their memory is most of what a cut writes besides the payloads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message {
    /// The sender's sequence number (see `system`).
    pub(crate) seq: u64,
    pub(crate) epoch: Epoch,
    /// Where its payload ends in the backlog's buffer (it starts where the previous one ends).
    pub(crate) end: usize,
    /// The sender's system, as 1 + its place in the backlog's `sender_systems`; 0 for a
    /// message without a sending actor. (There are never more sender systems than messages,
    /// so the place fits: a backlog of 2^32 messages would not fit in memory.)
    pub(crate) system: u32,
    pub(crate) ask: bool,
}

impl Message {
    #[inline]
    fn from(&self, systems: &[SystemId]) -> Option<ActorId> {
        let system = systems.get((self.system as usize).checked_sub(1)?)?;
        Some(ActorId::new(*system, self.seq))
    }
}

/// One message in flight, borrowed from its record or its backlog
/// ([`InFlight::messages`](crate::InFlight::messages)): what its record says, without making
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightMessage<'a> {
    /// The receiver.
    pub to: ActorId,
    /// The sending actor, or `None` for a message from outside the system or from a timer.
    pub from: Option<ActorId>,
    /// The epoch the message was tagged with when it was sent.
    pub epoch: Epoch,
    /// Whether the message is an ask.
    pub ask: bool,
    /// The message, encoded.
    pub payload: &'a [u8],
}

impl<'a> From<&'a InFlightRecord> for InFlightMessage<'a> {
    fn from(record: &'a InFlightRecord) -> InFlightMessage<'a> {
        InFlightMessage {
            to: record.to,
            from: record.from,
            epoch: record.epoch,
            ask: record.ask,
            payload: &record.payload,
        }
    }
}

impl Backlog {
    /// A builder of the backlog of actor `to`.
    pub fn builder(to: ActorId) -> BacklogBuilder {
        BacklogBuilder {
            to,
            messages: Vec::new(),
            payloads: Vec::new(),
            sender_systems: Vec::new(),
        }
    }

    /// The receiver of every message.
    pub fn to(&self) -> ActorId {
        self.to
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The bytes of every payload.
    pub fn payload_bytes(&self) -> usize {
        self.payloads.len()
    }

    /// The system of every sender, each once.
    pub fn sender_systems(&self) -> &[SystemId] {
        &self.sender_systems
    }

    /// The payloads of its messages, back to back, in order.
    pub fn payloads(&self) -> &Bytes {
        &self.payloads
    }

    /// The messages as records, in order (made on the first call; each payload a slice of the
    /// backlog's buffer).
    pub fn records(&self) -> &[InFlightRecord] {
        self.records.get_or_init(|| self.make_records())
    }

    /// The messages as records, in order.
    pub fn into_records(mut self) -> Vec<InFlightRecord> {
        match self.records.take() {
            Some(records) => records,
            None => self.make_records(),
        }
    }

    fn make_records(&self) -> Vec<InFlightRecord> {
        let mut start = 0;
        self.messages
            .iter()
            .map(|m| {
                let payload = self.payloads.slice(start..m.end);
                start = m.end;
                let from = m.from(&self.sender_systems);
                InFlightRecord { to: self.to, from, epoch: m.epoch, ask: m.ask, payload }
            })
            .collect()
    }

    /// Its messages, borrowed, in order, without making their records.
    pub fn messages(&self) -> impl ExactSizeIterator<Item = BacklogMessage<'_>> {
        let mut start = 0;
        self.messages.iter().map(move |m| {
            let payload = &self.payloads[start..m.end];
            start = m.end;
            let from = m.from(&self.sender_systems);
            BacklogMessage { from, epoch: m.epoch, ask: m.ask, payload }
        })
    }

    /// What the checkpoint writer reads of it ([`compact::write_backlog_items`](
    /// super::compact::write_backlog_items)): each message's fields and where its payload
    /// ends, the payloads back to back, and the senders' systems.
    pub(crate) fn parts(&self) -> (&[Message], &[u8], &[SystemId]) {
        (&self.messages, &self.payloads, &self.sender_systems)
    }

    /// Its messages, borrowed, in order, without making their records (for the writer).
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        Cursor {
            to: self.to,
            messages: self.messages.iter(),
            payloads: &self.payloads,
            systems: &self.sender_systems,
            start: 0,
        }
    }
}

/// One message of a [`Backlog`], borrowed ([`Backlog::messages`]): what its record says but
/// the receiver (the backlog's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogMessage<'a> {
    /// The sending actor, or `None` for a message from outside the system or from a timer.
    pub from: Option<ActorId>,
    /// The epoch the message was tagged with when it was sent.
    pub epoch: Epoch,
    /// Whether the message is an ask.
    pub ask: bool,
    /// The message, encoded.
    pub payload: &'a [u8],
}

/// A backlog's messages as [`InFlightMessage`]s, in order ([`Backlog::cursor`]).
pub(crate) struct Cursor<'a> {
    to: ActorId,
    messages: std::slice::Iter<'a, Message>,
    payloads: &'a [u8],
    systems: &'a [SystemId],
    /// Where the next payload starts.
    start: usize,
}

impl<'a> Iterator for Cursor<'a> {
    type Item = InFlightMessage<'a>;

    #[inline]
    fn next(&mut self) -> Option<InFlightMessage<'a>> {
        let m = self.messages.next()?;
        let payload = &self.payloads[self.start..m.end];
        self.start = m.end;
        let from = m.from(self.systems);
        Some(InFlightMessage { to: self.to, from, epoch: m.epoch, ask: m.ask, payload })
    }
}

impl fmt::Debug for Backlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backlog")
            .field("to", &self.to)
            .field("messages", &self.messages.len())
            .field("payload_bytes", &self.payloads.len())
            .finish()
    }
}

/// Builds a [`Backlog`] message by message ([`Backlog::builder`]).
#[derive(Debug)]
pub struct BacklogBuilder {
    to: ActorId,
    messages: Vec<Message>,
    payloads: Vec<u8>,
    sender_systems: Vec<SystemId>,
}

impl BacklogBuilder {
    /// Room for `messages` more messages of about `payload_bytes` bytes in all.
    pub fn reserve(&mut self, messages: usize, payload_bytes: usize) {
        self.messages.reserve(messages);
        self.payloads.reserve(payload_bytes);
    }

    /// Adds a message whose payload `encode` appends to the buffer it is given. If `encode`
    /// fails, the message is left out (and whatever it appended) and its error returned.
    pub fn push_with<E>(
        &mut self,
        from: Option<ActorId>,
        epoch: Epoch,
        ask: bool,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.payloads.len();
        match encode(&mut self.payloads) {
            Ok(()) => {
                let (seq, system) = match from {
                    None => (0, 0),
                    Some(from) => (from.seq(), self.sender_system(from.system())),
                };
                let end = self.payloads.len();
                self.messages.push(Message { seq, epoch, end, system, ask });
                Ok(())
            }
            Err(error) => {
                self.payloads.truncate(start);
                Err(error)
            }
        }
    }

    /// 1 + the place of `system` among the senders' systems (added if new).
    #[inline]
    fn sender_system(&mut self, system: SystemId) -> u32 {
        let place = match self.sender_systems.iter().rposition(|s| *s == system) {
            Some(place) => place,
            None => {
                self.sender_systems.push(system);
                self.sender_systems.len() - 1
            }
        };
        // Fewer systems than messages: it fits (see `Message::system`).
        u32::try_from(place + 1).unwrap_or(u32::MAX)
    }

    /// How many messages so far.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are none so far.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The backlog.
    pub fn finish(self) -> Backlog {
        Backlog {
            to: self.to,
            messages: self.messages,
            payloads: Bytes::from(self.payloads),
            sender_systems: self.sender_systems,
            records: OnceLock::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemId;

    #[test]
    fn senders_of_several_systems_and_none_read_back_as_pushed() {
        assert_eq!(std::mem::size_of::<Message>(), 32, "a record's fields stay compact");
        let to = ActorId::new(SystemId(2), 3);
        let systems = [SystemId(5), SystemId(u64::MAX), SystemId(0)];
        let mut pushed = Vec::new();
        let mut builder = Backlog::builder(to);
        for n in 0..40u64 {
            let from = (n % 4 != 3).then(|| ActorId::new(systems[(n % 3) as usize], n * 1_000_003));
            builder
                .push_with(from, Epoch(n / 7), n % 5 == 0, |out| {
                    out.push(n as u8);
                    Ok::<(), ()>(())
                })
                .unwrap();
            pushed.push((from, Epoch(n / 7), n % 5 == 0, vec![n as u8]));
        }
        let backlog = builder.finish();
        assert_eq!(backlog.sender_systems().len(), 3);
        let read: Vec<_> =
            backlog.messages().map(|m| (m.from, m.epoch, m.ask, m.payload.to_vec())).collect();
        assert_eq!(read, pushed);
        let viewed: Vec<_> =
            backlog.cursor().map(|m| (m.from, m.epoch, m.ask, m.payload.to_vec())).collect();
        assert_eq!(viewed, pushed);
        let records: Vec<_> = backlog
            .records()
            .iter()
            .map(|r| (r.from, r.epoch, r.ask, r.payload.to_vec()))
            .collect();
        assert_eq!(records, pushed);
    }

    #[test]
    fn views_and_records_say_the_same_in_order() {
        let to = ActorId::new(SystemId(2), 3);
        let mut builder = Backlog::builder(to);
        let sizes = [0usize, 3, 1, 0, 5];
        for (n, size) in sizes.iter().enumerate() {
            let from = (n % 2 == 0).then(|| ActorId::new(SystemId(9), n as u64));
            builder
                .push_with(from, Epoch(n as u64), n % 3 == 0, |out| {
                    out.extend(std::iter::repeat_n(n as u8, *size));
                    Ok::<(), ()>(())
                })
                .unwrap();
            // A failing encoder leaves nothing behind.
            assert!(
                builder
                    .push_with(None, Epoch(0), false, |out| {
                        out.push(99);
                        Err(())
                    })
                    .is_err()
            );
        }
        let backlog = builder.finish();
        assert_eq!(backlog.len(), sizes.len());
        assert_eq!(backlog.payload_bytes(), sizes.iter().sum::<usize>());
        assert_eq!(backlog.sender_systems(), [SystemId(9)]);
        let views: Vec<_> = backlog.cursor().collect();
        let records = backlog.records();
        assert_eq!(records.len(), views.len());
        for (n, (record, view)) in records.iter().zip(&views).enumerate() {
            assert_eq!(record.to, to);
            assert_eq!(view.to, to);
            assert_eq!(record.from, view.from);
            assert_eq!(record.epoch, Epoch(n as u64));
            assert_eq!(view.epoch, record.epoch);
            assert_eq!(record.ask, n % 3 == 0);
            assert_eq!(view.ask, record.ask);
            assert_eq!(&record.payload[..], view.payload);
            assert_eq!(record.payload, vec![n as u8; sizes[n]]);
        }
        assert_eq!(backlog.clone().into_records(), records);
        assert_eq!(Backlog::builder(to).finish().into_records(), vec![]);
    }
}
