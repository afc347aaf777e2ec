//! Rule: every regular container gets the requested probes it lacks, on a port it declares.
//!
//! The default handler is tcpSocket on purpose: a wrong httpGet path on a liveness probe
//! restarts healthy containers forever, so HTTP probes come only from a configured path or
//! from a health endpoint the container itself declares.
//!
//! Two guards keep an added liveness probe from killing a pod: it is held back where it
//! would repeat the readiness check (a pod that is merely overloaded or waiting on a
//! dependency would be restarted instead of taken out of rotation), and it comes with a
//! startup probe, so it never runs before the container has started.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, GRPCAction, HTTPGetAction, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::command_line::{self, Flag};
use super::metrics_coupling::{MetricsFacts, resolve_port};
use super::services;
use crate::policy::{self, Handler, ProbeKind, Settings};

/// controller-runtime's health probe flag; its server answers `/healthz` and `/readyz`.
const HEALTH_PROBE_FLAG: &str = "health-probe-bind-address";
const HEALTH_PORT_NAMES: [&str; 3] = ["health", "healthz", "probes"];

#[derive(Debug, Default, PartialEq)]
pub struct ProbePlan {
    /// Probes to add, in `ProbeKind::ALL` order.
    pub added: Vec<(ProbeKind, Probe)>,
    /// A requested probe not added because it would repeat the container's other check:
    /// liveness beside readiness, or readiness beside the container's own liveness.
    pub held: Option<ProbeKind>,
    /// The Service port that decided where the probes connect, if one did.
    pub port_from_service: Option<String>,
    pub warnings: Vec<String>,
}

/// Where injected probes connect.
#[derive(Debug, PartialEq)]
struct Target {
    /// How the probe names the port: by name where the container names it.
    port: IntOrString,
    /// The port number, which gRPC probes need.
    number: i32,
    /// A controller-runtime health server, which answers `/healthz` and `/readyz`.
    controller_runtime: bool,
    /// The Service port that sends traffic here, when that decided.
    from_service: Option<String>,
}

/// What the rule reads besides the container and settings.
#[derive(Clone, Copy)]
pub struct Evidence<'a> {
    /// The `probegate.io/port` setting, where it applies to this container.
    pub port: Option<&'a IntOrString>,
    /// The ports the Services selecting the pod send traffic to, in decision order.
    pub service_targets: &'a [services::Target<'a>],
    pub metrics: &'a MetricsFacts,
}

