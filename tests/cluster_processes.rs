//! A cluster across OS processes: this test process is node `p`; nodes `q` and `r` are child
//! processes (this same test binary, re-run as `node_process`), linked over 127.0.0.1 with
//! port 0. A bank spans the three processes; snapshots started from two of them are audited
//! to the unit; accounts move from `p` to `q` while they trade; `r` is killed (SIGKILL) in
//! the middle of a snapshot, which aborts; the previous checkpoint, written to a file, is
//! restored onto a new `p` and a new `q` process, which trade on and still add up. A second
//! test forms the three from one seed through the membership (no `connect`), kills `r` and
//! starts it again under its name: it rejoins as a new incarnation.
//!
//! A child takes one-line commands on stdin and answers on stdout with lines starting with
//! [`SAYS`]; it exits when its stdin closes (so it never outlives the test) or after
//! [`CHILD_LIFETIME`].

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber::cluster::Placement;
use amber::prelude::*;
use amber::snapshot::{CheckpointStore, FsStore};
use amber::{AskError, Cluster, MembershipConfig, SystemBuilder};
use support::bank::{Account, AccountMsg, audit, outside_load};
use support::bounded;
use support::cluster::{config, in_flight_between_nodes, node};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PER_NODE: usize = 30;
const EACH: u64 = 1_000;
const TOTAL: u64 = 3 * PER_NODE as u64 * EACH;

