//! `mutate` on a realistic 10 KB Deployment: the engine alone, and with decoding.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use probegate::engine::{self, Context};
use probegate::workload::Workload;

const DEPLOYMENT: &str = include_str!("fixtures/deployment.json");

fn decode(text: &str) -> Workload {
    let value: serde_json::Value = serde_json::from_str(text).expect("fixture is JSON");
    Workload::decode("apps", "v1", "Deployment", value)
        .expect("fixture fits Deployment")
        .expect("Deployment is handled")
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
        services: &[],
    };
    let workload = decode(DEPLOYMENT);
    let mutation = engine::mutate(&workload, &context);
    assert_eq!(
        mutation.probes_added,
        [3, 3, 3],
        "the fixture must exercise injection"
    );

    c.bench_function("mutate/deployment-10k", |b| {
        b.iter(|| engine::mutate(black_box(&workload), black_box(&context)))
    });
    c.bench_function("decode+mutate/deployment-10k", |b| {
        b.iter(|| engine::mutate(&decode(black_box(DEPLOYMENT)), &context))
    });
}

criterion_group!(mutate, benches);
criterion_main!(mutate);
