//! The picture drawn as a self-contained SVG, with a simple layered layout: nodes side by
//! side as columns, and within a node its boxes in rows by depth in the supervision tree
//! (parents above their children), each depth wrapped into rows of a few boxes.

use std::collections::HashMap;
use std::io::{self, Write};

use super::model::{EdgeKind, Picture, Vertex};
use crate::xml::{escape, shorten};

const BOX_W: f64 = 184.0;
const BOX_H: f64 = 40.0;
const GAP_X: f64 = 18.0;
const GAP_Y: f64 = 30.0;
const PAD: f64 = 16.0;
const HEADER: f64 = 30.0;
const CLUSTER_GAP: f64 = 48.0;
const MARGIN: f64 = 20.0;
const CAPTION: f64 = 34.0;
const LEGEND: f64 = 40.0;
const LOOP: f64 = 44.0;
const FONT: &str = "Helvetica, Arial, sans-serif";

/// A laid-out rectangle.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn center(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Where the segment from the center towards `(tx, ty)` leaves the rectangle.
    fn border_towards(&self, tx: f64, ty: f64) -> (f64, f64) {
        let (cx, cy) = self.center();
        let (dx, dy) = (tx - cx, ty - cy);
        if dx == 0.0 && dy == 0.0 {
            return (cx, cy);
        }
        let sx = if dx != 0.0 { (self.w / 2.0) / dx.abs() } else { f64::INFINITY };
        let sy = if dy != 0.0 { (self.h / 2.0) / dy.abs() } else { f64::INFINITY };
        let s = sx.min(sy);
        (cx + dx * s, cy + dy * s)
    }
}

/// Boxes in rows: each depth starts a new row, and rows hold at most `columns` boxes.
/// Returns each box's cell (column, row) and the number of columns and rows used.
fn rows(vertices: &[Vertex], columns: usize) -> (Vec<(usize, usize)>, usize, usize) {
    let (mut cells, mut col, mut row, mut used) = (Vec::new(), 0, 0, 0);
    let mut depth = vertices.first().map_or(0, |v| v.depth);
    for vertex in vertices {
        if vertex.depth != depth || col == columns {
            if !cells.is_empty() {
                row += 1;
            }
            col = 0;
            depth = vertex.depth;
        }
        cells.push((col, row));
        col += 1;
        used = used.max(col);
    }
    let rows = if cells.is_empty() { 0 } else { row + 1 };
    (cells, used, rows)
}

/// How many boxes a row of a cluster of `n` holds: about a square, at most 5.
fn columns_for(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).clamp(1, 5)
}

/// Lays out `vertices` from `(x, y)`: their rectangles by key, and the size taken.
fn place(vertices: &[Vertex], x: f64, y: f64, rects: &mut HashMap<String, Rect>) -> (f64, f64) {
    let (cells, used, rows) = rows(vertices, columns_for(vertices.len()));
    for (vertex, (col, row)) in vertices.iter().zip(cells) {
        let rect = Rect {
            x: x + col as f64 * (BOX_W + GAP_X),
            y: y + row as f64 * (BOX_H + GAP_Y),
            w: BOX_W,
            h: BOX_H,
        };
        rects.insert(vertex.key.clone(), rect);
    }
    let w = used.max(1) as f64 * (BOX_W + GAP_X) - GAP_X;
    let h = if rows == 0 { 0.0 } else { rows as f64 * (BOX_H + GAP_Y) - GAP_Y };
    (w, h)
}

fn color(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Parent => "#666666",
        EdgeKind::Watch => "#3366cc",
        EdgeKind::InFlight => "#cc3333",
    }
}

fn marker(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Parent => "arrow-parent",
        EdgeKind::Watch => "arrow-watch",
        EdgeKind::InFlight => "arrow-in-flight",
    }
}

fn write_vertex(vertex: &Vertex, rect: Rect, dashed: bool, out: &mut dyn Write) -> io::Result<()> {
    let dash = if dashed { " stroke-dasharray=\"4 3\"" } else { "" };
    writeln!(
        out,
        "<g class=\"box\" id=\"{}\"><title>{}</title>\
         <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\" \
         fill=\"#fff7e6\" stroke=\"#c9a66b\"{dash}/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"bold\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#555555\">{}</text></g>",
        escape(&vertex.key),
        escape(&format!("{}\n{}", vertex.title, vertex.detail)),
        rect.x,
        rect.y,
        rect.x + 8.0,
        rect.y + 17.0,
        escape(&shorten(&vertex.title, 28)),
        rect.x + 8.0,
        rect.y + 31.0,
        escape(&shorten(&vertex.detail, 34)),
    )
}

