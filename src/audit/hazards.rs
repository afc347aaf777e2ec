//! Live hazards: what only a running cluster shows, as pure functions of typed Pods and
//! Events (the clock is an argument), so each rule is tested on objects alone.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Event, Pod, PodCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::report::{Finding, FindingType};
use super::startup::Kill;
use crate::engine::metrics_coupling::{self, MetricsFacts};
use crate::engine::{Object, ServiceEvidence, WarningKind, command_line, probes, services};
use crate::findings::warning_brief;
use crate::policy::{CouplingMode, Layer, ProbeKind, Settings};

fn pod_finding(pod: &Pod, container: Option<&str>, finding_type: FindingType) -> Finding {
    Finding {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        container: container.map(str::to_owned),
        finding_type,
        rule: None,
        title: String::new(),
        message: String::new(),
        action: String::new(),
        evidence: Vec::new(),
        short_title: String::new(),
        short_action: String::new(),
    }
}

fn condition<'a>(pod: &'a Pod, condition_type: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == condition_type)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// `1h5m`, `12m`, `40s`: how long, for people.
pub fn human(duration: SignedDuration) -> String {
    let seconds = duration.as_secs().max(0);
    let (hours, minutes, secs) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// A readiness gate whose condition has been missing or not True for at least `stuck_after`
/// while the pod's containers are ready: the pod runs but never gets traffic (the failure of
/// a load balancer controller that never registers the target). The time runs from when the
/// containers became ready, or from the gate condition's own last change if that is later.
pub fn stuck_readiness_gates(
    pod: &Pod,
    now: Timestamp,
    stuck_after: SignedDuration,
) -> Vec<Finding> {
    let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
    let Some(gates) = gates.filter(|g| !g.is_empty()) else {
        return Vec::new();
    };
    if phase(pod) != Some("Running") {
        return Vec::new();
    }
    let Some(containers_ready) = condition(pod, "ContainersReady").filter(|c| c.status == "True")
    else {
        return Vec::new();
    };
    let ready_since = containers_ready
        .last_transition_time
        .as_ref()
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    let mut findings = Vec::new();
    for gate in gates {
        let gate_condition = condition(pod, &gate.condition_type);
        if gate_condition.is_some_and(|c| c.status == "True") {
            continue;
        }
        let changed = gate_condition
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let Some(since) = [ready_since, changed].into_iter().flatten().max() else {
            continue;
        };
        let stuck_for = now.duration_since(since);
        if stuck_for < stuck_after {
            continue;
        }
        findings.push(stuck_gate_finding(
            pod,
            &gate.condition_type,
            gate_condition,
            containers_ready,
            ready_since,
            now,
            since,
        ));
    }
    findings
}

/// The finding for one stuck gate: `since` is when it became stuck, `containers_ready`
/// the pod's ContainersReady condition.
fn stuck_gate_finding(
    pod: &Pod,
    gate: &str,
    gate_condition: Option<&PodCondition>,
    containers_ready: &PodCondition,
    ready_since: Option<Timestamp>,
    now: Timestamp,
    since: Timestamp,
) -> Finding {
    let stuck_for = now.duration_since(since);
    let state = match gate_condition {
        None => "was never set".to_owned(),
        Some(c) => {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if why.is_empty() {
                format!("is {}", c.status)
            } else {
                format!("is {} ({why})", c.status)
            }
        }
    };
    let mut finding = pod_finding(pod, None, FindingType::StuckReadinessGate);
    finding.title = format!("readiness gate {} stuck for {}", gate, human(stuck_for));
    // The gate's name, often long, is in the title and the message.
    finding.short_title = format!("readiness gate stuck for {}", human(stuck_for));
    finding.short_action = "check the gate's controller".into();
    finding.message = format!(
        "readiness gate {:?} {state}, and the containers have been ready for {}: the pod runs but is not Ready, so it gets no traffic and a rollout waiting on it stalls",
        gate,
        human(now.duration_since(ready_since.unwrap_or(since)))
    );
    finding.action = format!(
        "check the controller that sets {} (for a load balancer gate: its logs and whether it registered the target); delete the pod once it is fixed",
        gate
    );
    finding.evidence = vec![
        format!(
            "condition {}: {}",
            gate,
            gate_condition.map_or("absent", |c| c.status.as_str())
        ),
        format!(
            "condition ContainersReady: True since {}",
            containers_ready
                .last_transition_time
                .as_ref()
                .map_or_else(|| "the pod's creation".to_owned(), |t| t.0.to_string())
        ),
    ];
    finding
}

/// The coupling rule on a running pod's own probes: a probe on a port that serves metrics
/// while the container's metrics are switched off. Catches pods created before probegate,
/// or in namespaces it never sees. `layers` are the cluster defaults and the namespace's
/// annotations; `metrics-coupling: off` there or on the pod silences it, as in the webhook.
pub fn metrics_coupled_probes(
    pod: &Pod,
    object: &Object<'_>,
    layers: &[&BTreeMap<String, String>],
    namespace_services: &[&ServiceEvidence],
) -> Vec<Finding> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    if phase(pod) != Some("Running") {
        return Vec::new();
    }
    let Some(parts) = object.pod_parts() else {
        return Vec::new();
    };
    let mut layers: Vec<&dyn Layer> = layers.iter().map(|l| *l as &dyn Layer).collect();
    layers.extend(object.meta().annotations.as_ref().map(|a| a as &dyn Layer));
    let (settings, _) = Settings::resolve(&layers);
    if settings.metrics_coupling == CouplingMode::Off {
        return Vec::new();
    }
    let meta = object.meta();
    let selecting = services::selecting(
        namespace_services,
        meta.namespace.as_deref(),
        meta.labels.as_ref(),
    );
    let targets = services::targets(&selecting);
    let mut findings = Vec::new();
    for (container, typed) in parts.spec.containers.iter().zip(&spec.containers) {
        let flags = command_line::flags(container);
        let facts = MetricsFacts::gather(container, &flags, parts.pod_meta, &settings, &targets);
        let existing = ProbeKind::ALL
            .into_iter()
            .filter_map(|kind| probes::existing(container, kind).map(|p| (kind, p)));
        for (kind, probe) in existing {
            let Some((_, message)) = metrics_coupling::check(container, &facts, [(kind, probe)])
                .into_iter()
                .next()
            else {
                continue;
            };
            findings.push(coupled_probe_finding(pod, typed, kind, &facts, message));
        }
    }
    findings
}

