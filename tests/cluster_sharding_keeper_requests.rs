//! Requests held by, or recorded to, a shard's keeper (over 127.0.0.1).
//!
//! # A keeper restored with the requests of its own node's passivation sweep and lookups
//! recorded in flight to it (over 127.0.0.1). The region asks its shard's keeper `Begin`
//! (a passivation begins) and `Wake` (start or find an entity) from a task, outside any
//! actor: such an ask queued at the keeper when the keeper cuts is recorded in flight,
//! and the restored keeper takes it — with nobody waiting for its answer, and nothing to
//! follow it. These checkpoints are built from a real one with the records a cut takes
//! in those races added (what the region sends, stamped by the system it ran in), so that
//! the race is reproduced every time, not by chance.
//!
//! - A `Begin` recorded, its entity's cut taken before it passivated (so the entity is
//!   restored running, and its state never comes): acted on, the restored keeper held the
//!   key as passivating for good — every lookup of the key refused ("it passivates") and
//!   the requests for it retried until they failed; the sharded bank stalled after a
//!   restore that way.
//! - A `Wake` recorded before the `Keep` of the entity that passivated before its cut (the
//!   keeper's cut, taken after the `Begin`, does not hold the passivation): acted on, it
//!   started the key anew from its factory, and the kept state arrived beside it.
//!
//! # An ask held by a keeper that moves
//!
//! A redirected ask held in a keeper's `pending` (its key held mid-passivation) is in a
//! checkpoint once, in the keeper's cut; when the keeper moves with its shard, during
//! snapshots, its reply route stays behind and answers the asker `NoReply`, and the request
//! goes on as a tell, handled once on the new node; every checkpoint holds it once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber::cluster::{KeeperMsg, KeeperReply, ShardKeeper, Sharding};
use amber::prelude::*;
use amber::snapshot::{Checkpoint, Epoch, InFlightRecord};
use amber::{ActorId, ActorState, AskError, Cluster};
use support::bounded;
use support::cluster::config;
use support::purse::*;

/// The keeper of `key`'s shard in `checkpoint`.
fn keeper_of(checkpoint: &Checkpoint) -> ActorId {
    let keepers: Vec<ActorId> = checkpoint
        .manifest
        .actors
        .iter()
        .filter(|a| a.type_name == "amber.sharding.Keeper")
        .map(|a| a.id)
        .collect();
    assert_eq!(keepers.len(), 1, "one shard's keeper: {keepers:?}");
    keepers[0]
}

