//! The simulated system: K nodes of actors, per-pair FIFO links, a coordinator, and a
//! scheduler that picks the next event at random from a seed. It drives the real protocol
//! state machines of `amber_snapshot` and keeps a ground-truth log of every data message.
//!
//! The actors are bank accounts. The only message that carries money is a deposit; a
//! transfer withdraws locally, then sends the deposit. Outside commands and timer ticks tell
//! an account to transfer (they carry no money), asks are read-only balance queries (unless
//! `money_asks` is set), children get half their parent's balance, and outside spawns
//! start empty, so money is conserved except where an actor stops (its balance and the
//! deposits it never processes are destroyed; the checker accounts for both).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use amber_snapshot::{
    ActorCut, Coordinator, CoordinatorAction, Cut, Dequeue, Epoch, NodeAction, NodeCommand,
    NodeReport, NodeSnapshot,
};

use super::check;
use super::rng::Rng;

/// At most this many actors ever exist in one world (spawns stop there).
const MAX_ACTORS: usize = 40;
/// A running snapshot without a deadline must complete within this many steps.
const STALL_STEPS: u64 = 20_000;

/// A deliberately broken runtime, to prove that the checker can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The runtime is correct.
    None,
    /// Messages enqueued after the receiver's cut are not recorded.
    NoLateRecording,
    /// The backlog queued at the cut is not recorded.
    NoBacklogRecording,
    /// A message tagged ahead of the receiver is processed before the cut is taken.
    CutAfterProcessing,
    /// The marker `NodeSnapshot::actor_spawned` asks for is not delivered to the child.
    IgnoreChildMarker,
    /// A remote message is counted as received (which may trigger the node's report) before
    /// it is enqueued and recorded.
    CountBeforeEnqueue,
}

/// What one run looks like.
#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: usize,
    pub actors_per_node: usize,
    /// Scheduler steps with input (then the running snapshot is driven to its end).
    pub steps: u64,
    /// Snapshots to start, one after another.
    pub snapshots: usize,
    pub stops: bool,
    /// Deadlines and spurious node-down reports abort some snapshots.
    pub aborts: bool,
    /// Restore the last completed snapshot and run it on.
    pub restore: bool,
    pub fault: Fault,
    /// Known hole: outside code hands references to actors spawned during a snapshot to
    /// actors that have not cut (no visibility rule).
    pub outside_refs: bool,
    /// Known hole: asks withdraw money from the responder and the reply deposits it.
    pub money_asks: bool,
}

impl Config {
    /// A random shape for a run, drawn from the seed's generator.
    pub fn random(rng: &mut Rng) -> Config {
        Config {
            nodes: [1, 2, 2, 3, 3, 4][rng.below(6)],
            actors_per_node: rng.range(1, 5) as usize,
            steps: rng.range(500, 1400),
            snapshots: rng.range(2, 4) as usize,
            stops: rng.chance(50),
            aborts: rng.chance(25),
            restore: true,
            fault: Fault::None,
            outside_refs: false,
            money_asks: false,
        }
    }
}

/// Counts of the situations a run went through, to show what the seeds covered.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub steps: u64,
    pub messages: u64,
    pub remote_messages: u64,
    pub started: u64,
    pub completed: u64,
    pub aborted: u64,
    pub cuts_by_marker: u64,
    pub cuts_by_tag: u64,
    pub backlog_recorded: u64,
    pub late_recorded: u64,
    pub dead_letters: u64,
    pub dead_letters_recorded: u64,
    pub child_markers: u64,
    pub outside_spawns: u64,
    pub stops_before_cut: u64,
    pub stops_after_cut: u64,
    pub tags_ahead_of_node: u64,
    pub expects: u64,
    pub asks: u64,
    pub reply_leaks: u64,
    pub restores: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        macro_rules! sum {
            ($($f:ident),*) => { $(self.$f += o.$f;)* };
        }
        sum!(
            steps,
            messages,
            remote_messages,
            started,
            completed,
            aborted,
            cuts_by_marker,
            cuts_by_tag,
            backlog_recorded,
            late_recorded,
            dead_letters,
            dead_letters_recorded,
            child_markers,
            outside_spawns,
            stops_before_cut,
            stops_after_cut,
            tags_ahead_of_node,
            expects,
            asks,
            reply_leaks,
            restores
        );
    }
}

/// A data message's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Money arriving.
    Deposit(i64),
    /// Outside command: transfer up to this much to someone.
    Transfer(i64),
    /// Timer: transfer a little to someone.
    Tick,
    /// An ask; the reply is not a channel message.
    Ask { ask: u64, asker: Option<usize> },
}

/// Who sent a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An actor, from a handler: tagged with its epoch.
    Actor(usize),
    /// Outside code or a timer: tagged on arrival.
    Input,
    /// Re-enqueued by a restore (sent before the restored snapshot's cut).
    Restored,
}

