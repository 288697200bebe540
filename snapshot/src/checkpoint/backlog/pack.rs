//! A [`Backlog`]'s packed form, for a node's part of a cross-node snapshot: what each message's
//! record says but its payload, as varints, beside the payloads back to back. Written and
//! read a backlog at a time, not a message at a time (a loaded node's part holds tens of
//! thousands of messages).
//!
//! ```text
//! fields  = message*
//! message = varint(sender seq) varint(epoch) varint(sender << 1 | ask) varint(payload length)
//! ```
//!
//! `sender` is 1 + the sender's system's place in the backlog's senders' systems, 0 for a
//! message without a sending actor (its seq is then 0); a varint is the crate's
//! [`varint`](crate::varint) (LEB128, shortest form, at most 10 bytes).

use std::fmt;

use bytes::Bytes;

use super::{Backlog, Message};
use crate::{ActorId, Epoch, SystemId, varint};

/// Why [`Backlog::from_packed`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBacklogError {
    /// The message (counted from 0) the problem was found at.
    pub message: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for PackedBacklogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a packed backlog's message {}: {}", self.message, self.reason)
    }
}

impl std::error::Error for PackedBacklogError {}

impl Backlog {
    /// Appends its messages' fields but their payloads to `out`, packed (see
    /// [`from_packed`](Backlog::from_packed)); the payloads are
    /// [`payloads`](Backlog::payloads), back to back.
    ///
    /// ```
    /// use amber_snapshot::{ActorId, Backlog, Epoch, SystemId};
    ///
    /// let to = ActorId::new(SystemId(1), 7);
    /// let mut builder = Backlog::builder(to);
    /// let from = Some(ActorId::new(SystemId(9), 300));
    /// builder.push_with(from, Epoch(2), true, |out| Ok::<_, ()>(out.extend_from_slice(b"hi")))?;
    /// builder.push_with(None, Epoch(2), false, |out| Ok::<_, ()>(out.push(0)))?;
    /// let backlog = builder.finish();
    /// let mut fields = Vec::new();
    /// backlog.pack_fields(&mut fields);
    /// let back = Backlog::from_packed(
    ///     to,
    ///     backlog.sender_systems().to_vec(),
    ///     backlog.len(),
    ///     &fields,
    ///     backlog.payloads().clone(),
    /// )
    /// .unwrap();
    /// assert_eq!(back.records(), backlog.records());
    /// # Ok::<(), ()>(())
    /// ```
    pub fn pack_fields(&self, out: &mut Vec<u8>) {
        out.reserve(self.messages.len() * 6);
        let mut start = 0;
        for m in &self.messages {
            varint::put(out, m.seq);
            varint::put(out, m.epoch.0);
            varint::put(out, u64::from(m.system) << 1 | u64::from(m.ask));
            varint::put(out, (m.end - start) as u64);
            start = m.end;
        }
    }

