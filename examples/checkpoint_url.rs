//! Checkpoints to a store named by a URL, and a restore from it: a counter that survives
//! restarts of this program. Each run restores the newest checkpoint of the store (if any),
//! adds 1 three times and writes a checkpoint after each.
//!
//! ```text
//! cargo run --example checkpoint_url -- checkpoints/counter             # a directory
//! cargo run --example checkpoint_url -- file:///tmp/amber/counter       # the same, as a URL
//! cargo run --example checkpoint_url --features s3 -- s3://my-bucket/counter
//! ```
//!
//! An `s3://` URL needs amber's feature `s3` and reads the standard AWS environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ALLOW_HTTP`); docs/snapshots.md shows a run against a local S3 endpoint.

use std::sync::Arc;

use amber::prelude::*;
use amber::snapshot::{CheckpointStore, Store};

/// A count that only grows.
#[derive(ActorState, Debug, Default)]
#[amber(name = "demo.Counter")]
struct Counter {
    count: u64,
}

#[amber::actor]
impl Counter {
    /// Adds `n`; answers the new count.
    fn add(&mut self, n: u64) -> u64 {
        self.count += n;
        self.count
    }
}

/// A counter that survives restarts of this program: each run restores the newest
/// checkpoint of the store (if any), adds 1 three times and writes a checkpoint after each.
#[derive(Debug, clap::Parser)]
#[command(name = "checkpoint_url")]
struct Args {
    /// The store: a directory, file:///DIR, or with --features s3 s3://BUCKET/PREFIX (the
    /// endpoint and credentials from the standard AWS environment variables).
    #[arg(value_name = "DIR|URL", default_value = "checkpoints/counter")]
    url: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Args { url } = clap::Parser::parse();
    // The store's calls block (files, or requests on the store's own runtime): off the executor.
    let store = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Store::from_url(&url)).await??.with_retention(3)
    };
    let store = Arc::new(store);
    let builder = ActorSystem::builder().register::<Counter>();
    let reader = Arc::clone(&store);
    let (system, counter) = if tokio::task::spawn_blocking(move || reader.ids()).await??.is_empty()
    {
        println!("{url}: no checkpoint yet, starting from 0");
        let system = builder.build();
        let counter = system.spawn_named("counter", Counter::default())?;
        (system, counter)
    } else {
        let reader = Arc::clone(&store);
        let restored =
            tokio::task::spawn_blocking(move || builder.restore_latest(&*reader)).await??;
        println!("{url}: restored {}", restored.checkpoint.manifest.id);
        let counter = restored.system.lookup::<Counter>("counter")?;
        (restored.system, counter)
    };
    for _ in 0..3 {
        let count = counter.add(1).await?;
        let info = system.checkpoint(&store).await?;
        println!("count {count}: wrote {} ({} bytes)", info.path_or_key, info.bytes);
    }
    system.shutdown().await;
    Ok(())
}
