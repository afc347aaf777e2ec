//! What is watched through the whole run: /readyz, polled as a kubelet does, and probegate's
//! resident memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::http_get;
use crate::report::ReadyzReport;
use crate::support;

pub async fn poll_readyz(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
    started: Instant,
) -> ReadyzReport {
    let mut report = ReadyzReport {
        changes: Vec::new(),
        polls: 0,
        slowest_ms: 0.0,
        ready_at_end: false,
    };
    let mut last = None;
    while !stop.load(Ordering::Acquire) {
        let asked = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(5), http_get(addr, "/readyz"))
            .await
            .ok()
            .flatten()
            .map_or(0, |(s, _)| s);
        report.slowest_ms = report.slowest_ms.max(asked.elapsed().as_secs_f64() * 1e3);
        report.polls += 1;
        if last != Some(status) {
            report
                .changes
                .push((started.elapsed().as_secs_f64(), status));
            last = Some(status);
        }
        // The last answer before SIGTERM is what "ready after resync" is judged on.
        if status != 0 && !terminated.load(Ordering::Acquire) {
            report.ready_at_end = status == 200;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report
}

/// The peak resident set, read every 250 ms, and VmHWM at the last read.
pub async fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut peak = 0;
    while !stop.load(Ordering::Acquire) {
        peak = peak
            .max(support::proc_status(pid, "VmRSS"))
            .max(support::proc_status(pid, "VmHWM"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    peak
}
