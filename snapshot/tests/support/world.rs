//! The simulated system: K nodes of actors, per-pair FIFO links, coordinators on the first
//! nodes, and a scheduler that picks the next event at random from a seed. It drives the
//! real protocol state machines of `amber_snapshot` and keeps a ground-truth log of every
//! data message.
//!
//! Nodes and coordinators, as the runtime's engines: each node keeps what its actors
//! captured per snapshot (the actors that cut, their backlogs) and a late sink of messages
//! recorded after their receiver's cut; `Participant::on_command` decides every command
//! (and where a completed snapshot's part goes), `Participant::keeps` which rounds to keep,
//! and recordings of snapshots without a round are dropped. A coordinator collects the
//! parts (`Coordinator::part_received`, `PartsIn`), which are checked against the cuts.
//!
//! The actors are bank accounts. The only message that carries money is a deposit; a
//! transfer withdraws locally, then sends the deposit. Outside commands and timer ticks tell
//! an account to transfer (they carry no money), asks are read-only balance queries unless
//! `money_asks` is set (then the responder withdraws half its balance into the reply and
//! the asker deposits it), children get half their parent's balance, and outside spawns
//! start empty, so money is conserved except where an actor stops (its balance and the
//! deposits it never processes are destroyed) or an ask reply nobody takes (timed out)
//! carries money away; the checker accounts for all three.
//!
//! The ask rule, as the runtime drives it:
//! - serving an ask: `ActorCut::on_ask(asker depth)` (0 for an asker on another node or a
//!   restored request), then `NodeSnapshot::actor_deepened` if the depth changed;
//! - a marker: `on_marker_at(marker, node.released())`: cut, ignore, or defer; a message
//!   tagged ahead reaching an actor deeper than `released()` defers it the same way
//!   (`on_dequeue_at`, which holds the message);
//! - while deferring, `Dequeue::Hold` messages wait in a per-actor held queue, unprocessed;
//!   at the cut they go back to the front of the mailbox, in order, *before* the backlog scan
//!   (they may be in flight for a later snapshot than the deferred one, see
//!   `Fault::HeldOutsideBacklog`);
//! - `NodeAction::Release` walks the node's deferring actors and puts a release signal on
//!   their control lanes, delivered one at a time like markers; the actor checks its depth
//!   and deferred epoch when it takes the signal and cuts with `on_marker(deferred)`;
//! - outside and timer input is tagged `arrival_tag()`;
//! - the taint: an asker that takes in a reply from a responder in a later epoch taints every
//!   snapshot in between; a tainted snapshot that completes is refused (counted, not checked).
//!
//! Refused sends, as the runtime refuses them: a send to a stopped actor is refused. A local
//! send fails at once (its sender's handler sees the error): nothing is logged or in flight,
//! a deposit stays with its sender, an ask gets its error reply. A remote ask is refused on
//! arrival: its asker gets an error reply, and it is not recorded. Only a remote tell (its
//! sender never learns) is a dead letter, recorded if it crosses the receiver's cut, its
//! money destroyed (see `Fault::RecordRefusedSends`).
//!
//! Pending restores: `World::restore` leaves the restore pending on some nodes for a while,
//! their actors registered (mailboxes take messages, the node's protocol machine counts
//! them) but not started; such a node refuses a snapshot's `Start`
//! (`Coordinator::restore_pending`, the snapshot aborts with `RestorePending`); see
//! `Fault::SnapshotDuringPendingRestore`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use amber_snapshot::{
    AbortReason, ActorCut, CommandVerdict, Coordinator, CoordinatorAction, Cut, Dequeue, Epoch,
    MAX_DEPTH, Marker, NodeAction, NodeCommand, NodeReport, NodeSnapshot, Participant, Refusal,
    StartVerdict,
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
    /// A node sends its part as soon as its actors have all cut (locally done), not once it
    /// is settled: messages sent before the snapshot may still arrive and be recorded.
    PartWhenLocallyDone,
    /// The backlog queued at the cut is not recorded.
    NoBacklogRecording,
    /// A message tagged ahead of the receiver is processed before the cut is taken.
    CutAfterProcessing,
    /// The marker `NodeSnapshot::actor_spawned` asks for is not delivered to the child.
    IgnoreChildMarker,
    /// A remote message is counted as received (which may trigger the node's report) before
    /// it is enqueued and recorded.
    CountBeforeEnqueue,
    /// Markers always cut at once (`ActorCut::on_marker`): no actor defers its cut for the
    /// asks of actors that have not cut (the ask rule is off).
    NoAskDeferral,
    /// Messages held while the cut was deferred go back to the queue after the cut's
    /// backlog scan, as "never part of the backlog" (the `Dequeue::Hold` docs) suggests.
    HeldOutsideBacklog,
    /// A message tagged ahead cuts its receiver at once (`ActorCut::on_dequeue` alone), even
    /// when the receiver is deeper than the node's released depth: the ask rule applied to
    /// markers only.
    TagCutIgnoresDepth,
    /// Tainted snapshots (an asker behind took a reply from after the responder's cut) are
    /// accepted instead of refused as inconsistent.
    IgnoreTaint,
    /// A local deposit refused by a stopped receiver is both kept by its sender (the send
    /// failed) and recorded in flight like a dead letter, as the old runtime did.
    RecordRefusedSends,
    /// A node whose restore is pending (actors registered, not started) takes part in a
    /// snapshot instead of refusing it; its unstarted actors are simply not counted (not
    /// registered with the node's protocol machine, not reached by its markers) until they
    /// start, as the old runtime did.
    SnapshotDuringPendingRestore,
    /// A node keeps only the round of the snapshot it runs: what its actors captured for a
    /// snapshot that a later one overtook here (before its coordinator's `Complete`) is
    /// dropped, and its part goes out empty (`Participant::keeps` ignored).
    DropOvertakenRounds,
    /// A node sends a completed snapshot's part to the coordinator of the snapshot it runs
    /// now, not to the one that completed it.
    PartToLatestCoordinator,
    /// Taking a snapshot's late recordings for its part also drops those of earlier
    /// snapshots, as if they were all aborted (the old `LateSink::take`): a part still owed
    /// for an earlier snapshot (overtaken here) then misses its recordings.
    TakeDropsOlder,
}

/// What one run looks like.
#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: usize,
    /// Nodes `0..coordinators` each run a coordinator that starts snapshots of all nodes,
    /// concurrently with the others (their Starts race; `Participant` lets one win).
    pub coordinators: usize,
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
    /// Asks withdraw money from the responder and the reply deposits it into the asker: a
    /// reply from after the responder's cut taken in before the asker's cut breaks the bank
    /// unless the snapshot is refused (tainted).
    pub money_asks: bool,
    /// Asks go only from an actor to a higher-indexed actor of the same node: the ask graph
    /// is a DAG, the case the ask rule must make live. Each node's actors form `layers`
    /// layers; an actor asks one of the next layer (mostly) or of a deeper one, so every
    /// layer but the first has several askers (fan-in) when a layer holds several actors.
    pub acyclic_asks: bool,
    pub layers: usize,
    /// Actors spawn children and outside code spawns actors.
    pub spawns: bool,
    /// Steps of traffic before the first snapshot may start.
    pub warmup: u64,
    /// Chance (percent) that a handler asks someone after processing a message.
    pub ask_percent: u64,
    /// Chance (percent) that a responder asks someone else before it answers (a chain of
    /// asks: its reply is computed after the nested reply).
    pub nested_percent: u64,
}

impl Config {
    /// A random shape for a run, drawn from the seed's generator.
    pub fn random(rng: &mut Rng) -> Config {
        let nodes = [1, 2, 2, 3, 3, 4][rng.below(6)];
        Config {
            nodes,
            coordinators: if rng.chance(50) { 1 } else { 1 + rng.below(nodes) },
            actors_per_node: rng.range(1, 5) as usize,
            steps: rng.range(500, 1400),
            snapshots: rng.range(2, 4) as usize,
            stops: rng.chance(50),
            aborts: rng.chance(25),
            restore: true,
            fault: Fault::None,
            outside_refs: false,
            money_asks: rng.chance(50),
            acyclic_asks: false,
            layers: 1,
            spawns: true,
            warmup: 0,
            ask_percent: 6,
            nested_percent: 30,
        }
    }
}

