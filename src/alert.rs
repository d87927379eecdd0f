//! Alert sinks: webhooks and Alertmanager. (The log sink is the supervisor's tracing lines.)
//!
//! Owns: delivering events to each configured sink, with dedupe, repeats while a problem
//! lasts, retries with backoff and a bounded queue. Must not: block or slow the sender.
//!
//! Each sink is one task subscribed to the event broadcast. It never waits on the network
//! while taking events in: it books the event (opening or closing a problem), queues a
//! delivery (dropping the oldest when its queue is full) and goes back to listening, while
//! one delivery at a time is sent alongside. A sink's memory is its queue (`queue`
//! deliveries), its open problems (bounded by the configured names and targets) and one
//! request in flight, whatever its receiver does.
//!
//! Problems are identified by alert name and labels ([`Event::key`]): the first firing
//! event opens one and is delivered; identical firings while it is open are not; while it
//! stays open it is delivered again every `repeat_interval` (for Alertmanager at most every
//! [`ALERTMANAGER_REPEAT`], so that it never resolves the alert on its own); the resolved
//! event closes it and is delivered once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use crate::config::{AlertKind, AlertSink};
use crate::events::{self, Event, EventSender};
use crate::reason::error_chain;
use crate::throttle::LogThrottle;

/// The version of the webhook JSON body; bumped on any incompatible change.
pub const WEBHOOK_SCHEMA_VERSION: u32 = 1;

/// Alertmanager forgets (resolves) an alert that is not sent again within its
/// `resolve_timeout` (5 minutes by default): firing alerts are resent at least this often.
pub const ALERTMANAGER_REPEAT: Duration = Duration::from_secs(60);

/// The first retry waits this long; each next one twice as long, up to [`BACKOFF_CAP`].
pub const BACKOFF_START: Duration = Duration::from_millis(500);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Alerts per Alertmanager request (its API takes a list).
const ALERTMANAGER_BATCH: usize = 64;

/// Open problems tracked per sink; beyond this a firing is still delivered once, but not
/// repeated. Far above what any config produces (names × targets × alert names).
const MAX_OPEN: usize = 10_000;

/// At most one warning per sink and kind of trouble in this interval; the rest are counted.
const WARN_EVERY: Duration = Duration::from_secs(60);

type Key = (String, BTreeMap<String, String>);

/// The running sinks.
pub struct Alerts {
    sinks: Vec<Running>,
    /// Every open problem, whatever the sinks: a sink added by a reload starts with these.
    open: Arc<Mutex<HashMap<Key, Event>>>,
    tracker: Option<JoinHandle<()>>,
    host: Arc<str>,
}

struct Running {
    config: AlertSink,
    task: JoinHandle<()>,
}

/// Starts a task per sink, subscribed to `events`. Must be called inside the runtime.
pub fn start(sinks: &[AlertSink], events: &EventSender) -> Alerts {
    let open = Arc::new(Mutex::new(HashMap::new()));
    let tracker = tokio::spawn(track(open.clone(), events.subscribe()));
    let mut alerts = Alerts {
        sinks: Vec::new(),
        open,
        tracker: Some(tracker),
        host: hostname().into(),
    };
    alerts.reconfigure(sinks, events);
    alerts
}

