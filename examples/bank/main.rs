//! The bank: the consistent-snapshot demo.
//!
//! About a thousand account actors move money among themselves at full speed (each keeps
//! sending part of its balance to a few neighbours), and some transfers come from outside
//! the system. Every `--interval` the demo takes a global snapshot and checks that the
//! balances plus the deposits recorded in flight add up to the total, exactly, and writes it
//! as a checkpoint. Then it drops the whole system, rehydrates the latest checkpoint, runs
//! on, and checks the total again.
//!
//! ```text
//! cargo run --release --example bank -- [--accounts N] [--duration 5s] [--interval 100ms]
//!                                        [--dir DIR|URL] [--restore DIR|URL]
//!                                        [--nodes K [--kill-node | --restore-nodes K]]
//!                                        [--sharded [--shards N] [--passivate-after D]]
//!                                        [--cut-help-delay D]
//!                                        [--json] [--quiet]
//! ```
//!
//! `--help` lists the flags. Durations are in humantime's notation (`5s`, `1.5s`, `100ms`;
//! a bare number is seconds). While it runs, the demo prints a line a second on stderr
//! (snapshots so far, their p50, deposits per second in the last second), with `--json` too
//! (stdout then holds the JSON only); `--quiet` leaves it out. At the end it says where the
//! checkpoints went and how to list, inspect, diff and draw them with amber's CLI.
//!
//! `--dir` and `--restore` take a directory or a store URL (`file:///DIR`, and with
//! `--features s3` `s3://BUCKET/PREFIX`, with the endpoint and credentials of the standard
//! AWS environment variables): the checkpoints then go to object storage, and `--restore`
//! starts from the latest valid one there. The demo prints where it writes.
//!
//! On one node, throughput is measured in windows of ten intervals (at least 250 ms) that
//! alternate between snapshotting and not, in the same run, after a warm-up of one window
//! (at least two seconds) that counts in neither: `--duration` is the time spent snapshotting,
//! and each phase lasts about twice as long, plus the warm-up. (A bank that just started,
//! or was just restored, runs at a fraction of its steady rate while its queues fill up:
//! 5,000 accounts at 0.5-0.7 M deposits/s in their first window against 1.0-1.1 M after;
//! counted in the first window, that cost read as most of the snapshots' overhead.)
//! `--json` reports both rates,
//! `deposits_per_sec` (with snapshots) and `baseline_deposits_per_sec` (without), and
//! `overhead_pct`, the share of throughput the snapshots cost (null across processes: there
//! each snapshot is audited as soon as it is taken; on one node a window's snapshots are
//! audited once the window is measured, since the audit is the demo's own check, not a cost
//! of taking them — every snapshot is still audited, and writing it counts), and
//! for the last checkpoint written before the restore its size (`checkpoint_bytes`), its
//! accounts' state bytes (`state_bytes`) and its in-flight messages' payload bytes
//! (`in_flight_payload_bytes`).
//!
//! `--sharded` (`sharded.rs`, through `cluster.rs` also on one node) makes the accounts
//! sharded entities addressed by key, `acct-<i>`, started by a first message and reached
//! through entity refs; the bank starts them all, then asks random accounts to pay random
//! others. `amber graph DIR --latest --shards` draws such a checkpoint one box per shard
//! (over the shard count the checkpoint records).
//!
//! An account's state holds its `balance`; the only message that carries money is
//! `Deposit { amount }` (a transfer withdraws locally, then sends that deposit), so the
//! checkpoints can be re-checked by anyone with `amber inspect CHECKPOINT --json`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amber::prelude::*;
use amber::snapshot::{Checkpoint, CheckpointInfo, CheckpointStore, Store};
use clap::{CommandFactory, Parser};

use progress::{Latencies, Progress};

mod cluster;
#[path = "../flags/mod.rs"]
mod flags;
mod msgpack_read;
mod progress;
mod sharded;

const EACH: u64 = 1_000;
const NEIGHBOURS: usize = 8;

/// One bank account.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.Account")]
pub struct Account {
    balance: u64,
    /// The accounts this one sends money to (stored as actor ids, rehydrated as refs).
    neighbours: Vec<ActorRef<Account>>,
    /// Deposits received so far (for the throughput figure).
    received: u64,
    /// Random state for picking neighbours and amounts.
    seed: u64,
}

#[amber::actor]
impl Account {
    /// Money arriving: the only message that carries money.
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
        self.received += 1;
        deposits::count();
    }

    /// Withdraws up to `amount` and deposits it at a neighbour (outside transfers use this).
    async fn transfer(&mut self, to: u32, amount: u64) {
        self.send(to as usize, amount).await;
    }

    /// One step of the account's own activity: pay a random neighbour, then go again.
    async fn pump(&mut self, ctx: &mut Context<Self>) {
        let r = self.next();
        let amount = 1 + (r >> 8) % (self.balance / 8 + 1);
        self.send(r as usize, amount).await;
        let _ = ctx.myself().pump().await;
    }

    fn link(&mut self, neighbours: Vec<ActorRef<Account>>, seed: u64) {
        self.neighbours = neighbours;
        self.seed = seed | 1;
    }

    fn balance(&mut self) -> u64 {
        self.balance
    }
}