/// The ground truth about one data message. Times are the world clock.
#[derive(Debug, Clone)]
pub struct Sent {
    pub origin: Origin,
    pub receiver: usize,
    pub kind: Kind,
    pub tag: Epoch,
    pub sent: u64,
    pub arrived: Option<u64>,
    pub dead_letter: bool,
    pub processed: Option<u64>,
    /// For an ask with `money_asks`: money the responder withdrew for a reply nobody took
    /// (the ask had timed out): destroyed by the responder's handler.
    pub lost: i64,
}

/// How an actor came to be.
#[derive(Debug, Clone, Copy)]
pub enum Birth {
    /// At the start of the world (or of a restore), in this epoch.
    Initial(Epoch),
    /// Spawned from outside, in this epoch.
    Outside(Epoch),
    /// Spawned by `parent` at time `at`.
    Child { parent: usize, at: u64 },
}

/// A cut an actor took.
#[derive(Debug, Clone, Copy)]
pub struct CutRecord {
    pub from: Epoch,
    pub to: Epoch,
    pub at: u64,
    pub balance: i64,
}

#[derive(Debug, Clone, Copy)]
struct Msg {
    id: usize,
    tag: Epoch,
}

/// An ask reply: the value and the responder's epoch when it answered, or an error.
type Reply = Option<(i64, Epoch)>;

#[derive(Debug)]
pub struct Actor {
    pub node: usize,
    pub cut: ActorCut,
    pub alive: bool,
    pub balance: i64,
    pub birth: Birth,
    pub born: Epoch,
    pub cuts: Vec<CutRecord>,
    /// Recorded in-flight messages per snapshot, in recording order.
    pub recorded: BTreeMap<Epoch, Vec<usize>>,
    /// When it stopped and with which balance.
    pub stopped: Option<(u64, i64)>,
    mailbox: VecDeque<Msg>,
    control: VecDeque<Epoch>,
    waiting: Option<u64>,
    reply: Option<Reply>,
    last_seen: i64,
}

impl Actor {
    fn new(node: usize, epoch: Epoch, balance: i64, birth: Birth) -> Actor {
        Actor {
            node,
            cut: ActorCut::new(epoch),
            alive: true,
            balance,
            birth,
            born: epoch,
            cuts: Vec::new(),
            recorded: BTreeMap::new(),
            stopped: None,
            mailbox: VecDeque::new(),
            control: VecDeque::new(),
            waiting: None,
            reply: None,
            last_seen: 0,
        }
    }

    fn runnable(&self) -> bool {
        self.alive
            && match self.waiting {
                Some(_) => self.reply.is_some(),
                None => !self.control.is_empty() || !self.mailbox.is_empty(),
            }
    }
}

/// What the scheduler can do next.
#[derive(Debug, Clone, Copy)]
enum Event {
    ActorStep,
    Link,
    Arrival,
    Control,
    Marker,
    OutsideSend,
    Timer,
    OutsideSpawn,
    Stop,
    Start,
    NodeDown,
    AskTimeout,
}

#[derive(Debug)]
enum LinkItem {
    Data { to: usize, msg: Msg, counted: bool },
    Reply { to: usize, ask: u64, value: Reply },
}

#[derive(Debug)]
pub struct Node {
    pub proto: NodeSnapshot<usize>,
    commands: VecDeque<NodeCommand<usize>>,
    reports: VecDeque<NodeReport<usize>>,
    /// A marker broadcast in progress: actors still to be sent a marker. The runtime walks
    /// its registry while actors run, so markers reach actors one at a time, in any order.
    broadcast: Vec<(usize, Epoch)>,
    /// With `Fault::CountBeforeEnqueue`: messages counted but not enqueued yet.
    arriving: VecDeque<(usize, Msg)>,
}

/// One line of the event trace (read through its `Debug` output).
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)]
pub enum Ev {
    Send { from: usize, to: usize, id: usize, tag: Epoch, remote: bool },
    Input { to: usize, id: usize, timer: bool },
    Arrive { to: usize, id: usize, tag: Epoch, recorded: Option<Epoch>, dead: bool },
    Process { actor: usize, id: usize, tag: Epoch },
    Cut { actor: usize, from: Epoch, to: Epoch, marker: bool, backlog: usize },
    Marker { actor: usize, epoch: Epoch },
    Spawn { actor: usize, parent: Option<usize>, node: usize, epoch: Epoch, marker: bool },
    Stop { actor: usize, epoch: Epoch },
    Ask { actor: usize, ask: u64 },
    AskDone { actor: usize, ask: u64, leak: bool },
    Start { epoch: Epoch },
    Command { node: usize, command: &'static str, epoch: Epoch },
    Report { node: usize, epoch: Epoch, done: bool },
    Completed { epoch: Epoch },
    Aborted { epoch: Epoch },
    NodeDown { node: usize },
}

impl Ev {
    fn mentions(&self, actors: &[usize]) -> bool {
        let involved: &[usize] = match *self {
            Ev::Send { from, to, .. } => &[from, to],
            Ev::Input { to, .. } | Ev::Arrive { to, .. } => &[to],
            Ev::Process { actor, .. }
            | Ev::Cut { actor, .. }
            | Ev::Marker { actor, .. }
            | Ev::Stop { actor, .. }
            | Ev::Ask { actor, .. }
            | Ev::AskDone { actor, .. } => &[actor],
            Ev::Spawn { actor, parent, .. } => {
                return actors.contains(&actor) || parent.is_some_and(|p| actors.contains(&p));
            }
            _ => return true,
        };
        involved.iter().any(|a| actors.contains(a))
    }
}

/// A failed run: enough to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub restored_from: Option<Epoch>,
    pub config: Config,
    pub what: String,
    pub trace: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} failed: {}", self.seed, self.what)?;
        if let Some(e) = self.restored_from {
            writeln!(f, "  (in the world restored from snapshot {e})")?;
        }
        writeln!(f, "  config: {:?}", self.config)?;
        writeln!(
            f,
            "  replay: AMBER_SIM_SEED={} cargo test -p amber-snapshot --test protocol_sim -- --nocapture",
            self.seed
        )?;
        write!(f, "{}", self.trace)
    }
}

