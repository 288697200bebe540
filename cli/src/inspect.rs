//! `amber inspect`: every actor and every in-flight message of one checkpoint, streamed out
//! in the order of actor ids, optionally filtered, or summarised.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use amber_snapshot::{
    ActorEntry, ActorId, Checkpoint, InFlightRecord, SpawnCapacity, SpawnRestart, StateRecord,
    TimerEntry,
};
use serde_json::{Map, Value as Json, json};

use crate::Failure;
use crate::args::{FilterArgs, InspectArgs};
use crate::source::{self, Loaded};
use crate::summary;
use crate::time::rfc3339;
use crate::transcode::{byte_array, transcode};

/// Prints the checkpoint `args` name as text or JSON, or its summary, as it goes.
pub(crate) fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let Loaded { file, bytes, checkpoint } = source::load(&args.source)?;
    let view = View::new(&checkpoint, &args.filter);
    match (args.summary, args.json) {
        (true, json) => summary::write(&file, bytes, &checkpoint, &view, args.top, json, out),
        (false, true) => write_json(&file, &checkpoint, &view, out),
        (false, false) => write_text(&file, &checkpoint, &view, out),
    }
}

/// The actors and in-flight messages a command shows: actors sorted by id and filtered,
/// the messages to them grouped by receiver (each receiver's in their recorded order).
#[derive(Debug)]
pub(crate) struct View<'a> {
    /// The selected actors, by id.
    pub(crate) actors: Vec<&'a ActorEntry>,
    /// The messages to the selected actors, each with its index in the checkpoint.
    pub(crate) in_flight: Vec<(usize, &'a InFlightRecord)>,
    /// Every actor's state.
    states: HashMap<ActorId, &'a StateRecord>,
    /// Whether a filter left actors out.
    pub(crate) filtered: bool,
}

impl<'a> View<'a> {
    /// The actors of `checkpoint` that `filter` selects.
    pub(crate) fn new(checkpoint: &'a Checkpoint, filter: &FilterArgs) -> View<'a> {
        let matches = |entry: &ActorEntry| {
            (filter.types.is_empty() || filter.types.contains(&entry.type_name))
                && (filter.nodes.is_empty() || filter.nodes.contains(&entry.node))
                && (filter.actors.is_empty()
                    || filter.actors.iter().any(|wanted| {
                        entry.name.as_deref() == Some(wanted.as_str())
                            || entry.id.to_string() == *wanted
                    }))
        };
        let mut actors: Vec<&ActorEntry> =
            checkpoint.manifest.actors.iter().filter(|entry| matches(entry)).collect();
        actors.sort_unstable_by_key(|entry| entry.id);
        let filtered = actors.len() != checkpoint.manifest.actors.len();
        let selected: std::collections::HashSet<ActorId> =
            actors.iter().map(|entry| entry.id).collect();
        let mut in_flight: Vec<(usize, &InFlightRecord)> = checkpoint
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, message)| selected.contains(&message.to))
            .collect();
        // Stable: each receiver's messages stay in the order they are re-enqueued.
        in_flight.sort_by_key(|(_, message)| message.to);
        let states = checkpoint.states.iter().map(|state| (state.id, state)).collect();
        View { actors, in_flight, states, filtered }
    }

    /// The recorded state of actor `id`.
    pub(crate) fn state(&self, id: ActorId) -> Option<&'a StateRecord> {
        self.states.get(&id).copied()
    }
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

/// The checkpoint's header as JSON.
pub(crate) fn checkpoint_json(file: &Path, checkpoint: &Checkpoint) -> Json {
    let manifest = &checkpoint.manifest;
    let nodes: Vec<Json> = manifest
        .nodes
        .iter()
        .map(|node| {
            json!({ "node": node.node, "address": node.address, "annotations": node.annotations })
        })
        .collect();
    json!({
        "id": manifest.id.0,
        "name": manifest.id.to_string(),
        "file": file.display().to_string(),
        "epoch": manifest.epoch.0,
        "created_unix_ms": manifest.created_unix_ms,
        "created": rfc3339(manifest.created_unix_ms),
        "nodes": nodes,
    })
}

/// One actor as JSON, with its state decoded.
fn actor_json(actor: &ActorEntry, state: Option<&StateRecord>) -> Json {
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
    let timers = state.map_or(&[][..], |state| &state.timers[..]);
    match state {
        Some(state) => insert_msgpack(&mut object, "state", &state.state),
        // Loading checked that every actor has a state; kept total anyway.
        None => drop(object.insert("state".into(), Json::Null)),
    }
    object.insert("timers".into(), timers.iter().map(timer_json).collect());
    Json::Object(object)
}

/// One in-flight message as JSON, with its payload decoded.
fn message_json(message: &InFlightRecord) -> Json {
    let mut object = Map::new();
    object.insert("from".into(), json!(message.from.map(|id| id.to_string())));
    object.insert("to".into(), json!(message.to.to_string()));
    object.insert("epoch".into(), json!(message.epoch.0));
    object.insert("ask".into(), json!(message.ask));
    insert_msgpack(&mut object, "payload", &message.payload);
    Json::Object(object)
}

