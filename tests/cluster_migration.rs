//! Live migration: one running actor moves along four nodes (in one process, over
//! 127.0.0.1) while senders on every node, inside and outside actors, keep telling and
//! asking it. Every sender numbers its messages, so the actor itself checks that nothing is
//! lost, duplicated or reordered per sender; and a bank keeps its money exact in every
//! snapshot taken while its accounts move.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use amber::prelude::*;
use amber::{ClusterError, MigrateError, MigrateRefusal, SystemBuilder};
use support::bank::{Account, AccountMsg, audit, open_cluster_bank, outside_load};
use support::bounded;
use support::cluster::{host, keep_moving, mesh, node, refs_on};

/// Counts every sender's numbered messages; a gap, a repeat or a step back is a violation.
#[derive(ActorState, Debug, Default)]
#[amber(name = "test.Sink")]
pub struct Sink {
    last: BTreeMap<u32, u64>,
    received: u64,
    violations: Vec<String>,
}

#[amber::actor]
impl Sink {
    /// Message `n` (from 1) of `sender`.
    async fn push(&mut self, sender: u32, n: u64) {
        self.received += 1;
        let last = self.last.entry(sender).or_insert(0);
        if n != *last + 1 && self.violations.len() < 10 {
            self.violations.push(format!("sender {sender}: got {n} after {last}"));
        }
        *last = n;
    }

    /// Answers with `n`.
    async fn echo(&mut self, n: u64) -> u64 {
        n
    }

    /// What it has seen: messages received, violations, and the last number per sender.
    async fn report(&mut self) -> (u64, Vec<String>, BTreeMap<u32, u64>) {
        (self.received, self.violations.clone(), self.last.clone())
    }
}

/// Sends numbered messages to a sink from inside its handlers (messages from an actor).
#[derive(ActorState, Debug)]
#[amber(name = "test.Pump")]
pub struct Pump {
    sender: u32,
    sent: u64,
    sink: ActorRef<Sink>,
}

#[amber::actor]
impl Pump {
    /// Sends the next `count` messages; returns how many it has sent in all.
    async fn burst(&mut self, count: u64) -> u64 {
        for _ in 0..count {
            self.sent += 1;
            self.sink.push(self.sender, self.sent).await.expect("a pump's send failed");
        }
        self.sent
    }
}

