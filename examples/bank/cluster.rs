//! `--nodes K`: the bank across K operating-system processes on 127.0.0.1.
//!
//! This process is node `n0`: it starts the other nodes as child processes of the same
//! program (`--node-child NAME --join ADDR --nodes K`, the shared secret in an environment
//! variable), drives them over their stdin/stdout with one-line commands, spreads the
//! accounts over all nodes (`Cluster::spawn_on`), and takes the snapshots: each one spans
//! every node, and the audit checks the whole bank. Then it restores the latest checkpoint
//! onto the nodes (all of them, or with `--kill-node` the survivors after killing the last
//! node's process) and runs on.
//!
//! The cluster forms by itself: n0 joins a membership of its own (`Cluster::join_membership`),
//! and each child is given only n0's address as its seed; the membership tells every node of
//! every other, and they link to each other by themselves. n0 waits on its membership's
//! watch for all K members up and linked, and each child on its own, before it says so.
//!
//! With `--sharded` the accounts are sharded entities instead (`sharded.rs`): every node
//! starts its sharding of them before it joins the others, n0 starts the accounts by a
//! first message through entity refs, and the restore puts each on its shard's owner among
//! the nodes restored onto. `--restore-nodes K` restores onto the first K nodes only (the
//! others stop), so that the shards spread over fewer processes than they ran on.
//!
//! Child protocol, one line each way: the child prints `formed` once its membership shows
//! all K nodes up and linked; `restore DIR SEED NODE...` makes it drop its system, restore
//! its share of the latest checkpoint in DIR placed over NODE..., join the restored
//! cluster through the seed address SEED (n0's, restored first) and print `restored`;
//! `resume` starts the restored actors once every node of the restore linked to it and
//! prints `resumed`; `exit` (or end of input) stops it.

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use amber::cluster::{EntityRef, Member, Placement, Sharding};
use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint, CheckpointStore, Store};
use amber::{Cluster, MembershipConfig, NodeId, SystemBuilder, TransportConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::sharded::{self, Sharded, ShardedAccount};
use super::{
    Account, Books, EACH, Options, Progress, Summary, link_and_start, outside_transfers, run_phase,
};

const SECRET_ENV: &str = "AMBER_BANK_SECRET";
/// How long any one step of the choreography may take before the demo gives up.
const STEP: Duration = Duration::from_secs(20);

type Fallible<T> = Result<T, String>;

fn config(name: &str, secret: &[u8]) -> TransportConfig {
    let addr = "127.0.0.1:0".parse().expect("a socket address");
    TransportConfig::new(name, addr, secret.to_vec())
        .with_heartbeat(Duration::from_millis(200), Duration::from_secs(2))
}

/// How the nodes find each other: through `seeds` (none for n0), with a failure detector
/// lenient enough for processes whose every worker is busy moving money (a member answers
/// a probe within half a second, and has five to refute a suspicion).
fn membership(seeds: impl IntoIterator<Item = SocketAddr>) -> MembershipConfig {
    let ms = Duration::from_millis;
    MembershipConfig::new(seeds)
        .with_failure_detector(ms(1_000), ms(500), ms(5_000))
        .with_gossip_interval(ms(100))
}

fn builder() -> SystemBuilder {
    // Accounts keep pumping themselves: unbounded mailboxes, as in the one-node bank. And
    // short turns: every account always has work, and the links' tasks (which carry the
    // deposits between nodes, and the snapshots' messages) would otherwise wait for a turn of
    // up to ~128 messages of each of a node's 1,000 accounts before they run again.
    ActorSystem::builder()
        .name("bank")
        .register::<Account>()
        .register::<ShardedAccount>()
        .mailbox_capacity(MailboxCapacity::Unbounded)
        .messages_per_turn(16)
}

async fn step<T>(what: &str, fut: impl Future<Output = Fallible<T>>) -> Fallible<T> {
    tokio::time::timeout(STEP, fut).await.map_err(|_| format!("{what}: no progress in {STEP:?}"))?
}

/// [`step`] for what takes long with many accounts (starting them all): ten steps.
async fn step_long<T>(what: &str, fut: impl Future<Output = Fallible<T>>) -> Fallible<T> {
    let most = STEP * 10;
    tokio::time::timeout(most, fut).await.map_err(|_| format!("{what}: not done in {most:?}"))?
}

/// Joins the membership of `seeds` with `cluster` (started, its sharding too, if any).
async fn join(cluster: &Cluster, seeds: impl IntoIterator<Item = SocketAddr>) -> Fallible<()> {
    let joined = cluster.join_membership(membership(seeds));
    step("joining", async { joined.await.map_err(|e| e.to_string()) }).await
}

/// Waits on `cluster`'s membership until it shows `k` members (itself included) up and
/// linked to it.
async fn formed(cluster: &Cluster, k: usize) -> Fallible<()> {
    let mut members = cluster.members_watch();
    step(&format!("waiting for {k} members up and linked"), async {
        let formed = |m: &[Member]| m.iter().filter(|m| m.status.is_up() && m.linked).count() >= k;
        members.wait_for(|m| formed(m)).await.map_err(|_| "the membership stopped")?;
        Ok(())
    })
    .await
}

/// Waits on `cluster`'s membership until `node` is no longer linked to it.
async fn unlinked(cluster: &Cluster, node: &NodeId) -> Fallible<()> {
    let mut members = cluster.members_watch();
    step(&format!("noticing that {node} is gone"), async {
        let gone = |m: &[Member]| !m.iter().any(|m| m.node == *node && m.linked);
        members.wait_for(|m| gone(m)).await.map_err(|_| "the membership stopped")?;
        Ok(())
    })
    .await
}

fn latest(dir: &str) -> Fallible<Checkpoint> {
    let store = Store::open_existing(dir).map_err(|e| e.to_string())?;
    let latest = store.latest_valid().map_err(|e| e.to_string())?;
    latest.checkpoint.ok_or_else(|| format!("no checkpoint in {dir}"))
}

/// The sharding of the accounts on a node (with `--sharded`).
type Accounts = Option<Sharding<ShardedAccount>>;

/// Starts the sharding of the accounts on `cluster` if they are sharded.
fn start_sharding(cluster: &Cluster, mode: Option<Sharded>) -> Fallible<Accounts> {
    mode.map(|m| m.start(cluster)).transpose()
}

/// Where a restore onto `nodes` puts the checkpoint's actors.
fn placement(checkpoint: &Checkpoint, mode: Option<Sharded>, nodes: &[&str]) -> Placement {
    match mode {
        Some(m) => m.placement(checkpoint, nodes.iter().copied()),
        None => Placement::spread(nodes.iter().copied()),
    }
}

/// A node started by `--nodes`: serves its share of the bank until told to exit.
pub(crate) async fn child(
    name: String,
    seed: SocketAddr,
    k: usize,
    mode: Option<Sharded>,
) -> ExitCode {
    match child_inner(&name, seed, k, mode).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank node {name}: {e}");
            ExitCode::from(1)
        }
    }
}

