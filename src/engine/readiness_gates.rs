//! Rule: configured readiness gates are in the pod spec from the first pod on.
//!
//! Controllers that inject gates only once their Ingress or TargetGroupBinding exists miss
//! the pods created before it; a gate in the spec from the start closes that gap.

use k8s_openapi::api::core::v1::PodSpec;

use crate::policy::{READINESS_GATES, Settings, check_dns_subdomain};

#[derive(Debug, Default, PartialEq)]
pub struct GatePlan {
    /// Condition types to append, in configured order.
    pub added: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn plan(spec: &PodSpec, settings: &Settings) -> GatePlan {
    let mut plan = GatePlan::default();
    let present = spec.readiness_gates.iter().flatten();
    for gate in &settings.readiness_gates {
        if let Err(why) = check_qualified_name(gate) {
            // The API server would reject the whole object over one bad gate.
            plan.warnings.push(format!(
                "skipping readiness gate {gate:?} from {READINESS_GATES}: {why}"
            ));
            continue;
        }
        let already =
            present.clone().any(|g| &g.condition_type == gate) || plan.added.contains(gate);
        if !already {
            plan.added.push(gate.clone());
        }
    }
    plan
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
    use k8s_openapi::api::core::v1::PodReadinessGate;

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

    const AWS_GATE: &str = "target-health.elbv2.k8s.aws/k8s-default-web-1a2b3c4d5e";

    #[test]
    fn adds_missing_gates_once_in_order() {
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
            let p = plan(&spec(present), &settings(configured));
            assert_eq!(p.added, *expected, "{present:?} + {configured:?}");
            assert!(p.warnings.is_empty());
        }
    }

    #[test]
    fn invalid_condition_types_are_skipped_with_a_warning() {
        let p = plan(
            &spec(&[]),
            &settings(&["Good", "bad gate", "UPPER.example.com/x", "ok/"]),
        );
        assert_eq!(p.added, ["Good"]);
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(
            p.warnings[0].starts_with(
                "skipping readiness gate \"bad gate\" from probegate.io/readiness-gates"
            )
        );
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
