//! Property tests of the engine and the admission layer on generated workloads.
//!
//! The generator and the invariants live in `tests/support/cases.rs`, shared with the
//! fuzz targets in `fuzz/`. 256 cases per property by default, a few seconds in all;
//! `PROPTEST_CASES=100000 cargo test --release --test properties` runs longer. A failing
//! case is shrunk and its seed saved in `tests/properties.proptest-regressions` (keep it in
//! git: proptest runs saved cases first).

#[path = "support/cases.rs"]
mod cases;

use std::collections::BTreeMap;

use arbitrary::Unstructured;
use proptest::prelude::*;

/// Random bytes drive the structure-aware generator; proptest shrinks the bytes.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..2048)
}

proptest! {
    #[test]
    fn every_patch_applies_decodes_keeps_existing_probes_and_is_idempotent(data in bytes()) {
        if let Ok(case) = cases::case(&mut Unstructured::new(&data)) {
            cases::check_engine(&case);
        }
    }

    #[test]
    fn every_review_gets_its_own_answer_or_a_400(data in bytes()) {
        let mut u = Unstructured::new(&data);
        if let Ok(case) = cases::case(&mut u)
            && let Ok(body) = cases::review_body(&mut u, &case)
        {
            let admission = cases::admission(&case.namespace);
            cases::check_review(&admission, &case.namespace, &body);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_admission_layer(data in bytes()) {
        let none = BTreeMap::new();
        cases::check_review(&cases::admission(&none), &none, &data);
    }

    #[test]
    fn arbitrary_json_never_panics_the_admission_layer(value in json_value()) {
        let none = BTreeMap::new();
        let body = serde_json::to_vec(&value).unwrap();
        cases::check_review(&cases::admission(&none), &none, &body);
    }
}

/// Any JSON, biased toward the shape of a review so it gets past the envelope.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(Into::into),
        any::<i64>().prop_map(Into::into),
        prop::sample::select(vec![
            "admission.k8s.io/v1",
            "AdmissionReview",
            "CREATE",
            "Pod",
            "v1",
            "apps",
            "",
            "uid-1",
        ])
        .prop_map(Into::into),
        ".*".prop_map(serde_json::Value::String),
    ];
    let any_json = leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Into::into),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "apiVersion",
                    "kind",
                    "request",
                    "uid",
                    "operation",
                    "object",
                    "namespace",
                    "group",
                    "version",
                    "metadata",
                    "spec",
                    "containers",
                    "name",
                ])
                .prop_map(str::to_owned),
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    (any_json, prop::sample::select(vec!["Pod", "Deployment", "Service", "Job"])).prop_map(|(request, kind)| {
        let mut request = request;
        if let Some(map) = request.as_object_mut() {
            map.entry("kind").or_insert(serde_json::json!({"group": "", "version": "v1", "kind": kind}));
        }
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    })
}
