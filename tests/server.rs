//! `probegate serve` over real TLS on loopback.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Options, TestServer, apply_response, get, review};
use probegate::server::Limits;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

fn kube_ovn(namespace: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kube-ovn-controller", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "ovn"}}, "template": {
            "metadata": {"labels": {"app": "ovn"}},
            "spec": {"containers": [{
                "name": "controller", "image": "kube-ovn:v1.12", "args": ["--enable-metrics=false"],
                "ports": [{"name": "metrics", "containerPort": 10660}],
                "readinessProbe": {"tcpSocket": {"port": 10660}},
                "livenessProbe": {"tcpSocket": {"port": 10660}}
            }]}
        }}
    })
}

fn namespaces(pairs: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|(ns, annotations)| {
            let map = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (ns.to_string(), map)
        })
        .collect()
}

#[tokio::test]
async fn mutates_a_pod_and_keeps_the_uid() {
    let server = TestServer::start(Options::default()).await;
    let reply = server.client().review(&review(pod(), false)).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(
        body["response"]["uid"],
        "b4e6c6f5-4a2f-4a0e-9d59-3a1c0e7c2f11"
    );
    assert_eq!(body["response"]["allowed"], true);
    let patched = apply_response(&pod(), &body);
    let container = &patched["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["tcpSocket"]["port"], "http");
    // All probegate knows is the port: a liveness probe there would only repeat readiness.
    assert!(container["livenessProbe"].is_null());
    assert_eq!(
        patched["metadata"]["annotations"]["probegate.io/injected"],
        "web=readiness;liveness-held=web(same check as readiness)"
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(patched).unwrap();
}

#[tokio::test]
async fn deployment_gets_namespace_paths_and_its_gates_and_dry_run_answers_the_same() {
    let gate = "target-health.elbv2.k8s.aws/k8s-shop-web-0a1b2c3d4e";
    let server = TestServer::start(Options {
        namespaces: namespaces(&[(
            "shop",
            &[
                ("probegate.io/liveness-path", "/live"),
                ("probegate.io/readiness-path", "/ready"),
                ("probegate.io/readiness-gates", gate),
            ],
        )]),
        ..Options::default()
    })
    .await;
    let deployment_with = |annotations: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}]}
            }}
        })
    };
    let client = server.client();
    // Standalone, no Service is known to select the pods: the namespace's gate is held
    // back, and the answer says why.
    let held = client
        .review(&review(deployment_with(json!({})), false))
        .await
        .json();
    let warnings = held["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains(&format!("readiness gate {gate:?} from the namespace's probegate.io/readiness-gates not added: no Service selects these pods")),
        "{warnings:?}"
    );
    assert!(apply_response(&deployment_with(json!({})), &held)["spec"]["template"]["spec"]["readinessGates"].is_null());
    // The workload asks for the gate itself: it gets it.
    let deployment = deployment_with(json!({"probegate.io/readiness-gates": gate}));
    let real = client
        .review(&review(deployment.clone(), false))
        .await
        .json();
    let dry = client
        .review(&review(deployment.clone(), true))
        .await
        .json();
    assert_eq!(real, dry, "a dry run is answered exactly like a real one");
    let patched = apply_response(&deployment, &real);
    let template = &patched["spec"]["template"];
    assert_eq!(
        template["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"],
        "/live"
    );
    assert_eq!(
        template["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/ready"
    );
    assert_eq!(
        template["spec"]["readinessGates"],
        json!([{"conditionType": gate}])
    );
    assert_eq!(
        template["spec"]["containers"][0]["startupProbe"]["httpGet"]["path"],
        "/live"
    );
    assert_eq!(
        template["metadata"]["annotations"]["probegate.io/injected"],
        "web=liveness,readiness,startup;evidence=web(namespace);gates=1"
    );
    assert!(real["response"]["warnings"].is_null());
}

