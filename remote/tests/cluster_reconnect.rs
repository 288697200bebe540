//! Links that heal (two clusters in one process, over 127.0.0.1): a link cut from outside
//! comes back by itself and old refs work again; a peer that restarts under the same name
//! and address is a new incarnation whose old actors are gone.

mod support;

use std::time::Duration;

use amber_actors::{Actor, ActorSystem, AskError, Context, Down, ExitReason};
use amber_remote::{Cluster, ClusterEvent, NodeId, ReconnectPolicy, TransportConfig};
use serde::{Deserialize, Serialize};
use support::bounded;
use support::relay::Relay;
use support::watcher::watcher;
use tokio::sync::{broadcast, watch};

async fn node_at(name: &str, addr: &str) -> Cluster {
    let ms = Duration::from_millis;
    let config =
        TransportConfig::new(name, addr.parse().unwrap(), b"cluster reconnect secret".to_vec())
            .with_heartbeat(ms(100), ms(600))
            .with_reconnect(Some(ReconnectPolicy::new(ms(10), ms(100))));
    let builder = ActorSystem::builder().ask_timeout(Duration::from_secs(5));
    Cluster::start(builder, config).await.expect("start")
}

/// The next event about `node`, skipping others.
async fn next_about(events: &mut broadcast::Receiver<ClusterEvent>, node: &str) -> ClusterEvent {
    bounded(async {
        loop {
            let event = events.recv().await.expect("the cluster is alive");
            let about = match &event {
                ClusterEvent::Up { node }
                | ClusterEvent::Down { node, .. }
                | ClusterEvent::Reconnected { node }
                | ClusterEvent::Restarted { node }
                | ClusterEvent::GaveUp { node, .. } => node.as_str(),
                _ => continue,
            };
            if about == node {
                return event;
            }
        }
    })
    .await
}

