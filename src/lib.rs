//! amber: an actor framework whose running systems can be captured as consistent global
//! snapshots, written as checkpoints, and rehydrated.
//!
//! This crate is the facade: it re-exports the runtime ([`amber_actors`]) and the snapshot
//! core ([`amber_snapshot`]). Start with [`prelude`].
//!
//! At the root are the runtime's types an application uses ([`ActorSystem`], [`ActorRef`],
//! their errors, ...). The modules are the crates, by what they hold: [`actors`] the whole
//! runtime, including [`actors::remote`], the hooks a remoting layer implements;
//! [`snapshot`] the snapshot protocol and checkpoints; [`cluster`] the TCP cluster (feature
//! `remote`).
//!
//! Actors can be written by hand, as below, or with the macros: [`#[amber::actor]`](macro@actor)
//! turns the methods of an impl block into message handlers (message and reply enums, the
//! `Actor` impl, typed methods on `ActorRef`), and
//! [`#[derive(ActorState)]`](derive@ActorState) makes an actor's state storable in snapshots.
//! Both are sugar over the traits: the two styles mix freely.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `remote` | on | [`Cluster`], the TCP transport ([`cluster`]): remote refs, cross-node snapshots, restore onto other nodes, live migration |
//! | `tls` | on | mutual TLS on a cluster's links ([`TlsConfig`], `TransportConfig::with_tls`; rustls with *ring*); implies `remote` |
//! | `s3` | off | checkpoints in S3 and S3-compatible object storage: `snapshot::ObjectStoreCheckpoints`, `s3://BUCKET/PREFIX` in [`snapshot::Store::from_url`], the async store trait `snapshot::AsyncCheckpointStore` (through the `object_store` crate) |
//!
//! A local-only application depends on `amber` with `default-features = false`: the runtime,
//! the macros, snapshots, checkpoints and restore, without the transport, rustls or ring.
//!
//! ```
//! use amber::prelude::*;
//!
//! struct Greeter;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greet(String);
//!
//! impl Actor for Greeter {
//!     type Msg = Greet;
//!     type Reply = String;
//!     async fn handle(&mut self, Greet(name): Greet, _ctx: &mut Context<Self>) -> String {
//!         format!("hello, {name}")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let system = ActorSystem::new();
//! let greeter = system.spawn(Greeter).unwrap();
//! assert_eq!(greeter.ask(Greet("amber".into())).await.unwrap(), "hello, amber");
//! system.shutdown().await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The runtime ([`amber_actors`]), whole: besides what this crate re-exports, the hooks a
/// remoting layer implements ([`actors::remote`]: routes, the directory, and the
/// [`Host`](actors::remote::Host) a system hands to it) and the package a migrating actor
/// travels in ([`actors::migrate`]).
pub use amber_actors as actors;
/// What the runtime reports through the `metrics` facade (snapshots, checkpoints, sampled
/// mailbox depths and ask latencies; the cluster adds its links): names, kinds and labels.
pub use amber_actors::metrics;
#[doc(inline)]
pub use amber_actors::{
    AbortCause, AbortReason, Actor, ActorId, ActorRef, ActorState, ActorSystem, AskError, BoxError,
    CaptureProblem, CheckpointSchedule, ChildEvent, CodecError, Context, DEFAULT_CAPACITY,
    DEFAULT_SNAPSHOT_DEADLINE, DROP_GRACE, Down, Epoch, ExitReason, LookupError, MailboxCapacity,
    Message, MigrateError, MigrateRefusal, Origin, PartError, PendingRestore, Refusal,
    RestartPolicy, RestoreError, Restored, SNAPSHOT_ATTEMPTS, ScheduleError, SendError,
    ShutdownReport, Skipped, SnapshotError, SpawnError, SpawnOptions, StateError, SystemBuilder,
    SystemId, Taint, TimerId, TrySendError, decode, encode,
};
/// The snapshot core ([`amber_snapshot`]): checkpoints, their stores, and the protocol's
/// state machines.
pub use amber_snapshot as snapshot;

