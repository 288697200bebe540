//! Where an actor's cut may fall now that the marker broadcast cuts actors between two of
//! their messages itself (instead of waiting for each actor's task): never before its
//! `on_start` has finished, never inside a handler, and at the same point of its message
//! stream as a marker on its control lane would put it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use amber::prelude::*;
use amber::{ActorState, BoxError, StateError};
use support::bounded;
use tokio::sync::{Notify, mpsc};

/// Counts what it did; `on_start` and one kind of message wait for the test's go-ahead.
struct Gated {
    started: bool,
    handled: u64,
    /// Told when `on_start` (or a gated message) is entered.
    entered: mpsc::UnboundedSender<&'static str>,
    go: Arc<Notify>,
}

#[derive(Serialize, Deserialize)]
struct GatedState {
    started: bool,
    handled: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum GatedMsg {
    /// Counted at once.
    Plain,
    /// Counted once the test says go.
    Gated,
}

impl Actor for Gated {
    type Msg = GatedMsg;
    type Reply = ();

    async fn on_start(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = self.entered.send("on_start");
        self.go.notified().await;
        self.started = true;
        Ok(())
    }

    async fn handle(&mut self, msg: GatedMsg, _ctx: &mut Context<Self>) {
        if let GatedMsg::Gated = msg {
            let _ = self.entered.send("handler");
            self.go.notified().await;
        }
        self.handled += 1;
    }
}

impl ActorState for Gated {
    const TYPE_NAME: &'static str = "test.Gated";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&GatedState { started: self.started, handled: self.handled })
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        let s: GatedState = system.decode(bytes)?;
        let (entered, _) = mpsc::unbounded_channel();
        Ok(Gated { started: s.started, handled: s.handled, entered, go: Arc::default() })
    }
}

fn state(checkpoint: &amber::snapshot::Checkpoint) -> GatedState {
    rmp_serde::from_slice(&checkpoint.states[0].state).expect("state")
}

fn gated() -> (Gated, mpsc::UnboundedReceiver<&'static str>, Arc<Notify>) {
    let (entered, rx) = mpsc::unbounded_channel();
    let go = Arc::new(Notify::new());
    (Gated { started: false, handled: 0, entered, go: go.clone() }, rx, go)
}