/// `requested` are the probe kinds to add where missing.
pub fn plan(
    container: &Container,
    flags: &[Flag<'_>],
    settings: &Settings,
    requested: &[ProbeKind],
    evidence: Evidence<'_>,
) -> ProbePlan {
    let mut plan = ProbePlan::default();
    let missing: Vec<ProbeKind> = requested
        .iter()
        .copied()
        .filter(|kind| existing(container, *kind).is_none())
        .collect();
    if missing.is_empty() {
        return plan;
    }
    let target = match find_target(container, flags, evidence, &mut plan.warnings) {
        Ok(target) => target,
        Err(why) => {
            plan.warnings.push(format!(
                "container {:?}: no probe added: {why}; to leave it without probes, list it in {} on the workload",
                container.name,
                policy::SKIP_CONTAINERS,
            ));
            return plan;
        }
    };
    plan.port_from_service = target.from_service.clone();
    let mut added: Vec<(ProbeKind, Probe)> = missing
        .into_iter()
        .map(|kind| (kind, build(kind, &target, settings)))
        .collect();
    // Liveness and readiness that check the same thing fail together: whichever probegate
    // would add second is held back (liveness, when it adds both).
    let repeats = |a: Option<&Probe>, b: &Probe| {
        !settings.identical_liveness && a.is_some_and(|a| same_check(container, a, b))
    };
    if let Some((index, readiness)) = injected(&added, ProbeKind::Readiness)
        && repeats(existing(container, ProbeKind::Liveness), readiness)
    {
        added.remove(index);
        plan.held = Some(ProbeKind::Readiness);
    }
    if let Some((index, liveness)) = injected(&added, ProbeKind::Liveness) {
        let readiness = existing(container, ProbeKind::Readiness)
            .or_else(|| injected(&added, ProbeKind::Readiness).map(|(_, probe)| probe));
        if repeats(readiness, liveness) {
            added.remove(index);
            plan.held = Some(ProbeKind::Liveness);
        } else if existing(container, ProbeKind::Startup).is_none()
            && injected(&added, ProbeKind::Startup).is_none()
        {
            added.push((
                ProbeKind::Startup,
                build(ProbeKind::Startup, &target, settings),
            ));
        }
    }
    for (kind, probe) in added {
        // A startup probe added to guard liveness shares its handler and its warning.
        let guard = kind == ProbeKind::Startup && !requested.contains(&kind);
        if settings.handler == Handler::Http && probe.tcp_socket.is_some() && !guard {
            plan.warnings.push(format!(
                "container {:?}: {}=http needs {} to know what to request; added a tcpSocket {kind} probe instead",
                container.name,
                policy::PROBE_HANDLER,
                kind.path_key(),
            ));
        }
        plan.added.push((kind, probe));
    }
    plan
}

fn injected(added: &[(ProbeKind, Probe)], kind: ProbeKind) -> Option<(usize, &Probe)> {
    added
        .iter()
        .position(|(k, _)| *k == kind)
        .map(|index| (index, &added[index].1))
}

/// Whether two probes check the same thing, so one failing means the other fails too: the
/// same handler on the same port (named ports resolved), and for HTTP the same path. Probe
/// linters rate a liveness probe identical to readiness as dangerous.
pub fn same_check(container: &Container, a: &Probe, b: &Probe) -> bool {
    let port =
        |p: &IntOrString| resolve_port(container, p).map_or_else(|| p.clone(), IntOrString::Int);
    if let (Some(a), Some(b)) = (&a.http_get, &b.http_get) {
        return port(&a.port) == port(&b.port) && a.path == b.path;
    }
    if let (Some(a), Some(b)) = (&a.tcp_socket, &b.tcp_socket) {
        return port(&a.port) == port(&b.port);
    }
    if let (Some(a), Some(b)) = (&a.grpc, &b.grpc) {
        return a.port == b.port && a.service == b.service;
    }
    if let (Some(a), Some(b)) = (&a.exec, &b.exec) {
        return a.command == b.command;
    }
    false
}

/// The container's own probe of `kind`.
pub fn existing(container: &Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Liveness => container.liveness_probe.as_ref(),
        ProbeKind::Readiness => container.readiness_probe.as_ref(),
        ProbeKind::Startup => container.startup_probe.as_ref(),
    }
}

