//! How long a lane whose queue is full may make the source wait for room.
//!
//! Waiting a moment is right for a lane that drains fast (a healthy receiver, momentarily
//! saturated): its events stay on the direct path instead of making a round trip through the
//! backlog. Waiting is wrong for a lane slower than the source: however short each wait, one
//! per event would pace the whole router at that lane's speed. So the waiting a lane may cause
//! is a budget of time that refills at a small share of the clock: a fast lane never uses it
//! up, a slow one does within a moment and then spills.
//!
//! Written by hand: a rate limiter crate (governor) counts cells, not durations waited, and
//! this is a dozen lines.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The share of the clock a lane may hold up the source: at most 2% of its throughput.
const SHARE: f64 = 0.02;
/// The most a lane may make the source wait at once, and the budget when unused.
const BURST: Duration = Duration::from_millis(20);

pub struct Patience {
    state: Mutex<State>,
}

struct State {
    available: Duration,
    at: Instant,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                available: BURST,
                at: Instant::now(),
            }),
        }
    }
}

impl Patience {
    /// How long the next wait for room may last (zero: spill at once).
    pub fn allowance(&self) -> Duration {
        let mut state = self.state.lock().expect("patience lock");
        let now = Instant::now();
        let earned = now.saturating_duration_since(state.at).mul_f64(SHARE);
        state.available = (state.available + earned).min(BURST);
        state.at = now;
        state.available
    }

    /// Records a wait that lasted `waited`.
    pub fn spend(&self, waited: Duration) {
        let mut state = self.state.lock().expect("patience lock");
        state.available = state.available.saturating_sub(waited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_lane_uses_up_its_budget_and_a_pause_refills_it() {
        let patience = Patience::default();
        assert_eq!(patience.allowance(), BURST);
        // A lane that frees one slot every 5 ms: each push waits 5 ms.
        for _ in 0..4 {
            let allowed = patience.allowance();
            assert!(allowed > Duration::ZERO);
            tokio::time::advance(Duration::from_millis(5)).await;
            patience.spend(Duration::from_millis(5).min(allowed));
        }
        assert!(patience.allowance() < Duration::from_millis(1));
        // Over a second it earns 2% of it back, never more than the burst.
        tokio::time::advance(Duration::from_millis(500)).await;
        let back = patience.allowance();
        assert!(
            back >= Duration::from_millis(10) && back <= Duration::from_millis(11),
            "{back:?}"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(patience.allowance(), BURST);
    }

    #[tokio::test(start_paused = true)]
    async fn short_waits_of_a_fast_lane_never_use_it_up() {
        let patience = Patience::default();
        for _ in 0..10_000 {
            // Room frees within 10 µs, and 1 ms passes between full queues.
            tokio::time::advance(Duration::from_millis(1)).await;
            let allowed = patience.allowance();
            patience.spend(Duration::from_micros(10).min(allowed));
        }
        assert!(patience.allowance() > BURST / 2);
    }
}
