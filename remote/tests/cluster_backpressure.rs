//! Backpressure across nodes (two clusters in one process, over 127.0.0.1 with port 0, the
//! link passing through a relay the test can pause): while the link does not move, a sender
//! can queue only a bounded number of messages for the other node — `try_tell` reports the
//! queue full and `tell` waits — and once it moves again every message arrives, in order.

mod support;

use amber_actors::TrySendError;
use support::bounded;
use support::stalled::{StalledPair, TallyMsg, stalled_pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_bounds_what_a_sender_queues_and_loses_nothing() {
    const QUEUE: usize = 16;
    let StalledPair { a, b, pause, tally } = stalled_pair(QUEUE).await;

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
    // The link's writer may still be moving the last bytes into the kernel's buffers: the
    // link has stalled once try_tell has found it full a thousand times in a row.
    bounded(async {
        let mut full = 0;
        while full < 1_000 {
            match tally.try_tell(TallyMsg::Add(sent)) {
                Ok(()) => (sent, full) = (sent + 1, 0),
                Err(TrySendError::Full(_)) => full += 1,
                Err(TrySendError::Stopped(_)) => panic!("the link went down"),
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(sent < ATTEMPTS / 3, "{sent} messages queued");
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
