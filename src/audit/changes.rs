//! What the webhook would do to a workload at admission, as findings: the engine's own
//! answer (`engine::mutate`, the same call the webhook and `mutate` make): the plan its
//! patch was written from, and its warnings.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::report::{Finding, FindingType};
use crate::engine::Object;
use crate::engine::catalogue::Catalogue;
use crate::engine::plan::{At, ContainerProbes, Plan};
use crate::engine::{self, Context, Mutation, Rule, ServiceEvidence};
use crate::findings::{Check, warning_brief};
use crate::policy::INJECTED_ANNOTATION;

/// Whether the audit judges this workload with the engine: not when a controller owns it
/// (its controller's template is judged instead, and the engine leaves it alone too).
pub fn is_judged(workload: &Object<'_>) -> bool {
    !workload.meta().is_controlled()
}

/// Runs the engine on `workload` as the webhook would with these annotation layers (cluster
/// defaults, then the namespace's) and the namespace's Services.
pub fn judge(
    workload: &Object<'_>,
    layers: &[&BTreeMap<String, String>],
    services: &[&ServiceEvidence],
    catalogue: &Catalogue,
) -> Mutation {
    engine::mutate(
        workload,
        &Context {
            layers,
            services,
            catalogue,
        },
    )
}

/// The engine's answer for one workload, as findings.
pub fn findings(workload: &Object<'_>, mutation: &Mutation) -> Vec<Finding> {
    let meta = workload.meta();
    let blank = Finding {
        namespace: meta.namespace.as_deref().unwrap_or("default").to_owned(),
        kind: workload.kind_name().into(),
        name: meta.name.as_deref().unwrap_or_default().to_owned(),
        container: None,
        finding_type: FindingType::Warning,
        rule: None,
        title: String::new(),
        message: String::new(),
        action: String::new(),
        evidence: Vec::new(),
        short_title: String::new(),
        short_action: String::new(),
    };
    let mut findings = if mutation.is_finding() {
        added_findings(&mutation.plan, &blank)
    } else {
        Vec::new()
    };
    for warning in &mutation.warnings {
        let (title, short_title) = warning_title(warning);
        findings.push(Finding {
            container: container_named(&warning.message),
            rule: Some(warning.rule.as_str().into()),
            title,
            message: warning.message.clone(),
            // The engine's warnings end with how to settle them.
            action: warning.message.clone(),
            short_title,
            short_action: warning_brief(warning.kind).1.into(),
            ..blank.clone()
        });
    }
    if let Some(reason) = &mutation.denial {
        findings.push(Finding {
            finding_type: FindingType::WouldBeDenied,
            rule: Some(Rule::MetricsCoupling.as_str().into()),
            title: "would be refused (metrics-coupling: deny)".into(),
            message: reason.clone(),
            action: reason.clone(),
            short_title: "would be refused".into(),
            short_action: Check::WouldBeDenied.brief().into(),
            ..blank
        });
    }
    findings
}

