//! Soak under faults: the real `probegate serve`, in cluster mode against the end-to-end
//! kube-apiserver (tests/e2e/), at a steady rate while everything around it goes wrong.
//!
//! `cargo bench --bench soak` runs the full soak (120 s, 500 reviews/s, 1,000 held
//! connections per listener, two API server restarts); `-- --seconds N --held N --rate N
//! --outages N` changes it, `-- --short` is the CI size (20 s, 200 held, one restart). An
//! outage waits for the one before to be resynced, so the run may last longer than asked. Nothing is timed against a target: it prints what it saw and exits 1 when
//! a pass criterion failed:
//! - every valid review answered 200 with its uid and the same patch as before the faults;
//! - every malformed body answered 400 with `{"error": ...}`, every oversized one 413;
//! - a namespace setting changed while the API server was out of reach is applied once
//!   probegate reconnects, and no answer after that carries the old setting;
//! - each rotated certificate is served to new connections, each broken pair refused;
//! - RSS under `--max-rss-mib`; after SIGTERM under load, exit 0 within delay + grace.
//!
//! Probegate reaches the API server through a forwarder in this process, so "out of
//! reach" can be held while the restarted API server already takes the change.

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Kept-alive connections carrying the load, as the API server keeps for a webhook.
const LOAD_CONNECTIONS: usize = 25;
const OVERSIZED_PER_SECOND: u32 = 2;
const SHUTDOWN_DELAY_SECONDS: u64 = 2;
const GRACE_SECONDS: u64 = 5;
const NAMESPACE: &str = "soak";
const TOGGLE_NAMESPACE: &str = "soak-toggle";
/// Replaced in every request by a uid of its own.
const UID_PLACEHOLDER: &str = "5a5a5a5a-5a5a-4a5a-8a5a-5a5a5a5a5a5a";
/// The namespace setting the outages change, alternating.
const TOGGLE_KEY: &str = "probegate.io/period-seconds";
const TOGGLE_VALUES: [&str; 2] = ["15", "25"];
/// Where the toggle namespace's uids start, apart from the load's.
const TOGGLE_UIDS: u64 = 0x8000_0000_0000;

struct Options {
    duration: Duration,
    rate: u32,
    held: usize,
    outages: usize,
    max_rss_mib: u64,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        Some(
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number")),
        )
    };
    let short = args.iter().any(|a| a == "--short");
    Options {
        duration: Duration::from_secs(value("--seconds").unwrap_or(if short { 20 } else { 120 })),
        rate: value("--rate").unwrap_or(500) as u32,
        held: value("--held").unwrap_or(if short { 200 } else { 1000 }) as usize,
        outages: value("--outages").unwrap_or(if short { 1 } else { 2 }) as usize,
        max_rss_mib: value("--max-rss-mib").unwrap_or(512),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let passed = runtime.block_on(soak(&options));
    std::process::exit(if passed { 0 } else { 1 });
}

/// What went wrong, kept to a few examples each.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, u64>,
    examples: BTreeMap<&'static str, Vec<String>>,
}

impl Tally {
    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    fn fail(&mut self, what: &'static str, example: String) {
        self.count(what);
        let examples = self.examples.entry(what).or_default();
        if examples.len() < 5 {
            examples.push(example);
        }
    }
}

type Shared = Arc<Mutex<Tally>>;

