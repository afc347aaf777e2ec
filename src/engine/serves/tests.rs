//! What decides a container's probes, through the whole engine: the catalogue, conventions,
//! port protocols, the namespace's settings and the workload's, in that precedence.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Probe;
use serde_json::{Value, json};

use crate::engine::catalogue::Catalogue;
use crate::engine::test_support::object;
use crate::engine::{Context, ServiceEvidence, mutate};
use crate::policy::INJECTED_ANNOTATION;

/// A probe as a user reads it: `http:8080/ready`, `https:8443/readyz`, `tcp:5432`,
/// `exec:pg_isready`, `grpc:9000`; `-` for none.
fn summary(probe: Option<&Probe>) -> String {
    let Some(p) = probe else { return "-".into() };
    let port = |p: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| match p {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    };
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        return format!(
            "{scheme}:{}{}",
            port(&h.port),
            h.path.as_deref().unwrap_or("")
        );
    }
    if let Some(t) = &p.tcp_socket {
        return format!("tcp:{}", port(&t.port));
    }
    if let Some(g) = &p.grpc {
        return format!("grpc:{}", g.port);
    }
    if let Some(e) = &p.exec {
        let command = e.command.as_deref().unwrap_or_default();
        return format!("exec:{}", command.first().map_or("", String::as_str));
    }
    "?".into()
}

struct Case {
    name: &'static str,
    namespace: &'static [(&'static str, &'static str)],
    pod_annotations: Value,
    container: Value,
    services: Vec<Value>,
    readiness: &'static str,
    liveness: &'static str,
    evidence: &'static str,
}

const PATHS: &[(&str, &str)] = &[
    ("probegate.io/readiness-path", "/ready"),
    ("probegate.io/liveness-path", "/live"),
];

fn run(case: &Case, catalogue: &Catalogue) -> (String, String, String, String) {
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "team"},
        "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": {
            "metadata": {"labels": {"app": "w"}, "annotations": case.pod_annotations},
            "spec": {"containers": [case.container]}}}
    });
    let workload = self::object(object.clone());
    let namespace: BTreeMap<String, String> = case
        .namespace
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let services = crate::engine::test_support::service_evidence(&case.services);
    let services: Vec<&ServiceEvidence> = services.iter().collect();
    let mutation = mutate(
        &workload,
        &Context {
            layers: &[&namespace],
            services: &services,
            catalogue,
        },
    );
    let mut patched = object;
    json_patch::patch(&mut patched, &mutation.patch.operations().unwrap()).unwrap();
    let pod = &patched["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let probe = |field: &str| {
        let probe: Option<Probe> = serde_json::from_value(container[field].clone()).ok();
        summary(probe.as_ref())
    };
    let record = pod["metadata"]["annotations"][INJECTED_ANNOTATION]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (
        probe("readinessProbe"),
        probe("livenessProbe"),
        record,
        format!("{:?}", mutation.warnings),
    )
}

fn check(cases: &[Case], catalogue: &Catalogue) {
    for case in cases {
        let (readiness, liveness, record, warnings) = run(case, catalogue);
        assert_eq!(
            readiness, case.readiness,
            "{}: readiness ({record})",
            case.name
        );
        assert_eq!(
            liveness, case.liveness,
            "{}: liveness ({record})",
            case.name
        );
        assert!(
            record.contains(&format!("evidence=c({})", case.evidence)),
            "{}: record {record:?} lacks evidence {:?}",
            case.name,
            case.evidence
        );
        assert_eq!(warnings, "[]", "{}: warnings", case.name);
    }
}

fn container(image: &str, ports: Value) -> Value {
    json!({"name": "c", "image": image, "ports": ports})
}

