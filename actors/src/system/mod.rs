//! [`ActorSystem`]: spawning, the registry, decoding refs, snapshots and shutdown.

mod broadcast;
mod builder;
mod cut_batch;
mod decode;
mod fan_out;
mod host;
mod remote_watch;
mod shutdown;
mod snapshots;
mod spawn_registered;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use amber_snapshot::Epoch;
use dashmap::DashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

pub use builder::SystemBuilder;
pub(crate) use cut_batch::{CutBatch, Held};
pub(crate) use decode::resolve;
pub use host::Host;
pub use shutdown::ShutdownReport;
pub use snapshots::{
    CheckpointSchedule, DEFAULT_SNAPSHOT_DEADLINE, PendingRestore, Restored, SNAPSHOT_ATTEMPTS,
    ScheduleError,
};
pub(crate) use spawn_registered::{SpawnFn, spawn_from_state};

use crate::any_mailbox::{AnyMailbox, terminated};
use crate::ask_clock::AskClock;
use crate::mailbox::Inbox;
use crate::mailbox::core::Meta;
use crate::registry::Registry;
use crate::remote::{InboundMessage, RemoteRoute};
use crate::runner::Runner;
use crate::signal::Signal;
use crate::snapshot::{Effects, SnapshotEngine};
use crate::supervision::Restarts;
use crate::target::Mailbox;
use crate::{
    Actor, ActorId, ActorRef, CodecError, Context, ExitReason, LookupError, SpawnError,
    SpawnOptions, SystemId,
};

/// Builds an actor instance, again for each restart.
pub(crate) type Factory<A> = Box<dyn FnMut() -> A + Send + 'static>;

/// How a spawn gets its actor.
pub(crate) enum Make<A> {
    Instance(A),
    Factory(Factory<A>),
}

struct SystemInner {
    id: SystemId,
    config: SystemBuilder,
    runtime: tokio::runtime::Handle,
    seq: AtomicU64,
    registry: Registry,
    /// Actors spawned by the system itself (not by another actor): shutdown stops these, and
    /// each stops its own children first.
    roots: IdMap<Arc<dyn AnyMailbox>>,
    shutting_down: AtomicBool,
    engine: Arc<SnapshotEngine>,
    /// Actors that moved to other nodes: their mailboxes forward what is sent to them (more
    /// than one if an actor came back and left again; the newest last).
    moved: DashMap<ActorId, Vec<Arc<dyn AnyMailbox>>>,
    /// Actors that passivated with a [`Redirect`](crate::passivate::Redirect): where the
    /// messages from other nodes for them go (one entry per such actor, for as long as
    /// the system runs: a ref to it may be held anywhere).
    passivated: DashMap<ActorId, Arc<crate::passivate::Redirect>>,
    /// The reply routes of asks redirected from passivated actors, until their redirect's
    /// actor claims them (see [`crate::parked_reply`]).
    parked: crate::parked_reply::ParkedReplies,
    /// The cuts of actors that stopped after cutting for the snapshot running here, kept
    /// until that snapshot ends: a tell from another node tagged before such a cut may
    /// still arrive once the actor has left the registry (see [`Host::deliver`]).
    stopped_cuts: DashMap<ActorId, amber_snapshot::ActorCut>,
    /// The snapshot the entries of `stopped_cuts` are for, plus one (0: none).
    stopped_for: AtomicU64,
    /// The running snapshot's marker broadcast, which actors' tasks help with.
    markers: broadcast::Markers,
    /// Keeps asks' timeouts from waking the timer driver (see [`AskClock`]).
    asks: Arc<AskClock>,
}

/// A set of actors sharing a registry, running on one tokio runtime.
///
/// Cheap to clone (a reference count).
///
/// # Dropping
///
/// The handles you hold own the system: when the last of them is dropped (without a
/// [`shutdown`](Self::shutdown) first), the system shuts itself down in the background, as
/// `shutdown` would (every actor stopped, children first, timers cancelled, `on_stop` run),
/// on the runtime it was built on; actors still running after [`DROP_GRACE`] are aborted
/// (see [`shutdown_within`](Self::shutdown_within)). Actors never own their system: the handle a handler gets
/// from [`Context::system`](crate::Context::system), and clones of it, keep nothing alive,
/// so a system whose owner is gone does not live on through its actors and their timers.
/// (A [`Cluster`](https://docs.rs/amber-remote) holds its system until the cluster is shut
/// down.)
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
    /// Present on the handles users hold (and their clones): the system shuts down once the
    /// last is dropped. Absent on the handles the runtime keeps (actors, timers, tasks).
    #[allow(dead_code, reason = "held for its Drop")]
    owner: Option<Arc<Owner>>,
}

