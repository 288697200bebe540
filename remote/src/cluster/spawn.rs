//! Spawning an actor on another node: its state travels encoded with
//! [`ActorState::encode_state`] under its stable type name, and the other node builds it
//! through its registered types
//! ([`ActorSystem::spawn_registered`](amber_actors::ActorSystem::spawn_registered)).

use std::sync::Arc;
use std::time::Instant;

use amber_actors::{ActorId, ActorRef, ActorState, SpawnError};
use serde::{Deserialize, Serialize};

use super::control::Control;
use super::{Cluster, ClusterError, Shared};
use crate::{Frame, NodeId};

/// A spawn's answer: the actor's id and stable type name, or why there is none.
pub(super) type Spawned = Result<(ActorId, String), SpawnRefusal>;

/// The spawn messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SpawnControl {
    /// Spawn a top-level actor of the type registered as `type_name`, from `state` written
    /// at layout `version`, optionally under `name`.
    Spawn {
        request: u64,
        type_name: String,
        name: Option<String>,
        version: u32,
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
    },
    /// The answer.
    Spawned { request: u64, result: Spawned },
}

/// Why a node refused to spawn an actor on another node's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnRefusal {
    /// No actor type is registered under this name there
    /// ([`SystemBuilder::register`](amber_actors::SystemBuilder::register)).
    #[error("no actor type is registered as {0:?}")]
    UnknownType(String),
    /// The state does not decode as that type's state there.
    #[error("the state does not decode: {0}")]
    State(String),
    /// Another live actor already has this name there.
    #[error("an actor named {0:?} already exists")]
    NameTaken(String),
    /// Its actor system is shutting down.
    #[error("the actor system is shutting down")]
    ShuttingDown,
}

impl From<SpawnError> for SpawnRefusal {
    fn from(e: SpawnError) -> Self {
        match e {
            SpawnError::UnknownType(t) => SpawnRefusal::UnknownType(t),
            SpawnError::State(e) => SpawnRefusal::State(e.to_string()),
            SpawnError::NameTaken(n) => SpawnRefusal::NameTaken(n),
            SpawnError::ShuttingDown => SpawnRefusal::ShuttingDown,
        }
    }
}

impl Cluster {
    /// Spawns `actor` as a top-level actor on `node`, registered there under `name` if
    /// given, and returns a ref to it.
    ///
    /// The state is encoded with [`ActorState::encode_state`] and sent with
    /// [`A::TYPE_NAME`](ActorState::TYPE_NAME); `node`'s system must have registered `A`
    /// ([`SystemBuilder::register`](amber_actors::SystemBuilder::register)). It rebuilds the
    /// actor with [`ActorState::decode_state`] (fields excluded from the state are rebuilt
    /// there) and starts it, `on_start` included. A refusal comes back as
    /// [`ClusterError::SpawnRefused`]. If no answer comes within the system's ask timeout
    /// ([`ClusterError::Timeout`]) or the node goes down first ([`ClusterError::NodeDown`]),
    /// the actor may or may not have been spawned.
    pub async fn spawn_on<A: ActorState>(
        &self,
        node: &NodeId,
        name: Option<&str>,
        actor: A,
    ) -> Result<ActorRef<A>, ClusterError> {
        let shared = &self.shared;
        if !shared.nodes.contains_key(node) {
            return Err(ClusterError::NotConnected(node.clone()));
        }
        let state = actor.encode_state().map_err(ClusterError::Encode)?;
        drop(actor);
        let (request, rx) = shared.spawns.open(node);
        let message = SpawnControl::Spawn {
            request,
            type_name: A::TYPE_NAME.to_owned(),
            name: name.map(str::to_owned),
            version: A::VERSION,
            state,
        };
        let frame = Frame::Control(Control::Spawn(message).encode());
        if let Err(e) = shared.transport.send(node, &frame).await {
            shared.spawns.remove(request);
            return Err(e.into());
        }
        let answer = shared.spawns.answer(node, request, rx, self.system().ask_timeout()).await?;
        let (id, _type_name) =
            answer.map_err(|reason| ClusterError::SpawnRefused { node: node.clone(), reason })?;
        Ok(shared.host().remote_ref(id, shared.route(node.clone())))
    }
}

/// Handles a spawn message from `from`.
pub(super) fn on_control(shared: &Arc<Shared>, from: NodeId, message: SpawnControl) {
    match message {
        SpawnControl::Spawn { request, type_name, name, version, state } => {
            let result = shared
                .system()
                .spawn_registered(&type_name, name, version, &state)
                .map(|(id, type_name)| (id, type_name.to_owned()))
                .map_err(|e| {
                    if let Some(suppressed) = shared.strikes.warn(&from, Instant::now()) {
                        tracing::warn!(node = %from, %type_name, error = %e, suppressed, "refused to spawn an actor for another node");
                    }
                    SpawnRefusal::from(e)
                });
            if let Ok((id, _)) = &result {
                tracing::debug!(node = %from, %type_name, actor = %id, "spawned an actor for another node");
            }
            let answer = SpawnControl::Spawned { request, result };
            let _ = shared.outbound(&from).send(Frame::Control(Control::Spawn(answer).encode()));
        }
        SpawnControl::Spawned { request, result } => {
            if let Some(tx) = shared.spawns.take(request) {
                let _ = tx.send(result);
            }
        }
    }
}
