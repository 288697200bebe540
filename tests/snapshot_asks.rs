//! Snapshots of ask-heavy systems (the ask rule): actors whose handlers ask other actors,
//! under unpaced load, still get their snapshots, and every one adds up.
//!
//! An asker awaiting a reply is inside its handler and cuts only after it, so a responder
//! must answer it before its own cut. Responders learn their ask depth from the asks they
//! serve and defer their cuts until every shallower actor has cut (see
//! `amber_snapshot::ActorCut::on_marker_at`). Without that rule, a fan-in of asks never
//! gets a consistent snapshot: some responder always cuts while an asker still awaits it.
//!
//! Money moves only as `Deposit` messages and as `Take` replies (the responder withdraws,
//! the asker adds the reply), so in every consistent snapshot the balances plus the
//! recorded deposits equal the total.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint};
use amber::{ActorState, StateError};
use support::bounded;

/// An account that asks deeper accounts for money and tells deposits to any account.
#[derive(Debug)]
struct Teller {
    balance: u64,
    /// Whom it asks (deeper in the ask graph: asks never form a cycle).
    asks: Vec<ActorRef<Teller>>,
    /// Whom it sends deposits to (anyone).
    tells: Vec<ActorRef<Teller>>,
    /// Percent of handled deposits that ask before passing money on.
    ask_percent: u64,
    rng: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum TellerMsg {
    Setup {
        asks: Vec<ActorRef<Teller>>,
        tells: Vec<ActorRef<Teller>>,
        ask_percent: u64,
    },
    /// Outside load: ask (always, if there is anyone to ask), then pass money on.
    Work,
    /// Money arriving (the only message that carries money).
    Deposit {
        amount: u64,
        hops: u32,
    },
    /// An ask for up to `amount`: the reply is what the responder gave up.
    Take {
        amount: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct TellerState {
    balance: u64,
    asks: Vec<ActorRef<Teller>>,
    tells: Vec<ActorRef<Teller>>,
    ask_percent: u64,
    rng: u64,
}

impl Teller {
    fn new(balance: u64, seed: u64) -> Teller {
        Teller { balance, asks: Vec::new(), tells: Vec::new(), ask_percent: 0, rng: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Asks a deeper teller for up to `amount` and keeps what it gives.
    async fn take_from_below(&mut self, amount: u64) {
        if self.asks.is_empty() {
            return;
        }
        let i = (self.next() % self.asks.len() as u64) as usize;
        let from = self.asks[i].clone();
        if let Ok(got) = from.ask(TellerMsg::Take { amount }).await {
            self.balance += got;
        }
    }

    /// Passes part of the balance on; a full or stopped mailbox leaves it here (a handler
    /// never waits on another actor's mailbox).
    fn pass_on(&mut self, hops: u32) {
        if self.tells.is_empty() || self.balance == 0 {
            return;
        }
        let i = (self.next() % self.tells.len() as u64) as usize;
        let to = self.tells[i].clone();
        let amount = 1 + self.next() % self.balance.min(20);
        self.balance -= amount;
        if to.try_tell(TellerMsg::Deposit { amount, hops }).is_err() {
            self.balance += amount;
        }
    }
}

impl Actor for Teller {
    type Msg = TellerMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: TellerMsg, _ctx: &mut Context<Self>) -> u64 {
        match msg {
            TellerMsg::Setup { asks, tells, ask_percent } => {
                (self.asks, self.tells, self.ask_percent) = (asks, tells, ask_percent);
                0
            }
            TellerMsg::Work => {
                let amount = 1 + self.next() % 5;
                self.take_from_below(amount).await;
                self.pass_on(3);
                0
            }
            TellerMsg::Deposit { amount, hops } => {
                self.balance += amount;
                if hops > 0 {
                    if self.next() % 100 < self.ask_percent {
                        let amount = 1 + self.next() % 3;
                        self.take_from_below(amount).await;
                    }
                    self.pass_on(hops - 1);
                }
                0
            }
            TellerMsg::Take { amount } => {
                // A chain of asks: first ask further down, then give.
                self.take_from_below(amount).await;
                let given = amount.min(self.balance);
                self.balance -= given;
                given
            }
        }
    }
}

impl ActorState for Teller {
    const TYPE_NAME: &'static str = "test.Teller";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&TellerState {
            balance: self.balance,
            asks: self.asks.clone(),
            tells: self.tells.clone(),
            ask_percent: self.ask_percent,
            rng: self.rng,
        })
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        let s: TellerState = system.decode(bytes)?;
        Ok(Teller {
            balance: s.balance,
            asks: s.asks,
            tells: s.tells,
            ask_percent: s.ask_percent,
            rng: s.rng,
        })
    }
}

#[derive(Deserialize)]
struct BalanceView {
    balance: u64,
}

#[derive(Deserialize)]
#[allow(dead_code)] // only the amounts are read
enum MsgView {
    Setup { asks: Vec<ActorId>, tells: Vec<ActorId>, ask_percent: u64 },
    Work,
    Deposit { amount: u64, hops: u32 },
    Take { amount: u64 },
}

/// Balances plus recorded deposits.
fn money(checkpoint: &Checkpoint) -> u64 {
    let balances: u64 = checkpoint
        .states
        .iter()
        .map(|s| rmp_serde::from_slice::<BalanceView>(&s.state).expect("teller state").balance)
        .sum();
    let in_flight: u64 = checkpoint
        .in_flight
        .iter()
        .map(|m| match rmp_serde::from_slice::<MsgView>(&m.payload).expect("teller message") {
            MsgView::Deposit { amount, .. } => amount,
            _ => 0,
        })
        .sum();
    balances + in_flight
}

/// `Work` asks answered before the first snapshot: the load is sustained, and every layer
/// has served asks (responders learn their ask depth from the asks they serve; a snapshot
/// taken before an actor served its deepest asker may be refused).
const WARM_UP: u64 = 2_000;

/// Drives `askers` with `Work` asks from `tasks` outside tasks, as fast as they are
/// answered, until `stop`. Notifies the returned `Notify` once `WARM_UP` asks were answered.
fn unpaced_load(
    askers: &[ActorRef<Teller>],
    tasks: usize,
    stop: &Arc<AtomicBool>,
) -> (Vec<tokio::task::JoinHandle<u64>>, Arc<tokio::sync::Notify>) {
    load_warming_up_after(askers, tasks, stop, WARM_UP)
}

/// [`unpaced_load`], notifying after `warm_up` answered asks.
fn load_warming_up_after(
    askers: &[ActorRef<Teller>],
    tasks: usize,
    stop: &Arc<AtomicBool>,
    warm_up: u64,
) -> (Vec<tokio::task::JoinHandle<u64>>, Arc<tokio::sync::Notify>) {
    let answered = Arc::new(AtomicU64::new(0));
    let warm = Arc::new(tokio::sync::Notify::new());
    let tasks = (0..tasks)
        .map(|t| {
            let (askers, stop) = (askers.to_vec(), stop.clone());
            let (answered, warm) = (answered.clone(), warm.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + tasks) % askers.len();
                    if askers[i].ask(TellerMsg::Work).await.is_err() {
                        break;
                    }
                    done += 1;
                    if answered.fetch_add(1, Ordering::Relaxed) + 1 == warm_up {
                        warm.notify_one();
                    }
                }
                done
            })
        })
        .collect();
    (tasks, warm)
}

