//! The command line, declared with clap's derive: every command, its arguments and its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// Look inside amber checkpoints: list, inspect, diff, draw and chart them.
///
/// A checkpoint is named by its file (`DIR/ckpt-00000000000000000007.amber`), or by a store
/// directory given with `--store DIR` and an id in it: `7`, `ckpt-00000000000000000007` (as
/// `amber list` prints it), `latest`, or `latest~N` (N good checkpoints before it). `latest`
/// is the newest checkpoint that loads, where a restore would start; newer ones that do not
/// load are named on stderr.
///
/// A store is a directory, a `file:///DIR` URL, or `s3://BUCKET/PREFIX` (S3 or an
/// S3-compatible service, reached through the standard AWS environment variables:
/// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP);
/// a checkpoint in object storage is named by its URL
/// (`s3://BUCKET/PREFIX/ckpt-00000000000000000007.amber`).
///
/// States, timer messages and in-flight payloads are MessagePack, shown as JSON: refs to
/// actors (a map of exactly `system` and `seq`) print as actor ids do (`399@324db785b696d64d`),
/// binary values become arrays of byte values, map keys that are not strings become their
/// JSON text, and extension values become {"ext": TYPE, "data": [BYTES]}. Bytes that are not
/// one MessagePack value are shown as an array of byte values, with the reason in a sibling
/// "..._error" field.
///
/// Exit status: 0 ok (and for --help), 1 unreadable file or store, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "amber", version, propagate_version = true)]
pub(crate) struct Cli {
    /// What to do; without one, this help.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// One line per checkpoint of a store, oldest first.
    List {
        /// The store: a directory, file:///DIR or s3://BUCKET/PREFIX.
        #[arg(value_name = "STORE_DIR")]
        dir: PathBuf,
    },
    /// Every actor (sorted by id) and every in-flight message of a checkpoint, or a summary.
    #[command(after_help = "Examples:\n  amber inspect DIR --latest --summary\n  \
                            amber inspect --store DIR latest --type bank.Account --json\n  \
                            amber inspect FILE --actor 17@324db785b696d64d")]
    Inspect(InspectArgs),
    /// What changed between two checkpoints: actors added, removed, moved, changed states
    /// field by field, and in-flight messages per receiver.
    #[command(after_help = "Examples:\n  amber diff A.amber B.amber\n  \
                            amber diff --store DIR latest~1 latest --json")]
    Diff(DiffArgs),
    /// A picture of a checkpoint: actors grouped by node, parent/child and watch links, and
    /// in-flight messages with their counts, as Graphviz DOT or as SVG.
    #[command(after_help = "Examples:\n  amber graph DIR --latest --format svg > system.svg\n  \
                            amber graph FILE | dot -Tpng > system.png\n  \
                            amber graph DIR --latest --format svg --shards > shards.svg\n  \
                            amber graph DIR --latest --shards 32 > shards.dot")]
    Graph(GraphArgs),
    /// The history of a store: size, actors, in-flight messages and time per checkpoint, as
    /// a table or as an SVG plot.
    Stats(StatsArgs),
    /// A completion script for a shell, to print and source (e.g. `amber completions bash >
    /// ~/.local/share/bash-completion/completions/amber`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Which checkpoint a command reads.
#[derive(Debug, Args)]
pub(crate) struct CheckpointArg {
    /// A checkpoint file or object URL; with --latest a store (directory or URL); with --store
    /// an id in the store.
    #[arg(value_name = "CHECKPOINT")]
    pub(crate) checkpoint: PathBuf,
    /// Read the newest checkpoint of the store CHECKPOINT that loads (a restore's; newer ones
    /// that do not are named on stderr).
    #[arg(long, conflicts_with = "store")]
    pub(crate) latest: bool,
    /// Read CHECKPOINT as an id in this store (a directory or URL).
    #[arg(long, value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
}

/// `amber inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) source: CheckpointArg,
    /// Print JSON: one object with `checkpoint`, `actors` and `in_flight` (or the summary).
    #[arg(long)]
    pub(crate) json: bool,
    /// Counts per type and node, in-flight messages per receiver and per kind, the largest
    /// states, and sizes, instead of every actor.
    #[arg(long)]
    pub(crate) summary: bool,
    /// How many receivers and states the summary lists at most.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) top: usize,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// Which actors `inspect` shows; each option may be repeated, an actor must match one value
/// of every option given.
#[derive(Debug, Args, Default)]
pub(crate) struct FilterArgs {
    /// Only actors of this type (its registered name, e.g. `bank.Account`).
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) types: Vec<String>,
    /// Only this actor: its id (`17@324db785b696d64d`) or its registered name.
    #[arg(long = "actor", value_name = "ID_OR_NAME")]
    pub(crate) actors: Vec<String>,
    /// Only actors on this node.
    #[arg(long = "node", value_name = "NODE")]
    pub(crate) nodes: Vec<String>,
}

/// `amber diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The older checkpoint: a file, or with --store an id.
    #[arg(value_name = "A")]
    pub(crate) a: PathBuf,
    /// The newer checkpoint: a file, or with --store an id.
    #[arg(value_name = "B")]
    pub(crate) b: PathBuf,
    /// Read A and B as ids in this store (a directory or URL).
    #[arg(long, value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    /// Print one JSON object: added, removed, moved, changed, in_flight.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The picture formats of `amber graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT, for `dot -Tsvg` and friends.
    Dot,
    /// A self-contained SVG picture, laid out by amber.
    Svg,
}

/// `amber graph`.
#[derive(Debug, Args)]
pub(crate) struct GraphArgs {
    #[command(flatten)]
    pub(crate) source: CheckpointArg,
    /// The output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub(crate) format: GraphFormat,
    /// Above this many actors, draw one box per type and node (with counts) instead of one
    /// per actor.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub(crate) collapse_above: usize,
    /// Group sharded entities (registered as `shard:TYPE/KEY`) and their shards' keepers
    /// into one box per shard and node, with counts, their shard computed from their key as
    /// amber's sharding does over its shard count: each type's as the checkpoint records
    /// it, or N for every type if given (for a checkpoint that records none, taken before
    /// checkpoints recorded them). In-flight messages are then counted between shards.
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) shards: Option<Option<u32>>,
}

/// `amber stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The store: a directory, file:///DIR or s3://BUCKET/PREFIX.
    #[arg(value_name = "STORE_DIR")]
    pub(crate) dir: PathBuf,
    /// Print an SVG plot over time instead of the table.
    #[arg(long)]
    pub(crate) svg: bool,
    /// Print the table as JSON, one object per checkpoint.
    #[arg(long, conflicts_with = "svg")]
    pub(crate) json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_commands() {
        let cli = Cli::try_parse_from(["amber", "diff", "--store", "d", "1", "latest", "--json"])
            .unwrap();
        let Some(Command::Diff(diff)) = cli.command else { panic!("{cli:?}") };
        assert_eq!(
            (diff.a.to_str(), diff.b.to_str(), diff.json),
            (Some("1"), Some("latest"), true)
        );
        let cli = Cli::try_parse_from(["amber", "inspect", "--", "-odd-name"]).unwrap();
        let Some(Command::Inspect(inspect)) = cli.command else { panic!("{cli:?}") };
        assert_eq!(inspect.source.checkpoint.to_str(), Some("-odd-name"));
        assert!(Cli::try_parse_from(["amber"]).unwrap().command.is_none());
        assert!(
            Cli::try_parse_from(["amber", "inspect", "f", "--latest", "--store", "d"]).is_err()
        );
    }
}