impl Account {
    async fn send(&mut self, to: usize, amount: u64) {
        let amount = amount.min(self.balance);
        if amount == 0 || self.neighbours.is_empty() {
            return;
        }
        self.balance -= amount;
        let neighbour = &self.neighbours[to % self.neighbours.len()];
        if neighbour.deposit(amount).await.is_err() {
            self.balance += amount; // the neighbour is gone: keep the money
        }
    }

    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }
}

/// Deposits handled in this process, counted per thread (no shared cache line on the hot
/// path), so that throughput can be measured in windows without snapshots too.
mod deposits {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// One thread's count, on its own cache line.
    #[repr(align(128))]
    #[derive(Default)]
    struct Shard(AtomicU64);

    static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

    thread_local! {
        static MINE: Arc<Shard> = {
            let shard = Arc::new(Shard::default());
            SHARDS.lock().expect("shards").push(shard.clone());
            shard
        };
    }

    /// Counts one deposit handled on this thread.
    pub(crate) fn count() {
        // Only this thread writes its shard: a plain load and store, no locked add.
        MINE.with(|shard| shard.0.store(shard.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed));
    }

    /// Deposits handled so far, on every thread.
    pub(crate) fn total() -> u64 {
        SHARDS.lock().expect("shards").iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// What one checkpoint says, read from bytes alone (as the inspector would).
#[derive(Debug, Clone, Copy, Default)]
struct Audit {
    balances: u64,
    in_flight: u64,
    deposits_in_flight: usize,
    received: u64,
}

fn audit(checkpoint: &Checkpoint) -> Result<Audit, String> {
    #[derive(Deserialize)]
    struct State {
        balance: u64,
        received: u64,
    }
    /// `AccountMsg` as stored, with the fields the audit does not need ignored (a
    /// `ShardedAccountMsg` reads as one too).
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Msg {
        Deposit { amount: u64 },
        Transfer { to: serde::de::IgnoredAny, amount: serde::de::IgnoredAny },
        Pump,
        Link { neighbours: serde::de::IgnoredAny, seed: serde::de::IgnoredAny },
        Balance,
    }
    let mut a = Audit::default();
    let add_state = |a: &mut Audit, bytes: &[u8], id: &dyn std::fmt::Display| {
        // Read by hand (five thousand states a snapshot, beside the accounts), decoded
        // whole if they are not laid out as an account's state is.
        let (balance, received) = match msgpack_read::balance_and_received(bytes) {
            Some(read) => read,
            None => {
                let state: State =
                    rmp_serde::from_slice(bytes).map_err(|e| format!("state {id}: {e}"))?;
                (state.balance, state.received)
            }
        };
        a.balances += balance;
        a.received += received;
        Ok::<_, String>(())
    };
    let add_message = |a: &mut Audit, payload: &[u8], to: &dyn std::fmt::Display| {
        // Borrowed, not as records: a loaded bank's snapshot holds hundreds of thousands, most
        // of them deposits, read without serde (the audit runs beside the accounts and its
        // cost is part of the overhead measured); anything else is decoded whole.
        let amount = match msgpack_read::deposit_amount(payload) {
            Some(amount) => Some(amount),
            // Every account has its next step queued: no money in it.
            None if payload == PUMP => None,
            None => match rmp_serde::from_slice(payload) {
                Ok(Msg::Deposit { amount }) => Some(amount),
                Ok(_) => None,
                Err(e) => return Err(format!("message to {to}: {e}")),
            },
        };
        if let Some(amount) = amount {
            a.in_flight += amount;
            a.deposits_in_flight += 1;
        }
        Ok(())
    };
    // Sharded accounts that passivated are kept by their shard's keeper, with the deposits
    // that wait for them there.
    let keepers = sharded::keepers(checkpoint);
    for s in &checkpoint.states {
        if !keepers.contains(&s.id) {
            add_state(&mut a, &s.state, &s.id)?;
            continue;
        }
        let kept = sharded::keeper_state(&s.state)?;
        for state in &kept.states {
            add_state(&mut a, state, &s.id)?;
        }
        for m in &kept.messages {
            add_message(&mut a, m, &s.id)?;
        }
    }
    for m in checkpoint.in_flight.messages() {
        if !keepers.contains(&m.to) {
            add_message(&mut a, m.payload, &m.to)?;
            continue;
        }
        match sharded::to_keeper(m.payload)? {
            sharded::ToKeeper::State(state) => add_state(&mut a, &state, &m.to)?,
            sharded::ToKeeper::Message(payload) => add_message(&mut a, &payload, &m.to)?,
            sharded::ToKeeper::Other => {}
        }
    }
    Ok(a)
}

/// `AccountMsg::Pump` as amber encodes it (a unit variant: its name).
const PUMP: &[u8] = b"\xa4Pump";

/// [`msgpack_read::deposit_amount`] reads what amber writes for a deposit of every integer size, and
/// nothing else: checked once at start, so that the audit's shortcut cannot drift from the
/// encoding unnoticed.
fn check_deposit_reader() {
    for amount in [0, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 32, u64::MAX] {
        let bytes = amber::encode(&AccountMsg::Deposit { amount }).expect("a deposit encodes");
        assert_eq!(
            msgpack_read::deposit_amount(&bytes),
            Some(amount),
            "the audit misreads a deposit"
        );
        assert_eq!(
            msgpack_read::deposit_amount(&bytes[..bytes.len() - 1]),
            None,
            "a cut deposit reads"
        );
    }
    let pump = amber::encode(&AccountMsg::Pump).expect("a pump encodes");
    assert_eq!(msgpack_read::deposit_amount(&pump), None, "the audit reads a pump as a deposit");
    assert_eq!(pump, PUMP, "the audit misreads a pump");
}

/// [`msgpack_read::balance_and_received`] reads an account's state as amber encodes it,
/// with and without neighbours, at every integer size, and refuses a cut one.
async fn check_state_reader() {
    let system = ActorSystem::builder().name("check").register::<Account>().build();
    for (balance, received) in [(0, 0), (1, 127), (128, 65_536), (u64::MAX, 1 << 40)] {
        let neighbours =
            (0..NEIGHBOURS).map(|_| system.spawn(Account::default()).expect("spawn")).collect();
        let account = Account { balance, neighbours, received, seed: balance ^ 7 };
        let bytes = account.encode_state().expect("a state encodes");
        let read = msgpack_read::balance_and_received(&bytes);
        assert_eq!(read, Some((balance, received)), "the audit misreads a state");
        assert_eq!(msgpack_read::balance_and_received(&bytes[..bytes.len() - 1]), None);
    }
    system.shutdown().await;
}

/// The consistent-snapshot demo: accounts move money among themselves at full speed while
/// the bank takes global snapshots, checks that every one adds up exactly, and writes each as
/// a checkpoint; then it drops the system, restores the latest checkpoint and runs on.
#[derive(Debug, Parser)]
#[command(
    name = "bank",
    after_help = "Durations: 5s, 1.5s, 100ms, 2m (a bare number is seconds).\n\
                  Progress goes to stderr once a second (also with --json; --quiet leaves it \
                  out); the summary and the JSON go to stdout."
)]
struct Options {
    /// Accounts in the bank, each starting with 1000 (at least 2).
    #[arg(long, value_name = "N", default_value = "1000", value_parser = at_least_two)]
    accounts: usize,
    /// Time spent snapshotting (on one node, the run lasts about twice as long: windows
    /// with and without snapshots alternate, after a warm-up of two seconds or more).
    #[arg(long, default_value = "5s", value_parser = flags::duration)]
    duration: Duration,
    /// Time between snapshots.
    #[arg(long, default_value = "100ms", value_parser = flags::duration)]
    interval: Duration,
    /// Where checkpoints go: a directory, file:///DIR or s3://BUCKET/PREFIX (default: a new
    /// temporary directory, or the --restore store).
    #[arg(long, value_name = "DIR|URL")]
    dir: Option<String>,
    /// Start from the latest valid checkpoint of this store instead of a fresh bank.
    #[arg(long, value_name = "DIR|URL")]
    restore: Option<String>,
    /// Write checkpoints incrementally (accounts unchanged since the previous checkpoint are
    /// references to it), a whole one every N (at least 2).
    #[arg(long, value_name = "N", value_parser = at_least_two)]
    incremental: Option<usize>,
    /// How long a snapshot's cut runs before busy accounts help it (one node; default:
    /// amber's, 20 ms; see `SystemBuilder::cut_help_delay`): 0 for the fastest snapshots,
    /// more for less of the accounts' time.
    #[arg(long, value_name = "DURATION", value_parser = flags::duration_or_zero)]
    cut_help_delay: Option<Duration>,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Processes the bank runs across, on 127.0.0.1 (1: this one only).
    #[arg(long, value_name = "K", default_value = "1", value_parser = flags::positive)]
    nodes: usize,
    /// With --nodes 2 or more: kill the last node's process mid-run, restore onto the rest.
    #[arg(long)]
    kill_node: bool,
    /// Restore onto the first K of the --nodes processes (default: all of them), the
    /// others stopping.
    #[arg(long, value_name = "K", value_parser = flags::positive)]
    restore_nodes: Option<usize>,
    /// The accounts are sharded entities (`acct-<i>`, started on their first message on
    /// their shard's owner), and the transfers go through entity refs (see `sharded.rs`).
    #[arg(long)]
    sharded: bool,
    /// With --sharded: the number of shards.
    #[arg(long, value_name = "N", default_value = "32", requires = "sharded")]
    shards: u32,
    /// With --sharded: accounts idle this long passivate (their state kept by their shard's
    /// keeper until their next message).
    #[arg(long, value_name = "DURATION", value_parser = flags::duration, requires = "sharded")]
    passivate_after: Option<Duration>,
    /// Internal: run as node NAME of a --nodes bank (started by the bank itself).
    #[arg(long, value_name = "NAME", hide = true, requires = "join")]
    node_child: Option<String>,
    /// Internal: the seed address a --node-child joins the cluster through (n0's).
    #[arg(long, value_name = "ADDR", hide = true, requires = "node_child")]
    join: Option<SocketAddr>,
}

