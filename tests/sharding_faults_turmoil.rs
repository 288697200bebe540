//! Sharded entities across a network fault, simulated: three nodes formed by membership run
//! as turmoil hosts (amber-remote's feature `turmoil`), each asking every key's entity,
//! while one node is cut off from the other two, then reconnected.
//!
//! - Cut off for less than the failure detector takes to declare it down: each side sees
//!   the other's nodes up but not linked; their shards' entities run there, and must not
//!   be started a second time here. Each entity counts the asks it handled: its count is
//!   at least the asks answered and at most those plus the asks that failed (none was
//!   started anew from nothing).
//! - Cut off past the verdict: the majority rule (`ShardingConfig::take_over_after`) has
//!   the lone node stop its entities before the other two take its shards over.
//!
//! In both, a monitor samples every node's entities every 2 ms of simulated time: no key
//! ever runs on two nodes; and every key answers once the cut heals.
//!
//! `AMBER_TURMOIL_SEEDS` overrides the seeds (a count, or a comma-separated list).
#![cfg(feature = "remote")]

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use support::seeds::each_seed;

use amber::cluster::{Member, MemberStatus, Sharding};
use amber::prelude::*;
use amber::{ActorState, Cluster, MembershipConfig, StateError, TransportConfig};

const PORT: u16 = 7000;
const SECRET: &[u8] = b"turmoil sharding test secret, long enough";
const SHARDS: u32 = 16;
const KEYS: usize = 24;
const NODES: [&str; 3] = ["a", "b", "c"];
/// How long a suspected member has to refute the suspicion before it is declared down: the
/// default, beyond the 2 s cut. (Before updates were passed on for a whole suspicion, the
/// cut ended in a verdict ~2 s after the heal in 37 of 64 seeded runs; now in none, and a
/// run with a verdict fails the test.)
const SUSPECT_AFTER: Duration = Duration::from_secs(3);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An entity that counts the asks it handles.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Room {
    count: u64,
}

impl Actor for Room {
    type Msg = ();
    type Reply = u64;

    async fn handle(&mut self, (): (), _: &mut Context<Self>) -> u64 {
        self.count += 1;
        self.count
    }
}

impl ActorState for Room {
    const TYPE_NAME: &'static str = "turmoil.Room";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(self)
    }

    fn decode_state(_: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        Ok(system.decode(bytes)?)
    }
}

/// What the hosts share (turmoil runs them all on one thread).
#[derive(Default)]
struct Board {
    shardings: HashMap<String, Sharding<Room>>,
    clusters: HashMap<String, Cluster>,
    /// Set while the nodes ask; cleared to stop them.
    asking: bool,
    /// Set while the monitor samples.
    watching: bool,
    /// Askers still running.
    askers: usize,
    /// Per key: asks answered, asks failed.
    answered: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    /// Samples in which a key ran on two nodes: (key, nodes).
    doubled: Vec<(String, Vec<String>)>,
    samples: u64,
    /// Where each key ran at the latest sample, and each change: (sample, key, nodes).
    at: BTreeMap<String, Vec<String>>,
    changes: Vec<(u64, String, Vec<String>)>,
    /// A node declared another down at some sample: the cut outlasted the failure
    /// detector's patience (a wrong verdict: outside what this test checks, see below).
    verdict: Option<String>,
}

type Shared = Rc<RefCell<Board>>;

fn key(k: usize) -> String {
    format!("room-{k}")
}

fn ip(host: &str) -> IpAddr {
    turmoil::lookup(host)
}

/// Starts node `name` on the host running this code, joins through `seeds` (host names),
/// starts its sharding and publishes both.
async fn serve(name: &'static str, seeds: &[&str], board: &Shared) {
    let any = SocketAddr::from(([0, 0, 0, 0], PORT));
    let config = TransportConfig::new(name, any, SECRET.to_vec())
        .with_heartbeat(ms(100), ms(1_000))
        .with_reconnect(Some(amber::ReconnectPolicy::new(ms(100), ms(1_000))));
    let membership = MembershipConfig::new(seeds.iter().map(|s| SocketAddr::new(ip(s), PORT)))
        .with_failure_detector(ms(500), ms(200), SUSPECT_AFTER)
        .with_gossip_interval(ms(100))
        .with_advertise(SocketAddr::new(ip(name), PORT), None);
    let builder = ActorSystem::builder().register::<Room>().ask_timeout(ms(1_000));
    let cluster = Cluster::join(builder, config, membership).await.expect("the node joins");
    let sharding = Sharding::<Room>::start(&cluster, SHARDS).expect("the sharding starts");
    let mut b = board.borrow_mut();
    b.shardings.insert(name.to_owned(), sharding);
    b.clusters.insert(name.to_owned(), cluster);
}

