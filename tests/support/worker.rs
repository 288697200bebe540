//! A small registered actor for snapshot tests: counts work, can be slow, can panic, can
//! spawn children, can ask another worker, can arm timers.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use amber::prelude::*;
use amber::{ActorState, StateError};

#[derive(Debug, Default)]
pub struct Worker {
    pub done: u64,
    pub spawned: u64,
    pub fired: u64,
    pub partner: Option<ActorRef<Worker>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Work {
    /// Counts one unit, after sleeping this many milliseconds inside the handler.
    Unit(u64),
    /// Spawns a child worker.
    SpawnChild,
    /// Stops itself.
    Quit,
    Panic,
    /// Asks the partner for its count (awaiting inside the handler), adds it.
    AskPartner,
    /// Arms a one-shot timer that sends `Fired` after this many milliseconds.
    Arm(u64),
    /// Sent by the timer.
    Fired,
    SetPartner(ActorRef<Worker>),
    /// Watches another worker (its stop adds 100 to `done`).
    Watch(ActorRef<Worker>),
    /// The ids of this worker's children.
    Get,
}

#[derive(Serialize, Deserialize)]
struct WorkerState {
    done: u64,
    spawned: u64,
    fired: u64,
    partner: Option<ActorRef<Worker>>,
}

impl Actor for Worker {
    type Msg = Work;
    type Reply = u64;

    async fn handle(&mut self, msg: Work, ctx: &mut Context<Self>) -> u64 {
        match msg {
            Work::Unit(ms) => {
                if ms > 0 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                self.done += 1;
            }
            Work::SpawnChild => {
                if ctx.spawn(Worker::default()).is_ok() {
                    self.spawned += 1;
                }
            }
            Work::Quit => ctx.stop(),
            Work::Panic => panic!("worker told to panic"),
            Work::AskPartner => {
                if let Some(p) = &self.partner {
                    self.done += p.ask(Work::Get).await.unwrap_or(0);
                }
            }
            Work::Arm(ms) => {
                ctx.send_after(Duration::from_millis(ms), Work::Fired);
            }
            Work::Fired => {
                self.fired += 1;
                if let Ok(probe) = ctx.system().lookup::<Probe>("probe") {
                    let _ = probe.tell(self.fired).await;
                }
            }
            Work::SetPartner(p) => self.partner = Some(p),
            Work::Watch(other) => ctx.watch(&other),
            Work::Get => {}
        }
        self.done
    }

    /// A child that exits adds 1000 to `done`.
    async fn on_child_event(&mut self, _: &mut Context<Self>, event: ChildEvent) {
        if matches!(event, ChildEvent::Exited { .. }) {
            self.done += 1000;
        }
    }

    /// A watched worker that stops adds 100 to `done`.
    async fn on_down(&mut self, _: &mut Context<Self>, _down: Down) {
        self.done += 100;
    }
}

impl ActorState for Worker {
    const TYPE_NAME: &'static str = "test.Worker";

    fn encode_state(&self) -> Result<Vec<u8>, amber::CodecError> {
        amber::encode(&WorkerState {
            done: self.done,
            spawned: self.spawned,
            fired: self.fired,
            partner: self.partner.clone(),
        })
    }

    fn decode_state(version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
        super::current_version::<Self>(version)?;
        let s: WorkerState = system.decode(bytes)?;
        Ok(Worker { done: s.done, spawned: s.spawned, fired: s.fired, partner: s.partner })
    }
}

/// Reads the counters of a stored worker state.
#[derive(Debug, Deserialize)]
pub struct WorkerView {
    pub done: u64,
    pub spawned: u64,
    pub fired: u64,
}

pub fn view(state: &[u8]) -> WorkerView {
    rmp_serde::from_slice(state).expect("worker state")
}

/// Forwards what it is told to the test (not registered: spawn it only outside snapshots).
pub struct Probe(pub tokio::sync::mpsc::UnboundedSender<u64>);

impl Actor for Probe {
    type Msg = u64;
    type Reply = ();
    async fn handle(&mut self, n: u64, _: &mut Context<Self>) {
        let _ = self.0.send(n);
    }
}
