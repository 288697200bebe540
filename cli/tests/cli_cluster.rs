//! `amber` on checkpoints of a bank spread over three nodes (clusters in one process over
//! 127.0.0.1, port 0), with one account migrated between two checkpoints.

mod support;

use std::sync::Arc;
use std::time::Duration;

use amber::prelude::*;
use amber::snapshot::FsStore;
use amber::{Cluster, TransportConfig};
use serde_json::Value;
use support::{
    Account, EACH, bounded, json, money, ok, parse_svg, path, spawn_accounts, start_trading,
};

const PER_NODE: usize = 6;

async fn node(name: &str) -> Cluster {
    let config = TransportConfig::new(
        name,
        "127.0.0.1:0".parse().unwrap(),
        b"cli test shared secret".to_vec(),
    )
    .with_heartbeat(Duration::from_millis(100), Duration::from_millis(1000));
    bounded(Cluster::start(ActorSystem::builder().register::<Account>(), config)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_inspect_graph_and_a_migration_in_diff() {
    let nodes = [node("a").await, node("b").await, node("c").await];
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            bounded(a.connect(b.local_addr())).await.unwrap();
        }
    }
    for n in &nodes {
        bounded(async {
            while n.nodes().len() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
    let local: Vec<Vec<ActorRef<Account>>> =
        nodes.iter().map(|n| spawn_accounts(n.system(), PER_NODE)).collect();
    let all: Vec<ActorRef<Account>> = local.iter().flatten().cloned().collect();
    for (n, accounts) in nodes.iter().zip(&local) {
        // The same refs as seen from this node (they travel as ids).
        let bytes = nodes[0].system().encode(&all).unwrap();
        let peers: Vec<ActorRef<Account>> = n.system().decode(&bytes).unwrap();
        start_trading(accounts, &peers).await;
    }

    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(tmp.path().join("store")).unwrap().with_durability(false));
    tokio::time::sleep(Duration::from_millis(20)).await;
    bounded(nodes[0].system().checkpoint(&store)).await.expect("first checkpoint");
    let moving = local[0][0].id();
    bounded(nodes[0].migrate(moving, nodes[1].node())).await.expect("migrate");
    tokio::time::sleep(Duration::from_millis(20)).await;
    bounded(nodes[1].system().checkpoint(&store)).await.expect("second checkpoint");
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
    let dir = path(&tmp.path().join("store")).to_owned();
    let total = 3 * PER_NODE as u64 * EACH;

    for id in ["1", "2"] {
        let inspect = json(&["inspect", "--store", &dir, id, "--json"]);
        let (balances, in_flight) = money(&inspect);
        assert_eq!(balances + in_flight, total, "checkpoint {id}");
        let summary = json(&["inspect", "--store", &dir, id, "--summary", "--json"]);
        let by_node: Vec<(&str, u64)> = summary["actors"]["by_node"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["node"].as_str().unwrap(), n["count"].as_u64().unwrap()))
            .collect();
        let expected: Vec<(&str, u64)> = if id == "1" {
            vec![("a", 6), ("b", 6), ("c", 6)]
        } else {
            vec![("a", 5), ("b", 7), ("c", 6)]
        };
        assert_eq!(by_node, expected, "checkpoint {id}");
        let on_c = json(&["inspect", "--store", &dir, id, "--json", "--node", "c"]);
        assert_eq!(on_c["actors"].as_array().unwrap().len(), PER_NODE);
    }

    let diff = json(&["diff", "--store", &dir, "1", "2", "--json"]);
    assert_eq!(
        diff["moved"],
        serde_json::json!([{ "id": moving.to_string(), "type": "bank.Account", "from": "a", "to": "b" }])
    );
    assert_eq!(diff["added"], Value::Array(vec![]));
    assert_eq!(diff["removed"], Value::Array(vec![]));
    let text = ok(&["diff", "--store", &dir, "1", "2"]);
    assert!(text.contains(&format!("{moving}  bank.Account  node a -> b")), "{text}");

    // Every node is a group in the picture, drawn per actor or collapsed per type.
    for collapse in ["200", "5"] {
        let svg = ok(&[
            "graph",
            "--store",
            &dir,
            "latest",
            "--format",
            "svg",
            "--collapse-above",
            collapse,
        ]);
        let document = parse_svg(&svg);
        let groups: Vec<&str> = document
            .descendants()
            .filter(|n| n.attribute("class") == Some("node-group"))
            .map(|n| n.attribute("data-node").unwrap())
            .collect();
        assert_eq!(groups, ["a", "b", "c"], "collapse above {collapse}");
        let boxes = document
            .descendants()
            .filter(|n| n.attribute("class") == Some("box") && n.attribute("id") != Some("outside"))
            .count();
        assert_eq!(
            boxes,
            if collapse == "5" { 3 } else { 3 * PER_NODE },
            "collapse above {collapse}"
        );
    }
    let dot = ok(&["graph", "--store", &dir, "latest", "--collapse-above", "5"]);
    for cluster in ["cluster_0", "cluster_1", "cluster_2"] {
        assert!(dot.contains(cluster), "{dot}");
    }
    let stats = ok(&["stats", &dir]);
    assert_eq!(stats.lines().count(), 1 + 2 + 1, "{stats}");
}
