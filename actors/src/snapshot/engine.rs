//! The snapshot engine of one system: the node's protocol state, the coordinator, and the
//! collection of the running snapshot, behind one lock.
//!
//! Lock order: the engine lock may be held while inserting into the registry (spawn), and is
//! never held while taking a mailbox lock. Mailbox locks are held while pushing to the late
//! sink, a leaf lock. Actions that touch mailboxes (the marker broadcast) are returned as
//! [`Effects`] and carried out by the caller after the engine lock is released.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amber_snapshot::{
    ActorEntry, ActorId, Checkpoint, CheckpointId, Coordinator, CoordinatorAction, Cut, Epoch,
    InFlightRecord, Manifest, NodeAction, NodeEntry, NodeSnapshot, StateRecord,
};
use tokio::sync::oneshot;

use super::error::SnapshotError;
use crate::mailbox::core::LateSink;

/// What an actor hands over at its cut.
#[derive(Debug)]
pub(crate) struct CutReport {
    pub(crate) entry: ActorEntry,
    pub(crate) state: Result<StateRecord, String>,
    /// The backlog at the cut that is in flight, in queue order.
    pub(crate) backlog: Vec<Result<InFlightRecord, String>>,
}

/// Where the outcome of a snapshot goes.
type Waiter = oneshot::Sender<Result<Checkpoint, SnapshotError>>;

/// Where the caller of a snapshot waits for its outcome.
pub(crate) type Outcome = oneshot::Receiver<Result<Checkpoint, SnapshotError>>;

/// Work for the caller once the engine lock is released.
#[derive(Debug, Default)]
#[must_use = "effects must be carried out"]
pub(crate) struct Effects {
    /// Put `Marker(e)` on the control lane of every live actor.
    pub(crate) markers: Option<Epoch>,
    /// Answer the snapshot's caller.
    resolve: Option<(Waiter, Result<Checkpoint, SnapshotError>)>,
}

impl Effects {
    /// Answers the waiting caller, if any (the marker broadcast, if any, is the caller's).
    pub(crate) fn resolve(&mut self) {
        if let Some((waiter, result)) = self.resolve.take() {
            let _ = waiter.send(result);
        }
    }
}

#[derive(Debug)]
struct Round {
    epoch: Epoch,
    started: Instant,
    actors: Vec<ActorEntry>,
    states: Vec<StateRecord>,
    backlog: Vec<InFlightRecord>,
    problems: Vec<String>,
    waiter: Option<Waiter>,
}

#[derive(Debug)]
struct EngineState {
    node: NodeSnapshot<String>,
    coordinator: Coordinator<String>,
    round: Option<Round>,
}

/// One system's snapshot machinery.
#[derive(Debug)]
pub(crate) struct SnapshotEngine {
    me: String,
    clock: Instant,
    state: Mutex<EngineState>,
    pub(crate) late: Arc<LateSink>,
}

