//! Query counters for the DNS hot path: plain atomics in fixed arrays, no lock, no
//! allocation, no map lookup per query.
//!
//! Owns: what is counted per query (source, query type bucket, response code), the response
//! latency histogram (fixed buckets, receipt to response written), cache hits and misses,
//! upstream failures, stale answers served, the records the rebinding filter stripped, and
//! what the resource caps turned away. Must not: know about Prometheus; `metrics` reads [`QueryStats`]
//! at scrape time through [`QueryStats::snapshot`].
//!
//! The counters are sharded by thread (threads take the shards round-robin, each shard on
//! cache lines of its own) so that serving threads on different cores rarely write the
//! same cache line; a scrape adds the shards up.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_CNAME, TYPE_SOA};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Source {
    /// An owned name, answered from the answer table.
    Owned = 0,
    /// A name that needed upstream data: from the cache or from an upstream (including an
    /// owned CNAME whose target is resolved upstream, and SERVFAIL when no upstream answered).
    Forwarded = 1,
    /// Refused by pathdns: a client outside the allow list, a class other than IN, a zone
    /// transfer of an owned name.
    Refused = 2,
    /// A query pathdns could not serve: malformed (FORMERR), an unknown opcode (NOTIMP), an
    /// EDNS version it does not speak (BADVERS).
    Error = 3,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Owned,
        Source::Forwarded,
        Source::Refused,
        Source::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Source::Owned => "owned",
            Source::Forwarded => "forwarded",
            Source::Refused => "refused",
            Source::Error => "error",
        }
    }
}

