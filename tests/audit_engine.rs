//! Same engine, same answers: for every workload of every golden input, what `audit` finds
//! equals what `probegate mutate` says for the same manifest and namespace annotations
//! (warnings, refusals and the `probegate.io/injected` record of what is added).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Service};
use probegate::audit::changes;
use probegate::audit::report::FindingType;
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

#[test]
fn audit_answers_what_mutate_answers() {
    let mut compared = 0;
    for case in common::golden_cases() {
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
        let catalogue = catalogue
            .as_ref()
            .unwrap_or_else(|| probegate::engine::catalogue::Catalogue::builtin());
        let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .current_dir(&case)
            .args(["mutate", "-f", "input.yaml", "-o", "json"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let mutated: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mutated: Vec<Value> = match mutated["kind"].as_str() {
            Some("List") => mutated["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![mutated],
        };

        let objects = objects(&case);
        // The cluster as audit reads it: namespaces' probegate.io annotations, the Services' evidence.
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
        for (index, object) in objects.iter().enumerate() {
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
            if !include_excluded && probegate::scope::is_excluded(&namespace) {
                continue;
            }
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
                    .filter(|_| mutated.len() == objects.len()),
            };

            let empty = BTreeMap::new();
            let layers = [&defaults, annotations.get(&namespace).unwrap_or(&empty)];
            let services: Vec<&ServiceEvidence> =
                services.get(&namespace).into_iter().flatten().collect();
            let findings = if changes::is_judged(&workload) {
                changes::findings(
                    &workload,
                    &changes::judge(&workload, &layers, &services, catalogue),
                )
            } else {
                Vec::new()
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
