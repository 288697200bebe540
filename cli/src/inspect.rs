//! `amber inspect`: every actor and every in-flight message of one checkpoint.

use std::path::{Path, PathBuf};

use amber_snapshot::{
    ActorId, Checkpoint, CheckpointStore, FsStore, SpawnCapacity, SpawnRestart, TimerEntry,
};
use serde_json::{Map, Value as Json, json};

use crate::time::rfc3339;
use crate::transcode::{byte_array, transcode};
use crate::{Failure, open_store};

/// Prints the checkpoint in file `path` (or with `latest`, the newest checkpoint of the store
/// in directory `path`) as text, or with `json` as one JSON object.
pub(crate) fn run(path: &Path, latest: bool, json: bool, out: &mut String) -> Result<(), Failure> {
    let (file, checkpoint) = if latest { newest(path)? } else { file(path)? };
    if json {
        out.push_str(&format!("{:#}\n", to_json(&file, &checkpoint)));
    } else {
        out.push_str(&to_text(&file, &checkpoint));
    }
    Ok(())
}

/// The newest checkpoint of the store in `dir`, and its file.
fn newest(dir: &Path) -> Result<(PathBuf, Checkpoint), Failure> {
    let store = open_store(dir)?;
    match store.latest().map_err(Failure::input)? {
        Some(checkpoint) => Ok((store.path_of(checkpoint.manifest.id), checkpoint)),
        None => Err(Failure::input(format!("{}: no checkpoints in this store", dir.display()))),
    }
}

/// The checkpoint in file `path`.
fn file(path: &Path) -> Result<(PathBuf, Checkpoint), Failure> {
    if path.is_dir() {
        return Err(Failure::input(format!(
            "{}: is a directory (add --latest to inspect its newest checkpoint)",
            path.display()
        )));
    }
    let checkpoint = FsStore::load_file(path).map_err(Failure::input)?;
    Ok((path.to_owned(), checkpoint))
}

/// A recorded mailbox capacity: a number, `"unbounded"`, or `null` for the restoring
/// system's default (a checkpoint that did not record it).
fn capacity_json(capacity: SpawnCapacity) -> Json {
    match capacity {
        SpawnCapacity::SystemDefault => Json::Null,
        SpawnCapacity::Bounded(n) => json!(n),
        SpawnCapacity::Unbounded => json!("unbounded"),
    }
}

/// A recorded restart policy: `"never"`, or its limit and window in microseconds.
fn restart_json(restart: SpawnRestart) -> Json {
    match restart {
        SpawnRestart::Never => json!("never"),
        SpawnRestart::OnPanic { max_restarts, within } => json!({
            "on_panic": {
                "max_restarts": max_restarts,
                "within_us": u64::try_from(within.as_micros()).unwrap_or(u64::MAX),
            }
        }),
    }
}

/// The checkpoint as one JSON object: `checkpoint`, `actors` and `in_flight`.
fn to_json(file: &Path, checkpoint: &Checkpoint) -> Json {
    let manifest = &checkpoint.manifest;
    let nodes: Vec<Json> = manifest
        .nodes
        .iter()
        .map(|node| json!({ "node": node.node, "address": node.address }))
        .collect();
    let actors: Vec<Json> = manifest
        .actors
        .iter()
        .map(|actor| {
            let mut object = Map::new();
            object.insert("id".into(), json!(actor.id.to_string()));
            object.insert("type_name".into(), json!(actor.type_name));
            object.insert("name".into(), json!(actor.name));
            object.insert("node".into(), json!(actor.node));
            object.insert("parent".into(), json!(actor.parent.map(|id| id.to_string())));
            object.insert("watchers".into(), json!(ids(&actor.watchers)));
            object.insert("watching".into(), json!(ids(&actor.watching)));
            object.insert("state_version".into(), json!(actor.state_version));
            object.insert("capacity".into(), capacity_json(actor.capacity));
            object.insert("restart".into(), restart_json(actor.restart));
            let state = checkpoint.state(actor.id);
            let timers = state.map_or(&[][..], |state| &state.timers[..]);
            match state {
                Some(state) => insert_msgpack(&mut object, "state", &state.state),
                // `decode` checked that every actor has a state; kept total anyway.
                None => drop(object.insert("state".into(), Json::Null)),
            }
            object.insert("timers".into(), timers.iter().map(timer_json).collect());
            Json::Object(object)
        })
        .collect();
    let in_flight: Vec<Json> = checkpoint
        .in_flight
        .iter()
        .map(|message| {
            let mut object = Map::new();
            object.insert("from".into(), json!(message.from.map(|id| id.to_string())));
            object.insert("to".into(), json!(message.to.to_string()));
            object.insert("epoch".into(), json!(message.epoch.0));
            object.insert("ask".into(), json!(message.ask));
            insert_msgpack(&mut object, "payload", &message.payload);
            Json::Object(object)
        })
        .collect();
    json!({
        "checkpoint": {
            "id": manifest.id.0,
            "name": manifest.id.to_string(),
            "file": file.display().to_string(),
            "epoch": manifest.epoch.0,
            "created_unix_ms": manifest.created_unix_ms,
            "created": rfc3339(manifest.created_unix_ms),
            "nodes": nodes,
        },
        "actors": actors,
        "in_flight": in_flight,
    })
}

