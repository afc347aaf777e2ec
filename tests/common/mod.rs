//! A real probegate server on loopback, and a TLS client that trusts its CA.
#![allow(dead_code)]

#[path = "../support/startup_log.rs"]
pub mod startup_log;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use probegate::admission::Admission;
use probegate::certs::{self, Bundle, Names};
use probegate::health::Health;
use probegate::metrics::Metrics;
use probegate::namespace_cache::Directory;
use probegate::server::{Limits, Listeners, Server};
use probegate::tls::CertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::sync::oneshot;

pub fn bundle() -> Bundle {
    let names = Names {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    };
    certs::generate(&names, 1).unwrap()
}

pub struct Options {
    pub metrics: bool,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            metrics: true,
            namespaces: BTreeMap::new(),
            limits: Limits::default(),
        }
    }
}

pub struct TestServer {
    pub webhook: SocketAddr,
    pub health_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub health: Arc<Health>,
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn bind() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

impl TestServer {
    pub async fn start(options: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let bundle = bundle();
        bundle.write(dir.path()).unwrap();
        let config = dir.path().join("namespaces.yaml");
        std::fs::write(
            &config,
            probegate::yaml::to_string(&serde_json::to_value(&options.namespaces).unwrap()),
        )
        .unwrap();
        let directory = Directory::standalone(Some(&config)).unwrap();
        let metrics = Arc::new(Metrics::default());
        let certs =
            CertStore::open(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
        let listeners = Listeners {
            webhook: bind(),
            health: bind(),
            metrics: options.metrics.then(bind),
        };
        let webhook = listeners.webhook.local_addr().unwrap();
        let health_addr = listeners.health.local_addr().unwrap();
        let metrics_addr = listeners.metrics.as_ref().map(|l| l.local_addr().unwrap());
        let health = Health::new(directory.clone());
        let server = Server {
            listeners,
            certs,
            client_ca: None,
            admission: Arc::new(Admission::new(directory, BTreeMap::new(), metrics.clone())),
            metrics,
            health: health.clone(),
            limits: options.limits,
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
        tokio::time::timeout(Duration::from_secs(10), health.wait_ready())
            .await
            .expect("server ready");
        TestServer {
            webhook,
            health_addr,
            metrics_addr,
            health,
            ca_pem: bundle.ca_pem,
            dir,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Signals shutdown and returns the task, which ends once the drain is over.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.take().unwrap()
    }

    pub fn client(&self) -> TlsClient {
        TlsClient::new(&self.ca_pem, self.webhook)
    }
}

pub struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    addr: SocketAddr,
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl TlsClient {
    pub fn new(ca_pem: &str, addr: SocketAddr) -> TlsClient {
        Self::build(ca_pem, addr, None)
    }

    /// A client that presents `cert_pem` (with its key) when the server asks for one.
    pub fn with_client_cert(
        ca_pem: &str,
        addr: SocketAddr,
        cert_pem: &str,
        key_pem: &str,
    ) -> TlsClient {
        Self::build(ca_pem, addr, Some((cert_pem, key_pem)))
    }

    fn build(ca_pem: &str, addr: SocketAddr, identity: Option<(&str, &str)>) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert_pem, key_pem)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            addr,
        }
    }

    pub async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.try_connect().await.unwrap()
    }

    async fn try_connect(
        &self,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        self.connector.connect(name, tcp).await
    }

    /// A review on a new connection, or the error that ended it: in TLS 1.3 the server
    /// judges a client certificate after the client's side of the handshake is done, so a
    /// refusal can surface at the connect or at the first exchange.
    pub async fn try_review(&self, review: &serde_json::Value) -> Result<Reply, String> {
        let tls = self.try_connect().await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        send(
            &mut sender,
            "POST",
            "/mutate",
            serde_json::to_vec(review).unwrap(),
        )
        .await
        .map_err(|e| format!("{e:?}"))
    }

    /// The leaf certificate the server presents to a new connection.
    pub async fn served_leaf(&self) -> CertificateDer<'static> {
        let tls = self.connect().await;
        tls.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    pub async fn request(&self, method: &str, path: &str, body: Vec<u8>) -> Reply {
        exchange(self.connect().await, method, path, body).await
    }

    pub async fn review(&self, review: &serde_json::Value) -> Reply {
        self.request("POST", "/mutate", serde_json::to_vec(review).unwrap())
            .await
    }

    /// One TLS connection kept alive across requests, as the API server's client keeps them.
    pub async fn kept_alive(&self) -> KeptAlive {
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(self.connect().await))
                .await
                .unwrap();
        let task = tokio::spawn(connection);
        KeptAlive { sender, task }
    }
}

/// Requests on one connection; a request fails if the server has closed it.
pub struct KeptAlive {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<Result<(), hyper::Error>>,
}

impl KeptAlive {
    pub async fn review(&mut self, review: &serde_json::Value) -> Result<Reply, hyper::Error> {
        self.sender.ready().await?;
        send(
            &mut self.sender,
            "POST",
            "/mutate",
            serde_json::to_vec(review).unwrap(),
        )
        .await
    }

    /// Resolves once the connection has ended (the server closed it).
    pub async fn closed(self) {
        let _ = self.task.await;
    }
}

/// Plain HTTP GET, for health and metrics.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        "GET",
        path,
        Vec::new(),
    )
    .await
}

