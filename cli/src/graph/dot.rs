//! The picture as Graphviz DOT: one `cluster_` subgraph per node.

use std::io::{self, Write};

use super::model::{EdgeKind, Picture, Vertex};

/// `text` as a DOT string, quoted.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn vertex(vertex: &Vertex, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{indent}{} [label={}];",
        quote(&vertex.key),
        quote(&format!("{}\n{}", vertex.title, vertex.detail))
    )
}

/// Writes `picture` as one DOT digraph.
pub(super) fn write(picture: &Picture, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "digraph amber {{")?;
    writeln!(
        out,
        "  graph [label={}, labelloc=t, fontname=\"Helvetica\", rankdir=TB, compound=true];",
        quote(&picture.caption)
    )?;
    writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#fff7e6\", fontname=\"Helvetica\", fontsize=10];"
    )?;
    writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=9];")?;
    for (index, cluster) in picture.clusters.iter().enumerate() {
        writeln!(out, "  subgraph cluster_{index} {{")?;
        let label = match &cluster.address {
            Some(address) => {
                format!("node {} ({address}): {} actors", cluster.node, cluster.actors)
            }
            None => format!("node {}: {} actors", cluster.node, cluster.actors),
        };
        writeln!(out, "    label={};", quote(&label))?;
        writeln!(out, "    style=\"rounded\"; color=\"#8899aa\";")?;
        for v in &cluster.vertices {
            vertex(v, "    ", out)?;
        }
        writeln!(out, "  }}")?;
    }
    for v in &picture.outside {
        writeln!(
            out,
            "  {} [label={}, shape=ellipse, style=dashed];",
            quote(&v.key),
            quote(&format!("{}\n{}", v.title, v.detail))
        )?;
    }
    for edge in &picture.edges {
        let attributes = match edge.kind {
            EdgeKind::Parent if edge.count > 1 => {
                format!(
                    "color=\"#666666\", arrowhead=odiamond, label={}",
                    quote(&format!("{} children", edge.count))
                )
            }
            EdgeKind::Parent => "color=\"#666666\", arrowhead=odiamond".to_owned(),
            EdgeKind::Watch => format!(
                "color=\"#3366cc\", style=dashed, label={}",
                quote(&if edge.count > 1 {
                    format!("watch ×{}", edge.count)
                } else {
                    "watch".into()
                })
            ),
            EdgeKind::InFlight => format!(
                "color=\"#cc3333\", fontcolor=\"#cc3333\", penwidth={:.1}, label={}",
                1.0 + (edge.count as f64).log2().min(4.0),
                quote(&format!("{} in flight", edge.count))
            ),
        };
        writeln!(out, "  {} -> {} [{attributes}];", quote(&edge.from), quote(&edge.to))?;
    }
    writeln!(out, "}}")
}