impl Alerts {
    /// Replaces the sinks after a reload. A sink whose settings are unchanged keeps running
    /// (its open problems, repeats and queue included); a new or changed sink starts with
    /// every problem still open, delivered to it as firing.
    pub fn reconfigure(&mut self, sinks: &[AlertSink], events: &EventSender) {
        let mut old: Vec<Option<Running>> = self.sinks.drain(..).map(Some).collect();
        let mut next = Vec::with_capacity(sinks.len());
        for config in sinks {
            let kept = old
                .iter_mut()
                .find(|slot| slot.as_ref().is_some_and(|r| r.config == *config))
                .and_then(Option::take);
            match kept {
                Some(running) => next.push(running),
                None => {
                    // Subscribe before reading the open set: an event in between is then
                    // seen twice at worst, which the book's dedupe absorbs.
                    let receiver = events.subscribe();
                    let seed: Vec<Event> = match self.open.lock() {
                        Ok(open) => open.values().cloned().collect(),
                        Err(_) => Vec::new(),
                    };
                    match SinkTask::new(config, self.host.clone()) {
                        Ok(mut task) => {
                            let now = Instant::now();
                            for event in seed {
                                task.book.on_event(event, now);
                            }
                            tracing::info!(
                                kind = kind_name(config.kind),
                                url = %task.url_for_logs,
                                "alert sink"
                            );
                            next.push(Running {
                                config: config.clone(),
                                task: tokio::spawn(task.run(receiver)),
                            });
                        }
                        Err(err) => {
                            tracing::error!(url = %redact(&config.url), %err, "alert sink not started")
                        }
                    }
                }
            }
        }
        for running in old.into_iter().flatten() {
            running.task.abort();
        }
        self.sinks = next;
    }

    /// How many sinks are running.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        for running in &self.sinks {
            running.task.abort();
        }
        if let Some(tracker) = &self.tracker {
            tracker.abort();
        }
    }
}

