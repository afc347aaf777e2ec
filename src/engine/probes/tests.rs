use super::*;
use crate::engine::command_line;
use crate::engine::object::{Port, Text};
use crate::policy::{Scheme, Timings};

/// (name, number, protocol) of container ports; empty strings for unset.
type Ports<'a> = Vec<(&'a str, i32, &'a str)>;

fn container(ports: &[(&str, i32, &str)], args: &[&str]) -> Container<'static> {
    Container {
        name: "app".into(),
        args: Some(args.iter().map(|s| Text::from(s.to_string())).collect()),
        ports: Some(
            ports
                .iter()
                .map(|(name, number, protocol)| Port {
                    name: (!name.is_empty()).then(|| name.to_string().into()),
                    container_port: *number,
                    protocol: (!protocol.is_empty()).then(|| protocol.to_string().into()),
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
            app: true,
            service_targets: &[],
            metrics: &facts(c),
            known: None,
            publisher: None,
            own_layers: 0,
        },
    )
}

fn target_for(
    c: &Container,
    settings: &Settings,
    warnings: &mut Vec<(WarningKind, String)>,
) -> Result<Target, String> {
    target::find(
        c,
        &command_line::flags(c),
        Evidence {
            port: settings.port.as_ref(),
            app: true,
            service_targets: &[],
            metrics: &facts(c),
            known: None,
            publisher: None,
            own_layers: 0,
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
    struct Case<'a> {
        name: &'static str,
        ports: Ports<'a>,
        args: Vec<&'a str>,
        settings: Settings,
        port: IntOrString,
        controller_runtime: bool,
    }
    let cases = [
        Case {
            name: "a port named health wins over http",
            ports: vec![("http", 80, ""), ("health", 8086, "")],
            args: vec![],
            settings: Settings::default(),
            port: name("health"),
            controller_runtime: false,
        },
        Case {
            name: "a port named healthz wins over http",
            ports: vec![("http", 80, ""), ("healthz", 8086, "")],
            args: vec![],
            settings: Settings::default(),
            port: name("healthz"),
            controller_runtime: false,
        },
        Case {
            name: "a port named probes wins over http",
            ports: vec![("probes", 81, ""), ("http", 80, "")],
            args: vec![],
            settings: Settings::default(),
            port: name("probes"),
            controller_runtime: false,
        },
        Case {
            name: "http wins over a gRPC port declared first",
            ports: vec![("grpc", 9000, ""), ("http", 80, "")],
            args: vec![],
            settings: Settings::default(),
            port: name("http"),
            controller_runtime: false,
        },
        Case {
            name: "unnamed ports: the first TCP one, UDP passed over",
            ports: vec![("", 9000, "UDP"), ("", 7000, "TCP"), ("", 7001, "")],
            args: vec![],
            settings: Settings::default(),
            port: IntOrString::Int(7000),
            controller_runtime: false,
        },
        Case {
            name: "a metrics port is passed over for the next one",
            ports: vec![("metrics", 9090, ""), ("web", 8080, "")],
            args: vec![],
            settings: Settings::default(),
            port: name("web"),
            controller_runtime: false,
        },
        Case {
            name: "a controller-runtime health address beats declared ports",
            ports: vec![("webhook", 9443, "")],
            args: vec!["--health-probe-bind-address=:8081"],
            settings: Settings::default(),
            port: IntOrString::Int(8081),
            controller_runtime: true,
        },
        Case {
            name: "a controller-runtime health address in two arguments, no ports",
            ports: vec![],
            args: vec!["--health-probe-bind-address", "0.0.0.0:9440"],
            settings: Settings::default(),
            port: IntOrString::Int(9440),
            controller_runtime: true,
        },
        Case {
            name: "an explicit port number beats the health address",
            ports: vec![("http", 80, "")],
            args: vec!["--health-probe-bind-address=:8081"],
            settings: with_port(IntOrString::Int(8080)),
            port: IntOrString::Int(8080),
            controller_runtime: false,
        },
        Case {
            name: "an explicit port name picks that port",
            ports: vec![("http", 80, ""), ("admin", 9901, "")],
            args: vec![],
            settings: with_port(name("admin")),
            port: name("admin"),
            controller_runtime: false,
        },
    ];
    for case in cases {
        let c = container(&case.ports, &case.args);
        let mut warnings = Vec::new();
        let target = target_for(&c, &case.settings, &mut warnings).unwrap();
        assert_eq!(target.port, case.port, "{}", case.name);
        assert_eq!(
            target.health.is_some(),
            case.controller_runtime,
            "{}",
            case.name
        );
        assert!(warnings.is_empty(), "{}: {warnings:?}", case.name);
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
        app_protocol: None,
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
    struct Case<'a> {
        name: &'static str,
        args: Vec<&'a str>,
        settings: Settings,
        /// The Service ports that target the pod, in the order they are read.
        service_targets: Vec<services::Target<'a>>,
        port: IntOrString,
        deciding_service: Option<&'a str>,
    }
    let cases = [
        Case {
            name: "no Service: the container's own ports decide",
            args: vec![],
            settings: Settings::default(),
            service_targets: vec![],
            port: name("management"),
            deciding_service: None,
        },
        Case {
            name: "a Service port targeting a number decides, by the container port's name",
            args: vec![],
            settings: Settings::default(),
            service_targets: vec![amqp_by_number.clone()],
            port: name("amqp"),
            deciding_service: Some("Service \"rabbitmq\" port \"amqp\""),
        },
        Case {
            name: "a named port a Service targets decides",
            args: vec![],
            settings: Settings::default(),
            service_targets: vec![amqp_by_name.clone()],
            port: name("amqp"),
            deciding_service: Some("Service \"rabbitmq\" port \"amqp\""),
        },
        Case {
            name: "several Services: the first by name, then its first port",
            args: vec![],
            settings: Settings::default(),
            service_targets: vec![ui.clone(), amqp_by_number.clone()],
            port: name("management"),
            deciding_service: Some("Service \"admin\" port \"http\""),
        },
        Case {
            name: "a scrape port or a port the container does not declare decides nothing",
            args: vec![],
            settings: Settings::default(),
            service_targets: vec![scrape, undeclared, amqp_by_name.clone()],
            port: name("amqp"),
            deciding_service: Some("Service \"rabbitmq\" port \"amqp\""),
        },
        Case {
            name: "an explicit port setting wins over a Service",
            args: vec![],
            settings: with_port,
            service_targets: vec![amqp_by_number.clone()],
            port: IntOrString::Int(15672),
            deciding_service: None,
        },
        Case {
            name: "a controller-runtime health server wins over a Service",
            args: vec!["--health-probe-bind-address=:8081"],
            settings: Settings::default(),
            service_targets: vec![amqp_by_number],
            port: IntOrString::Int(8081),
            deciding_service: None,
        },
    ];
    for case in cases {
        let c = container(&broker, &case.args);
        let mut warnings = Vec::new();
        let found = target::find(
            &c,
            &command_line::flags(&c),
            Evidence {
                port: case.settings.port.as_ref(),
                app: true,
                service_targets: &case.service_targets,
                metrics: &facts(&c),
                known: None,
                publisher: None,
                own_layers: 0,
            },
            &mut warnings,
        )
        .unwrap();
        assert_eq!(found.port, case.port, "{}", case.name);
        assert_eq!(
            found.from_service.as_deref(),
            case.deciding_service,
            "{}",
            case.name
        );
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
    assert_eq!(warnings[0].0, WarningKind::PortNotDeclared);
    assert!(
        warnings[0]
            .1
            .contains("probegate.io/port=health names no port"),
        "{:?}",
        warnings[0]
    );
}

#[test]
fn nothing_to_probe_is_explained() {
    struct Case<'a> {
        name: &'static str,
        ports: Ports<'a>,
        args: Vec<&'a str>,
        explanation: &'a str,
    }
    let cases = [
        Case {
            name: "no ports at all",
            ports: vec![],
            args: vec![],
            explanation: "declares no TCP containerPort",
        },
        Case {
            name: "a UDP port only",
            ports: vec![("dns", 53, "UDP")],
            args: vec![],
            explanation: "declares no TCP containerPort",
        },
        Case {
            name: "a health server switched off with address 0",
            ports: vec![],
            args: vec!["--health-probe-bind-address=0"],
            explanation: "declares no TCP containerPort",
        },
        Case {
            name: "only a port named metrics",
            ports: vec![("metrics", 9090, "")],
            args: vec![],
            explanation: "only TCP ports serve metrics as far as it can tell: 9090 (container port \"metrics\"), and no Service",
        },
        Case {
            name: "only the port a metrics flag names",
            ports: vec![("", 9090, "")],
            args: vec!["--metrics-bind-address=:9090"],
            explanation: "serve metrics as far as it can tell: 9090 (--metrics-bind-address=:9090)",
        },
        // Found by fuzzing: never a probe on such a port.
        Case {
            name: "a port entry without a number (decoded as 0)",
            ports: vec![("", 0, "")],
            args: vec![],
            explanation: "declares no TCP containerPort",
        },
        Case {
            name: "a port number out of range",
            ports: vec![("http", 70000, "TCP")],
            args: vec![],
            explanation: "declares no TCP containerPort",
        },
    ];
    for case in cases {
        let c = container(&case.ports, &case.args);
        let plan = plan_for(&c, &Settings::default());
        assert!(plan.added.is_empty(), "{}: {:?}", case.name, plan.added);
        assert_eq!(plan.warnings.len(), 1, "{}: {:?}", case.name, plan.warnings);
        let (kind, warning) = &plan.warnings[0];
        assert_eq!(*kind, WarningKind::NoProbe, "{}", case.name);
        assert!(
            warning.starts_with("container \"app\": no probe added: "),
            "{}: {warning}",
            case.name,
        );
        assert!(
            warning.contains(case.explanation),
            "{}: {warning}",
            case.name,
        );
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
    struct Case {
        name: &'static str,
        existing_readiness: Probe,
        added: Vec<ProbeKind>,
        liveness_held: bool,
    }
    let cases = [
        Case {
            name: "readiness on the port liveness would check: liveness held",
            existing_readiness: tcp_80,
            added: vec![],
            liveness_held: true,
        },
        Case {
            name: "readiness on a path of its own: liveness and its startup guard added",
            existing_readiness: http_ready,
            added: vec![ProbeKind::Liveness, ProbeKind::Startup],
            liveness_held: false,
        },
    ];
    for case in cases {
        let mut c = container(&[("http", 80, "")], &[]);
        c.readiness_probe = Some(case.existing_readiness.clone());
        let p = plan_for(&c, &Settings::default());
        let added: Vec<ProbeKind> = p.added.iter().map(|(k, _)| *k).collect();
        assert_eq!(added, case.added, "{}", case.name);
        assert_eq!(
            p.held,
            case.liveness_held.then_some(ProbeKind::Liveness),
            "{}",
            case.name
        );
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
    struct Case<'a> {
        name: &'static str,
        container: &'a Container<'a>,
        settings: Settings,
        /// The probes added, handlers only.
        probes: Vec<(ProbeKind, Probe)>,
        liveness_held: bool,
    }
    let cases = [
        Case {
            name: "all that is known is a port: readiness only, by TCP",
            container: &web,
            settings: Settings::default(),
            probes: vec![(Readiness, tcp(name("web")))],
            liveness_held: true,
        },
        Case {
            name: "the gRPC handler: readiness only",
            container: &web,
            settings: grpc_settings,
            probes: vec![(Readiness, grpc(8080))],
            liveness_held: true,
        },
        Case {
            name: "the HTTP handler without a path falls back to TCP",
            container: &web,
            settings: http_without_path,
            probes: vec![(Readiness, tcp(name("web")))],
            liveness_held: true,
        },
        Case {
            name: "the same path for liveness and readiness: readiness only",
            container: &web,
            settings: same_paths,
            probes: vec![(Readiness, http("/health", name("web"), "HTTP"))],
            liveness_held: true,
        },
        Case {
            name: "identical liveness when the user asked for it",
            container: &web,
            settings: identical_allowed,
            probes: vec![
                (Liveness, tcp(name("web"))),
                (Readiness, tcp(name("web"))),
                (Startup, tcp(name("web"))),
            ],
            liveness_held: false,
        },
        // Liveness that checks something else, always behind a startup probe on its
        // handler.
        Case {
            name: "liveness and readiness paths over HTTPS",
            container: &web,
            settings: paths.clone(),
            probes: vec![
                (Liveness, http("/live", name("web"), "HTTPS")),
                (Readiness, http("/ready", name("web"), "HTTPS")),
                (Startup, http("/live", name("web"), "HTTPS")),
            ],
            liveness_held: false,
        },
        Case {
            name: "a readiness path only: liveness by TCP",
            container: &web,
            settings: readiness_path,
            probes: vec![
                (Liveness, tcp(name("web"))),
                (Readiness, http("/ready", name("web"), "HTTP")),
                (Startup, tcp(name("web"))),
            ],
            liveness_held: false,
        },
        Case {
            name: "a controller-runtime health server: its own /healthz and /readyz",
            container: &operator,
            settings: Settings::default(),
            probes: vec![
                (Liveness, http("/healthz", IntOrString::Int(8081), "HTTP")),
                (Readiness, http("/readyz", IntOrString::Int(8081), "HTTP")),
                (Startup, http("/healthz", IntOrString::Int(8081), "HTTP")),
            ],
            liveness_held: false,
        },
        Case {
            name: "a controller-runtime health server with paths set: the settings win",
            container: &operator,
            settings: paths,
            probes: vec![
                (Liveness, http("/live", IntOrString::Int(8081), "HTTPS")),
                (Readiness, http("/ready", IntOrString::Int(8081), "HTTPS")),
                (Startup, http("/live", IntOrString::Int(8081), "HTTPS")),
            ],
            liveness_held: false,
        },
    ];
    for case in cases {
        let p = plan_for(case.container, &case.settings);
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
        assert_eq!(got, case.probes, "{}", case.name);
        assert_eq!(
            p.held,
            case.liveness_held.then_some(ProbeKind::Liveness),
            "{}",
            case.name
        );
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
    struct Case {
        name: &'static str,
        a: Probe,
        b: Probe,
        same: bool,
    }
    let cases = [
        Case {
            name: "TCP on a port name and on its number",
            a: tcp(name("web")),
            b: tcp(IntOrString::Int(8080)),
            same: true,
        },
        Case {
            name: "TCP on two different named ports",
            a: tcp(name("web")),
            b: tcp(name("admin")),
            same: false,
        },
        Case {
            name: "TCP on the same unknown name",
            a: tcp(name("nope")),
            b: tcp(name("nope")),
            same: true,
        },
        Case {
            name: "HTTP on one path, by port name and by number",
            a: http("/a", name("web")),
            b: http("/a", IntOrString::Int(8080)),
            same: true,
        },
        Case {
            name: "HTTP on two paths",
            a: http("/a", name("web")),
            b: http("/b", name("web")),
            same: false,
        },
        Case {
            name: "HTTP and TCP on one port",
            a: http("/a", name("web")),
            b: tcp(name("web")),
            same: false,
        },
        Case {
            name: "the same exec command",
            a: exec("check"),
            b: exec("check"),
            same: true,
        },
        Case {
            name: "two exec commands",
            a: exec("check"),
            b: exec("other"),
            same: false,
        },
        Case {
            name: "two probes without a handler",
            a: Probe::default(),
            b: Probe::default(),
            same: false,
        },
    ];
    for case in cases {
        let (a, b) = (&case.a, &case.b);
        assert_eq!(same_check(&c, a, b), case.same, "{}: a, b", case.name);
        assert_eq!(same_check(&c, b, a), case.same, "{}: b, a", case.name);
    }
}

#[test]
fn startup_guard_covers_the_configured_time() {
    struct Case {
        name: &'static str,
        period_seconds: i32,
        startup_seconds: i32,
        failure_threshold: i32,
    }
    let cases = [
        Case {
            name: "an even division",
            period_seconds: 10,
            startup_seconds: 300,
            failure_threshold: 30,
        },
        Case {
            name: "an uneven division rounds up",
            period_seconds: 7,
            startup_seconds: 300,
            failure_threshold: 43,
        },
        Case {
            name: "a one-second period",
            period_seconds: 1,
            startup_seconds: 300,
            failure_threshold: 300,
        },
        Case {
            name: "a period longer than the startup time: one try",
            period_seconds: 60,
            startup_seconds: 30,
            failure_threshold: 1,
        },
        Case {
            name: "the largest startup time does not overflow",
            period_seconds: 1,
            startup_seconds: i32::MAX,
            failure_threshold: i32::MAX,
        },
        Case {
            name: "the largest period and startup time",
            period_seconds: i32::MAX,
            startup_seconds: i32::MAX,
            failure_threshold: 1,
        },
    ];
    for case in cases {
        let settings = Settings {
            liveness_path: Some("/live".into()),
            timings: Timings {
                period_seconds: case.period_seconds,
                ..Settings::default().timings
            },
            startup_seconds: case.startup_seconds,
            ..Settings::default()
        };
        let c = container(&[("http", 80, "")], &[]);
        let p = plan_for(&c, &settings);
        let (kind, startup) = p.added.last().unwrap();
        assert_eq!(*kind, ProbeKind::Startup, "{}", case.name);
        assert_eq!(
            startup.failure_threshold,
            Some(case.failure_threshold),
            "{}",
            case.name
        );
        assert!(
            i64::from(case.failure_threshold) * i64::from(case.period_seconds)
                >= i64::from(case.startup_seconds),
            "{}",
            case.name
        );
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
    assert_eq!(warnings[0].0, WarningKind::HealthServerUnreachable);
    assert!(
        warnings[0]
            .1
            .contains("--health-probe-bind-address=127.0.0.1:8081 listens on loopback only"),
        "{:?}",
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
    let (kind, warning) = &p.warnings[0];
    assert_eq!(*kind, WarningKind::HandlerWithoutPath);
    assert!(warning.contains("probegate.io/liveness-path"), "{warning}");
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