/// Query types counted on their own; every other type is "other".
const QTYPES: [(u16, &str); 10] = [
    (TYPE_A, "A"),
    (TYPE_AAAA, "AAAA"),
    (TYPE_CNAME, "CNAME"),
    (TYPE_SOA, "SOA"),
    (TYPE_ANY, "ANY"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (33, "SRV"),
    (65, "HTTPS"),
];
const QTYPE_BUCKETS: usize = QTYPES.len() + 1;

/// Response codes 0..=5 by name, then "other".
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

const SOURCES: usize = Source::ALL.len();
const CELLS: usize = SOURCES * QTYPE_BUCKETS * RCODES.len();

/// Upper bounds of the latency buckets, in seconds (the last bucket, +Inf, is implicit).
/// Owned answers and cache hits land in the first few; upstream trips further up.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS.len() + 1;
const LATENCY_BOUNDS_NANOS: [u64; 16] = {
    let mut nanos = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        nanos[i] = (LATENCY_BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// Shards: enough that a few serving threads rarely share one.
const SHARDS: usize = 8;

/// One thread's counters, on cache lines of its own.
#[repr(align(128))]
struct Shard {
    queries: [AtomicU64; CELLS],
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_nanos: AtomicU64,
    dropped: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    upstream_errors: AtomicU64,
    rebinding_stripped: AtomicU64,
    stale_answers: AtomicU64,
    upstream_overflows: AtomicU64,
    tcp_rejected: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            queries: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_nanos: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            rebinding_stripped: AtomicU64::new(0),
            stale_answers: AtomicU64::new(0),
            upstream_overflows: AtomicU64::new(0),
            tcp_rejected: AtomicU64::new(0),
        }
    }
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard: assigned round-robin on first use, then a thread-local read.
fn shard_index() -> usize {
    SHARD.with(|cell| {
        let index = cell.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        cell.set(index);
        index
    })
}

/// Every query counter of the DNS server.
pub struct QueryStats {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for QueryStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStats").finish_non_exhaustive()
    }
}

impl Default for QueryStats {
    fn default() -> QueryStats {
        QueryStats::new()
    }
}

impl QueryStats {
    pub fn new() -> QueryStats {
        QueryStats {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
        }
    }

    fn shard(&self) -> &Shard {
        // Never out of bounds: the index is taken modulo SHARDS and there are SHARDS shards.
        &self.shards[shard_index() % self.shards.len()]
    }

    /// Counts one response: who answered, the query type, and the response's rcode bits.
    #[inline]
    pub fn answered(&self, source: Source, qtype: u16, rcode: u8) {
        let index = cell(source, qtype_bucket(qtype), rcode_bucket(rcode));
        self.shard().queries[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one response from its wire bytes (the rcode is in the header).
    #[inline]
    pub fn answered_with(&self, source: Source, qtype: u16, response: &[u8]) {
        let rcode = response.get(3).map_or(u8::MAX, |flags| flags & 0x0f);
        self.answered(source, qtype, rcode);
    }

    /// A packet that got no response (not a query, or malformed from a client not allowed).
    #[inline]
    pub fn dropped(&self) {
        self.shard().dropped.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn cache_hit(&self) {
        self.shard().cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn cache_miss(&self) {
        self.shard().cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// A forwarded query that no upstream answered in time (the client got SERVFAIL).
    #[inline]
    pub fn upstream_error(&self) {
        self.shard().upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Private addresses the rebinding filter took out of a forwarded answer.
    #[inline]
    pub fn rebinding_stripped(&self, records: usize) {
        if records > 0 {
            self.shard()
                .rebinding_stripped
                .fetch_add(records as u64, Ordering::Relaxed);
        }
    }

    /// A forwarded query answered with an expired answer (RFC 8767) because the upstreams
    /// failed or were too slow.
    #[inline]
    pub fn stale_answer(&self) {
        self.shard().stale_answers.fetch_add(1, Ordering::Relaxed);
    }

    /// A forwarded query answered SERVFAIL at once: `max_in_flight` were already waiting.
    #[inline]
    pub fn upstream_overflow(&self) {
        self.shard()
            .upstream_overflows
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A TCP connection closed as soon as it was accepted: `max_tcp_connections` were open.
    #[inline]
    pub fn tcp_rejected(&self) {
        self.shard().tcp_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time from receiving a query (`received`) to its response written now.
    #[inline]
    pub fn responded(&self, received: Instant) {
        self.observe(received.elapsed());
    }

    #[inline]
    pub fn observe(&self, took: Duration) {
        self.observe_many(took, 1);
    }

    /// Records `count` responses that each took `took` (a batch sent together).
    #[inline]
    pub fn observe_many(&self, took: Duration, count: u64) {
        if count == 0 {
            return;
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(LATENCY_BOUNDS_NANOS.len());
        let shard = self.shard();
        shard.latency[bucket].fetch_add(count, Ordering::Relaxed);
        shard
            .latency_nanos
            .fetch_add(nanos.saturating_mul(count), Ordering::Relaxed);
    }

    /// The sums over every shard, for a scrape. Counters read one by one: a scrape taken
    /// during traffic may be a few queries apart between series, never wrong over time.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            queries: vec![0; CELLS],
            latency: [0; LATENCY_BUCKETS],
            latency_seconds: 0.0,
            dropped: 0,
            cache_hits: 0,
            cache_misses: 0,
            upstream_errors: 0,
            rebinding_stripped: 0,
            stale_answers: 0,
            upstream_overflows: 0,
            tcp_rejected: 0,
        };
        let mut nanos: u64 = 0;
        for shard in self.shards.iter() {
            for (sum, counter) in snapshot.queries.iter_mut().zip(&shard.queries) {
                *sum += counter.load(Ordering::Relaxed);
            }
            for (sum, counter) in snapshot.latency.iter_mut().zip(&shard.latency) {
                *sum += counter.load(Ordering::Relaxed);
            }
            nanos = nanos.wrapping_add(shard.latency_nanos.load(Ordering::Relaxed));
            snapshot.dropped += shard.dropped.load(Ordering::Relaxed);
            snapshot.cache_hits += shard.cache_hits.load(Ordering::Relaxed);
            snapshot.cache_misses += shard.cache_misses.load(Ordering::Relaxed);
            snapshot.upstream_errors += shard.upstream_errors.load(Ordering::Relaxed);
            snapshot.rebinding_stripped += shard.rebinding_stripped.load(Ordering::Relaxed);
            snapshot.stale_answers += shard.stale_answers.load(Ordering::Relaxed);
            snapshot.upstream_overflows += shard.upstream_overflows.load(Ordering::Relaxed);
            snapshot.tcp_rejected += shard.tcp_rejected.load(Ordering::Relaxed);
        }
        snapshot.latency_seconds = nanos as f64 / 1e9;
        snapshot
    }
}

fn cell(source: Source, qtype: usize, rcode: usize) -> usize {
    (source as usize * QTYPE_BUCKETS + qtype) * RCODES.len() + rcode
}

fn qtype_bucket(qtype: u16) -> usize {
    QTYPES
        .iter()
        .position(|(code, _)| *code == qtype)
        .unwrap_or(QTYPES.len())
}

fn rcode_bucket(rcode: u8) -> usize {
    usize::from(rcode).min(RCODES.len() - 1)
}

/// Summed counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    queries: Vec<u64>,
    /// Per bucket (not cumulative), the last one +Inf.
    pub latency: [u64; LATENCY_BUCKETS],
    pub latency_seconds: f64,
    pub dropped: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub upstream_errors: u64,
    pub rebinding_stripped: u64,
    pub stale_answers: u64,
    pub upstream_overflows: u64,
    pub tcp_rejected: u64,
}

impl Snapshot {
    /// Every (source, qtype, rcode) with a non-zero count.
    pub fn queries(
        &self,
    ) -> impl Iterator<Item = ((&'static str, &'static str, &'static str), u64)> + '_ {
        Source::ALL.iter().flat_map(move |source| {
            (0..QTYPE_BUCKETS).flat_map(move |qtype| {
                (0..RCODES.len()).filter_map(move |rcode| {
                    let count = *self.queries.get(cell(*source, qtype, rcode))?;
                    let qtype_label = QTYPES.get(qtype).map_or("other", |(_, label)| *label);
                    (count > 0).then(|| ((source.label(), qtype_label, RCODES[rcode]), count))
                })
            })
        })
    }

    /// Histogram buckets as (upper bound, count in this bucket), +Inf last.
    pub fn latency_buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.latency.iter().copied())
            .collect()
    }

    pub fn responses(&self) -> u64 {
        self.latency.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_cells() {
        let stats = QueryStats::new();
        stats.answered(Source::Owned, TYPE_A, 0);
        stats.answered(Source::Owned, TYPE_A, 0);
        stats.answered(Source::Forwarded, 99, 3);
        stats.answered(Source::Error, 0, 14);
        let counts: Vec<_> = stats.snapshot().queries().collect();
        assert_eq!(
            counts,
            vec![
                (("owned", "A", "NOERROR"), 2),
                (("forwarded", "other", "NXDOMAIN"), 1),
                (("error", "other", "other"), 1),
            ]
        );
    }

    #[test]
    fn counts_from_every_thread_add_up() {
        let stats = std::sync::Arc::new(QueryStats::new());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stats.answered(Source::Owned, TYPE_AAAA, 0);
                        stats.cache_hit();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("counting thread");
        }
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot.queries().collect::<Vec<_>>(),
            vec![(("owned", "AAAA", "NOERROR"), 12_000)]
        );
        assert_eq!(snapshot.cache_hits, 12_000);
    }

    #[test]
    fn latency_buckets_are_inclusive_upper_bounds() {
        let stats = QueryStats::new();
        stats.observe(Duration::from_micros(50));
        stats.observe(Duration::from_micros(51));
        stats.observe(Duration::from_secs(10));
        let snapshot = stats.snapshot();
        let buckets = snapshot.latency_buckets();
        assert_eq!(buckets[0], (0.000_05, 1));
        assert_eq!(buckets[1], (0.000_1, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(snapshot.responses(), 3);
        assert!((snapshot.latency_seconds - 10.000_101).abs() < 1e-9);
    }

    #[test]
    fn the_rcode_comes_from_the_response_header() {
        let stats = QueryStats::new();
        let mut response = [0u8; 12];
        response[3] = 0x85; // RA set, REFUSED
        stats.answered_with(Source::Refused, TYPE_SOA, &response);
        stats.answered_with(Source::Error, TYPE_SOA, &[]);
        let counts: Vec<_> = stats.snapshot().queries().collect();
        assert_eq!(
            counts,
            vec![
                (("refused", "SOA", "REFUSED"), 1),
                (("error", "SOA", "other"), 1),
            ]
        );
    }
}
