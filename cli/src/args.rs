//! The command line, parsed.

use std::ffi::OsString;
use std::path::PathBuf;

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
    /// `amber list STORE_DIR`.
    List {
        /// The store directory.
        dir: PathBuf,
    },
    /// `amber inspect PATH [--latest] [--json]`.
    Inspect {
        /// A checkpoint file, or with `latest` a store directory.
        path: PathBuf,
        /// Inspect the newest checkpoint of the store at `path`.
        latest: bool,
        /// Print one JSON object instead of text.
        json: bool,
    },
}

/// Parses the arguments after the program name; an error is a usage message.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        return Err("missing command".to_owned());
    };
    let command = command.to_str().ok_or("the command is not valid UTF-8")?.to_owned();
    match command.as_str() {
        "help" | "--help" | "-h" => return Ok(Command::Help),
        "--version" | "-V" => return Ok(Command::Version),
        _ => {}
    }
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut only_positional = false;
    for arg in args {
        match arg.to_str() {
            Some("--") if !only_positional => only_positional = true,
            Some(option) if !only_positional && option.starts_with('-') && option.len() > 1 => {
                options.push(option.to_owned());
            }
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    if options.iter().any(|option| option == "--help" || option == "-h") {
        return Ok(Command::Help);
    }
    let allowed: &[&str] = match command.as_str() {
        "list" => &[],
        "inspect" => &["--json", "--latest"],
        other => return Err(format!("unknown command '{other}'")),
    };
    if let Some(option) = options.iter().find(|option| !allowed.contains(&option.as_str())) {
        return Err(format!("unknown option '{option}' for '{command}'"));
    }
    let has = |name: &str| options.iter().any(|option| option == name);
    let what = if command == "list" || has("--latest") { "STORE_DIR" } else { "CHECKPOINT_FILE" };
    let mut positional = positional.into_iter();
    let path = positional.next().ok_or_else(|| format!("'{command}' needs {what}"))?;
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument '{}'", extra.display()));
    }
    Ok(match command.as_str() {
        "list" => Command::List { dir: path },
        _ => Command::Inspect { path, latest: has("--latest"), json: has("--json") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn commands() {
        assert_eq!(parse_str(&["list", "d"]), Ok(Command::List { dir: "d".into() }));
        assert_eq!(
            parse_str(&["inspect", "f.amber"]),
            Ok(Command::Inspect { path: "f.amber".into(), latest: false, json: false })
        );
        assert_eq!(
            parse_str(&["inspect", "--json", "d", "--latest"]),
            Ok(Command::Inspect { path: "d".into(), latest: true, json: true })
        );
        assert_eq!(
            parse_str(&["inspect", "--", "-odd-name"]),
            Ok(Command::Inspect { path: "-odd-name".into(), latest: false, json: false })
        );
        assert_eq!(parse_str(&["help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["list", "--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn usage_errors() {
        for (args, message) in [
            (&[][..], "missing command"),
            (&["frobnicate"][..], "unknown command 'frobnicate'"),
            (&["list"][..], "'list' needs STORE_DIR"),
            (&["inspect"][..], "'inspect' needs CHECKPOINT_FILE"),
            (&["inspect", "--latest"][..], "'inspect' needs STORE_DIR"),
            (&["list", "--json", "d"][..], "unknown option '--json' for 'list'"),
            (&["inspect", "a", "b"][..], "unexpected argument 'b'"),
        ] {
            assert_eq!(parse_str(args), Err(message.to_owned()), "{args:?}");
        }
    }
}
