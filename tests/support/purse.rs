//! Sharded purses, shared by the sharding passivation tests: an entity that holds a
//! balance and checks each sender's numbering (the order its messages arrived in); and the
//! nodes, shardings and lookups those tests start from.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use amber::cluster::{KeeperMsg, ShardKeeper, Sharding, ShardingConfig};
use amber::prelude::*;
use amber::snapshot::Checkpoint;
use amber::{ActorState, Cluster, StateError, SystemBuilder};

use super::bounded;
use super::cluster::config;

/// A sharded purse: a balance, moved between purses by `Give`, and a check of each
/// sender's numbering.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Purse {
    key: String,
    balance: u64,
    last: BTreeMap<u32, u64>,
    violations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PurseMsg {
    /// Message `n` (from 1) of `sender`.
    Push {
        sender: u32,
        n: u64,
    },
    /// Move `amount` (if held) to the purse `to`, through the sharding of this node.
    Give {
        to: String,
        amount: u64,
    },
    /// Money from another purse.
    Deposit {
        amount: u64,
    },
    Report,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurseReport {
    pub key: String,
    pub balance: u64,
    pub last: BTreeMap<u32, u64>,
    pub violations: Vec<String>,
}

/// Each node's sharding of purses, by node name, for purses to reach each other by key.
pub static SHARDINGS: LazyLock<Mutex<HashMap<String, Sharding<Purse>>>> =
    LazyLock::new(Mutex::default);

impl Actor for Purse {
    type Msg = PurseMsg;
    type Reply = PurseReport;

    async fn handle(&mut self, msg: PurseMsg, ctx: &mut Context<Self>) -> PurseReport {
        match msg {
            PurseMsg::Push { sender, n } => {
                let last = self.last.entry(sender).or_insert(0);
                if n != *last + 1 && self.violations.len() < 10 {
                    self.violations.push(format!("sender {sender}: got {n} after {last}"));
                }
                *last = n;
            }
            PurseMsg::Give { to, amount } => {
                if self.balance >= amount && to != self.key {
                    let node = ctx.system().node().to_owned();
                    let sharding = SHARDINGS.lock().unwrap().get(&node).cloned();
                    let sharding = sharding.expect("the node's sharding is registered");
                    self.balance -= amount;
                    // Sent as this purse: tagged with its epoch, like any actor's message.
                    if let Err(e) = sharding.entity(to).tell(PurseMsg::Deposit { amount }).await {
                        panic!("a deposit was not sent: {e}");
                    }
                }
            }
            PurseMsg::Deposit { amount } => self.balance += amount,
            PurseMsg::Report => {}
        }
        PurseReport {
            key: self.key.clone(),
            balance: self.balance,
            last: self.last.clone(),
            violations: self.violations.clone(),
        }
    }
}

impl ActorState for Purse {
    const TYPE_NAME: &'static str = "test.Purse";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(self)
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        super::current_version::<Self>(version)?;
        Ok(system.decode(bytes)?)
    }
}

pub fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Purse>()
}

pub const SHARDS: u32 = 16;

/// A node whose links survive a loaded machine's pauses (a heartbeat timeout would drop
/// them, and fail the asks on them, in tests that are not about links).
pub async fn linked_node(name: &str) -> Cluster {
    let config = config(name).with_heartbeat(Duration::from_millis(100), Duration::from_secs(10));
    bounded(Cluster::start(builder(), config)).await.expect("node starts")
}

/// Passivation on, with an idle timeout long enough never to pass in a test: entities
/// passivate when the test says so ([`Sharding::passivate`]).
pub fn by_hand() -> ShardingConfig {
    ShardingConfig::new(SHARDS).passivate_after(Duration::from_secs(3600))
}

/// Purses start with `each` from the factory.
pub fn purses(n: &Cluster, config: ShardingConfig, each: u64) -> Sharding<Purse> {
    let sharding = Sharding::<Purse>::start_config_with(n, config, move |key| Purse {
        key: key.to_owned(),
        balance: each,
        ..Purse::default()
    })
    .expect("sharding starts");
    SHARDINGS.lock().unwrap().insert(n.node().to_string(), sharding.clone());
    sharding
}

pub async fn report(sharding: &Sharding<Purse>, key: &str) -> PurseReport {
    bounded(sharding.entity(key.to_owned()).ask(PurseMsg::Report)).await.expect("report")
}

/// A key whose shard `on` owns, as `sharding` sees the nodes (the `n`th such, from `from`).
pub fn key_owned_by(sharding: &Sharding<Purse>, on: &Cluster, prefix: &str) -> String {
    (0..)
        .map(|k| format!("{prefix} {k}"))
        .find(|k| sharding.owner_of(sharding.shard_of(k)).is_some_and(|o| o == *on.node()))
        .unwrap()
}

/// Two meshed nodes, x and y, with purses sharded over both as `config` says.
pub async fn pair(
    names: [&str; 2],
    config: impl Fn() -> ShardingConfig,
) -> [(Cluster, Sharding<Purse>); 2] {
    let x = linked_node(names[0]).await;
    let y = linked_node(names[1]).await;
    let (on_x, on_y) = (purses(&x, config(), 100), purses(&y, config(), 100));
    super::cluster::mesh(&[x.clone(), y.clone()]).await;
    [(x, on_x), (y, on_y)]
}

