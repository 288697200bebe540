//! amber-macros: the derive and attribute macros of amber actors.
//!
//! Use them through the facade crate: `#[derive(amber::ActorState)]` and
//! `#[amber::actor]`. Both generate code against the public API of `amber` only; an actor
//! written with them is an ordinary [`Actor`] and can be mixed freely with hand-written ones.
//!
//! - [`ActorState`](derive@ActorState) makes an actor's state part of snapshots: it implements
//!   the `ActorState` trait (stable type name, state version, encoding and decoding through
//!   serde) without the struct deriving `Serialize`/`Deserialize` itself.
//! - [`actor`](macro@actor) turns the methods of an `impl` block into message handlers: it
//!   generates the message enum, the reply enum, the `Actor` impl with the dispatch, and an
//!   extension trait with one typed method per handler on `ActorRef`.
//!
//! The bank account, complete:
//!
//! ```
//! use amber::prelude::*;
//!
//! #[derive(ActorState, Default)]
//! #[amber(name = "bank.Account")]
//! pub struct Account {
//!     balance: u64,
//! }
//!
//! #[amber::actor]
//! impl Account {
//!     /// Adds `amount` to the balance.
//!     fn deposit(&mut self, amount: u64) {
//!         self.balance += amount;
//!     }
//!
//!     /// Takes `amount` out if it is there; says whether it was.
//!     fn withdraw(&mut self, amount: u64) -> bool {
//!         let ok = self.balance >= amount;
//!         if ok {
//!             self.balance -= amount;
//!         }
//!         ok
//!     }
//!
//!     /// Moves `amount` to another account if it is there.
//!     async fn transfer(&mut self, to: ActorRef<Account>, amount: u64) -> bool {
//!         self.withdraw(amount) && to.deposit(amount).await.is_ok()
//!     }
//!
//!     fn balance(&mut self) -> u64 {
//!         self.balance
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let system = ActorSystem::builder().register::<Account>().build();
//! let alice = system.spawn(Account::default()).unwrap();
//! let bob = system.spawn(Account::default()).unwrap();
//! alice.deposit(100).await.unwrap();
//! assert!(alice.transfer(bob.clone(), 30).await.unwrap());
//! assert!(!alice.withdraw(500).await.unwrap());
//! assert_eq!(alice.balance().await.unwrap(), 70);
//! assert_eq!(bob.balance().await.unwrap(), 30);
//! system.shutdown().await;
//! # }
//! ```
//!
//! [`Actor`]: https://docs.rs/amber/latest/amber/trait.Actor.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actor;
mod internals;
mod serdes;
mod state;

use proc_macro::TokenStream;

