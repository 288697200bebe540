//! Live migration under snapshots, audited message by message: accounts on three nodes pay
//! each other numbered deposits while they hop between nodes and snapshots are taken from
//! every node in turn. Every account's state keeps, per peer, how many deposits it sent and
//! which it received; in a consistent checkpoint every deposit a sender's state counts as
//! sent is in exactly one place: the receiver's state or the messages recorded in flight.
//! Stronger than the money total (which a lost and a doubled deposit can cancel out), and
//! it names the deposit that went wrong.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amber::SystemBuilder;
use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint};
use support::bounded;
use support::cluster::{keep_moving, mesh, node, refs_on};

/// An account that numbers its deposits per receiver and remembers which it received.
#[derive(ActorState, Debug, Default)]
#[amber(name = "test.Ledger")]
pub struct Ledger {
    me: Option<ActorId>,
    balance: u64,
    peers: Vec<ActorRef<Ledger>>,
    rng: u64,
    /// Per receiver: the number of deposits sent to it (numbered from 0).
    sent: BTreeMap<ActorId, u64>,
    /// Per sender: every deposit numbered below this was received...
    low: BTreeMap<ActorId, u64>,
    /// ...and these above it.
    extra: BTreeMap<ActorId, BTreeSet<u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LedgerMsg {
    Open { me: ActorId, peers: Vec<ActorRef<Ledger>> },
    Deposit { amount: u64, hops: u32, from: ActorId, seq: u64 },
    Transfer { to: u32, amount: u64, hops: u32 },
    Balance,
}

impl Ledger {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    async fn pay(&mut self, to: usize, amount: u64, hops: u32) {
        let (Some(me), false) = (self.me, self.peers.is_empty()) else { return };
        let amount = amount.min(self.balance);
        if amount == 0 {
            return;
        }
        let peer = self.peers[to % self.peers.len()].clone();
        let seq = *self.sent.get(&peer.id()).unwrap_or(&0);
        self.balance -= amount;
        let msg = LedgerMsg::Deposit { amount, hops, from: me, seq };
        match peer.tell(msg).await {
            Ok(()) => {
                self.sent.insert(peer.id(), seq + 1);
            }
            Err(_) => self.balance += amount,
        }
    }

    fn received(&mut self, from: ActorId, seq: u64) {
        let low = self.low.entry(from).or_insert(0);
        let extra = self.extra.entry(from).or_default();
        extra.insert(seq);
        while extra.remove(low) {
            *low += 1;
        }
    }
}

impl Actor for Ledger {
    type Msg = LedgerMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: LedgerMsg, _ctx: &mut Context<Self>) -> u64 {
        match msg {
            LedgerMsg::Open { me, peers } => {
                self.me = Some(me);
                self.peers = peers;
            }
            LedgerMsg::Deposit { amount, hops, from, seq } => {
                self.received(from, seq);
                self.balance += amount;
                if hops > 0 {
                    let to = self.next() as usize;
                    let part = 1 + self.next() % (amount + 1);
                    self.pay(to, part, hops - 1).await;
                }
            }
            LedgerMsg::Transfer { to, amount, hops } => self.pay(to as usize, amount, hops).await,
            LedgerMsg::Balance => {}
        }
        self.balance
    }
}

/// A ledger's state as the checkpoint stores it (refs left out).
#[derive(Deserialize)]
struct View {
    balance: u64,
    sent: BTreeMap<ActorId, u64>,
    low: BTreeMap<ActorId, u64>,
    extra: BTreeMap<ActorId, BTreeSet<u64>>,
}

#[derive(Deserialize)]
enum MsgView {
    Open {},
    Deposit { amount: u64, from: ActorId, seq: u64 },
    Transfer {},
    Balance,
}

