//! Waiting for conditions. Tests never sleep and then assert: a positive condition is polled
//! until it holds within a generous deadline ([`eventually`]), and "nothing more happens" is
//! checked at every poll for a while ([`holds_for`]), which under load can only see less, never
//! fail wrongly. Deadlines are generous because CI machines are loaded; set
//! `HOOKLINE_TEST_TIME_SCALE` (a factor, default 1) to stretch them further.

use std::time::Duration;

/// `timeout` scaled by `HOOKLINE_TEST_TIME_SCALE`.
pub fn scaled(timeout: Duration) -> Duration {
    let scale = std::env::var("HOOKLINE_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 1.0)
        .unwrap_or(1.0);
    timeout.mul_f64(scale)
}

/// Polls `check` every 50 ms until it holds or `timeout` (scaled) passes; returns whether it
/// held.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + scaled(timeout);
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// [`eventually`] for an async check.
pub async fn eventually_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + scaled(timeout);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await
}

/// Checks `check` every 20 ms for `window`; returns false as soon as it does not hold. For
/// "nothing more arrives" after what was expected has arrived.
pub async fn holds_for(window: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < deadline {
        if !check() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
