//! `probegate mutate -o sarif`: its findings as SARIF 2.1.0, for code scanning (GitHub,
//! GitLab) to show on the lines of a pull request. One rule per kind of finding, with the
//! help the README's "settle it with" table gives; each result at the file and line where
//! its object's document starts.

use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, Region,
    ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Tool, ToolComponent,
};

use crate::engine::Rule;
use crate::manifest::Origin;

/// The schema the log names (SARIF 2.1.0's, as OASIS publishes it).
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/probegate/probegate";

/// What kind of finding: one SARIF rule each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    ProbesWouldBeAdded,
    ReadinessGatesWouldBeAdded,
    Warning(Rule),
    WouldBeDenied,
    RemovedApiVersion,
}

impl Check {
    /// Every check, in the order of the log's rules.
    const ALL: [Check; 8] = [
        Check::ProbesWouldBeAdded,
        Check::ReadinessGatesWouldBeAdded,
        Check::Warning(Rule::Probes),
        Check::Warning(Rule::ReadinessGates),
        Check::Warning(Rule::MetricsCoupling),
        Check::Warning(Rule::Policy),
        Check::WouldBeDenied,
        Check::RemovedApiVersion,
    ];

    /// (id, what it finds, how to settle it, level).
    fn describe(self) -> (&'static str, &'static str, &'static str, ResultLevel) {
        match self {
            Check::ProbesWouldBeAdded => (
                "probes-would-be-added",
                "probegate would add probes to a container that lacks them",
                "Commit probegate's output (probegate mutate -o yaml), set the probes on the workload yourself, or list the container in probegate.io/skip-containers.",
                ResultLevel::Note,
            ),
            Check::ReadinessGatesWouldBeAdded => (
                "readiness-gates-would-be-added",
                "probegate would add readiness gates to the pods",
                "Commit probegate's output (probegate mutate -o yaml), or set probegate.io/readiness-gates on the workload.",
                ResultLevel::Note,
            ),
            Check::Warning(Rule::Probes) => (
                "probe-not-added",
                "a probe was not added, or added in another form than asked",
                "Set probegate.io/port to choose the port, or probegate.io/skip-containers: NAME to leave the container without probes.",
                ResultLevel::Warning,
            ),
            Check::Warning(Rule::ReadinessGates) => (
                "readiness-gate-held",
                "a readiness gate was held back: no Service selects these pods",
                "Add the Service that selects them, set probegate.io/readiness-gates with the gate to add it anyway, or probegate.io/readiness-gates: none.",
                ResultLevel::Warning,
            ),
            Check::Warning(Rule::MetricsCoupling) => (
                "metrics-coupled-probe",
                "a probe targets a port that serves metrics while metrics are off",
                "Give health a port of its own, turn metrics on, or set probegate.io/metrics-coupling: \"off\" where the port listens anyway.",
                ResultLevel::Warning,
            ),
            Check::Warning(Rule::Policy) => (
                "bad-annotation",
                "a probegate.io/ annotation was ignored",
                "Fix or remove the annotation the message names.",
                ResultLevel::Warning,
            ),
            Check::WouldBeDenied => (
                "would-be-denied",
                "the webhook would refuse the object (metrics-coupling: deny)",
                "Give health a port of its own or turn metrics on; the message names the probe and the port.",
                ResultLevel::Error,
            ),
            Check::RemovedApiVersion => (
                "removed-api-version",
                "the object's apiVersion is no longer served, so the API server refuses it",
                "Use the apiVersion the message names.",
                ResultLevel::Error,
            ),
        }
    }

    fn index(self) -> usize {
        Check::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or_default()
    }
}

/// One finding of `mutate`, where its object is.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub origin: Origin,
    pub check: Check,
    /// The finding in the words `mutate` prints on stderr, with the object it is about.
    pub message: String,
}

/// The SARIF log of `findings`, from a run of probegate `version`.
pub fn render(findings: &[Finding], version: &str) -> Result<String, serde_json::Error> {
    let mut rules: Vec<ReportingDescriptor> = Vec::new();
    for check in Check::ALL {
        let (id, short, help, level) = check.describe();
        rules.push(
            ReportingDescriptor::builder()
                .id(id)
                .name(id)
                .short_description(MultiformatMessageString::builder().text(short).build())
                .help(MultiformatMessageString::builder().text(help).build())
                .default_configuration(
                    ReportingConfiguration::builder()
                        .level(serde_json::to_value(level)?)
                        .build(),
                )
                .build(),
        );
    }
    let results: Vec<SarifResult> = findings
        .iter()
        .map(|finding| {
            let (id, _, _, level) = finding.check.describe();
            let result = SarifResult::builder()
                .rule_id(id)
                .rule_index(finding.check.index() as i64)
                .level(level)
                .message(Message::builder().text(finding.message.clone()).build());
            match location(&finding.origin) {
                Some(location) => result.locations(vec![location]).build(),
                None => result.build(),
            }
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("probegate")
        .version(version)
        .information_uri(INFORMATION_URI)
        .rules(rules)
        .build();
    let log = Sarif::builder()
        .schema(SCHEMA)
        .version(serde_json::Value::from("2.1.0"))
        .runs(vec![
            Run::builder()
                .tool(Tool::builder().driver(driver).build())
                .results(results)
                .build(),
        ])
        .build();
    let mut out = serde_json::to_string_pretty(&log)?;
    out.push('\n');
    Ok(out)
}

/// The file and line of a document; none for standard input, which has no file to name.
fn location(origin: &Origin) -> Option<Location> {
    if origin.source == "-" {
        return None;
    }
    let path = origin.source.replace('\\', "/");
    // A relative path is relative to where the scan ran, as code scanning expects; an
    // absolute one is a file URI.
    let uri = if path.starts_with('/') {
        format!("file://{}", path.replace(' ', "%20"))
    } else {
        path.replace(' ', "%20")
    };
    let physical = PhysicalLocation::builder()
        .artifact_location(ArtifactLocation::builder().uri(uri).build())
        .region(
            Region::builder()
                .start_line(i64::try_from(origin.line).unwrap_or(i64::MAX))
                .build(),
        )
        .build();
    Some(Location::builder().physical_location(physical).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_finding_is_one_rule() {
        let ids: Vec<&str> = Check::ALL.iter().map(|c| c.describe().0).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");
        for rule in [
            Rule::Policy,
            Rule::Probes,
            Rule::ReadinessGates,
            Rule::MetricsCoupling,
        ] {
            assert!(
                Check::ALL.contains(&Check::Warning(rule)),
                "{rule:?} has a SARIF rule"
            );
        }
        for (index, check) in Check::ALL.iter().enumerate() {
            assert_eq!(check.index(), index);
        }
    }
}
