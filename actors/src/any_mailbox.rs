//! [`AnyMailbox`]: the type-erased view of an actor's mailbox that the registry,
//! supervisors, watchers and the snapshot engine hold, and the delivery of messages that
//! arrived from other nodes.

use std::any::Any;
use std::sync::Arc;
use std::task::{Context, Poll};

use amber_snapshot::Epoch;

use crate::envelope::{Envelope, Origin};
use crate::mailbox::PushError;
use crate::mailbox::core::{MailboxCore, Refusal};
use crate::mailbox::{Watch, Watcher};
use crate::remote::{DeliverError, InboundMessage, ReplyError, ReplyHandler};
use crate::signal::Signal;
use crate::system::CutBatch;
use crate::target::{Mailbox, Refused};
use crate::{Actor, ActorId, ActorSystem, ExitReason};

/// What the registry, supervisors and watchers need of any mailbox, whatever its actor type
/// (its id is [`Watch::id`]).
pub(crate) trait AnyMailbox: Watch {
    /// The actor's stable type name.
    fn type_name(&self) -> &'static str;
    /// The actor's registered name, if any.
    fn name(&self) -> Option<&str>;
    /// Pushes a control signal; gives it back if the actor has terminated.
    fn signal(&self, signal: Signal) -> Result<(), Signal>;
    /// Registers a watcher (see [`MailboxCore::add_watcher`]).
    fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, ExitReason)>;
    /// Removes a watcher.
    fn remove_watcher(&self, id: ActorId);
    /// Ready once the actor has terminated.
    fn poll_terminated(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// Cuts the actor for snapshot `epoch` on the spot if its task is between two messages
    /// (see [`CutNow`](crate::mailbox::core::CutNow)); `false` if the marker must go on its
    /// control lane instead.
    /// Aborts the actor's task, if it still runs (a shutdown's deadline passed).
    fn abort_task(&self);
    fn cut_now(&self, epoch: Epoch, batch: &mut CutBatch) -> bool;
    /// For typed lookups.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Decodes and enqueues a message that arrived from another node (`local`: an encoded
    /// message from an actor of this node, whose sender learns of a refusal, see
    /// [`Context::tell_encoded`](crate::Context::tell_encoded)); for an ask, the reply goes
    /// back through the message's handler.
    fn deliver(
        &self,
        system: &ActorSystem,
        message: InboundMessage,
        local: bool,
    ) -> Result<(), Undelivered>;
    /// For an actor that moved to another node: ends the forwarding (it stopped there, or
    /// that node is gone for good) and tells the watchers it kept. `false` if it had not
    /// moved.
    fn end_moved(&self, reason: ExitReason) -> bool {
        let _ = reason;
        false
    }
    /// For an actor whose task was aborted (it never ran its stop): terminates the mailbox
    /// with `reason` and returns the watchers to tell and the actor's final cut.
    fn reap(&self, reason: ExitReason) -> (Vec<Watcher>, amber_snapshot::ActorCut);
}

impl<A: Actor> AnyMailbox for Mailbox<A> {
    fn type_name(&self) -> &'static str {
        self.meta.type_name
    }

    fn name(&self) -> Option<&str> {
        self.meta.name.as_deref()
    }

    fn signal(&self, signal: Signal) -> Result<(), Signal> {
        self.push_control(signal)
    }

    fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, ExitReason)> {
        MailboxCore::add_watcher(self, watcher)
    }

    fn remove_watcher(&self, id: ActorId) {
        MailboxCore::remove_watcher(self, id)
    }

    fn poll_terminated(&self, cx: &mut Context<'_>) -> Poll<()> {
        MailboxCore::poll_terminated(self, cx)
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn abort_task(&self) {
        if let Some(task) = self.meta.task.get().and_then(std::sync::Weak::upgrade) {
            task.abort_task();
        }
    }

    fn cut_now(&self, epoch: Epoch, batch: &mut CutBatch) -> bool {
        self.meta
            .task
            .get()
            .and_then(std::sync::Weak::upgrade)
            .is_some_and(|task| task.cut_now(epoch, batch))
    }

    fn deliver(
        &self,
        system: &ActorSystem,
        message: InboundMessage,
        local: bool,
    ) -> Result<(), Undelivered> {
        let id = self.meta.id;
        let (env, wait) = inbound_parts::<A>(system, id, message)
            .map_err(|(error, reply)| Undelivered::Refused(error, reply))?;
        // A refused ask is answered with an error (by whoever gets its route back): the
        // asker learns of it. A refused tell is never reported back to its node (a local
        // sender gets its message back).
        let reported = local || env.reply.is_some();
        let refusal = if reported { Refusal::Reported } else { Refusal::Silent };
        let stopped = DeliverError::Stopped(id);
        match self.push_remote(env, refusal) {
            Ok(()) => {
                if let Some(wait) = wait {
                    wait.start(system);
                }
                Ok(())
            }
            Err(PushError::Moved(env, to)) => {
                if let Some(wait) = wait {
                    wait.start(system);
                }
                to.send(&self.meta, env, None, false)
                    .map_err(|_: Refused<_>| Undelivered::Refused(stopped, None))
            }
            Err(PushError::Full(_) | PushError::Closed(_)) => {
                Err(Undelivered::Refused(stopped, wait.map(ReplyWait::into_handler)))
            }
            // Given back, with an ask's route, to be redirected.
            Err(PushError::Passivated(env)) => {
                let reply = wait.map(ReplyWait::into_handler);
                match crate::encode_msg::<A>(&env.msg) {
                    Ok(payload) => Err(Undelivered::Passivated(InboundMessage {
                        to: id,
                        from: match env.origin {
                            Origin::Actor(from) => Some(from),
                            Origin::Outside | Origin::Timer(_) => None,
                        },
                        tag: env.epoch,
                        depth: env.depth,
                        payload: payload.into(),
                        reply,
                    })),
                    Err(e) => Err(Undelivered::Refused(DeliverError::Decode(e), reply)),
                }
            }
        }
    }

    fn reap(&self, reason: ExitReason) -> (Vec<Watcher>, amber_snapshot::ActorCut) {
        let cut = self.cut_state();
        (self.terminate(reason).watchers, cut)
    }

    fn end_moved(&self, reason: ExitReason) -> bool {
        let Some(watchers) = self.terminate_moved(reason.clone()) else { return false };
        tracing::debug!(actor = %self.meta.id, %reason, "moved actor ended");
        for watcher in watchers {
            watcher.down(crate::Down { actor: self.meta.id, reason: reason.clone() });
        }
        true
    }
}

