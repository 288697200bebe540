//! Snapshots of a system whose actors come and go all the time. Vaults hold money and send it
//! to each other only by couriers: a vault spawns a courier child carrying the amount, the
//! courier tells itself to go, and on that message deposits the amount at another vault,
//! passes the chain on, and stops. Thousands of couriers are born and stop while snapshots
//! are taken, so the marker broadcast's list of actors (the registry's roster, copied chunk
//! by chunk as actors come and go under it) is always changing; idle vaults spread the
//! roster over several chunks. In every snapshot the vaults' balances, the couriers' loads
//! and the deposits in flight add up to the total, exactly; a restore carries on from it.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amber::prelude::*;
use amber::snapshot::Checkpoint;
use serde::de::IgnoredAny;
use support::bounded;

const VAULTS: usize = 24;
/// Vaults that hold nothing and do nothing: they only make the roster longer.
const IDLE: usize = 3_000;
const EACH: u64 = 1_000;
const TOTAL: u64 = VAULTS as u64 * EACH;

/// Holds money; sends it only by courier.
#[derive(ActorState, Debug, Default)]
#[amber(name = "churn.Vault")]
pub struct Vault {
    balance: u64,
    peers: Vec<ActorRef<Vault>>,
    seed: u64,
}

#[amber::actor]
impl Vault {
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// Sends part of the balance to a peer by a new courier, which passes the chain on
    /// `hops` more times.
    fn dispatch(&mut self, ctx: &mut Context<Self>, hops: u32) {
        if self.peers.is_empty() || self.balance == 0 {
            return;
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let to = self.peers[self.seed as usize % self.peers.len()].clone();
        let amount = 1 + self.seed % self.balance.min(50);
        self.balance -= amount;
        if ctx.spawn(Courier { amount, to: Some(to), hops }).is_err() {
            self.balance += amount; // shutting down: keep it
        }
    }

    fn link(&mut self, peers: Vec<ActorRef<Vault>>, seed: u64) {
        self.peers = peers;
        self.seed = seed | 1;
    }

    fn balance(&mut self) -> u64 {
        self.balance
    }
}

/// Carries `amount` to `to`, then stops.
#[derive(ActorState, Debug, Default)]
#[amber(name = "churn.Courier")]
pub struct Courier {
    amount: u64,
    to: Option<ActorRef<Vault>>,
    hops: u32,
}

#[amber::actor]
impl Courier {
    /// Tells itself to go: between that and `go`, a snapshot may cut it with its load.
    #[on_start]
    async fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx.myself().go().await;
    }

    async fn go(&mut self, ctx: &mut Context<Self>) {
        if let Some(to) = self.to.clone()
            && self.amount > 0
            && to.deposit(self.amount).await.is_ok()
        {
            self.amount = 0;
            if self.hops > 0 {
                let _ = to.dispatch(self.hops - 1).await;
            }
        }
        // Undelivered (the vault is gone): the load stays in this courier's last state.
        ctx.stop();
    }
}

/// What a checkpoint holds: vault balances, courier loads, deposits in flight, and how many
/// couriers it caught with their load.
#[derive(Debug, Default)]
struct Audit {
    balances: u64,
    loads: u64,
    in_flight: u64,
    couriers: usize,
    loaded_couriers: usize,
}

impl Audit {
    fn total(&self) -> u64 {
        self.balances + self.loads + self.in_flight
    }
}

fn audit(checkpoint: &Checkpoint) -> Audit {
    /// The stored states, with the fields the audit does not need ignored.
    #[derive(serde::Deserialize)]
    struct VaultState {
        balance: u64,
    }
    #[derive(serde::Deserialize)]
    struct CourierState {
        amount: u64,
    }
    /// `VaultMsg` as stored, refs not decoded (they need a system).
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    enum Stored {
        Deposit { amount: u64 },
        Dispatch { hops: IgnoredAny },
        Link { peers: IgnoredAny, seed: IgnoredAny },
        Balance,
    }
    let types: HashMap<_, _> =
        checkpoint.manifest.actors.iter().map(|e| (e.id, e.type_name.as_str())).collect();
    let mut a = Audit::default();
    for s in &checkpoint.states {
        match types.get(&s.id).copied() {
            Some("churn.Vault") => {
                let v: VaultState = rmp_serde::from_slice(&s.state).expect("vault state");
                a.balances += v.balance;
            }
            Some("churn.Courier") => {
                let c: CourierState = rmp_serde::from_slice(&s.state).expect("courier state");
                a.couriers += 1;
                a.loads += c.amount;
                a.loaded_couriers += usize::from(c.amount > 0);
            }
            other => panic!("a state of {other:?}"),
        }
    }
    for m in &checkpoint.in_flight {
        if types.get(&m.to).copied() == Some("churn.Vault")
            && let Stored::Deposit { amount } =
                rmp_serde::from_slice(&m.payload).expect("a vault message")
        {
            a.in_flight += amount;
        }
    }
    a
}

