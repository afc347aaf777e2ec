//! End to end for `probegate audit`: a seeded cluster, what audit finds in it, the same
//! answer as `probegate mutate`, `--check` before and after the fixes, and permissions.
//! The API server runs no kubelet and no controllers, so pods stay as created: their
//! status is seeded through the status subresource, and Events are created with explicit
//! fields, as the kubelet would record them.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use super::{Kubectl, deployment, web};

const NS: &str = "audit";
const OVN: &str = "kube-ovn-controller";
const OVN_POD: &str = "kube-ovn-controller-7d9f5-x2k4p";
const GATE: &str = "target-health.elbv2.k8s.aws/web";

pub(super) fn audit(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_probegate"))
        .arg("audit")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

pub(super) fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn report(kubeconfig: &Path, args: &[&str]) -> Value {
    let out = audit(kubeconfig, args);
    assert!(
        matches!(code(&out), Some(0 | 1)),
        "audit {args:?}: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("audit {args:?}: {e}"))
}

/// (kind, name, container, type) of every finding.
fn rows(report: &Value) -> Vec<(String, String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            (
                s(&f["kind"]),
                s(&f["name"]),
                s(&f["container"]),
                s(&f["type"]),
            )
        })
        .collect()
}

fn row(kind: &str, name: &str, container: &str, finding: &str) -> (String, String, String, String) {
    (kind.into(), name.into(), container.into(), finding.into())
}

fn ago(seconds: i64) -> String {
    before(now(), seconds)
}

/// The clock, in whole seconds: a step that relates times to each other reads it once.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `seconds` before `now`, as RFC 3339 via the date the engine's own dependency prints.
pub(super) fn before(now: i64, seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(now - seconds)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn ovn_container(metrics: &str) -> Value {
    json!({
        "name": OVN, "image": "kubeovn/kube-ovn:v1.12.0",
        "args": [format!("--enable-metrics={metrics}")],
        "readinessProbe": {"tcpSocket": {"port": 10660}},
        "livenessProbe": {"tcpSocket": {"port": 10660}}
    })
}

fn owned_pod(name: &str, app: &str, container: Value, gates: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9f5"),
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
        "spec": {"containers": [container], "readinessGates": gates}
    })
}

fn event(name: &str, reason: &str, message: &str, count: i32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": OVN_POD, "namespace": NS,
            "fieldPath": format!("spec.containers{{{OVN}}}")},
        "reason": reason, "message": message, "type": "Warning", "count": count,
        "firstTimestamp": ago(1200), "lastTimestamp": ago(60),
        "source": {"component": "kubelet", "host": "node-1"}
    })
}

/// Writes a pod's status through the status subresource, as the kubelet would.
pub(super) fn set_status(kubectl: &Kubectl, namespace: &str, pod: &str, status: Value) {
    kubectl.ok(
        &[
            "patch",
            "pod",
            "-n",
            namespace,
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({"status": status}).to_string(),
        ],
        None,
    );
}

