//! Where keys and shards go, as every node computes it alike: a key's shard by a stable
//! hash of the key, a shard's node by rendezvous (highest-random-weight) hashing over the
//! current nodes.
//!
//! Rendezvous hashing gives each (shard, node) pair a score and the shard to the node with
//! the highest: a node that joins takes exactly the shards it now scores highest on, from
//! whichever node had them, and no shard moves between the others; a node that leaves gives
//! each of its shards to that shard's runner-up. Both hashes are SHA-256 (already a
//! dependency of the handshake), so they are the same on every platform, build and
//! version of Rust, unlike `std`'s `DefaultHasher`.

use sha2::{Digest, Sha256};

use crate::NodeId;

/// The shard of `key` among `shards` (which is at least 1).
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let digest = Sha256::new().chain_update(b"amber shard key v1\0").chain_update(key).finalize();
    (first_u64(&digest) % u64::from(shards.max(1))) as u32
}

/// The node that owns `shard` among `nodes`: the one with the highest score (ties, which
/// need a SHA-256 collision on 64 bits, go to the node name that sorts first). `None` if
/// `nodes` is empty.
pub(crate) fn owner(shard: u32, nodes: &[NodeId]) -> Option<&NodeId> {
    nodes.iter().max_by(|a, b| score(shard, a).cmp(&score(shard, b)).then_with(|| b.cmp(a)))
}

/// The weight of `node` for `shard`.
fn score(shard: u32, node: &NodeId) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"amber shard owner v1\0")
        .chain_update(shard.to_be_bytes())
        .chain_update(node.as_str())
        .finalize();
    first_u64(&digest)
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::from(*n)).collect()
    }

    fn owners(shards: u32, nodes: &[NodeId]) -> Vec<NodeId> {
        (0..shards).map(|s| owner(s, nodes).unwrap().clone()).collect()
    }

    #[test]
    fn keys_spread_over_the_shards_and_stay_put() {
        let mut counts = [0u32; 16];
        for k in 0..16_000 {
            counts[shard_of(&format!("account {k}"), 16) as usize] += 1;
        }
        // 1000 expected per shard; a stable hash of this quality stays well within 20 %.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        assert_eq!(shard_of("account 42", 16), shard_of("account 42", 16));
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(shard_of("anything", 0), 0, "no shards reads as one");
    }

    #[test]
    fn the_owner_does_not_depend_on_the_order_of_the_nodes() {
        let a = nodes(&["a", "b", "c"]);
        let b = nodes(&["c", "a", "b"]);
        assert_eq!(owners(64, &a), owners(64, &b));
        assert_eq!(owner(3, &[]), None);
    }

    #[test]
    fn a_join_moves_only_the_shards_the_new_node_takes() {
        let before = owners(256, &nodes(&["a", "b", "c"]));
        let after = owners(256, &nodes(&["a", "b", "c", "d"]));
        let moved: Vec<_> = (0..256).filter(|&s| before[s] != after[s]).collect();
        assert!(moved.iter().all(|&s| after[s].as_str() == "d"), "only to the new node");
        // About a quarter; never none, never all.
        assert!((30..100).contains(&moved.len()), "{} shards moved", moved.len());
    }

    #[test]
    fn a_leave_moves_only_the_shards_of_the_node_that_left() {
        let before = owners(256, &nodes(&["a", "b", "c", "d"]));
        let after = owners(256, &nodes(&["a", "b", "d"]));
        for s in 0..256 {
            if before[s].as_str() != "c" {
                assert_eq!(before[s], after[s], "shard {s} moved though its node stayed");
            } else {
                assert_ne!(after[s].as_str(), "c");
            }
        }
    }
}