/// Keeps the set of open problems for sinks that start later.
async fn track(open: Arc<Mutex<HashMap<Key, Event>>>, mut receiver: broadcast::Receiver<Event>) {
    loop {
        match receiver.recv().await {
            Ok(event) => {
                let Ok(mut open) = open.lock() else { return };
                if event.firing {
                    if open.len() < MAX_OPEN {
                        open.entry(event.key()).or_insert(event);
                    }
                } else {
                    open.remove(&event.key());
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "alert tracker missed events");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// One message to send: a transition, or a repeat of an open problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The firing or resolved event; for a repeat, a copy of the opening event with `at`
    /// set to the time of the repeat.
    pub event: Event,
    /// When the problem started (the opening event's time).
    pub starts_at_ms: u64,
    /// A resend of a problem already delivered.
    pub repeat: bool,
}

struct OpenProblem {
    opened: Event,
    next_repeat: Instant,
}

/// A sink's bookkeeping, without I/O: open problems, the queue and repeats.
pub struct Ledger {
    repeat: Duration,
    capacity: usize,
    open: HashMap<Key, OpenProblem>,
    queue: VecDeque<Delivery>,
    /// Deliveries dropped (queue full) and not yet reported.
    dropped: u64,
}

impl Ledger {
    pub fn new(repeat: Duration, capacity: usize) -> Ledger {
        Ledger {
            repeat,
            capacity: capacity.max(1),
            open: HashMap::new(),
            queue: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Books one event: a new problem or the end of an open one is queued; anything else
    /// (a repeated firing, the end of a problem this sink never saw) is not.
    pub fn on_event(&mut self, event: Event, now: Instant) {
        let key = event.key();
        if event.firing {
            if self.open.contains_key(&key) {
                return;
            }
            if self.open.len() < MAX_OPEN {
                self.open.insert(
                    key,
                    OpenProblem {
                        opened: event.clone(),
                        next_repeat: now + self.repeat,
                    },
                );
            }
            let starts_at_ms = event.at_unix_ms;
            self.push(Delivery {
                event,
                starts_at_ms,
                repeat: false,
            });
        } else if let Some(problem) = self.open.remove(&key) {
            // A repeat still waiting says nothing the resolution does not.
            self.queue
                .retain(|d| !(d.repeat && d.event.alertname == key.0 && d.event.labels == key.1));
            self.push(Delivery {
                event,
                starts_at_ms: problem.opened.at_unix_ms,
                repeat: false,
            });
        }
    }

    /// When the next repeat is due, if any problem is open.
    pub fn next_repeat(&self) -> Option<Instant> {
        self.open.values().map(|p| p.next_repeat).min()
    }

    /// Queues a repeat of every problem due by `now` (unless one is already waiting).
    pub fn on_repeat(&mut self, now: Instant) {
        let at_unix_ms = events::unix_ms(SystemTime::now());
        let mut due = Vec::new();
        for problem in self.open.values_mut() {
            if problem.next_repeat <= now {
                problem.next_repeat = now + self.repeat;
                due.push(problem.opened.clone());
            }
        }
        for opened in due {
            let waiting = self.queue.iter().any(|d| {
                d.event.firing
                    && d.event.alertname == opened.alertname
                    && d.event.labels == opened.labels
            });
            if waiting {
                continue;
            }
            let starts_at_ms = opened.at_unix_ms;
            self.push(Delivery {
                event: Event {
                    at_unix_ms,
                    ..opened
                },
                starts_at_ms,
                repeat: true,
            });
        }
    }

    fn push(&mut self, delivery: Delivery) {
        while self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(delivery);
    }

    /// Up to `max` deliveries, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<Delivery> {
        let n = max.min(self.queue.len());
        self.queue.drain(..n).collect()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn open_problems(&self) -> usize {
        self.open.len()
    }

    /// Drops counted since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

type Sending = Pin<Box<dyn Future<Output = Sent> + Send>>;

/// What became of one request (with its retries).
struct Sent {
    alerts: usize,
    attempts: u32,
    result: Result<(), String>,
}

struct SinkTask {
    kind: AlertKind,
    endpoint: Arc<str>,
    url_for_logs: String,
    client: reqwest::Client,
    retries: u32,
    host: Arc<str>,
    book: Ledger,
    drops: LogThrottle,
    failures: LogThrottle,
}

impl SinkTask {
    fn new(config: &AlertSink, host: Arc<str>) -> Result<SinkTask, SinkError> {
        // The system's roots for https:// receivers (reqwest wants one for http:// too).
        let tls = crate::probe::tls::TlsConfigs::default()
            .get(None)
            .map_err(SinkError::Client)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("pathdns/", env!("CARGO_PKG_VERSION"), " (alert)"))
            .build()
            .map_err(|err| SinkError::Client(error_chain(&err)))?;
        let (endpoint, repeat) = match config.kind {
            AlertKind::Webhook => (config.url.clone(), config.repeat_interval),
            AlertKind::Alertmanager => (
                format!("{}/api/v2/alerts", config.url),
                config.repeat_interval.min(ALERTMANAGER_REPEAT),
            ),
        };
        Ok(SinkTask {
            kind: config.kind,
            url_for_logs: redact(&endpoint),
            endpoint: endpoint.into(),
            client,
            retries: config.retries,
            host,
            book: Ledger::new(repeat, config.queue),
            drops: LogThrottle::new(WARN_EVERY),
            failures: LogThrottle::new(WARN_EVERY),
        })
    }

    async fn run(mut self, mut receiver: broadcast::Receiver<Event>) {
        let mut sending: Option<Sending> = None;
        loop {
            if sending.is_none() {
                sending = self.next_request();
            }
            let repeat_at = self.book.next_repeat();
            tokio::select! {
                received = receiver.recv() => match received {
                    Ok(event) => self.book.on_event(event, Instant::now()),
                    Err(RecvError::Lagged(missed)) => self.book.dropped += missed,
                    Err(RecvError::Closed) => return,
                },
                sent = in_flight(sending.as_mut()) => {
                    sending = None;
                    self.report(sent);
                }
                () = sleep_until(repeat_at) => self.book.on_repeat(Instant::now()),
            }
            let dropped = self.book.take_dropped();
            if let Some(count) = self.drops.note(dropped, Instant::now()) {
                tracing::warn!(
                    url = %self.url_for_logs,
                    dropped = count,
                    queue = self.book.capacity,
                    "alert queue full: dropped the oldest alerts (the receiver is down or slow)"
                );
            }
        }
    }

    fn next_request(&mut self) -> Option<Sending> {
        let batch = match self.kind {
            AlertKind::Webhook => 1,
            AlertKind::Alertmanager => ALERTMANAGER_BATCH,
        };
        let deliveries = self.book.take(batch);
        if deliveries.is_empty() {
            return None;
        }
        let body = match self.kind {
            AlertKind::Webhook => deliveries
                .first()
                .map(|d| serde_json::to_vec(&webhook_body(d, &self.host))),
            AlertKind::Alertmanager => {
                let alerts: Vec<AlertmanagerAlert> = deliveries
                    .iter()
                    .map(|d| alertmanager_alert(d, &self.host))
                    .collect();
                Some(serde_json::to_vec(&alerts))
            }
        };
        let body = match body {
            Some(Ok(body)) => body,
            Some(Err(err)) => {
                tracing::error!(%err, "cannot encode an alert");
                return None;
            }
            None => return None,
        };
        Some(Box::pin(send(
            self.client.clone(),
            self.endpoint.clone(),
            body,
            deliveries.len(),
            self.retries,
        )))
    }

    fn report(&mut self, sent: Sent) {
        match sent.result {
            Ok(()) => tracing::debug!(
                url = %self.url_for_logs,
                alerts = sent.alerts,
                attempts = sent.attempts,
                "alert delivered"
            ),
            Err(reason) => {
                if let Some(count) = self.failures.note(sent.alerts as u64, Instant::now()) {
                    tracing::warn!(
                        url = %self.url_for_logs,
                        attempts = sent.attempts,
                        reason,
                        undelivered = count,
                        "alert not delivered; dropped"
                    );
                }
            }
        }
    }
}

/// Posts `body`, retrying transient failures with exponential backoff.
async fn send(
    client: reqwest::Client,
    endpoint: Arc<str>,
    body: Vec<u8>,
    alerts: usize,
    retries: u32,
) -> Sent {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = post(&client, &endpoint, body.clone()).await;
        let retry = match &result {
            Ok(()) => false,
            Err(failure) => failure.transient && attempts <= retries,
        };
        if !retry {
            return Sent {
                alerts,
                attempts,
                result: result.map_err(|failure| failure.reason),
            };
        }
        tokio::time::sleep(backoff(attempts)).await;
    }
}

/// The wait after the `attempt`-th failed attempt (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_CAP)
}

struct Failure {
    reason: String,
    transient: bool,
}

async fn post(client: &reqwest::Client, endpoint: &str, body: Vec<u8>) -> Result<(), Failure> {
    let response = client
        .post(endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|err| Failure {
            reason: error_chain(&err),
            transient: true,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // Only a little of the answer, whatever its size: it is for the log line.
    let mut response = response;
    let excerpt = match response.chunk().await {
        Ok(Some(chunk)) => {
            let text = String::from_utf8_lossy(&chunk[..chunk.len().min(200)]);
            format!(": {}", text.trim())
        }
        _ => String::new(),
    };
    let code = status.as_u16();
    Err(Failure {
        reason: format!("status {code}{excerpt}"),
        // A client error other than timeout or rate limit will not go away by retrying.
        transient: !(status.is_client_error() || status.is_redirection())
            || code == 408
            || code == 429,
    })
}

/// The webhook body (schema version [`WEBHOOK_SCHEMA_VERSION`]); see the README.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    pub version: u32,
    pub source: &'static str,
    pub host: &'a str,
    pub alertname: &'a str,
    pub status: &'static str,
    pub severity: &'static str,
    pub repeat: bool,
    pub labels: &'a BTreeMap<String, String>,
    pub summary: &'a str,
    pub at: String,
    pub starts_at: String,
    pub ends_at: Option<String>,
}

pub fn webhook_body<'a>(delivery: &'a Delivery, host: &'a str) -> WebhookBody<'a> {
    let event = &delivery.event;
    WebhookBody {
        version: WEBHOOK_SCHEMA_VERSION,
        source: "pathdns",
        host,
        alertname: &event.alertname,
        status: if event.firing { "firing" } else { "resolved" },
        severity: severity(&event.alertname),
        repeat: delivery.repeat,
        labels: &event.labels,
        summary: &event.summary,
        at: rfc3339(event.at_unix_ms),
        starts_at: rfc3339(delivery.starts_at_ms),
        ends_at: (!event.firing).then(|| rfc3339(event.at_unix_ms)),
    }
}

/// One alert of Alertmanager's `POST /api/v2/alerts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

pub fn alertmanager_alert(delivery: &Delivery, host: &str) -> AlertmanagerAlert {
    let event = &delivery.event;
    let mut labels = event.labels.clone();
    labels.insert("alertname".into(), event.alertname.clone());
    labels.insert("instance".into(), host.to_owned());
    labels.insert("service".into(), "pathdns".into());
    labels.insert("severity".into(), severity(&event.alertname).into());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), event.summary.clone());
    AlertmanagerAlert {
        labels,
        annotations,
        starts_at: rfc3339(delivery.starts_at_ms),
        ends_at: (!event.firing).then(|| rfc3339(event.at_unix_ms)),
    }
}

/// `critical` when no target of a name answers; `warning` otherwise (a backup still does,
/// or the old config still serves).
pub fn severity(alertname: &str) -> &'static str {
    if alertname == events::ALL_TARGETS_DOWN {
        "critical"
    } else {
        "warning"
    }
}

fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

fn kind_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Webhook => "webhook",
        AlertKind::Alertmanager => "alertmanager",
    }
}

