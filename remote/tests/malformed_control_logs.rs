//! A linked peer that keeps sending control messages this node cannot read is dropped, and
//! the log says so in a bounded number of lines. In its own test binary (see
//! `support/logs.rs`).

mod support;

use amber_actors::ActorSystem;
use amber_remote::{Cluster, Frame};
use support::logs::Logs;
use support::raw::{RawPeer, encode};
use support::{SECRET, bounded, config};

#[tokio::test]
async fn a_peer_flooding_malformed_control_messages_is_dropped_with_few_warnings() {
    let (logs, _guard) = Logs::capture();
    let node = Cluster::start(ActorSystem::builder(), config("a")).await.unwrap();
    let mut junk = RawPeer::handshake(node.local_addr(), "junk", SECRET).await;
    // 0xc1 is the one byte MessagePack never uses: no control message reads from it.
    let flood: Vec<u8> = (0..1000).flat_map(|_| encode(&Frame::Control(vec![0xc1]))).collect();
    junk.write(&flood).await;
    let frames = bounded(junk.read_until_closed()).await;
    let goodbye = frames.iter().find_map(|frame| match frame {
        Frame::Goodbye { reason } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(goodbye.as_deref(), Some("too many malformed control messages"), "{frames:?}");
    bounded(node.shutdown()).await;

    let warnings = logs.warnings();
    let dropped: Vec<_> =
        warnings.iter().filter(|line| line.contains("dropping the link")).collect();
    assert_eq!(dropped.len(), 1, "{}", logs.text());
    assert!(dropped[0].contains("junk") && dropped[0].contains("malformed"), "{}", dropped[0]);
    let malformed = warnings
        .iter()
        .filter(|line| line.contains("malformed control message") && !line.contains("dropping"));
    // A burst of five, then silence: not one line per message.
    assert!(malformed.count() <= 5, "{}", logs.text());
    assert!(warnings.len() <= 8, "{}", logs.text());
}
