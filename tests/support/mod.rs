//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod bank;
#[cfg(feature = "remote")]
pub mod cluster;
#[cfg(feature = "remote")]
pub mod purse;
pub mod seeds;
pub mod worker;

use std::future::Future;
use std::time::Duration;

use amber::prelude::*;
use tokio::sync::mpsc;

/// Hand-written state types here read only their current version: anything else is refused.
pub fn current_version<A: amber::ActorState>(version: u32) -> Result<(), amber::StateError> {
    if version == A::VERSION {
        return Ok(());
    }
    Err(amber::StateError::UnknownVersion {
        type_name: A::TYPE_NAME,
        found: version,
        current: A::VERSION,
    })
}

/// Runs `fut`, failing the test if it takes longer than 20 s (a hang is a bug, not a wait).
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("test step hung for 20 s")
}

/// Receives the next report, bounded in time.
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    bounded(rx.recv()).await.expect("reporting channel closed")
}

/// A counter that reports lifecycle events to the test through a channel.
pub struct Counter {
    pub count: u64,
    pub events: Option<mpsc::UnboundedSender<String>>,
}

impl Counter {
    pub fn new() -> Self {
        Counter { count: 0, events: None }
    }

    pub fn reporting(events: mpsc::UnboundedSender<String>) -> Self {
        Counter { count: 0, events: Some(events) }
    }

    fn report(&self, event: String) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum CounterMsg {
    Add(u64),
    Get,
    /// Panics inside the handler.
    Panic,
    /// Waits on a gate before answering (to hold the actor busy).
    Sleep(u64),
    /// Stops itself through the context.
    StopSelf,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type Reply = u64;

    async fn on_start(&mut self, _ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        self.report("start".into());
        Ok(())
    }

    async fn handle(&mut self, msg: CounterMsg, ctx: &mut Context<Self>) -> u64 {
        match msg {
            CounterMsg::Add(n) => self.count += n,
            CounterMsg::Get => {}
            CounterMsg::Panic => panic!("counter told to panic"),
            CounterMsg::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            CounterMsg::StopSelf => ctx.stop(),
        }
        self.count
    }

    async fn on_stop(&mut self, _ctx: &mut Context<Self>, reason: &ExitReason) {
        self.report(format!("stop:{reason}"));
    }
}

/// Sums the numbers it is sent; its first handler reports that it was entered and then waits
/// until the test opens the gate, so the test controls exactly what is queued.
pub struct Gated {
    pub entered: Option<tokio::sync::oneshot::Sender<()>>,
    pub gate: Option<tokio::sync::oneshot::Receiver<()>>,
    pub sum: u64,
}

/// The two ends a test holds for a [`Gated`] actor.
pub struct GateControl {
    pub entered: tokio::sync::oneshot::Receiver<()>,
    pub open: tokio::sync::oneshot::Sender<()>,
}

impl Gated {
    pub fn new() -> (Gated, GateControl) {
        let (entered_tx, entered) = tokio::sync::oneshot::channel();
        let (open, gate) = tokio::sync::oneshot::channel();
        (
            Gated { entered: Some(entered_tx), gate: Some(gate), sum: 0 },
            GateControl { entered, open },
        )
    }
}

impl Actor for Gated {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> u64 {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
            if let Some(gate) = self.gate.take() {
                let _ = gate.await;
            }
        }
        self.sum += n;
        self.sum
    }
}
