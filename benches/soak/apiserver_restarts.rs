//! The API server restarts: probegate cut off, the API server stopped and restarted with a
//! namespace setting changed meanwhile, and the toggle namespace whose answers show when
//! probegate applies it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bodies::{Body, Expect, check, fixture, into_namespace};
use crate::client::Client;
use crate::cluster::{ApiServer, Forwarder};
use crate::report::{Outage, ToggleReport};
use crate::settings::{TOGGLE_KEY, TOGGLE_NAMESPACE, TOGGLE_VALUES};

/// Where the toggle namespace's uids start, apart from the load's.
const TOGGLE_UIDS: u64 = 0x8000_0000_0000;

/// Cuts probegate off, stops and restarts the API server, changes the toggle namespace's
/// setting while probegate still cannot reach it, reconnects, and waits until the answers
/// show the new setting.
pub async fn outage(
    api: &mut ApiServer,
    forwarder: &Forwarder,
    toggle: &Toggle,
    value: &'static str,
    started: Instant,
) -> Outage {
    let since = |t: Instant| t.duration_since(started).as_secs_f64();
    forwarder.set_open(false);
    let down = Instant::now();
    let api = tokio::task::block_in_place(|| {
        api.kill();
        let restart = Instant::now();
        api.restart();
        let up = Instant::now();
        api.annotate_toggle(value);
        (restart, up)
    });
    let (restart, up) = api;
    // Still out of reach for a moment with the change made.
    tokio::time::sleep(Duration::from_secs(2)).await;
    toggle.expect(value);
    forwarder.set_open(true);
    let reopened = Instant::now();
    let deadline = reopened + Duration::from_secs(90);
    let mut outage = Outage {
        value,
        down_at: since(down),
        up_at: since(up),
        restart_took: up.duration_since(restart).as_secs_f64(),
        reopened_at: since(reopened),
        applied_at: None,
        error: None,
    };
    while Instant::now() < deadline {
        if let Some(t) = toggle.applied_at() {
            outage.applied_at = Some(since(t));
            return outage;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    outage.error = Some(format!(
        "{TOGGLE_KEY}={value:?} not applied 90 s after reconnecting"
    ));
    outage
}

#[derive(Clone)]
pub struct Toggle {
    client: Arc<Client>,
    body: Arc<Body>,
    state: Arc<Mutex<ToggleState>>,
}

struct ToggleState {
    /// The value set last; `None` until the answers first show it.
    expected: &'static str,
    applied_at: Option<Instant>,
}

impl Toggle {
    pub fn new(client: &Arc<Client>) -> Toggle {
        let review = into_namespace(
            fixture("benches/fixtures/review-deployment-apply.json"),
            TOGGLE_NAMESPACE,
        );
        Toggle {
            client: client.clone(),
            body: Arc::new(Body::review("toggle", &review, Expect::SamePatch)),
            state: Arc::new(Mutex::new(ToggleState {
                expected: TOGGLE_VALUES[0],
                applied_at: Some(Instant::now()),
            })),
        }
    }

    /// The two values must give different answers, or the check proves nothing: the second
    /// is set at the start, the first is set now and must show within 30 s.
    pub async fn check_both_values(&self, api: &ApiServer) -> Result<(), String> {
        let seen = self.setting_seen(TOGGLE_UIDS).await?;
        if seen != TOGGLE_VALUES[1] {
            return Err(format!(
                "{TOGGLE_KEY}={:?} not seen in the answer",
                TOGGLE_VALUES[1]
            ));
        }
        api.annotate_toggle(TOGGLE_VALUES[0]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        while Instant::now() < deadline {
            n += 1;
            if self.setting_seen(TOGGLE_UIDS + n).await? == TOGGLE_VALUES[0] {
                self.state.lock().unwrap().applied_at = Some(Instant::now());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "{TOGGLE_KEY}={:?} not seen in the answer",
            TOGGLE_VALUES[0]
        ))
    }

    /// Which of the two values the answer's probes carry as their period.
    async fn setting_seen(&self, n: u64) -> Result<&'static str, String> {
        let (bytes, uid) = self.body.instance(n);
        let answer = self.client.send_once(bytes).await?;
        let review = check(Expect::SamePatch, uid.as_deref(), &answer, None)?;
        let patch = review["response"]["patch"].as_str().unwrap_or_default();
        use base64::Engine as _;
        let patch = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .map_err(|e| e.to_string())?;
        let patch = String::from_utf8_lossy(&patch);
        TOGGLE_VALUES
            .into_iter()
            .find(|v| patch.contains(&format!("\"periodSeconds\":{v},")))
            .ok_or_else(|| format!("neither period in the patch: {patch}"))
    }

    pub fn expect(&self, value: &'static str) {
        let mut state = self.state.lock().unwrap();
        state.expected = value;
        state.applied_at = None;
    }

    pub fn applied_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().applied_at
    }

    /// A review in the toggle namespace every 100 ms: once an answer shows the value set
    /// last, every later answer must show it too.
    pub async fn run(self, stop: Arc<AtomicBool>, terminated: Arc<AtomicBool>) -> ToggleReport {
        let mut report = ToggleReport::default();
        let mut n = 0;
        while !stop.load(Ordering::Acquire) && !terminated.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            n += 1;
            let seen = self.setting_seen(TOGGLE_UIDS / 2 * 3 + n).await;
            report.reviews += 1;
            let seen = match seen {
                Ok(seen) => seen,
                // After SIGTERM new connections are refused: not a failed review.
                Err(_) if terminated.load(Ordering::Acquire) => continue,
                Err(why) => {
                    report.failed += 1;
                    eprintln!("soak: toggle review failed: {why}");
                    continue;
                }
            };
            let mut state = self.state.lock().unwrap();
            if seen == state.expected {
                state.applied_at.get_or_insert_with(Instant::now);
            } else if state.applied_at.is_some() {
                report.stale_after_resync += 1;
            }
        }
        report
    }
}