#[test]
fn the_software_beats_the_namespace_and_the_workload_beats_both() {
    let cases = [
        Case {
            name: "a database gets its own check under the namespace's paths",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container("postgres:16", json!([{"containerPort": 5432}])),
            services: vec![],
            readiness: "exec:pg_isready",
            liveness: "tcp:5432",
            evidence: "catalogue=postgresql",
        },
        Case {
            name: "a web app of the team's own gets the namespace's paths",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/web:3",
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            services: vec![],
            readiness: "http:http/ready",
            liveness: "http:http/live",
            evidence: "namespace",
        },
        Case {
            name: "the workload's own path beats the catalogue",
            namespace: &[],
            pod_annotations: json!({"probegate.io/readiness-path": "/custom"}),
            container: container(
                "prom/prometheus:v2.53.0",
                json!([{"name": "web", "containerPort": 9090}]),
            ),
            services: vec![],
            readiness: "http:web/custom",
            liveness: "tcp:web",
            evidence: "workload",
        },
        Case {
            name: "a flag that moves the port moves the catalogue's probe",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "quay.io/prometheus/prometheus:v3.0.0",
                "args": ["--web.listen-address=:9091"]}),
            services: vec![],
            readiness: "http:9091/-/ready",
            liveness: "http:9091/-/healthy",
            evidence: "catalogue=prometheus",
        },
        Case {
            name: "a health server flag beats the namespace's paths",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "registry.corp/team/operator:1",
                "args": ["--health-addr=:9440"]}),
            services: vec![],
            readiness: "http:9440/readyz",
            liveness: "http:9440/healthz",
            evidence: "flag=--health-addr",
        },
        Case {
            name: "a Kubernetes-style API server's secure port",
            namespace: &[],
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "registry.corp/team/apiserver:1",
                "args": ["--secure-port=6443"]}),
            services: vec![],
            readiness: "https:6443/readyz",
            liveness: "https:6443/livez",
            evidence: "flag=--secure-port",
        },
        Case {
            name: "Spring Boot's probe groups, turned on by a variable",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "registry.corp/team/orders:1",
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "value": "true"}]}),
            services: vec![],
            readiness: "http:http/actuator/health/readiness",
            liveness: "http:http/actuator/health/liveness",
            evidence: "convention=spring-boot",
        },
    ];
    check(&cases, Catalogue::builtin());
}

#[test]
fn namespace_paths_only_where_the_port_may_speak_http() {
    let cases = [
        Case {
            name: "a port named for a database",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/db:1",
                json!([{"name": "postgres", "containerPort": 15432}]),
            ),
            services: vec![],
            readiness: "tcp:postgres",
            liveness: "-",
            evidence: "port=postgresql(name postgres)",
        },
        Case {
            name: "a well-known database port, unnamed",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/cache:1",
                json!([{"containerPort": 6379}]),
            ),
            services: vec![],
            readiness: "tcp:6379",
            liveness: "-",
            evidence: "port=redis(number 6379)",
        },
        Case {
            name: "a gRPC port gets no HTTP path",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/api:1",
                json!([{"name": "grpc", "containerPort": 9000}]),
            ),
            services: vec![],
            readiness: "tcp:grpc",
            liveness: "-",
            evidence: "port=grpc(name grpc)",
        },
        Case {
            name: "a namespace's gRPC handler on a gRPC port",
            namespace: &[("probegate.io/probe-handler", "grpc")],
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/api:1",
                json!([{"name": "grpc-api", "containerPort": 9000}]),
            ),
            services: vec![],
            readiness: "grpc:9000",
            liveness: "-",
            evidence: "namespace",
        },
        Case {
            name: "a namespace's gRPC handler is not used on an HTTP port",
            namespace: &[("probegate.io/probe-handler", "grpc")],
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/web:1",
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            services: vec![],
            readiness: "tcp:http",
            liveness: "-",
            evidence: "port=http(name http)",
        },
        Case {
            name: "a Service's appProtocol beats the port's name",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/db:1",
                json!([{"name": "http", "containerPort": 3306}]),
            ),
            services: vec![json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "db", "namespace": "team"},
                "spec": {"selector": {"app": "w"},
                    "ports": [{"port": 3306, "targetPort": "http", "appProtocol": "mysql"}]}})],
            readiness: "tcp:http",
            liveness: "-",
            evidence: "port=mysql(appProtocol http)",
        },
        Case {
            name: "an https port gets the namespace's paths over HTTPS",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/team/web:1",
                json!([{"name": "https", "containerPort": 8443}]),
            ),
            services: vec![],
            readiness: "https:https/ready",
            liveness: "https:https/live",
            evidence: "namespace",
        },
        Case {
            name: "another publisher's software the catalogue has no entry for",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "docker.io/bitnami/not-in-the-catalogue:1.0",
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            services: vec![],
            readiness: "tcp:http",
            liveness: "-",
            evidence: "publisher=bitnami",
        },
        Case {
            name: "known software whose entry's conditions it does not meet",
            namespace: PATHS,
            pod_annotations: json!({}),
            container: container(
                "registry.corp/mirror/traefik:v3.1.0",
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            services: vec![],
            readiness: "tcp:http",
            liveness: "-",
            evidence: "publisher=traefik",
        },
        Case {
            name: "the workload's own path applies whatever the port",
            namespace: &[],
            pod_annotations: json!({"probegate.io/readiness-path": "/ready"}),
            container: container(
                "registry.corp/team/api:1",
                json!([{"name": "grpc", "containerPort": 9000}]),
            ),
            services: vec![],
            readiness: "http:grpc/ready",
            liveness: "tcp:grpc",
            evidence: "workload",
        },
    ];
    check(&cases, Catalogue::builtin());
}

