//! `amber graph --shards` on a checkpoint of a sharded bank over three nodes (clusters in one
//! process over 127.0.0.1, port 0): one box per shard and node, with counts, whatever the
//! number of entities; a passivated account's keeper in its shard's box; in-flight messages
//! counted between shards. The shard count is the one the checkpoint records, or one given;
//! a checkpoint that records none (or two) needs it given.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amber::cluster::{Sharding, ShardingConfig};
use amber::prelude::*;
use amber::snapshot::{CheckpointStore, FsStore};
use amber::{Cluster, TransportConfig};
use support::{Account, EACH, amber, assert_fails, bounded, json, ok, parse_svg, start_trading};

const SHARDS: u32 = 8;
const ACCOUNTS: usize = 40;

async fn node(name: &str) -> (Cluster, Sharding<Account>) {
    let config = TransportConfig::new(
        name,
        "127.0.0.1:0".parse().unwrap(),
        b"cli test shared secret".to_vec(),
    )
    .with_heartbeat(Duration::from_millis(100), Duration::from_millis(1000));
    let cluster = bounded(Cluster::start(ActorSystem::builder().register::<Account>(), config))
        .await
        .unwrap();
    // Passivation on, but too slow to happen by itself during the test: one account is
    // passivated by hand.
    let config = ShardingConfig::new(SHARDS).passivate_after(Duration::from_secs(3600));
    let sharding = Sharding::start_config_with(&cluster, config, |_| Account {
        balance: EACH,
        ..Account::default()
    })
    .unwrap();
    (cluster, sharding)
}

