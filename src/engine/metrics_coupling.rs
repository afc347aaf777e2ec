//! Rule: a probe must not depend on a listener that exists only while metrics are on.
//!
//! The failure this catches: the kube-ovn controller probed port 10660, which listens only
//! with `--enable-metrics=true`; with `false` the pod never became ready.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Probe;

use super::object::{Container, Meta, PodParts, PodSpec};

use super::command_line::{self, Flag, parse_bool};
use super::plan::{At, Plan};
use super::{ports, probes, services};
use crate::policy::{ProbeKind, Settings};

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
        container: &Container<'_>,
        flags: &[Flag<'_>],
        pod_meta: Option<&Meta<'_>>,
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
        parts: &PodParts<'_, '_>,
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
    container: &Container<'_>,
    flags: &[Flag<'_>],
    pod_meta: Option<&Meta<'_>>,
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
fn switched_off(container: &Container<'_>, flags: &[Flag<'_>]) -> Option<String> {
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
fn probe_port(container: &Container<'_>, probe: &Probe) -> Option<i32> {
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
pub fn check_pod(spec: &PodSpec<'_>, facts: &[MetricsFacts], plan: &Plan) -> Vec<(At, String)> {
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
        warnings.extend(
            check(container, facts, existing.chain(added))
                .into_iter()
                .map(|(kind, message)| (At::Probe(index, kind), message)),
        );
    }
    warnings
}

/// One warning per probe of `container` that targets a metrics port while metrics are off.
pub fn check<'a>(
    container: &Container<'_>,
    facts: &MetricsFacts,
    probes: impl IntoIterator<Item = (ProbeKind, &'a Probe)>,
) -> Vec<(ProbeKind, String)> {
    let Some(off) = &facts.switched_off else {
        return Vec::new();
    };
    probes
        .into_iter()
        .filter_map(|(kind, probe)| {
            let port = probe_port(container, probe)?;
            let evidence = facts.ports.get(&port)?;
            let message = format!(
                "container {:?}: {} targets port {port}, which serves metrics ({evidence}), \
                 but metrics are off ({off}), so the probe will fail. Serve health on a port \
                 of its own or enable metrics; if the port listens anyway, set {}: off on the \
                 workload.",
                container.name,
                kind.field(),
                crate::policy::METRICS_COUPLING,
            );
            Some((kind, message))
        })
        .collect()
}

#[cfg(test)]
mod tests;
