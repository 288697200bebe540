//! Sharded entities by shard, for `amber graph --shards N`.
//!
//! amber registers an entity of type `T` under `shard:T/<key>` and the keeper of a shard's
//! passivated entities under `shard-kept:T/<shard>`. A checkpoint does not record the
//! sharding's shard count, so the caller gives it: an entity's shard is then its key's, by
//! the hash amber's sharding uses (`amber_remote`'s `hash::shard_of`: the first 8 bytes of a
//! SHA-256 of a fixed tag and the key, big-endian, modulo the count). A test of the CLI
//! checks it against `Sharding::shard_of`.

use amber_snapshot::ActorEntry;
use sha2::{Digest, Sha256};

/// The registered type name of shard keepers.
const KEEPER_TYPE: &str = "amber.sharding.Keeper";

/// The shard of `key` among `shards` (0 reads as 1), as amber's sharding computes it.
pub(super) fn shard_of(key: &str, shards: u32) -> u32 {
    let digest = Sha256::new().chain_update(b"amber shard key v1\0").chain_update(key).finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(shards.max(1))) as u32
}

/// Where an actor belongs when entities are grouped by shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Place {
    /// The entity type's registered name.
    pub(super) type_name: String,
    /// The shard.
    pub(super) shard: u32,
    /// Whether the actor is the shard's keeper (else one of its entities).
    pub(super) keeper: bool,
}

/// The shard `entry` belongs to among `shards`, if it is a sharded entity or a shard's
/// keeper; `Err` for a keeper of a shard past `shards` (the count given is not the
/// sharding's).
pub(super) fn place(entry: &ActorEntry, shards: u32) -> Result<Option<Place>, String> {
    let Some(name) = entry.name.as_deref() else { return Ok(None) };
    if entry.type_name == KEEPER_TYPE {
        let Some((type_name, shard)) =
            name.strip_prefix("shard-kept:").and_then(|rest| rest.rsplit_once('/'))
        else {
            return Ok(None);
        };
        let Ok(shard) = shard.parse::<u32>() else { return Ok(None) };
        if shard >= shards {
            return Err(format!(
                "{name} keeps shard {shard}, but --shards is {shards}: give the sharding's shard count"
            ));
        }
        return Ok(Some(Place { type_name: type_name.to_owned(), shard, keeper: true }));
    }
    let key = name
        .strip_prefix("shard:")
        .and_then(|rest| rest.strip_prefix(entry.type_name.as_str()))
        .and_then(|rest| rest.strip_prefix('/'));
    Ok(key.map(|key| Place {
        type_name: entry.type_name.clone(),
        shard: shard_of(key, shards),
        keeper: false,
    }))
}

#[cfg(test)]
mod tests {
    use amber_snapshot::{ActorId, SpawnCapacity, SpawnRestart, SystemId};

    use super::*;

    fn entry(type_name: &str, name: Option<&str>) -> ActorEntry {
        ActorEntry {
            id: ActorId::new(SystemId(1), 1),
            type_name: type_name.into(),
            name: name.map(Into::into),
            node: "a".into(),
            parent: None,
            watchers: Vec::new(),
            watching: Vec::new(),
            state_version: 0,
            capacity: SpawnCapacity::SystemDefault,
            restart: SpawnRestart::Never,
        }
    }

    #[test]
    fn entities_and_keepers_have_a_shard_and_other_actors_none() {
        let account = entry("bank.Account", Some("shard:bank.Account/acct-42"));
        let at = place(&account, 16).unwrap().unwrap();
        assert_eq!(at.shard, shard_of("acct-42", 16));
        assert!(!at.keeper);
        let keeper = entry(KEEPER_TYPE, Some("shard-kept:bank.Account/7"));
        let keeper = place(&keeper, 16).unwrap().unwrap();
        assert_eq!(
            (keeper.type_name.as_str(), keeper.shard, keeper.keeper),
            ("bank.Account", 7, true)
        );
        // Another type's prefix, no name, a plain name: not sharded.
        assert_eq!(place(&entry("x.Other", Some("shard:bank.Account/k")), 16), Ok(None));
        assert_eq!(place(&entry("bank.Account", None), 16), Ok(None));
        assert_eq!(place(&entry("bank.Account", Some("account-1")), 16), Ok(None));
        let far = entry(KEEPER_TYPE, Some("shard-kept:bank.Account/40"));
        assert!(place(&far, 16).unwrap_err().contains("--shards is 16"));
    }
}
