//! Sharded entities by shard, for `amber graph --shards [N]`.
//!
//! amber registers an entity of type `T` under `shard:T/<key>` and the keeper of a shard's
//! passivated entities under `shard-kept:T/<shard>`. Each node's sharding of `T` records its
//! shard count in its node's entry of the checkpoint (annotation `sharding:T`, in decimal;
//! `Sharding::annotation_key`), which `--shards` alone reads; `--shards N` gives the count
//! instead (for every type), as for a checkpoint taken before counts were recorded. An
//! entity's shard is then its key's, by the hash amber's sharding uses (`amber_remote`'s
//! `hash::shard_of`: the first 8 bytes of a SHA-256 of a fixed tag and the key, big-endian,
//! modulo the count). A test of the CLI checks it against `Sharding::shard_of`.

use std::collections::BTreeMap;

use amber_snapshot::{ActorEntry, Manifest};
use sha2::{Digest, Sha256};

/// The registered type name of shard keepers.
const KEEPER_TYPE: &str = "amber.sharding.Keeper";

/// The prefix of the annotation a sharding records its shard count under, followed by the
/// entity type's registered name.
const ANNOTATION_PREFIX: &str = "sharding:";

/// The shard counts entities are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShardCounts {
    /// Given on the command line, for every sharded type.
    Given(u32),
    /// As the checkpoint records them, per entity type (never empty).
    Recorded(BTreeMap<String, u32>),
}

impl ShardCounts {
    /// The counts `manifest` records (each node's `sharding:<type>` annotations); `Err` if
    /// it records none, if two nodes recorded different counts for a type, or if one is not
    /// a positive number.
    pub(crate) fn recorded(manifest: &Manifest) -> Result<ShardCounts, String> {
        let mut counts = BTreeMap::new();
        for node in &manifest.nodes {
            for (key, value) in &node.annotations {
                let Some(type_name) = key.strip_prefix(ANNOTATION_PREFIX) else { continue };
                let shards = match value.parse::<u32>() {
                    Ok(shards) if shards > 0 => shards,
                    _ => {
                        return Err(format!(
                            "node {} recorded {value:?} as the shard count of {type_name}, \
                             not a shard count: give --shards N",
                            node.node
                        ));
                    }
                };
                if let Some(&(first_node, first)) = counts.get(type_name)
                    && first != shards
                {
                    return Err(format!(
                        "the nodes recorded different shard counts for {type_name}: node \
                         {first_node} {first}, node {} {shards}: give --shards N",
                        node.node
                    ));
                }
                counts.entry(type_name).or_insert((node.node.as_str(), shards));
            }
        }
        if counts.is_empty() {
            return Err("the checkpoint records no shard count (it was taken before \
                        checkpoints recorded them, or with no sharding running): give \
                        --shards N"
                .to_owned());
        }
        Ok(ShardCounts::Recorded(
            counts.into_iter().map(|(type_name, (_, n))| (type_name.to_owned(), n)).collect(),
        ))
    }

