//! The mutation engine: typed object and annotations in, JSON Patch and warnings out.
//!
//! Pure and synchronous: no I/O, no clock, no global state, so the webhook, the offline
//! `mutate` command and the tests all run exactly the same code.

mod command_line;
pub mod metrics_coupling;
pub mod probes;
pub mod readiness_gates;

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation};
use jsonptr::{PointerBuf, Token};
use k8s_openapi::api::core::v1::{PodReadinessGate, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::policy::{self, CouplingMode, INJECTED_ANNOTATION, ProbeKind, Settings};
use crate::workload::Workload;
use metrics_coupling::MetricsFacts;

/// What the engine knows besides the object itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Annotation layers under the object's own, least specific first: cluster-wide
    /// defaults, then the namespace's annotations.
    pub layers: &'a [&'a BTreeMap<String, String>],
    /// Services in the object's namespace: evidence of metrics ports.
    pub services: &'a [&'a Service],
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
    let mut layers: Vec<&BTreeMap<String, String>> = context.layers.to_vec();
    layers.extend(parts.workload_meta.and_then(|m| m.annotations.as_ref()));
    layers.extend(parts.pod_meta.and_then(|m| m.annotations.as_ref()));
    let (settings, policy_warnings) = Settings::resolve(&layers);
    let mut warn = |rule: Rule, message: String| mutation.warnings.push(Warning { rule, message });
    for message in policy_warnings {
        warn(Rule::Policy, message);
    }
    if !settings.inject {
        if let Some(message) = opt_out_missing_from_template(workload, context, &parts) {
            warn(Rule::Policy, message);
        }
        return mutation;
    }

    let base = parts.base;
    let mut ops = Vec::new();
    let mut record = Vec::new();
    let mut coupling = Vec::new();
    for (index, container) in parts.spec.containers.iter().enumerate() {
        let facts = MetricsFacts::gather(container, parts.pod_meta, &settings, context.services);
        let plan = probes::plan(container, &settings, &facts);
        for message in plan.warnings {
            warn(Rule::Probes, message);
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
            mutation.probes_added[*kind as usize] += 1;
            kinds.push(kind.as_str());
            ops.push(add(child(&container_path, kind.field()), probe));
        }
        record.push(format!("{}={}", container.name, kinds.join(",")));
    }

    let gates = readiness_gates::plan(parts.spec, &settings);
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
        mutation.gates_added = new_gates.len();
        record.push(format!("gates={}", new_gates.len()));
    }

    match settings.metrics_coupling {
        CouplingMode::Deny if !coupling.is_empty() => {
            mutation.denial = Some(coupling.join(" "));
            return mutation;
        }
        _ => {
            for message in coupling {
                warn(Rule::MetricsCoupling, message);
            }
        }
    }

    if !ops.is_empty() {
        ops.push(record_op(base, parts.pod_meta, &record.join(";")));
        match ops.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(ops) => mutation.patch = Patch(ops),
            Err(error) => {
                // Never half a patch: leave the object as it is and say so.
                mutation.probes_added = [0; 3];
                mutation.gates_added = 0;
                mutation.warnings.push(Warning {
                    rule: Rule::Probes,
                    message: format!("internal error, object left unchanged: {error}"),
                });
            }
        }
    }
    mutation
}

/// Writes what was added into `probegate.io/injected`, creating the maps it needs.
fn record_op(base: &[&str], pod_meta: Option<&ObjectMeta>, record: &str) -> OpResult {
    let entry = BTreeMap::from([(INJECTED_ANNOTATION, record)]);
    match pod_meta {
        Some(meta) if meta.annotations.is_some() => add(
            pointer(base, &["metadata", "annotations", INJECTED_ANNOTATION]),
            &record,
        ),
        // An empty metadata map may also be absent from the JSON: replace it whole.
        Some(meta) if *meta != ObjectMeta::default() => {
            add(pointer(base, &["metadata", "annotations"]), &entry)
        }
        _ => add(
            pointer(base, &["metadata"]),
            &BTreeMap::from([("annotations", entry)]),
        ),
    }
}

/// A workload that opts out in its own metadata only: its pods do not carry the opt-out and
/// will be mutated when they are created.
fn opt_out_missing_from_template(
    workload: &Workload,
    context: &Context<'_>,
    parts: &crate::workload::PodParts<'_>,
) -> Option<String> {
    let says_disabled = |meta: Option<&ObjectMeta>| {
        meta.and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(policy::INJECT))
            .is_some_and(|v| v.trim() == "disabled")
    };
    if !says_disabled(parts.workload_meta) || says_disabled(parts.pod_meta) {
        return None;
    }
    let mut pod_layers: Vec<&BTreeMap<String, String>> = context.layers.to_vec();
    pod_layers.extend(parts.pod_meta.and_then(|m| m.annotations.as_ref()));
    let (pod_settings, _) = Settings::resolve(&pod_layers);
    pod_settings.inject.then(|| {
        format!(
            "{}={} on the {} does not reach its pods, which will still get probes; \
             set it on the pod template's annotations too",
            policy::INJECT,
            "disabled",
            workload.kind()
        )
    })
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
