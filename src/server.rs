//! The webhook over TLS, health and metrics, each on its own listener, and their shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::Admission;
use crate::health::{self, Health};
use crate::metrics::{HandshakeFailure, Metrics};
use crate::namespace_cache::{ClusterCache, Directory};
use crate::tls::{self, CertStore, ClientCaStore, TlsError};

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
        let tokio_listener = |listener: std::net::TcpListener| {
            listener
                .set_nonblocking(true)
                .map_err(ServerError::Listener)?;
            TcpListener::from_std(listener).map_err(ServerError::Listener)
        };
        let webhook_listener = tokio_listener(listeners.webhook)?;
        let health_listener = tokio_listener(listeners.health)?;
        let metrics_listener = listeners.metrics.map(tokio_listener).transpose()?;
        let acceptor = TlsAcceptor::from(certs.server_config(client_ca.clone())?);

        let health_address = health_listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let metrics_address = metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "off".to_owned(), |a| a.to_string());
        let (stop_side, side_stopped) = watch::channel(false);
        // Health and metrics answer at once: a short drain is plenty.
        let side_limits = Limits {
            grace: Duration::from_secs(2),
            ..limits.clone()
        };
        let mut side_tasks = Vec::new();
        side_tasks.push(tokio::spawn(serve_plain(
            health_listener,
            health::router(health.clone()),
            side_limits.clone(),
            side_stopped.clone(),
        )));
        if let Some(listener) = metrics_listener {
            let router = metrics_router(metrics.clone());
            side_tasks.push(tokio::spawn(serve_plain(
                listener,
                router,
                side_limits,
                side_stopped,
            )));
        }
        let mut reloads = vec![tokio::spawn(tls::watch(
            certs.clone(),
            metrics.clone(),
            limits.cert_poll,
        ))];
        if let Some(client_ca) = client_ca {
            reloads.push(tokio::spawn(tls::watch(
                client_ca,
                metrics.clone(),
                limits.cert_poll,
            )));
        }
        // Readiness waits on the caches: wake those waiting on it once they have synced.
        let cache_readiness = cluster.clone().map(|cache| {
            let health = health.clone();
            tokio::spawn(async move {
                cache.wait_synced().await;
                health.notify();
            })
        });

        let router = webhook_router(admission, &limits).layer(
            axum::middleware::from_fn_with_state(health.clone(), close_while_draining),
        );
        let webhook_address = webhook_listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        tracing::info!(
            webhook = %webhook_address,
            health = %health_address,
            metrics = %metrics_address,
            "listening"
        );
        health.set_tls_ready();

        // Unready at once; keep serving through the delay, then close and drain.
        let health_at_signal = health.clone();
        let delay = limits.shutdown_delay;
        let shutdown = async move {
            shutdown.await;
            health_at_signal.set_shutting_down();
            if !delay.is_zero() {
                tracing::info!(delay = ?delay, "shutting down: unready, still serving");
                tokio::time::sleep(delay).await;
            }
        };
        let health_on_shutdown = health.clone();
        let limits_grace = limits.grace;
        serve_tls(
            webhook_listener,
            acceptor,
            metrics,
            router,
            &limits,
            shutdown,
            move || {
                health_on_shutdown.set_shutting_down();
                tracing::info!(grace = ?limits_grace, "shutting down: draining requests in flight");
            },
        )
        .await;
        for reload in reloads {
            reload.abort();
        }
        if let Some(task) = cache_readiness {
            task.abort();
        }
        stop_side.send_replace(true);
        for task in side_tasks {
            // Each drains within its own grace; this bound only guards against a bug.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        Ok(())
    }
}

/// Accepts TLS connections and serves `router` over HTTP/1.1 until `shutdown` resolves;
/// then calls `on_shutdown`, stops accepting, and drains requests in flight within the
/// grace period. Failed handshakes are counted in `metrics`. The webhook and the
/// benchmark's null server both run on this.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    metrics: Arc<Metrics>,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    on_shutdown: impl FnOnce(),
) {
    serve(
        listener,
        Some((acceptor, metrics)),
        router,
        limits,
        shutdown,
        on_shutdown,
    )
    .await;
}

