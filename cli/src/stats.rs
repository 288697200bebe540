//! `amber stats STORE_DIR`: the history of a store, one row per checkpoint — when it was
//! written and how long after the one before, its size, actors and in-flight messages — as a
//! table, JSON, or an SVG plot over time.
//!
//! Checkpoints record when their snapshot completed, not how long it took; the time between
//! consecutive checkpoints is shown instead (the `amber.snapshot.*` metrics carry durations).

use std::io::Write;
use std::path::Path;

use amber_snapshot::CheckpointId;
use serde_json::json;

use crate::Failure;
use crate::args::StatsArgs;
use crate::source::{each_checkpoint, open_store};
use crate::time::rfc3339;
use crate::xml::escape;

/// The figures of one checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: CheckpointId,
    epoch: u64,
    created_unix_ms: u64,
    /// Milliseconds since the checkpoint before (`None` for the first).
    interval_ms: Option<u64>,
    bytes: u64,
    nodes: usize,
    actors: usize,
    in_flight: usize,
    state_bytes: u64,
}

/// Prints the history of the store `args` names. Every checkpoint that does not load is
/// reported on stderr (and the exit code is 1); the others are still shown.
pub(crate) fn run(args: &StatsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open_store(&args.dir)?;
    let mut rows: Vec<Row> = Vec::new();
    let errors = each_checkpoint(&store, |id, checkpoint, bytes| {
        let manifest = &checkpoint.manifest;
        let interval_ms =
            rows.last().map(|last| manifest.created_unix_ms.saturating_sub(last.created_unix_ms));
        rows.push(Row {
            id,
            epoch: manifest.epoch.0,
            created_unix_ms: manifest.created_unix_ms,
            interval_ms,
            bytes,
            nodes: manifest.nodes.len(),
            actors: manifest.actors.len(),
            in_flight: checkpoint.in_flight.len(),
            state_bytes: checkpoint.states.iter().map(|s| s.state.len() as u64).sum(),
        });
        Ok(())
    })?;
    if args.svg {
        plot(&args.dir, &rows, out)?;
    } else if args.json {
        for row in &rows {
            let object = json!({
                "id": row.id.0,
                "name": row.id.to_string(),
                "epoch": row.epoch,
                "created_unix_ms": row.created_unix_ms,
                "created": rfc3339(row.created_unix_ms),
                "interval_ms": row.interval_ms,
                "bytes": row.bytes,
                "nodes": row.nodes,
                "actors": row.actors,
                "in_flight": row.in_flight,
                "state_bytes": row.state_bytes,
            });
            writeln!(out, "{object}")?;
        }
    } else {
        table(&rows, out)?;
    }
    if errors.is_empty() { Ok(()) } else { Err(Failure::Input(errors)) }
}

fn table(rows: &[Row], out: &mut dyn Write) -> Result<(), Failure> {
    writeln!(
        out,
        "{:<25}  {:>8}  {:<24}  {:>10}  {:>12}  {:>5}  {:>8}  {:>9}",
        "checkpoint", "epoch", "created", "interval", "bytes", "nodes", "actors", "in_flight"
    )?;
    for row in rows {
        let interval = row
            .interval_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{:.3}s", ms as f64 / 1000.0));
        writeln!(
            out,
            "{:<25}  {:>8}  {:<24}  {:>10}  {:>12}  {:>5}  {:>8}  {:>9}",
            row.id.to_string(),
            row.epoch,
            rfc3339(row.created_unix_ms),
            interval,
            row.bytes,
            row.nodes,
            row.actors,
            row.in_flight
        )?;
    }
    if rows.len() > 1 {
        let n = rows.len() as f64;
        let mean = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / n;
        let span = rows[rows.len() - 1].created_unix_ms.saturating_sub(rows[0].created_unix_ms);
        writeln!(
            out,
            "{} checkpoints over {:.3}s; mean {:.0} bytes, {:.1} actors, {:.1} in flight",
            rows.len(),
            span as f64 / 1000.0,
            mean(|r| r.bytes as f64),
            mean(|r| r.actors as f64),
            mean(|r| r.in_flight as f64)
        )?;
    }
    Ok(())
}

