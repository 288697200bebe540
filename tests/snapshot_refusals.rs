//! A send refused because its receiver stopped after its cut is told to its sender, which
//! keeps what the message carried: the snapshot must not also record it in flight (issue 10,
//! bug 1; DESIGN.md, "Global snapshots", point 9). Messages accepted and then dropped as dead
//! letters are different (the sender thinks they arrived) and stay recorded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint};
use amber::{ActorState, MailboxCapacity, StateError};
use support::bounded;
use tokio::sync::oneshot;

/// A wallet whose first `Pay` or `Withdraw` reports that its handler began and then waits
/// until the test opens its gate: the test decides what happens meanwhile.
#[derive(Default)]
struct Wallet {
    balance: u64,
    entered: Option<oneshot::Sender<()>>,
    gate: Option<oneshot::Receiver<()>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum WalletMsg {
    /// Tell `to` a deposit of `amount`; keep it if the tell fails.
    Pay {
        to: ActorRef<Wallet>,
        amount: u64,
    },
    /// Ask `from` to hand over `amount`; add what it answers.
    Withdraw {
        from: ActorRef<Wallet>,
        amount: u64,
    },
    /// Money arriving.
    Deposit(u64),
    /// Hand over up to this much (answered).
    Take(u64),
    Balance,
    /// Waits on the gate (held busy by the test).
    Hold,
}

impl Wallet {
    fn new(balance: u64) -> Self {
        Wallet { balance, ..Wallet::default() }
    }

    /// A wallet whose first payment waits on the returned gate.
    fn gated(balance: u64) -> (Self, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (entered_tx, entered) = oneshot::channel();
        let (open, gate) = oneshot::channel();
        (Wallet { balance, entered: Some(entered_tx), gate: Some(gate) }, entered, open)
    }

    async fn wait_for_gate(&mut self) {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
        }
        if let Some(gate) = self.gate.take() {
            let _ = gate.await;
        }
    }
}

impl Actor for Wallet {
    type Msg = WalletMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: WalletMsg, _ctx: &mut Context<Self>) -> u64 {
        match msg {
            WalletMsg::Pay { to, amount } => {
                self.wait_for_gate().await;
                self.balance -= amount;
                if to.tell(WalletMsg::Deposit(amount)).await.is_err() {
                    self.balance += amount; // refused: the money stays here
                }
            }
            WalletMsg::Withdraw { from, amount } => {
                self.wait_for_gate().await;
                if let Ok(got) = from.ask(WalletMsg::Take(amount)).await {
                    self.balance += got;
                }
            }
            WalletMsg::Deposit(n) => self.balance += n,
            WalletMsg::Take(n) => {
                let n = n.min(self.balance);
                self.balance -= n;
                return n;
            }
            WalletMsg::Balance => {}
            WalletMsg::Hold => self.wait_for_gate().await,
        }
        self.balance
    }
}

impl ActorState for Wallet {
    const TYPE_NAME: &'static str = "test.Wallet";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&self.balance)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        Ok(Wallet::new(system.decode(bytes)?))
    }
}

/// A recorded wallet message, read without the actor type.
#[derive(Deserialize)]
#[allow(dead_code)]
enum WalletView {
    Pay { to: ActorId, amount: u64 },
    Withdraw { from: ActorId, amount: u64 },
    Deposit(u64),
    Take(u64),
    Balance,
    Hold,
}

/// Balances plus recorded deposits.
fn wallet_total(checkpoint: &Checkpoint) -> u64 {
    let balances: u64 =
        checkpoint.states.iter().map(|s| rmp_serde::from_slice::<u64>(&s.state).unwrap()).sum();
    let in_flight: u64 = checkpoint
        .in_flight
        .iter()
        .map(|m| match rmp_serde::from_slice::<WalletView>(&m.payload).unwrap() {
            WalletView::Deposit(n) => n,
            _ => 0,
        })
        .sum();
    balances + in_flight
}

fn wallets() -> ActorSystem {
    ActorSystem::builder().register::<Wallet>().build()
}

