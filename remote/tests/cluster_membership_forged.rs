//! Gossip that is not the cluster's: datagrams from a node with another secret, and
//! garbage, are dropped before the membership reads them, with warnings limited per sender;
//! the cluster does not change. (Its own test binary: it counts log lines.)

mod support;

use std::time::Duration;

use amber_actors::ActorSystem;
use amber_remote::{Cluster, ClusterEvent, Member, MembershipConfig, TransportConfig};
use support::bounded;
use support::logs::Logs;
use tokio::net::UdpSocket;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn join(name: &str, secret: &[u8], seeds: &[std::net::SocketAddr]) -> Cluster {
    let config = TransportConfig::new(name, "127.0.0.1:0".parse().unwrap(), secret.to_vec());
    let membership = MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(100), ms(50), ms(1000))
        .with_gossip_interval(ms(50));
    Cluster::join(ActorSystem::builder(), config, membership).await.expect("join")
}

/// Waits (bounded) until `cond` holds, checking again every few milliseconds.
async fn until(mut cond: impl FnMut() -> bool) {
    bounded(async {
        while !cond() {
            tokio::time::sleep(ms(5)).await;
        }
    })
    .await;
}

/// The members' names, each with whether it is up.
fn names(members: &[Member]) -> Vec<(&str, bool)> {
    members.iter().map(|m| (m.node.as_str(), m.status.is_up())).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn gossip_not_signed_with_the_cluster_secret_is_dropped_without_effect() {
    let (logs, _guard) = Logs::capture();
    let a = join("a", b"the cluster's own secret, 32 bytes", &[]).await;
    let b = join("b", b"the cluster's own secret, 32 bytes", &[a.local_addr()]).await;
    let mut watch = a.members_watch();
    bounded(watch.wait_for(|m| m.len() == 2 && m.iter().all(|m| m.linked))).await.unwrap();
    let mut events = a.subscribe();
    let before = a.gossip_stats();

    // A node of another cluster (another secret) announces itself to a, again and again.
    let mallory = join("mallory", b"another cluster's secret, 32 bytes", &[a.local_addr()]).await;
    // And garbage: empty, short, foreign, a forged header with a zero tag, oversized.
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut forged = b"AMBG\x01".to_vec();
    forged.extend_from_slice(&[0; 32]);
    forged.extend_from_slice(b"not foca either");
    let datagrams: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"AMBG".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        forged,
        vec![0xff; 1500],
    ];
    let sent = 20 * datagrams.len() as u64;
    for _ in 0..20 {
        for datagram in &datagrams {
            junk.send_to(datagram, a.local_addr()).await.unwrap();
        }
    }
    // Dropped: every junk datagram, and mallory's announces (it keeps announcing while
    // alone, once per probe period).
    until(|| a.gossip_stats().rejected >= before.rejected + sent + 3).await;
    assert!(mallory.gossip_stats().sent >= 3);

    // Nothing changed: a and b only, linked; mallory heard nothing back.
    assert_eq!(names(&a.members()), [("a", true), ("b", true)]);
    assert_eq!(names(&mallory.members()), [("mallory", true)]);
    assert_eq!(mallory.gossip_stats().received, 0);
    assert!(a.nodes().iter().all(|n| n.as_str() == "b"));
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(&event, ClusterEvent::MemberUp { node, .. } if node.as_str() == "mallory"),
            "{event:?}"
        );
    }

    // Warned, within each sender's budget (5 lines per 10 s), never a panic.
    let warnings: Vec<String> =
        logs.warnings().into_iter().filter(|l| l.contains("dropped a gossip datagram")).collect();
    assert!(!warnings.is_empty());
    assert!(warnings.len() <= 2 * 5, "{} warnings:\n{}", warnings.len(), warnings.join("\n"));
    assert!(warnings.iter().any(|l| l.contains("failed authentication")), "{warnings:?}");
    assert!(warnings.iter().any(|l| l.contains("shorter than its header")), "{warnings:?}");
    for node in [&mallory, &b, &a] {
        bounded(node.shutdown()).await;
    }
}
