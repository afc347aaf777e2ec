//! End to end: the real `probegate serve` in cluster mode, registered as a
//! MutatingWebhookConfiguration with a real kube-apiserver (tests/e2e/), driven through
//! the real `kubectl`. Run it alone with `cargo test --test e2e -- --nocapture`.
//!
//! One scenario, in order, because the control plane is shared; each step names itself in
//! its failure messages.

mod common;

use std::collections::BTreeSet;
#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/startup.rs"]
mod startup;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The control plane; stopped when dropped, also when a step fails.
struct ApiServer {
    workdir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl ApiServer {
    fn start() -> ApiServer {
        let workdir = tempfile::Builder::new()
            .prefix("probegate-e2e-")
            .tempdir()
            .unwrap();
        let admission = admission_configuration(workdir.path());
        let out = Command::new(root().join("tests/e2e/start-apiserver.sh"))
            .arg(workdir.path())
            .env(
                "PROBEGATE_APISERVER_ARGS",
                format!("--admission-control-config-file={}", admission.display()),
            )
            .stderr(Stdio::inherit())
            .output()
            .expect("tests/e2e/start-apiserver.sh runs");
        assert!(
            out.status.success(),
            "the kube-apiserver did not start (it needs Go and the Go module proxy on a first run; see tests/e2e/README.md)"
        );
        let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        ApiServer {
            workdir,
            kubeconfig,
        }
    }
}

/// The API server's side of client certificates, as docs/operations.md shows it: a client
/// certificate from `probegate certs --client` (in WORKDIR/client-certs), named in a
/// kubeconfig that a WebhookAdmissionConfiguration points at. The user is `*`: the webhook
/// is registered by URL, on a port not known yet.
fn admission_configuration(workdir: &Path) -> PathBuf {
    let client = workdir.join("client-certs");
    let status = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["certs", "--client", "--out"])
        .arg(&client)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "probegate certs --client");
    let kubeconfig = workdir.join("webhook-kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n  - name: \"*\"\n    user:\n      client-certificate: {}\n      client-key: {}\n",
            client.join("client.crt").display(),
            client.join("client.key").display()
        ),
    )
    .unwrap();
    let admission = workdir.join("admission.yaml");
    std::fs::write(
        &admission,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n  - name: MutatingAdmissionWebhook\n    configuration:\n      apiVersion: apiserver.config.k8s.io/v1\n      kind: WebhookAdmissionConfiguration\n      kubeConfigFile: {}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    admission
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/e2e/stop-apiserver.sh"))
            .arg(self.workdir.path())
            .status();
    }
}

/// `probegate serve`, in cluster mode against the API server.
struct Probegate {
    child: Child,
    webhook: String,
    health: String,
    metrics: String,
}

impl Probegate {
    fn start_with(kubeconfig: &Path, certs: &Path, extra: &[&str]) -> Probegate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "--shutdown-grace-seconds",
                "5",
            ])
            .arg("--tls-cert-file")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key-file")
            .arg(certs.join("tls.key"))
            // Every replica takes reviews only from the API server's client certificate.
            .arg("--client-ca-file")
            .arg(certs.join("client-ca.crt"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Every log line is echoed, for failures.
        let (addresses, _) = common::startup_log::read_addresses(
            child.stderr.take().unwrap(),
            Duration::from_secs(30),
            |line, _| eprintln!("probegate: {line}"),
        );
        let (webhook, health) = (addresses.webhook.to_string(), addresses.health.to_string());
        let metrics = addresses.metrics.expect("metrics are on").to_string();
        let probegate = Probegate {
            child,
            webhook,
            health,
            metrics,
        };
        // Ready means the namespace and Service caches have synced from the API server.
        eventually("probegate ready", Duration::from_secs(60), || {
            http_status(&probegate.health, "/readyz") == Some(200)
        });
        probegate
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "probegate exits 0 after SIGTERM: {status}"
        );
    }
}

