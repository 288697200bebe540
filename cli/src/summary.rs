//! `amber inspect --summary`: a checkpoint in figures — actors per type and node, in-flight
//! messages per receiver and per kind, the largest states, and sizes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use amber_snapshot::{ActorId, Checkpoint};
use serde_json::{Value as Json, json};

use crate::Failure;
use crate::inspect::{View, checkpoint_json, write_header};
use crate::transcode::transcode;

/// The figures of one checkpoint (of the actors a filter selected).
#[derive(Debug)]
struct Summary {
    actors: usize,
    /// Per type: actors and their state bytes.
    by_type: BTreeMap<String, (usize, u64)>,
    /// Per node: actors.
    by_node: BTreeMap<String, usize>,
    /// Per node and type: actors.
    by_node_and_type: BTreeMap<(String, String), usize>,
    state_bytes: u64,
    timers: usize,
    in_flight: usize,
    in_flight_bytes: u64,
    asks: usize,
    from_outside: usize,
    /// Per message kind (the variant name, where the payload is an enum).
    by_kind: BTreeMap<String, usize>,
    /// Receivers with the most messages: id, type, node, messages, bytes.
    receivers: Vec<Receiver>,
    /// How many receivers have messages at all.
    receiver_count: usize,
    /// The largest states: id, type, node, bytes.
    largest: Vec<(ActorId, String, String, u64)>,
}

/// The in-flight messages to one actor.
#[derive(Debug)]
struct Receiver {
    id: ActorId,
    type_name: String,
    node: String,
    messages: usize,
    bytes: u64,
}

/// The kind of an encoded message: the name of its enum variant (a string for a unit variant,
/// the one key of a map for the others; capitalised, as Rust names variants), or `other` when
/// it is not shaped like one.
fn kind(payload: &[u8]) -> String {
    let variant = |name: &str| name.starts_with(|c: char| c.is_ascii_uppercase());
    match transcode(payload) {
        Ok(Json::String(name)) if variant(&name) => name,
        Ok(Json::Object(map)) if map.len() == 1 => match map.keys().next() {
            Some(name) if variant(name) => name.clone(),
            _ => "other".to_owned(),
        },
        Ok(_) => "other".to_owned(),
        Err(_) => "not MessagePack".to_owned(),
    }
}

impl Summary {
    fn of(view: &View<'_>, top: usize) -> Summary {
        let mut summary = Summary {
            actors: view.actors.len(),
            by_type: BTreeMap::new(),
            by_node: BTreeMap::new(),
            by_node_and_type: BTreeMap::new(),
            state_bytes: 0,
            timers: 0,
            in_flight: view.in_flight.len(),
            in_flight_bytes: 0,
            asks: 0,
            from_outside: 0,
            by_kind: BTreeMap::new(),
            receivers: Vec::new(),
            receiver_count: 0,
            largest: Vec::new(),
        };
        let mut entries = HashMap::new();
        for actor in &view.actors {
            entries.insert(actor.id, *actor);
            let bytes = view.state(actor.id).map_or(0, |state| state.state.len() as u64);
            let timers = view.state(actor.id).map_or(0, |state| state.timers.len());
            let by_type = summary.by_type.entry(actor.type_name.clone()).or_default();
            by_type.0 += 1;
            by_type.1 += bytes;
            *summary.by_node.entry(actor.node.clone()).or_default() += 1;
            *summary
                .by_node_and_type
                .entry((actor.node.clone(), actor.type_name.clone()))
                .or_default() += 1;
            summary.state_bytes += bytes;
            summary.timers += timers;
            summary.largest.push((actor.id, actor.type_name.clone(), actor.node.clone(), bytes));
        }
        // Largest first, ties by id.
        summary.largest.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
        summary.largest.truncate(top);

        let mut receivers: Vec<Receiver> = Vec::new();
        for (_, message) in &view.in_flight {
            let bytes = message.payload.len() as u64;
            summary.in_flight_bytes += bytes;
            summary.asks += usize::from(message.ask);
            summary.from_outside += usize::from(message.from.is_none());
            *summary.by_kind.entry(kind(&message.payload)).or_default() += 1;
            // The view groups messages by receiver.
            match receivers.last_mut() {
                Some(last) if last.id == message.to => {
                    last.messages += 1;
                    last.bytes += bytes;
                }
                _ => {
                    let entry = entries.get(&message.to);
                    receivers.push(Receiver {
                        id: message.to,
                        type_name: entry.map_or_else(String::new, |e| e.type_name.clone()),
                        node: entry.map_or_else(String::new, |e| e.node.clone()),
                        messages: 1,
                        bytes,
                    });
                }
            }
        }
        summary.receiver_count = receivers.len();
        receivers.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.id.cmp(&b.id)));
        receivers.truncate(top);
        summary.receivers = receivers;
        summary
    }
}

