//! The mutation engine: typed object and annotations in, JSON Patch and warnings out.
//!
//! Pure and synchronous: no I/O, no clock, no global state, so the webhook, the offline
//! `mutate` command and the tests all run exactly the same code.

pub mod command_line;
pub mod metrics_coupling;
pub mod probes;
pub mod readiness_gates;
pub mod services;

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation};
use jsonptr::{PointerBuf, Token};
use k8s_openapi::api::core::v1::{Container, PodReadinessGate, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::policy::{self, CouplingMode, INJECTED_ANNOTATION, ProbeKind, Settings};
use crate::workload::Workload;
use metrics_coupling::MetricsFacts;
pub use services::ServiceEvidence;

/// What the engine knows besides the object itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Annotation layers under the object's own, least specific first: cluster-wide
    /// defaults, then the namespace's annotations.
    pub layers: &'a [&'a BTreeMap<String, String>],
    /// Services in the object's namespace: which select the pods decides where readiness
    /// gates go, and their ports are evidence of metrics ports.
    pub services: &'a [&'a ServiceEvidence],
}

/// Whether any rule reads the annotation `key` of a Pod or workload: probegate's own
/// settings and record, and the scrape port the metrics rule takes as evidence.
pub fn reads_annotation(key: &str) -> bool {
    key.starts_with(policy::PREFIX) || metrics_coupling::reads_annotation(key)
}

/// Which rule a warning comes from; a bounded label for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Policy,
    Probes,
    ReadinessGates,
    MetricsCoupling,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Policy => "policy",
            Rule::Probes => "probes",
            Rule::ReadinessGates => "readiness_gates",
            Rule::MetricsCoupling => "metrics_coupling",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: Rule,
    pub message: String,
}

/// The engine's answer for one object.
#[derive(Debug, Default, PartialEq)]
pub struct Mutation {
    /// Empty when nothing is added: the object stays exactly as it was.
    pub patch: Patch,
    pub warnings: Vec<Warning>,
    /// Set when policy says the object must be refused (`metrics-coupling: deny`).
    pub denial: Option<String>,
    /// Probes added, per kind in `ProbeKind::ALL` order.
    pub probes_added: [usize; 3],
    pub gates_added: usize,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty() && self.warnings.is_empty() && self.denial.is_none()
    }

    /// Whether there is anything for a lint to report: something injected, warned or
    /// refused. Copying a workload's own settings into its pod template is bookkeeping
    /// that keeps its pods judged alike, not a finding.
    pub fn is_finding(&self) -> bool {
        self.probes_added.iter().any(|n| *n > 0)
            || self.gates_added > 0
            || !self.warnings.is_empty()
            || self.denial.is_some()
    }
}

