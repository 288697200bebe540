//! [`ActorSystem`]: spawning, the registry, decoding refs, and shutdown.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use amber_snapshot::Epoch;
use dashmap::DashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::mailbox::core::Meta;
use crate::mailbox::{AnyMailbox, Inbox, Mailbox, MailboxCapacity, terminated};
use crate::registry::Registry;
use crate::runner::Runner;
use crate::signal::Signal;
use crate::supervision::Restarts;
use crate::{
    Actor, ActorId, ActorRef, ActorState, CodecError, Context, ExitReason, LookupError, SpawnError,
    SpawnOptions, SystemId,
};

/// Builds an actor instance, again for each restart.
pub(crate) type Factory<A> = Box<dyn FnMut() -> A + Send + 'static>;

/// How a spawn gets its actor.
pub(crate) enum Make<A> {
    Instance(A),
    Factory(Factory<A>),
}

/// The actor types a system can rebuild from stored state, by stable type name.
#[derive(Clone, Default)]
pub(crate) struct TypeRegistry {
    by_name: HashMap<&'static str, RegisteredType>,
    by_type: HashMap<TypeId, &'static str>,
}

/// One registered actor type.
#[derive(Clone, Copy)]
pub(crate) struct RegisteredType {
    pub(crate) type_name: &'static str,
    pub(crate) version: u32,
}

impl TypeRegistry {
    /// The registration of actor type `A`, if any.
    pub(crate) fn of<A: Actor>(&self) -> Option<RegisteredType> {
        self.by_type.get(&TypeId::of::<A>()).and_then(|n| self.by_name.get(n)).copied()
    }

    /// The registration under `type_name`, if any.
    pub(crate) fn named(&self, type_name: &str) -> Option<RegisteredType> {
        self.by_name.get(type_name).copied()
    }
}

impl fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

/// Settings of an [`ActorSystem`].
#[derive(Debug, Clone)]
pub struct SystemBuilder {
    name: String,
    capacity: MailboxCapacity,
    ask_timeout: Duration,
    types: TypeRegistry,
}

impl Default for SystemBuilder {
    fn default() -> Self {
        SystemBuilder {
            name: "amber".into(),
            capacity: MailboxCapacity::default(),
            ask_timeout: Duration::from_secs(5),
            types: TypeRegistry::default(),
        }
    }
}

impl SystemBuilder {
    /// The system's name, for logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The default mailbox capacity of actors spawned without one.
    pub fn mailbox_capacity(mut self, capacity: MailboxCapacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long [`ActorRef::ask`] waits for a reply.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.ask_timeout = timeout;
        self
    }

    /// Registers actor type `A` under its [`ActorState::TYPE_NAME`], so snapshots can capture
    /// its actors and a restore can rebuild them.
    ///
    /// # Panics
    ///
    /// If another type is already registered under the same name: two types sharing a
    /// stored name would make checkpoints ambiguous, so this is a programming error.
    pub fn register<A: ActorState>(mut self) -> Self {
        let entry = RegisteredType { type_name: A::TYPE_NAME, version: A::VERSION };
        if let Some(other) = self.types.by_name.get(A::TYPE_NAME)
            && self.types.by_type.get(&TypeId::of::<A>()) != Some(&other.type_name)
        {
            panic!("two actor types are registered under the name {:?}", A::TYPE_NAME);
        }
        self.types.by_name.insert(A::TYPE_NAME, entry);
        self.types.by_type.insert(TypeId::of::<A>(), A::TYPE_NAME);
        self
    }

