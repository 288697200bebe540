//! Asks to passivated sharded entities (over 127.0.0.1): an ask from another node through a
//! ref kept from before the passivation (or racing the idle timeout) is redirected to the
//! shard's keeper, which starts the entity again from its kept state and hands it the
//! request; the entity answers the asker itself. Each sender's tells and asks keep their
//! order, and a checkpoint holding a redirected ask restores with that request handled
//! exactly once.

mod support;

use std::time::Duration;

use amber::AskError;
use amber::cluster::ShardingConfig;
use amber::prelude::*;
use support::bounded;
use support::purse::*;

/// Case 1: asks through refs kept from before the entity passivated on x. From y (an
/// `EntityRef` and a plain `ActorRef`), they are redirected to the keeper and answered
/// with the kept state. On x itself, a plain ref to the passivated actor is refused
/// (`AskError::Stopped`: not delivered), and an `EntityRef` finds the entity again and is
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_through_a_ref_kept_before_the_passivation_is_answered_from_the_kept_state() {
    let [(x, on_x), (y, on_y)] = pair(["pa-x", "pa-y"], by_hand).await;
    let key = key_owned_by(&on_x, &x, "kept ask");
    let far = on_y.entity(key.clone());
    bounded(far.tell(PurseMsg::Deposit { amount: 1 })).await.unwrap();
    assert_eq!(bounded(far.ask(PurseMsg::Report)).await.unwrap().balance, 101);
    let plain_far: ActorRef<Purse> = bounded(far.entity()).await.unwrap();
    let near = on_x.entity(key.clone());
    let plain_near: ActorRef<Purse> = bounded(near.entity()).await.unwrap();
    assert_eq!(plain_near.id(), plain_far.id());

    for round in 0..3u64 {
        assert!(bounded(on_x.passivate(&key)).await.unwrap(), "round {round}: it passivates");
        assert!(on_x.local_keys().is_empty(), "round {round}: it no longer runs");
        // The EntityRef on y still holds the ref to the first actor: redirected, answered.
        let r = bounded(far.ask(PurseMsg::Deposit { amount: 1 })).await.expect("answered");
        assert_eq!(r.balance, 102 + round, "round {round}: from the kept state");
        assert_eq!(on_x.local_keys(), std::slice::from_ref(&key), "woken on x");
        // The plain ref held on y: redirected too (the entity runs: handed over at once).
        let r = bounded(plain_far.ask(PurseMsg::Report)).await.expect("answered");
        assert_eq!(r.balance, 102 + round);
    }

    // On x: the plain ref leads to the passivated actor's closed mailbox.
    assert!(bounded(on_x.passivate(&key)).await.unwrap());
    let refused = bounded(plain_near.ask(PurseMsg::Report)).await;
    assert!(matches!(refused, Err(AskError::Stopped)), "not delivered: {refused:?}");
    // The EntityRef of x gets its request back and sends it to the entity found again.
    let r = bounded(near.ask(PurseMsg::Deposit { amount: 10 })).await.expect("answered");
    assert_eq!(r.balance, 114, "the kept state, and the deposit, once");
    assert_eq!(bounded(on_x.passivated_keys()).await, Vec::<String>::new());
    x.shutdown().await;
    y.shutdown().await;
}

/// Case 2: asks from y racing the idle timeout's passivations on x (a short timeout, and
/// pauses around it between the asks: load, not synchronization). Every ask is answered,
/// each exactly once and in order: through an `EntityRef` (sender 1) and through a plain
/// ref held from the start (sender 2, redirected after the first passivation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_racing_the_idle_timeout_are_all_answered_once_in_order() {
    let idle = || ShardingConfig::new(SHARDS).passivate_after(Duration::from_millis(20));
    let [(x, on_x), (y, on_y)] = pair(["par-x", "par-y"], idle).await;
    let key = key_owned_by(&on_x, &x, "racing ask");
    let entity = on_y.entity(key.clone());
    bounded(entity.tell(PurseMsg::Deposit { amount: 0 })).await.unwrap();
    let held: ActorRef<Purse> = bounded(entity.entity()).await.unwrap();
    let first = held.id();
    let mut ids = std::collections::BTreeSet::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    const ASKS: u64 = 60;
    for n in 1..=ASKS {
        let r = bounded(entity.ask(PurseMsg::Push { sender: 1, n })).await.expect("answered");
        assert_eq!(r.last.get(&1), Some(&n), "ask {n} through the EntityRef, once");
        let r = bounded(held.ask(PurseMsg::Push { sender: 2, n })).await.expect("answered");
        assert_eq!(r.last.get(&2), Some(&n), "ask {n} through the held ref, once");
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        if let Ok(current) = entity.entity().await {
            ids.insert(current.id());
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Around the timeout: some asks find the entity running, some passivating, some
        // passivated.
        tokio::time::sleep(Duration::from_millis(rng % 45)).await;
    }
    // And once more after a passivation known to have happened.
    until_passivated(&on_x, &key).await;
    let r = bounded(held.ask(PurseMsg::Push { sender: 2, n: ASKS + 1 })).await.expect("answered");
    assert_eq!(r.last.get(&2), Some(&(ASKS + 1)));
    assert_eq!(r.last.get(&1), Some(&ASKS));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    ids.insert(first);
    eprintln!("{} actors of the entity answered", ids.len());
    assert!(ids.len() > 1, "the entity passivated while asks came");
    x.shutdown().await;
    y.shutdown().await;
}

