//! A seeded simulation of the snapshot protocol that checks the consistent-cut property.
//!
//! Each seed builds a world of 1–4 nodes with a few actors each (bank accounts), drives the
//! real `ActorCut` / `NodeSnapshot` / `Coordinator` state machines through random local
//! and remote sends, per-pair FIFO links with random delays, markers on a control lane,
//! spawns, stops, outside sends, timers, asks and several sequential snapshots (some
//! aborted), and checks every completed snapshot against the ground truth (see
//! `support/check.rs`). Then it restores one completed snapshot and runs that world on.
//!
//! `AMBER_SIM_SEEDS=N` runs N seeds (default 2000); `AMBER_SIM_SEED=S` runs seed S alone;
//! `AMBER_SIM_TRACE=1` prints the whole trace of a failing seed.

mod support;

use std::time::Instant;

use support::world::{Config, Fault, Stats};
use support::{Outcome, run_seed};

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("AMBER_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("AMBER_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    (0..n).collect()
}

/// Runs `seeds` on all cores; returns the summed stats and the failures, by seed.
fn run_all(seeds: &[u64], tweak: fn(&mut Config)) -> (Stats, Vec<Outcome>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let chunks: Vec<Vec<u64>> =
        (0..threads).map(|t| seeds.iter().copied().skip(t).step_by(threads).collect()).collect();
    let results: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| s.spawn(move || chunk.iter().map(|&seed| run_seed(seed, tweak)).collect()))
            .collect();
        handles.into_iter().map(|h| h.join().expect("simulation thread panicked")).collect()
    });
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for outcome in results.into_iter().flatten() {
        stats.add(&outcome.stats);
        if outcome.failure.is_some() {
            failures.push(outcome);
        }
    }
    failures.sort_by_key(|o| o.failure.as_ref().map(|f| f.seed));
    (stats, failures)
}

#[test]
fn every_completed_snapshot_is_a_consistent_cut() {
    let seeds = seeds();
    let started = Instant::now();
    let (stats, failures) = run_all(&seeds, |_| {});
    eprintln!("{} seeds in {:.2?}: {stats:#?}", seeds.len(), started.elapsed());
    if let Some(first) = failures.first() {
        let failed: Vec<u64> =
            failures.iter().filter_map(|o| o.failure.as_ref().map(|f| f.seed)).collect();
        panic!(
            "{} of {} seeds failed: {failed:?}\n{}",
            failed.len(),
            seeds.len(),
            first.failure.as_ref().unwrap()
        );
    }
    if seeds.len() >= 200 {
        // The seeds must reach every situation the protocol has a rule for.
        let covered = [
            ("completed snapshots", stats.completed),
            ("aborted snapshots", stats.aborted),
            ("cuts by marker", stats.cuts_by_marker),
            ("cuts by a message tagged ahead", stats.cuts_by_tag),
            ("backlog recorded at a cut", stats.backlog_recorded),
            ("late messages recorded", stats.late_recorded),
            ("dead letters recorded", stats.dead_letters_recorded),
            ("children needing their own marker", stats.child_markers),
            ("stops before the cut", stats.stops_before_cut),
            ("stops after the cut", stats.stops_after_cut),
            ("tags ahead of the receiving node", stats.tags_ahead_of_node),
            ("expectations sent", stats.expects),
            ("restores", stats.restores),
        ];
        for (what, count) in covered {
            assert!(count > 0, "no seed exercised {what}");
        }
    }
}

/// Runs seeds with `tweak` until one fails; returns its failure text.
fn first_failure(tweak: fn(&mut Config)) -> Option<String> {
    (0..400).find_map(|seed| run_seed(seed, tweak).failure.map(|f| f.to_string()))
}

#[test]
fn the_checker_catches_a_runtime_that_does_not_record_late_messages() {
    let failure = first_failure(|c| c.fault = Fault::NoLateRecording).expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("missing"), "{failure}");
}

#[test]
fn the_checker_catches_a_runtime_that_does_not_record_the_backlog() {
    let failure = first_failure(|c| c.fault = Fault::NoBacklogRecording).expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("missing"), "{failure}");
}

#[test]
fn the_checker_catches_a_runtime_that_cuts_after_processing() {
    let failure = first_failure(|c| c.fault = Fault::CutAfterProcessing).expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("orphan"), "{failure}");
}

#[test]
fn the_checker_catches_a_runtime_that_counts_arrivals_before_enqueueing_them() {
    let failure = first_failure(|c| c.fault = Fault::CountBeforeEnqueue).expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("in transit") || failure.contains("missing"), "{failure}");
}

#[test]
fn the_bounded_drive_catches_a_runtime_that_never_marks_late_children() {
    let failure = first_failure(|c| {
        c.fault = Fault::IgnoreChildMarker;
        c.aborts = false;
    })
    .expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("stuck") || failure.contains("livelock"), "{failure}");
}

/// A hole in the algorithm as specified (see the crate's protocol docs): outside code (or a
/// name registry) can hand an actor that has not cut a reference to an actor spawned from
/// outside during the snapshot, which is not part of it. Messages between them are then in
/// no state and in no recording. The simulation's default visibility rule (an actor only
/// addresses actors born in an epoch <= its own) avoids this; without it, the checker
/// finds the loss.
#[test]
fn hole_references_to_actors_spawned_during_a_snapshot_lose_messages() {
    let failure = first_failure(|c| c.outside_refs = true).expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("born after the cut"), "{failure}");
}

/// A hole in the algorithm as specified: an actor that has not cut, awaiting an ask reply
/// from an actor that has, takes in information from after the responder's cut. With asks
/// that move money (the reply carries a withdrawal), the snapshot counts it twice.
#[test]
fn hole_ask_replies_from_actors_that_already_cut_break_conservation() {
    let failure = first_failure(|c| c.money_asks = true).expect("not caught");
    eprintln!("{failure}");
    assert!(failure.contains("bank"), "{failure}");
}
