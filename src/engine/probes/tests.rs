use super::*;
use crate::engine::command_line;
use crate::policy::{Scheme, Timings};
use k8s_openapi::api::core::v1::ContainerPort;

/// (name, number, protocol) of container ports; empty strings for unset.
type Ports<'a> = Vec<(&'a str, i32, &'a str)>;

fn container(ports: &[(&str, i32, &str)], args: &[&str]) -> Container {
    Container {
        name: "app".into(),
        args: Some(args.iter().map(|s| s.to_string()).collect()),
        ports: Some(
            ports
                .iter()
                .map(|(name, number, protocol)| ContainerPort {
                    name: (!name.is_empty()).then(|| name.to_string()),
                    container_port: *number,
                    protocol: (!protocol.is_empty()).then(|| protocol.to_string()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        ..Container::default()
    }
}

fn facts(c: &Container) -> MetricsFacts {
    MetricsFacts::gather(c, &command_line::flags(c), None, &Settings::default(), &[])
}

fn plan_for(c: &Container, settings: &Settings) -> ProbePlan {
    plan(
        c,
        &command_line::flags(c),
        settings,
        &settings.probes,
        Evidence {
            port: settings.port.as_ref(),
            service_targets: &[],
            metrics: &facts(c),
        },
    )
}

fn target_for(
    c: &Container,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Result<Target, String> {
    target::find(
        c,
        &command_line::flags(c),
        Evidence {
            port: settings.port.as_ref(),
            service_targets: &[],
            metrics: &facts(c),
        },
        warnings,
    )
}

fn name(n: &str) -> IntOrString {
    IntOrString::String(n.into())
}

#[test]
fn port_choice_order() {
    let with_port = |p: IntOrString| Settings {
        port: Some(p),
        ..Settings::default()
    };
    // (ports, args, settings, expected port, controller-runtime)
    let cases: Vec<(Ports, Vec<&str>, Settings, IntOrString, bool)> = vec![
        (
            vec![("http", 80, ""), ("health", 8086, "")],
            vec![],
            Settings::default(),
            name("health"),
            false,
        ),
        (
            vec![("http", 80, ""), ("healthz", 8086, "")],
            vec![],
            Settings::default(),
            name("healthz"),
            false,
        ),
        (
            vec![("probes", 81, ""), ("http", 80, "")],
            vec![],
            Settings::default(),
            name("probes"),
            false,
        ),
        (
            vec![("grpc", 9000, ""), ("http", 80, "")],
            vec![],
            Settings::default(),
            name("http"),
            false,
        ),
        (
            vec![("", 9000, "UDP"), ("", 7000, "TCP"), ("", 7001, "")],
            vec![],
            Settings::default(),
            IntOrString::Int(7000),
            false,
        ),
        (
            vec![("metrics", 9090, ""), ("web", 8080, "")],
            vec![],
            Settings::default(),
            name("web"),
            false,
        ),
        (
            vec![("webhook", 9443, "")],
            vec!["--health-probe-bind-address=:8081"],
            Settings::default(),
            IntOrString::Int(8081),
            true,
        ),
        (
            vec![],
            vec!["--health-probe-bind-address", "0.0.0.0:9440"],
            Settings::default(),
            IntOrString::Int(9440),
            true,
        ),
        (
            vec![("http", 80, "")],
            vec!["--health-probe-bind-address=:8081"],
            with_port(IntOrString::Int(8080)),
            IntOrString::Int(8080),
            false,
        ),
        (
            vec![("http", 80, ""), ("admin", 9901, "")],
            vec![],
            with_port(name("admin")),
            name("admin"),
            false,
        ),
    ];
    for (ports, args, settings, port, controller_runtime) in cases {
        let c = container(&ports, &args);
        let mut warnings = Vec::new();
        let target = target_for(&c, &settings, &mut warnings).unwrap();
        assert_eq!(target.port, port, "{ports:?} {args:?}");
        assert_eq!(
            target.controller_runtime, controller_runtime,
            "{ports:?} {args:?}"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

#[test]
fn services_decide_the_port_after_explicit_settings() {
    let broker = vec![("management", 15672, ""), ("amqp", 5672, "")];
    let target = |service: &'static str, name: &'static str, port: IntOrString| services::Target {
        service,
        name: Some(name),
        number: 1,
        port,
    };
    let amqp_by_number = target("rabbitmq", "amqp", IntOrString::Int(5672));
    let amqp_by_name = target("rabbitmq", "amqp", name("amqp"));
    let ui = target("admin", "http", IntOrString::Int(15672));
    let scrape = target("rabbitmq", "metrics", IntOrString::Int(5672));
    let undeclared = target("rabbitmq", "web", IntOrString::Int(8080));
    let with_port = Settings {
        port: Some(IntOrString::Int(15672)),
        ..Settings::default()
    };
    // (args, settings, Service targets in order, expected port, deciding Service)
    type Case<'a> = (
        Vec<&'a str>,
        Settings,
        Vec<services::Target<'a>>,
        IntOrString,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            vec![],
            Settings::default(),
            vec![],
            name("management"),
            None,
        ),
        (
            vec![],
            Settings::default(),
            vec![amqp_by_number.clone()],
            name("amqp"),
            Some("Service \"rabbitmq\" port \"amqp\""),
        ),
        (
            vec![],
            Settings::default(),
            vec![amqp_by_name.clone()],
            name("amqp"),
            Some("Service \"rabbitmq\" port \"amqp\""),
        ),
        // Several: the first Service by name, then its first port.
        (
            vec![],
            Settings::default(),
            vec![ui.clone(), amqp_by_number.clone()],
            name("management"),
            Some("Service \"admin\" port \"http\""),
        ),
        // A scrape port or a port the container does not declare decides nothing.
        (
            vec![],
            Settings::default(),
            vec![scrape, undeclared, amqp_by_name.clone()],
            name("amqp"),
            Some("Service \"rabbitmq\" port \"amqp\""),
        ),
        // Explicit settings and a controller-runtime health server win.
        (
            vec![],
            with_port,
            vec![amqp_by_number.clone()],
            IntOrString::Int(15672),
            None,
        ),
        (
            vec!["--health-probe-bind-address=:8081"],
            Settings::default(),
            vec![amqp_by_number],
            IntOrString::Int(8081),
            None,
        ),
    ];
    for (args, settings, targets, port, service) in cases {
        let c = container(&broker, &args);
        let mut warnings = Vec::new();
        let found = target::find(
            &c,
            &command_line::flags(&c),
            Evidence {
                port: settings.port.as_ref(),
                service_targets: &targets,
                metrics: &facts(&c),
            },
            &mut warnings,
        )
        .unwrap();
        assert_eq!(found.port, port, "{targets:?}");
        assert_eq!(found.from_service.as_deref(), service, "{targets:?}");
    }
}

#[test]
fn unknown_port_name_setting_warns_and_detects() {
    let c = container(&[("http", 80, "")], &[]);
    let settings = Settings {
        port: Some(name("health")),
        ..Settings::default()
    };
    let mut warnings = Vec::new();
    let target = target_for(&c, &settings, &mut warnings).unwrap();
    assert_eq!(target.port, name("http"));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("probegate.io/port=health names no port"),
        "{}",
        warnings[0]
    );
}

#[test]
fn nothing_to_probe_is_explained() {
    // (ports, args, explanation)
    let cases: Vec<(Ports, Vec<&str>, &str)> = vec![
        (vec![], vec![], "declares no TCP containerPort"),
        (
            vec![("dns", 53, "UDP")],
            vec![],
            "declares no TCP containerPort",
        ),
        (
            vec![],
            vec!["--health-probe-bind-address=0"],
            "declares no TCP containerPort",
        ),
        (
            vec![("metrics", 9090, "")],
            vec![],
            "only TCP ports serve metrics as far as it can tell: 9090 (container port \"metrics\"), and no Service",
        ),
        (
            vec![("", 9090, "")],
            vec!["--metrics-bind-address=:9090"],
            "serve metrics as far as it can tell: 9090 (--metrics-bind-address=:9090)",
        ),
        // A port entry without a number (decoded as 0) or out of range, found by
        // fuzzing: never a probe on it.
        (vec![("", 0, "")], vec![], "declares no TCP containerPort"),
        (
            vec![("http", 70000, "TCP")],
            vec![],
            "declares no TCP containerPort",
        ),
    ];
    for (ports, args, why) in cases {
        let c = container(&ports, &args);
        let plan = plan_for(&c, &Settings::default());
        assert!(plan.added.is_empty());
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].starts_with("container \"app\": no probe added: "),
            "{}",
            plan.warnings[0]
        );
        assert!(plan.warnings[0].contains(why), "{}", plan.warnings[0]);
    }
}

#[test]
fn existing_probes_are_never_replaced_and_need_no_port() {
    let mut c = container(&[], &[]);
    c.liveness_probe = Some(Probe {
        period_seconds: Some(99),
        ..Probe::default()
    });
    c.readiness_probe = Some(Probe::default());
    let p = plan_for(&c, &Settings::default());
    assert_eq!(p, ProbePlan::default());

    // Beside the container's own readiness probe: liveness only where it checks
    // something else, and then with its startup guard.
    let tcp_80 = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(80),
            host: None,
        }),
        ..Probe::default()
    };
    let http_ready = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/ready".into()),
            port: name("http"),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    // (existing readiness, expected kinds added, liveness held)
    let cases = [
        (tcp_80, vec![], true),
        (
            http_ready,
            vec![ProbeKind::Liveness, ProbeKind::Startup],
            false,
        ),
    ];
    for (readiness, kinds, held) in cases {
        let mut c = container(&[("http", 80, "")], &[]);
        c.readiness_probe = Some(readiness.clone());
        let p = plan_for(&c, &Settings::default());
        let added: Vec<ProbeKind> = p.added.iter().map(|(k, _)| *k).collect();
        assert_eq!(added, kinds, "{readiness:?}");
        assert_eq!(p.held, held.then_some(ProbeKind::Liveness), "{readiness:?}");
    }
}