/// Scheme, host and port only: webhook paths and queries often carry a secret token.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let raw = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = raw.rsplit('@').next().unwrap_or(raw);
    let path = if rest.len() > raw.len() { "/…" } else { "" };
    format!("{scheme}://{authority}{path}")
}

/// The host name sent as `host` (webhook) and `instance` (Alertmanager): gethostname(2).
fn hostname() -> String {
    crate::host::hostname()
}

/// The delivery in flight finishing; never, when none is (a branch of the sink's select).
async fn in_flight(sending: Option<&mut Sending>) -> Sent {
    match sending {
        Some(sending) => sending.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(alertname: &str, firing: bool, target: &str, at_unix_ms: u64) -> Event {
        Event {
            alertname: alertname.into(),
            firing,
            labels: [("name", "reg.example"), ("target", target)]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            summary: format!("{target} {firing}"),
            at_unix_ms,
        }
    }

    #[test]
    fn one_delivery_per_transition() {
        let now = Instant::now();
        let mut book = Ledger::new(Duration::from_secs(3600), 16);
        book.on_event(event(events::TARGET_DOWN, true, "10.0.0.1", 1000), now);
        book.on_event(event(events::TARGET_DOWN, true, "10.0.0.1", 2000), now);
        book.on_event(event(events::TARGET_DOWN, true, "10.0.0.2", 2500), now);
        book.on_event(event(events::TARGET_DOWN, false, "10.0.0.1", 3000), now);
        book.on_event(event(events::TARGET_DOWN, false, "10.0.0.1", 4000), now);
        // Never opened here: nothing to resolve.
        book.on_event(event(events::FAILED_OVER, false, "10.0.0.1", 4000), now);
        let sent = book.take(100);
        let summary: Vec<(bool, &str, u64, u64)> = sent
            .iter()
            .map(|d| {
                (
                    d.event.firing,
                    d.event.labels["target"].as_str(),
                    d.event.at_unix_ms,
                    d.starts_at_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (true, "10.0.0.1", 1000, 1000),
                (true, "10.0.0.2", 2500, 2500),
                (false, "10.0.0.1", 3000, 1000),
            ]
        );
        assert_eq!(book.open_problems(), 1);
        // Reopened after it was resolved: a new transition.
        book.on_event(event(events::TARGET_DOWN, true, "10.0.0.1", 5000), now);
        assert_eq!(book.take(100).len(), 1);
    }

    #[test]
    fn open_problems_repeat_until_resolved() {
        let now = Instant::now();
        let repeat = Duration::from_secs(60);
        let mut book = Ledger::new(repeat, 16);
        book.on_event(event(events::TARGET_DOWN, true, "10.0.0.1", 1000), now);
        assert_eq!(book.next_repeat(), Some(now + repeat));
        book.on_repeat(now + Duration::from_secs(30));
        assert_eq!(book.queued(), 1, "not due yet");
        // The first delivery still waits: a repeat would say the same thing.
        book.on_repeat(now + repeat);
        assert_eq!(book.queued(), 1);
        assert!(!book.take(1)[0].repeat);
        book.on_repeat(now + repeat * 2);
        let repeats = book.take(10);
        assert_eq!(repeats.len(), 1);
        assert!(repeats[0].repeat && repeats[0].event.firing);
        assert_eq!(repeats[0].starts_at_ms, 1000);
        book.on_event(event(events::TARGET_DOWN, false, "10.0.0.1", 9000), now);
        assert_eq!(book.next_repeat(), None);
        let resolved = book.take(10);
        assert_eq!(resolved.len(), 1);
        assert!(!resolved[0].event.firing);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let now = Instant::now();
        let mut book = Ledger::new(Duration::from_secs(60), 3);
        for i in 0..10u64 {
            book.on_event(
                event(events::TARGET_DOWN, true, &format!("10.0.0.{i}"), i),
                now,
            );
        }
        assert_eq!(book.queued(), 3);
        assert_eq!(book.take_dropped(), 7);
        assert_eq!(book.take_dropped(), 0);
        let kept: Vec<u64> = book.take(10).iter().map(|d| d.event.at_unix_ms).collect();
        assert_eq!(kept, vec![7, 8, 9]);
        // Every problem is still open, so repeats will tell the receiver later.
        assert_eq!(book.open_problems(), 10);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(10), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn throttle_warns_once_a_minute_with_the_count() {
        let now = Instant::now();
        let mut throttle = LogThrottle::new(WARN_EVERY);
        assert_eq!(throttle.note(0, now), None);
        assert_eq!(throttle.note(2, now), Some(2));
        assert_eq!(throttle.note(5, now + Duration::from_secs(1)), None);
        assert_eq!(throttle.note(1, now + WARN_EVERY), Some(6));
    }

    #[test]
    fn bodies_follow_the_documented_schemas() {
        let delivery = Delivery {
            event: event(events::TARGET_DOWN, false, "10.0.0.1", 1_700_000_060_000),
            starts_at_ms: 1_700_000_000_000,
            repeat: false,
        };
        let webhook = serde_json::to_value(webhook_body(&delivery, "node-1")).expect("json");
        assert_eq!(
            webhook,
            serde_json::json!({
                "version": 1,
                "source": "pathdns",
                "host": "node-1",
                "alertname": "PathdnsTargetDown",
                "status": "resolved",
                "severity": "warning",
                "repeat": false,
                "labels": {"name": "reg.example", "target": "10.0.0.1"},
                "summary": "10.0.0.1 false",
                "at": "2023-11-14T22:14:20.000Z",
                "starts_at": "2023-11-14T22:13:20.000Z",
                "ends_at": "2023-11-14T22:14:20.000Z",
            })
        );
        let alert = serde_json::to_value(alertmanager_alert(&delivery, "node-1")).expect("json");
        assert_eq!(
            alert,
            serde_json::json!({
                "labels": {
                    "alertname": "PathdnsTargetDown",
                    "name": "reg.example",
                    "target": "10.0.0.1",
                    "instance": "node-1",
                    "service": "pathdns",
                    "severity": "warning",
                },
                "annotations": {"summary": "10.0.0.1 false"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:14:20.000Z",
            })
        );
        let firing = Delivery {
            event: event(events::ALL_TARGETS_DOWN, true, "10.0.0.1", 1),
            starts_at_ms: 1,
            repeat: true,
        };
        let alert = serde_json::to_value(alertmanager_alert(&firing, "h")).expect("json");
        assert!(
            alert.get("endsAt").is_none(),
            "firing alerts carry no endsAt"
        );
        assert_eq!(alert["labels"]["severity"], "critical");
        let webhook = serde_json::to_value(webhook_body(&firing, "h")).expect("json");
        assert_eq!(webhook["ends_at"], serde_json::Value::Null);
        assert_eq!(webhook["repeat"], true);
    }

    #[test]
    fn urls_in_logs_hide_paths_and_credentials() {
        assert_eq!(
            redact("https://hooks.example/services/T0/B0/secret?x=1"),
            "https://hooks.example/…"
        );
        assert_eq!(
            redact("http://user:pw@127.0.0.1:9093"),
            "http://127.0.0.1:9093"
        );
    }
}
