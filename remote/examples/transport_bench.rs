//! Transport figures over loopback: one-way frames per second for small messages, and
//! request/reply round-trip latency.
//!
//! ```text
//! cargo run --release -p amber-remote --example transport_bench [frames] [round_trips]
//! ```

use std::time::{Duration, Instant};

use amber_remote::{Frame, NodeId, Transport, TransportConfig, TransportEvent};
use amber_snapshot::{ActorId, Epoch, SystemId};
use tokio::sync::mpsc::Receiver;

const PAYLOAD: usize = 64;

fn message(seq: u64, ask: Option<u64>) -> Frame {
    Frame::Message {
        to: ActorId::new(SystemId(2), 7),
        from: Some(ActorId::new(SystemId(1), seq)),
        tag: Epoch(3),
        ask,
        depth: 0,
        type_name: "bench::Ping".into(),
        payload: vec![0xab; PAYLOAD].into(),
    }
}

async fn pair() -> ((Transport, Receiver<TransportEvent>), (Transport, Receiver<TransportEvent>)) {
    let any = "127.0.0.1:0".parse().unwrap();
    let secret = b"benchmark secret, 32 bytes long!".to_vec();
    let config =
        |node: &str| TransportConfig::new(node, any, secret.clone()).with_queues(4096, 4096);
    let (a, mut a_events) = Transport::bind(config("a")).await.unwrap();
    let (b, mut b_events) = Transport::bind(config("b")).await.unwrap();
    a.connect(b.local_addr()).await.unwrap();
    assert!(matches!(a_events.recv().await, Some(TransportEvent::PeerUp { .. })));
    assert!(matches!(b_events.recv().await, Some(TransportEvent::PeerUp { .. })));
    ((a, a_events), (b, b_events))
}

async fn one_way(frames: u64) {
    let ((a, _a_events), (b, mut b_events)) = pair().await;
    let to = b.node().clone();
    let started = Instant::now();
    let sender = tokio::spawn({
        let a = a.clone();
        async move {
            for seq in 0..frames {
                a.send(&to, &message(seq, None)).await.unwrap();
            }
        }
    });
    let mut received = 0;
    while received < frames {
        match b_events.recv().await {
            Some(TransportEvent::Frame { .. }) => received += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    sender.await.unwrap();
    let stats = a.stats();
    let rate = frames as f64 / elapsed.as_secs_f64();
    println!(
        "one-way, {PAYLOAD}-byte payloads: {frames} frames in {:.2} s = {:.0}k frames/s, \
         {:.1} MB/s on the wire ({} bytes per frame), {:.1} frames per write",
        elapsed.as_secs_f64(),
        rate / 1e3,
        stats.bytes_sent as f64 / elapsed.as_secs_f64() / 1e6,
        stats.bytes_sent / stats.frames_sent.max(1),
        stats.frames_sent as f64 / stats.writes.max(1) as f64,
    );
    a.shutdown().await;
    b.shutdown().await;
}

async fn round_trips(count: u64) {
    let ((a, mut a_events), (b, mut b_events)) = pair().await;
    let a_id: NodeId = a.node().clone();
    let b_id = b.node().clone();
    // b answers every ask.
    let responder = tokio::spawn({
        let b = b.clone();
        async move {
            while let Some(event) = b_events.recv().await {
                if let TransportEvent::Frame {
                    frame: Frame::Message { ask: Some(ask), .. }, ..
                } = event
                {
                    let reply =
                        Frame::Reply { ask, epoch: Epoch(3), result: Ok(vec![0xcd; PAYLOAD]) };
                    if b.send(&a_id, &reply).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut latencies = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for ask in 0..count {
        let sent = Instant::now();
        a.send(&b_id, &message(ask, Some(ask))).await.unwrap();
        match a_events.recv().await {
            Some(TransportEvent::Frame { frame: Frame::Reply { ask: got, .. }, .. }) => {
                assert_eq!(got, ask);
            }
            other => panic!("unexpected {other:?}"),
        }
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "round trip (ask -> reply, {PAYLOAD}-byte payloads), {count} sequential: \
         p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us; {:.0} round trips/s",
        us(at(0.5)),
        us(at(0.9)),
        us(at(0.99)),
        us(*latencies.last().unwrap()),
        count as f64 / elapsed.as_secs_f64(),
    );
    a.shutdown().await;
    b.shutdown().await;
    responder.await.unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1).map(|arg| arg.parse::<u64>().expect("a number"));
    let frames = args.next().unwrap_or(1_000_000);
    let asks = args.next().unwrap_or(20_000);
    let workers = 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "amber-remote over loopback ({} build, {workers} worker threads)",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    runtime.block_on(one_way(frames));
    runtime.block_on(round_trips(asks));
}
