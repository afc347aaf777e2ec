use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use super::*;
use crate::engine::{self, Context, kinds};

/// Every object the project keeps as a fixture: the golden inputs and the review
/// fixtures, as `(origin, object)`.
fn fixtures() -> Vec<(String, Value)> {
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
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let object = if value["kind"] == "AdmissionReview" {
            value["request"]["object"].clone()
        } else {
            value
        };
        objects.push((path.display().to_string(), object));
    }
    objects
}

/// The object read from its JSON text, as the webhook reads it off a review's body.
fn from_text(kind: Kind, text: &str) -> Result<Object<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let object = Object::read(kind, &mut deserializer)?;
    deserializer.end()?;
    Ok(object)
}

#[test]
fn every_caller_reads_the_same_object_and_gets_the_same_answer() {
    let gates = BTreeMap::from([(
        "probegate.io/readiness-gates".to_string(),
        "example.com/lb".to_string(),
    )]);
    let all = fixtures();
    let services: Vec<engine::ServiceEvidence> = all
        .iter()
        .filter(|(_, o)| o["kind"] == "Service")
        .map(|(_, o)| serde_json::from_value::<Service>(o.clone()).unwrap().into())
        .collect();
    let services: Vec<&engine::ServiceEvidence> = services.iter().collect();
    let mut compared = 0;
    for (origin, value) in &all {
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        let kind_name = value["kind"].as_str().unwrap_or_default();
        let (group, version) = kinds::split_api_version(api_version);
        // `mutate`: the parsed document, checked against its type, then read.
        let Some(offline) = Object::decode(group, version, kind_name, value).unwrap() else {
            continue;
        };
        let kind = offline.kind;
        // The webhook: the object's text, read in one pass.
        let text = value.to_string();
        let webhook = from_text(kind, &text).unwrap();
        assert_eq!(
            webhook, offline,
            "{origin}: the webhook reads another object"
        );
        // `audit`: the object as k8s-openapi's type lists it.
        let listed_value = kind.typed_round_trip(value);
        let listed = Object::read(kind, &listed_value).unwrap();
        for layers in [&[][..], &[&gates][..]] {
            let context = Context {
                layers,
                services: &services,
                ..Context::default()
            };
            let answer = engine::mutate(&offline, &context);
            assert_eq!(engine::mutate(&webhook, &context), answer, "{origin}");
            // A listed object's metadata is never absent, so the shape of its patch may
            // differ where the document had none; what was decided may not.
            let audited = engine::mutate(&listed, &context);
            assert_eq!(
                audited.plan, answer.plan,
                "{origin}: audit decides otherwise"
            );
            assert_eq!(audited.warnings, answer.warnings, "{origin}");
            assert_eq!(audited.denial, answer.denial, "{origin}");
        }
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} objects compared");
}

#[test]
fn strings_without_escapes_are_borrowed_from_the_body() {
    let text = r#"{"metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "web:1", "args": ["--port=80"],
            "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "ENABLE_METRICS", "value": "false"}]},
            {"name": "esc\u0061ped"}]}}"#;
    let object = from_text(Kind::Pod, text).unwrap();
    let spec = object.pod_parts().unwrap().spec;
    let app = &spec.containers[0];
    let borrowed = |text: &Text<'_>| matches!(text.0, Cow::Borrowed(_));
    let port = &app.ports.as_ref().unwrap()[0];
    let variable = &app.env.as_ref().unwrap()[0];
    let read = [
        ("container name", &app.name),
        ("image", app.image.as_ref().unwrap()),
        ("arg", &app.args.as_ref().unwrap()[0]),
        ("port name", port.name.as_ref().unwrap()),
        ("variable name", &variable.name),
        ("variable value", variable.value.as_ref().unwrap()),
        ("object name", object.meta().name.as_ref().unwrap()),
    ];
    for (what, text) in read {
        assert!(borrowed(text), "{what} was copied");
    }
    let labels = object.meta().labels.as_ref().unwrap();
    assert!(labels.iter().all(|(k, v)| borrowed(k) && borrowed(v)));
    // A string with an escape cannot be a slice of the body: it is built, and right.
    assert_eq!(spec.containers[1].name, "escaped");
    assert!(!borrowed(&spec.containers[1].name));
}

