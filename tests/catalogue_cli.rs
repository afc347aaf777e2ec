//! `--catalogue`, `probegate catalogue` and `mutate --explain`, through the real binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn probegate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_probegate"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run refused before it reads its input closes the pipe: that is no failure here.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    if let Err(error) = written {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const LEDGER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: ledger, namespace: payments}\n\
spec:\n  containers:\n  - name: ledger\n    image: registry.corp/payments/ledger:7\n    ports: [{name: http, containerPort: 8080}]\n";

const CATALOGUE: &str = "- name: payments\n  images: [\"registry.corp/payments/*\"]\n  ports: [{port: 8080, protocol: http}]\n  readiness: {httpGet: {port: http, path: /healthz}}\n  source: https://wiki.corp/payments/probes\n";

#[test]
fn mutate_uses_a_users_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalogue.yaml");
    std::fs::write(&file, CATALOGUE).unwrap();
    let out = probegate(
        &[
            "mutate",
            "-f",
            "-",
            "-o",
            "json",
            "--catalogue",
            file.to_str().unwrap(),
        ],
        LEDGER,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pod: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["tcpSocket"]["port"], "http");
    assert!(
        pod["metadata"]["annotations"]["probegate.io/injected"]
            .as_str()
            .unwrap()
            .contains("evidence=ledger(catalogue=payments)")
    );
    // Without it, the same Pod gets a port check only.
    let out = probegate(&["mutate", "-f", "-", "-o", "json"], LEDGER);
    let pod: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pod["spec"]["containers"][0]["readinessProbe"]["tcpSocket"].is_object());
}

#[test]
fn a_catalogue_that_does_not_load_is_exit_2_with_the_entry_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, CATALOGUE.replace("path: /healthz", "path: healthz")).unwrap();
    let missing = dir.path().join("missing.yaml");
    for (file, error) in [
        (
            &bad,
            "entry \"payments\": readiness.httpGet.path: an HTTP path must start with /",
        ),
        (&missing, "cannot read the catalogue"),
    ] {
        let file = file.to_str().unwrap();
        for args in [
            vec!["mutate", "-f", "-", "--catalogue", file],
            vec!["catalogue", "--catalogue", file],
            // The catalogue is read before any cluster is looked for.
            vec!["audit", "--kubeconfig", "/nonexistent", "--catalogue", file],
        ] {
            let out = probegate(&args, LEDGER);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(error) && stderr.contains(file),
                "{args:?}: {stderr}"
            );
        }
    }
}

#[test]
fn the_catalogue_command_lists_entries_and_finds_an_image() {
    let out = probegate(&["catalogue"], "");
    assert!(out.status.success());
    let listing = text(&out.stdout);
    assert!(listing.starts_with("NAME"), "{listing}");
    let count: usize = listing
        .lines()
        .last()
        .and_then(|l| l.strip_suffix(" entries"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(count >= 100, "{count} entries");

    let out = probegate(
        &[
            "catalogue",
            "--image",
            "quay.io/prometheus/prometheus:v3.0.0",
        ],
        "",
    );
    assert!(out.status.success());
    let entry = text(&out.stdout);
    assert!(entry.contains("name:       prometheus\n"), "{entry}");
    assert!(
        entry.contains("readiness:  HTTP 9090:/-/ready\n"),
        "{entry}"
    );
    assert!(entry.contains("source:     https://"), "{entry}");

    let out = probegate(&["catalogue", "--image", "registry.corp/unknown:1"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no catalogue entry matches image"));

    // A user's entry is listed with the built-in ones.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalogue.yaml");
    std::fs::write(&file, CATALOGUE).unwrap();
    let out = probegate(&["catalogue", "--catalogue", file.to_str().unwrap()], "");
    let listing = text(&out.stdout);
    assert!(
        listing.lines().any(|l| l.starts_with("payments ")),
        "{listing}"
    );
    assert!(
        listing.ends_with(&format!("{} entries\n", count + 1)),
        "{listing}"
    );
}

#[test]
fn explain_says_what_decided_each_container_or_why_nothing_did() {
    let input = format!(
        "{LEDGER}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: db, namespace: payments}}\n\
spec:\n  containers:\n  - name: db\n    image: postgres:16\n    ports: [{{containerPort: 5432}}]\n"
    );
    let out = probegate(&["mutate", "-f", "-", "--explain"], &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let explained = text(&out.stdout);
    for line in [
        "-: document 1: Pod payments/ledger",
        "  container \"ledger\": adds readiness by ports; liveness held back, as it would repeat readiness",
        "    image \"registry.corp/payments/ledger:7\" matches no catalogue entry",
        "    no health server flag (--health-probe-bind-address, --health-addr, --secure-port)",
        "-: document 2: Pod payments/db",
        "  container \"db\": adds liveness, readiness, startup by catalogue=postgresql",
        "    image \"postgres:16\" matches catalogue entry \"postgresql\" (https://www.postgresql.org/docs/current/app-pg-isready.html)",
    ] {
        assert!(
            explained.lines().any(|l| l == line),
            "no line {line:?} in\n{explained}"
        );
    }
    // --explain prints no manifests.
    assert!(!explained.contains("apiVersion"));
}