/// The checkpoint as one JSON object (`checkpoint`, `actors`, `in_flight`), written one
/// actor and one message per line as they are decoded.
fn write_json(
    file: &Path,
    checkpoint: &Checkpoint,
    view: &View<'_>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    writeln!(out, "{{")?;
    writeln!(out, "  \"checkpoint\": {},", checkpoint_json(file, checkpoint))?;
    writeln!(out, "  \"actors\": [")?;
    for (index, actor) in view.actors.iter().enumerate() {
        let comma = if index + 1 < view.actors.len() { "," } else { "" };
        writeln!(out, "    {}{comma}", actor_json(actor, view.state(actor.id)))?;
    }
    writeln!(out, "  ],")?;
    writeln!(out, "  \"in_flight\": [")?;
    for (index, (_, message)) in view.in_flight.iter().enumerate() {
        let comma = if index + 1 < view.in_flight.len() { "," } else { "" };
        writeln!(out, "    {}{comma}", message_json(message))?;
    }
    writeln!(out, "  ]")?;
    writeln!(out, "}}")?;
    Ok(())
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
pub(crate) fn msgpack_text(bytes: &[u8]) -> String {
    match transcode(bytes) {
        Ok(value) => value.to_string(),
        Err(reason) => format!("<not MessagePack: {reason}; {} bytes>", bytes.len()),
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// `shown` of `total`, or just `total` when nothing was left out.
fn count(shown: usize, total: usize) -> String {
    if shown == total { total.to_string() } else { format!("{shown} of {total}") }
}

/// The checkpoint's header as text.
pub(crate) fn write_header(
    file: &Path,
    checkpoint: &Checkpoint,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let manifest = &checkpoint.manifest;
    let nodes: Vec<String> = manifest
        .nodes
        .iter()
        .map(|node| match &node.address {
            Some(address) => format!("{} ({address})", node.node),
            None => node.node.clone(),
        })
        .collect();
    writeln!(out, "checkpoint {}", manifest.id)?;
    writeln!(out, "  file     {}", file.display())?;
    writeln!(out, "  epoch    {}", manifest.epoch.0)?;
    writeln!(out, "  created  {}", rfc3339(manifest.created_unix_ms))?;
    writeln!(out, "  nodes    {}", or_dash(Some(nodes.join(", ")).filter(|s| !s.is_empty())))?;
    // What the nodes recorded of themselves (e.g. a sharding's shard count), if any.
    for node in manifest.nodes.iter().filter(|n| !n.annotations.is_empty()) {
        let recorded: Vec<String> =
            node.annotations.iter().map(|(key, value)| format!("{key}={value}")).collect();
        writeln!(out, "  recorded {}: {}", node.node, recorded.join(", "))?;
    }
    Ok(())
}

/// The checkpoint as text for people, actor by actor.
fn write_text(
    file: &Path,
    checkpoint: &Checkpoint,
    view: &View<'_>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    write_header(file, checkpoint, out)?;
    writeln!(out, "actors ({})", count(view.actors.len(), checkpoint.manifest.actors.len()))?;
    for actor in &view.actors {
        let name = actor.name.as_ref().map(|name| format!("{name:?}"));
        writeln!(
            out,
            "  {}  {}  name {}  node {}",
            actor.id,
            actor.type_name,
            or_dash(name),
            actor.node
        )?;
        let watchers = ids(&actor.watchers).join(", ");
        let watching = ids(&actor.watching).join(", ");
        writeln!(
            out,
            "    parent {}  watchers {}  watching {}  state version {}",
            or_dash(actor.parent.map(|id| id.to_string())),
            or_dash(Some(watchers).filter(|w| !w.is_empty())),
            or_dash(Some(watching).filter(|w| !w.is_empty())),
            actor.state_version
        )?;
        writeln!(out, "    capacity {}  restart {}", actor.capacity, actor.restart)?;
        let Some(state) = view.state(actor.id) else { continue };
        writeln!(out, "    state {}", msgpack_text(&state.state))?;
        for timer in &state.timers {
            let period = timer.period_us.map(|us| format!("every {us}us"));
            writeln!(
                out,
                "    timer {}  in {}us  {}  msg {}",
                timer.timer,
                timer.remaining_us,
                period.unwrap_or_else(|| "once".to_owned()),
                msgpack_text(&timer.msg)
            )?;
        }
    }

    writeln!(out, "in flight ({})", count(view.in_flight.len(), checkpoint.in_flight.len()))?;
    for (index, message) in &view.in_flight {
        let from = message.from.map_or_else(|| "outside".to_owned(), |id| id.to_string());
        writeln!(
            out,
            "  #{index}  {from} -> {}  epoch {}  {}",
            message.to,
            message.epoch.0,
            if message.ask { "ask" } else { "tell" }
        )?;
        writeln!(out, "    payload {}", msgpack_text(&message.payload))?;
    }
    Ok(())
}
