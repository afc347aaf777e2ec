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

use crate::engine::{self, Context, Mutation, Rule, ServiceEvidence};
use crate::metrics::{Metrics, Outcome};
use crate::namespace_cache::Directory;
use crate::partial_decode;
use crate::workload::Workload;

pub mod metrics;

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
        let services: Vec<&ServiceEvidence> = view.services.iter().map(Arc::as_ref).collect();
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
                if mutation.patch.0.is_empty() {
                    return (with_warnings(allowed), Outcome::Unchanged);
                }
                self.metrics
                    .admission
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

/// What probegate reads of a request. The API server writes `kind` before `object`, so the
/// object is decoded as its kind while the review is read; sent the other way round, it is
/// kept as raw JSON and decoded after.
struct WireRequest<'a> {
    uid: String,
    kind: GroupVersionKind,
    namespace: Option<String>,
    operation: Operation,
    object: WireObject<'a>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per request, moved once into the answer"
)]
enum WireObject<'a> {
    Absent,
    Decoded(Workload),
    /// Read before its kind was known; a kind probegate does not handle is never built.
    Raw(&'a serde_json::value::RawValue),
    Skipped,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireRequest<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = WireRequest<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an AdmissionRequest")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireRequest<'a>, A::Error> {
                use serde::de::{Error, IgnoredAny};
                let (mut uid, mut kind, mut operation) = (None, None, None);
                let (mut resource, mut user_info) = (false, false);
                let mut namespace = None;
                let mut object = WireObject::Absent;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "uid" => uid = Some(map.next_value::<String>()?),
                        "kind" => kind = Some(map.next_value::<GroupVersionKind>()?),
                        "namespace" => namespace = map.next_value::<Option<String>>()?,
                        "operation" => operation = Some(map.next_value::<Operation>()?),
                        // Required by the API, read past.
                        "resource" => resource = map.next_value::<IgnoredAny>().map(|_| true)?,
                        "userInfo" => user_info = map.next_value::<IgnoredAny>().map(|_| true)?,
                        "object" => {
                            let seed = kind.as_ref().map(|k: &GroupVersionKind| {
                                partial_decode::Seed::for_kind(&k.group, &k.version, &k.kind)
                            });
                            object = match seed {
                                Some(Some(seed)) => match map.next_value_seed(OrNull(seed))? {
                                    Some(workload) => WireObject::Decoded(workload),
                                    None => WireObject::Absent,
                                },
                                Some(None) => match map.next_value::<Option<IgnoredAny>>()? {
                                    Some(_) => WireObject::Skipped,
                                    None => WireObject::Absent,
                                },
                                None => match map.next_value()? {
                                    Some(raw) => WireObject::Raw(raw),
                                    None => WireObject::Absent,
                                },
                            };
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !resource {
                    return Err(A::Error::missing_field("resource"));
                }
                if !user_info {
                    return Err(A::Error::missing_field("userInfo"));
                }
                Ok(WireRequest {
                    uid: uid.ok_or_else(|| A::Error::missing_field("uid"))?,
                    kind: kind.ok_or_else(|| A::Error::missing_field("kind"))?,
                    namespace,
                    operation: operation.ok_or_else(|| A::Error::missing_field("operation"))?,
                    object,
                })
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// A seed's value, or `None` for JSON `null`.
struct OrNull(partial_decode::Seed);

impl<'de> serde::de::DeserializeSeed<'de> for OrNull {
    type Value = Option<Workload>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct Visitor(partial_decode::Seed);
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Option<Workload>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object or null")
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                serde::de::DeserializeSeed::deserialize(self.0, d).map(Some)
            }
        }
        d.deserialize_option(Visitor(self.0))
    }
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
        Err(error) => {
            return parse_unfitting(body).unwrap_or_else(|| Err(why_unreadable(body, error)));
        }
    };
    check_type(&review.api_version, &review.kind)?;
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    let object = match request.object {
        WireObject::Decoded(workload) => Some(Ok(workload)),
        WireObject::Raw(raw) => {
            let gvk = &request.kind;
            partial_decode::decode(&gvk.group, &gvk.version, &gvk.kind, raw.get())
                .map_err(|error| error.to_string())
                .transpose()
        }
        WireObject::Absent | WireObject::Skipped => None,
    };
    Ok(Incoming {
        response: allowed(review.api_version, review.kind, request.uid),
        kind: request.kind,
        namespace: request.namespace,
        operation: request.operation,
        object,
    })
}

/// The allowed answer to the request `uid`, in the review's own apiVersion and kind.
fn allowed(api_version: String, kind: String, uid: String) -> AdmissionResponse {
    // kube's response type cannot be built field by field; start from its one constructor
    // that needs no request and make it the allowed answer to this one.
    let mut response = AdmissionResponse::invalid("");
    response.types = TypeMeta { api_version, kind };
    response.uid = uid;
    response.allowed = true;
    response.result = Default::default();
    response
}

