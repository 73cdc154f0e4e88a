//! A token-bucket rate limit as a tower layer: `per_second` sustained, `burst` at once.
//!
//! tower's own `RateLimit` counts requests in fixed windows (a burst of twice the limit can
//! straddle a window edge) and has no burst size; this one is a token bucket in its GCRA form
//! (one "theoretical arrival time" instead of a token count), on tokio's clock so tests can
//! run it on a paused clock.

mod bucket;
mod layer;
mod service;

pub use bucket::Bucket;
pub use layer::RateLimitLayer;
pub use service::RateLimit;
