//! One listener's connections: TLS handshakes, HTTP/1.1 with its header and idle
//! timeouts, connection limits, and the drain on shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::health::Health;
use crate::metrics::{HandshakeFailure, Metrics};

use super::Limits;

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
    let setting_up = Arc::new(SettingUp::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            // Finished connections are reaped here, so the set holds only live ones.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = accept(&listener) => accepted,
        };
        let Some(stream) = accepted else {
            continue;
        };
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Full: the oldest connection still setting up gives way, and its task ends
                // at once, returning its slot. With none, wait for any connection to end.
                setting_up.displace_oldest();
                tokio::select! {
                    _ = &mut shutdown => break,
                    permit = connections.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => continue,
                    },
                }
            }
        };
        let claim = setting_up.enter();
        let tls = tls.clone();
        let service = TowerToHyperService::new(router.clone());
        let draining = draining.clone();
        let limits = limits.clone();
        tasks.spawn(async move {
            let _permit = permit;
            connection(stream, tls, service, &limits, draining, claim).await;
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

/// One connection, from its TLS handshake (without TLS, its first byte) to its end.
async fn connection(
    stream: tokio::net::TcpStream,
    tls: Option<(TlsAcceptor, Arc<Metrics>)>,
    service: TowerToHyperService<Router>,
    limits: &Limits,
    draining: watch::Receiver<bool>,
    claim: Arc<Claim>,
) {
    let Some((acceptor, metrics)) = tls else {
        return serve_connection(stream, service, limits, draining, claim).await;
    };
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
    let handshake = tokio::select! {
        handshake = handshake => handshake,
        () = claim.displaced() => {
            tracing::debug!("connection made room for a new one during its handshake");
            return;
        }
    };
    match handshake {
        Ok(Ok(tls)) => serve_connection(tls, service, limits, draining, claim).await,
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
}

async fn serve_connection<IO>(
    io: IO,
    service: TowerToHyperService<Router>,
    limits: &Limits,
    draining: watch::Receiver<bool>,
    claim: Arc<Claim>,
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
    let drain = drained(draining, phase.subscribe(), first_head);
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
            Served {
                inner: service,
                phase,
                claim: claim.clone(),
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
        () = claim.displaced() => {
            tracing::debug!("connection made room for a new one before its first request");
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

/// Resolves when the connection should close for the drain. Once draining, idle
/// connections close and busy ones close after their answer. One still waiting for its
/// first request is the exception: its client connected before the listener closed and may
/// have sent the request already, so it gets until the header timeout for it to arrive.
async fn drained(
    mut draining: watch::Receiver<bool>,
    mut progress: watch::Receiver<Phase>,
    first_head: Phase,
) {
    if draining.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
    let _ = progress.wait_for(|now| *now != first_head).await;
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

/// The connection's service, reporting the phase: a request handed to it is busy until its
/// response is ready, and the first one settles the connection's claim to its slot.
struct Served<S> {
    inner: S,
    phase: Arc<watch::Sender<Phase>>,
    claim: Arc<Claim>,
}

impl<S, R> hyper::service::Service<R> for Served<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn call(&self, request: R) -> Self::Future {
        // If the connection was displaced a moment before, it closes without the answer.
        self.claim.serve();
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

/// The next connection; `None` on an accept error, which is logged; the caller goes on
/// accepting.
async fn accept(listener: &TcpListener) -> Option<tokio::net::TcpStream> {
    match listener.accept().await {
        Ok((stream, _peer)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Err(error) => {
            // Out of file descriptors and the like: pause instead of spinning.
            tracing::warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// The connections of a listener that have not sent a whole request head yet, oldest
/// first. When the listener is full, the oldest of them is closed to make room: clients
/// that open connections and never send a request cannot keep a real client out until
/// their timeouts, while a real client (the API server) is through its handshake and first
/// request head in milliseconds, and a connection that has sent one is never displaced.
#[derive(Default)]
struct SettingUp {
    next: std::sync::atomic::AtomicU64,
    waiting: parking_lot::Mutex<std::collections::BTreeMap<u64, std::sync::Weak<Claim>>>,
}

impl SettingUp {
    fn enter(self: &Arc<Self>) -> Arc<Claim> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let claim = Arc::new(Claim {
            id,
            queue: self.clone(),
            state: AtomicU8::new(SETTING_UP),
            displaced: tokio::sync::Notify::new(),
        });
        self.waiting.lock().insert(id, Arc::downgrade(&claim));
        claim
    }

    /// Displaces the oldest connection still setting up, if there is one. Entries of
    /// connections that have sent a request since are dropped on the way.
    fn displace_oldest(&self) -> bool {
        loop {
            let Some((_, claim)) = self.waiting.lock().pop_first() else {
                return false;
            };
            if claim.upgrade().is_some_and(|claim| claim.displace()) {
                return true;
            }
        }
    }
}

/// Whether a connection keeps its slot: it may be displaced until its first request head
/// is in, and whichever of the two comes first is decided once, atomically. It holds the
/// connection's place in the queue, left when the connection ends.
struct Claim {
    id: u64,
    queue: Arc<SettingUp>,
    state: AtomicU8,
    displaced: tokio::sync::Notify,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.queue.waiting.lock().remove(&self.id);
    }
}

const SETTING_UP: u8 = 0;
const SERVING: u8 = 1;
const DISPLACED: u8 = 2;

impl Claim {
    /// A request head is in: the connection keeps its slot from now on, unless it was
    /// displaced first.
    fn serve(&self) {
        let _ =
            self.state
                .compare_exchange(SETTING_UP, SERVING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Tells the connection to close if it is still setting up; false if it is serving.
    fn displace(&self) -> bool {
        let displaced = self
            .state
            .compare_exchange(SETTING_UP, DISPLACED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if displaced {
            // Kept until the connection waits for it, so it cannot be missed.
            self.displaced.notify_one();
        }
        displaced
    }

    /// Resolves once the connection has been displaced; never once it is serving.
    async fn displaced(&self) {
        self.displaced.notified().await;
    }
}

pub(super) async fn serve_plain(
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
pub(super) async fn close_while_draining(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_connection_still_setting_up_is_displaced_and_serving_ones_never() {
        struct Case {
            name: &'static str,
            /// Per connection, oldest first: whether its first request head is in.
            serving: &'static [bool],
            /// The connection displaced, if any.
            displaced: Option<usize>,
        }
        let cases = [
            Case {
                name: "none setting up",
                serving: &[true, true],
                displaced: None,
            },
            Case {
                name: "the oldest setting up",
                serving: &[false, false],
                displaced: Some(0),
            },
            Case {
                name: "serving ones are passed over",
                serving: &[true, true, false, false],
                displaced: Some(2),
            },
            Case {
                name: "no connections",
                serving: &[],
                displaced: None,
            },
        ];
        for case in cases {
            let queue = Arc::new(SettingUp::default());
            let connections: Vec<_> = case.serving.iter().map(|_| queue.enter()).collect();
            for (claim, serving) in connections.iter().zip(case.serving) {
                if *serving {
                    claim.serve();
                }
            }
            assert_eq!(
                queue.displace_oldest(),
                case.displaced.is_some(),
                "{}",
                case.name
            );
            for (index, claim) in connections.iter().enumerate() {
                let told = tokio::time::timeout(Duration::ZERO, claim.displaced())
                    .await
                    .is_ok();
                assert_eq!(
                    told,
                    case.displaced == Some(index),
                    "{}: {index}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn a_request_head_and_a_displacement_are_decided_once() {
        let queue = Arc::new(SettingUp::default());
        let claim = queue.enter();
        claim.serve();
        assert!(!claim.displace(), "a serving connection keeps its slot");
        let claim = queue.enter();
        assert!(claim.displace());
        claim.serve();
        assert!(!claim.displace(), "displaced once");
        assert_eq!(claim.state.load(Ordering::Acquire), DISPLACED);
    }

    #[test]
    fn a_connection_that_ends_leaves_the_queue() {
        let queue = Arc::new(SettingUp::default());
        drop(queue.enter());
        assert!(queue.waiting.lock().is_empty());
        assert!(!queue.displace_oldest());
    }
}
