//! Forwarding names pathdns does not own to the host's upstream resolvers.
//!
//! Owns: the upstream pool (hickory-resolver's `NameServerPool` over
//! [`super::upstream::CheckedConnections`]: several upstreams, UDP with TCP fallback on
//! truncation, random source ports and IDs, replies checked against the question, the QR
//! bit and the opcode, optional 0x20 case randomization, identical in-flight queries
//! coalesced), the per-query time budget, the rebinding filter's place (after the fetch,
//! before the cache), turning [`UpstreamAnswer`]s into cached
//! [`Prepared`](crate::wire::Prepared) responses (TTL-bounded, TTL 0 never kept, negative
//! answers kept for their SOA's negative TTL, truncated answers never kept, malformed
//! records never encoded), and finding the expired entries that serve-stale may use. Must
//! not: touch the owned names' table, wait without a deadline, or convert between hickory's
//! types and the hot path's itself ([`super::hickory_bridge`] does, encoding included).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_proto::op::DnsRequestOptions;
use hickory_proto::rr::{Name, Record};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use super::cache::{AnswerCache, Cached, KeyRef};
use super::hickory_bridge::{self, BadName, EncodeError, Sections};
use super::rebinding::RebindingFilter;
use super::stats::QueryStats;
use super::upstream::{check_records, BadReply, CheckedConnections};
use super::upstream_answer::UpstreamAnswer;
use crate::config::{StaleSettings, UpstreamSettings};

/// Why a forwarded query got no answer (the client then gets SERVFAIL).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
    #[error("upstream failed: {0}")]
    Upstream(String),
    #[error("query name is not a valid name")]
    BadName,
    #[error("cannot encode the upstream answer: {0}")]
    Encode(String),
    #[error("upstream reply refused: {0}")]
    BadReply(#[from] BadReply),
}

impl From<BadName> for ForwardError {
    fn from(_: BadName) -> ForwardError {
        ForwardError::BadName
    }
}

impl From<EncodeError> for ForwardError {
    fn from(err: EncodeError) -> ForwardError {
        ForwardError::Encode(err.to_string())
    }
}

pub struct Forwarder {
    pool: NameServerPool<CheckedConnections>,
    cache: AnswerCache,
    budget: Duration,
    rebinding: RebindingFilter,
    stale: Option<StaleSettings>,
}

impl Forwarder {
    pub fn new(settings: &UpstreamSettings) -> Result<Forwarder, ForwardError> {
        let mut options = ResolverOpts::default();
        // One end-to-end deadline over every upstream, inside the client's own retry time.
        options.timeout = settings.timeout;
        options.attempts = 1;
        options.cache_size = 0;
        options.try_tcp_on_error = true;
        options.edns0 = true;
        // Over UDP only; a reply that does not echo the case is asked again over TCP.
        options.case_randomization = settings.case_randomization;
        let servers = settings.servers.iter().map(|addr| {
            let connection = |mut c: ConnectionConfig| {
                c.port = addr.port();
                c
            };
            NameServerConfig::new(
                addr.ip(),
                true,
                vec![
                    connection(ConnectionConfig::udp()),
                    connection(ConnectionConfig::tcp()),
                ],
            )
        });
        let tls = TlsConfig::new().map_err(|err| ForwardError::Upstream(err.to_string()))?;
        let context = Arc::new(PoolContext::new(options, tls));
        Ok(Forwarder {
            pool: NameServerPool::from_config(servers, context, CheckedConnections::default()),
            cache: AnswerCache::new(settings.cache_size),
            // A little beyond the pool's own deadline so that its answer, not ours, wins.
            budget: settings.budget(),
            rebinding: RebindingFilter::new(&settings.rebinding),
            stale: settings.stale,
        })
    }

    /// A cached response and its age, if fresh. Never waits.
    pub fn cached(&self, key: &KeyRef<'_>) -> Option<(Arc<Cached>, u32)> {
        self.cache.get(key)
    }

    /// An expired response that may still be served (RFC 8767), if serve-stale is on.
    /// Never waits.
    pub fn stale(&self, key: &KeyRef<'_>) -> Option<Arc<Cached>> {
        let settings = self.stale?;
        self.cache.get_stale(key, settings.max_age)
    }

    /// Serve-stale's settings; `None` when it is off.
    pub fn stale_settings(&self) -> Option<StaleSettings> {
        self.stale
    }

    /// Asks the upstreams for `key`, strips what the rebinding filter says (counted into
    /// `stats`) and caches the rest.
    pub async fn resolve(
        &self,
        key: &KeyRef<'_>,
        stats: &QueryStats,
    ) -> Result<Arc<Cached>, ForwardError> {
        let name = hickory_bridge::name_from_wire(key.name)?;
        let mut answer = self.fetch(name.clone(), key.qtype, key.qclass).await?;
        let stripped = self.rebinding.strip(&name, &mut answer);
        stats.rebinding_stripped(stripped);
        self.store(key, &name, answer, Vec::new(), false)
    }

    /// Asks the upstreams, within the time budget.
    pub async fn fetch(
        &self,
        name: Name,
        qtype: u16,
        qclass: u16,
    ) -> Result<UpstreamAnswer, ForwardError> {
        let query = hickory_bridge::question(name, qtype, qclass);
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = true;
        options.use_edns = true;
        let mut responses = self.pool.lookup(query, options);
        match tokio::time::timeout(self.budget, responses.next()).await {
            Err(_) => Err(ForwardError::Timeout(self.budget)),
            Ok(None) => Err(ForwardError::Upstream("no response".into())),
            Ok(Some(Ok(response))) => Ok(UpstreamAnswer::from_response(&response)?),
            Ok(Some(Err(NetError::Dns(DnsError::NoRecordsFound(no_records))))) => {
                Ok(UpstreamAnswer::from_no_records(&no_records))
            }
            Ok(Some(Err(NetError::Timeout))) => Err(ForwardError::Timeout(self.budget)),
            Ok(Some(Err(err))) => Err(ForwardError::Upstream(err.to_string())),
        }
    }

    /// Encodes `answer` as the response to a question for `question_name` (the key's name),
    /// with `leading` records (an owned CNAME chain) before its answers, and caches it
    /// unless its lifetime is 0. A record that would encode malformed (empty data of a
    /// type that needs data) fails the whole answer: nothing is cached.
    pub fn store(
        &self,
        key: &KeyRef<'_>,
        question_name: &Name,
        answer: UpstreamAnswer,
        leading: Vec<Record>,
        authoritative: bool,
    ) -> Result<Arc<Cached>, ForwardError> {
        check_records(
            leading
                .iter()
                .chain(&answer.answers)
                .chain(&answer.authorities)
                .chain(&answer.additionals),
        )?;
        let sections = Sections {
            answers: leading.into_iter().chain(answer.answers),
            authorities: answer.authorities,
            additionals: answer.additionals,
        };
        let prepared =
            hickory_bridge::prepare(key, question_name, answer.rcode, authoritative, sections)?;
        let cached = Arc::new(Cached::new(prepared, answer.lifetime));
        if answer.lifetime > 0 {
            self.cache.insert(key, cached.clone());
        }
        Ok(cached)
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}
