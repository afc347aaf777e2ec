//! The review path, bytes in and bytes out, run a given number of times on one fixture:
//! the workload that `benches/review-cost.sh` counts instructions on under callgrind, where
//! the count does not move with whatever else the machine is doing.
//!
//! `review_cost FIXTURE ITERATIONS [--read-past]`
//!
//! With `--read-past`, each iteration only reads past the review's body with serde_json
//! (`IgnoredAny`), building nothing: the least any webhook reading the body with
//! serde_json spends on it, for comparison.

use std::collections::BTreeMap;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do then.
    let (Some(fixture), Some(iterations)) = (args.get(1), args.get(2)) else {
        return;
    };
    if fixture.starts_with("--") {
        return;
    }
    let body = review(&std::fs::read(fixture).expect("fixture is readable"));
    let iterations: usize = iterations.parse().expect("ITERATIONS is a number");
    if args.get(3).is_some_and(|a| a == "--read-past") {
        for _ in 0..iterations {
            serde_json::from_slice::<serde::de::IgnoredAny>(std::hint::black_box(&body))
                .expect("the review is JSON");
        }
        return;
    }
    let admission = probegate::admission::Admission::new(
        probegate::namespace_cache::Directory::standalone(None).expect("standalone"),
        BTreeMap::new(),
        Arc::new(probegate::metrics::Metrics::default()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut bytes = 0;
    for _ in 0..iterations {
        let answer = runtime
            .block_on(admission.review(std::hint::black_box(&body)))
            .expect("answered");
        bytes += probegate::admission::to_wire(answer)
            .expect("serialized")
            .len();
    }
    eprintln!("{iterations} reviews, {bytes} bytes out");
}

/// The fixture if it is an AdmissionReview, else a CREATE review of the object in it.
fn review(fixture: &[u8]) -> Vec<u8> {
    let object: serde_json::Value = serde_json::from_slice(fixture).expect("fixture is JSON");
    if object["kind"] == "AdmissionReview" {
        return fixture.to_vec();
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "9f0e1d2c-3b4a-5968-7766-554433221100",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "namespace": "shop", "operation": "CREATE", "userInfo": {"username": "admin"},
            "object": object, "oldObject": null, "dryRun": false
        }
    }))
    .expect("review")
}