/// The child's node name; set only in a child.
const NODE_ENV: &str = "AMBER_TEST_NODE";
/// `<checkpoint file>;<node>,<node>,…`: the child restores its share of that checkpoint
/// under `Placement::spread` of those nodes instead of starting empty.
const RESTORE_ENV: &str = "AMBER_TEST_RESTORE";
/// The address of the seed a child joins the cluster through (its membership forms the
/// cluster: no `connect`).
const SEED_ENV: &str = "AMBER_TEST_SEED";
/// What a child's answers start with (the test harness prints lines of its own too).
const SAYS: &str = "amber-node: ";
/// A child left alone exits after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Account>().register::<Watcher>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_across_three_processes_snapshots_exactly_and_survives_a_killed_node() {
    // Three processes: p here, q and r children; every pair linked.
    let mut q = NodeProcess::start("q", None).await;
    let mut r = NodeProcess::start("r", None).await;
    let p = node("p", builder()).await;
    let (to_q, to_r) = (
        bounded(p.connect(q.addr)).await.expect("p links to q"),
        bounded(p.connect(r.addr)).await.expect("p links to r"),
    );
    assert_eq!(q.ask(&format!("connect {}", r.addr)).await, "connected r");
    assert_eq!(q.ask("peers 2").await, "peers 2");
    assert_eq!(r.ask("peers 2").await, "peers 2");

    // Accounts: spawned on each node from p (the children register the type), every
    // account linked to every other across the three processes.
    let mut all: Vec<ActorRef<Account>> = Vec::new();
    for k in 0..PER_NODE {
        all.push(p.system().spawn(Account::new(EACH, k as u64 * 7919 + 1)).unwrap());
    }
    for (n, to) in [&to_q, &to_r].into_iter().enumerate() {
        for k in 0..PER_NODE {
            let seed = ((n + 1) * 1000 + k) as u64 * 7919 + 1;
            let account = bounded(p.spawn_on(to, None, Account::new(EACH, seed))).await;
            all.push(account.expect("spawn an account in a child process"));
        }
    }
    for account in &all {
        account.tell(AccountMsg::SetPeers(all.clone())).await.unwrap();
    }
    // An ask crosses the process boundary and comes back.
    let remote = &all[PER_NODE];
    assert_eq!(bounded(remote.ask(AccountMsg::Balance)).await.unwrap(), EACH);

    let stop = Arc::new(AtomicBool::new(false));
    let load = outside_load(all.clone(), 31, 6, true, stop.clone());

    // Snapshots from p and from q span the three processes and add up exactly.
    let mut good = None;
    let (mut cross_process_in_flight, mut round) = (0, 0);
    while round < 12 || (cross_process_in_flight == 0 && round < 2000) {
        round += 1;
        if round % 4 == 0 {
            assert_eq!(q.ask("snapshot").await, format!("snapshot {TOTAL} 3 {}", 3 * PER_NODE));
            continue;
        }
        let checkpoint = bounded(p.system().snapshot()).await.expect("snapshot from p");
        let mut names: Vec<&str> =
            checkpoint.manifest.nodes.iter().map(|n| n.node.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["p", "q", "r"], "round {round}");
        assert_eq!(checkpoint.manifest.actors.len(), 3 * PER_NODE, "round {round}");
        assert_eq!(audit(&checkpoint).total(), TOTAL, "round {round}: {:?}", audit(&checkpoint));
        cross_process_in_flight += in_flight_between_nodes(&checkpoint);
        good = Some(checkpoint);
    }
    assert!(cross_process_in_flight > 0, "a snapshot caught money between processes");

    // Accounts of p move to q's process while they trade; refs held anywhere keep working
    // and snapshots still add up, with the moved accounts recorded on q.
    let moved: Vec<_> = all[..4].iter().map(|a| a.id()).collect();
    for id in &moved {
        bounded(p.migrate(*id, &to_q)).await.expect("move an account to q");
    }
    for round in 0..3 {
        let checkpoint = bounded(p.system().snapshot()).await.expect("snapshot after moves");
        assert_eq!(audit(&checkpoint).total(), TOTAL, "round {round} after moves");
        for id in &moved {
            let entry = checkpoint.manifest.actors.iter().find(|a| a.id == *id).unwrap();
            assert_eq!(entry.node, "q");
        }
        good = Some(checkpoint);
    }
    assert_eq!(bounded(all[0].ask(AccountMsg::Balance)).await.map(|_| ()), Ok(()));
    let good = good.unwrap();

    // r holds a snapshot back (an actor there is stuck in a handler, so it cannot cut);
    // once r is inside it, r's process is killed. The snapshot aborts naming r, and asks
    // to r's accounts fail as NodeDown instead of hanging.
    assert_eq!(r.ask("stall").await, "stalled");
    let snapshot = {
        let system = p.system().clone();
        tokio::spawn(async move { system.snapshot().await })
    };
    assert_eq!(r.ask("await-snapshot").await, "snapshot-running");
    r.kill().await;
    let result = bounded(snapshot).await.unwrap();
    assert!(support::cluster::aborted_by_loss_of(&result, "r"), "{result:?}");
    let on_r = &all[2 * PER_NODE];
    assert!(
        matches!(bounded(on_r.ask(AccountMsg::Balance)).await, Err(AskError::NodeDown(n)) if n == "r")
    );
    stop.store(true, Ordering::Relaxed);
    assert!(bounded(load).await.unwrap() > 0, "the outside load ran");

    // The last good checkpoint goes to a file; p and q stop; a new p (here) and a new q
    // process restore it onto two nodes: r's accounts are spread over both.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap().with_durability(false);
    store.save(&good).unwrap();
    let file = store.path_of(good.manifest.id);
    bounded(p.shutdown()).await;
    q.exit().await;

    let mut q = NodeProcess::start("q", Some((file, "p,q"))).await;
    let placement = Placement::spread(["p", "q"]);
    let p = bounded(Cluster::restore(builder(), config("p"), &good, &placement)).await.unwrap();
    bounded(p.connect(q.addr)).await.expect("the new p links to the new q");
    let (resumed, answer) = tokio::join!(p.resume(Duration::from_secs(10)), q.ask("resume"));
    resumed.expect("p resumes");
    assert_eq!(answer, "resumed");
    let on_q: usize = q.ask("count").await.strip_prefix("count ").unwrap().parse().unwrap();
    assert_eq!(p.system().actor_count() + on_q, 3 * PER_NODE);
    assert!(on_q >= PER_NODE + PER_NODE / 2 - 1, "r's accounts spread: {on_q} on q");

    let local: Vec<ActorRef<Account>> =
        good.manifest.actors.iter().filter_map(|a| p.system().lookup_id(a.id).ok()).collect();
    assert_eq!(local.len(), p.system().actor_count());
    let stop = Arc::new(AtomicBool::new(false));
    let load = outside_load(local, 57, 6, true, stop.clone());
    for round in 0..6 {
        if round % 3 == 2 {
            assert_eq!(q.ask("snapshot").await, format!("snapshot {TOTAL} 2 {}", 3 * PER_NODE));
            continue;
        }
        let checkpoint = bounded(p.system().snapshot()).await.expect("snapshot after restore");
        assert!(checkpoint.manifest.epoch > good.manifest.epoch);
        assert_eq!(checkpoint.manifest.nodes.len(), 2);
        assert_eq!(audit(&checkpoint).total(), TOTAL, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(bounded(load).await.unwrap() > 0);
    q.exit().await;
    bounded(p.shutdown()).await;
}

/// Membership fast enough to see a killed process down within a few seconds, lenient
/// enough that a loaded machine does not declare a live one down.
fn seeded(seeds: &[SocketAddr]) -> MembershipConfig {
    let ms = Duration::from_millis;
    MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(300), ms(150), ms(2000))
        .with_gossip_interval(ms(50))
}

