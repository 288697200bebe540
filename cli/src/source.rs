//! Where a command's checkpoint comes from: a file, the newest of a store, or an id in a store.

use std::path::{Path, PathBuf};

use amber_snapshot::{Checkpoint, CheckpointId, CheckpointStore, FsStore, Store};

use crate::Failure;
use crate::args::CheckpointArg;

/// A checkpoint, read and checked, with the file it came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The file it was read from, or the URL of its object (`s3://…`).
    pub(crate) file: PathBuf,
    /// Its size as stored.
    pub(crate) bytes: u64,
    /// What it holds.
    pub(crate) checkpoint: Checkpoint,
}

/// Opens the store `dir` names for reading: a directory, or a URL (`file:///DIR`,
/// `s3://BUCKET/PREFIX`); unlike [`FsStore::open`], never creates a directory.
pub(crate) fn open_store(dir: &Path) -> Result<Store, Failure> {
    if let Some(url) = dir.to_str().filter(|name| Store::is_url(name)) {
        return Store::open_existing(url).map_err(Failure::input);
    }
    if !dir.is_dir() {
        let reason = if dir.exists() { "not a directory" } else { "no such directory" };
        return Err(Failure::input(format!("{}: {reason}", dir.display())));
    }
    FsStore::open_existing(dir).map(Store::Fs).map_err(Failure::input)
}

/// Loads every checkpoint of `store`, oldest first, and hands each that loads to `each` with
/// its size as stored. Returns why the others did not load (the caller reports them and exits
/// 1, after showing the rest).
pub(crate) fn each_checkpoint(
    store: &Store,
    mut each: impl FnMut(
        amber_snapshot::CheckpointId,
        amber_snapshot::Checkpoint,
        u64,
    ) -> Result<(), Failure>,
) -> Result<Vec<String>, Failure> {
    let mut errors = Vec::new();
    for id in store.ids().map_err(Failure::input)? {
        let checkpoint = match store.load(id) {
            Ok(checkpoint) => checkpoint,
            Err(err) => {
                errors.push(err.to_string());
                continue;
            }
        };
        match store.bytes_of(id) {
            Ok(bytes) => each(id, checkpoint, bytes)?,
            Err(err) => errors.push(err.to_string()),
        }
    }
    Ok(errors)
}

/// Loads the checkpoint `arg` names.
pub(crate) fn load(arg: &CheckpointArg) -> Result<Loaded, Failure> {
    match (&arg.store, arg.latest) {
        (Some(dir), _) => in_store(dir, &arg.checkpoint),
        (None, true) => in_store(&arg.checkpoint, Path::new("latest")),
        (None, false) => file(&arg.checkpoint),
    }
}

/// The checkpoint in file `path`, or in the object a URL names
/// (`s3://BUCKET/PREFIX/ckpt-00000000000000000007.amber`).
pub(crate) fn file(path: &Path) -> Result<Loaded, Failure> {
    if let Some(url) = path.to_str().filter(|name| Store::is_url(name)) {
        let Some((store, name)) = url.rsplit_once('/') else {
            return Err(Failure::Usage(format!("{url}: not the URL of a checkpoint")));
        };
        return in_store(Path::new(store), Path::new(name));
    }
    if path.is_dir() {
        return Err(Failure::input(format!(
            "{}: is a directory (add --latest for its newest checkpoint, or name one with \
             --store DIR ID)",
            path.display()
        )));
    }
    let checkpoint = FsStore::load_file(path).map_err(Failure::input)?;
    let bytes = std::fs::metadata(path)
        .map_err(|err| {
            Failure::input(format!("cannot read metadata of {}: {err}", path.display()))
        })?
        .len();
    Ok(Loaded { file: path.to_owned(), bytes, checkpoint })
}

