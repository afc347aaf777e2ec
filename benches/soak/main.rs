//! Soak under faults: the real `probegate serve`, in cluster mode against the end-to-end
//! kube-apiserver (tests/e2e/), at a steady rate while everything around it goes wrong.
//!
//! `cargo bench --bench soak` runs the full soak (120 s, 500 reviews/s, 1,000 held
//! connections per listener, two API server restarts); `-- --seconds N --held N --rate N
//! --outages N` changes it, `-- --short` is the CI size (20 s, 200 held, one restart). An
//! outage waits for the one before to be resynced, so the run may last longer than asked. Nothing is timed against a target: it prints what it saw and exits 1 when
//! a pass criterion failed:
//! - every valid review answered 200 with its uid and the same patch as before the faults;
//! - every malformed body answered 400 with `{"error": ...}`, every oversized one 413;
//! - a namespace setting changed while the API server was out of reach is applied once
//!   probegate reconnects, and no answer after that carries the old setting;
//! - each rotated certificate is served to new connections, each broken pair refused;
//! - RSS under `--max-rss-mib`; after SIGTERM under load, exit 0 within delay + grace.
//!
//! Probegate reaches the API server through a forwarder in this process, so "out of
//! reach" can be held while the restarted API server already takes the change.

mod apiserver_restarts;
mod bodies;
mod cert_rotation;
mod client;
mod cluster;
mod held_connections;
mod monitors;
mod report;
mod settings;
mod shutdown;
#[path = "../support/mod.rs"]
mod support;
mod traffic;
mod under_test;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use apiserver_restarts::{Toggle, outage};
use bodies::Bodies;
use cert_rotation::Rotation;
use client::Client;
use cluster::{ApiServer, Forwarder};
use held_connections::Holders;
use monitors::{poll_readyz, sample_rss};
use report::{Figures, Shared};
use settings::{NAMESPACE, Options, TOGGLE_NAMESPACE, TOGGLE_VALUES, options};
use traffic::run_load;
use under_test::Probegate;

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let passed = runtime.block_on(soak(&options));
    std::process::exit(if passed { 0 } else { 1 });
}

async fn soak(options: &Options) -> bool {
    let work = tempfile::Builder::new()
        .prefix("probegate-soak-")
        .tempdir()
        .unwrap();
    let mut api = ApiServer::start(work.path());
    let forwarder = Forwarder::start(api.port).await;
    let kubeconfig = work.path().join("probegate-kubeconfig");
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&api.kubeconfig).unwrap().replace(
            &format!("https://127.0.0.1:{}", api.port),
            &format!("https://127.0.0.1:{}", forwarder.port),
        ),
    )
    .unwrap();
    api.kubectl(&["create", "namespace", NAMESPACE]);
    api.kubectl(&["create", "namespace", TOGGLE_NAMESPACE]);
    // Set to the second value now and changed to the first while probegate watches, so
    // both values are seen to give different answers before any fault.
    api.annotate_toggle(TOGGLE_VALUES[1]);

    let secret = work.path().join("serving");
    let rotation = Rotation::new(&secret);
    let probegate = Probegate::start(&kubeconfig, &secret);
    eprintln!(
        "soak: probegate pid {} webhook {} health {} metrics {}",
        probegate.child.id(),
        probegate.webhook,
        probegate.health,
        probegate.metrics
    );
    let client = Client::new(&rotation.ca_pem, probegate.webhook);
    let bodies = Bodies::new();
    let references = match bodies.references(&client).await {
        Ok(r) => r,
        Err(why) => {
            eprintln!("soak: before the faults: {why}");
            return false;
        }
    };
    let toggle = Toggle::new(&client);
    if let Err(why) = toggle.check_both_values(&api).await {
        eprintln!("soak: before the faults: {why}");
        return false;
    }

    let shared: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let terminated = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let pid = probegate.child.id();
    let rss = tokio::spawn(sample_rss(pid, stop.clone()));
    let readyz = tokio::spawn(poll_readyz(
        probegate.health,
        stop.clone(),
        terminated.clone(),
        started,
    ));
    let mut held = Vec::new();
    for (listener, addr) in [
        ("webhook", probegate.webhook),
        ("health", probegate.health),
        ("metrics", probegate.metrics),
    ] {
        held.push(Holders::start(
            listener,
            addr,
            options.held,
            listener == "webhook",
            client.clone(),
            stop.clone(),
            terminated.clone(),
        ));
    }
    let load = tokio::spawn(run_load(
        client.clone(),
        Arc::new(bodies),
        Arc::new(references),
        options.rate,
        shared.clone(),
        stop.clone(),
        terminated.clone(),
        started,
    ));
    let toggle_task = tokio::spawn(toggle.clone().run(stop.clone(), terminated.clone()));
    let rotations = tokio::spawn(rotation.run(
        client.clone(),
        probegate.metrics,
        terminated.clone(),
        started,
    ));

    // Two outages of the API server, then SIGTERM at the end.
    let mut outages = Vec::new();
    for i in 0..options.outages {
        // The first at a fifth of the run, the others spread over the rest; each waits
        // for the one before to be resynced.
        let at = options
            .duration
            .mul_f64(0.2 + 0.6 * i as f64 / options.outages as f64);
        tokio::time::sleep_until((started + at).into()).await;
        let value = TOGGLE_VALUES[(i + 1) % 2];
        outages.push(outage(&mut api, &forwarder, &toggle, value, started).await);
    }
    tokio::time::sleep_until((started + options.duration).into()).await;
    let shutdown = shutdown::sigterm(probegate, &terminated).await;
    stop.store(true, Ordering::Release);
    let load = load.await.unwrap();
    let peak_rss = rss.await.unwrap();
    let readyz = readyz.await.unwrap();
    let toggle_report = toggle_task.await.unwrap();
    let rotations = rotations.await.unwrap();
    let mut held_reports = Vec::new();
    for h in held {
        held_reports.push(h.finish().await);
    }
    let total = started.elapsed();
    drop(forwarder);
    api.stop();

    report::summary(
        options,
        Figures {
            started,
            total,
            shared,
            load,
            outages,
            toggle_report,
            readyz,
            rotations,
            held_reports,
            peak_rss,
            shutdown,
        },
    )
}