/// Waits (bounded) until `cond` holds, checking again every few milliseconds.
async fn until(mut cond: impl FnMut() -> bool) {
    bounded(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Answers pings; parks on `Park` until its gate opens.
struct Target {
    gate: watch::Receiver<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
enum TargetMsg {
    Ping,
    Park,
}

impl Actor for Target {
    type Msg = TargetMsg;
    type Reply = ();
    async fn handle(&mut self, msg: TargetMsg, _: &mut Context<Self>) {
        if let TargetMsg::Park = msg {
            let _ = self.gate.wait_for(|open| *open).await;
        }
    }
}

fn target(cluster: &Cluster, name: &str) -> watch::Sender<bool> {
    let (gate, closed) = watch::channel(false);
    cluster.system().spawn_named(name, Target { gate: closed }).unwrap();
    gate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_comes_back_by_itself_and_old_refs_work_again() {
    let a = node_at("a", "127.0.0.1:0").await;
    let b = node_at("b", "127.0.0.1:0").await;
    let _gate = target(&b, "t");
    let relay = Relay::start(b.local_addr()).await;
    let mut events = a.subscribe();
    let peer = bounded(a.connect(relay.addr())).await.expect("connect through the relay");
    assert_eq!(next_about(&mut events, "b").await, ClusterEvent::Up { node: peer.clone() });
    let t = bounded(a.lookup::<Target>(&peer, "t")).await.unwrap();
    assert_eq!(bounded(t.ask(TargetMsg::Ping)).await, Ok(()));

    for _ in 0..3 {
        relay.cut(true);
        let down = next_about(&mut events, "b").await;
        assert!(matches!(&down, ClusterEvent::Down { node, .. } if *node == peer), "{down:?}");
        assert_eq!(
            next_about(&mut events, "b").await,
            ClusterEvent::Reconnected { node: peer.clone() }
        );
        assert_eq!(bounded(t.ask(TargetMsg::Ping)).await, Ok(()), "the old ref works again");
        t.tell(TargetMsg::Ping).await.expect("tell after the reconnect");
    }
    assert_eq!(a.nodes(), [peer]);
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_a_new_incarnation_whose_old_actors_are_gone() {
    let a = node_at("a", "127.0.0.1:0").await;
    let b = node_at("b", "127.0.0.1:0").await;
    let b_addr = b.local_addr();
    let gate = target(&b, "t");
    let relay = Relay::start(b_addr).await;
    let mut events = a.subscribe();
    let peer = bounded(a.connect(relay.addr())).await.unwrap();
    let t = bounded(a.lookup::<Target>(&peer, "t")).await.unwrap();
    let (w, mut downs) = watcher(&a);
    bounded(w.ask(t.clone())).await.unwrap();
    until(|| b.watched_by_remote() == 1).await;
    let pending = {
        let t = t.clone();
        tokio::spawn(async move { t.ask_timeout(TargetMsg::Park, Duration::from_secs(15)).await })
    };
    until(|| a.pending_asks() == 1).await;
    assert_eq!(next_about(&mut events, "b").await, ClusterEvent::Up { node: peer.clone() });

    // b "crashes": the network to it is cut and stays closed while it goes and comes back.
    relay.cut(false);
    let down = next_about(&mut events, "b").await;
    assert!(matches!(&down, ClusterEvent::Down { node, .. } if *node == peer), "{down:?}");
    assert_eq!(bounded(pending).await.unwrap(), Err(AskError::NodeDown("b".into())));
    let node_down = ExitReason::NodeDown("b".into());
    let first = bounded(downs.recv()).await.unwrap();
    assert_eq!(first, Down { actor: t.id(), reason: node_down.clone() });
    gate.send(true).unwrap();
    bounded(b.shutdown()).await;
    let b = node_at("b", &b_addr.to_string()).await;
    let _gate = target(&b, "t");
    relay.open();

    assert_eq!(next_about(&mut events, "b").await, ClusterEvent::Restarted { node: peer.clone() });
    // Refs to the old incarnation's actors fail at once, typed, without reaching the new one:
    // as refs to stopped actors (b is up; they are gone).
    assert_eq!(bounded(t.ask(TargetMsg::Ping)).await, Err(AskError::Stopped));
    assert!(t.tell(TargetMsg::Ping).await.is_err(), "a tell to an old actor is refused");
    bounded(w.ask(t.clone())).await.unwrap(); // a new watch of an old actor: NodeDown at once
    assert_eq!(bounded(downs.recv()).await.unwrap(), Down { actor: t.id(), reason: node_down });
    // A fresh lookup finds the new actor, and the first watch fired once only.
    let fresh = bounded(a.lookup::<Target>(&peer, "t")).await.unwrap();
    assert_ne!(fresh.id(), t.id());
    assert_eq!(bounded(fresh.ask(TargetMsg::Ping)).await, Ok(()));
    assert!(downs.try_recv().is_err(), "one NodeDown per watch");
    assert_eq!((a.watching_remote(), b.watched_by_remote()), (0, 0));
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_says_goodbye_is_not_redialled_and_its_restart_is_seen_when_it_connects() {
    let a = node_at("a", "127.0.0.1:0").await;
    let b = node_at("b", "127.0.0.1:0").await;
    let b_addr = b.local_addr();
    let mut events = a.subscribe();
    let peer = bounded(a.connect(b_addr)).await.unwrap();
    assert_eq!(next_about(&mut events, "b").await, ClusterEvent::Up { node: peer.clone() });
    bounded(b.shutdown()).await;
    let down = next_about(&mut events, "b").await;
    assert!(
        matches!(&down, ClusterEvent::Down { reason, .. } if reason.contains("goodbye")),
        "{down:?}"
    );

    // Restarted on the same address, b dials a itself (a does not redial a goodbye).
    let b = node_at("b", &b_addr.to_string()).await;
    assert_eq!(bounded(b.connect(a.local_addr())).await.unwrap(), NodeId::from("a"));
    assert_eq!(next_about(&mut events, "b").await, ClusterEvent::Restarted { node: peer });
    bounded(a.shutdown()).await;
    bounded(b.shutdown()).await;
}