/// Writes the summary of the actors in `view` as text or JSON; the checkpoint is `file_bytes`
/// bytes as stored in `file`.
pub(crate) fn write(
    file: &Path,
    file_bytes: u64,
    checkpoint: &Checkpoint,
    view: &View<'_>,
    top: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let summary = Summary::of(view, top);
    if json {
        let object = json!({
            "checkpoint": checkpoint_json(file, checkpoint),
            "filtered": view.filtered,
            "sizes": {
                "file_bytes": file_bytes,
                "state_bytes": summary.state_bytes,
                "in_flight_bytes": summary.in_flight_bytes,
            },
            "actors": {
                "total": summary.actors,
                "timers": summary.timers,
                "by_type": summary.by_type.iter().map(|(type_name, (count, bytes))| json!({
                    "type": type_name, "count": count, "state_bytes": bytes,
                })).collect::<Vec<_>>(),
                "by_node": summary.by_node.iter().map(|(node, count)| json!({
                    "node": node, "count": count,
                })).collect::<Vec<_>>(),
                "by_node_and_type": summary.by_node_and_type.iter().map(|((node, t), count)| {
                    json!({ "node": node, "type": t, "count": count })
                }).collect::<Vec<_>>(),
            },
            "in_flight": {
                "total": summary.in_flight,
                "asks": summary.asks,
                "from_outside": summary.from_outside,
                "receivers": summary.receiver_count,
                "by_kind": summary.by_kind.iter().map(|(kind, count)| json!({
                    "kind": kind, "count": count,
                })).collect::<Vec<_>>(),
                "by_receiver": summary.receivers.iter().map(|r| json!({
                    "id": r.id.to_string(), "type": r.type_name, "node": r.node,
                    "count": r.messages, "bytes": r.bytes,
                })).collect::<Vec<_>>(),
            },
            "largest_states": summary.largest.iter().map(|(id, type_name, node, bytes)| json!({
                "id": id.to_string(), "type": type_name, "node": node, "bytes": bytes,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{object:#}")?;
        return Ok(());
    }

    write_header(file, checkpoint, out)?;
    writeln!(
        out,
        "  size     {file_bytes} bytes on disk; states {} bytes; in-flight payloads {} bytes",
        summary.state_bytes, summary.in_flight_bytes
    )?;
    if view.filtered {
        writeln!(
            out,
            "  filter   {} of {} actors",
            summary.actors,
            checkpoint.manifest.actors.len()
        )?;
    }
    writeln!(out, "actors ({}, {} pending timers)", summary.actors, summary.timers)?;
    writeln!(out, "  by type")?;
    for (type_name, (count, bytes)) in &summary.by_type {
        writeln!(out, "    {count:>8}  {type_name}  ({bytes} state bytes)")?;
    }
    writeln!(out, "  by node")?;
    for (node, count) in &summary.by_node {
        writeln!(out, "    {count:>8}  {node}")?;
    }
    if summary.by_node.len() > 1 && summary.by_type.len() > 1 {
        writeln!(out, "  by node and type")?;
        for ((node, type_name), count) in &summary.by_node_and_type {
            writeln!(out, "    {count:>8}  {node}  {type_name}")?;
        }
    }
    writeln!(
        out,
        "in flight ({} to {} receivers; {} asks, {} from outside)",
        summary.in_flight, summary.receiver_count, summary.asks, summary.from_outside
    )?;
    if !summary.by_kind.is_empty() {
        writeln!(out, "  by kind")?;
        for (kind, count) in &summary.by_kind {
            writeln!(out, "    {count:>8}  {kind}")?;
        }
    }
    if !summary.receivers.is_empty() {
        writeln!(out, "  top receivers")?;
        for r in &summary.receivers {
            writeln!(
                out,
                "    {:>8}  {}  {}  node {}  ({} bytes)",
                r.messages, r.id, r.type_name, r.node, r.bytes
            )?;
        }
    }
    writeln!(out, "largest states")?;
    for (id, type_name, node, bytes) in &summary.largest {
        writeln!(out, "    {bytes:>8}  {id}  {type_name}  node {node}")?;
    }
    Ok(())
}
