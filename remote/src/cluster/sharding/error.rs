//! What can go wrong with sharded entities, as typed errors.

use amber_actors::AskError;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

use super::super::ClusterError;
use crate::NodeId;

/// Why a sharded entity could not be reached or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardingError {
    /// A sharding needs at least one shard.
    #[error("a sharding needs at least one shard")]
    NoShards,
    /// The entity type is not registered on this node
    /// ([`SystemBuilder::register`](amber_actors::SystemBuilder::register)): its entities
    /// could neither move nor be restored.
    #[error("the entity type {0} is not registered on this node")]
    NotRegistered(String),
    /// This node already runs a sharding of this entity type.
    #[error("a sharding of {0} already runs on this node")]
    AlreadyStarted(String),
    /// The node that owns the key's shard refused to start or find the entity.
    #[error("node {node} refused entity {key:?}: {reason}")]
    Refused {
        /// The node asked.
        node: NodeId,
        /// The entity's key.
        key: String,
        /// Why.
        reason: ShardRefusal,
    },
    /// The nodes kept naming another owner (their views of the members disagree while a
    /// member joins or leaves), or kept failing, for as many attempts as are made.
    #[error("entity {key:?} could not be reached: {last}")]
    Unreachable {
        /// The entity's key.
        key: String,
        /// What the last attempt found.
        last: Box<ShardingError>,
    },
    /// The entity stopped (or its node went down) as a message was sent to it: the entity
    /// named.
    #[error("entity {0} stopped")]
    Stopped(String),
    /// The entity could not passivate: the sharding runs without passivation, or the
    /// entity has what passivation would lose (timers, watches, supervision); why.
    #[error("no passivation: {0}")]
    Passivation(String),
    /// This node's cluster has shut down.
    #[error("the cluster has shut down")]
    ShutDown,
    /// A checkpoint records no shard count for the entity type (it was taken before
    /// checkpoints recorded them, or without a sharding of the type running):
    /// [`Sharding::placement_recorded`](super::Sharding::placement_recorded) needs one; give
    /// the count ([`Sharding::placement`](super::Sharding::placement)).
    #[error("the checkpoint records no shard count for {0}")]
    NoRecordedShards(String),
    /// A checkpoint's nodes recorded different shard counts for the entity type, or one
    /// that is not a positive number: what was found.
    #[error("the checkpoint's shard count for {type_name} is unusable: {problem}")]
    RecordedShards {
        /// The entity type's registered name.
        type_name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The cluster failed the request (the owner is down, did not answer in time, …).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The entity was reached but the ask failed.
    #[error(transparent)]
    Ask(#[from] AskError),
}

/// Why a node refused a request for an entity; travels between nodes as a MessagePack enum.
/// A refusal this node does not know (a newer node's) reads as
/// [`Unrecognized`](Self::Unrecognized), whatever it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum ShardRefusal {
    /// The node does not own the key's shard in its view of the members, and the entity
    /// does not run there: ask the node it names (`None`: it knows of no member).
    #[error("not the owner of its shard (the owner is {owner:?})")]
    NotOwner {
        /// The owner in the refusing node's view.
        owner: Option<String>,
    },
    /// The node runs no sharding of this entity type (not started yet, or never).
    #[error("no sharding of {0} runs there")]
    NotStarted(String),
    /// The node took the shard over from a node that it could not ask whether it still
    /// runs the entity (it did not answer in time): ask again.
    #[error("the shard's previous owner could not be asked: {0}")]
    Unsettled(String),
    /// The entity could not be spawned there (the spawn error's text).
    #[error("the entity could not be spawned: {0}")]
    Spawn(String),
    /// A refusal this node cannot read (a newer node's kind of refusal).
    #[error("a refusal this node does not know")]
    Unrecognized,
}

impl<'de> Deserialize<'de> for ShardRefusal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The refusals this node knows, as derived.
        #[derive(Deserialize)]
        enum Typed {
            NotOwner { owner: Option<String> },
            NotStarted(String),
            Unsettled(String),
            Spawn(String),
            Unrecognized,
        }
        /// What a peer may send: a known refusal, or anything else.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Typed(Typed),
            Unknown(IgnoredAny),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Typed(Typed::NotOwner { owner }) => ShardRefusal::NotOwner { owner },
            Repr::Typed(Typed::NotStarted(t)) => ShardRefusal::NotStarted(t),
            Repr::Typed(Typed::Unsettled(e)) => ShardRefusal::Unsettled(e),
            Repr::Typed(Typed::Spawn(e)) => ShardRefusal::Spawn(e),
            Repr::Typed(Typed::Unrecognized) | Repr::Unknown(_) => ShardRefusal::Unrecognized,
        })
    }
}

/// A `tell` to a sharded entity that failed: the message, given back, and why.
#[derive(Debug, thiserror::Error)]
#[error("message to entity not sent: {error}")]
pub struct TellError<M> {
    /// The message, not sent.
    pub message: M,
    /// Why.
    pub error: ShardingError,
}

/// Why a restart of lost shards ([`LostShards`](super::LostShards)) found no checkpoint to
/// restart from: the store could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestartSourceError {
    /// The store refused the read.
    #[error(transparent)]
    Store(#[from] amber_snapshot::StoreError),
    /// The task reading the store panicked or was cancelled (the runtime shutting down).
    #[error("the task reading the checkpoint store ended: {0}")]
    Reader(String),
}
