//! Rebuilding actors from a checkpoint, type-erased per registered actor type.
//!
//! A restore runs in phases so that it never starts a half-loaded system: first every
//! mailbox is created (so refs inside states and messages resolve), then every state,
//! recorded message and timer is decoded, and only when all of that succeeded is anything
//! enqueued or started.

use std::sync::Arc;
use std::time::Duration;

use amber_snapshot::{ActorEntry, ActorId, Epoch, InFlightRecord, StateRecord, TimerEntry};

use super::error::RestoreError;
use crate::any_mailbox::AnyMailbox;
use crate::envelope::{Envelope, Origin};
use crate::supervision::RestartPolicy;
use crate::system::Factory;
use crate::target::Mailbox;
use crate::{ActorState, ActorSystem, MailboxCapacity};

/// Everything the checkpoint says about one actor, with its parent and children resolved.
pub(crate) struct Plan<'a> {
    pub(crate) mailbox: Arc<dyn AnyMailbox>,
    pub(crate) entry: &'a ActorEntry,
    pub(crate) state: &'a StateRecord,
    pub(crate) in_flight: Vec<&'a InFlightRecord>,
    pub(crate) parent: Option<Arc<dyn AnyMailbox>>,
    pub(crate) children: Vec<Arc<dyn AnyMailbox>>,
    /// Actors this one watches, restored with it.
    pub(crate) watching: Vec<Arc<dyn AnyMailbox>>,
    /// Actors this one watches that are restored elsewhere (on other nodes): watched by id.
    pub(crate) watching_elsewhere: Vec<ActorId>,
    pub(crate) epoch: Epoch,
}

/// An actor whose state and messages decoded; starting it cannot fail.
pub(crate) trait Prepared: Send {
    /// Puts its recorded in-flight messages into its mailbox, in recorded order. Called for
    /// every restored actor before any of them starts.
    fn enqueue(&mut self);
    /// Restores its links, arms its timers and starts it.
    fn start(self: Box<Self>);
}