/// Waits until `node` sees `n` members, all alive and linked.
async fn formed(node: &Cluster, n: usize) {
    let formed = |m: &[amber::cluster::Member]| {
        m.len() == n
            && m.iter().all(|m| m.linked && m.status == amber::cluster::MemberStatus::Alive)
    };
    bounded(node.members_watch().wait_for(|m| formed(m))).await.expect("the cluster forms");
}

/// Tells the test each `Down` it hears. (Its stored state reads, to the bank's audit, as an
/// account holding nothing.)
struct Watcher {
    target: ActorRef<Account>,
    downs: tokio::sync::mpsc::UnboundedSender<amber::Down>,
}

impl Actor for Watcher {
    type Msg = ();
    type Reply = ();
    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        ctx.watch(&self.target);
        Ok(())
    }
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
    async fn on_down(&mut self, _: &mut Context<Self>, down: amber::Down) {
        let _ = self.downs.send(down);
    }
}

impl amber::ActorState for Watcher {
    const TYPE_NAME: &'static str = "test.Watcher";
    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        #[derive(Serialize)]
        struct Nothing {
            balance: u64,
        }
        amber::encode(&Nothing { balance: 0 })
    }
    fn decode_state(_: u32, _: &[u8], _: &ActorSystem) -> Result<Self, amber::StateError> {
        Err(amber::StateError::Hook("a test's watcher is not restored".to_owned()))
    }
}

