//! What users install: `manifests/`, the Helm chart's renderings, and `probegate certs`.
//!
//! Every object must decode into its k8s-openapi type with no field left over (a misspelt
//! field is silently dropped by a lenient decoder, and by the API server too).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{documents, helm, helm_template};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Decodes `object` as its kind and checks that re-encoding kept every field it had.
fn check_typed(origin: &str, object: &Value) {
    let kind = object["kind"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    macro_rules! roundtrip {
        ($ty:ty) => {{
            let typed: $ty = serde_json::from_value(object.clone())
                .unwrap_or_else(|e| panic!("{origin}: {kind} does not decode: {e}"));
            serde_json::to_value(typed).unwrap()
        }};
    }
    use k8s_openapi::api::{
        admissionregistration::v1 as admission, apps::v1 as apps, core::v1 as core,
        networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    };
    let back = match (api_version, kind) {
        ("v1", "Namespace") => roundtrip!(core::Namespace),
        ("v1", "ServiceAccount") => roundtrip!(core::ServiceAccount),
        ("v1", "Service") => roundtrip!(core::Service),
        ("v1", "Secret") => roundtrip!(core::Secret),
        ("v1", "ConfigMap") => roundtrip!(core::ConfigMap),
        ("apps/v1", "Deployment") => roundtrip!(apps::Deployment),
        ("policy/v1", "PodDisruptionBudget") => roundtrip!(policy::PodDisruptionBudget),
        ("networking.k8s.io/v1", "NetworkPolicy") => roundtrip!(networking::NetworkPolicy),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => roundtrip!(rbac::ClusterRole),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            roundtrip!(rbac::ClusterRoleBinding)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => roundtrip!(rbac::Role),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => roundtrip!(rbac::RoleBinding),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            roundtrip!(admission::MutatingWebhookConfiguration)
        }
        // cert-manager's own types are not Kubernetes API types.
        ("cert-manager.io/v1", _) => return,
        // No Rust types: the Prometheus Operator's CRDs say what these may hold.
        ("monitoring.coreos.com/v1", _) => return check_against_crd(origin, object),
        other => panic!("{origin}: no type known for {other:?}"),
    };
    assert_no_unknown_fields(origin, object, &back, kind);
}