fn at_least_two(s: &str) -> Result<usize, String> {
    match flags::number(s)? {
        n if n < 2 => Err("must be at least 2".to_owned()),
        n => Ok(n),
    }
}

impl Options {
    /// The command line, checked: a usage error (or --help) exits here, as clap does.
    fn parse_checked() -> Options {
        let o = Options::parse();
        let conflict = if o.kill_node && o.nodes < 2 {
            Some("--kill-node needs --nodes 2 or more")
        } else if o.nodes > 1 && o.restore.is_some() {
            Some("--restore runs on one node; it cannot be combined with --nodes")
        } else if o.nodes > o.accounts {
            Some("--nodes cannot exceed --accounts")
        } else if o.sharded && o.restore.is_some() {
            Some("--restore runs the plain bank on one node; it cannot be combined with --sharded")
        } else if o.sharded && o.shards == 0 {
            Some("--shards must be at least 1")
        } else if o.sharded && u32::try_from(o.accounts).is_err() {
            Some("--sharded takes at most 2^32 - 1 accounts")
        } else if o.restore_nodes.is_some() && o.kill_node {
            Some("--restore-nodes and --kill-node both choose the nodes restored onto")
        } else if o.restore_nodes.is_some_and(|k| k > o.nodes) {
            Some("--restore-nodes cannot exceed --nodes")
        } else {
            None
        };
        if let Some(why) = conflict {
            Options::command().error(clap::error::ErrorKind::ArgumentConflict, why).exit();
        }
        o
    }
}