/// The simulated system.
#[derive(Debug)]
pub struct World {
    pub cfg: Config,
    pub seed: u64,
    pub restored_from: Option<Epoch>,
    rng: Rng,
    /// Logical time: every happening gets its own tick.
    pub clock: u64,
    step: u64,
    pub actors: Vec<Actor>,
    pub nodes: Vec<Node>,
    links: Vec<VecDeque<LinkItem>>,
    pub coord: Coordinator<usize>,
    timers: Vec<usize>,
    pub log: Vec<Sent>,
    trace: Vec<(u64, Ev)>,
    pub stats: Stats,
    /// The money in the world when it started.
    pub initial_total: i64,
    pub completed: BTreeSet<Epoch>,
    running_since: u64,
    next_ask: u64,
    /// Ask id -> the request's message id.
    asks: BTreeMap<u64, usize>,
    /// Replies taken by an asker in an earlier epoch than the responder's when it answered:
    /// (when, the request's message id).
    pub leaks: Vec<(u64, usize)>,
    failure: Option<(String, Vec<usize>)>,
}

impl World {
    /// A fresh world for `seed`, shaped by `cfg`.
    pub fn new(seed: u64, cfg: Config) -> World {
        let mut w = World::empty(seed, cfg, Epoch::ZERO);
        for node in 0..w.cfg.nodes {
            for _ in 0..w.cfg.actors_per_node {
                let i = w.actors.len();
                w.actors.push(Actor::new(node, Epoch::ZERO, 100, Birth::Initial(Epoch::ZERO)));
                let marker = w.nodes[node].proto.actor_spawned(Epoch::ZERO);
                assert_eq!(marker, None);
                w.trace(Ev::Spawn {
                    actor: i,
                    parent: None,
                    node,
                    epoch: Epoch::ZERO,
                    marker: false,
                });
            }
        }
        w.initial_total = w.actors.iter().map(|a| a.balance).sum();
        w
    }

    fn empty(seed: u64, cfg: Config, epoch: Epoch) -> World {
        let k = cfg.nodes;
        World {
            rng: Rng::new(seed),
            seed,
            restored_from: None,
            clock: 0,
            step: 0,
            actors: Vec::new(),
            nodes: (0..k)
                .map(|n| Node {
                    proto: NodeSnapshot::new(n, epoch),
                    commands: VecDeque::new(),
                    reports: VecDeque::new(),
                    broadcast: Vec::new(),
                    arriving: VecDeque::new(),
                })
                .collect(),
            links: (0..k * k).map(|_| VecDeque::new()).collect(),
            coord: Coordinator::new(epoch),
            timers: Vec::new(),
            log: Vec::new(),
            trace: Vec::new(),
            stats: Stats::default(),
            initial_total: 0,
            completed: BTreeSet::new(),
            running_since: 0,
            next_ask: 0,
            asks: BTreeMap::new(),
            leaks: Vec::new(),
            failure: None,
            cfg,
        }
    }

    /// A new world made from completed snapshot `epoch` of this one: every member actor
    /// from its cut state, its recorded messages re-enqueued in order before anything new.
    pub fn restore(&self, epoch: Epoch) -> World {
        let mut cfg = self.cfg.clone();
        cfg.restore = false;
        cfg.steps /= 2;
        cfg.snapshots = 2;
        let mut w = World::empty(self.seed, cfg, epoch);
        w.rng = Rng::new(self.seed.wrapping_mul(31).wrapping_add(7));
        w.restored_from = Some(epoch);
        w.stats.restores = 1;
        let mut index = BTreeMap::new();
        for (old, a) in self.actors.iter().enumerate() {
            if let Some(c) = a.cuts.iter().find(|c| c.to == epoch) {
                index.insert(old, w.actors.len());
                w.actors.push(Actor::new(a.node, epoch, c.balance, Birth::Initial(epoch)));
                let marker = w.nodes[a.node].proto.actor_spawned(epoch);
                assert_eq!(marker, None);
            }
        }
        for (&old, &new) in &index {
            for &id in self.actors[old].recorded.get(&epoch).into_iter().flatten() {
                let m = &self.log[id];
                let kind = match m.kind {
                    // The asker's handler finished before its cut; nobody awaits this reply.
                    Kind::Ask { ask, .. } => Kind::Ask { ask, asker: None },
                    k => k,
                };
                let id = w.log_msg(Origin::Restored, new, kind, m.tag);
                w.arrive(new, Msg { id, tag: m.tag }, false);
            }
        }
        w.initial_total = w.actors.iter().map(|a| a.balance).sum::<i64>()
            + w.log.iter().map(|m| if let Kind::Deposit(a) = m.kind { a } else { 0 }).sum::<i64>();
        w
    }

