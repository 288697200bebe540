//! tell, try_tell, ask: the happy paths and every typed failure.

mod support;

use std::time::Duration;

use amber::prelude::*;
use amber::{AskError, LookupError, SpawnError};
use support::{Counter, CounterMsg, Gated, bounded};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_then_ask_sees_every_message_in_order() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    for i in 1..=1000 {
        counter.tell(CounterMsg::Add(i)).await.unwrap();
    }
    assert_eq!(bounded(counter.ask(CounterMsg::Get)).await.unwrap(), 500_500);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_tell_on_a_full_mailbox_gives_the_message_back() {
    let system = ActorSystem::new();
    let (gated, gate) = Gated::new();
    let opts = SpawnOptions::new().capacity(MailboxCapacity::Bounded(2));
    let mut gated = Some(gated);
    let actor = system.spawn_with(opts, move || gated.take().unwrap()).unwrap();
    actor.tell(0).await.unwrap();
    bounded(gate.entered).await.unwrap(); // the actor is inside its handler; its queue is empty
    assert_eq!(actor.try_tell(1), Ok(()));
    assert_eq!(actor.try_tell(2), Ok(()));
    assert_eq!(actor.try_tell(3), Err(TrySendError::Full(3)));
    assert_eq!(actor.queued(), 2);
    gate.open.send(()).unwrap();
    // Room frees up once the actor takes the queued messages; nothing was lost.
    assert_eq!(bounded(actor.ask(4)).await, Ok(7));
    actor.try_tell(3).unwrap();
    assert_eq!(bounded(actor.ask(0)).await, Ok(10));
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_waits_for_room_instead_of_failing() {
    let system = ActorSystem::new();
    let opts = SpawnOptions::new().capacity(MailboxCapacity::Bounded(1));
    let counter = system.spawn_with(opts, Counter::new).unwrap();
    let producer = {
        let counter = counter.clone();
        tokio::spawn(async move {
            for _ in 0..5000 {
                counter.tell(CounterMsg::Add(1)).await.unwrap();
            }
        })
    };
    bounded(producer).await.unwrap();
    assert_eq!(bounded(counter.ask(CounterMsg::Get)).await.unwrap(), 5000);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_mailbox_never_reports_full() {
    let system = ActorSystem::new();
    let opts = SpawnOptions::new().capacity(MailboxCapacity::Unbounded);
    let counter = system.spawn_with(opts, Counter::new).unwrap();
    counter.tell(CounterMsg::Sleep(50)).await.unwrap();
    for _ in 0..100_000 {
        counter.try_tell(CounterMsg::Add(1)).unwrap();
    }
    assert_eq!(bounded(counter.ask(CounterMsg::Get)).await.unwrap(), 100_000);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_a_stopped_actor_fail_and_give_the_message_back() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    counter.stop();
    assert_eq!(bounded(counter.wait_stopped()).await, ExitReason::Stopped);
    assert!(counter.is_stopped());
    let err = counter.tell(CounterMsg::Add(7)).await.unwrap_err();
    assert_eq!(err.0, CounterMsg::Add(7));
    assert!(matches!(
        counter.try_tell(CounterMsg::Get),
        Err(TrySendError::Stopped(CounterMsg::Get))
    ));
    assert_eq!(counter.ask(CounterMsg::Get).await, Err(AskError::Stopped));
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_times_out_with_a_typed_error() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    let r = counter.ask_timeout(CounterMsg::Sleep(300), Duration::from_millis(50)).await;
    assert_eq!(r, Err(AskError::Timeout(Duration::from_millis(50))));
    counter.stop();
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_whose_actor_stops_before_replying_gets_no_reply() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    // The first message stops the actor; the ask queued behind it is never handled.
    counter.tell(CounterMsg::StopSelf).await.unwrap();
    let r = bounded(counter.ask(CounterMsg::Get)).await;
    assert!(matches!(r, Err(AskError::NoReply) | Err(AskError::Stopped)), "{r:?}");
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_to_an_actor_that_panics_gets_no_reply() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    assert_eq!(bounded(counter.ask(CounterMsg::Panic)).await, Err(AskError::NoReply));
    assert!(
        matches!(bounded(counter.wait_stopped()).await, ExitReason::Panicked(m) if m.contains("told to panic"))
    );
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_by_name_with_typed_errors() {
    let system = ActorSystem::new();
    let counter = system.spawn_named("counter", Counter::new()).unwrap();
    assert_eq!(system.lookup::<Counter>("counter").unwrap(), counter);
    assert_eq!(counter.name(), Some("counter"));
    assert!(
        matches!(system.lookup::<Counter>("nobody"), Err(LookupError::NotFound(n)) if n == "nobody")
    );
    match system.lookup::<Other>("counter") {
        Err(LookupError::WrongType { name, found, .. }) => {
            assert_eq!(name, "counter");
            assert!(found.contains("Counter"));
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert_eq!(
        system.spawn_named("counter", Counter::new()).unwrap_err(),
        SpawnError::NameTaken("counter".into())
    );
    // The name is freed when the actor stops.
    counter.stop();
    bounded(counter.wait_stopped()).await;
    assert!(system.lookup::<Counter>("counter").is_err());
    let again = system.spawn_named("counter", Counter::new()).unwrap();
    assert_ne!(again.id(), counter.id());
    bounded(system.shutdown()).await;
}

struct Other;
impl Actor for Other {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_ask_each_other_from_inside_handlers() {
    struct Front {
        back: ActorRef<Counter>,
    }
    impl Actor for Front {
        type Msg = u64;
        type Reply = u64;
        async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> u64 {
            self.back.tell(CounterMsg::Add(n)).await.unwrap();
            self.back.ask(CounterMsg::Get).await.unwrap() * 10
        }
    }
    let system = ActorSystem::new();
    let back = system.spawn(Counter::new()).unwrap();
    let front = system.spawn(Front { back }).unwrap();
    assert_eq!(bounded(front.ask(4)).await.unwrap(), 40);
    assert_eq!(bounded(front.ask(1)).await.unwrap(), 50);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_serialize_as_ids_and_decode_inside_the_system() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    let bytes = system.encode(&counter).unwrap();
    let id_bytes = system.encode(&counter.id()).unwrap();
    assert_eq!(bytes, id_bytes, "a ref is encoded as exactly its id");
    let decoded: ActorRef<Counter> = system.decode(&bytes).unwrap();
    decoded.tell(CounterMsg::Add(3)).await.unwrap();
    assert_eq!(bounded(counter.ask(CounterMsg::Get)).await.unwrap(), 3);
    // Outside ActorSystem::decode a ref cannot be resolved.
    assert!(rmp_serde::from_slice::<ActorRef<Counter>>(&bytes).is_err());
    // Decoding as the wrong actor type is an error.
    assert!(system.decode::<ActorRef<Other>>(&bytes).is_err());
    // A ref to an actor that is gone decodes to a ref whose sends fail.
    counter.stop();
    bounded(counter.wait_stopped()).await;
    let stale: ActorRef<Counter> = system.decode(&bytes).unwrap();
    assert!(stale.tell(CounterMsg::Get).await.is_err());
    bounded(system.shutdown()).await;
}