/// Sends transfer commands from outside the system until told to stop.
fn outside_transfers(
    accounts: Vec<ActorRef<Account>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let (mut sent, mut x) = (0u64, 0x9E37_79B9_7F4A_7C15u64);
        while !stop.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let from = &accounts[(x % accounts.len() as u64) as usize];
            if from.transfer((x >> 32) as u32, 1 + (x >> 50) % 20).await.is_err() {
                break;
            }
            sent += 1;
            // A trickle, not a flood: outside input is a small share of the traffic.
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        sent
    })
}

/// The results of one phase (fresh or restored).
#[derive(Default)]
struct Phase {
    snapshots: usize,
    latencies: Latencies,
    in_flight_recorded: usize,
    invariant_ok: bool,
    /// Deposits per second while snapshots are taken.
    deposits_per_sec: f64,
    /// Deposits per second in the windows without snapshots of the same run (measured only
    /// when the whole bank runs in this process).
    baseline_deposits_per_sec: Option<f64>,
    /// Deposits per second in the warm-up before the windows (with the baseline only).
    warm_up_deposits_per_sec: Option<f64>,
    /// The last checkpoint written: its size, its states' bytes, and its in-flight
    /// messages' payload bytes.
    last_checkpoint: Option<(u64, u64, u64)>,
    failures: Vec<String>,
}

/// Deposits handled and time spent, summed over windows.
#[derive(Default, Clone, Copy)]
struct Windows {
    deposits: u64,
    time: Duration,
}

impl Windows {
    fn rate(&self) -> f64 {
        self.deposits as f64 / self.time.as_secs_f64().max(1e-9)
    }
}

/// How long one measuring window lasts: ten snapshot intervals, at least 250 ms, at most
/// the phase.
fn window_length(duration: Duration, interval: Duration) -> Duration {
    (interval * 10).max(Duration::from_millis(250)).min(duration)
}

/// How long a phase warms up before its windows are measured: one window, at least two
/// seconds (5,000 busy accounts take that long to fill their queues: they move 0.5-0.9 M
/// deposits/s in their first second, 1.0-1.1 M from the third on).
fn warm_up_length(window: Duration) -> Duration {
    window.max(Duration::from_secs(2))
}