#[test]
fn unread_fields_are_read_past_and_read_ones_must_fit() {
    let pod = |container: Value| {
        json!({"metadata": {"name": "p", "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\": 1}"}},
            "spec": {"containers": [container]}})
        .to_string()
    };
    let text = pod(json!({"name": "app", "resources": {"limits": {"cpu": "x"}},
        "env": [{"name": "ENABLE_METRICS", "value": "false"}, {"name": "METRICS_PORT", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
            {"name": "DATABASE_URL", "value": "postgres://"}]}));
    let object = from_text(Kind::Pod, &text).unwrap();
    // Annotations no rule reads are read past; the map is still there.
    assert_eq!(object.meta().annotations, Some(BTreeMap::new()));
    let container = &object.pod_parts().unwrap().spec.containers[0];
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
    let text = pod(json!({"name": "app", "ports": "http"}));
    assert!(from_text(Kind::Pod, &text).is_err());
    // The object's own apiVersion and kind, where given, must be the kind it is read as.
    let cases = [
        (
            "another kind",
            r#"{"apiVersion": "v1", "kind": "Service"}"#,
            false,
        ),
        (
            "another version",
            r#"{"apiVersion": "v2", "kind": "Pod"}"#,
            false,
        ),
        ("its own", r#"{"apiVersion": "v1", "kind": "Pod"}"#, true),
        ("neither said", r#"{}"#, true),
        (
            "null metadata and spec",
            r#"{"metadata": null, "spec": null}"#,
            true,
        ),
    ];
    for (name, text, reads) in cases {
        assert_eq!(from_text(Kind::Pod, text).is_ok(), reads, "{name}: {text}");
    }
}

#[test]
fn absent_metadata_is_told_from_empty_metadata() {
    let cases = [
        ("absent", r#"{"spec": {"containers": []}}"#, false),
        (
            "null",
            r#"{"metadata": null, "spec": {"containers": []}}"#,
            false,
        ),
        (
            "empty",
            r#"{"metadata": {}, "spec": {"containers": []}}"#,
            true,
        ),
    ];
    for (name, text, present) in cases {
        let object = from_text(Kind::Pod, text).unwrap();
        assert_eq!(object.metadata.is_some(), present, "{name}");
        assert_eq!(
            object.pod_parts().unwrap().pod_meta.is_some(),
            present,
            "{name}"
        );
    }
}

#[test]
fn variables_and_annotations_are_judged_by_their_names_however_written() {
    type Variable = (&'static str, Option<&'static str>);
    struct Case {
        name: &'static str,
        container: &'static str,
        annotations: &'static str,
        /// The variables kept, or `None` when the object must not read.
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
            name: "a variable without a name reads as unnamed, as k8s-openapi reads it, and no rule reads it",
            container: r#"{"name": "app", "env": [{"value": "false"}, {"name": null, "value": "x"}]}"#,
            annotations: "{}",
            env: Some(Some(vec![])),
            annotation_keys: vec![],
        },
        Case {
            name: "a name that is not a string does not fit",
            container: r#"{"name": "app", "env": [{"name": 7}]}"#,
            annotations: "{}",
            env: None,
            annotation_keys: vec![],
        },
        Case {
            name: "annotations that are not a map do not fit",
            container: r#"{"name": "app"}"#,
            annotations: r#"["probegate.io/probes"]"#,
            env: None,
            annotation_keys: vec![],
        },
    ];
    for case in cases {
        let text = format!(
            r#"{{"metadata": {{"annotations": {}}}, "spec": {{"containers": [{}]}}}}"#,
            case.annotations, case.container
        );
        let read = from_text(Kind::Pod, &text);
        let Some(expected) = case.env else {
            assert!(read.is_err(), "{}: read {text}", case.name);
            continue;
        };
        let object = read.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let container = &object.pod_parts().unwrap().spec.containers[0];
        let env: Option<Vec<(&str, Option<&str>)>> = container.env.as_ref().map(|env| {
            env.iter()
                .map(|v| (v.name.as_str(), v.value.as_deref()))
                .collect()
        });
        assert_eq!(env, expected, "{}", case.name);
        let keys: Vec<&str> = object
            .meta()
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, case.annotation_keys, "{}", case.name);
    }
}

#[test]
fn what_k8s_openapi_reads_as_a_default_the_view_reads_the_same() {
    // Each object passes `Kind::check` (k8s-openapi's strict decode) and must then read.
    /// What the object read must show.
    type Holds = fn(&Object<'_>) -> bool;
    let cases: [(&str, Value, Holds); 8] = [
        (
            "a pod spec without containers",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {}}),
            |o| o.pod_parts().unwrap().spec.containers.is_empty(),
        ),
        (
            "null containers",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": null}}),
            |o| o.pod_parts().unwrap().spec.containers.is_empty(),
        ),
        (
            "a container without a name",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "x"}]}}),
            |o| o.pod_parts().unwrap().spec.containers[0].name.is_empty(),
        ),
        (
            "a port without a number",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "ports": [{"name": "http"}]}]}}),
            |o| {
                o.pod_parts().unwrap().spec.containers[0]
                    .ports
                    .as_ref()
                    .unwrap()[0]
                    .container_port
                    == 0
            },
        ),
        (
            "a gate without a condition",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [], "readinessGates": [{}]}}),
            |o| {
                o.pod_parts()
                    .unwrap()
                    .spec
                    .readiness_gates
                    .as_ref()
                    .unwrap()[0]
                    .condition_type
                    .is_empty()
            },
        ),
        (
            "an owner with a null kind",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": null, "name": "j", "uid": "1"}]}, "spec": {"containers": []}}),
            |o| !o.is_batch(),
        ),
        (
            "a Deployment with a null spec",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": null}),
            |o| o.pod_parts().is_none(),
        ),
        (
            "a CronJob with a null job template",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"schedule": "@daily", "jobTemplate": null}}),
            |o| o.pod_parts().is_none(),
        ),
    ];
    for (name, value, holds) in cases {
        let (group, version) = kinds::split_api_version(value["apiVersion"].as_str().unwrap());
        let kind = value["kind"].as_str().unwrap();
        let object = Object::decode(group, version, kind, &value)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap();
        assert!(holds(&object), "{name}: {object:?}");
    }
}

#[test]
fn parts_the_patch_writes_into_are_read_from_json_objects_only() {
    let cases = [
        (
            "metadata as a list",
            r#"{"metadata": [], "spec": {"containers": []}}"#,
        ),
        ("a spec as a list", r#"{"spec": [[{"name": "a"}]]}"#),
        (
            "a container as a list",
            r#"{"spec": {"containers": [["a"]]}}"#,
        ),
    ];
    for (name, text) in cases {
        assert!(from_text(Kind::Pod, text).is_err(), "{name}: read {text}");
    }
    let deployment = [
        (
            "a template as a list",
            r#"{"spec": {"template": [{}, {"containers": []}]}}"#,
        ),
        (
            "template metadata as a list",
            r#"{"spec": {"template": {"metadata": [], "spec": {"containers": []}}}}"#,
        ),
    ];
    for (name, text) in deployment {
        assert!(
            from_text(Kind::Deployment, text).is_err(),
            "{name}: read {text}"
        );
    }
}
