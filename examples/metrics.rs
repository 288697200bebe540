//! amber's metrics in Prometheus's text format: a recorder from `metrics-exporter-prometheus`
//! is installed (amber itself installs none), two nodes in this process exchange messages
//! and asks, take snapshots and write a checkpoint, and the scrape is printed.
//!
//! `cargo run --release --example metrics`
//!
//! A service would serve the same text on an HTTP endpoint (the exporter's `http-listener`
//! feature) for Prometheus to scrape; see the [`amber::metrics`] docs for every name.

use std::sync::Arc;

use amber::prelude::*;
use amber::{Cluster, SystemBuilder, TransportConfig};
use metrics_exporter_prometheus::PrometheusBuilder;

/// A meter that counts readings and passes some on to a peer.
#[derive(ActorState, Debug, Default)]
#[amber(name = "example.Meter")]
struct Meter {
    readings: u64,
}

#[amber::actor]
impl Meter {
    fn add(&mut self, n: u64) {
        self.readings += n;
    }

    fn total(&mut self) -> u64 {
        self.readings
    }
}

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Meter>()
}

/// amber's metrics in Prometheus's text format: two nodes exchange messages and asks, take
/// snapshots and write a checkpoint, and the scrape is printed.
#[derive(Debug, clap::Parser)]
#[command(name = "metrics")]
struct Args {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    <Args as clap::Parser>::parse();
    let recorder = PrometheusBuilder::new().build_recorder();
    let scrape = recorder.handle();
    metrics::set_global_recorder(recorder)?;

    let addr = "127.0.0.1:0".parse()?;
    let a = Cluster::start(
        builder(),
        TransportConfig::new("a", addr, b"metrics example shared secret".to_vec()),
    )
    .await?;
    let b = Cluster::start(
        builder(),
        TransportConfig::new("b", addr, b"metrics example shared secret".to_vec()),
    )
    .await?;
    let peer = a.connect(b.local_addr()).await?;
    let meters: Vec<_> = (0..100)
        .map(|i| b.system().spawn_named(format!("m{i}"), Meter::default()))
        .collect::<Result<_, _>>()?;
    let mut remote = Vec::new();
    for i in 0..100 {
        remote.push(a.lookup::<Meter>(&peer, &format!("m{i}")).await?);
    }
    // Traffic across the link from a task, while this one asks and takes snapshots of both
    // nodes (a snapshot records what is still on its way).
    let traffic = tokio::spawn({
        let remote = remote.clone();
        async move {
            for round in 0..50u64 {
                for meter in &remote {
                    for _ in 0..20 {
                        if meter.add(round).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    while !traffic.is_finished() {
        for meter in remote.iter().take(20) {
            meter.total().await?;
        }
        a.system().snapshot().await?;
    }
    traffic.await?;
    let dir = std::env::temp_dir().join(format!("amber-metrics-{}", std::process::id()));
    let store = Arc::new(FsStore::open(&dir)?.with_retention(1));
    let written = a.system().checkpoint(&store).await?;
    println!(
        "# checkpoint {} written: {} bytes, {} meters\n",
        written.id,
        written.bytes,
        meters.len()
    );
    print!("{}", scrape.render());
    a.shutdown().await;
    b.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
