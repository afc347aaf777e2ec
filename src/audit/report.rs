//! The audit's findings and how they are printed: a table for people, JSON or YAML for
//! machines (the schema README.md documents; fields are only ever added).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::startup::Measurement;
use super::suggest::Suggestion;

/// The `apiVersion` of the JSON/YAML report; bumped only for a change that breaks readers.
pub const REPORT_API_VERSION: &str = "probegate.io/audit/v1";

/// What a finding is about. Engine kinds are what the webhook would do to the workload at
/// admission; live kinds are hazards the running cluster shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingType {
    /// The webhook would add probes to this container.
    ProbesWouldBeAdded,
    /// The webhook would add readiness gates to the pods.
    ReadinessGatesWouldBeAdded,
    /// The webhook would warn (a probe not added, gates held back, a bad annotation, a
    /// metrics-coupled probe in the template).
    Warning,
    /// The webhook would refuse the object (`metrics-coupling: deny`).
    WouldBeDenied,
    /// A running pod's readiness gate has been missing or False for too long while its
    /// containers are ready.
    StuckReadinessGate,
    /// A running pod's probe targets a port that serves metrics while metrics are off.
    MetricsCoupledProbe,
    /// The kubelet restarted a container for a failed liveness probe.
    LivenessRestarts,
    /// A workload's container has been seen to start slower than, or within 20% of, what
    /// its probes allow before the first kill, or was killed during start-up.
    StartupBudgetTooShort,
    /// A start-up budget from the starts seen, where it differs materially from the
    /// current one.
    StartupBudgetSuggested,
}

impl FindingType {
    /// Whether the finding comes from the running cluster rather than from the engine.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            FindingType::StuckReadinessGate
                | FindingType::MetricsCoupledProbe
                | FindingType::LivenessRestarts
                | FindingType::StartupBudgetTooShort
                | FindingType::StartupBudgetSuggested
        )
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// The container the finding is about; `null` for the whole pod or workload.
    pub container: Option<String>,
    #[serde(rename = "type")]
    pub finding_type: FindingType,
    /// The engine rule behind a `warning` (`policy`, `probes`, `readiness_gates`,
    /// `metrics_coupling`); `null` otherwise.
    pub rule: Option<String>,
    /// One line: what was found.
    pub title: String,
    /// The full explanation (for engine findings, the webhook's own words).
    pub message: String,
    /// What to do about it.
    pub action: String,
    /// What the finding rests on, one fact per entry.
    pub evidence: Vec<String>,
    /// A few words of `title` for the table's FINDING column, written by the rule that
    /// makes the finding; not in the JSON or YAML, which keep `title` whole.
    #[serde(skip)]
    pub short_title: String,
    /// One short sentence of `action` for the table's ACTION column; not in the JSON or
    /// YAML, which keep `action` whole.
    #[serde(skip)]
    pub short_action: String,
}

impl Finding {
    /// The finding's row of the table; with `wide`, the full what to do and explanation.
    fn cells(&self, wide: bool) -> Vec<String> {
        let mut row = vec![
            self.namespace.clone(),
            format!("{}/{}", self.kind, self.name),
            self.container.clone().unwrap_or_else(|| "-".into()),
            self.short_title.clone(),
            self.short_action.clone(),
        ];
        if wide {
            // An engine warning's message ends with how to settle it: said once.
            row.push(if self.action == self.message {
                "see the explanation".into()
            } else {
                self.action.clone()
            });
            row.push(self.message.clone());
        }
        row
    }
}

/// Counts over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Workloads the engine judged (controller-owned ones and pods are not counted).
    pub workloads: usize,
    /// Pods checked for live hazards.
    pub pods: usize,
    pub findings: usize,
    /// Workloads with at least one engine finding.
    pub workloads_with_findings: usize,
    /// Findings from the running cluster.
    pub live_findings: usize,
    /// Workloads not judged because the webhook configuration never sends their namespace,
    /// by namespace (their pods are still checked for live hazards).
    pub excluded_namespaces: BTreeMap<String, usize>,
    /// Container starts measured, over every workload (`startups`).
    pub starts_measured: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The namespaces read, or `["*"]` for all of them.
    pub namespaces: Vec<String>,
    pub summary: Summary,
    /// Sorted by namespace, kind, name, container, type.
    pub findings: Vec<Finding>,
    /// Each workload container's start-up, where its pods showed any: sorted by namespace,
    /// kind, name, container.
    pub startups: Vec<Measurement>,
    /// What `--suggest` prints; not part of the schema.
    #[serde(skip)]
    pub suggestions: Vec<Suggestion>,
}

