//! The envelope every data message travels in.

use amber_snapshot::{Bytes, Epoch, InFlightRecord};
use tokio::sync::oneshot;

use crate::loom::lock;
use crate::loom::sync::{Arc, Mutex};
use crate::mailbox::core::Stamp;
use crate::timer::TimerId;
use crate::{Actor, ActorId};

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Sent by this actor from inside one of its handlers.
    Actor(ActorId),
    /// Sent by code outside any handler: `main`, a test, a detached task.
    Outside,
    /// Sent by one of the receiving actor's own timers.
    Timer(TimerId),
}

/// A data message with its sender, its epoch tag and, for an ask, where the reply goes.
pub(crate) struct Envelope<A: Actor> {
    pub(crate) origin: Origin,
    /// The sender's epoch at send time; for outside and timer messages, the receiver's
    /// epoch on arrival.
    pub(crate) epoch: Epoch,
    pub(crate) msg: A::Msg,
    pub(crate) reply: Option<ReplyTo<A>>,
    /// For an ask from an actor of this node: the asker's ask depth (0 otherwise).
    pub(crate) depth: u8,
}

/// Where an ask's reply goes; the reply travels with the responder's epoch, so an asker can
/// tell whether it is absorbing information from after a cut it has not taken yet.
pub(crate) type ReplyTo<A> = oneshot::Sender<(<A as Actor>::Reply, Epoch)>;

impl<A: Actor> Envelope<A> {
    /// An envelope stamped for a send from the current thread's running actor, if any.
    #[inline]
    pub(crate) fn new(msg: A::Msg, reply: Option<ReplyTo<A>>) -> Self {
        Self::from(crate::current::current(), msg, reply)
    }

    /// An envelope stamped for a send from `sender` (`None`: from outside the system).
    #[inline]
    pub(crate) fn from(
        sender: Option<crate::current::Running>,
        msg: A::Msg,
        reply: Option<ReplyTo<A>>,
    ) -> Self {
        let (origin, epoch, depth) = match sender {
            Some(running) => (Origin::Actor(running.id), running.epoch, running.depth),
            None => (Origin::Outside, Epoch::ZERO, 0),
        };
        Envelope { origin, epoch, msg, reply, depth }
    }
}

impl<A: Actor> Stamp for Envelope<A> {
    #[inline]
    fn on_arrival(&mut self, receiver_epoch: Epoch) {
        if !matches!(self.origin, Origin::Actor(_)) {
            self.epoch = receiver_epoch;
        }
    }

    #[inline]
    fn tag(&self) -> Epoch {
        self.epoch
    }

    #[inline]
    fn asked_by_actor(&self) -> bool {
        self.reply.is_some() && matches!(self.origin, Origin::Actor(_))
    }

    fn record(&self, to: ActorId) -> Result<InFlightRecord, crate::CodecError> {
        Ok(self.record_with(to, crate::encode_msg::<A>(&self.msg)?.into()))
    }
}

impl<A: Actor> Envelope<A> {
    /// The envelope as an in-flight record addressed to `to`, its message encoded as
    /// `payload`.
    pub(crate) fn record_with(&self, to: ActorId, payload: Bytes) -> InFlightRecord {
        let (from, epoch, ask) = self.record_fields();
        InFlightRecord { to, from, epoch, ask, payload }
    }

    /// What the message's in-flight record says of it but its receiver and payload: its
    /// sender (none from outside or a timer), epoch tag and whether it is an ask.
    pub(crate) fn record_fields(&self) -> (Option<ActorId>, Epoch, bool) {
        let from = match self.origin {
            Origin::Actor(id) => Some(id),
            Origin::Outside | Origin::Timer(_) => None,
        };
        (from, self.epoch, self.reply.is_some())
    }

    /// Appends the message, encoded, to `out` (left as it was on error).
    #[inline]
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), crate::CodecError> {
        let start = out.len();
        A::__encode_msg(&self.msg, out).inspect_err(|_| out.truncate(start))
    }
}

impl<A: Actor> Envelope<A> {
    /// The envelope encoded for an actor on another node; an ask's reply channel moves into
    /// the outbound message.
    pub(crate) fn encode_outbound(
        &mut self,
        to: ActorId,
        type_name: &'static str,
    ) -> Result<crate::remote::OutboundMessage, crate::CodecError> {
        // Into the buffer the route gave back last, if any (see `remote::recycle_payload`).
        let mut payload = crate::remote::payload_buffer();
        A::__encode_msg(&self.msg, &mut payload)?;
        Ok(self.outbound_with(to, type_name, payload))
    }

    /// The envelope as a message for another node, its message already encoded as
    /// `payload`; an ask's reply channel moves into the outbound message, whose handler
    /// decodes the reply and answers the asker.
    pub(crate) fn outbound_with(
        &mut self,
        to: ActorId,
        type_name: &'static str,
        payload: Vec<u8>,
    ) -> crate::remote::OutboundMessage {
        let reply = self.reply.take().map(|tx| {
            // Shared with the abandonment check: the route may ask, while the reply is
            // outstanding, whether the asker still waits (its receiver is dropped on timeout).
            let tx = Arc::new(Mutex::new(Some(tx)));
            let waiting = Arc::clone(&tx);
            crate::remote::ReplyHandler::new(move |system, result, epoch| {
                let Some(tx) = lock(&tx).take() else {
                    return;
                };
                // A reply that does not decode, or an error from the other side, drops `tx`:
                // the asker gets `AskError::NoReply` (or `NodeDown`, if its node is down).
                match result.map(|bytes| system.decode::<A::Reply>(&bytes)) {
                    Ok(Ok(reply)) => {
                        let _ = tx.send((reply, epoch));
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "remote reply does not decode"),
                    Err(e) => tracing::debug!(error = %e, "remote ask failed"),
                }
            })
            .with_abandoned(move || lock(&waiting).as_ref().is_none_or(|tx| tx.is_closed()))
        });
        let from = match self.origin {
            Origin::Actor(id) => Some(id),
            Origin::Outside | Origin::Timer(_) => None,
        };
        // The asker's depth travels with an ask (the responder's node orders cuts by it).
        let depth = if reply.is_some() { self.depth } else { 0 };
        crate::remote::OutboundMessage {
            to,
            from,
            tag: self.epoch,
            depth,
            type_name,
            payload,
            reply,
        }
    }
}

impl<A: Actor> std::fmt::Debug for Envelope<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("origin", &self.origin)
            .field("epoch", &self.epoch)
            .field("ask", &self.reply.is_some())
            .finish_non_exhaustive()
    }
}