/// Computes the patch and warnings for one admission object.
pub fn mutate(workload: &Workload, context: &Context<'_>) -> Mutation {
    let mut mutation = Mutation::default();
    let Some(parts) = workload.pod_parts() else {
        return mutation;
    };
    // The label the webhook's objectSelector excludes: honoured here too, so a selector left
    // out of the configuration, or an offline run, behaves the same.
    if [Some(workload.metadata()), parts.pod_meta]
        .into_iter()
        .flatten()
        .filter_map(|meta| meta.labels.as_ref())
        .any(|labels| labels.get(policy::INJECT).is_some_and(|v| v == "disabled"))
    {
        return mutation;
    }
    // A workload a controller owns (a Deployment's ReplicaSet) is the controller's to
    // shape: a changed template makes it create another, forever. Its pods are mutated
    // when they are created.
    if parts.workload_meta.is_some()
        && workload
            .metadata()
            .owner_references
            .iter()
            .flatten()
            .any(|owner| owner.controller == Some(true))
    {
        return mutation;
    }
    let mut layers: Vec<&BTreeMap<String, String>> = context.layers.to_vec();
    layers.extend(parts.workload_meta.and_then(|m| m.annotations.as_ref()));
    layers.extend(parts.pod_meta.and_then(|m| m.annotations.as_ref()));
    let (settings, policy_warnings) = Settings::resolve(&layers);
    // Layers from here on are the object's own: what the user asked of this very object.
    let own_layers = context.layers.len();
    let mut warn = |rule: Rule, message: String| mutation.warnings.push(Warning { rule, message });
    for message in policy_warnings {
        warn(Rule::Policy, message);
    }
    // The pods are admitted with the template's annotations only: the workload's own
    // settings go into the template, so its pods are judged the same way.
    let mut inherited = inherited_settings(&parts);
    if !settings.inject {
        // Disabled means unchanged, except that a workload's own opt-out must reach pods
        // that would otherwise be mutated.
        inherited.retain(|(key, _)| *key == policy::INJECT);
        if !inherited.is_empty() && !pods_would_be_mutated(context, &parts) {
            inherited.clear();
        }
    }

    let base = parts.base;
    let mut ops = Vec::new();
    let mut record = Vec::new();
    let mut coupling = Vec::new();
    let mut probes_added = [0; 3];
    let mut gates_added = 0;
    if settings.inject {
        let batch = workload.is_batch();
        // Batch pods get probes only where the object itself asks for them.
        let requested: &[ProbeKind] =
            if batch && !settings.set_at_or_above(policy::PROBES, own_layers) {
                &[]
            } else {
                &settings.probes
            };
        let labels = parts.pod_meta.and_then(|m| m.labels.as_ref());
        let selecting = services::selecting(
            context.services,
            workload.metadata().namespace.as_deref(),
            labels,
        );
        let service_targets = services::targets(&selecting);
        let port = port_setting_scope(&settings, parts.spec);
        let mut held: [Vec<&str>; 2] = [Vec::new(), Vec::new()];
        let mut port_from_service = Vec::new();
        for (index, container) in parts.spec.containers.iter().enumerate() {
            let flags = command_line::flags(container);
            let facts = MetricsFacts::gather(
                container,
                &flags,
                parts.pod_meta,
                &settings,
                &service_targets,
            );
            let port = port
                .filter(|p| p.applies_to(index, container))
                .map(|p| p.port);
            // A container the user listed is left without added probes, and nothing is
            // said about it.
            let requested = if settings.skip_containers.contains(&container.name) {
                &[]
            } else {
                requested
            };
            let plan = probes::plan(
                container,
                &flags,
                &settings,
                requested,
                probes::Evidence {
                    port,
                    service_targets: &service_targets,
                    metrics: &facts,
                },
            );
            for message in plan.warnings {
                warn(Rule::Probes, message);
            }
            match plan.held {
                Some(ProbeKind::Liveness) => held[0].push(container.name.as_str()),
                Some(ProbeKind::Readiness) => held[1].push(container.name.as_str()),
                _ => {}
            }
            if let Some(service) = &plan.port_from_service
                && !plan.added.is_empty()
            {
                port_from_service.push(format!("{}({service})", container.name));
            }
            if settings.metrics_coupling != CouplingMode::Off {
                let existing = ProbeKind::ALL
                    .into_iter()
                    .filter_map(|kind| probes::existing(container, kind).map(|p| (kind, p)));
                let added = plan.added.iter().map(|(kind, probe)| (*kind, probe));
                coupling.extend(metrics_coupling::check(
                    container,
                    &facts,
                    existing.chain(added),
                ));
            }
            if plan.added.is_empty() {
                continue;
            }
            let container_path = pointer(base, &["spec", "containers", &index.to_string()]);
            let mut kinds = Vec::new();
            for (kind, probe) in &plan.added {
                probes_added[*kind as usize] += 1;
                kinds.push(kind.as_str());
                ops.push(add(child(&container_path, kind.field()), probe));
            }
            record.push(format!("{}={}", container.name, kinds.join(",")));
        }
        if !port_from_service.is_empty() {
            record.push(format!("port={}", port_from_service.join(",")));
        }
        for (containers, entry) in held.iter().zip([
            "liveness-held={}(same check as readiness)",
            "readiness-held={}(same check as liveness)",
        ]) {
            if !containers.is_empty() {
                record.push(entry.replace("{}", &containers.join(",")));
            }
        }

        let gates = readiness_gates::plan(
            parts.spec,
            &settings,
            &readiness_gates::Evidence {
                labels,
                services: context.services,
                selecting: &selecting,
                set_by_object: settings.set_at_or_above(policy::READINESS_GATES, own_layers),
                batch,
            },
        );
        for message in gates.warnings {
            warn(Rule::ReadinessGates, message);
        }
        if !gates.added.is_empty() {
            let new_gates: Vec<PodReadinessGate> = gates
                .added
                .iter()
                .map(|condition_type| PodReadinessGate {
                    condition_type: condition_type.clone(),
                })
                .collect();
            let gates_path = pointer(base, &["spec", "readinessGates"]);
            if parts.spec.readiness_gates.is_some() {
                for gate in &new_gates {
                    ops.push(add(child(&gates_path, "-"), gate));
                }
            } else {
                ops.push(add(gates_path, &new_gates));
            }
            gates_added = new_gates.len();
            record.push(format!("gates={}", new_gates.len()));
        }
        if gates.held > 0 {
            record.push(format!(
                "gates-held={}(no Service selects the pods)",
                gates.held
            ));
        }
    }

    if settings.metrics_coupling == CouplingMode::Deny && !coupling.is_empty() {
        mutation.denial = Some(coupling.join(" "));
        return mutation;
    }
    for message in coupling {
        warn(Rule::MetricsCoupling, message);
    }

    // Only what was added is recorded: a record of what was held back alone would change
    // an object that probegate otherwise leaves as it is.
    let injected = probes_added.iter().any(|n| *n > 0) || gates_added > 0;
    let record = if injected {
        // A pod judged again after its template keeps the template's record too.
        let earlier = parts
            .pod_meta
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(INJECTED_ANNOTATION))
            .map_or("", String::as_str);
        merge_record(earlier, &record)
    } else {
        String::new()
    };
    let mut annotations: Vec<(&str, &str)> = inherited;
    if !record.is_empty() {
        annotations.push((INJECTED_ANNOTATION, &record));
    }
    if !annotations.is_empty() {
        ops.extend(annotations_op(base, parts.pod_meta, &annotations));
    }
    if ops.is_empty() {
        return mutation;
    }
    match ops.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(ops) => {
            mutation.patch = Patch(ops);
            mutation.probes_added = probes_added;
            mutation.gates_added = gates_added;
        }
        // Never half a patch: leave the object as it is and say so.
        Err(error) => mutation.warnings.push(Warning {
            rule: Rule::Probes,
            message: format!("internal error, object left unchanged: {error}"),
        }),
    }
    mutation
}

