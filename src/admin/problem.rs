//! Errors as RFC 7807 problem details (`application/problem+json`), shaped like the seed
//! APIs': a stable `code`, the `requestId` (also the `x-request-id` response header), a
//! `timestamp`, and for invalid input an `errors` map from field name to every message, so a
//! client sees all problems at once.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The request's id: from a well-formed `x-request-id` header, else a new UUID.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Gives every request a [`RequestId`] and echoes it as `x-request-id`.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map(str::to_string);
    let id = given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// A problem, as sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:hookline:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// A stable code: `validation`, `unauthorized`, `forbidden`, `not-found`, `conflict`,
    /// `read-only`, `rate-limited`, `too-large`, `unsupported-media-type`,
    /// `unavailable`, `not-json`.
    pub code: String,
    /// The request's id (as in `x-request-id`).
    pub request_id: String,
    /// When the answer was made.
    pub timestamp: DateTime<Utc>,
    /// Invalid input: every message, by field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

/// A problem before the request's details are known: handlers return it as their error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What went wrong.
    pub detail: String,
    /// Field errors.
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    /// 400 with field errors.
    pub fn invalid(errors: BTreeMap<String, Vec<String>>) -> ApiError {
        let n: usize = errors.values().map(Vec::len).sum();
        ApiError {
            errors: Some(errors),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation",
                format!("the request has {n} invalid field(s); see errors"),
            )
        }
    }

    /// 404 for subscription `id`.
    pub fn not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no subscription {id:?}"),
        )
    }

    /// 503: the subscriptions topic or the secret key is not available.
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// The problem for a request to `instance` with id `request_id`.
    pub fn to_problem(&self, instance: &str, request_id: &str) -> Problem {
        Problem {
            kind: format!("urn:hookline:problem:{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: instance.to_string(),
            code: self.code.to_string(),
            request_id: request_id.to_string(),
            timestamp: Utc::now(),
            errors: self.errors.clone(),
        }
    }

    /// The response for a request to `instance` with id `request_id`.
    pub fn respond(&self, instance: &str, request_id: &str) -> Response {
        let body =
            serde_json::to_vec(&self.to_problem(instance, request_id)).expect("problems serialise");
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hookline\""),
            );
        }
        response
    }
}

/// Handler errors are answered by [`fill_problems`], which knows the path and request id.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        *response.status_mut() = self.status;
        response.extensions_mut().insert(self);
        response
    }
}

/// Turns an [`ApiError`] a handler returned into its problem document, with the request's
/// path and id.
pub async fn fill_problems(req: Request, next: Next) -> Response {
    let instance = req.uri().path().to_string();
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let response = next.run(req).await;
    match response.extensions().get::<ApiError>() {
        Some(e) => e.respond(&instance, &id),
        None => response,
    }
}

/// A JSON object body, read without a type: invalid JSON, another content type and an
/// oversized body get their problem (400, 415, 413); fields are checked one by one by the
/// handler so that every problem is reported at once.
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too-large",
                        "the body is larger than admin.max_body_bytes",
                    )
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "not-json", e.body_text())
                }
            })?;
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "not-json",
                "the body must be a JSON object",
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "not-json",
                format!("the body is not JSON: {e}"),
            )),
        }
    }
}