/// Starts a snapshot in a task and returns once it runs on this node.
async fn snapshot_started(
    system: &ActorSystem,
) -> tokio::task::JoinHandle<Result<amber::snapshot::Checkpoint, amber::SnapshotError>> {
    let snapshot = tokio::spawn({
        let system = system.clone();
        async move { system.snapshot_within(Duration::from_secs(10)).await }
    });
    bounded(async {
        while system.snapshot_running().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_is_never_cut_before_its_on_start_has_finished() {
    let system = ActorSystem::builder().register::<Gated>().build();
    let (actor, mut entered, go) = gated();
    let _gated = system.spawn(actor).unwrap();
    assert_eq!(bounded(entered.recv()).await, Some("on_start"));
    // The snapshot starts while `on_start` waits: the actor's task holds it, so the
    // broadcast leaves the marker on its control lane instead of cutting it.
    // The snapshot starts while on_start waits: the broadcast finds the task holding it.
    let snapshot = snapshot_started(&system).await;
    go.notify_one();
    let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
    assert!(state(&checkpoint).started, "the cut comes after on_start, never before it");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_inside_a_handler_is_cut_after_it_with_what_was_queued_in_flight() {
    let system = ActorSystem::builder().register::<Gated>().build();
    let (actor, mut entered, go) = gated();
    let gated = system.spawn(actor).unwrap();
    go.notify_one(); // on_start
    assert_eq!(bounded(entered.recv()).await, Some("on_start"));
    gated.tell(GatedMsg::Gated).await.unwrap();
    assert_eq!(bounded(entered.recv()).await, Some("handler"));
    // Queued behind the handler that waits: from outside, so tagged on arrival.
    for _ in 0..5 {
        gated.tell(GatedMsg::Plain).await.unwrap();
    }
    let snapshot = snapshot_started(&system).await;
    go.notify_one();
    let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
    let cut = state(&checkpoint);
    // The cut falls between two messages: after the gated one (its handler had begun
    // before the snapshot, and a cut never splits a handler), and the five queued behind
    // it are either handled before the cut or recorded in flight, each exactly once.
    assert!(cut.handled >= 1, "the handler that was running is inside the cut");
    assert_eq!(cut.handled - 1 + checkpoint.in_flight.len() as u64, 5);
    bounded(system.shutdown()).await;
}

/// A plain test (no `#[tokio::test]`): the runtime has one worker, which the test blocks;
/// the test's own thread drives the snapshot from outside the workers.
#[test]
fn a_restored_actor_is_cut_on_the_spot_before_its_task_first_runs() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // A checkpoint of an actor with messages queued: 3 handled, 4 recorded in flight.
    let checkpoint = rt.block_on(async {
        let system = ActorSystem::builder().register::<Gated>().build();
        let (actor, mut entered, go) = gated();
        let gated = system.spawn(actor).unwrap();
        go.notify_one(); // on_start
        assert_eq!(bounded(entered.recv()).await, Some("on_start"));
        for _ in 0..3 {
            gated.tell(GatedMsg::Plain).await.unwrap();
        }
        gated.tell(GatedMsg::Gated).await.unwrap();
        assert_eq!(bounded(entered.recv()).await, Some("handler"));
        for _ in 0..4 {
            gated.tell(GatedMsg::Plain).await.unwrap();
        }
        let snapshot = snapshot_started(&system).await;
        go.notify_one();
        let checkpoint = bounded(snapshot).await.unwrap().expect("snapshot");
        bounded(system.shutdown()).await;
        checkpoint
    });
    let before = state(&checkpoint);
    assert_eq!((before.handled, checkpoint.in_flight.len()), (4, 4));

    // The only worker is kept busy: the restored actor's task cannot run.
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (busy, worker_taken) = std::sync::mpsc::channel();
    rt.spawn(async move {
        busy.send(()).unwrap();
        let _ = blocked.recv();
    });
    worker_taken.recv().unwrap();
    // Bounded without the runtime's timers (its only worker drives them): a watchdog
    // thread frees the worker after 20 s and says so.
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn({
        let (release, timed_out) = (release.clone(), timed_out.clone());
        move || {
            if finished.recv_timeout(Duration::from_secs(20)).is_err() {
                timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = release.send(());
        }
    });
    let (again, system) = rt.block_on(async {
        let system = ActorSystem::builder().register::<Gated>().restore(&checkpoint).unwrap();
        // Its task is queued behind the blocked one: the broadcast, run by this thread,
        // cuts the resumed actor between two messages, at its restored state.
        let again = system.snapshot_within(Duration::from_secs(60)).await;
        (again, system)
    });
    let _ = done.send(());
    watchdog.join().unwrap();
    assert!(
        !timed_out.load(std::sync::atomic::Ordering::SeqCst),
        "the snapshot waited for the restored actor's task to run"
    );
    let again = again.expect("snapshot");
    let after = state(&again);
    assert_eq!((after.handled, again.in_flight.len()), (4, 4), "cut before any message");
    rt.block_on(async { bounded(system.shutdown()).await });
}

/// Spends its task's whole coop budget in one handler (once the test says go), so that its
/// task yields its worker right after that handler; just before, it spawns a probe, which
/// runs on the worker ahead of the yielded task and says whether a snapshot still runs.
struct Spender {
    entered: mpsc::UnboundedSender<&'static str>,
    go: Arc<Notify>,
    probe: mpsc::UnboundedSender<Option<amber::snapshot::Epoch>>,
}

#[derive(Serialize, Deserialize)]
struct Spend;

impl Actor for Spender {
    type Msg = Spend;
    type Reply = ();

    async fn handle(&mut self, _: Spend, ctx: &mut Context<Self>) {
        let _ = self.entered.send("handler");
        self.go.notified().await;
        let (system, probe) = (ctx.system().clone(), self.probe.clone());
        tokio::spawn(async move {
            let _ = probe.send(system.snapshot_running());
        });
        while tokio::task::coop::has_budget_remaining() {
            tokio::task::consume_budget().await;
        }
    }
}

impl ActorState for Spender {
    const TYPE_NAME: &'static str = "test.Spender";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&())
    }

    fn decode_state(version: u32, _: &[u8], _: &ActorSystem) -> Result<Self, StateError> {
        support::current_version::<Self>(version)?;
        let (entered, _) = mpsc::unbounded_channel();
        let (probe, _) = mpsc::unbounded_channel();
        Ok(Spender { entered, go: Arc::default(), probe })
    }
}

/// The marker comes while the actor's handler runs (the broadcast leaves it on the control
/// lane); the handler spends the task's coop budget, so the task yields its worker right
/// after it and waits for its next turn behind every other runnable task — under load, a
/// whole sweep of the run queue, with the snapshot waiting on it. The actor must be cut as
/// its task lets the runner go, before that wait: the probe, which runs on the worker
/// before the yielded task does, finds the snapshot over.
#[tokio::test(flavor = "current_thread")]
async fn an_actor_that_yields_its_worker_after_a_handler_the_marker_came_in_is_cut_before_it_waits()
{
    let system = ActorSystem::builder().register::<Spender>().build();
    let (entered, mut inside) = mpsc::unbounded_channel();
    let (probe, mut probed) = mpsc::unbounded_channel();
    let go = Arc::new(Notify::new());
    let spender = system.spawn(Spender { entered, go: go.clone(), probe }).unwrap();
    spender.tell(Spend).await.unwrap();
    assert_eq!(bounded(inside.recv()).await, Some("handler"));
    let snapshot = snapshot_started(&system).await;
    go.notify_one();
    let running = bounded(probed.recv()).await.expect("probe");
    assert_eq!(running, None, "the snapshot waited for the yielded task's next turn");
    bounded(snapshot).await.unwrap().expect("snapshot");
    bounded(system.shutdown()).await;
}
