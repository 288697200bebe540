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
//!
//! An entity passivates with a redirect to its keeper ([`amber_actors::passivate::Redirect`]):
//! a tell from another node that arrives for it once it has passivated (through a ref kept
//! before, by an [`EntityRef`](super::EntityRef) or by hand) comes here as a `Deliver`,
//! with its sender and tag, and the keeper sends it on to the entity, started again from
//! its kept state if need be. While the key passivates (its state not here yet), or while
//! it can be started neither from a kept state nor found running here, such tells wait in
//! the keeper's state (`pending`, checkpointed: a snapshot holds them there, or in flight
//! here), in arrival order, and go to the entity before anything else the keeper does for
//! the key (a `Wake` answers only once they are sent), so each sender's order holds.
//!
//! # Asks
//!
//! An ask from another node that arrives for a passivated entity is redirected here too,
//! as a `Deliver` with a [`ReplyTicket`]: its reply route stays parked on this node (see
//! [`amber_actors::parked_reply`]) and the keeper claims it when it takes the `Deliver`.
//! The ask waits in `pending` in arrival order with the tells (its request, in the
//! checkpointed state; its route beside it, outside the state) and goes to the entity as
//! an ask ([`Context::ask_encoded`]) in that order: the entity, started again from its kept
//! state, answers the asker itself, so an [`EntityRef::ask`](super::EntityRef::ask) or a
//! plain `ActorRef::ask` through a ref kept from before the passivation gets its answer.
//!
//! A reply route does not survive a checkpoint, a restore or a move of the keeper: a
//! restored (or moved) keeper holding an ask, or a `Deliver` recorded in flight to it,
//! sends the request to the entity as a tell (it is handled once, as any request recorded
//! in a checkpoint is; nobody waits for its reply in the restored system), and the asker in
//! the system the snapshot was taken of gets [`AskError::NoReply`](amber_actors::AskError)
//! once the keeper that held its route stops or moves (or within twice the ask timeout if
//! no keeper ever claimed it), if its own timeout has not fired first.
//!
//! A checkpoint holds such a request once all the same: in the keeper's cut (in `pending`,
//! where the move carries it), recorded in flight to the keeper or to the entity, or in the
//! entity's cut. The `NoReply` of a keeper that moved is no answer: the request goes on as
//! a tell from the keeper's new node and is handled there once, as a restore handles it
//! (`tests/cluster_sharding_keeper_requests.rs`). A rebalance asks each keeper it moved for
//! its `Waiting` keys once the shard's entities have followed it, so that what waits for
//! them goes on at once.
//!
//! # Requests from another system
//!
//! `Begin` and `Wake` are asked by this node's region, stamped with its system
//! ([`SystemId`]). One recorded in flight to a keeper at a snapshot's cut (its asker, the
//! region's task, is outside every actor) reaches the keeper restored from that checkpoint,
//! where nobody waits for it and nothing follows it: the keeper answers `Retry` and does
//! nothing. Taken, a restored `Begin` would hold its key as passivating for good (no `Keep`
//! or `Abort` ever comes: the entity restored running), every lookup of the key refused;
//! a restored `Wake` could start a key anew from its factory while its state is recorded
//! in flight here as a `Keep` (the keeper's `passivating`, which would have refused the
//! `Wake`, is not checkpointed).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use amber_actors::{
    Actor, ActorId, ActorState, ActorSystem, BoxError, CodecError, Context, ParkedReply, Redirect,
    ReplyTicket, SpawnError, StateError, SystemId, remote::DeliverError,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

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
    /// Tells and asks redirected here for keys that cannot take them yet (see the module
    /// docs), in arrival order: messages this keeper took, checkpointed with it.
    #[serde(default)]
    pending: BTreeMap<String, VecDeque<Waiting>>,
    /// The reply routes of the asks in `pending`, by ticket. Not checkpointed: a route
    /// lives in this running system only (see the module docs).
    #[serde(skip)]
    replies: HashMap<ReplyTicket, ParkedReply>,
}

/// A message waiting in a keeper for its entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Waiting {
    /// A tell (its payload, as encoded for the entity's type).
    Tell(ByteBuf),
    /// An ask: its request, and the ticket of its reply route.
    Ask {
        /// The request, as encoded for the entity's type.
        payload: ByteBuf,
        /// Its reply route's ticket.
        ticket: ReplyTicket,
    },
}