/// Checks a custom object against its CRD's openAPIV3Schema, from the Prometheus Operator's
/// pinned module: the schema's types, patterns and required fields, and no field the schema
/// does not name (the API server would prune it silently).
fn check_against_crd(origin: &str, object: &Value) {
    let kind = object["kind"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or_default();
    // The CRD files are named GROUP_PLURAL.yaml; these kinds' plurals add an s.
    let file =
        common::prometheus_operator_crds().join(format!("{group}_{}s.yaml", kind.to_lowercase()));
    let crd_text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{origin}: no CRD for {kind} at {}: {e}", file.display()));
    let crd = documents(&file.display().to_string(), &crd_text).remove(0);
    let schema = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{origin}: the CRD has no version {version}"))["schema"]
        ["openAPIV3Schema"]
        .clone();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{origin}: {kind}: {errors:#?}");
    assert_fields_in_schema(origin, object, &schema, kind);
}

fn assert_fields_in_schema(origin: &str, value: &Value, schema: &Value, path: &str) {
    match value {
        Value::Object(fields) => {
            if schema["x-kubernetes-preserve-unknown-fields"] == true {
                return;
            }
            let Some(known) = schema["properties"].as_object() else {
                // A map (additionalProperties) or the metadata the API server checks.
                if let Some(values) = schema.get("additionalProperties") {
                    for (key, child) in fields {
                        assert_fields_in_schema(origin, child, values, &format!("{path}.{key}"));
                    }
                }
                return;
            };
            for (key, child) in fields {
                let child_path = format!("{path}.{key}");
                match known.get(key) {
                    Some(child_schema) => {
                        assert_fields_in_schema(origin, child, child_schema, &child_path)
                    }
                    None => panic!("{origin}: unknown field {child_path}"),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_fields_in_schema(origin, item, &schema["items"], &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn assert_no_unknown_fields(origin: &str, original: &Value, back: &Value, path: &str) {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if value.is_null() {
                    continue;
                }
                let child = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => assert_no_unknown_fields(origin, value, other, &child),
                    None => panic!("{origin}: unknown field {child}"),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{origin}: {path}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_no_unknown_fields(origin, x, y, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn manifests() -> Vec<(String, Value)> {
    let dir = root().join("manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|file| {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            documents(&name, &std::fs::read_to_string(&file).unwrap())
                .into_iter()
                .map(move |v| (name.clone(), v))
        })
        .collect()
}

#[test]
fn every_manifest_decodes_as_its_type_without_unknown_fields() {
    let objects = manifests();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|(_, v)| v["kind"].as_str().unwrap())
        .collect();
    for required in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "MutatingWebhookConfiguration",
    ] {
        assert!(
            kinds.contains(&required),
            "manifests/ lacks a {required}: {kinds:?}"
        );
    }
    for (file, object) in &objects {
        check_typed(file, object);
    }
}

#[test]
fn the_unknown_field_check_catches_a_misspelt_field() {
    let object = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"prots": []}});
    let caught = std::panic::catch_unwind(|| check_typed("test", &object));
    assert!(caught.is_err());
}

#[test]
fn the_crd_check_catches_a_misspelt_field_and_a_bad_duration() {
    let monitor = |endpoint: Value| {
        serde_json::json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "m"},
            "spec": {"selector": {}, "endpoints": [endpoint]}})
    };
    check_against_crd(
        "test",
        &monitor(serde_json::json!({"port": "metrics", "interval": "30s"})),
    );
    for bad in [
        serde_json::json!({"prot": "metrics"}),
        serde_json::json!({"port": "metrics", "interval": "30 seconds"}),
    ] {
        let object = monitor(bad.clone());
        let caught = std::panic::catch_unwind(|| check_typed("test", &object));
        assert!(caught.is_err(), "{bad} passed");
    }
}

/// The kinds the monitoring options render, each one's option, and what else it needs.
const MONITORING: [(&str, &str); 4] = [
    ("serviceMonitor.enabled", "ServiceMonitor"),
    ("podMonitor.enabled", "PodMonitor"),
    ("prometheusRule.enabled", "PrometheusRule"),
    ("grafana.dashboard.enabled", "ConfigMap"),
];

fn kinds_of(origin: &str, rendered: &str) -> Vec<String> {
    documents(origin, rendered)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn monitoring_is_off_by_default_and_each_option_renders_its_object() {
    let default = helm_template(&[]);
    let default_kinds = kinds_of("default", &default);
    assert!(
        !default.contains("monitoring.coreos.com") && !default.contains("grafana_dashboard"),
        "nothing for monitoring by default"
    );
    for (option, kind) in MONITORING {
        let rendered = helm_template(&["--set", &format!("{option}=true")]);
        let mut added = kinds_of(option, &rendered);
        for kind in &default_kinds {
            let at = added.iter().position(|k| k == kind).unwrap();
            added.remove(at);
        }
        assert_eq!(added, [kind], "{option}");
    }
    // Without metrics there is nothing to scrape: the chart says so rather than render a
    // monitor that finds no port.
    for monitor in ["serviceMonitor", "podMonitor"] {
        let out = Command::new(helm())
            .current_dir(root())
            .args(["template", "probegate", "charts/probegate"])
            .args(["--set", &format!("{monitor}.enabled=true")])
            .args(["--set", "metrics.enabled=false"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("needs metrics.enabled"),
            "{monitor}: {stderr}"
        );
    }
}

#[test]
fn monitoring_renderings_decode_against_the_operators_crds() {
    for (origin, rendered) in [
        (
            "helm template monitoring",
            helm_template(&common::MONITORING_ON),
        ),
        ("kustomize monitoring", common::kustomize_with("monitoring")),
    ] {
        let objects = documents(origin, &rendered);
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        for kind in ["ServiceMonitor", "PrometheusRule", "ConfigMap"] {
            assert!(kinds.contains(&kind), "{origin}: no {kind} in {kinds:?}");
        }
        for object in &objects {
            check_typed(origin, object);
        }
        // What a user checks first: the monitor finds the Service's (or pods') metrics port.
        let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
        let service_labels = service["metadata"]["labels"].as_object().unwrap();
        for monitor in objects.iter().filter(|o| o["kind"] == "ServiceMonitor") {
            for (key, value) in monitor["spec"]["selector"]["matchLabels"]
                .as_object()
                .unwrap()
            {
                assert_eq!(
                    service_labels.get(key),
                    Some(value),
                    "{origin}: selector {key}"
                );
            }
            assert_eq!(
                monitor["spec"]["endpoints"][0]["port"], "metrics",
                "{origin}"
            );
            assert!(
                service["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "metrics"),
                "{origin}: the Service has a port named metrics"
            );
        }
        let dashboard = objects
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1"
            })
            .unwrap_or_else(|| panic!("{origin}: no ConfigMap labelled grafana_dashboard: \"1\""));
        let json: Value =
            serde_json::from_str(dashboard["data"]["probegate.json"].as_str().unwrap()).unwrap();
        assert!(
            json["panels"].as_array().is_some_and(|p| p.len() >= 6),
            "{origin}"
        );
    }
}

#[test]
fn monitoring_values_reach_the_output() {
    let set = [
        "serviceMonitor.enabled=true",
        "serviceMonitor.namespace=monitoring",
        "serviceMonitor.interval=15s",
        "serviceMonitor.scrapeTimeout=5s",
        "serviceMonitor.labels.release=prom",
        "podMonitor.enabled=true",
        "podMonitor.namespace=monitoring",
        "podMonitor.interval=20s",
        "podMonitor.scrapeTimeout=7s",
        "podMonitor.labels.release=prom",
        "prometheusRule.enabled=true",
        "prometheusRule.namespace=monitoring",
        "prometheusRule.labels.release=prom",
        "prometheusRule.additionalAlertLabels.team=platform",
        "prometheusRule.latency.for=3m",
        "prometheusRule.certificateExpiry.days=30",
        "prometheusRule.failOpen.severity=page",
        "grafana.dashboard.enabled=true",
        "grafana.dashboard.namespace=grafana",
        "grafana.dashboard.label=my_dashboards",
        "grafana.dashboard.labelValue=yes",
        "grafana.dashboard.annotations.grafana_folder=Admission",
    ];
    let args: Vec<String> = set
        .iter()
        .flat_map(|s| ["--set".to_owned(), s.to_string()])
        .collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // --set reads 0.8 as a string; the schema wants a number.
    args.extend(["--set-json", "prometheusRule.latency.p99Seconds=0.8"]);
    let objects = documents("monitoring values", &helm_template(&args));
    let find = |kind: &str| -> &Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["namespace"] != "probegate")
            .unwrap_or_else(|| panic!("no {kind} outside the release namespace"))
    };
    for (kind, endpoints, interval, timeout) in [
        ("ServiceMonitor", "endpoints", "15s", "5s"),
        ("PodMonitor", "podMetricsEndpoints", "20s", "7s"),
    ] {
        let monitor = find(kind);
        assert_eq!(monitor["metadata"]["namespace"], "monitoring", "{kind}");
        assert_eq!(monitor["metadata"]["labels"]["release"], "prom", "{kind}");
        assert_eq!(
            monitor["spec"]["namespaceSelector"]["matchNames"],
            serde_json::json!(["probegate"]),
            "{kind}"
        );
        let endpoint = &monitor["spec"][endpoints][0];
        assert_eq!(endpoint["interval"], interval, "{kind}");
        assert_eq!(endpoint["scrapeTimeout"], timeout, "{kind}");
        check_typed(kind, monitor);
    }
    let rule = find("PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alert = |name: &str| alerts.iter().find(|a| a["alert"] == name).unwrap();
    for alert in alerts {
        assert_eq!(alert["labels"]["team"], "platform", "{}", alert["alert"]);
    }
    let slow = alert("ProbegateSlowReviews");
    assert!(
        slow["expr"].as_str().unwrap().ends_with("> 0.8"),
        "{}",
        slow["expr"]
    );
    assert_eq!(slow["for"], "3m");
    let expiry = alert("ProbegateCertificateExpiresSoon");
    assert!(
        expiry["expr"].as_str().unwrap().contains("< 30 * 86400"),
        "{}",
        expiry["expr"]
    );
    assert_eq!(
        alert("ProbegateWebhookFailingOpen")["labels"]["severity"],
        "page"
    );
    let dashboard = find("ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(dashboard["metadata"]["labels"]["my_dashboards"], "yes");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Admission"
    );
    assert!(
        dashboard["metadata"]["labels"]
            .get("grafana_dashboard")
            .is_none()
    );
}

/// The properties a webhook configuration must have so probegate never blocks a pod.
fn check_webhook_configuration(origin: &str, object: &Value, namespace: &str) {
    let config: MutatingWebhookConfiguration = serde_json::from_value(object.clone()).unwrap();
    let webhooks = config.webhooks.unwrap();
    assert_eq!(webhooks.len(), 1, "{origin}");
    let hook = &webhooks[0];
    assert_eq!(hook.admission_review_versions, ["v1"], "{origin}");
    assert_eq!(
        hook.side_effects, "None",
        "{origin}: dry-run applies need sideEffects: None"
    );
    assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"), "{origin}");
    let timeout = hook.timeout_seconds.unwrap();
    assert!((1..=10).contains(&timeout), "{origin}: timeout {timeout}");
    assert_eq!(
        hook.reinvocation_policy.as_deref(),
        Some("IfNeeded"),
        "{origin}"
    );
    assert_eq!(
        hook.client_config
            .service
            .as_ref()
            .and_then(|s| s.path.as_deref()),
        Some("/mutate"),
        "{origin}"
    );

    let rules = hook.rules.as_ref().unwrap();
    let mut covered: Vec<(String, String)> = Vec::new();
    for rule in rules {
        assert_eq!(
            rule.operations.as_deref(),
            Some(&["CREATE".to_string()][..]),
            "{origin}: only CREATE"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                covered.push((group.clone(), resource.clone()));
            }
        }
    }
    for (group, resource) in [
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ] {
        assert!(
            covered.contains(&(group.to_string(), resource.to_string())),
            "{origin}: no rule for {group}/{resource}"
        );
    }

    let selector = hook.namespace_selector.as_ref().unwrap();
    assert_eq!(
        selector
            .match_labels
            .as_ref()
            .and_then(|l| l.get("probegate.io/injection"))
            .map(String::as_str),
        Some("enabled"),
        "{origin}: namespaces opt in"
    );
    let excluded: Vec<&String> = selector
        .match_expressions
        .iter()
        .flatten()
        .filter(|e| e.key == "kubernetes.io/metadata.name" && e.operator == "NotIn")
        .flat_map(|e| e.values.iter().flatten())
        .collect();
    for never in ["kube-system", namespace] {
        assert!(
            excluded.iter().any(|v| *v == never),
            "{origin}: {never} must never match"
        );
    }
    // `probegate mutate` leaves the same namespaces alone, from one list.
    let mut excluded: Vec<&str> = excluded.into_iter().map(String::as_str).collect();
    excluded.sort_unstable();
    let mut offline = probegate::scope::EXCLUDED_NAMESPACES.to_vec();
    offline.sort_unstable();
    assert_eq!(
        excluded, offline,
        "{origin}: the webhook's excluded namespaces and mutate's differ"
    );
    let object_selector = hook.object_selector.as_ref().unwrap();
    assert!(
        object_selector
            .match_expressions
            .iter()
            .flatten()
            .any(|e| e.key == "probegate.io/inject"
                && e.operator == "NotIn"
                && e.values.iter().flatten().any(|v| v == "disabled")),
        "{origin}: workloads opt out with probegate.io/inject=disabled"
    );
}

