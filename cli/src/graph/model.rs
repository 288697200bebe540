//! The picture of a checkpoint as data, before any format.

use std::collections::{BTreeMap, HashMap, HashSet};

use amber_snapshot::{ActorId, Checkpoint};

use super::shard::{self, Place, ShardCounts};

/// What an edge stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum EdgeKind {
    /// A parent supervises a child (from parent to child).
    Parent,
    /// An actor watches another (from watcher to watched).
    Watch,
    /// Messages in flight (from sender to receiver).
    InFlight,
}

/// A box: one actor, all actors of one type on one node, or the entities (and keeper) of one
/// shard on one node.
#[derive(Debug, Clone)]
pub(crate) struct Vertex {
    /// A unique key, usable as an identifier in DOT and SVG.
    pub(crate) key: String,
    /// The first line: the actor's name or id, or the type of a group.
    pub(crate) title: String,
    /// The second line: the actor's type, or the group's count.
    pub(crate) detail: String,
    /// How far it is from the top of its supervision tree (0 for a top-level actor).
    pub(crate) depth: usize,
}

/// The actors of one node.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    /// The node's name.
    pub(crate) node: String,
    /// Where the node listened, if recorded.
    pub(crate) address: Option<String>,
    /// Its boxes, by depth and then by id.
    pub(crate) vertices: Vec<Vertex>,
    /// How many actors its boxes stand for.
    pub(crate) actors: usize,
}

/// An arrow between two boxes, standing for `count` links or messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    /// The key of the box it starts at.
    pub(crate) from: String,
    /// The key of the box it points to.
    pub(crate) to: String,
    /// What it stands for.
    pub(crate) kind: EdgeKind,
    /// How many links or messages.
    pub(crate) count: usize,
}

/// A checkpoint as a picture.
#[derive(Debug, Clone)]
pub(crate) struct Picture {
    /// The checkpoint's name and epoch, as a caption.
    pub(crate) caption: String,
    /// Whether actors were collapsed into one box per type and node.
    pub(crate) collapsed: bool,
    /// One cluster per node, in the manifest's order.
    pub(crate) clusters: Vec<Cluster>,
    /// Boxes outside every node: senders from outside the system, and senders the
    /// checkpoint does not list.
    pub(crate) outside: Vec<Vertex>,
    /// The arrows, by kind, then endpoints.
    pub(crate) edges: Vec<Edge>,
}

/// The key of the box for senders from outside the system.
pub(crate) const OUTSIDE: &str = "outside";
/// The key of the box for senders the checkpoint does not list (stopped before the cut).
pub(crate) const UNLISTED: &str = "unlisted";

fn actor_key(id: ActorId) -> String {
    format!("a{}_{}", id.seq(), id.system())
}