/// Remoting ([`amber_remote`]): the TCP transport and [`Cluster`], a node whose actor system
/// reaches actors on other nodes and whose snapshots span them all. Feature `remote`.
#[cfg(feature = "remote")]
pub use amber_remote as cluster;
#[cfg(feature = "remote")]
#[doc(inline)]
pub use amber_remote::{
    Cluster, ClusterError, ClusterEvent, MembershipConfig, NodeId, ReconnectPolicy, TransportConfig,
};
/// TLS on a cluster's links: [`TransportConfig::with_tls`]. Feature `tls`.
#[cfg(feature = "tls")]
#[doc(inline)]
pub use amber_remote::{TlsConfig, TlsError};

#[doc(inline)]
pub use amber_macros::{ActorState, actor};

/// Guides longer than an item's docs.
pub mod docs {
    #[doc = include_str!("../docs/snapshots.md")]
    pub mod snapshots {}

    #[cfg(feature = "remote")]
    #[doc = include_str!("../docs/cluster.md")]
    pub mod cluster {}
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The cluster's plumbing is not on [`ActorSystem`]: only a remoting layer, through the
/// [`Host`](actors::remote::Host) its directory is given, reaches it. Each of these fails to
/// compile; the first block shows that the setting itself compiles.
///
/// ```
/// use std::sync::Arc;
/// use amber::actors::migrate::Arrival;
/// use amber::actors::remote::{InboundMessage, RemoteRoute};
/// struct Echo;
/// impl amber::Actor for Echo {
///     type Msg = ();
///     type Reply = ();
///     async fn handle(&mut self, _: (), _: &mut amber::Context<Self>) {}
/// }
/// fn user(
///     system: &amber::ActorSystem,
///     id: amber::ActorId,
///     down: amber::Down,
///     message: InboundMessage,
///     arrival: Arrival,
///     route: Arc<dyn RemoteRoute>,
/// ) {
///     let _ = (system.snapshot_running(), system.whereis("x"), system.lookup_id::<Echo>(id));
///     let _ = (down, message, arrival, route);
/// }
/// ```
///
/// A user cannot declare a node down (which aborts the running snapshot):
///
/// ```compile_fail,E0599
/// fn user(system: &amber::ActorSystem) {
///     system.node_down("x");
/// }
/// ```
///
/// nor feed the snapshot protocol:
///
/// ```compile_fail,E0599
/// fn user(system: &amber::ActorSystem) {
///     system.on_snapshot_message("x", &[]);
/// }
/// ```
///
/// nor deliver a message as if it came from another node:
///
/// ```compile_fail,E0599
/// use amber::actors::remote::InboundMessage;
/// fn user(system: &amber::ActorSystem, message: InboundMessage) {
///     let _ = system.deliver("x", message);
/// }
/// ```
///
/// nor tell a watcher that an actor stopped:
///
/// ```compile_fail,E0599
/// fn user(system: &amber::ActorSystem, id: amber::ActorId, down: amber::Down) {
///     system.notify_down(id, down);
/// }
/// ```
///
/// nor admit an actor arriving from another node:
///
/// ```compile_fail,E0599
/// use amber::actors::migrate::Arrival;
/// fn user(system: &amber::ActorSystem, arrival: Arrival) {
///     let _ = system.accept_migrant("x", arrival);
/// }
/// ```
///
/// nor make a ref leading to a route of its own:
///
/// ```compile_fail,E0599
/// use std::sync::Arc;
/// use amber::actors::remote::RemoteRoute;
/// struct Echo;
/// impl amber::Actor for Echo {
///     type Msg = ();
///     type Reply = ();
///     async fn handle(&mut self, _: (), _: &mut amber::Context<Self>) {}
/// }
/// fn user(system: &amber::ActorSystem, id: amber::ActorId, route: Arc<dyn RemoteRoute>) {
///     let _ = system.remote_ref::<Echo>(id, route);
/// }
/// ```
///
/// and no `Host` can be made or found elsewhere than in
/// [`RemoteDirectory::attach`](actors::remote::RemoteDirectory::attach):
///
/// ```compile_fail,E0599
/// fn user(system: &amber::ActorSystem) {
///     let _ = system.host();
/// }
/// ```
#[cfg(doctest)]
pub struct PlumbingIsNotPublic;

/// Handles whose drop cancels something are `#[must_use]`: with the lint denied, dropping one
/// on the floor does not compile. The first block keeps the handle and compiles.
///
/// ```
/// #![deny(unused_must_use)]
/// use std::sync::Arc;
/// use std::time::Duration;
/// fn user(system: &amber::ActorSystem, store: Arc<amber::prelude::FsStore>) {
///     let schedule = system.checkpoint_every(store, Duration::from_millis(100)).unwrap();
///     schedule.stop();
/// }
/// fn restorer(checkpoint: &amber::snapshot::Checkpoint) -> amber::ActorSystem {
///     let pending = amber::ActorSystem::builder().restore_where(checkpoint, |_| true).unwrap();
///     pending.start()
/// }
/// ```
///
/// A checkpoint schedule that is dropped at once writes nothing:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use std::sync::Arc;
/// use std::time::Duration;
/// fn user(system: &amber::ActorSystem, store: Arc<amber::prelude::FsStore>) {
///     system.checkpoint_every(store, Duration::from_millis(100)).unwrap();
/// }
/// ```
///
/// A restore that is never started runs nothing:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn user(checkpoint: &amber::snapshot::Checkpoint) {
///     amber::ActorSystem::builder().restore_where(checkpoint, |_| true).unwrap();
/// }
/// ```
#[cfg(doctest)]
pub struct DroppedHandlesDoNotCompile;

/// The serde amber encodes states and messages with, for types of your own that a state
/// upgrade or a hand-written message needs, without a direct dependency on serde:
/// `#[derive(amber::serde::Deserialize)] #[serde(crate = "amber::serde")]`.
pub use serde;

/// What the code generated by amber's macros names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use amber_actors::__encode_field as encode_field;
    pub use amber_actors::__encode_state as encode_state;
    pub use serde;

