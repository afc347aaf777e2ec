//! Prometheus metrics: the registry each component registers its own metrics in (as
//! kubert does: a component takes a `&mut Registry`, often a prefixed sub-registry, and
//! keeps the handles it updates), and the text exposition. Every label value is a
//! `&'static str` from a fixed set: no object names, namespaces or free text ever become a
//! label. The names are the ones docs/operations.md documents.

use prometheus_client::registry::Registry;

pub use crate::admission::metrics::{AdmissionMetrics, Outcome};
pub use crate::catalogue_file::CatalogueMetrics;
use crate::namespace_cache::Directory;
pub use crate::tls::metrics::{HandshakeFailure, TlsMetrics};

pub struct Metrics {
    registry: Registry,
    pub admission: AdmissionMetrics,
    pub tls: TlsMetrics,
    pub catalogue: CatalogueMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Without the cache's metrics: for standalone servers and tests.
impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&Directory::Standalone(Default::default()))
    }
}

impl Metrics {
    /// Every component's metrics; the cluster cache's, read at scrape time, when
    /// `directory` is one.
    pub fn new(directory: &Directory) -> Metrics {
        let mut registry = Registry::with_prefix("probegate");
        let admission = AdmissionMetrics::register(&mut registry);
        let tls = TlsMetrics::register(&mut registry);
        let catalogue = CatalogueMetrics::register(&mut registry);
        directory.register_metrics(registry.sub_registry_with_prefix("cache"));
        Metrics {
            registry,
            admission,
            tls,
            catalogue,
        }
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
        let admission = &metrics.admission;
        admission.review("Pod", "CREATE", Outcome::Mutated, 0.000_03);
        admission.injected([1, 2, 0], 1);
        admission.warning(crate::engine::Rule::MetricsCoupling);
        metrics.tls.certificate_reload("client_ca", false);
        metrics
            .tls
            .certificate_expiry("serving", Some(1_800_000_000));
        metrics.catalogue.reload(false);
        metrics
            .tls
            .handshake_failure(HandshakeFailure::NoClientCertificate);
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
            r#"probegate_certificate_expiry_timestamp_seconds{certificate="serving"} 1800000000"#,
            r#"probegate_catalogue_reloads_total{result="failure"} 1"#,
            r#"probegate_tls_handshake_failures_total{reason="no_client_certificate"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains("startup"),
            "no series for probes never added"
        );
        assert!(
            !text.contains("cache_age"),
            "no cache ages without a cluster cache"
        );
    }
}