impl Picture {
    /// The picture of `checkpoint`: one box per actor, or with more than `collapse_above`
    /// actors one box per type and node. With `shards`, sharded entities and their shards'
    /// keepers are drawn one box per shard and node instead (with counts), their shard
    /// computed from their key over their type's shard count, and the other actors as
    /// before (`collapse_above` counts those only); `Err` if a keeper's shard says a count
    /// is not the sharding's, or a sharded type has no count.
    pub(crate) fn of(
        checkpoint: &Checkpoint,
        collapse_above: usize,
        shards: Option<&ShardCounts>,
    ) -> Result<Picture, String> {
        let manifest = &checkpoint.manifest;
        let mut places: HashMap<ActorId, Place> = HashMap::new();
        if let Some(shards) = shards {
            for entry in &manifest.actors {
                if let Some(place) = shard::place(entry, shards)? {
                    places.insert(entry.id, place);
                }
            }
        }
        let collapsed = manifest.actors.len() - places.len() > collapse_above;
        let entries: HashMap<ActorId, usize> =
            manifest.actors.iter().enumerate().map(|(i, e)| (e.id, i)).collect();

        // Depth in the supervision tree, following parents within the checkpoint.
        let depth_of = |id: ActorId| {
            let (mut depth, mut at, mut seen) = (0, id, HashSet::new());
            while let Some(parent) = entries.get(&at).and_then(|&i| manifest.actors[i].parent) {
                if !entries.contains_key(&parent) || !seen.insert(parent) {
                    break;
                }
                depth += 1;
                at = parent;
            }
            depth
        };

        // The box each actor is drawn in.
        let mut box_of: HashMap<ActorId, String> = HashMap::new();
        let mut clusters: Vec<Cluster> = manifest
            .nodes
            .iter()
            .map(|n| Cluster {
                node: n.node.clone(),
                address: n.address.clone(),
                vertices: Vec::new(),
                actors: 0,
            })
            .collect();
        let cluster_index: HashMap<String, usize> =
            clusters.iter().enumerate().map(|(i, c)| (c.node.clone(), i)).collect();
        let mut sorted: Vec<_> = manifest.actors.iter().collect();
        sorted.sort_unstable_by_key(|e| e.id);
        // Per cluster, per type: the group's vertex index.
        let mut groups: HashMap<(usize, String), usize> = HashMap::new();
        // Per cluster, per type and shard: the shard's vertex index; per shard vertex, its
        // shard, entities and whether its keeper is in it.
        let mut shard_groups: HashMap<(usize, String, u32), usize> = HashMap::new();
        let mut shard_tally: HashMap<String, (u32, usize, bool)> = HashMap::new();
        for entry in sorted {
            // `validate` guarantees the node is listed.
            let Some(&c) = cluster_index.get(&entry.node) else { continue };
            let cluster = &mut clusters[c];
            cluster.actors += 1;
            let depth = depth_of(entry.id);
            if let Some(place) = places.get(&entry.id) {
                let group = (c, place.type_name.clone(), place.shard);
                let at = *shard_groups.entry(group).or_insert_with(|| {
                    cluster.vertices.push(Vertex {
                        key: format!("s{c}_{}", cluster.vertices.len()),
                        title: format!("{} shard {}", place.type_name, place.shard),
                        detail: String::new(),
                        depth,
                    });
                    cluster.vertices.len() - 1
                });
                let vertex = &mut cluster.vertices[at];
                vertex.depth = vertex.depth.min(depth);
                let tally =
                    shard_tally.entry(vertex.key.clone()).or_insert((place.shard, 0, false));
                if place.keeper {
                    tally.2 = true;
                } else {
                    tally.1 += 1;
                }
                box_of.insert(entry.id, vertex.key.clone());
            } else if collapsed {
                let at = *groups.entry((c, entry.type_name.clone())).or_insert_with(|| {
                    cluster.vertices.push(Vertex {
                        key: format!("g{c}_{}", cluster.vertices.len()),
                        title: entry.type_name.clone(),
                        detail: String::new(),
                        depth,
                    });
                    cluster.vertices.len() - 1
                });
                let vertex = &mut cluster.vertices[at];
                vertex.depth = vertex.depth.min(depth);
                box_of.insert(entry.id, vertex.key.clone());
            } else {
                let key = actor_key(entry.id);
                box_of.insert(entry.id, key.clone());
                cluster.vertices.push(Vertex {
                    key,
                    title: entry.name.clone().unwrap_or_else(|| entry.id.to_string()),
                    detail: match &entry.name {
                        Some(_) => format!("{}  {}", entry.type_name, entry.id),
                        None => entry.type_name.clone(),
                    },
                    depth,
                });
            }
        }
        if collapsed {
            let mut sizes: HashMap<String, usize> = HashMap::new();
            for key in box_of.values() {
                *sizes.entry(key.clone()).or_default() += 1;
            }
            for vertex in clusters.iter_mut().flat_map(|c| c.vertices.iter_mut()) {
                let n = sizes.get(&vertex.key).copied().unwrap_or(0);
                vertex.detail = format!("{n} actor{}", if n == 1 { "" } else { "s" });
            }
        }
        for vertex in clusters.iter_mut().flat_map(|c| c.vertices.iter_mut()) {
            if let Some(&(_, n, keeper)) = shard_tally.get(&vertex.key) {
                let plural = if n == 1 { "y" } else { "ies" };
                let keeper = if keeper { " + keeper" } else { "" };
                vertex.detail = format!("{n} entit{plural}{keeper}");
            }
        }
        for cluster in &mut clusters {
            // Stable: within a depth, in id (or first-id) order; shards after the other
            // actors, in shard order.
            let shard = |v: &Vertex| shard_tally.get(&v.key).map(|t| t.0);
            cluster.vertices.sort_by_key(|v| (v.depth, shard(v)));
        }

        let mut counts: BTreeMap<(EdgeKind, String, String), usize> = BTreeMap::new();
        let link = |kind, from: ActorId, to: ActorId, counts: &mut BTreeMap<_, usize>| {
            if let (Some(from), Some(to)) = (box_of.get(&from), box_of.get(&to)) {
                *counts.entry((kind, from.clone(), to.clone())).or_default() += 1;
            }
        };
        let mut watches = HashSet::new();
        for entry in &manifest.actors {
            if let Some(parent) = entry.parent {
                link(EdgeKind::Parent, parent, entry.id, &mut counts);
            }
            for &watched in &entry.watching {
                watches.insert((entry.id, watched));
            }
            for &watcher in &entry.watchers {
                watches.insert((watcher, entry.id));
            }
        }
        let mut watches: Vec<_> = watches.into_iter().collect();
        watches.sort_unstable();
        for (watcher, watched) in watches {
            link(EdgeKind::Watch, watcher, watched, &mut counts);
        }
        let (mut from_outside, mut from_unlisted) = (false, false);
        for message in &checkpoint.in_flight {
            let Some(to) = box_of.get(&message.to) else { continue };
            let from = match message.from {
                None => {
                    from_outside = true;
                    OUTSIDE.to_owned()
                }
                Some(id) => match box_of.get(&id) {
                    Some(key) => key.clone(),
                    None => {
                        from_unlisted = true;
                        UNLISTED.to_owned()
                    }
                },
            };
            *counts.entry((EdgeKind::InFlight, from, to.clone())).or_default() += 1;
        }
        let edges = counts
            .into_iter()
            .map(|((kind, from, to), count)| Edge { from, to, kind, count })
            .collect();
        let mut outside = Vec::new();
        if from_outside {
            outside.push(Vertex {
                key: OUTSIDE.into(),
                title: "outside".into(),
                detail: "code outside the system".into(),
                depth: 0,
            });
        }
        if from_unlisted {
            outside.push(Vertex {
                key: UNLISTED.into(),
                title: "not in checkpoint".into(),
                detail: "senders since stopped".into(),
                depth: 0,
            });
        }
        let by_shard = shards.map(|n| format!("  by shard ({})", n.caption())).unwrap_or_default();
        Ok(Picture {
            caption: format!(
                "{}  epoch {}  {} actors  {} in flight{by_shard}",
                manifest.id,
                manifest.epoch.0,
                manifest.actors.len(),
                checkpoint.in_flight.len()
            ),
            collapsed,
            clusters,
            outside,
            edges,
        })
    }
}