/// Every deposit a sender's state counts as sent, in exactly one place; and the money.
fn check(checkpoint: &Checkpoint, total: u64) -> Vec<String> {
    let mut views = BTreeMap::new();
    for s in &checkpoint.states {
        let view: View = rmp_serde::from_slice(&s.state).expect("ledger state");
        views.insert(s.id, view);
    }
    let mut flying: BTreeMap<(ActorId, ActorId), Vec<(u64, u64)>> = BTreeMap::new();
    let mut money = views.values().map(|v| v.balance).sum::<u64>();
    for m in &checkpoint.in_flight {
        if let MsgView::Deposit { amount, from, seq, .. } =
            rmp_serde::from_slice::<MsgView>(&m.payload).expect("ledger message")
        {
            money += amount;
            flying.entry((from, m.to)).or_default().push((seq, m.epoch.0));
        }
    }
    let mut problems = Vec::new();
    if money != total {
        problems.push(format!("money {money} of {total}"));
    }
    for (&from, view) in &views {
        for (&to, &sent) in &view.sent {
            let Some(receiver) = views.get(&to) else { continue };
            let low = receiver.low.get(&from).copied().unwrap_or(0);
            let extra = receiver.extra.get(&from).cloned().unwrap_or_default();
            let fly = flying.remove(&(from, to)).unwrap_or_default();
            let mut seen = BTreeMap::<u64, usize>::new();
            for seq in (0..low).chain(extra.iter().copied()).chain(fly.iter().map(|f| f.0)) {
                *seen.entry(seq).or_default() += 1;
            }
            for seq in 0..sent {
                match seen.remove(&seq).unwrap_or(0) {
                    1 => {}
                    n => problems.push(format!(
                        "deposit {from} -> {to} #{seq}: {n} times (received below {low}, extra {extra:?}, in flight {fly:?})"
                    )),
                }
            }
            for (seq, n) in seen {
                problems.push(format!(
                    "deposit {from} -> {to} #{seq} received or in flight {n} times but never sent (sent {sent}; in flight {fly:?})"
                ));
            }
        }
    }
    for ((from, to), fly) in flying {
        problems.push(format!("in flight {from} -> {to} {fly:?} from a sender that sent nothing"));
    }
    problems
}

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Ledger>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deposit_is_in_exactly_one_place_in_snapshots_taken_while_accounts_move() {
    const PER_NODE: usize = 12;
    const EACH: u64 = 1_000;
    let nodes =
        vec![node("a", builder()).await, node("b", builder()).await, node("c", builder()).await];
    mesh(&nodes).await;
    let mut local = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let accounts: Vec<ActorRef<Ledger>> = (0..PER_NODE)
            .map(|i| {
                let rng = ((k * 1000 + i) as u64 * 7919) | 1;
                n.system().spawn(Ledger { balance: EACH, rng, ..Ledger::default() }).unwrap()
            })
            .collect();
        local.push(accounts);
    }
    let all: Vec<ActorRef<Ledger>> = local.iter().flatten().cloned().collect();
    for (k, n) in nodes.iter().enumerate() {
        let peers = refs_on(&nodes[0], n, &all);
        for account in &local[k] {
            let open = LedgerMsg::Open { me: account.id(), peers: peers.clone() };
            account.tell(open).await.unwrap();
        }
    }
    let total = 3 * PER_NODE as u64 * EACH;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| {
            let (accounts, stop) = (accounts.clone(), stop.clone());
            tokio::spawn(async move {
                let mut x = 31 + k as u64;
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let from = &accounts[(x % accounts.len() as u64) as usize];
                    let msg = LedgerMsg::Transfer {
                        to: (x >> 20) as u32,
                        amount: 1 + (x >> 40) % 50,
                        hops: 6,
                    };
                    if from.tell(msg).await.is_err() {
                        break;
                    }
                    sent += 1;
                    if sent.is_multiple_of(8) {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect();

    let moves = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ids = all.iter().map(|a| a.id()).collect();
    let mover = keep_moving(nodes.clone(), ids, stop.clone(), moves.clone());
    for round in 0..12 {
        let from = &nodes[round % 3];
        let checkpoint = bounded(from.system().snapshot()).await.expect("snapshot");
        moves
            .lock()
            .unwrap()
            .push(format!("--- snapshot {round}: epoch {:?}", checkpoint.manifest.epoch));
        let problems = check(&checkpoint, total);
        assert!(
            problems.is_empty(),
            "snapshot {round} (epoch {:?}) is not consistent:\n{}\nmoves:\n{}",
            checkpoint.manifest.epoch,
            problems.join("\n"),
            moves.lock().unwrap().join("\n")
        );
    }
    stop.store(true, Ordering::Relaxed);
    bounded(mover).await.unwrap();
    for load in loads {
        bounded(load).await.unwrap();
    }
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}