/// What the plan adds, as findings: one per container given probes, one for the gates,
/// each with the record the pods would carry as evidence.
fn added_findings(added: &Plan, blank: &Finding) -> Vec<Finding> {
    let record = added
        .annotations
        .iter()
        .filter(|(key, _)| key == INJECTED_ANNOTATION)
        .map(|(key, value)| format!("{key}: {value}"));
    let mut findings = Vec::new();
    for ContainerProbes {
        container,
        added: probes,
        ..
    } in &added.probes
    {
        let fields: Vec<&str> = probes.iter().map(|(kind, _)| kind.field()).collect();
        findings.push(Finding {
            container: Some(container.clone()),
            finding_type: FindingType::ProbesWouldBeAdded,
            title: format!("would add {}", fields.join(", ")),
            short_title: format!(
                "would add {}",
                probes
                    .iter()
                    .map(|(kind, _)| kind.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            short_action: Check::ProbesWouldBeAdded.brief().into(),
            message: format!(
                "the webhook adds {} to container {container:?} of every new pod",
                fields.join(", ")
            ),
            action: "review the probes; set them on the workload to choose them yourself, or list the container in probegate.io/skip-containers".into(),
            evidence: probes
                .iter()
                .map(|(kind, probe)| format!("{}: {}", kind.field(), describe_probe(probe)))
                .chain(record.clone())
                .collect(),
            ..blank.clone()
        });
    }
    if !added.gates.is_empty() {
        findings.push(Finding {
            finding_type: FindingType::ReadinessGatesWouldBeAdded,
            title: format!("would add readiness gate(s) {}", added.gates.join(", ")),
            short_title: match added.gates.len() {
                1 => "would add a readiness gate".into(),
                n => format!("would add {n} readiness gates"),
            },
            short_action: Check::ReadinessGatesWouldBeAdded.brief().into(),
            message: format!(
                "the webhook adds readiness gate(s) {} to every new pod: pods become Ready only once these conditions are True",
                added.gates.join(", ")
            ),
            action: "make sure a controller sets these conditions (a load balancer controller), or set probegate.io/readiness-gates: none".into(),
            evidence: record.clone().collect(),
            ..blank.clone()
        });
    }
    findings
}

/// A warning's title (its rule's), and its few words for the table (its kind's; a probe
/// on a metrics port names the probe).
fn warning_title(warning: &engine::Warning) -> (String, String) {
    let title = match warning.rule {
        Rule::Policy => "probegate.io annotation ignored",
        Rule::Probes => "probe not added",
        Rule::ReadinessGates => "readiness gates held back",
        Rule::MetricsCoupling => match warning.at {
            Some(At::Probe(_, probe)) => {
                return (
                    format!("{} depends on metrics being on", probe.field()),
                    format!("{} needs metrics on", probe.field()),
                );
            }
            _ => "a probe depends on metrics being on",
        },
    };
    (title.into(), warning_brief(warning.kind).0.into())
}

/// Engine messages about one container start `container "NAME":`.
fn container_named(message: &str) -> Option<String> {
    let rest = message.strip_prefix("container \"")?;
    let end = rest.find('"')?;
    Some(rest[..end].to_owned())
}

/// `httpGet :8080/readyz`, `tcpSocket :5432`: the handler and where it points.
fn describe_probe(probe: &Probe) -> String {
    let port = |p: &IntOrString| match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(name) => name.clone(),
    };
    if let Some(http) = &probe.http_get {
        let path = http.path.as_deref().unwrap_or("/");
        format!("httpGet :{}{path}", port(&http.port))
    } else if let Some(tcp) = &probe.tcp_socket {
        format!("tcpSocket :{}", port(&tcp.port))
    } else if let Some(grpc) = &probe.grpc {
        format!("grpc :{}", grpc.port)
    } else {
        "exec".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::test_support::object as decode;

    #[test]
    fn a_bare_app_gets_probe_findings_with_the_record() {
        let workload = decode(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "w", "ports": [{"name": "http", "containerPort": 8080}]}]}
            }}
        }));
        let mutation = judge(&workload, &[], &[], Catalogue::builtin());
        let found = findings(&workload, &mutation);
        let probes: Vec<&Finding> = found
            .iter()
            .filter(|f| f.finding_type == FindingType::ProbesWouldBeAdded)
            .collect();
        assert_eq!(probes.len(), 1, "{found:?}");
        assert_eq!(probes[0].container.as_deref(), Some("web"));
        assert!(
            probes[0].title.contains("readinessProbe"),
            "{}",
            probes[0].title
        );
        assert!(
            probes[0]
                .evidence
                .iter()
                .any(|e| e.starts_with("probegate.io/injected: web=")),
            "{:?}",
            probes[0].evidence
        );
        assert_eq!(
            (
                probes[0].namespace.as_str(),
                probes[0].kind.as_str(),
                probes[0].name.as_str()
            ),
            ("shop", "Deployment", "web")
        );
    }

    #[test]
    fn controller_owned_workloads_are_not_judged() {
        let owned = decode(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "w"}]}
            }}
        }));
        assert!(!is_judged(&owned));
        assert!(findings(&owned, &judge(&owned, &[], &[], Catalogue::builtin())).is_empty());
    }

    #[test]
    fn each_warning_gets_the_few_words_of_its_kind() {
        use crate::engine::WarningKind::*;
        use crate::policy::ProbeKind;
        // (case, rule, kind, field, the title, the table's finding, the table's action)
        let cases = [
            (
                "a probe on the metrics port names the probe",
                Rule::MetricsCoupling,
                MetricsCoupled,
                Some(At::Probe(0, ProbeKind::Liveness)),
                "livenessProbe depends on metrics being on",
                "livenessProbe needs metrics on",
                "give health a port of its own",
            ),
            (
                "a coupling about no probe in particular",
                Rule::MetricsCoupling,
                MetricsCoupled,
                None,
                "a probe depends on metrics being on",
                "a probe needs metrics on",
                "give health a port of its own",
            ),
            (
                "no port to probe",
                Rule::Probes,
                NoProbe,
                Some(At::Container(0)),
                "probe not added",
                "no probe added",
                "set probegate.io/port or skip it",
            ),
            (
                "http asked without a path: not the port advice",
                Rule::Probes,
                HandlerWithoutPath,
                Some(At::Container(0)),
                "probe not added",
                "tcpSocket, not http: no path",
                "set the probe's path",
            ),
            (
                "a gate held back",
                Rule::ReadinessGates,
                GateHeld,
                Some(At::ReadinessGates),
                "readiness gates held back",
                "readiness gate not added",
                "add a Service that selects them",
            ),
            (
                "a gate that is no qualified name: not the Service advice",
                Rule::ReadinessGates,
                GateInvalid,
                Some(At::ReadinessGates),
                "readiness gates held back",
                "readiness gate skipped: bad name",
                "fix the condition type",
            ),
            (
                "probegate's own failure: not the port advice",
                Rule::Probes,
                Internal,
                None,
                "probe not added",
                "probegate failed: unchanged",
                "see the explanation",
            ),
        ];
        for (case, rule, kind, at, title, short_title, short_action) in cases {
            let warning = engine::Warning {
                rule,
                kind,
                message: "m".into(),
                at,
            };
            assert_eq!(
                warning_title(&warning),
                (title.into(), short_title.into()),
                "{case}"
            );
            assert_eq!(warning_brief(kind).1, short_action, "{case}");
        }
    }

    #[test]
    fn container_names_come_from_the_message() {
        assert_eq!(
            container_named("container \"ctl\": livenessProbe targets"),
            Some("ctl".into())
        );
        assert_eq!(container_named("probegate.io/probes: bad"), None);
    }
}
