//! The token bucket, as GCRA.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket shared by every clone of a rate-limited service.
#[derive(Debug)]
pub struct Bucket {
    /// Time one token takes to refill.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: `(burst - 1) * interval`.
    tolerance: Duration,
    /// When the bucket would next be full-enough for a request at the sustained rate.
    tat: Mutex<Option<Instant>>,
}

impl Bucket {
    /// `per_second` tokens per second, at most `burst` at once. Starts empty: the first
    /// token comes one interval from now, and the bucket fills from there while idle. So a
    /// restart (even a crash loop) or a subscription moving to another instance of a fleet
    /// never sends a burst on top of what was just sent.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / per_second);
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        Bucket {
            interval,
            tolerance,
            tat: Mutex::new(Some(Instant::now() + interval + tolerance)),
        }
    }

    /// Takes a token at `now`, or says when to try again.
    pub fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        let mut tat = self.tat.lock().expect("bucket lock");
        let current = tat.map_or(now, |t| t.max(now));
        let earliest = current.checked_sub(self.tolerance).unwrap_or(now);
        if earliest > now {
            return Err(earliest);
        }
        *tat = Some(current + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn starts_empty_then_bursts_only_after_idling() {
        let bucket = Bucket::new(10.0, 3);
        let start = Instant::now();
        let first = bucket.try_acquire(start).unwrap_err();
        assert_eq!(
            first - start,
            Duration::from_millis(100),
            "no burst at start"
        );
        // Idle long enough to fill: then a burst.
        let t0 = start + Duration::from_secs(1);
        for _ in 0..3 {
            assert!(bucket.try_acquire(t0).is_ok());
        }
        let next = bucket.try_acquire(t0).unwrap_err();
        assert_eq!(next - t0, Duration::from_millis(100));
        assert!(bucket.try_acquire(next).is_ok());
        assert_eq!(
            bucket.try_acquire(next).unwrap_err() - next,
            Duration::from_millis(100)
        );
        // Idle time refills up to the burst, not beyond.
        let later = next + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.try_acquire(later).is_ok());
        }
        assert!(bucket.try_acquire(later).is_err());
    }
}
