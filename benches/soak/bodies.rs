//! What is sent, and what each must get: the review mix, the malformed and oversized bodies,
//! and the check every answer passes.

use serde_json::{Value, json};

use crate::client::{Answer, Client};
use crate::settings::{NAMESPACE, root};

/// Replaced in every request by a uid of its own.
const UID_PLACEHOLDER: &str = "5a5a5a5a-5a5a-4a5a-8a5a-5a5a5a5a5a5a";

#[derive(Clone, Copy, PartialEq)]
pub enum Expect {
    /// 200, its uid, allowed, and the patch probegate gave before the faults.
    SamePatch,
    /// 200, its uid, allowed, no patch.
    NoPatch,
    /// 400 with `{"error": ...}`.
    BadRequest,
}

pub struct Body {
    pub name: &'static str,
    bytes: Vec<u8>,
    uid_at: Option<usize>,
    pub expect: Expect,
}

impl Body {
    pub fn review(name: &'static str, review: &Value, expect: Expect) -> Body {
        let bytes = serde_json::to_vec(review).unwrap();
        let needle = UID_PLACEHOLDER.as_bytes();
        let uid_at = bytes.windows(needle.len()).position(|w| w == needle);
        Body {
            name,
            bytes,
            uid_at,
            expect,
        }
    }

    fn raw(name: &'static str, bytes: &[u8]) -> Body {
        Body {
            name,
            bytes: bytes.to_vec(),
            uid_at: None,
            expect: Expect::BadRequest,
        }
    }

    /// The bytes with a uid of their own, and that uid.
    pub fn instance(&self, n: u64) -> (Vec<u8>, Option<String>) {
        let mut bytes = self.bytes.clone();
        let Some(at) = self.uid_at else {
            return (bytes, None);
        };
        // Twelve hex digits, the last group of a uid.
        let uid = format!("5a5a5a5a-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff);
        bytes[at..at + uid.len()].copy_from_slice(uid.as_bytes());
        (bytes, Some(uid))
    }
}

/// A captured or example review, moved into `namespace` with the placeholder uid.
pub fn into_namespace(mut review: Value, namespace: &str) -> Value {
    review["request"]["uid"] = UID_PLACEHOLDER.into();
    review["request"]["namespace"] = namespace.into();
    if review["request"]["object"]["metadata"].is_object() {
        review["request"]["object"]["metadata"]["namespace"] = namespace.into();
    }
    review
}

pub fn fixture(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join(path)).unwrap()).unwrap()
}

fn review_of(object: Value, namespace: &str) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let kind = object["kind"].as_str().unwrap().to_owned();
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": UID_PLACEHOLDER,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "soak"},
            "object": object, "oldObject": null, "dryRun": false
        }
    })
}

pub struct Bodies {
    /// Sent in turn by weight: (body, weight out of 100).
    pub mix: Vec<(Body, u32)>,
    pub oversized: Vec<u8>,
}

