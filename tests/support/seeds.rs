//! Seeds for the simulated-network tests: `AMBER_TURMOIL_SEEDS` chooses them.

use std::time::Duration;

/// The seeds to run: `AMBER_TURMOIL_SEEDS` (a count, seeds 1 to it, or a comma-separated
/// list), else `default` seeds from 1.
pub fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("AMBER_TURMOIL_SEEDS") {
        Ok(text) if text.contains(',') => {
            text.split(',').map(|s| s.trim().parse().expect("a seed is a number")).collect()
        }
        Ok(text) => (1..=text.trim().parse::<u64>().expect("a count of seeds")).collect(),
        Err(_) => (1..=default).collect(),
    }
}

/// Runs `run(seed)` for every seed, each on its own thread, failing the test if one takes
/// more than `wall` of real time (a hang is a bug; the simulation's own time is bounded
/// separately, by its duration).
pub fn each_seed(default: u64, wall: Duration, run: fn(u64)) {
    for seed in seeds(default) {
        let (done, finished) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("seed-{seed}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(|| run(seed));
                let _ = done.send(result.is_ok());
            })
            .expect("a thread for the simulation");
        match finished.recv_timeout(wall) {
            Ok(true) => {
                let _ = thread.join();
            }
            Ok(false) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => panic!("seed {seed}: the simulation failed"),
            },
            Err(_) => {
                panic!("seed {seed}: the simulation did not end within {wall:?} of real time")
            }
        }
    }
}
