//! The monitoring that the chart and manifests/monitoring ship: probegate's alert rules and
//! its Grafana dashboard. Every rule passes the real `promtool check rules` and fires when
//! it should (`promtool test rules`, tests/monitoring/alerts.test.yaml); every query names
//! only series that exist (probegate's, read from the real binary's /metrics after traffic,
//! the API server's, or Prometheus's own `up`); and manifests/monitoring holds the chart's
//! rules and dashboard, unchanged.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{MONITORING_ON, documents, get, helm_template, review};
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_monitoring() -> Vec<Value> {
    documents("helm template monitoring", &helm_template(&MONITORING_ON))
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The dashboard inside the ConfigMap Grafana's sidecar loads.
fn dashboard_of(objects: &[Value]) -> Value {
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["data"]["probegate.json"].is_string())
        .expect("a dashboard ConfigMap");
    serde_json::from_str(config_map["data"]["probegate.json"].as_str().unwrap()).unwrap()
}

/// Every PromQL expression: each alert's and each dashboard panel's, named for messages.
fn queries(objects: &[Value]) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for group in find(objects, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .unwrap()
    {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap().to_owned();
            queries.push((format!("alert {}", rule["alert"]), expr));
        }
    }
    for panel in dashboard_of(objects)["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().to_owned();
            queries.push((format!("panel {}", panel["title"]), expr));
        }
    }
    queries
}

const COMPONENT: &str = "manifests/monitoring";

/// manifests/monitoring/prometheusrule.yaml as it must read: the chart's PrometheusRule at
/// its defaults, its spec as `helm template` writes it, under the manifests' metadata.
fn component_rule_file(rendered: &str) -> String {
    let document = rendered
        .split("\n---")
        .find(|d| d.contains("\nkind: PrometheusRule\n"))
        .expect("helm renders a PrometheusRule");
    let spec = &document[document.find("\nspec:\n").expect("a spec") + 1..];
    format!(
        "# Generated from charts/probegate/files/rules.yaml at the chart's defaults: do not edit;\n\
         # change the chart and run `PROBEGATE_BLESS=1 cargo test --test monitoring`.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: probegate\n  namespace: probegate\n  labels:\n    \
         app.kubernetes.io/name: probegate\n    app.kubernetes.io/part-of: probegate\n{}\n",
        spec.trim_end()
    )
}

/// `PROBEGATE_BLESS=1` rewrites `path` to `expected`; otherwise they must be the same.
fn assert_file(path: &Path, expected: &str) {
    if std::env::var_os("PROBEGATE_BLESS").is_some() {
        std::fs::write(path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} differs from what the chart renders; run PROBEGATE_BLESS=1 cargo test --test monitoring",
        path.display()
    );
}

#[test]
fn the_component_holds_the_charts_rules_and_dashboard() {
    let rendered = helm_template(&["--set", "prometheusRule.enabled=true"]);
    assert_file(
        &root().join(COMPONENT).join("prometheusrule.yaml"),
        &component_rule_file(&rendered),
    );
    let chart_dashboard =
        std::fs::read_to_string(root().join("charts/probegate/files/dashboard.json")).unwrap();
    assert_file(
        &root().join(COMPONENT).join("probegate.json"),
        &chart_dashboard,
    );

    // And what each installs says the same.
    let chart = chart_monitoring();
    let component = documents(
        "kustomize monitoring",
        &common::kustomize_with("monitoring"),
    );
    assert_eq!(
        find(&component, "PrometheusRule")["spec"],
        find(&chart, "PrometheusRule")["spec"]
    );
    assert_eq!(dashboard_of(&component), dashboard_of(&chart));
}

/// The rule groups of each rendering users install: the chart at its defaults and with
/// other values, and the component.
fn rule_renderings() -> Vec<(&'static str, Value)> {
    let with_values = helm_template(&[
        "--set",
        "prometheusRule.enabled=true",
        // --set reads 1.5 as a string; the schema wants a number.
        "--set-json",
        "prometheusRule.latency.p99Seconds=1.5",
        "--set",
        "prometheusRule.cacheStale.seconds=3600",
        "--set",
        "prometheusRule.additionalAlertLabels.team=platform",
    ]);
    [
        ("chart", helm_template(&MONITORING_ON)),
        ("chart with values", with_values),
        ("component", common::kustomize_with("monitoring")),
    ]
    .into_iter()
    .map(|(origin, text)| {
        let objects = documents(origin, &text);
        (origin, find(&objects, "PrometheusRule")["spec"].clone())
    })
    .collect()
}