    /// The shard count of the entities of `type_name`.
    fn of(&self, type_name: &str) -> Result<u32, String> {
        match self {
            ShardCounts::Given(n) => Ok(*n),
            ShardCounts::Recorded(counts) => counts.get(type_name).copied().ok_or_else(|| {
                format!(
                    "the checkpoint records no shard count for {type_name} (only for {}): \
                     give --shards N",
                    counts.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }

    /// How the picture's caption says it: `8 shards`, or per type as recorded.
    pub(crate) fn caption(&self) -> String {
        match self {
            ShardCounts::Given(n) => format!("{n} shards"),
            ShardCounts::Recorded(counts) => counts
                .iter()
                .map(|(type_name, n)| format!("{type_name}: {n} shards"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

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

/// The shard `entry` belongs to by `counts`, if it is a sharded entity or a shard's
/// keeper; `Err` for a keeper of a shard past its type's count (a count given that is not
/// the sharding's), or for a type `counts` has no count for.
pub(super) fn place(entry: &ActorEntry, counts: &ShardCounts) -> Result<Option<Place>, String> {
    let Some(name) = entry.name.as_deref() else { return Ok(None) };
    if entry.type_name == KEEPER_TYPE {
        let Some((type_name, shard)) =
            name.strip_prefix("shard-kept:").and_then(|rest| rest.rsplit_once('/'))
        else {
            return Ok(None);
        };
        let Ok(shard) = shard.parse::<u32>() else { return Ok(None) };
        let shards = counts.of(type_name)?;
        if shard >= shards {
            return Err(match counts {
                ShardCounts::Given(_) => format!(
                    "{name} keeps shard {shard}, but --shards is {shards}: give the sharding's shard count"
                ),
                ShardCounts::Recorded(_) => format!(
                    "{name} keeps shard {shard}, but the checkpoint records {shards} shards \
                     for {type_name}: give the sharding's shard count with --shards N"
                ),
            });
        }
        return Ok(Some(Place { type_name: type_name.to_owned(), shard, keeper: true }));
    }
    let key = name
        .strip_prefix("shard:")
        .and_then(|rest| rest.strip_prefix(entry.type_name.as_str()))
        .and_then(|rest| rest.strip_prefix('/'));
    let Some(key) = key else { return Ok(None) };
    Ok(Some(Place {
        type_name: entry.type_name.clone(),
        shard: shard_of(key, counts.of(&entry.type_name)?),
        keeper: false,
    }))
}

#[cfg(test)]
mod tests {
    use amber_snapshot::{
        ActorId, CheckpointId, Epoch, NodeEntry, SpawnCapacity, SpawnRestart, SystemId,
    };

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
        let given = ShardCounts::Given(16);
        let account = entry("bank.Account", Some("shard:bank.Account/acct-42"));
        let at = place(&account, &given).unwrap().unwrap();
        assert_eq!(at.shard, shard_of("acct-42", 16));
        assert!(!at.keeper);
        let keeper = entry(KEEPER_TYPE, Some("shard-kept:bank.Account/7"));
        let keeper = place(&keeper, &given).unwrap().unwrap();
        assert_eq!(
            (keeper.type_name.as_str(), keeper.shard, keeper.keeper),
            ("bank.Account", 7, true)
        );
        // Another type's prefix, no name, a plain name: not sharded.
        assert_eq!(place(&entry("x.Other", Some("shard:bank.Account/k")), &given), Ok(None));
        assert_eq!(place(&entry("bank.Account", None), &given), Ok(None));
        assert_eq!(place(&entry("bank.Account", Some("account-1")), &given), Ok(None));
        let far = entry(KEEPER_TYPE, Some("shard-kept:bank.Account/40"));
        assert!(place(&far, &given).unwrap_err().contains("--shards is 16"));
    }

    fn manifest(recorded: &[(&str, &[(&str, &str)])]) -> Manifest {
        Manifest {
            id: CheckpointId(1),
            epoch: Epoch(1),
            created_unix_ms: 0,
            nodes: recorded
                .iter()
                .map(|(node, annotations)| {
                    let mut entry = NodeEntry::new(*node, None);
                    for (key, value) in *annotations {
                        entry.annotations.insert((*key).into(), (*value).into());
                    }
                    entry
                })
                .collect(),
            actors: Vec::new(),
        }
    }

    #[test]
    fn recorded_counts_are_read_per_type_and_refused_when_missing_or_disagreeing() {
        let both = manifest(&[
            ("a", &[("sharding:bank.Account", "16"), ("other", "x")]),
            ("b", &[("sharding:bank.Account", "16"), ("sharding:bank.Ledger", "4")]),
            ("c", &[]),
        ]);
        let counts = ShardCounts::recorded(&both).unwrap();
        let expected = [("bank.Account".to_owned(), 16), ("bank.Ledger".to_owned(), 4)];
        assert_eq!(counts, ShardCounts::Recorded(expected.into_iter().collect()));
        assert_eq!(counts.caption(), "bank.Account: 16 shards, bank.Ledger: 4 shards");
        let account = entry("bank.Account", Some("shard:bank.Account/acct-42"));
        assert_eq!(place(&account, &counts).unwrap().unwrap().shard, shard_of("acct-42", 16));
        let ledger = entry("bank.Ledger", Some("shard:bank.Ledger/acct-42"));
        assert_eq!(place(&ledger, &counts).unwrap().unwrap().shard, shard_of("acct-42", 4));
        let far = entry(KEEPER_TYPE, Some("shard-kept:bank.Ledger/4"));
        assert!(place(&far, &counts).unwrap_err().contains("records 4 shards for bank.Ledger"));
        // A type with no recorded count.
        let unknown = entry("x.Other", Some("shard:x.Other/k"));
        let error = place(&unknown, &counts).unwrap_err();
        assert!(error.contains("no shard count for x.Other") && error.contains("--shards N"));

        let none = manifest(&[("a", &[("other", "x")]), ("b", &[])]);
        let error = ShardCounts::recorded(&none).unwrap_err();
        assert!(error.contains("records no shard count") && error.contains("--shards N"));
        let disagree = manifest(&[
            ("a", &[("sharding:bank.Account", "16")]),
            ("b", &[("sharding:bank.Account", "8")]),
        ]);
        let error = ShardCounts::recorded(&disagree).unwrap_err();
        assert!(error.contains("node a 16, node b 8"), "{error}");
        let zero = manifest(&[("a", &[("sharding:bank.Account", "0")])]);
        assert!(ShardCounts::recorded(&zero).unwrap_err().contains("not a shard count"));
    }
}