/// Starts a snapshot of `system` in a task and returns once its markers are on every
/// control lane (on a current-thread runtime the task starts the snapshot and broadcasts the
/// markers in one poll, without yielding between them).
async fn start_snapshot(
    system: &ActorSystem,
) -> tokio::task::JoinHandle<Result<Checkpoint, amber::SnapshotError>> {
    let task = tokio::spawn({
        let system = system.clone();
        async move { system.snapshot().await }
    });
    bounded(async {
        while system.snapshot_running().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    task
}

#[tokio::test(flavor = "current_thread")]
async fn a_tell_refused_by_an_actor_that_stopped_after_its_cut_is_not_also_in_flight() {
    let system = wallets();
    let (a, entered, open) = Wallet::gated(100);
    let a = system.spawn(a).unwrap();
    let b = system.spawn(Wallet::new(0)).unwrap();
    a.tell(WalletMsg::Pay { to: b.clone(), amount: 10 }).await.unwrap();
    bounded(entered).await.unwrap(); // A's handler began before the snapshot

    let snapshot = start_snapshot(&system).await;
    // B's marker is ahead of the stop on its control lane: B cuts, then stops.
    b.stop();
    bounded(b.wait_stopped()).await;
    // Plain code outside the system is refused too, and keeps what it meant to send.
    assert!(b.tell(WalletMsg::Deposit(5)).await.is_err());
    open.send(()).unwrap(); // A pays B, is refused, keeps the 10, and then cuts

    let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
    assert_eq!(checkpoint.manifest.actors.len(), 2);
    assert_eq!(bounded(a.ask(WalletMsg::Balance)).await.unwrap(), 100, "A kept the money");
    assert!(checkpoint.in_flight.is_empty(), "refused sends recorded: {:?}", checkpoint.in_flight);
    assert_eq!(wallet_total(&checkpoint), 100, "the checkpoint creates money");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_ask_refused_by_an_actor_that_stopped_after_its_cut_is_not_replayed() {
    let system = wallets();
    let (a, entered, open) = Wallet::gated(100);
    let a = system.spawn(a).unwrap();
    let b = system.spawn(Wallet::new(10)).unwrap();
    a.tell(WalletMsg::Withdraw { from: b.clone(), amount: 10 }).await.unwrap();
    bounded(entered).await.unwrap();

    let snapshot = start_snapshot(&system).await;
    b.stop();
    bounded(b.wait_stopped()).await;
    open.send(()).unwrap(); // A asks B, fails with `Stopped`, keeps its 100

    let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
    assert_eq!(bounded(a.ask(WalletMsg::Balance)).await.unwrap(), 100);
    assert!(checkpoint.in_flight.is_empty(), "a refused ask recorded: {:?}", checkpoint.in_flight);
    assert_eq!(wallet_total(&checkpoint), 110);
    bounded(system.shutdown()).await;

    // The restored B must not hand over the 10 a second time, to nobody.
    let restored =
        ActorSystem::builder().register::<Wallet>().restore(&checkpoint).expect("restore");
    let mut total = 0;
    for entry in &checkpoint.manifest.actors {
        let wallet: ActorRef<Wallet> = restored.lookup_id(entry.id).unwrap();
        total += bounded(wallet.ask(WalletMsg::Balance)).await.unwrap();
    }
    assert_eq!(total, 110, "the restored wallets lost money");
    bounded(restored.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_ask_dropped_unanswered_after_the_responders_cut_is_not_replayed() {
    let system = wallets();
    let (b, b_entered, b_open) = Wallet::gated(10);
    let b = system.spawn(b).unwrap();
    b.tell(WalletMsg::Hold).await.unwrap();
    bounded(b_entered).await.unwrap(); // B is busy in a handler
    // A's gate is open already: it reports entering and asks B in the same poll, so once
    // the test hears of it, the request is queued at B.
    let (a, a_entered, a_open) = Wallet::gated(100);
    a_open.send(()).unwrap();
    let a = system.spawn(a).unwrap();
    a.tell(WalletMsg::Withdraw { from: b.clone(), amount: 10 }).await.unwrap();
    bounded(a_entered).await.unwrap();

    let snapshot = start_snapshot(&system).await;
    // B finishes its handler, cuts with the request queued (recorded), then stops and drops
    // it: A learns that it failed (`NoReply`) before its own cut and keeps its 100.
    b.stop();
    b_open.send(()).unwrap();
    bounded(b.wait_stopped()).await;

    let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
    assert_eq!(bounded(a.ask(WalletMsg::Balance)).await.unwrap(), 100);
    let replayed = checkpoint
        .in_flight
        .iter()
        .filter(|m| matches!(rmp_serde::from_slice(&m.payload), Ok(WalletView::Take(_))))
        .count();
    assert_eq!(replayed, 0, "a request its asker saw fail is recorded: {:?}", checkpoint.in_flight);
    bounded(system.shutdown()).await;
}

/// A branch of a bank whose branches close: a closing branch forwards its balance (and any
/// deposit it still drains) to the head office, which never closes, then drains; deposits
/// it refuses stay with their senders.
struct Branch {
    balance: u64,
    peers: Vec<ActorRef<Branch>>,
    head: Option<ActorRef<Branch>>,
    closing: bool,
    rng: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum BranchMsg {
    Link {
        peers: Vec<ActorRef<Branch>>,
        head: ActorRef<Branch>,
    },
    /// Money arriving; with hops left, the branch passes parts on to three peers.
    Deposit {
        amount: u64,
        hops: u32,
    },
    /// From outside: pass parts of the balance on (no money travels with it).
    Kick {
        hops: u32,
    },
    Close,
}

#[derive(Serialize, Deserialize)]
struct BranchState {
    balance: u64,
    peers: Vec<ActorRef<Branch>>,
    head: Option<ActorRef<Branch>>,
    closing: bool,
    rng: u64,
}

impl Branch {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Passes parts of the balance to three random peers, yielding in between (so the
    /// handler stays behind a snapshot while others cut and close).
    async fn spread(&mut self, hops: u32) {
        for _ in 0..3 {
            if self.peers.is_empty() || self.balance == 0 {
                return;
            }
            let pick = (self.next() % self.peers.len() as u64) as usize;
            let peer = self.peers[pick].clone();
            let part = 1 + self.next() % self.balance.min(20);
            self.balance -= part;
            if peer.tell(BranchMsg::Deposit { amount: part, hops }).await.is_err() {
                self.balance += part; // that branch closed: keep it
            }
            tokio::task::yield_now().await;
        }
    }

    async fn send_to_head(&mut self, amount: u64) {
        if let Some(head) = &self.head
            && amount > 0
            && head.tell(BranchMsg::Deposit { amount, hops: 0 }).await.is_err()
        {
            self.balance += amount;
        }
    }
}

impl Actor for Branch {
    type Msg = BranchMsg;
    type Reply = ();

    async fn handle(&mut self, msg: BranchMsg, ctx: &mut Context<Self>) {
        match msg {
            BranchMsg::Link { peers, head } => {
                self.peers = peers;
                self.head = Some(head);
            }
            BranchMsg::Deposit { amount, .. } if self.closing => self.send_to_head(amount).await,
            BranchMsg::Deposit { amount, hops } => {
                self.balance += amount;
                if hops > 0 {
                    self.spread(hops - 1).await;
                }
            }
            BranchMsg::Kick { hops } if !self.closing => self.spread(hops).await,
            BranchMsg::Kick { .. } => {}
            BranchMsg::Close => {
                self.closing = true;
                let all = std::mem::take(&mut self.balance);
                self.send_to_head(all).await;
                ctx.myself().drain();
            }
        }
    }
}

impl ActorState for Branch {
    const TYPE_NAME: &'static str = "test.Branch";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&BranchState {
            balance: self.balance,
            peers: self.peers.clone(),
            head: self.head.clone(),
            closing: self.closing,
            rng: self.rng,
        })
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        let s: BranchState = system.decode(bytes)?;
        Ok(Branch {
            balance: s.balance,
            peers: s.peers,
            head: s.head,
            closing: s.closing,
            rng: s.rng,
        })
    }
}

#[derive(Deserialize)]
struct BalanceView {
    balance: u64,
}

#[derive(Deserialize)]
#[allow(dead_code)]
enum BranchView {
    Link { peers: Vec<ActorId>, head: ActorId },
    Deposit { amount: u64, hops: u32 },
    Kick { hops: u32 },
    Close,
}

fn branch_total(checkpoint: &Checkpoint) -> u64 {
    let balances: u64 = checkpoint
        .states
        .iter()
        .map(|s| rmp_serde::from_slice::<BalanceView>(&s.state).unwrap().balance)
        .sum();
    let in_flight: u64 = checkpoint
        .in_flight
        .iter()
        .map(|m| match rmp_serde::from_slice::<BranchView>(&m.payload).unwrap() {
            BranchView::Deposit { amount, .. } => amount,
            _ => 0,
        })
        .sum();
    balances + in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_whose_branches_close_adds_up_in_every_snapshot() {
    const BRANCHES: usize = 120;
    const EACH: u64 = 1_000;
    let system = ActorSystem::builder().register::<Branch>().build();
    let options = SpawnOptions::new().capacity(MailboxCapacity::Unbounded);
    let branches: Vec<ActorRef<Branch>> = (0..BRANCHES)
        .map(|i| {
            let rng = (i as u64 + 1) * 0x9E37_79B9;
            let branch = move || Branch {
                balance: EACH,
                peers: Vec::new(),
                head: None,
                closing: false,
                rng,
            };
            system.spawn_with(options.clone(), branch).unwrap()
        })
        .collect();
    let head = branches[0].clone();
    for b in &branches {
        let link = BranchMsg::Link { peers: branches.clone(), head: head.clone() };
        b.tell(link).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (branches, stop) = (branches.clone(), stop.clone());
        async move {
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let branch = &branches[(x % BRANCHES as u64) as usize];
                // An ask now and then keeps the backlog short (it waits for the handler).
                if x.is_multiple_of(8) {
                    let _ = branch.ask(BranchMsg::Kick { hops: 6 }).await;
                } else {
                    let _ = branch.tell(BranchMsg::Kick { hops: 6 }).await;
                }
                tokio::task::yield_now().await;
            }
        }
    });
    // Every snapshot starts while two more branches close: each cuts (its marker overtakes
    // the `Close`) and then refuses whatever its peers, still behind the snapshot, pay it.
    let mut wrong = Vec::new();
    let mut closing = 1..BRANCHES;
    let mut round = 0;
    while closing.len() >= 2 {
        round += 1;
        let snapshot = tokio::spawn({
            let system = system.clone();
            async move { system.snapshot().await }
        });
        for i in closing.by_ref().take(2) {
            let _ = branches[i].tell(BranchMsg::Close).await;
        }
        let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
        let total = branch_total(&checkpoint);
        if total != BRANCHES as u64 * EACH {
            wrong.push((round, total));
        }
    }
    stop.store(true, Ordering::Relaxed);
    bounded(load).await.unwrap();
    assert!(wrong.is_empty(), "{} of {round} snapshots do not add up: {wrong:?}", wrong.len());
    bounded(system.shutdown()).await;
}
