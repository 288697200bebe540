//! Supervision: panics stop or restart an actor and never spread; parents and watchers are
//! told why.

mod support;

use std::time::Duration;

use amber::AskError;
use amber::prelude::*;
use support::{Counter, CounterMsg, bounded, next};
use tokio::sync::mpsc;

/// A parent that spawns one child (restarting per `policy`) and reports what it hears.
struct Parent {
    policy: RestartPolicy,
    events: mpsc::UnboundedSender<ChildEvent>,
    child_events: mpsc::UnboundedSender<String>,
    child: Option<ActorRef<Counter>>,
}

impl Actor for Parent {
    type Msg = ();
    type Reply = Option<ActorRef<Counter>>;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        let events = self.child_events.clone();
        let opts = SpawnOptions::new().restart(self.policy);
        self.child = Some(ctx.spawn_with(opts, move || Counter::reporting(events.clone()))?);
        Ok(())
    }

    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Option<ActorRef<Counter>> {
        self.child.clone()
    }

    async fn on_child_event(&mut self, _: &mut Context<Self>, event: ChildEvent) {
        let _ = self.events.send(event);
    }
}

async fn parent_with(
    system: &ActorSystem,
    policy: RestartPolicy,
) -> (
    ActorRef<Parent>,
    ActorRef<Counter>,
    mpsc::UnboundedReceiver<ChildEvent>,
    mpsc::UnboundedReceiver<String>,
) {
    let (events, events_rx) = mpsc::unbounded_channel();
    let (child_events, child_rx) = mpsc::unbounded_channel();
    let parent = system.spawn(Parent { policy, events, child_events, child: None }).unwrap();
    let child = bounded(parent.ask(())).await.unwrap().unwrap();
    (parent, child, events_rx, child_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_child_stops_and_its_parent_is_told_why() {
    let system = ActorSystem::new();
    let (parent, child, mut events, mut child_events) =
        parent_with(&system, RestartPolicy::Never).await;
    assert_eq!(next(&mut child_events).await, "start");
    child.tell(CounterMsg::Panic).await.unwrap();
    match next(&mut events).await {
        ChildEvent::Exited { child: id, reason: ExitReason::Panicked(msg) } => {
            assert_eq!(id, child.id());
            assert!(msg.contains("told to panic"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(next(&mut child_events).await.starts_with("stop:panicked"));
    // The parent is unaffected.
    assert!(bounded(parent.ask(())).await.is_ok());
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_child_keeps_its_id_and_queue_but_not_its_state() {
    let system = ActorSystem::new();
    let policy = RestartPolicy::on_panic(5, Duration::from_secs(60));
    let (_parent, child, mut events, mut child_events) = parent_with(&system, policy).await;
    assert_eq!(next(&mut child_events).await, "start");
    child.tell(CounterMsg::Add(5)).await.unwrap();
    child.tell(CounterMsg::Panic).await.unwrap();
    child.tell(CounterMsg::Add(1)).await.unwrap(); // queued behind the panic: kept
    match next(&mut events).await {
        ChildEvent::Restarted { child: id, panic, restarts } => {
            assert_eq!(id, child.id());
            assert!(panic.contains("told to panic"));
            assert_eq!(restarts, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(next(&mut child_events).await, "start", "on_start runs again after a restart");
    // Fresh state (0) plus the message queued behind the panic.
    assert_eq!(bounded(child.ask(CounterMsg::Get)).await.unwrap(), 1);
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_restarts_stop_the_child_with_restart_limit() {
    let system = ActorSystem::new();
    let policy = RestartPolicy::on_panic(2, Duration::from_secs(60));
    let (_parent, child, mut events, _child_events) = parent_with(&system, policy).await;
    for _ in 0..3 {
        child.tell(CounterMsg::Panic).await.unwrap();
    }
    assert!(matches!(next(&mut events).await, ChildEvent::Restarted { restarts: 1, .. }));
    assert!(matches!(next(&mut events).await, ChildEvent::Restarted { restarts: 2, .. }));
    match next(&mut events).await {
        ChildEvent::Exited {
            reason: ExitReason::RestartLimit { restarts: 2, last_panic }, ..
        } => {
            assert!(last_panic.contains("told to panic"))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(child.ask(CounterMsg::Get).await, Err(AskError::Stopped));
    bounded(system.shutdown()).await;
}

/// An actor whose `on_start` fails or panics.
struct BadStart {
    panic: bool,
}

impl Actor for BadStart {
    type Msg = ();
    type Reply = ();
    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), amber::BoxError> {
        if self.panic {
            panic!("boom in on_start");
        }
        Err("no database".into())
    }
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_start_stops_the_actor_with_the_reason() {
    let system = ActorSystem::new();
    let failed = system.spawn(BadStart { panic: false }).unwrap();
    assert_eq!(bounded(failed.wait_stopped()).await, ExitReason::StartFailed("no database".into()));
    let panicked = system.spawn(BadStart { panic: true }).unwrap();
    assert_eq!(
        bounded(panicked.wait_stopped()).await,
        ExitReason::Panicked("boom in on_start".into())
    );
    bounded(system.shutdown()).await;
}

/// Watches a target and reports the Down notification.
struct Watcher {
    target: ActorRef<Counter>,
    downs: mpsc::UnboundedSender<Down>,
}

impl Actor for Watcher {
    type Msg = ();
    type Reply = ();
    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), amber::BoxError> {
        ctx.watch(&self.target);
        Ok(())
    }
    async fn handle(&mut self, _: (), _: &mut Context<Self>) {}
    async fn on_down(&mut self, _: &mut Context<Self>, down: Down) {
        let _ = self.downs.send(down);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_hear_why_an_actor_stopped_even_if_it_already_had() {
    let system = ActorSystem::new();
    let target = system.spawn(Counter::new()).unwrap();
    let (downs, mut downs_rx) = mpsc::unbounded_channel();
    let watcher = system.spawn(Watcher { target: target.clone(), downs: downs.clone() }).unwrap();
    bounded(watcher.ask(())).await.unwrap(); // on_start (and so the watch) has run
    target.tell(CounterMsg::Panic).await.unwrap();
    let down = next(&mut downs_rx).await;
    assert_eq!(down.actor, target.id());
    assert!(matches!(down.reason, ExitReason::Panicked(_)));
    // Watching an actor that is already gone reports at once.
    let late = system.spawn(Watcher { target: target.clone(), downs }).unwrap();
    let down = next(&mut downs_rx).await;
    assert_eq!(down.actor, target.id());
    assert!(matches!(down.reason, ExitReason::Panicked(_)));
    // The watcher itself kept running.
    assert!(bounded(late.ask(())).await.is_ok());
    bounded(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_actor_leaves_all_others_running() {
    let system = ActorSystem::new();
    let actors: Vec<_> = (0..50).map(|_| system.spawn(Counter::new()).unwrap()).collect();
    for (i, a) in actors.iter().enumerate() {
        if i % 2 == 0 {
            a.tell(CounterMsg::Panic).await.unwrap();
        } else {
            a.tell(CounterMsg::Add(i as u64)).await.unwrap();
        }
    }
    for (i, a) in actors.iter().enumerate() {
        if i % 2 == 0 {
            assert!(matches!(bounded(a.wait_stopped()).await, ExitReason::Panicked(_)));
        } else {
            assert_eq!(bounded(a.ask(CounterMsg::Get)).await.unwrap(), i as u64);
        }
    }
    bounded(system.shutdown()).await;
}