/// A workload created before probegate (the namespace is not labelled, so the webhook
/// leaves what is created here as it is), the hazards running in it, then the fixes.
pub fn step_audit_finds_hazards_then_passes_once_fixed(kubectl: &Kubectl, workdir: &Path) {
    let kubeconfig = kubectl.kubeconfig.as_path();
    let seed = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": OVN, "namespace": NS},
         "spec": {"selector": {"app": OVN}, "ports": [{"name": "metrics", "port": 10660, "targetPort": 10660}]}},
        deployment(NS, OVN, json!({}), ovn_container("false")),
        deployment(NS, "web", json!({}), web("web")),
        owned_pod(OVN_POD, OVN, ovn_container("false"), json!([])),
        owned_pod("web-7d9f5-gated", "web", web("web"), json!([{"conditionType": GATE}])),
        event("ovn.liveness-failed", "Unhealthy", "Liveness probe failed: dial tcp 10.0.0.7:10660: connect: connection refused", 6),
        event("ovn.killing", "Killing", &format!("Container {OVN} failed liveness probe, will be restarted"), 2),
    ]});
    kubectl.ok(&["create", "-f", "-"], Some(&seed.to_string()));
    let image = |name: &str, ready: bool, restarts: i32| {
        json!({"name": name, "image": "example.com/x:1", "imageID": "", "ready": ready, "restartCount": restarts,
               "state": {"running": {"startedAt": ago(300)}}})
    };
    set_status(
        kubectl,
        NS,
        OVN_POD,
        json!({"phase": "Running",
        "conditions": [{"type": "ContainersReady", "status": "False", "lastTransitionTime": ago(3600)}],
        "containerStatuses": [image(OVN, false, 2)]}),
    );
    // Ready containers for an hour, and the load balancer's gate never set.
    set_status(
        kubectl,
        NS,
        "web-7d9f5-gated",
        json!({"phase": "Running",
        "conditions": [{"type": "ContainersReady", "status": "True", "lastTransitionTime": ago(3600)}],
        "containerStatuses": [image("web", true, 0)]}),
    );

    // Every hazard found, with --check failing.
    let out = audit(kubeconfig, &["-n", NS, "-o", "json", "--check"]);
    assert_eq!(
        code(&out),
        Some(1),
        "audit step: --check with findings: {}",
        text(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = rows(&found);
    for expected in [
        row("Deployment", OVN, OVN, "warning"),
        row("Deployment", "web", "web", "probes-would-be-added"),
        row("Pod", OVN_POD, OVN, "metrics-coupled-probe"),
        row("Pod", OVN_POD, OVN, "liveness-restarts"),
        row("Pod", "web-7d9f5-gated", "-", "stuck-readiness-gate"),
    ] {
        assert!(
            got.contains(&expected),
            "audit step: {expected:?} not in {got:#?}"
        );
    }
    assert!(
        !got.iter().any(|(kind, name, _, t)| kind == "Pod"
            && name == "web-7d9f5-gated"
            && t != "stuck-readiness-gate"),
        "audit step: a controller-owned pod is judged through its controller only: {got:#?}"
    );
    let restarts = found["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "liveness-restarts")
        .unwrap();
    assert!(
        restarts["title"]
            .as_str()
            .unwrap()
            .starts_with("restarted 2 time(s)"),
        "{restarts}"
    );
    assert_eq!(found["namespaces"], json!([NS]));

    // Same engine, same answers: mutate on the live manifests says what audit says.
    let mut live: Value = serde_json::from_str(&kubectl.ok(
        &[
            "get",
            "namespace,service,deployment",
            "-n",
            NS,
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    // The Namespace as its own document: `get -n` lists it only cluster-wide.
    let namespace: Value =
        serde_json::from_str(&kubectl.ok(&["get", "namespace", NS, "-o", "json"], None)).unwrap();
    live["items"].as_array_mut().unwrap().push(namespace);
    let mutate = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["mutate", "-f", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut mutate = mutate;
        mutate
            .stdin
            .take()
            .unwrap()
            .write_all(live.to_string().as_bytes())
            .unwrap();
        let out = mutate.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        let mutated: Value = serde_json::from_slice(&out.stdout).unwrap();
        for item in mutated["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "Deployment")
        {
            let name = item["metadata"]["name"].as_str().unwrap();
            let subject = format!(": Deployment {NS}/{name}: ");
            let mut from_mutate: Vec<String> = stderr
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("Warning: ")
                        .and_then(|l| l.split_once(&subject))
                        .map(|(_, m)| m.to_owned())
                })
                .collect();
            let of_this = |f: &&Value| f["kind"] == "Deployment" && f["name"] == name;
            let mut from_audit: Vec<String> = found["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(of_this)
                .filter(|f| f["type"] == "warning")
                .map(|f| f["message"].as_str().unwrap().to_owned())
                .collect();
            from_mutate.sort();
            from_audit.sort();
            assert_eq!(from_audit, from_mutate, "audit step: warnings of {name}");
            let record =
                item["spec"]["template"]["metadata"]["annotations"]["probegate.io/injected"]
                    .as_str();
            let audit_record = found["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(of_this)
                .flat_map(|f| f["evidence"].as_array().unwrap())
                .find_map(|e| e.as_str().unwrap().strip_prefix("probegate.io/injected: "));
            assert_eq!(
                audit_record, record,
                "audit step: what would be added to {name}"
            );
        }
        assert!(
            stderr.contains(&format!("Deployment {NS}/{OVN}")),
            "mutate warned: {stderr}"
        );
    }

    // The table: one row per finding, and the summary.
    let out = audit(kubeconfig, &["-n", NS]);
    assert_eq!(
        code(&out),
        Some(0),
        "without --check findings do not fail: {}",
        text(&out.stderr)
    );
    let table = text(&out.stdout);
    eprintln!("audit step: the table:\n{table}");
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(NS) && l.contains("Deployment/web") && l.contains("would add")),
        "{table}"
    );
    assert!(
        table
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("{} finding(s)", got.len())),
        "{table}"
    );
    // Each finding and what to do in a few words, to fit a terminal; `-o wide` adds the
    // whole explanation and what to do, as the JSON has them.
    for line in table.lines() {
        assert!(
            line.chars().count() <= 160,
            "audit step: a row wider than 160 columns: {line}"
        );
    }
    let out = audit(kubeconfig, &["-n", NS, "-o", "wide"]);
    assert_eq!(code(&out), Some(0), "-o wide: {}", text(&out.stderr));
    let wide = text(&out.stdout);
    eprintln!("audit step: -o wide:\n{wide}");
    for finding in found["findings"].as_array().unwrap() {
        let (message, action) = (
            finding["message"].as_str().unwrap(),
            finding["action"].as_str().unwrap(),
        );
        assert!(
            table.lines().all(|l| !l.contains(message)),
            "audit step: the default table leaves {message:?} to -o wide"
        );
        assert!(
            wide.lines()
                .any(|l| l.ends_with(message) && (action == message || l.contains(action))),
            "audit step: -o wide carries {message:?} and {action:?}:\n{wide}"
        );
    }
    // YAML carries the same report.
    let out = audit(kubeconfig, &["-n", NS, "-o", "yaml"]);
    let yaml = probegate::yaml::load_all(&text(&out.stdout)).unwrap();
    assert_eq!(rows(&yaml[0]), got, "audit step: yaml and json agree");

    // The flags reach the rules: a longer --stuck-after, and cluster-wide defaults.
    let longer = rows(&report(
        kubeconfig,
        &["-n", NS, "-o", "json", "--stuck-after", "2h"],
    ));
    assert!(
        !longer.iter().any(|r| r.3 == "stuck-readiness-gate"),
        "--stuck-after 2h: {longer:#?}"
    );
    let coupling_off = rows(&report(
        kubeconfig,
        &[
            "-n",
            NS,
            "-o",
            "json",
            "--namespace-annotation",
            "probegate.io/metrics-coupling=off",
        ],
    ));
    assert!(
        !coupling_off
            .iter()
            .any(|r| r.3 == "metrics-coupled-probe" || (r.1 == OVN && r.3 == "warning")),
        "--namespace-annotation metrics-coupling=off: {coupling_off:#?}"
    );
    let everywhere = report(kubeconfig, &["-A", "-o", "json"]);
    assert_eq!(everywhere["namespaces"], json!(["*"]));
    let everywhere = rows(&everywhere);
    assert!(
        got.iter().all(|r| everywhere.contains(r)),
        "-A finds what -n finds"
    );

    // The fixes: metrics on, probes of its own, the stale pod replaced, the gate set.
    kubectl.ok(&["delete", "deployment", "-n", NS, OVN, "web"], None);
    kubectl.ok(&["delete", "pod", "-n", NS, OVN_POD], None);
    let mut fixed_web = web("web");
    fixed_web["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": "http"}});
    fixed_web["livenessProbe"] = json!({"httpGet": {"path": "/live", "port": "http"}});
    fixed_web["startupProbe"] =
        json!({"httpGet": {"path": "/live", "port": "http"}, "failureThreshold": 30});
    let fixed = json!({"apiVersion": "v1", "kind": "List", "items": [
        deployment(NS, OVN, json!({}), ovn_container("true")),
        deployment(NS, "web", json!({}), fixed_web),
    ]});
    kubectl.ok(&["create", "-f", "-"], Some(&fixed.to_string()));
    set_status(
        kubectl,
        NS,
        "web-7d9f5-gated",
        json!({"conditions": [
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": ago(3600)},
        {"type": GATE, "status": "True", "lastTransitionTime": ago(30)}]}),
    );
    let out = audit(kubeconfig, &["-n", NS, "--check"]);
    assert_eq!(
        code(&out),
        Some(0),
        "audit step: clean after the fixes: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).starts_with("0 finding(s)"),
        "{}",
        text(&out.stdout)
    );

    step_audit_runs_with_a_users_own_permissions(kubectl, workdir);
    step_audit_reads_every_page(kubectl);
}

/// More Deployments than one page holds: every one is judged, so `continue` is followed.
fn step_audit_reads_every_page(kubectl: &Kubectl) {
    let ns = "audit-pages";
    let count = probegate::audit::list::PAGE_SIZE as usize + 1;
    let mut items =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})];
    items.extend((0..count).map(|i| deployment(ns, &format!("app-{i}"), json!({}), web("web"))));
    kubectl.ok(
        &["create", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()),
    );
    let found = report(&kubectl.kubeconfig, &["-n", ns, "-o", "json"]);
    assert_eq!(
        found["summary"]["workloads"], count,
        "audit step: every page read"
    );
    assert_eq!(
        found["summary"]["findings"], count,
        "audit step: one finding each"
    );
    kubectl.ok(&["delete", "namespace", ns, "--wait=false"], None);
}

