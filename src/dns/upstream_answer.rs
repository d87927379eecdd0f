//! An upstream's answer as pathdns keeps it: the records of its three sections, its rcode
//! and how long it may be cached.
//!
//! Owns: [`UpstreamAnswer`] and what of an upstream reply goes into one
//! ([`UpstreamAnswer::from_response`], [`UpstreamAnswer::from_no_records`]): the OPT record
//! left out, the lifetime (the smallest TTL, bounded; 0 for truncated replies and for
//! rcodes other than NOERROR and NXDOMAIN; a negative answer's SOA negative TTL). Shared by
//! the forwarder, which fetches and stores answers, and the rebinding filter, which strips
//! them in between; it depends on neither. Must not: ask upstreams, encode wire bytes
//! (the forwarder does, through [`super::hickory_bridge`]) or filter records.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_resolver::net::NoRecords;

use super::cache::{MAX_LIFETIME, MAX_NEGATIVE_LIFETIME};
use super::upstream::{check_header, BadReply};

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

impl UpstreamAnswer {
    /// An answer without records, never cached: what an owned CNAME chain carries when its
    /// target cannot be resolved.
    pub fn without_records(rcode: ResponseCode) -> UpstreamAnswer {
        UpstreamAnswer {
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            lifetime: 0,
        }
    }

    /// What pathdns keeps of an upstream's reply: its records (OPT left out), cached for
    /// the smallest TTL among them, or not at all when it was truncated or a TTL is 0.
    /// A reply that is not a response to a QUERY is refused (the connections under the
    /// pool refuse those already; this holds for replies from anywhere else too); a
    /// malformed record is refused by the forwarder's `store`, which every answer goes
    /// through before it is encoded.
    pub fn from_response(response: &Message) -> Result<UpstreamAnswer, BadReply> {
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

    /// A negative answer (NXDOMAIN or NODATA) as hickory's pool reports it: its authority
    /// records (or just its SOA), kept for the SOA's negative TTL, bounded.
    pub fn from_no_records(no_records: &NoRecords) -> UpstreamAnswer {
        let authorities = match (&no_records.authorities, &no_records.soa) {
            (Some(authorities), _) => authorities.to_vec(),
            (None, Some(soa)) => vec![soa.clone().into_record_of_rdata()],
            (None, None) => Vec::new(),
        };
        UpstreamAnswer {
            rcode: no_records.response_code,
            answers: Vec::new(),
            authorities,
            additionals: Vec::new(),
            lifetime: no_records
                .negative_ttl
                .unwrap_or(0)
                .min(MAX_NEGATIVE_LIFETIME),
        }
    }
}
