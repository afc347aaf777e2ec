//! The report: the figures each phase hands back, what went wrong in the load, and the
//! summary that prints them all and judges the pass criteria.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::settings::{GRACE_SECONDS, Options, SHUTDOWN_DELAY_SECONDS, TOGGLE_KEY};

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

/// The SIGTERM under load: the RSS just before, when it was sent, and probegate's exit.
pub struct ShutdownReport {
    pub rss_before_term: u64,
    pub term_at: Instant,
    pub exit_after: Duration,
    pub status: std::io::Result<std::process::ExitStatus>,
}

/// Everything the run saw, for the summary.
pub struct Figures {
    pub started: Instant,
    pub total: Duration,
    pub shared: Shared,
    pub load: LoadReport,
    pub outages: Vec<Outage>,
    pub toggle_report: ToggleReport,
    pub readyz: ReadyzReport,
    pub rotations: RotationReport,
    pub held_reports: Vec<HeldReport>,
    pub peak_rss: u64,
    pub shutdown: ShutdownReport,
}

/// The summary: what the run saw, then PASS, or a FAIL line for each criterion missed;
/// true when all passed.
pub fn summary(options: &Options, figures: Figures) -> bool {
    let Figures {
        started,
        total,
        shared,
        load,
        outages,
        toggle_report,
        readyz,
        rotations,
        held_reports,
        peak_rss,
        shutdown,
    } = figures;
    let ShutdownReport {
        rss_before_term,
        term_at,
        exit_after,
        status,
    } = shutdown;
    let mut failed = Vec::new();
    let counts = tally(&shared).counts.clone();
    let examples = tally(&shared).examples.clone();
    println!("\n== soak summary");
    println!(
        "ran {:.1} s (SIGTERM at {:.1} s); target {} reviews/s, {} held connections per listener",
        total.as_secs_f64(),
        term_at.duration_since(started).as_secs_f64(),
        options.rate,
        options.held
    );
    println!(
        "reviews sent {} ({:.0}/s until SIGTERM); answered as expected: {}",
        load.sent,
        load.sent_before_term as f64 / term_at.duration_since(started).as_secs_f64(),
        load.ok
    );
    for (what, n) in &counts {
        println!("  {what}: {n}");
    }
    println!(
        "latency from when due (expected answers): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        load.latency[0], load.latency[1], load.latency[2], load.latency[3]
    );
    println!(
        "slowest answer (ms) in each 10 s from the start: {}",
        load.slowest_by_window.join(", ")
    );
    let bad: u64 = counts
        .iter()
        .filter(|(k, _)| k.starts_with("FAILED"))
        .map(|(_, v)| v)
        .sum();
    if bad > 0 {
        failed.push(format!("{bad} reviews not answered as documented"));
        for (what, list) in &examples {
            for e in list {
                println!("  example {what}: {e}");
            }
        }
    }
    for o in &outages {
        println!(
            "outage: API server stopped at {:.1} s, back at {:.1} s (restart took {:.1} s), {TOGGLE_KEY}={:?} set while probegate could not reach it, forwarder reopened at {:.1} s; setting applied in answers at {}",
            o.down_at,
            o.up_at,
            o.restart_took,
            o.value,
            o.reopened_at,
            o.applied_at.map_or("never".into(), |t| format!(
                "{t:.1} s ({:.1} s after reopening)",
                t - o.reopened_at
            )),
        );
        if o.applied_at.is_none() {
            failed.push(format!("the setting {:?} was never applied", o.value));
        }
        if let Some(error) = &o.error {
            failed.push(error.clone());
        }
    }
    println!(
        "toggle namespace: {} reviews, {} with the old setting after the new one was seen, {} failed",
        toggle_report.reviews, toggle_report.stale_after_resync, toggle_report.failed
    );
    if toggle_report.stale_after_resync > 0 {
        failed.push(format!(
            "{} answers from stale settings after resync",
            toggle_report.stale_after_resync
        ));
    }
    if toggle_report.failed > 0 {
        failed.push(format!(
            "{} toggle-namespace reviews failed",
            toggle_report.failed
        ));
    }
    println!("/readyz: {}", readyz.summary());
    if !readyz.ready_at_end {
        failed.push("/readyz was not 200 after the caches resynced".into());
    }
    println!(
        "certificates: {} valid pairs rotated in, {} served to new connections (the slowest {:.2} s after the swap); {} broken pairs, {} refused with the previous pair kept",
        rotations.valid,
        rotations.served,
        rotations.slowest_served.as_secs_f64(),
        rotations.broken,
        rotations.refused
    );
    for e in &rotations.errors {
        println!("  {e}");
    }
    if rotations.served != rotations.valid || rotations.refused != rotations.broken {
        failed.push("a certificate rotation was not followed".into());
    }
    for h in &held_reports {
        println!(
            "held on {}: {} connections open at the peak, {} opened in all, {} closed by probegate (median life {:.1} s), {} connects that failed",
            h.listener,
            h.peak_open,
            h.opened,
            h.closed_by_server,
            h.median_life,
            h.connect_failures
        );
    }
    println!(
        "RSS: peak {:.1} MiB (sampled every 250 ms; VmHWM), {:.1} MiB at SIGTERM",
        peak_rss as f64 / 1024.0,
        rss_before_term as f64 / 1024.0
    );
    if peak_rss > options.max_rss_mib * 1024 {
        failed.push(format!("peak RSS above {} MiB", options.max_rss_mib));
    }
    let limit = Duration::from_secs(SHUTDOWN_DELAY_SECONDS + GRACE_SECONDS + 1);
    println!(
        "SIGTERM under load: exit {:?} after {:.2} s (delay {SHUTDOWN_DELAY_SECONDS} s + grace {GRACE_SECONDS} s); {} reviews answered after SIGTERM, {} new connections refused after it",
        status.as_ref().ok().and_then(|s| s.code()),
        exit_after.as_secs_f64(),
        load.ok_after_term,
        load.refused_after_term
    );
    if !status.is_ok_and(|s| s.success()) || exit_after > limit {
        failed.push("no clean exit within the grace period".into());
    }
    if failed.is_empty() {
        println!("PASS");
        true
    } else {
        for f in &failed {
            println!("FAIL: {f}");
        }
        false
    }
}