impl Bodies {
    pub fn new() -> Bodies {
        use Expect::*;
        let real =
            |name| into_namespace(fixture(&format!("benches/fixtures/{name}.json")), NAMESPACE);
        let example = into_namespace(fixture("examples/reviews/pod.json"), NAMESPACE);
        let deployment = review_of(fixture("benches/fixtures/deployment.json"), NAMESPACE);
        let service = review_of(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NAMESPACE},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            NAMESPACE,
        );
        let config_map = review_of(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NAMESPACE},
                   "data": {"a": "b"}}),
            NAMESPACE,
        );
        let mut v1beta1 = example.clone();
        v1beta1["apiVersion"] = "admission.k8s.io/v1beta1".into();
        let truncated = serde_json::to_vec(&example).unwrap();
        let truncated = &truncated[..truncated.len() / 2];
        let bare_pod = serde_json::to_vec(&example["request"]["object"]).unwrap();
        let mut oversized = serde_json::to_vec(&example).unwrap();
        // Past the 4 MiB limit, padded inside the JSON as a real large object would be.
        let pad = format!(",\"padding\":\"{}\"}}", "x".repeat(4 * 1024 * 1024 + 1024));
        oversized.pop();
        oversized.extend_from_slice(pad.as_bytes());
        Bodies {
            mix: vec![
                (
                    Body::review("real-apply", &real("review-deployment-apply"), SamePatch),
                    25,
                ),
                (
                    Body::review(
                        "real-ssa-53k",
                        &real("review-deployment-big-ssa"),
                        SamePatch,
                    ),
                    8,
                ),
                (
                    Body::review("real-pod", &real("review-pod-from-template"), SamePatch),
                    25,
                ),
                (Body::review("example-pod", &example, SamePatch), 10),
                (Body::review("deployment-11k", &deployment, SamePatch), 12),
                (Body::review("service (skipped kind)", &service, NoPatch), 6),
                (
                    Body::review("configmap (skipped kind)", &config_map, NoPatch),
                    2,
                ),
                (Body::raw("truncated JSON", truncated), 3),
                (Body::raw("not JSON", b"\x00\xffnot json at all"), 3),
                (Body::review("v1beta1 review", &v1beta1, BadRequest), 3),
                (Body::raw("bare Pod, not a review", &bare_pod), 3),
            ],
            oversized,
        }
    }

    /// Which body the n-th request sends: weights spread evenly over each 100.
    pub fn pick(&self, n: u64) -> usize {
        let slot = ((n % 100) * 37 % 100) as u32;
        let mut acc = 0;
        for (i, (_, weight)) in self.mix.iter().enumerate() {
            acc += weight;
            if slot < acc {
                return i;
            }
        }
        self.mix.len() - 1
    }

    /// Each body's answer before any fault: the patch the load must keep getting.
    pub async fn references(&self, client: &Client) -> Result<Vec<Option<String>>, String> {
        let mut references = Vec::new();
        for (i, (body, _)) in self.mix.iter().enumerate() {
            let (bytes, uid) = body.instance(i as u64);
            let answer = client.send_once(bytes).await?;
            let review = check(body.expect, uid.as_deref(), &answer, None)
                .map_err(|e| format!("{}: {e}", body.name))?;
            let patch = review["response"]["patch"].as_str().map(str::to_owned);
            if body.expect == Expect::SamePatch && patch.is_none() {
                return Err(format!("{}: no patch to compare with", body.name));
            }
            eprintln!(
                "soak: {}: {} bytes, answered {}",
                body.name,
                body.bytes.len(),
                if patch.is_some() {
                    "with a patch"
                } else {
                    "as expected"
                }
            );
            references.push(patch);
        }
        let status = client.send_oversized(&self.oversized).await?;
        if status != 413 {
            return Err(format!("oversized body answered {status}"));
        }
        Ok(references)
    }
}

/// Checks an answer against what its body must get; the decoded review when it is one.
pub fn check(
    expect: Expect,
    uid: Option<&str>,
    (status, body): &Answer,
    reference: Option<&Option<String>>,
) -> Result<Value, String> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| format!("{status}, body not JSON: {}", String::from_utf8_lossy(body)))?;
    if expect == Expect::BadRequest {
        return if *status == 400 && parsed["error"].as_str().is_some_and(|e| !e.is_empty()) {
            Ok(parsed)
        } else {
            Err(format!(
                "expected 400 with an error, got {status}: {parsed}"
            ))
        };
    }
    if *status != 200 {
        return Err(format!("{status}: {parsed}"));
    }
    let response = &parsed["response"];
    if parsed["kind"] != "AdmissionReview" || response["uid"].as_str() != uid {
        return Err(format!("not the answer to uid {uid:?}: {parsed}"));
    }
    if response["allowed"] != true {
        return Err(format!("not allowed: {parsed}"));
    }
    let patch = response["patch"].as_str().map(str::to_owned);
    match expect {
        Expect::NoPatch if patch.is_some() => Err(format!("a patch for a skipped kind: {parsed}")),
        Expect::SamePatch if reference.is_some_and(|r| *r != patch) => Err(format!(
            "another patch than before the faults: {}",
            response["warnings"]
        )),
        _ => Ok(parsed),
    }
}