    /// A type a field stored in a snapshot can have. `#[derive(ActorState)]` bounds every
    /// stored field type by it, at the field, and (de)serializes stored fields only through
    /// it ([`stored`]), so that a type that does not qualify gets exactly one clear error,
    /// there.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be stored in a snapshot: stored fields must be \
                   `Serialize + Deserialize`",
        label = "not serializable",
        note = "mark the field `#[amber(skip)]` to leave it out of snapshots; it is rebuilt on \
                restore by `Default`, by `#[amber(skip, default = ...)]` or by the `rebuild` hook"
    )]
    pub trait StateField: Sized {
        /// Serializes the field.
        fn serialize_field<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
        /// Deserializes the field.
        fn deserialize_field<'de, D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Self, D::Error>;
    }

    impl<T: serde::Serialize + serde::de::DeserializeOwned> StateField for T {
        fn serialize_field<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.serialize(serializer)
        }
        fn deserialize_field<'de, D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Self, D::Error> {
            T::deserialize(deserializer)
        }
    }

    /// `#[serde(with = "...")]` for the stored fields of a state.
    pub mod stored {
        use super::StateField;

        /// Serializes a borrowed stored field.
        pub fn serialize<T: StateField, S: serde::Serializer>(
            value: &&T,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            value.serialize_field(serializer)
        }

        /// Deserializes a stored field.
        pub fn deserialize<'de, T: StateField, D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> Result<T, D::Error> {
            T::deserialize_field(deserializer)
        }

        /// Deserializes a stored field that has a default: present, it is `Some`.
        pub fn deserialize_some<'de, T: StateField, D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<T>, D::Error> {
            T::deserialize_field(deserializer).map(Some)
        }

        /// A stored field with a default, absent from the encoded state.
        pub fn none<T>() -> Option<T> {
            None
        }
    }
}

/// The names an amber program needs most: the runtime's types, the macros, the checkpoint
/// store, and serde's traits and derives (which work without a dependency on serde).
pub mod prelude {
    pub use amber_actors::{
        Actor, ActorId, ActorRef, ActorState, ActorSystem, AskError, BoxError, ChildEvent, Context,
        Down, ExitReason, MailboxCapacity, RestartPolicy, SendError, SpawnOptions, StateError,
        TrySendError,
    };
    pub use amber_macros::{ActorState, actor};
    /// serde's derives through amber's serde: they work without a dependency on serde.
    pub use amber_macros::{Deserialize, Serialize};
    pub use amber_snapshot::{CheckpointStore, FsStore};
    /// serde's traits (the derives of the same names are amber's, above).
    pub use serde::{de::Deserialize, ser::Serialize};
}