async fn child_inner(
    name: &str,
    seed: SocketAddr,
    k: usize,
    mode: Option<Sharded>,
) -> Fallible<()> {
    let secret = std::env::var(SECRET_ENV).map_err(|_| format!("{SECRET_ENV} is not set"))?;
    let mut cluster = Cluster::start(builder(), config(name, secret.as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    // This process's accounts find the others through the sharding from now on.
    start_sharding(&cluster, mode)?;
    join(&cluster, [seed]).await?;
    formed(&cluster, k).await?;
    println!("formed");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("restore") => {
                let usage = "restore DIR SEED NODE...";
                let dir = words.next().ok_or(usage)?;
                let seed = words.next().ok_or(usage)?;
                let seed: SocketAddr = seed.parse().map_err(|_| format!("bad address {seed}"))?;
                let nodes: Vec<&str> = words.collect();
                cluster.shutdown().await;
                let checkpoint = latest(dir)?;
                let placement = placement(&checkpoint, mode, &nodes);
                cluster = Cluster::restore(
                    builder(),
                    config(name, secret.as_bytes()),
                    &checkpoint,
                    &placement,
                )
                .await
                .map_err(|e| e.to_string())?;
                start_sharding(&cluster, mode)?;
                // Its sharding sees only the seed at first: it waits for the other nodes
                // of the restore before it starts any of their shards' accounts.
                join(&cluster, [seed]).await?;
                println!("restored");
            }
            Some("resume") => {
                cluster.resume(STEP).await.map_err(|e| e.to_string())?;
                println!("resumed");
            }
            Some("exit") | None => break,
            Some(other) => return Err(format!("unknown command {other:?}")),
        }
    }
    cluster.shutdown().await;
    Ok(())
}

