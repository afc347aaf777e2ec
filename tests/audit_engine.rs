//! Same engine, same answers: for every workload of every golden input, what `audit` finds
//! equals what `probegate mutate` says for the same manifest and namespace annotations
//! (warnings, refusals and the `probegate.io/injected` record of what is added).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use probegate::audit::changes;
use probegate::audit::report::{Finding, FindingType, Report, Summary};
use probegate::engine::Object;
use probegate::engine::ServiceEvidence;
use probegate::engine::kinds::split_api_version;
use probegate::namespace_cache::policy_annotations;
use serde_json::Value;

/// Every object of the input, `List` items included, less the AdmissionReviews that
/// `mutate` leaves out of its output (so an object's index is its place in that output).
fn objects(case: &Path) -> Vec<Value> {
    let documents =
        probegate::manifest::read_paths(&[case.join("input.yaml")], &mut std::io::empty()).unwrap();
    documents
        .into_iter()
        .filter(|d| !probegate::offline::is_review(&d.value))
        .flat_map(|d| match d.value["kind"].as_str() {
            Some("List") => d.value["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![d.value],
        })
        .collect()
}

fn pod_annotations(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("Pod") => &object["metadata"]["annotations"],
        Some("CronJob") => {
            &object["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]
        }
        _ => &object["spec"]["template"]["metadata"]["annotations"],
    }
}

#[derive(Debug, Default, PartialEq)]
struct Answer {
    warnings: Vec<String>,
    denial: Option<String>,
    record: Option<String>,
}

/// A golden fixture as the audit would read it from a cluster: its arguments' cluster-wide
/// defaults and catalogue, its namespaces' probegate.io annotations and its Services.
struct Golden {
    args: Vec<String>,
    defaults: BTreeMap<String, String>,
    include_excluded: bool,
    catalogue: Option<probegate::engine::catalogue::Catalogue>,
    objects: Vec<Value>,
    annotations: BTreeMap<String, BTreeMap<String, String>>,
    services: BTreeMap<String, Vec<ServiceEvidence>>,
}

impl Golden {
    fn read(case: &Path) -> Golden {
        let args: Vec<String> = std::fs::read_to_string(case.join("args"))
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let defaults: BTreeMap<String, String> = args
            .windows(2)
            .filter(|w| w[0] == "--namespace-annotation")
            .filter_map(|w| {
                w[1].split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let include_excluded = args.iter().any(|a| a == "--include-excluded-namespaces");
        // `--catalogue FILE`, as the audit is given it.
        let catalogue = args
            .windows(2)
            .find(|w| w[0] == "--catalogue")
            .map(|w| probegate::catalogue_file::load(&case.join(&w[1])).unwrap());
        let objects = objects(case);
        let mut annotations: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut services: BTreeMap<String, Vec<ServiceEvidence>> = BTreeMap::new();
        for object in &objects {
            match object["kind"].as_str() {
                Some("Namespace") => {
                    let ns: Namespace = serde_json::from_value(object.clone()).unwrap();
                    annotations.insert(
                        ns.metadata.name.clone().unwrap(),
                        policy_annotations(&ns.metadata),
                    );
                }
                Some("Service") => {
                    let service: Service = serde_json::from_value(object.clone()).unwrap();
                    let ns = service
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    services
                        .entry(ns)
                        .or_default()
                        .push(ServiceEvidence::from(service));
                }
                _ => {}
            }
        }
        Golden {
            args,
            defaults,
            include_excluded,
            catalogue,
            objects,
            annotations,
            services,
        }
    }

    /// Each object of the input the audit would judge, with its index in the input, its
    /// namespace and the engine's findings for it.
    fn judged(&self) -> Vec<(usize, &Value, Object<'_>, String, Vec<Finding>)> {
        let catalogue = self
            .catalogue
            .as_ref()
            .unwrap_or_else(|| probegate::engine::catalogue::Catalogue::builtin());
        let mut judged = Vec::new();
        for (index, object) in self.objects.iter().enumerate() {
            let (Some(api_version), Some(kind)) =
                (object["apiVersion"].as_str(), object["kind"].as_str())
            else {
                continue;
            };
            let (group, version) = split_api_version(api_version);
            let Ok(Some(workload)) = Object::decode(group, version, kind, object) else {
                continue;
            };
            let namespace = workload
                .meta()
                .namespace
                .as_deref()
                .unwrap_or("default")
                .to_owned();
            if !self.include_excluded && probegate::scope::is_excluded(&namespace) {
                continue;
            }
            let empty = BTreeMap::new();
            let layers = [
                &self.defaults,
                self.annotations.get(&namespace).unwrap_or(&empty),
            ];
            let services: Vec<&ServiceEvidence> = self
                .services
                .get(&namespace)
                .into_iter()
                .flatten()
                .collect();
            let findings = if changes::is_judged(&workload) {
                changes::findings(
                    &workload,
                    &changes::judge(&workload, &layers, &services, catalogue),
                )
            } else {
                Vec::new()
            };
            judged.push((index, object, workload, namespace, findings));
        }
        judged
    }
}

#[test]
fn audit_answers_what_mutate_answers() {
    let mut compared = 0;
    for case in common::golden_cases() {
        let golden = Golden::read(&case);
        let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .current_dir(&case)
            .args(["mutate", "-f", "input.yaml", "-o", "json"])
            .args(&golden.args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let mutated: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mutated: Vec<Value> = match mutated["kind"].as_str() {
            Some("List") => mutated["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![mutated],
        };

        for (index, object, workload, namespace, findings) in golden.judged() {
            let kind = object["kind"].as_str().unwrap_or_default();
            let name = workload
                .meta()
                .name
                .as_deref()
                .unwrap_or_default()
                .to_owned();
            let subject = format!(": {kind} {namespace}/{name}: ");

            let mutate = Answer {
                warnings: stderr
                    .lines()
                    .filter(|l| l.starts_with("Warning: "))
                    .filter_map(|l| l.split_once(&subject).map(|(_, m)| m.to_owned()))
                    .collect(),
                denial: stderr
                    .lines()
                    .filter(|l| l.starts_with("Denied: "))
                    .find_map(|l| l.split_once(&subject).map(|(_, m)| m.to_owned())),
                record: mutated
                    .get(index)
                    .and_then(|m| pod_annotations(m)["probegate.io/injected"].as_str())
                    .map(str::to_owned)
                    .filter(|_| mutated.len() == golden.objects.len()),
            };

            let audit = Answer {
                warnings: findings
                    .iter()
                    .filter(|f| f.finding_type == FindingType::Warning)
                    .map(|f| f.message.clone())
                    .collect(),
                denial: findings
                    .iter()
                    .find(|f| f.finding_type == FindingType::WouldBeDenied)
                    .map(|f| f.message.clone()),
                record: findings
                    .iter()
                    .flat_map(|f| &f.evidence)
                    .find_map(|e| e.strip_prefix("probegate.io/injected: "))
                    .map(str::to_owned),
            };
            // A denied object is not printed mutated; its record is not comparable.
            let audit = if mutate.denial.is_some() {
                Answer {
                    record: None,
                    ..audit
                }
            } else {
                audit
            };
            assert_eq!(
                audit,
                mutate,
                "{}: {kind} {namespace}/{name}",
                case.display()
            );
            compared += 1;
        }
    }
    assert!(compared > 20, "only {compared} workloads compared");
}

/// A Running pod of `app` in `namespace`, named as a ReplicaSet's pods are, its one container
/// ready since an hour ago.
fn running_pod(namespace: &str, app: &str, container: Value, gates: &[&str]) -> Pod {
    let hour_ago = "2026-01-01T11:00:00Z";
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{app}-5c8d66c76d-x7k2p"), "namespace": namespace,
            "labels": {"app": app}, "creationTimestamp": hour_ago},
        "spec": {"containers": [container],
            "readinessGates": gates.iter().map(|g| serde_json::json!({"conditionType": g})).collect::<Vec<_>>()},
        "status": {"phase": "Running",
            "conditions": [{"type": "ContainersReady", "status": "True", "lastTransitionTime": hour_ago}],
            "containerStatuses": [{"name": container["name"], "image": "i", "imageID": "", "ready": true, "restartCount": 7}]}
    }))
    .unwrap()
}

/// The live hazards of a few pods named as well-known charts name theirs: a load balancer
/// gate never set, a controller probed on its metrics port with metrics off, liveness kills.
fn live_findings() -> Vec<Finding> {
    let now: k8s_openapi::jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
    let gate = "target-health.elbv2.k8s.aws/k8s-storefront-web-6f2b1c9e0d";
    let web = running_pod(
        "storefront",
        "storefront-web",
        serde_json::json!({"name": "web", "image": "shop/web:1"}),
        &[gate],
    );
    let mut found = probegate::audit::hazards::stuck_readiness_gates(
        &web,
        now,
        k8s_openapi::jiff::SignedDuration::from_mins(10),
    );
    let ovn_container = serde_json::json!({
        "name": "kube-ovn-controller", "image": "kubeovn/kube-ovn:v1.12.0",
        "args": ["--enable-metrics=false"],
        "readinessProbe": {"tcpSocket": {"port": 10660}},
        "livenessProbe": {"tcpSocket": {"port": 10660}}
    });
    let ovn = running_pod("kube-system", "kube-ovn-controller", ovn_container, &[]);
    let value = serde_json::to_value(&ovn).unwrap();
    let object = Object::decode("", "v1", "Pod", &value).unwrap().unwrap();
    let metrics: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-ovn-controller", "namespace": "kube-system"},
        "spec": {"selector": {"app": "kube-ovn-controller"},
            "ports": [{"name": "metrics", "port": 10660, "targetPort": 10660}]}
    }))
    .unwrap();
    let metrics = ServiceEvidence::from(metrics);
    found.extend(probegate::audit::hazards::metrics_coupled_probes(
        &ovn,
        &object,
        &[],
        &[&metrics],
    ));
    let mut tallies = probegate::audit::hazards::Tallies::new();
    for (reason, message, count) in [
        (
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 503".to_owned(),
            40,
        ),
        (
            "Killing",
            "Container kube-ovn-controller failed liveness probe, will be restarted".to_owned(),
            7,
        ),
    ] {
        let event: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("ovn.{reason}"), "namespace": "kube-system"},
            "involvedObject": {"kind": "Pod", "name": ovn.metadata.name, "namespace": "kube-system",
                "fieldPath": "spec.containers{kube-ovn-controller}"},
            "reason": reason, "message": message, "count": count,
            "lastTimestamp": "2026-01-01T11:59:00Z"
        }))
        .unwrap();
        probegate::audit::hazards::tally_event(&mut tallies, &event);
    }
    found.extend(probegate::audit::hazards::liveness_restarts(
        &ovn,
        &mut tallies,
    ));
    found
}