#[test]
fn a_users_catalogue_sizes_start_up_and_slow_checks() {
    let catalogue = Catalogue::with_user_file(
        "mine.yaml",
        r#"
- name: ledger
  images: ["registry.corp/payments/*"]
  ports: [{port: 8080, protocol: http}]
  readiness: {httpGet: {port: http, path: /healthz}}
  startupSeconds: 600
  timeoutSeconds: 10
  source: https://wiki.corp/payments/probes
"#,
    )
    .unwrap();
    let probe = |annotations: Value| {
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "payments", "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "registry.corp/payments/ledger:7",
                "ports": [{"name": "http", "containerPort": 8080}]}]}
        });
        let workload = self::object(object);
        let mutation = mutate(
            &workload,
            &Context {
                catalogue: &catalogue,
                ..Context::default()
            },
        );
        let startup = mutation.plan.probes[0]
            .added
            .iter()
            .find(|(kind, _)| *kind == crate::policy::ProbeKind::Startup)
            .map(|(_, p)| p.clone())
            .unwrap();
        (startup.failure_threshold, startup.timeout_seconds)
    };
    // 600 s at the default 10 s period; the entry's 10 s timeout.
    assert_eq!(probe(json!({})), (Some(60), Some(10)));
    // The workload's own settings win.
    assert_eq!(
        probe(json!({"probegate.io/startup-seconds": "120", "probegate.io/timeout-seconds": "2"})),
        (Some(12), Some(2))
    );
}

#[test]
fn the_workloads_own_settings_are_for_its_application_not_its_sidecars() {
    let namespace: BTreeMap<String, String> = PATHS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let run = |annotations: Value| {
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team", "annotations": annotations},
            "spec": {"containers": [
                {"name": "app", "image": "registry.corp/team/app:1",
                    "ports": [{"name": "web", "containerPort": 8080}]},
                {"name": "db", "image": "postgres:16", "ports": [{"containerPort": 5432}]}
            ]}
        });
        let workload = self::object(object.clone());
        let mutation = mutate(
            &workload,
            &Context {
                layers: &[&namespace],
                ..Context::default()
            },
        );
        let mut patched = object;
        json_patch::patch(&mut patched, &mutation.patch.operations().unwrap()).unwrap();
        let probe = |container: usize, field: &str| {
            let probe: Option<Probe> =
                serde_json::from_value(patched["spec"]["containers"][container][field].clone())
                    .ok();
            summary(probe.as_ref())
        };
        (
            [probe(0, "readinessProbe"), probe(0, "livenessProbe")],
            [probe(1, "readinessProbe"), probe(1, "livenessProbe")],
            patched["metadata"]["annotations"][INJECTED_ANNOTATION]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    // The object's port names its application; the database beside it keeps its own check
    // and never gets the namespace's paths.
    let (app, db, record) = run(json!({"probegate.io/port": "8080"}));
    assert_eq!(app, ["http:8080/ready", "http:8080/live"], "{record}");
    assert_eq!(db, ["exec:pg_isready", "tcp:5432"], "{record}");
    assert!(
        record.contains("evidence=app(workload),db(catalogue=postgresql)"),
        "{record}"
    );
    // The object's own path goes to its first container only.
    let (app, db, record) = run(json!({"probegate.io/readiness-path": "/healthz"}));
    assert_eq!(app, ["http:web/healthz", "http:web/live"], "{record}");
    assert_eq!(db, ["exec:pg_isready", "tcp:5432"], "{record}");
    // A scheme alone chooses no handler: the catalogue still decides.
    let (_, db, record) = run(json!({"probegate.io/scheme": "HTTPS"}));
    assert_eq!(db, ["exec:pg_isready", "tcp:5432"], "{record}");
}