impl SnapshotEngine {
    /// The engine of node `me`, whose last completed snapshot is `epoch`.
    pub(crate) fn new(me: String, epoch: Epoch) -> Self {
        SnapshotEngine {
            state: Mutex::new(EngineState {
                node: NodeSnapshot::new(me.clone(), epoch),
                coordinator: Coordinator::new(epoch),
                round: None,
            }),
            me,
            clock: Instant::now(),
            late: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new actor. `epoch` is its parent's epoch, or `None` when spawned from outside
    /// (it then gets the node's spawn epoch). `register` makes it visible to the marker
    /// broadcast and runs under the engine lock; if it fails the admission is undone.
    /// Returns what `register` returned, the actor's epoch, and a marker it must get first.
    pub(crate) fn admit<R, E>(
        &self,
        epoch: Option<Epoch>,
        register: impl FnOnce(Epoch) -> Result<R, E>,
    ) -> Result<(R, Epoch, Option<Epoch>), E> {
        let mut st = self.lock();
        let epoch = epoch.unwrap_or_else(|| st.node.spawn_epoch());
        let marker = st.node.actor_spawned(epoch);
        match register(epoch) {
            Ok(r) => {
                // A spawn never completes a snapshot or starts one: nothing to pump.
                Ok((r, epoch, marker))
            }
            Err(e) => {
                // Undoing the admission may complete a snapshot (it can never start one, so
                // there are no markers to send): answer its caller.
                st.node.actor_stopped(epoch);
                let mut effects = self.pump(&mut st);
                drop(st);
                effects.resolve();
                Err(e)
            }
        }
    }

    /// An actor took `cut` and hands over what it captured.
    pub(crate) fn cut(&self, cut: Cut, report: CutReport) -> Effects {
        let mut st = self.lock();
        if let Some(round) = st.round.as_mut().filter(|r| r.epoch == cut.to) {
            round.actors.push(report.entry);
            match report.state {
                Ok(state) => round.states.push(state),
                Err(p) => round.problems.push(p),
            }
            for record in report.backlog {
                match record {
                    Ok(r) => round.backlog.push(r),
                    Err(p) => round.problems.push(p),
                }
            }
        }
        st.node.actor_cut(cut);
        self.pump(&mut st)
    }

    /// An actor whose epoch was `epoch` stopped.
    pub(crate) fn stopped(&self, epoch: Epoch) -> Effects {
        let mut st = self.lock();
        st.node.actor_stopped(epoch);
        self.pump(&mut st)
    }

    /// Starts a snapshot that aborts if not complete within `deadline`.
    pub(crate) fn start(
        &self,
        deadline: Duration,
        actors: usize,
    ) -> Result<(Epoch, Outcome, Effects), SnapshotError> {
        let mut st = self.lock();
        let due = self.now_ms().saturating_add(deadline.as_millis() as u64);
        let epoch = st.coordinator.start([self.me.clone()], Some(due)).map_err(|e| match e {
            amber_snapshot::StartError::InProgress { running } => {
                SnapshotError::InProgress { running }
            }
            other => SnapshotError::Aborted { epoch: Epoch::ZERO, reason: other.to_string() },
        })?;
        let (tx, rx) = oneshot::channel();
        st.round = Some(Round {
            epoch,
            started: Instant::now(),
            actors: Vec::with_capacity(actors),
            states: Vec::with_capacity(actors),
            backlog: Vec::new(),
            problems: Vec::new(),
            waiter: Some(tx),
        });
        tracing::debug!(%epoch, "snapshot started");
        let effects = self.pump(&mut st);
        Ok((epoch, rx, effects))
    }

    /// The deadline of the running snapshot may have passed.
    pub(crate) fn check_deadline(&self) -> Effects {
        let mut st = self.lock();
        let now = self.now_ms();
        st.coordinator.handle_timeout(now);
        self.pump(&mut st)
    }

    /// Aborts the running snapshot, if any (shutdown).
    pub(crate) fn cancel(&self) -> Effects {
        let mut st = self.lock();
        st.coordinator.cancel();
        self.pump(&mut st)
    }

    /// The last completed snapshot epoch.
    pub(crate) fn completed(&self) -> Epoch {
        self.lock().coordinator.last_completed()
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Drains the node's and the coordinator's actions until both are quiet.
    fn pump(&self, st: &mut EngineState) -> Effects {
        let mut effects = Effects::default();
        loop {
            let mut progressed = false;
            while let Some(action) = st.node.poll() {
                progressed = true;
                match action {
                    NodeAction::Markers(epoch) => effects.markers = Some(epoch),
                    NodeAction::Report(report) => st.coordinator.handle_report(report),
                }
            }
            while let Some(action) = st.coordinator.poll() {
                progressed = true;
                match action {
                    CoordinatorAction::Send { to, command } => {
                        debug_assert_eq!(to, self.me, "one node: every command is for this node");
                        st.node.handle_command(command);
                    }
                    CoordinatorAction::Completed(epoch) => {
                        if let Some(round) = st.round.take().filter(|r| r.epoch == epoch) {
                            effects.resolve = self.finish(round);
                        }
                    }
                    CoordinatorAction::Aborted { epoch, reason } => {
                        tracing::warn!(%epoch, %reason, "snapshot aborted");
                        let _ = self.late.take(epoch);
                        if let Some(mut round) = st.round.take().filter(|r| r.epoch == epoch)
                            && let Some(waiter) = round.waiter.take()
                        {
                            let err = SnapshotError::Aborted { epoch, reason: reason.to_string() };
                            effects.resolve = Some((waiter, Err(err)));
                        }
                    }
                }
            }
            if !progressed {
                return effects;
            }
        }
    }

    /// Assembles the completed snapshot: every cut state, and per receiver its backlog at the
    /// cut followed by the messages recorded after it, in arrival order.
    fn finish(&self, mut round: Round) -> Option<(Waiter, Result<Checkpoint, SnapshotError>)> {
        let epoch = round.epoch;
        let recorded = self.late.take(epoch);
        let mut late: HashMap<ActorId, Vec<InFlightRecord>> = HashMap::new();
        for record in recorded.records {
            match record {
                Ok(r) => late.entry(r.to).or_default().push(r),
                Err(p) => round.problems.push(p),
            }
        }
        let waiter = round.waiter.take()?;
        let elapsed = round.started.elapsed();
        if !recorded.taints.is_empty() {
            tracing::debug!(%epoch, taints = recorded.taints.len(), "snapshot is not a consistent cut");
            let err = SnapshotError::Inconsistent { epoch, reasons: recorded.taints };
            return Some((waiter, Err(err)));
        }
        if !round.problems.is_empty() {
            tracing::warn!(%epoch, problems = round.problems.len(), "snapshot could not capture everything");
            return Some((waiter, Err(SnapshotError::Capture { epoch, problems: round.problems })));
        }
        // Backlogs arrive per actor at its cut, already in queue order; late records follow.
        let mut in_flight = Vec::with_capacity(round.backlog.len());
        let mut by_receiver: HashMap<ActorId, Vec<InFlightRecord>> = HashMap::new();
        for r in round.backlog {
            by_receiver.entry(r.to).or_default().push(r);
        }
        for entry in &round.actors {
            if let Some(mut backlog) = by_receiver.remove(&entry.id) {
                in_flight.append(&mut backlog);
            }
            if let Some(mut after) = late.remove(&entry.id) {
                in_flight.append(&mut after);
            }
        }
        let created_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let checkpoint = Checkpoint {
            manifest: Manifest {
                id: CheckpointId(epoch.0),
                epoch,
                created_unix_ms,
                nodes: vec![NodeEntry { node: self.me.clone(), address: None }],
                actors: round.actors,
            },
            states: round.states,
            in_flight,
        };
        tracing::debug!(
            %epoch,
            actors = checkpoint.manifest.actors.len(),
            in_flight = checkpoint.in_flight.len(),
            ms = elapsed.as_secs_f64() * 1e3,
            "snapshot complete"
        );
        Some((waiter, Ok(checkpoint)))
    }
}