    /// Builds the system. Actors run on the tokio runtime this is called from.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn build(self) -> ActorSystem {
        let runtime = tokio::runtime::Handle::current();
        let id = SystemId::random();
        tracing::debug!(system = %id, name = %self.name, "actor system started");
        ActorSystem {
            inner: Arc::new(SystemInner {
                id,
                config: self,
                runtime,
                seq: AtomicU64::new(0),
                registry: Registry::default(),
                roots: DashMap::new(),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }
}

struct SystemInner {
    id: SystemId,
    config: SystemBuilder,
    runtime: tokio::runtime::Handle,
    seq: AtomicU64,
    registry: Registry,
    /// Actors spawned by the system itself (not by another actor): shutdown stops these, and
    /// each stops its own children first.
    roots: DashMap<ActorId, Arc<dyn AnyMailbox>>,
    shutting_down: AtomicBool,
}

/// A set of actors sharing a registry, running on one tokio runtime.
///
/// Cheap to clone (a reference count).
///
/// ```
/// use amber_actors::{Actor, ActorSystem, Context};
/// use serde::{Deserialize, Serialize};
///
/// struct Echo;
///
/// #[derive(Serialize, Deserialize)]
/// struct Say(String);
///
/// impl Actor for Echo {
///     type Msg = Say;
///     type Reply = String;
///     async fn handle(&mut self, Say(s): Say, _ctx: &mut Context<Self>) -> String {
///         s
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let system = ActorSystem::new();
/// let echo = system.spawn_named("echo", Echo).unwrap();
/// assert_eq!(echo.ask(Say("hi".into())).await.unwrap(), "hi");
/// let found = system.lookup::<Echo>("echo").unwrap();
/// assert_eq!(found, echo);
/// system.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct ActorSystem {
    inner: Arc<SystemInner>,
}

impl ActorSystem {
    /// A system with default settings (see [`SystemBuilder`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new() -> ActorSystem {
        SystemBuilder::default().build()
    }

    /// Settings for a new system.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    /// This system's id.
    pub fn id(&self) -> SystemId {
        self.inner.id
    }

    /// This system's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Spawns a top-level actor.
    pub fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_inner(SpawnOptions::new(), Make::Instance(actor), None, Epoch::ZERO)
    }

    /// Spawns a top-level actor registered under `name`.
    pub fn spawn_named<A: Actor>(
        &self,
        name: impl Into<String>,
        actor: A,
    ) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_inner(SpawnOptions::new().name(name), Make::Instance(actor), None, Epoch::ZERO)
    }

    /// Spawns a top-level actor built by `factory`, which is called again for each restart
    /// the options' [`RestartPolicy`](crate::RestartPolicy) allows.
    pub fn spawn_with<A: Actor>(
        &self,
        options: SpawnOptions,
        factory: impl FnMut() -> A + Send + 'static,
    ) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_inner(options, Make::Factory(Box::new(factory)), None, Epoch::ZERO)
    }

    pub(crate) fn spawn_inner<A: Actor>(
        &self,
        options: SpawnOptions,
        make: Make<A>,
        parent: Option<Arc<dyn AnyMailbox>>,
        epoch: Epoch,
    ) -> Result<ActorRef<A>, SpawnError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            return Err(SpawnError::ShuttingDown);
        }
        let id = ActorId::new(inner.id, inner.seq.fetch_add(1, Ordering::Relaxed) + 1);
        let meta = Meta {
            id,
            type_name: inner
                .config
                .types
                .of::<A>()
                .map_or(std::any::type_name::<A>(), |t| t.type_name),
            name: options.name.as_deref().map(Arc::from),
            ask_timeout: inner.config.ask_timeout,
        };
        let capacity = options.capacity.unwrap_or(inner.config.capacity).limit();
        let mailbox = Arc::new(Mailbox::<A>::new(meta, capacity, epoch));
        inner.registry.insert(mailbox.clone())?;
        let is_root = parent.is_none();
        if is_root {
            inner.roots.insert(id, mailbox.clone());
        }
        let me = ActorRef::from_mailbox(mailbox.clone());
        let (actor, factory) = match make {
            Make::Instance(a) => (Some(a), None),
            Make::Factory(f) => (None, Some(f)),
        };
        let runner = Runner {
            actor,
            factory,
            ctx: Context::new(me.clone(), self.clone(), parent, epoch),
            inbox: Inbox::new(mailbox),
            restarts: Restarts::new(options.restart),
        };
        let span = tracing::debug_span!("actor", id = %id, ty = std::any::type_name::<A>());
        inner.runtime.spawn(runner.run().instrument(span));
        Ok(me)
    }

    /// The live actor registered under `name`, if it is an `A`.
    pub fn lookup<A: Actor>(&self, name: &str) -> Result<ActorRef<A>, LookupError> {
        let mailbox = self.inner.registry.by_name(name)?;
        downcast(mailbox, name)
    }

    /// The live actor with this id, if it is an `A`.
    pub fn lookup_id<A: Actor>(&self, id: ActorId) -> Result<ActorRef<A>, LookupError> {
        let mailbox =
            self.inner.registry.get(id).ok_or_else(|| LookupError::NotFound(id.to_string()))?;
        downcast(mailbox, &id.to_string())
    }

    /// The stable type name of actor type `A` if it is registered, else `None`.
    pub fn registered_name<A: Actor>(&self) -> Option<&'static str> {
        self.inner.config.types.of::<A>().map(|t| t.type_name)
    }

    /// The state version registered under `type_name`, if that name is registered.
    pub fn registered_version(&self, type_name: &str) -> Option<u32> {
        self.inner.config.types.named(type_name).map(|t| t.version)
    }

    /// The number of live actors.
    pub fn actor_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Encodes a value (a state, a message) as MessagePack with field names.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        crate::encode(value)
    }

    /// Decodes MessagePack into a value, resolving every [`ActorRef`] inside it against this
    /// system. A ref to an actor that no longer exists decodes to a ref whose sends fail with
    /// a stopped error; a ref whose id names an actor of another type is an error.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let _scope = DecodeScope::enter(self.clone());
        rmp_serde::from_slice(bytes).map_err(|e| CodecError::new(e.to_string()))
    }

    /// Stops every actor and waits until all have stopped. Top-level actors are told to stop;
    /// each stops its children (and waits for them) before its own `on_stop`. New spawns are
    /// refused from the moment this is called.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutting_down.store(true, Ordering::Release);
        tracing::debug!(system = %inner.id, "shutting down");
        loop {
            let roots: Vec<_> = inner.roots.iter().map(|e| e.value().clone()).collect();
            if roots.is_empty() {
                break;
            }
            for root in &roots {
                let _ = root.signal(Signal::Stop(ExitReason::Shutdown));
            }
            for root in &roots {
                terminated(&**root).await;
            }
        }
        tracing::debug!(system = %inner.id, "shut down");
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn unregister(&self, id: ActorId, name: Option<&str>, root: bool) {
        self.inner.registry.remove(id, name);
        if root {
            self.inner.roots.remove(&id);
        }
    }

    pub(crate) fn ask_timeout(&self) -> Duration {
        self.inner.config.ask_timeout
    }
}