impl Report {
    pub fn new(
        namespaces: Vec<String>,
        mut summary: Summary,
        mut findings: Vec<Finding>,
    ) -> Report {
        findings.sort();
        findings.dedup();
        summary.findings = findings.len();
        summary.live_findings = findings.iter().filter(|f| f.finding_type.is_live()).count();
        let mut with_findings: Vec<(&str, &str, &str)> = findings
            .iter()
            .filter(|f| !f.finding_type.is_live())
            .map(|f| (f.namespace.as_str(), f.kind.as_str(), f.name.as_str()))
            .collect();
        with_findings.dedup();
        summary.workloads_with_findings = with_findings.len();
        Report {
            api_version: REPORT_API_VERSION,
            kind: "AuditReport",
            namespaces,
            summary,
            findings,
            startups: Vec::new(),
            suggestions: Vec::new(),
        }
    }

    /// The report with the start-up measurements and the suggestions made from them.
    pub fn with_startups(
        mut self,
        mut startups: Vec<Measurement>,
        suggestions: Vec<Suggestion>,
    ) -> Report {
        startups.sort();
        self.summary.starts_measured = startups.iter().map(|m| m.starts).sum();
        self.startups = startups;
        self.suggestions = suggestions;
        self
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut out = serde_json::to_string_pretty(self)?;
        out.push('\n');
        Ok(out)
    }

    pub fn to_yaml(&self) -> Result<String, serde_json::Error> {
        Ok(crate::yaml::to_string(&serde_json::to_value(self)?))
    }

    /// One row per finding, grouped by namespace (a blank line between groups), then the
    /// one-line summary: each finding and what to do in a few words, to fit a terminal.
    pub fn to_table(&self) -> String {
        self.table(false)
    }

    /// The table with two more columns: the full what to do and the full explanation
    /// (`-o wide`).
    pub fn to_wide_table(&self) -> String {
        self.table(true)
    }

