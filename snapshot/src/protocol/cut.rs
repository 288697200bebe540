//! The per-actor half of the protocol: when an actor takes its cut and which messages it
//! records as in flight.

use crate::Epoch;

/// One actor's place in the snapshot protocol: its epoch and the epoch of its latest cut.
///
/// The runtime keeps one `ActorCut` per actor, **under the actor's mailbox lock**: the cut
/// (epoch switch plus backlog scan) and every enqueue's [`recording`](ActorCut::recording)
/// check must be serialized by that lock, so that each message is either in the backlog at
/// the cut or enqueued after it, never both and never neither.
///
/// * Sends from a handler are tagged with [`epoch`](ActorCut::epoch); so are messages that
///   are tagged on arrival (from outside the system, timers), with the receiver's epoch at
///   enqueue time.
/// * Between two messages, the runtime feeds the next control-lane marker to
///   [`on_marker`](ActorCut::on_marker), or the next data message's tag to
///   [`on_dequeue`](ActorCut::on_dequeue). Either may answer with a [`Cut`]: capture the
///   state, record the backlog, tell the node ([`NodeSnapshot::actor_cut`]), and only then
///   process the message. Never call them while a handler runs (an actor awaiting an `ask`
///   reply is inside its handler).
/// * Every message enqueued (or refused as a dead letter by a stopped actor) is checked with
///   [`recording`](ActorCut::recording); so is every queued message at the cut.
///
/// [`NodeSnapshot::actor_cut`]: crate::NodeSnapshot::actor_cut
///
/// ```
/// use amber_snapshot::{ActorCut, Cut, Dequeue, Epoch};
///
/// let mut actor = ActorCut::new(Epoch(0));
/// // A message from an actor that has already cut for snapshot 1: cut first.
/// assert_eq!(actor.on_dequeue(Epoch(1)), Dequeue::CutThenProcess(Cut { from: Epoch(0), to: Epoch(1) }));
/// // The marker that follows is stale now.
/// assert_eq!(actor.on_marker(Epoch(1)), None);
/// // A message sent before its sender's cut, enqueued after ours, is in flight.
/// assert_eq!(actor.recording(Epoch(0)), Some(Epoch(1)));
/// assert_eq!(actor.recording(Epoch(1)), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorCut {
    epoch: Epoch,
    last_cut: Option<Epoch>,
}

/// A cut the actor must take now, before it processes anything else.
///
/// In order, under the mailbox lock: capture the actor's state as the snapshot state for
/// epoch `to`; record, in queue order, every queued data message whose tag is below `to`
/// (ask [`ActorCut::recording`], which now answers for the new epoch); then, outside the lock,
/// report it with [`NodeSnapshot::actor_cut`](crate::NodeSnapshot::actor_cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a cut must be taken (state captured, backlog recorded) before processing anything"]
pub struct Cut {
    /// The actor's epoch before the cut.
    pub from: Epoch,
    /// The actor's epoch after the cut: the snapshot this cut belongs to.
    pub to: Epoch,
}

/// What to do with a data message just taken off the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a dequeued message may require a cut before it is processed"]
pub enum Dequeue {
    /// Process it; no cut is due.
    Process,
    /// Take this cut first (the message is not part of the backlog), then process it.
    CutThenProcess(Cut),
}

impl ActorCut {
    /// An actor born in `epoch` that has not cut yet.
    ///
    /// A child takes its parent's epoch; an actor spawned from outside takes
    /// [`NodeSnapshot::spawn_epoch`](crate::NodeSnapshot::spawn_epoch); a restored actor
    /// takes the epoch of the snapshot it was restored from.
    pub const fn new(epoch: Epoch) -> ActorCut {
        ActorCut { epoch, last_cut: None }
    }

    /// An actor carrying on from another node (live migration) exactly where it was: its
    /// epoch and its latest cut, so that messages crossing that cut keep being recorded.
    pub const fn resume(epoch: Epoch, last_cut: Option<Epoch>) -> ActorCut {
        ActorCut { epoch, last_cut }
    }

