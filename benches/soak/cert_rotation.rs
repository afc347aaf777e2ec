//! Certificate rotation: the serving pair swapped every 5 s in a Secret-style folder,
//! alternately valid and broken, each swap checked on new connections and in the metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::{Client, http_get};
use crate::report::RotationReport;

/// A Secret-style folder: tls.crt -> ..data/tls.crt, ..data -> ..N, swapped atomically.
pub struct Rotation {
    dir: PathBuf,
    ca: probegate::certs::Ca,
    pub ca_pem: String,
    generation: u32,
    serving: Vec<u8>,
}

fn names() -> probegate::certs::Names {
    probegate::certs::Names {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    }
}

impl Rotation {
    pub fn new(dir: &Path) -> Rotation {
        std::fs::create_dir_all(dir).unwrap();
        let first = probegate::certs::generate(&names(), 1).unwrap();
        let mut rotation = Rotation {
            dir: dir.to_owned(),
            ca: probegate::certs::Ca {
                cert_pem: first.ca_pem.clone(),
                key_pem: first.ca_key_pem.clone(),
            },
            ca_pem: first.ca_pem.clone(),
            generation: 0,
            serving: leaf_der(&first.cert_pem),
        };
        rotation.swap(&first);
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file)).unwrap();
        }
        rotation
    }

    fn swap(&mut self, bundle: &probegate::certs::Bundle) {
        self.generation += 1;
        let data = self.dir.join(format!("..{}", self.generation));
        bundle.write(&data).unwrap();
        let link = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&data, &link).unwrap();
        std::fs::rename(&link, self.dir.join("..data")).unwrap();
    }

    /// Every 5 s a new pair, alternately valid and broken (a key that is not the
    /// certificate's); each checked before the next. Stops at SIGTERM (`stop`).
    pub async fn run(
        mut self,
        client: Arc<Client>,
        metrics: SocketAddr,
        stop: Arc<AtomicBool>,
        started: Instant,
    ) -> RotationReport {
        let mut report = RotationReport::default();
        let mut next = started + Duration::from_secs(5);
        while !stop.load(Ordering::Acquire) {
            tokio::time::sleep_until(next.into()).await;
            if stop.load(Ordering::Acquire) {
                break;
            }
            next += Duration::from_secs(5);
            let pair = probegate::certs::sign(&self.ca, &names(), 1).unwrap();
            let at = started.elapsed().as_secs_f64();
            if self.generation % 2 == 1 {
                // Broken: this pair's certificate with another pair's key.
                let other = probegate::certs::sign(&self.ca, &names(), 1).unwrap();
                let before = refusals(metrics).await;
                self.swap(&probegate::certs::Bundle {
                    key_pem: other.key_pem,
                    ..pair
                });
                report.broken += 1;
                let deadline = Instant::now() + Duration::from_millis(4500);
                let mut refused = false;
                while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                    if refusals(metrics)
                        .await
                        .zip(before)
                        .is_some_and(|(n, b)| n > b)
                    {
                        refused = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let still = client.served_leaf().await;
                if refused && still.as_deref() == Some(&self.serving[..]) {
                    report.refused += 1;
                } else if !stop.load(Ordering::Acquire) {
                    report.errors.push(format!(
                        "broken pair at {at:.1} s: refusal counted {refused}, previous leaf still served {}",
                        still.as_deref() == Some(&self.serving[..])
                    ));
                }
            } else {
                let leaf = leaf_der(&pair.cert_pem);
                let swapped = Instant::now();
                self.swap(&pair);
                report.valid += 1;
                // Until the next swap.
                let deadline = next - Duration::from_millis(100);
                let mut served = false;
                while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                    let attempt = tokio::time::timeout_at(deadline.into(), client.served_leaf());
                    if attempt.await.ok().flatten().as_deref() == Some(&leaf[..]) {
                        served = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if served {
                    report.served += 1;
                    report.slowest_served = report.slowest_served.max(swapped.elapsed());
                    self.serving = leaf;
                } else if stop.load(Ordering::Acquire) {
                    // Cut short by the end of the run: not counted either way.
                    report.valid -= 1;
                } else {
                    report.errors.push(format!(
                        "valid pair at {at:.1} s not served to new connections before the next swap"
                    ));
                }
            }
        }
        report
    }
}

async fn refusals(metrics: SocketAddr) -> Option<u64> {
    let (_, text) = http_get(metrics, "/metrics").await?;
    let line = r#"probegate_certificate_reloads_total{certificate="serving",result="failure"} "#;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
    )
}

fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}
