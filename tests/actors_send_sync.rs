//! Compile-time checks that the public handles and the futures they return are `Send`/`Sync`
//! (so they can be held across `.await` in any tokio task).

mod support;

use amber::prelude::*;
use amber::{ActorSystem, AskError, CodecError, LookupError, SpawnError, TimerId};
use support::{Counter, CounterMsg};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn handles_and_errors_are_send_and_sync() {
    send_sync::<ActorRef<Counter>>();
    send_sync::<ActorSystem>();
    send_sync::<ActorId>();
    send_sync::<ExitReason>();
    send_sync::<ChildEvent>();
    send_sync::<Down>();
    send_sync::<TimerId>();
    send_sync::<SendError<CounterMsg>>();
    send_sync::<TrySendError<CounterMsg>>();
    send_sync::<AskError>();
    send_sync::<SpawnError>();
    send_sync::<LookupError>();
    send_sync::<CodecError>();
    send_sync::<SpawnOptions>();
}

#[tokio::test]
async fn send_and_ask_futures_are_send() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter::new()).unwrap();
    let tell = counter.tell(CounterMsg::Add(1));
    send(&tell);
    tell.await.unwrap();
    let ask = counter.ask(CounterMsg::Get);
    send(&ask);
    assert_eq!(ask.await.unwrap(), 1);
    let wait = counter.wait_stopped();
    send(&wait);
    drop(wait);
    let shutdown = system.shutdown();
    send(&shutdown);
    shutdown.await;
}
