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
    struct Case {
        name: &'static str,
        request: String,
        /// The kind it decodes as, `none` or `error`.
        object: &'static str,
    }
    const CONFIGMAP: &str = r#"{"group": "", "version": "v1", "kind": "ConfigMap"}"#;
    const UNFIT: &str = r#"{"spec": {"containers": "app"}}"#;
    let cases = [
        Case {
            name: "kind before object, as the API server writes it",
            request: format!(r#"{{"kind": {POD_KIND}, {REST}, "object": {POD}}}"#),
            object: "Pod",
        },
        Case {
            name: "object before kind",
            request: format!(r#"{{"object": {POD}, {REST}, "kind": {POD_KIND}}}"#),
            object: "Pod",
        },
        Case {
            name: "a null object",
            request: format!(r#"{{"kind": {POD_KIND}, {REST}, "object": null}}"#),
            object: "none",
        },
        Case {
            name: "no object",
            request: format!(r#"{{"kind": {POD_KIND}, {REST}}}"#),
            object: "none",
        },
        Case {
            name: "a kind probegate does not handle",
            request: format!(
                r#"{{"kind": {CONFIGMAP}, {REST}, "object": {{"data": {{"a": "b"}}}}}}"#
            ),
            object: "none",
        },
        Case {
            name: "a kind probegate does not handle, its object first",
            request: format!(r#"{{"object": {{"data": 1}}, {REST}, "kind": {CONFIGMAP}}}"#),
            object: "none",
        },
        Case {
            name: "an object that does not fit its kind",
            request: format!(r#"{{"kind": {POD_KIND}, {REST}, "object": {UNFIT}}}"#),
            object: "error",
        },
        Case {
            name: "an object that does not fit its kind, sent first",
            request: format!(r#"{{"object": {UNFIT}, {REST}, "kind": {POD_KIND}}}"#),
            object: "error",
        },
    ];
    for case in cases {
        let name = case.name;
        let sent = body(&case.request);
        let incoming = parse(&sent).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(incoming.response.uid, "u1", "{name}");
        assert!(incoming.response.allowed, "{name}");
        let got = match &incoming.object {
            Some(Ok(workload)) => workload.kind_name(),
            Some(Err(why)) => {
                assert!(why.contains("does not fit Pod"), "{name}: {why}");
                "error"
            }
            None => "none",
        };
        assert_eq!(got, case.object, "{name}");
    }
}

#[test]
fn bodies_that_are_not_reviews_say_why() {
    struct Case {
        name: &'static str,
        body: Vec<u8>,
        /// The `reason` label of the bad-request metric.
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "not JSON",
            body: b"not json".to_vec(),
            reason: "not_json",
        },
        Case {
            name: "a review with bytes that are not UTF-8 where nothing reads them",
            body: {
                let mut sent = body(&format!(
                    r#"{{"kind": {POD_KIND}, {REST}, "object": {POD}, "note": "\u0000"}}"#
                ));
                let at = sent.windows(6).position(|w| w == b"\\u0000").unwrap();
                sent.splice(at..at + 6, [0xff, 0xfe]);
                sent
            },
            reason: "not_json",
        },
        Case {
            name: "JSON, not an object",
            body: b"[1, 2]".to_vec(),
            reason: "malformed",
        },
        Case {
            name: "an older review version",
            body: br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}"#.to_vec(),
            reason: "unsupported_version",
        },
        Case {
            name: "another object",
            body: br#"{"apiVersion": "v1", "kind": "Pod"}"#.to_vec(),
            reason: "not_admission_review",
        },
        Case {
            name: "a review without a request",
            body: br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#.to_vec(),
            reason: "no_request",
        },
        Case {
            name: "a uid that is not a string",
            body: body(&format!(r#"{{"kind": {POD_KIND}, "uid": 42}}"#)),
            reason: "malformed",
        },
        Case {
            name: "a request without a resource",
            body: body(r#"{"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "userInfo": {}}"#),
            reason: "malformed",
        },
    ];
    for case in cases {
        let error = parse(&case.body)
            .err()
            .unwrap_or_else(|| panic!("{}: parsed", case.name));
        assert_eq!(error.reason(), case.reason, "{}: {error}", case.name);
    }
}

#[test]
fn every_decision_maps_to_one_answer() {
    use engine::Warning;
    use engine::plan::Plan;
    use json_patch::{AddOperation, Patch, PatchOperation};

    let warned = || {
        vec![Warning {
            rule: Rule::Probes,
            kind: engine::WarningKind::NoProbe,
            message: "careful".into(),
            at: None,
        }]
    };
    let patch = || {
        engine::Patch::of(&Patch(vec![PatchOperation::Add(AddOperation {
            path: jsonptr::PointerBuf::parse("/metadata/labels").unwrap(),
            value: serde_json::json!({}),
        })]))
    };
    struct Case {
        name: &'static str,
        decision: Decision,
        outcome: Outcome,
        allowed: bool,
        /// The status code of a refusal.
        code: Option<u16>,
        patched: bool,
        warnings: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a kind or operation it skips",
            decision: Decision::Skip,
            outcome: Outcome::Skipped,
            allowed: true,
            code: None,
            patched: false,
            warnings: &[],
        },
        Case {
            name: "an object that does not fit its kind",
            decision: Decision::Unreadable("spec.containers: invalid type".into()),
            outcome: Outcome::Error,
            allowed: true,
            code: None,
            patched: false,
            warnings: &[
                "probegate could not read this Pod; it was admitted unchanged: spec.containers: invalid type",
            ],
        },
        Case {
            name: "nothing to add",
            decision: Decision::Mutate(Mutation::default()),
            outcome: Outcome::Unchanged,
            allowed: true,
            code: None,
            patched: false,
            warnings: &[],
        },
        Case {
            name: "warned, nothing added",
            decision: Decision::Mutate(Mutation {
                warnings: warned(),
                ..Mutation::default()
            }),
            outcome: Outcome::Unchanged,
            allowed: true,
            code: None,
            patched: false,
            warnings: &["careful"],
        },
        Case {
            name: "patched with a warning",
            decision: Decision::Mutate(Mutation {
                patch: patch(),
                warnings: warned(),
                plan: Plan {
                    gates: vec!["example.com/a".into()],
                    ..Plan::default()
                },
                ..Mutation::default()
            }),
            outcome: Outcome::Mutated,
            allowed: true,
            code: None,
            patched: true,
            warnings: &["careful"],
        },
        Case {
            name: "denied: no patch, the warnings kept",
            decision: Decision::Mutate(Mutation {
                patch: patch(),
                warnings: warned(),
                denial: Some("metrics are off".into()),
                ..Mutation::default()
            }),
            outcome: Outcome::Denied,
            allowed: false,
            code: Some(403),
            patched: false,
            warnings: &["careful"],
        },
    ];
    let admission = Admission::new(
        Directory::standalone(None).unwrap(),
        BTreeMap::new(),
        Arc::new(Metrics::default()),
    );
    let request = format!(r#"{{"kind": {POD_KIND}, {REST}, "object": {POD}}}"#);
    for case in cases {
        let name = case.name;
        let sent = body(&request);
        let incoming = parse(&sent).unwrap();
        let (response, outcome) = admission.respond(&incoming, case.decision);
        assert_eq!(outcome, case.outcome, "{name}");
        assert_eq!(response.uid, "u1", "{name}");
        assert_eq!(response.allowed, case.allowed, "{name}");
        if let Some(code) = case.code {
            assert_eq!(response.result.code, code, "{name}");
            assert_eq!(response.result.reason, "Forbidden", "{name}");
            assert_eq!(response.result.message, "metrics are off", "{name}");
        }
        assert_eq!(response.patch.is_some(), case.patched, "{name}");
        let warnings = response.warnings.clone().unwrap_or_default();
        assert_eq!(warnings, case.warnings, "{name}");
        let wire: serde_json::Value =
            serde_json::from_slice(&to_wire(response.into_review()).unwrap()).unwrap();
        let patch_type = wire["response"]["patchType"].as_str();
        assert_eq!(patch_type, case.patched.then_some("JSONPatch"), "{name}");
    }
}

#[test]
fn the_answer_is_written_as_the_api_defines_it() {
    use base64::Engine as _;
    let sent = body(&format!(
        r#"{{"kind": {POD_KIND}, {REST}, "object": {POD}}}"#
    ));
    let incoming = parse(&sent).unwrap();
    let patch = r#"[{"op":"add","path":"/metadata/labels","value":{}}]"#;
    let mut patched = incoming.response.clone();
    patched.patch = Some(patch.as_bytes().to_vec());
    let mut unchanged = incoming.response.clone();
    unchanged.warnings = Some(vec!["careful".into()]);
    struct Case {
        name: &'static str,
        response: AdmissionResponse,
        expected: serde_json::Value,
    }
    let cases = [
        Case {
            name: "the patch as base64",
            response: patched,
            expected: serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {
                    "uid": "u1", "allowed": true, "status": {},
                    "patch": base64::engine::general_purpose::STANDARD.encode(patch),
                }
            }),
        },
        Case {
            name: "no patch key without a patch",
            response: unchanged,
            expected: serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u1", "allowed": true, "status": {}, "warnings": ["careful"]}
            }),
        },
    ];
    for case in cases {
        let wire = to_wire(case.response.into_review()).unwrap();
        let written: serde_json::Value = serde_json::from_slice(&wire).unwrap();
        assert_eq!(written, case.expected, "{}", case.name);
    }
}