impl Default for ActorSystem {
    fn default() -> Self {
        ActorSystem::new()
    }
}

impl fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSystem")
            .field("id", &self.inner.id)
            .field("name", &self.inner.config.name)
            .field("actors", &self.inner.registry.len())
            .finish()
    }
}

fn downcast<A: Actor>(
    mailbox: Arc<dyn AnyMailbox>,
    what: &str,
) -> Result<ActorRef<A>, LookupError> {
    let found = mailbox.type_name();
    match mailbox.into_any().downcast::<Mailbox<A>>() {
        Ok(mailbox) => Ok(ActorRef::from_mailbox(mailbox)),
        Err(_) => Err(LookupError::WrongType {
            name: what.to_owned(),
            expected: std::any::type_name::<A>(),
            found,
        }),
    }
}

thread_local! {
    static DECODING: RefCell<Vec<ActorSystem>> = const { RefCell::new(Vec::new()) };
}

/// Marks the system that refs decoded on this thread resolve against, until dropped.
struct DecodeScope;

impl DecodeScope {
    fn enter(system: ActorSystem) -> DecodeScope {
        DECODING.with(|d| d.borrow_mut().push(system));
        DecodeScope
    }
}

impl Drop for DecodeScope {
    fn drop(&mut self) {
        DECODING.with(|d| d.borrow_mut().pop());
    }
}

/// Resolves a decoded [`ActorId`] to a ref, against the system of the enclosing
/// [`ActorSystem::decode`].
pub(crate) fn resolve<A: Actor>(id: ActorId) -> Result<ActorRef<A>, String> {
    let system = DECODING
        .with(|d| d.borrow().last().cloned())
        .ok_or_else(|| format!("ActorRef {id} can only be decoded through ActorSystem::decode"))?;
    match system.lookup_id::<A>(id) {
        Ok(r) => Ok(r),
        Err(LookupError::NotFound(_)) => Ok(dead_ref(&system, id)),
        Err(e) => Err(e.to_string()),
    }
}

/// A ref to an actor that no longer exists: every send fails with a stopped error.
fn dead_ref<A: Actor>(system: &ActorSystem, id: ActorId) -> ActorRef<A> {
    let meta = Meta {
        id,
        type_name: std::any::type_name::<A>(),
        name: None,
        ask_timeout: system.ask_timeout(),
    };
    let mailbox = Arc::new(Mailbox::<A>::new(meta, 1, Epoch::ZERO));
    mailbox.terminate(ExitReason::Stopped);
    ActorRef::from_mailbox(mailbox)
}
