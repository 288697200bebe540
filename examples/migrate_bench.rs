//! Live-migration unavailability: how long a moving actor handles no messages, measured
//! under a steady stream of messages, idle and with background traffic saturating the link.
//!
//! Three nodes `a`, `b`, `c` in one process, meshed over 127.0.0.1. Every round spawns a
//! fresh probe actor on `a`; three sender threads tell it numbered messages, each carrying
//! its send time (nanoseconds since one process-wide `Instant`) and a per-sender sequence
//! number: one on `a` (a local ref), one on `c` (its ref reaches `a`, which forwards after
//! the move) and one on `b` (a ref made before the move: through `a` as well). After a
//! warm-up the probe is moved from `a` to `b` with `Cluster::migrate`; the stream goes on,
//! then stops, and the round waits until every message was handled. The probe logs every
//! message it handles with the node it ran on and the time.
//!
//! Per round, and as p50 / p99 / max over the rounds:
//! - **unavailability**: from the last message handled on `a` to the first handled on `b`;
//! - call to first on `b`: from the `migrate` call to the first message handled on `b`;
//! - the `migrate` call itself (it returns once `b` confirmed the arrival);
//! - the worst send-to-handle latency of the messages sent during the move (from the call
//!   until both the call returned and the first message was handled on `b`), against the
//!   worst of those sent in the warm-up before it.
//!
//! Two phases: *idle* (the stream only) and *load*, where tasks on `a` flood an actor on `b`
//! with tells as fast as the link's backpressure lets them, so the move's frame and every
//! forwarded message queue behind that traffic (the link is FIFO). In both, a task on `a`
//! tells a small actor on `b` every millisecond ("ping"): its send-to-handle latency is what
//! any message from `a` to `b` waits on the link at that moment, the floor under the move.
//!
//! `--socket-buffer <bytes>` bounds the links' kernel socket buffers
//! (`TransportConfig::with_socket_buffer`); by default the kernel sizes them. `--queues <n>`
//! sets the links' send and event queues to `n` frames each (`TransportConfig::with_queues`;
//! default 1024). Both trade throughput for a shorter queue on a saturated link.
//!
//! What must hold is checked every round, and the program panics if it does not: every
//! sequence number handled exactly once and in order per sender, the probe's own count
//! (which travelled with its state) equal to what was sent, and nothing handled on `a` after
//! the first message on `b`.
//!
//! `cargo run --release --example migrate_bench [-- --rounds 30 --interval-us 200 --state-bytes 0 --load-bytes 64 --socket-buffer 0 --queues 0 --idle|--load]`

#[path = "flags/mod.rs"]
mod flags;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use amber::prelude::*;
use amber::{Cluster, TransportConfig};
use clap::Parser;
use hdrhistogram::Histogram;

/// The process-wide time base every timestamp is measured from.
static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since [`BASE`].
fn now_ns() -> u64 {
    BASE.elapsed().as_nanos() as u64
}

/// One message the probe handled.
#[derive(Debug, Clone, Copy)]
struct Handled {
    /// The first byte of the name of the node it was handled on.
    node: u8,
    sender: u32,
    seq: u64,
    sent: u64,
    at: u64,
}

/// Every message the probes handled, in handling order (one probe runs at a time).
static HANDLED: Mutex<Vec<Handled>> = Mutex::new(Vec::new());

/// Send and handle times of the pings from `a` to `b`.
static PINGS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The actor that moves: it checks each sender's order itself, and logs what it handles.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bench.MigrateProbe")]
pub struct Probe {
    received: u64,
    last: BTreeMap<u32, u64>,
    violations: u64,
    /// Extra state, to see what a larger state costs the move (`--state-bytes`).
    ballast: String,
}

#[amber::actor]
impl Probe {
    /// Message `seq` (from 1) of `sender`, sent at `sent`.
    fn push(&mut self, sender: u32, seq: u64, sent: u64, ctx: &mut Context<Self>) {
        let at = now_ns();
        self.received += 1;
        let last = self.last.entry(sender).or_insert(0);
        if seq != *last + 1 {
            self.violations += 1;
        }
        *last = seq;
        let node = ctx.system().node().as_bytes().first().copied().unwrap_or(b'?');
        lock(&HANDLED).push(Handled { node, sender, seq, sent, at });
    }

