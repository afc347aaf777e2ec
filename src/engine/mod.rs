//! The mutation engine: typed object and annotations in, JSON Patch and warnings out.
//!
//! Pure and synchronous: no I/O, no clock, no global state, so the webhook, the offline
//! `mutate` command and the tests all run exactly the same code.

pub mod catalogue;
pub mod command_line;
pub mod conventions;
mod inheritance;
pub mod kinds;
pub mod metrics_coupling;
pub mod object;
pub mod patch;
pub mod plan;
pub mod ports;
pub mod probes;
pub mod protocols;
pub mod readiness_gates;
pub mod record;
pub mod serves;
pub mod services;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::BTreeMap;

use crate::policy::{self, CouplingMode, INJECTED_ANNOTATION, Layer, ProbeKind, Settings};
use catalogue::Catalogue;
use command_line::Flag;
pub use kinds::{DecodeError, Kind};
use metrics_coupling::MetricsFacts;
pub use object::{Object, PodParts};
pub use patch::Patch;
pub use plan::At;
use plan::Plan;
pub use services::ServiceEvidence;

/// What the engine knows besides the object itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Annotation layers under the object's own, least specific first: cluster-wide
    /// defaults, then the namespace's annotations.
    pub layers: &'a [&'a BTreeMap<String, String>],
    /// Services in the object's namespace: which select the pods decides where readiness
    /// gates go, and their ports are evidence of metrics ports.
    pub services: &'a [&'a ServiceEvidence],
    /// What well-known software serves: the built-in catalogue, or a user's over it.
    pub catalogue: &'a Catalogue,
}

impl Default for Context<'_> {
    fn default() -> Self {
        Context {
            layers: &[],
            services: &[],
            catalogue: Catalogue::builtin(),
        }
    }
}

/// Whether any rule reads the annotation `key` of a Pod or workload: probegate's own
/// settings and record, and the scrape port the metrics rule takes as evidence.
pub fn reads_annotation(key: &str) -> bool {
    key.starts_with(policy::PREFIX)
        || metrics_coupling::reads_annotation(key)
        || key == kinds::DEPLOYMENT_REVISION
}

/// Whether any rule reads the literal variable `name`: the webhook's decode builds only
/// those. A user's catalogue may name no other.
pub fn reads_variable(name: &str) -> bool {
    metrics_coupling::reads_variable(name)
        || conventions::SpringBoot::reads_variable(name)
        || catalogue::reads_variable(name)
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

/// What a warning says, one kind per thing a user settles differently; a rule raises
/// several (the probes rule: no port to probe, a handler it could not build, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// An annotation's value, or an unknown key, ignored.
    AnnotationIgnored,
    /// No probe added: the container has no port probegate may probe.
    NoProbe,
    /// `probe-handler: http` without a path for a probe: a tcpSocket probe instead.
    HandlerWithoutPath,
    /// The `port` setting names no port of the container: the port was detected instead.
    PortNotDeclared,
    /// A health server the command line declares that the kubelet cannot reach.
    HealthServerUnreachable,
    /// Gates held back: no Service selects the pods.
    GateHeld,
    /// A gate skipped: its condition type is no qualified name.
    GateInvalid,
    /// A probe on a port that serves metrics, with metrics off.
    MetricsCoupled,
    /// The namespace's settings could not be read: defaults applied.
    SettingsUnavailable,
    /// probegate's own failure: the object is left as it was.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: Rule,
    pub kind: WarningKind,
    pub message: String,
    /// The field of the pod spec the warning is about, where there is one.
    pub at: Option<At>,
}

/// The engine's answer for one object.
#[derive(Debug, Default, PartialEq)]
pub struct Mutation {
    /// Empty when nothing is added: the object stays exactly as it was.
    pub patch: Patch,
    pub warnings: Vec<Warning>,
    /// Set when policy says the object must be refused (`metrics-coupling: deny`).
    pub denial: Option<String>,
    /// What the rules decided and the patch adds: empty when the patch is.
    pub plan: Plan,
}