const WIDTH: f64 = 760.0;
const PANEL_H: f64 = 150.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 50.0;
const GAP: f64 = 44.0;

/// A round number at or above `max` for an axis (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
/// power of ten), so that the data fill most of the axis.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&v| v >= max * (1.0 - 1e-9))
        .unwrap_or(max)
}

/// Three panels sharing the time axis: bytes, actors and in-flight messages per checkpoint.
fn plot(dir: &Path, rows: &[Row], out: &mut dyn Write) -> Result<(), Failure> {
    type Figure = fn(&Row) -> f64;
    let panels: [(&str, &str, Figure); 3] = [
        ("checkpoint size (bytes)", "#3366cc", |r| r.bytes as f64),
        ("actors", "#2e8b57", |r| r.actors as f64),
        ("messages in flight", "#cc3333", |r| r.in_flight as f64),
    ];
    let height = TOP + panels.len() as f64 * (PANEL_H + GAP) + 10.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let t0 = rows.first().map_or(0, |r| r.created_unix_ms);
    let span_s = rows.last().map_or(0, |r| r.created_unix_ms.saturating_sub(t0)) as f64 / 1000.0;
    let x_max = nice_ceiling(span_s.max(0.001));
    let x_of = |row: &Row| LEFT + (row.created_unix_ms - t0) as f64 / 1000.0 / x_max * plot_w;

    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">"
    )?;
    writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>")?;
    let first = rows.first().map(|r| rfc3339(r.created_unix_ms)).unwrap_or_default();
    writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"24\" font-size=\"14\" font-weight=\"bold\">{} — {} checkpoints{}</text>",
        escape(&dir.display().to_string()),
        rows.len(),
        if rows.is_empty() { String::new() } else { format!(", from {first}") }
    )?;
    for (index, (title, stroke, figure)) in panels.iter().enumerate() {
        let top = TOP + index as f64 * (PANEL_H + GAP);
        let bottom = top + PANEL_H;
        let y_max = nice_ceiling(rows.iter().map(figure).fold(0.0, f64::max));
        let y_of = |v: f64| bottom - v / y_max * PANEL_H;
        writeln!(out, "<g class=\"panel\" data-series=\"{}\">", escape(title))?;
        writeln!(
            out,
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
            top - 8.0,
            escape(title)
        )?;
        // Axes with three ticks each.
        writeln!(
            out,
            "<path d=\"M {LEFT} {top:.1} L {LEFT} {bottom:.1} L {:.1} {bottom:.1}\" stroke=\"#333333\" fill=\"none\"/>",
            LEFT + plot_w
        )?;
        for step in 0..=2 {
            let v = y_max * step as f64 / 2.0;
            let y = y_of(v);
            writeln!(
                out,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                v
            )?;
            let t = x_max * step as f64 / 2.0;
            let x = LEFT + plot_w * step as f64 / 2.0;
            writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555555\">{t}s</text>",
                bottom + 15.0
            )?;
        }
        let points: Vec<String> =
            rows.iter().map(|r| format!("{:.1},{:.1}", x_of(r), y_of(figure(r)))).collect();
        if points.len() > 1 {
            writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
                points.join(" ")
            )?;
        }
        for row in rows {
            writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{stroke}\"><title>{} {}: {}</title></circle>",
                x_of(row),
                y_of(figure(row)),
                row.id,
                escape(title),
                figure(row)
            )?;
        }
        writeln!(out, "</g>")?;
    }
    writeln!(out, "</svg>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 8.0);
        assert_eq!(nice_ceiling(120.0), 120.0);
        assert_eq!(nice_ceiling(121.0), 150.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(nice_ceiling(3.383), 4.0);
    }
}
