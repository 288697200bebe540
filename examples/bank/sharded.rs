//! `--sharded`: the bank's accounts as sharded entities (`amber::cluster::Sharding`).
//!
//! Account `i` is the entity `acct-<i>`, registered on its node as
//! `shard:bank.ShardedAccount/acct-<i>`, on the node that owns its shard. The bank (on `n0`)
//! starts every account by a first message (an ask of its balance, many at a time) through
//! an [`EntityRef`], then keeps asking random accounts to transfer to random others; an
//! account deposits at another through an [`EntityRef`] too, from whichever node it runs on
//! (each process keeps one per account it has sent to). The snapshots, their audit and the
//! checkpoints are the bank's own; the restore puts each account on its shard's owner among
//! the nodes it is restored onto ([`Sharding::placement`]).
//!
//! With `--passivate-after`, idle accounts hand their state to their shard's keeper; the audit
//! then also counts the states kept there and the deposits waiting there or in flight to it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use amber::Cluster;
use amber::cluster::{EntityRef, KeeperMsg, Placement, ShardKeeper, Sharding, ShardingConfig};
use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::EACH;

/// The registered type name of shard keepers (`amber::cluster::ShardKeeper`).
const KEEPER_TYPE: &str = "amber.sharding.Keeper";
/// Asks the bank keeps in flight while it starts the accounts and while it runs.
const IN_FLIGHT: usize = 256;

/// A bank account addressed by its key, `acct-<i>`: started on its first message, on the
/// node that owns its shard.
#[derive(ActorState, Debug, Default)]
#[amber(name = "bank.ShardedAccount")]
pub(crate) struct ShardedAccount {
    balance: u64,
    /// Deposits received so far (for the throughput figure).
    received: u64,
}

#[amber::actor]
impl ShardedAccount {
    /// Money arriving: the only message that carries money.
    fn deposit(&mut self, amount: u64) {
        self.balance += amount;
        self.received += 1;
    }

    /// Withdraws up to `amount` and deposits it at account `to`, through its entity ref.
    async fn transfer(&mut self, to: u32, amount: u64) {
        let amount = amount.min(self.balance);
        let Some(to) = entity(to) else { return };
        if amount == 0 {
            return;
        }
        self.balance -= amount;
        if let Err(e) = to.tell(ShardedAccountMsg::Deposit { amount }).await {
            tracing::warn!(to = to.key(), error = %e.error, "deposit not sent: the money stays");
            self.balance += amount;
        }
    }

    fn balance(&mut self) -> u64 {
        self.balance
    }
}

/// The key of account `i`.
pub(crate) fn key(i: u32) -> String {
    format!("acct-{i}")
}

/// This process's sharding of the accounts and the entity refs its accounts deposit
/// through: set each time the process starts (or restores) its node.
struct Directory {
    sharding: Sharding<ShardedAccount>,
    refs: Mutex<HashMap<u32, EntityRef<ShardedAccount>>>,
}

static DIRECTORY: RwLock<Option<Arc<Directory>>> = RwLock::new(None);

/// Account `i`'s entity ref in this process (`None` before the sharding started).
fn entity(i: u32) -> Option<EntityRef<ShardedAccount>> {
    let directory = DIRECTORY.read().ok()?.clone()?;
    let mut refs = directory.refs.lock().ok()?;
    Some(refs.entry(i).or_insert_with(|| directory.sharding.entity(key(i))).clone())
}

/// How the accounts are sharded: the same on every node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sharded {
    /// The number of shards.
    pub(crate) shards: u32,
    /// Passivate accounts idle this long.
    pub(crate) passivate_after: Option<Duration>,
}

impl Sharded {
    /// Starts this node's sharding of the accounts (before it links to the others); the
    /// accounts this process's accounts deposit at are found through it from now on.
    pub(crate) fn start(&self, cluster: &Cluster) -> Result<Sharding<ShardedAccount>, String> {
        let mut config = ShardingConfig::new(self.shards);
        if let Some(idle) = self.passivate_after {
            config = config.passivate_after(idle);
        }
        let sharding = Sharding::start_config_with(cluster, config, |_| ShardedAccount {
            balance: EACH,
            received: 0,
        })
        .map_err(|e| format!("cannot start the sharding: {e}"))?;
        let directory = Directory { sharding: sharding.clone(), refs: Mutex::default() };
        *DIRECTORY.write().map_err(|_| "the directory lock is poisoned")? =
            Some(Arc::new(directory));
        Ok(sharding)
    }

