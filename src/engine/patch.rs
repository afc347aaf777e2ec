//! Writes a plan as JSON Patch operations on the object it was made for.
//!
//! The one place that knows JSON pointers: keys are escaped by `jsonptr` (`/` as `~1`, `~`
//! as `~0`), and where a map or list may be absent from the JSON, it is added whole.

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation};
use jsonptr::{PointerBuf, Token};
use k8s_openapi::api::core::v1::PodReadinessGate;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::plan::Plan;
use crate::workload::PodParts;

/// The operations that add what `plan` decided to the object `parts` come from.
pub fn write(parts: &PodParts<'_>, plan: &Plan) -> Result<Patch, serde_json::Error> {
    let base = parts.base;
    let mut ops = Vec::new();
    for container in &plan.probes {
        let path = pointer(base, &["spec", "containers", &container.index.to_string()]);
        for (kind, probe) in &container.added {
            ops.push(add(child(&path, kind.field()), probe)?);
        }
    }
    if !plan.gates.is_empty() {
        let gates: Vec<PodReadinessGate> = plan
            .gates
            .iter()
            .map(|condition_type| PodReadinessGate {
                condition_type: condition_type.clone(),
            })
            .collect();
        let path = pointer(base, &["spec", "readinessGates"]);
        if parts.spec.readiness_gates.is_some() {
            for gate in &gates {
                ops.push(add(child(&path, "-"), gate)?);
            }
        } else {
            ops.push(add(path, &gates)?);
        }
    }
    if !plan.annotations.is_empty() {
        ops.extend(annotations(base, parts.pod_meta, &plan.annotations)?);
    }
    Ok(Patch(ops))
}

/// Adds annotations to the Pod or pod template, creating the maps they need.
fn annotations(
    base: &[&str],
    pod_meta: Option<&ObjectMeta>,
    entries: &[(String, String)],
) -> Result<Vec<PatchOperation>, serde_json::Error> {
    let map: BTreeMap<&str, &str> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match pod_meta {
        Some(meta) if meta.annotations.is_some() => entries
            .iter()
            .map(|(key, value)| add(pointer(base, &["metadata", "annotations", key]), value))
            .collect(),
        // An empty metadata map may also be absent from the JSON: replace it whole.
        Some(meta) if *meta != ObjectMeta::default() => Ok(vec![add(
            pointer(base, &["metadata", "annotations"]),
            &map,
        )?]),
        _ => Ok(vec![add(
            pointer(base, &["metadata"]),
            &BTreeMap::from([("annotations", map)]),
        )?]),
    }
}

fn pointer(base: &[&str], rest: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(base.iter().chain(rest).map(|t| Token::new(*t)))
}

fn child(parent: &PointerBuf, token: &str) -> PointerBuf {
    let mut path = parent.clone();
    path.push_back(Token::new(token));
    path
}

fn add(path: PointerBuf, value: &impl Serialize) -> Result<PatchOperation, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    Ok(PatchOperation::Add(AddOperation { path, value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::ContainerProbes;
    use crate::policy::ProbeKind;
    use crate::workload::Workload;
    use k8s_openapi::api::core::v1::Probe;
    use serde_json::{Value, json};

    struct Case {
        name: &'static str,
        object: Value,
        plan: Plan,
        /// The object after the patch, compared where the case says.
        expect: Vec<(&'static str, Value)>,
    }

    fn annotations(pairs: &[(&str, &str)]) -> Plan {
        Plan {
            annotations: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Plan::default()
        }
    }

    fn pod(metadata: Value, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    }

    const APP: &str = r#"{"containers": [{"name": "side"}, {"name": "app"}]}"#;

    #[test]
    fn plans_are_written_wherever_the_object_stands() {
        let spec: Value = serde_json::from_str(APP).unwrap();
        let cases = [
            Case {
                name: "annotation keys with / and ~ are escaped",
                object: pod(json!({"annotations": {}}), spec.clone()),
                plan: annotations(&[("a/b~c", "1")]),
                expect: vec![("/metadata/annotations/a~1b~0c", json!("1"))],
            },
            Case {
                name: "an annotations map that exists gets keys added",
                object: pod(json!({"annotations": {"keep": "x"}}), spec.clone()),
                plan: annotations(&[("probegate.io/injected", "app=readiness")]),
                expect: vec![(
                    "/metadata/annotations",
                    json!({"keep": "x", "probegate.io/injected": "app=readiness"}),
                )],
            },
            Case {
                name: "metadata without annotations gets the map",
                object: pod(json!({"name": "p"}), spec.clone()),
                plan: annotations(&[("k", "v")]),
                expect: vec![("/metadata", json!({"name": "p", "annotations": {"k": "v"}}))],
            },
            Case {
                name: "empty metadata may be absent from the JSON: replaced whole",
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "d"},
                    "spec": {"selector": {}, "template": {"spec": spec.clone()}}}),
                plan: annotations(&[("k", "v")]),
                expect: vec![(
                    "/spec/template/metadata",
                    json!({"annotations": {"k": "v"}}),
                )],
            },
            Case {
                name: "probes go to the container at their index",
                object: pod(json!({}), spec.clone()),
                plan: Plan {
                    probes: vec![ContainerProbes {
                        index: 1,
                        container: "app".into(),
                        added: vec![(ProbeKind::Readiness, Probe::default())],
                        ..ContainerProbes::default()
                    }],
                    ..Plan::default()
                },
                expect: vec![
                    ("/spec/containers/1/readinessProbe", json!({})),
                    ("/spec/containers/0/readinessProbe", Value::Null),
                ],
            },
            Case {
                name: "gates are added as a list where there is none",
                object: pod(json!({}), spec.clone()),
                plan: Plan {
                    gates: vec!["example.com/a".into(), "example.com/b".into()],
                    ..Plan::default()
                },
                expect: vec![(
                    "/spec/readinessGates",
                    json!([{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]),
                )],
            },
            Case {
                name: "gates are appended to a list that exists",
                object: pod(
                    json!({}),
                    json!({"containers": [{"name": "app"}], "readinessGates": [{"conditionType": "mine"}]}),
                ),
                plan: Plan {
                    gates: vec!["example.com/a".into()],
                    ..Plan::default()
                },
                expect: vec![(
                    "/spec/readinessGates",
                    json!([{"conditionType": "mine"}, {"conditionType": "example.com/a"}]),
                )],
            },
        ];
        for case in cases {
            let (group, version) =
                Workload::split_api_version(case.object["apiVersion"].as_str().unwrap());
            let kind = case.object["kind"].as_str().unwrap();
            let workload = Workload::decode(group, version, kind, case.object.clone())
                .unwrap()
                .unwrap();
            let parts = workload.pod_parts().unwrap();
            let patch = write(&parts, &case.plan).unwrap();
            let mut patched = case.object.clone();
            json_patch::patch(&mut patched, &patch)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            for (path, expected) in &case.expect {
                let found = patched.pointer(path).cloned().unwrap_or(Value::Null);
                assert_eq!(&found, expected, "{}: {path}", case.name);
            }
        }
    }

    #[test]
    fn an_empty_plan_writes_nothing() {
        let object = pod(json!({}), serde_json::from_str(APP).unwrap());
        let workload = Workload::decode("", "v1", "Pod", object).unwrap().unwrap();
        let patch = write(&workload.pod_parts().unwrap(), &Plan::default()).unwrap();
        assert!(patch.0.is_empty());
    }
}
