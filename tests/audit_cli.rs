//! `probegate audit`'s error paths through the real binary, without a cluster: each exits 2
//! with a message saying what is wrong. (Its work against a real API server, and a missing
//! permission, are in the end-to-end suite.)

use std::process::{Command, Output};

fn audit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_probegate"))
        .arg("audit")
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A kubeconfig for a loopback port nothing listens on.
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: here\n  context: {{cluster: c, user: u, namespace: shop}}\ncurrent-context: here\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn errors_exit_2_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    let missing = dir.path().join("nope").to_string_lossy().into_owned();
    // (case, args, what stderr must say)
    let cases: [(&str, Vec<&str>, &str); 8] = [
        (
            "missing kubeconfig",
            vec!["--kubeconfig", &missing],
            "cannot load the kubeconfig",
        ),
        (
            "unknown context",
            vec!["--kubeconfig", kubeconfig, "--context", "elsewhere"],
            "cannot load the kubeconfig",
        ),
        // The context's namespace is read when -n is not given.
        (
            "unreachable, context namespace",
            vec!["--kubeconfig", kubeconfig, "--check"],
            "cannot get namespaces in namespace \"shop\"",
        ),
        (
            "unreachable, all namespaces",
            vec!["--kubeconfig", kubeconfig, "-A"],
            "cannot list namespaces cluster-wide",
        ),
        (
            "bad --stuck-after",
            vec!["--kubeconfig", kubeconfig, "--stuck-after", "soon"],
            "expected a duration such as 10m",
        ),
        (
            "zero --stuck-after",
            vec!["--kubeconfig", kubeconfig, "--stuck-after", "0s"],
            "at least 1s",
        ),
        // Nothing is suggested from a cluster that could not be read.
        (
            "unreachable, --suggest",
            vec!["--kubeconfig", kubeconfig, "--suggest", "-o", "yaml"],
            "cannot get namespaces in namespace \"shop\"",
        ),
        (
            "-n with -A",
            vec!["--kubeconfig", kubeconfig, "-n", "a", "-A"],
            "cannot be used with",
        ),
    ];
    for (case, args, says) in cases {
        let out = audit(&args);
        assert_eq!(out.status.code(), Some(2), "{case}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{case}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{case}: no report");
    }
}
