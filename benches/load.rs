//! Load benchmark: `probegate serve` beside a null server on the same stack.
//!
//! `cargo bench --bench load` (add `-- --smoke` for the short run CI does). The null server
//! is the same axum + rustls + hyper accept loop with the same certificate, reading the body
//! and returning a fixed AdmissionReview: the limit the stack allows on this machine.
//! Servers run pinned to core 0 and this load generator to core 1 when there are two.
//! HTTP/1.1 with 25 kept-alive connections, as the API server uses for webhooks.
//! `benches/outside-load.sh` runs the same servers and bodies under h2load and wrk, through
//! the modes `--null-server CERT_DIR` and `--write-bodies DIR` of this binary.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const CONNECTIONS: usize = 25;
const FIXED_RATE: u32 = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--null-server") {
        return null_server(Path::new(&args[i + 1]));
    }
    if let Some(i) = args.iter().position(|a| a == "--write-bodies") {
        for (name, body) in bodies() {
            std::fs::write(Path::new(&args[i + 1]).join(format!("{name}.json")), body).unwrap();
        }
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let plan = if smoke {
        Plan {
            saturation: Duration::from_millis(400),
            fixed: Duration::from_millis(400),
            connect: Duration::from_millis(300),
        }
    } else {
        Plan {
            saturation: Duration::from_secs(5),
            fixed: Duration::from_secs(10),
            connect: Duration::from_secs(3),
        }
    };
    let taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let two_cores = taskset && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if !two_cores {
        eprintln!("warning: not pinning (needs two cores and taskset); numbers will be noisier");
    }
    if two_cores {
        // Pin the generator before the runtime starts its threads; servers go to core 0.
        pin(std::process::id(), "1");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = probegate::certs::Names {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    };
    let bundle = probegate::certs::generate(&names, 1).unwrap();
    bundle.write(dir.path()).unwrap();
    let bodies = bodies();
    for (name, body) in &bodies {
        eprintln!("body {name}: {} bytes", body.len());
    }

    let mut results = BTreeMap::new();
    for server in [ServerKind::Probegate, ServerKind::Null] {
        let mut child = server.spawn(dir.path(), two_cores);
        let local = tokio::task::LocalSet::new();
        let result = local.block_on(
            &runtime,
            measure(&mut child, &bundle.ca_pem, &bodies, &plan),
        );
        child.stop();
        results.insert(server.name(), result);
    }
    report(&results, &bodies);
    let errors: u64 = results.values().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}

struct Plan {
    saturation: Duration,
    fixed: Duration,
    connect: Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum ServerKind {
    Probegate,
    Null,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Probegate => "probegate",
            ServerKind::Null => "null",
        }
    }

    fn spawn(self, certs: &Path, pin_to_core_0: bool) -> Running {
        let mut command = if pin_to_core_0 {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]);
            c
        } else {
            Command::new(std::env::current_exe().unwrap())
        };
        let program: std::ffi::OsString = match self {
            ServerKind::Probegate => env!("CARGO_BIN_EXE_probegate").into(),
            ServerKind::Null => std::env::current_exe().unwrap().into(),
        };
        if pin_to_core_0 {
            command.arg(&program);
        } else {
            command = Command::new(&program);
        }
        match self {
            ServerKind::Probegate => {
                command
                    .args([
                        "serve",
                        "--standalone",
                        "--addr",
                        "127.0.0.1:0",
                        "--health-addr",
                        "127.0.0.1:0",
                        "--no-metrics",
                    ])
                    .args([
                        "--log-format",
                        "json",
                        "--log-level",
                        "warn,probegate::server=info",
                    ])
                    .arg("--tls-cert-file")
                    .arg(certs.join("tls.crt"))
                    .arg("--tls-key-file")
                    .arg(certs.join("tls.key"));
            }
            ServerKind::Null => {
                command.arg("--null-server").arg(certs);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = read_address(&mut child, self);
        Running { child, addr }
    }
}

