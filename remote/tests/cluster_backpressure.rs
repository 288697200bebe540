//! Backpressure across nodes (two clusters in one process, over 127.0.0.1 with port 0, the
//! link passing through a relay the test can pause): while the link does not move, a sender
//! can queue only a bounded number of messages for the other node — `try_tell` reports the
//! queue full and `tell` waits — and once it moves again every message arrives, in order.
//! An actor's handler never waits for the link: its tells go beyond the bound, and the actor
//! waits for the link to drain before its next message.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amber_actors::{
    Actor, ActorRef, ActorSystem, Context, MailboxCapacity, SpawnOptions, TrySendError,
};
use amber_remote::{Cluster, TransportConfig};
use serde::{Deserialize, Serialize};
use support::bounded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Counts what it is told, and checks it comes in order.
#[derive(Default)]
struct Tally {
    next: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum TallyMsg {
    /// The sender's `n`th message (from 0).
    Add(u64),
    Get,
}

impl Actor for Tally {
    type Msg = TallyMsg;
    type Reply = u64;
    async fn handle(&mut self, msg: TallyMsg, _: &mut Context<Self>) -> u64 {
        if let TallyMsg::Add(n) = msg {
            assert_eq!(n, self.next, "messages arrive once each, in order");
            self.next += 1;
        }
        self.next
    }
}

/// A TCP relay to `to` whose copying from the dialling side stops while `paused` holds
/// `true` (it then reads nothing, so the dialling side's socket fills) and resumes after.
async fn relay(to: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (pause, paused) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(to).await else { continue };
            let (mut in_read, mut in_write) = inbound.into_split();
            let (mut out_read, mut out_write) = outbound.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
            });
            let mut paused = paused.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 16 * 1024];
                loop {
                    if paused.wait_for(|p| !*p).await.is_err() {
                        return;
                    }
                    let n = tokio::select! {
                        n = in_read.read(&mut buf) => n,
                        _ = paused.wait_for(|p| *p) => continue,
                    };
                    match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) if out_write.write_all(&buf[..n]).await.is_err() => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, pause)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_bounds_what_a_sender_queues_and_loses_nothing() {
    const QUEUE: usize = 16;
    let addr = "127.0.0.1:0".parse().unwrap();
    // Small queues and socket buffers on the sending node; a peer timeout longer than the
    // test, so that the paused link stays up.
    let config = |name: &str| {
        TransportConfig::new(name, addr, b"s3cret".to_vec())
            .with_heartbeat(Duration::from_millis(100), Duration::from_secs(60))
    };
    let a_config = config("a").with_queues(QUEUE, 1024).with_socket_buffer(4096);
    let a = Cluster::start(ActorSystem::builder(), a_config).await.unwrap();
    let b = Cluster::start(ActorSystem::builder(), config("b")).await.unwrap();
    let (via, pause) = relay(b.local_addr()).await;
    let peer = bounded(a.connect(via)).await.unwrap();
    b.system().spawn_named("tally", Tally::default()).unwrap();
    let tally = bounded(a.lookup::<Tally>(&peer, "tally")).await.unwrap();
    assert_eq!(bounded(tally.ask(TallyMsg::Get)).await.unwrap(), 0);

    // The link stops moving: sends fill the kernel buffers, the link's queue and the
    // cluster's credit (each of QUEUE messages); from then on `try_tell` reports it full.
    // Without the bound, every one of the attempts would be queued.
    pause.send(true).unwrap();
    const ATTEMPTS: u64 = 300_000;
    let mut sent = 0u64;
    bounded(async {
        for _ in 0..ATTEMPTS {
            match tally.try_tell(TallyMsg::Add(sent)) {
                Ok(()) => sent += 1,
                // Let the forwarder and the link's writer move what they can meanwhile.
                Err(TrySendError::Full(_)) => tokio::task::yield_now().await,
                Err(TrySendError::Stopped(_)) => panic!("the link went down"),
            }
        }
    })
    .await;
    // What the kernel buffers hold (a 4 KiB send buffer, the relay's receive buffer) plus
    // two queues of QUEUE: a few thousand messages at most.
    assert!(sent >= QUEUE as u64 && sent < ATTEMPTS / 3, "{sent} messages queued");
    assert!(matches!(tally.try_tell(TallyMsg::Add(sent)), Err(TrySendError::Full(_))));
    let waiting = {
        let tally = tally.clone();
        tokio::spawn(async move { tally.tell(TallyMsg::Add(sent)).await })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "a bounded tell waits while the link does not move");

    // The link moves again: the waiting tell goes through and everything arrives, in order.
    pause.send(false).unwrap();
    bounded(waiting).await.unwrap().expect("the tell went through");
    assert_eq!(bounded(tally.ask(TallyMsg::Get)).await.unwrap(), sent + 1);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

/// On each message, tells the remote tally the next `BURST` numbers; counts its handlers
/// started and finished.
struct Pump {
    tally: ActorRef<Tally>,
    next: u64,
    started: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
}

const BURST: u64 = 10;

impl Actor for Pump {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, (): (), _: &mut Context<Self>) {
        self.started.fetch_add(1, Ordering::SeqCst);
        for _ in 0..BURST {
            self.tally.tell(TallyMsg::Add(self.next)).await.expect("the link is up");
            self.next += 1;
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_never_waits_for_a_stalled_link_its_actor_waits_before_its_next_message() {
    const QUEUE: usize = 16;
    const GOES: u64 = 20_000;
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = |name: &str| {
        TransportConfig::new(name, addr, b"s3cret".to_vec())
            .with_heartbeat(Duration::from_millis(100), Duration::from_secs(60))
    };
    let a_config = config("a").with_queues(QUEUE, 1024).with_socket_buffer(4096);
    let a = Cluster::start(ActorSystem::builder(), a_config).await.unwrap();
    let b = Cluster::start(ActorSystem::builder(), config("b")).await.unwrap();
    let (via, pause) = relay(b.local_addr()).await;
    let peer = bounded(a.connect(via)).await.unwrap();
    b.system().spawn_named("tally", Tally::default()).unwrap();
    let tally = bounded(a.lookup::<Tally>(&peer, "tally")).await.unwrap();
    assert_eq!(bounded(tally.ask(TallyMsg::Get)).await.unwrap(), 0);

    let (started, finished) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (counts, to) = ((started.clone(), finished.clone()), tally.clone());
    let unbounded = SpawnOptions::new().capacity(MailboxCapacity::Unbounded);
    let pump = a.system().spawn_with(unbounded, move || Pump {
        tally: to.clone(),
        next: 0,
        started: counts.0.clone(),
        finished: counts.1.clone(),
    });
    let pump = pump.unwrap();
    pause.send(true).unwrap();
    for _ in 0..GOES {
        pump.tell(()).await.unwrap(); // an unbounded mailbox: never waits
    }
    // The link stops moving; the pump goes on until the link's queue is over its bound, then
    // waits — between two messages: every handler it started has finished.
    bounded(async {
        let mut seen = u64::MAX;
        loop {
            let now = finished.load(Ordering::SeqCst);
            if now == seen {
                break;
            }
            seen = now;
            for _ in 0..500 {
                tokio::task::yield_now().await;
            }
        }
    })
    .await;
    let (s, f) = (started.load(Ordering::SeqCst), finished.load(Ordering::SeqCst));
    assert_eq!(s, f, "a handler waits inside a tell for the stalled link");
    // Kernel buffers and two queues of QUEUE hold a few thousand messages: the pump has
    // handled a few hundred of its messages, not all of them.
    assert!((1..GOES / 2).contains(&f), "{f} of {GOES} handled while the link is stalled");

    // The link moves again: the pump handles the rest and every number arrives, in order.
    pause.send(false).unwrap();
    bounded(async {
        while finished.load(Ordering::SeqCst) < GOES {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(bounded(tally.ask(TallyMsg::Get)).await.unwrap(), GOES * BURST);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}
