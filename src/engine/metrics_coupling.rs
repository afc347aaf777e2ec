//! Rule: a probe must not depend on a listener that exists only while metrics are on.
//!
//! The failure this catches: the kube-ovn controller probed port 10660, which listens only
//! with `--enable-metrics=true`; with `false` the pod never became ready.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::command_line::{self, Flag, parse_bool};
use super::plan::Plan;
use super::{ports, probes, services};
use crate::policy::{ProbeKind, Settings};
use crate::workload::PodParts;

const PROMETHEUS_PORT_ANNOTATION: &str = "prometheus.io/port";

/// What the manifest says about one container's metrics.
#[derive(Debug, Default, PartialEq)]
pub struct MetricsFacts {
    /// The flag or variable that switches metrics off, as written.
    pub switched_off: Option<String>,
    /// Ports that serve metrics, each with the first evidence found for it.
    pub ports: BTreeMap<i32, String>,
}

impl MetricsFacts {
    pub fn gather(
        container: &Container,
        flags: &[Flag<'_>],
        pod_meta: Option<&ObjectMeta>,
        settings: &Settings,
        service_targets: &[services::Target<'_>],
    ) -> MetricsFacts {
        let mut ports = declared_metrics_ports(container, flags, pod_meta);
        let mut add = |port: i32, evidence: String| {
            ports.entry(port).or_insert(evidence);
        };
        let mut named_by_user = BTreeSet::new();
        for port in &settings.metrics_ports {
            if let Some(number) = ports::resolve(container, port) {
                add(
                    number,
                    format!("annotation {}", crate::policy::METRICS_PORTS),
                );
                named_by_user.insert(number);
            }
        }
        let mut app_ports = BTreeSet::new();
        for target in service_targets {
            if let Some(number) = ports::resolve(container, &target.port) {
                if target.is_metrics() {
                    add(number, target.describe());
                } else {
                    app_ports.insert(number);
                }
            }
        }
        // A Service sending the application's traffic to a port proves it listens whatever
        // the metrics switch says (apps often serve /metrics on their main port); only the
        // user's own metrics-ports setting outweighs that.
        ports.retain(|port, _| !app_ports.contains(port) || named_by_user.contains(port));
        MetricsFacts {
            switched_off: switched_off(container, flags),
            ports,
        }
    }

    /// Each container's facts, in pod spec order; `flags` are each container's.
    pub fn gather_pod(
        parts: &PodParts<'_>,
        flags: &[Vec<Flag<'_>>],
        settings: &Settings,
        service_targets: &[services::Target<'_>],
    ) -> Vec<MetricsFacts> {
        let containers = parts.spec.containers.iter().zip(flags);
        containers
            .map(|(container, flags)| {
                Self::gather(container, flags, parts.pod_meta, settings, service_targets)
            })
            .collect()
    }

    pub fn is_metrics_port(&self, port: i32) -> bool {
        self.ports.contains_key(&port)
    }
}

/// The ports the manifest itself says serve metrics, each with the first evidence found:
/// a port named for metrics, a metrics address flag or variable, the scrape annotation.
fn declared_metrics_ports(
    container: &Container,
    flags: &[Flag<'_>],
    pod_meta: Option<&ObjectMeta>,
) -> BTreeMap<i32, String> {
    let mut ports = BTreeMap::new();
    let mut add = |port: i32, evidence: String| {
        ports.entry(port).or_insert(evidence);
    };
    for port in container.ports.iter().flatten() {
        if let Some(name) = port.name.as_deref().filter(|n| n.contains("metrics")) {
            add(port.container_port, format!("container port {name:?}"));
        }
    }
    for flag in flags {
        if is_metrics_address_name(&flag.name, '-')
            && let Some(port) = flag.value().and_then(command_line::listen_port)
        {
            add(port.into(), flag.describe());
        }
    }
    for (name, value) in command_line::env(container) {
        if is_metrics_address_name(name, '_')
            && let Some(port) = command_line::listen_port(value)
        {
            add(port.into(), format!("{name}={value}"));
        }
    }
    if let Some(value) = pod_meta
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(PROMETHEUS_PORT_ANNOTATION))
        && let Ok(port) = value.trim().parse::<u16>()
    {
        add(
            port.into(),
            format!("annotation {PROMETHEUS_PORT_ANNOTATION}={value}"),
        );
    }
    ports
}

/// Whether this rule reads a Pod annotation of that name.
pub fn reads_annotation(key: &str) -> bool {
    key == PROMETHEUS_PORT_ANNOTATION
}

/// Whether this rule reads an environment variable of that name: every one it acts on
/// (`ENABLE_METRICS`, `METRICS_PORT`, ...) names metrics, so the webhook's decoder keeps
/// only those.
pub fn reads_variable(name: &str) -> bool {
    contains_ignore_case(name, "metrics")
}

/// `metrics-port`, `metrics-addr`, `metrics-bind-address`, `METRICS_PORT`, ... in any case.
fn is_metrics_address_name(name: &str, separator: char) -> bool {
    contains_ignore_case(name, "metrics")
        && name.rsplit(separator).next().is_some_and(|last| {
            ["port", "addr", "address"]
                .iter()
                .any(|word| last.eq_ignore_ascii_case(word))
        })
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

fn ends_with_ignore_case(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len()
        && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// The flag or variable that turns metrics off; a later flag overrides an earlier one,
/// and flags override the environment, as in most Go command lines.
fn switched_off(container: &Container, flags: &[Flag<'_>]) -> Option<String> {
    let mut off = None;
    for (name, value) in command_line::env(container) {
        let ends = |suffix| ends_with_ignore_case(name, suffix);
        let says_off = if ends("ENABLE_METRICS") || ends("METRICS_ENABLED") {
            parse_bool(value).map(|on| !on)
        } else if ends("DISABLE_METRICS") || ends("METRICS_DISABLED") {
            parse_bool(value)
        } else {
            None
        };
        match says_off {
            Some(true) => off = Some(format!("{name}={value}")),
            Some(false) => off = None,
            None => {}
        }
    }
    for flag in flags {
        let says_off = match flag.name.as_str() {
            "enable-metrics" | "metrics" | "metrics-enabled" => flag.as_bool().map(|on| !on),
            "disable-metrics" | "metrics-disabled" | "no-metrics" => flag.as_bool(),
            // controller-runtime turns its metrics listener off with a bind address of 0.
            "metrics-bind-address" | "metrics-addr" | "metrics-address" => {
                flag.value().map(|v| v.trim() == "0")
            }
            _ => None,
        };
        match says_off {
            Some(true) => off = Some(flag.describe()),
            Some(false) => off = None,
            None => {}
        }
    }
    off
}

/// The port a probe connects to, if it connects to one.
fn probe_port(container: &Container, probe: &Probe) -> Option<i32> {
    if let Some(http) = &probe.http_get {
        return ports::resolve(container, &http.port);
    }
    if let Some(tcp) = &probe.tcp_socket {
        return ports::resolve(container, &tcp.port);
    }
    probe.grpc.as_ref().map(|grpc| grpc.port)
}

/// The warnings for every container of `spec`: its own probes and those `plan` adds.
/// `facts` are each container's, in pod spec order.
pub fn check_pod(spec: &PodSpec, facts: &[MetricsFacts], plan: &Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    for ((index, container), facts) in spec.containers.iter().enumerate().zip(facts) {
        let existing = ProbeKind::ALL
            .into_iter()
            .filter_map(|kind| probes::existing(container, kind).map(|p| (kind, p)));
        let added = plan
            .probes
            .iter()
            .filter(|c| c.index == index)
            .flat_map(|c| &c.added)
            .map(|(kind, probe)| (*kind, probe));
        warnings.extend(check(container, facts, existing.chain(added)));
    }
    warnings
}

/// One warning per probe of `container` that targets a metrics port while metrics are off.
pub fn check<'a>(
    container: &Container,
    facts: &MetricsFacts,
    probes: impl IntoIterator<Item = (ProbeKind, &'a Probe)>,
) -> Vec<String> {
    let Some(off) = &facts.switched_off else {
        return Vec::new();
    };
    probes
        .into_iter()
        .filter_map(|(kind, probe)| {
            let port = probe_port(container, probe)?;
            let evidence = facts.ports.get(&port)?;
            Some(format!(
                "container {:?}: {} targets port {port}, which serves metrics ({evidence}), \
                 but metrics are off ({off}), so the probe will fail. Serve health on a port \
                 of its own or enable metrics; if the port listens anyway, set {}: off on the \
                 workload.",
                container.name,
                kind.field(),
                crate::policy::METRICS_COUPLING,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, EnvVar, GRPCAction, HTTPGetAction, Service, ServicePort, ServiceSpec,
        TCPSocketAction,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn container(args: &[&str], env: &[(&str, &str)], ports: &[(&str, i32)]) -> Container {
        Container {
            name: "ctl".into(),
            args: Some(args.iter().map(|s| s.to_string()).collect()),
            env: Some(
                env.iter()
                    .map(|(n, v)| EnvVar {
                        name: n.to_string(),
                        value: Some(v.to_string()),
                        value_from: None,
                    })
                    .collect(),
            ),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| ContainerPort {
                        name: (!name.is_empty()).then(|| name.to_string()),
                        container_port: *port,
                        ..ContainerPort::default()
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

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
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
        // (args, env, expected evidence)
        let cases: &[(&[&str], Env, Option<&str>)] = &[
            (
                &["--enable-metrics=false"],
                &[],
                Some("--enable-metrics=false"),
            ),
            (
                &["--enable-metrics", "false"],
                &[],
                Some("--enable-metrics false"),
            ),
            (&["--metrics=false"], &[], Some("--metrics=false")),
            (
                &["--metrics-enabled=FALSE"],
                &[],
                Some("--metrics-enabled=FALSE"),
            ),
            (&["--disable-metrics"], &[], Some("--disable-metrics")),
            (&["--disable-metrics=false"], &[], None),
            (
                &["--metrics-bind-address=0"],
                &[],
                Some("--metrics-bind-address=0"),
            ),
            (&["--metrics-bind-address=:8080"], &[], None),
            (&["--enable-metrics=true"], &[], None),
            (
                &["--enable-metrics=false", "--enable-metrics=true"],
                &[],
                None,
            ),
            (
                &[],
                &[("ENABLE_METRICS", "false")],
                Some("ENABLE_METRICS=false"),
            ),
            (
                &[],
                &[("METRICS_ENABLED", "Off")],
                Some("METRICS_ENABLED=Off"),
            ),
            (
                &[],
                &[("KUBE_OVN_ENABLE_METRICS", "no")],
                Some("KUBE_OVN_ENABLE_METRICS=no"),
            ),
            (
                &[],
                &[("ENABLE_METRICS", "disabled")],
                Some("ENABLE_METRICS=disabled"),
            ),
            (&[], &[("ENABLE_METRICS", "0")], Some("ENABLE_METRICS=0")),
            (
                &[],
                &[("DISABLE_METRICS", "true")],
                Some("DISABLE_METRICS=true"),
            ),
            (&[], &[("DISABLE_METRICS", "false")], None),
            (&[], &[("ENABLE_METRICS", "true")], None),
            (
                &["--enable-metrics=true"],
                &[("ENABLE_METRICS", "false")],
                None,
            ),
            (&["--verbose=false"], &[], None),
        ];
        for (args, env, expected) in cases {
            let c = container(args, env, &[]);
            let flags = command_line::flags(&c);
            assert_eq!(
                switched_off(&c, &flags).as_deref(),
                *expected,
                "{args:?} {env:?}"
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
        // (container, probe, warns)
        let cases = [
            (&off, &metrics_probe, true),
            (&off, &named_metrics_probe, true),
            (&off, &grpc_probe, true),
            (&off, &app_probe, false),
            (&on, &metrics_probe, false),
            (&on, &named_metrics_probe, false),
        ];
        for (c, probe, warns) in cases {
            let facts =
                MetricsFacts::gather(c, &command_line::flags(c), None, &Settings::default(), &[]);
            let warnings = check(c, &facts, [(ProbeKind::Readiness, probe)]);
            assert_eq!(
                warnings.len(),
                usize::from(warns),
                "{probe:?}: {warnings:?}"
            );
        }
    }

    #[test]
    fn every_variable_the_rule_acts_on_is_one_it_reads() {
        for (name, value) in [
            ("ENABLE_METRICS", "false"),
            ("KUBE_OVN_METRICS_ENABLED", "0"),
            ("DISABLE_METRICS", "true"),
            ("metrics_disabled", "yes"),
            ("METRICS_PORT", "9100"),
            ("APP_METRICS_ADDR", ":9100"),
            ("Metrics_Address", "0.0.0.0:9100"),
        ] {
            let c = container(&[], &[(name, value)], &[]);
            let facts = MetricsFacts::gather(&c, &[], None, &Settings::default(), &[]);
            assert!(
                facts.switched_off.is_some() || !facts.ports.is_empty(),
                "{name} is acted on"
            );
            assert!(reads_variable(name), "{name}");
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
        // (Service port name, its target, settings, port, still metrics only)
        let cases = [
            (None, 9080, Settings::default(), 9080, true),
            (Some("http"), 9080, Settings::default(), 9080, false),
            (Some("http-metrics"), 9080, Settings::default(), 9080, true),
            (Some("web"), 9090, Settings::default(), 9090, false),
            (Some("http"), 9080, user_says, 9080, true),
        ];
        for (name, target, settings, port, metrics_only) in cases {
            let targets: Vec<services::Target> = name
                .map(|name| services::Target {
                    service: "web",
                    name: Some(name),
                    number: 1,
                    port: IntOrString::Int(target),
                })
                .into_iter()
                .collect();
            let facts = MetricsFacts::gather(
                &c,
                &command_line::flags(&c),
                Some(&scrape),
                &settings,
                &targets,
            );
            assert_eq!(
                facts.is_metrics_port(port),
                metrics_only,
                "{name:?} -> {target}"
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
            [
                "container \"ctl\": livenessProbe targets port 10660, which serves metrics \
              (container port \"metrics\"), but metrics are off (--enable-metrics=false), so the \
              probe will fail. Serve health on a port of its own or enable metrics; if the port listens \
             anyway, set probegate.io/metrics-coupling: off on the workload."
            ]
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
}
