//! Serve-stale (RFC 8767): what a forwarded query gets when its cached answer has expired
//! and the upstreams fail or are slow.
//!
//! Owns: the race between a resolution and the client response timer, the failure recheck
//! timer, and the stale answer's TTL. Must not: touch the hot path (fresh cache hits never
//! come here, and a stale entry is never served from it), decide what is cacheable (the
//! forwarder does), write wire bytes (the handler does, with
//! [`wire::write_stale_response`](crate::wire::write_stale_response)), or convert hickory's
//! types itself ([`super::hickory_bridge`] does).
//!
//! For a query whose cached answer expired less than `stale_max_age` ago:
//!
//! 1. If a refresh of that answer failed less than [`FAILURE_RECHECK`] ago, the stale answer
//!    goes out at once and no upstream is asked: a dead upstream is not asked again for the
//!    name on every query.
//! 2. Otherwise the resolution runs on a task of its own, raced against `stale_answer_after`
//!    (RFC 8767's client response timer). An answer before the timer is served as usual; a
//!    failure (timeout, SERVFAIL or REFUSED from upstream, a network error) serves the stale
//!    answer and holds refreshes for [`FAILURE_RECHECK`]. When the timer fires first, the
//!    stale answer goes out and refreshes are held while the resolution goes on; when it
//!    completes, a success has refreshed the cache (the forwarder stores it) and releases
//!    the hold, a failure restarts it.
//!
//! Without a usable stale answer the resolution is simply awaited, within the forwarder's
//! budget, and a failure is SERVFAIL. Negative answers (NXDOMAIN, NODATA) are cached
//! answers like any other and are served stale the same way.
//!
//! A resolution left running after its stale answer holds no upstream slot; it ends within
//! the forwarder's budget (`upstream.timeout` plus a guard). Only queries that arrive before
//! the first timer fires or the first failure start one; every later query for the name
//! finds the hold and starts none.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::{Cached, KeyRef};
use super::forward::{ForwardError, Forwarder};
use super::hickory_bridge::name_from_wire;
use crate::wire::Rcode;

/// TTL of every record in a stale answer. RFC 8767 section 4 recommends 30 s: long enough
/// that a client does not come straight back while the upstreams are down, short enough
/// that it picks up the real answer soon after they return.
pub const STALE_TTL: u32 = 30;

/// After a failed refresh, how long stale answers are given at once without asking the
/// upstreams again for that name (RFC 8767 section 5's failure recheck timer, 30 s).
pub const FAILURE_RECHECK: Duration = Duration::from_secs(30);

/// An expired answer that may be served, and how long a client waits before it is.
pub struct Candidate {
    pub entry: Arc<Cached>,
    pub answer_after: Duration,
}

impl Candidate {
    /// The stale answer for `key`, if serve-stale is on and one expired less than
    /// `stale_max_age` ago. Never waits.
    pub fn find(forwarder: &Forwarder, key: &KeyRef<'_>) -> Option<Candidate> {
        let settings = forwarder.stale_settings()?;
        Some(Candidate {
            entry: forwarder.stale(key)?,
            answer_after: settings.answer_after,
        })
    }
}

/// What a forwarded query is answered with.
#[derive(Debug)]
pub enum Outcome {
    /// What the upstreams said just now (possibly SERVFAIL for an owned CNAME's target).
    Fresh(Arc<Cached>),
    /// An expired answer, to be sent with [`STALE_TTL`].
    Stale(Arc<Cached>),
    /// No answer at all: SERVFAIL.
    Failed(ForwardError),
}

