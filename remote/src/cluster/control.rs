//! The cluster's own messages between nodes, carried in `Frame::Control`.

use amber_snapshot::{ActorId, Epoch, SystemId};
use serde::{Deserialize, Serialize};

use super::migrate::MigrateControl;
use super::sharding::ShardControl;
use super::spawn::SpawnControl;
use super::watch::WatchControl;

/// A cluster control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Control {
    /// Sent on every new link: refs to actors first spawned by `system` route to the sender.
    /// `proxies` names the sharded entity types the sender is a proxy of (it hosts none of
    /// their entities), as of its announcement number `announced` (see
    /// `sharding/control.rs`).
    Hello { system: SystemId, proxies: Vec<String>, announced: u64 },
    /// Which actor is registered under `name` on the receiving node?
    Lookup { request: u64, name: String },
    /// The answer: the actor's id and stable type name, or `None` if no actor is registered
    /// under the name.
    Found { request: u64, result: Option<(ActorId, String)> },
    /// Watches across nodes (see `watch.rs`).
    Watch(WatchControl),
    /// Spawning on another node (see `spawn.rs`).
    Spawn(SpawnControl),
    /// Live migration (see `migrate.rs`).
    Migrate(MigrateControl),
    /// The sender, restored from the checkpoint of this epoch, has started its share
    /// (see `restore.rs`).
    Resumed { epoch: Epoch },
    /// A message of the snapshot protocol, opaque here (see
    /// `Host::on_snapshot_message`).
    Snapshot(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Sharded entities (see `sharding/control.rs`).
    Shard(ShardControl),
}

impl Control {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A plain enum of integers and strings: encoding cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Control, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}
