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
/// assert_eq!(actor.on_dequeue(Epoch(1)), Dequeue::CutThenProcess(Cut { from: Epoch(0), to: Epoch(1), depth: 0 }));
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
    depth: u8,
    deferred: Option<Epoch>,
}

/// The deepest ask depth tracked; deeper chains (or ask cycles) share this level.
pub const MAX_DEPTH: u8 = 7;

/// A cut the actor must take now, before it processes anything else.
///
/// `depth` is the actor's ask depth when it cut (see [`ActorCut::depth`]): the node counts
/// actors per depth, and needs it to move this one from "behind" to "current".
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
    /// The actor's ask depth.
    pub depth: u8,
}

impl Cut {
    /// Whether a message tagged `tag`, waiting in the actor's backlog at this cut, is in
    /// flight across it (sent before its sender's cut for this snapshot), so that the
    /// snapshot records it. The same rule decides, after the cut, for every message still
    /// enqueued ([`ActorCut::recording`]).
    #[inline]
    pub const fn records(&self, tag: Epoch) -> bool {
        crosses(self.to, tag)
    }
}

/// A message tagged `tag` crosses the cut for snapshot `cut`: tagged before it.
#[inline]
const fn crosses(cut: Epoch, tag: Epoch) -> bool {
    tag.0 < cut.0
}

/// What to do with a data message just taken off the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a dequeued message may require a cut before it is processed"]
pub enum Dequeue {
    /// Process it; no cut is due.
    Process,
    /// Take this cut first (the message is not part of the backlog), then process it.
    CutThenProcess(Cut),
    /// Keep it aside, unprocessed, until the actor has cut: the actor defers its cut for a
    /// snapshot (see [`ActorCut::defer`]) and the message was sent after its sender's cut
    /// (or arrived from outside after the deferral began). Set-aside messages go back to
    /// the front of the queue, in order, when the actor cuts, *before* the backlog is
    /// scanned: one tagged with an aborted snapshot's epoch is in flight across a cut for a
    /// later one. Per-sender order holds: a sender's tags never decrease, so every later
    /// message from the same sender is set aside too.
    Hold,
}

/// What to do with `Marker(e)` taken off the control lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a marker may require a cut"]
pub enum Marker {
    /// Stale or duplicate: the actor is not behind it.
    Ignore,
    /// Cut now.
    Cut(Cut),
    /// The actor answers asks of actors that have not cut yet: it defers its cut (see
    /// [`ActorCut::defer`]) until the node releases its depth.
    Defer(Epoch),
}

impl ActorCut {
    /// An actor born in `epoch` that has not cut yet.
    ///
    /// A child takes its parent's epoch; an actor spawned from outside takes
    /// [`NodeSnapshot::spawn_epoch`](crate::NodeSnapshot::spawn_epoch); a restored actor
    /// takes the epoch of the snapshot it was restored from.
    pub const fn new(epoch: Epoch) -> ActorCut {
        ActorCut { epoch, last_cut: None, depth: 0, deferred: None }
    }

    /// An actor carrying on from another node (live migration) exactly where it was: its
    /// epoch and its latest cut, so that messages crossing that cut keep being recorded.
    /// Its ask depth starts again at 0 there (it is learnt again from the asks it serves).
    pub const fn resume(epoch: Epoch, last_cut: Option<Epoch>) -> ActorCut {
        ActorCut { epoch, last_cut, depth: 0, deferred: None }
    }

    /// The actor's epoch: the tag of every message it sends, and of messages tagged on
    /// arrival at its mailbox.
    #[inline]
    pub const fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The snapshot epoch of the actor's latest cut, if it ever cut.
    #[inline]
    pub const fn last_cut(&self) -> Option<Epoch> {
        self.last_cut
    }

    /// The actor's *ask depth*: 0 for an actor no actor ever asked; else one more than the
    /// deepest asker it served (capped at [`MAX_DEPTH`]). In an ask graph without cycles,
    /// an actor is only ever asked by shallower actors.
    #[inline]
    pub const fn depth(&self) -> u8 {
        self.depth
    }

    /// The snapshot whose cut the actor defers, if any.
    #[inline]
    pub const fn deferred(&self) -> Option<Epoch> {
        self.deferred
    }

    /// The tag of a message that is tagged on arrival (from outside the system, a timer):
    /// the actor's epoch, or the snapshot whose cut it defers (such input arrives after the
    /// snapshot began, and must not keep a deferring actor from cutting).
    #[inline]
    pub const fn arrival_tag(&self) -> Epoch {
        match self.deferred {
            Some(e) => e,
            None => self.epoch,
        }
    }

