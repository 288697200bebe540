//! loom models of the concurrency core: every interleaving (up to the preemption bound) of
//! concurrent senders, the consumer, control signals, close and terminate; the cut; spawn
//! admission racing the marker broadcast, through the snapshot engine itself; and the cell an
//! actor's task and the broadcast share its runner through (a cut the broadcast could not
//! take on the spot is taken as the runner is put back, never lost).
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p amber-actors --lib
//! --release --target-dir target/loom`.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use amber_snapshot::Epoch;
use loom::future::block_on;
use loom::thread;

use crate::ExitReason;
use crate::mailbox::core::{
    CutFor, Cutting, Inbox, MailboxCore, Meta, Next, PushError, Stamp, test_meta,
};
use crate::signal::Signal;
use crate::snapshot::{CutReport, Effects, SnapshotEngine, SnapshotError};

/// Where the caller of a snapshot waits for its outcome.
type Outcome = tokio::sync::oneshot::Receiver<Result<amber_snapshot::Checkpoint, SnapshotError>>;

fn mailbox(capacity: usize) -> (Arc<MailboxCore<u32>>, Inbox<u32>) {
    let core = Arc::new(MailboxCore::new(test_meta(), capacity, Epoch::ZERO));
    (core.clone(), Inbox::new(core))
}

/// A mailbox with 1, 2, 3 queued whose consumer has taken the batch and handled 1.
fn batch_in_hand() -> (Arc<MailboxCore<u32>>, Inbox<u32>) {
    let (core, mut inbox) = mailbox(8);
    for i in 1..=3 {
        core.try_push(i).unwrap();
    }
    assert!(matches!(inbox.try_next(), Next::Data(1)));
    (core, inbox)
}

/// Waits (through the real waker path) for the next item.
fn recv(inbox: &mut Inbox<u32>) -> Next<u32> {
    block_on(poll_fn(|cx| inbox.poll_next(cx)))
}

/// Pushes, waiting for room through the real waker path.
fn send(core: &MailboxCore<u32>, item: u32) -> Result<(), PushError<u32>> {
    let (mut item, mut ticket) = (Some(item), None);
    block_on(poll_fn(|cx| match core.poll_push(cx, item.take().unwrap(), &mut ticket) {
        Ok(()) => Poll::Ready(Ok(())),
        Err(PushError::Full(back)) => {
            item = Some(back);
            Poll::Pending
        }
        Err(closed) => Poll::Ready(Err(closed)),
    }))
}

/// The mailbox rule: two actors with mailboxes of capacity 1, both full, each handling a
/// message by sending two to the other (`tell` from a handler: `push_overflow`). Every
/// message is handled in every interleaving; with waiting pushes (`send`) instead, both
/// actors would wait on each other's full mailbox inside a handler, neither taking a message
/// again (loom reports that as a deadlock).
#[test]
fn handlers_telling_each_other_past_capacity_never_wait() {
    loom::model(|| {
        let (a, mut a_inbox) = mailbox(1);
        let (b, mut b_inbox) = mailbox(1);
        a.try_push(1).unwrap();
        b.try_push(1).unwrap();
        // Each message with a value above 0 makes two of value - 1 for the other actor.
        let actor = |inbox: &mut Inbox<u32>, peer: &MailboxCore<u32>, expect: usize| {
            let mut handled = 0;
            while handled < expect {
                let Next::Data(v) = recv(inbox) else { panic!("data only") };
                if v > 0 {
                    peer.push_overflow(v - 1).unwrap();
                    peer.push_overflow(v - 1).unwrap();
                }
                handled += 1;
            }
        };
        // a gets 1, then two 0s from b's 1: three messages each.
        let (a2, b2) = (a.clone(), b.clone());
        let t = thread::spawn(move || actor(&mut b_inbox, &a2, 3));
        actor(&mut a_inbox, &b2, 3);
        t.join().unwrap();
        assert_eq!(a.queued() + b.queued(), 0);
    });
}

