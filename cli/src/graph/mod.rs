//! `amber graph`: a picture of a checkpoint.
//!
//! - `model`: the picture as data: one cluster per node holding its actors (or, above a size,
//!   one box per type with a count; with `--shards`, one box per shard for sharded entities),
//!   and edges for parent/child links, watches and in-flight messages (with counts);
//! - `shard`: the shard counts (given, or as the checkpoint records them) and which shard a
//!   sharded entity or a shard's keeper belongs to;
//! - `dot`: that picture as Graphviz DOT;
//! - `svg`: that picture laid out in layers and drawn as a self-contained SVG.

mod dot;
mod model;
mod shard;
mod svg;

use std::io::Write;

use crate::Failure;
use crate::args::{GraphArgs, GraphFormat};
use crate::source;

pub(crate) use model::Picture;
use shard::ShardCounts;

/// Draws the checkpoint `args` names in the format it asks for.
pub(crate) fn run(args: &GraphArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let loaded = source::load(&args.source)?;
    let usage = |e: String| Failure::Usage(format!("{}: {e}", args.source.checkpoint.display()));
    let shards = match args.shards {
        None => None,
        Some(Some(n)) => Some(ShardCounts::Given(n)),
        Some(None) => Some(ShardCounts::recorded(&loaded.checkpoint.manifest).map_err(usage)?),
    };
    let picture =
        Picture::of(&loaded.checkpoint, args.collapse_above, shards.as_ref()).map_err(usage)?;
    match args.format {
        GraphFormat::Dot => dot::write(&picture, out)?,
        GraphFormat::Svg => svg::write(&picture, out)?,
    }
    Ok(())
}