    /// Messages received and order violations seen, over its whole life.
    fn report(&mut self) -> (u64, u64) {
        (self.received, self.violations)
    }
}

/// The background flood's sink on `b`.
#[derive(Debug, Default)]
pub struct Drain {
    taken: u64,
}

#[amber::actor]
impl Drain {
    /// One flood message; `pad` only takes room on the link.
    fn take(&mut self, pad: String) {
        let _ = pad;
        self.taken += 1;
    }
}

/// On `b`, told every millisecond from `a`: the latency of a light message on the link from
/// `a` to `b`, behind whatever else is queued on it (the flood's messages wait in their own
/// actor's mailbox as well, this one does not).
#[derive(Debug, Default)]
pub struct Ping;

#[amber::actor]
impl Ping {
    /// A ping sent at `sent`.
    fn ping(&mut self, sent: u64) {
        lock(&PINGS).push((sent, now_ns()));
    }
}

/// Live-migration unavailability: how long a moving actor handles no messages, under a
/// steady stream of messages, idle and with background traffic saturating the link.
#[derive(Debug, Parser)]
#[command(name = "migrate_bench")]
struct Options {
    /// Moves measured per phase.
    #[arg(long, value_name = "N", default_value = "30", value_parser = flags::positive)]
    rounds: usize,
    /// Microseconds between two messages of each sender.
    #[arg(long = "interval-us", value_name = "US", default_value = "200", value_parser = micros)]
    interval: Duration,
    /// Bytes of ballast in the moving actor's state.
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = flags::number)]
    state_bytes: usize,
    /// Bytes per tell of the load phase's flood.
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = flags::number)]
    load_bytes: usize,
    /// Bound the links' kernel socket buffers to this many bytes (0: the kernel sizes them).
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = flags::number)]
    socket_buffer: usize,
    /// The links' send and event queues, in frames each (0: the default, 1024).
    #[arg(long, value_name = "N", default_value = "0", value_parser = flags::number)]
    queues: usize,
    /// Only the idle phase (neither --idle nor --load: both phases).
    #[arg(long)]
    idle: bool,
    /// Only the load phase.
    #[arg(long)]
    load: bool,
}

fn micros(s: &str) -> Result<Duration, String> {
    flags::number(s).map(|us| Duration::from_micros(us as u64))
}

impl Options {
    fn parse_both() -> Options {
        let mut options = Options::parse();
        if !options.idle && !options.load {
            (options.idle, options.load) = (true, true);
        }
        options
    }
}

/// Waits at most this long for anything in a round (a move, the stream to be handled).
const BOUND: Duration = Duration::from_secs(30);

/// The stream before the move, and after it.
const WARM: Duration = Duration::from_millis(40);
const AFTER: Duration = Duration::from_millis(40);

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(BOUND, f).await.unwrap_or_else(|_| panic!("{what}: no end in {BOUND:?}"))
}

/// The same actor as seen from `on`'s system.
fn ref_on<A: Actor>(from: &Cluster, on: &Cluster, actor: &ActorRef<A>) -> ActorRef<A> {
    let bytes = from.system().encode(actor).expect("ref encodes");
    on.system().decode(&bytes).expect("ref resolves")
}

/// A sender thread: tells `probe` numbered messages every `interval` until `stop`; returns
/// how many it sent. A full mailbox or link is retried (the latency then includes the wait).
fn sender(
    runtime: tokio::runtime::Handle,
    probe: ActorRef<Probe>,
    id: u32,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let _runtime = runtime.enter();
        let mut seq = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            seq += 1;
            let mut msg = ProbeMsg::Push { sender: id, seq, sent: now_ns() };
            loop {
                match probe.try_tell(msg) {
                    Ok(()) => break,
                    Err(TrySendError::Full(m)) => {
                        msg = m;
                        std::thread::sleep(Duration::from_micros(20));
                    }
                    Err(TrySendError::Stopped(_)) => {
                        panic!("sender {id}: message {seq} refused: the probe is gone")
                    }
                }
            }
            next += interval;
            let now = Instant::now();
            match next.checked_duration_since(now) {
                Some(wait) => std::thread::sleep(wait),
                None => next = now, // behind: no burst to catch up
            }
        }
        seq
    })
}