#[test]
fn handlers() {
    let tcp = |port: IntOrString| Probe {
        tcp_socket: Some(TCPSocketAction { port, host: None }),
        ..Probe::default()
    };
    let http = |path: &str, port: IntOrString, scheme: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port,
            scheme: Some(scheme.into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    let grpc = |port: i32| Probe {
        grpc: Some(GRPCAction {
            port,
            ..GRPCAction::default()
        }),
        ..Probe::default()
    };
    let paths = Settings {
        liveness_path: Some("/live".into()),
        readiness_path: Some("/ready".into()),
        scheme: Scheme::Https,
        ..Settings::default()
    };
    let grpc_settings = Settings {
        handler: Handler::Grpc,
        ..Settings::default()
    };
    let http_without_path = Settings {
        handler: Handler::Http,
        ..Settings::default()
    };
    let readiness_path = Settings {
        readiness_path: Some("/ready".into()),
        ..Settings::default()
    };
    let same_paths = Settings {
        liveness_path: Some("/health".into()),
        readiness_path: Some("/health".into()),
        ..Settings::default()
    };
    let identical_allowed = Settings {
        identical_liveness: true,
        ..Settings::default()
    };
    let web = container(&[("web", 8080, "")], &[]);
    let operator = container(&[], &["--health-probe-bind-address=:8081"]);
    use ProbeKind::{Liveness, Readiness, Startup};
    // (container, settings, expected probes, handlers only; liveness held)
    let cases = [
        // All that is known is a port: readiness only.
        (
            &web,
            Settings::default(),
            vec![(Readiness, tcp(name("web")))],
            true,
        ),
        (&web, grpc_settings, vec![(Readiness, grpc(8080))], true),
        (
            &web,
            http_without_path,
            vec![(Readiness, tcp(name("web")))],
            true,
        ),
        (
            &web,
            same_paths,
            vec![(Readiness, http("/health", name("web"), "HTTP"))],
            true,
        ),
        // Unless the user asked for it.
        (
            &web,
            identical_allowed,
            vec![
                (Liveness, tcp(name("web"))),
                (Readiness, tcp(name("web"))),
                (Startup, tcp(name("web"))),
            ],
            false,
        ),
        // Liveness that checks something else, always behind a startup probe on its
        // handler.
        (
            &web,
            paths.clone(),
            vec![
                (Liveness, http("/live", name("web"), "HTTPS")),
                (Readiness, http("/ready", name("web"), "HTTPS")),
                (Startup, http("/live", name("web"), "HTTPS")),
            ],
            false,
        ),
        (
            &web,
            readiness_path,
            vec![
                (Liveness, tcp(name("web"))),
                (Readiness, http("/ready", name("web"), "HTTP")),
                (Startup, tcp(name("web"))),
            ],
            false,
        ),
        (
            &operator,
            Settings::default(),
            vec![
                (Liveness, http("/healthz", IntOrString::Int(8081), "HTTP")),
                (Readiness, http("/readyz", IntOrString::Int(8081), "HTTP")),
                (Startup, http("/healthz", IntOrString::Int(8081), "HTTP")),
            ],
            false,
        ),
        (
            &operator,
            paths,
            vec![
                (Liveness, http("/live", IntOrString::Int(8081), "HTTPS")),
                (Readiness, http("/ready", IntOrString::Int(8081), "HTTPS")),
                (Startup, http("/live", IntOrString::Int(8081), "HTTPS")),
            ],
            false,
        ),
    ];
    for (c, settings, expected, held) in cases {
        let p = plan_for(c, &settings);
        let handler_only = |probe: &Probe| Probe {
            http_get: probe.http_get.clone(),
            tcp_socket: probe.tcp_socket.clone(),
            grpc: probe.grpc.clone(),
            ..Probe::default()
        };
        let got: Vec<(ProbeKind, Probe)> = p
            .added
            .iter()
            .map(|(k, pr)| (*k, handler_only(pr)))
            .collect();
        assert_eq!(got, expected, "{settings:?}");
        assert_eq!(p.held, held.then_some(ProbeKind::Liveness), "{settings:?}");
    }
}

#[test]
fn readiness_that_repeats_the_containers_own_liveness_is_held() {
    let mut c = container(&[("http", 80, "")], &[]);
    c.liveness_probe = Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            port: name("http"),
            host: None,
        }),
        ..Probe::default()
    });
    let p = plan_for(&c, &Settings::default());
    assert!(p.added.is_empty(), "{:?}", p.added);
    assert_eq!(p.held, Some(ProbeKind::Readiness));
    // A readiness path makes it a different check: added.
    let paths = Settings {
        readiness_path: Some("/ready".into()),
        ..Settings::default()
    };
    let p = plan_for(&c, &paths);
    let kinds: Vec<ProbeKind> = p.added.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [ProbeKind::Readiness]);
    assert_eq!(p.held, None);
    // Asked for explicitly: added.
    let allowed = Settings {
        identical_liveness: true,
        ..Settings::default()
    };
    assert_eq!(plan_for(&c, &allowed).added.len(), 1);
}

