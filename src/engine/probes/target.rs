//! Where injected probes connect: the port setting, a controller-runtime health address,
//! a port a selecting Service targets, a health-named or `http` port, then the first port
//! that does not serve metrics. Each step is evidence the user can see in the record or a
//! warning.

use crate::engine::object::{Container, PodSpec, Port};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Evidence;
use crate::engine::command_line::Flag;
use crate::engine::conventions::{self, HealthServer};
use crate::engine::{WarningKind, ports};
use crate::policy::{self, Settings};

const HEALTH_PORT_NAMES: [&str; 3] = ["health", "healthz", "probes"];

/// Which containers the `probegate.io/port` setting is for: those that declare the port,
/// or, when none does, the first container (by convention the application), so a sidecar
/// is never probed on the application's port.
#[derive(Clone, Copy)]
pub struct PortScope<'a> {
    port: &'a IntOrString,
    declared_somewhere: bool,
}

impl<'a> PortScope<'a> {
    pub fn of(settings: &'a Settings, spec: &PodSpec<'_>) -> Option<PortScope<'a>> {
        settings.port.as_ref().map(|port| PortScope {
            port,
            declared_somewhere: spec.containers.iter().any(|c| ports::declares(c, port)),
        })
    }

    /// The port setting, if it is for the container at `index`.
    pub fn port_for(&self, index: usize, container: &Container<'_>) -> Option<&'a IntOrString> {
        (ports::declares(container, self.port) || (!self.declared_somewhere && index == 0))
            .then_some(self.port)
    }
}

/// Where injected probes connect.
#[derive(Debug, PartialEq)]
pub struct Target {
    /// How the probe names the port: by name where the container names it.
    pub port: IntOrString,
    /// The port number, which gRPC probes need.
    pub number: i32,
    /// The health server a flag declares there, whose paths are known.
    pub health: Option<&'static HealthServer>,
    /// The Service port that sends traffic here, when that decided.
    pub from_service: Option<String>,
}

/// The port the probes connect to, by the first rule that gives one; `Err` says why there
/// is none. Warnings say where a setting or flag could not be used.
pub fn find(
    container: &Container<'_>,
    flags: &[Flag<'_>],
    evidence: Evidence<'_>,
    warnings: &mut Vec<(WarningKind, String)>,
) -> Result<Target, String> {
    if let Some(target) = from_port_setting(container, evidence.port, warnings) {
        return Ok(target);
    }
    // An explicit health server beats any guess from the port list.
    if let Some(target) = from_health_flag(container, flags, warnings) {
        return Ok(target);
    }
    let tcp_ports: Vec<&Port<'_>> = container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        // An entry without a number decodes as 0; neither it nor one out of range can be probed.
        .filter(|p| (1..=65535).contains(&p.container_port))
        .collect();
    from_service(&tcp_ports, evidence)
        .or_else(|| named(&tcp_ports, &HEALTH_PORT_NAMES))
        .or_else(|| named(&tcp_ports, &["http"]))
        // A probe on the metrics listener is the coupling this product warns about: never
        // pick one.
        .or_else(|| {
            tcp_ports
                .iter()
                .find(|p| !evidence.metrics.is_metrics_port(p.container_port))
                .map(|p| target_of(p))
        })
        .ok_or_else(|| nothing_to_probe(&tcp_ports, evidence))
}

fn from_port_setting(
    container: &Container<'_>,
    port: Option<&IntOrString>,
    warnings: &mut Vec<(WarningKind, String)>,
) -> Option<Target> {
    let port = port?;
    let Some(number) = ports::resolve(container, port) else {
        warnings.push((
            WarningKind::PortNotDeclared,
            format!(
                "container {:?}: {}={} names no port of this container; detecting the port instead",
                container.name,
                policy::PORT,
                ports::text(port),
            ),
        ));
        return None;
    };
    Some(Target {
        port: port.clone(),
        number,
        health: None,
        from_service: None,
    })
}

fn from_health_flag(
    container: &Container<'_>,
    flags: &[Flag<'_>],
    warnings: &mut Vec<(WarningKind, String)>,
) -> Option<Target> {
    match conventions::health_server(container, flags)? {
        Ok((server, number)) => Some(Target {
            port: IntOrString::Int(number.into()),
            number: number.into(),
            health: Some(server),
            from_service: None,
        }),
        Err(why) => {
            warnings.push((
                WarningKind::HealthServerUnreachable,
                format!("{why} (set {} to choose the port)", policy::PORT),
            ));
            None
        }
    }
}

/// The port a Service sends traffic to is the one whose readiness matters: a broker's AMQP
/// port, not its management UI declared before it.
fn from_service(tcp_ports: &[&Port<'_>], evidence: Evidence<'_>) -> Option<Target> {
    evidence
        .service_targets
        .iter()
        .filter(|t| !t.is_metrics())
        .find_map(|service_target| {
            let declared = tcp_ports
                .iter()
                .find(|p| ports::is(p, &service_target.port))?;
            Some(Target {
                from_service: Some(service_target.describe()),
                ..target_of(declared)
            })
        })
}

fn named(tcp_ports: &[&Port<'_>], names: &[&str]) -> Option<Target> {
    names.iter().find_map(|name| {
        tcp_ports
            .iter()
            .find(|p| p.name.as_deref() == Some(*name))
            .map(|p| target_of(p))
    })
}

fn nothing_to_probe(tcp_ports: &[&Port<'_>], evidence: Evidence<'_>) -> String {
    if tcp_ports.is_empty() {
        return format!(
            "it declares no TCP containerPort and no health server flag ({}); set {} to choose one",
            conventions::flag_list(),
            policy::PORT
        );
    }
    let metrics: Vec<String> = tcp_ports
        .iter()
        .map(|p| {
            let why = evidence.metrics.ports.get(&p.container_port);
            format!("{} ({})", p.container_port, why.map_or("", String::as_str))
        })
        .collect();
    format!(
        "its only TCP ports serve metrics as far as it can tell: {}, and no Service sends \
         traffic to them; serve health on a port of its own, or if one of them serves the \
         application too, give the pods a Service that targets it or set {}",
        metrics.join(", "),
        policy::PORT
    )
}

fn target_of(port: &Port<'_>) -> Target {
    Target {
        port: port
            .name
            .as_deref()
            .map_or(IntOrString::Int(port.container_port), |name| {
                IntOrString::String(name.to_owned())
            }),
        number: port.container_port,
        health: None,
        from_service: None,
    }
}
