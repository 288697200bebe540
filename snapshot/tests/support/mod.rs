//! The deterministic simulation of the snapshot protocol (quinn-proto `tests/util.rs` style):
//! a world of nodes, actors, FIFO links and a coordinator, driven by a seeded scheduler, and a
//! checker that compares each completed snapshot with the ground truth.

// Test support: `pub` marks what the test files use, not a public API.
#![allow(unreachable_pub)]

pub mod check;
pub mod rng;
pub mod world;

use rng::Rng;
use world::{Config, Failure, Stats, World};

/// The result of one seed.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    pub failure: Option<Box<Failure>>,
}

/// Runs one seed: a random world, its snapshots, then (if any completed and the config asks)
/// a world restored from one of them, run on with its own snapshots.
pub fn run_seed(seed: u64, tweak: impl Fn(&mut Config)) -> Outcome {
    let mut rng = Rng::new(seed.wrapping_add(0x1234_5678));
    let mut cfg = Config::random(&mut rng);
    tweak(&mut cfg);
    let mut world = World::new(seed, cfg);
    let result = world.run();
    let mut stats = world.stats.clone();
    if let Err(failure) = result {
        return Outcome { stats, failure: Some(failure) };
    }
    if world.cfg.restore && !world.checkpointed.is_empty() {
        let completed: Vec<_> = world.checkpointed.iter().copied().collect();
        let epoch = completed[rng.below(completed.len())];
        let mut restored = world.restore(epoch);
        let destroys = world.cfg.stops || world.cfg.money_asks;
        if !destroys && restored.initial_total != world.initial_total {
            let what = format!(
                "restoring snapshot {epoch} gives {} money, the world started with {}",
                restored.initial_total, world.initial_total
            );
            return Outcome { stats, failure: Some(world.failure_report(what)) };
        }
        let result = restored.run();
        stats.add(&restored.stats);
        if let Err(failure) = result {
            return Outcome { stats, failure: Some(failure) };
        }
    }
    Outcome { stats, failure: None }
}