/// Every engine finding of every golden input and the live hazards above, as one report:
/// the workloads and findings of a cluster running a few dozen charts.
fn realistic_report() -> Report {
    let mut findings = live_findings();
    let mut workloads = 0;
    for case in common::golden_cases() {
        for (.., workload_findings) in Golden::read(&case).judged() {
            workloads += 1;
            findings.extend(workload_findings);
        }
    }
    Report::new(
        vec!["*".into()],
        Summary {
            workloads,
            pods: 2,
            ..Summary::default()
        },
        findings,
    )
}

/// The widest a default table's row may be: what a terminal shows without wrapping.
const SCREEN: usize = 160;

#[test]
fn the_default_table_fits_a_screen_and_wide_carries_every_word() {
    let report = realistic_report();
    assert!(report.findings.len() > 40, "{}", report.findings.len());
    let table = report.to_table();
    let wide = report.to_wide_table();
    let widest = |text: &str| text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    eprintln!(
        "{table}\nwidest row: {} columns (-o wide: {}), {} findings",
        widest(&table),
        widest(&wide),
        report.findings.len()
    );
    for line in table.lines() {
        assert!(
            line.chars().count() <= SCREEN,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    // (case, what must hold of every finding)
    type Check = fn(&Finding, &str, &str) -> Result<(), String>;
    let cases: [(&str, Check); 4] = [
        ("a few words of its own in each column", |f, _, _| {
            match (f.short_title.is_empty(), f.short_action.is_empty()) {
                (false, false) => Ok(()),
                _ => Err("short title or action missing".into()),
            }
        }),
        ("the default table has its row", |f, table, _| {
            let row = table.lines().find(|l| {
                l.contains(&format!("{}/{} ", f.kind, f.name))
                    && l.contains(&f.short_title)
                    && l.ends_with(&f.short_action)
            });
            row.map(|_| ()).ok_or_else(|| "no row".into())
        }),
        (
            "the default table leaves the explanation out",
            |f, table, _| match f.message.len() > 60 && table.contains(&f.message) {
                true => Err("the whole message is in the default table".into()),
                false => Ok(()),
            },
        ),
        (
            "-o wide carries the whole explanation and what to do",
            |f, _, wide| {
                let row = wide.lines().find(|l| {
                    l.contains(&format!("{}/{} ", f.kind, f.name)) && l.ends_with(&f.message)
                });
                match row {
                    Some(row) if f.action == f.message || row.contains(&f.action) => Ok(()),
                    Some(_) => Err("the action is missing".into()),
                    None => Err("no row ends with the message".into()),
                }
            },
        ),
    ];
    for (case, check) in cases {
        for finding in &report.findings {
            if let Err(why) = check(finding, &table, &wide) {
                panic!(
                    "{case}: {why}: {} {}/{} {:?}: {}",
                    finding.namespace,
                    finding.kind,
                    finding.name,
                    finding.finding_type,
                    finding.title
                );
            }
        }
    }
    // The structured outputs keep every word, and none of the table's.
    let json = report.to_json().unwrap();
    assert!(!json.contains("shortTitle") && !json.contains("shortAction"));
    for finding in &report.findings {
        assert!(json.contains(&serde_json::to_string(&finding.message).unwrap()));
    }
}
