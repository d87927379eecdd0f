//! systemd integration through sd-notify: `READY=1`, `STATUS=`, `WATCHDOG=1`,
//! `RELOADING=1` with `MONOTONIC_USEC`, `STOPPING=1`.
//!
//! Owns: what is sent when, and the watchdog's proof of life ([`self_query`]). The watchdog is fed only
//! after the DNS listener answers a real query from this process (like AKS LocalDNS), so a
//! hung server is restarted by systemd instead of being kept alive by a timer. Without
//! `NOTIFY_SOCKET` every call is silent. Must not: decide health or readiness itself.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::{DNSClass, Name, RecordType};
use sd_notify::NotifyState;

use crate::dns_client;
use crate::metrics::Metrics;

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::debug!(error = %err, "sd_notify failed");
    }
}

/// Sockets bound, first probe round done: serving.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A one-line summary kept current, e.g. "3 names, 5/6 targets up".
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload started; `ready` must follow when it is done, whatever the outcome.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to feed the watchdog: half of `WATCHDOG_USEC`, if systemd asked for one.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

/// Feeds the watchdog every `interval` while the listener at `listen` (the current first
/// listen address, which a reload may change) answers a DNS query; stops feeding (and
/// systemd restarts us) when it does not.
///
/// Near misses count in `pathdns_watchdog_late_total`: a ping sent more than 3/4 of
/// `WATCHDOG_USEC` (1.5 intervals) after the previous one. The gap between pings is what
/// systemd's timer measures, so it catches every way of coming close: a slow self-query
/// (the DNS loop busy), a ticker the runtime ran late (starved workers), a self-query that
/// failed and was answered again one round later. The self-query's own duration alone
/// would miss the late ticker; it is exported too (`pathdns_watchdog_self_query_seconds`),
/// to tell the causes apart.
pub async fn watchdog(
    interval: Duration,
    listen: tokio::sync::watch::Receiver<Option<SocketAddr>>,
    metrics: Arc<Metrics>,
) {
    let late_after = interval * 3 / 2;
    let mut last_ping: Option<Instant> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(listen) = *listen.borrow() else {
            continue;
        };
        let asked = Instant::now();
        let answered = tokio::task::spawn_blocking(move || self_query(listen, interval))
            .await
            .unwrap_or(false);
        metrics.watchdog_self_query(asked.elapsed());
        if answered {
            let now = Instant::now();
            let gap = last_ping.map(|last| now - last);
            if let Some(gap) = gap.filter(|gap| *gap > late_after) {
                metrics.watchdog_late();
                tracing::warn!(
                    since_last_ping = ?gap,
                    timeout = ?(interval * 2),
                    "watchdog ping late: less than a quarter of WATCHDOG_USEC was left"
                );
            }
            last_ping = Some(now);
            send(&[NotifyState::Watchdog]);
        } else {
            tracing::error!(%listen, "the DNS listener did not answer the watchdog's query; not feeding the watchdog");
        }
    }
}

/// Whether pathdns answers at `listen` within `timeout` (at least 100 ms): a CHAOS-class
/// query, which the handler answers at once (REFUSED) without touching the answer table or
/// any upstream, so any response proves the listener loop works. Also `pathdns resolver
/// enable`'s check that the agent runs.
pub fn self_query(listen: SocketAddr, timeout: Duration) -> bool {
    let target = crate::host::local_address(listen);
    let Ok(socket) = UdpSocket::bind(dns_client::any_address(target)) else {
        return false;
    };
    if socket
        .set_read_timeout(Some(timeout.max(Duration::from_millis(100))))
        .is_err()
    {
        return false;
    }
    let id = fastrand::u16(..);
    let Ok(name) = Name::from_ascii("pathdns-watchdog.invalid.") else {
        return false;
    };
    // No RD: the handler refuses a CHAOS query before any lookup.
    let Ok(query) = dns_client::query_bytes(id, &name, RecordType::TXT, DNSClass::CH, false) else {
        return false;
    };
    if socket.send_to(&query, target).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((len, _)) if len >= 12 && buf[..2] == id.to_be_bytes())
}
