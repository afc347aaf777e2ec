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
mod probegate;
mod report;
mod settings;
#[path = "../support/mod.rs"]
mod support;
mod traffic;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apiserver_restarts::{Toggle, outage};
use bodies::Bodies;
use cert_rotation::Rotation;
use client::Client;
use cluster::{ApiServer, Forwarder};
use held_connections::Holders;
use monitors::{poll_readyz, sample_rss};
use probegate::Probegate;
use report::{Shared, tally};
use settings::{
    GRACE_SECONDS, NAMESPACE, Options, SHUTDOWN_DELAY_SECONDS, TOGGLE_KEY, TOGGLE_NAMESPACE,
    TOGGLE_VALUES, options,
};
use traffic::run_load;

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
    let mut probegate = Probegate::start(&kubeconfig, &secret);
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
    let rss_before_term = support::proc_status(pid, "VmRSS");
    let term_at = Instant::now();
    terminated.store(true, Ordering::Release);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || {
        let status = probegate.child.wait();
        (status, probegate)
    })
    .await
    .unwrap();
    let exit_after = term_at.elapsed();
    let (status, _probegate) = status;
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

    // The summary.
    let mut failed = Vec::new();
    let counts = tally(&shared).counts.clone();
    let examples = tally(&shared).examples.clone();
    println!("\n== soak summary");
    println!(
        "ran {:.1} s (SIGTERM at {:.1} s); target {} reviews/s, {} held connections per listener",
        total.as_secs_f64(),
        term_at.duration_since(started).as_secs_f64(),
        options.rate,
        options.held
    );
    println!(
        "reviews sent {} ({:.0}/s until SIGTERM); answered as expected: {}",
        load.sent,
        load.sent_before_term as f64 / term_at.duration_since(started).as_secs_f64(),
        load.ok
    );
    for (what, n) in &counts {
        println!("  {what}: {n}");
    }
    println!(
        "latency from when due (expected answers): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        load.latency[0], load.latency[1], load.latency[2], load.latency[3]
    );
    println!(
        "slowest answer (ms) in each 10 s from the start: {}",
        load.slowest_by_window.join(", ")
    );
    let bad: u64 = counts
        .iter()
        .filter(|(k, _)| k.starts_with("FAILED"))
        .map(|(_, v)| v)
        .sum();
    if bad > 0 {
        failed.push(format!("{bad} reviews not answered as documented"));
        for (what, list) in &examples {
            for e in list {
                println!("  example {what}: {e}");
            }
        }
    }
    for o in &outages {
        println!(
            "outage: API server stopped at {:.1} s, back at {:.1} s (restart took {:.1} s), {TOGGLE_KEY}={:?} set while probegate could not reach it, forwarder reopened at {:.1} s; setting applied in answers at {}",
            o.down_at,
            o.up_at,
            o.restart_took,
            o.value,
            o.reopened_at,
            o.applied_at.map_or("never".into(), |t| format!(
                "{t:.1} s ({:.1} s after reopening)",
                t - o.reopened_at
            )),
        );
        if o.applied_at.is_none() {
            failed.push(format!("the setting {:?} was never applied", o.value));
        }
        if let Some(error) = &o.error {
            failed.push(error.clone());
        }
    }
    println!(
        "toggle namespace: {} reviews, {} with the old setting after the new one was seen, {} failed",
        toggle_report.reviews, toggle_report.stale_after_resync, toggle_report.failed
    );
    if toggle_report.stale_after_resync > 0 {
        failed.push(format!(
            "{} answers from stale settings after resync",
            toggle_report.stale_after_resync
        ));
    }
    if toggle_report.failed > 0 {
        failed.push(format!(
            "{} toggle-namespace reviews failed",
            toggle_report.failed
        ));
    }
    println!("/readyz: {}", readyz.summary());
    if !readyz.ready_at_end {
        failed.push("/readyz was not 200 after the caches resynced".into());
    }
    println!(
        "certificates: {} valid pairs rotated in, {} served to new connections (the slowest {:.2} s after the swap); {} broken pairs, {} refused with the previous pair kept",
        rotations.valid,
        rotations.served,
        rotations.slowest_served.as_secs_f64(),
        rotations.broken,
        rotations.refused
    );
    for e in &rotations.errors {
        println!("  {e}");
    }
    if rotations.served != rotations.valid || rotations.refused != rotations.broken {
        failed.push("a certificate rotation was not followed".into());
    }
    for h in &held_reports {
        println!(
            "held on {}: {} connections open at the peak, {} opened in all, {} closed by probegate (median life {:.1} s), {} connects that failed",
            h.listener,
            h.peak_open,
            h.opened,
            h.closed_by_server,
            h.median_life,
            h.connect_failures
        );
    }
    println!(
        "RSS: peak {:.1} MiB (sampled every 250 ms; VmHWM), {:.1} MiB at SIGTERM",
        peak_rss as f64 / 1024.0,
        rss_before_term as f64 / 1024.0
    );
    if peak_rss > options.max_rss_mib * 1024 {
        failed.push(format!("peak RSS above {} MiB", options.max_rss_mib));
    }
    let limit = Duration::from_secs(SHUTDOWN_DELAY_SECONDS + GRACE_SECONDS + 1);
    println!(
        "SIGTERM under load: exit {:?} after {:.2} s (delay {SHUTDOWN_DELAY_SECONDS} s + grace {GRACE_SECONDS} s); {} reviews answered after SIGTERM, {} new connections refused after it",
        status.as_ref().ok().and_then(|s| s.code()),
        exit_after.as_secs_f64(),
        load.ok_after_term,
        load.refused_after_term
    );
    if !status.is_ok_and(|s| s.success()) || exit_after > limit {
        failed.push("no clean exit within the grace period".into());
    }
    if failed.is_empty() {
        println!("PASS");
        true
    } else {
        for f in &failed {
            println!("FAIL: {f}");
        }
        false
    }
}