fn builder() -> SystemBuilder {
    ActorSystem::builder().register::<Sink>().register::<Pump>().register::<Account>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_actor_loses_nothing_and_keeps_every_senders_order() {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d"] {
        nodes.push(node(name, builder()).await);
    }
    mesh(&nodes).await;
    let sink = nodes[0].system().spawn_named("sink", Sink::default()).unwrap();
    let id = sink.id();

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        let here = refs_on(&nodes[0], n, std::slice::from_ref(&sink)).remove(0);
        // Two outside senders per node, telling as fast as the mailbox lets them.
        for j in 0..2u32 {
            let (sink, stop) = (here.clone(), stop.clone());
            let sender = (k as u32) * 10 + j;
            tasks.push(tokio::spawn(async move {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    sent += 1;
                    sink.push(sender, sent).await.expect("a tell to the moving actor failed");
                    // Paced: remote deliveries are not bounded by the receiver's mailbox, and
                    // a debug build must not fall seconds behind.
                    if sent.is_multiple_of(8) {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                (sender, sent)
            }));
        }
        // One pump per node: messages from an actor.
        let pump =
            n.system().spawn(Pump { sender: 100 + k as u32, sent: 0, sink: here.clone() }).unwrap();
        let (stop_p, sender) = (stop.clone(), 100 + k as u32);
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while !stop_p.load(Ordering::Relaxed) {
                sent = pump.burst(8).await.expect("a pump's burst failed");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            (sender, sent)
        }));
        // One asker per node: every ask is answered, with its own number.
        let (sink, stop) = (here, stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                assert_eq!(sink.echo(n).await.expect("an ask to the moving actor failed"), n);
            }
            (u32::MAX, 0)
        }));
    }

    // Wait for traffic, then move it along: a → b → c → d.
    let moves = [1usize, 2, 3];
    let mut from = 0;
    for (round, &to) in moves.iter().enumerate() {
        bounded(async {
            let before = sink.report().await.unwrap().0;
            while sink.report().await.unwrap().0 < before + 2_000 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        bounded(nodes[from].migrate(id, nodes[to].node())).await.unwrap_or_else(|e| {
            panic!("move {round} from {} to {} failed: {e}", nodes[from].node(), nodes[to].node())
        });
        assert_eq!(
            host(&nodes, id),
            vec![to],
            "after move {round} the actor runs on node {to} only"
        );
        from = to;
    }
    let again = nodes[from].migrate(id, nodes[from].node()).await;
    assert!(again.is_err(), "moving an actor to its own node is refused");
    let back = nodes[from].migrate(id, nodes[1].node()).await;
    assert!(
        matches!(
            &back,
            Err(ClusterError::Migrate(MigrateError::Refused {
                node,
                reason: MigrateRefusal::StillForwarding(still),
            })) if node == "b" && *still == id
        ),
        "moving it back to a node that forwards to it is refused: {back:?}"
    );
    assert_eq!(host(&nodes, id), vec![from], "a refused move leaves it where it runs");
    let gone = nodes[0].migrate(id, nodes[2].node()).await;
    assert!(
        matches!(gone, Err(ClusterError::Migrate(MigrateError::NotHere(_)))),
        "a node the actor left cannot move it: {gone:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let mut expected = BTreeMap::new();
    for task in tasks {
        let (sender, sent) = bounded(task).await.unwrap();
        if sender != u32::MAX {
            expected.insert(sender, sent);
        }
    }
    // A tell returns once its message is on the link to the node it goes to, not once it
    // arrived: the last messages of senders on other nodes may still be on their way round
    // the forwarding chain when the test's own ask reaches the actor. Ask until they are in
    // (a lost one never comes: the 20 s bound fails the test).
    let (received, violations, last) = bounded(async {
        loop {
            let report = sink.report().await.unwrap();
            if report.2 == expected || !report.1.is_empty() {
                break report;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(violations.is_empty(), "order violations: {violations:?}");
    assert_eq!(last, expected, "every sender's last message arrived");
    assert_eq!(received, expected.values().sum::<u64>(), "nothing lost or duplicated");
    assert!(received > 3 * 2_000, "the load ran: {received} messages");

    // Stopping it where it runs ends the forwarding entries on the nodes it left.
    let watcher = nodes[0].system().lookup_id::<Sink>(id).expect("node a still forwards");
    let here = refs_on(&nodes[0], &nodes[from], std::slice::from_ref(&sink)).remove(0);
    here.stop();
    bounded(watcher.wait_stopped()).await;
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_while_accounts_move_between_nodes_add_up() {
    const PER_NODE: usize = 12;
    const EACH: u64 = 1_000;
    let nodes =
        vec![node("a", builder()).await, node("b", builder()).await, node("c", builder()).await];
    mesh(&nodes).await;
    let local = open_cluster_bank(&nodes, PER_NODE, EACH).await;
    let all: Vec<ActorRef<Account>> = local.iter().flatten().cloned().collect();
    let total = 3 * PER_NODE as u64 * EACH;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = local
        .iter()
        .enumerate()
        .map(|(k, accounts)| outside_load(accounts.clone(), 31 + k as u64, 6, true, stop.clone()))
        .collect();

    // Accounts hop between nodes while snapshots are taken from every node in turn.
    let moves = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ids = all.iter().map(|a| a.id()).collect();
    let mover = keep_moving(nodes.clone(), ids, stop.clone(), moves.clone());
    let mut exact = 0;
    for round in 0..12 {
        let from = &nodes[round % 3];
        let checkpoint = bounded(from.system().snapshot()).await.expect("snapshot");
        assert_eq!(checkpoint.manifest.actors.len(), 3 * PER_NODE, "every account once");
        assert_eq!(audit(&checkpoint).total(), total, "snapshot {round} adds up");
        exact += 1;
    }
    stop.store(true, Ordering::Relaxed);
    bounded(mover).await.unwrap();
    for load in loads {
        bounded(load).await.unwrap();
    }
    assert_eq!(exact, 12);
    assert!(moves.lock().unwrap().len() >= 3, "accounts moved during the snapshots");
    let mut live = 0;
    for account in &all {
        live += bounded(account.ask(AccountMsg::Balance)).await.unwrap();
    }
    // Money still in flight after the load stopped settles: ask until it adds up.
    bounded(async {
        while live != total {
            tokio::task::yield_now().await;
            live = 0;
            for account in &all {
                live += account.ask(AccountMsg::Balance).await.unwrap();
            }
        }
    })
    .await;
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_refuses_with_a_typed_reason_and_the_actor_stays() {
    // `b` has not registered the sink's type; `c` has, but its own actor holds the name.
    let nodes = vec![
        node("a", builder()).await,
        node("b", ActorSystem::builder().register::<Pump>()).await,
        node("c", builder()).await,
    ];
    mesh(&nodes).await;
    let sink = nodes[0].system().spawn_named("sink", Sink::default()).unwrap();
    nodes[2].system().spawn_named("sink", Sink::default()).unwrap();
    sink.push(0, 1).await.unwrap();

    let unknown = bounded(nodes[0].migrate(sink.id(), nodes[1].node())).await;
    match &unknown {
        Err(ClusterError::Migrate(MigrateError::Refused {
            node,
            reason: MigrateRefusal::UnknownType(type_name),
        })) => {
            assert_eq!((node.as_str(), type_name.as_str()), ("b", "test.Sink"));
        }
        other => panic!("not refused for its unknown type: {other:?}"),
    }
    let shown = unknown.unwrap_err().to_string();
    assert!(shown.contains("node b refused the actor"), "{shown}");
    assert!(shown.contains("no actor type is registered as \"test.Sink\""), "{shown}");

    let taken = bounded(nodes[0].migrate(sink.id(), nodes[2].node())).await;
    assert!(
        matches!(
            &taken,
            Err(ClusterError::Migrate(MigrateError::Refused {
                node,
                reason: MigrateRefusal::NameTaken(name),
            })) if node == "c" && name == "sink"
        ),
        "refused for its taken name: {taken:?}"
    );

    assert_eq!(host(&nodes, sink.id()), vec![0], "a refused move leaves it where it runs");
    sink.push(0, 2).await.unwrap();
    let (received, violations, _) = bounded(sink.report()).await.unwrap();
    assert_eq!((received, violations), (2, vec![]), "it kept running, untouched");
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_on_every_node_reach_a_moved_actor_and_it_carries_its_state() {
    let nodes =
        vec![node("a", builder()).await, node("b", builder()).await, node("c", builder()).await];
    mesh(&nodes).await;
    let sink = nodes[0].system().spawn_named("sink", Sink::default()).unwrap();
    let on_b = refs_on(&nodes[0], &nodes[1], std::slice::from_ref(&sink)).remove(0);
    let on_c = refs_on(&nodes[0], &nodes[2], std::slice::from_ref(&sink)).remove(0);
    for n in 1..=3 {
        sink.push(0, n).await.unwrap();
    }
    bounded(nodes[0].migrate(sink.id(), nodes[1].node())).await.unwrap();
    for (k, r) in [&sink, &on_b, &on_c].into_iter().enumerate() {
        bounded(r.push(1 + k as u32, 1)).await.unwrap();
        assert_eq!(bounded(r.echo(7)).await.unwrap(), 7);
    }
    let (received, violations, _) = bounded(on_c.report()).await.unwrap();
    assert_eq!((received, violations), (6, vec![]), "the state moved with it");
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_actor_keeps_its_mailbox_capacity_and_restart_policy() {
    use std::time::Duration;

    use amber::snapshot::{SpawnCapacity, SpawnRestart};
    use amber::{MailboxCapacity, RestartPolicy, SpawnOptions};
    use support::worker::{Work, Worker};

    let with_worker = || builder().register::<Worker>();
    let nodes = vec![node("a", with_worker()).await, node("b", with_worker()).await];
    mesh(&nodes).await;
    let policy = RestartPolicy::on_panic(3, Duration::from_secs(60));
    let worker = nodes[0]
        .system()
        .spawn_with(
            SpawnOptions::new().capacity(MailboxCapacity::Unbounded).restart(policy),
            Worker::default,
        )
        .unwrap();
    for _ in 0..2 {
        worker.ask(Work::Unit(0)).await.unwrap();
    }
    bounded(nodes[0].migrate(worker.id(), nodes[1].node())).await.unwrap();
    let moved: ActorRef<Worker> = nodes[1].system().lookup_id(worker.id()).unwrap();
    worker.ask(Work::Unit(0)).await.unwrap();
    assert_eq!(bounded(moved.ask(Work::Get)).await.unwrap(), 3);
    // A panic on its new node restarts it (from the state it arrived with), not stops it.
    assert!(bounded(moved.ask(Work::Panic)).await.is_err());
    assert_eq!(bounded(moved.ask(Work::Get)).await.unwrap(), 2, "restarted, not stopped");
    // Its mailbox there is unbounded, as a snapshot of the cluster records.
    let checkpoint = bounded(nodes[1].system().snapshot()).await.unwrap();
    let entry = checkpoint.actor(worker.id()).unwrap();
    assert_eq!(entry.node, "b");
    assert_eq!(entry.capacity, SpawnCapacity::Unbounded);
    assert_eq!(
        entry.restart,
        SpawnRestart::OnPanic { max_restarts: 3, within: Duration::from_secs(60) }
    );
    for n in &nodes {
        bounded(n.shutdown()).await;
    }
}

/// Waits (bounded) for the next event of `events` that `wanted` picks.
async fn heard(
    events: &mut tokio::sync::broadcast::Receiver<amber::ClusterEvent>,
    wanted: impl Fn(&amber::ClusterEvent) -> bool,
) {
    bounded(async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return,
                Ok(_) => {}
                Err(e) => panic!("the cluster's events: {e}"),
            }
        }
    })
    .await
}

/// Waits (bounded) until `done` holds, checking again whenever the runtime has run others.
async fn until(mut done: impl FnMut() -> bool) {
    bounded(async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// The node an actor left keeps forwarding to it across a dropped link: refs through it are
/// refused as refs to the new node's actors are while the link is down (the message given
/// back, `NodeDown`), and work again once the same incarnation is back; a wait for the actor
/// to stop does not end on the drop. Once the new node restarts (a new incarnation, which
/// never had the actor), the entry ends: its wait and its watchers hear `NodeDown`, and refs
/// through it fail at once, typed, instead of reaching the new incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_entry_outlives_a_dropped_link_and_ends_when_its_new_node_restarts() {
    use amber::{AskError, ClusterEvent, ExitReason};

    let nodes =
        vec![node("a", builder()).await, node("b", builder()).await, node("c", builder()).await];
    mesh(&nodes).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let sink = a.system().spawn(Sink::default()).unwrap();
    let on_c = refs_on(a, c, std::slice::from_ref(&sink)).remove(0);
    bounded(a.migrate(sink.id(), b.node())).await.unwrap();
    let is_b = |node: &amber::NodeId| node.as_str() == "b";
    until(|| b.watched_by_remote() == 1).await; // the entry's watch, held on b
    let mut events = a.subscribe();

    // a closes its link to b (nobody redials it).
    a.transport().disconnect(b.node(), "a blip, for the test").unwrap();
    heard(&mut events, |e| matches!(e, ClusterEvent::Down { node, .. } if is_b(node))).await;
    assert!(sink.push(0, 1).await.is_err(), "given back while the link is down");
    assert_eq!(bounded(sink.echo(1)).await, Err(AskError::NodeDown("b".into())));
    assert!(bounded(on_c.echo(1)).await.is_err(), "an ask through a fails, typed, at once");
    assert!(!sink.is_stopped(), "the entry outlives the drop");
    let stopped = tokio::spawn({
        let sink = sink.clone();
        async move { sink.wait_stopped().await }
    });
    assert_eq!(a.watching_remote(), 1, "a keeps the entry's watch");

    // The same b is back: the entry takes its watch again and forwards as before.
    bounded(a.connect(b.local_addr())).await.unwrap();
    heard(&mut events, |e| matches!(e, ClusterEvent::Reconnected { node } if is_b(node))).await;
    until(|| b.watched_by_remote() == 1).await;
    sink.push(0, 1).await.unwrap();
    assert_eq!(bounded(sink.echo(2)).await, Ok(2));
    assert_eq!(bounded(on_c.echo(3)).await, Ok(3));
    let (received, violations, _) = bounded(on_c.report()).await.unwrap();
    assert_eq!((received, violations), (1, vec![]));
    assert!(!stopped.is_finished() && !sink.is_stopped(), "the wait goes on");

    // b restarts while cut off from a (so nothing it says on its way out reaches a): a new
    // incarnation under the same name, which never had the sink.
    a.transport().disconnect(b.node(), "b restarts, for the test").unwrap();
    heard(&mut events, |e| matches!(e, ClusterEvent::Down { node, .. } if is_b(node))).await;
    bounded(b.shutdown()).await;
    let b = node("b", builder()).await;
    bounded(a.connect(b.local_addr())).await.unwrap();
    heard(&mut events, |e| matches!(e, ClusterEvent::Restarted { node } if is_b(node))).await;
    assert_eq!(bounded(stopped).await.unwrap(), ExitReason::NodeDown("b".into()));
    assert!(sink.is_stopped());
    assert_eq!(a.watching_remote(), 0, "the entry ended");
    // Refused at a, as refs to the previous incarnation's actors are.
    assert!(sink.push(0, 2).await.is_err(), "given back, not sent to the new b");
    assert_eq!(bounded(sink.echo(4)).await, Err(AskError::Stopped));
    assert!(bounded(on_c.echo(5)).await.is_err(), "an ask through a fails, typed, at once");
    for n in [a, &b, c] {
        bounded(n.shutdown()).await;
    }
}
