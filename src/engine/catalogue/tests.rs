use super::*;
use crate::engine::object::Text;

fn container(image: &str, args: &[&str], env: &[(&str, &str)]) -> Container<'static> {
    Container {
        name: "c".into(),
        image: Some(image.to_string().into()),
        args: Some(args.iter().map(|s| Text::from(s.to_string())).collect()),
        env: crate::engine::test_support::variables(env),
        ..Container::default()
    }
}

fn find<'c>(catalogue: &'c Catalogue, c: &Container) -> Option<&'c str> {
    let flags = command_line::flags(c);
    catalogue
        .find(
            c.image.as_deref().unwrap_or_default(),
            &ContainerFacts {
                flags: &flags,
                container: c,
            },
        )
        .map(|e| e.name.as_str())
}

#[test]
fn every_builtin_file_validates() {
    let mut total = 0;
    for (file, text) in BUILTIN {
        let entries = parse(file, text).unwrap_or_else(|e| panic!("{e}"));
        total += entries.len();
    }
    // The built-in catalogue is the union, with no ties between files.
    assert_eq!(Catalogue::builtin().entries().len(), total);
    assert!(total >= 100, "the catalogue covers {total} entries");
}

#[test]
fn every_builtin_entry_is_sound() {
    for entry in Catalogue::builtin().entries() {
        let at = &entry.name;
        assert!(entry.source.starts_with("https://"), "{at}: source");
        assert!(!entry.images.is_empty(), "{at}: images");
        for check in std::iter::once(&entry.readiness).chain(&entry.liveness) {
            match check {
                Check::Http { path, port, .. } => {
                    assert!(path.starts_with('/'), "{at}: path");
                    // An HTTP check only on a port that speaks HTTP.
                    if let IntOrString::Int(n) = port {
                        let spec = entry.ports.iter().find(|p| p.port == *n).unwrap();
                        assert!(
                            spec.protocol.speaks_http(),
                            "{at}: http on {}",
                            spec.protocol
                        );
                    }
                }
                Check::Grpc { port, .. } => {
                    assert!(
                        entry.ports.iter().any(|p| p.port == *port),
                        "{at}: grpc port"
                    );
                }
                Check::Exec { command } => assert!(!command[0].is_empty(), "{at}: exec"),
                Check::Tcp { .. } => {}
            }
        }
        assert_ne!(entry.liveness.as_ref(), Some(&entry.readiness), "{at}");
    }
}

#[test]
fn images_match_across_registries_mirrors_tags_and_digests() {
    let catalogue = Catalogue::builtin();
    struct Case {
        name: &'static str,
        image: &'static str,
        entry: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "Docker Hub, implicit",
            image: "prom/prometheus:v2.53.0",
            entry: Some("prometheus"),
        },
        Case {
            name: "quay, with a digest",
            image: "quay.io/prometheus/prometheus@sha256:0123",
            entry: Some("prometheus"),
        },
        Case {
            name: "a corporate mirror in front",
            image: "registry.corp:5000/mirror/bitnami/postgresql:16.4.0",
            entry: Some("postgresql-bitnami"),
        },
        Case {
            name: "the official image written out",
            image: "docker.io/library/postgres:16",
            entry: Some("postgresql"),
        },
        Case {
            name: "a publisher variant is its own entry",
            image: "bitnami/redis:7.2",
            entry: Some("redis-bitnami"),
        },
        Case {
            name: "a name that only contains a known one",
            image: "example.com/team/postgres-backup:1",
            entry: None,
        },
        Case {
            name: "an unknown image",
            image: "registry.corp/payments/api:3",
            entry: None,
        },
    ];
    for case in cases {
        let c = container(case.image, &[], &[]);
        assert_eq!(find(catalogue, &c), case.entry, "{}", case.name);
    }
}

const USER: &str = r#"
- name: payments
  images: ["registry.corp/payments/*"]
  ports: [{port: 8080, protocol: http}]
  readiness: {httpGet: {port: http, path: /healthz}}
  source: https://wiki.corp/payments/probes
- name: tagged
  images: [example/tagged]
  when: {tag: ">=2.0"}
  ports: [{port: 9000, protocol: http, flags: [--listen]}]
  readiness: {httpGet: {port: 9000, path: /v2/ready}}
  source: https://example.com/v2
- name: tagged-old
  images: [example/tagged]
  ports: [{port: 9000, protocol: http}]
  readiness: {httpGet: {port: 9000, path: /ready}}
  source: https://example.com/v1
