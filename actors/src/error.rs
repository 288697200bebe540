//! Errors of the send, ask, spawn and lookup paths.
//!
//! A failed send gives the message back, so nothing is lost silently.

use std::fmt;
use std::time::Duration;

/// `tell` failed: the actor has stopped. The message is given back.
#[derive(PartialEq, Eq)]
pub struct SendError<M>(pub M);

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("actor has stopped")
    }
}

impl<M> std::error::Error for SendError<M> {}

/// `try_tell` failed. The message is given back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<M> {
    /// The bounded mailbox is full.
    Full(M),
    /// The actor has stopped.
    Stopped(M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m) | TrySendError::Stopped(m) => m,
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Stopped(_) => f.write_str("Stopped(..)"),
        }
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("mailbox is full"),
            TrySendError::Stopped(_) => f.write_str("actor has stopped"),
        }
    }
}

impl<M> std::error::Error for TrySendError<M> {}

impl<M> From<SendError<M>> for TrySendError<M> {
    fn from(e: SendError<M>) -> Self {
        TrySendError::Stopped(e.0)
    }
}

/// `ask` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The actor had stopped before the request was delivered.
    Stopped,
    /// The actor stopped, or dropped the request, before it replied.
    NoReply,
    /// No reply came within the timeout. The request may still be handled later.
    Timeout(Duration),
    /// The actor lives on another node, which is down or unreachable (the node's name):
    /// the request could not be sent, or the node went down before it replied.
    NodeDown(String),
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Stopped => f.write_str("actor has stopped"),
            AskError::NoReply => f.write_str("actor stopped before replying"),
            AskError::Timeout(d) => write!(f, "no reply within {d:?}"),
            AskError::NodeDown(node) => write!(f, "node {node} is down"),
        }
    }
}

impl std::error::Error for AskError {}

/// Spawning an actor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// Another live actor already has this name.
    NameTaken(String),
    /// The system is shutting down and accepts no new actors.
    ShuttingDown,
    /// No actor type is registered under this name (spawning by type name, see
    /// [`ActorSystem::spawn_registered`](crate::ActorSystem::spawn_registered)).
    UnknownType(String),
    /// The state does not decode as the registered type's state.
    State(crate::StateError),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NameTaken(n) => write!(f, "an actor named {n:?} already exists"),
            SpawnError::ShuttingDown => f.write_str("actor system is shutting down"),
            SpawnError::UnknownType(t) => write!(f, "no actor type is registered as {t:?}"),
            SpawnError::State(e) => write!(f, "cannot build the actor: {e}"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::State(e) => Some(e),
            _ => None,
        }
    }
}

/// Looking up an actor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No live actor has this name (or id).
    NotFound(String),
    /// The actor exists but is of another type.
    WrongType {
        /// What was looked up.
        name: String,
        /// The type asked for.
        expected: &'static str,
        /// The actor's real type.
        found: &'static str,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound(n) => write!(f, "no actor named {n:?}"),
            LookupError::WrongType { name, expected, found } => {
                write!(f, "actor {name:?} is a {found}, not a {expected}")
            }
        }
    }
}

impl std::error::Error for LookupError {}

/// Encoding or decoding a value as MessagePack failed. It serializes as its message (it
/// travels between nodes inside a snapshot's [`CaptureProblem`](crate::CaptureProblem)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CodecError {
    message: String,
}

impl CodecError {
    pub(crate) fn new(message: String) -> Self {
        CodecError { message }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "messagepack codec: {}", self.message)
    }
}

impl std::error::Error for CodecError {}