impl Mutation {
    /// Probes added, per kind in `ProbeKind::ALL` order.
    pub fn probes_added(&self) -> [usize; 3] {
        self.plan.probes_added()
    }

    pub fn gates_added(&self) -> usize {
        self.plan.gates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patch.is_empty() && self.warnings.is_empty() && self.denial.is_none()
    }

    /// Whether there is anything for a lint to report: something injected, warned or
    /// refused. Copying a workload's own settings into its pod template is bookkeeping
    /// that keeps its pods judged alike, not a finding.
    pub fn is_finding(&self) -> bool {
        self.plan.injects() || !self.warnings.is_empty() || self.denial.is_some()
    }
}

/// Computes the patch and warnings for one admission object: the rules decide, in order,
/// into one plan, and the plan is written as JSON Patch.
pub fn mutate(workload: &Object<'_>, context: &Context<'_>) -> Mutation {
    let Some(parts) = workload.pod_parts() else {
        return Mutation::default();
    };
    if labelled_out(workload, &parts) || shaped_by_controller(workload, &parts) {
        return Mutation::default();
    }
    let mut layers: Vec<&dyn Layer> = Vec::with_capacity(context.layers.len() + 2);
    layers.extend(context.layers.iter().map(|layer| *layer as &dyn Layer));
    layers.extend(own_layers(&parts));
    let (settings, policy_warnings) = Settings::resolve(&layers);
    let mut plan = Plan::default();
    plan.warn(
        Rule::Policy,
        WarningKind::AnnotationIgnored,
        policy_warnings,
    );
    plan.annotations = inheritance::for_pods(context, &parts, settings.inject);
    let coupling = if settings.inject {
        inject(workload, &parts, context, &settings, &mut plan)
    } else {
        Vec::new()
    };
    if settings.metrics_coupling == CouplingMode::Deny && !coupling.is_empty() {
        return Mutation {
            denial: Some(
                coupling
                    .iter()
                    .map(|(_, message)| message.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            warnings: plan.warnings,
            ..Mutation::default()
        };
    }
    for (at, message) in coupling {
        plan.warn_at(
            Rule::MetricsCoupling,
            Some(at),
            [(WarningKind::MetricsCoupled, message)],
        );
    }
    if let Some(record) = record::value(&plan, parts.pod_meta) {
        plan.annotations
            .push((INJECTED_ANNOTATION.to_owned(), record));
    }
    write(&parts, plan)
}

/// What decided each container's probes in `mutation`, and what probegate knows of what the
/// container serves, step by step: for `probegate mutate --explain`.
pub fn explain(workload: &Object<'_>, context: &Context<'_>, mutation: &Mutation) -> Vec<String> {
    let Some(parts) = workload.pod_parts() else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for container in &parts.spec.containers {
        let added = mutation
            .plan
            .probes
            .iter()
            .find(|c| c.container == container.name);
        lines.push(match added {
            Some(c) => {
                let kinds: Vec<&str> = c.added.iter().map(|(kind, _)| kind.as_str()).collect();
                let by = c
                    .evidence
                    .as_ref()
                    .map_or_else(String::new, |e| format!(" by {e}"));
                let held = if mutation
                    .plan
                    .liveness_held
                    .iter()
                    .any(|held| *held == container.name)
                {
                    "; liveness held back, as it would repeat readiness"
                } else if mutation
                    .plan
                    .readiness_held
                    .iter()
                    .any(|held| *held == container.name)
                {
                    "; readiness held back, as it would repeat liveness"
                } else {
                    ""
                };
                format!(
                    "container {:?}: adds {}{by}{held}",
                    container.name,
                    kinds.join(", ")
                )
            }
            None => format!(
                "container {:?}: adds nothing (its own probes, a skip, or a warning says why)",
                container.name
            ),
        });
        let flags = command_line::flags(container);
        let found = serves::known(container, &flags, context.catalogue, true);
        lines.extend(
            found
                .steps
                .into_lines()
                .into_iter()
                .map(|step| format!("  {step}")),
        );
    }
    lines
}

/// The label the webhook's objectSelector excludes: honoured here too, so a selector left
/// out of the configuration, or an offline run, behaves the same.
fn labelled_out(workload: &Object<'_>, parts: &PodParts<'_, '_>) -> bool {
    [Some(workload.meta()), parts.pod_meta]
        .into_iter()
        .flatten()
        .any(|meta| meta.label(policy::INJECT) == Some("disabled"))
}

/// The object's own annotation layers, least specific first: the workload's, then its pods'.
fn own_layers<'o>(parts: &PodParts<'o, '_>) -> impl Iterator<Item = &'o dyn Layer> {
    [parts.workload_meta, parts.pod_meta]
        .into_iter()
        .flatten()
        .filter_map(|meta| meta.annotations.as_ref())
        .map(|annotations| annotations as &dyn Layer)
}

/// A workload a controller owns (a Deployment's ReplicaSet) is the controller's to shape: a
/// changed template makes it create another, forever. Its pods are mutated when created.
fn shaped_by_controller(workload: &Object<'_>, parts: &PodParts<'_, '_>) -> bool {
    parts.workload_meta.is_some() && workload.meta().is_controlled()
}

/// The probe and gate rules, then the metrics coupling check of the result, whose
/// messages it returns: they become warnings or, in `deny` mode, the denial.
fn inject(
    workload: &Object<'_>,
    parts: &PodParts<'_, '_>,
    context: &Context<'_>,
    settings: &Settings,
    plan: &mut Plan,
) -> Vec<(At, String)> {
    // Layers above the context's are the object's own: what the user asked of this object.
    let own_layers = context.layers.len();
    let batch = workload.is_batch();
    let labels = parts.pod_meta.and_then(|m| m.labels.as_ref());
    let namespace = workload.meta().namespace.as_deref();
    let selecting = services::selecting(context.services, namespace, labels);
    let service_targets = services::targets(&selecting);
    let flags: Vec<Vec<Flag<'_>>> = parts
        .spec
        .containers
        .iter()
        .map(command_line::flags)
        .collect();
    let metrics = MetricsFacts::gather_pod(parts, &flags, settings, &service_targets);
    // Batch pods get probes only where the object itself asks for them.
    let requested: &[ProbeKind] = if batch && !settings.set_at_or_above(policy::PROBES, own_layers)
    {
        &[]
    } else {
        &settings.probes
    };
    let evidence = probes::PodEvidence {
        requested,
        flags: &flags,
        metrics: &metrics,
        service_targets: &service_targets,
        catalogue: context.catalogue,
        own_layers,
    };
    probes::plan_pod(parts.spec, settings, &evidence, plan);
    let gates = readiness_gates::plan(
        parts.spec,
        settings,
        &readiness_gates::Evidence {
            labels,
            services: context.services,
            selecting: &selecting,
            set_by_object: settings.set_at_or_above(policy::READINESS_GATES, own_layers),
            batch,
        },
    );
    plan.warn_at(
        Rule::ReadinessGates,
        Some(At::ReadinessGates),
        gates.warnings,
    );
    plan.gates = gates.added;
    plan.gates_held = gates.held;
    if settings.metrics_coupling == CouplingMode::Off {
        return Vec::new();
    }
    metrics_coupling::check_pod(parts.spec, &metrics, plan)
}

/// The mutation for `plan`: never half a patch, so an error leaves the object as it is and
/// says so.
fn write(parts: &PodParts<'_, '_>, mut plan: Plan) -> Mutation {
    match patch::write(parts, &plan) {
        Ok(patch) if patch.is_empty() => Mutation {
            warnings: plan.warnings,
            ..Mutation::default()
        },
        Ok(patch) => Mutation {
            patch,
            warnings: std::mem::take(&mut plan.warnings),
            plan,
            denial: None,
        },
        Err(error) => {
            let mut warnings = plan.warnings;
            warnings.push(Warning {
                rule: Rule::Probes,
                kind: WarningKind::Internal,
                message: format!("internal error, object left unchanged: {error}"),
                at: None,
            });
            Mutation {
                warnings,
                ..Mutation::default()
            }
        }
    }
}

#[cfg(test)]
mod tests;