fn system() -> ActorSystem {
    ActorSystem::builder().register::<Vault>().register::<Courier>().build()
}

/// Keeps courier chains going from outside until `stop`.
fn load(vaults: Vec<ActorRef<Vault>>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            i = (i + 7) % vaults.len();
            if vaults[i].dispatch(20).await.is_err() {
                break;
            }
            sent += 1;
            if sent.is_multiple_of(16) {
                tokio::task::yield_now().await;
            }
        }
        sent
    })
}

async fn open(system: &ActorSystem) -> Vec<ActorRef<Vault>> {
    for _ in 0..IDLE {
        system.spawn(Vault::default()).expect("idle vault");
    }
    let vaults: Vec<_> = (0..VAULTS)
        .map(|_| system.spawn(Vault { balance: EACH, ..Vault::default() }).expect("vault"))
        .collect();
    for (i, v) in vaults.iter().enumerate() {
        let peers = vaults.iter().filter(|p| p.id() != v.id()).cloned().collect();
        bounded(v.link(peers, 0x9E37_79B9 * (i as u64 + 1))).await.expect("link");
    }
    vaults
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_actors_that_come_and_go_add_up_and_restore() {
    let system = system();
    let vaults = open(&system).await;
    let stop = Arc::new(AtomicBool::new(false));
    let driver = load(vaults.clone(), stop.clone());

    let (mut couriers, mut loaded) = (0, 0);
    let mut last = None;
    let mut round = 0;
    // At least 60 rounds, and on until some caught a courier with its load (bounded).
    while round < 60 || (loaded == 0 && round < 3_000) {
        round += 1;
        let checkpoint = bounded(system.snapshot()).await.expect("snapshot");
        let a = audit(&checkpoint);
        assert_eq!(a.total(), TOTAL, "round {round}: {a:?}");
        couriers += a.couriers;
        loaded += a.loaded_couriers;
        last = Some(checkpoint);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(bounded(driver).await.expect("load") > 0, "the load ran");
    assert!(couriers > 0, "snapshots caught couriers");
    assert!(loaded > 0, "snapshots caught couriers carrying money");
    bounded(system.shutdown()).await;

    // The last checkpoint restored: its couriers deliver, and the total still holds.
    let checkpoint = last.expect("a checkpoint");
    let restored = ActorSystem::builder()
        .register::<Vault>()
        .register::<Courier>()
        .restore(&checkpoint)
        .expect("restore");
    let vaults: Vec<ActorRef<Vault>> = checkpoint
        .manifest
        .actors
        .iter()
        .filter(|e| e.type_name == "churn.Vault")
        .map(|e| restored.lookup_id(e.id).expect("a restored vault"))
        .collect();
    for round in 0..10 {
        let a = audit(&bounded(restored.snapshot()).await.expect("snapshot after restore"));
        assert_eq!(a.total(), TOTAL, "restored round {round}: {a:?}");
    }
    // Once every chain has run out, the vaults hold it all.
    let mut held = 0;
    for _ in 0..1_000 {
        let a = audit(&bounded(restored.snapshot()).await.expect("snapshot"));
        assert_eq!(a.total(), TOTAL);
        if a.couriers == 0 && a.in_flight == 0 {
            held = a.balances;
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut balances = 0;
    for v in &vaults {
        balances += bounded(v.balance()).await.expect("balance");
    }
    assert_eq!(balances, TOTAL, "the vaults hold the total once the couriers are done");
    assert_eq!(held, TOTAL, "a snapshot saw the chains run out");
    bounded(restored.shutdown()).await;
}