#[tokio::test]
async fn coupling_warns_and_deny_refuses_with_200() {
    let server = TestServer::start(Options {
        namespaces: namespaces(&[("strict", &[("probegate.io/metrics-coupling", "deny")])]),
        ..Options::default()
    })
    .await;
    let client = server.client();
    let warned = client.review(&review(kube_ovn("kube-system"), false)).await;
    assert_eq!(warned.status, 200);
    let warned = warned.json();
    assert_eq!(warned["response"]["allowed"], true);
    let warnings = warned["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("metrics are off (--enable-metrics=false)"),
        "{warnings:?}"
    );

    let denied = client.review(&review(kube_ovn("strict"), false)).await;
    assert_eq!(denied.status, 200);
    let denied = denied.json();
    assert_eq!(denied["response"]["allowed"], false);
    assert_eq!(denied["response"]["status"]["code"], 403);
    let message = denied["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("readinessProbe targets port 10660"),
        "{message}"
    );
    assert!(denied["response"]["patch"].is_null());
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let server = TestServer::start(Options {
        limits: Limits {
            max_body_bytes: 64 * 1024,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let client = server.client();
    let mut v1beta1 = review(pod(), false);
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_request = review(pod(), false);
    no_request.as_object_mut().unwrap().remove("request");
    let mut wrong_kind = review(pod(), false);
    wrong_kind["kind"] = json!("ConfigMap");
    let mut malformed = review(pod(), false);
    malformed["request"]["uid"] = json!(42);
    // (body, expected status, expected error text)
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not json".to_vec(), 400, "the request body is not JSON"),
        (b"".to_vec(), 400, "the request body is not JSON"),
        (
            serde_json::to_vec(&v1beta1).unwrap(),
            400,
            "admission.k8s.io/v1beta1 AdmissionReview is not supported: register the webhook with admissionReviewVersions: [\"v1\"]",
        ),
        (
            serde_json::to_vec(&no_request).unwrap(),
            400,
            "the AdmissionReview has no request",
        ),
        (
            serde_json::to_vec(&wrong_kind).unwrap(),
            400,
            "expected an admission.k8s.io/v1 AdmissionReview, got apiVersion \"admission.k8s.io/v1\", kind \"ConfigMap\"",
        ),
        (
            serde_json::to_vec(&malformed).unwrap(),
            400,
            "not a valid AdmissionReview",
        ),
        (vec![b' '; 65 * 1024], 413, ""),
    ];
    for (body, status, error) in cases {
        let reply = client.request("POST", "/mutate", body).await;
        assert_eq!(
            reply.status,
            status,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        if !error.is_empty() {
            let message = reply.json()["error"].as_str().unwrap().to_owned();
            assert!(message.starts_with(error), "{message}");
        }
    }
    assert_eq!(
        client.request("GET", "/mutate", Vec::new()).await.status,
        405
    );
    assert_eq!(
        client
            .request("POST", "/elsewhere", Vec::new())
            .await
            .status,
        404
    );
    let metrics =
        String::from_utf8(get(server.metrics_addr.unwrap(), "/metrics").await.body).unwrap();
    assert!(
        metrics.contains(r#"probegate_bad_requests_total{reason="not_json"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"probegate_bad_requests_total{reason="unsupported_version"} 1"#));
}

#[tokio::test]
async fn an_object_that_does_not_fit_its_kind_is_allowed_unchanged_with_a_warning() {
    let server = TestServer::start(Options::default()).await;
    let broken = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": "web"}});
    let reply = server.client().review(&review(broken, false)).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"]["patch"].is_null());
    let warning = body["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("probegate could not read this Pod; it was admitted unchanged"),
        "{warning}"
    );
    let metrics =
        String::from_utf8(get(server.metrics_addr.unwrap(), "/metrics").await.body).unwrap();
    assert!(
        metrics.contains(
            r#"probegate_admission_reviews_total{kind="Pod",operation="CREATE",outcome="error"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn large_reviews_are_answered() {
    let server = TestServer::start(Options::default()).await;
    let client = server.client();
    // 5,000 containers: the patch has 5,001 operations and goes out as base64.
    let containers: Vec<Value> = (0..5000)
        .map(|i| json!({"name": format!("c{i}"), "image": "x", "ports": [{"containerPort": 8080}]}))
        .collect();
    let big_pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"}, "spec": {"containers": containers}});
    let reply = client.review(&review(big_pod.clone(), false)).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert!(body["response"]["patch"].is_string());
    let patched = apply_response(&big_pod, &body);
    assert_eq!(
        patched["spec"]["containers"][4999]["readinessProbe"]["tcpSocket"]["port"],
        8080
    );
    // A kind probegate does not read: about 3 MiB, passed over without being built.
    let data: serde_json::Map<String, Value> = (0..30_000)
        .map(|i| (format!("key{i}"), json!("v".repeat(90))))
        .collect();
    let config_map =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": data});
    let reply = client.review(&review(config_map, false)).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(
        body["response"]["uid"],
        "b4e6c6f5-4a2f-4a0e-9d59-3a1c0e7c2f11"
    );
    assert!(body["response"]["patch"].is_null());
}

#[tokio::test]
async fn other_kinds_and_operations_pass_through() {
    let server = TestServer::start(Options::default()).await;
    let client = server.client();
    let config_map =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let mut update = review(pod(), false);
    update["request"]["operation"] = json!("UPDATE");
    for body in [review(config_map, false), update] {
        let reply = client.review(&body).await.json();
        assert_eq!(reply["response"]["allowed"], true);
        assert_eq!(reply["response"]["uid"], body["request"]["uid"]);
        assert!(reply["response"]["patch"].is_null());
    }
    let metrics =
        String::from_utf8(get(server.metrics_addr.unwrap(), "/metrics").await.body).unwrap();
    assert!(metrics.contains(r#"probegate_admission_reviews_total{kind="other",operation="CREATE",outcome="skipped"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"probegate_admission_reviews_total{kind="Pod",operation="UPDATE",outcome="skipped"} 1"#), "{metrics}");
}

#[tokio::test]
async fn health_is_served_apart_and_works_with_metrics_off() {
    let server = TestServer::start(Options {
        metrics: false,
        ..Options::default()
    })
    .await;
    assert_eq!(server.metrics_addr, None);
    let healthz = get(server.health_addr, "/healthz").await;
    assert_eq!(
        (healthz.status, healthz.body.as_slice()),
        (200, &b"ok\n"[..])
    );
    let readyz = get(server.health_addr, "/readyz").await;
    assert_eq!(readyz.status, 200);
    assert_eq!(get(server.health_addr, "/metrics").await.status, 404);
    assert_eq!(
        server.client().review(&review(pod(), false)).await.status,
        200
    );
}

#[tokio::test]
async fn metrics_count_reviews_injections_and_latency() {
    let server = TestServer::start(Options::default()).await;
    server.client().review(&review(pod(), false)).await;
    let reply = get(server.metrics_addr.unwrap(), "/metrics").await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body).unwrap();
    for line in [
        r#"probegate_admission_reviews_total{kind="Pod",operation="CREATE",outcome="mutated"} 1"#,
        r#"probegate_probes_injected_total{probe="readiness"} 1"#,
        "probegate_admission_review_duration_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert!(!text.contains("web"), "object names never become labels");
}

/// Writes a new pair the way a Secret volume does: into a fresh folder, then swapping the
/// `..data` link the files point through.
fn swap_secret(dir: &std::path::Path, generation: u32, bundle: &probegate::certs::Bundle) {
    let data = dir.join(format!("..{generation}"));
    bundle.write(&data).unwrap();
    let link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&data, &link).unwrap();
    std::fs::rename(&link, dir.join("..data")).unwrap();
}

async fn wait_for_leaf(client: &common::TlsClient, expected: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.served_leaf().await.as_ref() == expected {
            return true;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn certificate_rotation_reaches_new_connections_and_bad_pairs_are_refused() {
    // Serve through a Secret-like folder: tls.crt -> ..data/tls.crt.
    let dir = tempfile::tempdir().unwrap();
    let first = common::bundle();
    swap_secret(dir.path(), 1, &first);
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        std::os::unix::fs::symlink(format!("..data/{file}"), dir.path().join(file)).unwrap();
    }
    let server = start_with_cert_dir(dir.path()).await;
    let client = common::TlsClient::new(&first.ca_pem, server.0);
    assert_eq!(
        client.served_leaf().await.as_ref(),
        leaf_der(&first.cert_pem)
    );

    // Same CA is not needed for this check: the client trusts both CAs.
    let second = common::bundle();
    swap_secret(dir.path(), 2, &second);
    let both = common::TlsClient::new(&format!("{}{}", first.ca_pem, second.ca_pem), server.0);
    assert!(
        wait_for_leaf(&both, &leaf_der(&second.cert_pem)).await,
        "rotated certificate never served"
    );

    // A pair whose key does not match is refused; the second pair stays in service.
    let third = common::bundle();
    let broken = probegate::certs::Bundle {
        key_pem: first.key_pem.clone(),
        ..third
    };
    swap_secret(dir.path(), 3, &broken);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused =
        r#"probegate_certificate_reloads_total{certificate="serving",result="failure"} 1"#;
    loop {
        let text = String::from_utf8(get(server.1, "/metrics").await.body).unwrap();
        if text.contains(refused) {
            break;
        }
        assert!(Instant::now() < deadline, "refusal never counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        both.served_leaf().await.as_ref(),
        leaf_der(&second.cert_pem)
    );
}

/// A server on `dir/tls.crt` and `dir/tls.key`; returns (webhook, metrics) addresses.
/// The backstop poll is a minute apart, so reloads within a test come from file events.
async fn start_with_cert_dir(
    dir: &std::path::Path,
) -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    use probegate::{
        admission::Admission,
        health::Health,
        metrics::Metrics,
        namespace_cache::Directory,
        server::{Listeners, Server},
        tls::CertStore,
    };
    use std::sync::Arc;
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listeners = Listeners {
        webhook: bind(),
        health: bind(),
        metrics: Some(bind()),
    };
    let webhook = listeners.webhook.local_addr().unwrap();
    let metrics_addr = listeners.metrics.as_ref().unwrap().local_addr().unwrap();
    let directory = Directory::standalone(None).unwrap();
    let metrics = Arc::new(Metrics::default());
    let health = Health::new(directory.clone());
    let server = Server {
        listeners,
        certs: CertStore::open(&dir.join("tls.crt"), &dir.join("tls.key")).unwrap(),
        client_ca: None,
        admission: Arc::new(Admission::new(directory, BTreeMap::new(), metrics.clone())),
        metrics,
        health: health.clone(),
        limits: Limits {
            cert_poll: Duration::from_secs(60),
            ..Limits::default()
        },
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    health.wait_ready().await;
    (webhook, metrics_addr, stop)
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn rsa_pkcs1_keys_from_openssl_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
    );
    std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext",
            "-out",
            "tls.crt",
        ],
    );
    // PKCS#1 ("BEGIN RSA PRIVATE KEY"), as Helm's genSignedCert writes it.
    openssl(
        d,
        &["rsa", "-traditional", "-in", "leaf.key", "-out", "tls.key"],
    );
    assert!(
        std::fs::read_to_string(d.join("tls.key"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let ca = std::fs::read_to_string(d.join("ca.crt")).unwrap();
    let (webhook, _, _stop) = start_with_cert_dir(d).await;
    let reply = common::TlsClient::new(&ca, webhook)
        .review(&review(pod(), false))
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn shutdown_turns_unready_and_drains_a_request_in_flight() {
    let mut server = TestServer::start(Options::default()).await;
    let client = server.client();
    let body = serde_json::to_vec(&review(pod(), false)).unwrap();
    // Start a request and hold back the end of its body, so it is in flight.
    let mut tls = client.connect().await;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..10]).await.unwrap();
    tls.flush().await.unwrap();
    // The request is in the server's hands once its health still answers ready.
    assert_eq!(get(server.health_addr, "/readyz").await.status, 200);

    let task = server.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let readyz = get(server.health_addr, "/readyz").await;
        if readyz.status == 503 {
            assert_eq!(readyz.body, b"shutting down\n");
            break;
        }
        assert!(Instant::now() < deadline, "readyz never turned 503");
        tokio::task::yield_now().await;
    }
    // New connections are refused once the listener is closed.
    assert!(
        tokio::net::TcpStream::connect(server.webhook)
            .await
            .is_err(),
        "listener still accepting"
    );

    tls.write_all(&body[10..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"allowed\":true"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("server stopped")
        .unwrap();
}

#[tokio::test]
async fn during_the_shutdown_delay_it_is_unready_but_still_serves() {
    let mut server = TestServer::start(Options {
        limits: Limits {
            shutdown_delay: Duration::from_secs(60),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let _task = server.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(server.health_addr, "/readyz").await.status != 503 {
        assert!(Instant::now() < deadline, "readyz never turned 503");
        tokio::task::yield_now().await;
    }
    // Endpoints have not caught up yet: a new connection must still be answered.
    let reply = server.client().review(&review(pod(), false)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["response"]["allowed"], true);
}

#[tokio::test]
async fn while_draining_answers_close_their_connection() {
    let mut server = TestServer::start(Options {
        limits: Limits {
            shutdown_delay: Duration::from_secs(60),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut kept = server.client().kept_alive().await;
    let before = kept.review(&review(pod(), false)).await.unwrap();
    assert_eq!(before.status, 200);
    assert!(
        before.headers.get("connection").is_none(),
        "kept alive while serving"
    );
    let _task = server.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(server.health_addr, "/readyz").await.status != 503 {
        assert!(Instant::now() < deadline, "readyz never turned 503");
        tokio::task::yield_now().await;
    }
    // A kept-alive client gets its answer, and is told to reconnect (to another replica).
    let during = kept.review(&review(pod(), false)).await.unwrap();
    assert_eq!(during.status, 200);
    assert_eq!(during.json()["response"]["allowed"], true);
    assert_eq!(during.headers["connection"], "close");
    tokio::time::timeout(Duration::from_secs(10), kept.closed())
        .await
        .expect("the server closed the connection after answering");
    let fresh = server.client().review(&review(pod(), false)).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.headers["connection"], "close");
}

/// A client that connected just before the listener closed cannot know the drain has
/// begun, and may already have sent its first request: that request is answered (and told
/// to close), not dropped with the connection. The soak under load lost such reviews.
#[tokio::test]
async fn a_connection_accepted_before_the_drain_gets_its_first_request_answered() {
    let mut server = TestServer::start(Options::default()).await;
    // Connected, TLS done, no request yet.
    let mut kept = server.client().kept_alive().await;
    let task = server.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(server.webhook).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener never closed");
        tokio::task::yield_now().await;
    }
    let reply = kept
        .review(&review(pod(), false))
        .await
        .expect("the first request of a connection accepted before the drain is answered");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["response"]["allowed"], true);
    assert_eq!(reply.headers["connection"], "close");
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("server stopped")
        .unwrap();
}

#[tokio::test]
async fn a_request_whose_body_stalls_gets_408() {
    let server = TestServer::start(Options {
        limits: Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut tls = server.client().connect().await;
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"apiVersion\"")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut response = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut response))
        .await
        .expect("answered");
    let text = String::from_utf8_lossy(&response[..read.unwrap()]).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn a_half_sent_health_request_does_not_hold_shutdown() {
    let mut server = TestServer::start(Options {
        limits: Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut stuck = tokio::net::TcpStream::connect(server.health_addr)
        .await
        .unwrap();
    stuck
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut stuck_metrics = tokio::net::TcpStream::connect(server.metrics_addr.unwrap())
        .await
        .unwrap();
    stuck_metrics.write_all(b"GET /metr").await.unwrap();
    let task = server.stop();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("shutdown finished while clients held half-sent requests")
        .unwrap();
    drop((stuck, stuck_metrics));
}

#[tokio::test]
async fn a_client_that_sends_no_headers_is_cut_off() {
    let server = TestServer::start(Options {
        limits: Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut tls = server.client().connect().await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buffer))
        .await
        .expect("connection closed by the server");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "server kept a silent connection: {read:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_idle_longer_than_the_header_timeout_still_serves() {
    let header_timeout = Duration::from_millis(300);
    let server = TestServer::start(Options {
        limits: Limits {
            header_timeout,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut connection = server.client().kept_alive().await;
    let first = connection.review(&review(pod(), false)).await.unwrap();
    assert_eq!(first.status, 200);
    // Idle between reviews for longer than the header timeout, as quiet clusters are.
    tokio::time::sleep(header_timeout * 3).await;
    let second = connection
        .review(&review(pod(), false))
        .await
        .expect("the kept-alive connection still serves after idling");
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["response"]["allowed"], true);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(Options {
        limits: Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut connection = server.client().kept_alive().await;
    let reply = connection.review(&review(pod(), false)).await.unwrap();
    assert_eq!(reply.status, 200);
    tokio::time::timeout(Duration::from_secs(10), connection.closed())
        .await
        .expect("the server closed the idle connection");
}

/// A listener of two connections, with setup timeouts far beyond the test's own.
async fn two_connection_server() -> TestServer {
    TestServer::start(Options {
        limits: Limits {
            max_connections: 2,
            handshake_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(120),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await
}

/// A review from a new client, answered well within the held connections' timeouts.
async fn new_client_review_status(server: &TestServer, expect: &str) -> u16 {
    tokio::time::timeout(
        Duration::from_secs(10),
        server.client().review(&review(pod(), false)),
    )
    .await
    .expect(expect)
    .status
}

async fn closed_by_the_server(io: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buffer)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn when_the_listener_is_full_the_oldest_connection_still_setting_up_makes_room() {
    let server = two_connection_server().await;
    // Two clients fill the listener and never send a request: one before its TLS hello,
    // one after its handshake (done, so the server has taken both).
    let mut silent = tokio::net::TcpStream::connect(server.webhook)
        .await
        .unwrap();
    let mut no_request = server.client().connect().await;
    let status = new_client_review_status(
        &server,
        "a new client is served at once, not after the held ones time out",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        closed_by_the_server(&mut silent).await,
        "the oldest gave way"
    );
    // The other held one now makes room for the next client in turn.
    let status = new_client_review_status(&server, "the next new client is served too").await;
    assert_eq!(status, 200);
    assert!(closed_by_the_server(&mut no_request).await);
}

#[tokio::test]
async fn a_connection_that_has_sent_a_request_never_makes_room() {
    let server = two_connection_server().await;
    let mut kept = server.client().kept_alive().await;
    assert_eq!(
        kept.review(&review(pod(), false)).await.unwrap().status,
        200
    );
    let mut silent = tokio::net::TcpStream::connect(server.webhook)
        .await
        .unwrap();
    let status = new_client_review_status(&server, "the silent connection made room").await;
    assert_eq!(status, 200);
    assert!(closed_by_the_server(&mut silent).await);
    // The API server's kept-alive connection, idle meanwhile, is still there.
    let again = kept
        .review(&review(pod(), false))
        .await
        .expect("the kept-alive connection was not closed");
    assert_eq!(again.status, 200);
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) from `io`.
async fn read_response(io: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return text;
            }
        }
        let read = io.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed mid-response: {text}");
        data.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn after_idling_a_request_whose_head_stalls_is_still_cut_off() {
    let server = TestServer::start(Options {
        limits: Limits {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(600),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let body = serde_json::to_vec(&review(pod(), false)).unwrap();
    let mut tls = server.client().connect().await;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    tls.flush().await.unwrap();
    let first = read_response(&mut tls).await;
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    // The next request starts but its head never ends: the slow-client guard applies.
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: local")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buffer))
        .await
        .expect("connection closed by the server");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "server kept a stalled head: {read:?}"
    );
}

async fn boom() -> &'static str {
    panic!("boom")
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500() {
    use tower::ServiceExt;
    let router = probegate::server::guarded(
        axum::Router::new().route("/boom", axum::routing::get(boom)),
        &Limits::default(),
    );
    let request = axum::http::Request::get("/boom")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 500);
}

#[test]
fn serve_in_a_pod_without_a_usable_cluster_config_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
            "--no-metrics",
        ])
        .env_remove("KUBECONFIG")
        .env("HOME", dir.path())
        .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("running in a pod but the in-cluster configuration is unusable"),
        "{stderr}"
    );
}

#[test]
fn serve_with_a_broken_kubeconfig_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, "this: is: not: a kubeconfig").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
            "--no-metrics",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KUBECONFIG is set but unusable"));
}

/// `probegate serve`, the real binary, with the addresses it logged; killed when dropped.
struct Serve {
    child: std::process::Child,
    webhook: std::net::SocketAddr,
    health: std::net::SocketAddr,
    metrics: Option<std::net::SocketAddr>,
    ca_pem: String,
    /// Every log line, as JSON.
    logs: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    /// Ends at the end of the log, once the process has exited.
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts it on loopback ports with a fresh certificate, plus `args`; returns once ready.
    async fn start(args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let bundle = common::bundle();
        bundle.write(dir.path()).unwrap();
        let mut child = common::serve_command(dir.path())
            .args(args)
            .env("HOME", dir.path())
            .spawn()
            .unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = logs.clone();
        let (addresses, reader) = common::startup_log::read_addresses(
            child.stderr.take().unwrap(),
            Duration::from_secs(30),
            move |line, log| match log {
                Some(log) => seen.lock().unwrap().push(log),
                None => eprintln!("probegate (not JSON): {line}"),
            },
        );
        let serve = Serve {
            child,
            webhook: addresses.webhook,
            health: addresses.health,
            metrics: addresses.metrics,
            ca_pem: bundle.ca_pem,
            logs,
            reader: Some(reader),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(serve.health, "/readyz").await.status != 200 {
            assert!(Instant::now() < deadline, "probegate never ready");
            tokio::task::yield_now().await;
        }
        serve
    }

    fn client(&self) -> common::TlsClient {
        common::TlsClient::new(&self.ca_pem, self.webhook)
    }

    fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, within `limit`.
    async fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "probegate still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Serve {
    /// The whole log, after the process has exited.
    fn final_logs(&mut self) -> Vec<Value> {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shop_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}]}
        }}
    })
}

/// The probe paths a review's answer gives the shop Deployment.
fn probe_paths(reply: &common::Reply) -> (Value, Value) {
    let patched = apply_response(&shop_deployment(), &reply.json());
    let container = &patched["spec"]["template"]["spec"]["containers"][0];
    (
        container["livenessProbe"]["httpGet"]["path"].clone(),
        container["readinessProbe"]["httpGet"]["path"].clone(),
    )
}

#[tokio::test]
async fn the_binary_keeps_serving_through_the_shutdown_delay_then_exits_0() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "shop:\n  probegate.io/readiness-path: /ready\n",
    )
    .unwrap();
    let mut serve = Serve::start(&[
        "--metrics-addr",
        "127.0.0.1:0",
        "--standalone",
        "--namespace-config",
        config.path().to_str().unwrap(),
        "--namespace-annotation",
        "probegate.io/liveness-path=/live",
        "--log-level",
        "debug",
        // Ample for the few local requests made within it; the test waits it out once.
        "--shutdown-delay-seconds",
        "6",
        "--shutdown-grace-seconds",
        "5",
    ])
    .await;
    let metrics = serve.metrics.expect("metrics listener on");
    assert_eq!(get(metrics, "/metrics").await.status, 200);
    let mut kept = serve.client().kept_alive().await;
    let before = kept
        .review(&review(shop_deployment(), false))
        .await
        .unwrap();
    assert_eq!(before.status, 200);
    assert_eq!(probe_paths(&before), (json!("/live"), json!("/ready")));
    // The log is read on another thread: the line may land just after the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !serve
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l["message"] == "review")
    {
        assert!(
            Instant::now() < deadline,
            "--log-level debug logs each review"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    serve.sigterm();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(serve.health, "/readyz").await.status != 503 {
        assert!(Instant::now() < deadline, "readyz never turned 503");
        tokio::task::yield_now().await;
    }
    // Within the delay: still answering, on a kept-alive connection and on new ones.
    let during = kept
        .review(&review(shop_deployment(), false))
        .await
        .unwrap();
    assert_eq!(during.status, 200);
    assert_eq!(during.headers["connection"], "close");
    let fresh = serve
        .client()
        .review(&review(shop_deployment(), false))
        .await;
    assert_eq!(fresh.status, 200);
    assert_eq!(probe_paths(&fresh), (json!("/live"), json!("/ready")));
    assert_eq!(get(serve.health, "/readyz").await.status, 503);

    let status = serve.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // The delay and the grace period reached the code that waits them out.
    let logs = serve.final_logs();
    let logged = |message: &str, key: &str| {
        logs.iter()
            .find(|l| l["message"] == message)
            .map(|l| l[key].clone())
    };
    assert_eq!(
        logged("shutting down: unready, still serving", "delay"),
        Some(json!("6s"))
    );
    assert_eq!(
        logged("shutting down: draining requests in flight", "grace"),
        Some(json!("5s"))
    );
    assert!(
        tokio::net::TcpStream::connect(serve.webhook).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn the_binary_closes_kept_alive_connections_after_its_idle_timeout() {
    let serve = Serve::start(&[
        "--no-metrics",
        "--standalone",
        "--idle-timeout-seconds",
        "1",
    ])
    .await;
    assert_eq!(serve.metrics, None, "--no-metrics");
    let mut kept = serve.client().kept_alive().await;
    let reply = kept.review(&review(pod(), false)).await.unwrap();
    assert_eq!(reply.status, 200);
    // The default (120 s) would outlast this bound.
    tokio::time::timeout(Duration::from_secs(30), kept.closed())
        .await
        .expect("the server closed the idle connection");
}

/// `probegate certs --client`, the real binary, into `out`; signed by the client CA in
/// `ca` when given.
fn client_certs(out: &std::path::Path, ca: Option<&std::path::Path>) -> probegate::certs::Bundle {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"));
    command.args(["certs", "--client", "--out"]).arg(out);
    if let Some(ca) = ca {
        command
            .arg("--ca-cert")
            .arg(ca.join("client-ca.crt"))
            .arg("--ca-key")
            .arg(ca.join("client-ca.key"));
    }
    let result = command.output().unwrap();
    assert!(
        result.status.success(),
        "probegate certs --client: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let read = |file: &str| std::fs::read_to_string(out.join(file)).unwrap();
    assert!(
        !out.join("tls.crt").exists() && !out.join("ca.crt").exists(),
        "client files never take a serving pair's names"
    );
    probegate::certs::Bundle {
        ca_pem: read("client-ca.crt"),
        ca_key_pem: read("client-ca.key"),
        cert_pem: read("client.crt"),
        key_pem: read("client.key"),
    }
}

/// Replaces `path` in one step, as a Secret volume's link swap does.
fn replace_file(path: &std::path::Path, contents: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

async fn metrics_text(serve: &Serve) -> String {
    String::from_utf8(get(serve.metrics.unwrap(), "/metrics").await.body).unwrap()
}

/// Waits until the metrics show `line`.
async fn wait_for_metric(serve: &Serve, line: &str) {
    wait_for_metrics(serve, line, |text| text.lines().any(|l| l == line)).await;
}

/// Waits until the metrics page passes `seen`; `what` names it in the failure.
async fn wait_for_metrics(serve: &Serve, what: &str, seen: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics_text(serve).await;
        if seen(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {what} in\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Serve {
    /// Standalone with metrics on, taking only clients of the CAs in `ca_file`.
    async fn with_client_ca(ca_file: &std::path::Path) -> Serve {
        Serve::start(&[
            "--metrics-addr",
            "127.0.0.1:0",
            "--standalone",
            "--client-ca-file",
            ca_file.to_str().unwrap(),
        ])
        .await
    }
}

#[tokio::test]
async fn with_a_client_ca_the_binary_serves_only_clients_with_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = client_certs(&dir.path().join("first"), None);
    let renewed = client_certs(&dir.path().join("renewed"), Some(&dir.path().join("first")));
    let other = client_certs(&dir.path().join("other"), None);
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, &first.ca_pem).unwrap();
    let serve = Serve::with_client_ca(&ca_file).await;
    let with = |bundle: &probegate::certs::Bundle| {
        common::TlsClient::with_client_cert(
            &serve.ca_pem,
            serve.webhook,
            &bundle.cert_pem,
            &bundle.key_pem,
        )
    };
    let mutated = |reply: Result<common::Reply, String>, who: &str| {
        let reply = reply.unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(reply.status, 200, "{who}");
        assert!(
            apply_response(&pod(), &reply.json())["spec"]["containers"][0]["readinessProbe"]
                .is_object(),
            "{who}: reviewed"
        );
    };
    let review = review(pod(), false);
    mutated(with(&first).try_review(&review).await, "client certificate");
    mutated(
        with(&renewed).try_review(&review).await,
        "renewed under the same CA",
    );

    let refused = serve.client().try_review(&review).await;
    assert!(
        refused.is_err(),
        "no client certificate: {:?}",
        refused.map(|r| r.status)
    );
    let refused = with(&other).try_review(&review).await;
    assert!(
        refused.is_err(),
        "another CA: {:?}",
        refused.map(|r| r.status)
    );
    wait_for_metric(
        &serve,
        r#"probegate_tls_handshake_failures_total{reason="no_client_certificate"} 1"#,
    )
    .await;
    wait_for_metric(
        &serve,
        r#"probegate_tls_handshake_failures_total{reason="client_certificate_refused"} 1"#,
    )
    .await;
    // Health and metrics stay plain HTTP, open to the kubelet and Prometheus.
    assert_eq!(get(serve.health, "/readyz").await.status, 200);
    assert_eq!(get(serve.metrics.unwrap(), "/metrics").await.status, 200);

    // A new CA in the file reaches new connections without a restart.
    replace_file(&ca_file, &other.ca_pem);
    wait_for_metric(
        &serve,
        r#"probegate_certificate_reloads_total{certificate="client_ca",result="success"} 1"#,
    )
    .await;
    mutated(
        with(&other).try_review(&review).await,
        "the new CA's client",
    );
    assert!(
        with(&first).try_review(&review).await.is_err(),
        "the old CA's client is refused once the CA is replaced"
    );

    // A file that is no CA is refused; the CA in service stays.
    replace_file(&ca_file, "not a certificate\n");
    wait_for_metric(
        &serve,
        r#"probegate_certificate_reloads_total{certificate="client_ca",result="failure"} 1"#,
    )
    .await;
    mutated(
        with(&other).try_review(&review).await,
        "after a refused reload",
    );
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The value of `probegate_certificate_expiry_timestamp_seconds` for `certificate`.
fn shown_expiry(text: &str, certificate: &str) -> Option<i64> {
    let prefix =
        format!("probegate_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    Some(line[prefix.len()..].parse().unwrap())
}

/// Whether `value` is `days` days after a moment within `made` (Unix seconds).
fn days_after(value: Option<i64>, days: i64, made: (i64, i64)) -> bool {
    value.is_some_and(|value| (made.0 + days * 86_400..=made.1 + days * 86_400).contains(&value))
}

/// `probegate certs` makes a CA that outlives its leaf by the leaf's days: a client CA made
/// with `days` expires 2 x `days` after `made`.
fn client_ca(days: u32) -> (probegate::certs::Bundle, (i64, i64)) {
    let before = unix_now();
    let bundle = probegate::certs::generate_client(days).unwrap();
    (bundle, (before, unix_now()))
}

#[tokio::test]
async fn the_binary_shows_when_its_certificates_expire_from_the_start_and_after_a_new_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (sooner, sooner_made) = client_ca(2);
    let (later, _) = client_ca(20);
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, format!("{}{}", later.ca_pem, sooner.ca_pem)).unwrap();
    let before = unix_now();
    // Its serving pair is common::bundle()'s, valid for a day from its start.
    let serve = Serve::with_client_ca(&ca_file).await;
    let started = (before, unix_now());
    let text = metrics_text(&serve).await;
    assert!(
        days_after(shown_expiry(&text, "serving"), 1, started),
        "the serving certificate's notAfter at start:\n{text}"
    );
    assert!(
        days_after(shown_expiry(&text, "client_ca"), 4, sooner_made),
        "the client CA bundle's earliest notAfter at start:\n{text}"
    );

    let (renewed, renewed_made) = client_ca(50);
    replace_file(&ca_file, &renewed.ca_pem);
    wait_for_metrics(&serve, "the new CA's notAfter", |text| {
        days_after(shown_expiry(text, "client_ca"), 100, renewed_made)
    })
    .await;
}

/// `serve` with the serving pair in `dir` and `flag` naming `file` there exits non-zero,
/// saying `error` and naming the file.
fn assert_refused_to_start(dir: &std::path::Path, flag: &str, file: &str, error: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["serve", "--standalone", "--addr", "127.0.0.1:0"])
        .args(["--health-addr", "127.0.0.1:0", "--no-metrics"])
        .arg("--tls-cert-file")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("tls.key"))
        .arg(flag)
        .arg(dir.join(file))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{flag} {file}: started");
    assert!(
        stderr.contains(error) && stderr.contains(file),
        "{flag} {file}: {stderr}"
    );
}

#[test]
fn serve_refuses_to_start_with_an_unusable_client_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let serving = common::bundle();
    serving.write(dir.path()).unwrap();
    std::fs::write(dir.path().join("garbage.crt"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("key-only.crt"), &serving.key_pem).unwrap();
    for (file, error) in [
        ("missing.crt", "cannot read"),
        ("garbage.crt", "no PEM certificate found"),
        ("key-only.crt", "no PEM certificate found"),
    ] {
        assert_refused_to_start(dir.path(), "--client-ca-file", file, error);
    }
}

/// A catalogue of one in-house entry whose readiness path is `path`.
fn payments_catalogue(path: &str) -> String {
    format!(
        "- name: payments\n  images: [\"registry.corp/payments/*\"]\n  ports: [{{port: 8080, protocol: http}}]\n  readiness: {{httpGet: {{port: http, path: {path}}}}}\n  source: https://wiki.corp/payments/probes\n"
    )
}

fn payments_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ledger", "namespace": "payments"},
        "spec": {"containers": [{"name": "ledger", "image": "registry.corp/payments/ledger:7",
            "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

/// The readiness path and the record the answer gives the payments Pod.
async fn payments_answer(serve: &Serve) -> (Value, Value) {
    let reply = serve.client().review(&review(payments_pod(), false)).await;
    let patched = apply_response(&payments_pod(), &reply.json());
    (
        patched["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"].clone(),
        patched["metadata"]["annotations"]["probegate.io/injected"].clone(),
    )
}

#[tokio::test]
async fn the_binary_serves_a_users_catalogue_and_reloads_it_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalogue.yaml");
    std::fs::write(&file, payments_catalogue("/healthz")).unwrap();
    let mut serve = Serve::start(&[
        "--metrics-addr",
        "127.0.0.1:0",
        "--standalone",
        "--catalogue",
        file.to_str().unwrap(),
    ])
    .await;
    let (path, record) = payments_answer(&serve).await;
    assert_eq!(path, "/healthz");
    assert!(
        record
            .as_str()
            .unwrap()
            .contains("evidence=ledger(catalogue=payments)"),
        "{record}"
    );

    // A changed file reaches the answers without a restart.
    replace_file(&file, &payments_catalogue("/v2/health"));
    wait_for_metric(
        &serve,
        r#"probegate_catalogue_reloads_total{result="success"} 1"#,
    )
    .await;
    wait_for_metric(&serve, "probegate_catalogue_reload_failing 0").await;
    assert_eq!(payments_answer(&serve).await.0, "/v2/health");

    // A file that does not validate is refused, said in the log, and the catalogue in
    // service stays.
    replace_file(&file, &payments_catalogue("health"));
    wait_for_metric(
        &serve,
        r#"probegate_catalogue_reloads_total{result="failure"} 1"#,
    )
    .await;
    wait_for_metric(&serve, "probegate_catalogue_reload_failing 1").await;
    assert_eq!(payments_answer(&serve).await.0, "/v2/health");
    serve.sigterm();
    assert!(serve.exited(Duration::from_secs(30)).await.success());
    let refused = serve.final_logs().into_iter().any(|log| {
        log["reason"].as_str().is_some_and(|reason| {
            reason.contains(
                "entry \"payments\": readiness.httpGet.path: an HTTP path must start with /",
            )
        })
    });
    assert!(refused, "no log line names the refused entry and field");
}

#[test]
fn serve_refuses_to_start_with_a_catalogue_that_does_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    let serving = common::bundle();
    serving.write(dir.path()).unwrap();
    std::fs::write(dir.path().join("bad.yaml"), payments_catalogue("health")).unwrap();
    for (file, error) in [
        ("missing.yaml", "cannot read the catalogue"),
        ("bad.yaml", "entry \"payments\": readiness.httpGet.path"),
    ] {
        assert_refused_to_start(dir.path(), "--catalogue", file, error);
    }
}
