//! The webhook over TLS, health and metrics, each on its own listener, and their shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::namespace_cache::{ClusterCache, Directory};
use crate::tls::{self, CertStore, ClientCaStore, TlsError};

mod connection;
mod routes;
pub use connection::serve_tls;
use connection::{close_while_draining, serve_plain};
use routes::metrics_router;
pub use routes::{guarded, webhook_router};

/// Bounds that keep one bad client or a burst from hurting everyone else.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The API server caps request bodies at 3 MiB, and only CREATE is registered, so a
    /// review carries one object. Above this, 413.
    pub max_body_bytes: usize,
    /// Bytes of request bodies being handled at once; beyond it, requests wait (within the
    /// request timeout), so a burst of large reviews cannot exhaust memory.
    pub body_budget_bytes: usize,
    /// Shorter than the API server's default webhook timeout (10 s; 30 s at most).
    pub request_timeout: Duration,
    /// How long a request's head may take to arrive, from the connection's start or from
    /// its first byte after idling: the guard against slow clients.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests. Longer than the
    /// API server's own idle timeout (Go's 90 s), so the client, not us, closes idle
    /// connections: a review written into a connection we are closing would be lost.
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_in_flight: usize,
    pub max_connections: usize,
    /// How long requests in flight may take to finish at shutdown.
    pub grace: Duration,
    /// How long to keep serving after shutdown is asked for, unready, before the listener
    /// closes: endpoints and the API server take a moment to stop sending here.
    pub shutdown_delay: Duration,
    /// Backstop poll of the certificate files, for filesystems without events.
    pub cert_poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            body_budget_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(8),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(5),
            max_in_flight: 512,
            max_connections: 1024,
            grace: Duration::from_secs(15),
            shutdown_delay: Duration::ZERO,
            cert_poll: Duration::from_secs(10),
        }
    }
}

/// Listeners bound by the caller, so tests can bind port 0 and keep the address.
#[derive(Debug)]
pub struct Listeners {
    pub webhook: std::net::TcpListener,
    pub health: std::net::TcpListener,
    /// `None` when metrics are off.
    pub metrics: Option<std::net::TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

pub struct Server {
    pub listeners: Listeners,
    pub certs: Arc<CertStore>,
    /// When set, the webhook listener takes only clients whose certificate chains to it.
    pub client_ca: Option<Arc<ClientCaStore>>,
    pub admission: Arc<Admission>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub limits: Limits,
}

impl Server {
    /// Serves until `shutdown` resolves, then drains requests in flight within the grace
    /// period and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            listeners,
            certs,
            client_ca,
            admission,
            metrics,
            health,
            limits,
        } = self;
        let cluster = cluster_of(admission.directory());
        let webhook_listener = tokio_listener(listeners.webhook)?;
        let health_listener = tokio_listener(listeners.health)?;
        let metrics_listener = listeners.metrics.map(tokio_listener).transpose()?;
        let acceptor = TlsAcceptor::from(certs.server_config(client_ca.clone())?);
        tracing::info!(
            webhook = %address(Some(&webhook_listener)),
            health = %address(Some(&health_listener)),
            metrics = %address(metrics_listener.as_ref()),
            "listening"
        );

        let (stop_side, side_stopped) = watch::channel(false);
        let side_tasks = side_servers(
            health_listener,
            metrics_listener,
            &health,
            &metrics,
            &limits,
            side_stopped,
        );
        let mut background =
            background_tasks(&certs, client_ca, &metrics, cluster, &health, &limits);
        let catalogue = admission.catalogue();
        if catalogue.path().is_some() {
            background.push(tokio::spawn(tls::watch(
                catalogue.clone(),
                metrics.clone(),
                limits.cert_poll,
            )));
        }
        let router = webhook_router(admission, &limits).layer(
            axum::middleware::from_fn_with_state(health.clone(), close_while_draining),
        );
        health.set_tls_ready();

        let shutdown = unready_then_wait(shutdown, health.clone(), limits.shutdown_delay);
        let (health_on_shutdown, grace) = (health.clone(), limits.grace);
        let on_shutdown = move || {
            health_on_shutdown.set_shutting_down();
            tracing::info!(grace = ?grace, "shutting down: draining requests in flight");
        };
        let served = serve_tls(
            webhook_listener,
            acceptor,
            metrics,
            router,
            &limits,
            shutdown,
            on_shutdown,
        );
        served.await;
        background.iter().for_each(tokio::task::JoinHandle::abort);
        stop_side.send_replace(true);
        for task in side_tasks {
            // Each drains within its own grace; this bound only guards against a bug.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        Ok(())
    }
}

fn tokio_listener(listener: std::net::TcpListener) -> Result<TcpListener, ServerError> {
    listener
        .set_nonblocking(true)
        .map_err(ServerError::Listener)?;
    TcpListener::from_std(listener).map_err(ServerError::Listener)
}

/// A listener's address for the log; `off` for one that is not there.
fn address(listener: Option<&TcpListener>) -> String {
    match listener.map(TcpListener::local_addr) {
        None => "off".to_owned(),
        Some(Ok(address)) => address.to_string(),
        Some(Err(_)) => "?".to_owned(),
    }
}

/// Certificate reloads, and the wake-up of readiness waiters once the caches have synced.
fn background_tasks(
    certs: &Arc<CertStore>,
    client_ca: Option<Arc<ClientCaStore>>,
    metrics: &Arc<Metrics>,
    cluster: Option<Arc<ClusterCache>>,
    health: &Arc<Health>,
    limits: &Limits,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(tls::watch(
        certs.clone(),
        metrics.clone(),
        limits.cert_poll,
    ))];
    if let Some(client_ca) = client_ca {
        tasks.push(tokio::spawn(tls::watch(
            client_ca,
            metrics.clone(),
            limits.cert_poll,
        )));
    }
    if let Some(cache) = cluster {
        let health = health.clone();
        tasks.push(tokio::spawn(async move {
            cache.wait_synced().await;
            health.notify();
        }));
    }
    tasks
}

/// Health, and metrics when they are on, each on its own plain-HTTP listener until
/// `stopped` says so.
fn side_servers(
    health_listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    limits: &Limits,
    stopped: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    // Health and metrics answer at once: a short drain is plenty.
    let side_limits = Limits {
        grace: Duration::from_secs(2),
        ..limits.clone()
    };
    let mut tasks = vec![tokio::spawn(serve_plain(
        health_listener,
        health::router(health.clone()),
        side_limits.clone(),
        stopped.clone(),
    ))];
    if let Some(listener) = metrics_listener {
        let router = metrics_router(metrics.clone());
        tasks.push(tokio::spawn(serve_plain(
            listener,
            router,
            side_limits,
            stopped,
        )));
    }
    tasks
}

/// Resolves `delay` after `shutdown` does, with the pod unready from the signal on: it
/// keeps serving while endpoints still send it traffic, then closes and drains.
async fn unready_then_wait(
    shutdown: impl Future<Output = ()>,
    health: Arc<Health>,
    delay: Duration,
) {
    shutdown.await;
    health.set_shutting_down();
    if !delay.is_zero() {
        tracing::info!(delay = ?delay, "shutting down: unready, still serving");
        tokio::time::sleep(delay).await;
    }
}

/// Where the directory is a cluster cache, its handle for metrics.
fn cluster_of(directory: &Directory) -> Option<Arc<ClusterCache>> {
    match directory {
        Directory::Cluster(cache) => Some(cache.clone()),
        Directory::Standalone(_) => None,
    }
}
