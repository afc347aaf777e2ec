//! Writes a plan as JSON Patch operations on the object it was made for, straight to the
//! bytes the API server reads.
//!
//! The one place that knows JSON pointers: keys are escaped here (`~` as `~0`, `/` as
//! `~1`, RFC 6901), and where a map or list may be absent from the JSON, it is added whole.
//! Values are written by serde from their types (k8s-openapi's `Probe` among them), with no
//! intermediate JSON tree.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodReadinessGate;
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer as _};
use serde_json::ser::{CompactFormatter, Compound};

use super::object::PodParts;
use super::plan::Plan;

/// A JSON Patch (RFC 6902), as bytes: empty when there is nothing to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch(Vec<u8>);

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON text, `[]` when empty.
    pub fn as_bytes(&self) -> &[u8] {
        if self.0.is_empty() { b"[]" } else { &self.0 }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        if self.0.is_empty() {
            b"[]".to_vec()
        } else {
            self.0
        }
    }

    /// A patch of these operations, for tests of what carries a patch.
    #[cfg(test)]
    pub fn of(operations: &json_patch::Patch) -> Patch {
        Patch(serde_json::to_vec(operations).expect("operations serialize"))
    }

    /// The operations, for applying the patch to a document (offline, and in tests).
    pub fn operations(&self) -> Result<json_patch::Patch, serde_json::Error> {
        serde_json::from_slice(self.as_bytes())
    }
}

/// Written as the JSON array it is, not as a string of it.
impl Serialize for Patch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text =
            String::from_utf8(self.as_bytes().to_vec()).map_err(serde::ser::Error::custom)?;
        serde_json::value::RawValue::from_string(text)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// The operations that add what `plan` decided to the object `parts` come from.
pub fn write(parts: &PodParts<'_, '_>, plan: &Plan) -> Result<Patch, serde_json::Error> {
    let base = parts.base;
    let mut out = Vec::with_capacity(512 + 512 * plan.probes.len());
    let mut serializer = serde_json::Serializer::new(&mut out);
    let mut ops = Ops {
        seq: serializer.serialize_seq(None)?,
        count: 0,
        path: String::with_capacity(96),
    };
    for container in &plan.probes {
        for (kind, probe) in &container.added {
            let at = [
                Key("spec"),
                Key("containers"),
                Index(container.index),
                Key(kind.field()),
            ];
            ops.add(Pointer::new(base, &at), probe)?;
        }
    }
    if !plan.gates.is_empty() {
        let gates: Vec<PodReadinessGate> = plan
            .gates
            .iter()
            .map(|condition_type| PodReadinessGate {
                condition_type: condition_type.clone(),
            })
            .collect();
        if parts.spec.readiness_gates.is_some() {
            for gate in &gates {
                let at = [Key("spec"), Key("readinessGates"), Key("-")];
                ops.add(Pointer::new(base, &at), gate)?;
            }
        } else {
            let at = [Key("spec"), Key("readinessGates")];
            ops.add(Pointer::new(base, &at), &gates)?;
        }
    }
    if !plan.annotations.is_empty() {
        let map: BTreeMap<&str, &str> = plan
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match parts.pod_meta {
            Some(meta) if meta.annotations.is_some() => {
                for (key, value) in &plan.annotations {
                    let at = [Key("metadata"), Key("annotations"), Key(key)];
                    ops.add(Pointer::new(base, &at), value)?;
                }
            }
            // Metadata there, of whatever fields: the map goes in it.
            Some(_) => {
                let at = [Key("metadata"), Key("annotations")];
                ops.add(Pointer::new(base, &at), &map)?;
            }
            // Absent or null: written whole.
            None => {
                let whole = BTreeMap::from([("annotations", &map)]);
                ops.add(Pointer::new(base, &[Key("metadata")]), &whole)?;
            }
        }
    }
    let count = ops.count;
    ops.seq.end()?;
    Ok(if count == 0 {
        Patch::default()
    } else {
        Patch(out)
    })
}

/// The operations written so far, into the patch's array.
struct Ops<'s> {
    seq: Compound<'s, &'s mut Vec<u8>, CompactFormatter>,
    count: usize,
    /// The path of the operation being written, reused.
    path: String,
}

impl Ops<'_> {
    fn add<T: Serialize + ?Sized>(
        &mut self,
        path: Pointer<'_>,
        value: &T,
    ) -> serde_json::Result<()> {
        self.count += 1;
        self.path.clear();
        path.write_to(&mut self.path);
        self.seq.serialize_element(&Add {
            op: "add",
            path: &self.path,
            value,
        })
    }
}

#[derive(Serialize)]
struct Add<'a, T: ?Sized> {
    op: &'static str,
    path: &'a str,
    value: &'a T,
}