/// probegate logs its addresses as JSON on stderr; the null server prints its own on stdout.
fn read_address(child: &mut Child, kind: ServerKind) -> SocketAddr {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    if kind == ServerKind::Probegate {
        let (addresses, _) =
            support::startup_log::read_addresses(stderr, Duration::from_secs(30), |line, _| {
                eprintln!("probegate: {line}")
            });
        return addresses.webhook;
    }
    // Drained, so the null server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the null server reported its address");
    line.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn pin(pid: u32, cores: &str) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cores, &pid.to_string()])
        .stdout(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("warning: could not pin pid {pid} to core {cores}; numbers will be noisier");
    }
}

/// Null server: the same accept loop, TLS and guards, and a fixed answer.
fn null_server(certs: &Path) {
    use axum::routing::post;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = probegate::tls::CertStore::open(&certs.join("tls.crt"), &certs.join("tls.key"))
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config(None).unwrap());
        let fixed = Bytes::from(
            serde_json::to_vec(&json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "00000000-0000-0000-0000-000000000000", "allowed": true}
            }))
            .unwrap(),
        );
        let limits = probegate::server::Limits::default();
        let router = probegate::server::guarded(
            axum::Router::new().route(
                "/mutate",
                post(move |body: Bytes| {
                    let fixed = fixed.clone();
                    async move {
                        std::hint::black_box(&body);
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            fixed,
                        )
                    }
                }),
            ),
            &limits,
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        probegate::server::serve_tls(
            listener,
            acceptor,
            std::sync::Arc::new(probegate::metrics::Metrics::default()),
            router,
            &limits,
            std::future::pending::<()>(),
            || {},
        )
        .await;
    });
}

#[derive(Default)]
struct Measured {
    /// Per body: requests per second at saturation, CPU µs per request there.
    saturation: BTreeMap<&'static str, (f64, f64)>,
    /// Per body: p50, p99, p99.9 at a fixed rate, from the intended send time.
    latency: BTreeMap<&'static str, [Duration; 3]>,
    connections_per_second: f64,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    errors: u64,
}

