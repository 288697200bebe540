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

use std::collections::{BTreeMap, HashSet};

use amber_actors::{
    Actor, ActorId, ActorState, ActorSystem, CodecError, Context, SpawnError, StateError,
};
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

/// The keeper of the passivated entities of one shard of one entity type, on the shard's
/// owner. Every start of an entity of its shard there goes through it (`Wake`), and so does
/// every passivation (`Begin`, then the entity's `Keep`, or `Abort`): one actor decides,
/// one message at a time, whether a key runs, is kept, or is passivating, so that an entity
/// never starts anew from its factory while its state is kept or on its way here.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ShardKeeper {
    /// The entity type's registered name.
    type_name: String,
    /// `shard:<type>/`: the entities' registered-name prefix.
    prefix: String,
    shard: u32,
    kept: BTreeMap<String, Kept>,
    /// The keys whose passivation has begun and whose state has not arrived yet. Not
    /// checkpointed: a checkpoint holds such a state in the entity's cut or in flight here.
    #[serde(skip)]
    passivating: HashSet<String>,
}

impl ShardKeeper {
    pub(crate) fn new(type_name: &str, prefix: &str, shard: u32) -> Self {
        ShardKeeper {
            type_name: type_name.to_owned(),
            prefix: prefix.to_owned(),
            shard,
            kept: BTreeMap::new(),
            passivating: HashSet::new(),
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
    /// The passivation of the running entity `key` begins: until its state arrives
    /// (`Keep`) or the passivation is called off (`Abort`), the entity is not started.
    Begin {
        /// The entity's key.
        key: String,
    },
    /// The passivation of `key` did not happen (the entity was busy): it runs on.
    Abort {
        /// The entity's key.
        key: String,
    },
    /// The entity `key`: running, or started from its kept state, or else from `fresh`.
    Wake {
        /// The entity's key.
        key: String,
        /// The layout version of `fresh`.
        version: u32,
        /// The state to start it from if none is kept (its factory's, or a checkpoint's).
        #[serde(with = "serde_bytes")]
        fresh: Vec<u8>,
    },
    /// The keys kept.
    Keys,
    /// The keys whose passivation has begun and whose state has not arrived yet.
    Passivating,
}

/// A keeper's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeeperReply {
    /// Done (`Keep`, `Abort`).
    Done,
    /// `Begin`: the passivation may go ahead.
    Begun,
    /// `Wake`: the entity started, from its kept state (`kept`) or from the fresh one.
    Started {
        /// Its id.
        id: ActorId,
        /// Whether it started from a kept state.
        kept: bool,
    },
    /// `Wake`: the entity runs here already; its id.
    Running(ActorId),
    /// Not now (`Wake`: the entity passivates, or is stopping; `Begin`: it passivates
    /// already, or does not run): why.
    Retry(String),
    /// `Wake`: the entity did not start (a kept state stays kept); why.
    Failed(String),
    /// `Keys`: the keys kept (`Passivating`: the keys passivating).
    Keys(Vec<String>),
}

impl Actor for ShardKeeper {
    type Msg = KeeperMsg;
    type Reply = KeeperReply;

    async fn handle(&mut self, msg: KeeperMsg, ctx: &mut Context<Self>) -> KeeperReply {
        match msg {
            KeeperMsg::Keep { key, version, state } => {
                tracing::trace!(key, shard = self.shard, "kept a passivated entity");
                self.passivating.remove(&key);
                self.kept.insert(key, Kept { version, state });
                KeeperReply::Done
            }
            KeeperMsg::Begin { key } => {
                let name = format!("{}{key}", self.prefix);
                if self.passivating.contains(&key) || self.kept.contains_key(&key) {
                    return KeeperReply::Retry("it passivates already".into());
                }
                if ctx.system().whereis(&name).is_none() {
                    return KeeperReply::Retry("it does not run".into());
                }
                self.passivating.insert(key);
                KeeperReply::Begun
            }
            KeeperMsg::Abort { key } => {
                self.passivating.remove(&key);
                KeeperReply::Done
            }
            KeeperMsg::Wake { key, version, fresh } => self.wake(ctx, key, version, fresh),
            KeeperMsg::Keys => KeeperReply::Keys(self.kept.keys().cloned().collect()),
            KeeperMsg::Passivating => KeeperReply::Keys(self.passivating.iter().cloned().collect()),
        }
    }
}

impl ShardKeeper {
    fn wake(
        &mut self,
        ctx: &Context<Self>,
        key: String,
        version: u32,
        fresh: Vec<u8>,
    ) -> KeeperReply {
        if self.passivating.contains(&key) {
            return KeeperReply::Retry("it passivates".into());
        }
        let name = format!("{}{key}", self.prefix);
        if let Some((id, _)) = ctx.system().whereis(&name) {
            return KeeperReply::Running(id);
        }
        let kept = self.kept.remove(&key);
        let from_kept = kept.is_some();
        let (version, state) = match &kept {
            Some(kept) => (kept.version, &kept.state),
            None => (version, &fresh),
        };
        // Born in this keeper's epoch: in a running snapshot exactly when the kept state is
        // no longer in this keeper's cut.
        let started = ctx.spawn_registered_detached(&self.type_name, Some(name), version, state);
        let give_back = |this: &mut Self| {
            if let Some(kept) = kept {
                this.kept.insert(key.clone(), kept);
            }
        };
        match started {
            Ok(id) => {
                tracing::trace!(key, entity = %id, from_kept, "started an entity");
                KeeperReply::Started { id, kept: from_kept }
            }
            Err(SpawnError::NameTaken(_)) => {
                give_back(self);
                KeeperReply::Retry("its previous actor is stopping".into())
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "an entity did not start");
                give_back(self);
                KeeperReply::Failed(e.to_string())
            }
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