    /// The backlog of actor `to` whose senders' systems are `systems`, whose `count`
    /// messages' fields [`pack_fields`](Backlog::pack_fields) packed as `fields`, and whose
    /// payloads, back to back, are `payloads`. Refuses a varint cut short, overlong or not in
    /// its shortest form, a sender beyond `systems`, payload lengths that do not add up to
    /// `payloads`' length, and more or fewer than `count` messages; never panics, and
    /// allocates for at most as many messages as `fields` can hold, whatever `count` says.
    pub fn from_packed(
        to: ActorId,
        systems: Vec<SystemId>,
        count: usize,
        fields: &[u8],
        payloads: Bytes,
    ) -> Result<Backlog, PackedBacklogError> {
        // A message takes at least four bytes.
        let mut messages = Vec::with_capacity(count.min(fields.len() / 4));
        let mut at = 0;
        let mut end: usize = 0;
        while at < fields.len() {
            let message = messages.len();
            if message == count {
                return Err(PackedBacklogError { message, reason: "more messages than counted" });
            }
            let error = |reason| PackedBacklogError { message, reason };
            let mut next = || varint::take(fields, &mut at).map_err(|e| error(e.reason()));
            let (seq, epoch, sender, len) = (next()?, next()?, next()?, next()?);
            let system = u32::try_from(sender >> 1)
                .ok()
                .filter(|s| *s as usize <= systems.len())
                .ok_or(error("a sender beyond the senders' systems"))?;
            if system == 0 && seq != 0 {
                return Err(error("a sequence number without a sender"));
            }
            end = usize::try_from(len)
                .ok()
                .and_then(|len| end.checked_add(len))
                .filter(|end| *end <= payloads.len())
                .ok_or(error("payloads longer than the bytes sent"))?;
            messages.push(Message { seq, epoch: Epoch(epoch), end, system, ask: sender & 1 == 1 });
        }
        if messages.len() != count {
            let reason = "fewer messages than counted";
            return Err(PackedBacklogError { message: messages.len(), reason });
        }
        if end != payloads.len() {
            let reason = "payloads shorter than the bytes sent";
            return Err(PackedBacklogError { message: messages.len(), reason });
        }
        Ok(Backlog { to, messages, payloads, sender_systems: systems, records: Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(backlog: &Backlog) -> Vec<u8> {
        let mut fields = Vec::new();
        backlog.pack_fields(&mut fields);
        fields
    }

    /// Seeded backlogs of every field's boundary values read back as they were; every
    /// truncation and a byte more are refused, and a changed bit is refused or reads back as
    /// a well-formed backlog of the same payload bytes, never a panic.
    #[test]
    fn backlogs_read_back_and_damage_is_refused() {
        let edges = [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX >> 1, u64::MAX];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let to = ActorId::new(SystemId(rand()), rand());
            let systems: Vec<SystemId> = (0..rand() % 4).map(|_| SystemId(rand())).collect();
            let mut builder = Backlog::builder(to);
            for _ in 0..rand() % 20 {
                let from = match rand() as usize % (systems.len() + 1) {
                    0 => None,
                    k => Some(ActorId::new(systems[k - 1], edges[rand() as usize % edges.len()])),
                };
                let epoch = Epoch(edges[rand() as usize % edges.len()]);
                let len = [0, 1, 127, 128, 300][rand() as usize % 5];
                builder
                    .push_with(from, epoch, rand() % 2 == 0, |out| {
                        out.extend(std::iter::repeat_n(round as u8, len));
                        Ok::<(), ()>(())
                    })
                    .unwrap();
            }
            let backlog = builder.finish();
            let fields = packed(&backlog);
            let senders = backlog.sender_systems().to_vec();
            let payloads = backlog.payloads().clone();
            let n = backlog.len();
            for wrong in [n + 1, n.wrapping_sub(1), usize::MAX] {
                let read =
                    Backlog::from_packed(to, senders.clone(), wrong, &fields, payloads.clone());
                assert!(read.is_err(), "round {round}: {wrong} messages counted, {n} sent");
            }
            let back = Backlog::from_packed(to, senders.clone(), n, &fields, payloads.clone())
                .expect("reads back");
            assert_eq!(back.records(), backlog.records(), "round {round}");
            for cut in 0..fields.len() {
                // A cut between messages reads as fewer messages than counted; inside one,
                // a truncated varint.
                assert!(
                    Backlog::from_packed(to, senders.clone(), n, &fields[..cut], payloads.clone())
                        .is_err(),
                    "round {round}, cut at {cut}"
                );
            }
            let mut longer = fields.clone();
            longer.push(0);
            assert!(
                Backlog::from_packed(to, senders.clone(), n, &longer, payloads.clone()).is_err()
            );
            for i in 0..fields.len() {
                let mut bent = fields.clone();
                bent[i] ^= 1 << (rand() % 8);
                if let Ok(read) =
                    Backlog::from_packed(to, senders.clone(), n, &bent, payloads.clone())
                {
                    // Whatever reads is a backlog whose records can all be made, and whose
                    // payloads are the bytes sent, each byte once.
                    let joined: Vec<u8> =
                        read.records().iter().flat_map(|r| r.payload.to_vec()).collect();
                    assert_eq!(joined, payloads[..], "round {round}, byte {i}");
                }
            }
            if !payloads.is_empty() {
                let short = payloads.slice(..payloads.len() - 1);
                assert!(Backlog::from_packed(to, senders.clone(), n, &fields, short).is_err());
            }
            if !senders.is_empty() && backlog.records().iter().any(|r| r.from.is_some()) {
                let fewer = senders[..senders.len() - 1].to_vec();
                let refused = Backlog::from_packed(to, fewer, n, &fields, payloads.clone());
                let last = senders.len() as u32;
                let uses_last = backlog.messages.iter().any(|m| m.system == last);
                assert_eq!(refused.is_err(), uses_last, "round {round}");
            }
        }
    }
}