/// Two senders and a parked consumer: every message arrives exactly once, each sender's in
/// order, and no wakeup is lost (a lost wakeup deadlocks `block_on`, which loom reports).
#[test]
fn concurrent_senders_nothing_lost_fifo_per_sender() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(8);
        let senders: Vec<_> = [0u32, 10]
            .into_iter()
            .map(|base| {
                let core = core.clone();
                thread::spawn(move || {
                    core.try_push(base + 1).unwrap();
                    core.try_push(base + 2).unwrap();
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 4 {
            match recv(&mut inbox) {
                Next::Data(i) => got.push(i),
                other => panic!("unexpected {other:?}"),
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        let from =
            |base: u32| got.iter().copied().filter(|i| i / 10 == base / 10).collect::<Vec<_>>();
        assert_eq!(from(0), vec![1, 2]);
        assert_eq!(from(10), vec![11, 12]);
    });
}

/// A bounded mailbox of capacity 1: a sender that finds it full waits and is woken when the
/// consumer takes the batch; all messages arrive in order.
#[test]
fn backpressure_wakes_blocked_sender() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(1);
        let sender = {
            let core = core.clone();
            thread::spawn(move || {
                for i in 1..=3 {
                    send(&core, i).unwrap();
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            match recv(&mut inbox) {
                Next::Data(i) => got.push(i),
                other => panic!("unexpected {other:?}"),
            }
        }
        sender.join().unwrap();
        assert_eq!(got, vec![1, 2, 3]);
    });
}

/// Capacity 1, two senders waiting for room at once: room goes to them in line, every
/// waiting sender is woken when its turn comes (loom reports a lost wake-up as a deadlock),
/// and each message arrives once.
#[test]
fn waiting_senders_are_all_served() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(1);
        core.try_push(0).unwrap();
        let senders: Vec<_> = [10, 20]
            .into_iter()
            .map(|base| {
                let core = core.clone();
                thread::spawn(move || send(&core, base + 1).unwrap())
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 3 {
            match recv(&mut inbox) {
                Next::Data(i) => got.push(i),
                other => panic!("unexpected {other:?}"),
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![0, 11, 21]);
    });
}

/// A sender that gives up its place in line while the consumer frees room: the slot it may
/// have been granted goes on to the other waiting sender, which is woken and gets in.
#[test]
fn a_sender_leaving_the_line_passes_its_slot_on() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(1);
        core.try_push(0).unwrap();
        // The leaver waits in line first (it is polled once, then dropped).
        let leaver = block_on(poll_fn(|cx| {
            let mut ticket = None;
            assert!(core.poll_push(cx, 99, &mut ticket).is_err());
            Poll::Ready(ticket.expect("in line"))
        }));
        let waiter = {
            let core = core.clone();
            thread::spawn(move || send(&core, 1).unwrap())
        };
        let quitter = {
            let core = core.clone();
            thread::spawn(move || core.cancel_wait(leaver))
        };
        let mut got = Vec::new();
        while got.len() < 2 {
            match recv(&mut inbox) {
                Next::Data(i) => got.push(i),
                other => panic!("unexpected {other:?}"),
            }
        }
        waiter.join().unwrap();
        quitter.join().unwrap();
        assert_eq!(got, vec![0, 1]);
    });
}

/// A control signal pushed while the consumer holds a batch is returned before the rest of
/// the batch, and the data it overtook is still delivered afterwards, in order.
#[test]
fn control_overtakes_queued_data() {
    loom::model(|| {
        let (core, mut inbox) = batch_in_hand();
        let signaller = {
            let core = core.clone();
            thread::spawn(move || core.push_control(Signal::Stop(ExitReason::Stopped)).unwrap())
        };
        let mut seen = Vec::new();
        loop {
            match recv(&mut inbox) {
                Next::Data(i) => seen.push(Some(i)),
                Next::Control(_) => seen.push(None),
                other => panic!("unexpected {other:?}"),
            }
            if seen.len() == 3 {
                break;
            }
        }
        signaller.join().unwrap();
        // The control signal may come before or between the data (it was pushed at some
        // point during the drain), but data order is kept and nothing is lost.
        let data: Vec<_> = seen.iter().flatten().copied().collect();
        assert_eq!(data, vec![2, 3]);
        assert_eq!(seen.iter().filter(|s| s.is_none()).count(), 1);
    });
}

/// Control is seen at the very next item once its push happened-before the consumer's poll.
#[test]
fn control_is_next_after_happens_before() {
    loom::model(|| {
        let (core, mut inbox) = batch_in_hand();
        let signaller = {
            let core = core.clone();
            thread::spawn(move || core.push_control(Signal::Drain).unwrap())
        };
        signaller.join().unwrap();
        assert!(matches!(inbox.try_next(), Next::Control(Signal::Drain)));
        assert!(matches!(inbox.try_next(), Next::Data(2)));
    });
}

/// Sends racing a stop: every message is delivered before the stop, dropped as a dead letter
/// at termination, or refused with the message given back. Never lost, never twice, and
/// nothing is delivered after the stop is acknowledged.
#[test]
fn stop_race_accounts_for_every_message() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(8);
        let sender = {
            let core = core.clone();
            thread::spawn(move || {
                let mut refused = 0;
                for i in 1..=2 {
                    if let Err(PushError::Closed(back)) = core.try_push(i) {
                        assert_eq!(back, i);
                        refused += 1;
                    }
                }
                refused
            })
        };
        let stopper = {
            let core = core.clone();
            thread::spawn(move || core.push_control(Signal::Stop(ExitReason::Stopped)).is_ok())
        };
        let mut delivered = 0;
        loop {
            match recv(&mut inbox) {
                Next::Data(_) => delivered += 1,
                Next::Control(Signal::Stop(_)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let (dead, _) = inbox.terminate(ExitReason::Stopped);
        // After termination nothing more can be delivered.
        assert!(matches!(inbox.try_next(), Next::Closed));
        let refused = sender.join().unwrap();
        assert!(stopper.join().unwrap());
        assert_eq!(delivered + dead + refused, 2);
    });
}

/// Sends racing a close (drain): a send either succeeds and is drained, or is refused with
/// the message given back; the consumer sees `Closed` only after the last accepted message.
#[test]
fn close_race_drains_everything_accepted() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(8);
        let sender = {
            let core = core.clone();
            thread::spawn(move || {
                let mut accepted = 0;
                for i in 1..=2 {
                    if core.try_push(i).is_ok() {
                        accepted += 1;
                    }
                }
                accepted
            })
        };
        core.close();
        let mut drained = 0;
        loop {
            match recv(&mut inbox) {
                Next::Data(_) => drained += 1,
                Next::Closed => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let accepted = sender.join().unwrap();
        assert_eq!(drained, accepted);
    });
}