/// The accept loop behind every listener, with TLS or without: a connection cap, handshake
/// and header timeouts, and a bounded drain, so no client can hold a listener or shutdown.
async fn serve(
    listener: TcpListener,
    tls: Option<(TlsAcceptor, Arc<Metrics>)>,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    on_shutdown: impl FnOnce(),
) {
    let (drain, draining) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            // Finished connections are reaped here, so the set holds only live ones.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = accept(&listener, &connections) => accepted,
        };
        let Some((stream, permit)) = accepted else {
            continue;
        };
        let tls = tls.clone();
        let service = TowerToHyperService::new(router.clone());
        let draining = draining.clone();
        let limits = limits.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let Some((acceptor, metrics)) = tls else {
                return serve_connection(stream, service, &limits, draining).await;
            };
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(tls, service, &limits, draining).await,
                Ok(Err(error)) => {
                    metrics.tls.handshake_failure(HandshakeFailure::of(&error));
                    // Debug only: anyone who can reach the port can fill a log at info.
                    tracing::debug!(%error, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.tls.handshake_failure(HandshakeFailure::Timeout);
                    tracing::debug!("TLS handshake timed out");
                }
            }
        });
    }
    on_shutdown();
    drop(listener);
    drain.send_replace(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.grace, drained).await.is_err() {
        tracing::warn!("grace period over; closing connections still open");
        tasks.abort_all();
    }
}

