//! The runtime's metrics, read back through a real exporter (Prometheus text format)
//! installed as the process's recorder: snapshot outcomes and sizes, an abort by its
//! reason, checkpoint bytes and write time, sampled mailbox depths and ask latencies.
//! One test: the recorder is global to the process.

mod support;

use std::sync::Arc;
use std::time::Duration;

use amber::prelude::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use support::bounded;
use tokio::sync::Notify;

#[derive(ActorState, Debug, Default)]
#[amber(name = "test.Meter")]
struct Meter {
    readings: u64,
}

#[amber::actor]
impl Meter {
    fn read(&mut self) -> u64 {
        self.readings += 1;
        self.readings
    }

    fn tick(&mut self) {
        self.readings += 1;
    }
}

/// Says it is inside its handler, then waits there until told: a snapshot cannot complete
/// meanwhile.
struct Stuck {
    inside: Arc<Notify>,
    go: Arc<Notify>,
}

#[derive(Serialize, Deserialize)]
struct Wait;

impl Actor for Stuck {
    type Msg = Wait;
    type Reply = ();
    async fn handle(&mut self, _: Wait, _: &mut Context<Self>) {
        self.inside.notify_one();
        self.go.notified().await;
    }
}

impl ActorState for Stuck {
    const TYPE_NAME: &'static str = "test.Stuck";
    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&())
    }
    fn decode_state(_: u32, _: &[u8], _: &ActorSystem) -> Result<Self, amber::StateError> {
        Ok(Stuck { inside: Arc::default(), go: Arc::default() })
    }
}

/// The value of the sample line `name` (with its labels, as rendered), if rendered.
fn value(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.split_once(' ').is_some_and(|(n, _)| n == name))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_checkpoints_mailboxes_and_asks_are_measured() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");

    let system = ActorSystem::builder().register::<Meter>().register::<Stuck>().build();
    let meters: Vec<_> = (0..200).map(|_| system.spawn(Meter::default()).unwrap()).collect();
    // 640 asks across the workers: one in 64 per thread is timed.
    for meter in &meters {
        for _ in 0..3 {
            bounded(meter.read()).await.unwrap();
        }
    }
    for meter in meters.iter().take(40) {
        bounded(meter.read()).await.unwrap();
    }
    // Three snapshots with messages queued (200 actors each: 600 cuts, one in 64 sampled),
    // and a checkpoint (a fourth).
    for _ in 0..3 {
        for meter in &meters {
            meter.tick().await.unwrap();
        }
        bounded(system.snapshot()).await.expect("snapshot");
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap().with_durability(false));
    let info = bounded(system.checkpoint(&store)).await.expect("checkpoint");

    // An actor stuck in a handler: the next attempt aborts at its deadline.
    let (inside, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let stuck = system.spawn(Stuck { inside: inside.clone(), go: go.clone() }).unwrap();
    stuck.tell(Wait).await.unwrap();
    bounded(inside.notified()).await;
    let aborted = bounded(system.snapshot_within(Duration::from_millis(200))).await;
    assert!(matches!(aborted, Err(amber::SnapshotError::Aborted { .. })), "{aborted:?}");
    go.notify_one();

    let scrape = handle.render();
    let at = |name: &str| value(&scrape, name).unwrap_or_else(|| panic!("no {name} in:\n{scrape}"));
    assert_eq!(at("amber_snapshots_total{outcome=\"completed\"}"), 4.0);
    assert_eq!(at("amber_snapshots_total{outcome=\"aborted\"}"), 1.0);
    assert_eq!(at("amber_snapshot_aborts_total{reason=\"deadline\"}"), 1.0);
    assert_eq!(at("amber_snapshot_duration_seconds_count"), 4.0);
    assert_eq!(at("amber_snapshot_actors_sum"), 800.0, "four snapshots of 200 meters");
    // Each snapshot but the checkpoint's found one tick queued or handled per meter: what
    // was still queued at the cuts is in flight.
    assert!(at("amber_snapshot_in_flight_count") == 4.0);
    assert_eq!(at("amber_checkpoint_bytes_count"), 1.0);
    assert_eq!(at("amber_checkpoint_bytes_sum"), info.bytes as f64);
    assert_eq!(at("amber_checkpoint_write_seconds_count"), 1.0);
    // Sampled: at least one of the 800+ cuts and one of the 640 asks (per thread, so the
    // exact count depends on which worker ran what).
    assert!(at("amber_mailbox_depth_count") >= 1.0);
    assert!(at("amber_ask_latency_seconds_count") >= 1.0);
    assert!(at("amber_ask_latency_seconds_count") <= 640.0 / 64.0 + 3.0);
    bounded(system.shutdown()).await;
}
