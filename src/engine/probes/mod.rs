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

use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::catalogue::{Catalogue, Check};
use super::command_line::Flag;
use super::metrics_coupling::MetricsFacts;
use super::object::{Container, PodSpec};
use super::plan::{At, ContainerProbes, Evidence as Decided, Plan};
use super::protocols::{self, Protocol};
use super::serves::{self, Known};
use super::{Rule, WarningKind, ports, services};
use crate::policy::{self, Handler, ProbeKind, Scheme, Settings, Timings};
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
    pub catalogue: &'a Catalogue,
    /// Settings layers from this index on are the object's own.
    pub own_layers: usize,
}

/// Adds to `plan` the probes each container of `spec` lacks, and what was held back.
pub fn plan_pod(
    spec: &PodSpec<'_>,
    settings: &Settings,
    evidence: &PodEvidence<'_>,
    out: &mut Plan,
) {
    let port_scope = PortScope::of(settings, spec);
    let containers = spec.containers.iter().enumerate();
    for ((index, container), (flags, metrics)) in
        containers.zip(evidence.flags.iter().zip(evidence.metrics))
    {
        // A container the user listed is left without added probes, and nothing is said.
        let requested = if settings
            .skip_containers
            .iter()
            .any(|held| *held == container.name)
        {
            &[]
        } else {
            evidence.requested
        };
        let missing = requested
            .iter()
            .any(|kind| existing(container, *kind).is_none());
        // The catalogue is consulted only where a probe may be added.
        let known = missing
            .then(|| serves::known(container, flags, evidence.catalogue, false).known)
            .flatten();
        // Read only where a path or handler from the settings could apply.
        let asks_for_protocol = ProbeKind::ALL.iter().any(|k| settings.path(*k).is_some())
            || settings.handler == Handler::Grpc;
        let publisher = container
            .image
            .as_deref()
            .filter(|_| missing && known.is_none() && asks_for_protocol)
            .and_then(|image| evidence.catalogue.publisher_of(image));
        let port = port_scope.and_then(|scope| scope.port_for(index, container));
        // The object's own paths and handler are for its application container: the one its
        // own port setting names, else the first. Sidecars keep what their software serves.
        let app = if settings.set_at_or_above(policy::PORT, evidence.own_layers) {
            port.is_some()
        } else {
            index == 0
        };
        let container_evidence = Evidence {
            port,
            app,
            service_targets: evidence.service_targets,
            metrics,
            known: known.as_ref(),
            publisher,
            own_layers: evidence.own_layers,
        };
        let decided = plan(container, flags, settings, requested, container_evidence);
        out.warn_at(Rule::Probes, Some(At::Container(index)), decided.warnings);
        match decided.held {
            Some(ProbeKind::Liveness) => out.liveness_held.push(container.name.to_string()),
            Some(ProbeKind::Readiness) => out.readiness_held.push(container.name.to_string()),
            _ => {}
        }
        if !decided.added.is_empty() {
            out.probes.push(ContainerProbes {
                index,
                container: container.name.to_string(),
                added: decided.added,
                port_from_service: decided.port_from_service,
                evidence: decided.evidence,
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
    /// What decided the handlers.
    pub evidence: Option<Decided>,
    pub warnings: Vec<(WarningKind, String)>,
}

/// What the rule reads besides the container and settings.
#[derive(Clone, Copy)]
pub struct Evidence<'a> {
    /// The `probegate.io/port` setting, where it applies to this container.
    pub port: Option<&'a IntOrString>,
    /// Whether this is the container the object's own paths and handler are for.
    pub app: bool,
    /// The ports the Services selecting the pod send traffic to, in decision order.
    pub service_targets: &'a [services::Target<'a>],
    pub metrics: &'a MetricsFacts,
    /// What the container is known to serve (catalogue, conventions), if anything.
    pub known: Option<&'a Known>,
    /// The image's publisher, where the catalogue knows its other software but not this.
    pub publisher: Option<&'a str>,
    /// Settings layers from this index on are the object's own.
    pub own_layers: usize,
}

/// The check each probe kind gets, before timings.
struct Checks {
    readiness: Check,
    liveness: Check,
    /// What liveness checks, unless a startup path says otherwise.
    startup: Check,
    evidence: Decided,
    startup_seconds: Option<i32>,
    timeout_seconds: Option<i32>,
}

/// The settings that choose a handler: set on the object itself for this container, they
/// beat what probegate knows of the software; set on the namespace or cluster, they do not.
const HANDLER_KEYS: [&str; 4] = [
    policy::PROBE_HANDLER,
    policy::LIVENESS_PATH,
    policy::READINESS_PATH,
    policy::STARTUP_PATH,
];

impl Evidence<'_> {
    fn own(&self, settings: &Settings, key: &str) -> bool {
        settings.set_at_or_above(key, self.own_layers)
    }

    /// Whether the object itself chose this container's port or handler.
    fn chosen_by_object(&self, settings: &Settings) -> bool {
        let port = self.port.is_some() && self.own(settings, policy::PORT);
        let handler = self.app && HANDLER_KEYS.iter().any(|key| self.own(settings, key));
        port || handler
    }
}

/// `requested` are the probe kinds to add where missing.
pub fn plan(
    container: &Container<'_>,
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
    let from_object = evidence.chosen_by_object(settings);
    let checks = match evidence.known.filter(|_| !from_object) {
        Some(known) => from_known(known),
        None => match target::find(container, flags, evidence, &mut plan.warnings) {
            Ok(target) => {
                plan.port_from_service = target.from_service.clone();
                from_settings(container, &target, settings, from_object, evidence)
            }
            Err(why) => {
                plan.warnings.push((
                    WarningKind::NoProbe,
                    format!(
                        "container {:?}: no probe added: {why}; to leave it without probes, list it in {} on the workload",
                        container.name,
                        policy::SKIP_CONTAINERS,
                    ),
                ));
                return plan;
            }
        },
    };
    // The software's slow start and slow check get their time, never less than the
    // settings give, unless the object itself says otherwise.
    let budget = |software: Option<i32>, key: &str, setting: i32| match software {
        Some(seconds) if !evidence.own(settings, key) => seconds.max(setting),
        _ => setting,
    };
    let startup_seconds = budget(
        checks.startup_seconds,
        policy::STARTUP_SECONDS,
        settings.startup_seconds,
    );
    let mut timings = settings.timings;
    timings.timeout_seconds = budget(
        checks.timeout_seconds,
        policy::TIMEOUT_SECONDS,
        timings.timeout_seconds,
    );
    let Checks {
        readiness,
        liveness,
        startup,
        evidence: decided,
        ..
    } = checks;
    // Each check is built into a probe at most once, so it moves rather than copies.
    let mut pending = [Some(liveness), Some(readiness), Some(startup)];
    let mut take = |kind: ProbeKind| pending[kind as usize].take();
    let mut added: Vec<(ProbeKind, Probe)> = missing
        .into_iter()
        .filter_map(|kind| Some((kind, build(kind, take(kind)?, timings, startup_seconds))))
        .collect();
    plan.held = hold_repeats(container, settings, &mut added);
    // An added liveness probe never runs before the container has started.
    if injected(&added, ProbeKind::Liveness).is_some()
        && existing(container, ProbeKind::Startup).is_none()
        && injected(&added, ProbeKind::Startup).is_none()
        && let Some(check) = take(ProbeKind::Startup)
    {
        added.push((
            ProbeKind::Startup,
            build(ProbeKind::Startup, check, timings, startup_seconds),
        ));
    }
    for (kind, probe) in added {
        // A startup probe added to guard liveness shares its handler and its warning.
        let guard = kind == ProbeKind::Startup && !requested.contains(&kind);
        let asked_http = settings.handler == Handler::Http
            && settings.path(kind).is_none()
            && matches!(
                decided,
                Decided::Workload | Decided::Namespace | Decided::Ports
            );
        if asked_http && probe.tcp_socket.is_some() && !guard {
            plan.warnings.push((
                WarningKind::HandlerWithoutPath,
                format!(
                    "container {:?}: {}=http needs {} to know what to request; added a tcpSocket {kind} probe instead",
                    container.name,
                    policy::PROBE_HANDLER,
                    kind.path_key(),
                ),
            ));
        }
        plan.added.push((kind, probe));
    }
    plan.evidence = Some(decided);
    plan
}

/// The software's own checks; where it has no liveness check, whether its listener accepts.
fn from_known(known: &Known) -> Checks {
    let liveness = known
        .liveness
        .clone()
        .or_else(|| known.listener.clone().map(|port| Check::Tcp { port }))
        // Nothing distinct to check: the repeat is held back by `hold_repeats`.
        .unwrap_or_else(|| known.readiness.clone());
    Checks {
        readiness: known.readiness.clone(),
        startup: liveness.clone(),
        liveness,
        evidence: known.evidence.clone(),
        startup_seconds: known.startup_seconds,
        timeout_seconds: known.timeout_seconds,
    }
}

/// Checks from the settings on the chosen port. A namespace's paths and handler apply only
/// where the port may speak their protocol: `GET /ready` on a database port never answers.
fn from_settings(
    container: &Container<'_>,
    target: &Target,
    settings: &Settings,
    from_object: bool,
    evidence: Evidence<'_>,
) -> Checks {
    let protocol = port_protocol(container, target, evidence.service_targets);
    // Another publisher's software serves its maintainers' endpoints, not the namespace's.
    let foreign = evidence.publisher.is_some();
    // The object's own path or handler for its application container is the user's word;
    // one from the namespace or cluster applies only where the port may speak it.
    let own = |key: &str| evidence.app && evidence.own(settings, key);
    let may_http =
        |key: &str| own(key) || (!foreign && protocol.is_none_or(|p| p.protocol.speaks_http()));
    let may_grpc = own(policy::PROBE_HANDLER)
        || (!foreign && protocol.is_none_or(|p| p.protocol == Protocol::Grpc));
    let scheme = match protocol {
        Some(p) if p.protocol == Protocol::Https && !evidence.own(settings, policy::SCHEME) => {
            Scheme::Https
        }
        _ => settings.scheme,
    };
    let mut used_settings = false;
    let mut blocked = false;
    let mut check = |kind: ProbeKind| -> Check {
        let path_kind = match kind {
            ProbeKind::Startup if settings.path(kind).is_none() => ProbeKind::Liveness,
            _ => kind,
        };
        let tcp = || Check::Tcp {
            port: target.port.clone(),
        };
        if let Some(path) = settings.path(path_kind) {
            if !may_http(path_kind.path_key()) {
                blocked = true;
                return tcp();
            }
            used_settings = true;
            return Check::Http {
                port: target.port.clone(),
                path: path.to_owned(),
                scheme,
            };
        }
        if let Some(server) = target.health {
            return Check::Http {
                port: target.port.clone(),
                path: server.path(kind).to_owned(),
                scheme: server.scheme,
            };
        }
        if settings.handler == Handler::Grpc {
            if !may_grpc {
                blocked = true;
                return tcp();
            }
            used_settings = true;
            return Check::Grpc {
                port: target.number,
                service: None,
            };
        }
        // `http` without a path also lands here; the policy already warned about it.
        tcp()
    };
    let readiness = check(ProbeKind::Readiness);
    let liveness = check(ProbeKind::Liveness);
    // A startup probe guards liveness, so it checks what liveness checks unless told otherwise.
    let startup = check(ProbeKind::Startup);
    // What kept a setting off: a wire protocol says most, then the publisher, then an HTTP
    // or gRPC port that does not speak the other.
    let by_protocol = |known: protocols::Known| Decided::Protocol {
        port: ports::text(&target.port),
        protocol: known.protocol,
        source: known.source,
    };
    let wire = protocol.filter(|k| !(k.protocol.speaks_http() || k.protocol == Protocol::Grpc));
    let kept_off = blocked
        .then(|| {
            wire.map(by_protocol)
                .or_else(|| evidence.publisher.map(|p| Decided::Publisher(p.to_owned())))
                .or_else(|| protocol.map(by_protocol))
        })
        .flatten();
    let evidence = if let Some(kept_off) = kept_off {
        kept_off
    } else if from_object {
        Decided::Workload
    } else if let Some(server) = target.health {
        Decided::Flag(server.flag)
    } else if used_settings {
        Decided::Namespace
    } else {
        Decided::Ports
    };
    Checks {
        readiness,
        liveness,
        startup,
        evidence,
        startup_seconds: None,
        timeout_seconds: None,
    }
}

/// The protocol of the port probes would connect to: a selecting Service's `appProtocol`
/// for it, its name, or its number.
fn port_protocol(
    container: &Container<'_>,
    target: &Target,
    service_targets: &[services::Target<'_>],
) -> Option<protocols::Known> {
    let declared = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.container_port == target.number);
    let app_protocol = service_targets.iter().find_map(|t| {
        let aimed = declared.is_some_and(|p| ports::is(p, &t.port))
            || t.port == IntOrString::Int(target.number);
        t.app_protocol.filter(|_| aimed)
    });
    protocols::of_port(
        app_protocol,
        declared.and_then(|p| p.name.as_deref()),
        None,
        target.number,
    )
}

/// Liveness and readiness that check the same thing fail together: whichever probegate
/// would add second is removed from `added` and returned (liveness, when it adds both).
fn hold_repeats(
    container: &Container<'_>,
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
pub fn same_check(container: &Container<'_>, a: &Probe, b: &Probe) -> bool {
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
pub fn existing<'c>(container: &'c Container<'_>, kind: ProbeKind) -> Option<&'c Probe> {
    match kind {
        ProbeKind::Liveness => container.liveness_probe.as_ref(),
        ProbeKind::Readiness => container.readiness_probe.as_ref(),
        ProbeKind::Startup => container.startup_probe.as_ref(),
    }
}

/// Enough attempts, one per period, to cover `seconds` of start-up.
fn startup_failure_threshold(timings: Timings, seconds: i32) -> i32 {
    attempts_covering(i64::from(seconds), i64::from(timings.period_seconds))
}

/// Attempts of `period` seconds that cover `seconds`, at least one: how a startup probe's
/// `failureThreshold` is sized, here and in `audit`'s suggestions.
pub fn attempts_covering(seconds: i64, period: i64) -> i32 {
    let period = period.max(1);
    let attempts = (seconds.max(1) + period - 1) / period;
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

fn build(kind: ProbeKind, check: Check, timings: Timings, startup_seconds: i32) -> Probe {
    let mut probe = Probe {
        initial_delay_seconds: Some(timings.initial_delay_seconds),
        period_seconds: Some(timings.period_seconds),
        timeout_seconds: Some(timings.timeout_seconds),
        failure_threshold: Some(timings.failure_threshold),
        ..Probe::default()
    };
    if kind == ProbeKind::Startup {
        // Liveness waits for the startup probe, so it needs no delay of its own here; its
        // attempts cover the start-up time.
        probe.initial_delay_seconds = Some(0);
        probe.failure_threshold = Some(startup_failure_threshold(timings, startup_seconds));
    }
    match check {
        Check::Http { port, path, scheme } => {
            probe.http_get = Some(HTTPGetAction {
                path: Some(path),
                port,
                scheme: Some(scheme.as_str().to_owned()),
                ..HTTPGetAction::default()
            })
        }
        Check::Tcp { port } => probe.tcp_socket = Some(TCPSocketAction { port, host: None }),
        Check::Grpc { port, service } => {
            probe.grpc = Some(GRPCAction {
                port,
                service,
                ..GRPCAction::default()
            })
        }
        Check::Exec { command } => {
            probe.exec = Some(ExecAction {
                command: Some(command),
            })
        }
    }
    probe
}

#[cfg(test)]
mod tests;