fn timer_json(timer: &TimerEntry) -> Json {
    let mut object = Map::new();
    object.insert("timer".into(), json!(timer.timer));
    object.insert("remaining_us".into(), json!(timer.remaining_us));
    object.insert("period_us".into(), json!(timer.period_us));
    insert_msgpack(&mut object, "msg", &timer.msg);
    Json::Object(object)
}

/// Inserts MessagePack `bytes` as JSON under `key`; if they are not one MessagePack value,
/// inserts them as an array of byte values, and why under `<key>_error`.
fn insert_msgpack(object: &mut Map<String, Json>, key: &str, bytes: &[u8]) {
    match transcode(bytes) {
        Ok(value) => {
            object.insert(key.to_owned(), value);
        }
        Err(reason) => {
            object.insert(key.to_owned(), byte_array(bytes));
            object.insert(format!("{key}_error"), Json::String(reason));
        }
    }
}

fn ids(ids: &[ActorId]) -> Vec<String> {
    ids.iter().map(ActorId::to_string).collect()
}

/// MessagePack `bytes` as one line of JSON, or why they are not MessagePack.
fn msgpack_text(bytes: &[u8]) -> String {
    match transcode(bytes) {
        Ok(value) => value.to_string(),
        Err(reason) => format!("<not MessagePack: {reason}; {} bytes>", bytes.len()),
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// The checkpoint as text for people.
fn to_text(file: &Path, checkpoint: &Checkpoint) -> String {
    let manifest = &checkpoint.manifest;
    let mut out = String::new();
    let nodes: Vec<String> = manifest
        .nodes
        .iter()
        .map(|node| match &node.address {
            Some(address) => format!("{} ({address})", node.node),
            None => node.node.clone(),
        })
        .collect();
    out.push_str(&format!("checkpoint {}\n", manifest.id));
    out.push_str(&format!("  file     {}\n", file.display()));
    out.push_str(&format!("  epoch    {}\n", manifest.epoch.0));
    out.push_str(&format!("  created  {}\n", rfc3339(manifest.created_unix_ms)));
    out.push_str(&format!(
        "  nodes    {}\n",
        or_dash(Some(nodes.join(", ")).filter(|s| !s.is_empty()))
    ));

    out.push_str(&format!("actors ({})\n", manifest.actors.len()));
    for actor in &manifest.actors {
        let name = actor.name.as_ref().map(|name| format!("{name:?}"));
        out.push_str(&format!(
            "  {}  {}  name {}  node {}\n",
            actor.id,
            actor.type_name,
            or_dash(name),
            actor.node
        ));
        let watchers = ids(&actor.watchers).join(", ");
        let watching = ids(&actor.watching).join(", ");
        out.push_str(&format!(
            "    parent {}  watchers {}  watching {}  state version {}\n",
            or_dash(actor.parent.map(|id| id.to_string())),
            or_dash(Some(watchers).filter(|w| !w.is_empty())),
            or_dash(Some(watching).filter(|w| !w.is_empty())),
            actor.state_version
        ));
        out.push_str(&format!("    capacity {}  restart {}\n", actor.capacity, actor.restart));
        let Some(state) = checkpoint.state(actor.id) else { continue };
        out.push_str(&format!("    state {}\n", msgpack_text(&state.state)));
        for timer in &state.timers {
            let period = timer.period_us.map(|us| format!("every {us}us"));
            out.push_str(&format!(
                "    timer {}  in {}us  {}  msg {}\n",
                timer.timer,
                timer.remaining_us,
                period.unwrap_or_else(|| "once".to_owned()),
                msgpack_text(&timer.msg)
            ));
        }
    }

    out.push_str(&format!("in flight ({})\n", checkpoint.in_flight.len()));
    for (index, message) in checkpoint.in_flight.iter().enumerate() {
        let from = message.from.map_or_else(|| "outside".to_owned(), |id| id.to_string());
        out.push_str(&format!(
            "  #{index}  {from} -> {}  epoch {}  {}\n",
            message.to,
            message.epoch.0,
            if message.ask { "ask" } else { "tell" }
        ));
        out.push_str(&format!("    payload {}\n", msgpack_text(&message.payload)));
    }
    out
}