/// One reference token of a pointer.
#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}
use Segment::{Index, Key};

/// A JSON pointer from the object root: the pod's base, then the rest.
#[derive(Debug, Clone, Copy)]
struct Pointer<'a> {
    base: &'a [&'a str],
    rest: &'a [Segment<'a>],
}

impl<'a> Pointer<'a> {
    fn new(base: &'a [&'a str], rest: &'a [Segment<'a>]) -> Pointer<'a> {
        Pointer { base, rest }
    }
}

impl Pointer<'_> {
    /// The pointer's text, appended to `out`, without the formatting machinery: a patch
    /// writes one per operation.
    fn write_to(&self, out: &mut String) {
        let base = self.base.iter().map(|key| Key(key));
        for token in base.chain(self.rest.iter().copied()) {
            out.push('/');
            match token {
                Index(index) => push_number(out, index),
                Key(key) => escape(key, out),
            }
        }
    }
}

impl fmt::Display for Pointer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_to(&mut text);
        f.write_str(&text)
    }
}

/// RFC 6901: `~` is written `~0` and `/` is written `~1`; nothing else changes.
fn escape(key: &str, out: &mut String) {
    let mut rest = key;
    while let Some(at) = rest.find(['~', '/']) {
        out.push_str(&rest[..at]);
        out.push_str(if rest.as_bytes()[at] == b'~' {
            "~0"
        } else {
            "~1"
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// A list index in decimal.
fn push_number(out: &mut String, number: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        // A digit, 0 to 9, fits a u8.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|d| char::from(*d)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::ContainerProbes;
    use crate::engine::test_support::object;
    use crate::policy::ProbeKind;
    use k8s_openapi::api::core::v1::Probe;
    use serde_json::{Value, json};

    struct Case {
        name: &'static str,
        object: Value,
        plan: Plan,
        /// The object after the patch, compared where the case says.
        expect: Vec<(&'static str, Value)>,
    }

    fn annotations(pairs: &[(&str, &str)]) -> Plan {
        Plan {
            annotations: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Plan::default()
        }
    }

    fn pod(metadata: Value, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    }

    const APP: &str = r#"{"containers": [{"name": "side"}, {"name": "app"}]}"#;

    #[test]
    fn plans_are_written_wherever_the_object_stands() {
        let spec: Value = serde_json::from_str(APP).unwrap();
        let cases = [
            Case {
                name: "annotation keys with / and ~ are escaped",
                object: pod(json!({"annotations": {}}), spec.clone()),
                plan: annotations(&[("a/b~c", "1")]),
                expect: vec![("/metadata/annotations/a~1b~0c", json!("1"))],
            },
            Case {
                name: "an annotations map that exists gets keys added",
                object: pod(json!({"annotations": {"keep": "x"}}), spec.clone()),
                plan: annotations(&[("probegate.io/injected", "app=readiness")]),
                expect: vec![(
                    "/metadata/annotations",
                    json!({"keep": "x", "probegate.io/injected": "app=readiness"}),
                )],
            },
            Case {
                name: "metadata without annotations gets the map",
                object: pod(json!({"name": "p"}), spec.clone()),
                plan: annotations(&[("k", "v")]),
                expect: vec![("/metadata", json!({"name": "p", "annotations": {"k": "v"}}))],
            },
            Case {
                name: "metadata with only fields no rule reads keeps them",
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "d"},
                    "spec": {"selector": {}, "template": {"metadata": {"labeds": {"a": "b"}, "creationTimestamp": null}, "spec": spec.clone()}}}),
                plan: annotations(&[("k", "v")]),
                expect: vec![(
                    "/spec/template/metadata",
                    json!({"labeds": {"a": "b"}, "creationTimestamp": null, "annotations": {"k": "v"}}),
                )],
            },
            Case {
                name: "empty metadata gets the map",
                object: pod(json!({}), spec.clone()),
                plan: annotations(&[("k", "v")]),
                expect: vec![("/metadata", json!({"annotations": {"k": "v"}}))],
            },
            Case {
                name: "null gates are replaced by the list",
                object: pod(
                    json!({}),
                    json!({"containers": [{"name": "app"}], "readinessGates": null}),
                ),
                plan: Plan {
                    gates: vec!["example.com/a".into()],
                    ..Plan::default()
                },
                expect: vec![(
                    "/spec/readinessGates",
                    json!([{"conditionType": "example.com/a"}]),
                )],
            },
            Case {
                name: "null metadata is written whole",
                object: json!({"apiVersion": "v1", "kind": "Pod", "metadata": null, "spec": spec.clone()}),
                plan: annotations(&[("k", "v")]),
                expect: vec![("/metadata", json!({"annotations": {"k": "v"}}))],
            },
            Case {
                name: "null annotations are replaced by the map",
                object: pod(json!({"name": "p", "annotations": null}), spec.clone()),
                plan: annotations(&[("k", "v")]),
                expect: vec![("/metadata/annotations", json!({"k": "v"}))],
            },
            Case {
                name: "absent metadata is written whole",
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "d"},
                    "spec": {"selector": {}, "template": {"spec": spec.clone()}}}),
                plan: annotations(&[("k", "v")]),
                expect: vec![(
                    "/spec/template/metadata",
                    json!({"annotations": {"k": "v"}}),
                )],
            },
            Case {
                name: "probes go to the container at their index",
                object: pod(json!({}), spec.clone()),
                plan: Plan {
                    probes: vec![ContainerProbes {
                        index: 1,
                        container: "app".into(),
                        added: vec![(ProbeKind::Readiness, Probe::default())],
                        ..ContainerProbes::default()
                    }],
                    ..Plan::default()
                },
                expect: vec![
                    ("/spec/containers/1/readinessProbe", json!({})),
                    ("/spec/containers/0/readinessProbe", Value::Null),
                ],
            },
            Case {
                name: "gates are added as a list where there is none",
                object: pod(json!({}), spec.clone()),
                plan: Plan {
                    gates: vec!["example.com/a".into(), "example.com/b".into()],
                    ..Plan::default()
                },
                expect: vec![(
                    "/spec/readinessGates",
                    json!([{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]),
                )],
            },
            Case {
                name: "gates are appended to a list that exists",
                object: pod(
                    json!({}),
                    json!({"containers": [{"name": "app"}], "readinessGates": [{"conditionType": "mine"}]}),
                ),
                plan: Plan {
                    gates: vec!["example.com/a".into()],
                    ..Plan::default()
                },
                expect: vec![(
                    "/spec/readinessGates",
                    json!([{"conditionType": "mine"}, {"conditionType": "example.com/a"}]),
                )],
            },
        ];
        for case in cases {
            let workload = object(case.object.clone());
            let parts = workload.pod_parts().unwrap();
            let patch = write(&parts, &case.plan).unwrap();
            let mut patched = case.object.clone();
            json_patch::patch(&mut patched, &patch.operations().unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            for (path, expected) in &case.expect {
                let found = patched.pointer(path).cloned().unwrap_or(Value::Null);
                assert_eq!(&found, expected, "{}: {path}", case.name);
            }
        }
    }

    #[test]
    fn pointer_tokens_are_escaped_as_rfc_6901_says() {
        let cases = [
            ("a plain key", "app", "/spec/app"),
            ("a slash", "a/b", "/spec/a~1b"),
            ("a tilde", "a~b", "/spec/a~0b"),
            (
                "a tilde before a one is not an escape already",
                "~1",
                "/spec/~01",
            ),
            ("both, in either order", "/~~/", "/spec/~1~0~0~1"),
            ("an empty key", "", "/spec/"),
            ("other characters stay", "é/ü \"q\"", "/spec/é~1ü \"q\""),
        ];
        for (name, key, expected) in cases {
            let pointer = Pointer::new(&["spec"], &[Key(key)]).to_string();
            assert_eq!(pointer, expected, "{name}");
            // What jsonptr, which json_patch applies the patch with, reads back.
            let parsed = jsonptr::PointerBuf::parse(&pointer).unwrap();
            let last = parsed.tokens().last().unwrap();
            assert_eq!(last.decoded(), key, "{name}");
        }
        let indexed = Pointer::new(&["spec", "template"], &[Key("containers"), Index(12)]);
        assert_eq!(indexed.to_string(), "/spec/template/containers/12");
        for number in [0, 7, 10, 409, usize::MAX] {
            let mut text = String::new();
            push_number(&mut text, number);
            assert_eq!(text, number.to_string());
        }
        assert_eq!(
            Pointer::new(&[], &[Key("metadata")]).to_string(),
            "/metadata"
        );
    }

    #[test]
    fn the_patch_is_the_json_array_of_its_operations() {
        let object = pod(json!({"name": "p"}), serde_json::from_str(APP).unwrap());
        let workload = self::object(object);
        let patch = write(&workload.pod_parts().unwrap(), &annotations(&[("k", "v")])).unwrap();
        assert_eq!(
            std::str::from_utf8(patch.as_bytes()).unwrap(),
            r#"[{"op":"add","path":"/metadata/annotations","value":{"k":"v"}}]"#
        );
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}])
        );
        assert_eq!(Patch::default().as_bytes(), b"[]");
    }

    #[test]
    fn an_empty_plan_writes_nothing() {
        let object = pod(json!({}), serde_json::from_str(APP).unwrap());
        let workload = self::object(object);
        let patch = write(&workload.pod_parts().unwrap(), &Plan::default()).unwrap();
        assert!(patch.is_empty());
    }
}
