//! Accept-loop errors, for the DNS TCP listener and the control endpoint.
//!
//! Owns: telling an error of one connection (reset or refused before it was taken: take the
//! next at once) from a lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM: no accept
//! succeeds until something is freed, and the listener stays readable, so retrying at once
//! would spin a core), backing off from the latter, doubling the pause from 10 ms to 1 s,
//! and logging it at most once per 10 s with a count. Must not: close, refuse or serve
//! connections (the caller's job).

use std::io;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::throttle::LogThrottle;

/// The first pause after a resource error; each further one doubles it.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause: how long a freed descriptor may wait to be used.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one warning per this long while accepts keep failing.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The state of one accept loop's errors.
#[derive(Debug)]
pub struct AcceptErrors {
    /// Which listener, for log lines: `dns` or `control`.
    listener: &'static str,
    /// The last pause; zero when the last accept succeeded.
    pause: Duration,
    /// Resource errors since the last successful accept.
    failures: u64,
    /// When the last warning was logged, and the failures since.
    log: LogThrottle,
}

impl AcceptErrors {
    pub fn new(listener: &'static str) -> AcceptErrors {
        AcceptErrors {
            listener,
            pause: Duration::ZERO,
            failures: 0,
            log: LogThrottle::new(LOG_EVERY),
        }
    }

    /// An accept succeeded: ends a run of failures (and says so, if it was logged).
    pub fn accepted(&mut self) {
        if self.failures == 0 {
            return;
        }
        tracing::info!(
            listener = self.listener,
            failures = self.failures,
            "accepting connections again"
        );
        *self = AcceptErrors::new(self.listener);
    }

    /// Handles a failed accept: returns after the pause that the error calls for.
    pub async fn failed(&mut self, err: &io::Error) {
        if let Some(pause) = self.pause_after(err, Instant::now()) {
            tokio::time::sleep(pause).await;
        }
    }

    /// How long to pause after `err` (`None`: accept again at once), logging as it goes.
    fn pause_after(&mut self, err: &io::Error, now: Instant) -> Option<Duration> {
        if is_connection_error(err) {
            tracing::debug!(listener = self.listener, error = %err, "accept: connection failed");
            return None;
        }
        self.failures += 1;
        self.pause = (self.pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
        if let Some(failures) = self.log.note(1, now) {
            tracing::warn!(
                listener = self.listener,
                error = %err,
                failures,
                pause = ?self.pause,
                "accept failed; backing off (logged at most every {LOG_EVERY:?})"
            );
        }
        Some(self.pause)
    }
}

/// Errors that belong to one connection, not to the listener: Linux reports a connection's
/// pending network error from `accept` (accept(2), "Error handling"), and a firewall may
/// refuse one (EPERM).
fn is_connection_error(err: &io::Error) -> bool {
    let Some(code) = err.raw_os_error() else {
        return false;
    };
    matches!(
        Errno::from_raw(code),
        Errno::ECONNABORTED
            | Errno::ECONNRESET
            | Errno::EINTR
            | Errno::EPERM
            | Errno::EPROTO
            | Errno::ENETDOWN
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: Errno) -> io::Error {
        io::Error::from_raw_os_error(errno as i32)
    }

    #[test]
    fn resource_errors_back_off_doubling_up_to_a_second() {
        let mut errors = AcceptErrors::new("test");
        let now = Instant::now();
        let pauses: Vec<_> = (0..10)
            .filter_map(|_| errors.pause_after(&os(Errno::EMFILE), now))
            .map(|pause| pause.as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        for errno in [Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM] {
            assert_eq!(errors.pause_after(&os(errno), now), Some(MAX_PAUSE));
        }
        errors.accepted();
        assert_eq!(
            errors.pause_after(&os(Errno::EMFILE), now),
            Some(FIRST_PAUSE)
        );
    }

    #[test]
    fn errors_of_one_connection_do_not_pause() {
        let mut errors = AcceptErrors::new("test");
        for errno in [Errno::ECONNABORTED, Errno::EPROTO, Errno::EPERM] {
            assert_eq!(errors.pause_after(&os(errno), Instant::now()), None);
        }
        assert_eq!(errors.failures, 0);
        // Unknown errors are treated as a lack of resources: a pause never hurts.
        assert!(errors
            .pause_after(&io::Error::other("odd"), Instant::now())
            .is_some());
    }

    #[test]
    fn warnings_are_limited_to_one_per_interval() {
        let mut errors = AcceptErrors::new("test");
        let start = Instant::now();
        let _ = errors.pause_after(&os(Errno::EMFILE), start);
        assert_eq!((errors.log.last, errors.log.pending), (Some(start), 0));
        for _ in 0..5 {
            let _ = errors.pause_after(&os(Errno::EMFILE), start + Duration::from_secs(1));
        }
        assert_eq!((errors.log.last, errors.log.pending), (Some(start), 5));
        let later = start + LOG_EVERY;
        let _ = errors.pause_after(&os(Errno::EMFILE), later);
        assert_eq!((errors.log.last, errors.log.pending), (Some(later), 0));
    }
}
