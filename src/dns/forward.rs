//! Forwarding names pathdns does not own to the host's upstream resolvers.
//!
//! Owns: the upstream pool (hickory-resolver's `NameServerPool` over
//! [`super::upstream::CheckedConnections`]: several upstreams, UDP with TCP fallback on
//! truncation, random source ports and IDs, replies checked against the question, the QR
//! bit and the opcode, optional 0x20 case randomization, identical in-flight queries
//! coalesced), the per-query time budget, the rebinding filter's place (after the fetch,
//! before the cache), turning upstream answers into cached [`Prepared`] responses
//! (TTL-bounded, TTL 0 never kept, negative answers kept for their SOA's negative TTL,
//! truncated answers never kept, malformed records never encoded), and finding the expired
//! entries that serve-stale may use. Must not: touch the owned names' table or wait without
//! a deadline.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_proto::op::{DnsRequestOptions, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use super::cache::{AnswerCache, Cached, KeyRef, MAX_LIFETIME, MAX_NEGATIVE_LIFETIME};
use super::rebinding::RebindingFilter;
use super::stats::QueryStats;
use super::upstream::{check_header, check_records, BadReply, CheckedConnections};
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
    #[error("upstream reply refused: {0}")]
    BadReply(#[from] BadReply),
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
        let name = name_from_wire(key.name)?;
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
        let mut query = Query::query(name, RecordType::from(qtype));
        query.set_query_class(DNSClass::from(qclass));
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = true;
        options.use_edns = true;
        let mut responses = self.pool.lookup(query, options);
        match tokio::time::timeout(self.budget, responses.next()).await {
            Err(_) => Err(ForwardError::Timeout(self.budget)),
            Ok(None) => Err(ForwardError::Upstream("no response".into())),
            Ok(Some(Ok(response))) => UpstreamAnswer::from_response(&response),
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
        let mut message = Message::response(0, OpCode::Query);
        let mut query = Query::query(question_name.clone(), RecordType::from(key.qtype));
        query.set_query_class(DNSClass::from(key.qclass));
        message.add_query(query);
        // Owner names in lower case, like the question: records of the question name then
        // compress to it and reach the client in the client's own case, whatever case the
        // upstream wrote (0x20 makes that random).
        let lower = |records: Vec<Record>| {
            records.into_iter().map(|mut record| {
                record.name = record.name.to_lowercase();
                record
            })
        };
        message.add_answers(lower(leading));
        message.add_answers(lower(answer.answers));
        message.add_authorities(lower(answer.authorities));
        message.add_additionals(lower(answer.additionals));
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
        let rcode = Rcode::from_code(u16::from(answer.rcode));
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

impl UpstreamAnswer {
    /// What pathdns keeps of an upstream's reply: its records (OPT left out), cached for
    /// the smallest TTL among them, or not at all when it was truncated or a TTL is 0.
    /// A reply that is not a response to a QUERY is refused (the connections under the
    /// pool refuse those already; this holds for replies from anywhere else too); a
    /// malformed record is refused by [`Forwarder::store`], which every answer goes
    /// through before it is encoded.
    pub fn from_response(response: &Message) -> Result<UpstreamAnswer, ForwardError> {
        check_header(response)?;
        let ttls = response
            .answers
            .iter()
            .chain(response.authorities.iter())
            .map(|record| record.ttl);
        let rcode = response.metadata.response_code;
        // Only answers and negative answers (RFC 2308) are cached; REFUSED, YXDOMAIN and
        // the like are passed on once and asked again next time.
        let cacheable = matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain);
        let lifetime = if response.metadata.truncation || !cacheable {
            0
        } else {
            ttls.min().unwrap_or(0).min(MAX_LIFETIME)
        };
        Ok(UpstreamAnswer {
            rcode,
            answers: response.answers.clone(),
            authorities: response.authorities.clone(),
            additionals: response
                .additionals
                .iter()
                .filter(|r| r.record_type() != RecordType::OPT)
                .cloned()
                .collect(),
            lifetime,
        })
    }
}

/// A hickory name from a wire-form name.
pub fn name_from_wire(wire: &[u8]) -> Result<Name, ForwardError> {
    let mut name = Name::from_bytes(wire).map_err(|_| ForwardError::BadName)?;
    name.set_fqdn(true);
    Ok(name)
}
