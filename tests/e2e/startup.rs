//! End to end for the start-up measurement of `probegate audit`: a seeded namespace whose
//! pods' statuses and kubelet Events show how long each workload takes to start, what
//! `audit` makes of it, `--suggest`'s patches applied with the real `kubectl`, and the
//! next pod's startup probe sized by the webhook from the suggested annotation.
//! As in `audit.rs`, no kubelet runs: statuses go through the status subresource.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::audit::{audit, before, code, now, report, set_status, text};
use super::{Kubectl, deployment, eventually, namespace, web};

const NS: &str = "startup";

/// A ReplicaSet of `deployment`'s, as the Deployment controller would have made it (no
/// controller runs here), so pods trace back to the Deployment.
fn replica_set(deployment: &Value, uid: &str) -> Value {
    let name = deployment["metadata"]["name"].as_str().unwrap();
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{name}-6b7c"), "namespace": NS,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": uid, "controller": true}]},
        "spec": deployment["spec"].clone()})
}

/// A pod of `deployment`'s ReplicaSet, with `spec` as the webhook admitted it.
fn pod(deployment: &str, index: usize, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{deployment}-6b7c-{index}"), "namespace": NS,
            "labels": {"app": deployment},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{deployment}-6b7c"),
                "uid": "00000000-0000-0000-0000-000000000002", "controller": true}]},
        "spec": spec})
}

/// Running since `started` seconds ago, the containers ready `took` seconds later; with
/// `last`, a previous run from `last.0` to `last.1` seconds ago.
fn status(
    now: i64,
    container: &str,
    started: i64,
    took: Option<i64>,
    last: Option<(i64, i64)>,
) -> Value {
    let ago = |seconds| before(now, seconds);
    let mut state = json!({"name": container, "image": "example.com/x:1", "imageID": "",
        "ready": took.is_some(), "restartCount": i32::from(last.is_some()),
        "state": {"running": {"startedAt": ago(started)}}});
    if let Some((from, to)) = last {
        state["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "Error",
            "startedAt": ago(from), "finishedAt": ago(to)}});
    }
    let ready = match took {
        Some(took) => {
            json!({"type": "ContainersReady", "status": "True", "lastTransitionTime": ago(started - took)})
        }
        None => {
            json!({"type": "ContainersReady", "status": "False", "lastTransitionTime": ago(started)})
        }
    };
    json!({"phase": "Running", "conditions": [ready], "containerStatuses": [state]})
}

fn kill_event(
    now: i64,
    pod: &str,
    container: &str,
    probe: &str,
    seconds_ago: i64,
    count: i32,
) -> Value {
    let ago = |seconds| before(now, seconds);
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{pod}.killing"), "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": NS,
            "fieldPath": format!("spec.containers{{{container}}}")},
        "reason": "Killing", "type": "Normal", "count": count,
        "message": format!("Container {container} failed {probe} probe, will be restarted"),
        "firstTimestamp": ago(seconds_ago + 600), "lastTimestamp": ago(seconds_ago),
        "source": {"component": "kubelet", "host": "node-1"}})
}

fn finding<'a>(report: &'a Value, name: &str, finding_type: &str) -> Option<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name && f["type"] == finding_type)
}

