//! amber-actors: the amber actor runtime.
//!
//! An [`Actor`] is a struct with state and a handler that runs one message at a time with
//! `&mut self`. Actors live in an [`ActorSystem`] and are reached through typed, cloneable,
//! serializable [`ActorRef`]s: [`tell`](ActorRef::tell) sends, [`ask`](ActorRef::ask) sends
//! and awaits the reply.
//!
//! Every mailbox has a bounded (or unbounded) data lane and a control lane that overtakes it:
//! stop, supervision events and — for snapshots — markers are never stuck behind a backlog.
//! Every data message travels in an envelope carrying its sender and an epoch tag, which is
//! what lets a running system be cut consistently (see the `amber-snapshot` crate).
//!
//! The runtime knows no sockets. A remoting layer (`amber-remote`) implements the hooks of
//! [`remote`] and installs its directory with [`SystemBuilder::remote`]; the system then
//! hands the layer its [`remote::Host`], the one handle through which what arrives from
//! other nodes enters the system. An [`ActorSystem`] has none of those methods.
//!
//! ```
//! use amber_actors::{Actor, ActorSystem, Context};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default)]
//! struct Counter {
//!     count: u64,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! enum CounterMsg {
//!     Add(u64),
//!     Get,
//! }
//!
//! impl Actor for Counter {
//!     type Msg = CounterMsg;
//!     type Reply = u64;
//!
//!     async fn handle(&mut self, msg: CounterMsg, _ctx: &mut Context<Self>) -> u64 {
//!         if let CounterMsg::Add(n) = msg {
//!             self.count += n;
//!         }
//!         self.count
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let system = ActorSystem::new();
//! let counter = system.spawn(Counter::default()).unwrap();
//! counter.tell(CounterMsg::Add(2)).await.unwrap();
//! assert_eq!(counter.ask(CounterMsg::Get).await.unwrap(), 2);
//! system.shutdown().await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actor;
mod actor_ref;
mod any_mailbox;
mod ask_clock;
mod cell;
mod context;
mod current;
mod envelope;
mod error;
mod inline;
mod loom;
mod mailbox;
pub mod metrics;
pub mod migrate;
pub mod parked_reply;
pub mod passivate;
mod registry;
pub mod remote;
mod runner;
mod signal;
pub mod snapshot;
mod state;
mod supervision;
mod system;
mod target;
mod timer;
mod trace;
mod turn;

pub use actor::{Actor, BoxError, Message};
pub use actor_ref::ActorRef;
pub use amber_snapshot::Epoch;
pub use amber_snapshot::{AbortReason, Refusal};
pub use amber_snapshot::{ActorId, SystemId};
pub use context::Context;
pub use envelope::Origin;
pub use error::{
    AskError, CodecError, LookupError, SendError, SpawnError, StateError, TrySendError,
};
pub use mailbox::{DEFAULT_CAPACITY, MailboxCapacity};
pub use migrate::{MigrateError, MigrateRefusal};
pub use parked_reply::{EncodedAskError, ParkedReply, ReplyTicket};
pub use passivate::{
    EncodedSendError, KeptState, PassivateError, PassivateRequest, Passivation, Redirect,
};
pub use signal::{ChildEvent, Down, ExitReason};
pub use snapshot::{
    AbortCause, CaptureProblem, PartError, RestoreError, Skipped, SnapshotError, Taint,
};
pub use state::ActorState;
pub use supervision::{RestartPolicy, SpawnOptions};
pub use system::{
    ActorSystem, CheckpointSchedule, DEFAULT_SNAPSHOT_DEADLINE, DROP_GRACE, PendingRestore,
    Restored, SNAPSHOT_ATTEMPTS, ScheduleError, ShutdownReport, SystemBuilder,
};
pub use timer::TimerId;

/// Encodes a value (a state, a message) as MessagePack with field names, the encoding of
/// states and messages in checkpoints and on the wire.
pub fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    // Room for a typical message up front: growing from empty reallocates several times
    // for every message recorded at a cut or sent to another node.
    let mut bytes = Vec::with_capacity(64);
    encode_into(value, &mut bytes)?;
    Ok(bytes)
}