/// The record of a pod judged again, from its template's record and this review's entries
/// (`key=value`): counts of gates add up, lists join, and gates held back on the template
/// but added now are no longer held.
fn merge_record(earlier: &str, now: &[String]) -> String {
    let split = |entry: &str| {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        (key.to_owned(), value.to_owned())
    };
    let mut entries: Vec<(String, String)> = earlier
        .split(';')
        .filter(|e| !e.is_empty())
        .map(split)
        .collect();
    let now: Vec<(String, String)> = now.iter().map(|e| split(e)).collect();
    if now.iter().any(|(key, _)| key == "gates") && !now.iter().any(|(key, _)| key == "gates-held")
    {
        entries.retain(|(key, _)| key != "gates-held");
    }
    for (key, value) in now {
        match entries.iter_mut().find(|(k, _)| *k == key) {
            None => entries.push((key, value)),
            Some((_, earlier)) if key == "gates" || key == "gates-held" => {
                let count = |v: &str| v.split('(').next().and_then(|n| n.parse::<usize>().ok());
                *earlier = match (key.as_str(), count(earlier), count(&value)) {
                    ("gates", Some(a), Some(b)) => (a + b).to_string(),
                    _ => value,
                };
            }
            Some((_, earlier)) => {
                for item in value.split(',') {
                    if !earlier.split(',').any(|e| e == item) {
                        earlier.push(',');
                        earlier.push_str(item);
                    }
                }
            }
        }
    }
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    entries.join(";")
}

