//! The router's HTTP surface: health, metrics, the operators' API and the dashboard.
//! It binds to loopback by default (`http.listen`). Everything except `/healthz`,
//! `/readyz`, `/metrics` and the dashboard page itself needs the bearer token
//! (`Authorization: Bearer …`, from `http.token_file`); without a configured token the
//! API refuses every call. The OpenAPI description is `docs/router-openapi.yaml`.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | connected to the broker and consuming `mirsal.ingress` (503 otherwise) |
//! | `GET /metrics` | Prometheus text (see [`crate::metrics`]) |
//! | `GET /` | the operators' dashboard (a single page; it asks for the token) |
//! | `GET /api/v1/summary` | live figures: totals, in flight, recent latency, queue depths |
//! | `GET /api/v1/envelopes/{id}` | an archived envelope: header, per-recipient timeline (never a sealed letter's content) |
//! | `GET /api/v1/search?…` | letters by agency, direction, thread, date range, outgoing or incoming number, status, priority, overdue; paginated with `cursor` |
//! | `GET /api/v1/agencies` | every agency: status, inbox depth, consumers, unacknowledged, oldest pending, overdue, sent and received today, health |
//! | `GET /api/v1/rejections?limit=N` | recent refusals with their reason codes |
//! | `GET /api/v1/overdue?limit=N` | recent overdue reports |
//! | `GET /api/v1/dead-letters?limit=N` | the dead letters |
//! | `GET /api/v1/dead-letters/{id}` | one dead letter with its envelope's JSON view |
//! | `POST /api/v1/dead-letters/{id}/replay` | run it through the pipeline again |
//! | `POST /api/v1/dead-letters/replay?per_second=N` | replay them all, at most N a second (default 20) |
//! | `DELETE /api/v1/dead-letters/{id}` | discard it (recorded in the audit log) |
//! | `GET /api/v1/audit` | the audit chain head and the last signed head |
//! | `POST /api/v1/audit/verify` | recompute the chain now |

use std::{future::Future, sync::Arc};

use axum::{
    Json, Router as Routes,
    extract::{FromRequestParts, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use crate::{Router, audit, deadletters, views};

/// The dashboard, one self-contained page (no build step, nothing from the internet).
const DASHBOARD: &str = include_str!("dashboard.html");

type Shared = Arc<Router>;

/// An API error: status and one message.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

fn not_found(what: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no {what}"))
}

type ApiResult<T> = Result<T, ApiError>;

/// A query string, refused with a JSON 400 naming the bad parameter.
struct ApiQuery<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError(StatusCode::BAD_REQUEST, rejection.body_text()))
    }
}

/// The routes.
pub(crate) fn routes(router: Shared) -> Routes {
    let api = Routes::new()
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/envelopes/{id}", get(envelope))
        .route("/api/v1/search", get(search))
        .route("/api/v1/agencies", get(agencies))
        .route("/api/v1/rejections", get(rejections))
        .route("/api/v1/overdue", get(overdue))
        .route("/api/v1/dead-letters", get(dead_letters))
        .route("/api/v1/dead-letters/replay", post(replay_all))
        .route("/api/v1/dead-letters/{id}", get(dead_letter).delete(discard))
        .route("/api/v1/dead-letters/{id}/replay", post(replay_one))
        .route("/api/v1/audit", get(audit_head))
        .route("/api/v1/audit/verify", post(audit_verify))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&router), authorize));
    Routes::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api)
        .fallback(|| async { not_found("such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint".into())
        })
        .with_state(router)
}

/// Serves the routes on `listener` until `shutdown` completes.
///
/// # Errors
/// The server fails.
pub(crate) async fn serve_on(
    router: Shared,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(listen) = listener.local_addr() {
        tracing::info!(%listen, "router HTTP API listening");
    }
    axum::serve(listener, routes(router)).with_graceful_shutdown(shutdown).await
}

async fn authorize(
    State(router): State<Shared>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let Some(expected) = router.config.http.token.as_deref() else {
        return ApiError(StatusCode::FORBIDDEN, "the operators' API is disabled: set http.token_file".into())
            .into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if presented.len() == expected.len() && openssl::memcmp::eq(presented.as_bytes(), expected.as_bytes()) {
        next.run(request).await
    } else {
        let mut response =
            ApiError(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into()).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mirsal\""));
        response
    }
}

async fn readyz(State(router): State<Shared>) -> Response {
    let ready = router.is_ready();
    let body = Json(
        json!({ "ready": ready, "broker": router.bus.is_connected(), "consuming": router.is_consuming() }),
    );
    if ready {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(router): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        router.metrics.encode(),
    )
        .into_response()
}

