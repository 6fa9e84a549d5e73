//! Exponential back-off with jitter, for network errors, 5xx and Ret 1205.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `cap`, each drawn uniformly from
/// [d/2, d] so that several clients (or tasks) do not retry in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt += 1;
        let half = full / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Retries so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for max in bounds {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(max / 2), "{d:?} < {max}/2");
            assert!(d <= Duration::from_millis(max), "{d:?} > {max}");
        }
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
