//! `amber list STORE_DIR`: one line per checkpoint.

use std::fs;
use std::io::Write;
use std::path::Path;

use amber_snapshot::CheckpointStore;

use crate::Failure;
use crate::source::open_store;
use crate::time::rfc3339;

/// Prints one line per checkpoint of the store in `dir`, oldest first:
///
/// ```text
/// ckpt-00000000000000000003 epoch=13 created=2023-11-14T22:13:20.003Z actors=3 in_flight=3 bytes=812
/// ```
///
/// Every checkpoint is read whole and checked; each one that does not load is reported on
/// stderr instead (and the exit code is 1), the others are still listed.
pub(crate) fn run(dir: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open_store(dir)?;
    let mut errors = Vec::new();
    for id in store.ids().map_err(Failure::input)? {
        let checkpoint = match store.load(id) {
            Ok(checkpoint) => checkpoint,
            Err(err) => {
                errors.push(err.to_string());
                continue;
            }
        };
        let path = store.path_of(id);
        let bytes = match fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(err) => {
                errors.push(format!("cannot read metadata of {}: {err}", path.display()));
                continue;
            }
        };
        let manifest = &checkpoint.manifest;
        writeln!(
            out,
            "{id} epoch={} created={} actors={} in_flight={} bytes={bytes}",
            manifest.epoch.0,
            rfc3339(manifest.created_unix_ms),
            manifest.actors.len(),
            checkpoint.in_flight.len(),
        )?;
    }
    if errors.is_empty() { Ok(()) } else { Err(Failure::Input(errors)) }
}