impl ShardKeeper {
    /// Reads a keeper's state as a checkpoint holds it ([`ActorState::encode_state`]'s
    /// bytes), for audits and tools that account for passivated entities.
    pub fn from_state(bytes: &[u8]) -> Result<ShardKeeper, CodecError> {
        amber_actors::decode(bytes)
    }

    /// The shard whose passivated entities it keeps.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The kept states of its passivated entities: each key, and its state as the entity's
    /// type encoded it.
    pub fn kept_states(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.kept.iter().map(|(key, kept)| (key.as_str(), kept.state.as_slice()))
    }

    /// The messages waiting here for their entities (see the module docs), in arrival order
    /// per key: each key, the payload as encoded for the entity's type, and whether it is
    /// an ask.
    pub fn waiting(&self) -> impl Iterator<Item = (&str, &[u8], bool)> {
        self.pending.iter().flat_map(|(key, waiting)| {
            waiting.iter().map(move |w| match w {
                Waiting::Tell(payload) => (key.as_str(), payload.as_slice(), false),
                Waiting::Ask { payload, .. } => (key.as_str(), payload.as_slice(), true),
            })
        })
    }

    pub(crate) fn new(type_name: &str, prefix: &str, shard: u32) -> Self {
        ShardKeeper {
            type_name: type_name.to_owned(),
            prefix: prefix.to_owned(),
            shard,
            kept: BTreeMap::new(),
            passivating: HashSet::new(),
            pending: BTreeMap::new(),
            replies: HashMap::new(),
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
        /// The system of the node that asks (see `asker` of [`KeeperMsg::Wake`]).
        #[serde(default)]
        asker: Option<SystemId>,
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
        /// The system of the node that asks (the keeper's own). A keeper takes a `Begin`
        /// or a `Wake` only from its own system: one restored from a checkpoint (recorded
        /// in flight to the keeper, whose asker waited in the system the snapshot was
        /// taken of) or forwarded to a keeper that moved is answered `Retry` and does
        /// nothing. Acted on, a restored `Begin` would hold its key as passivating for
        /// good (no `Keep` or `Abort` ever follows it: the entity restored running, or
        /// its state restored in flight here), and a restored `Wake` could start a key
        /// anew from its factory while its state is in flight here.
        #[serde(default)]
        asker: Option<SystemId>,
    },
    /// The keys kept.
    Keys,
    /// The keys whose passivation has begun and whose state has not arrived yet.
    Passivating,
    /// A tell or an ask for the entity `key`, sent to an actor of it that had passivated
    /// (redirected here by the node; see the module docs): for its entity, in order.
    Deliver {
        /// The entity's key.
        key: String,
        /// The message, as encoded for the entity's type.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// For an ask, the ticket of its reply route, parked on this node.
        #[serde(default)]
        ask: Option<ReplyTicket>,
    },
    /// The keys with tells or asks waiting here for their entity.
    Waiting,
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

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        // Restored with tells waiting: those whose entity runs (or is kept) go on now.
        self.flush_all(ctx);
        Ok(())
    }

    async fn handle(&mut self, msg: KeeperMsg, ctx: &mut Context<Self>) -> KeeperReply {
        let reply = self.handle_one(msg, ctx);
        // Tells that waited for an entity that runs now (it came here by a move, say).
        self.flush_all(ctx);
        reply
    }
}