/// Derives `amber::ActorState` for an actor struct: its state can then be captured in
/// snapshots, written to checkpoints and rebuilt on restore.
///
/// The struct must also implement `Actor` (by hand or with [`#[amber::actor]`](macro@actor)),
/// and its type must be registered with each system that restores it:
/// `ActorSystem::builder().register::<Account>().build()`.
///
/// # What is generated
///
/// One `impl amber::ActorState for Account` inside a `const _: () = { ... };` block, so
/// nothing is added to your namespace. Its helpers (two private "shadow" structs holding the
/// stored fields, deriving serde's traits through amber's own copy of serde) live in the same
/// block; the struct itself need not derive `Serialize`/`Deserialize`, and your crate need
/// not depend on serde.
///
/// - `encode_state` writes the stored fields (every field not marked `skip`) as a
///   MessagePack map from field name to value (a tuple struct: an array of the stored fields
///   in order, or the single value if one field is stored).
/// - `decode_state(version, bytes, system)`:
///   - `version == VERSION`: decodes the stored fields through `system.decode`, so
///     `ActorRef`s inside them resolve against `system`; each skipped field is rebuilt by its
///     `default` function, else by `Default::default()`;
///   - `1 <= version < VERSION` with an `upgrade` hook: returns what the hook builds from the
///     old bytes;
///   - any other version (newer than this code, 0, or older without an `upgrade` hook):
///     `Err(StateError::UnknownVersion { type_name, found: version, current: VERSION })`;
///   - then, if there is a `rebuild` hook, it runs on the decoded (or upgraded) actor.
/// - `TYPE_NAME` is `concat!(module_path!(), "::", "<Ident>")` by default, e.g.
///   `"bank::accounts::Account"` for `Account` in module `accounts` of crate `bank`. Moving
///   or renaming the type changes it and orphans existing checkpoints, so a type that is
///   stored for long should set `name`. A generic struct has one name for all its
///   instantiations: register only one of them per system.
/// - `VERSION` is `version`, default 1.
///
/// # Attributes
///
/// On the struct, `#[amber(...)]` with any of:
///
/// | key | value | meaning |
/// |---|---|---|
/// | `name` | string | the stable type name, e.g. `name = "bank.Account"` |
/// | `version` | integer ≥ 1 | the version of the state layout, default 1 |
/// | `upgrade` | path | `fn(from_version: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError>`: builds the actor from the state of an older version; needs `version` ≥ 2 |
/// | `rebuild` | path | `fn(&mut Self, system: &ActorSystem)`, returning `()`, `Result<(), StateError>` or `Result<(), String>`: runs after every decode, to rebuild what is not stored |
/// | `crate` | path | where the `amber` crate is, default `::amber` (for a renamed dependency or a re-export) |
///
/// On a field, `#[amber(...)]` with:
///
/// | key | value | meaning |
/// |---|---|---|
/// | `skip` | — | not stored; rebuilt on decode by `default`, or by `Default::default()` |
/// | `default` | — or path | on a skipped field: how it is rebuilt; on a stored field: what it is when a state encoded before the field existed lacks it. Bare: `Default::default()`; with a path: `fn() -> FieldType` |
///
/// # Schema evolution
///
/// A state is decoded by the rules of its *version*; within one version the layout may grow:
///
/// - **Adding a stored field** needs no version bump if it has a default:
///   `#[amber(default)]` (or `#[amber(default = path)]`). A state encoded before the field
///   existed decodes with the default. Without a default, such a state is refused
///   (`StateError::Codec`, "missing field"), never made up. In a tuple struct (encoded as an
///   array) only trailing fields can be added this way, and only to one of at least two
///   stored fields: one stored field is encoded as its bare value, so growing it changes the
///   shape.
/// - **Removing or renaming a stored field** changes what older states mean: bump `version`
///   and write an `upgrade`. A state holding a field the type does not know is refused
///   ("unknown field"), so a forgotten upgrade is an error, not silently lost data.
/// - **Messages** recorded in flight are decoded with the receiver's `Msg` type, by serde's
///   rules: a named field added with `#[serde(default)]` (messages are encoded with field
///   names, as maps) decodes from older recordings; a removed field is ignored unless the
///   type says `#[serde(deny_unknown_fields)]`; a renamed variant or field needs
///   `#[serde(alias = "...")]`.
///
/// Paths may be written bare or as strings: `upgrade = Self::upgrade` or
/// `upgrade = "Self::upgrade"`.
///
/// Every stored field must be serializable with serde: a field that is not gets a compile
/// error at that field ("cannot be stored in a snapshot"); mark it `skip` or change its type.
/// A generic struct gets `ActorState` for the instantiations whose stored field types are
/// serializable (the impl is bounded by each stored field type).
///
/// # Example: skipped fields, a rebuild hook, a version upgrade
///
/// ```
/// use std::collections::HashMap;
///
/// use amber::prelude::*;
///
/// /// Version 1 of the state layout, kept to read old checkpoints.
/// #[derive(amber::serde::Deserialize)]
/// #[serde(crate = "amber::serde")]
/// struct LedgerV1 {
///     balance: u64,
/// }
///
/// #[derive(ActorState)]
/// #[amber(name = "bank.Ledger", version = 2, upgrade = Self::upgrade, rebuild = Self::rebuild)]
/// struct Ledger {
///     balance_cents: u128,
///     entries: u32,
///     #[amber(skip)]
///     index: HashMap<u32, u128>,
///     #[amber(skip, default = Ledger::new_label)]
///     label: String,
/// }
///
/// impl Ledger {
///     fn new_label() -> String {
///         "restored".into()
///     }
///
///     /// Version 1 counted whole units and had no entries.
///     fn upgrade(from: u32, bytes: &[u8], system: &ActorSystem) -> Result<Self, StateError> {
///         debug_assert_eq!(from, 1);
///         let old: LedgerV1 = system.decode(bytes)?;
///         Ok(Ledger {
///             balance_cents: u128::from(old.balance) * 100,
///             entries: 0,
///             index: HashMap::new(),
///             label: Self::new_label(),
///         })
///     }
///
///     fn rebuild(&mut self, _system: &ActorSystem) {
///         self.index.insert(self.entries, self.balance_cents);
///     }
/// }
///
/// # #[amber::actor] impl Ledger { fn total(&mut self) -> u128 { self.balance_cents } }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let system = ActorSystem::new();
/// let v1 = amber::encode(&LedgerV1Out { balance: 7 }).unwrap();
/// let ledger = Ledger::decode_state(1, &v1, &system).unwrap();
/// assert_eq!((ledger.balance_cents, ledger.label.as_str()), (700, "restored"));
/// assert_eq!(ledger.index[&0], 700);
///
/// let bytes = ledger.encode_state().unwrap();
/// assert_eq!(Ledger::decode_state(2, &bytes, &system).unwrap().balance_cents, 700);
/// assert!(matches!(
///     Ledger::decode_state(3, &bytes, &system),
///     Err(StateError::UnknownVersion { found: 3, current: 2, .. })
/// ));
/// # system.shutdown().await;
/// # }
/// # #[derive(amber::serde::Serialize)]
/// # #[serde(crate = "amber::serde")]
/// # struct LedgerV1Out { balance: u64 }
/// ```
#[proc_macro_derive(ActorState, attributes(amber))]
pub fn derive_actor_state(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    state::derive(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Turns the methods of an `impl` block into the message handlers of an actor.
///
/// ```
/// use amber::prelude::*;
/// # #[derive(Default)] pub struct Counter { count: u64 }
/// #[amber::actor]
/// impl Counter {
///     fn add(&mut self, n: u64) {
///         self.count += n;
///     }
///
///     fn get(&mut self) -> u64 {
///         self.count
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let system = ActorSystem::new();
/// let counter = system.spawn(Counter::default()).unwrap();
/// counter.add(2).await.unwrap(); // a tell: returns once the message is queued
/// assert_eq!(counter.get().await.unwrap(), 2); // an ask: returns the reply
///
/// // The same, with the generated message type and the plain `ActorRef` API:
/// counter.tell(CounterMsg::Add { n: 1 }).await.unwrap();
/// assert!(matches!(counter.ask(CounterMsg::Get).await.unwrap(), CounterReply::Get(3)));
/// # system.shutdown().await;
/// # }
/// ```
///
/// # Handlers
///
/// Every method of the block with a `self` receiver is a handler (or a hook, below).
/// Associated functions without a receiver (constructors such as `fn new() -> Self`) are left
/// alone. A handler:
///
/// - takes `&mut self`: the actor handles one message at a time, with exclusive access to its
///   state. `&self` and `self` are errors; move helpers that are not handlers to another impl
///   block;
/// - may be `async` (it may then await, e.g. an `ask` to another actor) or not;
/// - may take the actor's context, found by its type: `ctx: &mut Context<Self>` (or
///   `&Context<Self>`), at any position. It is passed through, not sent;
/// - takes its other arguments by value, with types that are `Serialize + Deserialize +
///   Send + 'static`: they become the fields of its message, which goes through a mailbox,
///   may cross the network and may be stored in a snapshot. References (`&str`, `&T`),
///   `impl Trait` and generic methods are errors;
/// - returns nothing — then it is a *tell*: the sender does not wait — or a value, which is
///   sent back — an *ask*. The value must be serializable too; references are errors.
///
/// The message enum derives serde's `Serialize`, and the macro also writes its encoder for
/// the runtime: the variant and field names as constant bytes, each field through serde,
/// byte for byte what the derive writes (a snapshot records every queued message, and a
/// tell to another node encodes one: it takes a quarter of a recorded message's cost off).
///
/// # Hooks
///
/// A method marked `#[on_start]`, `#[on_stop]`, `#[on_child_event]` or `#[on_down]`, or
/// named so, stands for that hook of the `Actor` trait. It takes `&mut self`, optionally the
/// context, and the hook's own argument if it wants it (`reason: &ExitReason` for
/// `on_stop`, `event: ChildEvent` for `on_child_event`, `down: Down` for `on_down`). It
/// may be `async`. `on_start` returns `()` or `Result<(), E>` with `E: Into<BoxError>`;
/// the others return `()`. Hooks left out keep the trait's defaults.
///
/// ```
/// use amber::prelude::*;
/// # pub struct Worker { started: bool }
/// #[amber::actor]
/// impl Worker {
///     #[on_start]
///     async fn start(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
///         self.started = ctx.system().name() == "amber";
///         Ok(())
///     }
///
///     fn on_stop(&mut self, reason: &ExitReason) {
///         println!("worker stopped: {reason:?}");
///     }
///
///     fn started(&mut self) -> bool {
///         self.started
///     }
/// }
/// ```
///
/// # What is generated
///
/// For `impl Account` with handlers `deposit(&mut self, amount: u64)` and
/// `balance(&mut self) -> u64`, next to the impl block (which stays as written, so the
/// methods can still be called directly):
///
/// - `pub enum AccountMsg`: one variant per handler, named by the method in
///   UpperCamelCase (`deposit` → `Deposit`, `transfer_to` → `TransferTo`), with the
///   arguments other than the context as named fields: `AccountMsg::Deposit { amount }`, or a
///   unit variant if there are none: `AccountMsg::Balance`;
/// - `pub enum AccountReply`: one variant per handler holding what it returned:
///   `AccountReply::Balance(u64)`, or a unit variant if it returns nothing:
///   `AccountReply::Deposit`;
/// - `pub trait AccountRef`, implemented for `ActorRef<Account>`, with one method per
///   handler taking the message fields:
///   - a tell: `fn deposit(&self, amount: u64)`, resolving to
///     `Result<(), SendError<AccountMsg>>`;
///   - an ask: `fn balance(&self)`, resolving to `Result<u64, AskError>`, and
///     `fn balance_timeout(&self, timeout: Duration)`, which waits at most `timeout`
///     (the system's ask timeout otherwise). The methods return `impl Future + Send`.
///
///   Bring the trait into scope (`use crate::accounts::AccountRef;`) to call them;
/// - in a `const _: () = { ... };` block (which adds no names): `impl Actor for Account`
///   with `Msg = AccountMsg`, `Reply = AccountReply`, a `handle` that calls the handler of
///   each variant, the hooks, the trait impl, a `Debug` for both enums that prints the
///   variant name only, and `Clone` for each enum whenever every type it holds is `Clone`.
///
/// # Timers
///
/// `ctx.send_interval(period, msg)` sends a clone of `msg` every period, so it needs
/// `AccountMsg: Clone`. Nothing to write for that: the generated enums implement `Clone`
/// exactly when every handler argument (for the message enum) or reply (for the reply enum)
/// is `Clone`. If one is not, using the enum as `Clone` is an error that points at that
/// argument's type; make that type `Clone`. (With a `#[cfg]` on a handler, or to derive
/// `Clone` unconditionally, write `#[amber::actor(derive(Clone))]`.)
///
/// ```
/// use std::time::Duration;
///
/// use amber::prelude::*;
///
/// #[derive(Default)]
/// pub struct Clock {
///     ticks: u64,
/// }
///
/// #[amber::actor]
/// impl Clock {
///     #[on_start]
///     fn start(&mut self, ctx: &mut Context<Self>) {
///         ctx.send_interval(Duration::from_millis(10), ClockMsg::Tick { by: 1 });
///     }
///
///     fn tick(&mut self, by: u64) {
///         self.ticks += by;
///     }
/// }
/// ```
///
/// The doc comments of a handler are copied onto its variant and its ref method; `#[cfg]`
/// attributes on a handler apply to everything generated for it. The enums derive serde's
/// traits through amber's copy of serde (your crate need not depend on serde).
///
/// A handler cannot be named like a method of `ActorRef` (`tell`, `ask`, `stop`, `id`,
/// `name`, ...): the inherent method would be called instead of the generated one.
///
/// # Attribute keys
///
/// `#[amber::actor(...)]` takes:
///
/// | key | value | meaning |
/// |---|---|---|
/// | `vis` | visibility | of the three generated items, default `pub`, e.g. `vis = "pub(crate)"`; at least that of the actor type (they appear in its `Actor` impl) |
/// | `derive` | list | more derives for both enums, e.g. `derive(Clone, PartialEq, Debug)`; with `Debug` in it, the names-only `Debug` is not generated; with `Clone`, the conditional `Clone` is not |
/// | `crate` | path | where the `amber` crate is, default `::amber` |
///
/// Generic impl blocks are not supported; implement `Actor` by hand for a generic actor.
#[proc_macro_attribute]
pub fn actor(args: TokenStream, input: TokenStream) -> TokenStream {
    actor::actor(args.into(), input.into()).into()
}

/// serde's `Serialize` derive, through amber's copy of serde: `#[derive(Serialize)]` with
/// `use amber::prelude::*` works in a crate that does not depend on serde.
///
/// It takes serde's attributes (`#[serde(rename_all = "...")]`, `#[serde(default)]`,
/// `#[serde(skip)]`, ...) and encodes exactly as serde's derive does: it is serde's derive,
/// run on a private copy of the type (serde's `remote` mode) that names amber's serde. A
/// generic type gets `T: Serialize` on every type parameter; types with lifetime
/// parameters are refused (messages and states own their data). In a crate that depends on
/// serde, serde's own derives (`use serde::Serialize`) work as well.
///
/// ```
/// use amber::prelude::*;
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// #[serde(rename_all = "snake_case")]
/// enum Command {
///     Add(u64),
///     Reset,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let system = ActorSystem::new();
/// let bytes = system.encode(&Command::Add(2)).unwrap();
/// assert_eq!(system.decode::<Command>(&bytes).unwrap(), Command::Add(2));
/// # system.shutdown().await;
/// # }
/// ```
#[proc_macro_derive(Serialize, attributes(serde))]
pub fn derive_serialize(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    serdes::derive(&input, serdes::Trait::Serialize)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// serde's `Deserialize` derive, through amber's copy of serde: `#[derive(Deserialize)]`
/// with `use amber::prelude::*` works in a crate that does not depend on serde. The
/// companion of [`Serialize`](derive@Serialize), with the same rules; every type parameter
/// gets `T: Deserialize<'de>`.
#[proc_macro_derive(Deserialize, attributes(serde))]
pub fn derive_deserialize(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    serdes::derive(&input, serdes::Trait::Deserialize)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
