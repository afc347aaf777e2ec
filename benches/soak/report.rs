//! The figures each phase hands back and what went wrong in the load, kept for the summary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What went wrong, kept to a few examples each.
#[derive(Default)]
pub struct Tally {
    pub counts: BTreeMap<&'static str, u64>,
    pub examples: BTreeMap<&'static str, Vec<String>>,
}

impl Tally {
    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub fn fail(&mut self, what: &'static str, example: String) {
        self.count(what);
        let examples = self.examples.entry(what).or_default();
        if examples.len() < 5 {
            examples.push(example);
        }
    }
}

pub type Shared = Arc<Mutex<Tally>>;

pub fn tally(shared: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct LoadReport {
    pub sent: u64,
    pub sent_before_term: u64,
    pub ok: u64,
    pub ok_after_term: u64,
    pub refused_after_term: u64,
    /// p50, p99, p99.9, max in ms.
    pub latency: [f64; 4],
    pub slowest_by_window: Vec<String>,
}

pub struct Outage {
    pub value: &'static str,
    pub down_at: f64,
    pub up_at: f64,
    pub restart_took: f64,
    pub reopened_at: f64,
    pub applied_at: Option<f64>,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct ToggleReport {
    pub reviews: u64,
    pub stale_after_resync: u64,
    pub failed: u64,
}

#[derive(Default)]
pub struct RotationReport {
    /// From a valid swap to its leaf on a new connection, the longest seen.
    pub slowest_served: Duration,
    pub valid: u32,
    pub served: u32,
    pub broken: u32,
    pub refused: u32,
    pub errors: Vec<String>,
}

pub struct HeldReport {
    pub listener: &'static str,
    pub peak_open: u64,
    pub opened: u64,
    pub closed_by_server: u64,
    pub connect_failures: u64,
    pub median_life: f64,
}

pub struct ReadyzReport {
    /// (seconds into the run, status or 0 for no answer) at each change.
    pub changes: Vec<(f64, u16)>,
    pub polls: u64,
    pub slowest_ms: f64,
    pub ready_at_end: bool,
}

impl ReadyzReport {
    pub fn summary(&self) -> String {
        let changes: Vec<String> = self
            .changes
            .iter()
            .map(|(t, s)| format!("{s} from {t:.1} s"))
            .collect();
        format!(
            "{} polls (a new connection every 100 ms, as a kubelet does), slowest {:.0} ms; {}",
            self.polls,
            self.slowest_ms,
            changes.join(", ")
        )
    }
}