impl ShardKeeper {
    fn handle_one(&mut self, msg: KeeperMsg, ctx: &Context<Self>) -> KeeperReply {
        match msg {
            KeeperMsg::Keep { key, version, state } => {
                tracing::trace!(key, shard = self.shard, "kept a passivated entity");
                self.passivating.remove(&key);
                self.kept.insert(key.clone(), Kept { version, state });
                // Tells came for it while it passivated: it starts again for them.
                self.flush(ctx, &key);
                KeeperReply::Done
            }
            KeeperMsg::Begin { key, asker } => {
                if asker != Some(ctx.system().id()) {
                    tracing::debug!(
                        key,
                        shard = self.shard,
                        "a passivation begun in another system (a checkpoint's) is not taken"
                    );
                    return KeeperReply::Retry("asked from another system".into());
                }
                let name = format!("{}{key}", self.prefix);
                if self.passivating.contains(&key) || self.kept.contains_key(&key) {
                    return KeeperReply::Retry("it passivates already".into());
                }
                if self.pending.contains_key(&key) {
                    return KeeperReply::Retry("tells wait for it".into());
                }
                if ctx.system().whereis(&name).is_none() {
                    return KeeperReply::Retry("it does not run".into());
                }
                self.passivating.insert(key);
                KeeperReply::Begun
            }
            KeeperMsg::Abort { key } => {
                self.passivating.remove(&key);
                self.flush(ctx, &key);
                KeeperReply::Done
            }
            KeeperMsg::Wake { key, asker, .. } if asker != Some(ctx.system().id()) => {
                tracing::debug!(
                    key,
                    shard = self.shard,
                    "a start asked in another system (a checkpoint's) is not taken"
                );
                KeeperReply::Retry("asked from another system".into())
            }
            KeeperMsg::Wake { key, version, fresh, .. } => {
                let reply = self.wake(ctx, key.clone(), version, fresh);
                // Before the requester hears of the entity, the tells redirected here for it
                // before its request are in its mailbox.
                self.flush(ctx, &key);
                reply
            }
            KeeperMsg::Keys => KeeperReply::Keys(self.kept.keys().cloned().collect()),
            KeeperMsg::Passivating => KeeperReply::Keys(self.passivating.iter().cloned().collect()),
            KeeperMsg::Deliver { key, payload, ask } => {
                let payload = ByteBuf::from(payload);
                let waiting = match ask {
                    None => Waiting::Tell(payload),
                    Some(ticket) => {
                        // None if the ticket is from a checkpoint or another node: the
                        // request goes on as a tell (see the module docs).
                        if let Some(reply) = ctx.claim_reply(ticket) {
                            self.replies.insert(ticket, reply);
                        }
                        Waiting::Ask { payload, ticket }
                    }
                };
                self.pending.entry(key.clone()).or_default().push_back(waiting);
                self.flush(ctx, &key);
                KeeperReply::Done
            }
            KeeperMsg::Waiting => KeeperReply::Keys(self.pending.keys().cloned().collect()),
        }
    }

    /// Sends the tells and asks waiting for `key` on to its entity, in order: the one
    /// running here, else one started from its kept state. They wait on while it
    /// passivates, or if it neither runs nor is kept here (its next start through this
    /// keeper sends them).
    fn flush(&mut self, ctx: &Context<Self>, key: &str) {
        if self.passivating.contains(key) || !self.pending.contains_key(key) {
            return;
        }
        let name = format!("{}{key}", self.prefix);
        let id = match ctx.system().whereis(&name) {
            Some((id, _)) => id,
            None => match self.kept.remove(key) {
                Some(kept) => {
                    let started = self.start(ctx, key, name, kept.version, &kept.state);
                    match started {
                        Ok(id) => {
                            tracing::trace!(key, entity = %id, "started an entity for tells redirected to it");
                            id
                        }
                        Err(e) => {
                            tracing::debug!(key, error = %e, "an entity did not start for the tells waiting for it");
                            self.kept.insert(key.to_owned(), kept);
                            return;
                        }
                    }
                }
                None => {
                    tracing::debug!(
                        key,
                        shard = self.shard,
                        "tells wait for an entity that neither runs nor is kept here"
                    );
                    return;
                }
            },
        };
        let Some(waiting) = self.pending.get_mut(key) else { return };
        while let Some(next) = waiting.pop_front() {
            let (payload, ticket) = match next {
                Waiting::Tell(payload) => (payload.into_vec(), None),
                Waiting::Ask { payload, ticket } => (payload.into_vec(), Some(ticket)),
            };
            // An ask whose route is here goes as an ask; one whose route is not (it came
            // from a checkpoint, or with this keeper from another node) as a tell.
            let sent = match ticket.and_then(|t| self.replies.remove(&t)) {
                Some(reply) => ctx.ask_encoded(id, payload, reply).map_err(|e| {
                    let back = e.send.error.clone();
                    (e.send.payload, back, Some(e.reply))
                }),
                None => ctx.tell_encoded(id, payload).map_err(|e| (e.payload, e.error, None)),
            };
            match sent {
                Ok(()) => {}
                Err((_, DeliverError::Decode(e), _)) => {
                    // An ask's route drops here: its asker gets an error.
                    tracing::warn!(key, error = %e, "a message redirected to a passivated entity does not decode: dropped");
                }
                Err((payload, error, reply)) => {
                    // Stopping: they wait for its next start.
                    tracing::debug!(key, %error, "messages wait for an entity that stopped");
                    let payload = ByteBuf::from(payload);
                    let back = match (ticket, reply) {
                        (Some(ticket), Some(reply)) => {
                            self.replies.insert(ticket, reply);
                            Waiting::Ask { payload, ticket }
                        }
                        (Some(ticket), None) => Waiting::Ask { payload, ticket },
                        (None, _) => Waiting::Tell(payload),
                    };
                    waiting.push_front(back);
                    return;
                }
            }
        }
        self.pending.remove(key);
    }

