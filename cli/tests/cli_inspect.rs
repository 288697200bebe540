//! The `amber` binary against checkpoints written with the library.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use amber_snapshot::{
    ActorEntry, ActorId, Checkpoint, CheckpointId, CheckpointStore, Epoch, FsStore, InFlightRecord,
    Manifest, NodeEntry, SpawnCapacity, SpawnRestart, StateRecord, SystemId, TimerEntry,
};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Serialize)]
struct Account {
    balance: u64,
    owner: String,
}

#[derive(Serialize)]
struct Deposit {
    amount: u64,
}

fn actor(seq: u64) -> ActorId {
    ActorId::new(SystemId(0x1a2b_3c4d_0000_0001), seq)
}

fn msgpack<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

/// Checkpoint `id`: a bank supervising two accounts, alice's balance is `100 + id`.
fn sample(id: u64) -> Checkpoint {
    let entry =
        |seq: u64, type_name: &str, name: Option<&str>, parent: Option<ActorId>| ActorEntry {
            id: actor(seq),
            type_name: type_name.into(),
            name: name.map(str::to_owned),
            node: if seq == 3 { "node-b".into() } else { "node-a".into() },
            parent,
            watchers: parent.into_iter().collect(),
            watching: Vec::new(),
            state_version: 2,
            capacity: if seq == 2 { SpawnCapacity::Unbounded } else { SpawnCapacity::Bounded(64) },
            restart: if seq == 3 {
                SpawnRestart::OnPanic { max_restarts: 3, within: Duration::from_secs(10) }
            } else {
                SpawnRestart::Never
            },
        };
    let account = |seq: u64, balance: u64, owner: &str| StateRecord {
        id: actor(seq),
        state: msgpack(&Account { balance, owner: owner.into() }),
        timers: Vec::new(),
    };
    Checkpoint {
        manifest: Manifest {
            id: CheckpointId(id),
            epoch: Epoch(id + 10),
            created_unix_ms: 1_700_000_000_000 + id,
            nodes: vec![
                NodeEntry::new("node-a", Some("10.0.0.1:7000".into())),
                NodeEntry::new("node-b", None),
            ],
            actors: vec![
                entry(1, "bank.Bank", Some("bank"), None),
                entry(2, "bank.Account", Some("alice"), Some(actor(1))),
                entry(3, "bank.Account", None, Some(actor(1))),
            ],
        },
        states: vec![
            StateRecord {
                id: actor(1),
                state: msgpack(&json!({ "accounts": 2 })),
                timers: vec![TimerEntry {
                    timer: 7,
                    remaining_us: 1_500,
                    period_us: Some(10_000),
                    msg: msgpack(&"audit"),
                }],
            },
            account(2, 100 + id, "alice"),
            account(3, 5, "bob"),
        ],
        in_flight: vec![
            InFlightRecord {
                to: actor(2),
                from: Some(actor(3)),
                epoch: Epoch(id + 9),
                ask: true,
                payload: msgpack(&Deposit { amount: 5 }).into(),
            },
            InFlightRecord {
                to: actor(2),
                from: None,
                epoch: Epoch(id + 9),
                ask: false,
                payload: msgpack(&Deposit { amount: 1 }).into(),
            },
        ]
        .into(),
    }
}

/// A store in a temporary directory holding checkpoints `ids`.
fn store_with(ids: &[u64]) -> (tempfile::TempDir, FsStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path().join("store")).unwrap().with_durability(false);
    for &id in ids {
        store.save(&sample(id)).unwrap();
    }
    (tmp, store)
}