/// An actor's state encoded as [`encode`] encodes it, for the state derive's
/// [`ActorState::encode_state`]: written into a buffer the thread keeps, then copied into a
/// vector of exactly its size (a state over 64 KiB is handed over in the buffer itself). A
/// state is encoded at every cut and is usually larger than a message: growing a fresh
/// vector to it reallocated (and copied) it two or three times, and left the snapshot
/// holding up to twice the memory it needs.
#[doc(hidden)]
pub fn __encode_state<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    /// Above this, the thread's buffer is given up after use rather than kept.
    const KEEP: usize = 64 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // A thread tearing down its locals (where the buffer may be gone already) and a state
    // whose `Serialize` encodes another state (reentrant) get a vector of their own.
    let encoded = SCRATCH.try_with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else { return encode(value) };
        scratch.clear();
        let encoded = encode_into(value, &mut scratch).map(|()| {
            if scratch.capacity() > KEEP {
                // A large state: handed over whole rather than copied (the thread does not
                // keep a buffer this size anyway).
                std::mem::take(&mut *scratch)
            } else {
                scratch.as_slice().to_vec()
            }
        });
        if scratch.capacity() > KEEP {
            *scratch = Vec::new();
        }
        encoded
    });
    encoded.unwrap_or_else(|_| encode(value))
}

/// An actor's message encoded as [`encode`] encodes it, through the actor's own encoder
/// ([`Actor::__encode_msg`]).
pub(crate) fn encode_msg<A: Actor>(msg: &A::Msg) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::with_capacity(64);
    A::__encode_msg(msg, &mut bytes)?;
    Ok(bytes)
}

/// Appends a field of a message generated by `#[amber::actor]` to `out`, encoded as
/// [`encode`] does (see [`Actor::__encode_msg`]).
#[doc(hidden)]
#[inline]
pub fn __encode_field<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), CodecError> {
    amber_snapshot::msgpack::write_named(out, value).map_err(|e| CodecError::new(e.to_string()))
}

/// Decodes what [`encode`] wrote, for values that hold no [`ActorRef`] (a ref needs the
/// system it belongs to: use [`ActorSystem::decode`]). For tools and audits that read states
/// and messages out of a checkpoint.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::new(e.to_string()))
}

/// Appends a value encoded as [`encode`] does to `out` (which is left as it was on error).
pub(crate) fn encode_into<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    amber_snapshot::msgpack::write_named(out, value).map_err(|e| {
        out.truncate(start);
        CodecError::new(e.to_string())
    })
}

/// The hasher of the maps kept by keys no peer chooses: an actor's children and timers, the
/// actors deferring a cut (ids this process made, on paths taken per spawn, stop and timer,
/// where SipHash was a hundred instructions a key), and a restore's maps of actor ids (a
/// checkpoint's ids are written by its author and guarded by its checksums).
pub(crate) type LocalHash = foldhash::fast::RandomState;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod encode_state_tests {
    use serde::{Serialize, Serializer};

    use super::{__encode_state, encode};

    /// A state whose `Serialize` encodes another state while the thread's buffer is in use.
    struct Nested(Vec<u64>);

    impl Serialize for Nested {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let inner = __encode_state(&self.0).map_err(serde::ser::Error::custom)?;
            s.serialize_bytes(&inner)
        }
    }

    /// A state that fails to encode halfway through.
    struct Failing;

    impl Serialize for Failing {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(Some(2))?;
            seq.serialize_element(&0xdead_beef_u64)?;
            Err(serde::ser::Error::custom("halfway"))
        }
    }

    /// States small and large, one after the other on one thread, and one encoded inside
    /// another: each gets exactly what `encode` writes, in a vector of its own size below
    /// 64 KiB; an encoding error leaves nothing behind for the next state.
    #[test]
    fn states_encode_as_encode_does_whatever_their_size_and_nesting() {
        for len in [0usize, 1, 7, 64, 1_000, 20_000, 100_000, 3] {
            let state: Vec<u64> = (0..len as u64).map(|i| i * 0x9e37_79b9).collect();
            let ours = __encode_state(&state).unwrap();
            assert_eq!(ours, encode(&state).unwrap(), "len {len}");
            if ours.len() <= 64 * 1024 {
                assert_eq!(ours.capacity(), ours.len(), "len {len}");
            }
        }
        let nested = Nested((0..50).collect());
        let bytes = __encode_state(&nested).unwrap();
        assert_eq!(bytes, encode(&nested).unwrap());
        assert!(__encode_state(&Failing).is_err());
        assert_eq!(__encode_state(&7u8).unwrap(), vec![7]);
    }
}
