//! One log throttle for warnings that may repeat in a burst (accept errors, alert drops and
//! failures): at most one line per interval, carrying the count since the last line.
//!
//! Owns: the counting and the interval. Must not: log (the caller words the line), sleep or
//! read the clock itself (the caller passes `now`, which keeps it testable).
//! `dns::rebinding` keeps its own `RateLimit` for now (its file belongs to the DNS work).

use std::time::{Duration, Instant};

/// Counts occurrences and says when to log them.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    every: Duration,
    /// When the last line was allowed.
    pub last: Option<Instant>,
    /// Occurrences since that line.
    pub pending: u64,
}

impl LogThrottle {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            last: None,
            pending: 0,
        }
    }

    /// Notes `count` more occurrences at `now`; `Some(n)` when a line is due, `n` being the
    /// occurrences it covers (these included). Nothing is due for nothing.
    pub fn note(&mut self, count: u64, now: Instant) -> Option<u64> {
        self.pending += count;
        if self.pending == 0 {
            return None;
        }
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let every = Duration::from_secs(10);
        let now = Instant::now();
        let mut throttle = LogThrottle::new(every);
        assert_eq!(throttle.note(0, now), None);
        assert_eq!(throttle.note(1, now), Some(1));
        assert_eq!(throttle.note(3, now + Duration::from_secs(9)), None);
        assert_eq!(throttle.note(1, now + every), Some(4));
        assert_eq!(throttle.pending, 0);
    }
}
