//! Node identities.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The name of a node (one [`Transport`](crate::Transport)), e.g. `"bank-1"`.
///
/// Nodes name themselves in their [`TransportConfig`](crate::TransportConfig) and exchange
/// names in the handshake; every link, event and send is keyed by it. A name is 1 to
/// [`NodeId::MAX_LEN`] bytes of UTF-8. It is cheap to clone (a shared string).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// The longest name, in bytes, that a handshake accepts.
    pub const MAX_LEN: usize = 255;

    /// The node called `name`. Names are checked when a transport binds and in the handshake.
    pub fn new(name: impl Into<String>) -> NodeId {
        NodeId(Arc::from(name.into()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Why this name cannot be used, if it cannot.
    pub(crate) fn check(&self) -> Result<(), NodeIdError> {
        match self.0.len() {
            0 => Err(NodeIdError::Empty),
            len if len > NodeId::MAX_LEN => Err(NodeIdError::TooLong { len }),
            _ => Ok(()),
        }
    }
}

/// Why a [`NodeId`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// The name is empty.
    #[error("a node id must not be empty")]
    Empty,
    /// The name is longer than [`NodeId::MAX_LEN`] bytes.
    #[error("a node id is at most {} bytes, this one is {len}", NodeId::MAX_LEN)]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:?})", &*self.0)
    }
}

impl From<&str> for NodeId {
    fn from(name: &str) -> NodeId {
        NodeId(Arc::from(name))
    }
}

impl From<String> for NodeId {
    fn from(name: String) -> NodeId {
        NodeId::new(name)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NodeId, D::Error> {
        String::deserialize(deserializer).map(NodeId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_length() {
        assert_eq!(NodeId::new("a").check(), Ok(()));
        assert_eq!(NodeId::new("").check(), Err(NodeIdError::Empty));
        assert_eq!(NodeId::new("x".repeat(NodeId::MAX_LEN)).check(), Ok(()));
        assert_eq!(
            NodeId::new("x".repeat(NodeId::MAX_LEN + 1)).check(),
            Err(NodeIdError::TooLong { len: NodeId::MAX_LEN + 1 })
        );
    }

    #[test]
    fn orders_and_displays_as_the_name() {
        assert!(NodeId::from("a") < NodeId::from("b"));
        assert_eq!(NodeId::from("node-1").to_string(), "node-1");
        assert_eq!(format!("{:?}", NodeId::from("n")), "NodeId(\"n\")");
    }
}
