//! Probe linters never rate probegate's output worse than its input: kube-score (pinned in
//! `.ci/install-tools.sh`) scores every golden input and its expected output, and no probe
//! check may grade an object lower after probegate than before.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// kube-score's checks about probes.
const PROBE_CHECKS: [&str; 2] = ["pod-probes", "pod-probes-identical"];
/// kube-score's grade for a critical finding (OK is 10).
const CRITICAL: i64 = 1;

/// (object, check) to grade, for every probe check kube-score did not skip.
fn probe_grades(manifest: &[u8]) -> BTreeMap<(String, String), i64> {
    let mut child = Command::new(common::kube_score())
        .args(["score", "--output-format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(manifest).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    // 1 means it found something critical, which is an answer, not a failure.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "kube-score failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut grades = BTreeMap::new();
    for object in &objects {
        let name = object["object_name"].as_str().unwrap().to_owned();
        for check in object["checks"].as_array().into_iter().flatten() {
            let id = check["check"]["id"].as_str().unwrap();
            if PROBE_CHECKS.contains(&id) && check["skipped"] != true {
                grades.insert(
                    (name.clone(), id.to_owned()),
                    check["grade"].as_i64().unwrap(),
                );
            }
        }
    }
    grades
}

#[test]
fn probegate_output_is_never_rated_worse_than_its_input() {
    let mut scored = 0;
    for case in common::golden_cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let before = probe_grades(&std::fs::read(case.join("input.yaml")).unwrap());
        let after = probe_grades(&std::fs::read(case.join("expected.yaml")).unwrap());
        for (key, grade) in &after {
            let was = before.get(key).copied();
            assert!(
                was.is_none_or(|was| *grade >= was),
                "{name}: {key:?} graded {grade} after probegate, {was:?} before"
            );
            assert!(
                *grade > CRITICAL || was == Some(CRITICAL),
                "{name}: {key:?} is critical only after probegate"
            );
        }
        scored += after.len();
    }
    // Probe checks run only on pods a Service targets: make sure enough of them did.
    assert!(scored >= 8, "only {scored} probe checks were scored");
}

#[test]
fn the_plain_web_app_goes_from_critical_to_ok() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plain-web-with-service");
    let key = |check: &str| {
        (
            "Deployment/apps/v1/default/web".to_owned(),
            check.to_owned(),
        )
    };
    let before = probe_grades(&std::fs::read(case.join("input.yaml")).unwrap());
    assert_eq!(
        before[&key("pod-probes")],
        CRITICAL,
        "missing readinessProbe"
    );
    let after = probe_grades(&std::fs::read(case.join("expected.yaml")).unwrap());
    // Almost OK: kube-score only notes that there is no liveness probe.
    assert_eq!(after[&key("pod-probes")], 7);
    assert_eq!(after[&key("pod-probes-identical")], 10);
}

#[test]
fn asking_for_identical_liveness_is_what_the_linter_flags() {
    // The opt-in exists for users who want it; this shows the check above can fail.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plain-web-with-service");
    let out = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(["mutate", "-f"])
        .arg(case.join("input.yaml"))
        .args([
            "--namespace-annotation",
            "probegate.io/identical-liveness=enabled",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let grades = probe_grades(&out.stdout);
    assert_eq!(
        grades[&(
            "Deployment/apps/v1/default/web".to_owned(),
            "pod-probes-identical".to_owned()
        )],
        CRITICAL
    );
}