/// Counts of the situations a run went through, to show what the seeds covered.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub steps: u64,
    /// Parts a settled node sent before the snapshot's completion was decided.
    pub settled_parts: u64,
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
    /// Actors restarted in place after a panic (state rebuilt, mailbox and cut kept).
    pub restarts: u64,
    pub tags_ahead_of_node: u64,
    pub expects: u64,
    pub asks: u64,
    pub nested_asks: u64,
    pub reply_leaks: u64,
    pub restores: u64,
    /// Asks that made their responder deeper (`NodeSnapshot::actor_deepened`).
    pub deepened: u64,
    /// Markers an actor deferred (`Marker::Defer`).
    pub deferrals: u64,
    /// Cuts deferred on a message tagged ahead, before the actor's marker.
    pub deferrals_by_tag: u64,
    /// Cuts taken on a release signal after a deferral.
    pub deferred_cuts: u64,
    /// Messages set aside by a deferring actor (`Dequeue::Hold`).
    pub held: u64,
    /// Held messages that the cut's backlog scan recorded (tagged below the epoch the
    /// deferring actor finally cut to: its snapshot was overtaken by a later one).
    pub held_recorded: u64,
    /// `NodeAction::Release` of a depth while the snapshot runs (not at its end).
    pub releases: u64,
    /// Completed snapshots refused as inconsistent: an asker behind took a reply computed
    /// after its responder's cut.
    pub tainted: u64,
    /// Sends refused by a stopped receiver whose sender learns of it (a local send, at once;
    /// a remote ask, by its error reply): not in flight, what they carried stays with the
    /// sender.
    pub refused_sends: u64,
    /// Snapshots a node refused because a restore is pending there
    /// (`Coordinator::restore_pending`).
    pub restore_refusals: u64,
    /// Reports a node made before its coordinator's Start arrived (held by `Participant`),
    /// and held reports sent once it did.
    pub held_reports: u64,
    pub held_reports_sent: u64,
    /// Stale Starts refused (`Participant::on_start`: the node already saw a later snapshot).
    pub start_refusals: u64,
    /// Starts refused because the node follows another coordinator's snapshot of the same
    /// or a later epoch (two coordinators raced).
    pub rival_refusals: u64,
    /// Snapshots started while another coordinator's was running.
    pub concurrent_starts: u64,
    /// Parts sent for a snapshot a later one had overtaken on the node (owed to its
    /// coordinator, `Participant::keeps`).
    pub overtaken_parts: u64,
    /// Completed snapshots whose every part arrived (and was checked).
    pub parts_in: u64,
    /// Completed snapshots lost because a part did not arrive (its node's link went down).
    pub parts_lost: u64,
    /// Links declared down between a coordinator's node and another node.
    pub links_down: u64,
    /// Replies from after the responder's cut taken in by a same-node asker although the
    /// responder was already deeper than the asker when it cut: the ask rule itself failed
    /// (else the responder's depth was still being learnt).
    pub taints_despite_depth: u64,
    /// The same counts for the snapshots after each world's first one (depths are learnt
    /// from traffic, so the first one may be tainted).
    pub later_started: u64,
    pub later_completed: u64,
    pub later_tainted: u64,
    pub later_aborted: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        macro_rules! sum {
            ($($f:ident),*) => { $(self.$f += o.$f;)* };
        }
        sum!(
            steps,
            settled_parts,
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
            restarts,
            tags_ahead_of_node,
            expects,
            asks,
            nested_asks,
            reply_leaks,
            restores,
            deepened,
            deferrals,
            deferrals_by_tag,
            deferred_cuts,
            held,
            held_recorded,
            releases,
            tainted,
            refused_sends,
            restore_refusals,
            held_reports,
            held_reports_sent,
            start_refusals,
            rival_refusals,
            concurrent_starts,
            overtaken_parts,
            parts_in,
            parts_lost,
            links_down,
            taints_despite_depth,
            later_started,
            later_completed,
            later_tainted,
            later_aborted
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
    /// An ask from an actor of ask depth `depth` (0 from another node or a restore); the
    /// reply is not a channel message.
    Ask { ask: u64, asker: Option<usize>, depth: u8 },
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
    /// Refused by a stopped receiver and its sender learnt of it (a remote ask, by its error
    /// reply): not in flight, never recorded.
    pub refused: bool,
    pub processed: Option<u64>,
    /// For an ask: when the responder answered it, and the money (with `money_asks`) it
    /// withdrew into the reply.
    pub answered: Option<(u64, i64)>,
    /// For an ask: when the asker took the reply in (never if the ask timed out first, or
    /// the request came from a restore: then the reply's money is destroyed).
    pub absorbed: Option<u64>,
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
    /// The actor's ask depth when it cut.
    pub depth: u8,
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
    /// False while its restore is pending: registered (its mailbox takes messages), not
    /// running.
    pub started: bool,
    pub balance: i64,
    pub birth: Birth,
    pub born: Epoch,
    pub cuts: Vec<CutRecord>,
    /// Recorded in-flight messages per snapshot, in recording order.
    pub recorded: BTreeMap<Epoch, Vec<usize>>,
    /// When it stopped and with which balance.
    pub stopped: Option<(u64, i64)>,
    /// When a panic restarted it in place (same mailbox, same cut: the runtime tells the
    /// snapshot machinery nothing) and the balance its rebuilt state lost.
    pub restarts: Vec<(u64, i64)>,
    mailbox: VecDeque<Msg>,
    /// Messages set aside while the actor defers its cut (`Dequeue::Hold`), in order.
    held: VecDeque<Msg>,
    control: VecDeque<Control>,
    waiting: Option<u64>,
    reply: Option<Reply>,
    /// An ask this actor is serving, whose answer waits for the actor's own (nested) ask:
    /// (ask, asker, the request's message id).
    serving: Option<(u64, Option<usize>, usize)>,
    last_seen: i64,
}

/// A signal on an actor's control lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Marker(Epoch),
    /// The node released deferring actors of depth up to `depth` for snapshots up to `epoch`.
    Release {
        epoch: Epoch,
        depth: u8,
    },
}

impl Actor {
    fn new(node: usize, epoch: Epoch, balance: i64, birth: Birth) -> Actor {
        Actor {
            node,
            cut: ActorCut::new(epoch),
            alive: true,
            started: true,
            balance,
            birth,
            born: epoch,
            cuts: Vec::new(),
            recorded: BTreeMap::new(),
            stopped: None,
            restarts: Vec::new(),
            mailbox: VecDeque::new(),
            held: VecDeque::new(),
            control: VecDeque::new(),
            waiting: None,
            reply: None,
            serving: None,
            last_seen: 0,
        }
    }

