//! What the offline engine found in a set of manifests, one kind of finding per thing a
//! user settles differently, with the help docs/ci.md's "settle it with" table gives.
//! `mutate -o sarif` and `probegate fn` render the same findings.

use crate::engine::{Rule, WarningKind};
use crate::manifest::Origin;

/// What kind of finding: one SARIF rule and one KRM result tag each.
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
    pub const ALL: [Check; 8] = [
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
    pub fn describe(self) -> (&'static str, &'static str, &'static str, Level) {
        match self {
            Check::ProbesWouldBeAdded => (
                "probes-would-be-added",
                "probegate would add probes to a container that lacks them",
                "Commit probegate's output (probegate mutate -o yaml), set the probes on the workload yourself, or list the container in probegate.io/skip-containers.",
                Level::Note,
            ),
            Check::ReadinessGatesWouldBeAdded => (
                "readiness-gates-would-be-added",
                "probegate would add readiness gates to the pods",
                "Commit probegate's output (probegate mutate -o yaml), or set probegate.io/readiness-gates on the workload.",
                Level::Note,
            ),
            Check::Warning(Rule::Probes) => (
                "probe-not-added",
                "a probe was not added, or added in another form than asked",
                "Set probegate.io/port to choose the port, or probegate.io/skip-containers: NAME to leave the container without probes.",
                Level::Warning,
            ),
            Check::Warning(Rule::ReadinessGates) => (
                "readiness-gate-held",
                "a readiness gate was held back: no Service selects these pods",
                "Add the Service that selects them, set probegate.io/readiness-gates with the gate to add it anyway, or probegate.io/readiness-gates: none.",
                Level::Warning,
            ),
            Check::Warning(Rule::MetricsCoupling) => (
                "metrics-coupled-probe",
                "a probe targets a port that serves metrics while metrics are off",
                "Give health a port of its own, turn metrics on, or set probegate.io/metrics-coupling: \"off\" where the port listens anyway.",
                Level::Warning,
            ),
            Check::Warning(Rule::Policy) => (
                "bad-annotation",
                "a probegate.io/ annotation was ignored",
                "Fix or remove the annotation the message names.",
                Level::Warning,
            ),
            Check::WouldBeDenied => (
                "would-be-denied",
                "the webhook would refuse the object (metrics-coupling: deny)",
                "Give health a port of its own or turn metrics on; the message names the probe and the port.",
                Level::Error,
            ),
            Check::RemovedApiVersion => (
                "removed-api-version",
                "the object's apiVersion is no longer served, so the API server refuses it",
                "Use the apiVersion the message names.",
                Level::Error,
            ),
        }
    }

    /// How to settle it in a few words, where a table has no room for `describe`'s whole
    /// sentence (audit's ACTION column). A rule's warnings differ in how they are settled,
    /// so each has its own few words by its kind: `warning_brief`.
    pub fn brief(self) -> &'static str {
        match self {
            Check::ProbesWouldBeAdded => "review, or set your own",
            Check::ReadinessGatesWouldBeAdded => "check a controller sets them",
            Check::WouldBeDenied => warning_brief(WarningKind::MetricsCoupled).1,
            Check::RemovedApiVersion => "use the apiVersion it names",
            Check::Warning(_) => "see the explanation",
        }
    }

    pub fn index(self) -> usize {
        Check::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or_default()
    }
}

/// A warning in a few words, and how to settle it in a few: audit's FINDING and ACTION,
/// where the whole message is `-o wide`'s.
pub fn warning_brief(kind: WarningKind) -> (&'static str, &'static str) {
    match kind {
        WarningKind::AnnotationIgnored => ("annotation ignored", "fix or remove the annotation"),
        WarningKind::NoProbe => ("no probe added", "set probegate.io/port or skip it"),
        WarningKind::HandlerWithoutPath => ("tcpSocket, not http: no path", "set the probe's path"),
        WarningKind::PortNotDeclared => ("port setting names no port", "fix probegate.io/port"),
        WarningKind::HealthServerUnreachable => {
            ("health address unreachable", "listen on the pod IP")
        }
        WarningKind::GateHeld => (
            "readiness gate not added",
            "add a Service that selects them",
        ),
        WarningKind::GateInvalid => ("readiness gate skipped: bad name", "fix the condition type"),
        WarningKind::MetricsCoupled => {
            ("a probe needs metrics on", "give health a port of its own")
        }
        WarningKind::SettingsUnavailable => {
            ("namespace settings unread", "check probegate can read it")
        }
        WarningKind::Internal => ("probegate failed: unchanged", "see the explanation"),
    }
}

/// How much a finding matters: SARIF's levels, which KRM results call severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What probegate would add: its job, reported.
    Note,
    Warning,
    /// What the API server or the webhook would refuse.
    Error,
}

/// The object a finding is about, as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// As the manifest gives it: none for an object that names no namespace.
    pub namespace: Option<String>,
    pub name: String,
}

/// One finding of the offline engine, where its object is.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub origin: Origin,
    pub check: Check,
    pub object: ObjectRef,
    /// Where the object is in the input, as messages name it: `file: document 2`.
    pub at: String,
    /// The field the finding is about (`spec.template.spec.containers[0]`), where one is.
    pub field: Option<String>,
    /// The finding, without the object it is about.
    pub message: String,
}

impl Finding {
    /// The finding in the words `mutate` prints on stderr: `file: document 2: Kind
    /// namespace/name: message`.
    pub fn text(&self) -> String {
        let namespace = self.object.namespace.as_deref().unwrap_or("default");
        format!(
            "{}: {} {namespace}/{}: {}",
            self.at, self.object.kind, self.object.name, self.message
        )
    }
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
                "{rule:?} has a rule of its own"
            );
        }
        for (index, check) in Check::ALL.iter().enumerate() {
            assert_eq!(check.index(), index);
        }
    }

    #[test]
    fn every_kind_of_finding_has_a_few_words_for_a_table() {
        for check in Check::ALL {
            let brief = check.brief();
            assert!(
                !brief.is_empty() && brief.len() <= 32 && !brief.ends_with('.'),
                "{check:?}: {brief:?}"
            );
        }
    }
}
