//! Event-driven probing: when the kernel reports a link, route or address change
//! ([`crate::host::watch`]), find the probed targets whose local path changed and run
//! their probes at once instead of at their next interval.
//!
//! Owns: the last known [`LocalPath`] of every probed address, the coalescing of a burst
//! of notifications (one look-up round per burst, not per message), the choice of which
//! jobs a change wakes, and the handle ([`Trigger`]) through which a job is woken, with
//! the definite local verdict (no route, interface down) it must report as decisive.
//! Must not: keep health or choose answers; touch the DNS path; wake anything when no
//! probed target's path changed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::host::{self, watch::Changes, LocalPath};
use crate::metrics::Metrics;

/// How long to collect a burst after its first notification: a link going down removes
/// every route through it in messages a few microseconds apart.
pub const COALESCE: Duration = Duration::from_millis(15);

/// Wakes one probe job ahead of its schedule.
#[derive(Debug, Default)]
pub struct Trigger {
    notify: Notify,
    /// Set when the kernel itself says the target cannot be reached: the job reports this
    /// as a decisive failure instead of sending packets that cannot leave.
    verdict: Mutex<Option<String>>,
}

impl Trigger {
    /// Wakes the job; `verdict` is the definite local reason it is down, if any.
    pub fn fire(&self, verdict: Option<String>) {
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = verdict;
        }
        // A stored permit: a job busy with a run goes again right after it.
        self.notify.notify_one();
    }

    /// The decisive verdict a wake-up carried (taken: it holds for one run).
    pub fn take_verdict(&self) -> Option<String> {
        self.verdict.lock().ok().and_then(|mut slot| slot.take())
    }

    /// Resolves when the job is woken.
    pub async fn woken(&self) {
        self.notify.notified().await
    }
}

/// Reads every address's local path (netlink requests: on a blocking thread).
async fn read_paths(addrs: Vec<IpAddr>) -> Vec<LocalPath> {
    let count = addrs.len();
    tokio::task::spawn_blocking(move || {
        let links = host::interfaces::links();
        addrs
            .into_iter()
            .map(|addr| host::local_path(addr, &links))
            .collect()
    })
    .await
    .unwrap_or_else(|err| vec![LocalPath::Unknown(err.to_string()); count])
}

/// Watches `changes` until it closes; on each burst wakes the jobs of every address whose
/// local path changed (see [`Plan::wake_lists`](super::scheduler::Plan::wake_lists)).
pub async fn react(
    mut changes: watch::Receiver<Changes>,
    wake: BTreeMap<IpAddr, Vec<usize>>,
    triggers: Vec<Arc<Trigger>>,
    metrics: Arc<Metrics>,
) {
    let addrs: Vec<IpAddr> = wake.keys().copied().collect();
    // Mark what is seen before reading, so that a change during the read is not lost.
    changes.borrow_and_update();
    let mut known = read_paths(addrs.clone()).await;
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(COALESCE).await;
        let last = changes.borrow_and_update().last.clone();
        let now = read_paths(addrs.clone()).await;
        let mut woken = 0;
        for ((addr, old), new) in addrs.iter().zip(&known).zip(&now) {
            if old == new || matches!(new, LocalPath::Unknown(_)) {
                continue;
            }
            let verdict = new.down_reason();
            let jobs = wake.get(addr).map(Vec::as_slice).unwrap_or_default();
            tracing::info!(
                target = %addr,
                from = %old,
                to = %new,
                decisive = verdict.is_some(),
                probes = jobs.len(),
                "path changed (kernel notification); probing now"
            );
            let verdict = verdict
                .map(|reason| format!("no way out to {addr}: {reason} (kernel notification)"));
            for job in jobs {
                if let Some(trigger) = triggers.get(*job) {
                    trigger.fire(verdict.clone());
                }
            }
            woken += jobs.len();
        }
        if woken == 0 {
            tracing::debug!(last = ?last, "host change; no probed path changed");
        }
        metrics.path_change(woken > 0);
        // An unknown reading keeps the last known path: a failed read is not a change.
        for (known, now) in known.iter_mut().zip(now) {
            if !matches!(now, LocalPath::Unknown(_)) {
                *known = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fired_trigger_wakes_once_and_carries_its_verdict_once() {
        let trigger = Trigger::default();
        trigger.fire(Some("no route".into()));
        trigger.fire(Some("no route".into()));
        tokio::time::timeout(Duration::from_secs(5), trigger.woken())
            .await
            .expect("woken");
        assert_eq!(trigger.take_verdict().as_deref(), Some("no route"));
        assert_eq!(trigger.take_verdict(), None);
        let again = tokio::time::timeout(Duration::from_millis(50), trigger.woken()).await;
        assert!(again.is_err(), "two fires before a wait are one wake-up");
        trigger.fire(None);
        trigger.woken().await;
        assert_eq!(trigger.take_verdict(), None);
    }
}