/// How long a system whose last handle was dropped waits for its actors to stop before it
/// aborts those still running (see [`ActorSystem::shutdown_within`]).
pub const DROP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The users' ownership of a system: dropping the last one shuts the system down.
struct Owner {
    system: std::sync::Weak<SystemInner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let Some(inner) = self.system.upgrade() else { return };
        if inner.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let system = ActorSystem { inner, owner: None };
        tracing::debug!(system = %system.id(), "last handle dropped; shutting down");
        // Refuse spawns and snapshots from now on, even before the task below runs (or if
        // the runtime is shutting down and never runs it: its tasks are dropped anyway).
        system.inner.shutting_down.store(true, Ordering::Release);
        let runtime = system.inner.runtime.clone();
        runtime.spawn(async move {
            let report = system.shutdown_within(DROP_GRACE).await;
            if !report.is_clean() {
                tracing::warn!(aborted = ?report.aborted, "a dropped system's actors did not stop in time");
            }
        });
    }
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

    /// A system whose last completed snapshot is `epoch` (zero for a fresh one).
    pub(crate) fn from_builder(config: SystemBuilder, epoch: Epoch) -> ActorSystem {
        ActorSystem::from_builder_sized(config, epoch, 0)
    }

    /// A system whose last completed snapshot is `epoch`, its maps of actors sized for
    /// `actors` (a restore knows how many it brings: no map grows and rehashes on the way).
    pub(crate) fn from_builder_sized(
        config: SystemBuilder,
        epoch: Epoch,
        actors: usize,
    ) -> ActorSystem {
        let runtime = tokio::runtime::Handle::current();
        let id = SystemId::random();
        tracing::debug!(system = %id, name = %config.name, "actor system started");
        let remote = config.remote.as_ref().map(|hook| hook.0.clone());
        let engine = Arc::new(SnapshotEngine::new(config.node.clone(), epoch, remote));
        // An ask across a cut releases every deferred cut: their holders are told here,
        // from the sending task (releases touch no registry, only the deferring mailboxes).
        let weak = Arc::downgrade(&engine);
        engine.late.on_cross(Arc::new(move |snapshot| {
            if let Some(engine) = weak.upgrade() {
                let mut effects = engine.ask_crossed(snapshot);
                debug_assert!(effects.markers.is_none(), "a release starts no snapshot");
                for (mailbox, epoch) in effects.releases.drain(..) {
                    let _ = mailbox.signal(Signal::Release(epoch));
                }
                effects.resolve();
            }
        }));
        let asks = Arc::new(
            AskClock::new(config.ask_timeout, Some(runtime.clone()))
                .serving_inline(config.inline_asks),
        );
        let markers = broadcast::Markers::new(config.cut_help_delay);
        let inner = Arc::new(SystemInner {
            id,
            config,
            runtime,
            seq: AtomicU64::new(0),
            registry: Registry::with_capacity(actors),
            roots: sized_map(actors),
            shutting_down: AtomicBool::new(false),
            engine,
            moved: DashMap::new(),
            passivated: DashMap::new(),
            parked: Default::default(),
            stopped_cuts: DashMap::new(),
            stopped_for: AtomicU64::new(0),
            markers,
            asks,
        });
        let owner = Some(Arc::new(Owner { system: Arc::downgrade(&inner) }));
        let system = ActorSystem { inner, owner };
        // The remoting layer gets its handle now, before any actor runs or any link can
        // deliver to one.
        if let Some(hook) = &system.inner.config.remote {
            hook.0.attach(Host::new(&system));
        }
        system
    }

    /// A handle for the runtime's own use (a context, a timer, a task): it does not keep the
    /// system from shutting down when its users drop theirs.
    pub(crate) fn internal(&self) -> ActorSystem {
        ActorSystem { inner: self.inner.clone(), owner: None }
    }

    /// This system's id.
    pub fn id(&self) -> SystemId {
        self.inner.id
    }

    /// This system's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// This node's name, as written into checkpoints.
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// Spawns a top-level actor.
    pub fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_inner(SpawnOptions::new(), Make::Instance(actor), None, None)
    }

    /// Spawns a top-level actor registered under `name`.
    pub fn spawn_named<A: Actor>(
        &self,
        name: impl Into<String>,
        actor: A,
    ) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_inner(SpawnOptions::new().name(name), Make::Instance(actor), None, None)
    }

    /// Spawns a top-level actor built by `factory`, which is called again for each restart
    /// the options' [`RestartPolicy`](crate::RestartPolicy) allows.
    pub fn spawn_with<A: Actor>(
        &self,
        options: SpawnOptions,
        factory: impl FnMut() -> A + Send + 'static,
    ) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_inner(options, Make::Factory(Box::new(factory)), None, None)
    }

    /// Spawns an actor: a child of `parent` (born in the parent's `epoch`), or a top-level
    /// actor (born in the node's spawn epoch).
    pub(crate) fn spawn_inner<A: Actor>(
        &self,
        options: SpawnOptions,
        make: Make<A>,
        parent: Option<Arc<dyn AnyMailbox>>,
        epoch: Option<Epoch>,
    ) -> Result<ActorRef<A>, SpawnError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            return Err(SpawnError::ShuttingDown);
        }
        let id = ActorId::new(inner.id, inner.seq.fetch_add(1, Ordering::Relaxed) + 1);
        let capacity = options.capacity.map(|c| c.limit());
        // Admission and registration happen under the snapshot engine's lock, so a newborn
        // either sees a running snapshot's epoch or is reached by its marker broadcast.
        let (mailbox, _, marker) = inner.engine.admit(epoch, |epoch| {
            let mailbox = self.new_mailbox::<A>(id, options.name.clone(), capacity, epoch);
            if let Some(of) = &options.born_of {
                // Before anyone can find it.
                let _ = mailbox.meta.born_of.set(of.clone());
            }
            inner.registry.insert(mailbox.clone())?;
            Ok::<_, SpawnError>(mailbox)
        })?;
        if parent.is_none() {
            inner.roots.insert(id, mailbox.clone());
        }
        if let Some(marker) = marker {
            let _ = mailbox.push_control(Signal::Marker(marker));
        }
        let (actor, factory) = match make {
            Make::Instance(a) => (Some(a), None),
            Make::Factory(f) => (None, Some(f)),
        };
        let ctx = Context::new(mailbox.clone(), self.internal(), parent);
        Ok(self.start_runner(mailbox, actor, factory, ctx, Restarts::new(options.restart)))
    }

    /// A new, unregistered mailbox for an actor of type `A`.
    pub(crate) fn new_mailbox<A: Actor>(
        &self,
        id: ActorId,
        name: Option<String>,
        capacity: Option<usize>,
        epoch: Epoch,
    ) -> Arc<Mailbox<A>> {
        self.mailbox_resumed::<A>(id, name, capacity, amber_snapshot::ActorCut::new(epoch))
    }

    /// A new, unregistered mailbox for an actor of type `A` carrying on from another node
    /// with its place in the snapshot protocol (`capacity` `None`: the system's default).
    pub(crate) fn mailbox_resumed<A: Actor>(
        &self,
        id: ActorId,
        name: Option<String>,
        capacity: Option<usize>,
        cut: amber_snapshot::ActorCut,
    ) -> Arc<Mailbox<A>> {
        let meta = self.meta_of::<A>(id, name);
        let capacity = capacity.unwrap_or_else(|| self.inner.config.capacity.limit());
        Arc::new(Mailbox::<A>::with_cut(meta, capacity, cut))
    }

    /// What a mailbox or a ref knows of actor `id`, of type `A`, registered under `name`.
    fn meta_of<A: Actor>(&self, id: ActorId, name: Option<String>) -> Meta {
        Meta {
            id,
            type_name: self.type_name_of::<A>(),
            name: name.as_deref().map(Arc::from),
            asks: self.inner.asks.clone(),
            late: self.inner.engine.late.clone(),
            task: std::sync::OnceLock::new(),
            born_of: std::sync::OnceLock::new(),
        }
    }

    /// A message from an actor on another node, for an actor no longer here: if it is a
    /// tell (its sender never learns of the refusal; an ask is answered with an error) and
    /// the actor stopped after cutting for the running snapshot, with the message tagged
    /// before that cut, the message was in flight at the cut: it is recorded, as it would
    /// have been had it arrived while the actor was still registered (see
    /// [`Refusal`](crate::mailbox::core::Refusal)).
    fn record_refused(&self, message: &InboundMessage) {
        if message.reply.is_some() || message.from.is_none() {
            return;
        }
        let Some(cut) = self.inner.stopped_cuts.get(&message.to).map(|c| *c) else { return };
        if let Some(snapshot) = cut.recording(message.tag) {
            let record = amber_snapshot::InFlightRecord {
                to: message.to,
                from: message.from,
                epoch: message.tag,
                ask: false,
                payload: message.payload.clone(),
            };
            self.inner
                .engine
                .late
                .push(crate::mailbox::core::Late { snapshot, record: Ok(record) });
        }
    }

    /// Actor `id`, stopped at `cut`, is about to leave the registry: keeps its cut if it cut
    /// for the snapshot running here (for [`record_refused`](Self::record_refused)), and
    /// forgets those of snapshots that ended.
    pub(crate) fn remember_cut(&self, id: ActorId, cut: amber_snapshot::ActorCut) {
        let running = self.inner.engine.running();
        // Every entry is for the snapshot that ran when it was made: they are all forgotten
        // at once when another runs (or none), not looked through at every stop (which made
        // many actors stopping during one snapshot quadratic).
        let now = running.map_or(0, |epoch| epoch.0.saturating_add(1));
        if self.inner.stopped_for.load(Ordering::Acquire) != now
            && self.inner.stopped_for.swap(now, Ordering::AcqRel) != now
        {
            self.inner.stopped_cuts.clear();
        }
        if running.is_some() && cut.last_cut() == running {
            self.inner.stopped_cuts.insert(id, cut);
        }
    }

    /// The actors that passivated with a redirect, and where their messages go.
    pub(crate) fn inner_passivated(&self) -> &DashMap<ActorId, Arc<crate::passivate::Redirect>> {
        &self.inner.passivated
    }

    /// The reply routes of redirected asks (see [`crate::parked_reply`]).
    pub(crate) fn parked_replies(&self) -> &crate::parked_reply::ParkedReplies {
        &self.inner.parked
    }

    /// The live actor `id`, or the forwarding mailbox of one that moved to another node.
    pub(crate) fn local_or_moved(&self, id: ActorId) -> Option<Arc<dyn AnyMailbox>> {
        self.inner
            .registry
            .get(id)
            .or_else(|| self.inner.moved.get(&id).and_then(|m| m.value().last().cloned()))
    }

    /// The most messages an actor handles in one turn (see
    /// [`SystemBuilder::messages_per_turn`]).
    pub(crate) fn messages_per_turn(&self) -> u32 {
        self.inner.config.messages_per_turn
    }

    /// How long [`ActorRef::ask`] waits for a reply in this system.
    pub fn ask_timeout(&self) -> std::time::Duration {
        self.inner.config.ask_timeout
    }

    /// Whether this system was built with remoting ([`SystemBuilder::remote`]).
    pub fn is_remote(&self) -> bool {
        self.inner.config.remote.is_some()
    }

    pub(crate) fn remote_route(&self, id: ActorId) -> Option<Arc<dyn RemoteRoute>> {
        self.inner.config.remote.as_ref().and_then(|hook| hook.0.route_to(id))
    }

    /// Starts the task running an actor whose mailbox is registered.
    pub(crate) fn start_runner<A: Actor>(
        &self,
        mailbox: Arc<Mailbox<A>>,
        actor: Option<A>,
        factory: Option<Factory<A>>,
        ctx: Context<A>,
        restarts: Restarts,
    ) -> ActorRef<A> {
        self.start(Runner {
            actor,
            factory,
            ctx,
            inbox: Inbox::new(mailbox),
            restarts,
            codec: self.inner.config.types.codec::<A>(),
            resumed: false,
            departed: false,
            depth: 0,
            panicked: None,
            owed: None,
            traced: false,
            waits_room: false,
            ended: None,
        })
    }

    /// Starts the task of an actor rebuilt from a checkpoint (or moved here): it resumes
    /// without `on_start`; `factory` rebuilds it on the restarts `restarts` allows.
    pub(crate) fn start_runner_restored<A: Actor>(
        &self,
        mailbox: Arc<Mailbox<A>>,
        actor: A,
        factory: Option<Factory<A>>,
        ctx: Context<A>,
        restarts: Restarts,
    ) -> ActorRef<A> {
        self.start(Runner {
            actor: Some(actor),
            factory,
            ctx,
            inbox: Inbox::new(mailbox),
            restarts,
            codec: self.inner.config.types.codec::<A>(),
            resumed: true,
            departed: false,
            depth: 0,
            panicked: None,
            owed: None,
            traced: false,
            waits_room: false,
            ended: None,
        })
    }

    fn start<A: Actor>(&self, runner: Runner<A>) -> ActorRef<A> {
        let id = runner.ctx.id();
        let me = runner.ctx.myself().clone();
        let span = tracing::debug_span!("actor", id = %id, ty = std::any::type_name::<A>());
        // The cell starts empty: the task holds its runner until the actor has started, so
        // the driver cuts it only between two messages of a started actor. An actor rebuilt
        // from a checkpoint (or arriving from another node) has started: it is between two
        // messages until its task first runs, which after a restore can be a whole sweep of
        // the run queue away, so its runner starts in the cell.
        let cell = crate::runner::ActorCell::<A>::new();
        let task_of = Arc::downgrade(&cell) as std::sync::Weak<dyn crate::mailbox::core::CutNow>;
        let _ = runner.inbox.core().meta.task.set(task_of);
        let mut runner = Box::new(runner);
        runner.traced = !span.is_disabled();
        let runner = if runner.resumed {
            cell.put(runner);
            None
        } else {
            Some(runner)
        };
        // The cell keeps its task's abort handle, for a shutdown's deadline (the registry
        // finds it through the mailbox); the task drops it with the cell when it ends.
        let owner = cell.clone();
        // Without a subscriber that wants the span, the task is spawned bare: wrapped, its
        // future is moved once more and every poll of it enters and leaves a span that is
        // not there.
        let handle = if span.is_disabled() {
            self.inner.runtime.spawn(Runner::run(cell, runner))
        } else {
            self.inner.runtime.spawn(Runner::run(cell, runner).instrument(span))
        };
        owner.set_task(handle.abort_handle());
        me
    }

    /// The live actor registered under `name`, if it is an `A`.
    pub fn lookup<A: Actor>(&self, name: &str) -> Result<ActorRef<A>, LookupError> {
        let mailbox = self.inner.registry.by_name(name)?;
        downcast(mailbox, name)
    }

    /// The id and stable type name of the live actor registered under `name`, whatever its
    /// type (for lookups on behalf of other nodes).
    pub fn whereis(&self, name: &str) -> Option<(ActorId, &'static str)> {
        self.inner.registry.by_name(name).ok().map(|m| (m.id(), m.type_name()))
    }

    /// The stable type name actors of type `A` are known by: the registered name, or the
    /// Rust type path.
    pub(crate) fn type_name_of<A: Actor>(&self) -> &'static str {
        self.registered_name::<A>().unwrap_or(std::any::type_name::<A>())
    }

    /// The stable type name and registered name of the live actor `id`, if it runs on this
    /// node (not if it moved to another node).
    pub fn actor_info(&self, id: ActorId) -> Option<(&'static str, Option<String>)> {
        let mailbox = self.inner.registry.get(id)?;
        Some((mailbox.type_name(), mailbox.name().map(str::to_owned)))
    }

    /// The live actors of this node registered under a name that starts with `prefix`: each
    /// name with its actor's id, in no particular order. It scans every name, so it is for
    /// occasional use (sharding's rebalances list a node's entities with it).
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<(String, ActorId)> {
        self.inner.registry.names_with_prefix(prefix)
    }

    /// The live actor with this id, if it is an `A`.
    pub fn lookup_id<A: Actor>(&self, id: ActorId) -> Result<ActorRef<A>, LookupError> {
        let mailbox =
            self.local_or_moved(id).ok_or_else(|| LookupError::NotFound(id.to_string()))?;
        downcast(mailbox, &id.to_string())
    }

    /// The stable type name of actor type `A` if it is registered, else `None`.
    pub fn registered_name<A: Actor>(&self) -> Option<&'static str> {
        self.inner.config.types.codec::<A>().map(|c| c.type_name)
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
        let _scope = decode::DecodeScope::enter(self.clone());
        rmp_serde::from_slice(bytes).map_err(|e| CodecError::new(e.to_string()))
    }

    /// Stops every actor and waits until all have stopped. Top-level actors are told to stop;
    /// each stops its children (and waits for them) before its own `on_stop`. New spawns are
    /// refused from the moment this is called, and a running snapshot is aborted.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.asks.stop();
        self.stop_all().await;
    }

    /// Stops every actor, roots first (each stops its children before itself).
    async fn stop_all(&self) {
        let inner = &self.inner;
        tracing::debug!(system = %inner.id, "shutting down");
        self.run_effects(inner.engine.cancel());
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

    pub(crate) fn engine(&self) -> &Arc<SnapshotEngine> {
        &self.inner.engine
    }

    pub(crate) fn engine_arc(&self) -> Arc<SnapshotEngine> {
        self.inner.engine.clone()
    }

    pub(crate) fn moved(&self) -> &DashMap<ActorId, Vec<Arc<dyn AnyMailbox>>> {
        &self.inner.moved
    }

    /// Carries out what the snapshot engine asked for, outside its lock.
    /// Helps the running snapshot's marker broadcast, if any, once it has lasted
    /// [`SystemBuilder::cut_help_delay`] (see [`broadcast`]): called by actors' tasks
    /// between two slices of work.
    #[inline]
    pub(crate) fn help_broadcast(&self) {
        self.inner.markers.help_slice();
    }

    pub(crate) fn run_effects(&self, mut effects: Effects) {
        if let Some(epoch) = effects.markers.take() {
            // In the roster's order, not the registry's hash order: mostly spawn order, so
            // the cuts walk the actors' allocations forwards instead of at random, and miss
            // the cache and the TLB far less (100k idle actors: cut ~20 % faster than in
            // hash order).
            let mailboxes = self.inner.registry.mailboxes();
            tracing::debug!(%epoch, actors = mailboxes.1, "snapshot markers start");
            self.inner.markers.start(epoch, mailboxes);
            // Idle workers help too (busy ones help between their actors' slices).
            for _ in 1..self.inner.runtime.metrics().num_workers() {
                let system = self.internal();
                self.inner.runtime.spawn(async move { system.inner.markers.help() });
            }
            self.inner.markers.help();
        }
        for (mailbox, epoch) in effects.releases.drain(..) {
            let _ = mailbox.signal(Signal::Release(epoch));
        }
        effects.resolve();
    }

    pub(crate) fn unregister(&self, id: ActorId, name: Option<&str>, root: bool) {
        self.inner.registry.remove(id, name);
        if root {
            self.inner.roots.remove(&id);
        }
    }

    pub(crate) fn add_root(&self, mailbox: Arc<dyn AnyMailbox>) {
        self.inner.roots.insert(mailbox.id(), mailbox);
    }

    pub(crate) fn config(&self) -> &SystemBuilder {
        &self.inner.config
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

/// A map with room for `actors` actors. Many actors (a restore's) are registered from every
/// core at once: more shards than dashmap's default (4 per core) keep the threads off each
/// other's shard locks.
///
/// Keyed by actor id, hashed with foldhash (seeded per process): ids are numbered by the
/// systems that spawn them, not chosen by whoever sends to them, and SipHash made hashing
/// a large part of each map operation on the spawn path.
pub(crate) fn sized_map<V>(actors: usize) -> IdMap<V> {
    let hasher = foldhash::fast::RandomState::default();
    if actors < MANY {
        DashMap::with_capacity_and_hasher(actors, hasher)
    } else {
        DashMap::with_capacity_and_hasher_and_shard_amount(actors, hasher, SHARDS)
    }
}

/// A concurrent map keyed by actor id (see [`sized_map`]).
pub(crate) type IdMap<V> = DashMap<ActorId, V, foldhash::fast::RandomState>;

/// From how many actors a map gets [`SHARDS`] shards.
const MANY: usize = 4096;

/// The shards of a map for [`MANY`] actors or more.
const SHARDS: usize = 128;

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
