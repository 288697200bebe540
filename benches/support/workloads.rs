//! The five workloads users compare actor frameworks on, each for amber and for a raw tokio
//! baseline (a task reading a tokio mpsc channel; a oneshot for replies), so a ratio comes
//! from one run. Shared by `benches/actors.rs` (criterion) and `examples/runtime_bench.rs`
//! (prints the table). Every function returns the time of the measured part only.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use amber::DEFAULT_CAPACITY;
use amber::prelude::*;
use tokio::sync::{mpsc, oneshot};

/// The runtime every workload runs on: tokio multi-thread with 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

// ---------------------------------------------------------------- amber actors

/// Counts what it is told; answers with the count.
#[derive(Debug)]
pub struct Counter(u64);

#[derive(Debug, Serialize, Deserialize)]
pub enum Count {
    Add(u64),
    Get,
}

impl Actor for Counter {
    type Msg = Count;
    type Reply = u64;
    #[inline]
    async fn handle(&mut self, msg: Count, _: &mut Context<Self>) -> u64 {
        if let Count::Add(n) = msg {
            self.0 += n;
        }
        self.0
    }
}

/// One node of a ring: passes the token on until its hop count runs out.
#[derive(Debug)]
pub struct RingNode {
    next: Option<ActorRef<RingNode>>,
    done: Option<mpsc::UnboundedSender<()>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Ring {
    Link(ActorRef<RingNode>),
    Token(u64),
}

impl Actor for RingNode {
    type Msg = Ring;
    type Reply = ();
    async fn handle(&mut self, msg: Ring, _: &mut Context<Self>) {
        match msg {
            Ring::Link(next) => self.next = Some(next),
            Ring::Token(0) => {
                if let Some(done) = &self.done {
                    let _ = done.send(());
                }
            }
            Ring::Token(n) => {
                if let Some(next) = &self.next {
                    let _ = next.tell(Ring::Token(n - 1)).await;
                }
            }
        }
    }
}

/// tell: one producer sends `n` messages to one counter, then one ask confirms all arrived.
pub async fn amber_tell(n: u64) -> Duration {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter(0)).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        counter.tell(Count::Add(1)).await.unwrap();
    }
    assert_eq!(counter.ask(Count::Get).await.unwrap(), n);
    let elapsed = start.elapsed();
    system.shutdown().await;
    elapsed
}

/// ask: `n` sequential round trips; returns each round trip's time.
pub async fn amber_ask(n: u64) -> Vec<Duration> {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter(0)).unwrap();
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(counter.ask(Count::Get).await.unwrap());
        times.push(start.elapsed());
    }
    system.shutdown().await;
    times
}

/// ask round trips from inside the runtime: a task on a worker asks the counter `n` times,
/// one after the other (how an actor or a task of the application asks); the total time.
pub async fn amber_ask_round_trips(n: u64) -> Duration {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter(0)).unwrap();
    let took = tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(counter.ask(Count::Get).await.unwrap());
        }
        start.elapsed()
    })
    .await
    .unwrap();
    system.shutdown().await;
    took
}

/// fan-in: 4 producers send `n` messages in total to one counter, then one ask.
pub async fn amber_fan_in(n: u64) -> Duration {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter(0)).unwrap();
    let start = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..n / 4 {
                    counter.tell(Count::Add(1)).await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    assert_eq!(counter.ask(Count::Get).await.unwrap(), n / 4 * 4);
    let elapsed = start.elapsed();
    system.shutdown().await;
    elapsed
}

