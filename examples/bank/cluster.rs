//! `--nodes K`: the bank across K operating-system processes on 127.0.0.1.
//!
//! This process is node `n0`: it starts the other nodes as child processes of the same
//! program (`--node-child NAME --join ADDR`, the shared secret in an environment variable),
//! drives them over their stdin/stdout with one-line commands, spreads the accounts over all
//! nodes (`Cluster::spawn_on`), and takes the snapshots: each one spans every node, and the
//! audit checks the whole bank. Then it restores the latest checkpoint onto the nodes (all of
//! them, or with `--kill-node` the survivors after killing the last node's process) and runs
//! on.
//!
//! With `--sharded` the accounts are sharded entities instead (`sharded.rs`): every node
//! starts its sharding of them before it links to the others, n0 starts the accounts by a
//! first message through entity refs, and the restore puts each on its shard's owner among
//! the nodes restored onto. `--restore-nodes K` restores onto the first K nodes only (the
//! others stop), so that the shards spread over fewer processes than they ran on.
//!
//! Child protocol, one line each way: the child prints `addr A` once it listens; `peers N
//! A...` makes it link to those addresses and print `meshed` once N nodes introduced
//! themselves; `restore DIR NODE...` makes it drop its system, restore its share of the
//! latest checkpoint in DIR placed over NODE... and print `addr A`; `resume` starts the
//! restored actors and prints `resumed`; `exit` (or end of input) stops it.

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use amber::cluster::{EntityRef, Placement, Sharding};
use amber::prelude::*;
use amber::snapshot::{ActorId, Checkpoint, CheckpointStore, Store};
use amber::{Cluster, NodeId, SystemBuilder, TransportConfig};
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

/// Waits until `cluster` has `n` introduced peers.
async fn introduced(cluster: &Cluster, n: usize) -> Fallible<()> {
    step("waiting for the other nodes", async {
        while cluster.nodes().len() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
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
pub(crate) async fn child(name: String, join: SocketAddr, mode: Option<Sharded>) -> ExitCode {
    match child_inner(&name, join, mode).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank node {name}: {e}");
            ExitCode::from(1)
        }
    }
}

async fn child_inner(name: &str, join: SocketAddr, mode: Option<Sharded>) -> Fallible<()> {
    let secret = std::env::var(SECRET_ENV).map_err(|_| format!("{SECRET_ENV} is not set"))?;
    let mut cluster = Cluster::start(builder(), config(name, secret.as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    // This process's accounts find the others through the sharding from now on.
    start_sharding(&cluster, mode)?;
    step("joining", async { cluster.connect(join).await.map_err(|e| e.to_string()) }).await?;
    println!("addr {}", cluster.local_addr());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("peers") => {
                let n: usize = words.next().and_then(|n| n.parse().ok()).ok_or("peers N")?;
                for addr in words {
                    let addr: SocketAddr =
                        addr.parse().map_err(|_| format!("bad address {addr}"))?;
                    step("linking", async {
                        cluster.connect(addr).await.map_err(|e| e.to_string())
                    })
                    .await?;
                }
                introduced(&cluster, n).await?;
                println!("meshed");
            }
            Some("restore") => {
                let dir = words.next().ok_or("restore DIR NODE...")?;
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
                println!("addr {}", cluster.local_addr());
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
    async fn spawn(
        name: String,
        join: SocketAddr,
        secret: &str,
        mode: Option<Sharded>,
    ) -> Fallible<(Node, SocketAddr)> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut process = Command::new(exe)
            .args(["--node-child", &name, "--join", &join.to_string()])
            .args(mode.map(|m| m.args()).unwrap_or_default())
            .env(SECRET_ENV, secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start node {name}: {e}"))?;
        let stdin = process.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(process.stdout.take().ok_or("no stdout")?).lines();
        let mut node = Node { name, process, stdin, stdout };
        let addr = node.addr().await?;
        Ok((node, addr))
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

    async fn addr(&mut self) -> Fallible<SocketAddr> {
        let addr = self.expect("addr").await?;
        addr.parse().map_err(|_| format!("node {}: bad address {addr}", self.name))
    }

    /// Tells the node to exit, and waits for it to (at most a step).
    async fn exit(mut self) {
        let _ = self.send("exit").await;
        let _ = tokio::time::timeout(STEP, self.process.wait()).await;
    }
}

/// Links every node to every other: `me` at `my_addr`, the children at theirs.
async fn mesh(me: &Cluster, my_addr: SocketAddr, nodes: &mut [(Node, SocketAddr)]) -> Fallible<()> {
    let all: Vec<SocketAddr> =
        std::iter::once(my_addr).chain(nodes.iter().map(|(_, a)| *a)).collect();
    for (node, addr) in nodes.iter_mut() {
        let others: Vec<String> =
            all.iter().filter(|a| *a != addr).map(ToString::to_string).collect();
        node.send(&format!("peers {} {}", all.len() - 1, others.join(" "))).await?;
    }
    for (node, _) in nodes.iter_mut() {
        node.expect("meshed").await?;
    }
    introduced(me, nodes.len()).await
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
    let mut nodes = Vec::new();
    for i in 1..k {
        nodes.push(Node::spawn(format!("n{i}"), me.local_addr(), &secret, mode).await?);
    }
    mesh(&me, me.local_addr(), &mut nodes).await?;
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
        let (mut node, _) = nodes.pop().ok_or("--kill-node needs --nodes 2 or more")?;
        node.process.kill().await.map_err(|e| e.to_string())?;
        let gone = NodeId::from(node.name.as_str());
        step("noticing the dead node", async {
            while me.nodes().contains(&gone) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(())
        })
        .await?;
        Some(node.name)
    } else {
        None
    };
    me.shutdown().await;
    drop(me);

    drop(mine);
    // --restore-nodes K: the nodes past the first K stop.
    if let Some(keep) = options.restore_nodes {
        for (node, _) in nodes.split_off(keep.saturating_sub(1).min(nodes.len())) {
            node.exit().await;
        }
    }

    let t = Instant::now();
    let checkpoint = latest(dir)?;
    let survivors: Vec<String> =
        std::iter::once("n0".to_owned()).chain(nodes.iter().map(|(n, _)| n.name.clone())).collect();
    for (node, addr) in &mut nodes {
        node.send(&format!("restore {dir} {}", survivors.join(" "))).await?;
        *addr = node.addr().await?;
    }
    let survivors: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let placement = placement(&checkpoint, mode, &survivors);
    let me = Cluster::restore(builder(), config("n0", secret.as_bytes()), &checkpoint, &placement)
        .await
        .map_err(|e| e.to_string())?;
    let mine = start_sharding(&me, mode)?;
    mesh(&me, me.local_addr(), &mut nodes).await?;
    for (node, _) in &mut nodes {
        node.send("resume").await?;
    }
    me.resume(STEP).await.map_err(|e| e.to_string())?;
    for (node, _) in &mut nodes {
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
    for (node, _) in nodes {
        node.exit().await;
    }
    Ok(Summary {
        accounts: n,
        total,
        nodes: k,
        restored_nodes: survivors.len(),
        sharded: figures,
        killed_node: killed,
        first,
        second,
        restore_ms,
        restored_from: Some(checkpoint.manifest.id),
    })
}
