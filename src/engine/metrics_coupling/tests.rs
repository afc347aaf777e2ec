use super::*;
use crate::engine::object::{Port, Text};
use k8s_openapi::api::core::v1::{
    GRPCAction, HTTPGetAction, Service, ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn container(args: &[&str], env: &[(&str, &str)], ports: &[(&str, i32)]) -> Container<'static> {
    Container {
        name: "ctl".into(),
        args: Some(args.iter().map(|s| Text::from(s.to_string())).collect()),
        env: crate::engine::test_support::variables(env),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| Port {
                    name: (!name.is_empty()).then(|| name.to_string().into()),
                    container_port: *port,
                    ..Port::default()
                })
                .collect(),
        ),
        ..Container::default()
    }
}

fn tcp(port: IntOrString) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port, host: None }),
        ..Probe::default()
    }
}

fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Meta<'static> {
    let map = |pairs: &[(&str, &str)]| Some(crate::engine::test_support::map(pairs));
    Meta {
        labels: map(labels),
        annotations: map(annotations),
        ..Meta::default()
    }
}

fn service(
    selector: &[(&str, &str)],
    name: &str,
    port: i32,
    target: Option<IntOrString>,
) -> services::ServiceEvidence {
    services::ServiceEvidence::from(Service {
        metadata: ObjectMeta {
            name: Some("svc".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(
                selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ports: Some(vec![ServicePort {
                name: Some(name.into()),
                port,
                target_port: target,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

type Env<'a> = &'a [(&'a str, &'a str)];

#[test]
fn metrics_switch_forms() {
    struct Case<'a> {
        name: &'static str,
        args: &'a [&'a str],
        env: Env<'a>,
        /// The evidence that metrics are off, if they are.
        switched_off_by: Option<&'a str>,
    }
    let cases = [
        Case {
            name: "an enable flag set false",
            args: &["--enable-metrics=false"],
            env: &[],
            switched_off_by: Some("--enable-metrics=false"),
        },
        Case {
            name: "an enable flag and false in two arguments",
            args: &["--enable-metrics", "false"],
            env: &[],
            switched_off_by: Some("--enable-metrics false"),
        },
        Case {
            name: "a bare metrics flag set false",
            args: &["--metrics=false"],
            env: &[],
            switched_off_by: Some("--metrics=false"),
        },
        Case {
            name: "an enabled flag set FALSE in capitals",
            args: &["--metrics-enabled=FALSE"],
            env: &[],
            switched_off_by: Some("--metrics-enabled=FALSE"),
        },
        Case {
            name: "a disable flag without a value",
            args: &["--disable-metrics"],
            env: &[],
            switched_off_by: Some("--disable-metrics"),
        },
        Case {
            name: "a disable flag set false switches nothing off",
            args: &["--disable-metrics=false"],
            env: &[],
            switched_off_by: None,
        },
        Case {
            name: "a metrics address of 0",
            args: &["--metrics-bind-address=0"],
            env: &[],
            switched_off_by: Some("--metrics-bind-address=0"),
        },
        Case {
            name: "a metrics address with a port switches nothing off",
            args: &["--metrics-bind-address=:8080"],
            env: &[],
            switched_off_by: None,
        },
        Case {
            name: "an enable flag set true",
            args: &["--enable-metrics=true"],
            env: &[],
            switched_off_by: None,
        },
        Case {
            name: "the last of a repeated flag wins",
            args: &["--enable-metrics=false", "--enable-metrics=true"],
            env: &[],
            switched_off_by: None,
        },
        Case {
            name: "an enable variable set false",
            args: &[],
            env: &[("ENABLE_METRICS", "false")],
            switched_off_by: Some("ENABLE_METRICS=false"),
        },
        Case {
            name: "an enabled variable set Off",
            args: &[],
            env: &[("METRICS_ENABLED", "Off")],
            switched_off_by: Some("METRICS_ENABLED=Off"),
        },
        Case {
            name: "a prefixed enable variable set no",
            args: &[],
            env: &[("KUBE_OVN_ENABLE_METRICS", "no")],
            switched_off_by: Some("KUBE_OVN_ENABLE_METRICS=no"),
        },
        Case {
            name: "an enable variable set disabled",
            args: &[],
            env: &[("ENABLE_METRICS", "disabled")],
            switched_off_by: Some("ENABLE_METRICS=disabled"),
        },
        Case {
            name: "an enable variable set 0",
            args: &[],
            env: &[("ENABLE_METRICS", "0")],
            switched_off_by: Some("ENABLE_METRICS=0"),
        },
        Case {
            name: "a disable variable set true",
            args: &[],
            env: &[("DISABLE_METRICS", "true")],
            switched_off_by: Some("DISABLE_METRICS=true"),
        },
        Case {
            name: "a disable variable set false switches nothing off",
            args: &[],
            env: &[("DISABLE_METRICS", "false")],
            switched_off_by: None,
        },
        Case {
            name: "an enable variable set true",
            args: &[],
            env: &[("ENABLE_METRICS", "true")],
            switched_off_by: None,
        },
        Case {
            name: "a flag set true wins over a variable set false",
            args: &["--enable-metrics=true"],
            env: &[("ENABLE_METRICS", "false")],
            switched_off_by: None,
        },
        Case {
            name: "an unrelated flag set false",
            args: &["--verbose=false"],
            env: &[],
            switched_off_by: None,
        },
    ];
    for case in cases {
        let c = container(case.args, case.env, &[]);
        let flags = command_line::flags(&c);
        assert_eq!(
            switched_off(&c, &flags).as_deref(),
            case.switched_off_by,
            "{}",
            case.name
        );
    }
}

#[test]
fn metrics_port_evidence() {
    let settings_with = |ports: Vec<IntOrString>| Settings {
        metrics_ports: ports,
        ..Settings::default()
    };
    let pod = meta(&[("app", "ctl")], &[("prometheus.io/port", "9464")]);
    let c = container(
        &["--metrics-addr=:8080", "--metrics-port", "10660"],
        &[("METRICS_PORT", "9100"), ("METRICS_VERBOSITY", "3")],
        &[("metrics", 10661), ("http", 80), ("admin", 9000)],
    );
    let services = [
        service(
            &[("app", "ctl")],
            "http-metrics",
            9999,
            Some(IntOrString::String("admin".into())),
        ),
        service(&[("app", "ctl")], "prom-metrics", 7000, None),
        service(&[("app", "other")], "metrics", 7001, None),
        service(&[], "metrics", 7002, None),
        service(&[("app", "ctl")], "web", 80, None),
    ];
    let facts = MetricsFacts::gather(
        &c,
        &command_line::flags(&c),
        Some(&pod),
        &settings_with(vec![
            IntOrString::Int(5000),
            IntOrString::String("http".into()),
        ]),
        &services::targets(&services::selecting(
            &services.iter().collect::<Vec<_>>(),
            None,
            pod.labels.as_ref(),
        )),
    );
    let expected: BTreeMap<i32, String> = [
        (10661, "container port \"metrics\""),
        (8080, "--metrics-addr=:8080"),
        (10660, "--metrics-port 10660"),
        (9100, "METRICS_PORT=9100"),
        (9464, "annotation prometheus.io/port=9464"),
        (5000, "annotation probegate.io/metrics-ports"),
        (80, "annotation probegate.io/metrics-ports"),
        (9000, "Service \"svc\" port \"http-metrics\""),
        (7000, "Service \"svc\" port \"prom-metrics\""),
    ]
    .into_iter()
    .map(|(p, e)| (p, e.to_string()))
    .collect();
    assert_eq!(facts.ports, expected);
}

#[test]
fn warns_only_when_both_hold() {
    let ports = &[("metrics", 10660), ("http", 8080)];
    let off = container(&["--enable-metrics=false"], &[], ports);
    let on = container(&["--enable-metrics=true"], &[], ports);
    let metrics_probe = tcp(IntOrString::Int(10660));
    let named_metrics_probe = Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("metrics".into()),
            path: Some("/healthz".into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    let grpc_probe = Probe {
        grpc: Some(GRPCAction {
            port: 10660,
            ..GRPCAction::default()
        }),
        ..Probe::default()
    };
    let app_probe = tcp(IntOrString::String("http".into()));
    struct Case<'a> {
        name: &'static str,
        container: &'a Container<'a>,
        probe: &'a Probe,
        warns: bool,
    }
    let cases = [
        Case {
            name: "metrics off, TCP probe on the metrics port number",
            container: &off,
            probe: &metrics_probe,
            warns: true,
        },
        Case {
            name: "metrics off, HTTP probe on the metrics port by name",
            container: &off,
            probe: &named_metrics_probe,
            warns: true,
        },
        Case {
            name: "metrics off, gRPC probe on the metrics port",
            container: &off,
            probe: &grpc_probe,
            warns: true,
        },
        Case {
            name: "metrics off, probe on the app port",
            container: &off,
            probe: &app_probe,
            warns: false,
        },
        Case {
            name: "metrics on, TCP probe on the metrics port number",
            container: &on,
            probe: &metrics_probe,
            warns: false,
        },
        Case {
            name: "metrics on, HTTP probe on the metrics port by name",
            container: &on,
            probe: &named_metrics_probe,
            warns: false,
        },
    ];
    for case in cases {
        let c = case.container;
        let facts =
            MetricsFacts::gather(c, &command_line::flags(c), None, &Settings::default(), &[]);
        let warnings = check(c, &facts, [(ProbeKind::Readiness, case.probe)]);
        assert_eq!(
            warnings.len(),
            usize::from(case.warns),
            "{}: {warnings:?}",
            case.name
        );
    }
}

#[test]
fn every_variable_the_rule_acts_on_is_one_it_reads() {
    struct Case {
        name: &'static str,
        variable: &'static str,
        value: &'static str,
    }
    let cases = [
        Case {
            name: "an enable switch",
            variable: "ENABLE_METRICS",
            value: "false",
        },
        Case {
            name: "a prefixed enabled switch",
            variable: "KUBE_OVN_METRICS_ENABLED",
            value: "0",
        },
        Case {
            name: "a disable switch",
            variable: "DISABLE_METRICS",
            value: "true",
        },
        Case {
            name: "a disabled switch in lower case",
            variable: "metrics_disabled",
            value: "yes",
        },
        Case {
            name: "a metrics port",
            variable: "METRICS_PORT",
            value: "9100",
        },
        Case {
            name: "a prefixed metrics address",
            variable: "APP_METRICS_ADDR",
            value: ":9100",
        },
        Case {
            name: "a metrics address in mixed case",
            variable: "Metrics_Address",
            value: "0.0.0.0:9100",
        },
    ];
    for case in cases {
        let (name, variable) = (case.name, case.variable);
        let c = container(&[], &[(variable, case.value)], &[]);
        let facts = MetricsFacts::gather(&c, &[], None, &Settings::default(), &[]);
        assert!(
            facts.switched_off.is_some() || !facts.ports.is_empty(),
            "{name}: {variable} is not acted on"
        );
        assert!(reads_variable(variable), "{name}: {variable} is not read");
    }
    assert!(!reads_variable("DATABASE_URL"));
}

#[test]
fn a_port_a_service_sends_app_traffic_to_is_not_metrics_only() {
    let c = container(&[], &[], &[("http", 9080), ("metrics", 9090)]);
    let scrape = meta(&[("app", "web")], &[("prometheus.io/port", "9080")]);
    let user_says = Settings {
        metrics_ports: vec![IntOrString::Int(9080)],
        ..Settings::default()
    };
    struct Case {
        name: &'static str,
        /// The Service port's name, if a Service targets the pod at all.
        service_port: Option<&'static str>,
        target: i32,
        settings: Settings,
        port: i32,
        metrics_only: bool,
    }
    let cases = [
        Case {
            name: "no Service: the scrape annotation makes it metrics only",
            service_port: None,
            target: 9080,
            settings: Settings::default(),
            port: 9080,
            metrics_only: true,
        },
        Case {
            name: "a Service port named http sends app traffic to it",
            service_port: Some("http"),
            target: 9080,
            settings: Settings::default(),
            port: 9080,
            metrics_only: false,
        },
        Case {
            name: "a Service port named for metrics leaves it metrics only",
            service_port: Some("http-metrics"),
            target: 9080,
            settings: Settings::default(),
            port: 9080,
            metrics_only: true,
        },
        Case {
            name: "a Service port sends app traffic to the container port named metrics",
            service_port: Some("web"),
            target: 9090,
            settings: Settings::default(),
            port: 9090,
            metrics_only: false,
        },
        Case {
            name: "the user's metrics-ports setting wins over a Service",
            service_port: Some("http"),
            target: 9080,
            settings: user_says,
            port: 9080,
            metrics_only: true,
        },
    ];
    for case in cases {
        let targets: Vec<services::Target> = case
            .service_port
            .map(|name| services::Target {
                service: "web",
                name: Some(name),
                number: 1,
                port: IntOrString::Int(case.target),
                app_protocol: None,
            })
            .into_iter()
            .collect();
        let facts = MetricsFacts::gather(
            &c,
            &command_line::flags(&c),
            Some(&scrape),
            &case.settings,
            &targets,
        );
        assert_eq!(
            facts.is_metrics_port(case.port),
            case.metrics_only,
            "{}",
            case.name
        );
    }
}

#[test]
fn warning_names_container_probe_port_switch_and_remedy() {
    let c = container(&["--enable-metrics=false"], &[], &[("metrics", 10660)]);
    let facts = MetricsFacts::gather(
        &c,
        &command_line::flags(&c),
        None,
        &Settings::default(),
        &[],
    );
    let probe = tcp(IntOrString::Int(10660));
    let warnings = check(&c, &facts, [(ProbeKind::Liveness, &probe)]);
    assert_eq!(
        warnings,
        [(
            ProbeKind::Liveness,
            "container \"ctl\": livenessProbe targets port 10660, which serves metrics \
          (container port \"metrics\"), but metrics are off (--enable-metrics=false), so the \
          probe will fail. Serve health on a port of its own or enable metrics; if the port listens \
         anyway, set probegate.io/metrics-coupling: off on the workload."
                .to_owned()
        )]
    );
}

#[test]
fn exec_probes_and_unknown_named_ports_are_not_judged() {
    let c = container(&["--enable-metrics=false"], &[], &[("metrics", 10660)]);
    let facts = MetricsFacts::gather(
        &c,
        &command_line::flags(&c),
        None,
        &Settings::default(),
        &[],
    );
    let exec = Probe::default();
    let unknown = tcp(IntOrString::String("nope".into()));
    assert!(
        check(
            &c,
            &facts,
            [
                (ProbeKind::Liveness, &exec),
                (ProbeKind::Readiness, &unknown)
            ]
        )
        .is_empty()
    );
}
