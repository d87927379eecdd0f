//! Forwarding names pathdns does not own to the host's upstream resolvers.
//!
//! Owns: the upstream pool (hickory-resolver's `NameServerPool`: several upstreams, UDP
//! with TCP fallback on truncation, random source ports and IDs, answers checked against the
//! question, identical in-flight queries coalesced), the per-query time budget, and turning
//! upstream answers into cached [`Prepared`] responses (TTL-bounded, negative answers kept
//! for their SOA's negative TTL, truncated answers never kept), and finding the expired
//! entries that serve-stale may use. Must not: touch the owned names' table or wait without
//! a deadline.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_proto::op::{DnsRequestOptions, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use super::cache::{AnswerCache, Cached, KeyRef, MAX_LIFETIME, MAX_NEGATIVE_LIFETIME};
use crate::config::{StaleSettings, UpstreamSettings};
use crate::wire::{Prepared, Rcode, HEADER_LEN};

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
}

/// An upstream's answer, decoded.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// How long it may be cached, in seconds (0: not at all).
    pub lifetime: u32,
}

pub struct Forwarder {
    pool: NameServerPool<TokioRuntimeProvider>,
    cache: AnswerCache,
    budget: Duration,
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
            pool: NameServerPool::from_config(servers, context, TokioRuntimeProvider::default()),
            cache: AnswerCache::new(settings.cache_size),
            // A little beyond the pool's own deadline so that its answer, not ours, wins.
            budget: settings.budget(),
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

    /// Asks the upstreams for `key` and caches what they say.
    pub async fn resolve(&self, key: &KeyRef<'_>) -> Result<Arc<Cached>, ForwardError> {
        let name = name_from_wire(key.name)?;
        let answer = self.fetch(name.clone(), key.qtype, key.qclass).await?;
        self.store(key, &name, answer, Vec::new(), false)
    }

    /// Asks the upstreams, within the time budget.
    pub async fn fetch(
        &self,
        name: Name,
        qtype: u16,
        qclass: u16,
    ) -> Result<UpstreamAnswer, ForwardError> {
        let mut query = Query::query(name, RecordType::from(qtype));
        query.set_query_class(DNSClass::from(qclass));
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = true;
        options.use_edns = true;
        let mut responses = self.pool.lookup(query, options);
        match tokio::time::timeout(self.budget, responses.next()).await {
            Err(_) => Err(ForwardError::Timeout(self.budget)),
            Ok(None) => Err(ForwardError::Upstream("no response".into())),
            Ok(Some(Ok(response))) => Ok(positive(&response)),
            Ok(Some(Err(NetError::Dns(DnsError::NoRecordsFound(no_records))))) => {
                let authorities = match (&no_records.authorities, &no_records.soa) {
                    (Some(authorities), _) => authorities.to_vec(),
                    (None, Some(soa)) => vec![soa.clone().into_record_of_rdata()],
                    (None, None) => Vec::new(),
                };
                Ok(UpstreamAnswer {
                    rcode: no_records.response_code,
                    answers: Vec::new(),
                    authorities,
                    additionals: Vec::new(),
                    lifetime: no_records
                        .negative_ttl
                        .unwrap_or(0)
                        .min(MAX_NEGATIVE_LIFETIME),
                })
            }
            Ok(Some(Err(NetError::Timeout))) => Err(ForwardError::Timeout(self.budget)),
            Ok(Some(Err(err))) => Err(ForwardError::Upstream(err.to_string())),
        }
    }

    /// Encodes `answer` as the response to a question for `question_name` (the key's name),
    /// with `leading` records (an owned CNAME chain) before its answers, and caches it.
    pub fn store(
        &self,
        key: &KeyRef<'_>,
        question_name: &Name,
        answer: UpstreamAnswer,
        leading: Vec<Record>,
        authoritative: bool,
    ) -> Result<Arc<Cached>, ForwardError> {
        let mut message = Message::response(0, OpCode::Query);
        let mut query = Query::query(question_name.clone(), RecordType::from(key.qtype));
        query.set_query_class(DNSClass::from(key.qclass));
        message.add_query(query);
        message.add_answers(leading);
        message.add_answers(answer.answers);
        message.add_authorities(answer.authorities);
        message.add_additionals(answer.additionals);
        let counts = [
            message.answers.len() as u16,
            message.authorities.len() as u16,
            message.additionals.len() as u16,
        ];
        let bytes = message
            .to_vec()
            .map_err(|err| ForwardError::Encode(err.to_string()))?;
        // The body starts after the header and a question of the key's (same-length) name.
        let body_start = HEADER_LEN + key.name.len() + 4;
        let body = bytes
            .get(body_start..)
            .ok_or_else(|| ForwardError::Encode("short message".into()))?;
        let rcode = Rcode::from_low_bits(u16::from(answer.rcode) as u8);
        let prepared = Prepared::from_encoded(rcode, authoritative, counts, body)
            .ok_or_else(|| ForwardError::Encode("records do not match counts".into()))?;
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

/// A positive (or CNAME-only, or referral) answer: cached for its smallest TTL, unless it
/// was truncated.
fn positive(response: &Message) -> UpstreamAnswer {
    let ttls = response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .map(|record| record.ttl);
    let lifetime = if response.metadata.truncation {
        0
    } else {
        ttls.min().unwrap_or(0).min(MAX_LIFETIME)
    };
    UpstreamAnswer {
        rcode: response.metadata.response_code,
        answers: response.answers.clone(),
        authorities: response.authorities.clone(),
        additionals: response
            .additionals
            .iter()
            .filter(|r| r.record_type() != RecordType::OPT)
            .cloned()
            .collect(),
        lifetime,
    }
}

/// A hickory name from a wire-form name.
pub fn name_from_wire(wire: &[u8]) -> Result<Name, ForwardError> {
    let mut name = Name::from_bytes(wire).map_err(|_| ForwardError::BadName)?;
    name.set_fqdn(true);
    Ok(name)
}
