//! Captured `tracing` output, for tests that count log lines. Each such test lives in its own
//! test binary: `tracing` caches per call site whether anyone listens, which races with tests
//! on other threads.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The formatted lines of every event logged on this thread while the guard of
/// [`Logs::capture`] lives.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures this thread's events (a current-thread runtime's tasks included) until the
    /// guard is dropped.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber =
            tracing_subscriber::fmt().with_writer(logs.clone()).with_ansi(false).finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The lines logged at WARN level so far.
    pub fn warnings(&self) -> Vec<String> {
        self.text().lines().filter(|line| line.contains("WARN")).map(str::to_owned).collect()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