    /// Where a restore onto `nodes` puts the checkpoint's accounts (and keepers): on their
    /// shard's owner among them.
    pub(crate) fn placement<'a>(
        &self,
        checkpoint: &Checkpoint,
        nodes: impl IntoIterator<Item = &'a str>,
    ) -> Placement {
        Sharding::<ShardedAccount>::placement(checkpoint, self.shards, nodes)
    }

    /// The flags that make a child node shard the accounts alike.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec!["--sharded".to_owned(), "--shards".to_owned(), self.shards.to_string()];
        if let Some(idle) = self.passivate_after {
            args.push("--passivate-after".to_owned());
            args.push(format!("{}ms", idle.as_millis()));
        }
        args
    }
}

/// The refs to accounts `0..n` through `sharding`.
pub(crate) fn refs(
    sharding: &Sharding<ShardedAccount>,
    n: usize,
) -> Vec<EntityRef<ShardedAccount>> {
    (0..n as u32).map(|i| sharding.entity(key(i))).collect()
}

/// Starts every account of `refs` by a first message (an ask of its balance, [`IN_FLIGHT`]
/// at a time); says how long it took, or which account did not start.
pub(crate) async fn open(refs: &[EntityRef<ShardedAccount>]) -> Result<Duration, String> {
    let started = Instant::now();
    let mut asks = futures::stream::iter(refs.iter().map(|r| async move {
        r.ask(ShardedAccountMsg::Balance).await.map_err(|e| format!("{}: {e}", r.key()))
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(reply) = asks.next().await {
        match reply? {
            ShardedAccountReply::Balance(EACH) => {}
            other => return Err(format!("a new account holds {other:?}, not {EACH}")),
        }
    }
    Ok(started.elapsed())
}

/// Transfers from outside until `stop`: asks random accounts of `refs` to pay random others,
/// [`IN_FLIGHT`] asks at a time; returns how many were made.
pub(crate) fn transfers(
    refs: Arc<Vec<EntityRef<ShardedAccount>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let n = refs.len() as u64;
        let (mut sent, mut failed, mut x) = (0u64, 0u64, 0x9E37_79B9_7F4A_7C15u64);
        let mut asks = FuturesUnordered::new();
        loop {
            while asks.len() < IN_FLIGHT && !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (from, to) = (&refs[(x % n) as usize], ((x >> 20) % n) as u32);
                let amount = 1 + (x >> 50) % 20;
                asks.push(from.ask(ShardedAccountMsg::Transfer { to, amount }));
            }
            match asks.next().await {
                Some(Ok(_)) => sent += 1,
                // An ask that fails (an account's node down, a timeout) is a transfer
                // fewer. Such a failure can come at once: yield, so that a run of them does
                // not hold this worker thread.
                Some(Err(e)) => {
                    failed += 1;
                    tracing::debug!(error = %e, "a transfer was not made");
                    tokio::task::yield_now().await;
                }
                None => break,
            }
        }
        if failed > 0 {
            tracing::info!(sent, failed, "outside transfers done");
        }
        sent
    })
}

/// The shard keepers of `checkpoint`: their states and the messages to them hold accounts'
/// states and deposits once accounts passivate.
pub(crate) fn keepers(checkpoint: &Checkpoint) -> HashSet<ActorId> {
    let actors = checkpoint.manifest.actors.iter();
    actors.filter(|a| a.type_name == KEEPER_TYPE).map(|a| a.id).collect()
}

/// What a keeper's state holds for the accounts.
pub(crate) struct Kept {
    /// The states of the accounts passivated in its shard.
    pub(crate) states: Vec<Vec<u8>>,
    /// Messages to accounts of its shard, waiting there to be sent on.
    pub(crate) messages: Vec<Vec<u8>>,
}

/// Reads a keeper's state.
pub(crate) fn keeper_state(bytes: &[u8]) -> Result<Kept, String> {
    let keeper = ShardKeeper::from_state(bytes).map_err(|e| format!("a keeper's state: {e}"))?;
    let states = keeper.kept_states().map(|(_, state)| state.to_vec()).collect();
    // Tells and asks alike: an ask waiting for its account carries its deposit too.
    let messages = keeper.waiting().map(|(_, payload, _)| payload.to_vec()).collect();
    Ok(Kept { states, messages })
}

/// What a message in flight to a keeper carries for the accounts: a passivating account's
/// state, or a deposit redirected there (anything else carries no money).
pub(crate) enum ToKeeper {
    /// An account's state on its way to be kept.
    State(Vec<u8>),
    /// A message to an account, to be sent on.
    Message(Vec<u8>),
    /// Nothing of the accounts'.
    Other,
}