/// One child process and its command lines.
struct Node {
    name: String,
    process: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Node {
    /// Starts node `name` of `k`, joining through `seed`; it says `formed` once the
    /// cluster has.
    fn spawn(
        name: String,
        seed: SocketAddr,
        k: usize,
        secret: &str,
        mode: Option<Sharded>,
    ) -> Fallible<Node> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut process = Command::new(exe)
            .args(["--node-child", &name, "--join", &seed.to_string()])
            // --nodes cannot exceed --accounts (whose default is 1,000).
            .args(["--nodes", &k.to_string(), "--accounts", &k.max(2).to_string()])
            .args(mode.map(|m| m.args()).unwrap_or_default())
            .env(SECRET_ENV, secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start node {name}: {e}"))?;
        let stdin = process.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(process.stdout.take().ok_or("no stdout")?).lines();
        Ok(Node { name, process, stdin, stdout })
    }

    async fn send(&mut self, line: &str) -> Fallible<()> {
        let line = format!("{line}\n");
        self.stdin.write_all(line.as_bytes()).await.map_err(|e| format!("node {}: {e}", self.name))
    }

    async fn expect(&mut self, word: &str) -> Fallible<String> {
        let name = self.name.clone();
        step(&format!("node {name}: waiting for {word}"), async {
            let line = self.stdout.next_line().await.map_err(|e| e.to_string())?;
            let line = line.ok_or_else(|| format!("node {name} exited"))?;
            line.strip_prefix(word)
                .map(|rest| rest.trim().to_owned())
                .ok_or_else(|| format!("node {name} said {line:?}, expected {word}"))
        })
        .await
    }

    /// Tells the node to exit, and waits for it to (at most a step).
    async fn exit(mut self) {
        let _ = self.send("exit").await;
        let _ = tokio::time::timeout(STEP, self.process.wait()).await;
    }
}

/// Waits until the cluster of `me` and `nodes` formed: all `k` members up and linked, as
/// `me`'s membership shows them and as each node says.
async fn all_formed(me: &Cluster, k: usize, nodes: &mut [Node]) -> Fallible<()> {
    formed(me, k).await?;
    for node in nodes {
        node.expect("formed").await?;
    }
    Ok(())
}

fn secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().elapsed().map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    format!(
        "{:016x}{:016x}",
        h.finish(),
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    )
}

/// Accounts spread over every node: account `i` on node `i % K`.
async fn open_bank(me: &Cluster, k: usize, accounts: usize) -> Fallible<Vec<ActorRef<Account>>> {
    let mut refs = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let name = format!("account-{i}");
        let account = Account { balance: EACH, ..Account::default() };
        let r = match i % k {
            0 => me.system().spawn_named(name, account).map_err(|e| e.to_string())?,
            n => me
                .spawn_on(&NodeId::from(format!("n{n}")), Some(&name), account)
                .await
                .map_err(|e| e.to_string())?,
        };
        refs.push(r);
    }
    link_and_start(&refs).await?;
    Ok(refs)
}

/// The bank's accounts, as the outside transfers reach them.
enum Bank {
    /// Plain actors.
    Plain(Vec<ActorRef<Account>>),
    /// Sharded entities, `acct-0` to `acct-<n - 1>`.
    Sharded(Arc<Vec<EntityRef<ShardedAccount>>>),
}

impl Bank {
    /// Starts the transfers from outside (until the flag says stop).
    fn outside(&self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
        match self {
            Bank::Plain(accounts) => outside_transfers(accounts.clone(), stop),
            Bank::Sharded(refs) => sharded::transfers(refs.clone(), stop),
        }
    }
}

/// Refs to the accounts of `checkpoint`, wherever the restore placed them.
fn accounts_of(system: &ActorSystem, checkpoint: &Checkpoint) -> Fallible<Vec<ActorRef<Account>>> {
    let ids: Vec<ActorId> = checkpoint.manifest.actors.iter().map(|a| a.id).collect();
    let bytes = system.encode(&ids).map_err(|e| e.to_string())?;
    system.decode(&bytes).map_err(|e| e.to_string())
}

