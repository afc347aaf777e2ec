//! Liveness and readiness of probegate itself, served on a port of their own, apart from
//! metrics: turning metrics off never touches them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

use crate::namespace_cache::Directory;

#[derive(Debug)]
pub struct Health {
    directory: Directory,
    tls_ready: AtomicBool,
    shutting_down: AtomicBool,
    ready_tx: watch::Sender<bool>,
}

impl Health {
    pub fn new(directory: Directory) -> Arc<Health> {
        Arc::new(Health {
            directory,
            tls_ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            ready_tx: watch::channel(false).0,
        })
    }

    /// The TLS listener is bound with a valid certificate.
    pub fn set_tls_ready(&self) {
        self.tls_ready.store(true, Ordering::Release);
        self.notify();
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.notify();
    }

    /// SIGTERM has arrived: serving on, but no longer ready.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Re-evaluates readiness for those waiting on it (caches may have synced since).
    pub fn notify(&self) {
        self.ready_tx.send_replace(self.readiness().is_ok());
    }

    /// `Ok` when reviews can be answered; otherwise a one-line reason.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.shutting_down() {
            Err("shutting down")
        } else if !self.tls_ready.load(Ordering::Acquire) {
            Err("webhook TLS listener not ready")
        } else if !self.directory.synced() {
            Err("namespace and service caches not synced")
        } else {
            Ok(())
        }
    }

    /// Resolves once ready.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready_tx.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}