fn tally(shared: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

async fn soak(options: &Options) -> bool {
    let work = tempfile::Builder::new()
        .prefix("probegate-soak-")
        .tempdir()
        .unwrap();
    let mut api = ApiServer::start(work.path());
    let forwarder = Forwarder::start(api.port).await;
    let kubeconfig = work.path().join("probegate-kubeconfig");
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&api.kubeconfig).unwrap().replace(
            &format!("https://127.0.0.1:{}", api.port),
            &format!("https://127.0.0.1:{}", forwarder.port),
        ),
    )
    .unwrap();
    api.kubectl(&["create", "namespace", NAMESPACE]);
    api.kubectl(&["create", "namespace", TOGGLE_NAMESPACE]);
    // Set to the second value now and changed to the first while probegate watches, so
    // both values are seen to give different answers before any fault.
    api.annotate_toggle(TOGGLE_VALUES[1]);

    let secret = work.path().join("serving");
    let rotation = Rotation::new(&secret);
    let mut probegate = Probegate::start(&kubeconfig, &secret);
    eprintln!(
        "soak: probegate pid {} webhook {} health {} metrics {}",
        probegate.child.id(),
        probegate.webhook,
        probegate.health,
        probegate.metrics
    );
    let client = Client::new(&rotation.ca_pem, probegate.webhook);
    let bodies = Bodies::new();
    let references = match bodies.references(&client).await {
        Ok(r) => r,
        Err(why) => {
            eprintln!("soak: before the faults: {why}");
            return false;
        }
    };
    let toggle = Toggle::new(&client);
    if let Err(why) = toggle.check_both_values(&api).await {
        eprintln!("soak: before the faults: {why}");
        return false;
    }

    let shared: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let terminated = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let pid = probegate.child.id();
    let rss = tokio::spawn(sample_rss(pid, stop.clone()));
    let readyz = tokio::spawn(poll_readyz(
        probegate.health,
        stop.clone(),
        terminated.clone(),
        started,
    ));
    let mut held = Vec::new();
    for (listener, addr) in [
        ("webhook", probegate.webhook),
        ("health", probegate.health),
        ("metrics", probegate.metrics),
    ] {
        held.push(Holders::start(
            listener,
            addr,
            options.held,
            listener == "webhook",
            client.clone(),
            stop.clone(),
            terminated.clone(),
        ));
    }
    let load = tokio::spawn(run_load(
        client.clone(),
        Arc::new(bodies),
        Arc::new(references),
        options.rate,
        shared.clone(),
        stop.clone(),
        terminated.clone(),
        started,
    ));
    let toggle_task = tokio::spawn(toggle.clone().run(stop.clone(), terminated.clone()));
    let rotations = tokio::spawn(rotation.run(
        client.clone(),
        probegate.metrics,
        terminated.clone(),
        started,
    ));

    // Two outages of the API server, then SIGTERM at the end.
    let mut outages = Vec::new();
    for i in 0..options.outages {
        // The first at a fifth of the run, the others spread over the rest; each waits
        // for the one before to be resynced.
        let at = options
            .duration
            .mul_f64(0.2 + 0.6 * i as f64 / options.outages as f64);
        tokio::time::sleep_until((started + at).into()).await;
        let value = TOGGLE_VALUES[(i + 1) % 2];
        outages.push(outage(&mut api, &forwarder, &toggle, value, started).await);
    }
    tokio::time::sleep_until((started + options.duration).into()).await;
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
    stop.store(true, Ordering::Release);
    let load = load.await.unwrap();
    let peak_rss = rss.await.unwrap();
    let readyz = readyz.await.unwrap();
    let toggle_report = toggle_task.await.unwrap();
    let rotations = rotations.await.unwrap();
    let mut held_reports = Vec::new();
    for h in held {
        held_reports.push(h.finish().await);
    }
    let total = started.elapsed();
    drop(forwarder);
    api.stop();

    // The summary.
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

// ---------------------------------------------------------------------------------------
// The API server, and the forwarder probegate reaches it through.

struct ApiServer {
    workdir: PathBuf,
    kubeconfig: PathBuf,
    port: u16,
    /// How it was started, to start it again on the same port, data and certificates.
    command: Vec<String>,
    pid: u32,
    /// Set once this process started it (after a restart), to reap it.
    child: Option<Child>,
}

impl ApiServer {
    fn start(work: &Path) -> ApiServer {
        let workdir = work.join("apiserver");
        let out = Command::new(root().join("tests/e2e/start-apiserver.sh"))
            .arg(&workdir)
            .stderr(Stdio::inherit())
            .output()
            .expect("tests/e2e/start-apiserver.sh runs");
        assert!(
            out.status.success(),
            "the kube-apiserver did not start (see tests/e2e/README.md)"
        );
        let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        let port = text
            .split("https://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .and_then(|p| p.trim().parse().ok())
            .expect("the kubeconfig names the server's port");
        let pid: u32 = std::fs::read_to_string(workdir.join("apiserver.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let command = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        ApiServer {
            workdir,
            kubeconfig,
            port,
            command,
            pid,
            child: None,
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn annotate_toggle(&self, value: &str) {
        self.kubectl(&[
            "annotate",
            "namespace",
            TOGGLE_NAMESPACE,
            "--overwrite",
            &format!("{TOGGLE_KEY}={value}"),
        ]);
    }

    fn alive(&self) -> bool {
        std::fs::read(format!("/proc/{}/cmdline", self.pid)).is_ok_and(|c| !c.is_empty())
    }

    /// SIGTERM to its process group, as stop-apiserver.sh does, keeping its data.
    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.pid)])
            .status();
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
        while self.alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The same command line: same port, etcd data and serving certificate.
    fn restart(&mut self) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.workdir.join("apiserver.log"))
            .unwrap();
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the kube-apiserver restarts");
        self.pid = child.id();
        std::fs::write(self.workdir.join("apiserver.pid"), self.pid.to_string()).unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["--request-timeout=5s", "get", "--raw", "/readyz"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the kube-apiserver did not come back"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stop(&mut self) {
        let _ = Command::new(root().join("tests/e2e/stop-apiserver.sh"))
            .arg(&self.workdir)
            .status();
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.alive() {
            self.stop();
        }
    }
}