/// A well-formed review whose object does not fit its kind: decoding it in the same pass
/// failed the whole read, so read it again with the object kept raw, to answer with its uid
/// and say why the object was not touched. `None` if that is not what went wrong.
fn parse_unfitting(body: &[u8]) -> Option<Result<Incoming, ReviewError>> {
    #[derive(Deserialize)]
    struct Review<'a> {
        #[serde(default, rename = "apiVersion")]
        api_version: String,
        #[serde(default)]
        kind: String,
        #[serde(borrow)]
        request: Option<Request<'a>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        uid: String,
        kind: GroupVersionKind,
        #[allow(dead_code)]
        resource: serde::de::IgnoredAny,
        #[allow(dead_code)]
        user_info: serde::de::IgnoredAny,
        #[serde(default)]
        namespace: Option<String>,
        operation: Operation,
        #[serde(borrow)]
        object: &'a serde_json::value::RawValue,
    }
    let review: Review<'_> = serde_json::from_slice(body).ok()?;
    check_type(&review.api_version, &review.kind).ok()?;
    let request = review.request?;
    let gvk = &request.kind;
    let error =
        partial_decode::decode(&gvk.group, &gvk.version, &gvk.kind, request.object.get()).err()?;
    Some(Ok(Incoming {
        response: allowed(review.api_version, review.kind, request.uid),
        kind: request.kind,
        namespace: request.namespace,
        operation: request.operation,
        object: Some(Err(error.to_string())),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: &str) -> Vec<u8> {
        format!(r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {request}}}"#)
            .into_bytes()
    }

    const POD: &str = r#"{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}}"#;
    const POD_KIND: &str = r#"{"group": "", "version": "v1", "kind": "Pod"}"#;
    const REST: &str = r#""uid": "u1", "resource": {"group": "", "version": "v1", "resource": "pods"}, "userInfo": {}, "operation": "CREATE""#;

    #[test]
    fn the_object_is_read_whatever_the_field_order() {
        // (request, what the object comes out as)
        let cases = [
            (
                format!(r#"{{"kind": {POD_KIND}, {REST}, "object": {POD}}}"#),
                "Pod",
            ),
            (
                format!(r#"{{"object": {POD}, {REST}, "kind": {POD_KIND}}}"#),
                "Pod",
            ),
            (
                format!(r#"{{"kind": {POD_KIND}, {REST}, "object": null}}"#),
                "none",
            ),
            (format!(r#"{{"kind": {POD_KIND}, {REST}}}"#), "none"),
            (
                format!(
                    r#"{{"kind": {{"group": "", "version": "v1", "kind": "ConfigMap"}}, {REST}, "object": {{"data": {{"a": "b"}}}}}}"#
                ),
                "none",
            ),
            (
                format!(
                    r#"{{"object": {{"data": 1}}, {REST}, "kind": {{"group": "", "version": "v1", "kind": "ConfigMap"}}}}"#
                ),
                "none",
            ),
            (
                format!(
                    r#"{{"kind": {POD_KIND}, {REST}, "object": {{"spec": {{"containers": "app"}}}}}}"#
                ),
                "error",
            ),
            (
                format!(
                    r#"{{"object": {{"spec": {{"containers": "app"}}}}, {REST}, "kind": {POD_KIND}}}"#
                ),
                "error",
            ),
        ];
        for (request, expected) in cases {
            let incoming = parse(&body(&request)).unwrap_or_else(|e| panic!("{request}: {e}"));
            assert_eq!(incoming.response.uid, "u1", "{request}");
            assert!(incoming.response.allowed);
            let got = match &incoming.object {
                Some(Ok(workload)) => workload.kind(),
                Some(Err(why)) => {
                    assert!(why.contains("does not fit Pod"), "{why}");
                    "error"
                }
                None => "none",
            };
            assert_eq!(got, expected, "{request}");
        }
    }

    #[test]
    fn bodies_that_are_not_reviews_say_why() {
        // (body, reason label)
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not_json"),
            (b"[1, 2]".to_vec(), "malformed"),
            (
                br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}"#.to_vec(),
                "unsupported_version",
            ),
            (br#"{"apiVersion": "v1", "kind": "Pod"}"#.to_vec(), "not_admission_review"),
            (br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#.to_vec(), "no_request"),
            (body(&format!(r#"{{"kind": {POD_KIND}, "uid": 42}}"#)), "malformed"),
            (body(r#"{"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "userInfo": {}}"#), "malformed"),
        ];
        for (body, reason) in cases {
            let error = parse(&body)
                .err()
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&body)));
            assert_eq!(
                error.reason(),
                reason,
                "{}: {error}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
