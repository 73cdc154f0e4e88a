//! How long to wait before the next attempt: exponential backoff with full jitter, or the
//! receiver's `Retry-After` (capped), never both.

use std::time::Duration;

use rand::Rng;

use crate::deliver::config::RetryConfig;

/// Backoff bounds for one subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    max_retry_after: Duration,
}

impl Backoff {
    /// From a subscription's `retry` block.
    pub fn new(config: &RetryConfig) -> Self {
        Backoff {
            initial: config.initial_backoff,
            max: config.max_backoff,
            max_retry_after: config.max_retry_after,
        }
    }

    /// The ceiling before the `retry`-th retry (1-based): `initial * 2^(retry-1)`, at most `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait before the `retry`-th retry. A `Retry-After` is honoured up to
    /// `max_retry_after` (a receiver asking for longer gets the cap: the event should not sit
    /// in memory for hours). Otherwise full jitter: uniform in `[0, ceiling]`, which spreads
    /// retries of many events so a recovering receiver is not hit by a synchronized wave.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_retry_after),
            None => {
                let ceiling = self.ceiling(retry);
                let nanos = rng.random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
                Duration::from_nanos(nanos)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(&RetryConfig {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(30),
        })
    }

    #[test]
    fn ceiling_doubles_up_to_the_max() {
        let b = backoff();
        let ceilings: Vec<u64> = (1..=7).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(2));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let b = backoff();
        let mut rng = rand::rng();
        let delays: Vec<Duration> = (0..2000).map(|_| b.delay(4, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(400))
            .count();
        // Uniform: about half below the midpoint.
        assert!(
            (800..1200).contains(&low),
            "{low} of 2000 below the midpoint"
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let b = backoff();
        let mut rng = rand::rng();
        let mut d = |s| b.delay(1, Some(Duration::from_secs(s)), &mut rng);
        assert_eq!(d(0), Duration::ZERO);
        assert_eq!(d(7), Duration::from_secs(7));
        let mut rng = rand::rng();
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_secs(30)
        );
    }
}
