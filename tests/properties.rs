//! Property tests of the engine and the admission layer on generated workloads.
//!
//! The generator and the invariants live in `tests/support/cases.rs`, shared with the
//! fuzz targets in `fuzz/`. 256 cases per property by default, a few seconds in all;
//! `PROPTEST_CASES=100000 cargo test --release --test properties` runs longer. A failing
//! case is shrunk and its seed saved in `tests/properties.proptest-regressions` (keep it in
//! git: proptest runs saved cases first).

#[path = "support/cases.rs"]
mod cases;
#[path = "support/files.rs"]
mod files;

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

/// Every input a fuzz target once failed on (`fuzz/regressions/TARGET/`), through the same
/// checks, so what was fixed stays fixed without a nightly toolchain.
#[test]
fn inputs_the_fuzzers_found_stay_fixed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let none = BTreeMap::new();
    let mut replayed = 0;
    for target in ["review", "engine", "yaml"] {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            match target {
                "review" => cases::check_review(&cases::admission(&none), &none, &data),
                "engine" => cases::check_fuzz_case(&data),
                _ => cases::check_yaml(&data),
            }
            replayed += 1;
        }
    }
    eprintln!("{replayed} inputs replayed");
}

/// Writes the fuzz targets' seed corpora from the golden fixtures, the examples, the
/// manifests and the benchmark fixture: `cargo test --test properties -- --ignored
/// seed_fuzz_corpora` (see docs/fuzzing.md). Ignored: it writes files, and checks nothing.
#[test]
#[ignore = "a tool: writes fuzz/corpus/"]
fn seed_fuzz_corpora() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("fuzz/corpus");
    let yaml_files: Vec<_> = ["tests/golden", "examples", "manifests", "charts"]
        .iter()
        .flat_map(|dir| {
            files::under(&root.join(dir), &[], &|path| {
                path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            })
        })
        .collect();
    std::fs::create_dir_all(corpus.join("yaml")).unwrap();
    std::fs::create_dir_all(corpus.join("review")).unwrap();
    let mut objects = Vec::new();
    for (i, file) in yaml_files.iter().enumerate() {
        std::fs::copy(file, corpus.join(format!("yaml/seed-{i:03}"))).unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        if let Ok(documents) = probegate::yaml::load_all(&text) {
            objects.extend(documents.into_iter().filter(|d| d["kind"].is_string()));
        }
    }
    let bench: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("benches/fixtures/deployment.json")).unwrap(),
    )
    .unwrap();
    objects.push(bench);
    let mut reviews: Vec<Vec<u8>> = objects
        .iter()
        .map(|object| {
            let (group, version) = probegate::engine::kinds::split_api_version(
                object["apiVersion"].as_str().unwrap_or_default(),
            );
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "b4e6c6f5-4a2f-4a0e-9d59-3a1c0e7c2f11",
                    "kind": {"group": group, "version": version, "kind": object["kind"]},
                    "resource": {"group": group, "version": version, "resource": "things"},
                    "namespace": object["metadata"]["namespace"].as_str().unwrap_or("default"),
                    "operation": "CREATE", "userInfo": {"username": "seed"},
                    "object": object, "oldObject": null, "dryRun": false
                }
            }))
            .unwrap()
        })
        .collect();
    reviews.push(std::fs::read(root.join("examples/reviews/pod.json")).unwrap());
    for (i, review) in reviews.iter().enumerate() {
        std::fs::write(corpus.join(format!("review/seed-{i:03}")), review).unwrap();
    }
    eprintln!("{} YAML files, {} reviews", yaml_files.len(), reviews.len());
}
