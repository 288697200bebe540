//! `amber`: list and inspect amber checkpoints.
//!
//! ```text
//! amber list STORE_DIR
//! amber inspect CHECKPOINT_FILE [--json]
//! amber inspect STORE_DIR --latest [--json]
//! ```
//!
//! Exit codes: 0 on success, 1 when a file or store cannot be read (one line on stderr names
//! the file and the reason), 2 on a usage error.

mod args;
mod inspect;
mod list;
mod time;
mod transcode;

use std::io::{self, Write};
use std::process::ExitCode;

use std::path::Path;

use amber_snapshot::FsStore;

use crate::args::Command;

/// What `amber help` prints.
const USAGE: &str = "\
amber: list and inspect amber checkpoints

usage:
  amber list STORE_DIR                       one line per checkpoint in a store directory
  amber inspect CHECKPOINT_FILE [--json]     every actor and in-flight message of a checkpoint
  amber inspect STORE_DIR --latest [--json]  the same, for the newest checkpoint of a store
  amber help                                 this text
  amber --version                            the version

States, timer messages and in-flight payloads are MessagePack, shown as JSON: binary values
become arrays of byte values, map keys that are not strings become their JSON text, and
extension values become {\"ext\": TYPE, \"data\": [BYTES]}. Bytes that are not one MessagePack
value are shown as an array of byte values, with the reason in a sibling \"..._error\" field.

exit status: 0 ok, 1 unreadable file or store, 2 usage error
";

/// Opens the store in `dir` for reading; unlike [`FsStore::open`], never creates it.
fn open_store(dir: &Path) -> Result<FsStore, Failure> {
    if !dir.is_dir() {
        let reason = if dir.exists() { "not a directory" } else { "no such directory" };
        return Err(Failure::input(format!("{}: {reason}", dir.display())));
    }
    FsStore::open(dir).map_err(Failure::input)
}

/// Why a command failed.
#[derive(Debug)]
enum Failure {
    /// The command line is wrong (exit code 2).
    Usage(String),
    /// A file or store could not be read (exit code 1). Each string is one line.
    Input(Vec<String>),
}

impl Failure {
    /// One line saying what could not be read and why.
    fn input(line: impl ToString) -> Failure {
        Failure::Input(vec![line.to_string()])
    }
}

fn main() -> ExitCode {
    let mut stdout = String::new();
    let result =
        args::parse(std::env::args_os().skip(1)).map_err(Failure::Usage).and_then(|command| {
            match command {
                Command::Help => {
                    stdout.push_str(USAGE);
                    Ok(())
                }
                Command::Version => {
                    stdout.push_str(&format!("amber {}\n", env!("CARGO_PKG_VERSION")));
                    Ok(())
                }
                Command::List { dir } => list::run(&dir, &mut stdout),
                Command::Inspect { path, latest, json } => {
                    inspect::run(&path, latest, json, &mut stdout)
                }
            }
        });
    // Whatever was printed before a failure (e.g. the good lines of `list`) still goes out.
    let written =
        io::stdout().lock().write_all(stdout.as_bytes()).and_then(|()| io::stdout().flush());
    match result {
        Ok(()) => match written {
            Ok(()) => ExitCode::SUCCESS,
            // The reader went away (`amber inspect … | head`): not an error of ours.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("amber: cannot write the output: {err}");
                ExitCode::from(1)
            }
        },
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
