//! The `probegate.io/injected` record: what was added to a pod, and why something was not.
//!
//! `container=kinds` per container, then `evidence=` (what decided each container's probes:
//! `catalogue=postgresql`, `flag=--health-addr`, `port=grpc(name grpc)`, `namespace`, ...;
//! a container probed on its port alone is not listed),
//! `port=`, `liveness-held=`, `readiness-held=`, `gates=` and `gates-held=` where they
//! apply, joined by `;`.

use std::fmt::Write as _;

use super::object::Meta;

use super::plan::{Evidence, Plan};
use crate::policy::{INJECTED_ANNOTATION, ProbeKind};

/// The record to write for `plan`, merged into the one the pod already carries. `None`
/// when nothing is injected: a record of what was held back alone would change an object
/// that probegate otherwise leaves as it is.
pub fn value(plan: &Plan, pod_meta: Option<&Meta<'_>>) -> Option<String> {
    if !plan.injects() {
        return None;
    }
    // A pod judged again after its template keeps the template's record too.
    let earlier = pod_meta
        .and_then(|m| m.annotation(INJECTED_ANNOTATION))
        .unwrap_or_default();
    Some(merge(earlier, &entries(plan)))
}

fn entries(plan: &Plan) -> Vec<String> {
    let mut entries: Vec<String> = plan
        .probes
        .iter()
        .map(|c| {
            let kinds: Vec<&str> = c.added.iter().map(|(kind, _)| kind.as_str()).collect();
            format!("{}={}", c.container, kinds.join(","))
        })
        .collect();
    let mut evidence = String::new();
    for c in &plan.probes {
        // A container probed on its port alone, with nothing known of it, is not listed: the
        // record names the evidence that chose something better than a port check.
        if let Some(why) = c.evidence.as_ref().filter(|e| **e != Evidence::Ports) {
            evidence.push_str(if evidence.is_empty() {
                "evidence="
            } else {
                ","
            });
            evidence.push_str(&c.container);
            evidence.push('(');
            // Writing to a String cannot fail.
            let _ = write!(evidence, "{why}");
            evidence.push(')');
        }
    }
    if !evidence.is_empty() {
        entries.push(evidence);
    }
    let from_service: Vec<String> = plan
        .probes
        .iter()
        .filter_map(|c| {
            Some(format!(
                "{}({})",
                c.container,
                c.port_from_service.as_ref()?
            ))
        })
        .collect();
    if !from_service.is_empty() {
        entries.push(format!("port={}", from_service.join(",")));
    }
    for (containers, key, why) in [
        (
            &plan.liveness_held,
            "liveness-held",
            "same check as readiness",
        ),
        (
            &plan.readiness_held,
            "readiness-held",
            "same check as liveness",
        ),
    ] {
        if !containers.is_empty() {
            entries.push(format!("{key}={}({why})", containers.join(",")));
        }
    }
    if !plan.gates.is_empty() {
        entries.push(format!("gates={}", plan.gates.len()));
    }
    if plan.gates_held > 0 {
        entries.push(format!(
            "gates-held={}(no Service selects the pods)",
            plan.gates_held
        ));
    }
    entries
}

/// Whether `record` says probegate added a `kind` probe to `container`: its
/// `container=kinds` entry, as `entries` writes it.
pub fn added(record: &str, container: &str, kind: ProbeKind) -> bool {
    record
        .split(';')
        .filter_map(|entry| entry.split_once('='))
        .any(|(name, kinds)| name == container && kinds.split(',').any(|k| k == kind.as_str()))
}

/// The record of a pod judged again, from its template's record and this review's entries
/// (`key=value`): counts of gates add up, lists join, and gates held back on the template
/// but added now are no longer held.
pub fn merge(earlier: &str, now: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_reads_the_container_entries() {
        struct Case {
            name: &'static str,
            record: &'static str,
            container: &'static str,
            kind: ProbeKind,
            added: bool,
        }
        let record =
            "web=liveness,readiness,startup;sidecar=readiness;evidence=web(catalogue=nginx)";
        let cases = [
            Case {
                name: "a kind listed for the container",
                record,
                container: "web",
                kind: ProbeKind::Startup,
                added: true,
            },
            Case {
                name: "a kind listed for another container only",
                record,
                container: "sidecar",
                kind: ProbeKind::Startup,
                added: false,
            },
            Case {
                name: "the kind the container got",
                record,
                container: "sidecar",
                kind: ProbeKind::Readiness,
                added: true,
            },
            Case {
                name: "a container not in the record",
                record,
                container: "db",
                kind: ProbeKind::Liveness,
                added: false,
            },
            Case {
                name: "an entry that is not a container's is not read as one",
                record,
                container: "evidence",
                kind: ProbeKind::Startup,
                added: false,
            },
            Case {
                name: "an empty record",
                record: "",
                container: "web",
                kind: ProbeKind::Liveness,
                added: false,
            },
        ];
        for case in cases {
            assert_eq!(
                added(case.record, case.container, case.kind),
                case.added,
                "{}",
                case.name
            );
        }
    }
}