- name: flagged
  images: [example/flagged]
  when: {flag: --enable-health}
  ports: [{port: 7000, protocol: http}]
  readiness: {httpGet: {port: 7000, path: /health}}
  source: https://example.com/flagged
- name: prometheus
  images: [prom/prometheus]
  ports: [{port: 9090, protocol: http}]
  readiness: {tcpSocket: {port: 9090}}
  source: https://wiki.corp/our-prometheus
"#;

#[test]
fn user_entries_add_and_replace() {
    let catalogue = Catalogue::with_user_file("mine.yaml", USER).unwrap();
    struct Case {
        name: &'static str,
        image: &'static str,
        args: &'static [&'static str],
        entry: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "a prefix pattern",
            image: "registry.corp/payments/api:3",
            args: &[],
            entry: Some("payments"),
        },
        Case {
            name: "a tag range that holds wins over the entry without one",
            image: "example/tagged:2.1",
            args: &[],
            entry: Some("tagged"),
        },
        Case {
            name: "below the range, the entry without a condition",
            image: "example/tagged:1.9",
            args: &[],
            entry: Some("tagged-old"),
        },
        Case {
            name: "no version in the tag: the entry without a condition",
            image: "example/tagged:latest",
            args: &[],
            entry: Some("tagged-old"),
        },
        Case {
            name: "a flag condition that holds",
            image: "example/flagged",
            args: &["--enable-health"],
            entry: Some("flagged"),
        },
        Case {
            name: "a flag condition that does not hold",
            image: "example/flagged",
            args: &[],
            entry: None,
        },
    ];
    for case in cases {
        let c = container(case.image, case.args, &[]);
        assert_eq!(find(&catalogue, &c), case.entry, "{}", case.name);
    }
    // A user entry replaces the built-in one of its name, and the rest stay.
    let prometheus = catalogue
        .entries()
        .iter()
        .find(|e| e.name == "prometheus")
        .unwrap();
    assert_eq!(prometheus.source, "https://wiki.corp/our-prometheus");
    assert_eq!(
        catalogue.entries().len(),
        Catalogue::builtin().entries().len() + 4
    );
}

