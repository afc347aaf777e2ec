//! The thin layer between the wire and the engine: AdmissionReview in, AdmissionReview out.
//!
//! Everything the webhook can answer is decided in `respond`, in one place. probegate never
//! blocks a pod because of its own failure: an object it cannot read is allowed unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};

use crate::catalogue_file::CatalogueStore;
use crate::engine::Kind;
use crate::engine::{self, Context, Mutation, Rule, ServiceEvidence};
use crate::metrics::{Metrics, Outcome};
use crate::namespace_cache::Directory;

pub mod metrics;
mod wire;
pub use wire::to_wire;
use wire::{Incoming, parse};

/// Why a request is not a review probegate can answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the request body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error(
        "{0} AdmissionReview is not supported: register the webhook with admissionReviewVersions: [\"v1\"] (admission.k8s.io/v1)"
    )]
    UnsupportedVersion(String),
    #[error(
        "expected an admission.k8s.io/v1 AdmissionReview, got apiVersion {api_version:?}, kind {kind:?}"
    )]
    NotAdmissionReview { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("not a valid AdmissionReview: {0}")]
    Malformed(serde_json::Error),
}

impl ReviewError {
    /// A bounded metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            ReviewError::NotJson(_) => "not_json",
            ReviewError::UnsupportedVersion(_) => "unsupported_version",
            ReviewError::NotAdmissionReview { .. } => "not_admission_review",
            ReviewError::NoRequest => "no_request",
            ReviewError::Malformed(_) => "malformed",
        }
    }
}

/// The engine's result for one request, before it becomes a response.
enum Decision {
    /// Not a kind or operation probegate mutates.
    Skip,
    Mutate(Mutation),
    /// The object does not fit its kind: allowed unchanged, with a warning.
    Unreadable(String),
}

pub struct Admission {
    directory: Directory,
    catalogue: Arc<CatalogueStore>,
    /// Cluster-wide defaults, under every namespace's own annotations.
    defaults: BTreeMap<String, String>,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(
        directory: Directory,
        defaults: BTreeMap<String, String>,
        metrics: Arc<Metrics>,
    ) -> Admission {
        Admission::with_catalogue(directory, defaults, metrics, CatalogueStore::builtin())
    }

    pub fn with_catalogue(
        directory: Directory,
        defaults: BTreeMap<String, String>,
        metrics: Arc<Metrics>,
        catalogue: Arc<CatalogueStore>,
    ) -> Admission {
        Admission {
            directory,
            catalogue,
            defaults,
            metrics,
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn catalogue(&self) -> &Arc<CatalogueStore> {
        &self.catalogue
    }

    /// Answers one AdmissionReview body.
    pub async fn review(&self, body: &[u8]) -> Result<AdmissionReview<DynamicObject>, ReviewError> {
        let started = Instant::now();
        let mut request = match parse(body) {
            Ok(request) => request,
            Err(error) => {
                self.metrics.admission.bad_request(error.reason());
                return Err(error);
            }
        };
        let decision = self.decide(&mut request).await;
        let kind = kind_label(&request);
        let operation = operation_label(&request.operation);
        let (response, outcome) = self.respond(&request, decision);
        let elapsed = started.elapsed();
        self.metrics
            .admission
            .review(kind, operation, outcome, elapsed.as_secs_f64());
        tracing::debug!(
            uid = %request.response.uid,
            kind,
            namespace = request.namespace.as_deref().unwrap_or(""),
            outcome = outcome.as_str(),
            micros = elapsed.as_micros() as u64,
            "review"
        );
        Ok(response.into_review())
    }

    async fn decide(&self, request: &mut Incoming<'_>) -> Decision {
        // Pod specs are immutable after creation, and a changed template would roll a
        // workload: only new objects are mutated.
        if request.operation != Operation::Create {
            return Decision::Skip;
        }
        let workload = match request.object.take() {
            Some(Ok(workload)) => workload,
            Some(Err(reason)) => return Decision::Unreadable(reason),
            None => return Decision::Skip,
        };
        let namespace = request.namespace.as_deref().unwrap_or("default");
        let view = self.directory.lookup(namespace).await;
        let layers = [&self.defaults, view.annotations.as_ref()];
        let services: Vec<&ServiceEvidence> = view.services.iter().map(Arc::as_ref).collect();
        let catalogue = self.catalogue.load();
        let mut mutation = engine::mutate(
            &workload,
            &Context {
                layers: &layers,
                services: &services,
                catalogue: &catalogue,
            },
        );
        if let Some(message) = view.warning {
            mutation.warnings.insert(
                0,
                engine::Warning {
                    rule: Rule::Policy,
                    kind: engine::WarningKind::SettingsUnavailable,
                    message,
                    at: None,
                },
            );
        }
        Decision::Mutate(mutation)
    }

    /// Every way a review ends, in one place.
    fn respond(&self, request: &Incoming<'_>, decision: Decision) -> (AdmissionResponse, Outcome) {
        let allowed = request.response.clone();
        match decision {
            Decision::Skip => (allowed, Outcome::Skipped),
            Decision::Unreadable(reason) => {
                tracing::error!(uid = %request.response.uid, kind = %request.kind.kind, %reason, "object does not fit its kind; allowed unchanged");
                let mut response = allowed;
                response.warnings = Some(vec![format!(
                    "probegate could not read this {}; it was admitted unchanged: {reason}",
                    request.kind.kind
                )]);
                (response, Outcome::Error)
            }
            Decision::Mutate(mutation) => {
                for warning in &mutation.warnings {
                    self.metrics.admission.warning(warning.rule);
                }
                let warnings: Vec<String> =
                    mutation.warnings.into_iter().map(|w| w.message).collect();
                let with_warnings = |mut response: AdmissionResponse| {
                    if !warnings.is_empty() {
                        response.warnings = Some(warnings.clone());
                    }
                    response
                };
                if let Some(reason) = mutation.denial {
                    let mut response = with_warnings(allowed).deny(reason);
                    response.result.code = 403;
                    response.result.reason = "Forbidden".into();
                    return (response, Outcome::Denied);
                }
                if mutation.patch.is_empty() {
                    return (with_warnings(allowed), Outcome::Unchanged);
                }
                self.metrics
                    .admission
                    .injected(mutation.plan.probes_added(), mutation.plan.gates.len());
                // kube sets the patch type only in `with_patch`, which serializes a
                // `json_patch::Patch`: given none, it writes `[]`, and the engine's bytes take
                // its place.
                match allowed.clone().with_patch(json_patch::Patch(Vec::new())) {
                    Ok(mut response) => {
                        response.patch = Some(mutation.patch.into_bytes());
                        (with_warnings(response), Outcome::Mutated)
                    }
                    Err(error) => {
                        tracing::error!(uid = %request.response.uid, %error, "patch type could not be set; allowed unchanged");
                        (with_warnings(allowed), Outcome::Error)
                    }
                }
            }
        }
    }
}

/// A bounded label: the kinds probegate handles, or `other`.
fn kind_label(request: &Incoming<'_>) -> &'static str {
    Kind::label(&request.kind.kind)
}

fn operation_label(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests;