/// Runs the bank over `options.nodes` processes and reports like the one-node demo.
pub(crate) async fn run(
    options: &Options,
    store: &Arc<Store>,
    dir: &str,
    progress: &Progress,
) -> Fallible<Summary> {
    let k = options.nodes;
    let mode = options
        .sharded
        .then_some(Sharded { shards: options.shards, passivate_after: options.passivate_after });
    let secret = secret();
    let me = Cluster::start(builder(), config("n0", secret.as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    let mine = start_sharding(&me, mode)?;
    join(&me, []).await?;
    let mut nodes = Vec::new();
    for i in 1..k {
        nodes.push(Node::spawn(format!("n{i}"), me.local_addr(), k, &secret, mode)?);
    }
    all_formed(&me, k, &mut nodes).await?;
    let n = options.accounts;
    let total = n as u64 * EACH;
    let books = Books { store, total, progress };
    if !options.json {
        let what = if mode.is_some() { "sharded accounts" } else { "accounts" };
        println!(
            "bank: {n} {what} over {k} processes, {total} in total; snapshot every {:?}",
            options.interval
        );
        println!("checkpoints: {dir}");
    }
    let mut figures = None;
    let bank = match (&mine, mode) {
        (Some(mine), Some(mode)) => {
            let refs = sharded::refs(mine, n);
            let took = step_long("starting the accounts", sharded::open(&refs)).await?;
            figures = Some(sharded::Figures {
                shards: mode.shards,
                open_ms: took.as_secs_f64() * 1e3,
                ..sharded::Figures::default()
            });
            Bank::Sharded(Arc::new(refs))
        }
        _ => Bank::Plain(open_bank(&me, k, n).await?),
    };
    let first_run = if options.kill_node { options.duration / 2 } else { options.duration };
    let outside = |stop| bank.outside(stop);
    let first = run_phase(me.system(), outside, books, first_run, options.interval, false).await;
    drop(bank);
    if first.snapshots == 0 {
        let why = first.failures.first().map_or("none was taken", String::as_str);
        return Err(format!("no snapshot of the running cluster completed: {why}"));
    }

    // A node dies (its process is killed), or the whole cluster is taken down; either way
    // the latest checkpoint is rehydrated onto the nodes that are left.
    let killed = if options.kill_node {
        let mut node = nodes.pop().ok_or("--kill-node needs --nodes 2 or more")?;
        node.process.kill().await.map_err(|e| e.to_string())?;
        unlinked(&me, &NodeId::from(node.name.as_str())).await?;
        Some(node.name)
    } else {
        None
    };
    me.shutdown().await;
    drop(me);

    drop(mine);
    // --restore-nodes K: the nodes past the first K stop.
    if let Some(keep) = options.restore_nodes {
        for node in nodes.split_off(keep.saturating_sub(1).min(nodes.len())) {
            node.exit().await;
        }
    }

    // n0 restores first, and is the seed the others join the restored cluster through;
    // each node's resume waits until the others linked to it.
    let t = Instant::now();
    let checkpoint = latest(dir)?;
    let survivors: Vec<String> =
        std::iter::once("n0".to_owned()).chain(nodes.iter().map(|n| n.name.clone())).collect();
    let names: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let placement = placement(&checkpoint, mode, &names);
    let me = Cluster::restore(builder(), config("n0", secret.as_bytes()), &checkpoint, &placement)
        .await
        .map_err(|e| e.to_string())?;
    let mine = start_sharding(&me, mode)?;
    join(&me, []).await?;
    for node in &mut nodes {
        node.send(&format!("restore {dir} {} {}", me.local_addr(), survivors.join(" "))).await?;
    }
    for node in &mut nodes {
        node.expect("restored").await?;
    }
    formed(&me, names.len()).await?;
    for node in &mut nodes {
        node.send("resume").await?;
    }
    me.resume(STEP).await.map_err(|e| e.to_string())?;
    for node in &mut nodes {
        node.expect("resumed").await?;
    }
    let restore_ms = t.elapsed().as_secs_f64() * 1e3;
    if let Some(figures) = &mut figures {
        figures.before = sharded::where_in(&checkpoint, n)?;
    }
    let bank = match &mine {
        Some(mine) => Bank::Sharded(Arc::new(sharded::refs(mine, n))),
        None => Bank::Plain(accounts_of(me.system(), &checkpoint)?),
    };
    let run_on = (options.duration / 2).max(options.interval * 3);
    let outside = |stop| bank.outside(stop);
    let second = run_phase(me.system(), outside, books, run_on, options.interval, false).await;
    drop(bank);
    drop(mine);
    if let Some(figures) = &mut figures {
        figures.after = sharded::where_in(&latest(dir)?, n)?;
    }

    me.shutdown().await;
    for node in nodes {
        node.exit().await;
    }
    Ok(Summary {
        accounts: n,
        total,
        nodes: k,
        restored_nodes: names.len(),
        sharded: figures,
        killed_node: killed,
        first,
        second,
        restore_ms,
        restored_from: Some(checkpoint.manifest.id),
    })
}
