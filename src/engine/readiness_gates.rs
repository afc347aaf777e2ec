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

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;

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
    pub warnings: Vec<String>,
}

/// What the rule reads besides the pod spec and settings.
pub struct Evidence<'a> {
    /// The pod's (or pod template's) labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Every Service of the namespace, to name them when none selects the pods.
    pub services: &'a [&'a ServiceEvidence],
    /// The Services that select the pods, by name.
    pub selecting: &'a [&'a ServiceEvidence],
    /// Whether the object itself set `probegate.io/readiness-gates`.
    pub set_by_object: bool,
    /// Whether the pods run to completion.
    pub batch: bool,
}

pub fn plan(spec: &PodSpec, settings: &Settings, evidence: &Evidence<'_>) -> GatePlan {
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
            plan.warnings.push(held_back(&held, evidence));
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
    warnings: &mut Vec<String>,
) -> Vec<String> {
    gates
        .into_iter()
        .filter(|gate| match check_qualified_name(gate) {
            Ok(()) => true,
            Err(why) => {
                warnings.push(format!(
                    "skipping readiness gate {gate:?} from {source}: {why}"
                ));
                false
            }
        })
        .collect()
}

/// The gates the selecting Services ask for, in Service order; a Service's value that does
/// not parse is ignored with a warning after those about single gates.
fn from_services(selecting: &[&ServiceEvidence], warnings: &mut Vec<String>) -> Vec<String> {
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
    warnings.extend(bad_values);
    gates
}

