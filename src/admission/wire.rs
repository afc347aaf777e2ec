//! The review on the wire: read in one pass, the object decoded as its kind on the way, and
//! the answer written back.

use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind, TypeMeta};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ReviewError;
use crate::engine::{DecodeError, Kind, Object};

const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// The response body. kube's type holds the patch as bytes, which serde writes as an array
/// of numbers; the API defines it as base64, which is also a third of the size. So the patch
/// is taken out and written as base64 beside the rest of kube's response, straight into the
/// body with no intermediate JSON tree.
pub fn to_wire(mut review: AdmissionReview<DynamicObject>) -> Result<Vec<u8>, serde_json::Error> {
    let patch = review.response.as_mut().and_then(|r| r.patch.take());
    let patch = patch.as_deref().map(base64).transpose()?;
    serde_json::to_vec(&WireAnswer {
        types: &review.types,
        response: review.response.as_ref().map(|response| WireResponse {
            response,
            patch: patch.as_deref(),
        }),
    })
}

#[derive(serde::Serialize)]
struct WireAnswer<'a> {
    #[serde(flatten)]
    types: &'a TypeMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<WireResponse<'a>>,
}

#[derive(serde::Serialize)]
struct WireResponse<'a> {
    /// Without its patch, which kube then leaves out.
    #[serde(flatten)]
    response: &'a AdmissionResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'a RawValue>,
}

/// `bytes` in base64, as a JSON string. The base64 alphabet needs no JSON escapes, so the
/// string is written as it is, not scanned for escapes a byte at a time as serde would a
/// string (RawValue checks it is JSON, at a fraction of that cost: the scan was 46,000
/// instructions of the synthetic review, docs/benchmarks/review-cost.md).
fn base64(bytes: &[u8]) -> Result<Box<RawValue>, serde_json::Error> {
    use base64::Engine as _;
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4 + 2);
    text.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut text);
    text.push('"');
    RawValue::from_string(text)
}

/// A review, read once: what the response needs, and the object as the engine reads it.
pub(super) struct Incoming<'a> {
    /// An allowed response carrying the request's uid.
    pub(super) response: AdmissionResponse,
    pub(super) kind: GroupVersionKind,
    pub(super) namespace: Option<String>,
    pub(super) operation: Operation,
    /// `None`: no object, or a kind probegate does not handle; `Err`: it does not decode.
    pub(super) object: Option<Result<Object<'a>, String>>,
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
    Decoded(Object<'a>),
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
                        "object" => object = read_object(&mut map, kind.as_ref())?,
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

/// The request's object: decoded as its kind when the kind came first and probegate handles
/// it, read past when it does not, kept raw when the kind is not known yet.
fn read_object<'de: 'a, 'a, A: serde::de::MapAccess<'de>>(
    map: &mut A,
    kind: Option<&GroupVersionKind>,
) -> Result<WireObject<'a>, A::Error> {
    Ok(
        match kind.map(|k| Kind::of(&k.group, &k.version, &k.kind)) {
            Some(Some(kind)) => {
                match map.next_value_seed(OrNull::<'de>(kind, std::marker::PhantomData))? {
                    Some(workload) => WireObject::Decoded(workload),
                    None => WireObject::Absent,
                }
            }
            Some(None) => match map.next_value::<Option<serde::de::IgnoredAny>>()? {
                Some(_) => WireObject::Skipped,
                None => WireObject::Absent,
            },
            None => match map.next_value()? {
                Some(raw) => WireObject::Raw(raw),
                None => WireObject::Absent,
            },
        },
    )
}

/// A seed's value, or `None` for JSON `null`.
struct OrNull<'de>(Kind, std::marker::PhantomData<&'de ()>);

impl<'de> serde::de::DeserializeSeed<'de> for OrNull<'de> {
    type Value = Option<Object<'de>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct Visitor(Kind);
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Option<Object<'de>>;
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

pub(super) fn parse(body: &[u8]) -> Result<Incoming<'_>, ReviewError> {
    // JSON is UTF-8 (RFC 8259). Checked once for the whole body, so that serde_json reads
    // it as text and does not check every string it borrows again.
    let text = std::str::from_utf8(body).map_err(|error| {
        ReviewError::NotJson(serde::de::Error::custom(format_args!(
            "the body is not UTF-8: {error}"
        )))
    })?;
    let review: WireReview<'_> = match serde_json::from_str(text) {
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
            read_raw(&request.kind, raw.get()).map(|read| read.map_err(|error| error.to_string()))
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
fn parse_unfitting(body: &[u8]) -> Option<Result<Incoming<'_>, ReviewError>> {
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
    let error = read_raw(&request.kind, request.object.get())?.err()?;
    Some(Ok(Incoming {
        response: allowed(review.api_version, review.kind, request.uid),
        kind: request.kind,
        namespace: request.namespace,
        operation: request.operation,
        object: Some(Err(error.to_string())),
    }))
}

/// The object of a handled kind, read from its raw JSON; `None` for other kinds.
fn read_raw<'a>(gvk: &GroupVersionKind, raw: &'a str) -> Option<Result<Object<'a>, DecodeError>> {
    let kind = Kind::of(&gvk.group, &gvk.version, &gvk.kind)?;
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    let object = Object::read(kind, &mut deserializer)
        .and_then(|object| deserializer.end().map(|()| object))
        .map_err(|source| DecodeError {
            kind: kind.name(),
            source,
        });
    Some(object)
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
