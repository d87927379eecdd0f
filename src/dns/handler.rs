//! The per-query decision: who may ask, which names are owned, what to answer.
//!
//! Owns: the order of checks (parse, allow list, TSIG, EDNS version, class), the split between
//! the synchronous path (owned names and cache hits, answered at once from the current
//! table and cache) and the asynchronous path (upstream forwarding and owned CNAMEs that
//! leave the table, with [`stale`] answers when the upstreams fail). Must
//! not: block, lock, allocate on the synchronous path beyond the caller's buffer, log per
//! query above debug level, or convert between hickory's types and the hot path's
//! ([`crate::wire`]) itself: on the asynchronous path [`super::hickory_bridge`] does.
//!
//! The synchronous path, [`Handler::respond_now`], is a few steps, each on the caller's
//! buffer and the query's borrowed bytes: admit (parse, allow list), refuse what no name is
//! served for (TSIG, EDNS version, class), then answer from the table or the cache.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{RData, Record};
use ipnet::IpNet;

use super::cache::{CacheKey, Cached, KeyRef};
use super::forward::{ForwardError, Forwarder};
use super::hickory_bridge::name_from_wire;
use super::stale::{self, Outcome};
use super::stats::{QueryStats, Source};
use super::upstream_answer::UpstreamAnswer;
use crate::table::{Answer, LiveTable, UpstreamCname};
use crate::wire::{
    self, lowercase_name, parse_query, Parsed, Query, Rcode, ResponseOptions, CLASS_ANY, CLASS_IN,
};

/// What the synchronous path did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `out` holds the response.
    Reply,
    /// Send nothing (not a query, or malformed from a client we do not serve).
    Silent,
    /// The answer needs an upstream: call [`Handler::respond_upstream`] off the hot path.
    Upstream,
}

pub struct Handler {
    table: Arc<LiveTable>,
    settings: ArcSwap<Settings>,
    stats: Arc<QueryStats>,
}

/// What a reload may change besides the table: who may ask, and where to forward.
pub struct Settings {
    pub forwarder: Arc<Forwarder>,
    pub allow: Vec<IpNet>,
}

impl Settings {
    fn allowed(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow.iter().any(|net| net.contains(&client))
    }
}

impl Handler {
    pub fn new(table: Arc<LiveTable>, forwarder: Arc<Forwarder>, allow: Vec<IpNet>) -> Handler {
        Handler {
            table,
            settings: ArcSwap::from_pointee(Settings { forwarder, allow }),
            stats: Arc::default(),
        }
    }

    /// Counts queries into `stats` (the ones `/metrics` exports).
    pub fn with_stats(self, stats: Arc<QueryStats>) -> Handler {
        Handler { stats, ..self }
    }

    pub fn stats(&self) -> &QueryStats {
        &self.stats
    }

    /// Counts the response in `out` and says it is ready.
    fn reply(&self, source: Source, qtype: u16, out: &[u8]) -> Step {
        self.stats.answered_with(source, qtype, out);
        Step::Reply
    }

    /// Swaps the allow list and forwarder atomically; queries in flight finish with the
    /// old ones.
    pub fn reconfigure(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }

    /// The forwarder serving now (a reload keeps it when the upstreams did not change).
    pub fn forwarder(&self) -> Arc<Forwarder> {
        self.settings.load().forwarder.clone()
    }

