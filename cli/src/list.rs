//! `amber list STORE_DIR`: one line per checkpoint.

use std::io::Write;
use std::path::Path;

use crate::Failure;
use crate::source::{each_checkpoint, open_store};
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
    let errors = each_checkpoint(&store, |id, checkpoint, bytes| {
        let manifest = &checkpoint.manifest;
        writeln!(
            out,
            "{id} epoch={} created={} actors={} in_flight={} bytes={bytes}",
            manifest.epoch.0,
            rfc3339(manifest.created_unix_ms),
            manifest.actors.len(),
            checkpoint.in_flight.len(),
        )?;
        Ok(())
    })?;
    if errors.is_empty() { Ok(()) } else { Err(Failure::Input(errors)) }
}
