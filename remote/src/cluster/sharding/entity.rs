//! [`EntityRef`]: a sharded entity addressed by its key, from any node.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use amber_actors::{ActorRef, ActorState, AskError, SendError};

use super::kept::{Kept, Sent};
use super::region::Region;
use super::{ShardRefusal, ShardingError, TellError, hash};
use crate::NodeId;

/// How many times a lookup of an entity is made before it fails: redirections to the owner
/// another node names, and waits for a node that has not started its sharding yet, cannot
/// answer yet, or is not linked yet.
const ATTEMPTS: u32 = 12;

/// The first wait before asking again a node that has not started its sharding yet, or
/// cannot answer yet (doubled each time, up to [`MAX_WAIT`]).
const RETRY_WAIT: Duration = Duration::from_millis(5);

/// The longest wait between two attempts: the waits of all of them add up to about 3 s,
/// plus the answers' own time.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// A sharded entity of type `E`, addressed by its key: from any node, whichever node it
/// runs on ([`Sharding::entity`](super::Sharding::entity)).
///
/// The first message finds the entity through the owner of its shard, which starts it if
/// it does not run yet; the ref found is kept, so the next messages cost what a plain
/// [`ActorRef`] costs. Clones share that ref.
pub struct EntityRef<E: ActorState> {
    region: Arc<Region<E>>,
    key: Arc<str>,
    shard: u32,
    cached: Arc<Kept<E>>,
}

impl<E: ActorState> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        EntityRef {
            region: self.region.clone(),
            key: self.key.clone(),
            shard: self.shard,
            cached: self.cached.clone(),
        }
    }
}

impl<E: ActorState> fmt::Debug for EntityRef<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityRef")
            .field("type", &E::TYPE_NAME)
            .field("key", &self.key)
            .field("shard", &self.shard)
            .finish()
    }
}

impl<E: ActorState> EntityRef<E> {
    pub(super) fn new(region: Arc<Region<E>>, key: String) -> Self {
        let shard = hash::shard_of(&key, region.shards);
        EntityRef { region, key: key.into(), shard, cached: Arc::default() }
    }

