//! The mailbox rule: a handler never waits for room in a bounded mailbox, so actors that
//! tell themselves or each other cannot deadlock on capacity; outside senders still get
//! backpressure.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amber::prelude::*;
use amber::{MailboxCapacity, SpawnOptions, TrySendError};
use tokio::sync::{Notify, Semaphore};

/// Counts handled messages and says when `target` is reached.
#[derive(Default)]
struct Tally {
    handled: AtomicU64,
    done: Notify,
}

impl Tally {
    fn handled(&self, target: u64) {
        if self.handled.fetch_add(1, Ordering::AcqRel) + 1 == target {
            self.done.notify_one();
        }
    }

    /// Waits for the target, or fails after a generous bound (a deadlock never gets there).
    async fn reached(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(20), self.done.notified()).await.is_ok()
    }
}

fn capacity_one() -> SpawnOptions {
    SpawnOptions::new().capacity(MailboxCapacity::Bounded(1))
}

/// Tells itself `fan` messages per message, down to depth 0.
struct SelfTeller {
    tally: Arc<Tally>,
    fan: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Depth(u32);

impl Actor for SelfTeller {
    type Msg = Depth;
    type Reply = ();
    async fn handle(&mut self, Depth(d): Depth, ctx: &mut Context<Self>) {
        if d > 0 {
            for _ in 0..self.fan {
                ctx.myself().tell(Depth(d - 1)).await.expect("alive");
            }
        }
        self.tally.handled(u64::MAX);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_telling_itself_past_its_capacity_does_not_deadlock() {
    let system = ActorSystem::new();
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let me =
        system.spawn_with(capacity_one(), move || SelfTeller { tally: t.clone(), fan: 3 }).unwrap();
    me.tell(Depth(6)).await.unwrap();
    // 1 + 3 + 9 + ... + 3^6 messages, each handled once.
    let total: u64 = (0..=6).map(|d| 3u64.pow(d)).sum();
    let wait = async {
        while tally.handled.load(Ordering::Acquire) < total {
            tokio::task::yield_now().await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(20), wait).await.is_ok(),
        "handled {} of {total}: the actor waited on its own full mailbox",
        tally.handled.load(Ordering::Acquire)
    );
    system.shutdown().await;
}

/// Tells its peer twice per message, down to depth 0.
struct Bouncer {
    tally: Arc<Tally>,
    total: u64,
    peer: Option<ActorRef<Bouncer>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Bounce {
    Peer(ActorRef<Bouncer>),
    Hop(u32),
}

impl Actor for Bouncer {
    type Msg = Bounce;
    type Reply = ();
    async fn handle(&mut self, msg: Bounce, _ctx: &mut Context<Self>) {
        match msg {
            Bounce::Peer(peer) => self.peer = Some(peer),
            Bounce::Hop(d) => {
                if d > 0 {
                    let peer = self.peer.as_ref().expect("introduced");
                    peer.tell(Bounce::Hop(d - 1)).await.expect("alive");
                    peer.tell(Bounce::Hop(d - 1)).await.expect("alive");
                }
                self.tally.handled(self.total);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actors_telling_each_other_with_capacity_one_do_not_deadlock() {
    let system = ActorSystem::new();
    let tally = Arc::new(Tally::default());
    let depth = 11;
    let total = (1u64 << (depth + 1)) - 1;
    let bouncer = || {
        let tally = tally.clone();
        move || Bouncer { tally: tally.clone(), total, peer: None }
    };
    let a = system.spawn_with(capacity_one(), bouncer()).unwrap();
    let b = system.spawn_with(capacity_one(), bouncer()).unwrap();
    a.tell(Bounce::Peer(b.clone())).await.unwrap();
    b.tell(Bounce::Peer(a.clone())).await.unwrap();
    a.tell(Bounce::Hop(depth)).await.unwrap();
    assert!(
        tally.reached().await,
        "handled {} of {total}: the two actors waited on each other's full mailboxes",
        tally.handled.load(Ordering::Acquire)
    );
    system.shutdown().await;
}

/// Each message waits for a permit.
struct Gate {
    open: Arc<Semaphore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item;

impl Actor for Gate {
    type Msg = Item;
    type Reply = ();
    async fn handle(&mut self, Item: Item, _ctx: &mut Context<Self>) {
        self.open.acquire().await.expect("never closed").forget();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_senders_still_wait_for_room_and_try_tell_still_refuses() {
    let system = ActorSystem::new();
    let open = Arc::new(Semaphore::new(0));
    let gate = {
        let open = open.clone();
        system.spawn_with(capacity_one(), move || Gate { open: open.clone() }).unwrap()
    };
    gate.tell(Item).await.unwrap(); // taken by the handler, which waits
    gate.tell(Item).await.unwrap(); // queued: the mailbox is full
    assert!(matches!(gate.try_tell(Item), Err(TrySendError::Full(Item))));
    let blocked = tokio::spawn({
        let gate = gate.clone();
        async move { gate.tell(Item).await }
    });
    tokio::task::yield_now().await;
    assert!(!blocked.is_finished(), "an outside tell waits while the mailbox is full");
    // Let every handler through; the waiting tell gets its room.
    open.add_permits(3);
    let sent = tokio::time::timeout(Duration::from_secs(20), blocked).await;
    assert!(matches!(sent, Ok(Ok(Ok(())))), "the waiting tell went through once room freed up");
    system.shutdown().await;
}

/// Records what it handles; each message waits for a permit.
struct Ledger {
    open: Arc<Semaphore>,
    seen: Arc<std::sync::Mutex<Vec<u32>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry(u32);

impl Actor for Ledger {
    type Msg = Entry;
    type Reply = ();
    async fn handle(&mut self, Entry(n): Entry, _ctx: &mut Context<Self>) {
        self.open.acquire().await.expect("never closed").forget();
        self.seen.lock().unwrap().push(n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_tell_is_never_overtaken_by_try_tell() {
    let system = ActorSystem::new();
    let open = Arc::new(Semaphore::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ledger = {
        let (open, seen) = (open.clone(), seen.clone());
        system
            .spawn_with(capacity_one(), move || Ledger { open: open.clone(), seen: seen.clone() })
            .unwrap()
    };
    ledger.tell(Entry(0)).await.unwrap(); // taken by the handler, which waits
    ledger.tell(Entry(1)).await.unwrap(); // queued: the mailbox is full
    // A tell from outside, polled once: the mailbox is full, so it waits in line.
    let mut waiting = Box::pin(ledger.tell(Entry(2)));
    assert!(futures::poll!(&mut waiting).is_pending());
    // One handler goes through and the actor takes message 1: a slot frees up, and it is the
    // waiting tell's. However often they try meanwhile, try_tells find no room.
    open.add_permits(1);
    support::bounded(async {
        while seen.lock().unwrap().len() < 1 || ledger.queued() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for n in 100..1_100 {
        assert!(
            matches!(ledger.try_tell(Entry(n)), Err(TrySendError::Full(_))),
            "try_tell {n} took the room granted to the waiting tell"
        );
    }
    support::bounded(waiting).await.expect("the waiting tell went through");
    open.add_permits(2);
    support::bounded(async {
        while seen.lock().unwrap().len() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
    system.shutdown().await;
}
