//! `mutate` on a realistic 10 KB Deployment: the engine alone, and with decoding.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use probegate::engine::Object;
use probegate::engine::{self, Context};

const DEPLOYMENT: &str = include_str!("fixtures/deployment.json");

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn decode(value: &serde_json::Value) -> Object<'_> {
    Object::decode("apps", "v1", "Deployment", value)
        .expect("fixture fits Deployment")
        .expect("Deployment is handled")
}

fn review_body(object: &str) -> Vec<u8> {
    let object: serde_json::Value = serde_json::from_str(object).expect("fixture is JSON");
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "9f0e1d2c-3b4a-5968-7766-554433221100",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "shop", "operation": "CREATE", "userInfo": {"username": "admin"},
            "object": object, "oldObject": null, "dryRun": false
        }
    }))
    .expect("review")
}

fn benches(c: &mut Criterion) {
    let namespace: BTreeMap<String, String> = [(
        "probegate.io/metrics-coupling".to_string(),
        "warn".to_string(),
    )]
    .into();
    let layers = [&namespace];
    let context = Context {
        layers: &layers,
        ..Context::default()
    };
    let document = parse(DEPLOYMENT);
    let workload = decode(&document);
    let mutation = engine::mutate(&workload, &context);
    assert_eq!(
        mutation.probes_added(),
        [3, 3, 3],
        "the fixture must exercise injection"
    );

    c.bench_function("mutate/deployment-10k", |b| {
        b.iter(|| engine::mutate(black_box(&workload), black_box(&context)))
    });
    c.bench_function("decode+mutate/deployment-10k", |b| {
        b.iter(|| {
            let document = parse(black_box(DEPLOYMENT));
            engine::mutate(&decode(&document), &context)
        })
    });

    // The whole review path, bytes in and bytes out, without the network, and its parts.
    let review = review_body(DEPLOYMENT);
    c.bench_function("parse/skip-whole-review", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&review)).expect("JSON")
        })
    });
    c.bench_function("parse/typed-review", |b| {
        b.iter(|| {
            serde_json::from_slice::<
                kube::core::admission::AdmissionReview<k8s_openapi::api::apps::v1::Deployment>,
            >(black_box(&review))
            .expect("review")
        })
    });
    let admission = probegate::admission::Admission::new(
        probegate::namespace_cache::Directory::standalone(None).expect("standalone"),
        BTreeMap::new(),
        std::sync::Arc::new(probegate::metrics::Metrics::default()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function("review/deployment-10k", |b| {
        b.iter(|| {
            let answer = runtime
                .block_on(admission.review(black_box(&review)))
                .expect("answered");
            probegate::admission::to_wire(answer).expect("serialized")
        })
    });
}

criterion_group!(mutate, benches);
criterion_main!(mutate);