/// Runs the bank for `duration` of snapshotting, one every `interval`, with the transfers from
/// outside that `outside` starts (and stops once told), auditing each snapshot and writing it
/// to `store` (with `baseline`, a window's snapshots are audited at its end,
/// outside the time measured).
///
/// With `baseline`, the bank runs in this process only and its throughput is measured in
/// windows of [`window_length`] that alternate between snapshotting and not (starting with
/// snapshotting), after a warm-up of [`warm_up_length`] measured in neither: `duration` is
/// the time spent snapshotting, and the phase lasts about twice as long. Without it (a bank spread over
/// processes), snapshots are taken for `duration` without a pause, and throughput comes
/// from the accounts' received counts in the first and last snapshot.
async fn run_phase(
    system: &ActorSystem,
    outside: impl FnOnce(Arc<AtomicBool>) -> tokio::task::JoinHandle<u64>,
    books: Books<'_>,
    duration: Duration,
    interval: Duration,
    baseline: bool,
) -> Phase {
    let Books { store, total, progress } = books;
    let stop = Arc::new(AtomicBool::new(false));
    let outside = outside(stop.clone());
    let mut phase = Phase { invariant_ok: true, ..Phase::default() };
    let mut first: Option<(Instant, u64)> = None;
    let mut last: Option<(Instant, u64)> = None;
    let window = if baseline { window_length(duration, interval) } else { duration };
    if baseline {
        // A warm-up, measured in neither rate: a bank that just started (or was just
        // restored) moves money at a fraction of its steady rate while its queues fill up
        // (their buffers grow, pages are touched for the first time), which would count
        // against whichever kind of window came first.
        let (started, deposits) = (Instant::now(), deposits::total());
        tokio::time::sleep(warm_up_length(window)).await;
        phase.warm_up_deposits_per_sec =
            Some((deposits::total() - deposits) as f64 / started.elapsed().as_secs_f64());
    }
    let (mut with, mut without) = (Windows::default(), Windows::default());
    let mut snapshotting = true;
    // At least one window without snapshots, however short the phase.
    while with.time < duration || (baseline && without.time.is_zero()) {
        let (started, deposits) = (Instant::now(), deposits::total());
        let mut unaudited = Vec::new();
        if snapshotting {
            let length = window.min(duration - with.time);
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while started.elapsed() < length {
                ticks.tick().await;
                let Some(taken) = snapshot_once(system, store, &mut phase, progress).await else {
                    continue;
                };
                if baseline {
                    // Audited once the window is measured: the audit is the demo's check,
                    // not part of what a snapshot costs the accounts.
                    unaudited.push(written(taken, &mut phase).await);
                } else {
                    // The audit runs beside the write.
                    audit_once(
                        taken.started,
                        &taken.checkpoint,
                        total,
                        (&mut phase, progress),
                        &mut first,
                        &mut last,
                    );
                    written(taken, &mut phase).await;
                }
            }
        } else {
            tokio::time::sleep(window).await;
        }
        let spent = Windows { deposits: deposits::total() - deposits, time: started.elapsed() };
        let into = if snapshotting { &mut with } else { &mut without };
        into.deposits += spent.deposits;
        into.time += spent.time;
        for (at, checkpoint) in unaudited {
            audit_once(at, &checkpoint, total, (&mut phase, progress), &mut first, &mut last);
        }
        snapshotting = !baseline || !snapshotting;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = outside.await;
    if baseline {
        phase.deposits_per_sec = with.rate();
        phase.baseline_deposits_per_sec = (without.time > Duration::ZERO).then(|| without.rate());
    } else if let (Some((t0, r0)), Some((t1, r1))) = (first, last)
        && t1 > t0
    {
        phase.deposits_per_sec = (r1 - r0) as f64 / (t1 - t0).as_secs_f64();
    }
    phase
}

/// Where a phase's snapshots go, what they must add up to, and who shows them as they come.
#[derive(Clone, Copy)]
struct Books<'a> {
    store: &'a Arc<Store>,
    total: u64,
    progress: &'a Progress,
}

/// A snapshot taken and handed to the store: its audit still to do, its write under way.
struct Taken {
    started: Instant,
    checkpoint: Arc<Checkpoint>,
    written: Pin<Box<dyn Future<Output = Result<CheckpointInfo, amber::SnapshotError>> + Send>>,
}

/// Takes one snapshot and starts writing it to `store` (on a blocking thread, through
/// [`ActorSystem::write_checkpoint`]), noting a failure in `phase`.
async fn snapshot_once(
    system: &ActorSystem,
    store: &Arc<Store>,
    phase: &mut Phase,
    progress: &Progress,
) -> Option<Taken> {
    let started = Instant::now();
    let mut checkpoint = match system.snapshot().await {
        Ok(c) => c,
        Err(e) => {
            phase.failures.push(format!("snapshot failed: {e}"));
            return None;
        }
    };
    let took = started.elapsed();
    phase.latencies.record(took);
    progress.snapshot(took);
    phase.snapshots += 1;
    checkpoint.manifest.id = match store.next_id() {
        Ok(id) => id,
        Err(e) => {
            phase.failures.push(format!("checkpoint not written: {e}"));
            return None;
        }
    };
    let checkpoint = Arc::new(checkpoint);
    // Written (and logged) by the system, while the bank keeps the checkpoint to audit it:
    // the write starts now, on a blocking thread.
    let written = Box::pin(system.write_checkpoint(store, checkpoint.clone()));
    Some(Taken { started, checkpoint, written })
}

