//! The shutdown: SIGTERM with the load still running, and how soon probegate exits.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::report::ShutdownReport;
use crate::support;
use crate::under_test::Probegate;

/// At the end of the run: the RSS then, SIGTERM (`terminated` tells the phases), and the
/// wait for probegate to exit.
pub async fn sigterm(mut probegate: Probegate, terminated: &AtomicBool) -> ShutdownReport {
    let pid = probegate.child.id();
    let rss_before_term = support::proc_status(pid, "VmRSS");
    let term_at = Instant::now();
    terminated.store(true, Ordering::Release);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || {
        let status = probegate.child.wait();
        (status, probegate)
    })
    .await
    .unwrap();
    let exit_after = term_at.elapsed();
    let (status, _probegate) = status;
    ShutdownReport {
        rss_before_term,
        term_at,
        exit_after,
        status,
    }
}