    /// Answers what can be answered now, from the current table and the cache.
    pub fn respond_now(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Step {
        let settings = self.settings.load();
        let query = match self.admit(packet, client, &settings, out) {
            Ok(query) => query,
            Err(step) => return step,
        };
        if let Some(step) = self.refuse_unserved(&query, transport, out) {
            return step;
        }
        self.answer_now(&query, &settings.forwarder, transport.limit(&query), out)
    }

    /// The query in `packet` if it is one this client may ask; otherwise what was done
    /// instead (nothing sent, or REFUSED, FORMERR or NOTIMP written to `out`).
    fn admit<'p>(
        &self,
        packet: &'p [u8],
        client: IpAddr,
        settings: &Settings,
        out: &mut Vec<u8>,
    ) -> Result<Query<'p>, Step> {
        match parse_query(packet) {
            Parsed::Drop => {
                self.stats.dropped();
                Err(Step::Silent)
            }
            parsed if !settings.allowed(client) => match parsed {
                Parsed::Query(query) => {
                    wire::write_error(&query, Rcode::Refused, false, out);
                    Err(self.reply(Source::Refused, query.qtype, out))
                }
                _ => {
                    self.stats.dropped();
                    Err(Step::Silent)
                }
            },
            Parsed::FormErr {
                id,
                flags,
                question,
            } => {
                wire::write_header_only(id, flags, Rcode::FormErr, question, out);
                Err(self.reply(Source::Error, 0, out))
            }
            Parsed::NotImp { id, flags } => {
                wire::write_header_only(id, flags, Rcode::NotImp, None, out);
                Err(self.reply(Source::Error, 0, out))
            }
            Parsed::Query(query) => Ok(query),
        }
    }

    /// The answer to a query pathdns serves for no name: a TSIG-signed one, an EDNS version
    /// above 0, a class other than IN and ANY.
    fn refuse_unserved(
        &self,
        query: &Query<'_>,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        // pathdns holds no TSIG keys: a signed query is answered NOTAUTH/BADKEY, for owned
        // and forwarded names alike (forwarding it without its signature would hand the
        // client an unsigned answer to a question it wanted signed).
        if let Some(tsig) = &query.tsig {
            wire::write_badkey(query, tsig, transport.limit(query), out);
            return Some(self.reply(Source::Error, query.qtype, out));
        }
        if query.edns.is_some_and(|edns| edns.version > 0) {
            wire::write_error(query, Rcode::NoError, true, out);
            return Some(self.reply(Source::Error, query.qtype, out));
        }
        if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            wire::write_error(query, Rcode::Refused, false, out);
            return Some(self.reply(Source::Refused, query.qtype, out));
        }
        None
    }

    /// An owned name's answer from the current table, else a fresh cached one, else
    /// [`Step::Upstream`]; `limit` bounds the response.
    fn answer_now(
        &self,
        query: &Query<'_>,
        forwarder: &Forwarder,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Step {
        let mut buf = [0u8; 256];
        let qname = lowercase_name(query.qname, &mut buf);
        let table = self.table.load();
        match table
            .lookup(qname)
            .map(|answers| answers.for_type(query.qtype))
        {
            Some(Answer::Ready(prepared)) => {
                wire::write_response(query, prepared, fresh(limit), out);
                self.reply(Source::Owned, query.qtype, out)
            }
            Some(Answer::Refused) => {
                wire::write_error(query, Rcode::Refused, false, out);
                self.reply(Source::Refused, query.qtype, out)
            }
            // Owned CNAMEs that leave the table are cached under the owned name.
            Some(Answer::ChaseUpstream(_)) | None => {
                let key = KeyRef {
                    name: qname,
                    qtype: query.qtype,
                    qclass: query.qclass,
                };
                self.answer_cached(query, &key, forwarder, limit, out)
            }
        }
    }

    /// A fresh cached answer for `key`, aged, else [`Step::Upstream`].
    fn answer_cached(
        &self,
        query: &Query<'_>,
        key: &KeyRef<'_>,
        forwarder: &Forwarder,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Step {
        match forwarder.cached(key) {
            Some((entry, age)) => {
                let options = ResponseOptions {
                    recursion_available: true,
                    age,
                    limit,
                };
                wire::write_response(query, &entry.prepared, options, out);
                self.stats.cache_hit();
                self.reply(Source::Forwarded, query.qtype, out)
            }
            None => {
                self.stats.cache_miss();
                Step::Upstream
            }
        }
    }

    /// The slow path for a packet that [`Handler::respond_now`] sent upstream: forwards,
    /// caches and writes the response; when the upstreams fail or are slow, the expired
    /// cached answer if there is one ([`stale`]), else SERVFAIL.
    pub async fn respond_upstream(&self, packet: &[u8], transport: Transport, out: &mut Vec<u8>) {
        let Parsed::Query(query) = parse_query(packet) else {
            return;
        };
        let limit = transport.limit(&query);
        let mut buf = [0u8; 256];
        let qname = lowercase_name(query.qname, &mut buf);
        let key = KeyRef {
            name: qname,
            qtype: query.qtype,
            qclass: query.qclass,
        };
        let chase = {
            let table = self.table.load();
            match table
                .lookup(qname)
                .map(|answers| answers.for_type(query.qtype))
            {
                Some(Answer::ChaseUpstream(upstream)) => Some(upstream.clone()),
                _ => None,
            }
        };
        let forwarder = self.forwarder();
        let candidate = stale::Candidate::find(&forwarder, &key);
        let owned_key = key.to_owned_key();
        let stats = self.stats.clone();
        let resolve = move || resolve(forwarder, owned_key, chase, stats);
        match stale::answer(&key, candidate, resolve).await {
            Outcome::Fresh(entry) => {
                wire::write_response(&query, &entry.prepared, fresh(limit), out);
            }
            Outcome::Stale(entry) => {
                self.stats.stale_answer();
                wire::write_stale_response(&query, &entry.prepared, stale::STALE_TTL, limit, out);
            }
            Outcome::Failed(err) => {
                tracing::debug!(error = %err, "forwarding failed");
                self.stats.upstream_error();
                wire::write_error(&query, Rcode::ServFail, false, out);
            }
        }
        self.stats
            .answered_with(Source::Forwarded, query.qtype, out);
    }

    /// Instead of [`Handler::respond_upstream`] when `max_in_flight` queries already wait
    /// on upstreams: SERVFAIL at once, counted. False (and nothing in `out`) when `packet`
    /// is not a query.
    pub fn respond_overloaded(&self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        let Parsed::Query(query) = parse_query(packet) else {
            return false;
        };
        wire::write_error(&query, Rcode::ServFail, false, out);
        self.stats.upstream_overflow();
        self.stats
            .answered_with(Source::Forwarded, query.qtype, out);
        true
    }
}

/// Asks the upstreams for `key` (or for an owned CNAME chain's target) and caches the answer.
async fn resolve(
    forwarder: Arc<Forwarder>,
    key: CacheKey,
    chase: Option<UpstreamCname>,
    stats: Arc<QueryStats>,
) -> Result<Arc<Cached>, ForwardError> {
    let key = key.as_key_ref();
    match chase {
        Some(upstream) => chase_upstream(&forwarder, &key, &upstream).await,
        None => forwarder.resolve(&key, &stats).await,
    }
}

/// An owned CNAME chain, then what upstream says for its target. Not filtered for
/// rebinding: the chain is the operator's, and its target is where the operator sends the
/// owned name (a PrivateLink endpoint resolves to private addresses by design).
async fn chase_upstream(
    forwarder: &Forwarder,
    key: &KeyRef<'_>,
    upstream: &UpstreamCname,
) -> Result<Arc<Cached>, ForwardError> {
    let question = name_from_wire(key.name)?;
    let answer = match forwarder
        .fetch(upstream.target.clone(), key.qtype, key.qclass)
        .await
    {
        Ok(answer) => answer,
        // The chain is ours and still true; say so even when the target cannot be
        // resolved right now, without caching that.
        Err(_) => UpstreamAnswer::without_records(ResponseCode::ServFail),
    };
    let chain_ttl = upstream.links.iter().map(|l| l.ttl).min().unwrap_or(0);
    let leading = upstream
        .links
        .iter()
        .map(|link| {
            let owner = link.owner.clone().unwrap_or_else(|| question.clone());
            Record::from_rdata(owner, link.ttl, RData::CNAME(CNAME(link.target.clone())))
        })
        .collect();
    let answer = UpstreamAnswer {
        lifetime: answer.lifetime.min(chain_ttl),
        ..answer
    };
    forwarder.store(key, &question, answer, leading, true)
}

/// How a response is flagged that is sent as it was made (not aged): RA, within `limit`.
fn fresh(limit: usize) -> ResponseOptions {
    ResponseOptions {
        recursion_available: true,
        age: 0,
        limit,
    }
}

/// How a query arrived: it bounds the response size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// UDP answers are limited by what the client said it takes (and 1232 bytes); TCP by
    /// the two-byte frame length.
    fn limit(self, query: &Query<'_>) -> usize {
        match self {
            Transport::Udp => query.udp_limit(),
            Transport::Tcp => u16::MAX as usize,
        }
    }
}