fn present(spec: &PodSpec, gate: &str) -> bool {
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
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodReadinessGate, Service, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn spec(gates: &[&str]) -> PodSpec {
        PodSpec {
            readiness_gates: (!gates.is_empty()).then(|| {
                gates
                    .iter()
                    .map(|g| PodReadinessGate {
                        condition_type: g.to_string(),
                    })
                    .collect()
            }),
            ..PodSpec::default()
        }
    }

    fn settings(gates: &[&str]) -> Settings {
        Settings {
            readiness_gates: gates.iter().map(|s| s.to_string()).collect(),
            ..Settings::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A Service selecting `app=<app>`, with `probegate.io/readiness-gates` when `gates` is set.
    fn service(name: &str, app: &str, gates: Option<&str>) -> ServiceEvidence {
        ServiceEvidence::from(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: gates.map(|g| map(&[(READINESS_GATES, g)])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(map(&[("app", app)])),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })
    }

    const AWS_GATE: &str = "target-health.elbv2.k8s.aws/k8s-default-web-1a2b3c4d5e";

    /// Plans for a pod labelled `app=web` among `services`.
    fn plan_among(
        present: &[&str],
        configured: &[&str],
        set_by_object: bool,
        batch: bool,
        services: &[ServiceEvidence],
    ) -> GatePlan {
        let labels = map(&[("app", "web")]);
        let all: Vec<&ServiceEvidence> = services.iter().collect();
        let selecting = services::selecting(&all, None, Some(&labels));
        plan(
            &spec(present),
            &settings(configured),
            &Evidence {
                labels: Some(&labels),
                services: &all,
                selecting: &selecting,
                set_by_object,
                batch,
            },
        )
    }

    #[test]
    fn adds_missing_gates_once_in_order() {
        let web = [service("web", "web", None)];
        // (present, configured, expected added)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &[]),
            (&[], &[AWS_GATE], &[AWS_GATE]),
            (&[AWS_GATE], &[AWS_GATE], &[]),
            (
                &["example.com/ready"],
                &[AWS_GATE, "example.com/ready", "b"],
                &[AWS_GATE, "b"],
            ),
            (&[], &["a", "a"], &["a"]),
        ];
        for (present, configured, expected) in cases {
            let p = plan_among(present, configured, false, false, &web);
            assert_eq!(p.added, *expected, "{present:?} + {configured:?}");
            assert!(p.warnings.is_empty());
            assert_eq!(p.held, 0);
        }
    }

    #[test]
    fn gates_go_where_a_load_balancer_will_set_them() {
        let selecting = service("web", "web", None);
        let other = service("db", "db", None);
        let annotated = service("web-lb", "web", Some("example.com/lb"));
        let annotated_elsewhere = service("db-lb", "db", Some("example.com/db"));
        // (services, gates set by the object, batch, expected added, expected held)
        type Case<'a> = (Vec<ServiceEvidence>, bool, bool, Vec<&'a str>, usize);
        let cases: Vec<Case> = vec![
            // Namespace gates: only where a Service selects the pods.
            (vec![selecting.clone()], false, false, vec![AWS_GATE], 0),
            (vec![other.clone()], false, false, vec![], 1),
            (vec![], false, false, vec![], 1),
            // The workload's own gate: always, even for batch pods.
            (vec![], true, false, vec![AWS_GATE], 0),
            (vec![], true, true, vec![AWS_GATE], 0),
            // Batch pods: no namespace or Service gates, and nothing to warn about.
            (vec![selecting.clone()], false, true, vec![], 0),
            (vec![], false, true, vec![], 0),
            (vec![annotated.clone()], false, true, vec![], 0),
            // A Service's own gates go to the pods it selects, after the namespace's.
            (
                vec![annotated.clone(), annotated_elsewhere.clone()],
                false,
                false,
                vec![AWS_GATE, "example.com/lb"],
                0,
            ),
            (
                vec![annotated.clone()],
                true,
                false,
                vec![AWS_GATE, "example.com/lb"],
                0,
            ),
        ];
        for (services, set_by_object, batch, expected, held) in cases {
            let names: Vec<&str> = services.iter().map(services::name).collect();
            let p = plan_among(&[], &[AWS_GATE], set_by_object, batch, &services);
            assert_eq!(
                p.added, expected,
                "{names:?} object={set_by_object} batch={batch}"
            );
            assert_eq!(
                p.held, held,
                "{names:?} object={set_by_object} batch={batch}"
            );
            assert_eq!(p.warnings.len(), held, "{:?}", p.warnings);
        }
    }

    #[test]
    fn service_gates_are_ordered_by_service_name_and_deduplicated() {
        let services = [
            service("b", "web", Some("example.com/b,example.com/shared")),
            service("a", "web", Some("example.com/a, example.com/shared")),
        ];
        let p = plan_among(&["example.com/a"], &[], false, false, &services);
        assert_eq!(p.added, ["example.com/shared", "example.com/b"]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn a_held_gate_is_explained_once() {
        let services: Vec<ServiceEvidence> = (0..7)
            .map(|i| service(&format!("svc-{i}"), "db", None))
            .collect();
        let p = plan_among(&[], &[AWS_GATE, "example.com/x"], false, false, &services);
        assert_eq!(p.held, 2);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let w = &p.warnings[0];
        for part in [
            &format!("readiness gate {AWS_GATE:?}, \"example.com/x\" from the namespace's"),
            "no Service selects these pods (labels app=web; Services here: svc-0, svc-1, svc-2, svc-3, svc-4 and 2 more)",
            "set probegate.io/readiness-gates on the workload",
            "probegate.io/readiness-gates: none on the workload",
        ] {
            assert!(w.contains(part), "{part:?} not in {w}");
        }
        let alone = plan_among(&[], &[AWS_GATE], false, false, &[]);
        assert!(
            alone.warnings[0].contains("there are no Services in this namespace"),
            "{}",
            alone.warnings[0]
        );
        // A gate the pod already has is not held back, and not warned about.
        let present = plan_among(&[AWS_GATE], &[AWS_GATE], false, false, &[]);
        assert_eq!((present.held, present.warnings.len()), (0, 0));
    }

    #[test]
    fn invalid_condition_types_are_skipped_with_a_warning() {
        let web = [
            service("web", "web", Some("Bad Gate,example.com/ok")),
            service("web-2", "web", Some("example.com/x, none")),
        ];
        let p = plan_among(
            &[],
            &["Good", "bad gate", "UPPER.example.com/x", "ok/"],
            true,
            false,
            &web,
        );
        assert_eq!(p.added, ["Good", "example.com/ok"]);
        assert_eq!(p.warnings.len(), 5, "{:?}", p.warnings);
        assert!(
            p.warnings[4].starts_with(
                "ignoring Service \"web-2\"'s probegate.io/readiness-gates=\"example.com/x, none\": none means no gates"
            ),
            "{}",
            p.warnings[4]
        );
        assert!(
            p.warnings[0].starts_with(
                "skipping readiness gate \"bad gate\" from probegate.io/readiness-gates"
            ),
            "{}",
            p.warnings[0]
        );
        assert!(
            p.warnings[3].starts_with(
                "skipping readiness gate \"Bad Gate\" from Service \"web\"'s probegate.io/readiness-gates"
            ),
            "{}",
            p.warnings[3]
        );
        // A batch pod takes none of the namespace's gates, so their spelling is not its concern.
        let batch = plan_among(&[], &["bad gate"], false, true, &web);
        assert_eq!(batch, GatePlan::default());
    }

    #[test]
    fn qualified_names() {
        for good in [
            AWS_GATE,
            "a",
            "A_b.c-D",
            "example.com/Ready",
            "x/y",
            &"a".repeat(63),
        ] {
            assert_eq!(check_qualified_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "-a",
            "a-",
            "a b",
            "a/b/c",
            "Example.com/x",
            "a..b/x",
            &"a".repeat(64),
            "é",
        ] {
            assert!(check_qualified_name(bad).is_err(), "{bad}");
        }
    }
}