fn amber(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber")).args(args).output().unwrap()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs `amber inspect … --json` and parses its output, which must be one JSON object.
fn inspect_json(args: &[&str]) -> Value {
    let output = amber(args);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let value: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(value.is_object());
    value
}

/// Asserts a failure with exit code `code` and one line on stderr containing every `needle`.
fn assert_fails(output: &Output, code: i32, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("amber: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn inspect_json_shows_everything() {
    let (_tmp, store) = store_with(&[1, 2]);
    let file = store.path_of(CheckpointId(2));
    let json = inspect_json(&["inspect", path(&file), "--json"]);

    assert_eq!(
        json["checkpoint"],
        json!({
            "id": 2,
            "name": "ckpt-00000000000000000002",
            "file": path(&file),
            "epoch": 12,
            "created_unix_ms": 1_700_000_000_002u64,
            "created": "2023-11-14T22:13:20.002Z",
            "nodes": [
                { "node": "node-a", "address": "10.0.0.1:7000", "annotations": {} },
                { "node": "node-b", "address": null, "annotations": {} },
            ],
        })
    );

    let actors = json["actors"].as_array().unwrap();
    assert_eq!(actors.len(), 3);
    assert_eq!(
        actors[1],
        json!({
            "id": actor(2).to_string(),
            "type_name": "bank.Account",
            "name": "alice",
            "node": "node-a",
            "parent": actor(1).to_string(),
            "watchers": [actor(1).to_string()],
            "watching": [],
            "state_version": 2,
            "capacity": "unbounded",
            "restart": "never",
            "state": { "balance": 102, "owner": "alice" },
            "timers": [],
        })
    );
    assert_eq!(actors[1]["id"], "2@1a2b3c4d00000001");
    assert_eq!(actors[1]["state"]["balance"], 102);
    assert_eq!(actors[0]["parent"], Value::Null);
    assert_eq!(actors[2]["name"], Value::Null);
    assert_eq!(actors[0]["capacity"], 64);
    assert_eq!(
        actors[2]["restart"],
        json!({ "on_panic": { "max_restarts": 3, "within_us": 10_000_000 } })
    );
    assert_eq!(
        actors[0]["timers"],
        json!([{ "timer": 7, "remaining_us": 1500, "period_us": 10_000, "msg": "audit" }])
    );

    assert_eq!(
        json["in_flight"],
        json!([
            {
                "from": actor(3).to_string(),
                "to": actor(2).to_string(),
                "epoch": 11,
                "ask": true,
                "payload": { "amount": 5 },
            },
            {
                "from": null,
                "to": actor(2).to_string(),
                "epoch": 11,
                "ask": false,
                "payload": { "amount": 1 },
            },
        ])
    );
}

#[test]
fn inspect_latest_picks_the_newest() {
    let (_tmp, store) = store_with(&[1, 2, 3]);
    let json = inspect_json(&["inspect", path(store.dir()), "--latest", "--json"]);
    assert_eq!(json["checkpoint"]["id"], 3);
    assert_eq!(json["actors"][1]["state"]["balance"], 103);
    assert_eq!(json["checkpoint"]["file"], path(&store.path_of(CheckpointId(3))));
}

#[test]
fn inspect_as_text() {
    let (_tmp, store) = store_with(&[4]);
    let output = amber(&["inspect", path(&store.path_of(CheckpointId(4)))]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    for needle in [
        "checkpoint ckpt-00000000000000000004",
        "epoch    14",
        "created  2023-11-14T22:13:20.004Z",
        "nodes    node-a (10.0.0.1:7000), node-b",
        "actors (3)",
        "2@1a2b3c4d00000001  bank.Account  name \"alice\"  node node-a",
        "parent 1@1a2b3c4d00000001  watchers 1@1a2b3c4d00000001  watching -  state version 2",
        "capacity unbounded  restart never",
        "capacity bounded 64  restart on panic, 3 in 10s",
        "state {\"balance\":104,\"owner\":\"alice\"}",
        "timer 7  in 1500us  every 10000us  msg \"audit\"",
        "in flight (2)",
        "#0  3@1a2b3c4d00000001 -> 2@1a2b3c4d00000001  epoch 13  ask",
        "#1  outside -> 2@1a2b3c4d00000001  epoch 13  tell",
        "payload {\"amount\":1}",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}

#[test]
fn state_bytes_that_are_not_msgpack_are_shown_as_bytes() {
    let (_tmp, store) = store_with(&[]);
    let mut checkpoint = sample(1);
    checkpoint.states[2].state = vec![0x92, 0x01];
    store.save(&checkpoint).unwrap();
    let json = inspect_json(&["inspect", path(&store.path_of(CheckpointId(1))), "--json"]);
    assert_eq!(json["actors"][2]["state"], json!([0x92, 0x01]));
    assert!(json["actors"][2]["state_error"].is_string());
    assert!(json["actors"][1].get("state_error").is_none());
}

#[test]
fn list_prints_one_line_per_checkpoint() {
    let (_tmp, store) = store_with(&[1, 2, 3]);
    let output = amber(&["list", path(store.dir())]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let bytes = fs::metadata(store.path_of(CheckpointId(2))).unwrap().len();
    assert_eq!(
        lines[1],
        format!(
            "ckpt-00000000000000000002 epoch=12 created=2023-11-14T22:13:20.002Z actors=3 \
             in_flight=2 bytes={bytes}"
        )
    );
    assert!(lines[0].starts_with("ckpt-00000000000000000001 "));
    assert!(lines[2].starts_with("ckpt-00000000000000000003 "));
}

/// A FIFO under a checkpoint's name would block every reader: `list` and `inspect` refuse
/// it without opening it (the command returns instead of hanging).
#[cfg(unix)]
#[test]
fn a_fifo_in_the_store_is_refused_not_read() {
    let (_tmp, store) = store_with(&[1, 3]);
    let fifo = store.path_of(CheckpointId(2));
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let output = amber(&["list", path(store.dir())]);
    assert_fails(&output, 1, &["ckpt-00000000000000000002.amber", "not a regular file (a FIFO)"]);
    assert_eq!(stdout(&output).lines().count(), 2);
    let output = amber(&["inspect", path(&fifo)]);
    assert_fails(&output, 1, &["ckpt-00000000000000000002.amber", "not a regular file (a FIFO)"]);
}

#[test]
fn list_reports_a_corrupt_checkpoint_and_lists_the_others() {
    let (_tmp, store) = store_with(&[1, 2, 3]);
    let torn = store.path_of(CheckpointId(2));
    let bytes = fs::read(&torn).unwrap();
    fs::write(&torn, &bytes[..bytes.len() - 3]).unwrap();
    let output = amber(&["list", path(store.dir())]);
    assert_fails(&output, 1, &["ckpt-00000000000000000002.amber", "truncated at byte"]);
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains("ckpt-00000000000000000002"));
}

#[test]
fn list_and_inspect_read_incremental_checkpoints() {
    let (_full_tmp, full) = store_with(&[1, 2, 3]);
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path().join("store"))
        .unwrap()
        .with_durability(false)
        .with_incremental(16);
    for id in 1..=3 {
        store.save(&sample(id)).unwrap();
    }
    let file = store.path_of(CheckpointId(3));
    // Format version 7: actor 3 (entry and state) is a reference to checkpoint 1.
    assert_eq!(fs::read(&file).unwrap()[8..12], 7u32.to_le_bytes());
    let output = amber(&["list", path(store.dir())]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 3);
    // The same checkpoint, read from a file, the latest of a store, or a full store.
    let same = |mut json: Value| {
        json["checkpoint"]["file"] = Value::Null;
        json["checkpoint"]["bytes"] = Value::Null;
        json
    };
    let expected = same(inspect_json(&["inspect", path(&full.path_of(CheckpointId(3))), "--json"]));
    assert_eq!(same(inspect_json(&["inspect", path(&file), "--json"])), expected);
    assert_eq!(same(inspect_json(&["inspect", path(store.dir()), "--latest", "--json"])), expected);
    // Without the checkpoint that holds actor 3's state, inspect fails naming both.
    fs::remove_file(store.path_of(CheckpointId(1))).unwrap();
    let output = amber(&["inspect", path(&file), "--json"]);
    assert_fails(&output, 1, &[path(&file), "ckpt-00000000000000000001", "is not stored"]);
}

#[test]
fn list_of_an_empty_store_prints_nothing() {
    let (_tmp, store) = store_with(&[]);
    let output = amber(&["list", path(store.dir())]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "");
}

#[test]
fn a_tampered_checkpoint_is_rejected_naming_the_file() {
    let (_tmp, store) = store_with(&[1]);
    let file = store.path_of(CheckpointId(1));
    let mut bytes = fs::read(&file).unwrap();
    // Alice's balance, inside the state record (format version 2 batches the states: record
    // 1, after the manifest).
    let at = bytes.windows(7).position(|w| w == b"balance").unwrap() + 7;
    bytes[at] ^= 0x01;
    fs::write(&file, &bytes).unwrap();
    for json in [false, true] {
        let mut args = vec!["inspect", path(&file)];
        if json {
            args.push("--json");
        }
        let output = amber(&args);
        assert_fails(&output, 1, &[path(&file), "checksum mismatch in record 1 (state)"]);
        assert_eq!(stdout(&output), "");
    }
}

/// `inspect --latest` shows the checkpoint a restore would start from (`latest_valid`, which
/// `restore_latest` uses): past a torn newest one, which it names on stderr.
#[test]
fn inspect_latest_skips_a_torn_newest_checkpoint_as_a_restore_does() {
    let (_tmp, store) = store_with(&[1, 2, 3]);
    let file = store.path_of(CheckpointId(3));
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let valid = store.latest_valid().unwrap();
    assert_eq!(valid.checkpoint.map(|c| c.manifest.id), Some(CheckpointId(2)));
    for latest in [vec!["--latest"], vec!["--store", "DIR", "latest"]] {
        let mut args = vec!["inspect"];
        args.extend(latest.iter().map(|a| if *a == "DIR" { path(store.dir()) } else { a }));
        if !args.contains(&"--store") {
            args.insert(1, path(store.dir()));
        }
        args.push("--json");
        let output = amber(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["checkpoint"]["id"], 2, "{args:?}");
        let err = stderr(&output);
        assert!(err.contains(path(&file)) && err.contains("truncated at byte"), "{err}");
    }
    // The one before it is latest~1; asking past the good ones says how many load.
    let output = amber(&["inspect", "--store", path(store.dir()), "latest~1", "--json"]);
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["checkpoint"]["id"], 1);
    let output = amber(&["inspect", "--store", path(store.dir()), "latest~2"]);
    assert_fails(&output, 1, &["holds 3 checkpoint(s), 2 of which load", "truncated at byte"]);
}

#[test]
fn files_that_are_not_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.txt");
    fs::write(&text, "hello, not a checkpoint").unwrap();
    assert_fails(&amber(&["inspect", path(&text)]), 1, &["notes.txt", "bad magic"]);

    let empty = tmp.path().join("empty.amber");
    fs::write(&empty, "").unwrap();
    assert_fails(&amber(&["inspect", path(&empty)]), 1, &["empty.amber", "truncated at byte 0"]);

    let missing = tmp.path().join("missing.amber");
    assert_fails(&amber(&["inspect", path(&missing)]), 1, &["missing.amber", "cannot read"]);

    assert_fails(&amber(&["inspect", path(tmp.path())]), 1, &["is a directory", "--latest"]);
}

#[test]
fn stores_that_are_not_there() {
    let tmp = tempfile::tempdir().unwrap();
    let missing: PathBuf = tmp.path().join("no-store");
    assert_fails(&amber(&["list", path(&missing)]), 1, &["no-store", "no such directory"]);
    assert_fails(
        &amber(&["inspect", path(&missing), "--latest"]),
        1,
        &["no-store", "no such directory"],
    );
    // The inspector never creates a store.
    assert!(!missing.exists());

    let empty = tmp.path().join("empty-store");
    fs::create_dir(&empty).unwrap();
    assert_fails(&amber(&["inspect", path(&empty), "--latest"]), 1, &["no checkpoints"]);
}

#[test]
fn usage_errors_exit_with_2() {
    for (args, needles) in [
        (&["frobnicate"][..], &["unrecognized subcommand 'frobnicate'"][..]),
        (&["inspct", "x"][..], &["unrecognized subcommand 'inspct'", "'inspect'"][..]),
        (&["list"][..], &["required", "<STORE_DIR>"][..]),
        (&["inspect"][..], &["required", "<CHECKPOINT>"][..]),
        (&["inspect", "x", "--yaml"][..], &["unexpected argument '--yaml'"][..]),
        (&["inspect", "x", "y"][..], &["unexpected argument 'y'"][..]),
        (&["inspect", "x", "--latest", "--store", "d"][..], &["cannot be used with"][..]),
        (&["graph", "x", "--format", "png"][..], &["invalid value 'png'", "dot, svg"][..]),
        (&["completions", "tcsh"][..], &["invalid value 'tcsh'"][..]),
    ] {
        let output = amber(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(stdout(&output), "");
    }
}

#[test]
fn help_usage_and_version_exit_with_0() {
    for args in [&[][..], &["help"][..], &["--help"][..]] {
        let output = amber(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let text = stdout(&output);
        for command in ["list", "inspect", "diff", "graph", "stats", "completions"] {
            assert!(text.contains(&format!("  {command} ")), "{command} not in {text}");
        }
    }
    for command in ["list", "inspect", "diff", "graph", "stats"] {
        for args in [[command, "--help"], ["help", command]] {
            let output = amber(&args);
            assert_eq!(output.status.code(), Some(0), "{args:?}");
            assert!(stdout(&output).contains(&format!("Usage: amber {command}")), "{args:?}");
        }
    }
    assert!(stdout(&amber(&["inspect", "--help"])).contains("--summary"));
    assert!(stdout(&amber(&["diff", "--help"])).contains("--store <DIR>"));
    let output = amber(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).starts_with("amber "));
}

#[test]
fn shell_completions() {
    for (shell, needle) in
        [("bash", "_amber()"), ("zsh", "#compdef amber"), ("fish", "complete -c amber")]
    {
        let output = amber(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = stdout(&output);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains("inspect") && script.contains("summary"), "{shell}");
    }
}

#[test]
fn output_to_a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::Stdio;
    let (_tmp, store) = store_with(&[1]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_amber"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then hang up.
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    drop(store);
}

#[test]
fn inspect_sorts_actors_by_id_and_filters() {
    let (_tmp, store) = store_with(&[]);
    let mut checkpoint = sample(1);
    checkpoint.manifest.actors.reverse();
    store.save(&checkpoint).unwrap();
    let file = store.path_of(CheckpointId(1));
    let json = inspect_json(&["inspect", path(&file), "--json"]);
    let ids: Vec<&str> =
        json["actors"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [actor(1).to_string(), actor(2).to_string(), actor(3).to_string()]);

    let json = inspect_json(&["inspect", path(&file), "--json", "--actor", "alice"]);
    assert_eq!(json["actors"].as_array().unwrap().len(), 1);
    assert_eq!(json["in_flight"].as_array().unwrap().len(), 2);
    let json = inspect_json(&["inspect", path(&file), "--json", "--node", "node-b"]);
    assert_eq!(json["actors"][0]["id"], actor(3).to_string());
    assert_eq!(json["in_flight"], json!([]));
    let json = inspect_json(&[
        "inspect",
        path(&file),
        "--json",
        "--type",
        "bank.Account",
        "--node",
        "node-a",
    ]);
    assert_eq!(json["actors"].as_array().unwrap().len(), 1);

    let summary = inspect_json(&["inspect", path(&file), "--summary", "--json"]);
    assert_eq!(
        summary["actors"]["by_node_and_type"],
        json!([
            { "node": "node-a", "type": "bank.Account", "count": 1 },
            { "node": "node-a", "type": "bank.Bank", "count": 1 },
            { "node": "node-b", "type": "bank.Account", "count": 1 },
        ])
    );
    assert_eq!(summary["actors"]["timers"], 1);
    assert_eq!(summary["in_flight"]["asks"], 1);
    assert_eq!(summary["in_flight"]["from_outside"], 1);
    assert_eq!(summary["in_flight"]["by_kind"], json!([{ "kind": "other", "count": 2 }]));
    assert_eq!(summary["in_flight"]["by_receiver"][0]["id"], actor(2).to_string());
    assert_eq!(summary["in_flight"]["by_receiver"][0]["count"], 2);
}

#[test]
fn diff_shows_added_removed_and_moved_actors() {
    let (_tmp, store) = store_with(&[1]);
    let mut b = sample(2);
    // Bob moves to node-a, the bank goes, a new account comes; in flight: one left.
    b.manifest.actors[2].node = "node-a".into();
    b.manifest.actors.remove(0);
    b.states.remove(0);
    b.manifest.actors.push(ActorEntry { id: actor(9), name: None, ..b.manifest.actors[0].clone() });
    b.states.push(StateRecord {
        id: actor(9),
        state: msgpack(&json!({"balance": 0})),
        timers: vec![],
    });
    b.in_flight.truncate(1);
    store.save(&b).unwrap();
    let dir = path(store.dir());
    let diff = inspect_json(&["diff", "--store", dir, "1", "2", "--json"]);
    assert_eq!(
        diff,
        json!({
            "added": [{ "id": actor(9).to_string(), "type": "bank.Account", "node": "node-a" }],
            "removed": [{ "id": actor(1).to_string(), "type": "bank.Bank", "node": "node-a" }],
            "moved": [{ "id": actor(3).to_string(), "type": "bank.Account", "from": "node-b", "to": "node-a" }],
            "changed": [{
                "id": actor(2).to_string(),
                "type": "bank.Account",
                "fields": [{ "path": ".balance", "old": 101, "new": 102, "delta": 1 }],
            }],
            "in_flight": {
                "before": 2,
                "after": 1,
                "by_receiver": [{ "id": actor(2).to_string(), "type": "bank.Account", "before": 2, "after": 1 }],
            },
        })
    );
    let output = amber(&["diff", "--store", dir, "ckpt-00000000000000000001", "latest"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    for needle in [
        "actors 3 -> 3 (+0.001s later): 1 added, 1 removed, 1 moved, 1 changed",
        "added (1)\n  9@1a2b3c4d00000001  bank.Account  node node-a",
        "removed (1)\n  1@1a2b3c4d00000001  bank.Bank  node node-a",
        "moved (1)\n  3@1a2b3c4d00000001  bank.Account  node node-b -> node-a",
        "changed (1)\n  2@1a2b3c4d00000001  bank.Account\n    .balance  101 -> 102  (+1)",
        "in flight 2 -> 1\n  2@1a2b3c4d00000001  bank.Account  2 -> 1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}

#[test]
fn graph_shows_nodes_parents_watches_and_messages() {
    let (_tmp, store) = store_with(&[1]);
    let file = store.path_of(CheckpointId(1));
    let output = amber(&["graph", path(&file)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let dot = stdout(&output);
    for needle in [
        "subgraph cluster_0 {",
        "label=\"node node-a (10.0.0.1:7000): 2 actors\";",
        "label=\"node node-b: 1 actors\";",
        "\"a1_1a2b3c4d00000001\" -> \"a2_1a2b3c4d00000001\" [color=\"#666666\", arrowhead=odiamond];",
        "\"a1_1a2b3c4d00000001\" -> \"a3_1a2b3c4d00000001\" [color=\"#3366cc\", style=dashed",
        "\"a3_1a2b3c4d00000001\" -> \"a2_1a2b3c4d00000001\" [color=\"#cc3333\"",
        "\"outside\" -> \"a2_1a2b3c4d00000001\"",
        "label=\"1 in flight\"",
    ] {
        assert!(dot.contains(needle), "{needle:?} not in\n{dot}");
    }
    let output = amber(&["graph", path(&file), "--format", "svg"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let svg = stdout(&output);
    let document = roxmltree::Document::parse(&svg).unwrap_or_else(|err| panic!("{err}\n{svg}"));
    let groups: Vec<&str> = document
        .descendants()
        .filter(|n| n.attribute("class") == Some("node-group"))
        .map(|n| n.attribute("data-node").unwrap())
        .collect();
    assert_eq!(groups, ["node-a", "node-b"]);
    assert!(svg.contains("alice"), "{svg}");
    let lines = document.descendants().filter(|n| n.has_tag_name("line")).count();
    // parent ×2, watch ×2, in flight ×2, and the legend's three.
    assert_eq!(lines, 2 + 2 + 2 + 3, "{svg}");
}
