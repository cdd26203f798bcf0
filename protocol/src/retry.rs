//! A step's retry policy, as data, and the delays it yields.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How the delay grows from one attempt to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// `initial_delay × 2^(attempt − 1)`, capped at `max_delay`.
    #[default]
    Exponential,
    /// `initial_delay × attempt`, capped at `max_delay`.
    Linear,
    /// Always `initial_delay`.
    Fixed,
    /// Retry at once.
    None,
}

/// The share of the base delay that is added, at random, as jitter, so that
/// steps that failed together do not all come back at the same instant.
pub const JITTER_FRACTION: f64 = 0.1;

/// The longest wait a failure's `retry_after_seconds` may ask for: one
/// day. A longer one waits this long.
pub const MAX_RETRY_AFTER_SECS: f64 = 86_400.0;

/// The wait a failure's `retry_after_seconds` asks for, in place of the
/// step's backoff: as given, without jitter and regardless of `max_delay`,
/// but at most [`MAX_RETRY_AFTER_SECS`]. `None`, so the backoff applies,
/// when it is absent, negative or not a number.
#[must_use]
pub fn retry_after(seconds: Option<f64>) -> Option<Duration> {
    seconds
        .filter(|s| *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER_SECS)))
}

/// When and how often a failed step is tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// When false, a retryable error is treated as permanent.
    pub retryable: bool,
    /// Every attempt counts, the first included: `1` means "never retry".
    pub max_attempts: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// The delay before the second attempt.
    pub initial_delay: Duration,
    /// No delay is longer than this (jitter aside).
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Default `retryable`.
    pub const DEFAULT_RETRYABLE: bool = true;
    /// Default `max_attempts`.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Default `initial_delay`, in seconds.
    pub const DEFAULT_INITIAL_DELAY_SECS: f64 = 1.0;
    /// Default `max_delay`, in seconds, unless `initial_delay` is larger.
    pub const DEFAULT_MAX_DELAY_SECS: f64 = 300.0;

    /// The delay after attempt `attempt` (1-based) failed, before jitter.
    #[must_use]
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        let delay = match self.backoff {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed => self.initial_delay,
            Backoff::Linear => self.initial_delay.saturating_mul(attempt),
            Backoff::Exponential => {
                // 2^31 × any delay is beyond every cap; saturate instead of overflowing.
                let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
                self.initial_delay.saturating_mul(factor)
            }
        };
        match self.backoff {
            Backoff::None => delay,
            _ => delay.min(self.max_delay),
        }
    }

    /// The delay after attempt `attempt` failed: [`Self::base_delay`] plus up
    /// to [`JITTER_FRACTION`] of it at random. Never shorter than the base.
    #[must_use]
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay(attempt);
        base + base.mul_f64(rng.random_range(0.0..=JITTER_FRACTION))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retryable: Self::DEFAULT_RETRYABLE,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            initial_delay: Duration::from_secs_f64(Self::DEFAULT_INITIAL_DELAY_SECS),
            max_delay: Duration::from_secs_f64(Self::DEFAULT_MAX_DELAY_SECS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_is_taken_as_given_up_to_a_day() {
        assert_eq!(retry_after(None), None);
        assert_eq!(retry_after(Some(2.5)), Some(Duration::from_millis(2500)));
        assert_eq!(retry_after(Some(0.0)), Some(Duration::ZERO));
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(retry_after(Some(9e15)), day);
        assert_eq!(retry_after(Some(f64::INFINITY)), day);
        assert_eq!(retry_after(Some(-1.0)), None);
        assert_eq!(retry_after(Some(f64::NAN)), None);
    }

    fn policy(backoff: Backoff, initial: f64, max: f64) -> RetryPolicy {
        RetryPolicy {
            backoff,
            initial_delay: Duration::from_secs_f64(initial),
            max_delay: Duration::from_secs_f64(max),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn exponential_doubles_until_the_cap() {
        let p = policy(Backoff::Exponential, 2.0, 30.0);
        let secs: Vec<f64> = (1..=6).map(|a| p.base_delay(a).as_secs_f64()).collect();
        assert_eq!(secs, [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    }

    #[test]
    fn linear_fixed_and_none() {
        assert_eq!(
            policy(Backoff::Linear, 0.5, 10.0).base_delay(3),
            Duration::from_millis(1500)
        );
        assert_eq!(
            policy(Backoff::Fixed, 0.5, 10.0).base_delay(7),
            Duration::from_millis(500)
        );
        assert_eq!(policy(Backoff::None, 0.5, 10.0).base_delay(2), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn jittered_delay_stays_within_its_band(
            initial in 0.0f64..100.0,
            extra in 0.0f64..1000.0,
            attempt in 1u32..200,
            seed in any::<u64>(),
        ) {
            use rand::SeedableRng;
            let p = policy(Backoff::Exponential, initial, initial + extra);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let base = p.base_delay(attempt);
            let delay = p.delay(attempt, &mut rng);
            prop_assert!(base <= p.max_delay);
            prop_assert!(delay >= base);
            prop_assert!(delay <= base + base.mul_f64(JITTER_FRACTION) + Duration::from_nanos(1));
        }

        #[test]
        fn exponential_never_shrinks(initial in 0.001f64..10.0, attempt in 1u32..100) {
            let p = policy(Backoff::Exponential, initial, 60.0);
            prop_assert!(p.base_delay(attempt + 1) >= p.base_delay(attempt));
        }
    }
}