#[test]
fn invalid_entries_are_refused_naming_the_entry_and_field() {
    struct Case {
        name: &'static str,
        error: &'static str,
    }
    let entry = |body: &str| format!("- name: x\n  images: [a/b]\n  source: https://d\n{body}");
    let cases: Vec<(Case, String)> = vec![
        (
            Case {
                name: "a path without a slash",
                error: "mine.yaml: entry \"x\": readiness.httpGet.path: an HTTP path must start with /",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {httpGet: {port: 80, path: ready}}\n"),
        ),
        (
            Case {
                name: "a port out of range",
                error: "mine.yaml: entry \"x\": ports[0].port: must be 1 to 65535",
            },
            entry("  ports: [{port: 70000, protocol: http}]\n  readiness: {tcpSocket: {port: 80}}\n"),
        ),
        (
            Case {
                name: "a probe on a port the entry does not list",
                error: "mine.yaml: entry \"x\": readiness.tcpSocket.port: 81 is not one of the entry's ports, so no flag could move it",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {tcpSocket: {port: 81}}\n"),
        ),
        (
            Case {
                name: "an empty exec command",
                error: "mine.yaml: entry \"x\": readiness.exec.command: needs a program to run",
            },
            entry("  readiness: {exec: {command: []}}\n"),
        ),
        (
            Case {
                name: "two handlers",
                error: "mine.yaml: entry \"x\": readiness: needs exactly one of httpGet, tcpSocket, grpc and exec",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {tcpSocket: {port: 80}, exec: {command: [a]}}\n"),
        ),
        (
            Case {
                name: "liveness the same as readiness",
                error: "mine.yaml: entry \"x\": liveness: is the same check as readiness",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {tcpSocket: {port: 80}}\n  liveness: {tcpSocket: {port: 80}}\n"),
        ),
        (
            Case {
                name: "an HTTP check on a database port",
                error: "mine.yaml: entry \"x\": readiness.httpGet: an HTTP check on port 5432, which speaks postgresql",
            },
            entry("  ports: [{port: 5432, protocol: postgresql}]\n  readiness: {httpGet: {port: 5432, path: /ready}}\n"),
        ),
        (
            Case {
                name: "an HTTPS check on a plain HTTP port",
                error: "mine.yaml: entry \"x\": liveness.httpGet: an HTTPS check on port 80, which speaks http",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {tcpSocket: {port: 80}}\n  liveness: {httpGet: {port: 80, path: /live, scheme: HTTPS}}\n"),
        ),
        (
            Case {
                name: "a gRPC check on an HTTP port",
                error: "mine.yaml: entry \"x\": readiness.grpc: a gRPC check on port 80, which speaks http",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {grpc: {port: 80}}\n"),
        ),
        (
            Case {
                name: "a protocol probegate does not know",
                error: "mine.yaml: entry \"x\": ports[0].protocol: \"gopher\" is not a protocol probegate knows",
            },
            entry("  ports: [{port: 70, protocol: gopher}]\n  readiness: {tcpSocket: {port: 70}}\n"),
        ),
        (
            Case {
                name: "an unknown field",
                error: "mine.yaml: entry \"x\": timeout: unknown field `timeout`",
            },
            entry("  timeout: 3\n  readiness: {exec: {command: [a]}}\n"),
        ),
        (
            Case {
                name: "a number written as text",
                error: "mine.yaml: entry \"x\": startupSeconds: invalid type: string \"600\", expected i64",
            },
            entry("  startupSeconds: \"600\"\n  readiness: {exec: {command: [a]}}\n"),
        ),
        (
            Case {
                name: "an unknown field inside a handler",
                error: "mine.yaml: entry \"x\": readiness.httpGet.host: unknown field `host`",
            },
            entry("  ports: [{port: 80, protocol: http}]\n  readiness: {httpGet: {port: 80, path: /r, host: a}}\n"),
        ),
        (
            Case {
                name: "a tag in the image",
                error: "mine.yaml: entry \"x\": images: \"a/b:1\": name the repository without a tag",
            },
            "- name: x\n  images: [\"a/b:1\"]\n  source: https://d\n  readiness: {exec: {command: [a]}}\n".to_owned(),
        ),
        (
            Case {
                name: "a bad tag range",
                error: "mine.yaml: entry \"x\": when.tag: starts with >=, >, <=, < or =",
            },
            entry("  when: {tag: \"2.0\"}\n  readiness: {exec: {command: [a]}}\n"),
        ),
        (
            Case {
                name: "a source that is no address",
                error: "mine.yaml: entry \"x\": source: must be the address",
            },
            "- name: x\n  images: [a/b]\n  source: the docs\n  readiness: {exec: {command: [a]}}\n".to_owned(),
        ),
        (
            Case {
                name: "a variable the webhook never reads",
                error: "mine.yaml: entry \"x\": when.env: DATABASE_URL is not a variable the webhook reads",
            },
            entry("  when: {env: DATABASE_URL}\n  readiness: {exec: {command: [a]}}\n"),
        ),
        (
            Case {
                name: "not a list",
                error: "mine.yaml: expected one YAML document holding a list of entries",
            },
            "name: x\n".to_owned(),
        ),
        (
            Case {
                name: "not YAML",
                error: "mine.yaml: not valid YAML",
            },
            "- [".to_owned(),
        ),
    ];
    for (case, text) in cases {
        let error = Catalogue::with_user_file("mine.yaml", &text)
            .err()
            .unwrap_or_else(|| panic!("{}: accepted", case.name))
            .to_string();
        assert!(
            error.starts_with(case.error),
            "{}: {error}\n  wanted: {}",
            case.name,
            case.error
        );
    }
}

#[test]
fn two_unconditional_entries_on_one_image_are_refused() {
    let text = "- name: a\n  images: [x/y]\n  source: https://d\n  readiness: {exec: {command: [a]}}\n- name: b\n  images: [x/y]\n  source: https://d\n  readiness: {exec: {command: [b]}}\n";
    let error = Catalogue::with_user_file("mine.yaml", text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "mine.yaml: entries \"a\" and \"b\" both match image \"x/y\" without a condition; give one a `when` or remove one"
    );
}

#[test]
fn a_users_entry_wins_over_a_built_in_one_for_the_same_image() {
    // Another name, the same image as the built-in `prometheus`: the user's comes first.
    let text = "- name: our-prometheus\n  images: [prom/prometheus]\n  ports: [{port: 9090, protocol: http}]\n  readiness: {httpGet: {port: 9090, path: /-/ready}}\n  liveness: {tcpSocket: {port: 9090}}\n  source: https://wiki.corp/prometheus\n";
    let catalogue = Catalogue::with_user_file("mine.yaml", text).unwrap();
    let c = container("PROM/Prometheus:v2.53.0", &[], &[]);
    assert_eq!(
        find(&catalogue, &c),
        Some("our-prometheus"),
        "case is ignored too"
    );
    assert_eq!(find(Catalogue::builtin(), &c), Some("prometheus"));
}