/// What one round measured, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Round {
    unavailable: u64,
    call_to_first: u64,
    call: u64,
    worst_moving: u64,
    worst_before: u64,
    /// The longest gap between two handled messages in the warm-up (the stream's grain).
    gap_before: u64,
    /// Messages handled in the round, and sent during the move.
    handled: usize,
    moving: usize,
    /// The pings' worst latency during the move (if one was sent then), and their median and
    /// worst in the warm-up.
    ping_moving: Option<u64>,
    ping_before: u64,
    ping_before_worst: u64,
}

/// Three meshed nodes `a`, `b`, `c` (socket buffers bounded if `--socket-buffer` was given,
/// the send and event queues sized if `--queues` was).
async fn cluster(options: &Options) -> Vec<Cluster> {
    let addr = "127.0.0.1:0".parse().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let builder = ActorSystem::builder().register::<Probe>().ask_timeout(BOUND);
        let mut config =
            TransportConfig::new(name, addr, b"benchmark secret, 32 bytes long!".to_vec());
        if options.socket_buffer > 0 {
            config = config.with_socket_buffer(options.socket_buffer);
        }
        if options.queues > 0 {
            config = config.with_queues(options.queues, options.queues);
        }
        nodes.push(Cluster::start(builder, config).await.expect("node starts"));
    }
    for i in 0..nodes.len() {
        for j in i + 1..nodes.len() {
            nodes[i].connect(nodes[j].local_addr()).await.expect("connect");
        }
    }
    while nodes.iter().any(|n| n.nodes().len() < 2) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    nodes
}