    /// The actor's epoch: the tag of every message it sends, and of messages tagged on
    /// arrival at its mailbox.
    pub const fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The snapshot epoch of the actor's latest cut, if it ever cut.
    pub const fn last_cut(&self) -> Option<Epoch> {
        self.last_cut
    }

    /// A control-lane `Marker(marker)` was dequeued: cut now if the actor is behind it.
    ///
    /// Stale or duplicate markers (`marker <= epoch`) are ignored and return `None`.
    #[must_use = "a returned cut must be taken"]
    pub fn on_marker(&mut self, marker: Epoch) -> Option<Cut> {
        (marker > self.epoch).then(|| self.cut_to(marker))
    }

    /// A data message tagged `tag` was dequeued: if its sender had already cut for a later
    /// snapshot than this actor, this actor must cut first (else the message would be an
    /// orphan: received inside the cut, sent outside it).
    pub fn on_dequeue(&mut self, tag: Epoch) -> Dequeue {
        if tag > self.epoch { Dequeue::CutThenProcess(self.cut_to(tag)) } else { Dequeue::Process }
    }

    /// Whether a message tagged `tag` is in flight across this actor's latest cut, and for
    /// which snapshot to record it.
    ///
    /// Ask this for every message in the backlog at the cut and for every message enqueued
    /// afterwards, including dead letters refused because the actor stopped after its cut.
    /// `Some(e)` means: append a copy to snapshot `e`'s recorded messages for this actor (in
    /// arrival order), then handle the message as usual. Recordings for a snapshot that
    /// later aborts are discarded by the caller.
    ///
    /// An actor that never cut (born after a snapshot's cut, e.g. from outside while it
    /// runs) records nothing: it is not part of that snapshot.
    #[must_use]
    pub fn recording(&self, tag: Epoch) -> Option<Epoch> {
        self.last_cut.filter(|&cut| tag < cut)
    }

    fn cut_to(&mut self, to: Epoch) -> Cut {
        debug_assert!(to > self.epoch);
        let cut = Cut { from: self.epoch, to };
        self.epoch = to;
        self.last_cut = Some(to);
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_cuts_once() {
        let mut a = ActorCut::new(Epoch(2));
        assert_eq!(a.on_marker(Epoch(2)), None);
        assert_eq!(a.on_marker(Epoch(3)), Some(Cut { from: Epoch(2), to: Epoch(3) }));
        assert_eq!(a.on_marker(Epoch(3)), None);
        assert_eq!(a.epoch(), Epoch(3));
        assert_eq!(a.last_cut(), Some(Epoch(3)));
    }

    #[test]
    fn dequeue_of_a_later_tag_cuts_first() {
        let mut a = ActorCut::new(Epoch(0));
        assert_eq!(a.on_dequeue(Epoch(0)), Dequeue::Process);
        assert_eq!(
            a.on_dequeue(Epoch(1)),
            Dequeue::CutThenProcess(Cut { from: Epoch(0), to: Epoch(1) })
        );
        assert_eq!(a.on_dequeue(Epoch(1)), Dequeue::Process);
        assert_eq!(a.on_dequeue(Epoch(0)), Dequeue::Process);
    }

    #[test]
    fn an_actor_left_behind_by_an_aborted_snapshot_jumps() {
        let mut a = ActorCut::new(Epoch(1));
        assert_eq!(a.on_marker(Epoch(3)), Some(Cut { from: Epoch(1), to: Epoch(3) }));
        assert_eq!(a.recording(Epoch(1)), Some(Epoch(3)));
        assert_eq!(a.recording(Epoch(2)), Some(Epoch(3)));
        assert_eq!(a.recording(Epoch(3)), None);
    }

    #[test]
    fn an_actor_that_never_cut_records_nothing() {
        let a = ActorCut::new(Epoch(4));
        assert_eq!(a.recording(Epoch(0)), None);
        assert_eq!(a.recording(Epoch(3)), None);
    }
}
