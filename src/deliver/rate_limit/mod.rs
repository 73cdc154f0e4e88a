//! A token-bucket rate limit as a tower layer: `per_second` sustained, `burst` at once.
//!
//! tower's own `RateLimit` counts requests in fixed windows (a burst of twice the limit can
//! straddle a window edge) and has no burst size; this one is a token bucket in its GCRA form
//! (one "theoretical arrival time" instead of a token count), on tokio's clock so tests can
//! run it on a paused clock.
//!
//! Why not the `governor` crate, which implements the same GCRA: its clocks (quanta, std) and
//! its waiting futures (futures-timer) run on real time, so a limiter built on it ignores
//! tokio's paused clock and the rate-limit tests would have to sleep in real time. Using it
//! here would take a hand-written tokio clock adapter (its `Clock` and `Reference` traits)
//! plus our own tokio sleep: more code than the ~20 lines of arithmetic in [`Bucket`].

mod bucket;
mod layer;
mod service;

pub use bucket::Bucket;
pub use layer::RateLimitLayer;
pub use service::RateLimit;
