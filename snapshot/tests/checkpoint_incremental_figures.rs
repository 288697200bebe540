//! The figures of BENCHMARKS.md's "Incremental checkpoints" table: 100,000 actors, 1 % of them
//! changed per checkpoint, written by a plain and by an incremental `FsStore`, uncompressed and
//! with zstd. Prints bytes and wall-clock times; asserts nothing about time.
//!
//! `cargo test --release -p amber-snapshot --test checkpoint_incremental_figures -- --ignored
//! --nocapture` (`AMBER_FIGURES_STATES=100,200` picks the state sizes, `AMBER_FIGURES_ROUNDS`
//! the incremental checkpoints after the first, full one, `AMBER_FIGURES_STORES` the stores
//! (`full`, `incremental`, `full zstd`, `incremental zstd`), `AMBER_FIGURES_DIR` where the files
//! go: e.g. /dev/shm, where a sync costs nothing, to see the CPU a save costs).

mod incremental_world;

use std::time::Instant;

use amber_snapshot::{CheckpointId, CheckpointStore, Compression, FsStore};
use incremental_world::{Rng, world};

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// The CPU time this thread has run, in milliseconds (Linux: `/proc/thread-self/schedstat`,
/// nanoseconds on the CPU); 0 elsewhere. On a shared machine it is steadier than the wall
/// clock, which counts the time other processes take the cores.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e6)
}

#[test]
#[ignore = "figures for BENCHMARKS.md: run in release, by hand"]
fn incremental_checkpoint_figures() {
    const ACTORS: usize = 100_000;
    let rounds = env_list("AMBER_FIGURES_ROUNDS", &[3])[0];
    for len in env_list("AMBER_FIGURES_STATES", &[100, 200]) {
        let tmp = match std::env::var_os("AMBER_FIGURES_DIR") {
            Some(dir) => tempfile::tempdir_in(dir).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let stores = [
            ("full", FsStore::open(tmp.path().join("full")).unwrap()),
            ("incremental", FsStore::open(tmp.path().join("incr")).unwrap().with_incremental(16)),
            (
                "full zstd",
                FsStore::open(tmp.path().join("fullz"))
                    .unwrap()
                    .with_compression(Compression::ZSTD),
            ),
            (
                "incremental zstd",
                FsStore::open(tmp.path().join("incrz"))
                    .unwrap()
                    .with_compression(Compression::ZSTD)
                    .with_incremental(16),
            ),
        ];
        let mut rng = Rng(7);
        let mut versions = vec![0u64; ACTORS];
        for id in 1..=(1 + rounds as u64) {
            if id > 1 {
                for _ in 0..ACTORS / 100 {
                    versions[(rng.next() % ACTORS as u64) as usize] += 1;
                }
            }
            let checkpoint = world(id, &versions, len);
            let mut full_bytes = [0u64; 2];
            // The stores take turns within one checkpoint: a noisy machine hits them alike.
            for (i, (name, store)) in stores.iter().enumerate() {
                // `AMBER_FIGURES_STORES=incremental` (for a profile): only the stores named.
                let only = std::env::var("AMBER_FIGURES_STORES").ok();
                if only.is_some_and(|only| !only.split(',').any(|o| o == *name)) {
                    continue;
                }
                let (start, cpu) = (Instant::now(), cpu_ms());
                let info = store.save(&checkpoint).unwrap();
                let (save, save_cpu) = (ms(start), cpu_ms() - cpu);
                let (start, cpu) = (Instant::now(), cpu_ms());
                let loaded = store.load(CheckpointId(id)).unwrap();
                let (load, load_cpu) = (ms(start), cpu_ms() - cpu);
                assert!(loaded == checkpoint, "{name} checkpoint {id} loads equal");
                if i % 2 == 0 {
                    full_bytes[i / 2] = info.bytes;
                }
                println!(
                    "{len:>4}-byte states, checkpoint {id}, {name:>16}: {:>10} bytes ({:5.1} %), \
                     save {save:6.1} ms (cpu {save_cpu:6.1}), load {load:6.1} ms (cpu \
                     {load_cpu:6.1})",
                    info.bytes,
                    info.bytes as f64 * 100.0 / full_bytes[i / 2] as f64
                );
            }
        }
    }
}