    /// Runs the world: `cfg.steps` random steps with input, then drives the running
    /// snapshot (if any) to its end without new input.
    pub fn run(&mut self) -> Result<(), Box<Failure>> {
        while self.step < self.cfg.steps && self.failure.is_none() {
            self.step(true);
        }
        while self.failure.is_none() {
            let Some(epoch) = self.coord.running() else { break };
            if !self.step(false) {
                let waiting: Vec<usize> =
                    (0..self.actors.len()).filter(|&i| self.actors[i].waiting.is_some()).collect();
                self.fail(
                    format!("stuck: snapshot {epoch} is running and nothing can happen (waiting: {waiting:?})"),
                    &waiting,
                );
            }
        }
        self.stats.steps = self.step;
        match self.failure.take() {
            None => Ok(()),
            Some((what, actors)) => Err(self.failure_report_about(what, &actors)),
        }
    }

    /// A failure of this world, with the tail of its trace.
    pub fn failure_report(&self, what: String) -> Box<Failure> {
        self.failure_report_about(what, &[])
    }

    fn failure_report_about(&self, what: String, actors: &[usize]) -> Box<Failure> {
        Box::new(Failure {
            seed: self.seed,
            restored_from: self.restored_from,
            config: self.cfg.clone(),
            what,
            trace: self.format_trace(actors),
        })
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn trace(&mut self, ev: Ev) {
        self.trace.push((self.clock, ev));
    }

    fn fail(&mut self, what: String, actors: &[usize]) {
        if self.failure.is_none() {
            self.failure = Some((what, actors.to_vec()));
        }
    }

    fn format_trace(&self, actors: &[usize]) -> String {
        let all = std::env::var_os("AMBER_SIM_TRACE").is_some();
        let lines: Vec<String> = self
            .trace
            .iter()
            .filter(|(_, ev)| all || actors.is_empty() || ev.mentions(actors))
            .map(|(t, ev)| format!("  t{t:<6} {ev:?}\n"))
            .collect();
        let keep = if all { lines.len() } else { 80 };
        let skip = lines.len().saturating_sub(keep);
        let mut out = format!(
            "  trace ({} of {} events{}):\n",
            lines.len() - skip,
            self.trace.len(),
            if actors.is_empty() { String::new() } else { format!(", about actors {actors:?}") }
        );
        out.extend(lines.into_iter().skip(skip));
        out
    }

    /// One scheduler step. Returns whether anything happened.
    fn step(&mut self, input: bool) -> bool {
        self.step += 1;
        let running = self.coord.running();
        let runnable = self.actors.iter().any(Actor::runnable);
        let links = self.links.iter().any(|l| !l.is_empty());
        let control = self.nodes.iter().any(|n| !n.commands.is_empty() || !n.reports.is_empty());
        let broadcasting = self.nodes.iter().any(|n| !n.broadcast.is_empty());
        let alive = self.actors.iter().filter(|a| a.alive).count();
        let asking =
            self.actors.iter().any(|a| a.alive && a.waiting.is_some() && a.reply.is_none());
        let may_start = running.is_none() && self.stats.started < self.cfg.snapshots as u64;
        // (weight, event); zero weights are not enabled.
        let arriving = self.nodes.iter().any(|n| !n.arriving.is_empty());
        let events: [(u64, Event); 12] = [
            (if arriving { 100 } else { 0 }, Event::Arrival),
            (if runnable { 400 } else { 0 }, Event::ActorStep),
            (if links { 250 } else { 0 }, Event::Link),
            (if control { 120 } else { 0 }, Event::Control),
            (if broadcasting { 150 } else { 0 }, Event::Marker),
            (if input { 50 } else { 0 }, Event::OutsideSend),
            (if self.timers.is_empty() { 0 } else { 40 }, Event::Timer),
            (if input && self.actors.len() < MAX_ACTORS { 3 } else { 0 }, Event::OutsideSpawn),
            (
                if input && self.cfg.stops && alive * 3 > self.actors.len() * 2 { 6 } else { 0 },
                Event::Stop,
            ),
            (if input && may_start { 30 } else { 0 }, Event::Start),
            (if input && running.is_some() && self.cfg.aborts { 1 } else { 0 }, Event::NodeDown),
            // Asks time out (actors asking each other in a cycle would wait forever).
            (if asking { 10 } else { 0 }, Event::AskTimeout),
        ];
        let weights: Vec<u64> = events.iter().map(|&(w, _)| w).collect();
        if weights.iter().all(|&w| w == 0) {
            return false;
        }
        match events[self.rng.weighted(&weights)].1 {
            Event::ActorStep => {
                let x = self.pick(|a| a.runnable()).expect("a runnable actor");
                self.actor_step(x);
            }
            Event::Link => self.deliver_link(),
            Event::Arrival => {
                let nodes: Vec<usize> =
                    (0..self.cfg.nodes).filter(|&n| !self.nodes[n].arriving.is_empty()).collect();
                let n = nodes[self.rng.below(nodes.len())];
                let (to, msg) = self.nodes[n].arriving.pop_front().expect("arriving");
                self.arrive(to, msg, false);
            }
            Event::Control => self.deliver_control(),
            Event::Marker => self.deliver_marker(),
            Event::OutsideSend => self.outside_send(),
            Event::Timer => {
                let x = self.timers.swap_remove(self.rng.below(self.timers.len()));
                let id = self.log_msg(Origin::Input, x, Kind::Tick, Epoch::ZERO);
                self.trace(Ev::Input { to: x, id, timer: true });
                self.arrive(x, Msg { id, tag: Epoch::ZERO }, true);
            }
            Event::OutsideSpawn => self.outside_spawn(),
            Event::Stop => {
                if let Some(x) = self.pick(|a| a.alive && a.waiting.is_none()) {
                    self.stop(x);
                }
            }
            Event::Start => self.start_snapshot(),
            Event::NodeDown => {
                let node = self.rng.below(self.cfg.nodes);
                self.trace(Ev::NodeDown { node });
                self.coord.node_down(&node);
                self.drain_coord();
            }
            Event::AskTimeout => {
                let x = self.pick(|a| a.alive && a.waiting.is_some() && a.reply.is_none());
                self.actors[x.expect("a waiting actor")].reply = Some(None);
            }
        }
        self.coord.handle_timeout(self.step);
        self.drain_coord();
        if let Some(epoch) = self.coord.running()
            && self.coord.poll_timeout().is_none()
            && self.step - self.running_since > STALL_STEPS
        {
            self.fail(
                format!("livelock: snapshot {epoch} did not complete in {STALL_STEPS} steps"),
                &[],
            );
        }
        true
    }

    fn pick(&mut self, f: impl Fn(&Actor) -> bool) -> Option<usize> {
        let n = self.actors.len();
        if n == 0 {
            return None;
        }
        let start = self.rng.below(n);
        (0..n).map(|i| (start + i) % n).find(|&i| f(&self.actors[i]))
    }

    fn start_snapshot(&mut self) {
        let deadline = self.cfg.aborts.then(|| self.step + self.rng.range(50, 1500));
        let epoch = self.coord.start(0..self.cfg.nodes, deadline).expect("no snapshot running");
        self.stats.started += 1;
        self.running_since = self.step;
        self.trace(Ev::Start { epoch });
        self.drain_coord();
    }

    fn drain_coord(&mut self) {
        while let Some(action) = self.coord.poll() {
            match action {
                CoordinatorAction::Send { to, command } => {
                    if matches!(command, NodeCommand::Expect { .. }) {
                        self.stats.expects += 1;
                    }
                    self.nodes[to].commands.push_back(command);
                }
                CoordinatorAction::Completed(epoch) => {
                    self.stats.completed += 1;
                    self.completed.insert(epoch);
                    self.trace(Ev::Completed { epoch });
                    if let Err(v) = check::snapshot(self, epoch) {
                        self.fail(format!("snapshot {epoch}: {}", v.what), &v.actors);
                    }
                }
                CoordinatorAction::Aborted { epoch, .. } => {
                    self.stats.aborted += 1;
                    self.trace(Ev::Aborted { epoch });
                }
            }
        }
    }

    fn drain_node(&mut self, n: usize) {
        while let Some(action) = self.nodes[n].proto.poll() {
            match action {
                NodeAction::Markers(epoch) => {
                    // The registry as the broadcast finds it: actors spawned from now on
                    // are not in it (the spawn's own marker covers them).
                    for (i, a) in self.actors.iter().enumerate() {
                        if a.node == n && a.alive && a.cut.epoch() < epoch {
                            self.nodes[n].broadcast.push((i, epoch));
                        }
                    }
                }
                NodeAction::Report(r) => {
                    self.trace(Ev::Report { node: n, epoch: r.epoch, done: r.locally_done });
                    self.nodes[n].reports.push_back(r);
                }
            }
        }
    }

    fn deliver_marker(&mut self) {
        let nodes: Vec<usize> =
            (0..self.cfg.nodes).filter(|&n| !self.nodes[n].broadcast.is_empty()).collect();
        let n = nodes[self.rng.below(nodes.len())];
        let pending = &mut self.nodes[n].broadcast;
        let (actor, epoch) = pending.swap_remove(self.rng.below(pending.len()));
        let a = &mut self.actors[actor];
        if a.alive && a.cut.epoch() < epoch {
            a.control.push_back(epoch);
            self.trace(Ev::Marker { actor, epoch });
        }
    }

    fn deliver_control(&mut self) {
        // (node, to the node?) for each non-empty FIFO between the coordinator and a node.
        let queues: Vec<(usize, bool)> = (0..self.cfg.nodes)
            .flat_map(|n| [(n, true), (n, false)])
            .filter(|&(n, down)| {
                let node = &self.nodes[n];
                if down { !node.commands.is_empty() } else { !node.reports.is_empty() }
            })
            .collect();
        let (n, down) = queues[self.rng.below(queues.len())];
        if down {
            let command = self.nodes[n].commands.pop_front().unwrap();
            let (name, epoch) = match &command {
                NodeCommand::Start(e) => ("start", *e),
                NodeCommand::Expect { epoch, .. } => ("expect", *epoch),
                NodeCommand::Complete(e) => ("complete", *e),
                NodeCommand::Abort { epoch, .. } => ("abort", *epoch),
            };
            self.trace(Ev::Command { node: n, command: name, epoch });
            self.nodes[n].proto.handle_command(command);
            self.drain_node(n);
        } else {
            let report = self.nodes[n].reports.pop_front().unwrap();
            self.coord.handle_report(report);
            self.drain_coord();
        }
    }

    fn deliver_link(&mut self) {
        let nonempty: Vec<usize> =
            (0..self.links.len()).filter(|&l| !self.links[l].is_empty()).collect();
        let l = nonempty[self.rng.below(nonempty.len())];
        let (from, to_node) = (l / self.cfg.nodes, l % self.cfg.nodes);
        match self.links[l].pop_front().unwrap() {
            LinkItem::Data { to, msg, counted: false } => self.arrive(to, msg, true),
            LinkItem::Data { to, msg, counted: true } => {
                if msg.tag > self.nodes[to_node].proto.epoch() {
                    self.stats.tags_ahead_of_node += 1;
                }
                if self.cfg.fault == Fault::CountBeforeEnqueue {
                    self.nodes[to_node].proto.remote_received(&from, msg.tag);
                    self.drain_node(to_node);
                    self.nodes[to_node].arriving.push_back((to, msg));
                    return;
                }
                // Enqueue (and record) first, then count: a report the count triggers may
                // complete the snapshot, and by then the recording must exist.
                self.arrive(to, msg, false);
                self.nodes[to_node].proto.remote_received(&from, msg.tag);
                self.drain_node(to_node);
            }
            LinkItem::Reply { to, ask, value } => self.deliver_reply(to, ask, value),
        }
    }

    fn log_msg(&mut self, origin: Origin, receiver: usize, kind: Kind, tag: Epoch) -> usize {
        let sent = self.tick();
        self.stats.messages += 1;
        self.log.push(Sent {
            origin,
            receiver,
            kind,
            tag,
            sent,
            arrived: None,
            dead_letter: false,
            processed: None,
            lost: 0,
        });
        self.log.len() - 1
    }

    /// A data message reaches its receiver's mailbox (or is refused as a dead letter).
    fn arrive(&mut self, to: usize, mut msg: Msg, tag_on_arrival: bool) {
        if tag_on_arrival {
            msg.tag = self.actors[to].cut.epoch();
            self.log[msg.id].tag = msg.tag;
        }
        let t = self.tick();
        self.log[msg.id].arrived = Some(t);
        let a = &mut self.actors[to];
        let recorded = match self.cfg.fault {
            Fault::NoLateRecording => None,
            _ => a.cut.recording(msg.tag),
        };
        if let Some(e) = recorded {
            a.recorded.entry(e).or_default().push(msg.id);
            if a.alive {
                self.stats.late_recorded += 1;
            } else {
                self.stats.dead_letters_recorded += 1;
            }
        }
        let alive = a.alive;
        if alive {
            a.mailbox.push_back(msg);
        } else {
            self.stats.dead_letters += 1;
            self.log[msg.id].dead_letter = true;
        }
        self.trace(Ev::Arrive { to, id: msg.id, tag: msg.tag, recorded, dead: !alive });
        if let Some(e) = recorded.filter(|e| self.completed.contains(e)) {
            self.fail(
                format!("message {} recorded for snapshot {e} after it completed", msg.id),
                &[to],
            );
        }
        if let (false, Kind::Ask { ask, asker: Some(asker) }) = (alive, self.log[msg.id].kind) {
            self.route_reply(self.actors[to].node, asker, ask, None);
        }
    }

    fn actor_step(&mut self, x: usize) {
        let a = &mut self.actors[x];
        if let Some(ask) = a.waiting {
            let reply = a.reply.take().expect("runnable");
            a.waiting = None;
            let mut leak = false;
            if let Some((value, responder_epoch)) = reply {
                leak = responder_epoch > a.cut.epoch();
                if self.cfg.money_asks {
                    a.balance += value;
                } else {
                    a.last_seen = value;
                }
            }
            if leak {
                self.stats.reply_leaks += 1;
                let at = self.tick();
                self.leaks.push((at, self.asks[&ask]));
            }
            self.trace(Ev::AskDone { actor: x, ask, leak });
            // The rest of the handler, after the await.
            if self.rng.chance(35) {
                let amount = self.rng.range(1, 20) as i64;
                self.transfer(x, amount);
            }
            if self.rng.chance(10) && self.actors.len() < MAX_ACTORS {
                self.spawn_child(x);
            }
            return;
        }
        if let Some(marker) = a.control.pop_front() {
            if let Some(cut) = a.cut.on_marker(marker) {
                self.stats.cuts_by_marker += 1;
                self.take_cut(x, cut, true);
            }
            return;
        }
        let msg = a.mailbox.pop_front().expect("runnable");
        match a.cut.on_dequeue(msg.tag) {
            Dequeue::Process => self.process(x, msg),
            Dequeue::Hold => unreachable!("the simulated actors never defer their cuts"),
            Dequeue::CutThenProcess(cut) => {
                self.stats.cuts_by_tag += 1;
                if self.cfg.fault == Fault::CutAfterProcessing {
                    self.process(x, msg);
                    self.take_cut(x, cut, false);
                } else {
                    self.take_cut(x, cut, false);
                    self.process(x, msg);
                }
            }
        }
    }

    fn take_cut(&mut self, x: usize, cut: Cut, marker: bool) {
        let at = self.tick();
        let a = &mut self.actors[x];
        a.cuts.push(CutRecord { from: cut.from, to: cut.to, at, balance: a.balance });
        let mut backlog = 0;
        if self.cfg.fault != Fault::NoBacklogRecording {
            for m in &a.mailbox {
                if let Some(e) = a.cut.recording(m.tag) {
                    a.recorded.entry(e).or_default().push(m.id);
                    backlog += 1;
                }
            }
        }
        self.stats.backlog_recorded += backlog as u64;
        let node = a.node;
        self.trace(Ev::Cut { actor: x, from: cut.from, to: cut.to, marker, backlog });
        self.nodes[node].proto.actor_cut(cut);
        self.drain_node(node);
    }

    /// The actor's handler for one message.
    fn process(&mut self, x: usize, msg: Msg) {
        let t = self.tick();
        self.log[msg.id].processed = Some(t);
        self.trace(Ev::Process { actor: x, id: msg.id, tag: msg.tag });
        match self.log[msg.id].kind {
            Kind::Deposit(amount) => self.actors[x].balance += amount,
            Kind::Transfer(amount) => self.transfer(x, amount),
            Kind::Tick => {
                let amount = self.rng.range(1, 20) as i64;
                self.transfer(x, amount);
            }
            Kind::Ask { ask, asker } => {
                let a = &mut self.actors[x];
                let value = if self.cfg.money_asks {
                    let v = a.balance / 2;
                    a.balance -= v;
                    v
                } else {
                    a.balance
                };
                let reply = Some((value, a.cut.epoch()));
                match asker {
                    Some(asker) => self.route_reply(self.actors[x].node, asker, ask, reply),
                    None if self.cfg.money_asks => self.log[msg.id].lost += value,
                    None => {}
                }
            }
        }
        // The rest of the handler: maybe more transfers, a child, a timer, an ask.
        if self.rng.chance(35) {
            let amount = self.rng.range(1, 20) as i64;
            self.transfer(x, amount);
        }
        if self.rng.chance(4) && self.actors.len() < MAX_ACTORS {
            self.spawn_child(x);
        }
        if self.rng.chance(3) {
            self.timers.push(x);
        }
        if self.rng.chance(6) {
            self.ask(x);
        }
    }

    /// Someone `x` may address: any actor that exists from its point of view.
    fn pick_target(&mut self, x: usize) -> Option<usize> {
        let epoch = self.actors[x].cut.epoch();
        for _ in 0..8 {
            // (x itself exists, so there is at least one actor)
            let y = self.rng.below(self.actors.len());
            if self.cfg.outside_refs || self.actors[y].born <= epoch {
                return Some(y);
            }
        }
        None
    }

    fn transfer(&mut self, x: usize, up_to: i64) {
        let amount = up_to.min(self.actors[x].balance);
        if amount <= 0 {
            return;
        }
        if let Some(y) = self.pick_target(x) {
            self.actors[x].balance -= amount;
            self.send(x, y, Kind::Deposit(amount));
        }
    }

    fn send(&mut self, x: usize, y: usize, kind: Kind) {
        let tag = self.actors[x].cut.epoch();
        let id = self.log_msg(Origin::Actor(x), y, kind, tag);
        let (a, b) = (self.actors[x].node, self.actors[y].node);
        self.trace(Ev::Send { from: x, to: y, id, tag, remote: a != b });
        let msg = Msg { id, tag };
        if a == b {
            self.arrive(y, msg, false);
        } else {
            self.stats.remote_messages += 1;
            self.nodes[a].proto.remote_sent(&b, tag);
            self.drain_node(a);
            self.links[a * self.cfg.nodes + b].push_back(LinkItem::Data {
                to: y,
                msg,
                counted: true,
            });
        }
    }

    fn ask(&mut self, x: usize) {
        let Some(y) = self.pick_target(x).filter(|&y| y != x) else { return };
        self.next_ask += 1;
        let ask = self.next_ask;
        self.stats.asks += 1;
        self.actors[x].waiting = Some(ask);
        self.trace(Ev::Ask { actor: x, ask });
        self.asks.insert(ask, self.log.len());
        self.send(x, y, Kind::Ask { ask, asker: Some(x) });
    }

    fn route_reply(&mut self, from_node: usize, to: usize, ask: u64, value: Reply) {
        let to_node = self.actors[to].node;
        if to_node == from_node {
            self.deliver_reply(to, ask, value);
        } else {
            self.links[from_node * self.cfg.nodes + to_node].push_back(LinkItem::Reply {
                to,
                ask,
                value,
            });
        }
    }

    fn deliver_reply(&mut self, to: usize, ask: u64, value: Reply) {
        let a = &mut self.actors[to];
        if a.alive && a.waiting == Some(ask) {
            a.reply = Some(value);
        } else if let (true, Some((money, _))) = (self.cfg.money_asks, value) {
            self.log[self.asks[&ask]].lost += money;
        }
    }

    fn spawn_child(&mut self, parent: usize) {
        let at = self.tick();
        let p = &mut self.actors[parent];
        let (node, epoch) = (p.node, p.cut.epoch());
        let amount = p.balance / 2;
        p.balance -= amount;
        let marker = self.nodes[node].proto.actor_spawned(epoch);
        let mut child = Actor::new(node, epoch, amount, Birth::Child { parent, at });
        if let Some(m) = marker {
            self.stats.child_markers += 1;
            if self.cfg.fault != Fault::IgnoreChildMarker {
                child.control.push_back(m);
            }
        }
        let i = self.actors.len();
        self.actors.push(child);
        self.trace(Ev::Spawn {
            actor: i,
            parent: Some(parent),
            node,
            epoch,
            marker: marker.is_some(),
        });
        self.drain_node(node);
    }

    fn outside_spawn(&mut self) {
        self.tick();
        let node = self.rng.below(self.cfg.nodes);
        let epoch = self.nodes[node].proto.spawn_epoch();
        let marker = self.nodes[node].proto.actor_spawned(epoch);
        let mut a = Actor::new(node, epoch, 0, Birth::Outside(epoch));
        if let Some(m) = marker {
            a.control.push_back(m);
        }
        let i = self.actors.len();
        self.actors.push(a);
        self.stats.outside_spawns += 1;
        self.trace(Ev::Spawn { actor: i, parent: None, node, epoch, marker: marker.is_some() });
        self.drain_node(node);
    }

    fn outside_send(&mut self) {
        if self.actors.is_empty() {
            return;
        }
        let to = self.rng.below(self.actors.len());
        let amount = self.rng.range(1, 30) as i64;
        let id = self.log_msg(Origin::Input, to, Kind::Transfer(amount), Epoch::ZERO);
        self.trace(Ev::Input { to, id, timer: false });
        let msg = Msg { id, tag: Epoch::ZERO };
        // Outside code runs on some node; to a remote actor it goes over the link, untagged.
        let from = self.rng.below(self.cfg.nodes);
        let to_node = self.actors[to].node;
        if from == to_node {
            self.arrive(to, msg, true);
        } else {
            self.links[from * self.cfg.nodes + to_node].push_back(LinkItem::Data {
                to,
                msg,
                counted: false,
            });
        }
    }

    fn stop(&mut self, x: usize) {
        let at = self.tick();
        let a = &mut self.actors[x];
        a.alive = false;
        a.stopped = Some((at, a.balance));
        let epoch = a.cut.epoch();
        let a_depth = a.cut.depth();
        match self.coord.running() {
            Some(e) if epoch < e => self.stats.stops_before_cut += 1,
            Some(e) if a.cut.last_cut() == Some(e) => self.stats.stops_after_cut += 1,
            _ => {}
        }
        a.control.clear();
        let dropped: Vec<Msg> = a.mailbox.drain(..).collect();
        let node = a.node;
        self.trace(Ev::Stop { actor: x, epoch });
        self.nodes[node].proto.actor_stopped(epoch, a_depth);
        self.drain_node(node);
        for m in dropped {
            if let Kind::Ask { ask, asker: Some(asker) } = self.log[m.id].kind {
                self.route_reply(node, asker, ask, None);
            }
        }
    }
}