async fn measure(
    server: &mut Running,
    ca_pem: &str,
    bodies: &[(&'static str, Vec<u8>)],
    plan: &Plan,
) -> Measured {
    let client = Client::new(ca_pem, server.addr);
    // Warm up: connections, allocator, caches.
    let (_, warm_errors) = saturate(&client, &bodies[1].1, Duration::from_millis(300)).await;
    let mut measured = Measured {
        idle_rss_kib: support::proc_status(server.pid(), "VmRSS"),
        errors: warm_errors,
        ..Measured::default()
    };
    for (name, body) in bodies {
        let cpu_before = cpu_seconds(server.pid());
        let (count, errors) = saturate(&client, body, plan.saturation).await;
        let cpu = cpu_seconds(server.pid()) - cpu_before;
        measured.errors += errors;
        let rps = count as f64 / plan.saturation.as_secs_f64();
        measured
            .saturation
            .insert(name, (rps, cpu * 1e6 / count.max(1) as f64));
        let (latencies, errors) = fixed_rate(&client, body, plan.fixed).await;
        measured.errors += errors;
        measured.latency.insert(name, latencies);
    }
    let (connections, errors) = connect_rate(&client, &bodies[0].1, plan.connect).await;
    measured.errors += errors;
    measured.connections_per_second = connections as f64 / plan.connect.as_secs_f64();
    measured.peak_rss_kib = support::proc_status(server.pid(), "VmHWM");
    measured
}

struct Client {
    connector: tokio_rustls::TlsConnector,
    addr: SocketAddr,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Client {
    fn new(ca_pem: &str, addr: SocketAddr) -> Arc<Client> {
        Arc::new(Client {
            connector: support::connector(ca_pem),
            addr,
        })
    }

    async fn connect(&self) -> Option<Sender> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        tcp.set_nodelay(true).ok()?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        let tls = self.connector.connect(name, tcp).await.ok()?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .ok()?;
        tokio::spawn(connection);
        Some(sender)
    }

    /// One request; `true` when answered 200 with a full body.
    async fn send(sender: &mut Sender, body: &[u8], close: bool) -> bool {
        let mut request = hyper::Request::post("/mutate")
            .header("host", "localhost")
            .header("content-type", "application/json");
        if close {
            request = request.header("connection", "close");
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let Ok(response) = sender.send_request(request).await else {
            return false;
        };
        let ok = response.status() == 200;
        ok && response.into_body().collect().await.is_ok()
    }
}

/// Runs `work` on `CONNECTIONS` workers until `duration` is over; sums their
/// (completed, failed) counts.
async fn workers<F, Fut>(
    client: &Arc<Client>,
    body: &[u8],
    duration: Duration,
    work: F,
) -> (u64, u64)
where
    F: Fn(Arc<Client>, Vec<u8>, Instant) -> Fut,
    Fut: std::future::Future<Output = (u64, u64)> + 'static,
{
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::task::spawn_local(work(client.clone(), body.to_vec(), deadline)))
        .collect();
    let mut totals = (0, 0);
    for task in tasks {
        let (done, errors) = task.await.unwrap();
        totals.0 += done;
        totals.1 += errors;
    }
    totals
}

/// Every connection kept busy: requests per second the server can take.
async fn saturate(client: &Arc<Client>, body: &[u8], duration: Duration) -> (u64, u64) {
    workers(
        client,
        body,
        duration,
        |client, body, deadline| async move {
            let (mut done, mut errors) = (0u64, 0u64);
            let Some(mut sender) = client.connect().await else {
                return (0, 1);
            };
            while Instant::now() < deadline {
                if Client::send(&mut sender, &body, false).await {
                    done += 1;
                } else {
                    errors += 1;
                    match client.connect().await {
                        Some(s) => sender = s,
                        None => return (done, errors),
                    }
                }
            }
            (done, errors)
        },
    )
    .await
}

/// Open loop at `FIXED_RATE`: latency runs from when a request was due, so waiting for a
/// free connection counts.
async fn fixed_rate(client: &Arc<Client>, body: &[u8], duration: Duration) -> ([Duration; 3], u64) {
    let total = (duration.as_secs_f64() * f64::from(FIXED_RATE)) as usize;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let body = body.to_vec();
        let rx = rx.clone();
        let Some(mut sender) = client.connect().await else {
            return ([Duration::ZERO; 3], 1);
        };
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let due = { rx.lock().await.recv().await };
                let Some(due) = due else { break };
                if !Client::send(&mut sender, &body, false).await {
                    errors += 1;
                }
                latencies.push(due.elapsed());
            }
            (latencies, errors)
        }));
    }
    let start = Instant::now() + Duration::from_millis(5);
    let interval = Duration::from_secs(1) / FIXED_RATE;
    for i in 0..total {
        let due = start + interval * i as u32;
        // The timer ticks in whole milliseconds: sleep to just before, then yield until due,
        // so the schedule, not the timer, sets when requests leave.
        if let Some(early) = due.checked_sub(Duration::from_millis(2))
            && early > Instant::now()
        {
            tokio::time::sleep_until(early.into()).await;
        }
        while Instant::now() < due {
            tokio::task::yield_now().await;
        }
        let _ = tx.send(due);
    }
    drop(tx);
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for worker in workers {
        let (latencies, e) = worker.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    ([at(0.5), at(0.99), at(0.999)], errors)
}