/// Three processes that form a cluster from one seed (p, here; q and r children given only
/// p's address), with money on p and q and a watched account on r. r's process is killed:
/// its watcher hears `NodeDown` once, snapshots abort naming r or complete without it (and
/// add up), and r restarted under its name joins again as a new incarnation, after which
/// snapshots span the three processes again and still add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_formed_from_one_seed_survive_a_killed_and_restarted_node() {
    const MONEY: u64 = 2 * PER_NODE as u64 * EACH;
    let p = bounded(Cluster::join(builder(), config("p"), seeded(&[]))).await.expect("p");
    let mut q = NodeProcess::join("q", p.local_addr()).await;
    let mut r = NodeProcess::join("r", p.local_addr()).await;
    formed(&p, 3).await;
    assert_eq!(q.ask("members 3").await, "members 3");
    assert_eq!(r.ask("members 3").await, "members 3");

    let on_q = amber::cluster::NodeId::from("q");
    let mut all: Vec<ActorRef<Account>> = Vec::new();
    for k in 0..PER_NODE {
        all.push(p.system().spawn(Account::new(EACH, k as u64 * 7919 + 1)).unwrap());
        let seed = (1000 + k) as u64 * 7919 + 1;
        all.push(bounded(p.spawn_on(&on_q, None, Account::new(EACH, seed))).await.expect("on q"));
    }
    for account in &all {
        account.tell(AccountMsg::SetPeers(all.clone())).await.unwrap();
    }
    let on_r = amber::cluster::NodeId::from("r");
    let target = bounded(p.spawn_on(&on_r, None, Account::new(0, 7))).await.expect("on r");
    let (downs, mut heard) = tokio::sync::mpsc::unbounded_channel();
    p.system().spawn(Watcher { target: target.clone(), downs }).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = outside_load(all.clone(), 77, 6, true, stop.clone());

    for round in 0..6 {
        let checkpoint = bounded(p.system().snapshot()).await.expect("snapshot of three");
        assert_eq!(checkpoint.manifest.nodes.len(), 3, "round {round}");
        assert_eq!(checkpoint.manifest.actors.len(), 2 * PER_NODE + 2, "round {round}");
        assert_eq!(audit(&checkpoint).total(), MONEY, "round {round}");
    }

    let incarnation = |node: &Cluster| {
        node.members().into_iter().find(|m| m.node.as_str() == "r").map(|m| m.system)
    };
    let first_r = incarnation(&p).expect("r is a member");
    r.kill().await;
    let down = bounded(heard.recv()).await.expect("the watcher hears of r");
    assert_eq!(down.actor, target.id());
    assert!(matches!(&down.reason, ExitReason::NodeDown(n) if n == "r"), "{down:?}");
    // Until the cluster has settled without r, a snapshot may abort naming r; then they
    // complete over p and q, exactly.
    let mut without_r = 0;
    for attempt in 0..400 {
        match bounded(p.system().snapshot()).await {
            Ok(checkpoint) => {
                let names: Vec<&str> =
                    checkpoint.manifest.nodes.iter().map(|n| n.node.as_str()).collect();
                assert!(!names.contains(&"r"), "attempt {attempt}: {names:?}");
                assert_eq!(audit(&checkpoint).total(), MONEY, "attempt {attempt}");
                without_r += 1;
                if without_r == 3 {
                    break;
                }
            }
            result => assert!(support::cluster::aborted_by_loss_of(&result, "r"), "{result:?}"),
        }
    }
    assert_eq!(without_r, 3, "snapshots complete without r");

    // r again, under its name: a new incarnation, through the seed.
    let mut r = NodeProcess::join("r", p.local_addr()).await;
    let again = |m: &[amber::cluster::Member]| {
        m.iter().any(|m| m.node.as_str() == "r" && m.system != first_r && m.linked)
    };
    bounded(p.members_watch().wait_for(|m| again(m))).await.expect("r rejoins, anew");
    formed(&p, 3).await;
    assert_eq!(r.ask("members 3").await, "members 3");
    for round in 0..4 {
        let checkpoint = bounded(p.system().snapshot()).await.expect("snapshot after rejoin");
        assert_eq!(checkpoint.manifest.nodes.len(), 3, "round {round}");
        assert_eq!(checkpoint.manifest.actors.len(), 2 * PER_NODE + 1, "round {round}");
        assert_eq!(audit(&checkpoint).total(), MONEY, "round {round}");
    }
    assert!(heard.try_recv().is_err(), "NodeDown is heard once");
    stop.store(true, Ordering::Relaxed);
    assert!(bounded(load).await.unwrap() > 0, "the outside load ran");
    q.exit().await;
    r.exit().await;
    bounded(p.shutdown()).await;
}

/// A node in a child process, driven through its stdin and stdout.
struct NodeProcess {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl NodeProcess {
    /// Starts node `name` (restoring its share of a checkpoint file under a spread over the
    /// comma-separated nodes, if given) and waits for the address it listens on.
    async fn start(name: &'static str, restore: Option<(PathBuf, &str)>) -> NodeProcess {
        NodeProcess::start_with(name, restore, None).await
    }

    /// Starts node `name`, which joins the cluster through the seed `seed`.
    async fn join(name: &'static str, seed: SocketAddr) -> NodeProcess {
        NodeProcess::start_with(name, None, Some(seed)).await
    }

    async fn start_with(
        name: &'static str,
        restore: Option<(PathBuf, &str)>,
        seed: Option<SocketAddr>,
    ) -> NodeProcess {
        let exe = std::env::current_exe().expect("the test binary");
        let mut command = Command::new(exe);
        command
            .args(["node_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(NODE_ENV, name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some((file, nodes)) = restore {
            command.env(RESTORE_ENV, format!("{};{nodes}", file.display()));
        }
        if let Some(seed) = seed {
            command.env(SEED_ENV, seed.to_string());
        }
        let mut child = command.spawn().expect("start a node process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut node = NodeProcess { name, child, stdin, stdout, addr: ([0, 0, 0, 0], 0).into() };
        let listen = node.answer().await;
        node.addr = listen.strip_prefix("listen ").expect(&listen).parse().unwrap();
        node
    }

    /// The child's next answer line (without the prefix).
    async fn answer(&mut self) -> String {
        bounded(async {
            loop {
                let line = self.stdout.next_line().await.expect("child stdout");
                let line = line.unwrap_or_else(|| panic!("node {} exited", self.name));
                // The harness may have begun a line of its own ("test node_process ... ").
                if let Some(at) = line.find(SAYS) {
                    return line[at + SAYS.len()..].to_owned();
                }
            }
        })
        .await
    }

    /// Sends one command and returns the answer.
    async fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("child running");
        stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        self.answer().await
    }

    /// Kills the process (SIGKILL: no goodbye on its links) and reaps it.
    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        bounded(self.child.wait()).await.unwrap();
    }

