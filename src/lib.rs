//! amber: an actor framework whose running systems can be captured as consistent global
//! snapshots, written as checkpoints, and rehydrated.
//!
//! This crate is the facade: it re-exports the runtime ([`amber_actors`]) and the snapshot
//! core ([`amber_snapshot`]). Start with [`prelude`].
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

pub use amber_actors as actors;
pub use amber_actors::*;
pub use amber_snapshot as snapshot;

/// The names an amber program needs most, plus serde's derives.
pub mod prelude {
    pub use amber_actors::{
        Actor, ActorId, ActorRef, ActorSystem, AskError, ChildEvent, Context, Down, ExitReason,
        MailboxCapacity, RestartPolicy, SendError, SpawnOptions, TrySendError,
    };
    pub use serde::{Deserialize, Serialize};
}