    /// The actor is about to serve an ask from an actor of depth `asker`: it becomes at
    /// least one deeper. Returns `(from, to)` if its depth changed, for
    /// [`NodeSnapshot::actor_deepened`](crate::NodeSnapshot::actor_deepened).
    pub fn on_ask(&mut self, asker: u8) -> Option<(u8, u8)> {
        let to = asker.saturating_add(1).min(MAX_DEPTH);
        (to > self.depth).then(|| (std::mem::replace(&mut self.depth, to), to))
    }

    /// A control-lane `Marker(marker)` was dequeued: cut now if the actor is behind it.
    ///
    /// Stale or duplicate markers (`marker <= epoch`) are ignored and return `None`. This
    /// cuts unconditionally: use [`on_marker_at`](Self::on_marker_at) for the ask-depth
    /// rule, and this once the node released the actor's depth.
    #[must_use = "a returned cut must be taken"]
    pub fn on_marker(&mut self, marker: Epoch) -> Option<Cut> {
        (marker > self.epoch).then(|| self.cut_to(marker))
    }

    /// A control-lane `Marker(marker)` was dequeued while the node has released depths up
    /// to `released` ([`NodeSnapshot::released`](crate::NodeSnapshot::released)).
    ///
    /// **The ask rule.** An actor that has not cut may be inside a handler awaiting an
    /// ask's reply; it cuts only after that handler returns, so the reply must be computed
    /// before the responder's cut, or the asker's cut state would hold information from
    /// after it. An actor deeper than `released` may still be asked by actors that have
    /// not cut (shallower ones): it defers its cut ([`Marker::Defer`]) and meanwhile
    /// processes only messages sent before their senders' cuts (the others are held, see
    /// [`Dequeue::Hold`]), so the asks of those actors are answered before its cut. The node
    /// releases a depth once no actor shallower than it is behind the snapshot.
    pub fn on_marker_at(&mut self, marker: Epoch, released: u8) -> Marker {
        if marker <= self.epoch {
            Marker::Ignore
        } else if self.depth > released {
            self.defer(marker);
            Marker::Defer(marker)
        } else {
            Marker::Cut(self.cut_to(marker))
        }
    }

    /// Defers the cut for `marker` (see [`on_marker_at`](Self::on_marker_at)); the cut is
    /// taken later with [`on_marker`](Self::on_marker), once the node released the depth.
    pub fn defer(&mut self, marker: Epoch) {
        if marker > self.epoch {
            self.deferred = self.deferred.max(Some(marker));
        }
    }

    /// A data message tagged `tag` was dequeued: if its sender had already cut for a later
    /// snapshot than this actor, this actor must cut first (else the message would be an
    /// orphan: received inside the cut, sent outside it) — or, while it defers its cut,
    /// hold the message until it has cut.
    ///
    /// While the cut for `d` is deferred, a message tagged `d` or later is held; one tagged
    /// between the actor's epoch and `d` was sent in a snapshot that was aborted (a node
    /// runs one snapshot at a time, and a completed one leaves no actor behind it): it was
    /// sent before its sender's cut for `d`, so it is processed before this actor's.
    pub fn on_dequeue(&mut self, tag: Epoch) -> Dequeue {
        match self.deferred {
            _ if tag <= self.epoch => Dequeue::Process,
            Some(deferred) if Self::held(deferred, tag) => Dequeue::Hold,
            Some(_) => Dequeue::Process,
            None => Dequeue::CutThenProcess(self.cut_to(tag)),
        }
    }

    /// Whether a message tagged `tag` waits, unprocessed, while its receiver defers its cut
    /// for `deferred` ([`Dequeue::Hold`]): it was sent after its sender's cut for that
    /// snapshot (or is outside input that arrived during the deferral). A consumer that
    /// filters messages without the actor's lock asks this.
    #[inline]
    pub const fn held(deferred: Epoch, tag: Epoch) -> bool {
        tag.0 >= deferred.0
    }

    /// A data message tagged `tag` was dequeued while the node releases depths up to
    /// `released`: as [`on_dequeue`](Self::on_dequeue), except that a message tagged ahead
    /// of an actor deeper than `released` starts a deferred cut (as a marker would, see
    /// [`on_marker_at`](Self::on_marker_at)) and is held, instead of cutting at once.
    pub fn on_dequeue_at(&mut self, tag: Epoch, released: u8) -> Dequeue {
        if tag > self.epoch && self.deferred.is_none() && self.depth > released {
            self.defer(tag);
            return Dequeue::Hold;
        }
        self.on_dequeue(tag)
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
    #[inline]
    pub fn recording(&self, tag: Epoch) -> Option<Epoch> {
        self.last_cut.filter(|&cut| crosses(cut, tag))
    }

    fn cut_to(&mut self, to: Epoch) -> Cut {
        debug_assert!(to > self.epoch);
        let to = self.deferred.take().map_or(to, |d| d.max(to));
        let cut = Cut { from: self.epoch, to, depth: self.depth };
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
        assert_eq!(a.on_marker(Epoch(3)), Some(Cut { from: Epoch(2), to: Epoch(3), depth: 0 }));
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
            Dequeue::CutThenProcess(Cut { from: Epoch(0), to: Epoch(1), depth: 0 })
        );
        assert_eq!(a.on_dequeue(Epoch(1)), Dequeue::Process);
        assert_eq!(a.on_dequeue(Epoch(0)), Dequeue::Process);
    }