/// The shard boxes of `amber graph`'s DOT: (node, shard) to the box's count line.
fn shard_boxes(dot: &str) -> BTreeMap<(String, u32), String> {
    let mut boxes = BTreeMap::new();
    let mut node = String::new();
    for line in dot.lines().map(str::trim) {
        if let Some(label) = line.strip_prefix("label=\"node ") {
            node = label.split([' ', ':']).next().unwrap().to_owned();
        } else if let Some((_, label)) = line.split_once("[label=\"bank.Account shard ") {
            let (shard, count) = label.split_once("\\n").unwrap();
            let count = count.trim_end_matches("\"];").to_owned();
            let previous = boxes.insert((node.clone(), shard.parse().unwrap()), count);
            assert_eq!(previous, None, "one box per shard and node: {line}");
        }
    }
    boxes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_groups_a_sharded_checkpoint_by_shard() {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(node(name).await);
    }
    for (i, (a, _)) in nodes.iter().enumerate() {
        for (b, _) in &nodes[i + 1..] {
            bounded(a.connect(b.local_addr())).await.unwrap();
        }
    }
    for (n, _) in &nodes {
        bounded(async {
            while n.nodes().len() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
    let on_a = &nodes[0].1;
    // The accounts trade among themselves; one more account, whose shard is past 1, stays
    // out of it and is passivated.
    let mut trading = Vec::new();
    for k in 0..ACCOUNTS {
        trading.push(bounded(on_a.entity(format!("acct-{k}")).entity()).await.unwrap());
    }
    start_trading(&trading, &trading).await;
    let idle = (0..).map(|k| format!("idle-{k}")).find(|k| on_a.shard_of(k) >= 2).unwrap();
    bounded(on_a.entity(idle.clone()).entity()).await.unwrap();
    let mut passivated = false;
    for (_, sharding) in &nodes {
        if sharding.local_keys().contains(&idle) {
            passivated = bounded(sharding.passivate(&idle)).await.unwrap();
        }
    }
    assert!(passivated, "{idle} passivated");

    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(tmp.path().join("store")).unwrap().with_durability(false));
    bounded(nodes[0].0.system().checkpoint(&store)).await.expect("checkpoint");
    // Where each account ran, as the sharding (the library's hash) says.
    let mut expected: BTreeMap<(String, u32), (usize, bool)> = BTreeMap::new();
    for (cluster, sharding) in &nodes {
        for key in sharding.local_keys() {
            let at = (cluster.node().to_string(), sharding.shard_of(&key));
            expected.entry(at).or_default().0 += 1;
        }
    }
    let idle_at = (on_a.owner_of(on_a.shard_of(&idle)).unwrap().to_string(), on_a.shard_of(&idle));
    for (cluster, _) in &nodes {
        cluster.shutdown().await;
    }
    // The keepers, as the checkpoint lists them: each shard that started an entity has one
    // on its owner (every start goes through it once passivation is on), the idle account's
    // among them.
    let dir = tmp.path().join("store").display().to_string();
    let inspect = json(&["inspect", &dir, "--latest", "--json"]);
    // Every node recorded the sharding's shard count, which inspect shows.
    let nodes = inspect["checkpoint"]["nodes"].as_array().unwrap_or_else(|| panic!("{inspect}"));
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert_eq!(node["annotations"]["sharding:bank.Account"], SHARDS.to_string(), "{node}");
    }
    let text = ok(&["inspect", &dir, "--latest"]);
    for name in ["a", "b", "c"] {
        let line = format!("  recorded {name}: sharding:bank.Account={SHARDS}");
        assert!(text.contains(&line), "{text}");
    }
    let mut keepers = Vec::new();
    for actor in inspect["actors"].as_array().unwrap() {
        if actor["type_name"] == "amber.sharding.Keeper" {
            let name = actor["name"].as_str().unwrap();
            let shard = name.strip_prefix("shard-kept:bank.Account/").unwrap().parse().unwrap();
            keepers.push((actor["node"].as_str().unwrap().to_owned(), shard));
        }
    }
    assert!(keepers.contains(&idle_at), "{keepers:?}");
    for at in keepers {
        expected.entry(at).or_default().1 = true;
    }
    let expected: BTreeMap<(String, u32), String> = expected
        .into_iter()
        .map(|(at, (n, keeper))| {
            let plural = if n == 1 { "y" } else { "ies" };
            (at, format!("{n} entit{plural}{}", if keeper { " + keeper" } else { "" }))
        })
        .collect();
    assert!(expected.len() <= 3 * SHARDS as usize);

    // Without N, the shard count the checkpoint records (every node recorded it).
    let dot = ok(&["graph", &dir, "--latest", "--shards"]);
    // The CLI's shard of each entity is the library's, and each shard is one box per node.
    assert_eq!(shard_boxes(&dot), expected, "{dot}");
    assert!(dot.contains(&format!("by shard (bank.Account: {SHARDS} shards)")), "{dot}");
    // The count given draws the same boxes.
    let shards = SHARDS.to_string();
    let given = ok(&["graph", &dir, "--latest", "--shards", &shards]);
    assert_eq!(shard_boxes(&given), expected, "{given}");
    assert!(given.contains(&format!("by shard ({SHARDS} shards)")), "{given}");
    // In-flight messages are counted between shard boxes (or from outside), every one of
    // them.
    let caption = dot.lines().find(|l| l.contains("graph [label=")).unwrap();
    let in_flight: usize = caption
        .split("  ")
        .find_map(|part| part.strip_suffix(" in flight"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{caption}"));
    let mut counted = 0;
    for edge in dot.lines().filter(|l| l.contains(" in flight\"]")) {
        let (ends, attributes) = edge.split_once(" [").unwrap();
        let (from, to) = ends.trim().split_once(" -> ").unwrap();
        assert!(from.starts_with("\"s") || from == "\"outside\"", "{edge}");
        assert!(to.starts_with("\"s"), "{edge}");
        let label = attributes.rsplit_once("label=\"").unwrap().1;
        counted += label.split(' ').next().unwrap().parse::<usize>().unwrap();
    }
    assert_eq!(counted, in_flight, "{dot}");

    // The SVG has the same boxes.
    let svg = ok(&["graph", &dir, "--latest", "--format", "svg", "--shards"]);
    assert_eq!(svg, ok(&["graph", &dir, "--latest", "--shards", "--format", "svg"]));
    let document = parse_svg(&svg);
    let boxes = document
        .descendants()
        .filter(|n| n.attribute("class") == Some("box") && n.attribute("id") != Some("outside"))
        .count();
    assert_eq!(boxes, expected.len());
    // Without --shards, one box per account (and the keeper).
    let plain = ok(&["graph", &dir, "--latest"]);
    assert_eq!(plain.matches("shard:bank.Account/acct-").count(), ACCOUNTS, "{plain}");

    // A shard count the keeper contradicts is a usage error, not a wrong picture.
    let output = amber(&["graph", &dir, "--latest", "--shards", "2"]);
    assert_fails(&output, 2, &["--shards is 2", "shard count"]);
    let output = amber(&["graph", &dir, "--latest", "--shards", "0"]);
    assert_fails(&output, 2, &["--shards"]);

    // A checkpoint that records no count (as one taken before counts were recorded) draws
    // by shard only with the count given; one whose nodes recorded different counts too.
    let checkpoint = FsStore::open(tmp.path().join("store")).unwrap().latest().unwrap().unwrap();
    let mut unrecorded = checkpoint.clone();
    for node in &mut unrecorded.manifest.nodes {
        assert!(node.annotations.remove("sharding:bank.Account").is_some(), "{}", node.node);
    }
    let mut disagreeing = checkpoint;
    disagreeing.manifest.nodes[1].annotations.insert("sharding:bank.Account".into(), "4".into());
    for (name, checkpoint, needles) in [
        ("unrecorded", unrecorded, ["records no shard count", "--shards N"]),
        ("disagreeing", disagreeing, ["different shard counts for bank.Account", "--shards N"]),
    ] {
        let store = FsStore::open(tmp.path().join(name)).unwrap().with_durability(false);
        store.save(&checkpoint).unwrap();
        let dir = tmp.path().join(name).display().to_string();
        assert_fails(&amber(&["graph", &dir, "--latest", "--shards"]), 2, &needles);
        let dot = ok(&["graph", &dir, "--latest", "--shards", &shards]);
        assert_eq!(shard_boxes(&dot), expected, "{name}: {dot}");
    }
}