/// One HTTP/1.1 request over `io`, and its whole answer.
async fn exchange<IO>(io: IO, method: &str, path: &str, body: Vec<u8>) -> Reply
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    send(&mut sender, method, path, body).await.unwrap()
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Reply, hyper::Error> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// An AdmissionReview v1 for `object`.
pub fn review(object: serde_json::Value, dry_run: bool) -> serde_json::Value {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap();
    let resource = format!("{}s", kind.to_lowercase());
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b4e6c6f5-4a2f-4a0e-9d59-3a1c0e7c2f11",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "namespace": object["metadata"]["namespace"].as_str().unwrap_or("default"),
            "operation": "CREATE",
            "userInfo": {"username": "tester"},
            "object": object,
            "oldObject": null,
            "dryRun": dry_run
        }
    })
}

/// Applies the response's base64 JSON Patch to `object`.
pub fn apply_response(object: &serde_json::Value, reply: &serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    let mut patched = object.clone();
    if let Some(patch) = reply["response"]["patch"].as_str() {
        assert_eq!(reply["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut patched, &patch).unwrap();
    }
    patched
}

/// helm, from `.ci/install-tools.sh helm`.
pub fn helm() -> PathBuf {
    tool("helm")
}

/// `probegate serve` on loopback ports with the serving pair in `dir` (tls.crt, tls.key),
/// JSON logs on a piped stderr and no cluster from the environment; callers add the rest.
pub fn serve_command(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"));
    command
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert-file")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("tls.key"))
        .args(["--log-format", "json"])
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped());
    command
}

/// promtool, from `.ci/install-tools.sh promtool`.
pub fn promtool() -> PathBuf {
    tool("promtool")
}

/// The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule, ...), from its
/// pinned Go module: the folder .ci/prometheus-operator-crds.sh prints.
pub fn prometheus_operator_crds() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        PathBuf::from(last_line_of(
            ".ci/prometheus-operator-crds.sh",
            &[],
            "fetching the Prometheus Operator's CRDs",
        ))
    })
    .clone()
}

/// The chart with every monitoring option on: ServiceMonitor, PodMonitor, PrometheusRule
/// and the Grafana dashboard.
pub const MONITORING_ON: [&str; 8] = [
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "podMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "grafana.dashboard.enabled=true",
];

/// The objects of a multi-document YAML text, as probegate reads them.
pub fn documents(origin: &str, text: &str) -> Vec<serde_json::Value> {
    let mut stdin = text.as_bytes();
    probegate::manifest::read_paths(&[PathBuf::from("-")], &mut stdin)
        .unwrap_or_else(|e| panic!("{origin}: {e}"))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// kube-score, from `.ci/install-tools.sh kube-score`.
pub fn kube_score() -> PathBuf {
    tool("kube-score")
}

/// kustomize, from `.ci/install-tools.sh kustomize`.
pub fn kustomize() -> PathBuf {
    tool("kustomize")
}

/// A tool from `.ci/install-tools.sh` (pinned, built once from its Go module and cached
/// outside the repository). Installed here when missing, so `cargo test` works on a fresh
/// machine, as the end-to-end suite builds its kube-apiserver.
fn tool(name: &'static str) -> PathBuf {
    static INSTALLED: std::sync::Mutex<BTreeMap<&str, PathBuf>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut installed = INSTALLED.lock().unwrap();
    if let Some(path) = installed.get(name) {
        return path.clone();
    }
    let bin = last_line_of(
        ".ci/install-tools.sh",
        &[name],
        &format!("installing {name}"),
    );
    let path = Path::new(&bin).join(name);
    installed.insert(name, path.clone());
    path
}

/// tests/yaml-oracle (kubectl's reading of YAML), built once from its Go module into the tool
/// cache by its build.sh, which prints the binary's path.
pub fn yaml_oracle() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let bin = last_line_of(
            "tests/yaml-oracle/build.sh",
            &[],
            "building the YAML oracle",
        );
        PathBuf::from(bin)
    })
    .clone()
}

/// The last line a build script of the repository prints (the folder or binary it made);
/// its progress goes to the test's stderr.
fn last_line_of(script: &str, args: &[&str], what: &str) -> String {
    let out = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{script} does not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed (it needs Go and the Go module proxy)"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().last();
    line.unwrap_or_else(|| panic!("{script} printed nothing"))
        .trim()
        .to_string()
}

/// helm, run in the crate's folder with `args`, which must succeed: its stdout.
pub fn helm_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(helm())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm template` of the chart as release `probegate` in namespace `probegate`.
pub fn helm_template(args: &[&str]) -> String {
    let mut all = vec![
        "template",
        "probegate",
        "charts/probegate",
        "--namespace",
        "probegate",
    ];
    all.extend_from_slice(args);
    helm_ok(&all)
}

/// `kubectl kustomize` of manifests/ with the client-auth component.
pub fn kustomize_with_client_auth() -> String {
    kustomize_with("client-auth")
}

/// `kubectl kustomize` of manifests/ with `component` (a folder of it), from a copy
/// (kustomize takes no absolute paths to bases).
pub fn kustomize_with(component: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for sub in ["", component] {
        std::fs::create_dir_all(base.join(sub)).unwrap();
        for entry in std::fs::read_dir(manifests.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, base.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!("resources:\n  - base\ncomponents:\n  - base/{component}\n"),
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The golden fixtures' folders (`tests/golden/*/` with an `input.yaml`), in name order.
pub fn golden_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 9, "golden cases missing: {cases:?}");
    cases
}

/// The probegate binary run in `dir` with `args`, `stdin` written to it, to its end.
pub fn probegate(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"));
    command.current_dir(dir).args(args);
    output(command, stdin)
}

/// `command` run with `stdin` written to it, to its end.
pub fn output(mut command: std::process::Command, stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.unwrap_or_default()).unwrap();
    }
    child.wait_with_output().unwrap()
}
