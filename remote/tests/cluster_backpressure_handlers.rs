//! Backpressure across nodes from inside a handler (two clusters in one process, over
//! 127.0.0.1 with port 0, the link passing through a relay the test can pause): a handler
//! never waits for the link — its tells go beyond the link's bound — and its actor waits for
//! the link to drain before its next message, between two messages (where a snapshot can cut
//! it). A file of its own: it stalls a link and saturates it, which it should not do beside
//! another test doing the same.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use amber_actors::{Actor, ActorRef, Context, MailboxCapacity, SpawnOptions};
use support::bounded;
use support::stalled::{StalledPair, Tally, TallyMsg, stalled_pair};

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
    let StalledPair { a, b, pause, tally } = stalled_pair(QUEUE).await;

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
        while finished.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
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