/// `message` recorded in flight to `keeper`, as a cut records an ask from outside queued
/// at it.
fn record(checkpoint: &Checkpoint, keeper: ActorId, message: &KeeperMsg) -> InFlightRecord {
    InFlightRecord {
        to: keeper,
        from: None,
        epoch: Epoch(checkpoint.manifest.epoch.0 - 1),
        ask: true,
        payload: amber::encode(message).expect("encodes").into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_the_snapshotted_system_recorded_to_a_keeper_neither_hold_nor_duplicate_a_key()
{
    let x = linked_node("rk-x").await;
    let on_x = purses(&x, by_hand(), 100);
    // Two keys of one shard: one keeper.
    let running = key_owned_by(&on_x, &x, "restored begin");
    let shard = on_x.shard_of(&running);
    let passivated =
        (0..).map(|k| format!("restored wake {k}")).find(|k| on_x.shard_of(k) == shard).unwrap();
    bounded(on_x.entity(running.clone()).tell(PurseMsg::Deposit { amount: 5 })).await.unwrap();
    assert_eq!(report(&on_x, &running).await.balance, 105);
    let mut checkpoint = bounded(x.system().snapshot()).await.expect("snapshot");
    let source = x.system().id();
    x.shutdown().await;

    let keeper = keeper_of(&checkpoint);
    let kept = |balance: u64| {
        let purse = PurseReport {
            key: passivated.clone(),
            balance,
            last: Default::default(),
            violations: Vec::new(),
        };
        amber::encode(&purse).expect("encodes")
    };
    // The sweep's `Begin` for the running purse; a lookup's `Wake` for the other (its
    // factory's state), then that purse's own state, 150, as it passivated before its cut.
    let begin = KeeperMsg::Begin { key: running.clone(), asker: Some(source) };
    let wake = KeeperMsg::Wake {
        key: passivated.clone(),
        version: Purse::VERSION,
        fresh: kept(100),
        asker: Some(source),
    };
    let keep =
        KeeperMsg::Keep { key: passivated.clone(), version: Purse::VERSION, state: kept(150) };
    for message in [begin, wake] {
        let record = record(&checkpoint, keeper, &message);
        checkpoint.in_flight.push(record);
    }
    let mut keep = record(&checkpoint, keeper, &keep);
    keep.ask = false;
    checkpoint.in_flight.push(keep);

    let placement = Sharding::<Purse>::placement(&checkpoint, SHARDS, ["rk-r"]);
    let restored = bounded(Cluster::restore(builder(), config("rk-r"), &checkpoint, &placement))
        .await
        .expect("restore");
    let sharding = purses(&restored, by_hand(), 100);
    bounded(restored.resume(Duration::from_secs(10))).await.expect("resume");

    // The running purse is found, takes a deposit, and passivates and wakes again.
    let entity = sharding.entity(running.clone());
    let r = bounded(entity.ask(PurseMsg::Deposit { amount: 1 })).await.expect("not held");
    assert_eq!(r.balance, 106);
    assert!(bounded(sharding.passivate(&running)).await.expect("passivates"), "not held");
    assert_eq!(report(&sharding, &running).await.balance, 106, "from its kept state");
    // The other purse starts from its own state, once: not from its factory's.
    assert_eq!(report(&sharding, &passivated).await.balance, 150);
    assert!(bounded(sharding.passivate(&passivated)).await.expect("passivates"));
    assert_eq!(report(&sharding, &passivated).await.balance, 150, "one state for the key");
    restored.shutdown().await;
}

/// Items 2 and 3 of the ask redirect's open questions. A key held mid-passivation (the
/// region's `Begin`, made by hand, whose state never comes) makes a redirected ask from y
/// wait in its keeper's `pending`: a snapshot then holds it there, once, deterministically.
/// The shard is then handed off to y (keeper first, then the entity) while snapshots run:
/// every checkpoint holds the purse's money and the held deposit exactly once; the asker
/// gets `NoReply` (its route stayed on x), and the deposit is handled once on y.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_held_by_a_keeper_is_in_each_checkpoint_once_and_handled_once_as_the_keeper_moves() {
    let [(x, on_x), (y, on_y)] = pair(["hk-x", "hk-y"], by_hand).await;
    let key = key_owned_by(&on_x, &x, "held ask");
    let far = on_y.entity(key.clone());
    // Answered: handled, so that the purse is idle when it is told to passivate.
    assert_eq!(bounded(far.ask(PurseMsg::Report)).await.unwrap().balance, 100);
    let plain_far: ActorRef<Purse> = bounded(far.entity()).await.unwrap();
    assert!(bounded(on_x.passivate(&key)).await.unwrap(), "it passivates");
    assert_eq!(report(&on_x, &key).await.balance, 100, "woken from its kept state");
    let name = format!("shard-kept:test.Purse/{}", on_x.shard_of(&key));
    let keeper = x.system().lookup::<ShardKeeper>(&name).expect("the shard's keeper on x");
    let begin = KeeperMsg::Begin { key: key.clone(), asker: Some(x.system().id()) };
    assert_eq!(bounded(keeper.ask(begin)).await.unwrap(), KeeperReply::Begun);

    let asked = tokio::spawn(async move { plain_far.ask(PurseMsg::Deposit { amount: 7 }).await });
    bounded(async {
        loop {
            if let Ok(KeeperReply::Keys(keys)) = keeper.ask(KeeperMsg::Waiting).await
                && keys.contains(&key)
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let checkpoint = bounded(x.system().snapshot()).await.expect("snapshot");
    assert_eq!(money_and_asks(&checkpoint), (107, 1), "the held ask, in the keeper's cut, once");

    let stop = Arc::new(AtomicBool::new(false));
    let snapshots = tokio::spawn({
        let (x, stop) = (x.clone(), stop.clone());
        async move {
            let (mut taken, mut failed) = (Vec::new(), 0);
            loop {
                // Within 10 s (they take about a millisecond): a snapshot that y had
                // reported for, told what to expect, and whose last expected message was
                // the purse arriving behind it waited for its deadline (about 1 run in 10)
                // before the node machine checked its expectation again when that actor cut.
                match x.system().snapshot_within(Duration::from_secs(10)).await {
                    Ok(checkpoint) => taken.push(money_and_asks(&checkpoint)),
                    Err(e) => {
                        eprintln!("a snapshot during the hand-off: {e}");
                        failed += 1;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    return (taken, failed);
                }
            }
        }
    });
    let handed = bounded(on_x.hand_off()).await;
    assert!(handed.failed.is_empty(), "{:?}", handed.failed);
    assert_eq!(handed.moved.len(), 1, "the purse moved: {:?}", handed.moved);
    stop.store(true, Ordering::Relaxed);
    let (taken, failed) = bounded(snapshots).await.unwrap();
    eprintln!("{} snapshots during the hand-off ({failed} failed)", taken.len());
    assert_eq!(failed, 0, "every snapshot during the hand-off completes");
    for (money, asks) in &taken {
        assert_eq!(*money, 107, "each checkpoint holds the money and the held deposit once");
        assert!(*asks <= 1, "the held ask at most once: {asks}");
    }
    let answer = bounded(asked).await.unwrap();
    assert!(matches!(answer, Err(AskError::NoReply)), "its route stayed on x: {answer:?}");

    assert_eq!(report(&on_y, &key).await.balance, 107, "the held deposit, handled once");
    let after = bounded(x.system().snapshot()).await.expect("snapshot");
    assert_eq!(money_and_asks(&after), (107, 0), "handled: nothing waits");
    x.shutdown().await;
    y.shutdown().await;
}