/// TCP forwarder to the API server; closed, it drops every forwarded connection and
/// refuses new ones, so probegate sees the API server gone.
struct Forwarder {
    port: u16,
    open: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(upstream: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, _) = tokio::sync::watch::channel(true);
        let state = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = state.subscribe();
                if !*state.borrow_and_update() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Forwarder { port, open, task }
    }

    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Outage {
    value: &'static str,
    down_at: f64,
    up_at: f64,
    restart_took: f64,
    reopened_at: f64,
    applied_at: Option<f64>,
    error: Option<String>,
}

/// Cuts probegate off, stops and restarts the API server, changes the toggle namespace's
/// setting while probegate still cannot reach it, reconnects, and waits until the answers
/// show the new setting.
async fn outage(
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

// ---------------------------------------------------------------------------------------
// probegate and its certificates.

struct Probegate {
    child: Child,
    webhook: SocketAddr,
    health: SocketAddr,
    metrics: SocketAddr,
}

impl Probegate {
    fn start(kubeconfig: &Path, secret: &Path) -> Probegate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "warn,probegate::server=info,probegate::namespace_cache=info,probegate::tls=info",
            ])
            .args([
                "--shutdown-delay-seconds",
                &SHUTDOWN_DELAY_SECONDS.to_string(),
                "--shutdown-grace-seconds",
                &GRACE_SECONDS.to_string(),
            ])
            .arg("--tls-cert-file")
            .arg(secret.join("tls.crt"))
            .arg("--tls-key-file")
            .arg(secret.join("tls.key"))
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (addresses, _) = support::startup_log::read_addresses(
            child.stderr.take().unwrap(),
            Duration::from_secs(30),
            |line, _| eprintln!("probegate: {line}"),
        );
        let (webhook, health) = (addresses.webhook, addresses.health);
        let metrics = addresses.metrics.expect("metrics are on in the soak");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get_blocking(health, "/readyz").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "probegate never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Probegate {
            child,
            webhook,
            health,
            metrics,
        }
    }
}

impl Drop for Probegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Secret-style folder: tls.crt -> ..data/tls.crt, ..data -> ..N, swapped atomically.
struct Rotation {
    dir: PathBuf,
    ca: probegate::certs::Ca,
    ca_pem: String,
    generation: u32,
    serving: Vec<u8>,
}

fn names() -> probegate::certs::Names {
    probegate::certs::Names {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    }
}

#[derive(Default)]
struct RotationReport {
    /// From a valid swap to its leaf on a new connection, the longest seen.
    slowest_served: Duration,
    valid: u32,
    served: u32,
    broken: u32,
    refused: u32,
    errors: Vec<String>,
}

impl Rotation {
    fn new(dir: &Path) -> Rotation {
        std::fs::create_dir_all(dir).unwrap();
        let first = probegate::certs::generate(&names(), 1).unwrap();
        let mut rotation = Rotation {
            dir: dir.to_owned(),
            ca: probegate::certs::Ca {
                cert_pem: first.ca_pem.clone(),
                key_pem: first.ca_key_pem.clone(),
            },
            ca_pem: first.ca_pem.clone(),
            generation: 0,
            serving: leaf_der(&first.cert_pem),
        };
        rotation.swap(&first);
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file)).unwrap();
        }
        rotation
    }

    fn swap(&mut self, bundle: &probegate::certs::Bundle) {
        self.generation += 1;
        let data = self.dir.join(format!("..{}", self.generation));
        bundle.write(&data).unwrap();
        let link = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&data, &link).unwrap();
        std::fs::rename(&link, self.dir.join("..data")).unwrap();
    }

    /// Every 5 s a new pair, alternately valid and broken (a key that is not the
    /// certificate's); each checked before the next. Stops at SIGTERM (`stop`).
    async fn run(
        mut self,
        client: Arc<Client>,
        metrics: SocketAddr,
        stop: Arc<AtomicBool>,
        started: Instant,
    ) -> RotationReport {
        let mut report = RotationReport::default();
        let mut next = started + Duration::from_secs(5);
        while !stop.load(Ordering::Acquire) {
            tokio::time::sleep_until(next.into()).await;
            if stop.load(Ordering::Acquire) {
                break;
            }
            next += Duration::from_secs(5);
            let pair = probegate::certs::sign(&self.ca, &names(), 1).unwrap();
            let at = started.elapsed().as_secs_f64();
            if self.generation % 2 == 1 {
                // Broken: this pair's certificate with another pair's key.
                let other = probegate::certs::sign(&self.ca, &names(), 1).unwrap();
                let before = refusals(metrics).await;
                self.swap(&probegate::certs::Bundle {
                    key_pem: other.key_pem,
                    ..pair
                });
                report.broken += 1;
                let deadline = Instant::now() + Duration::from_millis(4500);
                let mut refused = false;
                while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                    if refusals(metrics)
                        .await
                        .zip(before)
                        .is_some_and(|(n, b)| n > b)
                    {
                        refused = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let still = client.served_leaf().await;
                if refused && still.as_deref() == Some(&self.serving[..]) {
                    report.refused += 1;
                } else if !stop.load(Ordering::Acquire) {
                    report.errors.push(format!(
                        "broken pair at {at:.1} s: refusal counted {refused}, previous leaf still served {}",
                        still.as_deref() == Some(&self.serving[..])
                    ));
                }
            } else {
                let leaf = leaf_der(&pair.cert_pem);
                let swapped = Instant::now();
                self.swap(&pair);
                report.valid += 1;
                // Until the next swap.
                let deadline = next - Duration::from_millis(100);
                let mut served = false;
                while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                    let attempt = tokio::time::timeout_at(deadline.into(), client.served_leaf());
                    if attempt.await.ok().flatten().as_deref() == Some(&leaf[..]) {
                        served = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if served {
                    report.served += 1;
                    report.slowest_served = report.slowest_served.max(swapped.elapsed());
                    self.serving = leaf;
                } else if stop.load(Ordering::Acquire) {
                    // Cut short by the end of the run: not counted either way.
                    report.valid -= 1;
                } else {
                    report.errors.push(format!(
                        "valid pair at {at:.1} s not served to new connections before the next swap"
                    ));
                }
            }
        }
        report
    }
}

async fn refusals(metrics: SocketAddr) -> Option<u64> {
    let (_, text) = http_get(metrics, "/metrics").await?;
    let line = r#"probegate_certificate_reloads_total{certificate="serving",result="failure"} "#;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
    )
}

fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

// ---------------------------------------------------------------------------------------
// The webhook client.

struct Client {
    connector: tokio_rustls::TlsConnector,
    addr: SocketAddr,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An answer: status and body.
type Answer = (u16, Bytes);

impl Client {
    fn new(ca_pem: &str, addr: SocketAddr) -> Arc<Client> {
        Arc::new(Client {
            connector: support::connector(ca_pem),
            addr,
        })
    }

    async fn tls(&self) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        self.connector.connect(name, tcp).await
    }

    async fn connect(&self) -> std::io::Result<Sender> {
        let tls = tokio::time::timeout(Duration::from_secs(10), self.tls())
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// The leaf a new connection is served.
    async fn served_leaf(&self) -> Option<Vec<u8>> {
        let tls = tokio::time::timeout(Duration::from_secs(4), self.tls())
            .await
            .ok()?
            .ok()?;
        Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
    }

    /// One request on a kept-alive connection; `Err` when no answer came.
    async fn send(sender: &mut Sender, body: Vec<u8>) -> Result<Answer, String> {
        let request = hyper::Request::post("/mutate")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        // The API server's default webhook timeout.
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
    }

    /// A body past the limit on a new connection: the status probegate answers. It may
    /// answer and close before the body is all written (as Go's client allows), so the
    /// answer is read while writing.
    async fn send_oversized(&self, body: &[u8]) -> Result<u16, String> {
        let tls = tokio::time::timeout(Duration::from_secs(10), self.tls())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (mut read, mut write) = tokio::io::split(tls);
        let head = format!(
            "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let writing = async {
            let _ = write.write_all(head.as_bytes()).await;
            let _ = write.write_all(body).await;
            let _ = write.flush().await;
            std::future::pending::<()>().await;
        };
        let reading = async {
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
            answer
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                answer = reading => answer,
                _ = writing => Vec::new(),
            }
        })
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?;
        parse_status(String::from_utf8_lossy(&answer).into_owned())
            .map(|(status, _)| status)
            .ok_or_else(|| format!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)))
    }

    /// One request on a new connection, closed after.
    async fn send_once(&self, body: Vec<u8>) -> Result<Answer, String> {
        let mut sender = self.connect().await.map_err(|e| e.to_string())?;
        Client::send(&mut sender, body).await
    }
}

// ---------------------------------------------------------------------------------------
// What is sent, and what each must get.

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// 200, its uid, allowed, and the patch probegate gave before the faults.
    SamePatch,
    /// 200, its uid, allowed, no patch.
    NoPatch,
    /// 400 with `{"error": ...}`.
    BadRequest,
}

struct Body {
    name: &'static str,
    bytes: Vec<u8>,
    uid_at: Option<usize>,
    expect: Expect,
}

impl Body {
    fn review(name: &'static str, review: &Value, expect: Expect) -> Body {
        let bytes = serde_json::to_vec(review).unwrap();
        let needle = UID_PLACEHOLDER.as_bytes();
        let uid_at = bytes.windows(needle.len()).position(|w| w == needle);
        Body {
            name,
            bytes,
            uid_at,
            expect,
        }
    }