/// One round: a fresh probe on `a`, the stream, the move to `b`, the checks.
async fn round(nodes: &[Cluster], options: &Options) -> Round {
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let probe = Probe { ballast: "x".repeat(options.state_bytes), ..Probe::default() };
    let probe = a.system().spawn(probe).expect("probe spawns");
    let id = probe.id();
    let refs = [probe.clone(), ref_on(a, c, &probe), ref_on(a, b, &probe)];
    lock(&HANDLED).clear();
    lock(&PINGS).clear();
    let start = now_ns();
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let senders: Vec<_> = refs
        .into_iter()
        .enumerate()
        .map(|(k, r)| sender(runtime.clone(), r, k as u32, options.interval, stop.clone()))
        .collect();

    tokio::time::sleep(WARM).await;
    let call = now_ns();
    bounded("migrate", a.migrate(id, b.node())).await.expect("the probe moves to b");
    let returned = now_ns();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<u64> = tokio::task::spawn_blocking(move || {
        senders.into_iter().map(|s| s.join().expect("a sender thread panicked")).collect()
    })
    .await
    .expect("senders joined");
    let total: u64 = sent.iter().sum();

    // Everything sent must be handled: wait for it (a lost message never comes).
    let (received, violations) = bounded("the stream to be handled", async {
        loop {
            let (received, violations) = probe.report().await.expect("report");
            if received >= total {
                return (received, violations);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let log = std::mem::take(&mut *lock(&HANDLED));
    let pings = std::mem::take(&mut *lock(&PINGS));

    // What must hold.
    assert_eq!(received, total, "the probe handled {received} messages, {total} were sent");
    assert_eq!(violations, 0, "the probe saw {violations} order violations");
    assert_eq!(log.len() as u64, total, "handled {} messages, sent {total}", log.len());
    let mut next = vec![1u64; sent.len()];
    for h in &log {
        let k = h.sender as usize;
        assert_eq!(h.seq, next[k], "sender {k}: handled {} when {} was due", h.seq, next[k]);
        next[k] += 1;
    }
    for (k, (&n, &s)) in next.iter().zip(&sent).enumerate() {
        assert_eq!(n - 1, s, "sender {k}: handled up to {}, sent {s}", n - 1);
    }
    let on_b = log.iter().position(|h| h.node == b'b').expect("a message handled on b");
    assert!(on_b > 0 && log[on_b - 1].node == b'a', "messages were handled on a before the move");
    assert!(log[on_b..].iter().all(|h| h.node == b'b'), "nothing handled on a after b took over");
    assert!(log[..on_b].iter().all(|h| h.node == b'a'), "only a handled before the move");

    let (last_a, first_b) = (log[on_b - 1].at, log[on_b].at);
    let moving_until = returned.max(first_b);
    let latency = |h: &Handled| h.at.saturating_sub(h.sent);
    let moving: Vec<&Handled> =
        log.iter().filter(|h| (call..=moving_until).contains(&h.sent)).collect();
    let before: Vec<&Handled> = log.iter().filter(|h| h.sent < call).collect();
    let gap_before = log
        .windows(2)
        .filter(|w| w[1].at < call && w[0].at >= start)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or(0);
    let ping_moving =
        pings.iter().filter(|(s, _)| (call..=moving_until).contains(s)).map(|(s, t)| t - s).max();
    let mut warm: Vec<u64> = pings.iter().filter(|(s, _)| *s < call).map(|(s, t)| t - s).collect();
    warm.sort_unstable();
    assert!(!warm.is_empty(), "pings were handled before the move");

    // Done with it: stop it where it runs; the forwarding entry on a ends with it.
    let here = ref_on(a, b, &probe);
    here.stop();
    bounded("the probe to stop", here.wait_stopped()).await;
    bounded("a's forwarding entry to end", probe.wait_stopped()).await;

    Round {
        unavailable: first_b - last_a,
        call_to_first: first_b - call,
        call: returned - call,
        worst_moving: moving.iter().map(|h| latency(h)).max().unwrap_or(0),
        worst_before: before.iter().map(|h| latency(h)).max().unwrap_or(0),
        gap_before,
        handled: log.len(),
        moving: moving.len(),
        ping_moving,
        ping_before: warm[warm.len() / 2],
        ping_before_worst: warm[warm.len() - 1],
    }
}

/// Floods `drain` (on `b`, seen from `a`) from `tasks` tasks until `stop`; each returns the
/// messages it sent.
fn flood(
    drain: ActorRef<Drain>,
    tasks: usize,
    bytes: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..tasks)
        .map(|_| {
            let (drain, stop) = (drain.clone(), stop.clone());
            let pad = "p".repeat(bytes);
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    drain.take(pad.clone()).await.expect("flood tell");
                    n += 1;
                }
                n
            })
        })
        .collect()
}

/// Pings `ping` (on `b`, seen from `a`) every millisecond until `stop`.
fn pinger(ping: ActorRef<Ping>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            ping.ping(now_ns()).await.expect("ping");
        }
    })
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// p50, p99 (from a histogram of nanoseconds with 3 significant figures: within 0.1 % of the
/// exact ones, and never above the max) and max, in milliseconds.
fn stats(v: impl Iterator<Item = u64>) -> (f64, f64, f64) {
    let mut h = Histogram::<u64>::new(3).expect("3 significant figures is a valid precision");
    let mut max = 0;
    for ns in v {
        h.record(ns).expect("a resizing histogram takes any value");
        max = max.max(ns);
    }
    let at = |q: f64| ms(h.value_at_quantile(q).min(max));
    (at(0.5), at(0.99), ms(max))
}

