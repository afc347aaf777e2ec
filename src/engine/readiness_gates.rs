//! Rule: readiness gates are in the pod spec from the first pod on, but only on pods a load
//! balancer will mark.
//!
//! Controllers that inject gates only once their Ingress or TargetGroupBinding exists miss
//! the pods created before it; a gate in the spec from the start closes that gap. But a
//! gate's condition is set only for load balancer targets: on a pod that no Service selects
//! it is never set, and the pod never becomes Ready. So a gate from the namespace or the
//! cluster defaults goes only to pods a Service selects; a gate a Service names goes to the
//! pods it selects; a gate the workload names for itself is always added; batch pods get
//! none but their own.

use super::object::PodSpec;

use super::WarningKind;
use super::object::Map;
use super::services::{self, ServiceEvidence};
use crate::policy::{READINESS_GATES, Settings, check_dns_subdomain, parse_gates};

/// How many Service names a warning lists before it says how many more there are.
const NAMED_SERVICES: usize = 5;

#[derive(Debug, Default, PartialEq)]
pub struct GatePlan {
    /// Condition types to append, in order: the workload's or the namespace's, then each
    /// selecting Service's, by Service name.
    pub added: Vec<String>,
    /// Namespace gates not added because no Service selects the pods.
    pub held: usize,
    pub warnings: Vec<(WarningKind, String)>,
}

/// What the rule reads besides the pod spec and settings.
pub struct Evidence<'a> {
    /// The pod's (or pod template's) labels.
    pub labels: Option<&'a Map<'a>>,
    /// Every Service of the namespace, to name them when none selects the pods.
    pub services: &'a [&'a ServiceEvidence],
    /// The Services that select the pods, by name.
    pub selecting: &'a [&'a ServiceEvidence],
    /// Whether the object itself set `probegate.io/readiness-gates`.
    pub set_by_object: bool,
    /// Whether the pods run to completion.
    pub batch: bool,
}

pub fn plan(spec: &PodSpec<'_>, settings: &Settings, evidence: &Evidence<'_>) -> GatePlan {
    let mut plan = GatePlan::default();
    // Batch pods take no gates but their own, so only those are worth checking.
    let configured: Vec<String> = if evidence.batch && !evidence.set_by_object {
        Vec::new()
    } else {
        valid_gates(
            settings.readiness_gates.iter().cloned(),
            &READINESS_GATES,
            &mut plan.warnings,
        )
    };
    let service_gates = if evidence.batch {
        Vec::new()
    } else {
        from_services(evidence.selecting, &mut plan.warnings)
    };
    let mut wanted: Vec<String> = Vec::new();
    if evidence.set_by_object || (!evidence.batch && !evidence.selecting.is_empty()) {
        // The user asked for these on this very object, or a load balancer can mark them.
        wanted.extend(configured);
    } else if !evidence.batch {
        let held: Vec<&str> = configured
            .iter()
            .map(String::as_str)
            .filter(|gate| !present(spec, gate))
            .collect();
        if !held.is_empty() {
            plan.held = held.len();
            plan.warnings
                .push((WarningKind::GateHeld, held_back(&held, evidence)));
        }
    }
    wanted.extend(service_gates);
    for gate in wanted {
        if !present(spec, &gate) && !plan.added.contains(&gate) {
            plan.added.push(gate);
        }
    }
    plan
}

/// The gates that are qualified names. Every gate is checked, added or not: the API server
/// would reject the whole object over one bad gate, and the user should hear of it either
/// way.
fn valid_gates(
    gates: impl IntoIterator<Item = String>,
    source: &dyn std::fmt::Display,
    warnings: &mut Vec<(WarningKind, String)>,
) -> Vec<String> {
    gates
        .into_iter()
        .filter(|gate| match check_qualified_name(gate) {
            Ok(()) => true,
            Err(why) => {
                warnings.push((
                    WarningKind::GateInvalid,
                    format!("skipping readiness gate {gate:?} from {source}: {why}"),
                ));
                false
            }
        })
        .collect()
}

/// The gates the selecting Services ask for, in Service order; a Service's value that does
/// not parse is ignored with a warning after those about single gates.
fn from_services(
    selecting: &[&ServiceEvidence],
    warnings: &mut Vec<(WarningKind, String)>,
) -> Vec<String> {
    let mut gates = Vec::new();
    let mut bad_values = Vec::new();
    for service in selecting {
        let Some(value) = service.annotation(READINESS_GATES) else {
            continue;
        };
        let source = format!("Service {:?}'s {READINESS_GATES}", services::name(service));
        match parse_gates(value.trim()) {
            Ok(parsed) => gates.extend(valid_gates(parsed, &source, warnings)),
            Err(why) => bad_values.push(format!("ignoring {source}={value:?}: {why}")),
        }
    }
    warnings.extend(
        bad_values
            .into_iter()
            .map(|m| (WarningKind::AnnotationIgnored, m)),
    );
    gates
}

fn present(spec: &PodSpec<'_>, gate: &str) -> bool {
    spec.readiness_gates
        .iter()
        .flatten()
        .any(|g| g.condition_type == gate)
}

fn held_back(gates: &[&str], evidence: &Evidence<'_>) -> String {
    let quoted: Vec<String> = gates.iter().map(|g| format!("{g:?}")).collect();
    let mut names: Vec<&str> = evidence
        .services
        .iter()
        .map(|s| services::name(s))
        .collect();
    names.sort_unstable();
    let here = match names.len() {
        0 => "there are no Services in this namespace".to_owned(),
        n if n <= NAMED_SERVICES => format!("Services here: {}", names.join(", ")),
        n => format!(
            "Services here: {} and {} more",
            names[..NAMED_SERVICES].join(", "),
            n - NAMED_SERVICES
        ),
    };
    format!(
        "readiness gate {} from the namespace's {READINESS_GATES} not added: no Service selects \
         these pods (labels {}; {here}), and a gate's condition is set only on load balancer \
         targets, so they would never become Ready. To add it, create the Service that \
         selects them first, or set {READINESS_GATES} on the workload; to accept this, set \
         {READINESS_GATES}: none on the workload",
        quoted.join(", "),
        services::labels_text(evidence.labels),
    )
}

/// Kubernetes' qualified name: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters of alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn check_qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|why| format!("prefix {prefix:?} {why}"))?;
    }
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("the name part is empty".into());
    }
    if bytes.len() > 63 {
        return Err("the name part is longer than 63 characters".into());
    }
    let edge_ok = |b: &u8| b.is_ascii_alphanumeric();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !edge_ok(&bytes[0]) || !edge_ok(&bytes[bytes.len() - 1]) || !bytes.iter().all(inner_ok) {
        return Err(format!(
            "name {name:?} must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