/// Takes `rounds` single snapshot attempts while the load runs; returns how many
/// succeeded, checking that each one adds up to `total`.
async fn attempts(system: &ActorSystem, rounds: usize, total: u64, actors: usize) -> usize {
    let mut ok = 0;
    for round in 0..rounds {
        match bounded(system.snapshot_within(Duration::from_secs(10))).await {
            Ok(checkpoint) => {
                assert_eq!(checkpoint.manifest.actors.len(), actors, "round {round}");
                assert_eq!(money(&checkpoint), total, "round {round}: money created or lost");
                ok += 1;
            }
            Err(e) => eprintln!("round {round}: {e}"),
        }
    }
    ok
}

async fn spawn_tellers(
    system: &ActorSystem,
    n: usize,
    each: u64,
    seed: u64,
) -> Vec<ActorRef<Teller>> {
    (0..n).map(|i| system.spawn(Teller::new(each, seed + i as u64 * 7919)).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_of_asks_gets_its_snapshots() {
    let system = ActorSystem::builder().register::<Teller>().build();
    // 32 askers -> 8 -> 4 -> 1: every handler of a layer asks one of the next layer.
    let sizes = [32, 8, 4, 1];
    let mut layers = Vec::new();
    for (k, n) in sizes.iter().enumerate() {
        layers.push(spawn_tellers(&system, *n, 1_000, 1 + k as u64 * 100).await);
    }
    let all: Vec<ActorRef<Teller>> = layers.iter().flatten().cloned().collect();
    let total = all.len() as u64 * 1_000;
    for (k, layer) in layers.iter().enumerate() {
        let asks = layers.get(k + 1).cloned().unwrap_or_default();
        for t in layer {
            let setup =
                TellerMsg::Setup { asks: asks.clone(), tells: all.clone(), ask_percent: 50 };
            t.ask(setup).await.unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (load, warm) = unpaced_load(&layers[0], 16, &stop);
    bounded(warm.notified()).await;
    let ok = attempts(&system, 10, total, all.len()).await;
    stop.store(true, Ordering::Relaxed);
    let mut worked = 0;
    for task in load {
        worked += bounded(task).await.unwrap();
    }
    assert!(worked > 0, "the load ran");
    eprintln!("{ok} of 10 snapshots of a fan-in of asks succeeded");
    assert!(ok >= 9, "only {ok} of 10 snapshots of a fan-in of asks succeeded");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_asking_an_oracle_on_a_tenth_of_its_hops_gets_its_snapshots() {
    let system = ActorSystem::builder().register::<Teller>().build();
    let oracle = spawn_tellers(&system, 1, 10_000, 7).await;
    let accounts = spawn_tellers(&system, 64, 1_000, 11).await;
    let all: Vec<ActorRef<Teller>> = accounts.iter().chain(&oracle).cloned().collect();
    let total = 64 * 1_000 + 10_000;
    for a in &accounts {
        let setup = TellerMsg::Setup { asks: oracle.clone(), tells: all.clone(), ask_percent: 10 };
        a.ask(setup).await.unwrap();
    }
    oracle[0]
        .ask(TellerMsg::Setup { asks: Vec::new(), tells: all.clone(), ask_percent: 0 })
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Outside load drives deposits through the accounts; `Work` asks the oracle itself.
    let (load, warm) = unpaced_load(&accounts, 16, &stop);
    bounded(warm.notified()).await;
    let ok = attempts(&system, 10, total, all.len()).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        bounded(task).await.unwrap();
    }
    eprintln!("{ok} of 10 snapshots of a bank with asks succeeded");
    assert!(ok >= 9, "only {ok} of 10 snapshots of a bank with asks succeeded");
    bounded(system.shutdown()).await;
}

/// The ask rule across nodes: accounts on two nodes ask an oracle on the first (asks carry
/// their asker's depth over the link; the coordinator releases a depth once no node has a
/// shallower actor behind), under unpaced load. Snapshots started by either node succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_two_nodes_asking_an_oracle_get_their_snapshots() {
    use support::cluster::{mesh, node, refs_on};
    let builder = || ActorSystem::builder().register::<Teller>();
    let nodes = vec![node("a", builder()).await, node("b", builder()).await];
    mesh(&nodes).await;
    let oracle = spawn_tellers(nodes[0].system(), 1, 10_000, 7).await;
    let mut local = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        local.push(spawn_tellers(n.system(), 24, 1_000, 11 + 100 * k as u64).await);
    }
    let all_on_a: Vec<ActorRef<Teller>> = local[0]
        .iter()
        .chain(&refs_on(&nodes[1], &nodes[0], &local[1]))
        .chain(&oracle)
        .cloned()
        .collect();
    let total = 48 * 1_000 + 10_000;
    for (k, n) in nodes.iter().enumerate() {
        let (all, oracle) = (refs_on(&nodes[0], n, &all_on_a), refs_on(&nodes[0], n, &oracle));
        for t in &local[k] {
            let setup =
                TellerMsg::Setup { asks: oracle.clone(), tells: all.clone(), ask_percent: 10 };
            bounded(t.ask(setup)).await.unwrap();
        }
    }
    oracle[0]
        .ask(TellerMsg::Setup { asks: Vec::new(), tells: all_on_a.clone(), ask_percent: 0 })
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();
    let mut warms = Vec::new();
    for accounts in &local {
        // Asks across the link are slower in a debug build: a shorter warm-up (every account
        // has asked the oracle by then).
        let (load, warm) = load_warming_up_after(accounts, 8, &stop, 200);
        loads.extend(load);
        warms.push(warm);
    }
    for warm in warms {
        bounded(warm.notified()).await;
    }
    let mut ok = 0;
    for round in 0..10 {
        let starter = nodes[round % 2].system();
        match bounded(starter.snapshot_within(Duration::from_secs(10))).await {
            Ok(checkpoint) => {
                assert_eq!(checkpoint.manifest.actors.len(), 49, "round {round}");
                assert_eq!(money(&checkpoint), total, "round {round}: money created or lost");
                ok += 1;
            }
            Err(e) => eprintln!("round {round}: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in loads {
        bounded(task).await.unwrap();
    }
    eprintln!("{ok} of 10 snapshots of accounts on two nodes asking an oracle succeeded");
    assert!(ok >= 9, "only {ok} of 10 snapshots across two nodes succeeded");
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
