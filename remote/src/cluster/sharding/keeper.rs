//! The keeper of a shard's passivated entities: an actor (one per shard that has
//! passivated entities, on the shard's owner) holding their states by key.
//!
//! An entity that passivates sends its state here *as itself* (see
//! [`amber_actors::passivate`]): the move of the state is a message of the snapshot
//! protocol, so a checkpoint holds every passivated state exactly once (in the keeper's
//! cut, recorded in flight to it, or in the entity's own cut). The keeper starts an entity
//! again from its kept state in a handler ([`Context::spawn_registered_detached`]), born in
//! the keeper's epoch, so that the state is in a snapshot either in the keeper's cut or in
//! the started entity's, never both. The keeper is an actor like any other: checkpointed,
//! restored, moved with its shard by live migration.

use std::collections::BTreeMap;

use amber_actors::{Actor, ActorId, ActorState, ActorSystem, CodecError, Context, StateError};
use serde::{Deserialize, Serialize};

/// The registered type name of keepers.
pub(crate) const KEEPER_TYPE: &str = "amber.sharding.Keeper";

/// A kept entity state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Kept {
    version: u32,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

/// The keeper of the passivated entities of one shard of one entity type.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ShardKeeper {
    /// The entity type's registered name.
    type_name: String,
    /// `shard:<type>/`: the entities' registered-name prefix.
    prefix: String,
    shard: u32,
    kept: BTreeMap<String, Kept>,
}

impl ShardKeeper {
    pub(crate) fn new(type_name: &str, prefix: &str, shard: u32) -> Self {
        ShardKeeper {
            type_name: type_name.to_owned(),
            prefix: prefix.to_owned(),
            shard,
            kept: BTreeMap::new(),
        }
    }
}

/// What a keeper is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KeeperMsg {
    /// Keep the state of the entity `key`, which passivates (sent by the entity itself).
    Keep {
        /// The entity's key.
        key: String,
        /// The state's layout version.
        version: u32,
        /// The state.
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
    },
    /// Start the entity `key` from its kept state, if it is kept and not running.
    Wake {
        /// The entity's key.
        key: String,
    },
    /// The keys kept.
    Keys,
}

/// A keeper's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeeperReply {
    /// Done (a `Keep`).
    Done,
    /// `Wake`: the entity started from its kept state; its id.
    Started(ActorId),
    /// `Wake`: the entity runs here already; its id.
    Running(ActorId),
    /// `Wake`: no state kept for this key.
    NotKept,
    /// `Wake`: the kept state did not start (it stays kept); why.
    Failed(String),
    /// `Keys`: the keys kept.
    Keys(Vec<String>),
}

impl Actor for ShardKeeper {
    type Msg = KeeperMsg;
    type Reply = KeeperReply;

    async fn handle(&mut self, msg: KeeperMsg, ctx: &mut Context<Self>) -> KeeperReply {
        match msg {
            KeeperMsg::Keep { key, version, state } => {
                tracing::trace!(key, shard = self.shard, "kept a passivated entity");
                self.kept.insert(key, Kept { version, state });
                KeeperReply::Done
            }
            KeeperMsg::Wake { key } => {
                let name = format!("{}{key}", self.prefix);
                if let Some((id, _)) = ctx.system().whereis(&name) {
                    return KeeperReply::Running(id);
                }
                let Some(kept) = self.kept.remove(&key) else { return KeeperReply::NotKept };
                match ctx.spawn_registered_detached(
                    &self.type_name,
                    Some(name),
                    kept.version,
                    &kept.state,
                ) {
                    Ok(id) => {
                        tracing::trace!(key, entity = %id, "woke a passivated entity");
                        KeeperReply::Started(id)
                    }
                    Err(e) => {
                        tracing::warn!(key, error = %e, "a passivated entity did not start");
                        self.kept.insert(key, kept);
                        KeeperReply::Failed(e.to_string())
                    }
                }
            }
            KeeperMsg::Keys => KeeperReply::Keys(self.kept.keys().cloned().collect()),
        }
    }
}

impl ActorState for ShardKeeper {
    const TYPE_NAME: &'static str = KEEPER_TYPE;

    fn encode_state(&self) -> Result<Vec<u8>, CodecError> {
        amber_actors::encode(self)
    }

    fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        Ok(system.decode(bytes)?)
    }
}
