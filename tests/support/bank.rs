//! A bank for snapshot tests: accounts move money only as `Deposit` messages, so in every
//! consistent snapshot the balances plus the recorded deposits add up to the total.
#![allow(dead_code, unreachable_pub)]

use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint};
use amber::{ActorState, StateError};

/// An account. On a deposit with hops left it passes part of its balance on to a peer, so
/// money keeps moving between actors without any outside input.
#[derive(Debug)]
pub struct Account {
    pub balance: u64,
    pub peers: Vec<ActorRef<Account>>,
    pub rng: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AccountMsg {
    SetPeers(Vec<ActorRef<Account>>),
    /// Money arriving from another account (the only message that carries money).
    Deposit {
        amount: u64,
        hops: u32,
    },
    /// A command from outside: move `amount` to peer `to` (if the balance allows).
    Transfer {
        to: u32,
        amount: u64,
        hops: u32,
    },
    Balance,
}

/// The stored state: refs are stored as ids.
#[derive(Serialize, Deserialize)]
struct AccountState {
    balance: u64,
    peers: Vec<ActorRef<Account>>,
    rng: u64,
}

impl Account {
    pub fn new(balance: u64, seed: u64) -> Self {
        Account { balance, peers: Vec::new(), rng: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    async fn send(&mut self, to: usize, amount: u64, hops: u32) {
        if self.peers.is_empty() || amount == 0 {
            return;
        }
        let amount = amount.min(self.balance);
        self.balance -= amount;
        let peer = self.peers[to % self.peers.len()].clone();
        if let Err(e) = peer.tell(AccountMsg::Deposit { amount, hops }).await {
            // The peer stopped: keep the money.
            if let AccountMsg::Deposit { amount, .. } = e.0 {
                self.balance += amount;
            }
        }
    }
}

impl Actor for Account {
    type Msg = AccountMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: AccountMsg, _ctx: &mut Context<Self>) -> u64 {
        match msg {
            AccountMsg::SetPeers(peers) => self.peers = peers,
            AccountMsg::Deposit { amount, hops } => {
                self.balance += amount;
                if hops > 0 {
                    let to = self.next() as usize;
                    let part = 1 + self.next() % (amount + 1);
                    self.send(to, part, hops - 1).await;
                }
            }
            AccountMsg::Transfer { to, amount, hops } => self.send(to as usize, amount, hops).await,
            AccountMsg::Balance => {}
        }
        self.balance
    }
}

impl ActorState for Account {
    const TYPE_NAME: &'static str = "test.Account";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&AccountState {
            balance: self.balance,
            peers: self.peers.clone(),
            rng: self.rng,
        })
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        super::current_version::<Self>(version)?;
        let s: AccountState = system.decode(bytes)?;
        Ok(Account { balance: s.balance, peers: s.peers, rng: s.rng })
    }
}

/// The balance field of a stored account state, read without the actor type.
#[derive(Deserialize)]
struct BalanceView {
    balance: u64,
}

/// A recorded message, read without the actor type (refs are ids on the wire).
#[derive(Deserialize)]
enum MsgView {
    SetPeers(Vec<ActorId>),
    Deposit { amount: u64, hops: u32 },
    Transfer { to: u32, amount: u64, hops: u32 },
    Balance,
}

/// Balances and recorded deposits of a checkpoint of a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    pub balances: u64,
    pub in_flight: u64,
    pub deposits_in_flight: usize,
}

impl Audit {
    pub fn total(&self) -> u64 {
        self.balances + self.in_flight
    }
}

/// Adds up a checkpoint of a bank.
pub fn audit(checkpoint: &Checkpoint) -> Audit {
    let balances = checkpoint
        .states
        .iter()
        .map(|s| rmp_serde::from_slice::<BalanceView>(&s.state).expect("account state").balance)
        .sum();
    let mut in_flight = 0;
    let mut deposits_in_flight = 0;
    for m in &checkpoint.in_flight {
        if let MsgView::Deposit { amount, .. } =
            rmp_serde::from_slice::<MsgView>(&m.payload).expect("account message")
        {
            in_flight += amount;
            deposits_in_flight += 1;
        }
    }
    Audit { balances, in_flight, deposits_in_flight }
}

/// Spawns `n` accounts holding `each`, all linked to each other.
pub async fn open_bank(system: &ActorSystem, n: usize, each: u64) -> Vec<ActorRef<Account>> {
    let accounts: Vec<_> =
        (0..n).map(|i| system.spawn(Account::new(each, i as u64 * 7919 + 1)).unwrap()).collect();
    for a in &accounts {
        a.tell(AccountMsg::SetPeers(accounts.clone())).await.unwrap();
    }
    accounts
}

/// Sends `Transfer` commands (of `hops` hops) to random `accounts` from outside the system
/// until `stop`, and returns how many it sent. With `pace`, it sleeps a millisecond after
/// every 8 sends, so that bounded mailboxes do not fill (a saturated bank still adds up, but
/// each snapshot then records ~100k queued messages and a debug build crawls); without, it
/// only yields every 64.
pub fn outside_load(
    accounts: Vec<ActorRef<Account>>,
    seed: u64,
    hops: u32,
    pace: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let (mut x, mut sent) = (seed | 1, 0u64);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let from = &accounts[(x % accounts.len() as u64) as usize];
            let msg =
                AccountMsg::Transfer { to: (x >> 20) as u32, amount: 1 + (x >> 40) % 50, hops };
            if from.tell(msg).await.is_err() {
                break;
            }
            sent += 1;
            if pace && sent.is_multiple_of(8) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            } else if sent.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        sent
    })
}

/// Opens `per_node` accounts holding `each` on every one of `nodes` (meshed), all linked to
/// all accounts of all nodes. Returns, per node, its local accounts.
#[cfg(feature = "remote")]
pub async fn open_cluster_bank(
    nodes: &[amber::Cluster],
    per_node: usize,
    each: u64,
) -> Vec<Vec<ActorRef<Account>>> {
    let mut local = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let accounts: Vec<_> = (0..per_node)
            .map(|i| n.system().spawn(Account::new(each, (k * 1000 + i) as u64 * 7919 + 1)))
            .collect::<Result<_, _>>()
            .unwrap();
        local.push(accounts);
    }
    let all: Vec<ActorRef<Account>> = local.iter().flatten().cloned().collect();
    for (k, n) in nodes.iter().enumerate() {
        let peers = super::cluster::refs_on(&nodes[0], n, &all);
        for account in &local[k] {
            account.tell(AccountMsg::SetPeers(peers.clone())).await.unwrap();
        }
    }
    local
}
