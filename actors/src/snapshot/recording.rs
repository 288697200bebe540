//! What a cut records of an actor's backlog: the messages in flight across it, encoded into
//! one [`Backlog`], with what else the cut needs to know of them.

use std::collections::{HashSet, VecDeque};

use amber_snapshot::{ActorId, Backlog, Cut};

use crate::Actor;
use crate::envelope::{Envelope, Origin};
use crate::mailbox::core::Stamp;
use crate::snapshot::CaptureProblem;
use crate::timer::TimerId;
use crate::turn::turn_sync;

/// What a cut records of the backlog it takes ([`Recording::of`]).
pub(crate) struct Recording {
    pub(crate) backlog: Backlog,
    /// The messages that did not encode.
    pub(crate) unrecorded: Vec<CaptureProblem>,
    /// Whether an actor that has not cut awaits the reply to one of them.
    pub(crate) crossed: bool,
    /// The timers with a message in the backlog.
    pub(crate) queued_timers: HashSet<TimerId>,
}

impl Recording {
    /// Records the messages of `batch`, the backlog of actor `id` at `cut`, that are in
    /// flight across it ([`Cut::records`]). With `guarded`, each message's encoder runs under
    /// its own panic guard: one that panics is left out, as one that fails.
    pub(crate) fn of<A: Actor>(
        id: ActorId,
        batch: &VecDeque<Envelope<A>>,
        cut: &Cut,
        guarded: bool,
    ) -> Recording {
        // The messages in flight are encoded one after the other into one buffer: one
        // allocation for their payloads and one for what else their records say, not one
        // record each (the checkpoint is written from it without making records).
        let mut backlog = Backlog::builder(id);
        let mut unrecorded = Vec::new();
        let mut crossed = false;
        let mut queued_timers = HashSet::new();
        for env in batch {
            if let Origin::Timer(timer) = env.origin {
                queued_timers.insert(timer);
            }
            if cut.records(env.epoch) {
                // An actor awaits this ask, and has not cut: it will take in a reply
                // computed after this cut.
                crossed |= env.asked_by_actor();
                if backlog.is_empty() {
                    backlog.reserve(batch.len(), batch.len() * 32);
                }
                let (from, epoch, ask) = env.record_fields();
                let encoded = backlog.push_with(from, epoch, ask, |out| {
                    if !guarded {
                        return env.encode_into(out);
                    }
                    turn_sync(|| env.encode_into(out)).unwrap_or_else(|panic| {
                        Err(crate::CodecError::new(format!("its encoder panicked: {panic}")))
                    })
                });
                if let Err(error) = encoded {
                    unrecorded.push(CaptureProblem::MessageEncode { to: id, error });
                }
            }
        }
        Recording { backlog: backlog.finish(), unrecorded, crossed, queued_timers }
    }
}

#[cfg(test)]
mod tests {
    use amber_snapshot::{Epoch, SystemId};
    use serde::{Deserialize, Serialize, Serializer};

    use super::*;
    use crate::Context;

    /// A message whose encoder panics for `Bomb`.
    #[derive(Debug, Deserialize)]
    enum Parcel {
        Plain(u64),
        Bomb,
    }

    impl Serialize for Parcel {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Parcel::Plain(n) => s.serialize_u64(*n),
                Parcel::Bomb => panic!("a bomb in the post"),
            }
        }
    }

    struct Post;

    impl Actor for Post {
        type Msg = Parcel;
        type Reply = ();
        async fn handle(&mut self, _: Parcel, _: &mut Context<Self>) {}
    }

    /// A backlog with a message whose encoder panics is recorded again message by message:
    /// the others are recorded, in order, and the one that panicked is named once.
    #[test]
    fn a_panicking_encoder_leaves_out_its_message_only() {
        let id = ActorId::new(SystemId(1), 7);
        let batch: VecDeque<Envelope<Post>> =
            [Parcel::Plain(1), Parcel::Bomb, Parcel::Plain(300), Parcel::Bomb, Parcel::Plain(3)]
                .into_iter()
                .map(|msg| Envelope::new(msg, None))
                .collect();
        let cut = |to| Cut { from: Epoch::ZERO, to: Epoch(to), depth: 0 };
        assert!(turn_sync(|| Recording::of(id, &batch, &cut(1), false)).is_err());
        let recording = Recording::of(id, &batch, &cut(1), true);
        let payloads: Vec<_> = recording.backlog.messages().map(|m| m.payload.to_vec()).collect();
        let plain = |n: u64| crate::encode(&Parcel::Plain(n)).unwrap();
        assert_eq!(payloads, [plain(1), plain(300), plain(3)]);
        assert_eq!(recording.unrecorded.len(), 2, "{:?}", recording.unrecorded);
        assert!(recording.unrecorded.iter().all(|p| p.to_string().contains("panicked")));
        // Tagged at or after the cut's epoch: not in flight, nothing encoded or named.
        let after = Recording::of(id, &batch, &cut(0), true);
        assert!(after.backlog.is_empty() && after.unrecorded.is_empty());
    }
}
