//! Golden fixtures for `probegate mutate`, run through the real binary.
//!
//! Each folder under `tests/golden/` holds `input.yaml`, the expected `expected.yaml`
//! (stdout) and `warnings.txt` (stderr), and optionally `args` (extra flags) and `exit`
//! (expected exit code, 0 when absent). `PROBEGATE_BLESS=1` rewrites the expectations;
//! review the diff before committing it.

mod common;

use std::path::Path;
use std::process::Command;

use common::probegate;

use probegate::engine::Object;
use probegate::engine::kinds::split_api_version;
use probegate::manifest;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn extra_args(case: &Path) -> Vec<String> {
    std::fs::read_to_string(case.join("args"))
        .map(|a| a.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[test]
fn golden_outputs_match() {
    let bless = std::env::var_os("PROBEGATE_BLESS").is_some();
    for case in common::golden_cases() {
        let extra = extra_args(&case);
        let mut args = vec!["mutate", "-f", "input.yaml"];
        args.extend(extra.iter().map(String::as_str));
        let out = probegate(&case, &args, None);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let code = out.status.code().unwrap();
        if bless {
            std::fs::write(case.join("expected.yaml"), &stdout).unwrap();
            std::fs::write(case.join("warnings.txt"), &stderr).unwrap();
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy();
        let expected_exit: i32 = std::fs::read_to_string(case.join("exit"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0);
        assert_eq!(code, expected_exit, "{name}: exit code; stderr:\n{stderr}");
        assert_eq!(stdout, read(&case.join("expected.yaml")), "{name}: stdout");
        assert_eq!(stderr, read(&case.join("warnings.txt")), "{name}: stderr");
    }
}

#[test]
fn output_still_decodes_as_its_kind() {
    for case in common::golden_cases() {
        let documents =
            manifest::read_paths(&[case.join("expected.yaml")], &mut std::io::empty()).unwrap();
        for document in documents {
            let api_version = document.value["apiVersion"].as_str().unwrap().to_owned();
            let kind = document.value["kind"].as_str().unwrap().to_owned();
            let (group, version) = split_api_version(&api_version);
            Object::decode(group, version, &kind, &document.value)
                .unwrap_or_else(|e| panic!("{}: {e}", document.origin));
        }
    }
}

#[test]
fn mutate_is_idempotent_and_check_passes_clean_output() {
    for case in common::golden_cases() {
        let name = case.file_name().unwrap().to_string_lossy();
        let extra = extra_args(&case);
        let expected = read(&case.join("expected.yaml"));
        let mut args = vec!["mutate", "-f", "-", "--check"];
        args.extend(extra.iter().map(String::as_str));
        let again = probegate(&case, &args, Some(expected.as_bytes()));
        assert_eq!(
            String::from_utf8(again.stdout).unwrap(),
            expected,
            "{name}: second run changed the output"
        );
        let warnings = read(&case.join("warnings.txt"));
        // The same warnings, now about stdin: the output changed nothing they are about. An
        // AdmissionReview in the input is left out of the output, and so is its note.
        let warnings: String = warnings
            .lines()
            .filter(|l| !l.starts_with("Note: left out "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            String::from_utf8(again.stderr).unwrap(),
            warnings.replace("input.yaml: ", "-: "),
            "{name}: second run's warnings"
        );
        // Warnings about the manifest itself persist; with none, the output is clean. A note
        // (objects outside the webhook's reach) is no finding.
        let findings = warnings
            .lines()
            .any(|l| l.starts_with("Warning: ") || l.starts_with("Denied: "));
        let expected_code = if findings { 1 } else { 0 };
        assert_eq!(
            again.status.code(),
            Some(expected_code),
            "{name}: --check on the output"
        );
    }
}

#[test]
fn check_flags_manifests_that_would_change() {
    let case =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/controller-runtime-operator");
    let out = probegate(&case, &["mutate", "-f", "input.yaml", "--check"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty());
}

#[test]
fn check_passes_opted_out_workloads() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/workload-opt-out");
    let out = probegate(&case, &["mutate", "-f", "input.yaml", "--check"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The webhook still copies the opt-out down, so the pods are left alone as well.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let vendor_app = stdout.split("---\n").nth(2).unwrap();
    assert!(
        vendor_app.contains("      annotations:\n        probegate.io/inject: disabled\n"),
        "{vendor_app}"
    );
}

#[test]
fn excluded_namespaces_are_mutated_when_asked() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/webhook-scope");
    let out = probegate(
        &case,
        &[
            "mutate",
            "-f",
            "input.yaml",
            "--include-excluded-namespaces",
            "-o",
            "json",
        ],
        None,
    );
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for item in list["items"].as_array().unwrap() {
        let container = &item["spec"]["template"]["spec"]["containers"][0];
        assert!(container["readinessProbe"].is_object(), "{item}");
    }
}

#[test]
fn patch_output_applies_to_the_input() {
    for case in common::golden_cases() {
        let name = case.file_name().unwrap().to_string_lossy();
        if case.join("exit").exists() {
            continue;
        }
        let extra = extra_args(&case);
        let mut args = vec!["mutate", "-f", "input.yaml", "-o", "patch"];
        args.extend(extra.iter().map(String::as_str));
        let out = probegate(&case, &args, None);
        assert!(out.status.success(), "{name}");
        let patches: Vec<json_patch::Patch> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        // An AdmissionReview in the input is no manifest: mutate leaves it out.
        let inputs: Vec<_> =
            manifest::read_paths(&[case.join("input.yaml")], &mut std::io::empty())
                .unwrap()
                .into_iter()
                .filter(|d| !probegate::offline::is_review(&d.value))
                .collect();
        let expected =
            manifest::read_paths(&[case.join("expected.yaml")], &mut std::io::empty()).unwrap();
        let mut patches = patches.into_iter();
        assert_eq!(inputs.len(), expected.len(), "{name}: documents in and out");
        for (mut input, expected) in inputs.into_iter().zip(expected) {
            if input.value != expected.value {
                let patch = patches
                    .next()
                    .unwrap_or_else(|| panic!("{name}: a patch is missing"));
                json_patch::patch(&mut input.value, &patch).unwrap();
            }
            assert_eq!(input.value, expected.value, "{name}: {}", input.origin);
        }
        assert!(
            patches.next().is_none(),
            "{name}: more patches than mutated objects"
        );
    }
}

#[test]
fn json_output_is_a_list_for_several_documents() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/app-live-ready");
    let out = probegate(&case, &["mutate", "-f", "input.yaml", "-o", "json"], None);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let container = &list["items"][1]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/live");
    // No startup-path is set: the startup probe guards liveness, so it checks what liveness checks.
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/live");
    assert_eq!(container["startupProbe"]["httpGet"]["port"], "http");
}

#[test]
fn list_documents_are_mutated_item_by_item() {
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
         "spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80}]}]}}]}"#;
    let out = probegate(
        Path::new("."),
        &["mutate", "-f", "-", "-o", "json"],
        Some(list.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["kind"], "List");
    assert_eq!(
        value["items"][0],
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    );
    assert_eq!(
        value["items"][1]["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"],
        80
    );
}

#[test]
fn bad_input_exits_2_naming_file_and_document_and_prints_nothing() {
    let dir = std::env::temp_dir().join(format!("probegate-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec: {containers: [{name: a, ports: [{containerPort: 80}]}]}\n";
    // (file, content, expected message)
    let cases = [
        (
            "broken.yaml",
            format!("{pod}---\nkind: [\n"),
            "error: broken.yaml: document 2: not valid YAML",
        ),
        (
            "scalar.yaml",
            format!("{pod}---\n42\n"),
            "error: scalar.yaml: document 2: expected an object (a mapping with apiVersion and kind), found a number",
        ),
        (
            "nokind.yaml",
            format!("{pod}---\napiVersion: v1\n"),
            "error: nokind.yaml: document 2: the object has no kind",
        ),
        (
            "misfit.yaml",
            format!("{pod}---\napiVersion: apps/v1\nkind: Deployment\nspec: {{replicas: many}}\n"),
            "error: misfit.yaml: document 2: the object does not fit Deployment: ",
        ),
        (
            "badsvc.yaml",
            format!("{pod}---\napiVersion: v1\nkind: Service\nspec: {{ports: 443}}\n"),
            "error: badsvc.yaml: document 2: the object does not fit Service: ",
        ),
        (
            "badlist.yaml",
            "apiVersion: v1\nkind: List\nitems: [3]\n".to_string(),
            "error: badlist.yaml: document 1, item 1: expected an object with apiVersion and kind",
        ),
        (
            "badjson.json",
            "{\"apiVersion\": ".to_string(),
            "error: badjson.json: document 1: not valid JSON",
        ),
    ];
    for (file, content, expected) in &cases {
        std::fs::write(dir.join(file), content).unwrap();
        let out = probegate(&dir, &["mutate", "-f", file], None);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.starts_with(expected), "{file}: {stderr}");
        assert!(out.stdout.is_empty(), "{file}: half-written output");
    }
    let missing = probegate(&dir, &["mutate", "-f", "absent.yaml"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(missing.stderr).unwrap(),
        "error: absent.yaml: no such file or directory\n"
    );

    if std::path::Path::new("/dev/full").exists() {
        std::fs::write(dir.join("one.yaml"), pod).unwrap();
        let full = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .current_dir(&dir)
            .args(["mutate", "-f", "one.yaml"])
            .stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
            .output()
            .unwrap();
        assert_eq!(
            full.status.code(),
            Some(2),
            "a failed write must not pass for success"
        );
        assert!(String::from_utf8_lossy(&full.stderr).contains("cannot write the output"));
    }

    let bad_flag = probegate(
        &dir,
        &["mutate", "-f", "-", "--namespace-annotation", "novalue"],
        None,
    );
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(
        String::from_utf8(bad_flag.stderr)
            .unwrap()
            .contains("expected KEY=VALUE")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn namespace_annotation_flag_applies_under_namespace_documents() {
    let input = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations:\n    probegate.io/probes: readiness\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: b}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n";
    let out = probegate(
        Path::new("."),
        &[
            "mutate",
            "-f",
            "-",
            "-o",
            "json",
            "--namespace-annotation",
            "probegate.io/probes=startup",
        ],
        Some(input.as_bytes()),
    );
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records: Vec<&str> = list["items"].as_array().unwrap()[1..]
        .iter()
        .map(|pod| {
            pod["metadata"]["annotations"]["probegate.io/injected"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(records, ["c=readiness", "c=startup"]);
}

/// The README's first command prints what the webhook would admit (its stderr and exit
/// codes are tests/docs.rs's, read from the README): the checkout app with its gate, the
/// PostgreSQL example with PostgreSQL's own check and no HTTP path, and every document but
/// the AdmissionReviews beside them.
#[test]
fn the_first_run_shows_what_probegate_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = probegate(root, &["mutate", "-f", "examples/"], None);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains("AdmissionReview"),
        "the review is not printed as a manifest"
    );
    let objects = manifest::read_paths(&[root.join("examples")], &mut std::io::empty()).unwrap();
    let printed: Vec<serde_json::Value> = probegate::yaml::load_all(&stdout).unwrap();
    let db = printed
        .iter()
        .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "orders-db")
        .expect("the PostgreSQL example is printed");
    let postgres = &db["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        postgres["readinessProbe"]["exec"]["command"][0], "pg_isready",
        "{postgres}"
    );
    assert!(
        !postgres.to_string().contains("httpGet"),
        "no HTTP check on PostgreSQL's port: {postgres}"
    );
    let gated = printed
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "checkout")
        .unwrap();
    assert_eq!(
        gated["spec"]["template"]["spec"]["readinessGates"][0]["conditionType"],
        "target-health.elbv2.k8s.aws/k8s-shop-checkout-0a1b2c3d4e"
    );
    let worker = printed
        .iter()
        .find(|o| o["metadata"]["name"] == "order-worker")
        .unwrap();
    let spec = &worker["spec"]["template"]["spec"];
    assert!(
        spec["readinessGates"].is_null() && spec["containers"][0]["readinessProbe"].is_object(),
        "the worker gets probes and no gate: {spec}"
    );
    let operator = printed
        .iter()
        .find(|o| o["metadata"]["name"] == "widget-operator")
        .expect("the operator example is printed");
    assert_eq!(
        operator["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/readyz",
        "the operator is probed on the health server its flags declare"
    );
    let reviews = objects
        .iter()
        .filter(|d| probegate::offline::is_review(&d.value))
        .count();
    assert_eq!(reviews, 2, "examples/reviews/ holds two reviews");
    assert_eq!(
        printed.len() + reviews,
        objects.len(),
        "every document but the reviews is printed"
    );
}