/// New TLS connections per second: one request each, with `Connection: close`.
async fn connect_rate(client: &Arc<Client>, body: &[u8], duration: Duration) -> (u64, u64) {
    workers(
        client,
        body,
        duration,
        |client, body, deadline| async move {
            let (mut done, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let answered = match client.connect().await {
                    Some(mut sender) => Client::send(&mut sender, &body, true).await,
                    None => false,
                };
                if answered {
                    done += 1;
                } else {
                    errors += 1;
                }
            }
            (done, errors)
        },
    )
    .await
}

/// User and system CPU seconds of a process, all threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn report(results: &BTreeMap<&str, Measured>, bodies: &[(&'static str, Vec<u8>)]) {
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    for (server, m) in results {
        println!("\n== {server}");
        for (body, _) in bodies {
            let (rps, cpu) = m.saturation[body];
            let [p50, p99, p999] = m.latency[body];
            println!(
                "{body:>15}: {rps:>9.0} req/s at saturation, {cpu:>6.1} µs CPU/req; at {FIXED_RATE}/s p50 {} p99 {} p99.9 {}",
                ms(p50),
                ms(p99),
                ms(p999)
            );
        }
        println!(
            "{:>15}: {:.0} new TLS connections/s (Connection: close)",
            "connections", m.connections_per_second
        );
        println!(
            "{:>15}: idle {:.1} MiB, peak {:.1} MiB",
            "RSS",
            m.idle_rss_kib as f64 / 1024.0,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
    if let (Some(p), Some(n)) = (results.get("probegate"), results.get("null")) {
        println!("\n== probegate / null");
        for (body, _) in bodies {
            let ratio = p.saturation[body].0 / n.saturation[body].0;
            println!(
                "{body:>15}: throughput {:.0}% of null; p99 {:.2}x",
                ratio * 100.0,
                p.latency[body][1].as_secs_f64() / n.latency[body][1].as_secs_f64().max(1e-9)
            );
        }
        println!(
            "{:>15}: {:.0}% of null",
            "connections",
            p.connections_per_second / n.connections_per_second * 100.0
        );
    }
}

/// The review bodies every run sends, by name.
fn bodies() -> [(&'static str, Vec<u8>); 6] {
    let captured = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/fixtures/{name}.json")),
        )
        .unwrap()
    };
    [
        ("pod", pod_review()),
        ("deployment-10k", deployment_review()),
        ("template-100k", large_review()),
        // As the kube-apiserver sent them (tests/capture_reviews.rs).
        ("real-apply", captured("review-deployment-apply")),
        ("real-ssa-53k", captured("review-deployment-big-ssa")),
        ("real-pod", captured("review-pod-from-template")),
    ]
}

fn review(object: Value) -> Vec<u8> {
    let api_version = object["apiVersion"].as_str().unwrap().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let kind = object["kind"].as_str().unwrap().to_owned();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "9f0e1d2c-3b4a-5968-7766-554433221100",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
            "object": object, "oldObject": null, "dryRun": false
        }
    }))
    .unwrap()
}

fn pod_review() -> Vec<u8> {
    let review_json: Value =
        serde_json::from_str(include_str!("../examples/reviews/pod.json")).unwrap();
    review(review_json["request"]["object"].clone())
}

fn deployment_review() -> Vec<u8> {
    review(serde_json::from_str(include_str!("fixtures/deployment.json")).unwrap())
}

/// A pod template with many containers and environment variables, about 100 KB.
fn large_review() -> Vec<u8> {
    let mut deployment: Value =
        serde_json::from_str(include_str!("fixtures/deployment.json")).unwrap();
    let template = deployment["spec"]["template"]["spec"]["containers"][0].clone();
    let containers: Vec<Value> = (0..20)
        .map(|i| {
            let mut c = template.clone();
            c["name"] = json!(format!("worker-{i}"));
            c["ports"] = json!([{"name": "http", "containerPort": 8080 + i}]);
            c["readinessProbe"] = Value::Null;
            c
        })
        .collect();
    deployment["spec"]["template"]["spec"]["containers"] = json!(containers);
    review(deployment)
}
