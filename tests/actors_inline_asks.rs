//! Asks served on the asker's thread: an ask to an idle actor of this node runs the actor's
//! handler where the asker runs, and everything else stays as if the actor's task had served
//! it — order, a handler that awaits (finished by the task even if the asker gives up),
//! stops, panics and restarts, chains of asks deeper than the limit.
//!
//! The tests run on a current-thread runtime, where the order of tasks is fixed: after an
//! ask's reply the actor's task parks (its runner in its cell) before the asker runs again,
//! so the next ask finds the actor idle.

mod support;

use std::sync::Arc;
use std::time::Duration;

use amber::prelude::*;
use amber::{AskError, BoxError};
use support::bounded;
use tokio::sync::Notify;

/// Answers with the id of the tokio task its handler runs in, counts what it handled, and
/// can be made to wait, panic, stop, or ask the next actor of a chain.
struct Probe {
    handled: u64,
    gate: Arc<Notify>,
    next: Option<ActorRef<Probe>>,
    started: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Serialize, Deserialize)]
enum ProbeMsg {
    /// The handler's task id, as a number (0 outside a task).
    Where,
    /// How many messages it handled before this one.
    Handled,
    /// Waits for the gate, then counts.
    Wait,
    Panic,
    Stop,
    /// Asks the rest of the chain; answers its length.
    Chain,
    /// Computes (blocks its thread) for this many milliseconds without awaiting.
    Block(u64),
}

impl Probe {
    fn new(gate: Arc<Notify>, next: Option<ActorRef<Probe>>) -> Probe {
        Probe { handled: 0, gate, next, started: Arc::default() }
    }
}

fn task_number() -> u64 {
    tokio::task::try_id().map_or(0, |id| id.to_string().parse().unwrap_or(u64::MAX))
}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type Reply = u64;

    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), BoxError> {
        self.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn handle(&mut self, msg: ProbeMsg, ctx: &mut Context<Self>) -> u64 {
        let before = self.handled;
        self.handled += 1;
        match msg {
            ProbeMsg::Where => task_number(),
            ProbeMsg::Handled => before,
            ProbeMsg::Wait => {
                self.gate.notified().await;
                before
            }
            ProbeMsg::Panic => panic!("probe told to panic"),
            ProbeMsg::Block(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                before
            }
            ProbeMsg::Stop => {
                ctx.stop();
                before
            }
            ProbeMsg::Chain => match &self.next {
                Some(next) => next.ask(ProbeMsg::Chain).await.unwrap() + 1,
                None => 1,
            },
        }
    }
}

fn probe(system: &ActorSystem) -> (ActorRef<Probe>, Arc<Notify>) {
    let gate = Arc::new(Notify::new());
    (system.spawn(Probe::new(gate.clone(), None)).unwrap(), gate)
}

/// A [`probe`] that has started and handled one ask: idle, its next ask is served inline.
async fn idle_probe(system: &ActorSystem) -> (ActorRef<Probe>, Arc<Notify>) {
    let (actor, gate) = probe(system);
    assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await.unwrap(), 0);
    (actor, gate)
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_actors_handler_runs_in_its_askers_task() {
    let system = ActorSystem::new();
    let (actor, _) = probe(&system);
    let asker = tokio::spawn(async move {
        // The actor's task ran first (spawned first): it started and parked, idle.
        let here = task_number();
        let first = actor.ask(ProbeMsg::Where).await.unwrap();
        let second = actor.ask(ProbeMsg::Where).await.unwrap();
        (here, first, second, actor.ask(ProbeMsg::Handled).await.unwrap())
    });
    let (here, first, second, handled) = bounded(asker).await.unwrap();
    assert_ne!(here, 0);
    assert_eq!((first, second), (here, here), "served in the asker's task");
    assert_eq!(handled, 2);
    bounded(system.shutdown()).await;
}

/// Asks served at once never wait, yet a task that loops on them still lets the other tasks
/// of its thread run (it spends tokio's cooperative budget): here the only task that can
/// end the loop shares the thread with it.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_asks_served_inline_lets_the_other_tasks_run() {
    let system = ActorSystem::new();
    // Started and idle: every ask of the loop is served at once.
    let (actor, _) = idle_probe(&system).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = tokio::spawn({
        let stop = stop.clone();
        async move { stop.store(true, std::sync::atomic::Ordering::SeqCst) }
    });
    // Bounded by a count, not only by time: a loop that never yields would starve the
    // test's own timeout too.
    const MOST: u64 = 200_000;
    let mut asks = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && asks < MOST {
        actor.ask(ProbeMsg::Handled).await.unwrap();
        asks += 1;
    }
    assert!(asks < MOST, "{MOST} asks and the other task never ran");
    bounded(stopper).await.unwrap();
    bounded(system.shutdown()).await;
}