    /// Starts the entity `key` (registered as `name`) from `state`, born in this keeper's
    /// epoch. A tell from before a snapshot's cut that reaches it after this keeper cut
    /// (so the keeper's cut holds the state it started from, or no state for it) is
    /// recorded as redirected here, as a tell to the passivated actor would be: the keeper
    /// restored from the snapshot starts it again and sends it on.
    fn start(
        &self,
        ctx: &Context<Self>,
        key: &str,
        name: String,
        version: u32,
        state: &[u8],
    ) -> Result<ActorId, SpawnError> {
        let kept_by = redirect_to(ctx.id(), key.to_owned());
        ctx.spawn_registered_from_kept(&self.type_name, Some(name), version, state, kept_by)
    }

    /// [`flush`](Self::flush) for every key with tells waiting.
    fn flush_all(&mut self, ctx: &Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        let keys: Vec<String> = self.pending.keys().cloned().collect();
        for key in keys {
            self.flush(ctx, &key);
        }
    }

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
        let started = self.start(ctx, &key, name, version, state);
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

/// Where the tells and asks for an actor of the entity `key` go, once it passivated: to
/// the keeper `keeper`, as [`KeeperMsg::Deliver`].
pub(super) fn redirect_to(keeper: ActorId, key: String) -> Redirect {
    let for_asks = key.clone();
    Redirect {
        to: keeper,
        wrap: Box::new(move |payload| {
            amber_actors::encode(&KeeperMsg::Deliver { key: key.clone(), payload, ask: None })
        }),
        wrap_ask: Some(Box::new(move |payload, ticket| {
            let key = for_asks.clone();
            amber_actors::encode(&KeeperMsg::Deliver { key, payload, ask: Some(ticket) })
        })),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a checkpoint holds of a keeper reads back through its public view: kept states,
    /// and waiting tells and asks alike (an audit that read only tells failed on a keeper
    /// holding a redirected ask).
    #[test]
    fn a_keepers_stored_state_reads_back_with_its_waiting_tells_and_asks() {
        #[derive(Serialize)]
        struct Ticket {
            system: SystemId,
            n: u64,
        }
        let ticket: ReplyTicket = amber_actors::decode(
            &amber_actors::encode(&Ticket { system: SystemId(7), n: 1 }).unwrap(),
        )
        .unwrap();
        let mut keeper = ShardKeeper::new("test.Purse", "shard:test.Purse/", 3);
        keeper.kept.insert("a".into(), Kept { version: 1, state: vec![1, 2] });
        let waiting = keeper.pending.entry("b".into()).or_default();
        waiting.push_back(Waiting::Tell(ByteBuf::from(vec![3])));
        waiting.push_back(Waiting::Ask { payload: ByteBuf::from(vec![4]), ticket });
        let read = ShardKeeper::from_state(&keeper.encode_state().unwrap()).unwrap();
        assert_eq!(read.shard(), 3);
        assert_eq!(read.kept_states().collect::<Vec<_>>(), [("a", &[1u8, 2][..])]);
        assert_eq!(
            read.waiting().collect::<Vec<_>>(),
            [("b", &[3u8][..], false), ("b", &[4u8][..], true)]
        );
        assert!(ShardKeeper::from_state(b"\xc1").is_err(), "not MessagePack: an error");
    }
}
