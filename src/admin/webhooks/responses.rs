//! The error answers each kind of operation documents in the OpenAPI description (all
//! problem details).
#![allow(dead_code)] // the variants only describe answers; handlers answer with `ApiError`

use utoipa::IntoResponses;

use crate::admin::problem::Problem;

/// What a read can answer besides its result.
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// Invalid query
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// Missing or invalid bearer token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// No such subscription
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Past the admin rate limit; `Retry-After` says when to try again
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
}

/// What a change with a body can answer besides its result.
#[derive(IntoResponses)]
pub enum ChangeErrors {
    /// Invalid input: every problem, by field
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// Missing or invalid bearer token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The read-only token
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such subscription
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The name is taken, or the subscription is defined in a rule file
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is larger than `admin.max_body_bytes`
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not `application/json`
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// Past the admin rate limit; `Retry-After` says when to try again
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The subscriptions topic cannot be written, or no secret key is configured
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// What an action without a body can answer besides its result.
#[derive(IntoResponses)]
pub enum ActionErrors {
    /// Missing or invalid bearer token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The read-only token
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such subscription
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The subscription is defined in a rule file (delete, rotate)
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// Past the admin rate limit; `Retry-After` says when to try again
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The subscriptions topic cannot be written, or no secret key is configured
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}
