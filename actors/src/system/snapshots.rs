//! Snapshots, checkpoints and restore on [`ActorSystem`] and [`SystemBuilder`].

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use amber_snapshot::{
    AbortReason, ActorEntry, ActorId, Checkpoint, CheckpointInfo, CheckpointStore, InFlightRecord,
    Refusal, StateRecord, StoreError,
};
use tracing::Instrument;

use super::{Host, SystemBuilder, fan_out};
use crate::any_mailbox::AnyMailbox;
use crate::snapshot::restore::{Plan, PrepareFn, Prepared, PreparedActor, RestoreFns};
use crate::snapshot::wire::Wire;
use crate::snapshot::{AbortCause, RestoreError, Skipped, SnapshotError};
use crate::supervision::Restarts;
use crate::trace::Written;
use crate::{ActorState, ActorSystem, Context};

/// How long [`ActorSystem::snapshot`] lets a snapshot run before aborting it.
pub const DEFAULT_SNAPSHOT_DEADLINE: Duration = Duration::from_secs(30);

/// How many attempts [`ActorSystem::snapshot`] makes when an attempt is found inconsistent.
pub const SNAPSHOT_ATTEMPTS: u32 = 5;

impl ActorSystem {
    /// Takes a consistent global snapshot of every actor of this system while it runs (see
    /// the [`snapshot`](crate::snapshot) module for what that guarantees) and returns it as a
    /// checkpoint, not yet written anywhere. Each attempt aborts after
    /// [`DEFAULT_SNAPSHOT_DEADLINE`]; an attempt found
    /// [`Inconsistent`](SnapshotError::Inconsistent) is retried, up to
    /// [`SNAPSHOT_ATTEMPTS`] attempts in all.
    pub async fn snapshot(&self) -> Result<Checkpoint, SnapshotError> {
        let mut attempt = 1;
        loop {
            match self.snapshot_within(DEFAULT_SNAPSHOT_DEADLINE).await {
                Err(SnapshotError::Inconsistent { epoch, taints })
                    if attempt < SNAPSHOT_ATTEMPTS =>
                {
                    tracing::debug!(%epoch, attempt, taint = %taints[0], "retrying an inconsistent snapshot");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One snapshot attempt, aborted if it has not completed within `deadline` (for example
    /// because a handler never returns). An aborted or inconsistent snapshot leaves no
    /// trace; the next one simply has a higher epoch. In a cluster, a snapshot refused by a
    /// node that still ends another node's snapshot is started again within the deadline,
    /// after a short backoff (the other one's end is on its way); a snapshot this node
    /// coordinates already is [`SnapshotError::InProgress`] at once.
    pub async fn snapshot_within(&self, deadline: Duration) -> Result<Checkpoint, SnapshotError> {
        if self.is_shutting_down() {
            return Err(SnapshotError::ShuttingDown);
        }
        let started = std::time::Instant::now();
        let span = crate::trace::snapshot_span();
        let result = self.snapshot_attempt(deadline).instrument(span.clone()).await;
        crate::trace::snapshot_ended(&span, result.as_ref().ok(), started.elapsed());
        crate::metrics::snapshot_attempt(&result, started.elapsed());
        result
    }

    /// Takes the snapshot, starting it again while a node (this one included) refuses it
    /// because it still takes another coordinator's snapshot (or follows another for the
    /// same epoch), with a short backoff, until `deadline` has passed: such a refusal is
    /// over once that snapshot's `Complete` reaches the node, which may come after the other
    /// coordinator's caller has its checkpoint (a settled node's part is taken before the
    /// `Complete`, see `NodeSnapshot::settled`).
    async fn snapshot_attempt(&self, deadline: Duration) -> Result<Checkpoint, SnapshotError> {
        let until = tokio::time::Instant::now() + deadline;
        let mut backoff = Duration::from_millis(1);
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let result = self.snapshot_once(left).await;
            let refused = match &result {
                Err(SnapshotError::Aborted {
                    reason:
                        AbortCause::Protocol(AbortReason::Rejected {
                            reason: Refusal::TakingOther { .. } | Refusal::FollowsOther { .. },
                            ..
                        }),
                    ..
                }) => true,
                // This node still takes another coordinator's snapshot (not one of its own,
                // which is the caller's to wait for).
                Err(SnapshotError::InProgress { .. }) => !self.engine().coordinating(),
                _ => false,
            };
            if !refused || tokio::time::Instant::now() + backoff >= until || self.is_shutting_down()
            {
                return result;
            }
            if let Err(e) = &result {
                tracing::debug!(error = %e, ?backoff, "snapshot refused while another one ends; starting it again");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    async fn snapshot_once(&self, deadline: Duration) -> Result<Checkpoint, SnapshotError> {
        let (epoch, mut done, effects) = self.engine().start(deadline)?;
        crate::trace::snapshot_started(epoch);
        self.run_effects(effects);
        let result = match tokio::time::timeout(deadline, &mut done).await {
            Ok(result) => result,
            Err(_) => {
                self.run_effects(self.engine().check_deadline());
                done.await
            }
        };
        result.unwrap_or_else(|_| {
            Err(SnapshotError::Aborted { epoch, reason: AbortCause::SystemDropped })
        })
    }

    /// Records `value` under `key` in this node's entry of every checkpoint taken from now
    /// on ([`NodeEntry::annotations`](amber_snapshot::NodeEntry::annotations), read back with
    /// [`Manifest::annotation`](amber_snapshot::Manifest::annotation)): what a reader of the
    /// checkpoint needs to know of how this node ran, e.g. a sharding's shard count, which
    /// `amber_remote`'s `Sharding` records under `sharding:<type name>`. The value in a
    /// checkpoint is the one set when the node made its part. Returns what was recorded under
    /// `key` before. Annotations are not restored: whatever set one sets it again on the
    /// restored system.
    pub fn annotate_checkpoints(
        &self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Option<String> {
        self.engine().annotate(key.into(), Some(value.into()))
    }

    /// Stops recording `key` in this node's entry of the checkpoints taken from now on
    /// ([`annotate_checkpoints`](Self::annotate_checkpoints)); returns what it recorded.
    pub fn remove_checkpoint_annotation(&self, key: &str) -> Option<String> {
        self.engine().annotate(key.to_owned(), None)
    }

    /// What this node records of itself in the checkpoints it takes part in now
    /// ([`annotate_checkpoints`](Self::annotate_checkpoints)).
    pub fn checkpoint_annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.engine().annotations()
    }

    /// Takes a snapshot and writes it to `store` as the next checkpoint (the store is called
    /// on a blocking thread). Returns what was written, and logs it (INFO).
    pub async fn checkpoint<S>(&self, store: &Arc<S>) -> Result<CheckpointInfo, SnapshotError>
    where
        S: CheckpointStore + ?Sized + 'static,
    {
        let span = crate::trace::checkpoint_span();
        let mut checkpoint = self.snapshot().instrument(span.clone()).await?;
        let epoch = checkpoint.manifest.epoch;
        let store = store.clone();
        self.write_with(span, epoch, move || {
            checkpoint.manifest.id = store.next_id()?;
            // Dropped on the blocking thread too: a large checkpoint takes a while to free.
            store.save(&checkpoint).map(|info| (info, Written::of(&checkpoint)))
        })
        .await
    }

    /// Writes `checkpoint`, a snapshot of this system, to `store`, as
    /// [`checkpoint`](Self::checkpoint) does after its snapshot: for a caller that keeps the
    /// snapshot (to check it, or to send it elsewhere too) while it is written. Give it its
    /// id first, the store's next one ([`CheckpointStore::next_id`]).
    ///
    /// The write starts at once, on a blocking thread, whether or not the returned future is
    /// polled; the future gives what was written. It is logged (INFO) and counted like
    /// `checkpoint`'s.
    pub fn write_checkpoint<S>(
        &self,
        store: &Arc<S>,
        checkpoint: Arc<Checkpoint>,
    ) -> impl Future<Output = Result<CheckpointInfo, SnapshotError>> + Send + 'static
    where
        S: CheckpointStore + ?Sized + 'static,
    {
        let span = crate::trace::checkpoint_span();
        let epoch = checkpoint.manifest.epoch;
        let store = store.clone();
        self.write_with(span, epoch, move || {
            store.save(&checkpoint).map(|info| (info, Written::of(&checkpoint)))
        })
    }

    /// Runs `write` on a blocking thread at once; the future logs and counts what it wrote.
    fn write_with(
        &self,
        span: tracing::Span,
        epoch: amber_snapshot::Epoch,
        write: impl FnOnce() -> Result<(CheckpointInfo, Written), StoreError> + Send + 'static,
    ) -> impl Future<Output = Result<CheckpointInfo, SnapshotError>> + Send + 'static {
        let started = std::time::Instant::now();
        let writing = tokio::task::spawn_blocking(write);
        async move {
            let (info, written) = writing
                .instrument(span.clone())
                .await
                .map_err(|e| SnapshotError::Aborted {
                    epoch,
                    reason: AbortCause::Writer { message: e.to_string() },
                })?
                .map_err(SnapshotError::Store)?;
            crate::metrics::checkpoint_written(info.bytes, started.elapsed());
            crate::trace::checkpoint_written(&span, &written, &info, started.elapsed());
            Ok(info)
        }
    }

    /// Writes a checkpoint to `store` every `interval` until the returned handle is stopped
    /// or dropped, or the system shuts down. A failed checkpoint is logged and counted; the
    /// previous one stays valid and the schedule goes on.
    ///
    /// A zero `interval` is refused ([`ScheduleError::ZeroInterval`]): it could never run.
    /// Keep the handle: dropping it stops the schedule.
    pub fn checkpoint_every<S>(
        &self,
        store: Arc<S>,
        interval: Duration,
    ) -> Result<CheckpointSchedule, ScheduleError>
    where
        S: CheckpointStore + ?Sized + 'static,
    {
        if interval.is_zero() {
            return Err(ScheduleError::ZeroInterval);
        }
        let stats = Arc::new(ScheduleStats::default());
        // The schedule does not keep the system alive: dropping it shuts the schedule down.
        let (system, task_stats) = (self.internal(), stats.clone());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            while !system.is_shutting_down() {
                ticks.tick().await;
                match system.checkpoint(&store).await {
                    Ok(info) => {
                        tracing::debug!(checkpoint = %info.id, "periodic checkpoint written");
                        task_stats.written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(SnapshotError::ShuttingDown) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "periodic checkpoint failed");
                        task_stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            task_stats.stopped.store(true, Ordering::Release);
        });
        Ok(CheckpointSchedule { task: task.abort_handle(), stats })
    }

    /// The snapshot this node is taking part in right now, if any (started here or by
    /// another node of its cluster).
    pub fn snapshot_running(&self) -> Option<amber_snapshot::Epoch> {
        self.engine().running()
    }

    /// Starts an actor rebuilt from a checkpoint, after every restored mailbox is filled.
    pub(crate) fn start_restored<A: ActorState>(&self, restored: PreparedActor<A>) {
        let PreparedActor {
            mailbox,
            actor,
            timers,
            parent,
            children,
            watching,
            watching_elsewhere,
            epoch,
            restart,
            factory,
            ..
        } = restored;
        // The actor's epoch is its mailbox's cut, made with the checkpoint's epoch.
        let Ok(((), _, _)) = self.engine().admit(Some(epoch), |_| Ok::<_, Infallible>(()));
        if parent.is_none() {
            self.add_root(mailbox.clone());
        }
        let mut ctx = Context::new(mailbox.clone(), self.internal(), parent);
        ctx.children = children.into_iter().map(|c| (c.id(), c)).collect();
        for watched in watching {
            ctx.watching.insert(watched.id());
            if let Err((_, reason)) = watched.add_watcher(mailbox.clone()) {
                let down = crate::Down { actor: watched.id(), reason };
                let _ = mailbox.push_control(crate::signal::Signal::Down(down));
            }
        }
        for watched in watching_elsewhere {
            ctx.watch_id(watched);
        }
        crate::snapshot::restore::arm_timers(&mut ctx, &mailbox, timers);
        self.start_runner_restored(mailbox, actor, factory, ctx, Restarts::new(restart));
    }
}

/// Why [`ActorSystem::checkpoint_every`] refused a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The interval is zero: the schedule could never run.
    #[error("a checkpoint schedule needs a non-zero interval")]
    ZeroInterval,
}

/// A running [`ActorSystem::checkpoint_every`] schedule. Dropping it stops the schedule.
#[derive(Debug)]
#[must_use = "dropping the schedule stops it: keep it for as long as checkpoints should be written"]
pub struct CheckpointSchedule {
    task: tokio::task::AbortHandle,
    stats: Arc<ScheduleStats>,
}

#[derive(Debug, Default)]
struct ScheduleStats {
    written: AtomicU64,
    failed: AtomicU64,
    stopped: AtomicBool,
}

impl CheckpointSchedule {
    /// Checkpoints written so far.
    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Relaxed)
    }

    /// Checkpoints that failed so far.
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    /// Stops the schedule (a checkpoint being written is abandoned; the store's atomic
    /// write leaves no partial file).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for CheckpointSchedule {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SystemBuilder {
    /// Builds a system from a checkpoint: every actor rebuilt from its registered type with
    /// its id, name, state, links and timers, its recorded in-flight messages queued first
    /// in recorded order; then all are started (without running `on_start` again: they
    /// resume). Nothing starts unless everything decoded.
    ///
    /// A large checkpoint (thousands of actors) is decoded on one thread per core at once,
    /// each inside this runtime's context, so [`ActorState::decode_state`] may run on
    /// threads other than the caller's, several at a time; the actors are started from the
    /// runtime's workers. A failure is reported as the first failing actor in manifest
    /// order, as if decoded one by one.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn restore(self, checkpoint: &Checkpoint) -> Result<ActorSystem, RestoreError> {
        Ok(self.restore_where(checkpoint, |_| true)?.start())
    }

    /// Builds a system from the actors of `checkpoint` that `keep` selects (this node's
    /// share, when a checkpoint is spread over several nodes), with their recorded in-flight
    /// messages queued, but does not start them yet: a cluster first links to the nodes
    /// holding the other actors, so that the first messages the restored actors send reach
    /// them. Refs to actors not kept resolve through the system's
    /// [`RemoteDirectory`](crate::remote::RemoteDirectory). A kept actor whose parent is
    /// not kept becomes a top-level actor; a kept actor that watched one not kept watches it
    /// again by id when it starts, through the directory (one it cannot reach then is reported
    /// `Down` at once, as by [`Context::watch`](crate::Context::watch)).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn restore_where(
        self,
        checkpoint: &Checkpoint,
        keep: impl Fn(&ActorEntry) -> bool,
    ) -> Result<PendingRestore, RestoreError> {
        let span = crate::trace::restore_span(checkpoint);
        let in_span = span.enter(); // a restore never awaits
        checkpoint.validate().map_err(|e| RestoreError::Invalid(e.to_string()))?;
        let epoch = checkpoint.manifest.epoch;
        let started = std::time::Instant::now();
        let actors = &checkpoint.manifest.actors;
        // The kept actors, by their place in the manifest.
        let kept: Vec<usize> = (0..actors.len()).filter(|&i| keep(&actors[i])).collect();
        let system = ActorSystem::from_builder_sized(self, epoch, kept.len());
        // Until every restored actor has started (and is admitted to snapshots), a snapshot
        // would miss them: this node refuses snapshots (`SnapshotError::RestorePending`).
        system.engine().restore_pending();
        let runtime = &system.inner.runtime;

        // 1. Every actor's type and name, checked in manifest order (the first problem is
        //    the one reported); then every mailbox, so refs in states and messages resolve.
        let mut fns = Vec::with_capacity(kept.len());
        let mut names = HashSet::new();
        let mut last: Option<(&str, RestoreFns)> = None;
        for &i in &kept {
            let entry = &actors[i];
            let restore = match last {
                Some((name, restore)) if name == entry.type_name => restore,
                _ => {
                    let registered =
                        system.config().types.named(&entry.type_name).ok_or_else(|| {
                            RestoreError::UnknownType {
                                actor: entry.id,
                                type_name: entry.type_name.clone(),
                            }
                        })?;
                    last = Some((&entry.type_name, registered.restore));
                    registered.restore
                }
            };
            if let Some(name) = &entry.name
                && !names.insert(name.as_str())
            {
                return Err(RestoreError::Name(name.clone()));
            }
            fns.push(restore);
        }
        let todo: Vec<(usize, RestoreFns)> = kept.iter().copied().zip(fns).collect();
        let created = fan_out::in_parts(runtime, &todo, CHUNK, THREADS_FROM, |part| {
            let made: Vec<Arc<dyn AnyMailbox>> = part
                .iter()
                .map(|&(i, restore)| (restore.create)(&system, &actors[i], epoch))
                .collect();
            system
                .registry()
                .insert_all(&made)
                .map_err(|e| RestoreError::Invalid(e.to_string()))?;
            Ok::<_, RestoreError>(
                made.into_iter().zip(part.iter().map(|(_, r)| r.prepare)).collect::<Vec<_>>(),
            )
        });
        let mut mailboxes: Vec<Arc<dyn AnyMailbox>> = Vec::with_capacity(kept.len());
        let mut prepare = Vec::with_capacity(kept.len());
        for part in created {
            for (mailbox, p) in part? {
                mailboxes.push(mailbox);
                prepare.push(p);
            }
        }
        // Each kept actor's place in `kept` (and `mailboxes`), by id.
        let mut place: HashMap<ActorId, usize, crate::LocalHash> =
            HashMap::with_capacity_and_hasher(kept.len(), crate::LocalHash::default());
        place.extend(kept.iter().enumerate().map(|(k, &i)| (actors[i].id, k)));

        // 2. Links and recorded messages, grouped per actor; states by place in the manifest
        //    (where a checkpoint keeps them), else by id.
        let mut children: Vec<Vec<Arc<dyn AnyMailbox>>> = vec![Vec::new(); kept.len()];
        for (k, &i) in kept.iter().enumerate() {
            if let Some(&parent) = actors[i].parent.as_ref().and_then(|p| place.get(p)) {
                children[parent].push(mailboxes[k].clone());
            }
        }
        let mut in_flight: Vec<Vec<&InFlightRecord>> = vec![Vec::new(); kept.len()];
        let mut recorded = 0;
        for record in &checkpoint.in_flight {
            if let Some(&k) = place.get(&record.to) {
                in_flight[k].push(record);
                recorded += 1;
            }
        }
        let states = &checkpoint.states;
        let by_place =
            states.len() == actors.len() && states.iter().zip(actors).all(|(s, a)| s.id == a.id);
        let by_id: HashMap<ActorId, &StateRecord, crate::LocalHash> =
            if by_place { HashMap::default() } else { states.iter().map(|s| (s.id, s)).collect() };
        let state_of = |i: usize| if by_place { &states[i] } else { by_id[&actors[i].id] };

        // 3. Decode everything, and fill every mailbox with its recorded messages (no actor
        //    runs before all are prepared); any failure drops the whole system unstarted.
        let todo: Vec<(usize, PrepareFn)> = prepare.into_iter().enumerate().collect();
        let (mailboxes, children, in_flight) = (&mailboxes, &children, &in_flight);
        let decoded = fan_out::in_parts(runtime, &todo, CHUNK, THREADS_FROM, |part| {
            let mut prepared: Vec<Box<dyn Prepared>> = Vec::with_capacity(part.len());
            for &(k, prepare) in part {
                let entry = &actors[kept[k]];
                let plan = Plan {
                    mailbox: mailboxes[k].clone(),
                    entry,
                    state: state_of(kept[k]),
                    in_flight: in_flight[k].clone(),
                    parent: entry.parent.and_then(|p| place.get(&p)).map(|&p| mailboxes[p].clone()),
                    children: children[k].clone(),
                    // Each actor re-takes the watches its own cut recorded (the watched
                    // side's list may be ahead of or behind the watcher's cut, e.g. a watch
                    // still crossing a link): restored here, through their mailbox;
                    // elsewhere, by id through the directory when it starts.
                    watching: entry
                        .watching
                        .iter()
                        .filter_map(|w| place.get(w))
                        .map(|&w| mailboxes[w].clone())
                        .collect(),
                    watching_elsewhere: entry
                        .watching
                        .iter()
                        .filter(|w| !place.contains_key(w))
                        .copied()
                        .collect(),
                    epoch,
                };
                let mut actor = prepare(&system, plan)?;
                actor.enqueue();
                prepared.push(actor);
            }
            Ok::<_, RestoreError>(prepared)
        });
        let mut prepared: Vec<Box<dyn Prepared>> = Vec::with_capacity(kept.len());
        for part in decoded {
            prepared.extend(part?);
        }
        drop(in_span); // the INFO line goes beside the span (see crate::trace)
        crate::trace::restored(&span, checkpoint, kept.len(), recorded, started.elapsed());
        Ok(PendingRestore { system, prepared })
    }

    /// Restores from the newest checkpoint in `store` that both loads and
    /// [restores](Self::restore). A newer one that does not is skipped: one that does not
    /// load (torn, corrupt: [`RestoreError::Store`]) as well as one that loads but does not
    /// restore (a state that does not decode, a type this system does not register, …).
    /// Each skipped checkpoint is listed in [`Restored::skipped`] with its error (and logged
    /// as a warning). A failed attempt starts nothing, so the next one begins from the same
    /// settings.
    ///
    /// Fails with [`RestoreError::NoCheckpoint`] if the store is empty,
    /// [`RestoreError::NoneRestores`] (listing why each failed) if no checkpoint restores,
    /// and [`RestoreError::Store`] if the store cannot be listed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn restore_latest<S>(self, store: &S) -> Result<Restored, RestoreError>
    where
        S: CheckpointStore + ?Sized,
    {
        let ids = store.ids()?;
        if ids.is_empty() {
            return Err(RestoreError::NoCheckpoint);
        }
        let mut skipped = Vec::new();
        for id in ids.into_iter().rev() {
            let attempt = store
                .load(id)
                .map_err(RestoreError::Store)
                .and_then(|checkpoint| Ok((self.clone().restore(&checkpoint)?, checkpoint)));
            match attempt {
                Ok((system, checkpoint)) => return Ok(Restored { system, checkpoint, skipped }),
                Err(error) => {
                    tracing::warn!(checkpoint = %id, %error, "skipping a checkpoint that does not restore");
                    skipped.push(Skipped { id, error });
                }
            }
        }
        Err(RestoreError::NoneRestores(skipped))
    }
}

/// What [`SystemBuilder::restore_latest`] restored.
#[derive(Debug)]
pub struct Restored {
    /// The restored system, its actors started.
    pub system: ActorSystem,
    /// The checkpoint it was built from.
    pub checkpoint: Checkpoint,
    /// The newer checkpoints passed over, newest first, each with why (empty if the newest
    /// one restored).
    pub skipped: Vec<Skipped>,
}

/// From how many actors a restore decodes on several threads.
const THREADS_FROM: usize = 4096;

/// How many actors a thread of a restore decodes at a time.
const CHUNK: usize = 512;

/// How many restored actors a thread starts at a time.
const START_CHUNK: usize = 256;

/// A system rebuilt from a checkpoint whose actors have not started yet
/// ([`SystemBuilder::restore_where`]). Messages sent to them queue behind their recorded
/// in-flight messages. Until [`start`](Self::start), the system refuses snapshots
/// ([`SnapshotError::RestorePending`]; in a cluster, so does every snapshot this node is
/// asked to take part in), which would miss the unstarted actors. Dropping it without
/// `start` leaves the actors unstarted; shut the system down.
#[must_use = "the restored actors run only once started"]
pub struct PendingRestore {
    system: ActorSystem,
    prepared: Vec<Box<dyn Prepared>>,
}

impl PendingRestore {
    /// The system the actors live in.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// How many actors were restored.
    pub fn actors(&self) -> usize {
        self.prepared.len()
    }

