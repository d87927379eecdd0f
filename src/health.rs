//! Target health: rise/fall thresholds over probe results, per probe and per target.
//!
//! Owns: the anti-flap state machine ([`ProbeState`]), the aggregation of a target's probes
//! into one verdict ([`combine`]), and the facts kept for status (last error, last
//! round-trip time, time of last change). Must not: run probes, choose answers, or touch
//! the answer table; it only counts.
//!
//! A probe starts `Unknown`, and its first result decides at once (no threshold: before the
//! first round, answers come from the primary group anyway). After that, `fall` consecutive
//! failures mark it down and `rise` consecutive successes mark it up again. A *decisive*
//! failure (a definite local verdict: the kernel has no route, the egress interface is
//! down; see [`ProbeOutcome::decisive`]) marks it down at once; coming back still takes `rise`
//! successes.

use std::time::{Duration, SystemTime};

pub use crate::probe::ProbeOutcome;

/// One probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unknown,
    Up,
    Down,
}

impl Verdict {
    /// Unknown counts as usable: a target is innocent until a probe says otherwise.
    pub fn usable(self) -> bool {
        self != Verdict::Down
    }

    /// `Some(true)` up, `Some(false)` down, `None` not known yet (what a gauge shows).
    pub fn known_up(self) -> Option<bool> {
        (self != Verdict::Unknown).then_some(self == Verdict::Up)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Up => "up",
            Verdict::Down => "down",
        }
    }
}

/// Rise and fall thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
}

/// The state of one probe against one target.
#[derive(Debug, Clone)]
pub struct ProbeState {
    thresholds: Thresholds,
    verdict: Verdict,
    successes: u32,
    failures: u32,
    pub last_rtt: Option<Duration>,
    pub last_error: Option<String>,
    pub last_detail: Option<String>,
    pub last_change: Option<SystemTime>,
}

impl ProbeState {
    pub fn new(thresholds: Thresholds) -> ProbeState {
        ProbeState {
            thresholds,
            verdict: Verdict::Unknown,
            successes: 0,
            failures: 0,
            last_rtt: None,
            last_error: None,
            last_detail: None,
            last_change: None,
        }
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// A failure seen but the fall threshold not reached yet, or already down: worth
    /// probing more often (see the probe budget in the design).
    pub fn suspect(&self) -> bool {
        self.verdict == Verdict::Down || self.failures > 0
    }

    /// Records a result; returns the new verdict if it changed.
    pub fn record(&mut self, outcome: &ProbeOutcome) -> Option<Verdict> {
        if outcome.ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            self.last_rtt = outcome.rtt;
            self.last_detail = outcome.detail.clone();
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            self.last_error = outcome.detail.clone();
        }
        let next = match self.verdict {
            Verdict::Unknown if outcome.ok => Verdict::Up,
            Verdict::Unknown => Verdict::Down,
            Verdict::Up if !outcome.ok && outcome.decisive => Verdict::Down,
            Verdict::Up if self.failures >= self.thresholds.fall.max(1) => Verdict::Down,
            Verdict::Down if self.successes >= self.thresholds.rise.max(1) => Verdict::Up,
            same => same,
        };
        if next == self.verdict {
            return None;
        }
        self.verdict = next;
        self.last_change = Some(SystemTime::now());
        Some(next)
    }
}

/// A target is up only when every probe on it is usable; down as soon as one is down.
pub fn combine(probes: &[ProbeState]) -> Verdict {
    if probes.iter().any(|p| p.verdict() == Verdict::Down) {
        Verdict::Down
    } else if probes.iter().all(|p| p.verdict() == Verdict::Up) && !probes.is_empty() {
        Verdict::Up
    } else {
        Verdict::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool) -> ProbeOutcome {
        ProbeOutcome {
            ok,
            rtt: ok.then(|| Duration::from_millis(3)),
            detail: (!ok).then(|| "connection refused".to_owned()),
            realm: None,
            decisive: false,
        }
    }

    fn state(rise: u32, fall: u32) -> ProbeState {
        ProbeState::new(Thresholds { rise, fall })
    }

    #[test]
    fn the_first_result_decides_at_once() {
        let mut up = state(3, 3);
        assert_eq!(up.record(&outcome(true)), Some(Verdict::Up));
        let mut down = state(3, 3);
        assert_eq!(down.record(&outcome(false)), Some(Verdict::Down));
        assert_eq!(down.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn fall_consecutive_failures_mark_down() {
        let mut s = state(2, 3);
        s.record(&outcome(true));
        assert_eq!(s.record(&outcome(false)), None);
        assert!(s.suspect());
        assert_eq!(s.record(&outcome(false)), None);
        assert_eq!(s.record(&outcome(false)), Some(Verdict::Down));
        assert!(s.last_change.is_some());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut s = state(2, 2);
        s.record(&outcome(true));
        s.record(&outcome(false));
        s.record(&outcome(true));
        assert!(!s.suspect());
        assert_eq!(s.record(&outcome(false)), None);
        assert_eq!(s.verdict(), Verdict::Up, "flapping does not fail over");
    }

    #[test]
    fn rise_consecutive_successes_mark_up_again() {
        let mut s = state(3, 1);
        s.record(&outcome(false));
        assert_eq!(s.record(&outcome(true)), None);
        assert_eq!(s.record(&outcome(false)), None);
        assert_eq!(s.record(&outcome(true)), None);
        assert_eq!(s.record(&outcome(true)), None);
        assert_eq!(s.record(&outcome(true)), Some(Verdict::Up));
        assert_eq!(s.last_rtt, Some(Duration::from_millis(3)));
    }

    #[test]
    fn a_decisive_failure_marks_down_at_once_and_rise_still_applies() {
        let mut s = state(2, 3);
        s.record(&outcome(true));
        let local = ProbeOutcome::decisive_fail("no route to 10.94.205.198: no route matches it");
        assert_eq!(
            s.record(&local),
            Some(Verdict::Down),
            "not after 3 failures"
        );
        assert!(s
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no route")));
        assert_eq!(
            s.record(&outcome(true)),
            None,
            "one success is not rise = 2"
        );
        assert_eq!(s.record(&outcome(true)), Some(Verdict::Up));
        // A plain failure after that counts towards fall as before.
        assert_eq!(s.record(&outcome(false)), None);
        // A decisive flag on a success means nothing.
        let mut odd = outcome(true);
        odd.decisive = true;
        assert_eq!(s.record(&odd), None);
        assert_eq!(s.verdict(), Verdict::Up);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut s = state(0, 0);
        s.record(&outcome(true));
        assert_eq!(s.record(&outcome(false)), Some(Verdict::Down));
        assert_eq!(s.record(&outcome(true)), Some(Verdict::Up));
    }

    #[test]
    fn a_target_is_down_when_any_probe_is_down() {
        let mut a = state(1, 1);
        let mut b = state(1, 1);
        assert_eq!(combine(&[a.clone(), b.clone()]), Verdict::Unknown);
        a.record(&outcome(true));
        assert_eq!(combine(&[a.clone(), b.clone()]), Verdict::Unknown);
        b.record(&outcome(true));
        assert_eq!(combine(&[a.clone(), b.clone()]), Verdict::Up);
        b.record(&outcome(false));
        assert_eq!(combine(&[a, b]), Verdict::Down);
        assert_eq!(combine(&[]), Verdict::Unknown);
    }
}