fn measurement<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["startups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("startup step: no measurement of {name}: {report:#}"))
}

/// A fast web app, a JVM-like service whose own liveness probe allows less than it takes
/// to start, and a service killed during start-up by the webhook's startup probe: what
/// `audit` measures and finds, and the suggested changes taking effect.
pub fn step_audit_measures_startups_and_suggests_budgets(kubectl: &Kubectl) {
    let kubeconfig = kubectl.kubeconfig.as_path();
    // Every time below is relative to this one reading of the clock.
    let now = now();
    // The namespace lowers the start-up budget the webhook gives; the ledger service asks
    // for startup probes (its liveness check would repeat readiness, so it gets none).
    let ns = namespace(NS, false, json!({"probegate.io/startup-seconds": "90"}));
    let mut storefront_container = web("app");
    storefront_container["readinessProbe"] = json!({"tcpSocket": {"port": "http"}});
    storefront_container["livenessProbe"] =
        json!({"httpGet": {"path": "/healthz", "port": "http"}});
    let web_app = deployment(NS, "storefront", json!({}), storefront_container);
    let orders_container = json!({"name": "app", "image": "example.com/orders:1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 5}});
    let orders = deployment(NS, "orders", json!({}), orders_container.clone());
    let mut ledger = deployment(NS, "ledger", json!({}), web("app"));
    ledger["spec"]["template"]["metadata"]["annotations"] = json!({"probegate.io/probes": "liveness,readiness,startup", "probegate.io/startup-seconds": "60"});
    kubectl.ok(
        &["create", "-f", "-"],
        Some(
            &json!({"apiVersion": "v1", "kind": "List",
        "items": [ns, web_app.clone(), orders.clone(), ledger.clone()]})
            .to_string(),
        ),
    );

    let uid = |name: &str| {
        kubectl.ok(
            &[
                "get",
                "deployment",
                "-n",
                NS,
                name,
                "-o",
                "jsonpath={.metadata.uid}",
            ],
            None,
        )
    };
    // The pods as the webhook would have admitted them: the ledger's with the startup
    // probe its annotations ask for (60 s: 6 tries of 10 s).
    let ledger_spec = json!({"containers": [{"name": "app", "image": "example.com/web:1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 6}}]});
    let mut items = vec![];
    for d in [&web_app, &orders, &ledger] {
        items.push(replica_set(
            d,
            &uid(d["metadata"]["name"].as_str().unwrap()),
        ));
    }
    for i in 0..2 {
        items.push(pod(
            "storefront",
            i,
            web_app["spec"]["template"]["spec"].clone(),
        ));
    }
    for i in 0..3 {
        items.push(pod(
            "orders",
            i,
            json!({"containers": [orders_container.clone()]}),
        ));
    }
    items.push(pod("ledger", 0, ledger_spec.clone()));
    items.push(pod("ledger", 1, ledger_spec));
    // The ledger's first pod: killed by its startup probe 61 s into its first run. The
    // orders' third: killed by its liveness probe 36 s into its last run, its 35 s budget.
    items.push(kill_event(now, "ledger-6b7c-0", "app", "startup", 240, 1));
    items.push(kill_event(now, "orders-6b7c-2", "app", "liveness", 364, 3));
    kubectl.ok(
        &["create", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()),
    );
    for (pod, started, took) in [("storefront-6b7c-0", 900, 2), ("storefront-6b7c-1", 800, 3)] {
        set_status(
            kubectl,
            NS,
            pod,
            status(now, "app", started, Some(took), None),
        );
    }
    // Two of the orders' pods started in time on a quiet node; the third is still trying.
    for (i, took) in [40, 44].into_iter().enumerate() {
        set_status(
            kubectl,
            NS,
            &format!("orders-6b7c-{i}"),
            status(now, "app", 1200, Some(took), None),
        );
    }
    set_status(
        kubectl,
        NS,
        "orders-6b7c-2",
        status(now, "app", 350, None, Some((400, 362))),
    );
    set_status(
        kubectl,
        NS,
        "ledger-6b7c-0",
        status(now, "app", 239, Some(55), Some((301, 238))),
    );
    set_status(
        kubectl,
        NS,
        "ledger-6b7c-1",
        status(now, "app", 500, Some(52), None),
    );

    let found = report(kubeconfig, &["-n", NS, "-o", "json"]);
    // The fast app: measured, nothing found.
    let storefront = measurement(&found, "storefront");
    assert_eq!(
        (&storefront["starts"], &storefront["maxSeconds"]),
        (&json!(2), &json!(3)),
        "startup step: {storefront:#}"
    );
    for t in ["startup-budget-too-short", "startup-budget-suggested"] {
        assert!(
            finding(&found, "storefront", t).is_none(),
            "startup step: storefront {t}: {found:#}"
        );
    }
    // The JVM-like service: its own liveness probe allows 35 s; starts of 40 and 44 s
    // passed it, one run was killed after 36 s and needs at least one more try (46 s).
    let m = measurement(&found, "orders");
    assert_eq!(
        [
            &m["starts"],
            &m["medianSeconds"],
            &m["maxSeconds"],
            &m["killedDuringStartup"],
            &m["notMeasured"],
            &m["allowedSeconds"],
            &m["allowedBy"],
            &m["probesFrom"],
            &m["suggestedSeconds"],
        ],
        [
            &json!(2),
            &json!(40),
            &json!(44),
            &json!(1),
            &json!({"not ready": 1}),
            &json!(35),
            &json!("livenessProbe"),
            &json!("workload"),
            &json!(90),
        ],
        "startup step: {m:#}"
    );
    let short = finding(&found, "orders", "startup-budget-too-short")
        .unwrap_or_else(|| panic!("startup step: orders too short: {found:#}"));
    assert_eq!(short["kind"], "Deployment");
    assert_eq!(short["container"], "app");
    let message = short["message"].as_str().unwrap();
    assert!(
        message.contains("killed during start-up")
            && message.contains("more than 46s")
            && message.contains("allows 35s")
            && message.contains("orders-6b7c-2"),
        "startup step: {message}"
    );
    assert!(
        finding(&found, "orders", "startup-budget-suggested").is_some(),
        "startup step: {found:#}"
    );
    // The ledger: killed during start-up after 61 s (so more than 71 s needed), then 55 s
    // to start; 110 s suggested (71 + 35, in 10 s periods, above the namespace's 90 s).
    let m = measurement(&found, "ledger");
    assert_eq!(
        [
            &m["killedDuringStartup"],
            &m["maxSeconds"],
            &m["allowedSeconds"],
            &m["probesFrom"],
            &m["suggestedSeconds"]
        ],
        [
            &json!(1),
            &json!(55),
            &json!(60),
            &json!("would-be-added"),
            &json!(110)
        ],
        "startup step: {m:#}"
    );
    let short = finding(&found, "ledger", "startup-budget-too-short")
        .unwrap_or_else(|| panic!("startup step: ledger too short: {found:#}"));
    let evidence: Vec<&str> = short["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        evidence
            .iter()
            .any(|e| e.starts_with("pod ledger-6b7c-0: killed for a failed startup probe 61s")),
        "startup step: the kill is evidence: {evidence:#?}"
    );
    assert_eq!(
        found["summary"]["startsMeasured"],
        2 + 2 + 2,
        "startup step: {:#}",
        found["summary"]
    );

    // --suggest: one kubectl patch line per workload, applied as printed.
    let out = audit(kubeconfig, &["-n", NS, "--suggest"]);
    assert_eq!(
        code(&out),
        Some(0),
        "startup step: --suggest: {}",
        text(&out.stderr)
    );
    let suggested = text(&out.stdout);
    eprintln!("startup step: --suggest:\n{suggested}");
    let commands: Vec<&str> = suggested
        .lines()
        .filter(|l| l.starts_with("kubectl patch"))
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "startup step: one command per workload to change: {suggested}"
    );
    assert!(
        suggested.contains(r#"kubectl patch deployment ledger -n startup --type=strategic -p '{"spec":{"template":{"metadata":{"annotations":{"probegate.io/startup-seconds":"110"}}}}}'"#),
        "startup step: {suggested}"
    );
    assert!(
        suggested.contains("# Deployment startup/orders: container \"app\""),
        "startup step: {suggested}"
    );
    // -o yaml: the same patches as documents to commit.
    let yaml = text(&audit(kubeconfig, &["-n", NS, "--suggest", "-o", "yaml"]).stdout);
    let documents = probegate::yaml::load_all(&yaml).unwrap();
    let names: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["ledger", "orders"], "startup step: {yaml}");
    assert_eq!(documents[0]["kind"], "Deployment");
    assert_eq!(
        documents[1]["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["failureThreshold"],
        9,
        "startup step: the orders' own liveness check behind a startup probe of the namespace's 90 s: {yaml}"
    );
    let list: Value =
        serde_json::from_slice(&audit(kubeconfig, &["-n", NS, "--suggest", "-o", "json"]).stdout)
            .unwrap();
    assert_eq!(
        (&list["kind"], list["items"].as_array().map(Vec::len)),
        (&json!("List"), Some(2)),
        "startup step: -o json: {list:#}"
    );
    assert_eq!(
        list["items"][0], documents[0],
        "startup step: the same patch in JSON and YAML"
    );
    for command in &commands {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "startup step: {command}: {}",
            text(&out.stderr)
        );
    }
    let orders_now: Value = serde_json::from_str(&kubectl.ok(
        &["get", "deployment", "-n", NS, "orders", "-o", "json"],
        None,
    ))
    .unwrap();
    let container = &orders_now["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (
            &container["startupProbe"]["httpGet"]["path"],
            &container["startupProbe"]["failureThreshold"],
            &container["livenessProbe"]["httpGet"]["path"]
        ),
        (&json!("/health"), &json!(9), &json!("/health")),
        "startup step: the patch added a startup probe with the liveness check: {container:#}"
    );

    // The next rollout's pods: created from the patched template in a namespace the
    // webhook sees, they get the suggested budget.
    kubectl.ok(
        &["label", "namespace", NS, "probegate.io/injection=enabled"],
        None,
    );
    let ledger_now: Value = serde_json::from_str(&kubectl.ok(
        &["get", "deployment", "-n", NS, "ledger", "-o", "json"],
        None,
    ))
    .unwrap();
    let template = &ledger_now["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["probegate.io/startup-seconds"],
        "110"
    );
    let next = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ledger-7f8d-0", "namespace": NS, "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"]},
        "spec": template["spec"]});
    let mut startup = Value::Null;
    eventually(
        "the webhook mutates the next ledger pod",
        Duration::from_secs(30),
        || {
            let (ok, pod, _) = kubectl.dry_run(&next);
            startup = pod["spec"]["containers"][0]["startupProbe"].clone();
            ok && !startup.is_null()
        },
    );
    assert_eq!(
        (&startup["failureThreshold"], &startup["periodSeconds"]),
        (&json!(11), &json!(10)),
        "startup step: 110 s of start-up in tries of 10 s: {startup:#}"
    );

    // Once the orders' budget covers its starts, nothing is found of it.
    let again = report(kubeconfig, &["-n", NS, "-o", "json"]);
    for t in ["startup-budget-too-short", "startup-budget-suggested"] {
        assert!(
            finding(&again, "orders", t).is_none(),
            "startup step: orders {t} after the patch: {again:#}"
        );
    }
    assert_eq!(measurement(&again, "orders")["allowedSeconds"], 90);
    kubectl.ok(&["delete", "namespace", NS, "--wait=false"], None);
}