impl Drop for Probegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_status(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A plain HTTP GET's whole answer, head and body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Polls `check` until it holds; the deadline bounds the wait, it is not a sleep.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is installed");
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(stdin.unwrap_or_default().as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply --dry-run=server -o json`: (exit ok, object or null, stderr).
    fn dry_run(&self, object: &Value) -> (bool, Value, String) {
        let out = self.run(
            &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(&object.to_string()),
        );
        let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.success(),
            value,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn namespace(name: &str, labelled: bool, annotations: Value) -> Value {
    let labels = if labelled {
        json!({"probegate.io/injection": "enabled"})
    } else {
        json!({})
    };
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels, "annotations": annotations}})
}

fn deployment(namespace: &str, name: &str, labels: Value, container: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [container]}
        }}
    })
}

fn web(name: &str) -> Value {
    json!({"name": name, "image": "example.com/web:1", "ports": [{"name": "http", "containerPort": 8080}]})
}

fn bare_pod(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [web("web")]}
    })
}

/// manifests/'s webhook configuration, pointed at the local server by URL.
fn webhook_configuration(webhook: &str, ca_pem: &str) -> Value {
    let text = std::fs::read_to_string(root().join("manifests/mutatingwebhookconfiguration.yaml"))
        .unwrap();
    let mut stdin = text.as_bytes();
    let mut config = probegate::manifest::read_paths(&[PathBuf::from("-")], &mut stdin)
        .unwrap()
        .remove(0)
        .value;
    use base64::Engine as _;
    config["webhooks"][0]["clientConfig"] = json!({
        "url": format!("https://{webhook}/mutate"),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
    });
    config
}

fn certs(out: &Path, ca: Option<&Path>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_probegate"));
    command
        .args(["certs", "--ip", "127.0.0.1", "--out"])
        .arg(out);
    if let Some(ca) = ca {
        command
            .arg("--ca-cert")
            .arg(ca.join("ca.crt"))
            .arg("--ca-key")
            .arg(ca.join("ca.key"));
    }
    let status = command.stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
}

#[test]
fn end_to_end_against_a_real_kube_apiserver() {
    let api = ApiServer::start();
    let kubectl = Kubectl {
        kubeconfig: api.kubeconfig.clone(),
    };
    let version = kubectl.ok(&["version", "-o", "json"], None);
    eprintln!("kubectl version: {version}");

    let certs_dir = api.workdir.path().join("webhook-certs");
    certs(&certs_dir, None);
    std::fs::copy(
        client_certs(&certs_dir).join("client-ca.crt"),
        certs_dir.join("client-ca.crt"),
    )
    .unwrap();
    // Replicas run with a shutdown delay, as the manifests run them (shorter, to keep the
    // suite short); step 10 rolls this one over to a second replica.
    let probegate = Probegate::start_with(&api.kubeconfig, &certs_dir, REPLICA);
    let ca_pem = std::fs::read_to_string(certs_dir.join("ca.crt")).unwrap();
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&webhook_configuration(&probegate.webhook, &ca_pem).to_string()),
    );

    // The configuration is active once a marker request comes back mutated.
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&namespace("marker", true, json!({})).to_string()),
    );
    eventually("webhook active", Duration::from_secs(60), || {
        let (_, pod, _) = kubectl.dry_run(&bare_pod("marker", "marker"));
        pod["metadata"]["annotations"]["probegate.io/injected"].is_string()
    });

    // Every review so far and from here on came with the API server's client certificate.
    step_only_the_api_servers_certificate_is_taken(&probegate, &ca_pem, &certs_dir);
    step_gates_go_where_a_load_balancer_sets_them(&kubectl);
    step_the_service_decides_the_port(&kubectl);
    step_each_container_gets_what_its_software_serves(&kubectl);
    step_metrics_coupling_warns_then_denies(&kubectl);
    step_bare_pod_is_stored_with_probes(&kubectl);
    step_opted_out_objects_come_back_unchanged(&kubectl);
    step_namespace_changes_reach_the_next_review(&kubectl);
    step_rotation_under_load_loses_no_request(&kubectl, &certs_dir, &probegate.webhook);
    step_install_manifests_and_chart_are_accepted(&kubectl);
    step_monitoring_objects_are_accepted(&kubectl);
    step_service_accounts_may_only_read_namespaces_and_services(&kubectl);
    step_offline_output_reads_the_same_in_kubectl(&kubectl);
    audit::step_audit_finds_hazards_then_passes_once_fixed(&kubectl, api.workdir.path());
    startup::step_audit_measures_startups_and_suggests_budgets(&kubectl);
    let mut probegate = step_rollout_loses_no_review(&kubectl, &certs_dir, &ca_pem, probegate);

    // Last: with probegate gone, pods are still created (failurePolicy: Ignore), promptly.
    probegate.stop();
    let started = Instant::now();
    kubectl.ok(
        &["create", "-f", "-"],
        Some(&bare_pod("marker", "after-stop").to_string()),
    );
    let elapsed = started.elapsed();
    let timeout = webhook_configuration("x", "")["webhooks"][0]["timeoutSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        elapsed < Duration::from_secs(timeout + 5),
        "pod creation took {elapsed:?} with the webhook down"
    );
    let stored: Value = serde_json::from_str(&kubectl.ok(
        &["get", "pod", "-n", "marker", "after-stop", "-o", "json"],
        None,
    ))
    .unwrap();
    assert!(
        stored["spec"]["containers"][0]["readinessProbe"].is_null(),
        "nothing mutated it"
    );
}

fn service(namespace: &str, name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]}
    })
}

fn gates_of(template: &Value) -> Value {
    template["spec"]["readinessGates"].clone()
}

fn step_gates_go_where_a_load_balancer_sets_them(kubectl: &Kubectl) {
    let gate = "target-health.elbv2.k8s.aws/k8s-shop-web-0a1b2c3d4e";
    let annotations = json!({
        "probegate.io/liveness-path": "/live",
        "probegate.io/readiness-path": "/ready",
        "probegate.io/readiness-gates": gate,
    });
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&namespace("shop", true, annotations).to_string()),
    );
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&service("shop", "web", json!({})).to_string()),
    );
    // The Service reaches probegate through its watch: wait for the evidence to count.
    let web_deployment = deployment("shop", "web", json!({}), web("web"));
    let mut result = Value::Null;
    eventually("step 1: the gate on web", Duration::from_secs(20), || {
        let (ok, value, stderr) = kubectl.dry_run(&web_deployment);
        assert!(ok, "step 1: {stderr}");
        result = value;
        gates_of(&result["spec"]["template"]) == json!([{"conditionType": gate}])
    });
    let template = &result["spec"]["template"];
    let container = &template["spec"]["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"], "/live",
        "step 1: {result}"
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"], "/ready",
        "step 1"
    );
    assert_eq!(
        container["startupProbe"]["httpGet"]["path"], "/live",
        "step 1: liveness comes with its startup guard"
    );
    assert_eq!(
        template["metadata"]["annotations"]["probegate.io/injected"],
        "web=liveness,readiness,startup;evidence=web(namespace);port=web(Service \"web\" port 80);gates=1"
    );
    let stored = kubectl.run(&["get", "deployment", "-n", "shop", "web"], None);
    assert!(!stored.status.success(), "step 1: a dry run stores nothing");

    // No Service selects the worker: its probes, but no gate, and a warning that says why.
    let (ok, result, stderr) =
        kubectl.dry_run(&deployment("shop", "worker", json!({}), web("worker")));
    assert!(ok, "step 1: {stderr}");
    assert!(
        gates_of(&result["spec"]["template"]).is_null(),
        "step 1: {result}"
    );
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/ready"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(&format!(
            "Warning: readiness gate {gate:?} from the namespace's probegate.io/readiness-gates not added: no Service selects these pods (labels app=worker; Services here: web)"
        ))),
        "step 1: {stderr}"
    );

    // A Service that names its own gate: the pods it selects get it, after the namespace's.
    let api_gate = "target-health.elbv2.k8s.aws/k8s-shop-api-9f8e7d6c5b";
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(
            &service(
                "shop",
                "api",
                json!({"probegate.io/readiness-gates": api_gate}),
            )
            .to_string(),
        ),
    );
    let api = deployment("shop", "api", json!({}), web("api"));
    eventually(
        "step 1: the Service's gate",
        Duration::from_secs(20),
        || {
            let (ok, result, stderr) = kubectl.dry_run(&api);
            assert!(ok, "step 1: {stderr}");
            gates_of(&result["spec"]["template"])
                == json!([{"conditionType": gate}, {"conditionType": api_gate}])
        },
    );

    // A Job, whose pods a Service selects: batch pods are left as they are.
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "reindex", "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"restartPolicy": "Never", "containers": [web("reindex")]}}}
    });
    let (ok, result, stderr) = kubectl.dry_run(&job);
    assert!(ok, "step 1: {stderr}");
    let template = &result["spec"]["template"];
    assert!(
        template["spec"]["containers"][0]["readinessProbe"].is_null()
            && template["spec"]["containers"][0]["livenessProbe"].is_null()
            && gates_of(template).is_null()
            && template["metadata"]["annotations"].is_null(),
        "step 1: the Job came back changed: {result}"
    );
    assert!(!stderr.contains("Warning"), "step 1: {stderr}");

    // The Deployment before its Service: the template is held back, but its pods are
    // judged again when they are created, so they get the gate once the Service exists.
    let (ok, late, stderr) = kubectl.dry_run(&deployment("shop", "late", json!({}), web("late")));
    assert!(ok, "step 1: {stderr}");
    assert!(
        gates_of(&late["spec"]["template"]).is_null(),
        "step 1: {late}"
    );
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&service("shop", "late", json!({})).to_string()),
    );
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "late-1", "namespace": "shop",
            "labels": late["spec"]["template"]["metadata"]["labels"],
            "annotations": late["spec"]["template"]["metadata"]["annotations"]},
        "spec": late["spec"]["template"]["spec"],
    });
    let mut result = Value::Null;
    eventually(
        "step 1: the late Service's gate on the pod",
        Duration::from_secs(20),
        || {
            let (ok, value, stderr) = kubectl.dry_run(&pod);
            assert!(ok, "step 1: {stderr}");
            result = value;
            gates_of(&result) == json!([{"conditionType": gate}])
        },
    );
    assert_eq!(
        result["metadata"]["annotations"]["probegate.io/injected"],
        "late=liveness,readiness,startup;evidence=late(namespace);gates=1",
        "step 1: the pod keeps its template's record"
    );
}

fn step_the_service_decides_the_port(kubectl: &Kubectl) {
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&namespace("messaging", true, json!({})).to_string()),
    );
    let broker = json!({
        "name": "rabbitmq", "image": "registry.corp/messaging/broker:3.13",
        "ports": [{"name": "management", "containerPort": 15672}, {"name": "amqp", "containerPort": 5672}]
    });
    let brokers = deployment("messaging", "rabbitmq", json!({}), broker);
    let port_of = |result: &Value| {
        result["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"]
            .clone()
    };
    // No Service yet: the first declared port.
    let (ok, result, stderr) = kubectl.dry_run(&brokers);
    assert!(ok, "step 2: {stderr}");
    assert_eq!(port_of(&result), "management", "step 2: {result}");
    // The Service, created first as Helm and kustomize do, sends traffic to AMQP.
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "rabbitmq", "namespace": "messaging"},
        "spec": {"selector": {"app": "rabbitmq"}, "ports": [{"name": "amqp", "port": 5672, "targetPort": "amqp"}]}
    });
    kubectl.ok(&["apply", "-f", "-"], Some(&service.to_string()));
    let mut result = Value::Null;
    eventually(
        "step 2: the Service decides the port",
        Duration::from_secs(20),
        || {
            let (ok, value, stderr) = kubectl.dry_run(&brokers);
            assert!(ok, "step 2: {stderr}");
            result = value;
            port_of(&result) == "amqp"
        },
    );
    assert_eq!(
        result["spec"]["template"]["metadata"]["annotations"]["probegate.io/injected"],
        "rabbitmq=readiness;port=rabbitmq(Service \"rabbitmq\" port \"amqp\");liveness-held=rabbitmq(same check as readiness)"
    );
}

/// A namespace tuned with `/ready` and `/live` holds a web app, a PostgreSQL StatefulSet, a
/// Redis and a gRPC service: only the web app gets the paths, the others what their software
/// serves, and the dry run warns about none of them.
fn step_each_container_gets_what_its_software_serves(kubectl: &Kubectl) {
    let paths = json!({
        "probegate.io/readiness-path": "/ready",
        "probegate.io/liveness-path": "/live",
    });
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&namespace("mixed", true, paths).to_string()),
    );
    let postgres = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "mixed"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "postgres", "image": "docker.io/library/postgres:16.4",
                "ports": [{"name": "tcp-postgresql", "containerPort": 5432}]}]}
        }}
    });
    let redis = deployment(
        "mixed",
        "cache",
        json!({}),
        json!({"name": "redis", "image": "redis:7.2", "ports": [{"containerPort": 6379}]}),
    );
    let greeter = deployment(
        "mixed",
        "greeter",
        json!({}),
        json!({"name": "greeter", "image": "example.com/greeter:1",
            "ports": [{"name": "grpc", "containerPort": 9000}]}),
    );
    let web = deployment("mixed", "web", json!({}), web("web"));
    // (workload, readiness, liveness, evidence): probes as `handler:port[path]`.
    let expected = [
        (
            &web,
            "httpGet:http/ready",
            "httpGet:http/live",
            "web(namespace)",
        ),
        (
            &postgres,
            "exec:pg_isready",
            "tcpSocket:tcp-postgresql",
            "postgres(catalogue=postgresql)",
        ),
        (&redis, "tcpSocket:6379", "-", "redis(catalogue=redis)"),
        (
            &greeter,
            "tcpSocket:grpc",
            "-",
            "greeter(port=grpc(name grpc))",
        ),
    ];
    let summary = |probe: &Value| -> String {
        if let Some(http) = probe.get("httpGet") {
            format!(
                "httpGet:{}{}",
                http["port"]
                    .as_str()
                    .map_or_else(|| http["port"].to_string(), str::to_owned),
                http["path"].as_str().unwrap_or("")
            )
        } else if let Some(tcp) = probe.get("tcpSocket") {
            format!(
                "tcpSocket:{}",
                tcp["port"]
                    .as_str()
                    .map_or_else(|| tcp["port"].to_string(), str::to_owned)
            )
        } else if let Some(exec) = probe.get("exec") {
            format!("exec:{}", exec["command"][0].as_str().unwrap_or(""))
        } else {
            "-".to_owned()
        }
    };
    for (workload, readiness, liveness, evidence) in expected {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let (ok, result, stderr) = kubectl.dry_run(workload);
        assert!(ok, "step 2b: {name}: {stderr}");
        assert!(
            !stderr.contains("Warning:"),
            "step 2b: {name} warned: {stderr}"
        );
        let template = &result["spec"]["template"];
        let container = &template["spec"]["containers"][0];
        assert_eq!(
            summary(&container["readinessProbe"]),
            readiness,
            "step 2b: {name}"
        );
        assert_eq!(
            summary(&container["livenessProbe"]),
            liveness,
            "step 2b: {name}"
        );
        let record = template["metadata"]["annotations"]["probegate.io/injected"]
            .as_str()
            .unwrap_or_default();
        assert!(
            record.contains(&format!("evidence={evidence}")),
            "step 2b: {name}: record {record:?}"
        );
    }
}

fn step_metrics_coupling_warns_then_denies(kubectl: &Kubectl) {
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&namespace("ovn", true, json!({})).to_string()),
    );
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-ovn-controller", "namespace": "ovn"},
        "spec": {"selector": {"app": "kube-ovn-controller"}, "ports": [{"name": "metrics", "port": 10660, "targetPort": 10660}]}
    });
    kubectl.ok(&["apply", "-f", "-"], Some(&service.to_string()));
    let controller = json!({
        "name": "kube-ovn-controller", "image": "kubeovn/kube-ovn:v1.12.0",
        "args": ["--enable-metrics=false"],
        "readinessProbe": {"tcpSocket": {"port": 10660}},
        "livenessProbe": {"tcpSocket": {"port": 10660}}
    });
    let ovn = deployment("ovn", "kube-ovn-controller", json!({}), controller);
    // The Service reaches probegate through its watch: wait for the evidence to count.
    eventually("step 2: coupling warning", Duration::from_secs(20), || {
        let (ok, _, stderr) = kubectl.dry_run(&ovn);
        assert!(ok, "step 2: warn mode must admit: {stderr}");
        stderr.lines().any(|l| {
            l.starts_with(
                "Warning: container \"kube-ovn-controller\": readinessProbe targets port 10660",
            ) && l.contains("Service \"kube-ovn-controller\" port \"metrics\"")
                && l.contains("metrics are off (--enable-metrics=false)")
        })
    });
    kubectl.ok(
        &[
            "annotate",
            "namespace",
            "ovn",
            "probegate.io/metrics-coupling=deny",
        ],
        None,
    );
    eventually("step 2: deny", Duration::from_secs(20), || {
        let (ok, _, stderr) = kubectl.dry_run(&ovn);
        !ok && stderr.contains("denied the request")
            && stderr.contains("livenessProbe targets port 10660")
    });
}

fn step_bare_pod_is_stored_with_probes(kubectl: &Kubectl) {
    kubectl.ok(
        &["create", "-f", "-"],
        Some(&bare_pod("shop", "bare").to_string()),
    );
    let pod: Value = serde_json::from_str(
        &kubectl.ok(&["get", "pod", "-n", "shop", "bare", "-o", "json"], None),
    )
    .unwrap();
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"], "/live",
        "step 3: {pod}"
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"], "/ready",
        "step 3"
    );
    // A bare pod no Service selects: the namespace's gate is held back.
    assert!(pod["spec"]["readinessGates"].is_null(), "step 3: {pod}");
    assert_eq!(
        pod["metadata"]["annotations"]["probegate.io/injected"],
        "web=liveness,readiness,startup;evidence=web(namespace);gates-held=1(no Service selects the pods)"
    );
}

fn step_opted_out_objects_come_back_unchanged(kubectl: &Kubectl) {
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&namespace("plain", false, json!({})).to_string()),
    );
    let (ok, result, stderr) = kubectl.dry_run(&deployment("plain", "web", json!({}), web("web")));
    assert!(ok, "step 4: {stderr}");
    assert!(
        result["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_null(),
        "step 4: unlabelled namespace"
    );
    assert!(
        result["spec"]["template"]["metadata"]["annotations"]["probegate.io/injected"].is_null()
    );

    let labelled = deployment(
        "shop",
        "legacy",
        json!({"probegate.io/inject": "disabled"}),
        web("web"),
    );
    let (ok, result, stderr) = kubectl.dry_run(&labelled);
    assert!(ok, "step 4: {stderr}");
    assert!(
        result["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_null(),
        "step 4: opted-out workload"
    );
    assert!(result["spec"]["template"]["spec"]["readinessGates"].is_null());
}

fn step_namespace_changes_reach_the_next_review(kubectl: &Kubectl) {
    kubectl.ok(
        &[
            "annotate",
            "--overwrite",
            "namespace",
            "shop",
            "probegate.io/readiness-path=/healthz/ready",
        ],
        None,
    );
    let changed_at = Instant::now();
    eventually(
        "step 5: namespace annotation followed",
        Duration::from_secs(10),
        || {
            let (_, result, _) =
                kubectl.dry_run(&deployment("shop", "web2", json!({}), web("web")));
            result["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
                == "/healthz/ready"
        },
    );
    eprintln!(
        "step 5: the change reached reviews after {:?}",
        changed_at.elapsed()
    );
}

fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The client certificates of `probegate certs --client`, made by ApiServer::start beside
/// the webhook's certificates.
fn client_certs(certs_dir: &Path) -> PathBuf {
    certs_dir.parent().unwrap().join("client-certs")
}

/// A TLS connection to `addr`, trusting `ca_pem`, presenting the client certificate in
/// `client` (client.crt, client.key) if given; handshaken as far as the client's side goes.
fn tls_connect(
    addr: &str,
    ca_pem: &str,
    client: Option<&Path>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(dir) => builder
            .with_client_auth_cert(
                vec![
                    rustls_pki_types::CertificateDer::from_pem_file(dir.join("client.crt"))
                        .unwrap(),
                ],
                rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.flush()?;
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// The leaf certificate a new TLS connection to `addr` is served (presenting the API
/// server's client certificate, as the webhook requires).
fn served_leaf(addr: &str, ca_pem: &str, client: &Path) -> Vec<u8> {
    let tls = tls_connect(addr, ca_pem, Some(client)).unwrap();
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// POSTs a marker review to the webhook: its HTTP status, or the error that ended the
/// connection (in TLS 1.3 a refused client certificate surfaces after the client's side of
/// the handshake, at the first read).
fn webhook_post(addr: &str, ca_pem: &str, client: Option<&Path>) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut tls = tls_connect(addr, ca_pem, client).map_err(|e| e.to_string())?;
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "marker", "operation": "CREATE", "userInfo": {},
            "object": bare_pod("marker", "direct")}
    })
    .to_string();
    write!(
        tls,
        "POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {response:?}"))
}

/// Step 0: the API server's reviews came with its client certificate (the webhook took
/// them); a caller without one, or with one from another CA, fails the handshake, and
/// each is counted once: the API server was never refused.
fn step_only_the_api_servers_certificate_is_taken(
    probegate: &Probegate,
    ca_pem: &str,
    certs_dir: &Path,
) {
    let client = client_certs(certs_dir);
    assert_eq!(
        webhook_post(&probegate.webhook, ca_pem, Some(&client)),
        Ok(200),
        "step 0: the API server's certificate"
    );
    let other = certs_dir.join("other-client-ca");
    let status = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["certs", "--client", "--out"])
        .arg(&other)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for (who, dir) in [
        ("no certificate", None),
        ("another CA", Some(other.as_path())),
    ] {
        let refused = webhook_post(&probegate.webhook, ca_pem, dir);
        assert!(refused.is_err(), "step 0: {who}: {refused:?}");
        eprintln!("step 0: {who}: {}", refused.unwrap_err());
    }
    let metrics = http_get(&probegate.metrics, "/metrics").unwrap();
    for reason in ["no_client_certificate", "client_certificate_refused"] {
        let line = format!("probegate_tls_handshake_failures_total{{reason=\"{reason}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "step 0: {line} in\n{metrics}"
        );
    }
}

fn step_rotation_under_load_loses_no_request(kubectl: &Kubectl, certs_dir: &Path, webhook: &str) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let kubeconfig = kubectl.kubeconfig.clone();
        std::thread::spawn(move || {
            let kubectl = Kubectl { kubeconfig };
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || sent < 5 {
                let (ok, result, stderr) =
                    kubectl.dry_run(&bare_pod("shop", &format!("load-{sent}")));
                assert!(ok, "step 7: request {sent} failed: {stderr}");
                assert!(
                    result["metadata"]["annotations"]["probegate.io/injected"].is_string(),
                    "step 7: request {sent} was not mutated: {stderr}"
                );
                sent += 1;
            }
            sent
        })
    };
    // Renew under the same CA into a fresh folder, then move the files into place.
    let renewed = certs_dir.join("renewed");
    certs(&renewed, Some(certs_dir));
    let before = std::fs::read(certs_dir.join("tls.crt")).unwrap();
    for file in ["tls.key", "tls.crt"] {
        std::fs::rename(renewed.join(file), certs_dir.join(file)).unwrap();
    }
    assert_ne!(before, std::fs::read(certs_dir.join("tls.crt")).unwrap());
    // Requests keep flowing until new connections get the renewed certificate.
    let renewed_leaf = leaf_der(&std::fs::read_to_string(certs_dir.join("tls.crt")).unwrap());
    let ca_pem = std::fs::read_to_string(certs_dir.join("ca.crt")).unwrap();
    eventually(
        "step 7: renewed certificate served",
        Duration::from_secs(30),
        || served_leaf(webhook, &ca_pem, &client_certs(certs_dir)) == renewed_leaf,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.join().expect("step 7: every request succeeded");
    eprintln!("step 7: {sent} requests across the rotation, all mutated");
}

/// `probegate mutate` writes YAML that kubectl reads back to the same values (YAML 1.1:
/// a quoted "on" must stay a string, 0644 is octal).
fn step_offline_output_reads_the_same_in_kubectl(kubectl: &Kubectl) {
    let fixture = root().join("tests/golden/yaml-as-kubectl-reads-it/input.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["mutate", "-o", "yaml", "-f"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(out.status.success());
    let as_json = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["mutate", "-o", "json", "-f"])
        .arg(&fixture)
        .output()
        .unwrap();
    let ours: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    let yaml = String::from_utf8(out.stdout).unwrap();
    let result = kubectl.run(
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&yaml),
    );
    assert!(
        result.status.success(),
        "step 9: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let theirs: Value = serde_json::from_slice(&result.stdout).unwrap();
    let template = |v: &Value| v["spec"]["template"].clone();
    let (ours, theirs) = (template(&ours), template(&theirs));
    assert_eq!(
        theirs["spec"]["volumes"][0]["configMap"]["defaultMode"], 420,
        "step 9"
    );
    assert_eq!(
        theirs["spec"]["automountServiceAccountToken"], false,
        "step 9"
    );
    for i in 0..2 {
        assert_eq!(
            theirs["spec"]["containers"][i]["env"], ours["spec"]["containers"][i]["env"],
            "step 9: env of container {i}"
        );
        assert_eq!(
            theirs["spec"]["containers"][i]["livenessProbe"]["exec"],
            ours["spec"]["containers"][i]["livenessProbe"]["exec"]
        );
    }
    assert_eq!(
        theirs["metadata"]["annotations"]["example.com/flag"], "yes",
        "step 9"
    );
}

fn step_install_manifests_and_chart_are_accepted(kubectl: &Kubectl) {
    // Dry runs do not create the namespace the other objects go into.
    kubectl.ok(&["create", "namespace", "probegate"], None);
    let manifests = root().join("manifests");
    let out = kubectl.run(
        &[
            "apply",
            "--dry-run=server",
            "-k",
            manifests.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "step 8: manifests/: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (origin, text) in [
        (
            "kustomize client-auth",
            common::kustomize_with_client_auth(),
        ),
        (
            "helm template clientAuth",
            common::helm_template(&["--set", "clientAuth.enabled=true"]),
        ),
    ] {
        let out = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&text));
        assert!(
            out.status.success(),
            "step 8: {origin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    for source in ["generate", "certManager"] {
        let mut text = common::helm_template(&["--set", &format!("certificates.source={source}")]);
        if source == "certManager" {
            // cert-manager's CRDs are not installed here; the Kubernetes objects are checked.
            text = text
                .split("\n---")
                .filter(|doc| !doc.contains("apiVersion: cert-manager.io/"))
                .collect::<Vec<_>>()
                .join("\n---");
        }
        let out = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&text));
        assert!(
            out.status.success(),
            "step 8: helm template ({source}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Step 8b: with the Prometheus Operator's CRDs installed (from its pinned Go module), the
/// chart's ServiceMonitor, PodMonitor, PrometheusRule and dashboard ConfigMap and
/// manifests/monitoring's are accepted by the API server, unknown fields refused
/// (`--validate=strict`, kubectl apply --help). Runs after step 8, which made the namespace.
fn step_monitoring_objects_are_accepted(kubectl: &Kubectl) {
    let crds = common::prometheus_operator_crds();
    let mut names = Vec::new();
    for plural in ["servicemonitors", "podmonitors", "prometheusrules"] {
        let file = crds.join(format!("monitoring.coreos.com_{plural}.yaml"));
        // create, not apply: the last-applied annotation of a CRD this size can overflow.
        kubectl.ok(&["create", "-f", file.to_str().unwrap()], None);
        names.push(format!("crd/{plural}.monitoring.coreos.com"));
    }
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    wait.extend(names.iter().map(String::as_str));
    kubectl.ok(&wait, None);

    for (origin, text) in [
        (
            "helm template monitoring",
            common::helm_template(&common::MONITORING_ON),
        ),
        ("kustomize monitoring", common::kustomize_with("monitoring")),
    ] {
        let kinds: Vec<String> = common::documents(origin, &text)
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
            .collect();
        for kind in ["ServiceMonitor", "PrometheusRule", "ConfigMap"] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "step 8b: {origin}: no {kind}"
            );
        }
        let out = kubectl.run(
            &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
            Some(&text),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "step 8b: {origin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut accepted = vec![
            "servicemonitor.monitoring.coreos.com/probegate",
            "prometheusrule.monitoring.coreos.com/probegate",
            "configmap/probegate-dashboard",
        ];
        if kinds.iter().any(|k| k == "PodMonitor") {
            accepted.push("podmonitor.monitoring.coreos.com/probegate");
        }
        for accepted in accepted {
            assert!(
                stdout.contains(accepted),
                "step 8b: {origin}: {accepted} not in\n{stdout}"
            );
        }
    }
    // The check can fail: a misspelt field in a ServiceMonitor is refused.
    let misspelt = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "misspelt", "namespace": "probegate"},
        "spec": {"selector": {}, "endpoints": [{"prot": "metrics"}]}});
    let out = kubectl.run(
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        Some(&misspelt.to_string()),
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("prot"),
        "step 8b: a misspelt field was accepted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How the suite runs each replica: with a shutdown delay, as the manifests do (5 s there).
const REPLICA: &[&str] = &["--shutdown-delay-seconds", "3"];

/// A backend of the forwarder: a probegate's webhook and health addresses.
struct Backend {
    webhook: String,
    health: String,
    ready: bool,
    /// TCP connections forwarded to it, each one TLS handshake.
    connections: usize,
}

/// Stands in for the Service: forwards each new TCP connection to a backend whose
/// `/readyz` answered 200 at its last poll (as the endpoints controller would), round
/// robin, and leaves established connections where they are, as kube-proxy does.
struct Forwarder {
    addr: String,
    backends: std::sync::Arc<std::sync::Mutex<Vec<Backend>>>,
    /// Connections that found no ready backend and were closed.
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Forwarder {
    fn start() -> Forwarder {
        use std::sync::atomic::Ordering::Relaxed;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let backends: Arc<Mutex<Vec<Backend>>> = Arc::default();
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (backends, stop) = (backends.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let targets: Vec<String> = backends
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|b| b.health.clone())
                        .collect();
                    let ready: Vec<bool> = targets
                        .iter()
                        .map(|health| http_status(health, "/readyz") == Some(200))
                        .collect();
                    for (backend, ready) in backends.lock().unwrap().iter_mut().zip(ready) {
                        backend.ready = ready;
                    }
                    // The endpoints controller lags too; this poll is its stand-in.
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        {
            let (backends, refused, stop) = (backends.clone(), refused.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = 0usize;
                for client in listener.incoming() {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let target = {
                        let mut backends = backends.lock().unwrap();
                        let ready: Vec<usize> =
                            (0..backends.len()).filter(|&i| backends[i].ready).collect();
                        if ready.is_empty() {
                            None
                        } else {
                            next += 1;
                            let backend = &mut backends[ready[next % ready.len()]];
                            backend.connections += 1;
                            Some(backend.webhook.clone())
                        }
                    };
                    let Some(upstream) = target.and_then(|t| std::net::TcpStream::connect(t).ok())
                    else {
                        refused.fetch_add(1, Relaxed);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (client2, upstream2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    std::thread::spawn(move || pipe(client, upstream));
                    std::thread::spawn(move || pipe(upstream2, client2));
                }
            });
        }
        Forwarder {
            addr,
            backends,
            refused,
            stop,
        }
    }

    fn add(&self, probegate: &Probegate) {
        self.backends.lock().unwrap().push(Backend {
            webhook: probegate.webhook.clone(),
            health: probegate.health.clone(),
            ready: false,
            connections: 0,
        });
    }

    fn ready(&self, webhook: &str) -> bool {
        self.backends
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.webhook == webhook && b.ready)
    }

    fn connections(&self, webhook: &str) -> usize {
        self.backends
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b.webhook == webhook)
            .map(|b| b.connections)
            .sum()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// Copies one direction until it ends, then passes the end on.
fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Dry-run applies in a loop on `threads` threads until `stop`; returns (sent, failures).
fn steady_applies(
    kubectl: &Kubectl,
    threads: usize,
    sent: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    use std::sync::atomic::Ordering::Relaxed;
    (0..threads)
        .map(|thread| {
            let (sent, stop) = (sent.clone(), stop.clone());
            let kubeconfig = kubectl.kubeconfig.clone();
            std::thread::spawn(move || {
                let kubectl = Kubectl { kubeconfig };
                let mut failures = Vec::new();
                let mut i = 0;
                while !stop.load(Relaxed) {
                    let (ok, result, stderr) =
                        kubectl.dry_run(&bare_pod("shop", &format!("roll-{thread}-{i}")));
                    if !ok {
                        failures.push(format!("apply {thread}-{i} failed: {stderr}"));
                    } else if !result["metadata"]["annotations"]["probegate.io/injected"]
                        .is_string()
                    {
                        failures.push(format!("apply {thread}-{i} was not mutated: {stderr}"));
                    }
                    sent.fetch_add(1, Relaxed);
                    i += 1;
                }
                failures
            })
        })
        .collect()
}

/// A rolling update behind a Service: a second probegate starts, the first gets SIGTERM,
/// under steady load; then a quiet hour, one review every 7 s. No review may be lost.
fn step_rollout_loses_no_review(
    kubectl: &Kubectl,
    certs_dir: &Path,
    ca_pem: &str,
    mut first: Probegate,
) -> Probegate {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    let kubeconfig = kubectl.kubeconfig.clone();
    let forwarder = Forwarder::start();
    forwarder.add(&first);
    eventually(
        "step 10: first replica ready at the forwarder",
        Duration::from_secs(30),
        || forwarder.ready(&first.webhook),
    );
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&webhook_configuration(&forwarder.addr, ca_pem).to_string()),
    );
    eventually(
        "step 10: webhook through the forwarder",
        Duration::from_secs(60),
        || {
            let (_, pod, _) = kubectl.dry_run(&bare_pod("marker", "marker"));
            pod["metadata"]["annotations"]["probegate.io/injected"].is_string()
                && forwarder.connections(&first.webhook) > 0
        },
    );

    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_applies(kubectl, 2, &sent, &stop);
    eventually("step 10: load flowing", Duration::from_secs(60), || {
        sent.load(Relaxed) >= 6
    });
    let second = Probegate::start_with(&kubeconfig, certs_dir, REPLICA);
    forwarder.add(&second);
    eventually(
        "step 10: second replica ready at the forwarder",
        Duration::from_secs(30),
        || forwarder.ready(&second.webhook),
    );
    let at_sigterm = sent.load(Relaxed);
    first.stop();
    let at_exit = sent.load(Relaxed);
    // Keep the load on a little longer, against the second replica alone.
    eventually(
        "step 10: load after the rollout",
        Duration::from_secs(60),
        || sent.load(Relaxed) >= at_exit + 6,
    );
    stop.store(true, Relaxed);
    let failures: Vec<String> = load
        .into_iter()
        .flat_map(|thread| thread.join().expect("step 10: load thread"))
        .collect();
    let total = sent.load(Relaxed);
    eprintln!(
        "step 10: rollout: {total} dry-run applies in all, {} from SIGTERM to the first replica's exit; {} failed or unmutated; connections: first {}, second {}, refused {}",
        at_exit - at_sigterm,
        failures.len(),
        forwarder.connections(&first.webhook),
        forwarder.connections(&second.webhook),
        forwarder.refused.load(Relaxed),
    );
    assert!(failures.is_empty(), "step 10: {failures:#?}");
    assert!(
        at_exit > at_sigterm,
        "step 10: load ran through the shutdown"
    );
    assert!(
        forwarder.connections(&second.webhook) > 0,
        "step 10: the second replica took over"
    );

    // Quiet hours: one review every 7 s for two minutes, on kept-alive connections.
    let before = forwarder.connections(&second.webhook);
    let started = Instant::now();
    let mut next = started;
    let mut reviews = 0;
    while next < started + Duration::from_secs(120) {
        let (ok, result, stderr) = kubectl.dry_run(&bare_pod("shop", &format!("quiet-{reviews}")));
        assert!(ok, "step 11: apply {reviews} failed: {stderr}");
        assert!(
            result["metadata"]["annotations"]["probegate.io/injected"].is_string(),
            "step 11: apply {reviews} was not mutated"
        );
        reviews += 1;
        // The rate is the point of this step: this paces it, it waits on nothing.
        next += Duration::from_secs(7);
        if next < started + Duration::from_secs(120) {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    let opened = forwarder.connections(&second.webhook) - before;
    eprintln!(
        "step 11: low rate: {reviews} dry-run applies 7 s apart over {:?}, all mutated; {opened} new connections (TLS handshakes), {:.2} per review",
        started.elapsed(),
        opened as f64 / reviews as f64
    );
    assert!(
        opened <= 2,
        "step 11: {opened} new connections for {reviews} reviews: idle connections were not reused"
    );
    second
}

/// What `user` may do in `namespace`, one normalised row of `kubectl auth can-i --list`
/// each (resources, non-resource URLs, resource names, verbs).
fn can_i_list(kubectl: &Kubectl, user: &str, namespace: &str) -> BTreeSet<String> {
    kubectl
        .ok(
            &["auth", "can-i", "--list", "--as", user, "-n", namespace],
            None,
        )
        .lines()
        .skip(1)
        .map(|row| row.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|row| !row.is_empty())
        .collect()
}

/// Step 8b: the ServiceAccounts that manifests/ and the chart create, impersonated, may do
/// exactly what an account with no bindings may, plus get, list and watch on namespaces and
/// services: nothing cluster-wide, and nothing in their own namespace.
fn step_service_accounts_may_only_read_namespaces_and_services(kubectl: &Kubectl) {
    for file in ["serviceaccount.yaml", "rbac.yaml"] {
        let path = root().join("manifests").join(file);
        kubectl.ok(&["apply", "-f", path.to_str().unwrap()], None);
    }
    // Another release name than the manifests' objects, so neither stands in for the other.
    let out = Command::new(common::helm())
        .current_dir(root())
        .args([
            "template",
            "audit",
            "charts/probegate",
            "--namespace",
            "probegate",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "step 8b: helm template");
    let rendered = String::from_utf8(out.stdout).unwrap();
    let mut stdin = rendered.as_bytes();
    let access: Vec<Value> = probegate::manifest::read_paths(&[PathBuf::from("-")], &mut stdin)
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .filter(|v| {
            let kind = v["kind"].as_str().unwrap_or_default();
            kind == "ServiceAccount" || kind.contains("Role")
        })
        .collect();
    let chart_account = access
        .iter()
        .find(|v| v["kind"] == "ServiceAccount")
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
        .expect("step 8b: the chart creates a ServiceAccount");
    assert_eq!(
        access.len(),
        3,
        "step 8b: the chart's access objects: {access:?}"
    );
    kubectl.ok(
        &["apply", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": access}).to_string()),
    );
    let expected: BTreeSet<String> = [
        "namespaces [] [] [get list watch]",
        "services [] [] [get list watch]",
    ]
    .map(String::from)
    .into();
    for namespace in ["probegate", "default"] {
        let baseline = can_i_list(kubectl, "system:serviceaccount:probegate:nobody", namespace);
        for account in ["probegate", chart_account.as_str()] {
            let user = format!("system:serviceaccount:probegate:{account}");
            let rules = can_i_list(kubectl, &user, namespace);
            let added: BTreeSet<String> = rules.difference(&baseline).cloned().collect();
            assert_eq!(
                added, expected,
                "step 8b: {user} in {namespace}: {rules:#?}"
            );
            assert!(rules.is_superset(&baseline), "step 8b: {user}");
        }
    }
    eprintln!(
        "step 8b: the manifests' and the chart's accounts add only get/list/watch on namespaces and services"
    );
}