/// Asks every key's entity in turn from this node (`name`) while the board says so,
/// counting what was answered and what failed.
async fn ask_all(name: &str, board: Shared, offset: usize) {
    let sharding = board.borrow().shardings[name].clone();
    let refs: Vec<_> = (0..KEYS).map(|k| sharding.entity(key(k))).collect();
    board.borrow_mut().askers += 1;
    let mut n = offset;
    while board.borrow().asking {
        let k = n % KEYS;
        n += 1;
        let answered = refs[k].ask(()).await.is_ok();
        {
            let mut b = board.borrow_mut();
            let tally = if answered { &mut b.answered } else { &mut b.failed };
            *tally.entry(key(k)).or_default() += 1;
        }
        tokio::time::sleep(ms(5)).await;
    }
    board.borrow_mut().askers -= 1;
}

/// Notes where every key runs now (and any key on two nodes), and whether a node has
/// declared another down.
fn sample(board: &Shared) {
    let mut b = board.borrow_mut();
    let mut at: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (node, sharding) in &b.shardings {
        for k in sharding.local_keys() {
            at.entry(k).or_default().push(node.clone());
        }
    }
    for (k, nodes) in &at {
        if nodes.len() > 1 {
            b.doubled.push((k.clone(), nodes.clone()));
        }
    }
    let changed: Vec<(String, Vec<String>)> = at
        .iter()
        .filter(|(k, nodes)| b.at.get(*k) != Some(nodes))
        .map(|(k, n)| (k.clone(), n.clone()))
        .chain(b.at.keys().filter(|k| !at.contains_key(*k)).map(|k| (k.clone(), vec![])))
        .collect();
    let now = b.samples;
    b.changes.extend(changed.into_iter().map(|(k, nodes)| (now, k, nodes)));
    b.at = at;
    b.samples += 1;
    if b.verdict.is_none() {
        let verdict = b.clusters.iter().find_map(|(node, c)| {
            let members = c.members();
            let down = members.iter().find(|m| m.status == MemberStatus::Down)?;
            Some(format!("{node} declared {} down at sample {now}", down.node))
        });
        b.verdict = verdict;
    }
}

/// Samples every 2 ms of simulated time until `watching` clears.
async fn monitor(board: Shared) {
    while board.borrow().watching {
        sample(&board);
        tokio::time::sleep(ms(2)).await;
    }
}

async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(ms(10)).await;
    }
}

fn formed(cluster: &Cluster) -> bool {
    let members: Vec<Member> = cluster.members();
    members.len() == NODES.len() && members.iter().all(|m| m.status.is_up() && m.linked)
}

#[test]
fn a_node_cut_off_for_less_than_a_down_verdict_never_has_its_entities_started_twice() {
    each_seed(8, Duration::from_secs(120), |seed| cut_off(seed, ms(2_000), false));
}

/// Cut off past the verdict: each side declares the other down. The majority (a and b)
/// takes c's shards over once the verdict has stood; c, without a majority, starts
/// nothing and stops its entities before that: no key runs on two nodes. What c's
/// entities held is lost (no checkpoint store here: they start anew), and every key
/// answers once the cut heals and c is back. (With `without_partition_guard`, keys run on
/// two nodes within the first seed.)
#[test]
fn across_a_partition_past_the_verdict_only_the_majority_runs_the_entities() {
    each_seed(6, Duration::from_secs(120), |seed| cut_off(seed, ms(9_000), true));
}