/// Writes `picture` as one SVG document.
pub(super) fn write(picture: &Picture, out: &mut dyn Write) -> io::Result<()> {
    let mut rects: HashMap<String, Rect> = HashMap::new();
    let top = MARGIN + CAPTION;
    let mut x = MARGIN;
    // Outside senders: a column of their own, left of the nodes.
    let mut outside_h: f64 = 0.0;
    if !picture.outside.is_empty() {
        for (i, vertex) in picture.outside.iter().enumerate() {
            let rect = Rect { x, y: top + HEADER + i as f64 * (BOX_H + GAP_Y), w: BOX_W, h: BOX_H };
            rects.insert(vertex.key.clone(), rect);
        }
        outside_h = HEADER + picture.outside.len() as f64 * (BOX_H + GAP_Y);
        x += BOX_W + CLUSTER_GAP;
    }
    let mut frames = Vec::new();
    for cluster in &picture.clusters {
        let (w, h) = place(&cluster.vertices, x + PAD, top + HEADER + PAD / 2.0, &mut rects);
        // Room on the right for the loops of messages within a box, and their counts.
        let frame = Rect { x, y: top, w: w + 2.0 * PAD + LOOP, h: HEADER + h + 1.5 * PAD };
        frames.push(frame);
        x += frame.w + CLUSTER_GAP;
    }
    let collapsed = if picture.collapsed { "  (one box per type and node)" } else { "" };
    // Wide enough for the caption and the legend too.
    let caption_w = 2.0 * MARGIN + 8.5 * (picture.caption.chars().count() + collapsed.len()) as f64;
    let width = (x - CLUSTER_GAP + MARGIN).max(caption_w).max(600.0);
    let content = frames.iter().map(|f| f.h).fold(outside_h, f64::max);
    let height = top + content + LEGEND + MARGIN;

    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"{FONT}\">"
    )?;
    writeln!(out, "<defs>")?;
    for kind in [EdgeKind::Parent, EdgeKind::Watch, EdgeKind::InFlight] {
        writeln!(
            out,
            "<marker id=\"{}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" \
             markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" \
             fill=\"{}\"/></marker>",
            marker(kind),
            color(kind)
        )?;
    }
    writeln!(out, "</defs>")?;
    writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>")?;
    writeln!(
        out,
        "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\">{}{collapsed}</text>",
        MARGIN + 14.0,
        escape(&picture.caption)
    )?;

    if !picture.outside.is_empty() {
        writeln!(out, "<g class=\"outside\">")?;
        writeln!(
            out,
            "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"12\" fill=\"#555555\">outside the nodes</text>",
            top + 18.0
        )?;
        for vertex in &picture.outside {
            write_vertex(vertex, rects[&vertex.key], true, out)?;
        }
        writeln!(out, "</g>")?;
    }
    for (index, (cluster, frame)) in picture.clusters.iter().zip(&frames).enumerate() {
        writeln!(
            out,
            "<g class=\"node-group\" id=\"node-{index}\" data-node=\"{}\">",
            escape(&cluster.node)
        )?;
        writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"10\" \
             fill=\"#f3f6fa\" stroke=\"#8899aa\"/>",
            frame.x, frame.y, frame.w, frame.h
        )?;
        let address = cluster.address.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
        writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\">node {}{} · {} actors</text>",
            frame.x + PAD,
            frame.y + 19.0,
            escape(&cluster.node),
            escape(&address),
            cluster.actors
        )?;
        for vertex in &cluster.vertices {
            write_vertex(vertex, rects[&vertex.key], false, out)?;
        }
        writeln!(out, "</g>")?;
    }

    writeln!(out, "<g class=\"edges\" fill=\"none\">")?;
    for edge in &picture.edges {
        let (Some(from), Some(to)) = (rects.get(&edge.from), rects.get(&edge.to)) else {
            continue;
        };
        let stroke = color(edge.kind);
        let width = match edge.kind {
            EdgeKind::InFlight => 1.0 + (edge.count as f64).log2().clamp(0.0, 4.0) / 2.0,
            _ => 1.2,
        };
        // Many in-flight arrows cross: see-through, so the boxes and the other arrows show.
        let opacity = if edge.kind == EdgeKind::InFlight { " stroke-opacity=\"0.6\"" } else { "" };
        let dash = if edge.kind == EdgeKind::Watch { " stroke-dasharray=\"5 3\"" } else { "" };
        // Kinds between the same boxes sit side by side rather than on top of each other.
        let offset = match edge.kind {
            EdgeKind::Parent => 0.0,
            EdgeKind::Watch => 5.0,
            EdgeKind::InFlight => -5.0,
        };
        let label_at = if edge.from == edge.to {
            // A loop on the box's right side: messages among the actors of one box.
            let (x0, y0) = (from.x + from.w, from.y + from.h * 0.3);
            let y1 = from.y + from.h * 0.7;
            writeln!(
                out,
                "<path d=\"M {x0:.1} {y0:.1} C {:.1} {:.1}, {:.1} {:.1}, {x0:.1} {y1:.1}\" \
                 stroke=\"{stroke}\" stroke-width=\"{width:.1}\"{dash}{opacity} marker-end=\"url(#{})\"/>",
                x0 + 34.0,
                y0 - 16.0,
                x0 + 34.0,
                y1 + 16.0,
                marker(edge.kind)
            )?;
            (x0 + 30.0, from.y + from.h / 2.0 + 3.0)
        } else {
            let (tx, ty) = to.center();
            let (fx, fy) = from.center();
            let (x1, y1) = from.border_towards(tx, ty);
            let (x2, y2) = to.border_towards(fx, fy);
            let length = ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt().max(1.0);
            let (nx, ny) = (-(y2 - y1) / length * offset, (x2 - x1) / length * offset);
            writeln!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\" \
                 stroke-width=\"{width:.1}\"{dash}{opacity} marker-end=\"url(#{})\"/>",
                x1 + nx,
                y1 + ny,
                x2 + nx,
                y2 + ny,
                marker(edge.kind)
            )?;
            ((x1 + x2) / 2.0 + nx * 2.0, (y1 + y2) / 2.0 + ny * 2.0)
        };
        let label = match edge.kind {
            EdgeKind::InFlight => Some(edge.count.to_string()),
            _ if edge.count > 1 => Some(format!("×{}", edge.count)),
            _ => None,
        };
        if let Some(label) = label {
            writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{stroke}\" stroke=\"#ffffff\" \
                 stroke-width=\"3\" paint-order=\"stroke\" text-anchor=\"middle\">{label}</text>",
                label_at.0, label_at.1
            )?;
        }
    }
    writeln!(out, "</g>")?;

    // The legend.
    let y = top + content + 24.0;
    writeln!(out, "<g class=\"legend\" font-size=\"11\">")?;
    for (i, (kind, text)) in [
        (EdgeKind::Parent, "parent → child"),
        (EdgeKind::Watch, "watcher → watched"),
        (EdgeKind::InFlight, "messages in flight (count)"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = MARGIN + i as f64 * 190.0;
        let dash = if kind == EdgeKind::Watch { " stroke-dasharray=\"5 3\"" } else { "" };
        writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" \
             stroke-width=\"1.5\"{dash} marker-end=\"url(#{})\"/><text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            x + 34.0,
            color(kind),
            marker(kind),
            x + 42.0,
            y + 4.0
        )?;
    }
    writeln!(out, "</g>")?;
    writeln!(out, "</svg>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(depth: usize) -> Vertex {
        Vertex { key: String::new(), title: String::new(), detail: String::new(), depth }
    }

    #[test]
    fn rows_start_at_each_depth_and_wrap() {
        let vertices: Vec<Vertex> = [0, 1, 1, 1, 2].into_iter().map(vertex).collect();
        let (cells, used, rows) = rows(&vertices, 2);
        assert_eq!(cells, vec![(0, 0), (0, 1), (1, 1), (0, 2), (0, 3)]);
        assert_eq!((used, rows), (2, 4));
        assert_eq!(super::rows(&[], 3), (vec![], 0, 0));
    }

    #[test]
    fn borders() {
        let rect = Rect { x: 0.0, y: 0.0, w: 100.0, h: 40.0 };
        assert_eq!(rect.border_towards(50.0, 1000.0), (50.0, 40.0));
        assert_eq!(rect.border_towards(1000.0, 20.0), (100.0, 20.0));
    }
}