fn find_target(
    container: &Container,
    flags: &[Flag<'_>],
    evidence: Evidence<'_>,
    warnings: &mut Vec<String>,
) -> Result<Target, String> {
    if let Some(port) = evidence.port {
        match resolve_port(container, port) {
            Some(number) => {
                return Ok(Target {
                    port: port.clone(),
                    number,
                    controller_runtime: false,
                    from_service: None,
                });
            }
            None => warnings.push(format!(
                "container {:?}: {}={} names no port of this container; detecting the port instead",
                container.name,
                policy::PORT,
                port_text(port),
            )),
        }
    }
    // An explicit health server beats any guess from the port list.
    if let Some(flag) = flags.iter().rfind(|flag| flag.name == HEALTH_PROBE_FLAG)
        && let Some(address) = flag.value()
        && let Some(number) = command_line::listen_port(address)
    {
        if !command_line::is_loopback(address) {
            return Ok(Target {
                port: IntOrString::Int(number.into()),
                number: number.into(),
                controller_runtime: true,
                from_service: None,
            });
        }
        warnings.push(format!(
            "container {:?}: {} listens on loopback only, which the kubelet cannot reach; not probing it (set {} to choose the port)",
            container.name,
            flag.describe(),
            policy::PORT,
        ));
    }
    let tcp_ports: Vec<&ContainerPort> = container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        // An entry without a number decodes as 0; neither it nor one out of range can be probed.
        .filter(|p| (1..=65535).contains(&p.container_port))
        .collect();
    // The port a Service sends traffic to is the one whose readiness matters: a broker's
    // AMQP port, not its management UI declared before it.
    for service_target in evidence.service_targets.iter().filter(|t| !t.is_metrics()) {
        let declared = tcp_ports.iter().find(|p| match &service_target.port {
            IntOrString::Int(n) => p.container_port == *n,
            IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
        });
        if let Some(port) = declared {
            return Ok(Target {
                from_service: Some(service_target.describe()),
                ..target_of(port)
            });
        }
    }
    let named = |names: &[&str]| {
        names.iter().find_map(|name| {
            tcp_ports
                .iter()
                .find(|p| p.name.as_deref() == Some(*name))
                .map(|p| target_of(p))
        })
    };
    if let Some(target) = named(&HEALTH_PORT_NAMES).or_else(|| named(&["http"])) {
        return Ok(target);
    }
    // A probe on the metrics listener is the coupling this product warns about: never pick one.
    if let Some(port) = tcp_ports
        .iter()
        .find(|p| !evidence.metrics.is_metrics_port(p.container_port))
    {
        return Ok(target_of(port));
    }
    if tcp_ports.is_empty() {
        Err(format!(
            "it declares no TCP containerPort and no --{HEALTH_PROBE_FLAG}; set {} to choose one",
            policy::PORT
        ))
    } else {
        let evidence: Vec<String> = tcp_ports
            .iter()
            .map(|p| {
                let why = evidence.metrics.ports.get(&p.container_port);
                format!("{} ({})", p.container_port, why.map_or("", String::as_str))
            })
            .collect();
        Err(format!(
            "its only TCP ports serve metrics as far as it can tell: {}, and no Service sends \
             traffic to them; serve health on a port of its own, or if one of them serves the \
             application too, give the pods a Service that targets it or set {}",
            evidence.join(", "),
            policy::PORT
        ))
    }
}

fn target_of(port: &ContainerPort) -> Target {
    Target {
        port: port
            .name
            .clone()
            .map_or(IntOrString::Int(port.container_port), IntOrString::String),
        number: port.container_port,
        controller_runtime: false,
        from_service: None,
    }
}

fn port_text(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Enough attempts, one per period, to cover `startup-seconds`.
fn startup_failure_threshold(settings: &Settings) -> i32 {
    let period = i64::from(settings.timings.period_seconds.max(1));
    let attempts = (i64::from(settings.startup_seconds) + period - 1) / period;
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

fn build(kind: ProbeKind, target: &Target, settings: &Settings) -> Probe {
    let timings = settings.timings;
    let mut probe = Probe {
        initial_delay_seconds: Some(timings.initial_delay_seconds),
        period_seconds: Some(timings.period_seconds),
        timeout_seconds: Some(timings.timeout_seconds),
        failure_threshold: Some(timings.failure_threshold),
        ..Probe::default()
    };
    if kind == ProbeKind::Startup {
        // Liveness waits for the startup probe, so it needs no delay of its own here; its
        // attempts cover the configured start-up time.
        probe.initial_delay_seconds = Some(0);
        probe.failure_threshold = Some(startup_failure_threshold(settings));
    }
    let http = |path: &str, scheme: &str| HTTPGetAction {
        path: Some(path.to_owned()),
        port: target.port.clone(),
        scheme: Some(scheme.to_owned()),
        ..HTTPGetAction::default()
    };
    // A startup probe guards liveness, so it checks what liveness checks unless told otherwise.
    let path = match kind {
        ProbeKind::Startup => settings
            .path(kind)
            .or_else(|| settings.path(ProbeKind::Liveness)),
        _ => settings.path(kind),
    };
    if let Some(path) = path {
        probe.http_get = Some(http(path, settings.scheme.as_str()));
    } else if target.controller_runtime {
        let path = if kind == ProbeKind::Readiness {
            "/readyz"
        } else {
            "/healthz"
        };
        probe.http_get = Some(http(path, "HTTP"));
    } else if settings.handler == Handler::Grpc {
        probe.grpc = Some(GRPCAction {
            port: target.number,
            ..GRPCAction::default()
        });
    } else {
        // `http` without a path also lands here; the policy already warned about it.
        probe.tcp_socket = Some(TCPSocketAction {
            port: target.port.clone(),
            host: None,
        });
    }
    probe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Scheme, Timings};

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
        find_target(
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
        let target =
            |service: &'static str, name: &'static str, port: IntOrString| services::Target {
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
            let found = find_target(
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
            warnings[0]
                .contains("--health-probe-bind-address=127.0.0.1:8081 listens on loopback only"),
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
}