    /// Starts every restored actor (without `on_start`: they resume) and returns the system
    /// once all are started. Only from then on does the system take part in snapshots:
    /// before, they are refused with [`SnapshotError::RestorePending`] (a snapshot would miss
    /// the restored actors).
    ///
    /// The actors are started from the runtime's workers, a share each; the caller takes
    /// part if it is itself a task, or if the workers do not get to it.
    pub fn start(self) -> ActorSystem {
        // A spawn from a thread that is not one of the runtime's workers takes the inject
        // queue's lock and wakes a worker: for 100k actors, half the restore. From a worker
        // it goes to that worker's own run queue.
        fan_out::fan_out(&self.system.inner.runtime, self.prepared, START_CHUNK, |p| p.start());
        self.system.engine().restore_started();
        self.system
    }
}

impl std::fmt::Debug for PendingRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRestore")
            .field("system", &self.system)
            .field("actors", &self.prepared.len())
            .finish()
    }
}

impl Host {
    /// A snapshot protocol message from node `from` (sent by its
    /// [`RemoteDirectory::send_snapshot`](crate::remote::RemoteDirectory::send_snapshot)).
    /// A message that does not decode is logged and dropped: the snapshot it belonged to
    /// aborts at its deadline.
    pub fn on_snapshot_message(&self, from: &str, bytes: &[u8]) {
        match Wire::decode(bytes) {
            Ok(wire) => self.system().run_effects(self.system().engine().on_wire(from, wire)),
            Err(e) => tracing::warn!(node = %from, error = %e, "malformed snapshot message"),
        }
    }

    /// Node `node` is down (its link was lost): a snapshot it takes part in, or
    /// coordinates, aborts here. The cluster calls this on every node-down event.
    pub fn node_down(&self, node: &str) {
        self.system().run_effects(self.system().engine().node_down(node));
    }
}