/// A watcher registering while the actor terminates is either told by `terminate` or given
/// back with the reason: never both, never neither.
#[test]
fn watch_races_terminate() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(8);
        let watcher: crate::mailbox::Watcher =
            Arc::new(MailboxCore::<u32>::new(test_meta(), 1, Epoch::ZERO));
        let registrar = {
            let core = core.clone();
            thread::spawn(move || core.add_watcher(watcher).is_err())
        };
        let (_, told) = inbox.terminate(ExitReason::Stopped);
        let refused = registrar.join().unwrap();
        assert_eq!(told.len() + usize::from(refused), 1);
    });
}

/// A sender pushing while the actor departs (live migration), with a batch in hand: each
/// message either leaves with the actor (queued before the hand-off) or is refused as
/// moved, with where to, for its sender to forward after: none is lost, none goes twice,
/// and the sender's order holds across the two. Control is refused once it has left.
#[test]
fn depart_races_a_sender_nothing_lost_twice_or_reordered() {
    loom::model(|| {
        let core = Arc::new(MailboxCore::<u32, u8>::new(test_meta(), 8, Epoch::ZERO));
        let mut inbox = Inbox::new(core.clone());
        core.try_push(1).unwrap();
        core.try_push(2).unwrap();
        assert!(matches!(inbox.try_next(), Next::Data(1)));
        let sender = {
            let core = core.clone();
            thread::spawn(move || {
                let mut forwarded = Vec::new();
                for i in 3..=4 {
                    match core.try_push(i) {
                        Ok(()) => {}
                        Err(PushError::Moved(back, to)) => {
                            assert_eq!(to, 7, "where the hand-off said it went");
                            forwarded.push(back);
                        }
                        Err(other) => panic!("refused: {other:?}"),
                    }
                }
                forwarded
            })
        };
        let mut left = Vec::new();
        let departed = inbox.depart(7, |queue, _cut| {
            left.extend(queue.drain(..));
            Ok::<_, ()>(())
        });
        assert!(matches!(departed, Some(Ok(()))));
        left.extend(sender.join().unwrap());
        assert_eq!(left, vec![2, 3, 4], "the batch in hand, then the sender's, in order");
        assert!(matches!(core.try_push(5), Err(PushError::Moved(5, 7))));
        assert!(core.push_control(Signal::Drain).is_err());
    });
}

// ------------------------------------------------------------------ the cut

/// A test message: `id`, tagged by its sender with `tag`, or (`outside`) tagged on arrival
/// with the receiver's epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Msg {
    id: u32,
    tag: Epoch,
    outside: bool,
}

impl crate::mailbox::core::Stamp for Msg {
    fn on_arrival(&mut self, receiver_epoch: Epoch) {
        if self.outside {
            self.tag = receiver_epoch;
        }
    }
    fn tag(&self) -> Epoch {
        self.tag
    }
    fn record(
        &self,
        to: crate::ActorId,
    ) -> Result<amber_snapshot::InFlightRecord, crate::CodecError> {
        Ok(amber_snapshot::InFlightRecord {
            to,
            from: None,
            epoch: self.tag,
            ask: false,
            payload: vec![self.id as u8].into(),
        })
    }
    fn asked_by_actor(&self) -> bool {
        false
    }
}

fn msg_mailbox() -> (Arc<MailboxCore<Msg>>, Inbox<Msg>) {
    let core = Arc::new(MailboxCore::new(test_meta(), 8, Epoch::ZERO));
    (core.clone(), Inbox::new(core))
}

/// What happened to each message, from the receiver's side.
#[derive(Debug, Default)]
struct Fate {
    processed_before_cut: Vec<u32>,
    processed_after_cut: Vec<u32>,
    recorded: Vec<u32>,
}

