//! The probegate under test: `probegate serve` started in cluster mode, ready before the run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::http_get_blocking;
use crate::settings::{GRACE_SECONDS, SHUTDOWN_DELAY_SECONDS};
use crate::support;

pub struct Probegate {
    pub child: Child,
    pub webhook: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
}

impl Probegate {
    pub fn start(kubeconfig: &Path, secret: &Path) -> Probegate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probegate"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "warn,probegate::server=info,probegate::namespace_cache=info,probegate::tls=info",
            ])
            .args([
                "--shutdown-delay-seconds",
                &SHUTDOWN_DELAY_SECONDS.to_string(),
                "--shutdown-grace-seconds",
                &GRACE_SECONDS.to_string(),
            ])
            .arg("--tls-cert-file")
            .arg(secret.join("tls.crt"))
            .arg("--tls-key-file")
            .arg(secret.join("tls.key"))
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (addresses, _) = support::startup_log::read_addresses(
            child.stderr.take().unwrap(),
            Duration::from_secs(30),
            |line, _| eprintln!("probegate: {line}"),
        );
        let (webhook, health) = (addresses.webhook, addresses.health);
        let metrics = addresses.metrics.expect("metrics are on in the soak");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get_blocking(health, "/readyz").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "probegate never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Probegate {
            child,
            webhook,
            health,
            metrics,
        }
    }
}

impl Drop for Probegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