#[test]
fn same_check_resolves_named_ports() {
    let c = container(&[("web", 8080, ""), ("admin", 9000, "")], &[]);
    let tcp = |port: IntOrString| Probe {
        tcp_socket: Some(TCPSocketAction { port, host: None }),
        ..Probe::default()
    };
    let http = |path: &str, port: IntOrString| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port,
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    let exec = |command: &str| Probe {
        exec: Some(k8s_openapi::api::core::v1::ExecAction {
            command: Some(vec![command.into()]),
        }),
        ..Probe::default()
    };
    // (a, b, same)
    let cases = [
        (tcp(name("web")), tcp(IntOrString::Int(8080)), true),
        (tcp(name("web")), tcp(name("admin")), false),
        (tcp(name("nope")), tcp(name("nope")), true),
        (
            http("/a", name("web")),
            http("/a", IntOrString::Int(8080)),
            true,
        ),
        (http("/a", name("web")), http("/b", name("web")), false),
        (http("/a", name("web")), tcp(name("web")), false),
        (exec("check"), exec("check"), true),
        (exec("check"), exec("other"), false),
        (Probe::default(), Probe::default(), false),
    ];
    for (a, b, same) in cases {
        assert_eq!(same_check(&c, &a, &b), same, "{a:?} {b:?}");
        assert_eq!(same_check(&c, &b, &a), same, "{b:?} {a:?}");
    }
}