/// The receiver: handles up to `before` messages, cuts for epoch 1 (recording the backlog
/// tagged below 1), then handles the rest until `total` were handled.
fn receiver(inbox: &mut Inbox<Msg>, before: usize, total: usize) -> Fate {
    let mut fate = Fate::default();
    let mut epoch = Epoch::ZERO;
    let mut handled = 0;
    while handled < before {
        match inbox.try_next() {
            Next::Data(m) => {
                fate.processed_before_cut.push(m.id);
                handled += 1;
            }
            _ => break,
        }
    }
    let (cut, backlog, _) = inbox
        .cut(CutFor::Marker(Epoch(1)), amber_snapshot::MAX_DEPTH)
        .taken()
        .expect("behind epoch 1");
    epoch = epoch.max(cut.to);
    fate.recorded.extend(backlog.iter().filter(|m| cut.records(m.tag)).map(|m| m.id));
    while handled < total {
        match recv_msg(inbox) {
            Next::Data(m) => {
                assert!(m.tag <= epoch, "a message from a later epoch is handled before the cut");
                fate.processed_after_cut.push(m.id);
                handled += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    fate
}

fn recv_msg(inbox: &mut Inbox<Msg>) -> Next<Msg> {
    block_on(poll_fn(|cx| inbox.poll_next(cx)))
}

fn late_ids(core: &MailboxCore<Msg>) -> Vec<u32> {
    let taken = core.meta.late.take(Epoch(1));
    assert!(taken.taints.is_empty());
    taken.records.into_iter().map(|r| u32::from(r.unwrap().payload[0])).collect()
}

/// The cut racing a sender that has not cut yet (its messages are tagged 0): every message
/// is either handled before the receiver's cut or recorded as in flight — never both, never
/// neither — and recordings keep arrival order.
#[test]
fn cut_vs_concurrent_sender_counts_each_message_once() {
    loom::model(|| {
        let (core, mut inbox) = msg_mailbox();
        let sender = {
            let core = core.clone();
            thread::spawn(move || {
                for id in 1..=3 {
                    core.try_push(Msg { id, tag: Epoch::ZERO, outside: false }).unwrap();
                }
            })
        };
        let fate = receiver(&mut inbox, 1, 3);
        sender.join().unwrap();
        let mut recorded = fate.recorded.clone();
        recorded.extend(late_ids(&core));
        let mut all: Vec<_> = fate.processed_before_cut.iter().chain(&recorded).copied().collect();
        all.sort();
        assert_eq!(all, vec![1, 2, 3], "before-cut {fate:?}, recorded {recorded:?}");
        assert!(recorded.windows(2).all(|w| w[0] < w[1]), "arrival order: {recorded:?}");
    });
}

/// Messages from outside the system race the cut: each is reflected in the cut state
/// (handled before it), or recorded (queued at the cut, tagged 0), or after the snapshot
/// (arrived after the cut, tagged 1) — exactly one of the three.
#[test]
fn outside_messages_vs_cut_are_reflected_recorded_or_after_exactly_once() {
    loom::model(|| {
        let (core, mut inbox) = msg_mailbox();
        let outside = {
            let core = core.clone();
            thread::spawn(move || {
                for id in 1..=2 {
                    core.try_push(Msg { id, tag: Epoch(99), outside: true }).unwrap();
                }
            })
        };
        let mut fate = Fate::default();
        if let Next::Data(m) = inbox.try_next() {
            fate.processed_before_cut.push(m.id);
        }
        let (cut, backlog, _) =
            inbox.cut(CutFor::Marker(Epoch(1)), amber_snapshot::MAX_DEPTH).taken().expect("behind");
        let mut after = Vec::new();
        for m in backlog.iter() {
            if cut.records(m.tag) {
                fate.recorded.push(m.id);
            } else {
                after.push(m.id);
            }
        }
        outside.join().unwrap();
        while let Next::Data(m) = inbox.try_next() {
            if !fate.recorded.contains(&m.id) && !after.contains(&m.id) {
                assert_eq!(m.tag, Epoch(1), "arrived after the cut: tagged after it");
                after.push(m.id);
            }
        }
        assert!(late_ids(&core).is_empty(), "outside messages are never late");
        let mut all: Vec<_> =
            fate.processed_before_cut.iter().chain(&fate.recorded).chain(&after).copied().collect();
        all.sort();
        assert_eq!(all, vec![1, 2], "{fate:?} after {after:?}");
    });
}

/// A marker on the control lane overtakes queued data; a message from a sender that already
/// cut (tagged 1) forces the cut before it is handled, whichever of the two comes first.
#[test]
fn marker_and_newer_tag_race_the_cut_happens_first() {
    loom::model(|| {
        let (core, mut inbox) = msg_mailbox();
        core.try_push(Msg { id: 1, tag: Epoch::ZERO, outside: false }).unwrap();
        let cut_sender = {
            let core = core.clone();
            thread::spawn(move || {
                core.try_push(Msg { id: 2, tag: Epoch(1), outside: false }).unwrap()
            })
        };
        let marker = {
            let core = core.clone();
            thread::spawn(move || core.push_control(Signal::Marker(Epoch(1))).unwrap())
        };
        let mut epoch = Epoch::ZERO;
        let mut recorded = Vec::new();
        let mut handled = Vec::new();
        let mut cut_at_handled = None;
        // Takes the cut if still behind: returns the backlog ids in flight.
        let cut_now = |inbox: &mut Inbox<Msg>, why: CutFor| {
            inbox.cut(why, amber_snapshot::MAX_DEPTH).taken().map(|(cut, backlog, _)| {
                backlog.iter().filter(|m| cut.records(m.tag)).map(|m| m.id).collect::<Vec<_>>()
            })
        };
        while handled.len() < 2 || cut_at_handled.is_none() {
            let next = recv_msg(&mut inbox);
            let must_cut = match &next {
                Next::Control(Signal::Marker(e)) => Some(CutFor::Marker(*e)),
                Next::Data(m) => (m.tag > epoch).then_some(CutFor::Dequeued(m.tag)),
                other => panic!("unexpected {other:?}"),
            };
            if let Some(why) = must_cut
                && let Some(in_flight) = cut_now(&mut inbox, why)
            {
                epoch = Epoch(1);
                recorded.extend(in_flight);
                cut_at_handled = Some(handled.len());
            }
            match next {
                Next::Control(_) => {}
                Next::Data(m) => {
                    assert!(
                        m.tag <= epoch,
                        "message {} tagged {} handled before the cut",
                        m.id,
                        m.tag
                    );
                    handled.push(m.id);
                }
                _ => unreachable!(),
            }
        }
        cut_sender.join().unwrap();
        marker.join().unwrap();
        recorded.extend(late_ids(&core));
        // Message 1 (tag 0) is handled before the cut or recorded; message 2 (tag 1) never
        // is recorded.
        assert!(!recorded.contains(&2));
        let before_cut = &handled[..cut_at_handled.unwrap()];
        assert!(
            before_cut.contains(&1) ^ recorded.contains(&1),
            "handled {handled:?} recorded {recorded:?}"
        );
        assert!(!before_cut.contains(&2));
    });
}

// ------------------------------------------------------------------ the deferred cut

/// The ask rule in the mailbox: a responder (ask depth 1) defers its cut for snapshot 1
/// while depth 0 is not released. A sender that has not cut (tag 0) and one that has (tag
/// 1) race the deferral, the processing and the cut. Every message is handled exactly once,
/// in per-sender order; no message tagged 1 is processed before the cut (it would be an
/// orphan); every message tagged 0 is processed before the cut, recorded at it, or recorded
/// after it (late) — exactly one of the three; and a message tagged 1 is never recorded.
#[test]
fn a_deferred_cut_holds_later_tags_and_counts_each_message_once() {
    loom::model(|| {
        let (core, mut inbox) = msg_mailbox();
        assert_eq!(inbox.on_ask(0), Some((0, 1)));
        let before = {
            let core = core.clone();
            thread::spawn(move || {
                for id in [1, 2] {
                    core.try_push(Msg { id, tag: Epoch(0), outside: false }).unwrap();
                }
            })
        };
        let after = {
            let core = core.clone();
            thread::spawn(move || {
                for id in [11, 12] {
                    core.try_push(Msg { id, tag: Epoch(1), outside: false }).unwrap();
                }
            })
        };
        // The marker, while depth 0 is not released: the cut is deferred.
        assert!(matches!(inbox.cut(CutFor::Marker(Epoch(1)), 0), Cutting::Deferred));
        let mut processed_before_cut = Vec::new();
        while let Next::Data(m) = inbox.try_next() {
            assert!(m.tag < Epoch(1), "message {} tagged after the cut processed before it", m.id);
            processed_before_cut.push(m.id);
        }
        // Released: the cut. Held messages come first, then the rest, in arrival order.
        let (cut, batch, _) =
            inbox.cut(CutFor::Marker(Epoch(1)), 1).taken().expect("deferred, so behind");
        assert_eq!(cut.depth, 1);
        let mut recorded = Vec::new();
        let mut processed_after_cut = Vec::new();
        for m in batch.iter() {
            if cut.records(m.tag) {
                recorded.push(m.id);
            }
        }
        before.join().unwrap();
        after.join().unwrap();
        while let Next::Data(m) = inbox.try_next() {
            processed_after_cut.push(m.id);
        }
        let late = late_ids(&core);
        for id in [1, 2] {
            let fates =
                [processed_before_cut.contains(&id), recorded.contains(&id), late.contains(&id)];
            assert_eq!(fates.iter().filter(|f| **f).count(), 1, "message {id}: {fates:?}");
        }
        for id in [11, 12] {
            assert!(!recorded.contains(&id) && !late.contains(&id), "{id} is after the cut");
        }
        let mut handled: Vec<u32> =
            processed_before_cut.iter().chain(&processed_after_cut).copied().collect();
        let order =
            |ids: &[u32]| handled.iter().filter(|i| ids.contains(i)).copied().collect::<Vec<_>>();
        assert_eq!(order(&[1, 2]), vec![1, 2], "per-sender order");
        assert_eq!(order(&[11, 12]), vec![11, 12], "per-sender order");
        handled.sort();
        assert_eq!(handled, vec![1, 2, 11, 12], "each message handled exactly once");
    });
}

// ------------------------------------------------------------------ spawn admission

/// The registry as the marker broadcast sees it (`Registry::insert`, `Registry::mailboxes`):
/// a newborn is added under its lock; the broadcast visits the actors one at a time, taking
/// the lock for each. It sees every actor registered before it began, and may or may not
/// see one registered meanwhile (the roster's list sees none of those: one of the cases).
#[derive(Default)]
struct Registry(crate::loom::sync::Mutex<Vec<Arc<MailboxCore<Msg>>>>);

impl Registry {
    fn insert(&self, mailbox: Arc<MailboxCore<Msg>>) {
        crate::loom::lock(&self.0).push(mailbox);
    }

    fn for_each(&self, f: impl Fn(&MailboxCore<Msg>)) {
        let next = |i: usize| crate::loom::lock(&self.0).get(i).cloned();
        let mut i = 0;
        while let Some(mailbox) = next(i) {
            f(&mailbox);
            i += 1;
        }
    }
}

/// `ActorSystem::run_effects`: the marker broadcast over the registry, the releases, then
/// the answer to the snapshot's caller.
fn run_effects(registry: &Registry, mut effects: Effects) {
    if let Some(epoch) = effects.markers.take() {
        registry.for_each(|mailbox| {
            let _ = mailbox.push_control(Signal::Marker(epoch));
        });
    }
    for (mailbox, epoch) in effects.releases.drain(..) {
        let _ = mailbox.signal(Signal::Release(epoch));
    }
    effects.resolve();
}

/// An actor of the admission models: its mailbox and what its runner knows.
struct Actor {
    inbox: Inbox<Msg>,
    /// The epoch it was born in.
    born: Epoch,
    /// The markers its runner dequeued.
    markers: Vec<Epoch>,
    cuts: usize,
}

impl Actor {
    /// `ActorSystem::spawn_inner`: admission with the parent's epoch (`None`: from outside)
    /// and registration under the engine lock, then the marker the admission returned, if
    /// any, on the newborn's control lane.
    fn spawn(engine: &SnapshotEngine, registry: &Registry, n: u64, epoch: Option<Epoch>) -> Actor {
        let (mailbox, born, marker) = engine
            .admit(epoch, |epoch| {
                let id = crate::ActorId::new(crate::SystemId(1), n);
                let meta = Meta { id, late: engine.late.clone(), ..test_meta() };
                let mailbox = Arc::new(MailboxCore::new(meta, 8, epoch));
                registry.insert(mailbox.clone());
                Ok::<_, ()>(mailbox)
            })
            .unwrap();
        if let Some(marker) = marker {
            let _ = mailbox.push_control(Signal::Marker(marker));
        }
        Actor { inbox: Inbox::new(mailbox), born, markers: Vec::new(), cuts: 0 }
    }

    /// Its epoch, as the runner reads it: its inbox's (moved only by its cut).
    fn epoch(&self) -> Epoch {
        self.inbox.epoch()
    }

    fn id(&self) -> crate::ActorId {
        self.inbox.core().meta.id
    }

    /// The runner between two messages: every signal on the control lane now; a marker it
    /// is behind makes it cut (`Runner::take_cut`; nobody asks it, so it never defers).
    fn run(&mut self, engine: &SnapshotEngine, registry: &Registry) {
        while let Next::Control(signal) = self.inbox.try_next() {
            let Signal::Marker(to) = signal else { panic!("unexpected {signal:?}") };
            self.markers.push(to);
            if to <= self.epoch() {
                continue; // a stale marker
            }
            let id = self.id();
            let Some((cut, batch, _)) =
                self.inbox.cut(CutFor::Marker(to), amber_snapshot::MAX_DEPTH).taken()
            else {
                continue;
            };
            let mut backlog = amber_snapshot::Backlog::builder(id);
            for m in batch.iter().filter(|m| cut.records(m.tag)) {
                let record = m.record(id).expect("test messages encode");
                backlog
                    .push_with(record.from, record.epoch, record.ask, |out| {
                        out.extend_from_slice(&record.payload);
                        Ok::<(), ()>(())
                    })
                    .expect("copying bytes does not fail");
            }
            let backlog = backlog.finish();
            assert_eq!(self.epoch(), cut.to, "the cut moved the inbox's epoch");
            self.cuts += 1;
            let entry = amber_snapshot::ActorEntry {
                id,
                type_name: "test".into(),
                name: None,
                node: "n".into(),
                parent: None,
                watchers: Vec::new(),
                watching: Vec::new(),
                state_version: 0,
                capacity: Default::default(),
                restart: Default::default(),
            };
            let state =
                Ok(amber_snapshot::StateRecord { id, state: Vec::new(), timers: Vec::new() });
            run_effects(
                registry,
                engine.cut(
                    cut,
                    CutReport { entry, state, backlog, unrecorded: Vec::new(), crossed: false },
                ),
            );
        }
    }
}

/// A node's engine (no other nodes) with one live actor, the parent, in epoch 0.
fn node() -> (Arc<SnapshotEngine>, Arc<Registry>, Actor) {
    let engine = Arc::new(SnapshotEngine::new("n".into(), Epoch::ZERO, None));
    let registry = Arc::new(Registry::default());
    let parent = Actor::spawn(&engine, &registry, 1, None);
    assert_eq!(parent.born, Epoch::ZERO);
    (engine, registry, parent)
}

/// Starts a snapshot and broadcasts its markers, as `ActorSystem::snapshot` does.
fn snapshot(engine: &SnapshotEngine, registry: &Registry) -> (Epoch, Outcome) {
    let (epoch, outcome, effects) = engine.start(Duration::from_secs(3600)).unwrap();
    run_effects(registry, effects);
    (epoch, outcome)
}

/// After the race: the child belongs to the snapshot (born before it) and has its marker,
/// or was born in it; the node counts exactly the actors that still must cut; once each has
/// run, each cut once, and the snapshot completes with each actor of it exactly once.
fn check(
    engine: &SnapshotEngine,
    registry: &Registry,
    (epoch, mut outcome): (Epoch, Outcome),
    mut parent: Actor,
    mut child: Actor,
) {
    assert_eq!(epoch, Epoch(1));
    let behind = |a: &Actor| u64::from(a.epoch() < epoch);
    assert_eq!(engine.behind(), behind(&parent) + behind(&child), "counted before the runs");
    for actor in [&mut parent, &mut child] {
        actor.run(engine, registry);
    }
    assert!(
        child.born == epoch || child.markers.contains(&epoch),
        "the child, born in {}, is in snapshot {epoch} but never got its marker",
        child.born
    );
    assert!(child.born <= epoch);
    assert_eq!((parent.epoch(), parent.cuts), (epoch, 1), "the parent cut once");
    assert_eq!(child.epoch(), epoch);
    assert_eq!(child.cuts, usize::from(child.born < epoch), "the child cut iff born before");
    assert_eq!(engine.behind(), 0);
    assert_eq!(engine.running(), None);
    assert_eq!(engine.completed(), epoch, "locally done, so complete");
    let checkpoint = outcome.try_recv().expect("answered").expect("a checkpoint");
    let mut ids: Vec<_> = checkpoint.manifest.actors.iter().map(|a| a.id).collect();
    ids.sort();
    let mut expected = vec![parent.id()];
    if child.born < epoch {
        expected.push(child.id());
    }
    assert_eq!(ids, expected, "each actor of the snapshot exactly once");
}

/// A parent spawns a child while a snapshot starts and its markers are broadcast. The
/// parent's runner first handles its control lane (if the marker is there, it cuts and the
/// child is born after the cut, in the new epoch), then spawns the child in its epoch. A
/// child of a parent that has not cut belongs to the snapshot: admitted before the start,
/// it is registered for the broadcast; after it, the admission hands it the marker. Never
/// neither.
#[test]
fn spawn_by_a_parent_races_the_marker_broadcast() {
    loom::model(|| {
        let (engine, registry, mut parent) = node();
        let spawner = {
            let (engine, registry) = (engine.clone(), registry.clone());
            thread::spawn(move || {
                parent.run(&engine, &registry);
                let child = Actor::spawn(&engine, &registry, 2, Some(parent.epoch()));
                (parent, child)
            })
        };
        let started = {
            let (engine, registry) = (engine.clone(), registry.clone());
            thread::spawn(move || snapshot(&engine, &registry))
        };
        let (parent, child) = spawner.join().unwrap();
        assert_eq!(child.born, parent.epoch(), "born in its parent's epoch");
        check(&engine, &registry, started.join().unwrap(), parent, child);
    });
}

/// An actor spawned from outside the system while a snapshot starts: admitted before the
/// start, it is in the snapshot and reached by the broadcast; after it, it is born in the
/// snapshot's epoch (the node's spawn epoch) and is not part of it.
#[test]
fn spawn_from_outside_races_the_marker_broadcast() {
    loom::model(|| {
        let (engine, registry, parent) = node();
        let spawner = {
            let (engine, registry) = (engine.clone(), registry.clone());
            thread::spawn(move || Actor::spawn(&engine, &registry, 2, None))
        };
        let started = {
            let (engine, registry) = (engine.clone(), registry.clone());
            thread::spawn(move || snapshot(&engine, &registry))
        };
        let child = spawner.join().unwrap();
        check(&engine, &registry, started.join().unwrap(), parent, child);
    });
}

/// A stand-in for an actor's runner in its cell: the epoch it last cut for, and how many
/// cuts it took.
#[derive(Debug, Default)]
struct Cuts {
    epoch: u64,
    taken: u32,
}

impl crate::cell::Cuttable for Cuts {
    /// What an ask served on its asker's thread hands the task: the runner itself.
    type Rest = Option<Box<Cuts>>;

    fn poll_rest(rest: &mut Self::Rest, _: &mut std::task::Context<'_>) -> Poll<Box<Self>> {
        Poll::Ready(rest.take().expect("polled once"))
    }

    fn cut_missed(&mut self, epoch: Epoch) {
        if epoch.0 > self.epoch {
            self.epoch = epoch.0;
            self.taken += 1;
        }
    }
}

/// The broadcast's side of a cut on the spot (as `CutNow::cut_now` does it): cut the runner
/// if it is in the cell, else leave it to whoever puts it back.
fn broadcast(cell: &crate::cell::Cell<Cuts>, epoch: u64) {
    if let Some(mut runner) = cell.take_for_cut(Epoch(epoch)) {
        crate::cell::Cuttable::cut_missed(&mut *runner, Epoch(epoch));
        cell.give_back(runner);
    }
}

/// The task's side of its cell: the runner, as it was left or as an ask served on its
/// asker's thread handed it over.
fn take<R: crate::cell::Cuttable + Send>(cell: &crate::cell::Cell<R>) -> Box<R> {
    block_on(cell.take())
}

/// An ask served on its asker's thread (`crate::inline`) takes the idle runner out of its cell
/// while its task is woken for another message and a snapshot's broadcast comes by; the
/// asker gives the runner back, or (`hand_off`) leaves it to the task. Whatever the order:
/// the asker and the task never hold the runner at once, the task is woken (the model would
/// deadlock if it were not), and the runner ends up in its cell cut for the snapshot, once.
fn an_ask_served_inline_shares_the_runner(hand_off: bool) {
    loom::model(move || {
        let cell = crate::cell::Cell::<Cuts>::new();
        cell.put(Box::default());
        let busy = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let asker = thread::spawn({
            let (cell, busy) = (cell.clone(), busy.clone());
            move || {
                let Some(runner) = cell.take_inline() else { return };
                assert!(!busy.swap(true, std::sync::atomic::Ordering::SeqCst), "held twice");
                busy.store(false, std::sync::atomic::Ordering::SeqCst);
                if hand_off {
                    if let Some(task) = cell.hand_off(Some(runner)) {
                        task.wake();
                    }
                } else {
                    cell.give_back(runner);
                }
            }
        });
        let task = thread::spawn({
            let (cell, busy) = (cell.clone(), busy.clone());
            move || {
                let runner = take(&cell);
                assert!(!busy.swap(true, std::sync::atomic::Ordering::SeqCst), "held twice");
                busy.store(false, std::sync::atomic::Ordering::SeqCst);
                cell.put(runner);
            }
        });
        broadcast(&cell, 1);
        asker.join().unwrap();
        task.join().unwrap();
        // The task's next turn: what was handed off after its last one is its to take (a cut
        // owed meanwhile is taken as it puts the runner back).
        let runner = take(&cell);
        cell.put(runner);
        let runner = take(&cell);
        assert_eq!((runner.epoch, runner.taken), (1, 1));
    });
}

#[test]
fn an_ask_served_inline_gives_the_runner_back() {
    an_ask_served_inline_shares_the_runner(false);
}

#[test]
fn an_ask_served_inline_hands_the_runner_to_its_task() {
    an_ask_served_inline_shares_the_runner(true);
}

/// A stand-in for an actor's runner that handles `u32`s: its consumer side of a mailbox, and
/// what it handled, in order.
struct Served {
    inbox: Inbox<u32>,
    handled: Vec<u32>,
}

impl crate::cell::Cuttable for Served {
    type Rest = Option<Box<Served>>;

    fn poll_rest(rest: &mut Self::Rest, _: &mut std::task::Context<'_>) -> Poll<Box<Self>> {
        Poll::Ready(rest.take().expect("polled once"))
    }

    fn cut_missed(&mut self, _: Epoch) {}
}

/// The mailbox side of an ask served on its asker's thread (`crate::inline::serve`): an
/// asker takes the idle actor's runner, pushes its request without waking the task
/// (`push_quiet`; behind a message that came first it is queued for the task, which is
/// woken) and handles that one message, while another
/// sender tells the actor and the actor's task is parked on its mailbox, as its run loop
/// parks (runner in the cell, waker registered). No wake-up is lost: both messages are
/// handled, once each, before anything else is sent (the model waits for that: a task
/// asleep with a message queued would make it wait forever, which loom reports); then the
/// task handles a last message, a stop.
#[test]
fn an_ask_served_inline_loses_no_wake_up_of_the_task() {
    loom::model(|| {
        let (core, inbox) = mailbox(4);
        let cell = crate::cell::Cell::<Served>::new();
        let handled = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let task = thread::spawn({
            let cell = cell.clone();
            // One future, as the actor's task is: one waker for all its waits.
            let handled = handled.clone();
            move || {
                block_on(async move {
                    let mut runner = Box::new(Served { inbox, handled: Vec::new() });
                    loop {
                        // A slice: until the mailbox is empty, its waker registered.
                        loop {
                            let next =
                                poll_fn(|cx| Poll::Ready(runner.inbox.next_or_register(cx))).await;
                            match next {
                                Next::Data(0) => {
                                    runner.handled.push(0);
                                    cell.put(runner);
                                    return;
                                }
                                Next::Data(v) => {
                                    runner.handled.push(v);
                                    handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                }
                                Next::Empty => break,
                                _ => unreachable!("data only"),
                            }
                        }
                        cell.put(runner);
                        // Parked until the mailbox wakes it, as `Runner::run` parks.
                        crate::cell::parked().await;
                        runner = cell.take().await;
                    }
                })
            }
        });
        let asker = thread::spawn({
            let (core, cell, handled) = (core.clone(), cell.clone(), handled.clone());
            move || {
                let Some(mut runner) = cell.take_inline() else {
                    core.try_push(1).unwrap();
                    return;
                };
                if !runner.inbox.is_idle() {
                    cell.give_back(runner);
                    core.try_push(1).unwrap();
                    return;
                }
                if !core.push_quiet(1).unwrap() {
                    // Behind the tell: the task's to handle.
                    cell.give_back(runner);
                    return;
                }
                let Next::Data(v) = runner.inbox.try_next() else { panic!("its ask is first") };
                runner.handled.push(v);
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                cell.give_back(runner);
            }
        });
        core.try_push(2).unwrap();
        asker.join().unwrap();
        while handled.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            thread::yield_now();
        }
        core.try_push(0).unwrap(); // the last message: the task stops on it
        task.join().unwrap();
        let runner = take(&cell);
        let mut handled = runner.handled.clone();
        assert_eq!(handled.pop(), Some(0), "the stop comes last");
        handled.sort_unstable();
        assert_eq!(handled, vec![1, 2], "each message handled once");
    });
}

/// The task puts its runner back after a handler (about to park or yield its worker) while
/// a snapshot's broadcast comes by: whichever goes first, the runner ends up in the cell cut
/// for that snapshot, once — never back in the cell with the cut still owed to a broadcast
/// that has passed.
#[test]
fn a_broadcast_that_finds_the_runner_out_is_served_as_it_is_put_back() {
    loom::model(|| {
        let cell = crate::cell::Cell::<Cuts>::new();
        let task = thread::spawn({
            let cell = cell.clone();
            move || cell.put(Box::default())
        });
        broadcast(&cell, 1);
        task.join().unwrap();
        let runner = take(&cell);
        assert_eq!((runner.epoch, runner.taken), (1, 1));
    });
}

/// A runner held by one snapshot's cut on the spot while the next snapshot's broadcast comes
/// by, and its task taking it back (waiting if need be) and putting it back after a message:
/// once the runner is back in the cell, it has cut for both, in order, once each (and the
/// task was woken: the model would deadlock if it were not).
#[test]
fn a_held_runner_is_given_back_cut_for_the_broadcast_that_found_it_held() {
    loom::model(|| {
        let cell = crate::cell::Cell::<Cuts>::new();
        cell.put(Box::default());
        let released = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let mut held = cell.take_for_cut(Epoch(1)).expect("in the cell");
        let newer = thread::spawn({
            let cell = cell.clone();
            move || broadcast(&cell, 2)
        });
        let task = thread::spawn({
            let (cell, released) = (cell.clone(), released.clone());
            move || {
                let runner = take(&cell);
                // Parked in its cell while held, the runner is still the batch's.
                assert!(released.load(std::sync::atomic::Ordering::SeqCst), "taken while held");
                cell.put(runner);
            }
        });
        crate::cell::Cuttable::cut_missed(&mut *held, Epoch(1));
        // As a batch does: parked in the cell, still held, released once the cut is filed.
        cell.park_held(held);
        released.store(true, std::sync::atomic::Ordering::SeqCst);
        cell.release();
        newer.join().unwrap();
        task.join().unwrap();
        let runner = take(&cell);
        assert_eq!((runner.epoch, runner.taken), (2, 2));
    });
}
