//! Capped, jittered, exponential delays between reconnection attempts, for
//! every loop that keeps a connection to RabbitMQ or Redis alive.

use std::time::Duration;

use tracing::info;

/// Capped, jittered, exponential delays between reconnection attempts.
#[derive(Debug, Default)]
pub struct Reconnect {
    /// Failed attempts since the last success.
    pub attempts: u32,
}

impl Reconnect {
    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(5);

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempts += 1;
        let base = Self::FIRST
            .saturating_mul(1 << self.attempts.min(8))
            .min(Self::CAP);
        base.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// Records a successful connection.
    pub fn succeeded(&mut self) {
        if self.attempts > 0 {
            info!(after_attempts = self.attempts, "connected again");
        }
        self.attempts = 0;
    }
}
