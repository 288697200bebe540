//! What the bank measures as it goes: snapshot latencies in a histogram, and the line a
//! second on stderr that shows them while the demo runs.
//!
//! The line costs the accounts nothing they would notice: it is computed once a second from
//! figures the bank keeps anyway (the per-thread deposit counts, the audited snapshots) and
//! from what each snapshot adds under a lock once per snapshot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Snapshot latencies, recorded in microseconds with 3 significant figures (a percentile is
/// within 0.1 % of the exact one, and never above the largest), and the largest, exact.
pub(crate) struct Latencies {
    histogram: Histogram<u64>,
    max_us: u64,
}

impl Default for Latencies {
    fn default() -> Latencies {
        let histogram = Histogram::new(3).expect("3 significant figures is a valid precision");
        Latencies { histogram, max_us: 0 }
    }
}

impl Latencies {
    pub(crate) fn record(&mut self, took: Duration) {
        let us = took.as_micros().try_into().unwrap_or(u64::MAX);
        self.histogram.record(us).expect("a resizing histogram takes any value");
        self.max_us = self.max_us.max(us);
    }

    /// Adds the latencies of `other`.
    pub(crate) fn add(&mut self, other: &Latencies) {
        self.histogram.add(&other.histogram).expect("a histogram that resizes takes any other");
        self.max_us = self.max_us.max(other.max_us);
    }

    pub(crate) fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at quantile `q` (0.5: the median; 1.0: the largest), in milliseconds; 0
    /// without any.
    pub(crate) fn ms(&self, q: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        let us = match q {
            1.0.. => self.max_us,
            _ => self.histogram.value_at_quantile(q).min(self.max_us),
        };
        us as f64 / 1e3
    }
}

/// Figures the reporter reads, shared with the phases that produce them.
#[derive(Default)]
pub(crate) struct Progress {
    /// Every snapshot's latency so far, of both phases.
    latencies: Mutex<Latencies>,
    /// The deposits the latest audited snapshot counted (every node's accounts), and when it
    /// started: the bank's throughput when it runs over several processes.
    audited: Mutex<Option<(Instant, u64)>>,
}

impl Progress {
    /// One more snapshot, taken in `took`.
    pub(crate) fn snapshot(&self, took: Duration) {
        self.latencies.lock().expect("latencies").record(took);
    }

    /// A snapshot taken at `started` was audited: the accounts had received `deposits`.
    pub(crate) fn audited(&self, started: Instant, deposits: u64) {
        let mut audited = self.audited.lock().expect("audited");
        if audited.is_none_or(|(at, _)| at < started) {
            *audited = Some((started, deposits));
        }
    }

    /// Prints a line a second on stderr until the returned task is aborted: snapshots so far,
    /// their p50, and the deposits per second over the last second — counted in this process
    /// when every account lives here (`local`), else from the latest audited snapshots.
    pub(crate) fn report(
        self: &Arc<Progress>,
        local: bool,
        deposits: fn() -> u64,
    ) -> tokio::task::JoinHandle<()> {
        let progress = self.clone();
        tokio::spawn(async move {
            let begun = Instant::now();
            let sample = || if local { Some((Instant::now(), deposits())) } else { None };
            let mut before = sample();
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            loop {
                ticks.tick().await;
                let now = sample().or_else(|| *progress.audited.lock().expect("audited"));
                let rate = match (before, now) {
                    (Some((t0, d0)), Some((t1, d1))) if t1 > t0 => {
                        format!("{:.0}", d1.saturating_sub(d0) as f64 / (t1 - t0).as_secs_f64())
                    }
                    _ => "-".to_owned(),
                };
                before = now.or(before);
                let (snapshots, p50) = {
                    let latencies = progress.latencies.lock().expect("latencies");
                    (latencies.len(), latencies.ms(0.5))
                };
                eprintln!(
                    "bank: {:>4.0} s: {snapshots} snapshots, p50 {p50:.1} ms so far; {rate} deposits/s in the last second",
                    begun.elapsed().as_secs_f64()
                );
            }
        })
    }
}