    fn runnable(&self) -> bool {
        self.alive
            && self.started
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
    Restart,
    Start,
    NodeDown,
    AskTimeout,
}

#[derive(Debug)]
enum LinkItem {
    Data { to: usize, msg: Msg, counted: bool },
    Reply { to: usize, ask: u64, value: Reply },
}

/// What a node captured for one snapshot: the actors that cut for it here and their
/// backlogs at the cut.
#[derive(Debug, Default, Clone)]
struct Round {
    actors: BTreeSet<usize>,
    records: Vec<usize>,
}

/// What a node sends its coordinators, over one FIFO link per coordinator.
#[derive(Debug)]
enum Up {
    Report(NodeReport<usize>),
    Reject {
        epoch: Epoch,
        reason: Refusal<usize>,
    },
    RestorePending {
        epoch: Epoch,
    },
    /// The node's part of a completed snapshot: the actors whose cuts it holds and the
    /// messages it recorded, or `None` if it held no round for it.
    Part {
        epoch: Epoch,
        round: Option<Round>,
    },
}

#[derive(Debug)]
pub struct Node {
    pub proto: NodeSnapshot<usize>,
    /// Which coordinators the node follows, where its reports go, whether it takes part,
    /// which parts it owes (`Participant`, the same machine the runtime's engine asks).
    follow: Participant<usize>,
    /// Commands from each coordinator (by index), in FIFO order.
    commands: Vec<VecDeque<NodeCommand<usize>>>,
    /// Reports, refusals and parts for each coordinator (by index), in FIFO order.
    reports: Vec<VecDeque<Up>>,
    /// What the node's actors captured, per snapshot (`Participant::keeps` says which to
    /// keep, as in the runtime's engine).
    rounds: BTreeMap<Epoch, Round>,
    /// Messages recorded after their receiver's cut, (snapshot, message), in the order
    /// recorded: the runtime's late sink, taken per snapshot for its part.
    late: Vec<(Epoch, usize)>,
    /// Marker and release broadcasts in progress: actors still to be sent a signal. The
    /// runtime walks its registry while actors run, so signals reach actors one at a time,
    /// in any order.
    broadcast: Vec<(usize, Control)>,
    /// With `Fault::CountBeforeEnqueue`: messages counted but not enqueued yet.
    arriving: VecDeque<(usize, Msg)>,
    /// A restore pending here until this step: its actors are registered but not started,
    /// and the node refuses snapshots (`Coordinator::restore_pending`).
    pending_until: Option<u64>,
    /// Snapshots whose part the node sent once settled (`NodeSnapshot::settled`), before
    /// their `Complete`: nothing may be captured for them here any more.
    sent_settled: BTreeSet<Epoch>,
}

/// One line of the event trace (read through its `Debug` output).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub enum Ev {
    Send { from: usize, to: usize, id: usize, tag: Epoch, remote: bool },
    Input { to: usize, id: usize, timer: bool },
    Arrive { to: usize, id: usize, tag: Epoch, recorded: Option<Epoch>, dead: bool },
    Process { actor: usize, id: usize, tag: Epoch },
    Cut { actor: usize, from: Epoch, to: Epoch, by: &'static str, depth: u8, backlog: usize },
    Marker { actor: usize, epoch: Epoch },
    Defer { actor: usize, epoch: Epoch, depth: u8, released: u8 },
    Hold { actor: usize, id: usize, tag: Epoch },
    Release { actor: usize, epoch: Epoch, depth: u8 },
    NodeRelease { node: usize, epoch: Epoch, depth: u8 },
    Deepen { actor: usize, from: u8, to: u8 },
    Spawn { actor: usize, parent: Option<usize>, node: usize, epoch: Epoch, marker: bool },
    Stop { actor: usize, epoch: Epoch },
    Restart { actor: usize },
    RefusedSend { from: usize, to: usize, kind: Kind },
    RestorePending { node: usize, epoch: Epoch },
    RestoreStarted { node: usize },
    Part { node: usize, coordinator: usize, epoch: Epoch, actors: usize },
    PartsIn { coordinator: usize, epoch: Epoch },
    Ask { actor: usize, ask: u64 },
    AskDone { actor: usize, ask: u64, leak: bool },
    Answer { actor: usize, ask: u64, epoch: Epoch },
    Start { coordinator: usize, epoch: Epoch },
    Command { node: usize, coordinator: usize, command: &'static str, epoch: Epoch },
    Report { node: usize, epoch: Epoch, done: bool },
    Completed { coordinator: usize, epoch: Epoch },
    Refused { epoch: Epoch },
    Aborted { coordinator: usize, epoch: Epoch, reason: AbortReason<usize> },
    LinkDown { coordinator: usize, node: usize },
}

impl Ev {
    fn mentions(&self, actors: &[usize]) -> bool {
        let involved: &[usize] = match *self {
            Ev::Send { from, to, .. } | Ev::RefusedSend { from, to, .. } => &[from, to],
            Ev::Input { to, .. } | Ev::Arrive { to, .. } => &[to],
            Ev::Process { actor, .. }
            | Ev::Cut { actor, .. }
            | Ev::Marker { actor, .. }
            | Ev::Defer { actor, .. }
            | Ev::Hold { actor, .. }
            | Ev::Release { actor, .. }
            | Ev::Deepen { actor, .. }
            | Ev::Stop { actor, .. }
            | Ev::Restart { actor }
            | Ev::Ask { actor, .. }
            | Ev::AskDone { actor, .. }
            | Ev::Answer { actor, .. } => &[actor],
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
    /// The coordinator of node `c`, for `c` in `0..cfg.coordinators`.
    pub coords: Vec<Coordinator<usize>>,
    /// The parts each coordinator received of the snapshot it collects, by node.
    parts: Vec<BTreeMap<usize, Round>>,
    timers: Vec<usize>,
    pub log: Vec<Sent>,
    trace: Vec<(u64, Ev)>,
    pub stats: Stats,
    /// The money in the world when it started.
    pub initial_total: i64,
    pub completed: BTreeSet<Epoch>,
    /// Completed snapshots whose every part arrived at their coordinator: checkpoints.
    pub checkpointed: BTreeSet<Epoch>,
    /// Messages recorded for a snapshot after it completed: (snapshot, message, receiver).
    recorded_after_completion: Vec<(Epoch, usize, usize)>,
    /// When each coordinator's running snapshot started.
    running_since: Vec<u64>,
    next_ask: u64,
    /// Ask id -> the request's message id.
    asks: BTreeMap<u64, usize>,
    /// Replies taken by an asker in an earlier epoch than the responder's when it answered:
    /// (when, the request's message id).
    pub leaks: Vec<(u64, usize)>,
    /// Snapshots such a reply taints: the runtime refuses them as inconsistent.
    pub tainted: BTreeSet<Epoch>,
    /// snapshot -> the step at which an ask first crossed one of its cuts, on any node
    /// (`NodeSnapshot::ask_crossed`; the coordinator then releases every deferred cut on
    /// every node): that snapshot is lost anyway, and cuts after it are not held to the ask
    /// rule.
    crossed: BTreeMap<Epoch, u64>,
    /// Coordinators that started each snapshot epoch: two rivals may start the same one (one
    /// of them, at most, completes; the other's abort releases its nodes' deferred cuts,
    /// which the ask rule's accounting cannot tell apart from the rival's).
    starters: BTreeMap<Epoch, BTreeSet<usize>>,
    /// The first snapshot this world started.
    first_epoch: Option<Epoch>,
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
                    follow: Participant::new(n),
                    commands: (0..cfg.coordinators).map(|_| VecDeque::new()).collect(),
                    reports: (0..cfg.coordinators).map(|_| VecDeque::new()).collect(),
                    rounds: BTreeMap::new(),
                    late: Vec::new(),
                    broadcast: Vec::new(),
                    arriving: VecDeque::new(),
                    pending_until: None,
                    sent_settled: BTreeSet::new(),
                })
                .collect(),
            links: (0..k * k).map(|_| VecDeque::new()).collect(),
            coords: (0..cfg.coordinators).map(|_| Coordinator::new(epoch)).collect(),
            parts: (0..cfg.coordinators).map(|_| BTreeMap::new()).collect(),
            timers: Vec::new(),
            log: Vec::new(),
            trace: Vec::new(),
            stats: Stats::default(),
            initial_total: 0,
            completed: BTreeSet::new(),
            checkpointed: BTreeSet::new(),
            recorded_after_completion: Vec::new(),
            running_since: vec![0; cfg.coordinators],
            next_ask: 0,
            asks: BTreeMap::new(),
            leaks: Vec::new(),
            tainted: BTreeSet::new(),
            crossed: BTreeMap::new(),
            starters: BTreeMap::new(),
            first_epoch: None,
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
        // The restore is pending on some nodes for a while: actors registered, not started.
        for n in 0..w.cfg.nodes {
            if w.rng.chance(50) {
                w.nodes[n].pending_until = Some(w.rng.range(20, 400));
                // (The old runtime took part in snapshots all the same.)
                if w.cfg.fault != Fault::SnapshotDuringPendingRestore {
                    w.nodes[n].follow.restore_began();
                }
            }
        }
        let mut index = BTreeMap::new();
        for (old, a) in self.actors.iter().enumerate() {
            if let Some(c) = a.cuts.iter().find(|c| c.to == epoch) {
                index.insert(old, w.actors.len());
                let mut actor = Actor::new(a.node, epoch, c.balance, Birth::Initial(epoch));
                let pending = w.nodes[a.node].pending_until.is_some();
                actor.started = !pending;
                w.actors.push(actor);
                // (The old runtime registered a restored actor only when it started.)
                if !pending || w.cfg.fault != Fault::SnapshotDuringPendingRestore {
                    let marker = w.nodes[a.node].proto.actor_spawned(epoch);
                    assert_eq!(marker, None);
                }
            }
        }
        for (&old, &new) in &index {
            for &id in self.actors[old].recorded.get(&epoch).into_iter().flatten() {
                let m = &self.log[id];
                let kind = match m.kind {
                    // The asker's handler finished before its cut; nobody awaits this reply.
                    Kind::Ask { ask, .. } => Kind::Ask { ask, asker: None, depth: 0 },
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
            let Some(epoch) = self.running() else { break };
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

    /// The latest snapshot any coordinator runs (collecting its parts included).
    fn running(&self) -> Option<Epoch> {
        self.coords.iter().filter_map(Coordinator::running).max()
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
        for n in 0..self.cfg.nodes {
            if self.nodes[n].pending_until.is_some_and(|s| s <= self.step) {
                self.finish_restore(n);
            }
        }
        let running = self.running();
        let runnable = self.actors.iter().any(Actor::runnable);
        let links = self.links.iter().any(|l| !l.is_empty());
        let control = self.nodes.iter().any(|n| {
            n.commands.iter().any(|q| !q.is_empty()) || n.reports.iter().any(|q| !q.is_empty())
        });
        let broadcasting = self.nodes.iter().any(|n| !n.broadcast.is_empty());
        let alive = self.actors.iter().filter(|a| a.alive).count();
        let asking =
            self.actors.iter().any(|a| a.alive && a.waiting.is_some() && a.reply.is_none());
        let may_start = self.coords.iter().any(|c| c.running().is_none())
            && self.stats.started < self.cfg.snapshots as u64
            && self.step > self.cfg.warmup;
        // (weight, event); zero weights are not enabled.
        let arriving = self.nodes.iter().any(|n| !n.arriving.is_empty());
        let events: [(u64, Event); 13] = [
            (if arriving { 100 } else { 0 }, Event::Arrival),
            (if runnable { 400 } else { 0 }, Event::ActorStep),
            (if links { 250 } else { 0 }, Event::Link),
            (if control { 120 } else { 0 }, Event::Control),
            (if broadcasting { 150 } else { 0 }, Event::Marker),
            (if input { 50 } else { 0 }, Event::OutsideSend),
            (if self.timers.is_empty() { 0 } else { 40 }, Event::Timer),
            (
                if input && self.cfg.spawns && self.actors.len() < MAX_ACTORS { 3 } else { 0 },
                Event::OutsideSpawn,
            ),
            (
                if input && self.cfg.stops && alive * 3 > self.actors.len() * 2 { 6 } else { 0 },
                Event::Stop,
            ),
            (if input && self.cfg.stops { 4 } else { 0 }, Event::Restart),
            (if input && may_start { 30 } else { 0 }, Event::Start),
            (if input && running.is_some() && self.cfg.aborts { 1 } else { 0 }, Event::NodeDown),
            // Asks time out (actors asking each other in a cycle would wait forever).
            (if asking { 10 } else { 0 }, Event::AskTimeout),
        ];
        let weights: Vec<u64> = events.iter().map(|&(w, _)| w).collect();
        if weights.iter().all(|&w| w == 0) {
            // Nothing else can happen: pending restores finish now.
            let pending: Vec<usize> =
                (0..self.cfg.nodes).filter(|&n| self.nodes[n].pending_until.is_some()).collect();
            for &n in &pending {
                self.finish_restore(n);
            }
            return !pending.is_empty();
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
                if let Some(x) = self.pick(|a| a.alive && a.started && a.waiting.is_none()) {
                    self.stop(x);
                }
            }
            Event::Restart => {
                if let Some(x) = self.pick(|a| a.alive && a.started && a.waiting.is_none()) {
                    let at = self.tick();
                    let a = &mut self.actors[x];
                    // Rebuilt by its factory: a fresh account. What it held is gone.
                    a.restarts.push((at, a.balance));
                    a.balance = 0;
                    a.last_seen = 0;
                    self.stats.restarts += 1;
                    self.trace(Ev::Restart { actor: x });
                }
            }
            Event::Start => self.start_snapshot(),
            Event::NodeDown => self.link_down(),
            Event::AskTimeout => {
                let x = self.pick(|a| a.alive && a.waiting.is_some() && a.reply.is_none());
                self.actors[x.expect("a waiting actor")].reply = Some(None);
            }
        }
        for c in 0..self.coords.len() {
            self.coords[c].handle_timeout(self.step);
            self.drain_coord(c);
            if let Some(epoch) = self.coords[c].running()
                && self.coords[c].poll_timeout().is_none()
                && self.step - self.running_since[c] > STALL_STEPS
            {
                self.fail(
                    format!(
                        "livelock: snapshot {epoch} of coordinator {c} did not complete in {STALL_STEPS} steps"
                    ),
                    &[],
                );
            }
        }
        true
    }

    /// The link between a coordinator's node and another node is declared down (spuriously:
    /// messages keep flowing). Each side hears that the other is down, as the runtime's
    /// engines do: a coordinator aborts a snapshot the other node takes part in (or whose
    /// part it still awaits from it), a participant aborts the snapshot the other coordinates
    /// and no longer owes it parts.
    fn link_down(&mut self) {
        let c = self.rng.below(self.coords.len());
        let n = if self.cfg.nodes == 1 {
            c
        } else {
            (c + 1 + self.rng.below(self.cfg.nodes - 1)) % self.cfg.nodes
        };
        self.stats.links_down += 1;
        self.trace(Ev::LinkDown { coordinator: c, node: n });
        for (me, other) in [(c, n), (n, c)] {
            if me == other && self.cfg.nodes > 1 {
                continue;
            }
            if me < self.coords.len() {
                self.coords[me].node_down(&other);
                self.drain_coord(me);
            }
            if me != other {
                let node = &mut self.nodes[me];
                let _ = node.follow.coordinator_down(&mut node.proto, &other);
                self.drain_node(me);
            }
        }
    }

    fn pick(&mut self, f: impl Fn(&Actor) -> bool) -> Option<usize> {
        let n = self.actors.len();
        if n == 0 {
            return None;
        }
        let start = self.rng.below(n);
        (0..n).map(|i| (start + i) % n).find(|&i| f(&self.actors[i]))
    }

    /// A coordinator that runs no snapshot starts one, as the runtime's engine does: not
    /// while its node follows another coordinator's running snapshot or holds a pending
    /// restore, and numbered above every epoch its node has seen.
    fn start_snapshot(&mut self) {
        let idle: Vec<usize> =
            (0..self.coords.len()).filter(|&c| self.coords[c].running().is_none()).collect();
        let c = idle[self.rng.below(idle.len())];
        let node = &self.nodes[c];
        if node.follow.restore_pending() || node.follow.followed(&node.proto).is_some() {
            return;
        }
        if self.running().is_some() {
            self.stats.concurrent_starts += 1;
        }
        let seen = node.proto.epoch();
        self.coords[c].skip_to(seen);
        let deadline = self.cfg.aborts.then(|| self.step + self.rng.range(50, 1500));
        let epoch = self.coords[c].start(0..self.cfg.nodes, deadline).expect("no snapshot running");
        self.parts[c].clear();
        self.stats.started += 1;
        if self.first_epoch.is_none() {
            self.first_epoch = Some(epoch);
        } else {
            self.stats.later_started += 1;
        }
        self.running_since[c] = self.step;
        self.starters.entry(epoch).or_default().insert(c);
        self.trace(Ev::Start { coordinator: c, epoch });
        self.drain_coord(c);
    }

    fn drain_coord(&mut self, c: usize) {
        while let Some(action) = self.coords[c].poll() {
            match action {
                CoordinatorAction::Send { to, command } => {
                    if matches!(command, NodeCommand::Expect { .. }) {
                        self.stats.expects += 1;
                    }
                    self.nodes[to].commands[c].push_back(command);
                }
                CoordinatorAction::Completed(epoch) => {
                    let later = self.first_epoch != Some(epoch);
                    if !self.completed.insert(epoch) {
                        self.fail(format!("snapshot {epoch} completed twice"), &[]);
                    }
                    self.trace(Ev::Completed { coordinator: c, epoch });
                    if self.tainted.contains(&epoch) && self.cfg.fault != Fault::IgnoreTaint {
                        // The runtime refuses it (Inconsistent): no checkpoint to check.
                        self.stats.tainted += 1;
                        self.stats.later_tainted += u64::from(later);
                        self.trace(Ev::Refused { epoch });
                        continue;
                    }
                    self.stats.completed += 1;
                    self.stats.later_completed += u64::from(later);
                    if let Err(v) = check::snapshot(self, epoch) {
                        self.fail(format!("snapshot {epoch}: {}", v.what), &v.actors);
                    }
                }
                CoordinatorAction::PartsIn(epoch) => {
                    self.trace(Ev::PartsIn { coordinator: c, epoch });
                    self.stats.parts_in += 1;
                    if let Some(&(_, id, to)) =
                        self.recorded_after_completion.iter().find(|(e, ..)| *e == epoch)
                    {
                        self.fail(
                            format!(
                                "message {id} recorded for snapshot {epoch} after it completed"
                            ),
                            &[to],
                        );
                    }
                    if let Err(v) = self.check_parts(c, epoch) {
                        self.fail(format!("snapshot {epoch}: {}", v.0), &v.1);
                    }
                    if !self.tainted.contains(&epoch) {
                        self.checkpointed.insert(epoch);
                    }
                }
                CoordinatorAction::Aborted { epoch, reason } => {
                    if matches!(reason, AbortReason::PartLost(_) | AbortReason::PartsLate) {
                        self.stats.parts_lost += 1;
                    } else {
                        self.stats.aborted += 1;
                        self.stats.later_aborted += u64::from(self.first_epoch != Some(epoch));
                    }
                    self.trace(Ev::Aborted { coordinator: c, epoch, reason });
                }
            }
        }
    }

    /// The parts coordinator `c` collected for completed snapshot `epoch` hold exactly the
    /// actors that cut for it, each in the part of its own node.
    fn check_parts(&self, c: usize, epoch: Epoch) -> Result<(), (String, Vec<usize>)> {
        for (i, a) in self.actors.iter().enumerate() {
            let member = a.cuts.iter().any(|cut| cut.to == epoch);
            let held: Vec<usize> = self.parts[c]
                .iter()
                .filter(|(_, round)| round.actors.contains(&i))
                .map(|(&n, _)| n)
                .collect();
            match (member, held.as_slice()) {
                (true, [n]) if *n == a.node => {}
                (false, []) => {}
                (true, []) => {
                    return Err((
                        format!("actor {i} cut for it but is in no node's part"),
                        vec![i],
                    ));
                }
                _ => {
                    return Err((
                        format!(
                            "actor {i} (node {}, member: {member}) is in the parts of nodes {held:?}",
                            a.node
                        ),
                        vec![i],
                    ));
                }
            }
        }
        let mut expected: Vec<usize> = self
            .actors
            .iter()
            .flat_map(|a| a.recorded.get(&epoch).into_iter().flatten().copied())
            .collect();
        let mut got: Vec<usize> =
            self.parts[c].values().flat_map(|r| r.records.iter().copied()).collect();
        expected.sort_unstable();
        got.sort_unstable();
        if expected != got {
            let missing: Vec<usize> =
                expected.iter().filter(|m| !got.contains(m)).copied().collect();
            let extra: Vec<usize> = got.iter().filter(|m| !expected.contains(m)).copied().collect();
            let actors: Vec<usize> = missing.iter().map(|&m| self.log[m].receiver).collect();
            return Err((
                format!(
                    "the parts' recordings miss messages {missing:?} and hold {extra:?} in excess"
                ),
                actors,
            ));
        }
        Ok(())
    }

    /// Opens the round of the snapshot node `n` runs and drops those nobody will ask for, as
    /// the runtime's engine does after every step of its machines.
    fn sync_rounds(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        if let Some(e) = node.proto.running() {
            node.rounds.entry(e).or_default();
        }
        let drop_overtaken = self.cfg.fault == Fault::DropOvertakenRounds;
        let Node { rounds, follow, proto, .. } = node;
        let mut dropped = None;
        rounds.retain(|&e, _| {
            let keep =
                if drop_overtaken { proto.running() == Some(e) } else { follow.keeps(proto, e) };
            if !keep {
                dropped = dropped.max(Some(e));
            }
            keep
        });
        let Node { sent_settled, follow, proto, .. } = &mut *node;
        sent_settled.retain(|&e| follow.keeps(proto, e));
        if let Some(e) = dropped {
            if self.cfg.fault == Fault::TakeDropsOlder {
                // The old runtime discarded an aborted snapshot's recordings with
                // `take(e)`, which dropped every earlier snapshot's too.
                node.late.retain(|(r, _)| *r > e);
            }
            Self::drop_unowed_records(node);
        }
    }

    /// Drops the recordings of snapshots the node will send no part of, as the runtime's
    /// engine does: those it holds no round for, up to its target.
    fn drop_unowed_records(node: &mut Node) {
        let target = node.proto.epoch();
        let Node { late, rounds, .. } = node;
        late.retain(|(e, _)| *e > target || rounds.contains_key(e));
    }

    fn drain_node(&mut self, n: usize) {
        while let Some(action) = self.nodes[n].proto.poll() {
            match action {
                NodeAction::Markers(epoch) => {
                    // The registry as the broadcast finds it: actors spawned from now on
                    // are not in it (the spawn's own marker covers them).
                    // (With `Fault::SnapshotDuringPendingRestore`, unstarted restored actors
                    // are not in it.)
                    let unregistered = self.cfg.fault == Fault::SnapshotDuringPendingRestore;
                    for (i, a) in self.actors.iter().enumerate() {
                        if a.node == n
                            && a.alive
                            && (a.started || !unregistered)
                            && a.cut.epoch() < epoch
                        {
                            self.nodes[n].broadcast.push((i, Control::Marker(epoch)));
                        }
                    }
                }
                NodeAction::Release { epoch, depth } => {
                    if depth < MAX_DEPTH {
                        self.stats.releases += 1;
                    }
                    self.trace(Ev::NodeRelease { node: n, epoch, depth });
                    // Every actor deferring for a snapshot up to `epoch` gets the signal on
                    // its control lane; it checks its depth when it takes it. (An actor that
                    // defers from now on reads the new `released()` and cuts at once.)
                    for (i, a) in self.actors.iter().enumerate() {
                        if a.node == n && a.alive && a.cut.deferred().is_some_and(|d| d <= epoch) {
                            self.nodes[n].broadcast.push((i, Control::Release { epoch, depth }));
                        }
                    }
                }
                NodeAction::Report(r) => {
                    self.trace(Ev::Report { node: n, epoch: r.epoch, done: r.locally_done });
                    // To the coordinator the node follows, or held until its Start arrives.
                    if let Some((c, r)) = self.nodes[n].follow.route(r) {
                        self.nodes[n].reports[c].push_back(Up::Report(r));
                    } else {
                        self.stats.held_reports += 1;
                    }
                }
            }
        }
        self.sync_rounds(n);
        self.send_settled(n);
    }

    /// A settled node sends its part at once, as the runtime's engine does: its round and
    /// what it recorded for the snapshot, to the coordinator it follows (which takes it
    /// before the decision). Its `Complete` then sends nothing.
    fn send_settled(&mut self, n: usize) {
        let early = self.cfg.fault == Fault::PartWhenLocallyDone;
        let node = &mut self.nodes[n];
        let settled = if early {
            node.proto.running().filter(|_| node.proto.is_locally_done())
        } else {
            node.proto.settled()
        };
        let Some(epoch) = settled else { return };
        let Some(&to) = node.follow.leader_of(epoch) else { return };
        if node.sent_settled.contains(&epoch) {
            return;
        }
        let Some(mut round) = node.rounds.remove(&epoch) else { return };
        node.sent_settled.insert(epoch);
        let mut taken = Vec::new();
        node.late.retain(|&(e, id)| {
            if e == epoch {
                taken.push(id);
            }
            e != epoch
        });
        round.records.extend(taken);
        self.stats.settled_parts += 1;
        let actors = round.actors.len();
        self.trace(Ev::Part { node: n, coordinator: to, epoch, actors });
        self.nodes[n].reports[to].push_back(Up::Part { epoch, round: Some(round) });
    }

    fn deliver_marker(&mut self) {
        let nodes: Vec<usize> =
            (0..self.cfg.nodes).filter(|&n| !self.nodes[n].broadcast.is_empty()).collect();
        let n = nodes[self.rng.below(nodes.len())];
        let pending = &mut self.nodes[n].broadcast;
        let (actor, signal) = pending.swap_remove(self.rng.below(pending.len()));
        let a = &mut self.actors[actor];
        match signal {
            Control::Marker(epoch) if a.alive && a.cut.epoch() < epoch => {
                a.control.push_back(signal);
                self.trace(Ev::Marker { actor, epoch });
            }
            Control::Release { epoch, depth } if a.alive => {
                a.control.push_back(signal);
                self.trace(Ev::Release { actor, epoch, depth });
            }
            _ => {}
        }
    }

    fn deliver_control(&mut self) {
        // (node, coordinator, to the node?) for each non-empty FIFO between a coordinator
        // and a node.
        let mut queues = Vec::new();
        for n in 0..self.cfg.nodes {
            for c in 0..self.coords.len() {
                if !self.nodes[n].commands[c].is_empty() {
                    queues.push((n, c, true));
                }
                if !self.nodes[n].reports[c].is_empty() {
                    queues.push((n, c, false));
                }
            }
        }
        let (n, c, down) = queues[self.rng.below(queues.len())];
        if down {
            let command = self.nodes[n].commands[c].pop_front().unwrap();
            self.deliver_command(n, c, command);
        } else {
            let up = self.nodes[n].reports[c].pop_front().unwrap();
            self.deliver_up(n, c, up);
        }
    }

    /// Coordinator `c`'s command reaches node `n`: the participant machine decides.
    fn deliver_command(&mut self, n: usize, c: usize, command: NodeCommand<usize>) {
        let (name, epoch) = match &command {
            NodeCommand::Start(e) => ("start", *e),
            NodeCommand::Expect { epoch, .. } => ("expect", *epoch),
            NodeCommand::Release { epoch, .. } => ("release", *epoch),
            NodeCommand::Complete(e) => ("complete", *e),
            NodeCommand::Abort { epoch, .. } => ("abort", *epoch),
        };
        let node = &mut self.nodes[n];
        let running = node.proto.running();
        let verdict = node.follow.on_command(&mut node.proto, &c, command);
        match verdict {
            CommandVerdict::Start(StartVerdict::Follow { held }) => {
                self.trace(Ev::Command { node: n, coordinator: c, command: name, epoch });
                if let Some(r) = held {
                    self.stats.held_reports_sent += 1;
                    self.nodes[n].reports[c].push_back(Up::Report(r));
                }
            }
            CommandVerdict::Start(StartVerdict::Repeated) => {}
            CommandVerdict::Start(StartVerdict::RestorePending) => {
                // Restored actors not started yet would be missing: the node refuses.
                self.stats.restore_refusals += 1;
                self.trace(Ev::RestorePending { node: n, epoch });
                self.nodes[n].reports[c].push_back(Up::RestorePending { epoch });
            }
            CommandVerdict::Start(StartVerdict::Refuse(reason)) => {
                match reason {
                    Refusal::FollowsOther { .. } | Refusal::TakingOther { .. } => {
                        self.stats.rival_refusals += 1;
                    }
                    _ => self.stats.start_refusals += 1,
                }
                self.trace(Ev::Command { node: n, coordinator: c, command: "refused", epoch });
                self.nodes[n].reports[c].push_back(Up::Reject { epoch, reason });
            }
            CommandVerdict::Ignored => {
                // A command about a snapshot this node does not follow (its Start was
                // refused, or its coordinator was declared down): ignored, as by the runtime.
                self.trace(Ev::Command { node: n, coordinator: c, command: "ignored", epoch });
            }
            CommandVerdict::Obeyed | CommandVerdict::Discard(_) => {
                self.trace(Ev::Command { node: n, coordinator: c, command: name, epoch });
            }
            CommandVerdict::SendPart { epoch, .. } if self.nodes[n].sent_settled.remove(&epoch) => {
                // Sent when the node settled: only what is left of the round goes (it must
                // be empty, as must the recordings for it).
                self.trace(Ev::Command { node: n, coordinator: c, command: name, epoch });
                let node = &mut self.nodes[n];
                let round = node.rounds.remove(&epoch).unwrap_or_default();
                let late: Vec<usize> =
                    node.late.iter().filter(|(e, _)| *e == epoch).map(|(_, id)| *id).collect();
                Self::drop_unowed_records(node);
                if !round.actors.is_empty() || !round.records.is_empty() || !late.is_empty() {
                    let actors: Vec<usize> = round.actors.iter().copied().collect();
                    self.fail(
                        format!(
                            "node {n} captured more for snapshot {epoch} after it settled and sent its part: actors {actors:?}, messages {:?}",
                            late.iter().chain(&round.records).collect::<Vec<_>>()
                        ),
                        &actors,
                    );
                }
            }
            CommandVerdict::SendPart { epoch, to } => {
                self.trace(Ev::Command { node: n, coordinator: c, command: name, epoch });
                if running != Some(epoch) {
                    self.stats.overtaken_parts += 1;
                }
                let to = if self.cfg.fault == Fault::PartToLatestCoordinator {
                    let node = &self.nodes[n];
                    node.proto
                        .running()
                        .and_then(|e| node.follow.leader_of(e))
                        .copied()
                        .unwrap_or(to)
                } else {
                    to
                };
                let take_drops_older = self.cfg.fault == Fault::TakeDropsOlder;
                let node = &mut self.nodes[n];
                let mut round = node.rounds.remove(&epoch);
                let mut taken = Vec::new();
                node.late.retain(|&(e, id)| {
                    if e == epoch {
                        taken.push(id);
                    }
                    e > epoch || (e < epoch && !take_drops_older)
                });
                if let Some(round) = &mut round {
                    round.records.extend(taken);
                }
                Self::drop_unowed_records(node);
                let count = round.as_ref().map_or(0, |r| r.actors.len());
                self.trace(Ev::Part { node: n, coordinator: to, epoch, actors: count });
                self.nodes[n].reports[to].push_back(Up::Part { epoch, round });
            }
        }
        self.drain_node(n);
    }

    /// Node `n`'s report, refusal or part reaches coordinator `c`.
    fn deliver_up(&mut self, n: usize, c: usize, up: Up) {
        match up {
            Up::Report(report) => self.coords[c].handle_report(report),
            Up::RestorePending { epoch } => self.coords[c].restore_pending(n, epoch),
            Up::Reject { epoch, reason } => {
                // With one coordinator, only a stale Start is refused (its snapshot was
                // aborted and a later one reached this node first, through a tagged
                // message): the coordinator ignores the refusal.
                let running = self.coords[c].running();
                self.coords[c].reject(n, epoch, reason);
                if self.coords.len() == 1 && self.coords[c].running() != running {
                    self.fail(format!("node {n} refused the running snapshot {epoch}"), &[]);
                }
            }
            Up::Part { epoch, round } => {
                if self.coords[c].takes_part(epoch, &n) {
                    let Some(round) = round else {
                        // The runtime refuses such a checkpoint (`CaptureProblem::NoCuts`).
                        return self.fail(
                            format!("node {n} completed snapshot {epoch} holding no round for it"),
                            &[],
                        );
                    };
                    self.parts[c].insert(n, round);
                    self.coords[c].part_received(&n, epoch);
                }
            }
        }
        self.drain_coord(c);
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
            refused: false,
            processed: None,
            answered: None,
            absorbed: None,
        });
        self.log.len() - 1
    }

    /// A data message reaches its receiver's mailbox (or is refused as a dead letter).
    fn arrive(&mut self, to: usize, mut msg: Msg, tag_on_arrival: bool) {
        if tag_on_arrival {
            msg.tag = self.actors[to].cut.arrival_tag();
            self.log[msg.id].tag = msg.tag;
        }
        let t = self.tick();
        self.log[msg.id].arrived = Some(t);
        let a = &mut self.actors[to];
        // A refused ask is not in flight: its asker gets an error reply (a refused local
        // send never gets here, see `send`, but with `Fault::RecordRefusedSends`).
        let refused = !a.alive && matches!(self.log[msg.id].kind, Kind::Ask { asker: Some(_), .. });
        let recorded = match self.cfg.fault {
            Fault::NoLateRecording => None,
            _ if refused => None,
            _ => a.cut.recording(msg.tag),
        };
        if let Some(e) = recorded {
            if self.nodes[a.node].sent_settled.contains(&e) {
                let (node, to) = (a.node, msg.id);
                return self.fail(
                    format!("message {to} recorded for snapshot {e} on node {node} after the node settled and sent its part"),
                    &[self.log[to].receiver],
                );
            }
            a.recorded.entry(e).or_default().push(msg.id);
            self.nodes[a.node].late.push((e, msg.id));
            if a.alive {
                self.stats.late_recorded += 1;
            } else {
                self.stats.dead_letters_recorded += 1;
            }
        }
        let alive = a.alive;
        let asked = matches!(self.log[msg.id].kind, Kind::Ask { asker: Some(_), .. });
        if let (true, true, Some(e)) = (alive, asked, recorded) {
            // An ask across the responder's cut: the snapshot is lost (its asker will taint
            // it); the runtime releases every deferred cut, so nobody waits on it.
            let node = a.node;
            self.nodes[node].proto.ask_crossed(e);
            let at = self.tick();
            self.crossed.entry(e).or_insert(at);
            self.drain_node(node);
        }
        let a = &mut self.actors[to];
        if alive {
            a.mailbox.push_back(msg);
        } else {
            self.stats.dead_letters += 1;
            self.log[msg.id].dead_letter = true;
            self.log[msg.id].refused = refused;
            self.stats.refused_sends += u64::from(refused);
        }
        self.trace(Ev::Arrive { to, id: msg.id, tag: msg.tag, recorded, dead: !alive });
        // A recording for a completed snapshot misses its checkpoint: wrong if the snapshot
        // becomes a checkpoint (every part arrives). It can happen to a snapshot whose
        // checkpoint is lost: a node that heard its coordinator was down aborted it (never
        // sending its part), and an actor it spawns next is born in an older epoch.
        if let Some(e) = recorded.filter(|e| self.completed.contains(e)) {
            if self.checkpointed.contains(&e) {
                self.fail(
                    format!("message {} recorded for snapshot {e} after it completed", msg.id),
                    &[to],
                );
            }
            self.recorded_after_completion.push((e, msg.id, to));
        }
        if let (false, Kind::Ask { ask, asker: Some(asker), .. }) = (alive, self.log[msg.id].kind) {
            self.route_reply(self.actors[to].node, asker, ask, None);
        }
    }

    fn actor_step(&mut self, x: usize) {
        if let Some(ask) = self.actors[x].waiting {
            let at = self.tick();
            let a = &mut self.actors[x];
            let reply = a.reply.take().expect("runnable");
            a.waiting = None;
            let mut leak = None;
            if let Some((value, responder_epoch)) = reply {
                self.log[self.asks[&ask]].absorbed = Some(at);
                if responder_epoch > a.cut.epoch() {
                    leak = Some((a.cut.epoch(), responder_epoch));
                }
                if self.cfg.money_asks {
                    a.balance += value;
                } else {
                    a.last_seen = value;
                }
            }
            if let Some((asker_epoch, responder_epoch)) = leak {
                // The runtime's safety net: the reply was computed after the responder's
                // cut for every snapshot in (asker_epoch, responder_epoch], and the asker
                // has not cut for them: each is tainted, and refused if it completes.
                self.stats.reply_leaks += 1;
                self.leaks.push((at, self.asks[&ask]));
                self.tainted.extend((asker_epoch.0 + 1..=responder_epoch.0).map(Epoch));
                // Was the responder's depth, when it cut, already above the asker's (same
                // node), for the running snapshot? Then the ask rule itself failed; else the
                // depth was still unknown (or the tainted epochs all ended already).
                let request = &self.log[self.asks[&ask]];
                let r = request.receiver;
                let running = self
                    .coords
                    .iter()
                    .filter_map(Coordinator::running)
                    .find(|&e| asker_epoch < e && e <= responder_epoch);
                // Released by a crossing before the responder cut: not the rule's failure.
                let released_at = running.and_then(|e| self.crossed.get(&e).copied());
                // The responder's cut for the running snapshot (not one for an earlier,
                // aborted snapshot, after which every depth was released).
                if let Kind::Ask { depth, .. } = request.kind
                    && let Some(e) = running
                    && self.starters.get(&e).is_none_or(|s| s.len() == 1)
                    && self.actors[r].node == self.actors[x].node
                    && self.actors[r].cuts.iter().any(|c| {
                        c.from < e
                            && e <= c.to
                            && c.from <= asker_epoch
                            && c.depth > depth
                            && released_at.is_none_or(|t| c.at < t)
                    })
                {
                    self.stats.taints_despite_depth += 1;
                }
            }
            self.trace(Ev::AskDone { actor: x, ask, leak: leak.is_some() });
            // The rest of the handler, after the await: a responder answers its own asker.
            if let Some((outer, asker, request)) = self.actors[x].serving.take() {
                self.answer(x, outer, asker, request);
            }
            if self.rng.chance(35) {
                let amount = self.rng.range(1, 20) as i64;
                self.transfer(x, amount);
            }
            if self.rng.chance(10) && self.actors.len() < MAX_ACTORS {
                self.spawn_child(x);
            }
            return;
        }
        let a = &mut self.actors[x];
        if let Some(signal) = a.control.pop_front() {
            match signal {
                Control::Marker(marker) => {
                    let released = self.nodes[a.node].proto.released();
                    let outcome = if self.cfg.fault == Fault::NoAskDeferral {
                        a.cut.on_marker(marker).map_or(Marker::Ignore, Marker::Cut)
                    } else {
                        a.cut.on_marker_at(marker, released)
                    };
                    match outcome {
                        Marker::Ignore => {}
                        Marker::Cut(cut) => {
                            self.stats.cuts_by_marker += 1;
                            self.take_cut(x, cut, "marker");
                        }
                        Marker::Defer(epoch) => {
                            self.stats.deferrals += 1;
                            let depth = a.cut.depth();
                            self.trace(Ev::Defer { actor: x, epoch, depth, released });
                        }
                    }
                }
                Control::Release { epoch, depth } => {
                    // Checked when the signal is taken, not when it was sent: the actor may
                    // have become deeper meanwhile (a later release covers it then).
                    let due = a.cut.deferred().filter(|&d| d <= epoch && a.cut.depth() <= depth);
                    if let Some(deferred) = due {
                        let cut = a.cut.on_marker(deferred).expect("a deferring actor is behind");
                        self.stats.deferred_cuts += 1;
                        self.take_cut(x, cut, "release");
                    }
                }
            }
            return;
        }
        let msg = a.mailbox.pop_front().expect("runnable");
        // The ask rule holds for a cut triggered by a message tagged ahead (sent after its
        // sender's cut, which may come before this actor's marker) just as for a marker: an
        // actor deeper than the released depth defers its cut and holds the message.
        let released = self.nodes[a.node].proto.released();
        let faulty = matches!(self.cfg.fault, Fault::NoAskDeferral | Fault::TagCutIgnoresDepth);
        let deferring = a.cut.deferred().is_some();
        let step =
            if faulty { a.cut.on_dequeue(msg.tag) } else { a.cut.on_dequeue_at(msg.tag, released) };
        if !deferring && let Some(epoch) = a.cut.deferred() {
            self.stats.deferrals_by_tag += 1;
            let depth = a.cut.depth();
            self.trace(Ev::Defer { actor: x, epoch, depth, released });
        }
        let a = &mut self.actors[x];
        match step {
            Dequeue::Process => self.process(x, msg),
            Dequeue::Hold => {
                a.held.push_back(msg);
                self.stats.held += 1;
                self.trace(Ev::Hold { actor: x, id: msg.id, tag: msg.tag });
            }
            Dequeue::CutThenProcess(cut) => {
                self.stats.cuts_by_tag += 1;
                if self.cfg.fault == Fault::CutAfterProcessing {
                    self.process(x, msg);
                    self.take_cut(x, cut, "tag");
                } else {
                    self.take_cut(x, cut, "tag");
                    self.process(x, msg);
                }
            }
        }
    }

    fn take_cut(&mut self, x: usize, cut: Cut, by: &'static str) {
        let at = self.tick();
        let a = &mut self.actors[x];
        a.cuts.push(CutRecord {
            from: cut.from,
            to: cut.to,
            at,
            balance: a.balance,
            depth: cut.depth,
        });
        // Messages set aside while the cut was deferred go back to the front, in order
        // (they arrived before everything still queued).
        let mut held = a.held.len();
        if self.cfg.fault == Fault::HeldOutsideBacklog {
            held = 0;
        } else {
            while let Some(m) = a.held.pop_back() {
                a.mailbox.push_front(m);
            }
        }
        let mut backlog = 0;
        let mut backlog_ids = Vec::new();
        let mut crossed = false;
        if self.cfg.fault != Fault::NoBacklogRecording {
            for (i, m) in a.mailbox.iter().enumerate() {
                if let Some(e) = a.cut.recording(m.tag) {
                    a.recorded.entry(e).or_default().push(m.id);
                    backlog_ids.push(m.id);
                    crossed |= matches!(self.log[m.id].kind, Kind::Ask { asker: Some(_), .. });
                    backlog += 1;
                    if i < held {
                        self.stats.held_recorded += 1;
                    }
                }
            }
        }
        self.stats.backlog_recorded += backlog as u64;
        while let Some(m) = a.held.pop_back() {
            a.mailbox.push_front(m);
        }
        let node = a.node;
        self.trace(Ev::Cut { actor: x, from: cut.from, to: cut.to, by, depth: cut.depth, backlog });
        self.nodes[node].proto.actor_cut(cut);
        // The runtime's engine files the cut in the round of its epoch, opened if the node
        // runs it (a cut may be how the node learns of a snapshot).
        self.sync_rounds(node);
        if self.nodes[node].sent_settled.contains(&cut.to) {
            return self.fail(
                format!("actor {x} cut for snapshot {} on node {node} after the node settled and sent its part", cut.to),
                &[x],
            );
        }
        if let Some(round) = self.nodes[node].rounds.get_mut(&cut.to) {
            round.actors.insert(x);
            round.records.extend(backlog_ids);
        }
        if crossed {
            self.nodes[node].proto.ask_crossed(cut.to);
            let at = self.tick();
            self.crossed.entry(cut.to).or_insert(at);
        }
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
            Kind::Ask { ask, asker, depth } => {
                // The ask rule: serving an ask makes the responder deeper than its asker.
                let node = self.actors[x].node;
                if let Some((from, to)) = self.actors[x].cut.on_ask(depth) {
                    self.stats.deepened += 1;
                    self.trace(Ev::Deepen { actor: x, from, to });
                    let epoch = self.actors[x].cut.epoch();
                    self.nodes[node].proto.actor_deepened(epoch, from, to);
                    self.drain_node(node);
                }
                if self.rng.chance(self.cfg.nested_percent)
                    && let Some(y) = self.ask_target(x)
                {
                    // Ask someone else first; answer after that reply (see `actor_step`).
                    self.stats.nested_asks += 1;
                    self.actors[x].serving = Some((ask, asker, msg.id));
                    self.ask(x, y);
                    return;
                }
                self.answer(x, ask, asker, msg.id);
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
        if self.rng.chance(self.cfg.ask_percent)
            && let Some(y) = self.ask_target(x)
        {
            self.ask(x, y);
        }
    }

    /// `x` answers `ask` (request message `request`), from its state now.
    fn answer(&mut self, x: usize, ask: u64, asker: Option<usize>, request: usize) {
        let a = &mut self.actors[x];
        let value = if self.cfg.money_asks {
            let v = a.balance / 2;
            a.balance -= v;
            v
        } else {
            a.balance
        };
        let epoch = a.cut.epoch();
        let at = self.tick();
        self.log[request].answered = Some((at, if self.cfg.money_asks { value } else { 0 }));
        self.trace(Ev::Answer { actor: x, ask, epoch });
        // (A restored request has no asker: nobody takes the reply, its money is destroyed.)
        if let Some(asker) = asker {
            self.route_reply(self.actors[x].node, asker, ask, Some((value, epoch)));
        }
    }

    /// Whom `x` may ask: anyone else it may address, or, with `acyclic_asks`, a
    /// higher-indexed actor of its own node.
    fn ask_target(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.acyclic_asks {
            return self.pick_target(x).filter(|&y| y != x);
        }
        // (No spawns with acyclic asks: actor `i` is the `i % actors_per_node`th of its node.)
        let layer =
            |i: usize| (i % self.cfg.actors_per_node) * self.cfg.layers / self.cfg.actors_per_node;
        let node = self.actors[x].node;
        let deeper: Vec<usize> = (x + 1..self.actors.len())
            .filter(|&y| self.actors[y].node == node && layer(y) > layer(x))
            .collect();
        let next: Vec<usize> =
            deeper.iter().copied().filter(|&y| layer(y) == layer(x) + 1).collect();
        let pick = if next.is_empty() || self.rng.chance(25) { deeper } else { next };
        (!pick.is_empty()).then(|| pick[self.rng.below(pick.len())])
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

    /// Sends `kind` from `x` to `y`; false if a stopped local receiver refused it (the send
    /// fails at once: nothing is in flight, a deposit stays with its sender).
    fn send(&mut self, x: usize, y: usize, kind: Kind) -> bool {
        let tag = self.actors[x].cut.epoch();
        let (a, b) = (self.actors[x].node, self.actors[y].node);
        if a == b && !self.actors[y].alive {
            self.stats.refused_sends += 1;
            self.tick();
            self.trace(Ev::RefusedSend { from: x, to: y, kind });
            if let Kind::Deposit(amount) = kind {
                self.actors[x].balance += amount;
                if self.cfg.fault == Fault::RecordRefusedSends {
                    // The old runtime: recorded like a dead letter as well.
                    let id = self.log_msg(Origin::Actor(x), y, kind, tag);
                    self.arrive(y, Msg { id, tag }, false);
                }
            }
            return false;
        }
        let id = self.log_msg(Origin::Actor(x), y, kind, tag);
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
        true
    }

    fn ask(&mut self, x: usize, y: usize) {
        self.next_ask += 1;
        let ask = self.next_ask;
        self.stats.asks += 1;
        self.actors[x].waiting = Some(ask);
        self.trace(Ev::Ask { actor: x, ask });
        self.asks.insert(ask, self.log.len());
        // Depths are per node: an ask from another node is served as from depth 0.
        let same_node = self.actors[x].node == self.actors[y].node;
        let depth = if same_node { self.actors[x].cut.depth() } else { 0 };
        if !self.send(x, y, Kind::Ask { ask, asker: Some(x), depth }) {
            // Refused at once: the asker gets the error.
            self.asks.remove(&ask);
            self.actors[x].reply = Some(None);
        }
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
        }
    }

    fn spawn_child(&mut self, parent: usize) {
        if !self.cfg.spawns {
            return;
        }
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
                child.control.push_back(Control::Marker(m));
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
            a.control.push_back(Control::Marker(m));
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

    /// Node `n`'s pending restore finishes: its restored actors start (with
    /// `Fault::SnapshotDuringPendingRestore`, they are registered only now).
    fn finish_restore(&mut self, n: usize) {
        self.nodes[n].pending_until = None;
        if self.cfg.fault != Fault::SnapshotDuringPendingRestore {
            self.nodes[n].follow.restore_started();
        }
        self.tick();
        self.trace(Ev::RestoreStarted { node: n });
        for i in 0..self.actors.len() {
            if self.actors[i].node != n || self.actors[i].started {
                continue;
            }
            self.actors[i].started = true;
            if self.cfg.fault == Fault::SnapshotDuringPendingRestore {
                let epoch = self.actors[i].cut.epoch();
                if let Some(m) = self.nodes[n].proto.actor_spawned(epoch) {
                    self.actors[i].control.push_back(Control::Marker(m));
                }
            }
        }
        self.drain_node(n);
    }

    fn stop(&mut self, x: usize) {
        let at = self.tick();
        let running = self.running();
        let a = &mut self.actors[x];
        a.alive = false;
        a.stopped = Some((at, a.balance));
        let epoch = a.cut.epoch();
        let a_depth = a.cut.depth();
        match running {
            Some(e) if epoch < e => self.stats.stops_before_cut += 1,
            Some(e) if a.cut.last_cut() == Some(e) => self.stats.stops_after_cut += 1,
            _ => {}
        }
        a.control.clear();
        let dropped: Vec<Msg> = a.held.drain(..).chain(a.mailbox.drain(..)).collect();
        let node = a.node;
        self.trace(Ev::Stop { actor: x, epoch });
        self.nodes[node].proto.actor_stopped(epoch, a_depth);
        self.drain_node(node);
        for m in dropped {
            if let Kind::Ask { ask, asker: Some(asker), .. } = self.log[m.id].kind {
                self.route_reply(node, asker, ask, None);
            }
        }
    }
}
