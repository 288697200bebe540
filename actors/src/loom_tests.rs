//! loom models of the mailbox core: every interleaving (up to the preemption bound) of
//! concurrent senders, the consumer, control signals, close and terminate.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p amber-actors --lib
//! --release --target-dir target/loom`.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use amber_snapshot::Epoch;
use loom::future::block_on;
use loom::thread;

use crate::ExitReason;
use crate::mailbox::core::{Inbox, MailboxCore, Next, PushError, test_meta};
use crate::signal::Signal;

fn mailbox(capacity: usize) -> (Arc<MailboxCore<u32>>, Inbox<u32>) {
    let core = Arc::new(MailboxCore::new(test_meta(), capacity, Epoch::ZERO));
    (core.clone(), Inbox::new(core))
}

/// Waits (through the real waker path) for the next item.
fn recv(inbox: &mut Inbox<u32>) -> Next<u32> {
    block_on(poll_fn(|cx| inbox.poll_next(cx)))
}

/// Pushes, waiting for room through the real waker path.
fn send(core: &MailboxCore<u32>, item: u32) -> Result<(), PushError<u32>> {
    let mut item = Some(item);
    block_on(poll_fn(|cx| match core.poll_push(cx, item.take().unwrap()) {
        Ok(()) => Poll::Ready(Ok(())),
        Err(PushError::Full(back)) => {
            item = Some(back);
            Poll::Pending
        }
        Err(closed) => Poll::Ready(Err(closed)),
    }))
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

/// A control signal pushed while the consumer holds a batch is returned before the rest of
/// the batch, and the data it overtook is still delivered afterwards, in order.
#[test]
fn control_overtakes_queued_data() {
    loom::model(|| {
        let (core, mut inbox) = mailbox(8);
        for i in 1..=3 {
            core.try_push(i).unwrap();
        }
        assert!(matches!(inbox.try_next(), Next::Data(1)));
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
        let (core, mut inbox) = mailbox(8);
        for i in 1..=3 {
            core.try_push(i).unwrap();
        }
        assert!(matches!(inbox.try_next(), Next::Data(1)));
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
        let watcher: Arc<dyn crate::mailbox::AnyMailbox> = Arc::new(MailboxCore::<
            crate::envelope::Envelope<NoActor>,
        >::new(
            test_meta(), 1, Epoch::ZERO
        ));
        let registrar = {
            let core = core.clone();
            thread::spawn(move || core.add_watcher(watcher).is_err())
        };
        let (_, told) = inbox.terminate(ExitReason::Stopped);
        let refused = registrar.join().unwrap();
        assert_eq!(told.len() + usize::from(refused), 1);
    });
}

/// A minimal actor type, only so a typed mailbox can stand in as a watcher.
struct NoActor;

impl crate::Actor for NoActor {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _msg: (), _ctx: &mut crate::Context<Self>) {}
}