async fn serve_connection<IO>(
    io: IO,
    service: TowerToHyperService<Router>,
    limits: &Limits,
    mut draining: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let first_head = Phase::Head(Instant::now());
    let phase = Arc::new(watch::Sender::new(first_head));
    let expired = expiry(
        phase.subscribe(),
        limits.header_timeout,
        limits.idle_timeout,
    );
    // Once draining, idle connections close and busy ones close after their answer. One
    // still waiting for its first request is the exception: its client connected before
    // the listener closed and may have sent the request already, so it gets until the
    // header timeout for it to arrive.
    let mut progress = phase.subscribe();
    let drain = async move {
        if draining.wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
        let _ = progress.wait_for(|now| *now != first_head).await;
    };
    // hyper's header timeout also runs while a kept-alive connection idles (hyper 1.x has
    // no idle timeout of its own), so both limits are kept here instead.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(
            TokioIo::new(Phased {
                inner: io,
                phase: phase.clone(),
            }),
            Phased {
                inner: service,
                phase,
            },
        );
    let mut connection = std::pin::pin!(connection);
    let mut expired = std::pin::pin!(expired);
    let ended = tokio::select! {
        result = connection.as_mut() => Some(result),
        reason = expired.as_mut() => {
            tracing::debug!(reason, "connection closed");
            return;
        }
        () = drain => None,
    };
    let result = match ended {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection => result,
                reason = expired => {
                    tracing::debug!(reason, "connection closed");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Where a connection is, for its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's head: since the connection was set up, or since the first
    /// byte after idling. Bounded by the header timeout.
    Head(Instant),
    /// A request is being handled; the request timeout bounds it.
    Busy,
    /// Kept alive between requests, nothing read yet. Bounded by the idle timeout.
    Idle(Instant),
}

/// Resolves when the connection has stayed too long in its phase, with the reason.
async fn expiry(
    mut phase: watch::Receiver<Phase>,
    header_timeout: Duration,
    idle_timeout: Duration,
) -> &'static str {
    loop {
        let deadline = match *phase.borrow_and_update() {
            Phase::Head(since) => Some((since + header_timeout, "request head timed out")),
            Phase::Idle(since) => Some((since + idle_timeout, "idle timeout")),
            Phase::Busy => None,
        };
        let changed = match deadline {
            Some((at, reason)) => tokio::select! {
                () = tokio::time::sleep_until(at) => return reason,
                changed = phase.changed() => changed,
            },
            None => phase.changed().await,
        };
        // The senders live as long as the connection does; once it is gone, nothing expires.
        if changed.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The connection's stream or service, reporting the phase: bytes read after idling
/// start a head; a request handed to the service is busy until its response is ready.
struct Phased<T> {
    inner: T,
    phase: Arc<watch::Sender<Phase>>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Phased<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.phase.send_if_modified(|phase| match phase {
                Phase::Idle(_) => {
                    *phase = Phase::Head(Instant::now());
                    true
                }
                Phase::Head(_) | Phase::Busy => false,
            });
        }
        result
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Phased<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> hyper::service::Service<R> for Phased<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn call(&self, request: R) -> Self::Future {
        self.phase.send_replace(Phase::Busy);
        let response = self.inner.call(request);
        let phase = self.phase.clone();
        Box::pin(async move {
            let response = response.await;
            phase.send_replace(Phase::Idle(Instant::now()));
            response
        })
    }
}

/// Waits for a connection slot, then a connection. `None` on an accept error, which is
/// logged; the caller goes on accepting.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let permit = connections.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, permit))
        }
        Err(error) => {
            // Out of file descriptors and the like: pause instead of spinning.
            tracing::warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

async fn serve_plain(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        // A send before this task first runs is not lost: the value stays set.
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    serve(listener, None, router, &limits, stopped, || {}).await;
}

/// Once shutdown is asked for, answers close their connection, so kept-alive clients
/// reconnect, through the Service, to another replica before this one stops listening.
async fn close_while_draining(
    State(health): State<Arc<Health>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if health.shutting_down() {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The webhook routes behind the guards every request goes through.
pub fn webhook_router(admission: Arc<Admission>, limits: &Limits) -> Router {
    guarded(
        Router::new()
            .route("/mutate", post(mutate))
            .with_state(admission),
        limits,
    )
}

/// Body limit (413), request timeout (408), a bound on requests in flight, and a panic in
/// a handler becoming a 500 for that request instead of a dead process.
pub fn guarded(router: Router, limits: &Limits) -> Router {
    let total_kib = (limits.body_budget_bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
    let budget = BodyBudget {
        kib: Arc::new(Semaphore::new(total_kib)),
        total_kib: u32::try_from(total_kib).unwrap_or(u32::MAX),
        max_body_bytes: limits.max_body_bytes,
    };
    router
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(budget, within_budget))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(GlobalConcurrencyLimitLayer::new(limits.max_in_flight))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("handler panicked; answered 500");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }))
}

#[derive(Clone)]
struct BodyBudget {
    /// Permits in KiB, so a 4 MiB body fits a u32 count.
    kib: Arc<Semaphore>,
    total_kib: u32,
    max_body_bytes: usize,
}

/// Holds budget for the request's declared size (the limit, when undeclared) while it runs.
async fn within_budget(
    State(budget): State<BodyBudget>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(budget.max_body_bytes)
        .min(budget.max_body_bytes);
    // Never ask for more than there is: that would wait forever.
    let kib = u32::try_from(declared / 1024 + 1)
        .unwrap_or(u32::MAX)
        .min(budget.total_kib);
    // The semaphore is never closed, so acquiring only waits.
    let _permit = budget.kib.acquire_many(kib).await;
    next.run(request).await
}

async fn mutate(State(admission): State<Arc<Admission>>, body: Bytes) -> Response {
    match admission.review(&body).await {
        Ok(review) => match crate::admission::to_wire(review) {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        },
        Err(error) => error_response(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                match metrics.encode() {
                    Ok(text) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    )
}

/// Where the directory is a cluster cache, its handle for metrics.
fn cluster_of(directory: &Directory) -> Option<Arc<ClusterCache>> {
    match directory {
        Directory::Cluster(cache) => Some(cache.clone()),
        Directory::Standalone(_) => None,
    }
}
