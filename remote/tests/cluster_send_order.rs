//! Per-sender order across a link whose frames take two ways, straight into the link's
//! queue or through the peer's forwarder once the link's queue is full (two clusters in one
//! process, over 127.0.0.1 with port 0, the link passing through a relay the test pauses):
//! many senders, in bursts larger than the queues while the link stalls and moves again,
//! each sender's messages arrive once each, in order; and a peer that goes away mid-stream
//! fails the senders' sends without hanging them.

mod support;

use std::collections::HashMap;

use amber_actors::{Actor, ActorRef, ActorSystem, AskError, Context};
use amber_remote::{Cluster, TransportConfig};
use serde::{Deserialize, Serialize};
use support::bounded;
use support::stalled::relay;

/// Checks that each sender's numbers arrive once each, in order.
#[derive(Default)]
struct PerSender {
    next: HashMap<u32, u64>,
    total: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum Seq {
    /// Sender `from`'s `n`th message (from 0).
    Next { from: u32, n: u64 },
    /// The messages received so far.
    Total,
}

impl Actor for PerSender {
    type Msg = Seq;
    type Reply = u64;
    async fn handle(&mut self, msg: Seq, _: &mut Context<Self>) -> u64 {
        if let Seq::Next { from, n } = msg {
            let next = self.next.entry(from).or_default();
            assert_eq!(n, *next, "sender {from}'s messages arrive once each, in order");
            *next += 1;
            self.total += 1;
        }
        self.total
    }
}

/// An actor on `a` that sends bursts from its handler: those sends do not wait for room,
/// they go behind the forwarder once the link's queue is full.
struct Burster {
    seq: ActorRef<PerSender>,
    from: u32,
    next: u64,
}

impl Actor for Burster {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, len: u64, _: &mut Context<Self>) -> u64 {
        for _ in 0..len {
            let (from, n) = (self.from, self.next);
            self.seq.tell(Seq::Next { from, n }).await.expect("the link stays up");
            self.next += 1;
        }
        self.next
    }
}

const QUEUE: usize = 16;

/// `a` (small queues and socket buffers) dials `b` through a relay that pauses on demand.
async fn pair() -> (Cluster, Cluster, tokio::sync::watch::Sender<bool>, ActorRef<PerSender>) {
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = |name: &str| {
        TransportConfig::new(name, addr, b"send order test secret, long".to_vec()).with_heartbeat(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(60),
        )
    };
    let a_config = config("a").with_queues(QUEUE, 1024).with_socket_buffer(4096);
    let a = Cluster::start(ActorSystem::builder(), a_config).await.unwrap();
    let b = Cluster::start(ActorSystem::builder(), config("b")).await.unwrap();
    let (via, pause) = relay(b.local_addr()).await;
    let peer = bounded(a.connect(via)).await.unwrap();
    b.system().spawn_named("seq", PerSender::default()).unwrap();
    let seq = bounded(a.lookup::<PerSender>(&peer, "seq")).await.unwrap();
    (a, b, pause, seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_senders_bursting_past_the_queues_keep_their_order() {
    const SENDERS: u32 = 8;
    const BURSTS: u64 = 40;
    let (a, b, pause, seq) = pair().await;
    let senders: Vec<_> = (0..SENDERS)
        .map(|from| {
            let seq = seq.clone();
            tokio::spawn(async move {
                let mut n = 0;
                for burst in 0..BURSTS {
                    // Bursts of different lengths, some past the link's queue and the credit
                    // (QUEUE each), a few ending in an ask (which takes the same way).
                    let len = 1 + (burst * 7 + u64::from(from) * 13) % (3 * QUEUE as u64);
                    for _ in 0..len {
                        seq.tell(Seq::Next { from, n }).await.expect("the link stays up");
                        n += 1;
                    }
                    if burst % 5 == u64::from(from) % 5 {
                        seq.ask(Seq::Next { from, n }).await.expect("the link stays up");
                        n += 1;
                    }
                    tokio::task::yield_now().await;
                }
                n
            })
        })
        .collect();
    // Meanwhile the link stalls and moves again, so that the senders find the link's queue
    // full and their sends go through the forwarder, then empty again.
    let stalls = async {
        for _ in 0..20 {
            pause.send(true).unwrap();
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
            pause.send(false).unwrap();
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
        }
    };
    // And an actor whose handler sends bursts past the queues, from its own sender id.
    let burster = a.system().spawn(Burster { seq: seq.clone(), from: SENDERS, next: 0 }).unwrap();
    let bursts = async {
        for _ in 0..BURSTS {
            burster.tell(3 * QUEUE as u64).await.unwrap();
        }
    };
    tokio::join!(bounded(stalls), bounded(bursts));
    pause.send(false).unwrap();
    let mut sent = bounded(burster.ask(0)).await.unwrap();
    for sender in senders {
        sent += bounded(sender).await.unwrap();
    }
    // Everything arrived (the ask is behind every message sent before it), in order.
    assert_eq!(bounded(seq.ask(Seq::Total)).await.unwrap(), sent);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_going_away_mid_stream_fails_the_senders_without_hanging_them() {
    const SENDERS: u32 = 4;
    let (a, b, pause, seq) = pair().await;
    let (started, mut running) = tokio::sync::mpsc::channel(SENDERS as usize);
    let senders: Vec<_> = (0..SENDERS)
        .map(|from| {
            let (seq, started) = (seq.clone(), started.clone());
            tokio::spawn(async move {
                let mut n = 0;
                loop {
                    if seq.tell(Seq::Next { from, n }).await.is_err() {
                        return n;
                    }
                    n += 1;
                    if n == 100 {
                        let _ = started.send(()).await;
                    }
                    if n % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for _ in 0..SENDERS {
        bounded(running.recv()).await.unwrap();
    }
    // Some senders wait for room on a stalled link, others send into it, as `b` goes away.
    pause.send(true).unwrap();
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    bounded(b.transport().shutdown()).await;
    pause.send(false).unwrap();
    for sender in senders {
        assert!(bounded(sender).await.unwrap() >= 100);
    }
    assert_eq!(bounded(seq.ask(Seq::Total)).await, Err(AskError::NodeDown("b".into())));
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}
