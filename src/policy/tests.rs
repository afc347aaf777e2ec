use super::*;

fn layer(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_without_annotations() {
    let (settings, warnings) = Settings::resolve(&[]);
    assert_eq!(settings, Settings::default());
    assert!(warnings.is_empty());
    assert_eq!(settings.probes, [ProbeKind::Liveness, ProbeKind::Readiness]);
    assert_eq!(settings.handler, Handler::Tcp);
    assert_eq!(settings.metrics_coupling, CouplingMode::Warn);
}

#[test]
fn most_specific_layer_wins() {
    let namespace = layer(&[(PROBES, "liveness"), (PERIOD_SECONDS, "20")]);
    let workload = layer(&[(PROBES, "readiness,startup")]);
    let (settings, warnings) = Settings::resolve(&[&namespace, &workload]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(settings.probes, [ProbeKind::Readiness, ProbeKind::Startup]);
    assert_eq!(settings.timings.period_seconds, 20);
}

#[test]
fn bad_values_fall_back_to_the_next_level_with_a_warning() {
    struct Case {
        name: &'static str,
        key: &'static str,
        bad: &'static str,
        /// A good value on the level below.
        good: &'static str,
        /// What the warning must say.
        why: &'static str,
    }
    let cases = [
        Case {
            name: "inject neither enabled nor disabled",
            key: INJECT,
            bad: "maybe",
            good: "disabled",
            why: "expected enabled or disabled",
        },
        Case {
            name: "an unknown probe kind in the list",
            key: PROBES,
            bad: "liveness,sometimes",
            good: "startup",
            why: "\"sometimes\"",
        },
        Case {
            name: "an unknown probe handler",
            key: PROBE_HANDLER,
            bad: "exec",
            good: "grpc",
            why: "expected tcp, http or grpc",
        },
        Case {
            name: "a liveness path without a leading slash",
            key: LIVENESS_PATH,
            bad: "healthz",
            good: "/livez",
            why: "must start with /",
        },
        Case {
            name: "a readiness path with a space",
            key: READINESS_PATH,
            bad: "/ready now",
            good: "/ready",
            why: "spaces",
        },
        Case {
            name: "a port number out of range",
            key: PORT,
            bad: "70000",
            good: "8080",
            why: "between 1 and 65535",
        },
        Case {
            name: "a port name Kubernetes would refuse",
            key: PORT,
            bad: "Not_A_Name",
            good: "http",
            why: "port number or a container port name",
        },
        Case {
            name: "a scheme in lower case",
            key: SCHEME,
            bad: "https",
            good: "HTTPS",
            why: "expected HTTP or HTTPS",
        },
        Case {
            name: "a negative initial delay",
            key: INITIAL_DELAY_SECONDS,
            bad: "-5",
            good: "0",
            why: "at least 0",
        },
        Case {
            name: "a zero period",
            key: PERIOD_SECONDS,
            bad: "0",
            good: "15",
            why: "at least 1",
        },
        Case {
            name: "a fractional timeout",
            key: TIMEOUT_SECONDS,
            bad: "1.5",
            good: "2",
            why: "whole number",
        },
        Case {
            name: "a failure threshold in words",
            key: FAILURE_THRESHOLD,
            bad: "three",
            good: "4",
            why: "whole number",
        },
        Case {
            name: "an unknown metrics-coupling mode",
            key: METRICS_COUPLING,
            bad: "loud",
            good: "deny",
            why: "expected warn, deny or off",
        },
        Case {
            name: "a negative metrics port in the list",
            key: METRICS_PORTS,
            bad: "9090,-1",
            good: "9091",
            why: "\"-1\"",
        },
        Case {
            name: "identical-liveness as yes",
            key: IDENTICAL_LIVENESS,
            bad: "yes",
            good: "enabled",
            why: "expected enabled or disabled",
        },
        Case {
            name: "zero startup seconds",
            key: STARTUP_SECONDS,
            bad: "0",
            good: "600",
            why: "at least 1",
        },
        Case {
            name: "none listed with other readiness gates",
            key: READINESS_GATES,
            bad: "example.com/a, none",
            good: "example.com/b",
            why: "cannot be listed with others",
        },
        Case {
            name: "a skipped container name Kubernetes would refuse",
            key: SKIP_CONTAINERS,
            bad: "Log_Shipper",
            good: "log-shipper",
            why: "\"Log_Shipper\" is not a container name",
        },
    ];
    for case in cases {
        let (name, key, bad, good) = (case.name, case.key, case.bad, case.good);
        let base = layer(&[(key, good)]);
        let top = layer(&[(key, bad)]);
        let (with_bad, warnings) = Settings::resolve(&[&base, &top]);
        let (only_good, _) = Settings::resolve(&[&base]);
        assert_eq!(
            with_bad, only_good,
            "{name}: {key}={bad} must fall back to {good}"
        );
        assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
        assert!(warnings[0].contains(key), "{name}: {}", warnings[0]);
        assert!(warnings[0].contains(bad), "{name}: {}", warnings[0]);
        assert!(warnings[0].contains(case.why), "{name}: {}", warnings[0]);
    }
}

#[test]
fn bad_value_without_a_level_below_uses_the_default() {
    let top = layer(&[(FAILURE_THRESHOLD, "-1")]);
    let (settings, warnings) = Settings::resolve(&[&top]);
    assert_eq!(
        settings.timings.failure_threshold,
        DEFAULT_FAILURE_THRESHOLD
    );
    assert_eq!(warnings.len(), 1);
}

#[test]
fn validity_matches_resolution() {
    struct Case {
        name: &'static str,
        key: &'static str,
        value: &'static str,
        valid: bool,
    }
    let cases = [
        Case {
            name: "a good period",
            key: PERIOD_SECONDS,
            value: "15",
            valid: true,
        },
        Case {
            name: "a negative period",
            key: PERIOD_SECONDS,
            value: "-5",
            valid: false,
        },
        Case {
            name: "an unknown handler",
            key: PROBE_HANDLER,
            value: "exec",
            valid: false,
        },
        Case {
            name: "inject disabled",
            key: INJECT,
            value: "disabled",
            valid: true,
        },
        Case {
            name: "an unknown key",
            key: "probegate.io/timeout",
            value: "3",
            valid: false,
        },
    ];
    for case in cases {
        let name = case.name;
        assert_eq!(is_valid(case.key, case.value), case.valid, "{name}");
        let layer = layer(&[(case.key, case.value)]);
        let (_, warnings) = Settings::resolve(&[&layer]);
        assert_eq!(warnings.is_empty(), case.valid, "{name}: {warnings:?}");
    }
}

#[test]
fn parses_every_key() {
    let all = layer(&[
        (INJECT, "disabled"),
        (PROBES, "startup, liveness,liveness"),
        (PROBE_HANDLER, "grpc"),
        (LIVENESS_PATH, "/live"),
        (READINESS_PATH, "/ready"),
        (STARTUP_PATH, "/started"),
        (PORT, "health"),
        (SCHEME, "HTTPS"),
        (INITIAL_DELAY_SECONDS, "0"),
        (PERIOD_SECONDS, "7"),
        (TIMEOUT_SECONDS, "2"),
        (FAILURE_THRESHOLD, "5"),
        (READINESS_GATES, " a.example.com/x , b ,"),
        (METRICS_COUPLING, "off"),
        (METRICS_PORTS, "9090, metrics"),
        (IDENTICAL_LIVENESS, "enabled"),
        (STARTUP_SECONDS, "900"),
        (SKIP_CONTAINERS, "istio-proxy, log-shipper"),
    ]);
    let (s, warnings) = Settings::resolve(&[&all]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(!s.inject);
    assert_eq!(s.probes, [ProbeKind::Liveness, ProbeKind::Startup]);
    assert_eq!(s.handler, Handler::Grpc);
    assert_eq!(s.path(ProbeKind::Liveness), Some("/live"));
    assert_eq!(s.path(ProbeKind::Readiness), Some("/ready"));
    assert_eq!(s.path(ProbeKind::Startup), Some("/started"));
    assert_eq!(s.port, Some(IntOrString::String("health".into())));
    assert_eq!(s.scheme, Scheme::Https);
    assert_eq!(
        s.timings,
        Timings {
            initial_delay_seconds: 0,
            period_seconds: 7,
            timeout_seconds: 2,
            failure_threshold: 5
        }
    );
    assert_eq!(s.readiness_gates, ["a.example.com/x", "b"]);
    assert_eq!(s.metrics_coupling, CouplingMode::Off);
    assert_eq!(
        s.metrics_ports,
        [
            IntOrString::Int(9090),
            IntOrString::String("metrics".into())
        ]
    );
    assert!(s.identical_liveness);
    assert_eq!(s.startup_seconds, 900);
    assert_eq!(s.skip_containers, ["istio-proxy", "log-shipper"]);
    assert_eq!(s.set_at.len(), KEYS.len(), "every key records its layer");
}

#[test]
fn each_key_records_the_layer_it_came_from() {
    let namespace = layer(&[(PROBES, "readiness"), (READINESS_GATES, "a/b")]);
    let workload = layer(&[(PROBES, "liveness"), (PERIOD_SECONDS, "oops")]);
    let (s, _) = Settings::resolve(&[&namespace, &workload]);
    struct Case {
        name: &'static str,
        key: &'static str,
        /// Set by layer 1 (the object) or above.
        by_object: bool,
        /// Set by layer 0 or above.
        at_all: bool,
    }
    let cases = [
        Case {
            name: "set by both layers: the object's",
            key: PROBES,
            by_object: true,
            at_all: true,
        },
        Case {
            name: "set by the namespace only",
            key: READINESS_GATES,
            by_object: false,
            at_all: true,
        },
        Case {
            name: "a bad value sets nothing",
            key: PERIOD_SECONDS,
            by_object: false,
            at_all: false,
        },
        Case {
            name: "set by no layer",
            key: PORT,
            by_object: false,
            at_all: false,
        },
    ];
    for case in cases {
        assert_eq!(
            s.set_at_or_above(case.key, 1),
            case.by_object,
            "{}",
            case.name
        );
        assert_eq!(s.set_at_or_above(case.key, 0), case.at_all, "{}", case.name);
    }
}

#[test]
fn none_means_no_readiness_gates() {
    for value in ["", "none", " none "] {
        let l = layer(&[(READINESS_GATES, value)]);
        let (s, warnings) = Settings::resolve(&[&l]);
        assert!(s.readiness_gates.is_empty(), "{value:?}");
        assert!(warnings.is_empty());
        assert!(s.set_at_or_above(READINESS_GATES, 0), "{value:?}");
    }
}

#[test]
fn empty_probe_list_and_none_request_no_probes() {
    for value in ["", "none"] {
        let l = layer(&[(PROBES, value)]);
        let (s, warnings) = Settings::resolve(&[&l]);
        assert!(s.probes.is_empty(), "{value:?}");
        assert!(warnings.is_empty());
    }
}

#[test]
fn unknown_keys_are_reported_and_foreign_keys_ignored() {
    let l = layer(&[
        ("probegate.io/livenes-path", "/x"),
        (INJECTED_ANNOTATION, "app=liveness"),
        ("example.com/probes", "whatever"),
    ]);
    let (_, warnings) = Settings::resolve(&[&l]);
    assert_eq!(
        warnings,
        ["ignoring unknown annotation probegate.io/livenes-path"]
    );
}

#[test]
fn port_names_follow_kubernetes_rules() {
    for good in [
        "http",
        "metrics",
        "h2c",
        "a-b",
        "web8080",
        "abcdefghijklmno",
    ] {
        assert!(is_port_name(good), "{good}");
    }
    for bad in [
        "",
        "HTTP",
        "-http",
        "http-",
        "a--b",
        "8080x_",
        "abcdefghijklmnop",
        "1234",
        "a.b",
    ] {
        assert!(!is_port_name(bad), "{bad}");
    }
}

#[test]
fn the_keys_table_and_resolve_agree_on_every_value() {
    // The values users write, right and wrong, for every kind of setting.
    let values = [
        "enabled",
        "disabled",
        "readiness",
        "liveness,startup",
        "none",
        "tcp",
        "http",
        "grpc",
        "/healthz",
        "healthz",
        "8080",
        "0",
        "http-alt",
        "HTTPS",
        "warn",
        "deny",
        "off",
        "5",
        "-1",
        "a.example.com/x",
        "9090,metrics",
        "istio-proxy",
        "Bad_Name",
        "",
    ];
    for key in KEYS.iter().map(|k| k.name()) {
        for value in values {
            let (_, warnings) = Settings::resolve(&[&layer(&[(key, value)])]);
            assert_eq!(
                is_valid(key, value),
                warnings.is_empty(),
                "{key}={value:?}: is_valid and resolve disagree ({warnings:?})"
            );
        }
    }
}
