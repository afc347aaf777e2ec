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

mod target;

use k8s_openapi::api::core::v1::{
    Container, GRPCAction, HTTPGetAction, PodSpec, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::command_line::Flag;
use super::metrics_coupling::MetricsFacts;
use super::plan::{ContainerProbes, Plan};
use super::{Rule, ports, services};
use crate::policy::{self, Handler, ProbeKind, Settings};
use target::{PortScope, Target};

/// What the rule reads of a pod besides its spec and settings.
pub struct PodEvidence<'a> {
    /// Probe kinds to add where missing: none for a batch pod that did not ask.
    pub requested: &'a [ProbeKind],
    /// Each container's command-line flags, in pod spec order.
    pub flags: &'a [Vec<Flag<'a>>],
    /// Each container's metrics facts, in pod spec order.
    pub metrics: &'a [MetricsFacts],
    /// The ports the Services selecting the pod send traffic to, in decision order.
    pub service_targets: &'a [services::Target<'a>],
}

/// Adds to `plan` the probes each container of `spec` lacks, and what was held back.
pub fn plan_pod(spec: &PodSpec, settings: &Settings, evidence: &PodEvidence<'_>, out: &mut Plan) {
    let port_scope = PortScope::of(settings, spec);
    let containers = spec.containers.iter().enumerate();
    for ((index, container), (flags, metrics)) in
        containers.zip(evidence.flags.iter().zip(evidence.metrics))
    {
        // A container the user listed is left without added probes, and nothing is said.
        let requested = if settings.skip_containers.contains(&container.name) {
            &[]
        } else {
            evidence.requested
        };
        let container_evidence = Evidence {
            port: port_scope.and_then(|scope| scope.port_for(index, container)),
            service_targets: evidence.service_targets,
            metrics,
        };
        let decided = plan(container, flags, settings, requested, container_evidence);
        out.warn(Rule::Probes, decided.warnings);
        match decided.held {
            Some(ProbeKind::Liveness) => out.liveness_held.push(container.name.clone()),
            Some(ProbeKind::Readiness) => out.readiness_held.push(container.name.clone()),
            _ => {}
        }
        if !decided.added.is_empty() {
            out.probes.push(ContainerProbes {
                index,
                container: container.name.clone(),
                added: decided.added,
                port_from_service: decided.port_from_service,
            });
        }
    }
}

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
    let target = match target::find(container, flags, evidence, &mut plan.warnings) {
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
    plan.held = hold_repeats(container, settings, &mut added);
    // An added liveness probe never runs before the container has started.
    if injected(&added, ProbeKind::Liveness).is_some()
        && existing(container, ProbeKind::Startup).is_none()
        && injected(&added, ProbeKind::Startup).is_none()
    {
        added.push((
            ProbeKind::Startup,
            build(ProbeKind::Startup, &target, settings),
        ));
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

/// Liveness and readiness that check the same thing fail together: whichever probegate
/// would add second is removed from `added` and returned (liveness, when it adds both).
fn hold_repeats(
    container: &Container,
    settings: &Settings,
    added: &mut Vec<(ProbeKind, Probe)>,
) -> Option<ProbeKind> {
    let repeats = |a: Option<&Probe>, b: &Probe| {
        !settings.identical_liveness && a.is_some_and(|a| same_check(container, a, b))
    };
    let mut held = None;
    if let Some((index, readiness)) = injected(added, ProbeKind::Readiness)
        && repeats(existing(container, ProbeKind::Liveness), readiness)
    {
        added.remove(index);
        held = Some(ProbeKind::Readiness);
    }
    if let Some((index, liveness)) = injected(added, ProbeKind::Liveness) {
        let readiness = existing(container, ProbeKind::Readiness)
            .or_else(|| injected(added, ProbeKind::Readiness).map(|(_, probe)| probe));
        if repeats(readiness, liveness) {
            added.remove(index);
            held = Some(ProbeKind::Liveness);
        }
    }
    held
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
        |p: &IntOrString| ports::resolve(container, p).map_or_else(|| p.clone(), IntOrString::Int);
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
mod tests;