#[test]
fn promtool_checks_every_rendering_of_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    for (origin, spec) in rule_renderings() {
        // A PrometheusRule's spec is a rule file; JSON is YAML to promtool.
        let file = dir
            .path()
            .join(format!("{}.json", origin.replace(' ', "-")));
        std::fs::write(&file, spec.to_string()).unwrap();
        // --lint=all --lint-fatal: duplicate rules are an error too (promtool check rules --help).
        let out = Command::new(common::promtool())
            .args(["check", "rules", "--lint=all", "--lint-fatal"])
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("SUCCESS: 5 rules found"),
            "{origin}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn promtool_unit_tests_fire_each_alert_when_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let (_, spec) = rule_renderings().remove(0);
    std::fs::write(dir.path().join("rules.json"), spec.to_string()).unwrap();
    let tests = dir.path().join("alerts.test.yaml");
    std::fs::copy(root().join("tests/monitoring/alerts.test.yaml"), &tests).unwrap();
    let out = Command::new(common::promtool())
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metric name -> label name -> values seen.
type Exposition = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Reads the Prometheus text exposition's samples into `into`.
fn read_exposition(text: &str, into: &mut Exposition) {
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap();
        let labels = into.entry(line[..name_end].to_owned()).or_default();
        let Some(rest) = line[name_end..].strip_prefix('{') else {
            continue;
        };
        // name="value",... with values quoted; probegate's hold no quotes or commas.
        let body = &rest[..rest.rfind('}').unwrap()];
        for pair in body.split(',').filter(|p| !p.is_empty()) {
            let (label, value) = pair.split_once('=').unwrap();
            labels
                .entry(label.to_owned())
                .or_default()
                .insert(value.trim_matches('"').to_owned());
        }
    }
}

/// `probegate serve` with the serving pair in `dir`, metrics on, and `args` and `env`,
/// until dropped.
struct Binary {
    child: std::process::Child,
    addresses: common::startup_log::Addresses,
}

impl Binary {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Binary {
        let mut command = common::serve_command(dir);
        command.args(["--metrics-addr", "127.0.0.1:0"]).args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let (addresses, _reader) = common::startup_log::read_addresses(
            child.stderr.take().unwrap(),
            Duration::from_secs(30),
            |_, _| {},
        );
        Binary { child, addresses }
    }

    async fn metrics(&self) -> String {
        String::from_utf8(get(self.addresses.metrics.unwrap(), "/metrics").await.body).unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What probegate exports: the real binary's /metrics, standalone after reviews of each
/// outcome with a client CA, and in cluster mode (the caches' ages) with its API server
/// unreachable, as during an outage.
async fn probegate_exposition() -> Exposition {
    let dir = tempfile::tempdir().unwrap();
    let serving = common::bundle();
    serving.write(dir.path()).unwrap();
    let client = probegate::certs::generate_client(1).unwrap();
    let client_ca = dir.path().join("client-ca.crt");
    std::fs::write(&client_ca, &client.ca_pem).unwrap();
    let standalone = Binary::start(
        dir.path(),
        &[
            "--standalone",
            "--client-ca-file",
            client_ca.to_str().unwrap(),
        ],
        &[],
    );
    let reviewer = common::TlsClient::with_client_cert(
        &serving.ca_pem,
        standalone.addresses.webhook,
        &client.cert_pem,
        &client.key_pem,
    );
    let web = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}]}});
    let unfit = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": "web"}});
    // Metrics switched off in its arguments while a port is named metrics: a warning.
    let coupled = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ovn", "namespace": "default"},
        "spec": {"containers": [{"name": "controller", "image": "kube-ovn:v1.12", "args": ["--enable-metrics=false"],
            "ports": [{"name": "metrics", "containerPort": 10660}]}]}});
    let deadline = Instant::now() + Duration::from_secs(30);
    for object in [web, unfit, coupled] {
        loop {
            // The listener is up once its address is logged; TLS may take a moment more.
            match reviewer.try_review(&review(object.clone(), false)).await {
                Ok(reply) => {
                    assert_eq!(reply.status, 200);
                    break;
                }
                Err(error) => assert!(Instant::now() < deadline, "review: {error}"),
            }
            tokio::task::yield_now().await;
        }
    }
    let mut exposition = Exposition::new();
    read_exposition(&standalone.metrics().await, &mut exposition);

    // Cluster mode against an API server that is not there: nothing listens on the port.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    let cluster = Binary::start(dir.path(), &[], &[("KUBECONFIG", &kubeconfig)]);
    read_exposition(&cluster.metrics().await, &mut exposition);
    exposition
}