#[test]
fn an_entry_does_not_apply_where_its_probe_would_land_on_nothing() {
    let cases = [
        Case {
            name: "a database image running a backup script declares no port",
            namespace: &[],
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "postgres:16",
                "command": ["sh", "-c", "while true; do pg_dump -h db > /backup/db.sql; sleep 3600; done"],
                "ports": [{"name": "metrics", "containerPort": 9187}]}),
            services: vec![],
            readiness: "-",
            liveness: "-",
            evidence: "",
        },
        Case {
            name: "a listen address on loopback (behind a proxy)",
            namespace: &[],
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "quay.io/prometheus/node-exporter:v1.8.0",
                "args": ["--web.listen-address=127.0.0.1:9100"],
                "ports": [{"name": "https", "containerPort": 9100}]}),
            services: vec![],
            readiness: "tcp:https",
            liveness: "-",
            evidence: "",
        },
        Case {
            name: "a listen address probegate cannot read",
            namespace: &[],
            pod_annotations: json!({}),
            container: json!({"name": "c", "image": "quay.io/prometheus/node-exporter:v1.8.0",
                "args": ["--web.listen-address=$(ADDRESS)"],
                "ports": [{"name": "web", "containerPort": 9100}]}),
            services: vec![],
            readiness: "tcp:web",
            liveness: "-",
            evidence: "",
        },
    ];
    for case in &cases {
        let (readiness, liveness, record, _) = run(case, Catalogue::builtin());
        assert_eq!(
            readiness, case.readiness,
            "{}: readiness ({record})",
            case.name
        );
        assert_eq!(
            liveness, case.liveness,
            "{}: liveness ({record})",
            case.name
        );
        assert!(!record.contains("catalogue="), "{}: {record}", case.name);
        // Probed on the port alone: the record lists no evidence for it.
        assert!(!record.contains("evidence="), "{}: {record}", case.name);
    }
    // A list of URLs (etcd's flags): the first the kubelet can reach is probed, and a list
    // of loopback URLs only keeps the entry off.
    let etcd = |urls: &str| Case {
        name: "etcd's metrics URLs",
        namespace: &[],
        pod_annotations: json!({}),
        container: json!({"name": "c", "image": "quay.io/coreos/etcd:v3.5.15",
            "args": [format!("--listen-metrics-urls={urls}")],
            "ports": [{"name": "client", "containerPort": 2379}]}),
        services: vec![],
        readiness: "",
        liveness: "",
        evidence: "",
    };
    let (readiness, _, record, _) = run(
        &etcd("http://127.0.0.1:2381,http://0.0.0.0:8080"),
        Catalogue::builtin(),
    );
    assert_eq!(readiness, "http:8080/readyz", "{record}");
    let (readiness, _, record, _) = run(&etcd("http://127.0.0.1:2381"), Catalogue::builtin());
    assert_eq!(readiness, "tcp:client", "{record}");
    // A moved port with a protocol suffix (Traefik's entry points) is still read.
    let traefik = Case {
        name: "an address with a protocol suffix",
        namespace: &[],
        pod_annotations: json!({}),
        container: json!({"name": "c", "image": "docker.io/traefik:v3.1.0",
            "args": ["--ping", "--entryPoints.traefik.address=:9000/tcp"],
            "ports": [{"name": "traefik", "containerPort": 9000}]}),
        services: vec![],
        readiness: "",
        liveness: "",
        evidence: "",
    };
    let (readiness, _, record, _) = run(&traefik, Catalogue::builtin());
    assert!(
        readiness.starts_with("http:traefik/"),
        "{readiness} ({record})"
    );
}