fn coupled_probe_finding(
    pod: &Pod,
    container: &Container,
    kind: ProbeKind,
    facts: &MetricsFacts,
    message: String,
) -> Finding {
    let status = container_status(pod, &container.name);
    let mut finding = pod_finding(pod, Some(&container.name), FindingType::MetricsCoupledProbe);
    finding.title = format!("running with its {} on a metrics-only port", kind.field());
    finding.short_title = format!("{} fails: metrics off", kind.field());
    finding.short_action = warning_brief(WarningKind::MetricsCoupled).1.into();
    finding.action = "serve health on a port of its own or enable metrics; if the port listens anyway, set probegate.io/metrics-coupling: off on the workload".into();
    finding.evidence = facts.ports.values().cloned().collect();
    finding.evidence.extend(
        facts
            .switched_off
            .iter()
            .map(|off| format!("metrics off: {off}")),
    );
    if let Some((ready, restarts)) = status {
        finding
            .evidence
            .push(format!("ready: {ready}, restarts: {restarts}"));
    }
    finding.message = message;
    finding
}

fn container_status(pod: &Pod, name: &str) -> Option<(bool, i32)> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .find(|s| s.name == name)
        .map(|s| (s.ready, s.restart_count))
}

/// What the recorded Events say about one container's liveness probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivenessTally {
    /// `Unhealthy` events of a failed liveness probe, counting repeats.
    pub failures: i64,
    /// `Killing` events of a restart for a failed liveness probe, counting repeats.
    pub kills: i64,
    /// The latest failure's message (the probe's own output).
    pub last_message: Option<String>,
    last_seen: Option<Timestamp>,
    /// The latest kill for a failed liveness or startup probe, which the start-up
    /// measurement matches with the container's last run.
    pub last_kill: Option<Kill>,
}

/// (namespace, pod, container) to its tally.
pub type Tallies = HashMap<(String, String, String), LivenessTally>;

