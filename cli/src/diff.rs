//! `amber diff A B`: what changed between two checkpoints.
//!
//! Actors are matched by id: those only in B were added, those only in A removed, those on
//! another node moved. For an actor whose state bytes differ, both states are decoded
//! generically (as `inspect` does) and compared field by field; each difference is a path in
//! jq's syntax (`.balance`, `.neighbours[3]`, `.["odd key"]`, `.` for the whole state) with
//! its old and new value. In-flight messages are counted per receiver before and after.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use amber_snapshot::{ActorEntry, ActorId, Checkpoint};
use serde_json::{Map, Value as Json, json};

use crate::Failure;
use crate::args::DiffArgs;
use crate::source::{self, Loaded};
use crate::transcode::{byte_array, transcode};

/// One field that differs: where, and its values before and after (`null` where absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldChange {
    /// The path in jq's syntax.
    pub(crate) path: String,
    /// The value in A.
    pub(crate) old: Json,
    /// The value in B.
    pub(crate) new: Json,
}

impl FieldChange {
    /// `new - old` when both are numbers.
    fn delta(&self) -> Option<Json> {
        let (old, new) = (&self.old, &self.new);
        let integer = |v: &Json| v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from));
        if let (Some(a), Some(b)) = (integer(old), integer(new)) {
            let delta = b - a;
            return Some(match (i64::try_from(delta), u64::try_from(delta)) {
                (Ok(d), _) => json!(d),
                (_, Ok(d)) => json!(d),
                _ => json!(delta as f64),
            });
        }
        match (old.as_f64(), new.as_f64()) {
            (Some(a), Some(b)) => Some(json!(b - a)),
            _ => None,
        }
    }
}

/// The differences between two JSON values, appended to `changes` under `path`.
pub(crate) fn field_changes(path: &str, old: &Json, new: &Json, changes: &mut Vec<FieldChange>) {
    match (old, new) {
        (Json::Object(a), Json::Object(b)) => {
            for (key, old_value) in a {
                let path = key_path(path, key);
                match b.get(key) {
                    Some(new_value) => field_changes(&path, old_value, new_value, changes),
                    None => {
                        changes.push(FieldChange { path, old: old_value.clone(), new: Json::Null })
                    }
                }
            }
            for (key, new_value) in b.iter().filter(|(key, _)| !a.contains_key(*key)) {
                changes.push(FieldChange {
                    path: key_path(path, key),
                    old: Json::Null,
                    new: new_value.clone(),
                });
            }
        }
        (Json::Array(a), Json::Array(b)) => {
            for index in 0..a.len().max(b.len()) {
                let path = format!("{path}[{index}]");
                match (a.get(index), b.get(index)) {
                    (Some(old), Some(new)) => field_changes(&path, old, new, changes),
                    (old, new) => changes.push(FieldChange {
                        path,
                        old: old.cloned().unwrap_or(Json::Null),
                        new: new.cloned().unwrap_or(Json::Null),
                    }),
                }
            }
        }
        _ if old != new => changes.push(FieldChange {
            path: if path.is_empty() { ".".to_owned() } else { path.to_owned() },
            old: old.clone(),
            new: new.clone(),
        }),
        _ => {}
    }
}

/// `path` and then object key `key`, in jq's syntax.
fn key_path(path: &str, key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { format!("{path}.{key}") } else { format!("{path}.[{}]", Json::from(key)) }
}

/// A state decoded for comparison: its JSON, or its bytes when they are not MessagePack.
fn decoded(bytes: &[u8]) -> Json {
    transcode(bytes).unwrap_or_else(|_| byte_array(bytes))
}

