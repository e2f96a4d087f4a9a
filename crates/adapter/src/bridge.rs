//! The reference adapter's local HTTP JSON API, for agency systems in any language.
//! It binds to loopback by default, and everything under `/v1` needs the bundle's
//! bearer token (`Authorization: Bearer …`). The OpenAPI description is
//! `docs/adapter-openapi.yaml`.
//!
//! | method and path | what | answer |
//! |---|---|---|
//! | `GET /healthz` | liveness, broker connection, outbox and inbox sizes (no token) | 200 |
//! | `POST /v1/letters` | send a letter ([`SendRequest`]) | 202 `{"envelope_id"}` |
//! | `GET /v1/letters/{id}` | tracking of a letter this agency sent | 200 [`SentTracking`](crate::SentTracking) |
//! | `GET /v1/inbox?limit=N` | items not yet acknowledged, oldest first | 200 `{"items": […]}` |
//! | `GET /v1/inbox/{id}` | one item | 200 [`Item`](crate::Item) |
//! | `GET /v1/inbox/{id}/envelope` | the envelope as received (binary protobuf), for the agency's archive | 200 |
//! | `POST /v1/inbox/{id}/ack` | the agency system stored the item (a letter's `delivered` receipt goes out) | 204 |
//! | `POST /v1/inbox/{id}/status` | report a received letter's status ([`StatusUpdate`](crate::StatusUpdate)) | 202 `{"receipt_id"}` |
//! | `POST /v1/requests/redelivery` | ask the platform to deliver an archived envelope again | 202 `{"request_id"}` |
//!
//! Errors are JSON `{"error": "…", "reason_code": 305, "reason": "REASON_CODE_EMPTY_SUBJECT"}`
//! (reason fields when the contract refused the input): 400 bad input, 401 no or wrong
//! token, 404 unknown id, 503 shutting down, 500 anything else.

use std::{future::Future, net::SocketAddr};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use mirsal_envelope::pb;
use serde::Deserialize;
use serde_json::json;

use crate::{Adapter, AdapterError, StatusUpdate};

/// A letter to send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Recipients expected to act.
    pub to: Vec<String>,
    #[serde(default)]
    pub copy: Vec<String>,
    #[serde(default)]
    pub info: Vec<String>,
    /// `unclassified` (default), `restricted`, `confidential` or `secret`.
    #[serde(default)]
    pub classification: Option<String>,
    /// `normal` (default), `urgent` or `immediate`.
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub in_reply_to: Option<String>,
    #[serde(default)]
    pub reply_due: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The agency system's own reference: a retry with the same key sends nothing new.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The letter in proto3 JSON: `subject`, `body`, `language`, `outgoingNumber`,
    /// `outgoingDate`, `references`, `coverNote`, `attachments` (`name`, `mediaType`,
    /// `content` in base64, `mainDocument`; `sha256` may be left out).
    pub letter: pb::Letter,
}

#[derive(Debug, Deserialize)]
struct Limit {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliveryRequest {
    envelope_id: String,
}

#[derive(Clone)]
struct Bridge {
    adapter: Adapter,
    token: std::sync::Arc<String>,
}

/// An error as the API reports it.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    reason: Option<mirsal_envelope::ReasonCode>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), reason: None }
    }
}