/// Decodes everything one actor needs, or says why it cannot be restored.
pub(crate) type PrepareFn = fn(&ActorSystem, Plan<'_>) -> Result<Box<dyn Prepared>, RestoreError>;

/// The restore entry points of one registered type.
#[derive(Clone, Copy)]
pub(crate) struct RestoreFns {
    /// Creates the actor's mailbox (same id and name), unregistered and not started.
    pub(crate) create: fn(&ActorSystem, &ActorEntry, Epoch) -> Arc<dyn AnyMailbox>,
    /// Decodes everything the actor needs.
    pub(crate) prepare: PrepareFn,
}

/// The restore entry points of `A`.
pub(crate) fn restore_fns<A: ActorState>() -> RestoreFns {
    RestoreFns { create: create::<A>, prepare: prepare::<A> }
}

fn create<A: ActorState>(
    system: &ActorSystem,
    entry: &ActorEntry,
    epoch: Epoch,
) -> Arc<dyn AnyMailbox> {
    let capacity = MailboxCapacity::limit_of(entry.capacity);
    system.new_mailbox::<A>(entry.id, entry.name.clone(), capacity, epoch)
}

/// The restart factory of an actor rebuilt from `state` (a checkpoint's or a move's): each
/// restart decodes that state again, as [`ActorState::decode_state`] did when the actor was
/// rebuilt.
///
/// The factory the actor was first spawned with is a closure, which no checkpoint or link can
/// carry; the state the actor was rebuilt from is the one starting point both sides agree on.
/// So a restored (or moved) actor restarts as it was at that cut (or move), not as its
/// original factory would have built it. Should decoding fail at a restart (only a
/// `decode_state` hook that does not decode the same bytes the same way twice can do that),
/// the factory panics, which counts as a failed restart under the actor's policy.
pub(crate) fn factory_from_state<A: ActorState>(
    system: &ActorSystem,
    id: ActorId,
    version: u32,
    state: &[u8],
) -> Factory<A> {
    let system = system.internal();
    let state: Arc<[u8]> = state.into();
    Box::new(move || match A::decode_state(version, &state, &system) {
        Ok(actor) => actor,
        Err(e) => panic!("actor {id}: the state it was rebuilt from no longer decodes: {e}"),
    })
}

/// A restored timer, decoded.
pub(crate) enum RestoredTimer<A: crate::Actor> {
    /// A one-shot timer: its message, due after `delay`.
    Once { delay: Duration, msg: A::Msg },
    /// An interval timer: first due after `first`, then every `period`; its message bytes
    /// are decoded again for each tick.
    Every { first: Duration, period: Duration, bytes: Vec<u8> },
}

/// A decoded actor, ready to start.
pub(crate) struct PreparedActor<A: ActorState> {
    pub(crate) system: ActorSystem,
    pub(crate) mailbox: Arc<Mailbox<A>>,
    pub(crate) actor: A,
    pub(crate) queued: Vec<Envelope<A>>,
    pub(crate) timers: Vec<RestoredTimer<A>>,
    pub(crate) parent: Option<Arc<dyn AnyMailbox>>,
    pub(crate) children: Vec<Arc<dyn AnyMailbox>>,
    pub(crate) watching: Vec<Arc<dyn AnyMailbox>>,
    pub(crate) watching_elsewhere: Vec<ActorId>,
    pub(crate) epoch: Epoch,
    /// The restart policy recorded at its cut.
    pub(crate) restart: RestartPolicy,
    /// Its restart factory, if its policy restarts it ([`factory_from_state`]).
    pub(crate) factory: Option<Factory<A>>,
}

fn prepare<A: ActorState>(
    system: &ActorSystem,
    plan: Plan<'_>,
) -> Result<Box<dyn Prepared>, RestoreError> {
    let id = plan.entry.id;
    let mailbox = plan
        .mailbox
        .into_any()
        .downcast::<Mailbox<A>>()
        .map_err(|_| RestoreError::Invalid(format!("actor {id}: mailbox of the wrong type")))?;
    let actor = A::decode_state(plan.entry.state_version, &plan.state.state, system)
        .map_err(|error| RestoreError::State { actor: id, error })?;
    let decode_msg = |bytes: &[u8]| {
        system.decode::<A::Msg>(bytes).map_err(|error| RestoreError::Message { actor: id, error })
    };
    let mut queued = Vec::with_capacity(plan.in_flight.len());
    for record in &plan.in_flight {
        queued.push(Envelope {
            origin: record.from.map_or(Origin::Outside, Origin::Actor),
            epoch: record.epoch,
            msg: decode_msg(&record.payload)?,
            reply: None,
            depth: 0,
        });
    }
    let timers = decode_timers::<A>(system, &plan.state.timers)
        .map_err(|error| RestoreError::Message { actor: id, error })?;
    let restart = RestartPolicy::from_recorded(plan.entry.restart);
    let factory = (restart != RestartPolicy::Never)
        .then(|| factory_from_state::<A>(system, id, plan.entry.state_version, &plan.state.state));
    Ok(Box::new(PreparedActor {
        system: system.internal(),
        mailbox,
        actor,
        queued,
        timers,
        parent: plan.parent,
        children: plan.children,
        watching: plan.watching,
        watching_elsewhere: plan.watching_elsewhere,
        epoch: plan.epoch,
        restart,
        factory,
    }))
}

/// Decodes captured timers (every message now, not at the first tick).
pub(crate) fn decode_timers<A: crate::Actor>(
    system: &ActorSystem,
    entries: &[TimerEntry],
) -> Result<Vec<RestoredTimer<A>>, crate::CodecError> {
    let mut timers = Vec::with_capacity(entries.len());
    for TimerEntry { remaining_us, period_us, msg, .. } in entries {
        let first = Duration::from_micros(*remaining_us);
        timers.push(match period_us {
            None => RestoredTimer::Once { delay: first, msg: system.decode::<A::Msg>(msg)? },
            Some(p) => {
                system.decode::<A::Msg>(msg)?;
                RestoredTimer::Every {
                    first,
                    period: Duration::from_micros(*p),
                    bytes: msg.clone(),
                }
            }
        });
    }
    Ok(timers)
}

/// Arms decoded timers for the actor `ctx` belongs to.
pub(crate) fn arm_timers<A: crate::Actor>(
    ctx: &mut crate::Context<A>,
    mailbox: &Arc<Mailbox<A>>,
    timers: Vec<RestoredTimer<A>>,
) {
    for timer in timers {
        match timer {
            RestoredTimer::Once { delay, msg } => {
                ctx.timers.send_after(mailbox, delay, msg);
            }
            RestoredTimer::Every { first, period, bytes } => {
                ctx.timers.restore_every(mailbox, ctx.system.clone(), first, period, bytes);
            }
        }
    }
}

impl<A: ActorState> Prepared for PreparedActor<A> {
    fn enqueue(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        self.mailbox.restore_queue(std::mem::take(&mut self.queued));
    }

    fn start(self: Box<Self>) {
        let system = self.system.clone();
        system.start_restored(*self);
    }
}