/// Reads a message in flight to a keeper.
pub(crate) fn to_keeper(payload: &[u8]) -> Result<ToKeeper, String> {
    match rmp_serde::from_slice(payload) {
        Ok(KeeperMsg::Keep { state, .. }) => Ok(ToKeeper::State(state)),
        Ok(KeeperMsg::Deliver { payload, .. }) => Ok(ToKeeper::Message(payload)),
        Ok(_) => Ok(ToKeeper::Other),
        Err(e) => Err(format!("a message to a keeper: {e}")),
    }
}

/// Where the accounts were: per node, how many ran there and how many were passivated
/// there.
pub(crate) type Where = Vec<(String, usize, usize)>;

/// Where the `n` accounts were in `checkpoint`: per node, running (an actor of theirs) or
/// passivated (their state kept by a keeper there, or in flight to it); an error unless
/// there were exactly `n`, each once.
pub(crate) fn where_in(checkpoint: &Checkpoint, n: usize) -> Result<Where, String> {
    let manifest = &checkpoint.manifest;
    let mut at: Where = manifest.nodes.iter().map(|e| (e.node.clone(), 0, 0)).collect();
    let node_of: HashMap<ActorId, usize> = manifest
        .actors
        .iter()
        .filter_map(|a| Some((a.id, at.iter().position(|(node, ..)| *node == a.node)?)))
        .collect();
    let node = |id: &ActorId| node_of.get(id).copied().ok_or(format!("{id} is on no node"));
    for actor in &manifest.actors {
        if actor.type_name == ShardedAccount::TYPE_NAME {
            at[node(&actor.id)?].1 += 1;
        }
    }
    let keepers = keepers(checkpoint);
    for s in checkpoint.states.iter().filter(|s| keepers.contains(&s.id)) {
        at[node(&s.id)?].2 += keeper_state(&s.state)?.states.len();
    }
    for m in checkpoint.in_flight.messages() {
        if keepers.contains(&m.to)
            && let ToKeeper::State(_) = to_keeper(m.payload)?
        {
            at[node(&m.to)?].2 += 1;
        }
    }
    let found: usize = at.iter().map(|(_, live, passivated)| live + passivated).sum();
    if found != n {
        return Err(format!("{} holds {found} accounts, not {n}", manifest.id));
    }
    Ok(at)
}

/// What the sharded bank reports besides the bank's figures.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// The number of shards.
    pub(crate) shards: u32,
    /// How long starting every account (by a first message) took, in milliseconds.
    pub(crate) open_ms: f64,
    /// Where the accounts were at the end of the run before the restore.
    pub(crate) before: Where,
    /// Where they were at the end of the run after it.
    pub(crate) after: Where,
}

impl Figures {
    /// The figures as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        let nodes = |w: &Where| {
            w.iter()
                .map(|(node, live, passivated)| {
                    serde_json::json!({"node": node, "live": live, "passivated": passivated})
                })
                .collect::<Vec<_>>()
        };
        serde_json::json!({
            "shards": self.shards,
            "open_ms": self.open_ms,
            "before_restore": nodes(&self.before),
            "after_restore": nodes(&self.after),
        })
    }

    /// The figures as lines of the summary.
    pub(crate) fn print(&self, accounts: usize) {
        let rate = accounts as f64 / (self.open_ms / 1e3).max(1e-9);
        println!(
            "sharded: {} shards; starting the {accounts} accounts by a first message took {:.0} ms ({rate:.0} accounts/s)",
            self.shards, self.open_ms
        );
        println!(
            "         (a transfer is one deposit from account to account: deposits/s are transfers/s)"
        );
        for (label, w) in [("before restore:", &self.before), ("after restore: ", &self.after)] {
            let nodes: Vec<String> = w
                .iter()
                .map(|(node, live, passivated)| {
                    format!("{node} {live} live + {passivated} passivated")
                })
                .collect();
            println!("{label} accounts per node: {}", nodes.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_to_a_keeper_read_as_what_they_carry_for_the_accounts() {
        let state = amber::encode(&7u64).unwrap();
        let keep = KeeperMsg::Keep { key: key(3), version: 1, state: state.clone() };
        let deposit = amber::encode(&ShardedAccountMsg::Deposit { amount: 5 }).unwrap();
        let deliver = KeeperMsg::Deliver { key: key(3), payload: deposit.clone() };
        let keys = KeeperMsg::Keys;
        let read = |m: &KeeperMsg| to_keeper(&amber::encode(m).unwrap()).unwrap();
        assert!(matches!(read(&keep), ToKeeper::State(s) if s == state));
        assert!(matches!(read(&deliver), ToKeeper::Message(p) if p == deposit));
        assert!(matches!(read(&keys), ToKeeper::Other));
        assert!(to_keeper(b"\xc1").is_err(), "not MessagePack: an error, not a panic");
        assert!(keeper_state(b"\xc1").is_err());
    }
}