/// Resolves with `resolve` (which asks the upstreams and caches their answer), falling back
/// to `stale` as the module documentation describes.
pub async fn answer<F, Fut>(key: &KeyRef<'_>, stale: Option<Candidate>, resolve: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Arc<Cached>, ForwardError>> + Send + 'static,
{
    let Some(Candidate {
        entry: stale,
        answer_after,
    }) = stale
    else {
        return match resolve().await {
            Ok(entry) => Outcome::Fresh(entry),
            Err(err) => Outcome::Failed(err),
        };
    };
    if stale.refresh_held(Instant::now()) {
        return Outcome::Stale(stale);
    }
    let held = stale.clone();
    let name = key.name.to_vec();
    let resolving = resolve();
    let mut resolution = tokio::spawn(async move {
        let result = resolving.await;
        if result.as_deref().is_ok_and(refreshed) {
            held.release_refresh();
        } else {
            held.hold_refresh(Instant::now(), FAILURE_RECHECK);
            tracing::debug!(
                name = ?name_from_wire(&name).ok(),
                error = ?result.as_ref().err(),
                "refresh of a stale answer failed; serving it stale without asking again for {}s",
                FAILURE_RECHECK.as_secs(),
            );
        }
        result
    });
    match tokio::time::timeout(answer_after, &mut resolution).await {
        Ok(Ok(Ok(entry))) if refreshed(&entry) => Outcome::Fresh(entry),
        // Failed (or the task panicked): the task has already held refreshes.
        Ok(_) => Outcome::Stale(stale),
        Err(_) => {
            // The client response timer: answer stale now, let the resolution go on.
            stale.hold_refresh(Instant::now(), FAILURE_RECHECK);
            Outcome::Stale(stale)
        }
    }
}

/// Whether a resolution's entry is a real answer. An owned CNAME's chain is answered even
/// when its target fails, as SERVFAIL; with a stale answer at hand that is a failure too.
fn refreshed(entry: &Cached) -> bool {
    !matches!(entry.prepared.rcode, Rcode::ServFail | Rcode::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Prepared;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn entry(rcode: Rcode) -> Arc<Cached> {
        Arc::new(Cached::new(Prepared::empty(rcode, false), 60))
    }

    const KEY: KeyRef<'static> = KeyRef {
        name: b"\x01a\x00",
        qtype: 1,
        qclass: 1,
    };

    /// The client response timer of these tests: short, real time.
    const TIMER: Duration = Duration::from_millis(100);

    fn candidate(entry: &Arc<Cached>) -> Option<Candidate> {
        Some(Candidate {
            entry: entry.clone(),
            answer_after: TIMER,
        })
    }

    #[tokio::test]
    async fn without_a_stale_answer_the_resolution_decides() {
        let outcome = answer(&KEY, None, || async { Err(ForwardError::BadName) }).await;
        assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
        let fresh = entry(Rcode::NoError);
        let given = fresh.clone();
        let outcome = answer(&KEY, None, move || async move { Ok(given) }).await;
        assert!(matches!(outcome, Outcome::Fresh(e) if Arc::ptr_eq(&e, &fresh)));
    }

    #[tokio::test]
    async fn a_fast_answer_wins_and_a_failure_serves_stale_then_holds() {
        let stale = entry(Rcode::NoError);
        let outcome = answer(&KEY, candidate(&stale), || async {
            Ok(entry(Rcode::NoError))
        })
        .await;
        assert!(matches!(outcome, Outcome::Fresh(_)), "{outcome:?}");
        assert!(!stale.refresh_held(Instant::now()));

        let outcome = answer(&KEY, candidate(&stale), || async {
            Ok(entry(Rcode::ServFail))
        })
        .await;
        assert!(matches!(outcome, Outcome::Stale(e) if Arc::ptr_eq(&e, &stale)));
        assert!(stale.refresh_held(Instant::now()));

        // Held: the next query is answered stale at once, without resolving.
        let asked = Arc::new(AtomicBool::new(false));
        let flag = asked.clone();
        let started = Instant::now();
        let outcome = answer(&KEY, candidate(&stale), move || {
            flag.store(true, Ordering::Relaxed);
            async { Err(ForwardError::BadName) }
        })
        .await;
        assert!(matches!(outcome, Outcome::Stale(_)), "{outcome:?}");
        assert!(
            !asked.load(Ordering::Relaxed),
            "a held refresh must not resolve"
        );
        assert!(started.elapsed() < TIMER);
    }

    #[tokio::test]
    async fn the_timer_serves_stale_and_a_late_answer_releases_the_hold() {
        let stale = entry(Rcode::NoError);
        let started = Instant::now();
        let outcome = answer(&KEY, candidate(&stale), || async {
            tokio::time::sleep(TIMER * 2).await;
            Ok(entry(Rcode::NoError))
        })
        .await;
        let took = started.elapsed();
        assert!(matches!(outcome, Outcome::Stale(_)), "{outcome:?}");
        assert!(took >= TIMER && took < TIMER * 2, "{took:?}");
        assert!(stale.refresh_held(Instant::now()), "held while it resolves");
        let deadline = Instant::now() + Duration::from_secs(5);
        while stale.refresh_held(Instant::now()) {
            assert!(
                Instant::now() < deadline,
                "the late answer never released the hold"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