#[test]
fn startup_guard_covers_the_configured_time() {
    // (period, startup-seconds, expected failureThreshold)
    for (period, seconds, threshold) in [
        (10, 300, 30),
        (7, 300, 43),
        (1, 300, 300),
        (60, 30, 1),
        (1, i32::MAX, i32::MAX),
        (i32::MAX, i32::MAX, 1),
    ] {
        let settings = Settings {
            liveness_path: Some("/live".into()),
            timings: Timings {
                period_seconds: period,
                ..Settings::default().timings
            },
            startup_seconds: seconds,
            ..Settings::default()
        };
        let c = container(&[("http", 80, "")], &[]);
        let p = plan_for(&c, &settings);
        let (kind, startup) = p.added.last().unwrap();
        assert_eq!(*kind, ProbeKind::Startup);
        assert_eq!(
            startup.failure_threshold,
            Some(threshold),
            "{period} {seconds}"
        );
        assert!(i64::from(threshold) * i64::from(period) >= i64::from(seconds));
    }
    // The container's own startup probe is enough.
    let mut c = container(&[("http", 80, "")], &[]);
    c.startup_probe = Some(Probe::default());
    let settings = Settings {
        liveness_path: Some("/live".into()),
        ..Settings::default()
    };
    let kinds: Vec<ProbeKind> = plan_for(&c, &settings)
        .added
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(kinds, [ProbeKind::Liveness, ProbeKind::Readiness]);
}