    #[test]
    fn an_actor_left_behind_by_an_aborted_snapshot_jumps() {
        let mut a = ActorCut::new(Epoch(1));
        assert_eq!(a.on_marker(Epoch(3)), Some(Cut { from: Epoch(1), to: Epoch(3), depth: 0 }));
        assert_eq!(a.recording(Epoch(1)), Some(Epoch(3)));
        assert_eq!(a.recording(Epoch(2)), Some(Epoch(3)));
        assert_eq!(a.recording(Epoch(3)), None);
    }

    #[test]
    fn a_responder_deeper_than_the_release_defers_and_holds_later_tags() {
        let mut b = ActorCut::new(Epoch(0));
        assert_eq!(b.on_ask(0), Some((0, 1)));
        assert_eq!(b.on_ask(0), None);
        assert_eq!(b.on_marker_at(Epoch(1), 0), Marker::Defer(Epoch(1)));
        assert_eq!(b.deferred(), Some(Epoch(1)));
        // Outside input arriving now is after the snapshot began.
        assert_eq!(b.arrival_tag(), Epoch(1));
        // Asks of actors that have not cut are served before the cut; later ones wait.
        assert_eq!(b.on_dequeue(Epoch(0)), Dequeue::Process);
        assert_eq!(b.on_dequeue(Epoch(1)), Dequeue::Hold);
        // Released: the cut is taken, and held messages are processed after it.
        assert_eq!(b.on_marker(Epoch(1)), Some(Cut { from: Epoch(0), to: Epoch(1), depth: 1 }));
        assert_eq!(b.deferred(), None);
        assert_eq!(b.on_dequeue(Epoch(1)), Dequeue::Process);
        assert_eq!(b.arrival_tag(), Epoch(1));
    }

    #[test]
    fn a_message_tagged_ahead_starts_a_deferred_cut_of_a_deep_actor() {
        let mut b = ActorCut::new(Epoch(0));
        let _ = b.on_ask(0);
        assert_eq!(b.on_dequeue_at(Epoch(1), 0), Dequeue::Hold);
        assert_eq!(b.deferred(), Some(Epoch(1)));
        assert_eq!(b.on_dequeue_at(Epoch(0), 0), Dequeue::Process);
        assert_eq!(b.on_marker_at(Epoch(1), 0), Marker::Defer(Epoch(1)));
        assert_eq!(b.on_marker(Epoch(1)), Some(Cut { from: Epoch(0), to: Epoch(1), depth: 1 }));
        let mut c = ActorCut::new(Epoch(0));
        let _ = c.on_ask(0);
        assert_eq!(
            c.on_dequeue_at(Epoch(1), 1),
            Dequeue::CutThenProcess(Cut { from: Epoch(0), to: Epoch(1), depth: 1 })
        );
    }

    #[test]
    fn a_released_depth_cuts_at_once_and_depth_is_capped() {
        let mut b = ActorCut::new(Epoch(0));
        assert_eq!(b.on_ask(1), Some((0, 2)));
        assert_eq!(
            b.on_marker_at(Epoch(1), 2),
            Marker::Cut(Cut { from: Epoch(0), to: Epoch(1), depth: 2 })
        );
        assert_eq!(b.on_marker_at(Epoch(1), 0), Marker::Ignore);
        assert_eq!(b.on_ask(MAX_DEPTH), Some((2, MAX_DEPTH)));
        assert_eq!(b.on_ask(u8::MAX), None);
    }

    #[test]
    fn a_deferred_cut_for_an_aborted_snapshot_jumps_to_the_next() {
        let mut b = ActorCut::new(Epoch(0));
        let _ = b.on_ask(0);
        assert_eq!(b.on_marker_at(Epoch(1), 0), Marker::Defer(Epoch(1)));
        b.defer(Epoch(2));
        assert_eq!(b.on_dequeue(Epoch(1)), Dequeue::Process, "an aborted snapshot's tag");
        assert_eq!(b.on_dequeue(Epoch(2)), Dequeue::Hold);
        assert_eq!(b.on_marker(Epoch(1)), Some(Cut { from: Epoch(0), to: Epoch(2), depth: 1 }));
        assert_eq!(b.on_marker(Epoch(2)), None);
    }

    #[test]
    fn an_actor_that_never_cut_records_nothing() {
        let a = ActorCut::new(Epoch(4));
        assert_eq!(a.recording(Epoch(0)), None);
        assert_eq!(a.recording(Epoch(3)), None);
    }
}
