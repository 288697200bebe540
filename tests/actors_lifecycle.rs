//! Timers, drain, ordered shutdown.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amber::SpawnError;
use amber::prelude::*;
use support::{Counter, Gated, bounded, next};
use tokio::sync::mpsc;

/// Uses timers on request and reports each timer message it handles.
struct Clock {
    ticks: mpsc::UnboundedSender<String>,
    pending: Option<amber::TimerId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum ClockMsg {
    ArmOnce(u64),
    ArmInterval(u64),
    CancelPending,
    Fired(String),
    Timers,
}

impl Actor for Clock {
    type Msg = ClockMsg;
    type Reply = usize;
    async fn handle(&mut self, msg: ClockMsg, ctx: &mut Context<Self>) -> usize {
        match msg {
            ClockMsg::ArmOnce(ms) => {
                self.pending =
                    Some(ctx.send_after(Duration::from_millis(ms), ClockMsg::Fired("once".into())));
            }
            ClockMsg::ArmInterval(ms) => {
                self.pending = Some(
                    ctx.send_interval(Duration::from_millis(ms), ClockMsg::Fired("tick".into())),
                );
            }
            ClockMsg::CancelPending => {
                if let Some(id) = self.pending.take() {
                    assert!(ctx.cancel_timer(id));
                    assert!(!ctx.cancel_timer(id), "a cancelled timer is not live");
                }
            }
            ClockMsg::Fired(what) => {
                assert!(matches!(ctx.origin(), amber::Origin::Timer(_)));
                let _ = self.ticks.send(what);
            }
            ClockMsg::Timers => {}
        }
        ctx.timer_count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_after_fires_once_and_interval_repeats_until_cancelled() {
    let system = ActorSystem::new();
    let (ticks, mut ticks_rx) = mpsc::unbounded_channel();
    let clock = system.spawn(Clock { ticks, pending: None }).unwrap();
    assert_eq!(bounded(clock.ask(ClockMsg::ArmOnce(10))).await.unwrap(), 1);
    assert_eq!(next(&mut ticks_rx).await, "once");
    assert_eq!(bounded(clock.ask(ClockMsg::Timers)).await.unwrap(), 0, "a fired one-shot is gone");
    bounded(clock.ask(ClockMsg::ArmInterval(5))).await.unwrap();
    for _ in 0..3 {
        assert_eq!(next(&mut ticks_rx).await, "tick");
    }
    assert_eq!(bounded(clock.ask(ClockMsg::CancelPending)).await.unwrap(), 0);
    // Exact cancel: after the cancel was handled no tick is delivered, even one already
    // queued. A later one-shot proves the actor is alive and nothing else came before it.
    bounded(clock.ask(ClockMsg::ArmOnce(30))).await.unwrap();
    assert_eq!(next(&mut ticks_rx).await, "once");
    bounded(system.shutdown()).await;
    assert!(ticks_rx.recv().await.is_none(), "no timer outlives its actor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_too_far_in_the_future_saturate_instead_of_panicking() {
    let system = ActorSystem::new();
    let (ticks, _ticks_rx) = mpsc::unbounded_channel();
    let clock = system.spawn(Clock { ticks, pending: None }).unwrap();
    // `Duration::from_millis(u64::MAX)` does not fit an `Instant`: it saturates.
    bounded(clock.ask(ClockMsg::ArmOnce(u64::MAX))).await.unwrap();
    bounded(clock.ask(ClockMsg::ArmInterval(u64::MAX))).await.unwrap();
    assert_eq!(bounded(clock.ask(ClockMsg::Timers)).await.unwrap(), 2, "the actor lives on");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_stop_with_their_actor() {
    let system = ActorSystem::new();
    let (ticks, mut ticks_rx) = mpsc::unbounded_channel();
    let clock = system.spawn(Clock { ticks, pending: None }).unwrap();
    bounded(clock.ask(ClockMsg::ArmInterval(1))).await.unwrap();
    assert_eq!(next(&mut ticks_rx).await, "tick");
    clock.stop();
    bounded(clock.wait_stopped()).await;
    // The actor (the only sender holder besides timers) is gone: the channel closes, which
    // it would not if a timer task still held the actor's mailbox and kept sending.
    while let Some(t) = bounded(ticks_rx.recv()).await {
        assert_eq!(t, "tick");
    }
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_handles_everything_queued_then_stops() {
    let system = ActorSystem::new();
    let (gated, gate) = Gated::new();
    let actor = system.spawn(gated).unwrap();
    actor.tell(0).await.unwrap();
    bounded(gate.entered).await.unwrap(); // inside its first handler, queue empty
    for _ in 0..100 {
        actor.tell(1).await.unwrap();
    }
    let ask = {
        let actor = actor.clone();
        tokio::spawn(async move { actor.ask(1000).await })
    };
    bounded(async {
        while actor.queued() < 101 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    actor.drain();
    gate.open.send(()).unwrap();
    assert_eq!(bounded(ask).await.unwrap().unwrap(), 1100, "queued work is handled");
    assert_eq!(bounded(actor.wait_stopped()).await, ExitReason::Stopped);
    assert!(actor.tell(1).await.is_err(), "a drained actor refuses new messages");
    bounded(system.shutdown()).await;
}

/// Spawns `depth` levels of children below itself and logs its stop into a shared journal.
struct Node {
    label: String,
    depth: u32,
    journal: Arc<Mutex<Vec<String>>>,
}

impl Actor for Node {
    type Msg = ();
    type Reply = ();
    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        for i in 0..2 {
            if self.depth > 0 {
                ctx.spawn(Node {
                    label: format!("{}.{i}", self.label),
                    depth: self.depth - 1,
                    journal: self.journal.clone(),
                })?;
            }
        }
        Ok(())
    }
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
    async fn on_stop(&mut self, ctx: &mut Context<Self>, reason: &ExitReason) {
        assert_eq!(ctx.children().count(), 0, "children are stopped before on_stop");
        self.journal.lock().unwrap().push(format!("{}:{reason}", self.label));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_before_parents_and_refuses_new_spawns() {
    let system = ActorSystem::new();
    let journal = Arc::new(Mutex::new(Vec::new()));
    let root =
        system.spawn(Node { label: "r".into(), depth: 2, journal: journal.clone() }).unwrap();
    bounded(root.ask(())).await.unwrap();
    bounded(async {
        while system.actor_count() < 7 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    bounded(system.shutdown()).await;
    assert_eq!(system.actor_count(), 0);
    let journal = journal.lock().unwrap().clone();
    assert_eq!(journal.len(), 7);
    let pos = |l: &str| journal.iter().position(|e| e.starts_with(&format!("{l}:"))).unwrap();
    for parent in ["r", "r.0", "r.1"] {
        for i in 0..2 {
            let child = format!("{parent}.{i}");
            if journal.iter().any(|e| e.starts_with(&format!("{child}:"))) {
                assert!(pos(&child) < pos(parent), "{child} stopped after {parent}: {journal:?}");
            }
        }
    }
    assert!(journal.iter().all(|e| e.ends_with(":shut down")));
    assert_eq!(system.spawn(Counter::new()).unwrap_err(), SpawnError::ShuttingDown);
}
