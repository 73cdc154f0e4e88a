//! The long retry schedule and its tier topics.
//!
//! Each distinct delay of the schedule has its own topic (`<prefix>.5s`, `<prefix>.5m`, ...).
//! Everything in one tier waits the same delay, so a tier is in due order as it is written and
//! its reader never waits on a record behind one that is due later.

use std::time::Duration;

/// The default, in the spirit of Standard Webhooks: seconds, minutes, then hours; about 28
/// hours from the first failure to the last attempt.
pub const DEFAULT: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The delays between durable retry rounds, and where each round waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    prefix: String,
    delays: Vec<Duration>,
}

impl RetrySchedule {
    /// A schedule whose tier topics start with `prefix`.
    pub fn new(prefix: impl Into<String>, delays: Vec<Duration>) -> Self {
        RetrySchedule {
            prefix: prefix.into(),
            delays,
        }
    }

    /// Rounds in all.
    pub fn rounds(&self) -> u32 {
        self.delays.len() as u32
    }

    /// The delay before round `round` (1-based), if the schedule has that many.
    pub fn delay(&self, round: u32) -> Option<Duration> {
        let i = usize::try_from(round).ok()?.checked_sub(1)?;
        self.delays.get(i).copied()
    }

    /// The topic where a record waits `delay`.
    pub fn topic_for(&self, delay: Duration) -> String {
        format!("{}.{}", self.prefix, humantime::format_duration(delay)).replace(' ', "")
    }

    /// Every tier topic, once each, shortest delay first.
    pub fn topics(&self) -> Vec<String> {
        let mut delays = self.delays.clone();
        delays.sort();
        delays.dedup();
        delays.into_iter().map(|d| self.topic_for(d)).collect()
    }

    /// The first tier (replays are written there, due at once).
    pub fn first_topic(&self) -> Option<String> {
        self.delay(1).map(|d| self.topic_for(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_named_by_delay_and_shared_by_equal_delays() {
        let s = RetrySchedule::new("hookline.retry", DEFAULT.to_vec());
        assert_eq!(s.rounds(), 7);
        assert_eq!(
            s.topics(),
            ["5s", "5m", "30m", "2h", "5h", "10h"].map(|t| format!("hookline.retry.{t}"))
        );
        assert_eq!(s.delay(1), Some(Duration::from_secs(5)));
        assert_eq!(s.delay(7), Some(Duration::from_secs(36000)));
        assert_eq!(s.delay(0), None);
        assert_eq!(s.delay(8), None);
        assert_eq!(s.topic_for(Duration::from_secs(90)), "hookline.retry.1m30s");
        let total: Duration = DEFAULT.iter().sum();
        assert!(total > Duration::from_secs(24 * 3600) && total < Duration::from_secs(30 * 3600));
    }
}