/// Cuts c off from a and b for `cut` while every node asks every key; `verdict`: whether
/// the cut is long enough for the failure detectors to declare nodes down.
fn cut_off(seed: u64, cut: Duration, verdict: bool) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(ms(1))
        .min_message_latency(ms(1))
        .max_message_latency(ms(5))
        .build();
    let board: Shared = Rc::default();
    for (i, name) in ["b", "c"].into_iter().enumerate() {
        let board = board.clone();
        sim.host(name, move || {
            let board = board.clone();
            async move {
                serve(name, &["a"], &board).await;
                until(|| board.borrow().asking).await;
                ask_all(name, board.clone(), 8 * (i + 1)).await;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let shared = board.clone();
    sim.client("a", async move {
        serve("a", &[], &shared).await;
        until(|| shared.borrow().clusters.len() == NODES.len()).await;
        let clusters: Vec<Cluster> = NODES.iter().map(|n| shared.borrow().clusters[*n].clone()).collect();
        until(|| clusters.iter().all(formed)).await;
        {
            let mut b = shared.borrow_mut();
            b.asking = true;
            b.watching = true;
        }
        let script = async {
            tokio::time::sleep(ms(1_000)).await;
            // c loses a and b for 2 s: its links drop (heartbeats time out after 1 s), and
            // the failure detector suspects it, and it them, short of a verdict.
            turmoil::partition("c", "a");
            turmoil::partition("c", "b");
            tokio::time::sleep(cut).await;
            if verdict {
                // Past the verdict, c knows it is the minority; a and b, the majority.
                let b = shared.borrow();
                assert!(!b.shardings["c"].holds_majority(), "seed {seed}: c holds no majority");
                assert!(b.shardings["a"].holds_majority(), "seed {seed}: a and b do");
            }
            turmoil::repair("c", "a");
            turmoil::repair("c", "b");
            until(|| clusters.iter().all(formed)).await;
            tokio::time::sleep(ms(1_500)).await;
            shared.borrow_mut().asking = false;
            until(|| shared.borrow().askers == 0).await;
            // Every key once more from a: answered (a link that still comes and goes gets
            // a few tries), and the count it answers with.
            let sharding = shared.borrow().shardings["a"].clone();
            let mut counts = Vec::new();
            for k in 0..KEYS {
                let mut count = None;
                for _ in 0..20 {
                    match sharding.entity(key(k)).ask(()).await {
                        Ok(n) => {
                            count = Some(n);
                            break;
                        }
                        Err(_) => {
                            *shared.borrow_mut().failed.entry(key(k)).or_default() += 1;
                            tokio::time::sleep(ms(200)).await;
                        }
                    }
                }
                counts.push(count);
            }
            shared.borrow_mut().watching = false;
            counts
        };
        let (counts, (), ()) =
            tokio::join!(script, ask_all("a", shared.clone(), 0), monitor(shared.clone()));
        sample(&shared);

        let b = shared.borrow();
        let failed: u64 = b.failed.values().sum();
        let answered: u64 = b.answered.values().sum();
        if let Some((k, _)) = b.doubled.first() {
            let history: Vec<_> = b.changes.iter().filter(|c| c.1 == *k).collect();
            panic!("seed {seed}: {k} ran on two nodes ({} samples of a key on two); verdict {:?}; it ran at {history:?}", b.doubled.len(), b.verdict);
        }
        match (&b.verdict, verdict) {
            (Some(v), false) => panic!("seed {seed}: a {cut:?} cut ended in a verdict: {v}"),
            (None, true) => panic!("seed {seed}: a {cut:?} cut ended in no verdict"),
            (Some(v), true) => {
                for (k, count) in counts.iter().enumerate() {
                    assert!(count.is_some(), "seed {seed}: {} never answered after the heal", key(k));
                }
                eprintln!(
                    "seed {seed}: {v}; {answered} asks answered, {failed} failed; {} samples, no key on two nodes",
                    b.samples
                );
                return Ok(());
            }
            (None, false) => {}
        }
        for (k, count) in counts.into_iter().enumerate() {
            let count = count.unwrap_or_else(|| panic!("seed {seed}: {} never answered", key(k)));
            let answered = b.answered.get(&key(k)).copied().unwrap_or(0);
            let failed = b.failed.get(&key(k)).copied().unwrap_or(0);
            let history: Vec<_> = b.changes.iter().filter(|c| c.1 == key(k)).collect();
            assert!(
                answered < count && count <= answered + failed + 1,
                "seed {seed}: {} handled {count} asks; {answered} answered, {failed} failed; it ran at {history:?}",
                key(k)
            );
        }
        assert!(failed > 0, "seed {seed}: the cut made some asks fail");
        eprintln!(
            "seed {seed}: {answered} asks answered, {failed} failed across the cut; {} samples, no key on two nodes",
            b.samples
        );
        Ok(())
    });
    loop {
        match sim.step() {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => panic!("{error}"),
        }
    }
}