/// Why [`AnyMailbox::deliver`] did not queue a message.
#[derive(Debug)]
pub(crate) enum Undelivered {
    /// Refused (the actor stopped, or the message does not decode); for an ask, its route,
    /// given back unanswered (the caller answers the asker, or sends the request again).
    Refused(DeliverError, Option<ReplyHandler>),
    /// A message to an actor that passivated with a redirect, given back (re-encoded, with
    /// its sender, tag and, for an ask, route) for the redirect; neither queued nor
    /// recorded.
    Passivated(InboundMessage),
}

/// The route of an ask that arrived from another node (or was sent on encoded), not yet
/// waiting for its reply: [`start`](Self::start)ed once the request is queued, given back
/// ([`into_handler`](Self::into_handler)) if it is not.
pub(crate) struct ReplyWait<A: Actor> {
    handler: ReplyHandler,
    rx: tokio::sync::oneshot::Receiver<(A::Reply, Epoch)>,
    id: ActorId,
}

impl<A: Actor> ReplyWait<A> {
    /// A task waits for the reply and sends it back through the handler (an error if the
    /// request is dropped unanswered).
    pub(crate) fn start(self, system: &ActorSystem) {
        let ReplyWait { handler, rx, id } = self;
        let system = system.internal();
        tokio::spawn(async move {
            match rx.await {
                Ok((reply, epoch)) => {
                    let bytes = crate::encode(&reply).map_err(ReplyError::Encode);
                    handler.complete(&system, bytes, epoch);
                }
                Err(_) => handler.complete(&system, Err(ReplyError::Stopped(id)), Epoch::ZERO),
            }
        });
    }

    /// The route, unanswered (the request was not queued).
    pub(crate) fn into_handler(self) -> ReplyHandler {
        self.handler
    }
}

/// An inbound message decoded: its envelope and, for an ask, its route.
pub(crate) type InboundParts<A> = (Envelope<A>, Option<ReplyWait<A>>);

/// Decodes a message that arrived from another node for actor `id` into an envelope and,
/// for an ask, its route (see [`ReplyWait`]). A message that does not decode gives its
/// route back.
pub(crate) fn inbound_parts<A: Actor>(
    system: &ActorSystem,
    id: ActorId,
    message: InboundMessage,
) -> Result<InboundParts<A>, (DeliverError, Option<ReplyHandler>)> {
    let msg: A::Msg = match system.decode(&message.payload) {
        Ok(msg) => msg,
        Err(e) => return Err((DeliverError::Decode(e), message.reply)),
    };
    let (reply, wait) = match message.reply {
        Some(handler) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<(A::Reply, Epoch)>();
            (Some(tx), Some(ReplyWait { handler, rx, id }))
        }
        None => (None, None),
    };
    let origin = message.from.map_or(Origin::Outside, Origin::Actor);
    // An ask carries its asker's depth from its node (the coordinator orders cuts by depth
    // across nodes).
    Ok((Envelope { origin, epoch: message.tag, msg, reply, depth: message.depth }, wait))
}

/// Decodes a message that arrived from another node for actor `id` into an envelope; for an
/// ask, a task waits for the reply and sends it back through the message's handler.
pub(crate) fn inbound_envelope<A: Actor>(
    system: &ActorSystem,
    id: ActorId,
    message: InboundMessage,
) -> Result<Envelope<A>, DeliverError> {
    let (env, wait) = inbound_parts::<A>(system, id, message).map_err(|(error, _)| error)?;
    if let Some(wait) = wait {
        wait.start(system);
    }
    Ok(env)
}

impl std::fmt::Debug for dyn AnyMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailbox({} {})", self.type_name(), self.id())
    }
}

/// Waits until the actor behind `mailbox` has terminated.
pub(crate) async fn terminated(mailbox: &dyn AnyMailbox) {
    std::future::poll_fn(|cx| mailbox.poll_terminated(cx)).await
}