/// Whether pods admitted with only the template's annotations would get injections.
fn pods_would_be_mutated(context: &Context<'_>, parts: &crate::workload::PodParts<'_>) -> bool {
    let mut layers: Vec<&BTreeMap<String, String>> = context.layers.to_vec();
    layers.extend(parts.pod_meta.and_then(|m| m.annotations.as_ref()));
    Settings::resolve(&layers).0.inject
}

/// The workload's own `probegate.io/` settings that its pod template does not set.
fn inherited_settings<'a>(parts: &crate::workload::PodParts<'a>) -> Vec<(&'a str, &'a str)> {
    let Some(workload) = parts.workload_meta.and_then(|m| m.annotations.as_ref()) else {
        return Vec::new();
    };
    let template = parts.pod_meta.and_then(|m| m.annotations.as_ref());
    workload
        .iter()
        // Only values that took effect: a bad one was ignored here and would be there.
        .filter(|(key, value)| policy::is_valid(key, value))
        .filter(|(key, _)| !template.is_some_and(|t| t.contains_key(*key)))
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

/// Which containers the `probegate.io/port` setting is for: those that declare the port,
/// or, when none does, the first container (by convention the application), so a sidecar
/// is never probed on the application's port.
#[derive(Clone, Copy)]
struct PortScope<'a> {
    port: &'a IntOrString,
    declared_somewhere: bool,
}

impl PortScope<'_> {
    fn applies_to(&self, index: usize, container: &Container) -> bool {
        declares(container, self.port) || (!self.declared_somewhere && index == 0)
    }
}

fn port_setting_scope<'a>(settings: &'a Settings, spec: &PodSpec) -> Option<PortScope<'a>> {
    settings.port.as_ref().map(|port| PortScope {
        port,
        declared_somewhere: spec.containers.iter().any(|c| declares(c, port)),
    })
}

fn declares(container: &Container, port: &IntOrString) -> bool {
    container.ports.iter().flatten().any(|p| match port {
        IntOrString::Int(n) => p.container_port == *n,
        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

/// Adds annotations to the Pod or pod template, creating the maps they need.
fn annotations_op(
    base: &[&str],
    pod_meta: Option<&ObjectMeta>,
    entries: &[(&str, &str)],
) -> Vec<OpResult> {
    let map: BTreeMap<&str, &str> = entries.iter().copied().collect();
    match pod_meta {
        Some(meta) if meta.annotations.is_some() => entries
            .iter()
            .map(|(key, value)| add(pointer(base, &["metadata", "annotations", key]), value))
            .collect(),
        // An empty metadata map may also be absent from the JSON: replace it whole.
        Some(meta) if *meta != ObjectMeta::default() => {
            vec![add(pointer(base, &["metadata", "annotations"]), &map)]
        }
        _ => vec![add(
            pointer(base, &["metadata"]),
            &BTreeMap::from([("annotations", map)]),
        )],
    }
}

fn pointer(base: &[&str], rest: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(base.iter().chain(rest).map(|t| Token::new(*t)))
}

fn child(parent: &PointerBuf, token: &str) -> PointerBuf {
    let mut path = parent.clone();
    path.push_back(Token::new(token));
    path
}

type OpResult = Result<PatchOperation, serde_json::Error>;

fn add(path: PointerBuf, value: &impl Serialize) -> OpResult {
    let value = serde_json::to_value(value)?;
    Ok(PatchOperation::Add(AddOperation { path, value }))
}

#[cfg(test)]
mod tests;