    fn raw(name: &'static str, bytes: &[u8]) -> Body {
        Body {
            name,
            bytes: bytes.to_vec(),
            uid_at: None,
            expect: Expect::BadRequest,
        }
    }

    /// The bytes with a uid of their own, and that uid.
    fn instance(&self, n: u64) -> (Vec<u8>, Option<String>) {
        let mut bytes = self.bytes.clone();
        let Some(at) = self.uid_at else {
            return (bytes, None);
        };
        // Twelve hex digits, the last group of a uid.
        let uid = format!("5a5a5a5a-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff);
        bytes[at..at + uid.len()].copy_from_slice(uid.as_bytes());
        (bytes, Some(uid))
    }
}

/// A captured or example review, moved into `namespace` with the placeholder uid.
fn into_namespace(mut review: Value, namespace: &str) -> Value {
    review["request"]["uid"] = UID_PLACEHOLDER.into();
    review["request"]["namespace"] = namespace.into();
    if review["request"]["object"]["metadata"].is_object() {
        review["request"]["object"]["metadata"]["namespace"] = namespace.into();
    }
    review
}

fn fixture(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join(path)).unwrap()).unwrap()
}

fn review_of(object: Value, namespace: &str) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let kind = object["kind"].as_str().unwrap().to_owned();
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": UID_PLACEHOLDER,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "soak"},
            "object": object, "oldObject": null, "dryRun": false
        }
    })
}

struct Bodies {
    /// Sent in turn by weight: (body, weight out of 100).
    mix: Vec<(Body, u32)>,
    oversized: Vec<u8>,
}

impl Bodies {
    fn new() -> Bodies {
        use Expect::*;
        let real =
            |name| into_namespace(fixture(&format!("benches/fixtures/{name}.json")), NAMESPACE);
        let example = into_namespace(fixture("examples/reviews/pod.json"), NAMESPACE);
        let deployment = review_of(fixture("benches/fixtures/deployment.json"), NAMESPACE);
        let service = review_of(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NAMESPACE},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            NAMESPACE,
        );
        let config_map = review_of(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NAMESPACE},
                   "data": {"a": "b"}}),
            NAMESPACE,
        );
        let mut v1beta1 = example.clone();
        v1beta1["apiVersion"] = "admission.k8s.io/v1beta1".into();
        let truncated = serde_json::to_vec(&example).unwrap();
        let truncated = &truncated[..truncated.len() / 2];
        let bare_pod = serde_json::to_vec(&example["request"]["object"]).unwrap();
        let mut oversized = serde_json::to_vec(&example).unwrap();
        // Past the 4 MiB limit, padded inside the JSON as a real large object would be.
        let pad = format!(",\"padding\":\"{}\"}}", "x".repeat(4 * 1024 * 1024 + 1024));
        oversized.pop();
        oversized.extend_from_slice(pad.as_bytes());
        Bodies {
            mix: vec![
                (
                    Body::review("real-apply", &real("review-deployment-apply"), SamePatch),
                    25,
                ),
                (
                    Body::review(
                        "real-ssa-53k",
                        &real("review-deployment-big-ssa"),
                        SamePatch,
                    ),
                    8,
                ),
                (
                    Body::review("real-pod", &real("review-pod-from-template"), SamePatch),
                    25,
                ),
                (Body::review("example-pod", &example, SamePatch), 10),
                (Body::review("deployment-11k", &deployment, SamePatch), 12),
                (Body::review("service (skipped kind)", &service, NoPatch), 6),
                (
                    Body::review("configmap (skipped kind)", &config_map, NoPatch),
                    2,
                ),
                (Body::raw("truncated JSON", truncated), 3),
                (Body::raw("not JSON", b"\x00\xffnot json at all"), 3),
                (Body::review("v1beta1 review", &v1beta1, BadRequest), 3),
                (Body::raw("bare Pod, not a review", &bare_pod), 3),
            ],
            oversized,
        }
    }

    /// Which body the n-th request sends: weights spread evenly over each 100.
    fn pick(&self, n: u64) -> usize {
        let slot = ((n % 100) * 37 % 100) as u32;
        let mut acc = 0;
        for (i, (_, weight)) in self.mix.iter().enumerate() {
            acc += weight;
            if slot < acc {
                return i;
            }
        }
        self.mix.len() - 1
    }

    /// Each body's answer before any fault: the patch the load must keep getting.
    async fn references(&self, client: &Client) -> Result<Vec<Option<String>>, String> {
        let mut references = Vec::new();
        for (i, (body, _)) in self.mix.iter().enumerate() {
            let (bytes, uid) = body.instance(i as u64);
            let answer = client.send_once(bytes).await?;
            let review = check(body.expect, uid.as_deref(), &answer, None)
                .map_err(|e| format!("{}: {e}", body.name))?;
            let patch = review["response"]["patch"].as_str().map(str::to_owned);
            if body.expect == Expect::SamePatch && patch.is_none() {
                return Err(format!("{}: no patch to compare with", body.name));
            }
            eprintln!(
                "soak: {}: {} bytes, answered {}",
                body.name,
                body.bytes.len(),
                if patch.is_some() {
                    "with a patch"
                } else {
                    "as expected"
                }
            );
            references.push(patch);
        }
        let status = client.send_oversized(&self.oversized).await?;
        if status != 413 {
            return Err(format!("oversized body answered {status}"));
        }
        Ok(references)
    }
}