/// Adds an Event to the tallies if it records a liveness probe failure or the restart it
/// caused (the kubelet's `Unhealthy` "Liveness probe failed: ..." and `Killing` "Container
/// X failed liveness probe, will be restarted").
pub fn tally_event(tallies: &mut Tallies, event: &Event) {
    let object = &event.involved_object;
    if object.kind.as_deref() != Some("Pod") {
        return;
    }
    let (Some(namespace), Some(pod)) = (
        object
            .namespace
            .as_deref()
            .or(event.metadata.namespace.as_deref()),
        object.name.as_deref(),
    ) else {
        return;
    };
    let Some(container) = object
        .field_path
        .as_deref()
        .and_then(|p| p.strip_prefix("spec.containers{"))
        .and_then(|p| p.strip_suffix('}'))
    else {
        return;
    };
    let message = event.message.as_deref().unwrap_or_default();
    let failure = event.reason.as_deref() == Some("Unhealthy")
        && (message.starts_with("Liveness probe failed")
            || message.starts_with("Liveness probe errored"));
    let killing = event.reason.as_deref() == Some("Killing");
    let kill = killing && message.contains("failed liveness probe");
    let startup_kill = killing && message.contains("failed startup probe");
    if !failure && !kill && !startup_kill {
        return;
    }
    // A repeated event is one object with a count (or a series, in events.k8s.io terms).
    let count = event
        .series
        .as_ref()
        .and_then(|s| s.count.map(i64::from))
        .or(event.count.map(i64::from))
        .unwrap_or(1)
        .max(1);
    let seen = event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(event.event_time.as_ref().map(|t| t.0));
    let tally = tallies
        .entry((namespace.to_owned(), pod.to_owned(), container.to_owned()))
        .or_default();
    if kill || startup_kill {
        let by = if kill {
            ProbeKind::Liveness
        } else {
            ProbeKind::Startup
        };
        if let Some(at) = seen.filter(|at| tally.last_kill.is_none_or(|k| *at > k.at)) {
            tally.last_kill = Some(Kill { by, at, count });
        }
        if kill {
            tally.kills += count;
        }
    } else {
        tally.failures += count;
        if tally.last_message.is_none() || seen > tally.last_seen {
            tally.last_message = Some(message.to_owned());
            tally.last_seen = seen;
        }
    }
}

/// Containers of `pod` that the kubelet restarted for a failed liveness probe, from the
/// tallies of recorded Events and the container's restart count. A pod's entries are taken
/// out of `tallies`.
pub fn liveness_restarts(pod: &Pod, tallies: &mut Tallies) -> Vec<Finding> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut findings = Vec::new();
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        let key = (namespace.clone(), name.clone(), container.name.clone());
        let Some(tally) = tallies.remove(&key) else {
            continue;
        };
        if tally.kills == 0 {
            // Failures the probe's threshold absorbed cost nothing yet.
            continue;
        }
        let restarts = container_status(pod, &container.name).map(|(_, r)| r);
        let mut finding = pod_finding(pod, Some(&container.name), FindingType::LivenessRestarts);
        finding.title = format!(
            "restarted {} time(s) for a failed liveness probe{}",
            tally.kills,
            restarts.map_or_else(String::new, |r| format!(" ({r} restart(s) in all)"))
        );
        finding.message = format!(
            "the kubelet killed container {:?} {} time(s) because its liveness probe failed ({} failure(s) recorded); a liveness probe that fails while the process is only slow or its dependencies are down turns a slow start or an outage into restarts",
            container.name, tally.kills, tally.failures
        );
        finding.short_title = format!("restarted {} time(s) by liveness", tally.kills);
        finding.action = "check the liveness probe: a startup probe for slow starts, a longer timeout or threshold, or a liveness check that tests the process only".into();
        finding.short_action = "check the liveness probe".into();
        finding.evidence = vec![
            format!("{} Killing event(s) naming the liveness probe", tally.kills),
            format!(
                "{} Unhealthy event(s) of the liveness probe",
                tally.failures
            ),
        ];
        if let Some(restarts) = restarts {
            finding.evidence.push(format!("restartCount: {restarts}"));
        }
        if let Some(message) = tally.last_message {
            finding.evidence.push(format!("last failure: {message}"));
        }
        findings.push(finding);
    }
    findings
}

#[cfg(test)]
mod tests;