/// A handler served inline that computes past its ask's (short) timeout without awaiting
/// cannot be interrupted: the ask fails as timed out once it is done, the request handled
/// and its reply dropped, as for any ask that timed out.
#[tokio::test(flavor = "current_thread")]
async fn an_ask_whose_handler_computed_past_its_timeout_times_out() {
    let system = ActorSystem::new();
    let (actor, _) = idle_probe(&system).await;
    let timeout = Duration::from_millis(20);
    let slow = bounded(actor.ask_timeout(ProbeMsg::Block(60), timeout)).await;
    assert_eq!(slow, Err(AskError::Timeout(timeout)));
    assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await.unwrap(), 2, "it was handled");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_system_that_does_not_serve_asks_inline_runs_every_handler_in_the_actors_task() {
    let system = ActorSystem::builder().inline_asks(false).build();
    let (actor, _) = probe(&system);
    let asker = tokio::spawn(async move {
        let here = task_number();
        let first = actor.ask(ProbeMsg::Where).await.unwrap();
        let second = actor.ask(ProbeMsg::Where).await.unwrap();
        (here, first, second)
    });
    let (here, first, second) = bounded(asker).await.unwrap();
    assert_ne!(here, 0);
    assert_eq!(first, second, "the actor's own task, both times");
    assert_ne!(first, here);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_handler_that_awaits_is_finished_by_the_actors_task_after_its_asker_gave_up() {
    let system = ActorSystem::new();
    let (actor, gate) = idle_probe(&system).await;
    // Served here, the handler waits at the gate: the asker gives up at once.
    let gave_up = tokio::time::timeout(Duration::ZERO, actor.ask(ProbeMsg::Wait)).await;
    assert!(gave_up.is_err(), "the gate is closed: no reply yet");
    // Queued behind the waiting handler.
    let later = tokio::spawn({
        let actor = actor.clone();
        async move { actor.ask(ProbeMsg::Handled).await }
    });
    tokio::task::yield_now().await;
    gate.notify_one();
    // The handler ran to its end (it counted), then the queued ask.
    assert_eq!(bounded(later).await.unwrap().unwrap(), 2);
    assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await.unwrap(), 3);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_actor_that_stops_in_a_handler_served_inline_stops() {
    let system = ActorSystem::new();
    let (actor, _) = idle_probe(&system).await;
    assert_eq!(bounded(actor.ask(ProbeMsg::Stop)).await.unwrap(), 1);
    assert_eq!(bounded(actor.wait_stopped()).await, ExitReason::Stopped);
    assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await, Err(AskError::Stopped));
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_in_a_handler_served_inline_answers_no_reply_and_restarts_the_actor() {
    let system = ActorSystem::new();
    let gate = Arc::new(Notify::new());
    let started = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opts = SpawnOptions::new().restart(RestartPolicy::on_panic(3, Duration::from_secs(60)));
    let actor = system
        .spawn_with(opts, {
            let started = started.clone();
            move || Probe { started: started.clone(), ..Probe::new(gate.clone(), None) }
        })
        .unwrap();
    assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await.unwrap(), 0);
    assert_eq!(bounded(actor.ask(ProbeMsg::Panic)).await, Err(AskError::NoReply));
    // Rebuilt by its factory: a fresh state, started twice in all.
    assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await.unwrap(), 0);
    assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 2);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_chain_of_asks_deeper_than_the_inline_limit_is_answered() {
    let system = ActorSystem::new();
    let gate = Arc::new(Notify::new());
    let mut next = None;
    let mut chain = Vec::new();
    for _ in 0..12 {
        let actor = system.spawn(Probe::new(gate.clone(), next.take())).unwrap();
        chain.push(actor.clone());
        next = Some(actor);
    }
    let head = next.unwrap();
    // Twice: first with every actor starting, then with every actor idle.
    assert_eq!(bounded(head.ask(ProbeMsg::Chain)).await.unwrap(), 12);
    assert_eq!(bounded(head.ask(ProbeMsg::Chain)).await.unwrap(), 12);
    for actor in &chain {
        assert_eq!(bounded(actor.ask(ProbeMsg::Handled)).await.unwrap(), 2);
    }
    bounded(system.shutdown()).await;
}

/// Counts what each of four senders told it.
#[derive(Default)]
struct Tally([u64; 4]);

#[derive(Debug, Serialize, Deserialize)]
enum TallyMsg {
    /// Counts one for this sender.
    Add(usize),
    /// This sender's count.
    Count(usize),
}

impl Actor for Tally {
    type Msg = TallyMsg;
    type Reply = u64;

    async fn handle(&mut self, msg: TallyMsg, _: &mut Context<Self>) -> u64 {
        match msg {
            TallyMsg::Add(sender) => {
                self.0[sender] += 1;
                self.0[sender]
            }
            TallyMsg::Count(sender) => self.0[sender],
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_then_asks_from_many_tasks_keep_each_senders_order() {
    let system = ActorSystem::new();
    let tally = system.spawn(Tally::default()).unwrap();
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let tally = tally.clone();
            tokio::spawn(async move {
                // Each sender's ask comes after all of its own earlier tells, exactly.
                for told in 1..=500u64 {
                    tally.tell(TallyMsg::Add(sender)).await.unwrap();
                    if told % 5 == 0 {
                        let seen = tally.ask(TallyMsg::Count(sender)).await.unwrap();
                        assert_eq!(seen, told, "an ask and its sender's tells out of order");
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        bounded(sender).await.unwrap();
    }
    for sender in 0..4 {
        assert_eq!(bounded(tally.ask(TallyMsg::Count(sender))).await.unwrap(), 500);
    }
    bounded(system.shutdown()).await;
}
