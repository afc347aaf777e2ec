//! The thin layer between the wire and the engine: AdmissionReview in, AdmissionReview out.
//!
//! Everything the webhook can answer is decided in `respond`, in one place. probegate never
//! blocks a pod because of its own failure: an object it cannot read is allowed unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind, TypeMeta};
use serde::Deserialize;

use crate::engine::{self, Context, Mutation, Rule};
use crate::metrics::{Metrics, Outcome};
use crate::namespace_cache::Directory;
use crate::partial_decode;
use crate::workload::Workload;

const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

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
        Admission {
            directory,
            defaults,
            metrics,
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Answers one AdmissionReview body.
    pub async fn review(&self, body: &[u8]) -> Result<AdmissionReview<DynamicObject>, ReviewError> {
        let started = Instant::now();
        let mut request = match parse(body) {
            Ok(request) => request,
            Err(error) => {
                self.metrics.bad_request(error.reason());
                return Err(error);
            }
        };
        let decision = self.decide(&mut request).await;
        let kind = kind_label(&request);
        let operation = operation_label(&request.operation);
        let (response, outcome) = self.respond(&request, decision);
        let elapsed = started.elapsed();
        self.metrics
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

    async fn decide(&self, request: &mut Incoming) -> Decision {
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
        let services: Vec<&k8s_openapi::api::core::v1::Service> =
            view.services.iter().map(Arc::as_ref).collect();
        let mut mutation = engine::mutate(
            &workload,
            &Context {
                layers: &layers,
                services: &services,
            },
        );
        if let Some(message) = view.warning {
            mutation.warnings.insert(
                0,
                engine::Warning {
                    rule: Rule::Policy,
                    message,
                },
            );
        }
        Decision::Mutate(mutation)
    }

    /// Every way a review ends, in one place.
    fn respond(&self, request: &Incoming, decision: Decision) -> (AdmissionResponse, Outcome) {
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
                    self.metrics.warning(warning.rule);
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
                if mutation.patch.0.is_empty() {
                    return (with_warnings(allowed), Outcome::Unchanged);
                }
                self.metrics
                    .injected(mutation.probes_added, mutation.gates_added);
                match allowed.clone().with_patch(mutation.patch) {
                    Ok(response) => (with_warnings(response), Outcome::Mutated),
                    Err(error) => {
                        tracing::error!(uid = %request.response.uid, %error, "patch could not be serialized; allowed unchanged");
                        (with_warnings(allowed), Outcome::Error)
                    }
                }
            }
        }
    }
}

/// The response body. kube's type holds the patch as bytes, which serde writes as an array
/// of numbers; the API defines it as base64, which is also a third of the size. The patch is
/// taken out before the rest is serialized: as JSON values its bytes would take 72 bytes each.
pub fn to_wire(mut review: AdmissionReview<DynamicObject>) -> Result<Vec<u8>, serde_json::Error> {
    let patch = review.response.as_mut().and_then(|r| r.patch.take());
    let mut value = serde_json::to_value(&review)?;
    if let Some(patch) = patch {
        use base64::Engine as _;
        value["response"]["patch"] = base64::engine::general_purpose::STANDARD
            .encode(patch)
            .into();
    }
    serde_json::to_vec(&value)
}

/// A review, read once: what the response needs, and the object as a typed workload.
struct Incoming {
    /// An allowed response carrying the request's uid.
    response: AdmissionResponse,
    kind: GroupVersionKind,
    namespace: Option<String>,
    operation: Operation,
    /// `None`: no object, or a kind probegate does not handle; `Err`: it does not decode.
    object: Option<Result<Workload, String>>,
}

/// The review as it comes off the wire, in one pass: the object is kept as the raw JSON it
/// was sent as (borrowed, not copied) and decoded only if probegate handles its kind.
#[derive(Deserialize)]
struct WireReview<'a> {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(borrow)]
    request: Option<WireRequest<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    uid: String,
    kind: GroupVersionKind,
    // Required by the API, read past: a review without them is malformed.
    #[allow(dead_code)]
    resource: serde::de::IgnoredAny,
    #[allow(dead_code)]
    user_info: serde::de::IgnoredAny,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    #[serde(borrow, default)]
    object: Option<&'a serde_json::value::RawValue>,
}

/// Just enough of a body to say why it is not a review probegate can answer.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<serde::de::IgnoredAny>,
}

fn parse(body: &[u8]) -> Result<Incoming, ReviewError> {
    let review: WireReview<'_> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => return Err(why_unreadable(body, error)),
    };
    check_type(&review.api_version, &review.kind)?;
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    let gvk = &request.kind;
    let object = request.object.and_then(|raw| {
        partial_decode::decode(&gvk.group, &gvk.version, &gvk.kind, raw.get())
            .map_err(|error| error.to_string())
            .transpose()
    });
    // kube's response type cannot be built field by field; start from its one constructor
    // that needs no request and make it the allowed answer to this one.
    let mut response = AdmissionResponse::invalid("");
    response.types = TypeMeta {
        api_version: review.api_version,
        kind: review.kind,
    };
    response.uid = request.uid;
    response.allowed = true;
    response.result = Default::default();
    Ok(Incoming {
        response,
        kind: request.kind,
        namespace: request.namespace,
        operation: request.operation,
        object,
    })
}

/// The error for a body that is not a review probegate can read, most telling first.
fn why_unreadable(body: &[u8], error: serde_json::Error) -> ReviewError {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) => {
            return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Err(not_json) => ReviewError::NotJson(not_json),
                Ok(_) => ReviewError::Malformed(error),
            };
        }
    };
    if let Err(wrong_type) = check_type(&envelope.api_version, &envelope.kind) {
        return wrong_type;
    }
    if envelope.request.is_none() {
        return ReviewError::NoRequest;
    }
    ReviewError::Malformed(error)
}

fn check_type(api_version: &str, kind: &str) -> Result<(), ReviewError> {
    if kind == "AdmissionReview" && api_version == REVIEW_API_VERSION {
        Ok(())
    } else if kind == "AdmissionReview" && api_version.starts_with("admission.k8s.io/") {
        Err(ReviewError::UnsupportedVersion(api_version.to_owned()))
    } else {
        Err(ReviewError::NotAdmissionReview {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })
    }
}

/// A bounded label: the kinds probegate handles, or `other`.
fn kind_label(request: &Incoming) -> &'static str {
    Workload::KINDS
        .into_iter()
        .find(|k| *k == request.kind.kind)
        .unwrap_or("other")
}

fn operation_label(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