/// Everything that differs between two checkpoints.
#[derive(Debug)]
struct Diff<'a> {
    added: Vec<&'a ActorEntry>,
    removed: Vec<&'a ActorEntry>,
    /// Entries in A and in B.
    moved: Vec<(&'a ActorEntry, &'a ActorEntry)>,
    /// The entry in B and its changed fields.
    changed: Vec<(&'a ActorEntry, Vec<FieldChange>)>,
    in_flight_before: usize,
    in_flight_after: usize,
    /// Per receiver with messages in A or B: its entry (B's, else A's), before and after.
    receivers: Vec<(&'a ActorEntry, usize, usize)>,
    /// Messages to receivers neither checkpoint lists (never in a checkpoint that loads).
    unlisted_receivers: usize,
}

impl<'a> Diff<'a> {
    fn of(a: &'a Checkpoint, b: &'a Checkpoint) -> Diff<'a> {
        let index = |c: &'a Checkpoint| -> BTreeMap<ActorId, &'a ActorEntry> {
            c.manifest.actors.iter().map(|entry| (entry.id, entry)).collect()
        };
        let (in_a, in_b) = (index(a), index(b));
        let states = |c: &'a Checkpoint| -> HashMap<ActorId, &'a [u8]> {
            c.states.iter().map(|state| (state.id, &state.state[..])).collect()
        };
        let (states_a, states_b) = (states(a), states(b));
        let mut diff = Diff {
            added: in_b.iter().filter(|(id, _)| !in_a.contains_key(id)).map(|(_, e)| *e).collect(),
            removed: in_a
                .iter()
                .filter(|(id, _)| !in_b.contains_key(id))
                .map(|(_, e)| *e)
                .collect(),
            moved: Vec::new(),
            changed: Vec::new(),
            in_flight_before: a.in_flight.len(),
            in_flight_after: b.in_flight.len(),
            receivers: Vec::new(),
            unlisted_receivers: 0,
        };
        for (id, old) in &in_a {
            let Some(new) = in_b.get(id) else { continue };
            if old.node != new.node {
                diff.moved.push((old, new));
            }
            let (old_state, new_state) = (states_a.get(id), states_b.get(id));
            if old_state != new_state {
                let mut changes = Vec::new();
                let old_json = old_state.map_or(Json::Null, |bytes| decoded(bytes));
                let new_json = new_state.map_or(Json::Null, |bytes| decoded(bytes));
                field_changes("", &old_json, &new_json, &mut changes);
                if changes.is_empty() {
                    // Different bytes, same values (e.g. an integer re-encoded wider).
                    changes.push(FieldChange { path: ".".into(), old: old_json, new: new_json });
                }
                diff.changed.push((new, changes));
            }
        }
        let mut counts: BTreeMap<ActorId, (usize, usize)> = BTreeMap::new();
        for message in &a.in_flight {
            counts.entry(message.to).or_default().0 += 1;
        }
        for message in &b.in_flight {
            counts.entry(message.to).or_default().1 += 1;
        }
        for (id, (before, after)) in counts {
            match in_b.get(&id).or_else(|| in_a.get(&id)) {
                Some(entry) => diff.receivers.push((entry, before, after)),
                None => diff.unlisted_receivers += before + after,
            }
        }
        diff
    }

    fn to_json(&self) -> Json {
        let entry =
            |e: &ActorEntry| json!({ "id": e.id.to_string(), "type": e.type_name, "node": e.node });
        json!({
            "added": self.added.iter().map(|e| entry(e)).collect::<Vec<_>>(),
            "removed": self.removed.iter().map(|e| entry(e)).collect::<Vec<_>>(),
            "moved": self.moved.iter().map(|(old, new)| json!({
                "id": new.id.to_string(), "type": new.type_name, "from": old.node, "to": new.node,
            })).collect::<Vec<_>>(),
            "changed": self.changed.iter().map(|(e, fields)| json!({
                "id": e.id.to_string(),
                "type": e.type_name,
                "fields": fields.iter().map(|f| {
                    let mut field = Map::new();
                    field.insert("path".into(), json!(f.path));
                    field.insert("old".into(), f.old.clone());
                    field.insert("new".into(), f.new.clone());
                    if let Some(delta) = f.delta() {
                        field.insert("delta".into(), delta);
                    }
                    Json::Object(field)
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "in_flight": {
                "before": self.in_flight_before,
                "after": self.in_flight_after,
                "by_receiver": self.receivers.iter().map(|(e, before, after)| json!({
                    "id": e.id.to_string(), "type": e.type_name, "before": before, "after": after,
                })).collect::<Vec<_>>(),
            },
        })
    }
}

/// Prints what changed from checkpoint A to checkpoint B.
pub(crate) fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let load = |name| match &args.store {
        Some(dir) => source::in_store(dir, name),
        None => source::file(name),
    };
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let diff = Diff::of(&a.checkpoint, &b.checkpoint);
    if args.json {
        writeln!(out, "{:#}", diff.to_json())?;
    } else {
        write_text(&a, &b, &diff, out)?;
    }
    Ok(())
}

fn write_text(a: &Loaded, b: &Loaded, diff: &Diff<'_>, out: &mut dyn Write) -> Result<(), Failure> {
    let (ma, mb) = (&a.checkpoint.manifest, &b.checkpoint.manifest);
    writeln!(out, "--- {} ({}, epoch {})", ma.id, a.file.display(), ma.epoch.0)?;
    writeln!(out, "+++ {} ({}, epoch {})", mb.id, b.file.display(), mb.epoch.0)?;
    let seconds = (mb.created_unix_ms as f64 - ma.created_unix_ms as f64) / 1000.0;
    writeln!(
        out,
        "actors {} -> {} ({seconds:+.3}s later): {} added, {} removed, {} moved, {} changed",
        ma.actors.len(),
        mb.actors.len(),
        diff.added.len(),
        diff.removed.len(),
        diff.moved.len(),
        diff.changed.len()
    )?;
    for (title, entries) in [("added", &diff.added), ("removed", &diff.removed)] {
        if entries.is_empty() {
            continue;
        }
        writeln!(out, "{title} ({})", entries.len())?;
        for e in entries.iter() {
            writeln!(out, "  {}  {}  node {}", e.id, e.type_name, e.node)?;
        }
    }
    if !diff.moved.is_empty() {
        writeln!(out, "moved ({})", diff.moved.len())?;
        for (old, new) in &diff.moved {
            writeln!(out, "  {}  {}  node {} -> {}", new.id, new.type_name, old.node, new.node)?;
        }
    }
    if !diff.changed.is_empty() {
        writeln!(out, "changed ({})", diff.changed.len())?;
        for (e, fields) in &diff.changed {
            writeln!(out, "  {}  {}", e.id, e.type_name)?;
            for field in fields {
                let delta = field
                    .delta()
                    .map(|d| {
                        format!(
                            "  ({}{d})",
                            if d.as_f64().is_some_and(|d| d >= 0.0) { "+" } else { "" }
                        )
                    })
                    .unwrap_or_default();
                writeln!(out, "    {}  {} -> {}{delta}", field.path, field.old, field.new)?;
            }
        }
    }
    writeln!(out, "in flight {} -> {}", diff.in_flight_before, diff.in_flight_after)?;
    for (e, before, after) in &diff.receivers {
        writeln!(out, "  {}  {}  {before} -> {after}", e.id, e.type_name)?;
    }
    if diff.unlisted_receivers > 0 {
        writeln!(out, "  {} to actors neither checkpoint lists", diff.unlisted_receivers)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(old: Json, new: Json) -> Vec<(String, Json, Json)> {
        let mut out = Vec::new();
        field_changes("", &old, &new, &mut out);
        out.into_iter().map(|c| (c.path, c.old, c.new)).collect()
    }

    #[test]
    fn field_paths() {
        assert_eq!(
            changes(
                json!({ "balance": 5, "peers": ["1@a", "2@a"], "odd key": { "x": 1 }, "gone": 1 }),
                json!({ "balance": 7, "peers": ["1@a"], "odd key": { "x": 2 }, "new": true }),
            ),
            vec![
                (".balance".into(), json!(5), json!(7)),
                (".peers[1]".into(), json!("2@a"), Json::Null),
                (".[\"odd key\"].x".into(), json!(1), json!(2)),
                (".gone".into(), json!(1), Json::Null),
                (".new".into(), Json::Null, json!(true)),
            ]
        );
        assert_eq!(changes(json!(1), json!("a")), vec![(".".into(), json!(1), json!("a"))]);
        assert!(
            changes(json!({ "a": [1, { "b": 2 }] }), json!({ "a": [1, { "b": 2 }] })).is_empty()
        );
    }

    #[test]
    fn deltas() {
        let change = |old, new| FieldChange { path: ".".into(), old, new };
        assert_eq!(change(json!(5), json!(3)).delta(), Some(json!(-2)));
        assert_eq!(change(json!(u64::MAX), json!(0)).delta(), Some(json!(-(u64::MAX as f64))));
        assert_eq!(change(json!(0.5), json!(1)).delta(), Some(json!(0.5)));
        assert_eq!(change(json!("a"), json!(1)).delta(), None);
    }
}