impl From<AdapterError> for ApiError {
    fn from(error: AdapterError) -> Self {
        let status = match &error {
            AdapterError::Invalid { .. }
            | AdapterError::NoSealingCertificate(_)
            | AdapterError::NotALetter(_) => StatusCode::BAD_REQUEST,
            AdapterError::UnknownItem(_) => StatusCode::NOT_FOUND,
            AdapterError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self { status, reason: error.reason(), message: error.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(reason) = self.reason {
            body["reason_code"] = json!(reason as i32);
            body["reason"] = json!(reason.as_str_name());
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The API's routes over `adapter`, guarded by `token`.
pub fn router(adapter: Adapter, token: String) -> Router {
    let state = Bridge { adapter, token: std::sync::Arc::new(token) };
    let api = Router::new()
        .route("/v1/letters", post(send))
        .route("/v1/letters/{id}", get(sent))
        .route("/v1/inbox", get(inbox))
        .route("/v1/inbox/{id}", get(item))
        .route("/v1/inbox/{id}/envelope", get(envelope))
        .route("/v1/inbox/{id}/ack", post(ack))
        .route("/v1/inbox/{id}/status", post(status))
        .route("/v1/requests/redelivery", post(redelivery))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new().route("/healthz", get(health)).merge(api).with_state(state)
}

/// Serves the API on `listen` until `shutdown` completes.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    adapter: Adapter,
    listen: SocketAddr,
    token: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "HTTP bridge listening");
    axum::serve(listener, router(adapter, token)).with_graceful_shutdown(shutdown).await
}

async fn authorize(
    State(bridge): State<Bridge>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let presented = bearer(&headers).unwrap_or_default();
    let expected = bridge.token.as_bytes();
    let matches = presented.len() == expected.len() && openssl::memcmp::eq(presented.as_bytes(), expected);
    if matches {
        next.run(request).await
    } else {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong bearer token".into(),
            reason: None,
        }
        .into_response()
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `Json`, with malformed bodies answered in the API's error shape (400).
struct ApiJson<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// `Query`, with malformed parameters answered in the API's error shape (400).
struct ApiQuery<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

async fn health(State(bridge): State<Bridge>) -> Json<serde_json::Value> {
    let adapter = &bridge.adapter;
    Json(json!({
        "agency": adapter.agency().as_str(),
        "connected": adapter.is_connected(),
        "outbox": adapter.outbox_len(),
        "pending": adapter.pending_len(),
    }))
}

fn parse_enum<T>(
    value: Option<&str>,
    field: &str,
    parse: impl Fn(&str) -> Option<T>,
    default: T,
) -> ApiResult<T> {
    match value {
        None => Ok(default),
        Some(text) => {
            parse(text).ok_or_else(|| ApiError::bad_request(format!("{field}: {text:?} is not allowed")))
        }
    }
}

async fn send(
    State(bridge): State<Bridge>,
    ApiJson(request): ApiJson<SendRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let classification = parse_enum(
        request.classification.as_deref(),
        "classification",
        |text| pb::Classification::from_str_name(&format!("CLASSIFICATION_{}", text.to_uppercase())),
        pb::Classification::Unclassified,
    )?;
    let priority = parse_enum(
        request.priority.as_deref(),
        "priority",
        |text| pb::Priority::from_str_name(&format!("PRIORITY_{}", text.to_uppercase())),
        pb::Priority::Normal,
    )?;
    let mut header = bridge.adapter.header().classification(classification).priority(priority);
    for code in request.to {
        header = header.action(code);
    }
    for code in request.copy {
        header = header.copy(code);
    }
    for code in request.info {
        header = header.information(code);
    }
    header.thread_id = request.thread_id.unwrap_or_default();
    header.in_reply_to = request.in_reply_to.unwrap_or_default();
    header.reply_due = request.reply_due;
    header.expires_at = request.expires_at;
    let id = bridge.adapter.send(header, request.letter, request.idempotency_key.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "envelope_id": id }))))
}

async fn sent(State(bridge): State<Bridge>, Path(id): Path<String>) -> ApiResult<Json<crate::SentTracking>> {
    bridge.adapter.sent(&id)?.map(Json).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no letter {id} sent by this agency"),
        reason: None,
    })
}

async fn inbox(
    State(bridge): State<Bridge>,
    ApiQuery(limit): ApiQuery<Limit>,
) -> ApiResult<Json<serde_json::Value>> {
    let items = bridge.adapter.pending_items(limit.limit.clamp(1, 1000))?;
    Ok(Json(json!({ "items": items })))
}

async fn item(State(bridge): State<Bridge>, Path(id): Path<String>) -> ApiResult<Json<crate::Item>> {
    bridge.adapter.item(&id)?.map(Json).ok_or_else(|| AdapterError::UnknownItem(id).into())
}

async fn envelope(State(bridge): State<Bridge>, Path(id): Path<String>) -> ApiResult<Response> {
    let item = bridge.adapter.item(&id)?.ok_or(AdapterError::UnknownItem(id))?;
    Ok(([(header::CONTENT_TYPE, mirsal_bus::headers::CONTENT_TYPE)], item.envelope).into_response())
}

async fn ack(State(bridge): State<Bridge>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    bridge.adapter.ack(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status(
    State(bridge): State<Bridge>,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<StatusUpdate>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let receipt = bridge.adapter.set_status(&id, update).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "receipt_id": receipt }))))
}

async fn redelivery(
    State(bridge): State<Bridge>,
    ApiJson(request): ApiJson<RedeliveryRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    mirsal_envelope::validate::check_envelope_id("envelope_id", &request.envelope_id).map_err(|e| {
        ApiError { status: StatusCode::BAD_REQUEST, reason: Some(e.reason()), message: e.to_string() }
    })?;
    let id = bridge.adapter.request_redelivery(&request.envelope_id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "request_id": id }))))
}
