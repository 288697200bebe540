//! The [`Actor`] trait: state plus a handler, with lifecycle hooks.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ChildEvent, Context, Down, ExitReason};

/// A value that can be sent to an actor or returned from one.
///
/// Messages may cross a TCP link and are recorded in snapshots when they are in flight, so
/// they must be serializable. This trait is implemented for every type that qualifies.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// An error returned by [`Actor::on_start`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An actor: state plus a handler that runs one message at a time with `&mut self`.
///
/// Every message is answered with a [`Reply`](Actor::Reply): a `tell` drops it, an `ask`
/// returns it to the asker. Actors without replies use `type Reply = ();`.
///
/// ```
/// use amber_actors::{Actor, Context};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default)]
/// struct Counter {
///     count: u64,
/// }
///
/// #[derive(Serialize, Deserialize)]
/// enum CounterMsg {
///     Add(u64),
///     Get,
/// }
///
/// impl Actor for Counter {
///     type Msg = CounterMsg;
///     type Reply = u64;
///
///     async fn handle(&mut self, msg: CounterMsg, _ctx: &mut Context<Self>) -> u64 {
///         match msg {
///             CounterMsg::Add(n) => self.count += n,
///             CounterMsg::Get => {}
///         }
///         self.count
///     }
/// }
/// ```
///
/// A panic in any method is caught: the actor stops (or is restarted, per the restart policy
/// it was spawned with) and its parent and watchers are told; no other actor is affected.
pub trait Actor: Send + Sized + 'static {
    /// The messages this actor handles.
    type Msg: Message;
    /// What it answers to each message.
    type Reply: Message;

    /// Handles one message. Runs to completion before the next message (or control signal)
    /// is looked at; it may await, for example on an `ask` to another actor.
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Self::Reply> + Send;

    /// Runs once before the first message (and again after each restart). An error stops
    /// the actor with [`ExitReason::StartFailed`].
    fn on_start(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs once when the actor stops, after its children have stopped.
    fn on_stop(
        &mut self,
        ctx: &mut Context<Self>,
        reason: &ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }

    /// A child spawned through [`Context::spawn`] was restarted or stopped.
    fn on_child_event(
        &mut self,
        ctx: &mut Context<Self>,
        event: ChildEvent,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, event);
        async {}
    }

    /// An actor this one watches ([`Context::watch`]) stopped.
    fn on_down(&mut self, ctx: &mut Context<Self>, down: Down) -> impl Future<Output = ()> + Send {
        let _ = (ctx, down);
        async {}
    }

    /// Appends `msg` to `out` encoded as [`encode`](crate::encode) encodes it (on error,
    /// `out` may hold part of it). Not for users: `#[amber::actor]` writes one that puts
    /// out the constant parts of its message enum (variant and field names) as byte
    /// strings, byte for byte what serde's derived `Serialize` writes, for the messages a
    /// snapshot records and the tells sent to other nodes.
    #[doc(hidden)]
    fn __encode_msg(msg: &Self::Msg, out: &mut Vec<u8>) -> Result<(), crate::CodecError> {
        crate::encode_into(msg, out)
    }
}
