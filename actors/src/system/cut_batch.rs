//! Cuts taken on the spot, filed with the snapshot engine a batch at a time.
//!
//! The marker broadcast cuts tens of thousands of actors between two of their messages (see
//! [`broadcast`](super::broadcast)). Filing each cut under the engine's lock, and pumping
//! its machines after each, made that lock the broadcast's bottleneck: taken once per actor
//! by every worker at once. A [`CutBatch`] files the cuts of the actors one claim of the
//! broadcast took in one go instead.
//!
//! The batch keeps each cut actor's runner held in its cell until its cut is filed (taken by
//! nobody: its task, if it wakes meanwhile, waits for it): none of those actors does
//! anything in between — no handler runs, nothing is sent, nothing stops. So the engine sees exactly what it would
//! see if all those cuts were still being taken and filed one after the other, as two
//! workers' cuts already interleave today: no new order of events reaches its machines.

use std::sync::Arc;

use amber_snapshot::Cut;

use crate::ActorSystem;
use crate::snapshot::CutReport;

/// The cell of a runner a batch holds (parked in it, untouchable until released);
/// releasing it lets its task run it again.
pub(crate) trait Held: Send + Sync {
    /// Ends the hold (and wakes the task if it waits for its runner).
    fn release(&self);
}

/// The cuts of one claim of the marker broadcast, not yet filed, and the runners of their
/// actors, held until they are. Filed (then given back) by [`file`](CutBatch::file), or
/// when dropped.
#[derive(Default)]
pub(crate) struct CutBatch {
    /// The system the cuts are of (that of the first one).
    system: Option<ActorSystem>,
    reports: Vec<(Cut, CutReport)>,
    held: Vec<Arc<dyn Held>>,
}

impl CutBatch {
    /// An empty batch.
    pub(crate) fn new() -> CutBatch {
        CutBatch::default()
    }

    /// An empty batch with room for `cuts` cuts and held runners (no reallocation while a
    /// claim of that many actors fills it).
    pub(crate) fn with_capacity(cuts: usize) -> CutBatch {
        CutBatch { system: None, reports: Vec::with_capacity(cuts), held: Vec::with_capacity(cuts) }
    }

    /// Adds a cut taken on the spot, of an actor of `system`, to be filed with the others.
    pub(crate) fn push(&mut self, system: &ActorSystem, cut: Cut, report: CutReport) {
        if self.system.is_none() {
            self.system = Some(system.clone());
        }
        self.reports.push((cut, report));
    }

    /// How many cuts wait to be filed.
    pub(crate) fn len(&self) -> usize {
        self.reports.len()
    }

    /// Keeps the runner held in this cell until the batch is filed.
    pub(crate) fn hold(&mut self, cell: Arc<dyn Held>) {
        self.held.push(cell);
    }

    /// Files every cut with the engine (one lock, one pump), carries out what that calls
    /// for, then gives the runners back.
    pub(crate) fn file(&mut self) {
        if let Some(system) = &self.system
            && !self.reports.is_empty()
        {
            let effects = system.engine().cut_many(self.reports.drain(..));
            system.run_effects(effects);
        }
        for cell in self.held.drain(..) {
            cell.release();
        }
    }
}

impl Drop for CutBatch {
    /// Never leaves a cut unfiled or a task waiting for its runner (a panic between two
    /// cuts of a claim unwinds through here).
    fn drop(&mut self) {
        self.file();
    }
}