#[test]
fn loopback_health_servers_are_not_probed() {
    let c = container(
        &[("web", 8080, "")],
        &["--health-probe-bind-address=127.0.0.1:8081"],
    );
    let mut warnings = Vec::new();
    let target = target_for(&c, &Settings::default(), &mut warnings).unwrap();
    assert_eq!(target.port, name("web"));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("--health-probe-bind-address=127.0.0.1:8081 listens on loopback only"),
        "{}",
        warnings[0]
    );
}

#[test]
fn http_handler_without_path_warns_where_it_falls_back() {
    let settings = Settings {
        handler: Handler::Http,
        readiness_path: Some("/ready".into()),
        ..Settings::default()
    };
    let web = container(&[("web", 8080, "")], &[]);
    let p = plan_for(&web, &settings);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].contains("probegate.io/liveness-path"),
        "{}",
        p.warnings[0]
    );
    // A controller-runtime health server has paths of its own: nothing to warn about.
    let operator = container(&[], &["--health-probe-bind-address=:8081"]);
    assert!(plan_for(&operator, &settings).warnings.is_empty());
    // Nothing missing, nothing injected, nothing said.
    let mut complete = web.clone();
    complete.liveness_probe = Some(Probe::default());
    complete.readiness_probe = Some(Probe::default());
    assert!(plan_for(&complete, &settings).warnings.is_empty());
}

#[test]
fn timings_and_startup() {
    let settings = Settings {
        probes: vec![ProbeKind::Liveness, ProbeKind::Startup],
        timings: Timings {
            initial_delay_seconds: 12,
            period_seconds: 7,
            timeout_seconds: 2,
            failure_threshold: 4,
        },
        startup_path: Some("/started".into()),
        ..Settings::default()
    };
    let c = container(&[("http", 80, "")], &[]);
    let p = plan_for(&c, &settings);
    let (kind, liveness) = &p.added[0];
    assert_eq!(*kind, ProbeKind::Liveness);
    assert_eq!(
        (
            liveness.initial_delay_seconds,
            liveness.period_seconds,
            liveness.timeout_seconds,
            liveness.failure_threshold
        ),
        (Some(12), Some(7), Some(2), Some(4))
    );
    let (kind, startup) = &p.added[1];
    assert_eq!(*kind, ProbeKind::Startup);
    assert_eq!(
        (
            startup.initial_delay_seconds,
            startup.period_seconds,
            startup.timeout_seconds,
            startup.failure_threshold
        ),
        (Some(0), Some(7), Some(2), Some(43))
    );
    assert_eq!(
        startup.http_get.as_ref().unwrap().path.as_deref(),
        Some("/started")
    );
}