/// Waits until a snapshot is written, noting the outcome (and the checkpoint's sizes) in
/// `phase`; gives back what the audit needs.
async fn written(taken: Taken, phase: &mut Phase) -> (Instant, Arc<Checkpoint>) {
    let Taken { started, checkpoint, written } = taken;
    match written.await {
        Ok(info) => {
            let state: usize = checkpoint.states.iter().map(|s| s.state.len()).sum();
            let payload = checkpoint.in_flight.payload_bytes();
            phase.last_checkpoint = Some((info.bytes, state as u64, payload as u64));
        }
        Err(e) => phase.failures.push(format!("checkpoint not written: {e}")),
    }
    (started, checkpoint)
}

/// Audits one snapshot (taken at `started`), noting the outcome in `phase` (and the first
/// and last audited received counts, with when their snapshot started, also for `progress`).
fn audit_once(
    started: Instant,
    checkpoint: &Checkpoint,
    total: u64,
    (phase, progress): (&mut Phase, &Progress),
    first: &mut Option<(Instant, u64)>,
    last: &mut Option<(Instant, u64)>,
) {
    match audit(checkpoint) {
        Ok(a) => {
            phase.in_flight_recorded += checkpoint.in_flight.len();
            if a.balances + a.in_flight != total {
                phase.invariant_ok = false;
                phase.failures.push(format!(
                    "epoch {}: balances {} + in flight {} = {} != {total}",
                    checkpoint.manifest.epoch,
                    a.balances,
                    a.in_flight,
                    a.balances + a.in_flight
                ));
            }
            first.get_or_insert((started, a.received));
            *last = Some((started, a.received));
            progress.audited(started, a.received);
        }
        Err(e) => {
            phase.invariant_ok = false;
            phase.failures.push(e);
        }
    }
}

fn lookup_all(system: &ActorSystem, n: usize) -> Result<Vec<ActorRef<Account>>, String> {
    (0..n)
        .map(|i| system.lookup::<Account>(&format!("account-{i}")).map_err(|e| e.to_string()))
        .collect()
}

/// The one-node bank's system settings.
fn bank_builder(options: &Options) -> amber::SystemBuilder {
    let builder = ActorSystem::builder().name("bank").register::<Account>();
    match options.cut_help_delay {
        Some(delay) => builder.cut_help_delay(delay),
        None => builder,
    }
}

async fn open_bank(options: &Options) -> (ActorSystem, Vec<ActorRef<Account>>) {
    let (system, accounts) = (bank_builder(options).build(), options.accounts);
    let opts = |i: usize| {
        SpawnOptions::new().name(format!("account-{i}")).capacity(MailboxCapacity::Unbounded)
    };
    let refs: Vec<_> = (0..accounts)
        .map(|i| {
            system
                .spawn_with(opts(i), || Account { balance: EACH, ..Account::default() })
                .expect("spawn")
        })
        .collect();
    link_and_start(&refs).await.expect("link and start the accounts");
    (system, refs)
}

