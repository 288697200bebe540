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
use crate::remote::{DeliverError, InboundMessage, ReplyError};
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
        let env = inbound_envelope::<A>(system, id, message).map_err(Undelivered::Refused)?;
        // A refused ask is answered with an error (its reply channel drops): the asker
        // learns of it. A refused tell is never reported back to its node (a local sender
        // gets its message back).
        let reported = local || env.reply.is_some();
        let refusal = if reported { Refusal::Reported } else { Refusal::Silent };
        let stopped = Undelivered::Refused(DeliverError::Stopped(id));
        match self.push_remote(env, refusal) {
            Ok(()) => Ok(()),
            Err(PushError::Moved(env, to)) => {
                to.send(&self.meta, env, None, false).map_err(|_: Refused<_>| stopped)
            }
            Err(PushError::Full(_) | PushError::Closed(_)) => Err(stopped),
            // An ask is refused (its asker learns); a tell is given back to be redirected.
            Err(PushError::Passivated(env)) if env.reply.is_some() => Err(stopped),
            Err(PushError::Passivated(env)) => match crate::encode(&env.msg) {
                Ok(payload) => Err(Undelivered::Passivated(InboundMessage {
                    to: id,
                    from: match env.origin {
                        Origin::Actor(from) => Some(from),
                        Origin::Outside | Origin::Timer(_) => None,
                    },
                    tag: env.epoch,
                    depth: env.depth,
                    payload,
                    reply: None,
                })),
                Err(e) => Err(Undelivered::Refused(DeliverError::Decode(e))),
            },
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
    /// Refused (the actor stopped, or the message does not decode).
    Refused(DeliverError),
    /// A tell to an actor that passivated with a redirect, given back (re-encoded, with its
    /// sender and tag) for the redirect; neither queued nor recorded.
    Passivated(InboundMessage),
}

/// Decodes a message that arrived from another node for actor `id` into an envelope; for an
/// ask, a task waits for the reply and sends it back through the message's handler.
pub(crate) fn inbound_envelope<A: Actor>(
    system: &ActorSystem,
    id: ActorId,
    message: InboundMessage,
) -> Result<Envelope<A>, DeliverError> {
    {
        let msg: A::Msg = system.decode(&message.payload).map_err(DeliverError::Decode)?;
        let reply = message.reply.map(|handler| {
            let (tx, rx) = tokio::sync::oneshot::channel::<(A::Reply, Epoch)>();
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
            tx
        });
        let origin = message.from.map_or(Origin::Outside, Origin::Actor);
        // An ask carries its asker's depth from its node (the coordinator orders cuts by
        // depth across nodes).
        Ok(Envelope { origin, epoch: message.tag, msg, reply, depth: message.depth })
    }
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
