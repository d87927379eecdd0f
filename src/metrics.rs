//! Prometheus metrics.
//!
//! Owns: the registry and every metric's name, unit and help text. Must not: put a lock
//! on the DNS path.
//!
//! The DNS server counts into [`QueryStats`] (plain atomics); they are read at scrape time
//! by a collector. Probe, failover and reload metrics change a few times a second at most
//! and use prometheus-client's labelled families.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `pathdns_dns_queries_total` | counter | `source`, `qtype`, `rcode` |
//! | `pathdns_dns_response_duration_seconds` | histogram | |
//! | `pathdns_dns_dropped_packets_total` | counter | |
//! | `pathdns_cache_hits_total` | counter | |
//! | `pathdns_cache_misses_total` | counter | |
//! | `pathdns_upstream_errors_total` | counter | |
//! | `pathdns_rebinding_stripped_records_total` | counter | |
//! | `pathdns_stale_answers_total` | counter | |
//! | `pathdns_upstream_overflows_total` | counter | |
//! | `pathdns_tcp_rejected_connections_total` | counter | |
//! | `pathdns_probe_runs_total` | counter | `name`, `target`, `probe`, `result` |
//! | `pathdns_probe_rtt_seconds` | gauge | `name`, `target`, `probe` |
//! | `pathdns_target_up` | gauge | `name`, `target` |
//! | `pathdns_failovers_total` | counter | `name` |
//! | `pathdns_name_answering_group` | gauge | `name` |
//! | `pathdns_realm_unanswered` | gauge (1) | `name`, `realm` |
//! | `pathdns_connections_aborted_total` | counter | `name`, `target`, `reason` |
//! | `pathdns_abort_stalled_available` | gauge (0/1) | |
//! | `pathdns_config_reloads_total` | counter | `result` |
//! | `pathdns_discovery_rounds_total` | counter | `name`, `result` |
//! | `pathdns_discovered_address_changes_total` | counter | `name` |
//! | `pathdns_discovered_addresses` | gauge | `name` |
//! | `pathdns_config_info` | gauge (1) | `hash` |
//! | `pathdns_config_last_reload_success_timestamp_seconds` | gauge | |
//! | `pathdns_watchdog_late_total` | counter | |
//! | `pathdns_watchdog_self_query_seconds` | gauge | |
//! | `pathdns_build_info` | gauge (1) | `version` |

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::dns::stats::{QueryStats, Snapshot};

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProbeRunLabels {
    name: String,
    target: String,
    probe: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProbeLabels {
    name: String,
    target: String,
    probe: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetLabels {
    name: String,
    target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AbortLabels {
    name: String,
    target: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RoundLabels {
    name: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RealmLabels {
    name: String,
    realm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConfigLabels {
    hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EffectLabels {
    effect: &'static str,
}

/// Every metric pathdns exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queries: Arc<QueryStats>,
    probe_runs: Family<ProbeRunLabels, Counter>,
    probe_rtt: Family<ProbeLabels, Gauge<f64, AtomicU64>>,
    target_up: Family<TargetLabels, Gauge>,
    failovers: Family<NameLabels, Counter>,
    answering_group: Family<NameLabels, Gauge>,
    realms: Family<RealmLabels, Gauge>,
    reloads: Family<ReloadLabels, Counter>,
    config: ConfigMetrics,
    watchdog: WatchdogMetrics,
    path_changes: Family<EffectLabels, Counter>,
    aborted: Family<AbortLabels, Counter>,
    abort_available: Gauge,
    discovery: DiscoveryMetrics,
}

/// Discovery's metrics (`discover`): few series, one set per asked name.
#[derive(Debug, Default)]
struct DiscoveryMetrics {
    rounds: Family<RoundLabels, Counter>,
    changes: Family<NameLabels, Counter>,
    addresses: Family<NameLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let queries = Arc::new(QueryStats::new());
        registry.register_collector(Box::new(QueryCollector(queries.clone())));
        let probe_runs = Family::<ProbeRunLabels, Counter>::default();
        // Counters get `_total` from the encoder, gauges and histograms nothing.
        registry.register(
            "pathdns_probe_runs",
            "Probe runs per owned name and target, by probe kind and result (ok or \
             fail); a probe shared by several names (an OSS name, its bucket and wildcard) counts \
             under each",
            probe_runs.clone(),
        );
        let probe_rtt = Family::<ProbeLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "pathdns_probe_rtt_seconds",
            "Round-trip time of the last successful probe run",
            probe_rtt.clone(),
        );
        let target_up = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "pathdns_target_up",
            "1 when every probe of the target is up, 0 when one is down; absent while \
             unknown (not probed yet, or a static answer)",
            target_up.clone(),
        );
        let failovers = Family::<NameLabels, Counter>::default();
        registry.register(
            "pathdns_failovers",
            "Times a name's answer moved to a lower-priority target group",
            failovers.clone(),
        );
        let (answering_group, realms) = register_names(&mut registry);
        let reloads = register_reloads(&mut registry);
        let config = ConfigMetrics::register(&mut registry);
        let watchdog = WatchdogMetrics::register(&mut registry);
        let path_changes = register_path_changes(&mut registry);
        let (aborted, abort_available) = register_aborts(&mut registry);
        let discovery = DiscoveryMetrics::register(&mut registry);
        registry.register(
            "pathdns_build",
            "The running pathdns version (always 1)",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            queries,
            probe_runs,
            probe_rtt,
            target_up,
            failovers,
            answering_group,
            realms,
            reloads,
            config,
            watchdog,
            path_changes,
            aborted,
            abort_available,
            discovery,
        }
    }

    /// One discovery round for the asked `name`: a usable answer (`ok`) or none.
    pub fn discovery_round(&self, name: &str, ok: bool) {
        let result = if ok { "ok" } else { "fail" };
        self.discovery
            .rounds
            .get_or_create(&RoundLabels {
                name: name.to_owned(),
                result,
            })
            .inc();
    }

    /// The asked `name`'s last good addresses changed; `count` of them now.
    pub fn discovered(&self, name: &str, count: usize, changed: bool) {
        let labels = NameLabels {
            name: name.to_owned(),
        };
        if changed {
            self.discovery.changes.get_or_create(&labels).inc();
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.discovery.addresses.get_or_create(&labels).set(count);
    }

    /// The DNS server's counters: give these to the [`crate::dns::Handler`].
    pub fn queries(&self) -> Arc<QueryStats> {
        self.queries.clone()
    }

    /// One probe run against `target` for `name`.
    pub fn probe_ran(
        &self,
        name: &str,
        target: IpAddr,
        probe: &str,
        ok: bool,
        rtt: Option<Duration>,
    ) {
        let labels = ProbeLabels {
            name: name.to_owned(),
            target: target.to_string(),
            probe: probe.to_owned(),
        };
        if let (true, Some(rtt)) = (ok, rtt) {
            self.probe_rtt.get_or_create(&labels).set(rtt.as_secs_f64());
        }
        let ProbeLabels {
            name,
            target,
            probe,
        } = labels;
        let result = if ok { "ok" } else { "fail" };
        self.probe_runs
            .get_or_create(&ProbeRunLabels {
                name,
                target,
                probe,
                result,
            })
            .inc();
    }

    /// A target's combined verdict: `Some(true)` up, `Some(false)` down, `None` unknown.
    pub fn target_state(&self, name: &str, target: IpAddr, up: Option<bool>) {
        let labels = TargetLabels {
            name: name.to_owned(),
            target: target.to_string(),
        };
        match up {
            Some(up) => {
                self.target_up.get_or_create(&labels).set(i64::from(up));
            }
            None => {
                self.target_up.remove(&labels);
            }
        }
    }

    /// A name's answer moved to a lower-priority group.
    pub fn failed_over(&self, name: &str) {
        self.failovers
            .get_or_create(&NameLabels {
                name: name.to_owned(),
            })
            .inc();
    }

    /// Forgets per-target and per-name gauges: a new config's names and targets start
    /// unknown (its supervisor sets what it knows again at once).
    pub fn forget_targets(&self) {
        self.target_up.clear();
        self.probe_rtt.clear();
        self.answering_group.clear();
        self.realms.clear();
    }

    /// The priority group answering a probed name: its index among the name's groups (0
    /// the primary, 1 the first backup, ...), -1 while every target is down and the
    /// `when_all_down` policy answers, `None` (no series) for a name without probes.
    pub fn answering_group(&self, name: &str, index: Option<i64>) {
        let labels = NameLabels {
            name: name.to_owned(),
        };
        match index {
            Some(index) => {
                self.answering_group.get_or_create(&labels).set(index);
            }
            None => {
                self.answering_group.remove(&labels);
            }
        }
    }

    /// The token realm a name's https probe found is not an owned name (`true`), or the
    /// series for that realm goes (`false`).
    pub fn realm_unanswered(&self, name: &str, realm: &str, unanswered: bool) {
        let labels = RealmLabels {
            name: name.to_owned(),
            realm: realm.to_owned(),
        };
        if unanswered {
            self.realms.get_or_create(&labels).set(1);
        } else {
            self.realms.remove(&labels);
        }
    }

    /// A config was loaded and serves from now on (at start, and each accepted reload):
    /// `hash` is [`crate::config::Config::hash`].
    pub fn config_loaded(&self, hash: &str, at: std::time::SystemTime) {
        self.config.info.clear();
        self.config
            .info
            .get_or_create(&ConfigLabels {
                hash: hash.to_owned(),
            })
            .set(1);
        let seconds = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.config.loaded.set(seconds);
    }

    /// One watchdog self-query: how long it took (answered or not).
    pub fn watchdog_self_query(&self, took: Duration) {
        self.watchdog.self_query.set(took.as_secs_f64());
    }

    /// A `WATCHDOG=1` sent late ([`crate::systemd::watchdog`] says when that is).
    pub fn watchdog_late(&self) {
        self.watchdog.late.inc();
    }

    /// One burst of kernel notifications: it woke probes (`true`) or changed nothing probed.
    pub fn path_change(&self, probed: bool) {
        let effect = if probed { "probed" } else { "none" };
        self.path_changes
            .get_or_create(&EffectLabels { effect })
            .inc();
    }

    /// One connection ended by `abort_stalled`.
    pub fn connection_aborted(&self, name: &str, target: IpAddr, reason: &'static str) {
        self.aborted
            .get_or_create(&AbortLabels {
                name: name.to_owned(),
                target: target.to_string(),
                reason,
            })
            .inc();
    }

    pub fn abort_stalled_available(&self, available: bool) {
        self.abort_available.set(i64::from(available));
    }

    /// One config reload: accepted (`true`) or rejected.
    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "rejected" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The encoded lines that start with `prefix` (for tests).
    #[cfg(test)]
    pub(crate) fn lines_starting(&self, prefix: &str) -> Vec<String> {
        let text = self.encode().expect("encode");
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Per-name gauges of probed names: the answering group, and token realms no owned name
/// answers.
fn register_names(
    registry: &mut Registry,
) -> (Family<NameLabels, Gauge>, Family<RealmLabels, Gauge>) {
    let answering_group = Family::<NameLabels, Gauge>::default();
    registry.register(
        "pathdns_name_answering_group",
        "The priority group a probed name answers from: 0 the primary group, 1 the first \
         backup, ...; -1 while every target is down (when_all_down answers); absent for a \
         name without probes",
        answering_group.clone(),
    );
    let realms = Family::<RealmLabels, Gauge>::default();
    registry.register(
        "pathdns_realm_unanswered",
        "1 while the token realm that the name's https probe found (the registry's \
         WWW-Authenticate) is not an owned name, so `docker login` resolves it upstream; \
         absent otherwise",
        realms.clone(),
    );
    (answering_group, realms)
}

/// The serving config's identity and when it was loaded.
#[derive(Debug)]
struct ConfigMetrics {
    info: Family<ConfigLabels, Gauge>,
    loaded: Gauge<f64, AtomicU64>,
}

impl ConfigMetrics {
    fn register(registry: &mut Registry) -> ConfigMetrics {
        let info = Family::<ConfigLabels, Gauge>::default();
        registry.register(
            "pathdns_config_info",
            "The serving config (always 1): hash is the first 16 hex digits of the SHA-256 \
             of the config file's bytes (sha256sum of the file)",
            info.clone(),
        );
        let loaded = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "pathdns_config_last_reload_success_timestamp_seconds",
            "When the serving config was loaded (at start or by the last accepted reload), \
             in seconds since the Unix epoch",
            loaded.clone(),
        );
        ConfigMetrics { info, loaded }
    }
}

/// The systemd watchdog's margins.
#[derive(Debug)]
struct WatchdogMetrics {
    late: Counter,
    self_query: Gauge<f64, AtomicU64>,
}

impl WatchdogMetrics {
    fn register(registry: &mut Registry) -> WatchdogMetrics {
        let late = Counter::default();
        registry.register(
            "pathdns_watchdog_late",
            "WATCHDOG=1 pings sent more than 3/4 of WATCHDOG_USEC after the previous one \
             (less than a quarter of the timeout was left before systemd would have \
             restarted pathdns)",
            late.clone(),
        );
        let self_query = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "pathdns_watchdog_self_query_seconds",
            "How long the watchdog's last DNS self-query took (answered or timed out); 0 \
             while no watchdog runs (no WATCHDOG_USEC)",
            self_query.clone(),
        );
        WatchdogMetrics { late, self_query }
    }
}

/// `abort_stalled`'s metrics: the connections ended, and whether it can end any.
fn register_aborts(registry: &mut Registry) -> (Family<AbortLabels, Counter>, Gauge) {
    let aborted = Family::<AbortLabels, Counter>::default();
    registry.register(
        "pathdns_connections_aborted",
        "Stalled TCP connections of this host to a down target that pathdns ended \
             (abort_stalled), by owned name, target and reason (connecting, retransmitting, \
             unanswered, silent)",
        aborted.clone(),
    );
    let abort_available = Gauge::default();
    registry.register(
        "pathdns_abort_stalled_available",
        "1 when pathdns can end stalled connections (CAP_NET_ADMIN and a kernel with \
             SOCK_DESTROY), 0 when it cannot; 0 until its self-check at start answers",
        abort_available.clone(),
    );
    (aborted, abort_available)
}

fn register_reloads(registry: &mut Registry) -> Family<ReloadLabels, Counter> {
    let reloads = Family::<ReloadLabels, Counter>::default();
    // Both series exist from the start, so that an alert on `rejected` can use rate().
    for result in ["ok", "rejected"] {
        drop(reloads.get_or_create(&ReloadLabels { result }));
    }
    registry.register(
        "pathdns_config_reloads",
        "Config reloads (SIGHUP) by result: ok, or rejected (the previous config kept \
         serving)",
        reloads.clone(),
    );
    reloads
}

fn register_path_changes(registry: &mut Registry) -> Family<EffectLabels, Counter> {
    let path_changes = Family::<EffectLabels, Counter>::default();
    for effect in ["probed", "none"] {
        drop(path_changes.get_or_create(&EffectLabels { effect }));
    }
    registry.register(
        "pathdns_path_changes",
        "Bursts of kernel link, route and address notifications, by effect: probed (a \
         probed target's local path changed and its probes ran at once) or none",
        path_changes.clone(),
    );
    path_changes
}

impl DiscoveryMetrics {
    fn register(registry: &mut Registry) -> DiscoveryMetrics {
        let metrics = DiscoveryMetrics::default();
        registry.register(
            "pathdns_discovery_rounds",
            "Discovery rounds per asked name (discover): ok when a discovery server gave a \
             usable answer, fail when none did",
            metrics.rounds.clone(),
        );
        registry.register(
            "pathdns_discovered_address_changes",
            "Times a name's discovered (and verified) addresses changed",
            metrics.changes.clone(),
        );
        registry.register(
            "pathdns_discovered_addresses",
            "How many last good discovered addresses a name has (from discovery or the state \
             file)",
            metrics.addresses.clone(),
        );
        metrics
    }
}

/// Reads the DNS counters at scrape time.
#[derive(Debug)]
struct QueryCollector(Arc<QueryStats>);

impl Collector for QueryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        encode_responses(&mut encoder, &snapshot)?;
        for (name, help, value) in plain_counters(&snapshot) {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// The responses by source, type and code, and their latency histogram.
fn encode_responses(
    encoder: &mut DescriptorEncoder,
    snapshot: &Snapshot,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "pathdns_dns_queries",
        "DNS responses sent, by source (owned, forwarded, refused, error), query type \
         and response code.",
        None,
        MetricType::Counter,
    )?;
    for ((source, qtype, rcode), count) in snapshot.queries() {
        let labels = [("source", source), ("qtype", qtype), ("rcode", rcode)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }

    let mut histogram = encoder.encode_descriptor(
        "pathdns_dns_response_duration_seconds",
        "Time from receiving a DNS query to its response written to the socket.",
        None,
        MetricType::Histogram,
    )?;
    histogram.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        snapshot.latency_seconds,
        snapshot.responses(),
        &snapshot.latency_buckets(),
        None,
    )
}

/// The DNS path's counters without labels: (name, help, value).
fn plain_counters(snapshot: &Snapshot) -> [(&'static str, &'static str, u64); 8] {
    [
        (
            "pathdns_dns_dropped_packets",
            "Packets that got no response: not a DNS query, or malformed from a client \
             outside the allow list.",
            snapshot.dropped,
        ),
        (
            "pathdns_cache_hits",
            "Forwarded names answered from the cache.",
            snapshot.cache_hits,
        ),
        (
            "pathdns_cache_misses",
            "Forwarded names not in the cache (sent upstream).",
            snapshot.cache_misses,
        ),
        (
            "pathdns_upstream_errors",
            "Forwarded queries no upstream answered in time (answered SERVFAIL).",
            snapshot.upstream_errors,
        ),
        (
            "pathdns_rebinding_stripped_records",
            "Private A and AAAA records taken out of forwarded answers to public names \
             (rebinding protection).",
            snapshot.rebinding_stripped,
        ),
        (
            "pathdns_stale_answers",
            "Forwarded queries answered with an expired cached answer (RFC 8767 \
             serve-stale, TTL 30 s) because the upstreams failed or did not answer in time.",
            snapshot.stale_answers,
        ),
        (
            "pathdns_upstream_overflows",
            "Forwarded queries answered SERVFAIL at once because upstream.max_in_flight \
             queries were already waiting on upstreams.",
            snapshot.upstream_overflows,
        ),
        (
            "pathdns_tcp_rejected_connections",
            "TCP connections closed as soon as accepted because \
             server.max_tcp_connections were open.",
            snapshot.tcp_rejected,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::stats::Source;

    #[test]
    fn every_metric_is_exported_with_its_type() {
        let metrics = Metrics::new();
        let stats = metrics.queries();
        stats.answered(Source::Owned, 1, 0);
        stats.observe(Duration::from_micros(30));
        stats.cache_hit();
        stats.stale_answer();
        let target: IpAddr = [127, 0, 0, 5].into();
        metrics.probe_ran(
            "reg.example",
            target,
            "tcp",
            true,
            Some(Duration::from_millis(2)),
        );
        metrics.target_state("reg.example", target, Some(true));
        metrics.failed_over("reg.example");
        metrics.record_reload(true);
        let text = metrics.encode().expect("encode");
        for line in [
            "# TYPE pathdns_dns_queries_total counter",
            "pathdns_dns_queries_total{source=\"owned\",qtype=\"A\",rcode=\"NOERROR\"} 1",
            "# TYPE pathdns_dns_response_duration_seconds histogram",
            "pathdns_dns_response_duration_seconds_bucket{le=\"5e-05\"} 1",
            "pathdns_dns_response_duration_seconds_bucket{le=\"+Inf\"} 1",
            "pathdns_dns_response_duration_seconds_count 1",
            "pathdns_cache_hits_total 1",
            "pathdns_cache_misses_total 0",
            "pathdns_upstream_errors_total 0",
            "pathdns_rebinding_stripped_records_total 0",
            "pathdns_stale_answers_total 1",
            "pathdns_upstream_overflows_total 0",
            "pathdns_tcp_rejected_connections_total 0",
            "pathdns_probe_runs_total{name=\"reg.example\",target=\"127.0.0.5\",probe=\"tcp\",result=\"ok\"} 1",
            "pathdns_probe_rtt_seconds{name=\"reg.example\",target=\"127.0.0.5\",probe=\"tcp\"} 0.002",
            "pathdns_target_up{name=\"reg.example\",target=\"127.0.0.5\"} 1",
            "pathdns_failovers_total{name=\"reg.example\"} 1",
            "pathdns_config_reloads_total{result=\"ok\"} 1",
            "pathdns_config_reloads_total{result=\"rejected\"} 0",
            "# TYPE pathdns_build_info gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        metrics.target_state("reg.example", target, None);
        let text = metrics.encode().expect("encode");
        assert!(!text.contains("pathdns_target_up{"), "{text}");
    }

    #[test]
    fn the_answering_group_is_a_gauge_per_probed_name() {
        let metrics = Metrics::new();
        metrics.answering_group("reg.example", Some(1));
        metrics.answering_group("auth.example", Some(-1));
        metrics.answering_group("static.example", None);
        assert_eq!(
            metrics.lines_starting("# TYPE pathdns_name_answering_group"),
            ["# TYPE pathdns_name_answering_group gauge"]
        );
        let mut lines = metrics.lines_starting("pathdns_name_answering_group{");
        lines.sort();
        assert_eq!(
            lines,
            [
                "pathdns_name_answering_group{name=\"auth.example\"} -1",
                "pathdns_name_answering_group{name=\"reg.example\"} 1",
            ]
        );
        metrics.answering_group("reg.example", None);
        metrics.forget_targets();
        assert_eq!(
            metrics.lines_starting("pathdns_name_answering_group{"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_config_hash_and_load_time_are_replaced_on_each_load() {
        let metrics = Metrics::new();
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        metrics.config_loaded("0123456789abcdef", at);
        metrics.config_loaded("fedcba9876543210", at + Duration::from_secs(5));
        assert_eq!(
            metrics.lines_starting("pathdns_config_info"),
            ["pathdns_config_info{hash=\"fedcba9876543210\"} 1"],
            "only the serving config's hash"
        );
        assert_eq!(
            metrics.lines_starting("pathdns_config_last_reload_success_timestamp_seconds "),
            ["pathdns_config_last_reload_success_timestamp_seconds 1700000005.0"]
        );
    }

    #[test]
    fn the_watchdog_counts_late_pings_and_shows_the_last_self_query() {
        let metrics = Metrics::new();
        assert_eq!(
            metrics.lines_starting("pathdns_watchdog_late_total"),
            ["pathdns_watchdog_late_total 0"]
        );
        metrics.watchdog_late();
        metrics.watchdog_late();
        metrics.watchdog_self_query(Duration::from_millis(3));
        assert_eq!(
            metrics.lines_starting("pathdns_watchdog_late_total"),
            ["pathdns_watchdog_late_total 2"]
        );
        assert_eq!(
            metrics.lines_starting("pathdns_watchdog_self_query_seconds"),
            ["pathdns_watchdog_self_query_seconds 0.003"]
        );
    }

    #[test]
    fn an_unanswered_realm_is_one_series_until_taken_back() {
        let metrics = Metrics::new();
        metrics.realm_unanswered("reg.example", "auth.example", true);
        assert_eq!(
            metrics.lines_starting("pathdns_realm_unanswered{"),
            ["pathdns_realm_unanswered{name=\"reg.example\",realm=\"auth.example\"} 1"]
        );
        metrics.realm_unanswered("reg.example", "auth.example", false);
        assert_eq!(
            metrics.lines_starting("pathdns_realm_unanswered{"),
            Vec::<String>::new()
        );
    }
}
