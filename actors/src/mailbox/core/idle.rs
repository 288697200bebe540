//! Closing the mailbox of an idle actor, for passivation: atomically with respect to
//! senders, the data lane is closed if, and only if, nothing waits in it.
//!
//! A sender either got its message in before the check (the actor is not idle: nothing is
//! closed, the message is handled as usual) or is refused after it, and gets its message
//! back (as for any stopped actor): no message is ever queued in a mailbox that passivates.
//! Nothing here touches the actor's cut: the actor's epoch and counters stay as they were,
//! and it leaves a running snapshot as any stopping actor does.
//!
//! A passivation may *redirect* (`redirect`: its caller keeps somewhere to send what comes
//! after, see [`crate::passivate::Redirect`]): then a push refused after the close is
//! [`PushError::Passivated`](super::PushError::Passivated), decided under the same lock as
//! the close, and never recorded as a dead letter of this mailbox (even once the actor has
//! terminated): the one who redirects it hands it to another mailbox, which queues (and
//! records) it, so no message is counted twice, and none falls between the close and the
//! redirect.

use super::{Inbox, Lifecycle, Stamp};
use crate::loom::lock_queue;
use crate::signal::Signal;

impl<T: Stamp, M: Clone> Inbox<T, M> {
    /// Closes the data lane if the actor is idle: the mailbox is open, no data message
    /// waits (in the shared queue, in the consumer's batch, or set aside for a deferred
    /// cut), no control signal waits but other passivation requests (they find the actor
    /// gone), no sender waits for room, and no cut is deferred. Returns whether it closed
    /// it; if not, nothing changed. With `redirect`, the pushes it refuses from then on
    /// are [`PushError::Passivated`](super::PushError::Passivated) (see the module docs).
    pub(crate) fn close_if_idle(&mut self, redirect: bool) -> bool {
        if !self.batch.is_empty() || !self.held.is_empty() || self.hold.is_some() {
            return false;
        }
        let mut q = lock_queue(&self.core.queue);
        let idle = q.lifecycle == Lifecycle::Open
            && q.data.is_empty()
            && q.control.iter().all(|s| matches!(s, Signal::Passivate(_)))
            && q.tx_waiters.is_empty()
            && q.cut.deferred().is_none();
        if idle {
            q.lifecycle = Lifecycle::Closed;
            q.passivated = redirect;
        }
        idle
    }

