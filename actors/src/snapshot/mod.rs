//! Global snapshots of a running system, checkpoints, and restore.
//!
//! # What a snapshot is
//!
//! [`ActorSystem::snapshot`](crate::ActorSystem::snapshot) returns a *consistent cut* of the
//! system while it keeps running: for every actor, its state between two messages (its
//! *cut*), plus every message that was in flight across the cuts — sent by an actor before
//! that actor's cut and not yet handled by its receiver at the receiver's cut. No message is
//! ever reflected in a receiver's cut state without its send being reflected in the sender's
//! ("no orphans"), and every in-flight message is recorded exactly once, per receiver in
//! arrival order. In a bank where money moves only as deposit messages, the balances of a
//! snapshot plus its recorded deposits always add up to the true total.
//!
//! The algorithm is Lai–Yang colouring with Mattern's counting (see the `amber-snapshot`
//! crate): every message carries its sender's epoch; a marker on the control lane overtakes
//! the mailbox backlog, so the cut does not wait for the backlog to be handled — the queued
//! messages simply become recorded channel state. Messages that arrive after a receiver's
//! cut but were sent before their sender's are recorded as they arrive.
//!
//! # Inputs from outside, timers, asks
//!
//! * A message sent from outside the system (code that is not inside a handler: `main`, a
//!   test, a detached task) is *input*, not channel state. It takes its receiver's epoch on
//!   arrival, so it is reflected in the receiver's cut state (arrived before the cut), or
//!   recorded (queued at the cut), or belongs after the snapshot — never twice. A `tell` that
//!   returned before `snapshot()` was called is always in the snapshot.
//! * Timer messages behave the same way. A pending timer is part of its actor's cut state
//!   with its remaining delay and is re-armed on restore; a one-shot timer whose message was
//!   already queued at the cut is recorded as that message instead.
//! * Ask replies are not channel messages. An actor awaiting an ask reply is inside a
//!   handler and cuts only after the handler finishes. The snapshot is consistent for
//!   deterministic handlers: a request recorded in flight is handled again after a restore,
//!   and its reply then goes nowhere (the asker's state already reflects the first reply).
//!   The same holds for a send's *result*: a sender that observes a failed send (the
//!   receiver stopped after its cut) has learned something from after the cut.
//! * An actor that stops before its cut is not in the snapshot; one spawned by an actor
//!   before that actor's cut is; one spawned after its parent's cut (or from outside while
//!   the snapshot runs) is not.
//!
//! # Restore
//!
//! [`SystemBuilder::restore`](crate::SystemBuilder::restore) rebuilds every actor of a
//! checkpoint from its registered type (same [`ActorId`](crate::ActorId) and name; refs
//! inside states and messages resolve to the rebuilt actors), re-enqueues each actor's
//! recorded in-flight messages in recorded order before any new message, re-arms its timers,
//! restores parent/child and watch links, then starts them all. Nothing starts unless
//! everything decoded. Restart factories are code, not data: a restored child that panics
//! stops (its parent is told).

mod engine;
mod error;
pub(crate) mod restore;
pub(crate) mod types;

pub(crate) use engine::{CutReport, Effects, SnapshotEngine};
pub use error::{RestoreError, SnapshotError};
