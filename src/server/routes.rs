//! The routes of the webhook and metrics listeners, and the guards every request passes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::Admission;
use crate::metrics::Metrics;

use super::Limits;

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

pub(super) fn metrics_router(metrics: Arc<Metrics>) -> Router {
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
