use super::*;
use crate::engine::{self, Context};
use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;
use std::path::Path;

/// Every object the project keeps as a fixture: the golden inputs and the review
/// fixtures, as `(origin, object)`.
fn fixtures() -> Vec<(String, serde_json::Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut objects = Vec::new();
    let golden = root.join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&golden)
        .unwrap()
        .map(|e| e.unwrap().path().join("input.yaml"))
        .filter(|p| p.is_file())
        .collect();
    cases.sort();
    let documents = crate::manifest::read_paths(&cases, &mut std::io::empty()).unwrap();
    for document in documents {
        objects.push((document.origin.to_string(), document.value));
    }
    for entry in std::fs::read_dir(root.join("benches/fixtures")).unwrap() {
        let path = entry.unwrap().path();
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let object = if value["kind"] == "AdmissionReview" {
            value["request"]["object"].clone()
        } else {
            value
        };
        objects.push((path.display().to_string(), object));
    }
    objects
}

#[test]
fn the_engine_answers_the_same_from_either_decode() {
    let gates = BTreeMap::from([(
        "probegate.io/readiness-gates".to_string(),
        "example.com/lb".to_string(),
    )]);
    let all: Vec<(String, serde_json::Value)> = fixtures();
    let services: Vec<engine::ServiceEvidence> = all
        .iter()
        .filter(|(_, o)| o["kind"] == "Service")
        .map(|(_, o)| serde_json::from_value::<Service>(o.clone()).unwrap().into())
        .collect();
    let services: Vec<&engine::ServiceEvidence> = services.iter().collect();
    let mut compared = 0;
    for (origin, object) in &all {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (group, version) = Workload::split_api_version(api_version);
        let Some(full) = Workload::decode(group, version, kind, object.clone()).unwrap() else {
            continue;
        };
        let partial = decode(group, version, kind, &object.to_string())
            .unwrap()
            .unwrap();
        for layers in [&[][..], &[&gates][..]] {
            let context = Context {
                layers,
                services: &services,
                ..Context::default()
            };
            assert_eq!(
                engine::mutate(&partial, &context),
                engine::mutate(&full, &context),
                "{origin}: {kind}"
            );
        }
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} objects compared");
}

#[test]
fn unread_fields_are_not_built_and_read_ones_must_fit() {
    let pod = |container: serde_json::Value| {
        serde_json::json!({"metadata": {"name": "p", "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\": 1}"}},
            "spec": {"containers": [container]}})
        .to_string()
    };
    let decoded = decode(
        "",
        "v1",
        "Pod",
        &pod(serde_json::json!({"name": "app", "resources": {"limits": {"cpu": "x"}},
            "env": [{"name": "ENABLE_METRICS", "value": "false"}, {"name": "METRICS_PORT", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
                {"name": "DATABASE_URL", "value": "postgres://"}]})),
    )
    .unwrap()
    .unwrap();
    let Workload::Pod(p) = decoded else {
        panic!("a Pod")
    };
    assert_eq!(p.metadata.managed_fields, None);
    // Annotations no rule reads are read past; the map is still there.
    assert_eq!(p.metadata.annotations, Some(BTreeMap::new()));
    let container = &p.spec.unwrap().containers[0];
    assert_eq!(container.resources, None);
    // Only the variables a rule reads are kept.
    let env: Vec<(&str, Option<&str>)> = container
        .env
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [("ENABLE_METRICS", Some("false")), ("METRICS_PORT", None)]
    );
    // A field the rules read that does not fit is still an error.
    let err = decode(
        "",
        "v1",
        "Pod",
        &pod(serde_json::json!({"name": "app", "ports": "http"})),
    )
    .unwrap_err();
    assert_eq!(err.kind, "Pod");
    assert!(decode("", "v1", "Service", "{}").unwrap().is_none());
    // The object's own apiVersion and kind, where given, must be what the review says.
    struct Case {
        name: &'static str,
        api_version: &'static str,
        kind: &'static str,
    }
    let cases = [
        Case {
            name: "another kind than the review's",
            api_version: "v1",
            kind: "Service",
        },
        Case {
            name: "another version than the review's",
            api_version: "v2",
            kind: "Pod",
        },
    ];
    for case in cases {
        let (api_version, kind) = (case.api_version, case.kind);
        let object = format!(r#"{{"apiVersion": "{api_version}", "kind": "{kind}"}}"#);
        assert!(
            decode("", "v1", "Pod", &object).is_err(),
            "{}: {object}",
            case.name
        );
    }
    assert!(decode("", "v1", "Pod", r#"{"apiVersion": "v1", "kind": "Pod"}"#).is_ok());
}

#[test]
fn variables_and_annotations_are_judged_by_their_names_however_written() {
    type Variable = (&'static str, Option<&'static str>);
    struct Case {
        name: &'static str,
        container: &'static str,
        annotations: &'static str,
        /// The variables kept, or `None` when the object must not decode.
        env: Option<Option<Vec<Variable>>>,
        annotation_keys: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "escapes in a name are read, not compared raw",
            container: r#"{"name": "app", "env": [{"name": "ENABLE\u005fMETRICS", "value": "fal\u0073e"}]}"#,
            annotations: r#"{"probegate.io\/probes": "readiness", "other\u002fkey": "x"}"#,
            env: Some(Some(vec![("ENABLE_METRICS", Some("false"))])),
            annotation_keys: vec!["probegate.io/probes"],
        },
        Case {
            name: "a value before its name is kept for a variable a rule reads",
            container: r#"{"name": "app", "env": [{"value": "false", "name": "ENABLE_METRICS"}]}"#,
            annotations: "{}",
            env: Some(Some(vec![("ENABLE_METRICS", Some("false"))])),
            annotation_keys: vec![],
        },
        Case {
            name: "variables no rule reads are dropped, in either order",
            container: r#"{"name": "app", "env": [{"value": "1", "name": "WORKERS"}, {"name": "HOME", "value": "/"}]}"#,
            annotations: "{}",
            env: Some(Some(vec![])),
            annotation_keys: vec![],
        },
        Case {
            name: "null env is no env",
            container: r#"{"name": "app", "env": null}"#,
            annotations: "null",
            env: Some(None),
            annotation_keys: vec![],
        },
        Case {
            name: "a variable without a name does not fit",
            container: r#"{"name": "app", "env": [{"value": "false"}]}"#,
            annotations: "{}",
            env: None,
            annotation_keys: vec![],
        },
        Case {
            name: "a name that is not a string does not fit",
            container: r#"{"name": "app", "env": [{"name": 7}]}"#,
            annotations: "{}",
            env: None,
            annotation_keys: vec![],
        },
    ];
    for case in cases {
        let object = format!(
            r#"{{"metadata": {{"annotations": {}}}, "spec": {{"containers": [{}]}}}}"#,
            case.annotations, case.container
        );
        let decoded = decode("", "v1", "Pod", &object);
        let Some(expected) = case.env else {
            assert!(decoded.is_err(), "{}: decoded {object}", case.name);
            continue;
        };
        let Ok(Some(Workload::Pod(pod))) = decoded else {
            panic!("{}: {decoded:?}", case.name)
        };
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env: Option<Vec<(&str, Option<&str>)>> = container.env.as_ref().map(|env| {
            env.iter()
                .map(|v| (v.name.as_str(), v.value.as_deref()))
                .collect()
        });
        assert_eq!(env, expected, "{}", case.name);
        let keys: Vec<&str> = pod
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, case.annotation_keys, "{}", case.name);
    }
}