    /// Opens again a data lane that [`close_if_idle`](Self::close_if_idle) closed (the
    /// passivation it was closed for failed). Senders refused meanwhile got their messages
    /// back. Returns whether it was closed (and is open again).
    pub(crate) fn reopen(&mut self) -> bool {
        let mut q = lock_queue(&self.core.queue);
        q.passivated = false;
        if q.lifecycle == Lifecycle::Closed {
            q.lifecycle = Lifecycle::Open;
            return true;
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use amber_snapshot::Epoch;

    use super::super::{MailboxCore, PushError, test_meta};
    use super::*;
    use crate::{ExitReason, loom::sync::Arc};

    fn mailbox() -> (Arc<MailboxCore<u32>>, Inbox<u32>) {
        let core = Arc::new(MailboxCore::<u32>::new(test_meta(), 4, Epoch(1)));
        let inbox = Inbox::new(core.clone());
        (core, inbox)
    }

    #[test]
    fn an_empty_mailbox_closes_and_refuses_what_comes_after() {
        let (core, mut inbox) = mailbox();
        assert!(inbox.close_if_idle(false));
        assert!(matches!(core.try_push(7), Err(PushError::Closed(7))), "given back");
        assert!(inbox.reopen());
        assert!(core.try_push(8).is_ok(), "open again");
        assert!(!inbox.close_if_idle(false), "a message waits");
    }

    #[test]
    fn a_waiting_message_or_signal_keeps_it_open() {
        let (core, mut inbox) = mailbox();
        core.try_push(1).unwrap();
        assert!(!inbox.close_if_idle(false));
        // Taken into the consumer's batch, not handled yet: still not idle.
        assert!(matches!(inbox.try_next(), super::super::Next::Data(1)));
        assert!(inbox.close_if_idle(false), "handled: idle");
        inbox.reopen();
        core.push_control(Signal::Passivate(Box::new(()))).unwrap();
        assert!(inbox.close_if_idle(false), "only another passivation request waits");
        inbox.reopen();
        core.push_control(Signal::Stop(ExitReason::Stopped)).unwrap();
        assert!(!inbox.close_if_idle(false), "a signal waits");
    }

    #[test]
    fn a_terminated_or_closed_mailbox_is_not_closed_again() {
        let (core, mut inbox) = mailbox();
        core.close();
        assert!(!inbox.close_if_idle(false));
        assert!(inbox.reopen(), "closed, by whoever: opened");
        let _ = core.terminate(ExitReason::Stopped);
        assert!(!inbox.close_if_idle(false));
        assert!(!inbox.reopen());
    }

    #[test]
    fn a_redirecting_close_refuses_as_passivated_without_recording_even_once_terminated() {
        let (core, mut inbox) = mailbox();
        assert!(inbox.close_if_idle(true));
        assert!(matches!(core.try_push(7), Err(PushError::Passivated(7))), "given back");
        assert!(inbox.reopen(), "a passivation called off");
        assert!(inbox.close_if_idle(false));
        assert!(matches!(core.try_push(8), Err(PushError::Closed(8))), "no redirect now");
        inbox.reopen();
        assert!(inbox.close_if_idle(true));
        let _ = core.terminate(ExitReason::Stopped);
        let remote = core.push_remote(9, super::super::Refusal::Silent);
        assert!(matches!(remote, Err(PushError::Passivated(9))), "still, once terminated");
        assert!(core.meta.late.take(Epoch(1)).records.is_empty(), "nothing recorded");
    }
}

/// loom: senders racing the close of an idle mailbox. Every message is handled before the
/// close or refused and given back; none is left queued in the closed mailbox.
#[cfg(all(test, loom))]
mod loom_tests {
    use amber_snapshot::Epoch;
    use loom::thread;

    use super::super::{MailboxCore, Next, PushError, Refusal, test_meta};
    use super::*;
    use crate::ExitReason;
    use crate::loom::sync::Arc;

    /// Two senders (1 and 2, through `push`) race the consumer, which handles what comes and
    /// closes the mailbox once it is idle (redirecting if `redirect`). A refusal must be
    /// `refused`'s variant and give the message back. Returns how many were handled and how
    /// many refused, after checking that nothing was left in the closed mailbox.
    fn race(
        core: &Arc<MailboxCore<u32>>,
        inbox: &mut Inbox<u32>,
        redirect: bool,
        push: fn(&MailboxCore<u32>, u32) -> Result<(), PushError<u32>>,
        refused: fn(PushError<u32>) -> Option<u32>,
    ) -> (usize, usize) {
        let senders: Vec<_> = (1..=2)
            .map(|i| {
                let core = core.clone();
                thread::spawn(move || match push(&core, i) {
                    Ok(()) => 0,
                    Err(error) => {
                        assert_eq!(refused(error), Some(i), "the message given back");
                        1
                    }
                })
            })
            .collect();
        let mut handled = 0;
        loop {
            match inbox.try_next() {
                Next::Data(_) => handled += 1,
                Next::Empty if inbox.close_if_idle(redirect) => break,
                Next::Empty => thread::yield_now(),
                other => panic!("unexpected {other:?}"),
            }
        }
        let refused: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
        let (dead, _) = inbox.terminate(ExitReason::Stopped);
        assert_eq!(dead, 0, "nothing was left in the closed mailbox");
        (handled, refused)
    }

    #[test]
    fn a_send_racing_the_close_of_an_idle_mailbox_is_handled_or_given_back() {
        loom::model(|| {
            let core = Arc::new(MailboxCore::<u32>::new(test_meta(), 8, Epoch::ZERO));
            let mut inbox = Inbox::new(core.clone());
            let closed = |e| match e {
                PushError::Closed(back) => Some(back),
                _ => None,
            };
            let (handled, refused) = race(&core, &mut inbox, false, |c, i| c.try_push(i), closed);
            assert_eq!(handled + refused, 2, "every message handled or given back, once");
        });
    }

    /// The same race with a redirecting close (a passivation whose messages from other
    /// nodes go elsewhere), after the actor cut for snapshot 1 and with senders that had
    /// not (tagged 0): every message is queued before the close (then recorded in flight
    /// for the snapshot, and handled) or refused as passivated (given back for a redirect,
    /// and not recorded: whoever takes it records it); never both, never neither, never
    /// left in the closed mailbox — also for a send after the actor terminated.
    #[test]
    fn a_send_racing_a_redirecting_close_is_handled_and_recorded_or_redirected_once() {
        loom::model(|| {
            let core = Arc::new(MailboxCore::<u32>::new(test_meta(), 8, Epoch::ZERO));
            let mut inbox = Inbox::new(core.clone());
            let cut = inbox.cut(super::super::CutFor::Marker(Epoch(1)), amber_snapshot::MAX_DEPTH);
            assert!(cut.taken().is_some(), "cut for snapshot 1");
            let passivated = |e| match e {
                PushError::Passivated(back) => Some(back),
                _ => None,
            };
            let push = |c: &MailboxCore<u32>, i| c.push_remote(i, Refusal::Silent);
            let (handled, redirected) = race(&core, &mut inbox, true, push, passivated);
            let late =
                matches!(core.push_remote(3, Refusal::Silent), Err(PushError::Passivated(3)));
            assert!(late, "a send after the end is redirected too");
            let recorded = core.meta.late.take(Epoch(1)).records.len();
            assert_eq!(recorded, handled, "exactly the queued ones are recorded");
            assert_eq!(handled + redirected, 2, "every message handled or redirected, once");
        });
    }
}