/// The read-only ClusterRole bound in one namespace is all a namespace-scoped audit needs;
/// a user lacking one list permission gets exit 2 and a message naming it.
fn step_audit_runs_with_a_users_own_permissions(kubectl: &Kubectl, workdir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    kubectl.ok(
        &[
            "apply",
            "-f",
            root.join("manifests/audit-clusterrole.yaml")
                .to_str()
                .unwrap(),
        ],
        None,
    );
    let role: Value = serde_json::from_str(&kubectl.ok(
        &["get", "clusterrole", "probegate-audit", "-o", "json"],
        None,
    ))
    .unwrap();
    let without_events: Vec<Value> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let mut rule = rule.clone();
            rule["resources"] = json!(
                rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| *r != "events")
                    .collect::<Vec<_>>()
            );
            rule
        })
        .collect();
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "auditor", "namespace": NS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "probegate-audit"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "auditor"}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "no-events", "namespace": NS}, "rules": without_events},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "no-events", "namespace": NS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-events"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "no-events"}]},
    ]});
    kubectl.ok(&["apply", "-f", "-"], Some(&rbac.to_string()));

    // The admin's kubeconfig with two more contexts impersonating those users.
    let mut config: Value =
        serde_json::from_str(&kubectl.ok(&["config", "view", "--raw", "-o", "json"], None))
            .unwrap();
    let admin = config["users"][0].clone();
    let cluster = config["contexts"][0]["context"]["cluster"].clone();
    for user in ["auditor", "no-events"] {
        let mut entry = admin.clone();
        entry["name"] = json!(user);
        entry["user"]["as"] = json!(user);
        config["users"].as_array_mut().unwrap().push(entry);
        config["contexts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": user, "context": {"cluster": cluster, "user": user}}));
    }
    let mut stranger = admin.clone();
    stranger["name"] = json!("stranger");
    stranger["user"] = json!({"token": "not-a-token-the-server-knows"});
    config["users"].as_array_mut().unwrap().push(stranger);
    config["contexts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "stranger", "context": {"cluster": cluster, "user": "stranger"}}));
    let impersonating = workdir.join("audit-kubeconfig.json");
    std::fs::write(&impersonating, config.to_string()).unwrap();

    let out = audit(
        &impersonating,
        &["--context", "auditor", "-n", NS, "--check"],
    );
    assert_eq!(
        code(&out),
        Some(0),
        "audit step: the ClusterRole suffices: {}",
        text(&out.stderr)
    );
    let out = audit(&impersonating, &["--context", "auditor", "-A"]);
    let stderr = text(&out.stderr);
    assert_eq!(
        code(&out),
        Some(2),
        "audit step: -A needs cluster-wide reads: {stderr}"
    );
    assert!(
        stderr.contains("missing permission to list namespaces cluster-wide"),
        "{stderr}"
    );
    let out = audit(
        &impersonating,
        &["--context", "no-events", "-n", NS, "--check"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(
        code(&out),
        Some(2),
        "audit step: a missing permission: {stderr}"
    );
    assert!(
        stderr.contains("missing permission to list events in namespace \"audit\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no report from a partial read");

    let out = audit(&impersonating, &["--context", "stranger", "-n", NS]);
    let stderr = text(&out.stderr);
    assert_eq!(
        code(&out),
        Some(2),
        "audit step: unknown credentials: {stderr}"
    );
    assert!(
        stderr.contains("unauthorized: the API server does not accept these credentials"),
        "{stderr}"
    );
    let out = audit(kubectl.kubeconfig.as_path(), &["-n", "no-such-namespace"]);
    let stderr = text(&out.stderr);
    assert_eq!(
        code(&out),
        Some(2),
        "audit step: a missing namespace: {stderr}"
    );
    assert!(
        stderr.contains("namespace \"no-such-namespace\" not found"),
        "{stderr}"
    );
}