    /// Closes its stdin, so it shuts its node down, and checks it exited cleanly.
    async fn exit(&mut self) {
        drop(self.stdin.take());
        let status = bounded(self.child.wait()).await.unwrap();
        assert!(status.success(), "node {} exited with {status}", self.name);
    }
}

/// The body of a child process (does nothing when run as a plain test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a node process, started by the other tests of this file"]
async fn node_process() {
    let Ok(name) = std::env::var(NODE_ENV) else { return };
    let node = match std::env::var(RESTORE_ENV) {
        Ok(spec) => {
            let (file, nodes) = spec.split_once(';').expect("file;nodes");
            let checkpoint = FsStore::load_file(file.as_ref()).expect("checkpoint file");
            let placement = Placement::spread(nodes.split(','));
            Cluster::restore(builder(), config(&name), &checkpoint, &placement)
                .await
                .expect("restore a share")
        }
        Err(_) => match std::env::var(SEED_ENV) {
            Ok(seed) => Cluster::join(builder(), config(&name), seeded(&[seed.parse().unwrap()]))
                .await
                .expect("join through the seed"),
            Err(_) => node(&name, builder()).await,
        },
    };
    say(format!("listen {}", node.local_addr()));
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    // Held while stalled: the gated actor waits in its handler until this drops.
    let mut _stall = None;
    let deadline = tokio::time::Instant::now() + CHILD_LIFETIME;
    while let Ok(Ok(Some(command))) = tokio::time::timeout_at(deadline, commands.next_line()).await
    {
        let (verb, arg) = command.split_once(' ').unwrap_or((command.as_str(), ""));
        match verb {
            "connect" => {
                let peer = node.connect(arg.parse().unwrap()).await.expect("connect");
                say(format!("connected {peer}"));
            }
            "peers" => {
                let n: usize = arg.parse().unwrap();
                bounded(async {
                    while node.nodes().len() < n {
                        tokio::task::yield_now().await;
                    }
                })
                .await;
                say(format!("peers {n}"));
            }
            "members" => {
                let n: usize = arg.parse().unwrap();
                formed(&node, n).await;
                say(format!("members {n}"));
            }
            "snapshot" => {
                let checkpoint = node.system().snapshot().await.expect("snapshot");
                say(format!(
                    "snapshot {} {} {}",
                    audit(&checkpoint).total(),
                    checkpoint.manifest.nodes.len(),
                    checkpoint.manifest.actors.len()
                ));
            }
            "stall" => {
                let (gated, control) = support::Gated::new();
                node.system().spawn(gated).unwrap().tell(1).await.unwrap();
                control.entered.await.unwrap();
                _stall = Some(control.open);
                say("stalled".into());
            }
            "await-snapshot" => {
                bounded(async {
                    while node.system().snapshot_running().is_none() {
                        tokio::task::yield_now().await;
                    }
                })
                .await;
                say("snapshot-running".into());
            }
            "resume" => {
                node.resume(Duration::from_secs(10)).await.expect("resume");
                say("resumed".into());
            }
            "count" => say(format!("count {}", node.system().actor_count())),
            other => panic!("unknown command {other:?}"),
        }
    }
    node.shutdown().await;
    // Leave at once: a stdin read may still be parked on the runtime's blocking pool.
    std::process::exit(0);
}

/// Answers the parent (stdout is a pipe it reads line by line).
fn say(answer: String) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{SAYS}{answer}");
    let _ = out.flush();
}