#[test]
fn manifests_webhook_configuration_never_blocks_pods() {
    let objects = manifests();
    let (file, webhook) = objects
        .iter()
        .find(|(_, v)| v["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    check_webhook_configuration(file, webhook, "probegate");
}

#[test]
fn manifests_deployment_probes_its_health_port_and_runs_locked_down() {
    let objects = manifests();
    let deployment = &objects
        .iter()
        .find(|(_, v)| v["kind"] == "Deployment")
        .unwrap()
        .1;
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let health_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["containerPort"] == 8081)
        .expect("health port declared");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        let port = &container[probe]["httpGet"]["port"];
        assert!(
            *port == 8081 || *port == health_port["name"],
            "{probe} on the health port, got {port}"
        );
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(pod["securityContext"]["runAsNonRoot"] == true || security["runAsNonRoot"] == true);
    assert!(
        container["resources"]["requests"].is_object()
            && container["resources"]["limits"].is_object()
    );
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let seconds = |flag: &str, default: u64| -> u64 {
        args.iter()
            .find_map(|a| a.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')))
            .map_or(default, |v| v.parse().unwrap())
    };
    let (delay, grace) = (
        seconds("--shutdown-delay-seconds", 0),
        seconds("--shutdown-grace-seconds", 15),
    );
    assert!(
        delay > 0,
        "endpoints need a moment to stop sending before the listener closes"
    );
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > delay + grace,
        "termination grace must exceed the delay and the drain"
    );
}

const CERT_SOURCES: [&[&str]; 3] = [
    &["--set", "certificates.source=generate"],
    &["--set", "certificates.source=certManager"],
    &[
        "--set",
        "certificates.source=existingSecret",
        "--set",
        "certificates.existingSecret.secretName=probegate-tls",
        "--set",
        "certificates.existingSecret.caBundle=ZHVtbXktY2E=",
    ],
];

#[test]
fn helm_lint_passes_for_every_certificate_source_and_with_monitoring_on() {
    for args in CERT_SOURCES
        .iter()
        .copied()
        .chain([&common::MONITORING_ON[..]])
    {
        let mut lint = vec!["lint", "--strict", "charts/probegate"];
        lint.extend_from_slice(args);
        common::helm_ok(&lint);
    }
}

#[test]
fn helm_renderings_decode_and_keep_the_webhook_safe() {
    for args in CERT_SOURCES {
        let rendered = helm_template(args);
        let origin = format!("helm template {args:?}");
        let objects = documents(&origin, &rendered);
        assert!(objects.len() >= 8, "{origin}: {} objects", objects.len());
        for object in &objects {
            check_typed(&origin, object);
        }
        let webhook = objects
            .iter()
            .find(|v| v["kind"] == "MutatingWebhookConfiguration")
            .unwrap();
        check_webhook_configuration(&origin, webhook, "probegate");
    }
}

/// The client-auth option of the chart and of manifests/ (a kustomize component): the flag
/// reaches serve, pointing at a CA mounted read-only from the Secret users create.
#[test]
fn client_auth_option_passes_the_flag_and_mounts_the_ca() {
    let flag = "--client-ca-file=/etc/probegate/client-ca/ca.crt";
    let chart_off = helm_template(&[]);
    assert!(!chart_off.contains("client-ca"), "off by default");
    let renderings = [
        (
            "helm template clientAuth",
            helm_template(&["--set", "clientAuth.enabled=true"]),
            "probegate-client-ca",
            "client-ca.crt",
        ),
        (
            "helm template clientAuth secretName key",
            helm_template(&[
                "--set",
                "clientAuth.enabled=true",
                "--set",
                "clientAuth.secretName=apiserver-ca",
                "--set",
                "clientAuth.key=ca.crt",
            ]),
            "apiserver-ca",
            "ca.crt",
        ),
        (
            "kustomize client-auth",
            common::kustomize_with_client_auth(),
            "probegate-client-ca",
            "client-ca.crt",
        ),
    ];
    for (origin, rendered, secret, key) in renderings {
        let objects = documents(origin, &rendered);
        for object in &objects {
            check_typed(origin, object);
        }
        let deployment = objects.iter().find(|v| v["kind"] == "Deployment").unwrap();
        let args = serve_args(deployment);
        assert_eq!(
            args.iter().filter(|a| *a == flag).count(),
            1,
            "{origin}: {args:?}"
        );
        let volume = read_only_volume(origin, deployment, "/etc/probegate/client-ca");
        assert_eq!(volume["secret"]["secretName"], secret, "{origin}");
        assert_eq!(
            volume["secret"]["items"],
            serde_json::json!([{"key": key, "path": "ca.crt"}]),
            "{origin}"
        );
    }
}

#[test]
fn helm_metrics_off_keeps_health_probes() {
    let rendered = helm_template(&["--set", "metrics.enabled=false"]);
    let objects = documents("metrics off", &rendered);
    let deployment = objects.iter().find(|v| v["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].to_string();
    assert!(args.contains("--no-metrics"), "{args}");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(!rendered.contains("9090"), "no metrics port left");
}

#[test]
fn certs_command_writes_a_pair_for_the_service_names() {
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args([
            "certs",
            "--service",
            "hook",
            "--namespace",
            "tools",
            "--dns",
            "hook.example.com",
            "--ip",
            "127.0.0.1",
            "--days",
            "30",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine as _;
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(printed.trim())
            .unwrap(),
        ca_pem.as_bytes(),
        "stdout is the base64 caBundle"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let key = std::fs::read_to_string(dir.path().join("tls.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    probegate::tls::load_pair(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider,
    )
    .build()
    .unwrap();
    let leaf = CertificateDer::from_pem_slice(
        std::fs::read(dir.path().join("tls.crt"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    for name in [
        "hook.tools.svc",
        "hook.tools.svc.cluster.local",
        "hook.example.com",
        "127.0.0.1",
    ] {
        let server_name = ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let wrong = ServerName::try_from("other.tools.svc").unwrap();
    assert!(
        verifier
            .verify_server_cert(&leaf, &[], &wrong, &[], UnixTime::now())
            .is_err()
    );
}

#[test]
fn certs_command_renews_under_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], out: &Path| {
        let result = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .arg("certs")
            .args(args)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        String::from_utf8(result.stdout).unwrap()
    };
    let first = run(&[], &dir.path().join("first"));
    let ca_cert = dir.path().join("first/ca.crt");
    let ca_key = dir.path().join("first/ca.key");
    let second = run(
        &[
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
        ],
        &dir.path().join("second"),
    );
    assert_eq!(first, second, "same caBundle");
    let leaf = |d: &str| std::fs::read_to_string(dir.path().join(d).join("tls.crt")).unwrap();
    assert_ne!(leaf("first"), leaf("second"), "a new serving certificate");
    probegate::tls::load_pair(
        &dir.path().join("second/tls.crt"),
        &dir.path().join("second/tls.key"),
    )
    .unwrap();
}

#[test]
fn certs_command_rejects_bad_input() {
    for (args, error) in [
        (vec!["--days", "0"], "validity must be 1 to 3650 days"),
        (vec!["--ip", "not-an-ip"], "invalid value 'not-an-ip'"),
        (
            vec!["--dns", "bad name"],
            "is neither a DNS name nor an IP address",
        ),
        (
            vec!["--client", "--dns", "probegate.example"],
            "cannot be used with",
        ),
        (
            vec!["--client", "--days", "0"],
            "validity must be 1 to 3650 days",
        ),
        (
            vec![
                "--client",
                "--ca-cert",
                "missing.crt",
                "--ca-key",
                "missing.key",
            ],
            "cannot read missing.crt",
        ),
        (
            vec![
                "--client",
                "--ca-cert",
                "Cargo.toml",
                "--ca-key",
                "Cargo.toml",
            ],
            "the CA certificate or key cannot be used",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .arg("certs")
            .args(&args)
            .arg("--out")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error), "{args:?}: {stderr}");
        for key in ["tls.key", "client.key"] {
            assert!(
                !dir.path().join(key).exists(),
                "{args:?}: nothing written on error"
            );
        }
    }
}

/// The volume a rendered Deployment's container mounts read-only at `path`.
fn read_only_volume<'a>(origin: &str, deployment: &'a Value, path: &str) -> &'a Value {
    let pod = &deployment["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("{origin}: nothing mounted at {path}"));
    assert_eq!(mount["readOnly"], true, "{origin}: {path}");
    pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("{origin}: no volume for {path}"))
}

/// The `serve` args of a rendered Deployment.
fn serve_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn shipped_serve_args_are_known_flags_and_outlive_the_api_servers_idle_connections() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let manifests = manifests();
    let from_manifests = manifests
        .iter()
        .find(|(_, v)| v["kind"] == "Deployment")
        .map(|(origin, v)| (origin.clone(), v.clone()))
        .unwrap();
    let chart = helm_template(&[]);
    let from_chart = documents("helm template", &chart)
        .into_iter()
        .find(|v| v["kind"] == "Deployment")
        .map(|v| ("helm template".to_owned(), v))
        .unwrap();
    let with_client_auth = [
        (
            "helm template clientAuth",
            helm_template(&["--set", "clientAuth.enabled=true"]),
        ),
        (
            "kustomize client-auth",
            common::kustomize_with_client_auth(),
        ),
    ]
    .map(|(origin, text)| {
        let deployment = documents(origin, &text)
            .into_iter()
            .find(|v| v["kind"] == "Deployment")
            .unwrap();
        (origin.to_owned(), deployment)
    });
    for (origin, deployment) in [from_manifests, from_chart]
        .into_iter()
        .chain(with_client_auth)
    {
        let args = serve_args(&deployment);
        assert_eq!(args[0], "serve", "{origin}");
        for arg in &args[1..] {
            let flag = arg.split('=').next().unwrap();
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{origin}: {flag} is not a flag of serve"
            );
        }
        let idle: u64 = args
            .iter()
            .find_map(|a| a.strip_prefix("--idle-timeout-seconds="))
            .unwrap_or_else(|| panic!("{origin}: --idle-timeout-seconds is set"))
            .parse()
            .unwrap();
        // Go's http.Transport, the API server's webhook client, drops idle connections at 90 s.
        assert!(idle > 90, "{origin}: idle timeout {idle} s");
    }
}

/// kube-score checks left out of the install lint, each with why.
const KUBE_SCORE_IGNORED: [(&str, &str); 1] = [(
    "container-image-pull-policy",
    // Always would make every restart of an admission webhook depend on the registry; the
    // image is pinned to a release tag, and users who mirror it set the policy they need.
    "IfNotPresent: a webhook pod restarting during a registry outage must still start",
)];

/// Every check kube-score grades below OK (10) in `rendered`, as "object: check (grade): why".
fn kube_score_findings(rendered: &str) -> Vec<String> {
    let mut command = Command::new(common::kube_score());
    command.args(["score", "--output-format", "json"]);
    for (check, _why) in KUBE_SCORE_IGNORED {
        command.args(["--ignore-test", check]);
    }
    let mut child = command
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rendered.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    // 1 means it found something critical: an answer, listed below.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "kube-score failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!objects.is_empty(), "kube-score scored nothing");
    let mut findings = Vec::new();
    for object in &objects {
        for check in object["checks"].as_array().into_iter().flatten() {
            let grade = check["grade"].as_i64().unwrap();
            if check["skipped"] != true && grade < 10 {
                findings.push(format!(
                    "{}: {} ({grade}): {}",
                    object["object_name"].as_str().unwrap(),
                    check["check"]["id"].as_str().unwrap(),
                    check["comments"]
                ));
            }
        }
    }
    findings
}

#[test]
fn kube_score_finds_nothing_in_what_users_install() {
    let kustomize = |dir: &Path| {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .expect("kubectl is installed");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let mut renderings = vec![
        (
            "kustomize manifests/".to_owned(),
            kustomize(&root().join("manifests")),
        ),
        (
            "kustomize client-auth".to_owned(),
            common::kustomize_with_client_auth(),
        ),
        (
            "helm template clientAuth".to_owned(),
            helm_template(&["--set", "clientAuth.enabled=true"]),
        ),
        (
            "helm template metrics off".to_owned(),
            helm_template(&["--set", "metrics.enabled=false"]),
        ),
        (
            "helm template monitoring".to_owned(),
            helm_template(&common::MONITORING_ON),
        ),
        (
            "kustomize monitoring".to_owned(),
            common::kustomize_with("monitoring"),
        ),
    ];
    for args in CERT_SOURCES {
        renderings.push((format!("helm template {args:?}"), helm_template(args)));
    }
    for (origin, rendered) in renderings {
        let findings = kube_score_findings(&rendered);
        assert!(findings.is_empty(), "{origin}:\n{}", findings.join("\n"));
    }
}

#[test]
fn kube_score_lint_reports_what_it_finds() {
    // The lint above can fail: a Deployment without resources is graded critical.
    let bare = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bare", "namespace": "x"},
        "spec": {"selector": {"matchLabels": {"app": "bare"}}, "template": {
            "metadata": {"labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "bare", "image": "bare:1"}]}}}}"#;
    let findings = kube_score_findings(bare);
    assert!(
        findings
            .iter()
            .any(|f| f.contains("container-resources (1)")),
        "{findings:#?}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f.contains("container-image-pull-policy")),
        "ignored checks stay ignored: {findings:#?}"
    );
}

/// `probegate audit`'s ClusterRole: read-only, off by default in the chart, outside the
/// kustomization in manifests/, and the same rules in both.
#[test]
fn audit_cluster_role_is_read_only_optional_and_the_same_in_chart_and_manifests() {
    let is_audit_role = |v: &&Value| {
        v["kind"] == "ClusterRole"
            && v["metadata"]["labels"]["app.kubernetes.io/component"] == "audit"
    };
    let default = documents("default", &helm_template(&[]));
    assert!(!default.iter().any(|v| is_audit_role(&v)), "off by default");
    let rendered = documents(
        "audit role on",
        &helm_template(&["--set", "audit.clusterRole.create=true"]),
    );
    let from_chart = rendered
        .iter()
        .find(is_audit_role)
        .expect("rendered when asked");
    check_typed("audit role on", from_chart);
    assert!(
        from_chart["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-audit"),
        "{}",
        from_chart["metadata"]["name"]
    );
    let manifests = manifests();
    let (_, from_manifests) = manifests
        .iter()
        .find(|(origin, v)| origin == "audit-clusterrole.yaml" && is_audit_role(&v))
        .expect("manifests/audit-clusterrole.yaml");
    assert_eq!(from_chart["rules"], from_manifests["rules"]);
    for rule in from_manifests["rules"].as_array().unwrap() {
        for verb in rule["verbs"].as_array().unwrap() {
            assert!(verb == "get" || verb == "list", "read-only: {rule}");
        }
    }
    let kustomization =
        std::fs::read_to_string(root().join("manifests/kustomization.yaml")).unwrap();
    assert!(
        !kustomization.contains("audit-clusterrole.yaml"),
        "the webhook's install does not need it"
    );
}

/// The chart's `catalogue` value: entries become a ConfigMap that serve reads through
/// `--catalogue`, and what the chart writes is a catalogue probegate loads.
#[test]
fn chart_catalogue_entries_reach_serve_as_a_file_it_loads() {
    let flag = "--catalogue=/etc/probegate/catalogue/catalogue.yaml";
    assert!(
        !serve_args(
            documents("default", &helm_template(&[]))
                .iter()
                .find(|v| v["kind"] == "Deployment")
                .unwrap()
        )
        .iter()
        .any(|a| a == flag),
        "off by default"
    );
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "catalogue:\n  entries:\n    - name: payments\n      images: [\"registry.corp/payments/*\"]\n      ports: [{port: 8080, protocol: http}]\n      readiness: {httpGet: {port: http, path: /healthz}}\n      source: https://wiki.corp/payments/probes\n",
    )
    .unwrap();
    let renderings = [
        (
            "entries",
            helm_template(&["-f", values.to_str().unwrap()]),
            "probegate-catalogue",
        ),
        (
            "an existing ConfigMap",
            helm_template(&["--set", "catalogue.configMap=team-catalogue"]),
            "team-catalogue",
        ),
    ];
    for (origin, rendered, config_map) in renderings {
        let objects = documents(origin, &rendered);
        for object in &objects {
            check_typed(origin, object);
        }
        let deployment = objects.iter().find(|v| v["kind"] == "Deployment").unwrap();
        assert_eq!(
            serve_args(deployment).iter().filter(|a| *a == flag).count(),
            1,
            "{origin}"
        );
        let volume = read_only_volume(origin, deployment, "/etc/probegate/catalogue");
        assert_eq!(volume["configMap"]["name"], config_map, "{origin}");
        let shipped = objects
            .iter()
            .find(|v| v["kind"] == "ConfigMap" && v["metadata"]["name"] == config_map);
        if origin == "an existing ConfigMap" {
            assert!(
                shipped.is_none(),
                "the chart does not write the user's ConfigMap"
            );
            continue;
        }
        // What the chart writes is a catalogue the binary loads, with the entry in it.
        let file = dir.path().join("catalogue.yaml");
        std::fs::write(
            &file,
            shipped.unwrap()["data"]["catalogue.yaml"].as_str().unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_probegate"))
            .args([
                "catalogue",
                "--image",
                "registry.corp/payments/ledger:1",
                "--catalogue",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("name:       payments\n"));
    }
}

/// One licence, said the same way everywhere a legal review looks: the LICENSE file,
/// Cargo.toml (which the SBOM and the image's label are made from), the Dockerfile's label
/// and the chart's metadata as Helm reports it.
#[test]
fn the_licence_is_apache_2_0_everywhere_it_is_declared() {
    let spdx = env!("CARGO_PKG_LICENSE");
    assert_eq!(spdx, "Apache-2.0");
    let licence = std::fs::read_to_string(root().join("LICENSE")).unwrap();
    let head: Vec<&str> = licence.lines().take(2).map(str::trim).collect();
    assert_eq!(head, ["Apache License", "Version 2.0, January 2004"]);
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("org.opencontainers.image.licenses=\"{spdx}\"")),
        "the Dockerfile's label"
    );
    let chart: Vec<Value> =
        probegate::yaml::load_all(&common::helm_ok(&["show", "chart", "charts/probegate"]))
            .unwrap();
    assert_eq!(chart[0]["annotations"]["artifacthub.io/license"], spdx);
}
