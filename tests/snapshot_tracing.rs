//! What a snapshot, a checkpoint write and a restore leave in the log: one INFO line per
//! checkpoint written and per restore, with their figures; a span per snapshot, checkpoint
//! and restore carrying the same figures; actors' lifecycle below INFO.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use amber::prelude::*;
use amber::snapshot::FsStore;
use support::bank::{Account, open_bank};
use support::bounded;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(Into::into).collect()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The lines with every one of `needles`.
fn having<'a>(lines: &'a [String], needles: &[&str]) -> Vec<&'a String> {
    lines.iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
}

#[test]
fn a_checkpoint_written_and_a_restore_each_log_one_info_line_with_their_figures() {
    const ACCOUNTS: usize = 6;
    let captured = Captured::default();
    // Spans are printed when they close, with the figures recorded on them.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap().with_durability(false));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (info, restored_from) = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let system = ActorSystem::builder().register::<Account>().build();
            open_bank(&system, ACCOUNTS, 100).await;
            let info = bounded(system.checkpoint(&store)).await.expect("checkpoint written");
            bounded(system.shutdown()).await;
            let restored = ActorSystem::builder()
                .register::<Account>()
                .restore_latest(&*store)
                .expect("the checkpoint restores");
            bounded(restored.system.shutdown()).await;
            (info, restored.checkpoint)
        })
    });
    let lines = captured.lines();
    let all = lines.join("\n");
    let id = format!("checkpoint={}", info.id);
    let actors = format!("actors={ACCOUNTS}");

    // The checkpoint: one INFO line with its id, epoch, actors, in-flight count, bytes, time.
    let bytes = format!("bytes={}", info.bytes);
    let written = having(&lines, &[" INFO ", "checkpoint written", &id, &actors, &bytes]);
    assert_eq!(written.len(), 1, "{all}");
    for figure in ["epoch=", "in_flight=", "ms="] {
        assert!(written[0].contains(figure), "{figure} missing: {}", written[0]);
    }

    // The restore: one INFO line naming the checkpoint, with its figures.
    assert_eq!(restored_from.manifest.id, info.id);
    let restore = having(&lines, &[" INFO ", "restored from checkpoint", &id, &actors]);
    assert_eq!(restore.len(), 1, "{all}");
    assert!(restore[0].contains("in_flight=") && restore[0].contains("ms="), "{}", restore[0]);

    // The spans, closed with their figures: the snapshot inside the checkpoint, the restore.
    let epoch = format!("epoch={}", restored_from.manifest.epoch);
    assert_eq!(having(&lines, &["checkpoint{", &id, &bytes, "close"]).len(), 1, "{all}");
    assert_eq!(having(&lines, &["snapshot{", &epoch, &actors, "close"]).len(), 1, "{all}");
    assert_eq!(having(&lines, &["restore{", &id, &actors, "close"]).len(), 1, "{all}");

    // Actors' lifecycle stays below INFO.
    assert!(having(&lines, &["starting"]).is_empty(), "{all}");
    assert!(having(&lines, &["stopped"]).is_empty(), "{all}");
}
