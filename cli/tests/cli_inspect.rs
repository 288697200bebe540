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
                NodeEntry { node: "node-a".into(), address: Some("10.0.0.1:7000".into()) },
                NodeEntry { node: "node-b".into(), address: None },
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
                payload: msgpack(&Deposit { amount: 5 }),
            },
            InFlightRecord {
                to: actor(2),
                from: None,
                epoch: Epoch(id + 9),
                ask: false,
                payload: msgpack(&Deposit { amount: 1 }),
            },
        ],
    }
}

/// A store in a temporary directory holding checkpoints `ids`.
fn store_with(ids: &[u64]) -> (tempfile::TempDir, FsStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::open(tmp.path().join("store")).unwrap();
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
                { "node": "node-a", "address": "10.0.0.1:7000" },
                { "node": "node-b", "address": null },
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

#[test]
fn a_torn_newest_checkpoint_fails_inspect_latest() {
    let (_tmp, store) = store_with(&[1, 2]);
    let file = store.path_of(CheckpointId(2));
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let output = amber(&["inspect", path(store.dir()), "--latest", "--json"]);
    assert_fails(&output, 1, &[path(&file), "truncated at byte"]);
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
    for (args, needle) in [
        (&[][..], "missing command"),
        (&["frobnicate"][..], "unknown command 'frobnicate'"),
        (&["list"][..], "needs STORE_DIR"),
        (&["inspect"][..], "needs CHECKPOINT_FILE"),
        (&["inspect", "x", "--yaml"][..], "unknown option '--yaml'"),
        (&["inspect", "x", "y"][..], "unexpected argument 'y'"),
    ] {
        let output = amber(args);
        assert_fails(&output, 2, &[needle, "amber help"]);
        assert_eq!(stdout(&output), "");
    }
}

#[test]
fn help_and_version() {
    let output = amber(&["help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("amber inspect STORE_DIR --latest [--json]"));
    let output = amber(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).starts_with("amber "));
}
