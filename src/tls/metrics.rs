//! TLS metrics: certificate reloads and expiry, and failed webhook handshakes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    certificate: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    certificate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
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

#[derive(Debug)]
pub struct TlsMetrics {
    reloads: Family<ReloadLabels, Counter>,
    expiry: Family<CertificateLabels, Gauge>,
    handshake_failures: Family<ReasonLabels, Counter>,
}

impl TlsMetrics {
    /// Registers the TLS metrics in `registry`, under the names docs/operations.md lists.
    pub fn register(registry: &mut Registry) -> TlsMetrics {
        let metrics = TlsMetrics {
            reloads: Family::default(),
            expiry: Family::default(),
            handshake_failures: Family::default(),
        };
        registry.register(
            "certificate_reloads",
            "Certificate reload attempts, by certificate (serving, client_ca) and result",
            metrics.reloads.clone(),
        );
        // An expired serving certificate fails every review, which failurePolicy: Ignore
        // turns into pods admitted unmutated: this is what an alert can see coming.
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the certificate in service expires (notAfter, Unix seconds), by certificate (serving, client_ca: the bundle's earliest)",
            metrics.expiry.clone(),
        );
        registry.sub_registry_with_prefix("tls").register(
            "handshake_failures",
            "Webhook TLS handshakes that failed, by reason",
            metrics.handshake_failures.clone(),
        );
        metrics
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

    /// Sets the expiry of `certificate`; None removes it (its validity cannot be read).
    pub fn certificate_expiry(&self, certificate: &'static str, not_after: Option<i64>) {
        let labels = CertificateLabels { certificate };
        match not_after {
            Some(not_after) => {
                self.expiry.get_or_create(&labels).set(not_after);
            }
            None => {
                self.expiry.remove(&labels);
            }
        }
    }

    pub fn handshake_failure(&self, reason: HandshakeFailure) {
        self.handshake_failures
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }
}
