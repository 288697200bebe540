//! `amber`: look inside amber checkpoints.
//!
//! ```text
//! amber list STORE_DIR            (a directory, file:///DIR or s3://BUCKET/PREFIX)
//! amber inspect CHECKPOINT [--latest | --store DIR] [--json] [--summary] [--type T] [--actor A] [--node N]
//! amber diff A B [--store DIR] [--json]
//! amber graph CHECKPOINT [--latest | --store DIR] [--format dot|svg]
//! amber stats STORE_DIR [--svg | --json]
//! amber completions bash|zsh|fish|elvish|powershell
//! ```
//!
//! Output is written as it is produced, never gathered first. Exit codes: 0 on success (and
//! for `--help`, or `amber` alone, which prints the usage), 1 when a file or store cannot be
//! read (one line on stderr names the file and the reason), 2 on a usage error.

mod args;
mod diff;
mod graph;
mod inspect;
mod list;
mod source;
mod stats;
mod summary;
mod time;
mod transcode;
mod xml;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line is wrong (exit code 2).
    Usage(String),
    /// A file or store could not be read (exit code 1). Each string is one line.
    Input(Vec<String>),
    /// The output could not be written.
    Output(io::Error),
}

impl Failure {
    /// One line saying what could not be read and why.
    pub(crate) fn input(line: impl ToString) -> Failure {
        Failure::Input(vec![line.to_string()])
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        Failure::Output(err)
    }
}

/// Runs `command`, writing to `out`.
fn run(command: Command, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        Command::List { dir } => list::run(&dir, out),
        Command::Inspect(args) => inspect::run(&args, out),
        Command::Diff(args) => diff::run(&args, out),
        Command::Graph(args) => graph::run(&args, out),
        Command::Stats(args) => stats::run(&args, out),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write, and the reader may
            // hang up mid-way (`amber completions bash | head`), which is not an error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "amber", &mut script);
            out.write_all(&script)?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Parse errors and --help/--version go through clap: help and version to stdout with
    // exit code 0, errors (with suggestions for typos) to stderr with exit code 2.
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match cli.command {
        Some(command) => run(command, &mut out),
        None => Cli::command().write_long_help(&mut out).map_err(Failure::Output),
    };
    // Whatever was written before a failure (e.g. the good lines of `list`) still goes out.
    let flushed = out.flush().map_err(Failure::Output);
    match result.and(flushed) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`amber inspect … | head`): not an error of ours.
        Err(Failure::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(err)) => {
            eprintln!("amber: cannot write the output: {err}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("amber: {message} (see 'amber help')");
            ExitCode::from(2)
        }
        Err(Failure::Input(lines)) => {
            for line in lines {
                eprintln!("amber: {line}");
            }
            ExitCode::from(1)
        }
    }
}
