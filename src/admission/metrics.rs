//! The admission layer's metrics: reviews by kind, operation and outcome, their latency,
//! what was injected, warnings by rule, and requests refused before review.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::Rule;
use crate::policy::ProbeKind;

/// Latency buckets in seconds: fine enough for tens of microseconds, up to the API
/// server's 10 s timeout.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    kind: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// What became of one review; the label of `admission_reviews`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Mutated,
    Unchanged,
    Denied,
    /// A kind or operation probegate does not handle.
    Skipped,
    /// The object could not be decoded as its kind; allowed unchanged.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Mutated => "mutated",
            Outcome::Unchanged => "unchanged",
            Outcome::Denied => "denied",
            Outcome::Skipped => "skipped",
            Outcome::Error => "error",
        }
    }
}

#[derive(Debug)]
pub struct AdmissionMetrics {
    reviews: Family<ReviewLabels, Counter>,
    duration: Histogram,
    probes: Family<ProbeLabels, Counter>,
    gates: Counter,
    warnings: Family<RuleLabels, Counter>,
    bad_requests: Family<ReasonLabels, Counter>,
}

impl AdmissionMetrics {
    /// Registers the admission metrics in `registry`, under the names docs/operations.md lists.
    pub fn register(registry: &mut Registry) -> AdmissionMetrics {
        let metrics = AdmissionMetrics {
            reviews: Family::default(),
            duration: Histogram::new(LATENCY_BUCKETS),
            probes: Family::default(),
            gates: Counter::default(),
            warnings: Family::default(),
            bad_requests: Family::default(),
        };
        let admission = registry.sub_registry_with_prefix("admission");
        admission.register(
            "reviews",
            "Admission reviews answered, by kind, operation and outcome",
            metrics.reviews.clone(),
        );
        admission.register(
            "review_duration_seconds",
            "Time to answer an admission review, from body read to response",
            metrics.duration.clone(),
        );
        registry.register(
            "probes_injected",
            "Probes added to containers, by probe",
            metrics.probes.clone(),
        );
        registry.register(
            "readiness_gates_injected",
            "Readiness gates added to pod specs",
            metrics.gates.clone(),
        );
        registry.register(
            "warnings",
            "Warnings returned, by rule",
            metrics.warnings.clone(),
        );
        registry.register(
            "bad_requests",
            "Requests refused before review, by reason",
            metrics.bad_requests.clone(),
        );
        metrics
    }

    pub fn review(
        &self,
        kind: &'static str,
        operation: &'static str,
        outcome: Outcome,
        seconds: f64,
    ) {
        self.reviews
            .get_or_create(&ReviewLabels {
                kind,
                operation,
                outcome: outcome.as_str(),
            })
            .inc();
        self.duration.observe(seconds);
    }

    pub fn injected(&self, probes_added: [usize; 3], gates_added: usize) {
        for (kind, count) in ProbeKind::ALL.into_iter().zip(probes_added) {
            if count > 0 {
                self.probes
                    .get_or_create(&ProbeLabels {
                        probe: kind.as_str(),
                    })
                    .inc_by(count as u64);
            }
        }
        if gates_added > 0 {
            self.gates.inc_by(gates_added as u64);
        }
    }

    pub fn warning(&self, rule: Rule) {
        self.warnings
            .get_or_create(&RuleLabels {
                rule: rule.as_str(),
            })
            .inc();
    }

    pub fn bad_request(&self, reason: &'static str) {
        self.bad_requests
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}
