//! One actor's backlog as a record of a node's part ([`super::wire`]): `(receiver, senders'
//! systems, message count, packed fields, payloads)`, the fields in the backlog's packed form
//! ([`Backlog::pack_fields`]) and the payloads back to back, each one MessagePack `bin`.
//! Written from the backlog's buffers and read straight into new ones: nothing is done
//! through serde per message on either side.

use std::fmt;

use amber_snapshot::{ActorId, Backlog, Bytes, SystemId};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A backlog, as written.
pub(crate) struct BacklogOut<'a>(pub(crate) &'a Backlog);

/// A backlog, as read.
#[derive(Debug)]
pub(crate) struct BacklogIn(pub(crate) Backlog);

impl Serialize for BacklogOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let backlog = self.0;
        let mut fields = Vec::new();
        backlog.pack_fields(&mut fields);
        let mut out = serializer.serialize_tuple(5)?;
        out.serialize_element(&backlog.to())?;
        out.serialize_element(backlog.sender_systems())?;
        out.serialize_element(&(backlog.len() as u64))?;
        out.serialize_element(serde_bytes::Bytes::new(&fields))?;
        out.serialize_element(serde_bytes::Bytes::new(backlog.payloads()))?;
        out.end()
    }
}

impl<'de> Deserialize<'de> for BacklogIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BacklogIn, D::Error> {
        deserializer.deserialize_tuple(5, BacklogVisitor)
    }
}

struct BacklogVisitor;

impl<'de> Visitor<'de> for BacklogVisitor {
    type Value = BacklogIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a backlog: receiver, senders' systems, count, packed fields, payloads")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BacklogIn, A::Error> {
        let to: ActorId = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let systems: Vec<SystemId> =
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let count: u64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(2, &self))?;
        let fields: serde_bytes::ByteBuf =
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(3, &self))?;
        let payloads: serde_bytes::ByteBuf =
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(4, &self))?;
        let count = usize::try_from(count).map_err(de::Error::custom)?;
        Backlog::from_packed(to, systems, count, &fields, Bytes::from(payloads.into_vec()))
            .map(BacklogIn)
            .map_err(de::Error::custom)
    }
}