async fn summary(State(router): State<Shared>) -> Json<views::Summary> {
    Json(views::summary(&router))
}

async fn envelope(
    State(router): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<views::EnvelopeView>> {
    views::envelope(&router, &id).map_err(internal)?.map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no envelope {id} in the archive (a refused envelope is not archived: see /api/v1/rejections)"
            ),
        )
    })
}

async fn search(
    State(router): State<Shared>,
    ApiQuery(query): ApiQuery<views::SearchQuery>,
) -> ApiResult<Json<views::SearchPage>> {
    views::search(&router, &query).map(Json).map_err(|error| match error {
        views::SearchError::Bad(message) => ApiError(StatusCode::BAD_REQUEST, message),
        views::SearchError::Store(error) => internal(error),
    })
}

async fn agencies(State(router): State<Shared>) -> ApiResult<Json<serde_json::Value>> {
    let agencies = views::agencies(&router).map_err(internal)?;
    Ok(Json(json!({ "agencies": agencies, "management": router.config.management.is_some() })))
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

impl Limit {
    fn get(&self) -> usize {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
}

async fn rejections(
    State(router): State<Shared>,
    ApiQuery(limit): ApiQuery<Limit>,
) -> ApiResult<Json<serde_json::Value>> {
    let events = views::recent_events(&router, "rejected", limit.get()).map_err(internal)?;
    Ok(Json(json!({ "items": events })))
}

async fn overdue(
    State(router): State<Shared>,
    ApiQuery(limit): ApiQuery<Limit>,
) -> ApiResult<Json<serde_json::Value>> {
    let events = views::recent_events(&router, "overdue", limit.get()).map_err(internal)?;
    Ok(Json(json!({ "items": events })))
}

fn dead_letter_error(error: deadletters::DeadLetterError) -> ApiError {
    match error {
        deadletters::DeadLetterError::NotFound(id) => not_found(format!("dead letter {id}")),
        other @ deadletters::DeadLetterError::Store(_) => internal(other),
    }
}

async fn dead_letters(
    State(router): State<Shared>,
    ApiQuery(limit): ApiQuery<Limit>,
) -> ApiResult<Json<serde_json::Value>> {
    let items = deadletters::list(&router, limit.get()).map_err(dead_letter_error)?;
    Ok(Json(json!({ "items": items })))
}

async fn dead_letter(
    State(router): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<deadletters::Inspected>> {
    deadletters::inspect(&router, &id).map(Json).map_err(dead_letter_error)
}

async fn discard(
    State(router): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<deadletters::DeadLetter>> {
    deadletters::discard(&router, &id).await.map(Json).map_err(dead_letter_error)
}

async fn replay_one(
    State(router): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<deadletters::Replayed>> {
    let mut replayed = deadletters::replay(&router, Some(&id), 1).await.map_err(dead_letter_error)?;
    replayed.pop().map(Json).ok_or_else(|| not_found(format!("dead letter {id}")))
}

#[derive(Debug, Deserialize)]
struct Rate {
    per_second: Option<u32>,
}

async fn replay_all(
    State(router): State<Shared>,
    ApiQuery(rate): ApiQuery<Rate>,
) -> ApiResult<Json<serde_json::Value>> {
    let per_second = rate.per_second.unwrap_or(20).clamp(1, 1000);
    let items = deadletters::replay(&router, None, per_second).await.map_err(dead_letter_error)?;
    Ok(Json(json!({ "items": items })))
}

async fn audit_head(State(router): State<Shared>) -> ApiResult<Json<serde_json::Value>> {
    let (sequence, hash) = router.store.chain_head();
    let signed = router.store.last_signed_sequence().map_err(internal)?;
    Ok(Json(json!({ "sequence": sequence, "hash": hex::encode(hash), "last_signed_sequence": signed })))
}

async fn audit_verify(State(router): State<Shared>) -> ApiResult<Json<serde_json::Value>> {
    let verifier = router.verifier();
    let checked = tokio::task::spawn_blocking(move || audit::verify(&router.store, &verifier))
        .await
        .map_err(internal)?;
    match checked {
        Ok(report) => Ok(Json(json!({
            "ok": true,
            "events": report.events,
            "signed_heads": report.signed_heads,
            "last_hash": report.last_hash,
        }))),
        Err(audit::AuditError::Problem(problem)) => Ok(Json(json!({
            "ok": false,
            "first_bad_event": problem.sequence(),
            "problem": problem.to_string(),
        }))),
        Err(audit::AuditError::Store(error)) => Err(internal(error)),
    }
}
