//! The breaker's own error.

use std::time::Duration;

/// A request reached `call` after the circuit had opened since its `poll_ready` (readiness
/// went stale); it was not sent. Callers that call right after readiness never see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit open; the receiver is not called for another {retry_in:?}")]
pub struct CircuitOpen {
    /// Time left until a probe may go through.
    pub retry_in: Duration,
}