/// The API server's metrics the queries read, with all their labels: the Kubernetes metrics
/// reference (kubernetes/website, content/en/docs/reference/instrumentation/metrics.md) and
/// k8s.io/apiserver v0.37.0 (pkg/admission/metrics/metrics.go: webhook_fail_open_count
/// {name, type}; pkg/endpoints/metrics/metrics.go: request_total).
const API_SERVER_METRICS: [(&str, &[&str]); 2] = [
    (
        "apiserver_admission_webhook_fail_open_count",
        &["name", "type"],
    ),
    (
        "apiserver_request_total",
        &[
            "verb",
            "dry_run",
            "group",
            "version",
            "resource",
            "subresource",
            "scope",
            "component",
            "code",
        ],
    ),
];

/// Every selector in `expr`, and each aggregation's `by` labels with the selectors beneath.
fn walk<'a>(
    expr: &'a Expr,
    selectors: &mut Vec<&'a VectorSelector>,
    groupings: &mut Vec<(Vec<String>, Vec<&'a VectorSelector>)>,
) {
    match expr {
        Expr::VectorSelector(selector) => selectors.push(selector),
        Expr::MatrixSelector(matrix) => selectors.push(&matrix.vs),
        Expr::Aggregate(aggregate) => {
            let mut beneath = Vec::new();
            walk(&aggregate.expr, &mut beneath, groupings);
            if let Some(modifier) = aggregate.modifier.as_ref().filter(|m| m.is_include()) {
                groupings.push((modifier.labels().labels.clone(), beneath.clone()));
            }
            selectors.extend(beneath);
        }
        Expr::Binary(binary) => {
            walk(&binary.lhs, selectors, groupings);
            walk(&binary.rhs, selectors, groupings);
        }
        Expr::Unary(unary) => walk(&unary.expr, selectors, groupings),
        Expr::Paren(paren) => walk(&paren.expr, selectors, groupings),
        Expr::Subquery(subquery) => walk(&subquery.expr, selectors, groupings),
        Expr::Call(call) => {
            for arg in &call.args.args {
                walk(arg, selectors, groupings);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[tokio::test]
async fn every_query_names_only_series_that_exist() {
    let probegate = probegate_exposition().await;
    for required in [
        "probegate_admission_review_duration_seconds_bucket",
        "probegate_cache_age_seconds",
        "probegate_certificate_expiry_timestamp_seconds",
    ] {
        assert!(probegate.contains_key(required), "{required} not exposed");
    }
    let mut known = probegate.clone();
    for (name, labels) in API_SERVER_METRICS {
        let entry = known.entry(name.to_owned()).or_default();
        for label in labels {
            entry.entry(label.to_string()).or_default();
        }
    }
    // Prometheus adds `up` for every target it scrapes (with the target's job and instance).
    known.entry("up".to_owned()).or_default();

    let objects = chart_monitoring();
    let webhook = find(&objects, "MutatingWebhookConfiguration")["webhooks"][0]["name"].clone();
    let queries = queries(&objects);
    assert!(queries.len() >= 12, "{queries:?}");
    for (origin, query) in queries {
        let expr = parser::parse(&query).unwrap_or_else(|e| panic!("{origin}: {e}: {query}"));
        let (mut selectors, mut groupings) = (Vec::new(), Vec::new());
        walk(&expr, &mut selectors, &mut groupings);
        assert!(!selectors.is_empty(), "{origin}: reads no series");
        for selector in selectors {
            let name = selector.name.as_deref().unwrap_or_default();
            let labels = known.get(name).unwrap_or_else(|| {
                panic!(
                    "{origin}: {name} is no series probegate, the API server or Prometheus exports"
                )
            });
            for matcher in &selector.matchers.matchers {
                let seen = labels
                    .get(&matcher.name)
                    .unwrap_or_else(|| panic!("{origin}: {name} has no label {}", matcher.name));
                if matches!(matcher.op, MatchOp::Equal) && probegate.contains_key(name) {
                    assert!(
                        seen.contains(&matcher.value),
                        "{origin}: {name}{{{}=\"{}\"}} never seen (seen: {seen:?})",
                        matcher.name,
                        matcher.value
                    );
                }
                if name == "apiserver_admission_webhook_fail_open_count" {
                    // The webhook's own name; a mutating webhook's type is "admit"
                    // (k8s.io/apiserver pkg/admission/plugin/webhook/mutating/dispatcher.go).
                    let expected = match matcher.name.as_str() {
                        "name" => webhook.as_str().unwrap(),
                        _ => "admit",
                    };
                    assert_eq!(matcher.value, expected, "{origin}: {}", matcher.name);
                }
            }
        }
        for (by, beneath) in groupings {
            for label in by {
                assert!(
                    beneath
                        .iter()
                        .any(|s| known[s.name.as_deref().unwrap_or_default()].contains_key(&label)),
                    "{origin}: grouped by {label}, a label none of its series has"
                );
            }
        }
    }
}