/// Checks an answer against what its body must get; the decoded review when it is one.
fn check(
    expect: Expect,
    uid: Option<&str>,
    (status, body): &Answer,
    reference: Option<&Option<String>>,
) -> Result<Value, String> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| format!("{status}, body not JSON: {}", String::from_utf8_lossy(body)))?;
    if expect == Expect::BadRequest {
        return if *status == 400 && parsed["error"].as_str().is_some_and(|e| !e.is_empty()) {
            Ok(parsed)
        } else {
            Err(format!(
                "expected 400 with an error, got {status}: {parsed}"
            ))
        };
    }
    if *status != 200 {
        return Err(format!("{status}: {parsed}"));
    }
    let response = &parsed["response"];
    if parsed["kind"] != "AdmissionReview" || response["uid"].as_str() != uid {
        return Err(format!("not the answer to uid {uid:?}: {parsed}"));
    }
    if response["allowed"] != true {
        return Err(format!("not allowed: {parsed}"));
    }
    let patch = response["patch"].as_str().map(str::to_owned);
    match expect {
        Expect::NoPatch if patch.is_some() => Err(format!("a patch for a skipped kind: {parsed}")),
        Expect::SamePatch if reference.is_some_and(|r| *r != patch) => Err(format!(
            "another patch than before the faults: {}",
            response["warnings"]
        )),
        _ => Ok(parsed),
    }
}

// ---------------------------------------------------------------------------------------
// The load.

struct LoadReport {
    sent: u64,
    sent_before_term: u64,
    ok: u64,
    ok_after_term: u64,
    refused_after_term: u64,
    /// p50, p99, p99.9, max in ms.
    latency: [f64; 4],
    slowest_by_window: Vec<String>,
}

