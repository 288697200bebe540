//! The transport's own thread ([`TransportConfig::io_thread`](crate::TransportConfig)):
//! a single-threaded runtime that runs every task of the transport and ends with it.

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::GOODBYE_GRACE;

/// Starts the thread of node `node`'s transport and returns its runtime's handle. The thread
/// runs until `shutdown` is cancelled and `tasks` have ended (links write their goodbyes),
/// at most twice [`GOODBYE_GRACE`] after; then its runtime drops whatever is left.
pub(super) fn start(
    node: &str,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) -> std::io::Result<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = runtime.handle().clone();
    let node = node.to_owned();
    std::thread::Builder::new().name("amber-io".to_owned()).spawn(move || {
        runtime.block_on(async move {
            shutdown.cancelled().await;
            tasks.close();
            let _ = tokio::time::timeout(2 * GOODBYE_GRACE, tasks.wait()).await;
        });
        tracing::debug!(%node, "transport thread ends");
    })?;
    Ok(handle)
}