    fn table(&self, wide: bool) -> String {
        let mut headers = vec!["NAMESPACE", "KIND/NAME", "CONTAINER", "FINDING", "ACTION"];
        if wide {
            headers.extend(["WHAT TO DO", "EXPLANATION"]);
        }
        let rows: Vec<Vec<String>> = self.findings.iter().map(|f| f.cells(wide)).collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: &[&str]| {
            let mut text = String::new();
            for (index, cell) in cells.iter().enumerate() {
                if index + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}   ", width = widths[index]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        let mut out = String::new();
        if !rows.is_empty() {
            line(&mut out, &headers);
        }
        let mut previous: Option<&str> = None;
        for row in &rows {
            if previous.is_some_and(|p| p != row[0]) {
                out.push('\n');
            }
            previous = Some(&row[0]);
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&mut out, &cells);
        }
        if !rows.is_empty() {
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let excluded: usize = s.excluded_namespaces.values().sum();
        let mut line = format!(
            "{} finding(s): {} workload(s) of {} the webhook would change or warn about, {} live hazard(s) in {} pod(s)",
            s.findings, s.workloads_with_findings, s.workloads, s.live_findings, s.pods
        );
        if excluded > 0 {
            let names: Vec<&str> = s.excluded_namespaces.keys().map(String::as_str).collect();
            let _ = write!(
                line,
                "; {excluded} workload(s) in namespaces the webhook never sees ({}) not judged",
                names.join(", ")
            );
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(namespace: &str, name: &str, finding_type: FindingType) -> Finding {
        Finding {
            namespace: namespace.into(),
            kind: "Deployment".into(),
            name: name.into(),
            container: None,
            finding_type,
            rule: None,
            title: format!("{finding_type:?}"),
            message: "m".into(),
            action: "do it".into(),
            evidence: vec![],
            short_title: "short".into(),
            short_action: "do".into(),
        }
    }

    #[test]
    fn table_is_grouped_by_namespace_and_sorted() {
        let report = Report::new(
            vec!["*".into()],
            Summary {
                workloads: 3,
                pods: 1,
                ..Summary::default()
            },
            vec![
                finding("b", "z", FindingType::Warning),
                finding("a", "y", FindingType::StuckReadinessGate),
                finding("a", "x", FindingType::ProbesWouldBeAdded),
            ],
        );
        let table = report.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE"), "{table}");
        assert!(
            lines[1].starts_with("a ") && lines[1].contains("Deployment/x"),
            "{table}"
        );
        assert!(lines[2].contains("Deployment/y"), "{table}");
        assert_eq!(lines[3], "", "a blank line between namespaces: {table}");
        assert!(lines[4].starts_with("b "), "{table}");
        assert_eq!(
            lines.last().copied(),
            Some(
                "3 finding(s): 2 workload(s) of 3 the webhook would change or warn about, 1 live hazard(s) in 1 pod(s)"
            )
        );
    }

    #[test]
    fn the_default_table_is_short_and_wide_adds_the_whole_text() {
        let mut warning = finding("a", "x", FindingType::Warning);
        warning.message = "container \"x\": it went wrong; set this to fix it".into();
        warning.action = warning.message.clone();
        let mut live = finding("a", "y", FindingType::LivenessRestarts);
        live.message = "the kubelet killed it".into();
        live.action = "check the liveness probe: in full".into();
        let report = Report::new(vec!["a".into()], Summary::default(), vec![warning, live]);
        // (case, table, header, a row's cells after the container, text it must lack)
        let cases = [
            (
                "default",
                report.to_table(),
                "NAMESPACE   KIND/NAME      CONTAINER   FINDING   ACTION",
                vec!["short", "do"],
                vec!["went wrong", "in full", "Warning"],
            ),
            (
                "wide",
                report.to_wide_table(),
                "NAMESPACE   KIND/NAME      CONTAINER   FINDING   ACTION   WHAT TO DO                          EXPLANATION",
                vec![
                    "short",
                    "do",
                    "see the explanation",
                    "container \"x\": it went wrong; set this to fix it",
                ],
                vec![],
            ),
        ];
        for (case, table, header, cells, lacks) in cases {
            let lines: Vec<&str> = table.lines().collect();
            assert_eq!(lines[0], header, "{case}: {table}");
            let row: Vec<&str> = lines[1]
                .split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(row[..3], ["a", "Deployment/x", "-"], "{case}: {table}");
            assert_eq!(row[3..], cells[..], "{case}: {table}");
            for text in lacks {
                assert!(!table.contains(text), "{case}: {text} in {table}");
            }
        }
        assert!(
            report.to_wide_table().lines().nth(2).is_some_and(
                |l| l.ends_with("check the liveness probe: in full   the kubelet killed it")
            ),
            "wide: an action of its own is printed whole: {}",
            report.to_wide_table()
        );
    }

    #[test]
    fn a_clean_report_is_one_line() {
        let report = Report::new(vec!["default".into()], Summary::default(), vec![]);
        assert_eq!(report.to_table().lines().count(), 1);
    }

    #[test]
    fn json_and_yaml_carry_the_documented_fields() {
        let report = Report::new(
            vec!["a".into()],
            Summary::default(),
            vec![finding("a", "x", FindingType::LivenessRestarts)],
        );
        let value: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(value["apiVersion"], REPORT_API_VERSION);
        assert_eq!(value["kind"], "AuditReport");
        assert_eq!(value["summary"]["liveFindings"], 1);
        let item = &value["findings"][0];
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Exactly the schema's fields, in its order: the table's short forms stay out.
        assert_eq!(
            keys,
            [
                "namespace",
                "kind",
                "name",
                "container",
                "type",
                "rule",
                "title",
                "message",
                "action",
                "evidence"
            ]
        );
        assert_eq!(item["type"], "liveness-restarts");
        let yaml = report.to_yaml().unwrap();
        let back = crate::yaml::load_all(&yaml).unwrap();
        assert_eq!(back, vec![value]);
    }
}
