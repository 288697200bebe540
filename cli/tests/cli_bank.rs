//! `amber inspect`, `diff`, `graph` and `stats` on checkpoints a running bank wrote.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use amber::prelude::*;
use amber::snapshot::{CheckpointId, FsStore};
use serde_json::Value;
use support::{
    Account, EACH, amber, assert_fails, bounded, json, money, ok, parse_svg, path, spawn_accounts,
    start_trading, stderr,
};

const ACCOUNTS: usize = 24;

/// A store holding three checkpoints of a trading bank, taken a few milliseconds apart.
async fn bank_store() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(tmp.path().join("store")).unwrap().with_durability(false));
    let system = ActorSystem::builder().register::<Account>().build();
    let accounts = spawn_accounts(&system, ACCOUNTS);
    start_trading(&accounts, &accounts).await;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        bounded(system.checkpoint(&store)).await.expect("checkpoint");
    }
    bounded(system.shutdown()).await;
    tmp
}

fn store_dir(tmp: &tempfile::TempDir) -> String {
    path(&tmp.path().join("store")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_a_bank_sorted_with_refs_as_ids_and_the_money_adds_up() {
    let tmp = bank_store().await;
    let dir = store_dir(&tmp);
    for id in ["1", "2", "latest"] {
        let inspect = json(&["inspect", "--store", &dir, id, "--json"]);
        let actors = inspect["actors"].as_array().unwrap();
        assert_eq!(actors.len(), ACCOUNTS);
        let (balances, in_flight) = money(&inspect);
        assert_eq!(balances + in_flight, ACCOUNTS as u64 * EACH, "checkpoint {id}");

        // Sorted by id (same system, so by sequence number).
        let seqs: Vec<u64> = actors
            .iter()
            .map(|a| a["id"].as_str().unwrap().split('@').next().unwrap().parse().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        // Refs inside states print exactly as the ids do.
        let ids: HashSet<&str> = actors.iter().map(|a| a["id"].as_str().unwrap()).collect();
        for actor in actors {
            let neighbours = actor["state"]["neighbours"].as_array().unwrap();
            assert_eq!(neighbours.len(), ACCOUNTS);
            for n in neighbours {
                assert!(ids.contains(n.as_str().unwrap()), "{n} is not printed as an id");
            }
        }
    }
    // The same, as text: refs appear as ids, not as {"system":..,"seq":..}.
    let text = ok(&["inspect", &dir, "--latest"]);
    assert!(!text.contains("\"system\""), "{text}");
    assert!(text.contains(&format!("actors ({ACCOUNTS})")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_filters() {
    let tmp = bank_store().await;
    let dir = store_dir(&tmp);
    let full = json(&["inspect", "--store", &dir, "latest", "--json"]);
    let summary =
        json(&["inspect", "--store", &dir, "latest", "--summary", "--json", "--top", "3"]);
    assert_eq!(summary["actors"]["total"], ACCOUNTS);
    assert_eq!(summary["actors"]["by_type"][0]["type"], "bank.Account");
    assert_eq!(summary["actors"]["by_type"][0]["count"], ACCOUNTS);
    assert_eq!(summary["actors"]["by_node"].as_array().unwrap().len(), 1);
    let in_flight = full["in_flight"].as_array().unwrap();
    assert_eq!(summary["in_flight"]["total"], in_flight.len());
    let receivers: HashSet<&str> = in_flight.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(summary["in_flight"]["receivers"], receivers.len());
    assert!(summary["in_flight"]["by_receiver"].as_array().unwrap().len() <= 3);
    for kind in summary["in_flight"]["by_kind"].as_array().unwrap() {
        assert_eq!(kind["kind"], "Deposit", "{kind}");
    }
    let largest = summary["largest_states"].as_array().unwrap();
    assert_eq!(largest.len(), 3);
    assert!(largest[0]["bytes"].as_u64() >= largest[2]["bytes"].as_u64());
    let text = ok(&["inspect", "--store", &dir, "latest", "--summary"]);
    for needle in ["by type", "bank.Account", "by node", "largest states", "in flight ("] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }

    // Filters: one actor by id, a type, a node that is not there.
    let one = full["actors"][5]["id"].as_str().unwrap();
    let only = json(&["inspect", "--store", &dir, "latest", "--json", "--actor", one]);
    assert_eq!(only["actors"].as_array().unwrap().len(), 1);
    assert_eq!(only["actors"][0]["id"], one);
    assert!(only["in_flight"].as_array().unwrap().iter().all(|m| m["to"] == one));
    let typed = json(&["inspect", "--store", &dir, "latest", "--json", "--type", "bank.Account"]);
    assert_eq!(typed["actors"].as_array().unwrap().len(), ACCOUNTS);
    let none = json(&["inspect", "--store", &dir, "latest", "--json", "--node", "elsewhere"]);
    assert_eq!(none["actors"], Value::Array(vec![]));
    assert_eq!(none["in_flight"], Value::Array(vec![]));
    let text = ok(&["inspect", "--store", &dir, "latest", "--node", "elsewhere"]);
    assert!(text.contains(&format!("actors (0 of {ACCOUNTS})")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_two_checkpoints_of_a_bank_balances_to_zero() {
    let tmp = bank_store().await;
    let dir = store_dir(&tmp);
    let store = FsStore::open(&dir).unwrap().with_durability(false);
    let (a, b) = (store.path_of(CheckpointId(1)), store.path_of(CheckpointId(3)));
    let diff = json(&["diff", path(&a), path(&b), "--json"]);
    assert_eq!(diff, json(&["diff", "--store", &dir, "1", "latest", "--json"]));
    for key in ["added", "removed", "moved"] {
        assert_eq!(diff[key], Value::Array(vec![]), "{key}");
    }
    let changed = diff["changed"].as_array().unwrap();
    assert!(!changed.is_empty(), "the bank traded between the checkpoints");
    // Money moved between balances and the wire, but none was made or lost.
    let mut balance_delta: i64 = 0;
    for actor in changed {
        assert_eq!(actor["type"], "bank.Account");
        for field in actor["fields"].as_array().unwrap() {
            let path = field["path"].as_str().unwrap();
            assert!(path.starts_with('.'), "{path}");
            assert_ne!(field["old"], field["new"], "{field}");
            if path == ".balance" {
                let delta = field["delta"].as_i64().unwrap();
                let (old, new) = (field["old"].as_i64().unwrap(), field["new"].as_i64().unwrap());
                assert_eq!(new - old, delta);
                balance_delta += delta;
            }
        }
    }
    let (_, wire_a) = money(&json(&["inspect", path(&a), "--json"]));
    let (_, wire_b) = money(&json(&["inspect", path(&b), "--json"]));
    assert_eq!(balance_delta + wire_b as i64 - wire_a as i64, 0);
    let before = json(&["inspect", path(&a), "--json"])["in_flight"].as_array().unwrap().len();
    let after = json(&["inspect", path(&b), "--json"])["in_flight"].as_array().unwrap().len();
    assert_eq!(diff["in_flight"]["before"], before);
    assert_eq!(diff["in_flight"]["after"], after);
    let per_receiver: u64 = diff["in_flight"]["by_receiver"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["after"].as_u64().unwrap())
        .sum();
    assert_eq!(per_receiver, after as u64);

    let text = ok(&["diff", "--store", &dir, "latest~2", "latest"]);
    assert!(text.contains("--- ckpt-00000000000000000001"), "{text}");
    assert!(text.contains("+++ ckpt-00000000000000000003"), "{text}");
    assert!(text.contains(&format!("changed ({})", changed.len())), "{text}");
    assert!(text.contains("    .balance  "), "{text}");
    assert!(text.contains(&format!("in flight {before} -> {after}")), "{text}");
    // A checkpoint against itself: nothing.
    let same = json(&["diff", path(&a), path(&a), "--json"]);
    assert_eq!(same["changed"], Value::Array(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_and_stats_of_a_bank() {
    let tmp = bank_store().await;
    let dir = store_dir(&tmp);
    let svg = ok(&["graph", "--store", &dir, "latest", "--format", "svg"]);
    let document = parse_svg(&svg);
    let groups: Vec<_> =
        document.descendants().filter(|n| n.attribute("class") == Some("node-group")).collect();
    assert_eq!(groups.len(), 1);
    let boxes = document.descendants().filter(|n| n.attribute("class") == Some("box")).count();
    assert_eq!(boxes, ACCOUNTS);
    let collapsed =
        ok(&["graph", "--store", &dir, "latest", "--format", "svg", "--collapse-above", "10"]);
    let document = parse_svg(&collapsed);
    let boxes: Vec<_> =
        document.descendants().filter(|n| n.attribute("class") == Some("box")).collect();
    assert_eq!(boxes.len(), 1, "one box for the one type on the one node");
    assert!(collapsed.contains(&format!("{ACCOUNTS} actors")), "{collapsed}");

    let dot = ok(&["graph", &dir, "--latest"]);
    assert!(dot.starts_with("digraph amber {"), "{dot}");
    assert!(dot.contains("subgraph cluster_0"), "{dot}");
    assert_eq!(dot.matches("\\nbank.Account\"];").count(), ACCOUNTS, "{dot}");

    let table = ok(&["stats", &dir]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 3 + 1, "{table}");
    assert!(lines[0].starts_with("checkpoint"), "{table}");
    assert!(lines[1].starts_with("ckpt-00000000000000000001"), "{table}");
    assert!(lines[4].starts_with("3 checkpoints over"), "{table}");
    let rows: Vec<Value> =
        ok(&["stats", &dir, "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["actors"], ACCOUNTS);
    assert_eq!(rows[0]["interval_ms"], Value::Null);
    assert!(rows[2]["interval_ms"].as_u64().is_some());
    let plot = ok(&["stats", &dir, "--svg"]);
    let document = parse_svg(&plot);
    let panels = document.descendants().filter(|n| n.attribute("class") == Some("panel")).count();
    assert_eq!(panels, 3);
    let points = document.descendants().filter(|n| n.has_tag_name("circle")).count();
    assert_eq!(points, 3 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_missing_checkpoints_fail_clearly() {
    let tmp = bank_store().await;
    let dir = store_dir(&tmp);
    let store = FsStore::open(&dir).unwrap().with_durability(false);
    let torn = store.path_of(CheckpointId(2));
    let bytes = std::fs::read(&torn).unwrap();
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    let good = store.path_of(CheckpointId(1));
    for args in [
        vec!["diff", path(&good), path(&torn)],
        vec!["diff", "--store", &dir, "1", "2", "--json"],
        vec!["graph", path(&torn), "--format", "svg"],
        vec!["inspect", path(&torn), "--summary"],
    ] {
        let output = amber(&args);
        assert_fails(&output, 1, &["ckpt-00000000000000000002.amber", "truncated at byte"]);
        assert_eq!(output.stdout, b"", "{args:?}");
    }
    // stats shows the others and names the torn one.
    let output = amber(&["stats", &dir]);
    assert_fails(&output, 1, &["ckpt-00000000000000000002.amber"]);
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 1 + 2 + 1);

    let missing = tmp.path().join("missing.amber");
    assert_fails(
        &amber(&["diff", path(&good), path(&missing)]),
        1,
        &["missing.amber", "cannot read"],
    );
    assert_fails(&amber(&["diff", "--store", &dir, "1", "9"]), 1, &["not found"]);
    assert_fails(
        &amber(&["diff", "--store", &dir, "1", "latest~7"]),
        1,
        &["holds 3 checkpoint(s), 2 of which load"],
    );
    let output = amber(&["diff", "--store", &dir, "1", "nine"]);
    assert_fails(&output, 2, &["'nine' is not a checkpoint id"]);
    assert_fails(&amber(&["stats", path(&tmp.path().join("nope"))]), 1, &["no such directory"]);
    assert!(stderr(&amber(&["graph", &dir])).contains("is a directory"));
}
