//! Dropping the last handle of a system stops it: actors, their timers, their tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use amber::ShutdownReport;
use amber::prelude::*;
use tokio::sync::Notify;

/// Counts live actors; notifies when one goes.
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    gone: Notify,
}

impl Live {
    /// Waits until no actor is live (bounded: a leak fails the test instead of hanging it).
    async fn none(&self) -> bool {
        let wait = async {
            loop {
                let gone = self.gone.notified();
                if self.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                gone.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.is_ok()
    }
}

/// An actor with a ticking timer and a handle on its system (as handlers often keep one),
/// counted while it lives.
struct Ticker {
    live: Arc<Live>,
    system: Option<ActorSystem>,
    ticks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum TickerMsg {
    Tick,
}

impl Actor for Ticker {
    type Msg = TickerMsg;
    type Reply = ();
    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        ctx.send_interval(Duration::from_millis(1), TickerMsg::Tick);
        self.system = Some(ctx.system().clone());
        Ok(())
    }
    async fn handle(&mut self, TickerMsg::Tick: TickerMsg, _ctx: &mut Context<Self>) {
        self.ticks += 1;
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.live.count.fetch_sub(1, Ordering::AcqRel);
        self.live.gone.notify_waiters();
    }
}

fn ticker(live: &Arc<Live>) -> Ticker {
    live.count.fetch_add(1, Ordering::AcqRel);
    Ticker { live: live.clone(), system: None, ticks: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_every_actor_and_timer() {
    let live = Arc::new(Live::default());
    for cycle in 0..200 {
        let system = ActorSystem::new();
        let kept = system.clone();
        for _ in 0..50 {
            system.spawn(ticker(&live)).unwrap();
        }
        drop(system);
        // One user handle left: the system runs on.
        assert!(!kept.is_shutting_down(), "cycle {cycle}");
        assert_eq!(live.count.load(Ordering::Acquire), 50, "cycle {cycle}");
        drop(kept);
        assert!(live.none().await, "cycle {cycle}: actors outlived their dropped system");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_taken_from_a_context_does_not_keep_the_system_alive() {
    let live = Arc::new(Live::default());
    let system = ActorSystem::new();
    let parent = system.spawn(ticker(&live)).unwrap();
    // Its timer has ticked and it holds its system: still, dropping ours stops it.
    parent.ask(TickerMsg::Tick).await.unwrap();
    drop(system);
    assert!(live.none().await, "the actor's own handle kept the system alive");
    assert!(parent.tell(TickerMsg::Tick).await.is_err(), "stopped");
}

/// A handler that never returns (it waits for something that never comes), once it says it
/// has begun.
struct Stuck {
    entered: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hang;

impl Actor for Stuck {
    type Msg = Hang;
    type Reply = ();
    async fn handle(&mut self, Hang: Hang, _ctx: &mut Context<Self>) {
        self.entered.notify_one();
        std::future::pending::<()>().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_within_aborts_a_handler_that_never_returns_and_says_which() {
    let system = ActorSystem::new();
    let entered = Arc::new(tokio::sync::Notify::new());
    let stuck = system.spawn(Stuck { entered: entered.clone() }).unwrap();
    let live = Arc::new(Live::default());
    let fine = system.spawn(ticker(&live)).unwrap();
    stuck.tell(Hang).await.unwrap();
    // In its handler (else the shutdown's stop, on the control lane, would overtake it).
    entered.notified().await;
    let report = system.shutdown_within(Duration::from_millis(300)).await;
    let aborted: Vec<_> = report.aborted.iter().map(|(id, _)| *id).collect();
    assert_eq!(aborted, vec![stuck.id()], "only the stuck actor outlived the deadline");
    assert!(!report.is_clean());
    assert!(live.none().await, "the well-behaved actor stopped");
    assert!(fine.tell(TickerMsg::Tick).await.is_err());
    assert!(stuck.tell(Hang).await.is_err(), "the aborted actor's mailbox is closed");
    assert_eq!(stuck.wait_stopped().await, amber::ExitReason::Aborted);
    assert_eq!(system.shutdown_within(Duration::from_millis(10)).await, ShutdownReport::default());
}