/// The checkpoint named `id` in the store in `dir`: a number, a name as `amber list` prints
/// it, `latest` or `latest~N`.
///
/// `latest` is the newest checkpoint that loads, the one `restore_latest` would restore from
/// (it also skips checkpoints whose types the restoring system does not register, which
/// this tool cannot know); `latest~N` is the N-th good one before it. Each newer one that does
/// not load is named on stderr with the reason, as `restore_latest` lists it in `skipped`.
pub(crate) fn in_store(dir: &Path, id: &Path) -> Result<Loaded, Failure> {
    let store = open_store(dir)?;
    let text = id.to_str().ok_or_else(|| Failure::Usage(bad_id(id)))?;
    let id = match parse_id(text).ok_or_else(|| Failure::Usage(bad_id(id)))? {
        Named::Id(id) => id,
        Named::Latest(back) => return latest_good(&store, dir, text, back),
    };
    let checkpoint = store.load(id).map_err(Failure::input)?;
    let bytes = store.bytes_of(id).map_err(Failure::input)?;
    Ok(Loaded { file: PathBuf::from(store.location_of(id)), bytes, checkpoint })
}

/// The `back`-th newest checkpoint of `store` that loads (0: the newest that does), warning
/// about each newer one that does not.
fn latest_good(store: &Store, dir: &Path, text: &str, back: usize) -> Result<Loaded, Failure> {
    let ids = store.ids().map_err(Failure::input)?;
    if ids.is_empty() {
        return Err(Failure::input(format!("{}: no checkpoints in this store", dir.display())));
    }
    let (mut good, mut skipped) = (0, Vec::new());
    for &id in ids.iter().rev() {
        let loaded = store.load(id).and_then(|checkpoint| Ok((checkpoint, store.bytes_of(id)?)));
        match loaded {
            Ok((checkpoint, bytes)) if good == back => {
                for reason in &skipped {
                    eprintln!("amber: skipped a checkpoint that does not load: {reason}");
                }
                return Ok(Loaded {
                    file: PathBuf::from(store.location_of(id)),
                    bytes,
                    checkpoint,
                });
            }
            Ok(_) => good += 1,
            Err(err) => skipped.push(err.to_string()),
        }
    }
    let mut reasons = skipped.join("; ");
    if !reasons.is_empty() {
        reasons = format!(" (not loading: {reasons})");
    }
    Err(Failure::input(format!(
        "{}: {text}: the store holds {} checkpoint(s), {good} of which load{reasons}",
        dir.display(),
        ids.len()
    )))
}

fn bad_id(id: &Path) -> String {
    format!(
        "'{}' is not a checkpoint id (use a number, a name such as ckpt-00000000000000000007, \
         latest or latest~N)",
        id.display()
    )
}

/// A checkpoint named within a store.
#[derive(Debug, PartialEq, Eq)]
enum Named {
    /// By its id.
    Id(CheckpointId),
    /// The newest but this many.
    Latest(usize),
}

fn parse_id(text: &str) -> Option<Named> {
    if text == "latest" {
        return Some(Named::Latest(0));
    }
    if let Some(back) = text.strip_prefix("latest~") {
        return back.parse().ok().map(Named::Latest);
    }
    let digits = text.strip_prefix("ckpt-").unwrap_or(text);
    let digits = digits.strip_suffix(".amber").unwrap_or(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|id| Named::Id(CheckpointId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(parse_id("7"), Some(Named::Id(CheckpointId(7))));
        assert_eq!(parse_id("ckpt-00000000000000000042"), Some(Named::Id(CheckpointId(42))));
        assert_eq!(parse_id("ckpt-00000000000000000042.amber"), Some(Named::Id(CheckpointId(42))));
        assert_eq!(parse_id("latest"), Some(Named::Latest(0)));
        assert_eq!(parse_id("latest~3"), Some(Named::Latest(3)));
        for bad in ["", "-1", "+1", "latest~", "latest~x", "ckpt-", "seven", "99999999999999999999"]
        {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
