//! The urgent lane ([`Transport::send_urgent`]): control frames that overtake the data
//! queued before them, and never the other way round.
//!
//! [`Transport::send_urgent`]: amber_remote::Transport::send_urgent

mod support;

use std::time::Duration;

use amber_remote::{DownReason, Frame, FrameKind, NodeId, TransportError};
use amber_snapshot::Epoch;
use support::{WAIT, config, linked, number, numbered};

/// An urgent frame: a control frame whose first byte tells it from a [`numbered`] data
/// frame (whose first byte is that of a big-endian `u64` below 2^56, i.e. 0).
fn urgent(n: u64) -> Frame {
    let mut bytes = vec![0xff];
    bytes.extend_from_slice(&n.to_be_bytes());
    Frame::Control(bytes)
}

/// A [`numbered`] frame padded to `len` bytes.
fn padded(n: u64, len: usize) -> Frame {
    let mut bytes = n.to_be_bytes().to_vec();
    bytes.resize(len, 0);
    Frame::Control(bytes)
}

/// What a received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Urgent(u64),
    Data(u64),
}

fn seen(frame: &Frame) -> Seen {
    match frame {
        Frame::Control(bytes) if bytes.first() == Some(&0xff) => {
            Seen::Urgent(u64::from_be_bytes(bytes[1..9].try_into().unwrap()))
        }
        frame => Seen::Data(number(frame)),
    }
}

/// No heartbeat timeout gets in the way of a stalled reader (the test stalls it on purpose).
fn patient(name: &str) -> amber_remote::TransportConfig {
    config(name).with_heartbeat(Duration::from_secs(1), Duration::from_secs(60))
}

#[tokio::test]
async fn an_urgent_frame_overtakes_the_data_queued_before_it() {
    const QUEUE: usize = 4;
    // b takes one event and then stops reading its link until the test drains its events:
    // its TCP buffers fill, then a's writer blocks on a write, then a's send queue fills.
    let (a, mut b) =
        linked(patient("a").with_queues(QUEUE, 16), patient("b").with_queues(16, 1)).await;
    let to = b.id();
    let mut queued = 0u64;
    let full = tokio::time::timeout(WAIT, async {
        loop {
            match a.transport.try_send(&to, &padded(queued, 64 * 1024)) {
                Ok(()) => {
                    queued += 1;
                    // Lets a's writer take what is queued until its write blocks.
                    tokio::task::yield_now().await;
                }
                Err(TransportError::Full(_)) => return,
                Err(other) => panic!("unexpected {other}"),
            }
        }
    });
    full.await.expect("the send queue fills");
    assert!(queued > QUEUE as u64);
    // The last QUEUE data frames are still in a's queue (the writer is blocked): the urgent
    // frame must go out before them.
    a.transport.send_urgent(&to, &urgent(0)).unwrap();
    let mut arrived = Vec::new();
    while arrived.len() as u64 <= queued {
        let (from, frame) = b.expect_frame().await;
        assert_eq!(from, a.id());
        arrived.push(seen(&frame));
    }
    let at = arrived.iter().position(|s| *s == Seen::Urgent(0)).expect("the urgent frame");
    let data: Vec<u64> = arrived
        .iter()
        .filter_map(|s| match s {
            Seen::Data(n) => Some(*n),
            Seen::Urgent(_) => None,
        })
        .collect();
    assert_eq!(data, (0..queued).collect::<Vec<_>>(), "data frames stay in order");
    let behind = arrived.len() - 1 - at;
    println!("{queued} data frames queued; the urgent frame overtook the last {behind}");
    assert!(
        behind >= QUEUE,
        "the urgent frame arrived behind data queued before it: only {behind} of {queued} after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_never_overtakes_an_urgent_frame_sent_before_it() {
    const N: u64 = 20_000;
    let (a, mut b) = linked(config("a"), config("b")).await;
    let to = b.id();
    let sender = a.transport.clone();
    // One task alternates the lanes while the writer runs on the other worker: every data
    // frame `n` is queued after urgent frame `n`.
    let sending = tokio::spawn(async move {
        for n in 0..N {
            sender.send_urgent(&to, &urgent(n)).unwrap();
            sender.send(&to, &numbered(n)).await.unwrap();
        }
    });
    let (mut next_urgent, mut next_data, mut overtook) = (0, 0, 0u64);
    let receiving = tokio::time::timeout(Duration::from_secs(60), async {
        while next_data < N {
            match seen(&b.expect_frame().await.1) {
                Seen::Urgent(n) => {
                    assert_eq!(n, next_urgent, "urgent frames stay in order");
                    next_urgent += 1;
                    // Urgent frame n was sent after data frame n - 1.
                    overtook += u64::from(n > next_data);
                }
                Seen::Data(n) => {
                    assert_eq!(n, next_data, "data frames stay in order");
                    assert!(n < next_urgent, "data frame {n} overtook urgent frame {n}");
                    next_data += 1;
                }
            }
        }
    });
    receiving.await.expect("every frame within a minute");
    sending.await.unwrap();
    println!("{overtook} of {N} urgent frames overtook the data frame sent before them");
    assert_eq!(next_urgent, N);
    // The writer counts a batch once its write returns, which may be after b has read it.
    let counted = tokio::time::timeout(WAIT, async {
        while a.transport.stats().frames_sent < 2 * N {
            tokio::task::yield_now().await;
        }
    });
    counted.await.expect("every frame counted as sent");
}

#[tokio::test]
async fn goodbye_writes_the_urgent_lane_first() {
    let (a, mut b) = linked(config("a"), config("b")).await;
    let to = b.id();
    // Nothing runs a's writer between these calls (one thread, no await that yields): it
    // finds both lanes full at the goodbye.
    a.transport.try_send(&to, &numbered(1)).unwrap();
    a.transport.send_urgent(&to, &urgent(2)).unwrap();
    a.transport.disconnect(&to, "done").unwrap();
    assert_eq!(seen(&b.expect_frame().await.1), Seen::Urgent(2));
    assert_eq!(seen(&b.expect_frame().await.1), Seen::Data(1));
    let (node, reason) = b.expect_down().await;
    assert_eq!(node, a.id());
    assert!(matches!(reason, DownReason::Goodbye(ref why) if why == "done"), "{reason}");
    // Two frames and the goodbye, each counted.
    assert_eq!(a.transport.stats().frames_sent, 3);
    let error = a.transport.send_urgent(&to, &urgent(3)).unwrap_err();
    assert!(matches!(error, TransportError::PeerDown(_)), "{error}");
}

#[tokio::test]
async fn only_control_frames_take_the_urgent_lane() {
    let (a, mut b) = linked(config("a"), config("b")).await;
    let reply = Frame::Reply { ask: 1, epoch: Epoch::ZERO, result: Ok(vec![1]) };
    let error = a.transport.send_urgent(&b.id(), &reply).unwrap_err();
    assert!(matches!(error, TransportError::NotUrgent(FrameKind::Reply)), "{error}");
    let error = a.transport.send_urgent(&b.id(), &Frame::Heartbeat).unwrap_err();
    assert!(matches!(error, TransportError::NotUrgent(FrameKind::Heartbeat)), "{error}");
    let stranger = NodeId::from("stranger");
    let error = a.transport.send_urgent(&stranger, &urgent(0)).unwrap_err();
    assert!(matches!(error, TransportError::UnknownPeer(ref n) if *n == stranger), "{error}");
    a.transport.send_urgent(&b.id(), &urgent(7)).unwrap();
    assert_eq!(seen(&b.expect_frame().await.1), Seen::Urgent(7));
}
