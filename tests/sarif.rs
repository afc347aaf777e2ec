//! `probegate mutate -o sarif` through the real binary: the log validates against the
//! published SARIF 2.1.0 schema (the copy serde-sarif builds its types from), its results
//! point at the line where each object's document starts, and its exit codes are
//! `--check`'s.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use serde_json::Value;

fn mutate(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let args: Vec<&str> = std::iter::once("mutate")
        .chain(args.iter().copied())
        .collect();
    common::probegate(dir, &args, stdin.map(str::as_bytes))
}

/// A validator of `schema`. The published schema's pattern for `language` (of a run and of
/// a tool component) has a stray bracket (`...[a-zA-Z]{2}]?$`) that JSON Schema's strict
/// `regex` format refuses, so the schema does not pass its own meta-schema; that pattern is
/// read as ECMAScript's Annex B reads it (the bracket a literal), every other keyword as
/// published. probegate writes no `language`.
fn validator() -> jsonschema::Validator {
    const ERRATUM: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    let mut schema = schema();
    let mut fixed = 0;
    for definition in schema["definitions"].as_object_mut().unwrap().values_mut() {
        // `pointer_mut`, not indexing: indexing would write the path it looks for.
        if let Some(pattern) = definition.pointer_mut("/properties/language/pattern")
            && *pattern == ERRATUM
        {
            *pattern = Value::from(r"^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\]?$");
            fixed += 1;
        }
    }
    assert_eq!(fixed, 2, "the erratum is where it was");
    jsonschema::validator_for(&schema).unwrap()
}

/// OASIS's SARIF 2.1.0 schema, from the source of the serde-sarif crate in use, found
/// through `cargo metadata`.
fn schema() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "serde-sarif")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("serde-sarif is a dependency");
    let path = PathBuf::from(manifest).with_file_name("src/schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

const MANIFESTS: &str = "\
# a Deployment without probes, a Pod whose probe depends on metrics, and a CronJob
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example.com/web:1
        ports: [{name: http, containerPort: 8080}]
---

apiVersion: v1
kind: Pod
metadata:
  name: ovn
  namespace: shop
  annotations: {probegate.io/metrics-coupling: deny}
spec:
  containers:
  - name: ovn
    image: kubeovn/kube-ovn:v1.12.0
    args: [--enable-metrics=false]
    ports: [{name: metrics, containerPort: 10660}]
    readinessProbe: {tcpSocket: {port: 10660}}
---
apiVersion: batch/v1beta1
kind: CronJob
metadata: {name: old, namespace: shop}
spec: {schedule: '* * * * *', jobTemplate: {spec: {template: {spec: {containers: []}}}}}
";

#[test]
fn the_log_validates_and_points_at_each_documents_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::write(dir.path().join("deploy/app.yaml"), MANIFESTS).unwrap();
    let out = mutate(dir.path(), &["-f", "deploy", "-o", "sarif"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "findings fail the run, as with --check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let validator = validator();
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "not valid SARIF 2.1.0: {errors:#?}\n{log:#}"
    );

    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // (rule, file, line, level) of every result, in order.
    let results: Vec<(String, String, i64, String)> = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let index = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index], r["ruleId"], "ruleIndex names the rule: {r}");
            let location = &r["locations"][0]["physicalLocation"];
            (
                r["ruleId"].as_str().unwrap().to_owned(),
                location["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                location["region"]["startLine"].as_i64().unwrap(),
                r["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let at = |rule: &str, line: i64, level: &str| {
        (
            rule.to_owned(),
            "deploy/app.yaml".to_owned(),
            line,
            level.to_owned(),
        )
    };
    assert!(
        results.contains(&at("probes-would-be-added", 2, "note")),
        "{results:#?}"
    );
    assert!(
        results.contains(&at("would-be-denied", 16, "error")),
        "{results:#?}"
    );
    assert!(
        results.contains(&at("removed-api-version", 30, "error")),
        "{results:#?}"
    );
    let denied = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "would-be-denied")
        .unwrap();
    let text = denied["message"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("deploy/app.yaml: document 2: Pod shop/ovn: ") && text.contains("10660"),
        "the message names the object and says why: {text}"
    );
}

#[test]
fn a_clean_run_is_an_empty_log_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let clean =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";
    let out = mutate(dir.path(), &["-f", "-", "-o", "sarif"], Some(clean));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
    assert!(validator().is_valid(&log));
}

#[test]
fn findings_from_standard_input_carry_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = mutate(dir.path(), &["-f", "-", "-o", "sarif"], Some(MANIFESTS));
    assert_eq!(out.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(
        results.iter().all(|r| r.get("locations").is_none()),
        "{log:#}"
    );
    assert!(validator().is_valid(&log));
}