    /// The entity's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entity's shard.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Sends a message to the entity, starting it first if it does not run yet. Fails,
    /// giving the message back, if the entity cannot be found or started
    /// ([`ShardingError`]).
    ///
    /// If the ref in hand fails (the entity stopped, passivated, or its node went down), the
    /// entity is looked up again through its shard's owner, which starts it again if it
    /// does not run (from its kept state if it passivated, else from its factory: what a
    /// lost one held since is gone) and the message goes there. Each sender's messages
    /// keep their order: the next is sent once this one is in.
    pub async fn tell(&self, message: E::Msg) -> Result<(), TellError<E::Msg>> {
        // The steady state: the kept ref takes it at once, sent to under the lock (no clone
        // of the ref). A full mailbox, a stopped entity or no kept ref takes the path below
        // (a tell tries the same send first, so each sender's order is the same either way).
        self.refresh();
        let mut message = match self.cached.try_tell(message) {
            Sent::Done => return Ok(()),
            Sent::Back(message) => message,
        };
        let mut last = None;
        let mut wait = RETRY_WAIT;
        for attempt in 0..ATTEMPTS {
            let entity = match self.entity().await {
                Ok(entity) => entity,
                Err(error) => return Err(TellError { message, error }),
            };
            match entity.tell(message).await {
                Ok(()) => return Ok(()),
                Err(SendError(back)) => {
                    message = back;
                    self.forget(&entity);
                    // Found stopping again (it passivates, or stops, and is still
                    // registered for a moment): wait for it to be gone, then look again.
                    if attempt > 0
                        && last.as_ref().is_some_and(|l: &ActorRef<E>| l.id() == entity.id())
                    {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_WAIT);
                    } else {
                        tokio::task::yield_now().await;
                    }
                    last = Some(entity);
                }
            }
        }
        let id = last.map(|e| e.id().to_string()).unwrap_or_default();
        let error = ShardingError::Unreachable {
            key: self.key.to_string(),
            last: Box::new(ShardingError::Stopped(id)),
        };
        Err(TellError { message, error })
    }

    /// Sends a request to the entity (starting it first if it does not run yet) and waits
    /// for the reply, for at most the system's ask timeout ([`AskError::Timeout`]); a
    /// request sent again after a refusal gets what is left of it.
    ///
    /// An entity that passivated answers all the same: a request that reaches its node
    /// through a ref kept from before (or racing the passivation) goes to its shard's keeper,
    /// which starts it again from its kept state and hands it the request in its sender's
    /// order with the tells (see the keeper's docs); one refused by an entity of this node
    /// that stopped or passivated (not delivered, nothing handled) comes back and goes to
    /// the entity found again through its shard's owner, as a tell does.
    ///
    /// Otherwise the request is not sent again: if the entity stopped before it replied
    /// ([`AskError::NoReply`]), its node is or went down ([`AskError::NodeDown`]: what the
    /// entity held there is lost, see [`Sharding`](super::Sharding)), or no reply came in
    /// time ([`AskError::Timeout`]), the error is returned (and the kept ref dropped, but
    /// for a timeout, so that the next call finds the entity again). An ask
    /// held by a keeper whose reply route is lost (the keeper moved with its shard, or the
    /// system shut down) fails with [`AskError::NoReply`]: the request may have been
    /// handled.
    pub async fn ask(&self, message: E::Msg) -> Result<E::Reply, ShardingError> {
        self.refresh();
        let timeout = match self.region.cluster() {
            Some(cluster) => cluster.system().ask_timeout(),
            None => return Err(ShardingError::ShutDown),
        };
        // One timeout for all attempts.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut message = message;
        let mut last: Option<ActorRef<E>> = None;
        let mut wait = RETRY_WAIT;
        for attempt in 0..ATTEMPTS {
            let entity = self.entity().await?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(AskError::Timeout(timeout).into());
            }
            match entity.ask_or_return(message, left).await {
                Ok(reply) => return Ok(reply),
                // Not delivered, the entity stopped or passivated: found again (started
                // again from its kept state if it passivated), sent again.
                Err((AskError::Stopped, Some(back))) => {
                    message = back;
                    self.forget(&entity);
                    // Found stopping again: wait for it to be gone, then look again.
                    if attempt > 0 && last.as_ref().is_some_and(|l| l.id() == entity.id()) {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_WAIT);
                    } else {
                        tokio::task::yield_now().await;
                    }
                    last = Some(entity);
                }
                // Delivered and not answered, or not delivered to a node that is down (the
                // entity's state there is lost: the asker learns of it).
                Err((error, _)) => {
                    if matches!(
                        error,
                        AskError::Stopped | AskError::NoReply | AskError::NodeDown(_)
                    ) || entity.is_stopped()
                    {
                        self.forget(&entity);
                    }
                    return Err(error.into());
                }
            }
        }
        let id = last.map(|e| e.id().to_string()).unwrap_or_default();
        Err(ShardingError::Unreachable {
            key: self.key.to_string(),
            last: Box::new(ShardingError::Stopped(id)),
        })
    }

    /// A plain ref to the entity, found (or started) through its shard's owner; kept for
    /// the next calls.
    pub async fn entity(&self) -> Result<ActorRef<E>, ShardingError> {
        if let Some(entity) = self.cached.get() {
            return Ok(entity);
        }
        let entity = self.resolve().await?;
        self.cached.set(entity.clone());
        Ok(entity)
    }

    /// With passivation on: drops the kept ref if no message went through it for half the
    /// idle timeout (the entity may have passivated since: see `Kept::stale`).
    fn refresh(&self) {
        if let Some(idle) = self.region.passivate_after {
            let now = self.region.clock.elapsed().as_nanos() as u64;
            self.cached.stale(now, (idle / 2).as_nanos() as u64);
        }
    }

    /// Drops the kept ref if it is still `entity`.
    fn forget(&self, entity: &ActorRef<E>) {
        self.cached.forget(entity.id());
    }

    /// Finds the entity through the owner of its shard, following the owner another node
    /// names while the nodes' views of the members differ.
    async fn resolve(&self) -> Result<ActorRef<E>, ShardingError> {
        let key = self.key.to_string();
        let Some(cluster) = self.region.cluster() else { return Err(ShardingError::ShutDown) };
        let me = cluster.node().clone();
        // Running here: found without computing the owner (a live entity is the one).
        if let Ok(entity) = cluster.system().lookup::<E>(&self.region.name_of(&key)) {
            return Ok(entity);
        }
        let mut ask = None;
        let mut wait = RETRY_WAIT;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let nodes = self.region.nodes(&cluster);
            let owner = match ask.take() {
                Some(node) => node,
                None => {
                    self.region.owner(self.shard, &nodes).cloned().unwrap_or_else(|| me.clone())
                }
            };
            let refusal = if owner == me {
                match self.region.find_or_start(&key, &nodes).await {
                    Ok((entity, _)) => return Ok(entity),
                    Err(reason) => reason,
                }
            } else {
                match cluster.shared.resolve_on(&owner, E::TYPE_NAME, &key, &nodes).await {
                    Ok(Ok((id, node))) => {
                        let node = NodeId::from(node);
                        if node == me {
                            // Found on the owner's previous owner: this node.
                            if let Ok(entity) = cluster.system().lookup_id::<E>(id) {
                                return Ok(entity);
                            }
                        }
                        let route = cluster.shared.route(node);
                        return Ok(cluster.shared.host().remote_ref(id, route));
                    }
                    Ok(Err(reason)) => reason,
                    Err(e) => {
                        tracing::debug!(key, node = %owner, error = %e, "entity request failed");
                        last = Some(ShardingError::Cluster(e));
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_WAIT);
                        continue;
                    }
                }
            };
            tracing::debug!(key, node = %owner, reason = %refusal, "entity request refused");
            match &refusal {
                ShardRefusal::NotOwner { owner: Some(next) } if *next != owner.as_str() => {
                    ask = Some(NodeId::from(next.as_str()));
                }
                ShardRefusal::NotOwner { .. }
                | ShardRefusal::NotStarted(_)
                | ShardRefusal::Unsettled(_) => {
                    // Views settle as links and membership news arrive.
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_WAIT);
                }
                ShardRefusal::Spawn(_) | ShardRefusal::Unrecognized => {
                    return Err(ShardingError::Refused { node: owner, key, reason: refusal });
                }
            }
            last = Some(ShardingError::Refused { node: owner, key: key.clone(), reason: refusal });
        }
        let last = last.unwrap_or(ShardingError::NoShards);
        tracing::warn!(key, error = %last, "entity unreachable");
        Err(ShardingError::Unreachable { key, last: Box::new(last) })
    }
}
