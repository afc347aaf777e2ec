//! The traffic: reviews at a steady rate over kept-alive connections, oversized bodies on new
//! ones, each answer checked as it comes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bodies::{Bodies, Expect, check};
use crate::client::Client;
use crate::report::{LoadReport, Shared, tally};

/// Kept-alive connections carrying the load, as the API server keeps for a webhook.
const LOAD_CONNECTIONS: usize = 25;
const OVERSIZED_PER_SECOND: u32 = 2;

/// Open loop at `rate`: the mix over kept-alive connections, oversized bodies on new ones.
#[allow(clippy::too_many_arguments)]
pub async fn run_load(
    client: Arc<Client>,
    bodies: Arc<Bodies>,
    references: Arc<Vec<Option<String>>>,
    rate: u32,
    shared: Shared,
    stop: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
    started: Instant,
) -> LoadReport {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, u64)>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let ok = Arc::new(AtomicU64::new(0));
    let ok_after_term = Arc::new(AtomicU64::new(0));
    let refused_after_term = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..LOAD_CONNECTIONS {
        let (client, bodies, references, shared, rx) = (
            client.clone(),
            bodies.clone(),
            references.clone(),
            shared.clone(),
            rx.clone(),
        );
        let (ok, ok_after_term, refused_after_term, terminated) = (
            ok.clone(),
            ok_after_term.clone(),
            refused_after_term.clone(),
            terminated.clone(),
        );
        let first = client.connect().await;
        workers.push(tokio::spawn(async move {
            let mut sender = first.ok();
            let mut latencies = Vec::new();
            loop {
                let next = { rx.lock().await.recv().await };
                let Some((due, n)) = next else { break };
                // A connection probegate closed (Connection: close while draining) is
                // replaced before sending; nothing was written to it.
                let usable = match &mut sender {
                    Some(s) => s.ready().await.is_ok(),
                    None => false,
                };
                if !usable {
                    sender = match client.connect().await {
                        Ok(s) => Some(s),
                        Err(e) => {
                            if terminated.load(Ordering::Acquire) {
                                refused_after_term.fetch_add(1, Ordering::Relaxed);
                            } else {
                                tally(&shared).fail("FAILED: could not connect", e.to_string());
                            }
                            None
                        }
                    };
                }
                let Some(s) = &mut sender else { continue };
                let index = bodies.pick(n);
                let (body, _) = &bodies.mix[index];
                let (bytes, uid) = body.instance(n);
                let answer = Client::send(s, bytes).await;
                let outcome = answer
                    .and_then(|a| check(body.expect, uid.as_deref(), &a, Some(&references[index])));
                match outcome {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if terminated.load(Ordering::Acquire) {
                            ok_after_term.fetch_add(1, Ordering::Relaxed);
                        }
                        latencies.push((due.duration_since(started), due.elapsed()));
                        tally(&shared).count(body.name);
                    }
                    Err(e) => {
                        sender = None;
                        let what = match body.expect {
                            Expect::BadRequest => "FAILED: malformed body not answered 400",
                            _ => "FAILED: valid review",
                        };
                        let at = started.elapsed().as_secs_f64();
                        tally(&shared).fail(what, format!("{at:.2} s {}: {e}", body.name));
                    }
                }
            }
            latencies
        }));
    }
    let oversized = {
        let (client, bodies, shared, stop, terminated) = (
            client.clone(),
            bodies.clone(),
            shared.clone(),
            stop.clone(),
            terminated.clone(),
        );
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut next = Instant::now();
            while !stop.load(Ordering::Acquire) && !terminated.load(Ordering::Acquire) {
                next += Duration::from_secs(1) / OVERSIZED_PER_SECOND;
                tokio::time::sleep_until(next.into()).await;
                sent += 1;
                match client.send_oversized(&bodies.oversized).await {
                    Ok(413) => tally(&shared).count("oversized (413)"),
                    Ok(status) => tally(&shared).fail(
                        "FAILED: oversized body not answered 413",
                        format!("answered {status}"),
                    ),
                    Err(_) if terminated.load(Ordering::Acquire) => {}
                    Err(e) => tally(&shared).fail("FAILED: oversized body not answered 413", e),
                }
            }
            sent
        })
    };
    // The schedule: the oversized sender's share comes off the kept-alive rate.
    let rate = rate.saturating_sub(OVERSIZED_PER_SECOND).max(1);
    let interval = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut sent_before_term = 0u64;
    while !stop.load(Ordering::Acquire) {
        let due = start + interval * (sent as u32);
        if let Some(early) = due.checked_sub(Duration::from_millis(2))
            && early > Instant::now()
        {
            tokio::time::sleep_until(early.into()).await;
        }
        while Instant::now() < due {
            tokio::task::yield_now().await;
        }
        if tx.send((due, sent)).is_err() {
            break;
        }
        sent += 1;
        if !terminated.load(Ordering::Acquire) {
            sent_before_term = sent;
        }
    }
    drop(tx);
    let mut timed = Vec::new();
    for w in workers {
        timed.extend(w.await.unwrap());
    }
    let oversized = oversized.await.unwrap();
    // The slowest answer in each 10 s of the run, to place slow stretches among the faults.
    let mut windows: BTreeMap<u64, Duration> = BTreeMap::new();
    for (at, latency) in &timed {
        let w = windows.entry(at.as_secs() / 10 * 10).or_default();
        *w = (*w).max(*latency);
    }
    let mut all: Vec<Duration> = timed.into_iter().map(|(_, l)| l).collect();
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    LoadReport {
        sent: sent + oversized,
        sent_before_term: sent_before_term + oversized,
        ok: ok.load(Ordering::Relaxed),
        ok_after_term: ok_after_term.load(Ordering::Relaxed),
        refused_after_term: refused_after_term.load(Ordering::Relaxed),
        latency: [
            at(0.5),
            at(0.99),
            at(0.999),
            all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        ],
        slowest_by_window: windows
            .into_iter()
            .map(|(w, d)| format!("{w}s {:.0}", d.as_secs_f64() * 1e3))
            .collect(),
    }
}