/// Waits (on the event, not for a time) until `key` is kept by `sharding`'s node.
pub async fn until_passivated(sharding: &Sharding<Purse>, key: &str) {
    bounded(async {
        while !sharding.passivated_keys().await.iter().any(|k| k == key) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// Restores `checkpoint` (purses over `shards` shards, started with `each`) onto one new
/// node named `name`, resumes it, and waits until the purses named by `keys` hold `money`
/// between them: what was on its way at the cut (recorded in flight, or waiting in a
/// keeper) lands in its own time, and the sum never exceeds `money` meanwhile.
pub async fn restore_until_settled(
    checkpoint: &Checkpoint,
    (shards, each): (u32, u64),
    name: &str,
    keys: &[String],
    money: u64,
) {
    let placement = Sharding::<Purse>::placement(checkpoint, shards, [name]);
    let restored = bounded(Cluster::restore(builder(), config(name), checkpoint, &placement))
        .await
        .expect("restore");
    let sharding = purses(&restored, by_hand(), each);
    bounded(restored.resume(Duration::from_secs(10))).await.expect("resume");
    bounded(async {
        loop {
            let mut sum = 0;
            for key in keys {
                sum += report(&sharding, key).await.balance;
            }
            assert!(sum <= money, "restored: more money than the checkpoint held: {sum} > {money}");
            if sum == money {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    restored.shutdown().await;
}

/// Asserts that every purse of `keys` (asked through `sharding`) got all `count` messages
/// of each of its first `senders` senders, once and in each sender's order.
pub async fn every_sender_in_order(
    sharding: &Sharding<Purse>,
    keys: &[String],
    (senders, count): (u32, u64),
    context: &str,
) {
    for key in keys {
        let r = report(sharding, key).await;
        assert!(r.violations.is_empty(), "{context}, {key}: {:?}", r.violations);
        for s in 0..senders {
            assert_eq!(r.last.get(&s), Some(&count), "{context}, {key}: sender {s}");
        }
    }
}

/// What a checkpoint of purses holds (their keepers are the only other actors).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurseAudit {
    /// All the money: running purses' balances, kept states (in keepers, or in flight to
    /// them), and deposits waiting in keepers or recorded in flight (as tells or asks).
    pub money: u64,
    /// The money that has landed: running purses' balances and kept states in keepers.
    pub landed: u64,
    /// Kept states (in keepers, or in flight to them).
    pub kept: usize,
    /// Messages redirected to keepers (sent to a purse that had passivated): waiting in a
    /// keeper's state, or recorded in flight to a keeper.
    pub redirected: usize,
    /// Of those, asks.
    pub asks: usize,
}

/// Audits a checkpoint of purses (see [`PurseAudit`]): keepers are read through their
/// public view ([`ShardKeeper::from_state`]), messages to them as [`KeeperMsg`]s.
pub fn audit_purses(checkpoint: &Checkpoint) -> PurseAudit {
    #[derive(Deserialize)]
    struct Balance {
        balance: u64,
    }
    let balance = |bytes: &[u8]| amber::decode::<Balance>(bytes).expect("purse").balance;
    let deposit = |bytes: &[u8]| match amber::decode::<PurseMsg>(bytes) {
        Ok(PurseMsg::Deposit { amount }) => amount,
        _ => 0,
    };
    let mut audit = PurseAudit::default();
    for actor in &checkpoint.manifest.actors {
        let state = &checkpoint.states.iter().find(|s| s.id == actor.id).expect("state").state;
        match actor.type_name.as_str() {
            "test.Purse" => audit.landed += balance(state),
            "amber.sharding.Keeper" => {
                let keeper = ShardKeeper::from_state(state).expect("keeper");
                for (_, kept) in keeper.kept_states() {
                    audit.kept += 1;
                    audit.landed += balance(kept);
                }
                for (_, payload, ask) in keeper.waiting() {
                    audit.redirected += 1;
                    audit.asks += usize::from(ask);
                    audit.money += deposit(payload);
                }
            }
            other => panic!("an actor of type {other}"),
        }
    }
    audit.money += audit.landed;
    for m in &checkpoint.in_flight {
        match amber::decode::<KeeperMsg>(&m.payload) {
            Ok(KeeperMsg::Keep { state, .. }) => {
                audit.money += balance(&state);
                audit.kept += 1;
            }
            Ok(KeeperMsg::Deliver { payload, ask, .. }) => {
                audit.money += deposit(&payload);
                audit.redirected += 1;
                audit.asks += usize::from(ask.is_some());
            }
            Ok(_) => {}
            // Not to a keeper: to a purse.
            Err(_) => audit.money += deposit(&m.payload),
        }
    }
    audit
}

/// What a checkpoint holds of the purses' money, and how many redirected asks it holds
/// (waiting in a keeper, or recorded in flight to one): see [`audit_purses`].
pub fn money_and_asks(checkpoint: &Checkpoint) -> (u64, usize) {
    let audit = audit_purses(checkpoint);
    (audit.money, audit.asks)
}
