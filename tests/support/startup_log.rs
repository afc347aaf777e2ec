//! `probegate serve` logs one "listening" line, as JSON on stderr, with the addresses it
//! bound (port 0 becomes a real port). The tests and benches that start the real binary
//! read those addresses here, and keep reading its log for their own use.

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Addresses {
    pub webhook: SocketAddr,
    pub health: SocketAddr,
    /// `None` when metrics are off.
    pub metrics: Option<SocketAddr>,
}

/// Reads `stderr` on a thread until it closes, handing every line to `each` (with its JSON
/// when it is JSON), and returns the logged addresses once they come, with the thread.
/// Panics if they do not come within `within`.
pub fn read_addresses(
    stderr: std::process::ChildStderr,
    within: Duration,
    mut each: impl FnMut(&str, Option<serde_json::Value>) + Send + 'static,
) -> (Addresses, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let log = serde_json::from_str::<serde_json::Value>(&line).ok();
            if let Some(log) = log.as_ref().filter(|log| log["message"] == "listening") {
                let address = |key: &str| log[key].as_str().and_then(|a| a.parse().ok());
                let _ = tx.send((address("webhook"), address("health"), address("metrics")));
            }
            each(&line, log);
        }
    });
    let (webhook, health, metrics) = rx
        .recv_timeout(within)
        .expect("probegate logged its addresses");
    let addresses = Addresses {
        webhook: webhook.expect("the webhook's address"),
        health: health.expect("the health address"),
        metrics,
    };
    (addresses, reader)
}
