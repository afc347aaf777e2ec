//! Prometheus metrics. Every label value is a `&'static str` from a fixed set: no object
//! names, namespaces or free text ever become a label.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
struct ReloadLabels {
    certificate: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    duration: Histogram,
    probes: Family<ProbeLabels, Counter>,
    gates: Counter,
    warnings: Family<RuleLabels, Counter>,
    bad_requests: Family<ReasonLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    handshake_failures: Family<ReasonLabels, Counter>,
    cache_age: Family<CacheLabels, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("probegate");
        let reviews = Family::default();
        let duration = Histogram::new(LATENCY_BUCKETS);
        let probes = Family::default();
        let gates = Counter::default();
        let warnings = Family::default();
        let bad_requests = Family::default();
        let reloads = Family::default();
        let handshake_failures = Family::default();
        let cache_age = Family::default();
        registry.register(
            "admission_reviews",
            "Admission reviews answered, by kind, operation and outcome",
            reviews.clone(),
        );
        registry.register(
            "admission_review_duration_seconds",
            "Time to answer an admission review, from body read to response",
            duration.clone(),
        );
        registry.register(
            "probes_injected",
            "Probes added to containers, by probe",
            probes.clone(),
        );
        registry.register(
            "readiness_gates_injected",
            "Readiness gates added to pod specs",
            gates.clone(),
        );
        registry.register("warnings", "Warnings returned, by rule", warnings.clone());
        registry.register(
            "bad_requests",
            "Requests refused before review, by reason",
            bad_requests.clone(),
        );
        registry.register(
            "certificate_reloads",
            "Certificate reload attempts, by certificate (serving, client_ca) and result",
            reloads.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Webhook TLS handshakes that failed, by reason",
            handshake_failures.clone(),
        );
        registry.register(
            "cache_age_seconds",
            "Seconds since the cache last heard from the API server",
            cache_age.clone(),
        );
        Metrics {
            registry,
            reviews,
            duration,
            probes,
            gates,
            warnings,
            bad_requests,
            reloads,
            handshake_failures,
            cache_age,
        }
    }
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

/// Why a webhook TLS handshake failed; the label of `tls_handshake_failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Client certificates are required and the client sent none.
    NoClientCertificate,
    /// The client's certificate does not chain to the client CA, or is expired or unfit.
    ClientCertificateRefused,
    Timeout,
    /// Anything else: no common protocol, a client that hung up, garbage.
    Other,
}

impl HandshakeFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::NoClientCertificate => "no_client_certificate",
            HandshakeFailure::ClientCertificateRefused => "client_certificate_refused",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "other",
        }
    }

    /// Sorts a failed `accept`'s error: tokio-rustls carries the rustls error inside.
    pub fn of(error: &std::io::Error) -> HandshakeFailure {
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::NoCertificatesPresented) => HandshakeFailure::NoClientCertificate,
            Some(rustls::Error::InvalidCertificate(_)) => {
                HandshakeFailure::ClientCertificateRefused
            }
            _ => HandshakeFailure::Other,
        }
    }
}

impl Metrics {
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

    pub fn certificate_reload(&self, certificate: &'static str, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads
            .get_or_create(&ReloadLabels {
                certificate,
                result,
            })
            .inc();
    }

    pub fn handshake_failure(&self, reason: HandshakeFailure) {
        self.handshake_failures
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn cache_age(&self, cache: &'static str, seconds: f64) {
        self.cache_age
            .get_or_create(&CacheLabels { cache })
            .set(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_bounded_series() {
        let metrics = Metrics::default();
        metrics.review("Pod", "CREATE", Outcome::Mutated, 0.000_03);
        metrics.injected([1, 2, 0], 1);
        metrics.warning(Rule::MetricsCoupling);
        metrics.certificate_reload("client_ca", false);
        metrics.handshake_failure(HandshakeFailure::NoClientCertificate);
        metrics.cache_age("namespaces", 1.5);
        let text = metrics.encode().unwrap();
        for line in [
            r#"probegate_admission_reviews_total{kind="Pod",operation="CREATE",outcome="mutated"} 1"#,
            r#"probegate_admission_review_duration_seconds_bucket{le="0.00005"} 1"#,
            r#"probegate_admission_review_duration_seconds_bucket{le="0.000025"} 0"#,
            r#"probegate_probes_injected_total{probe="liveness"} 1"#,
            r#"probegate_probes_injected_total{probe="readiness"} 2"#,
            "probegate_readiness_gates_injected_total 1",
            r#"probegate_warnings_total{rule="metrics_coupling"} 1"#,
            r#"probegate_certificate_reloads_total{certificate="client_ca",result="failure"} 1"#,
            r#"probegate_tls_handshake_failures_total{reason="no_client_certificate"} 1"#,
            r#"probegate_cache_age_seconds{cache="namespaces"} 1.5"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains("startup"),
            "no series for probes never added"
        );
    }
}
