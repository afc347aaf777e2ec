//! Captures the AdmissionReview bodies a real kube-apiserver sends, as benchmark fixtures.
//!
//! Not part of the suite: `cargo test --test capture_reviews -- --ignored --nocapture`
//! starts the end-to-end kube-apiserver (tests/e2e/), registers a webhook that records every
//! body it receives and allows it unchanged, applies realistic manifests the ways users do
//! (client-side apply, server-side apply, a Pod as a ReplicaSet creates it), and writes the
//! bodies to `benches/fixtures/review-*.json`. Real reviews carry what synthetic ones lack:
//! `managedFields`, the last-applied annotation, userInfo, options.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A TLS server on loopback that keeps every request body and answers "allowed".
struct Recorder {
    addr: std::net::SocketAddr,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start(certs: &Path) -> Recorder {
        use rustls_pki_types::pem::PemObject;
        let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(certs.join("tls.crt"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(certs.join("tls.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let config = config.clone();
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let connection = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(connection, stream);
                    while let Some(body) = read_request(&mut tls) {
                        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        kept.lock().unwrap().push(body);
                        let answer = json!({
                            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                            "response": {"uid": review["request"]["uid"], "allowed": true}
                        })
                        .to_string();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            answer.len()
                        );
                        if tls.write_all(head.as_bytes()).is_err()
                            || tls.write_all(answer.as_bytes()).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Recorder { addr, bodies }
    }
}

/// One HTTP/1.1 request's body; `None` when the connection ends.
fn read_request(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn container(name: &str, env: usize, port: i32) -> Value {
    json!({
        "name": name, "image": format!("registry.example.com/shop/{name}:4.12.7"),
        "args": ["--config=/etc/app/config.yaml", "--log-level=info", format!("--listen=:{port}")],
        "ports": [{"name": "http", "containerPort": port}, {"name": "metrics", "containerPort": 9090}],
        "env": (0..env).map(|i| json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}-{}", "x".repeat(24))})).collect::<Vec<_>>(),
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]
    })
}

fn deployment(name: &str, containers: Vec<Value>, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name, "team": "checkout"}, "annotations": annotations},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name, "team": "checkout"}, "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {"containers": containers, "volumes": [{"name": "config", "configMap": {"name": format!("{name}-config")}}]}
        }}
    })
}

#[test]
#[ignore = "captures benchmark fixtures; run by hand"]
fn capture_review_fixtures() {
    let workdir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("tests/e2e/start-apiserver.sh"))
        .arg(workdir.path())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the kube-apiserver did not start");
    let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let stop = || {
        let _ = Command::new(root().join("tests/e2e/stop-apiserver.sh"))
            .arg(workdir.path())
            .status();
    };

    let certs = workdir.path().join("certs");
    let status = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["certs", "--ip", "127.0.0.1", "--out"])
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let recorder = Recorder::start(&certs);
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(certs.join("ca.crt")).unwrap());
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "recorder"},
        "webhooks": [{
            "name": "recorder.probegate.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 5,
            "clientConfig": {"url": format!("https://{}/mutate", recorder.addr), "caBundle": ca},
            "rules": [{"operations": ["CREATE"], "apiGroups": ["", "apps"], "apiVersions": ["v1"],
                "resources": ["pods", "deployments"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"record": "yes"}}
        }]
    });
    kubectl(&kubeconfig, &["apply", "-f", "-"], &webhook.to_string());
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"record": "yes"}}});
    kubectl(&kubeconfig, &["apply", "-f", "-"], &namespace.to_string());

    // The webhook takes effect shortly after it is stored: a marker Pod, retried, shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    while recorder.bodies.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the recorder was never called");
        let marker = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("marker-{attempt}"), "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}});
        kubectl(&kubeconfig, &["create", "-f", "-"], &marker.to_string());
        attempt += 1;
    }
    recorder.bodies.lock().unwrap().clear();

    let fixtures: [(&str, Value, &[&str]); 3] = [
        // A typical Deployment through `kubectl apply`: the last-applied annotation.
        (
            "review-deployment-apply",
            deployment(
                "checkout",
                vec![
                    container("checkout", 12, 8080),
                    container("envoy", 4, 15001),
                ],
                json!({"deployment.kubernetes.io/owner": "team-checkout"}),
            ),
            &["apply", "-f", "-"],
        ),
        // A big one through server-side apply: many containers and variables.
        (
            "review-deployment-big-ssa",
            deployment(
                "catalog",
                (0..8)
                    .map(|i| container(&format!("worker-{i}"), 40, 8080 + i))
                    .collect(),
                json!({"description": "y".repeat(2000)}),
            ),
            &["apply", "--server-side", "--field-manager=ci", "-f", "-"],
        ),
        // A Pod as a ReplicaSet creates it: owner reference, generated name.
        (
            "review-pod-from-template",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "checkout-7d9f8b6c5-", "namespace": "shop",
                    "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8b6c5",
                        "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"containers": [container("checkout", 12, 8080), container("envoy", 4, 15001)],
                    "volumes": [{"name": "config", "configMap": {"name": "checkout-config"}}]}
            }),
            &["create", "-f", "-"],
        ),
    ];
    for (name, object, args) in fixtures {
        kubectl(&kubeconfig, args, &object.to_string());
        let body = recorder
            .bodies
            .lock()
            .unwrap()
            .pop()
            .expect("the recorder saw the object");
        recorder.bodies.lock().unwrap().clear();
        let review: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(review["request"]["operation"], "CREATE", "{name}");
        let path = root().join(format!("benches/fixtures/{name}.json"));
        std::fs::write(&path, &body).unwrap();
        eprintln!("{name}: {} bytes -> {}", body.len(), path.display());
    }
    stop();
}