/// ring: `actors` actors pass a token `hops` times around.
pub async fn amber_ring(actors: usize, hops: u64) -> Duration {
    let system = ActorSystem::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let nodes: Vec<_> = (0..actors)
        .map(|i| {
            let done = (i == 0).then(|| done_tx.clone());
            system.spawn(RingNode { next: None, done }).unwrap()
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.tell(Ring::Link(nodes[(i + 1) % actors].clone())).await.unwrap();
    }
    let start = Instant::now();
    nodes[0].tell(Ring::Token(hops)).await.unwrap();
    done_rx.recv().await.unwrap();
    let elapsed = start.elapsed();
    system.shutdown().await;
    elapsed
}

/// spawn: spawn `n` actors, one ask each, stop all, wait until all have stopped.
pub async fn amber_spawn(n: usize) -> Duration {
    let system = ActorSystem::new();
    let start = Instant::now();
    let actors: Vec<_> = (0..n).map(|_| system.spawn(Counter(0)).unwrap()).collect();
    for a in &actors {
        a.ask(Count::Get).await.unwrap();
    }
    for a in &actors {
        a.stop();
    }
    for a in &actors {
        a.wait_stopped().await;
    }
    let elapsed = start.elapsed();
    system.shutdown().await;
    elapsed
}

// ---------------------------------------------------------------- raw tokio baseline

enum Raw {
    Add(u64),
    Get(oneshot::Sender<u64>),
}

fn raw_counter() -> (mpsc::Sender<Raw>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Raw>(DEFAULT_CAPACITY);
    let task = tokio::spawn(async move {
        let mut count = 0u64;
        while let Some(msg) = rx.recv().await {
            match msg {
                Raw::Add(n) => count += n,
                Raw::Get(reply) => {
                    let _ = reply.send(count);
                }
            }
        }
    });
    (tx, task)
}

async fn raw_get(tx: &mpsc::Sender<Raw>) -> u64 {
    let (reply, rx) = oneshot::channel();
    tx.send(Raw::Get(reply)).await.unwrap_or_else(|_| panic!("counter gone"));
    rx.await.unwrap()
}

pub async fn tokio_tell(n: u64) -> Duration {
    let (tx, task) = raw_counter();
    let start = Instant::now();
    for _ in 0..n {
        tx.send(Raw::Add(1)).await.unwrap_or_else(|_| panic!("counter gone"));
    }
    assert_eq!(raw_get(&tx).await, n);
    let elapsed = start.elapsed();
    drop(tx);
    task.await.unwrap();
    elapsed
}

pub async fn tokio_ask(n: u64) -> Vec<Duration> {
    let (tx, task) = raw_counter();
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(raw_get(&tx).await);
        times.push(start.elapsed());
    }
    drop(tx);
    task.await.unwrap();
    times
}

/// ask round trips from inside the runtime against the raw counter (mpsc + oneshot reply),
/// as [`amber_ask_round_trips`].
pub async fn tokio_ask_round_trips(n: u64) -> Duration {
    let (tx, task) = raw_counter();
    let took = tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(raw_get(&tx).await);
        }
        start.elapsed()
    })
    .await
    .unwrap();
    task.await.unwrap();
    took
}

pub async fn tokio_fan_in(n: u64) -> Duration {
    let (tx, task) = raw_counter();
    let start = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for _ in 0..n / 4 {
                    tx.send(Raw::Add(1)).await.unwrap_or_else(|_| panic!("counter gone"));
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    assert_eq!(raw_get(&tx).await, n / 4 * 4);
    let elapsed = start.elapsed();
    drop(tx);
    task.await.unwrap();
    elapsed
}

pub async fn tokio_ring(actors: usize, hops: u64) -> Duration {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let (txs, rxs): (Vec<_>, Vec<_>) =
        (0..actors).map(|_| mpsc::channel::<u64>(DEFAULT_CAPACITY)).unzip();
    let tasks: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(i, mut rx)| {
            let next = txs[(i + 1) % actors].clone();
            let done = (i == 0).then(|| done_tx.clone());
            tokio::spawn(async move {
                while let Some(n) = rx.recv().await {
                    if n == 0 {
                        if let Some(done) = &done {
                            let _ = done.send(());
                        }
                        return;
                    }
                    if next.send(n - 1).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    txs[0].send(hops).await.unwrap_or_else(|_| panic!("ring broken"));
    done_rx.recv().await.unwrap();
    let elapsed = start.elapsed();
    drop(txs);
    for t in tasks {
        t.abort();
    }
    elapsed
}

pub async fn tokio_spawn(n: usize) -> Duration {
    let start = Instant::now();
    let actors: Vec<_> = (0..n).map(|_| raw_counter()).collect();
    for (tx, _) in &actors {
        raw_get(tx).await;
    }
    let mut tasks = Vec::with_capacity(n);
    for (tx, task) in actors {
        drop(tx);
        tasks.push(task);
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}