/// Case 3: tell, ask, tell from one sender on y, through a ref held from before, while x
/// passivates the entity (racing it, round after round): they reach the entity in send
/// order (its numbering check), none lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_ask_tell_from_one_sender_across_a_passivation_keep_their_order() {
    let [(x, on_x), (y, on_y)] = pair(["pao-x", "pao-y"], by_hand).await;
    let key = key_owned_by(&on_x, &x, "ordered");
    let entity = on_y.entity(key.clone());
    let mut n = 0;
    let mut passivated = 0;
    for round in 0..40u64 {
        let held: ActorRef<Purse> = bounded(entity.entity()).await.unwrap();
        // Passivated concurrently with the sends (it may find the entity busy) or, every
        // other round, known to be passivated before them.
        let passivation = {
            let on_x = on_x.clone();
            let key = key.clone();
            tokio::spawn(async move { on_x.passivate(&key).await })
        };
        let mut passivation = Some(passivation);
        if round % 2 == 0 {
            let done = passivation.take().expect("spawned");
            passivated += u32::from(bounded(done).await.unwrap().expect("passivate"));
        }
        n += 1;
        bounded(held.tell(PurseMsg::Push { sender: 5, n })).await.unwrap();
        n += 1;
        let r = bounded(held.ask(PurseMsg::Push { sender: 5, n })).await.expect("answered");
        assert_eq!(r.last.get(&5), Some(&n), "round {round}: the tell before it is in");
        assert!(r.violations.is_empty(), "round {round}: {:?}", r.violations);
        n += 1;
        bounded(held.tell(PurseMsg::Push { sender: 5, n })).await.unwrap();
        if let Some(done) = passivation {
            passivated += u32::from(bounded(done).await.unwrap().expect("passivate"));
        }
    }
    let r = report(&on_y, &key).await;
    assert_eq!(r.last.get(&5), Some(&n), "every message arrived: {r:?}");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(passivated > 0, "the entity passivated between the sends");
    x.shutdown().await;
    y.shutdown().await;
}

/// Case 4: asks from y (deposits, through plain refs to purses passivated on x) race
/// snapshots of the cluster, round after round, until a checkpoint holds a redirected ask
/// (waiting in a keeper, or recorded in flight to one). Every checkpoint holds each
/// answered deposit exactly once; one holding a redirected ask restores (onto one node)
/// with that request handled exactly once: the restored purses add up to the checkpoint's
/// money. (The ask's reply route does not survive the restore: the request is handled as
/// a tell there; its asker, in the cluster the snapshot was taken of, had its answer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_holding_a_redirected_ask_restores_it_exactly_once() {
    const PURSES: usize = 12;
    let [(x, on_x), (y, on_y)] = pair(["pas-x", "pas-y"], by_hand).await;
    let keys: Vec<String> =
        (0..PURSES).map(|k| key_owned_by(&on_x, &x, &format!("snap {k}"))).collect();
    let mut held = Vec::new();
    for key in &keys {
        let entity = on_y.entity(key.clone());
        bounded(entity.tell(PurseMsg::Deposit { amount: 0 })).await.unwrap();
        held.push(bounded(entity.entity()).await.unwrap());
    }
    let mut answered = 0u64;
    let mut caught = None;
    for round in 0..1000 {
        for key in &keys {
            // Busy (a deposit still being handled) or passivated already: either is fine.
            let _ = bounded(on_x.passivate(key)).await.expect("passivate");
        }
        let asks: Vec<_> = held
            .iter()
            .map(|plain| {
                let plain = plain.clone();
                tokio::spawn(async move { plain.ask(PurseMsg::Deposit { amount: 1 }).await })
            })
            .collect();
        let checkpoint = bounded(x.system().snapshot()).await.expect("snapshot");
        let mut this_round = 0;
        for ask in asks {
            bounded(ask).await.unwrap().expect("every redirected ask is answered");
            this_round += 1;
        }
        answered += this_round;
        let (money, redirected) = money_and_asks(&checkpoint);
        // Each purse started with 100; deposits answered before this round are in the cut,
        // those of this round in it or not (asked from outside: input, never twice).
        let before = 100 * PURSES as u64 + answered - this_round;
        assert!(
            (before..=before + this_round).contains(&money),
            "round {round}: {money} not within {before}..={}",
            before + this_round
        );
        if redirected > 0 {
            eprintln!("round {round}: a checkpoint holds {redirected} redirected asks");
            caught = Some((checkpoint, money));
            break;
        }
    }
    let mut total = 0;
    for key in &keys {
        total += report(&on_y, key).await.balance;
    }
    assert_eq!(total, 100 * PURSES as u64 + answered, "every answered deposit, once");
    x.shutdown().await;
    y.shutdown().await;

    let (checkpoint, money) = caught.expect("a checkpoint caught a redirected ask");
    // The redirected asks restored in the keepers (or in flight to them) land as tells,
    // in their own time: the money adds up once they have, and never exceeds it.
    restore_until_settled(&checkpoint, (SHARDS, 100), "pas-r", &keys, money).await;
}