fn report(phase: &str, rounds: &[Round]) {
    println!("{phase}:");
    for (i, r) in rounds.iter().enumerate() {
        let ping = r.ping_moving.map_or("-".to_owned(), |p| format!("{:.3} ms", ms(p)));
        println!(
            "  round {:>3}: unavailable {:>7.3} ms, call->first on b {:>7.3} ms, call {:>7.3} ms, worst latency {:>7.3} ms moving ({} msgs) / {:>6.3} ms before (gap {:.3}); ping a->b {ping} moving, p50 {:.3} ms before",
            i + 1,
            ms(r.unavailable),
            ms(r.call_to_first),
            ms(r.call),
            ms(r.worst_moving),
            r.moving,
            ms(r.worst_before),
            ms(r.gap_before),
            ms(r.ping_before),
        );
    }
    let line = |what: &str, v: (f64, f64, f64)| {
        println!("  {what:<38} p50 {:>7.3} ms, p99 {:>7.3} ms, max {:>7.3} ms", v.0, v.1, v.2);
    };
    let unavailable = stats(rounds.iter().map(|r| r.unavailable));
    line("unavailability (last on a, first on b)", unavailable);
    line("migrate call -> first handled on b", stats(rounds.iter().map(|r| r.call_to_first)));
    line("migrate call (returns on Arrived)", stats(rounds.iter().map(|r| r.call)));
    line("worst latency, sent during the move", stats(rounds.iter().map(|r| r.worst_moving)));
    line("worst latency, sent before the move", stats(rounds.iter().map(|r| r.worst_before)));
    line("longest gap in the stream before", stats(rounds.iter().map(|r| r.gap_before)));
    if rounds.iter().any(|r| r.ping_moving.is_some()) {
        let during = stats(rounds.iter().filter_map(|r| r.ping_moving));
        line("ping a->b during the move (worst)", during);
    }
    line("ping a->b before the move (p50)", stats(rounds.iter().map(|r| r.ping_before)));
    line("ping a->b before the move (worst)", stats(rounds.iter().map(|r| r.ping_before_worst)));
    let handled: usize = rounds.iter().map(|r| r.handled).sum();
    println!(
        "  checked: {handled} messages, each handled once and in order per sender, over {} moves",
        rounds.len()
    );
    let met = |v: f64| if v < 5.0 { "met" } else { "MISSED" };
    println!(
        "  target unavailability < 5 ms: p50 {}, p99 {}, max {}",
        met(unavailable.0),
        met(unavailable.1),
        met(unavailable.2)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let options = Options::parse_both();
    let _ = now_ns(); // fixes the base
    let nodes = cluster(&options).await;
    let buffers = match options.socket_buffer {
        0 => "kernel default".to_owned(),
        b => format!("{b} B"),
    };
    let queues = match options.queues {
        0 => "default".to_owned(),
        q => format!("{q} frames"),
    };
    println!(
        "amber live migration (tokio multi-thread, 2 workers, 3 nodes in one process over loopback; 3 senders, one message each every {} us; state ballast {} B; socket buffers {buffers}; send and event queues {queues})",
        options.interval.as_micros(),
        options.state_bytes
    );
    let ping = nodes[1].system().spawn(Ping).expect("ping spawns");
    let stop_pings = Arc::new(AtomicBool::new(false));
    let pings = pinger(ref_on(&nodes[1], &nodes[0], &ping), stop_pings.clone());
    if options.idle {
        let mut rounds = Vec::with_capacity(options.rounds);
        round(&nodes, &options).await; // warm-up, not counted
        for _ in 0..options.rounds {
            rounds.push(round(&nodes, &options).await);
        }
        report("idle (the stream only)", &rounds);
    }
    if options.load {
        let drain = nodes[1].system().spawn(Drain::default()).expect("drain spawns");
        let drain_on_a = ref_on(&nodes[1], &nodes[0], &drain);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = flood(drain_on_a, 2, options.load_bytes, stop.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut rounds = Vec::with_capacity(options.rounds);
        round(&nodes, &options).await; // warm-up, not counted
        for _ in 0..options.rounds {
            rounds.push(round(&nodes, &options).await);
        }
        stop.store(true, Ordering::Relaxed);
        let mut sent = 0;
        for task in tasks {
            sent += bounded("the flood to stop", task).await.expect("flood task");
        }
        let rate = sent as f64 / started.elapsed().as_secs_f64();
        report(
            &format!(
                "load (2 tasks on a flood an actor on b with {}-byte tells: {:.2} M msg/s while it ran)",
                options.load_bytes,
                rate / 1e6
            ),
            &rounds,
        );
    }
    stop_pings.store(true, Ordering::Relaxed);
    bounded("the pings to stop", pings).await.expect("pinger");
    for node in &nodes {
        node.shutdown().await;
    }
}