/// Gives every account `NEIGHBOURS` pseudo-random neighbours among `refs` and starts its
/// pumping (the accounts may live on any node).
async fn link_and_start(refs: &[ActorRef<Account>]) -> Result<(), String> {
    for (i, account) in refs.iter().enumerate() {
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let neighbours = (0..NEIGHBOURS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                refs[(x % refs.len() as u64) as usize].clone()
            })
            .collect();
        account.link(neighbours, x).await.map_err(|e| e.to_string())?;
    }
    for account in refs {
        account.pump().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What a run of the demo reports.
struct Summary {
    accounts: usize,
    total: u64,
    nodes: usize,
    /// The processes the checkpoint was restored onto.
    restored_nodes: usize,
    /// With --sharded: where the accounts were, and how long starting them took.
    sharded: Option<sharded::Figures>,
    killed_node: Option<String>,
    first: Phase,
    second: Phase,
    restore_ms: f64,
    restored_from: Option<amber::snapshot::CheckpointId>,
}

/// The one-node bank: run, drop the system, restore the latest checkpoint, run on.
async fn run_one_node(
    options: &Options,
    store: &Arc<Store>,
    dir: &str,
    progress: &Progress,
) -> Result<Summary, String> {
    // Phase 1: a fresh bank, or the latest checkpoint of --restore.
    let (system, accounts, n) = if let Some(from) = &options.restore {
        // From the store --restore names: the one checkpoints go to, unless --dir names
        // another.
        let source = match &options.dir {
            None => store.clone(),
            Some(_) => Arc::new(
                Store::open_existing(from)
                    .map_err(|e| format!("cannot restore from {from}: {e}"))?,
            ),
        };
        let restored = bank_builder(options).restore_latest(&*source);
        let amber::Restored { system, checkpoint, skipped } =
            restored.map_err(|e| format!("cannot restore from {from}: {e}"))?;
        for s in &skipped {
            eprintln!("bank: skipped checkpoint {s}");
        }
        let n = checkpoint.manifest.actors.len();
        let accounts = lookup_all(&system, n)
            .map_err(|e| format!("the checkpoint in {from} is not a bank: {e}"))?;
        (system, accounts, n)
    } else {
        let (system, accounts) = open_bank(options).await;
        (system, accounts, options.accounts)
    };
    let total = n as u64 * EACH;
    let books = Books { store, total, progress };
    if !options.json {
        println!(
            "bank: {n} accounts, {total} in total; snapshot every {:?} for {:?}",
            options.interval, options.duration
        );
        println!("checkpoints: {dir}");
    }
    let outside = |stop| outside_transfers(accounts.clone(), stop);
    let first = run_phase(&system, outside, books, options.duration, options.interval, true).await;
    system.shutdown().await;
    drop(system);

    // Phase 2: rehydrate the latest checkpoint into a new system and run on.
    let t = Instant::now();
    let restored = bank_builder(options).restore_latest(&**store);
    let restore_ms = t.elapsed().as_secs_f64() * 1e3;
    let (second, restored_from) = match restored {
        Ok(amber::Restored { system, checkpoint, skipped }) => {
            for s in &skipped {
                eprintln!("bank: skipped checkpoint {s}");
            }
            let accounts = lookup_all(&system, n).expect("restored accounts keep their names");
            let run_on = (options.duration / 2).max(options.interval * 3);
            let outside = |stop| outside_transfers(accounts, stop);
            let phase = run_phase(&system, outside, books, run_on, options.interval, true).await;
            system.shutdown().await;
            (phase, Some(checkpoint.manifest.id))
        }
        Err(e) => {
            let phase =
                Phase { failures: vec![format!("restore failed: {e}")], ..Phase::default() };
            (phase, None)
        }
    };
    Ok(Summary {
        accounts: n,
        total,
        nodes: 1,
        restored_nodes: 1,
        sharded: None,
        killed_node: None,
        first,
        second,
        restore_ms,
        restored_from,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse_checked();
    check_deposit_reader();
    check_state_reader().await;
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if let (Some(name), Some(join)) = (options.node_child.clone(), options.join) {
        let mode = options.sharded.then_some(sharded::Sharded {
            shards: options.shards,
            passivate_after: options.passivate_after,
        });
        return cluster::child(name, join, options.nodes, mode).await;
    }
    let dir = match (&options.dir, &options.restore) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => std::env::temp_dir()
            .join(format!("amber-bank-{}", std::process::id()))
            .display()
            .to_string(),
    };
    // Checkpoints go to --dir, else to the store restored from (which must exist: a
    // directory is never created to restore from), else to a new temporary directory.
    let opened = match (&options.dir, &options.restore) {
        (None, Some(_)) => Store::open_existing(&dir),
        _ => Store::from_url(&dir),
    };
    let store = match opened {
        Ok(s) => {
            let s = s.with_retention(10);
            let full_every = options.incremental.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            Arc::new(match full_every {
                Some(full_every) => s.with_incremental(full_every),
                None => s,
            })
        }
        Err(e) => {
            let doing = if options.restore.is_some() { "restore from" } else { "open" };
            eprintln!("bank: cannot {doing} {dir}: {e}");
            return ExitCode::from(1);
        }
    };
    // Reachable before the run, not a failed write per snapshot (a bucket that does not
    // exist, wrong credentials).
    if let Err(e) = store.ids() {
        eprintln!("bank: cannot use {dir}: {e}");
        return ExitCode::from(1);
    }
    let progress = Arc::new(Progress::default());
    // Every account lives in this process unless the bank spans several.
    let local = options.nodes == 1 && !options.sharded;
    let reporter = (!options.quiet).then(|| progress.report(local, deposits::total));
    let summary = if !local {
        cluster::run(&options, &store, &dir, &progress).await
    } else {
        run_one_node(&options, &store, &dir, &progress).await
    };
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    let s = match summary {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bank: {e}");
            return ExitCode::from(1);
        }
    };
    let (first, second) = (&s.first, &s.second);
    let shards = s.sharded.as_ref().map(|f| f.shards);
    let mut latencies = Latencies::default();
    latencies.add(&first.latencies);
    latencies.add(&second.latencies);
    let invariant_ok = first.invariant_ok && first.snapshots > 0;
    let restored_invariant_ok = second.invariant_ok && second.snapshots > 0;
    let failures: Vec<&String> = first.failures.iter().chain(&second.failures).collect();
    if options.json {
        let summary = serde_json::json!({
            "accounts": s.accounts,
            "total": s.total,
            "nodes": s.nodes,
            "restored_nodes": s.restored_nodes,
            "sharded": s.sharded.as_ref().map(sharded::Figures::json),
            "killed_node": s.killed_node,
            "snapshots": first.snapshots + second.snapshots,
            "in_flight_recorded": first.in_flight_recorded + second.in_flight_recorded,
            "snapshot_ms_p50": latencies.ms(0.5),
            "snapshot_ms_max": latencies.ms(1.0),
            "restore_ms": s.restore_ms,
            "checkpoint_bytes": first.last_checkpoint.map(|c| c.0),
            "state_bytes": first.last_checkpoint.map(|c| c.1),
            "in_flight_payload_bytes": first.last_checkpoint.map(|c| c.2),
            "invariant_ok": invariant_ok,
            "restored_invariant_ok": restored_invariant_ok,
            "deposits_per_sec": first.deposits_per_sec,
            "baseline_deposits_per_sec": first.baseline_deposits_per_sec,
            "warm_up_deposits_per_sec": first.warm_up_deposits_per_sec,
            "overhead_pct": first.baseline_deposits_per_sec.map(|base| (1.0 - first.deposits_per_sec / base) * 100.0),
            "restored_deposits_per_sec": second.deposits_per_sec,
            "checkpoint_dir": dir,
            "failures": failures,
        });
        println!("{summary}");
        if !options.quiet {
            eprint!("{}", where_they_went(&dir, &store, shards));
        }
    } else {
        print_summary(&s, &latencies, invariant_ok && restored_invariant_ok, &failures);
        print!("{}", where_they_went(&dir, &store, shards));
    }
    if invariant_ok && restored_invariant_ok && failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One phase's line of the summary: per snapshot what is per snapshot, over the phase what
/// is over the phase.
fn phase_line(label: &str, phase: &Phase) {
    let per_snapshot = phase.in_flight_recorded as f64 / phase.snapshots.max(1) as f64;
    println!(
        "{label} {} snapshots, every one exact: {}; {per_snapshot:.0} messages in flight per snapshot ({} over all {}); {:.0} deposits/s while snapshotting",
        phase.snapshots,
        phase.invariant_ok,
        phase.in_flight_recorded,
        phase.snapshots,
        phase.deposits_per_sec
    );
}

/// The human-readable summary.
fn print_summary(s: &Summary, latencies: &Latencies, exact: bool, failures: &[&String]) {
    let (first, second) = (&s.first, &s.second);
    phase_line("before restore:", first);
    if let Some(base) = first.baseline_deposits_per_sec {
        println!(
            "                {base:.0} deposits/s in the alternating windows without snapshots: overhead {:.1} %",
            (1.0 - first.deposits_per_sec / base) * 100.0
        );
    }
    if let Some(node) = &s.killed_node {
        println!("killed node {node}'s process; restoring onto the other {}", s.nodes - 1);
    } else if s.restored_nodes != s.nodes {
        println!("restoring onto {} of the {} processes", s.restored_nodes, s.nodes);
    }
    match s.restored_from {
        Some(id) => {
            println!("restored {id} in {:.1} ms ({} accounts) and ran on", s.restore_ms, s.accounts)
        }
        None => println!("restore failed"),
    }
    phase_line("after restore: ", second);
    println!(
        "snapshot latency, each snapshot of both phases: p50 {:.2} ms, max {:.2} ms",
        latencies.ms(0.5),
        latencies.ms(1.0)
    );
    if let Some(figures) = &s.sharded {
        figures.print(s.accounts);
    }
    if let Some((bytes, state, payload)) = first.last_checkpoint {
        println!(
            "last checkpoint before the restore: {bytes} bytes ({state} bytes of account state, {payload} bytes of in-flight payloads)"
        );
    }
    for f in failures {
        println!("FAILURE: {f}");
    }
    println!("invariant {}", if exact { "OK" } else { "VIOLATED" });
}

/// Where the checkpoints went, and the commands that look inside them (`shards`: the
/// accounts were sharded over that many).
fn where_they_went(dir: &str, store: &Store, shards: Option<u32>) -> String {
    let kept = store.ids().map_or_else(
        |e| format!("cannot list them: {e}"),
        |ids| format!("{} kept, the newest last", ids.len()),
    );
    // The checkpoints record the shard count: `--shards` reads it.
    let by_shard = shards.map(|_| " --shards".to_owned()).unwrap_or_default();
    format!(
        "checkpoints: {dir} ({kept})\n\
         look inside them with amber's CLI (from this repository):\n  \
         cargo run -p amber-cli -- list {dir}\n  \
         cargo run -p amber-cli -- inspect {dir} --latest --summary\n  \
         cargo run -p amber-cli -- diff --store {dir} latest~1 latest\n  \
         cargo run -p amber-cli -- graph {dir} --latest{by_shard} --format svg > bank.svg\n"
    )
}