/// Open loop at `rate`: the mix over kept-alive connections, oversized bodies on new ones.
#[allow(clippy::too_many_arguments)]
async fn run_load(
    client: Arc<Client>,
    bodies: Arc<Bodies>,
    references: Arc<Vec<Option<String>>>,
    rate: u32,
    shared: Shared,
    stop: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
    started: Instant,
) -> LoadReport {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, u64)>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let ok = Arc::new(AtomicU64::new(0));
    let ok_after_term = Arc::new(AtomicU64::new(0));
    let refused_after_term = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..LOAD_CONNECTIONS {
        let (client, bodies, references, shared, rx) = (
            client.clone(),
            bodies.clone(),
            references.clone(),
            shared.clone(),
            rx.clone(),
        );
        let (ok, ok_after_term, refused_after_term, terminated) = (
            ok.clone(),
            ok_after_term.clone(),
            refused_after_term.clone(),
            terminated.clone(),
        );
        let first = client.connect().await;
        workers.push(tokio::spawn(async move {
            let mut sender = first.ok();
            let mut latencies = Vec::new();
            loop {
                let next = { rx.lock().await.recv().await };
                let Some((due, n)) = next else { break };
                // A connection probegate closed (Connection: close while draining) is
                // replaced before sending; nothing was written to it.
                let usable = match &mut sender {
                    Some(s) => s.ready().await.is_ok(),
                    None => false,
                };
                if !usable {
                    sender = match client.connect().await {
                        Ok(s) => Some(s),
                        Err(e) => {
                            if terminated.load(Ordering::Acquire) {
                                refused_after_term.fetch_add(1, Ordering::Relaxed);
                            } else {
                                tally(&shared).fail("FAILED: could not connect", e.to_string());
                            }
                            None
                        }
                    };
                }
                let Some(s) = &mut sender else { continue };
                let index = bodies.pick(n);
                let (body, _) = &bodies.mix[index];
                let (bytes, uid) = body.instance(n);
                let answer = Client::send(s, bytes).await;
                let outcome = answer
                    .and_then(|a| check(body.expect, uid.as_deref(), &a, Some(&references[index])));
                match outcome {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if terminated.load(Ordering::Acquire) {
                            ok_after_term.fetch_add(1, Ordering::Relaxed);
                        }
                        latencies.push((due.duration_since(started), due.elapsed()));
                        tally(&shared).count(body.name);
                    }
                    Err(e) => {
                        sender = None;
                        let what = match body.expect {
                            Expect::BadRequest => "FAILED: malformed body not answered 400",
                            _ => "FAILED: valid review",
                        };
                        let at = started.elapsed().as_secs_f64();
                        tally(&shared).fail(what, format!("{at:.2} s {}: {e}", body.name));
                    }
                }
            }
            latencies
        }));
    }
    let oversized = {
        let (client, bodies, shared, stop, terminated) = (
            client.clone(),
            bodies.clone(),
            shared.clone(),
            stop.clone(),
            terminated.clone(),
        );
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut next = Instant::now();
            while !stop.load(Ordering::Acquire) && !terminated.load(Ordering::Acquire) {
                next += Duration::from_secs(1) / OVERSIZED_PER_SECOND;
                tokio::time::sleep_until(next.into()).await;
                sent += 1;
                match client.send_oversized(&bodies.oversized).await {
                    Ok(413) => tally(&shared).count("oversized (413)"),
                    Ok(status) => tally(&shared).fail(
                        "FAILED: oversized body not answered 413",
                        format!("answered {status}"),
                    ),
                    Err(_) if terminated.load(Ordering::Acquire) => {}
                    Err(e) => tally(&shared).fail("FAILED: oversized body not answered 413", e),
                }
            }
            sent
        })
    };
    // The schedule: the oversized sender's share comes off the kept-alive rate.
    let rate = rate.saturating_sub(OVERSIZED_PER_SECOND).max(1);
    let interval = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut sent_before_term = 0u64;
    while !stop.load(Ordering::Acquire) {
        let due = start + interval * (sent as u32);
        if let Some(early) = due.checked_sub(Duration::from_millis(2))
            && early > Instant::now()
        {
            tokio::time::sleep_until(early.into()).await;
        }
        while Instant::now() < due {
            tokio::task::yield_now().await;
        }
        if tx.send((due, sent)).is_err() {
            break;
        }
        sent += 1;
        if !terminated.load(Ordering::Acquire) {
            sent_before_term = sent;
        }
    }
    drop(tx);
    let mut timed = Vec::new();
    for w in workers {
        timed.extend(w.await.unwrap());
    }
    let oversized = oversized.await.unwrap();
    // The slowest answer in each 10 s of the run, to place slow stretches among the faults.
    let mut windows: BTreeMap<u64, Duration> = BTreeMap::new();
    for (at, latency) in &timed {
        let w = windows.entry(at.as_secs() / 10 * 10).or_default();
        *w = (*w).max(*latency);
    }
    let mut all: Vec<Duration> = timed.into_iter().map(|(_, l)| l).collect();
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    LoadReport {
        sent: sent + oversized,
        sent_before_term: sent_before_term + oversized,
        ok: ok.load(Ordering::Relaxed),
        ok_after_term: ok_after_term.load(Ordering::Relaxed),
        refused_after_term: refused_after_term.load(Ordering::Relaxed),
        latency: [
            at(0.5),
            at(0.99),
            at(0.999),
            all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        ],
        slowest_by_window: windows
            .into_iter()
            .map(|(w, d)| format!("{w}s {:.0}", d.as_secs_f64() * 1e3))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// The toggle namespace: what its answers say about the setting the outages change.

#[derive(Clone)]
struct Toggle {
    client: Arc<Client>,
    body: Arc<Body>,
    state: Arc<Mutex<ToggleState>>,
}

struct ToggleState {
    /// The value set last; `None` until the answers first show it.
    expected: &'static str,
    applied_at: Option<Instant>,
}

#[derive(Default)]
struct ToggleReport {
    reviews: u64,
    stale_after_resync: u64,
    failed: u64,
}

impl Toggle {
    fn new(client: &Arc<Client>) -> Toggle {
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
    async fn check_both_values(&self, api: &ApiServer) -> Result<(), String> {
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

    fn expect(&self, value: &'static str) {
        let mut state = self.state.lock().unwrap();
        state.expected = value;
        state.applied_at = None;
    }

    fn applied_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().applied_at
    }

    /// A review in the toggle namespace every 100 ms: once an answer shows the value set
    /// last, every later answer must show it too.
    async fn run(self, stop: Arc<AtomicBool>, terminated: Arc<AtomicBool>) -> ToggleReport {
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

// ---------------------------------------------------------------------------------------
// Held connections, /readyz, RSS.

struct Holders {
    listener: &'static str,
    tasks: Vec<tokio::task::JoinHandle<HolderStats>>,
    open: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

#[derive(Default)]
struct HolderStats {
    opened: u64,
    closed_by_server: u64,
    connect_failures: u64,
    lives: Vec<f64>,
}

struct HeldReport {
    listener: &'static str,
    peak_open: u64,
    opened: u64,
    closed_by_server: u64,
    connect_failures: u64,
    median_life: f64,
}

impl Holders {
    /// `count` connections, half idle (nothing sent, not even a TLS hello) and half with
    /// a request head half sent; each reopened when probegate closes it, until SIGTERM
    /// (those open then are held through the shutdown).
    fn start(
        listener: &'static str,
        addr: SocketAddr,
        count: usize,
        tls: bool,
        client: Arc<Client>,
        stop: Arc<AtomicBool>,
        terminated: Arc<AtomicBool>,
    ) -> Holders {
        let open = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let tasks = (0..count)
            .map(|i| {
                let (client, stop, terminated, open, peak) = (
                    client.clone(),
                    stop.clone(),
                    terminated.clone(),
                    open.clone(),
                    peak.clone(),
                );
                tokio::spawn(async move {
                    // Spread the first connects over a second.
                    tokio::time::sleep(Duration::from_millis((i % 1000) as u64)).await;
                    let mut stats = HolderStats::default();
                    let half_sent = i % 2 == 1;
                    while !stop.load(Ordering::Acquire) && !terminated.load(Ordering::Acquire) {
                        let opened = Instant::now();
                        let held = hold(
                            addr,
                            tls && half_sent,
                            half_sent,
                            &client,
                            &open,
                            &peak,
                            &stop,
                        )
                        .await;
                        match held {
                            Ok(true) => {
                                stats.opened += 1;
                                stats.closed_by_server += 1;
                                stats.lives.push(opened.elapsed().as_secs_f64());
                            }
                            Ok(false) => stats.opened += 1,
                            Err(_) => stats.connect_failures += 1,
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    stats
                })
            })
            .collect();
        Holders {
            listener,
            tasks,
            open,
            peak,
        }
    }

    async fn finish(self) -> HeldReport {
        let mut all = HolderStats::default();
        for t in self.tasks {
            let s = t.await.unwrap();
            all.opened += s.opened;
            all.closed_by_server += s.closed_by_server;
            all.connect_failures += s.connect_failures;
            all.lives.extend(s.lives);
        }
        all.lives.sort_by(f64::total_cmp);
        let _ = self.open;
        HeldReport {
            listener: self.listener,
            peak_open: self.peak.load(Ordering::Relaxed),
            opened: all.opened,
            closed_by_server: all.closed_by_server,
            connect_failures: all.connect_failures,
            median_life: all.lives.get(all.lives.len() / 2).copied().unwrap_or(0.0),
        }
    }
}

/// Holds one connection until probegate closes it (`Ok(true)`) or the run ends.
async fn hold(
    addr: SocketAddr,
    tls: bool,
    half_sent: bool,
    client: &Client,
    open: &AtomicU64,
    peak: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    let head: &[u8] = if tls {
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: appli"
    } else {
        b"GET /readyz HTTP/1.1\r\nHost: local"
    };
    let _counted = Counted::new(open, peak);
    let ended = async {
        while !stop.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if tls {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), client.tls())
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        stream.write_all(head).await?;
        stream.flush().await?;
        tokio::select! {
            _ = wait_closed(&mut stream) => Ok(true),
            _ = ended => Ok(false),
        }
    } else {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        if half_sent {
            stream.write_all(head).await?;
        }
        tokio::select! {
            _ = wait_closed(&mut stream) => Ok(true),
            _ = ended => Ok(false),
        }
    }
}

/// Reads until the other side closes.
async fn wait_closed(read: &mut (impl tokio::io::AsyncRead + Unpin)) {
    let mut buf = [0u8; 1024];
    while let Ok(1..) = read.read(&mut buf).await {}
}

/// Counts a held connection while it lives.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(open: &'a AtomicU64, peak: &AtomicU64) -> Counted<'a> {
        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        Counted(open)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct ReadyzReport {
    /// (seconds into the run, status or 0 for no answer) at each change.
    changes: Vec<(f64, u16)>,
    polls: u64,
    slowest_ms: f64,
    ready_at_end: bool,
}

impl ReadyzReport {
    fn summary(&self) -> String {
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

async fn poll_readyz(
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
async fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut peak = 0;
    while !stop.load(Ordering::Acquire) {
        peak = peak
            .max(support::proc_status(pid, "VmRSS"))
            .max(support::proc_status(pid, "VmHWM"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    peak
}

/// Plain HTTP GET on a new connection: status and body.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(5), http_get_once(addr, path))
        .await
        .ok()
        .flatten()
}

async fn http_get_once(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    parse_status(text)
}

fn http_get_blocking(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    parse_status(text)
}

fn parse_status(text: String) -> Option<(u16, String)> {
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}
