//! One actor's backlog as a record of a node's part ([`super::wire`]): the receiver once,
//! then each message as `(from, epoch, ask, payload)`. Written from the backlog's buffer
//! and read straight into a new one: no record is made of each message on either side.

use std::fmt;

use amber_snapshot::{ActorId, Backlog, BacklogBuilder, Epoch};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A backlog, as written.
pub(crate) struct BacklogOut<'a>(pub(crate) &'a Backlog);

/// A backlog, as read.
#[derive(Debug)]
pub(crate) struct BacklogIn(pub(crate) Backlog);

impl Serialize for BacklogOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_tuple(2)?;
        out.serialize_element(&self.0.to())?;
        out.serialize_element(&Messages(self.0))?;
        out.end()
    }
}

struct Messages<'a>(&'a Backlog);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let messages = self.0.messages();
        let mut out = serializer.serialize_seq(Some(messages.len()))?;
        for m in messages {
            out.serialize_element(&(m.from, m.epoch, m.ask, serde_bytes::Bytes::new(m.payload)))?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for BacklogIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BacklogIn, D::Error> {
        deserializer.deserialize_tuple(2, BacklogVisitor)
    }
}

struct BacklogVisitor;

impl<'de> Visitor<'de> for BacklogVisitor {
    type Value = BacklogIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a backlog: its receiver and its messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BacklogIn, A::Error> {
        let to: ActorId = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let mut builder = Backlog::builder(to);
        seq.next_element_seed(MessagesSeed(&mut builder))?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok(BacklogIn(builder.finish()))
    }
}

/// Reads the messages into the builder.
struct MessagesSeed<'b>(&'b mut BacklogBuilder);

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a backlog's messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(MessageSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// Reads one message into the builder.
struct MessageSeed<'b>(&'b mut BacklogBuilder);

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_tuple(4, self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message in flight: (from, epoch, ask, payload)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"a message in flight of 4 fields");
        let from: Option<ActorId> = seq.next_element()?.ok_or_else(|| missing(0))?;
        let epoch: Epoch = seq.next_element()?.ok_or_else(|| missing(1))?;
        let ask: bool = seq.next_element()?.ok_or_else(|| missing(2))?;
        self.0.push_with(from, epoch, ask, |out| {
            seq.next_element_seed(PayloadSeed(out))?.ok_or_else(|| missing(3))
        })
    }
}

/// Appends a payload's bytes to the backlog's buffer.
struct PayloadSeed<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message's bytes")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<(), E> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<(), E> {
        self.visit_bytes(&bytes)
    }
}
