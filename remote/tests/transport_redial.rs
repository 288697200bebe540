//! The dialler redials a link that dropped: with backoff, until it gives up or its transport
//! shuts down, leaving no task behind.

mod support;

use std::time::Duration;

use amber_remote::{DownReason, ReconnectPolicy, TransportEvent};
use support::relay::Relay;
use support::{Node, bounded, config};

fn redialling(node: &str, policy: ReconnectPolicy) -> amber_remote::TransportConfig {
    config(node).with_reconnect(Some(policy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_is_redialled_by_its_dialler_only() {
    let ms = Duration::from_millis;
    let mut a = Node::bind(redialling("a", ReconnectPolicy::new(ms(10), ms(50)))).await;
    let mut b = Node::bind(redialling("b", ReconnectPolicy::new(ms(10), ms(50)))).await;
    let relay = Relay::start(b.addr()).await;
    bounded(a.transport.connect(relay.addr())).await.unwrap();
    a.expect_up().await;
    b.expect_up().await;

    relay.cut(true);
    assert!(matches!(a.expect_down().await, (_, DownReason::Closed | DownReason::Io(_))));
    assert!(matches!(b.expect_down().await, (_, DownReason::Closed | DownReason::Io(_))));
    // a dialled it, so a redials; b, which accepted it, just takes the new link.
    let (node, _, listen) = a.expect_up().await;
    assert_eq!((node, listen), (b.id(), relay.addr()));
    b.expect_up().await;
    assert_eq!(b.transport.peers(), [a.id()]);
    bounded(a.transport.shutdown()).await;
    bounded(b.transport.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redialling_gives_up_after_its_attempts() {
    let ms = Duration::from_millis;
    let policy = ReconnectPolicy::new(ms(10), ms(40)).with_attempts(3);
    let mut a = Node::bind(redialling("a", policy)).await;
    let b = Node::bind(config("b")).await;
    let relay = Relay::start(b.addr()).await;
    bounded(a.transport.connect(relay.addr())).await.unwrap();
    a.expect_up().await;

    relay.cut(false); // the network stays down
    a.expect_down().await;
    match a.next().await {
        TransportEvent::GaveUp { node, addr, attempts } => {
            assert_eq!((node, addr, attempts), (b.id(), relay.addr(), 3));
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    // Back up, nobody redials any more.
    relay.open();
    assert!(!a.transport.is_up(&b.id()));
    bounded(a.transport.connect(relay.addr())).await.expect("a manual connect still works");
    a.expect_up().await;
    bounded(a.transport.shutdown()).await;
    bounded(b.transport.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn redialling_forever_stops_at_shutdown_and_leaves_no_task() {
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = tasks();
    let ms = Duration::from_millis;
    let mut a = Node::bind(redialling("a", ReconnectPolicy::new(ms(5), ms(20)))).await;
    let b = Node::bind(config("b")).await;
    let mut relay = Relay::start(b.addr()).await;
    bounded(a.transport.connect(relay.addr())).await.unwrap();
    a.expect_up().await;

    relay.cut(false);
    relay.stop(); // its port closes: every redial is refused
    a.expect_down().await;
    bounded(a.transport.shutdown()).await;
    // The event stream ends once the last task holding it is gone.
    assert!(bounded(a.events.recv()).await.is_none());
    bounded(b.transport.shutdown()).await;
    drop((a, b));
    bounded(async {
        while tasks() > before {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
