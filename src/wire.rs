//! DNS wire format on the hot path: parsing a query, and writing a response around a
//! ready-made answer body.
//!
//! Owns: RFC 1035 header/question parsing without allocation, the EDNS OPT record
//! (RFC 6891), and [`Prepared`]: the answer, authority and additional sections of a response
//! already encoded, so that answering costs a header, a copy of the client's question and a
//! copy of the body. Must not: decide what to answer (the answer table and the handler do),
//! allocate per query beyond the caller's output buffer, or log.
//!
//! A prepared body may compress names only against the question name at offset 12 or against
//! itself at the absolute offsets it had when it was encoded behind a question of the same
//! length. Both hold because a response always carries the client's question, which has the
//! same length as the name the body was built for (DNS names compare case-insensitively).

use std::net::IpAddr;

/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// Largest UDP answer we send when the client offers more (the DNS flag day 2020 size).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// Largest UDP answer to a client without EDNS.
pub const CLASSIC_UDP_PAYLOAD: u16 = 512;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_TSIG: u16 = 250;
pub const TYPE_IXFR: u16 = 251;
pub const TYPE_AXFR: u16 = 252;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

/// Response codes: the ones pathdns produces by name, any other (an upstream's YXDOMAIN,
/// NOTZONE, BADVERS, ...) as its number, so that a forwarded rcode passes through exactly.
/// A code is 12 bits: the header's low four, and eight more in the OPT record (RFC 6891
/// section 6.1.3), so BADVERS is 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    /// 9: not authoritative for the zone, or (with TSIG) the key is not known.
    NotAuth,
    /// Any other code, as received.
    Other(u16),
}

impl Rcode {
    /// The rcode numbered `code` (12 bits; higher bits are dropped).
    pub fn from_code(code: u16) -> Rcode {
        match code & 0x0fff {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            9 => Rcode::NotAuth,
            other => Rcode::Other(other),
        }
    }

    /// Its number, 12 bits.
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::NotAuth => 9,
            Rcode::Other(code) => code & 0x0fff,
        }
    }

    /// The header's four bits.
    pub fn low_bits(self) -> u16 {
        self.code() & 0x0f
    }

    /// The OPT record's eight bits (0 for every code below 16).
    pub fn extended(self) -> u8 {
        (self.code() >> 4) as u8
    }
}

/// EDNS as the client offered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query that is well-formed enough to answer.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub id: u16,
    /// The second header word as received (opcode, RD, CD, ...).
    pub flags: u16,
    /// The question name in wire form, exactly as received (case preserved).
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    /// The question section (name, type, class) as received, to echo.
    pub question: &'a [u8],
    pub edns: Option<Edns>,
    /// The TSIG record that ends the additional section, if the query is signed.
    pub tsig: Option<Tsig<'a>>,
}

/// Where a query's TSIG record (RFC 8945 section 4.2) is in the packet; checked to be
/// well-formed, names not yet expanded.
#[derive(Debug, Clone, Copy)]
pub struct Tsig<'a> {
    packet: &'a [u8],
    /// Offset of the owner name (the key name; compression allowed).
    owner: usize,
    /// Offset of the algorithm name at the start of the RDATA.
    algorithm: usize,
    /// Time signed (48 bits) and fudge (16 bits), as sent.
    time_and_fudge: [u8; 8],
    original_id: [u8; 2],
}

/// TSIG error BADKEY: the key is not known here (RFC 8945 section 5.2.2).
pub const TSIG_BADKEY: u16 = 17;

impl Query<'_> {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }

    pub fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// The largest response this client takes over UDP.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(edns) => edns.payload.clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD) as usize,
            None => CLASSIC_UDP_PAYLOAD as usize,
        }
    }
}

/// What to do with a received packet.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// Not a query we may answer (too short for a header, or a response): stay silent.
    Drop,
    /// Malformed: answer FORMERR with this header (and the question, if it parsed).
    FormErr {
        id: u16,
        flags: u16,
        question: Option<&'a [u8]>,
    },
    /// An opcode other than QUERY.
    NotImp {
        id: u16,
        flags: u16,
    },
    Query(Query<'a>),
}

/// Parses a query without allocating. Never panics, whatever the bytes.
pub fn parse_query(packet: &[u8]) -> Parsed<'_> {
    if packet.len() < HEADER_LEN {
        return Parsed::Drop;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 != 0 {
        return Parsed::Drop;
    }
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (qdcount, ancount, nscount, arcount) = (count(4), count(6), count(8), count(10));
    let formerr = |question| Parsed::FormErr {
        id,
        flags,
        question,
    };
    if (flags >> 11) & 0x0f != 0 {
        return Parsed::NotImp { id, flags };
    }
    if qdcount != 1 || ancount != 0 || nscount != 0 {
        return formerr(None);
    }
    let Some(name_end) = question_name_end(packet, HEADER_LEN) else {
        return formerr(None);
    };
    let question_end = name_end + 4;
    let Some(fixed) = packet.get(name_end..question_end) else {
        return formerr(None);
    };
    let question = &packet[HEADER_LEN..question_end];
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let (edns, tsig) = match parse_additionals(packet, question_end, arcount) {
        Ok(found) => found,
        Err(()) => return formerr(Some(question)),
    };
    Parsed::Query(Query {
        id,
        flags,
        qname: &packet[HEADER_LEN..name_end],
        qtype,
        qclass,
        question,
        edns,
        tsig,
    })
}

/// Longest name in wire form, root label included (RFC 1035 section 3.1).
pub const MAX_NAME_LEN: usize = 255;

/// End of an uncompressed name (the question name must not use pointers) of at most
/// [`MAX_NAME_LEN`] octets.
fn question_name_end(packet: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    loop {
        let len = *packet.get(at)? as usize;
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
        // The labels so far and the root label that must still follow.
        if at - start + 1 > MAX_NAME_LEN {
            return None;
        }
    }
}

/// End of a possibly compressed name inside a record.
fn skip_name(packet: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    loop {
        let len = *packet.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + len as usize,
            0xc0..=0xff => {
                packet.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
        if at - start > 255 {
            return None;
        }
    }
}

/// End of a possibly compressed owner name in a query's additional section, checked as
/// RFC 9267 asks: labels of at most 63 octets, at most 255 octets in all counting what the
/// pointers add, and every pointer aimed at a name earlier in the message than the labels
/// that led to it (so never at itself, forward, past the end, into the header, or in a
/// loop). Follows the pointers (each strictly backwards, so the walk ends) without
/// allocating.
fn checked_name_end(packet: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    // Where the name ends in its record: after its first pointer, or its root label.
    let mut end = None;
    // A pointer must aim below the start of the run of labels it ends.
    let mut floor = start;
    // Octets of the name so far, without the root label.
    let mut len = 0usize;
    loop {
        let byte = *packet.get(at)?;
        match byte {
            0 => return Some(end.unwrap_or(at + 1)),
            1..=63 => {
                len += 1 + byte as usize;
                if len + 1 > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + byte as usize;
            }
            0xc0..=0xff => {
                let target = (u16::from_be_bytes([byte, *packet.get(at + 1)?]) & 0x3fff) as usize;
                end.get_or_insert(at + 2);
                if target >= floor || target < HEADER_LEN {
                    return None;
                }
                floor = target;
                at = target;
            }
            _ => return None,
        }
    }
}

/// Whether an OPT record's RDATA is a whole number of options, each within it (RFC 6891
/// section 6.1.2: code, length, that many octets).
fn options_fit(rdata: &[u8]) -> bool {
    let mut at = 0;
    while at < rdata.len() {
        let Some(header) = rdata.get(at..at + 4) else {
            return false;
        };
        at += 4 + u16::from_be_bytes([header[2], header[3]]) as usize;
    }
    at == rdata.len()
}

/// Finds the OPT record and a TSIG record among the additional records. Two OPT records,
/// one whose owner is not the root, or one whose options overrun its RDATA are malformed
/// (RFC 6891 section 6.1.1), as is any record whose owner name breaks RFC 9267
/// ([`checked_name_end`]), a TSIG record that is not the last one (RFC 8945 section 5.1)
/// and one whose RDATA does not parse.
fn parse_additionals<'a>(
    packet: &'a [u8],
    start: usize,
    count: u16,
) -> Result<(Option<Edns>, Option<Tsig<'a>>), ()> {
    let mut at = start;
    let mut edns = None;
    let mut tsig = None;
    for _ in 0..count {
        if tsig.is_some() {
            return Err(());
        }
        let name_start = at;
        at = checked_name_end(packet, at).ok_or(())?;
        let fixed = packet.get(at..at + 10).ok_or(())?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        at += 10;
        let rdata = packet.get(at..at + rdlen).ok_or(())?;
        if rtype == TYPE_OPT {
            if edns.is_some() || at - 10 - name_start != 1 || !options_fit(rdata) {
                return Err(());
            }
            edns = Some(Edns {
                payload: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        } else if rtype == TYPE_TSIG {
            tsig = Some(parse_tsig(packet, name_start, at, at + rdlen).ok_or(())?);
        }
        at += rdlen;
    }
    Ok((edns, tsig))
}

/// A TSIG record's RDATA between `start` and `end`: algorithm name, time signed, fudge,
/// MAC size and MAC, original ID, error, other length and other data, ending exactly at
/// `end`.
fn parse_tsig(packet: &[u8], owner: usize, start: usize, end: usize) -> Option<Tsig<'_>> {
    let rdata = packet.get(..end)?;
    let mut at = checked_name_end(rdata, start)?;
    let time_and_fudge: [u8; 8] = rdata.get(at..at + 8)?.try_into().ok()?;
    let mac_len = u16::from_be_bytes(rdata.get(at + 8..at + 10)?.try_into().ok()?) as usize;
    at += 10 + mac_len;
    let original_id: [u8; 2] = rdata.get(at..at + 2)?.try_into().ok()?;
    let other_len = u16::from_be_bytes(rdata.get(at + 4..at + 6)?.try_into().ok()?) as usize;
    (at + 6 + other_len == end).then_some(Tsig {
        packet,
        owner,
        algorithm: start,
        time_and_fudge,
        original_id,
    })
}

/// Appends the name at `at` in `packet`, pointers followed, uncompressed. The name was
/// checked by [`checked_name_end`] (pointers only backwards, at most 255 octets), so the
/// walk ends; it is bounded again here all the same.
fn append_expanded_name(packet: &[u8], mut at: usize, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    for _ in 0..MAX_NAME_LEN {
        let len = *packet.get(at)? as usize;
        match len {
            0 => {
                out.push(0);
                return (out.len() - start <= MAX_NAME_LEN).then_some(());
            }
            1..=63 => {
                out.extend_from_slice(packet.get(at..at + 1 + len)?);
                at += 1 + len;
            }
            0xc0..=0xff => {
                at = (u16::from_be_bytes([len as u8, *packet.get(at + 1)?]) & 0x3fff) as usize;
            }
            _ => return None,
        }
    }
    None
}

/// The answer, authority and additional sections of a response, encoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub rcode: Rcode,
    pub authoritative: bool,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
    pub body: Box<[u8]>,
    /// Offsets in `body` of each record's TTL, for ageing cached answers.
    pub ttl_offsets: Box<[u16]>,
}

impl Prepared {
    /// A response with no records, e.g. SERVFAIL or REFUSED.
    pub fn empty(rcode: Rcode, authoritative: bool) -> Prepared {
        Prepared {
            rcode,
            authoritative,
            answers: 0,
            authorities: 0,
            additionals: 0,
            body: Box::new([]),
            ttl_offsets: Box::new([]),
        }
    }

    /// Wraps sections encoded elsewhere (e.g. by hickory-proto), finding each record's TTL.
    /// Returns `None` if the body does not hold exactly the records the counts promise.
    pub fn from_encoded(
        rcode: Rcode,
        authoritative: bool,
        counts: [u16; 3],
        body: &[u8],
    ) -> Option<Prepared> {
        let total = counts.iter().map(|&c| c as usize).sum::<usize>();
        let mut ttl_offsets = Vec::with_capacity(total);
        let mut at = 0;
        for _ in 0..total {
            at = skip_name(body, at)?;
            ttl_offsets.push(u16::try_from(at + 4).ok()?);
            let rdlen = u16::from_be_bytes([*body.get(at + 8)?, *body.get(at + 9)?]) as usize;
            at += 10 + rdlen;
            if at > body.len() {
                return None;
            }
        }
        (at == body.len()).then(|| Prepared {
            rcode,
            authoritative,
            answers: counts[0],
            authorities: counts[1],
            additionals: counts[2],
            body: body.into(),
            ttl_offsets: ttl_offsets.into(),
        })
    }
}

/// How a response is flagged beyond what its [`Prepared`] body says.
#[derive(Debug, Clone, Copy)]
pub struct ResponseOptions {
    /// Recursion available: pathdns forwards names it does not own.
    pub recursion_available: bool,
    /// Seconds to subtract from every record TTL (a cached answer's age).
    pub age: u32,
    /// The most bytes the response may take; longer ones are truncated (TC set).
    pub limit: usize,
}

/// EDNS option code of Extended DNS Errors (RFC 8914).
pub const OPTION_EDE: u16 = 15;
/// Extended DNS Error info-code 3, "Stale Answer" (RFC 8914 section 4.4).
pub const EDE_STALE_ANSWER: u16 = 3;

/// Writes a response to `query` carrying `prepared` into `out`.
pub fn write_response(
    query: &Query<'_>,
    prepared: &Prepared,
    options: ResponseOptions,
    out: &mut Vec<u8>,
) {
    write_sections(query, prepared, options, None, out);
}

/// Writes a stale response (RFC 8767): `prepared` with every record's TTL set to `ttl`,
/// and, for a client that sent EDNS, Extended DNS Error 3 "Stale Answer" (RFC 8914).
pub fn write_stale_response(
    query: &Query<'_>,
    prepared: &Prepared,
    ttl: u32,
    limit: usize,
    out: &mut Vec<u8>,
) {
    let options = ResponseOptions {
        recursion_available: true,
        age: 0,
        limit,
    };
    write_sections(query, prepared, options, Some((ttl, EDE_STALE_ANSWER)), out);
}

/// A response around `prepared`; `stale` sets every TTL and adds that EDE info-code.
fn write_sections(
    query: &Query<'_>,
    prepared: &Prepared,
    options: ResponseOptions,
    stale: Option<(u32, u16)>,
    out: &mut Vec<u8>,
) {
    out.clear();
    let counts = [
        1,
        prepared.answers,
        prepared.authorities,
        prepared.additionals,
    ];
    // An extended rcode (16 and up) needs an OPT record, which a client that sent none
    // must not get (RFC 6891 section 7): it gets SERVFAIL, the nearest it can read.
    let rcode = match query.edns {
        None if prepared.rcode.extended() != 0 => Rcode::ServFail,
        _ => prepared.rcode,
    };
    write_header(
        out,
        query.id,
        response_flags(query.flags, rcode, prepared.authoritative, &options),
        counts,
    );
    out.extend_from_slice(query.question);
    let body_start = out.len();
    out.extend_from_slice(&prepared.body);
    let body = &mut out[body_start..];
    match stale {
        Some((ttl, _)) => rewrite_ttls(body, &prepared.ttl_offsets, |_| ttl),
        None if options.age > 0 => rewrite_ttls(body, &prepared.ttl_offsets, |ttl| {
            ttl.saturating_sub(options.age)
        }),
        None => {}
    }
    let ede = stale.map(|(_, ede)| ede);
    if let Some(edns) = query.edns {
        append_opt(out, rcode.extended(), edns.dnssec_ok, ede);
    }
    if out.len() > options.limit {
        truncate(query, out, rcode.extended(), ede);
    }
}

/// Writes a response that carries no records: REFUSED, SERVFAIL, NOTIMP, BADVERS.
pub fn write_error(query: &Query<'_>, rcode: Rcode, badvers: bool, out: &mut Vec<u8>) {
    out.clear();
    let options = ResponseOptions {
        recursion_available: true,
        age: 0,
        limit: usize::MAX,
    };
    let flags = response_flags(query.flags, rcode, false, &options);
    write_header(out, query.id, flags, [1, 0, 0, 0]);
    out.extend_from_slice(query.question);
    if let Some(edns) = query.edns {
        // BADVERS is extended rcode 16: 1 in the OPT's upper eight bits, 0 in the header.
        append_opt(out, u8::from(badvers), edns.dnssec_ok, None);
    }
}

/// The answer to a TSIG-signed query: pathdns holds no keys, so every key is unknown.
/// NOTAUTH with an unsigned TSIG record (MAC size 0) carrying the request's key name,
/// algorithm, time signed, fudge and original ID, and error BADKEY (RFC 8945 sections
/// 5.2.2 and 5.3.2); the question echoed, an OPT record if the query had one. Longer than
/// `limit` (long key and algorithm names over UDP), it is truncated like any answer: TC
/// set, and the client asks again over TCP.
pub fn write_badkey(query: &Query<'_>, tsig: &Tsig<'_>, limit: usize, out: &mut Vec<u8>) {
    write_error(query, Rcode::NotAuth, false, out);
    let record_start = out.len();
    if append_tsig_badkey(tsig, out).is_none() {
        // Unreachable for a query that parsed; a reply without the record is still one.
        out.truncate(record_start);
        return;
    }
    let arcount = u16::from_be_bytes([out[10], out[11]]) + 1;
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    if out.len() > limit {
        truncate(query, out, 0, None);
    }
}

fn append_tsig_badkey(tsig: &Tsig<'_>, out: &mut Vec<u8>) -> Option<()> {
    append_expanded_name(tsig.packet, tsig.owner, out)?;
    out.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    append_expanded_name(tsig.packet, tsig.algorithm, out)?;
    out.extend_from_slice(&tsig.time_and_fudge);
    // MAC size 0: unsigned.
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&tsig.original_id);
    out.extend_from_slice(&TSIG_BADKEY.to_be_bytes());
    // Other length 0.
    out.extend_from_slice(&0u16.to_be_bytes());
    let rdlen = u16::try_from(out.len() - rdlen_at - 2).ok()?;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    Some(())
}

/// FORMERR or NOTIMP to a packet whose question may not have parsed.
pub fn write_header_only(
    id: u16,
    flags: u16,
    rcode: Rcode,
    question: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    out.clear();
    // Keep the opcode and RD; clear everything else the client set. RA only in a reply to
    // a QUERY: recursion is what pathdns offers for queries, not for NOTIFY or UPDATE (NSD
    // and Knot set no RA on NOTIMP either).
    let ra = if (flags >> 11) & 0x0f == 0 { 0x0080 } else { 0 };
    let flags = 0x8000 | (flags & 0x7900) | ra | rcode.low_bits();
    write_header(out, id, flags, [u16::from(question.is_some()), 0, 0, 0]);
    if let Some(question) = question {
        out.extend_from_slice(question);
    }
}

fn response_flags(query_flags: u16, rcode: Rcode, aa: bool, options: &ResponseOptions) -> u16 {
    let mut flags = 0x8000 | (query_flags & 0x7900) | (query_flags & 0x0010) | rcode.low_bits();
    if aa {
        flags |= 0x0400;
    }
    if options.recursion_available {
        flags |= 0x0080;
    }
    flags
}

fn write_header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
}

/// Replaces each TTL of `body` (at `offsets`) with `new_ttl` of it.
fn rewrite_ttls(body: &mut [u8], offsets: &[u16], new_ttl: impl Fn(u32) -> u32) {
    for &offset in offsets {
        let at = offset as usize;
        if let Some(field) = body.get_mut(at..at + 4) {
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            field.copy_from_slice(&new_ttl(ttl).to_be_bytes());
        }
    }
}

/// Our OPT record: payload size, extended rcode, version 0, the client's DO bit echoed;
/// no options but an Extended DNS Error without extra text when `ede` says so (RFC 6891:
/// the client's unknown options are ignored, never echoed).
fn append_opt(out: &mut Vec<u8>, extended_rcode: u8, dnssec_ok: bool, ede: Option<u16>) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    let ttl = (u32::from(extended_rcode) << 24) | if dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&ttl.to_be_bytes());
    match ede {
        Some(info_code) => {
            // RDLENGTH 6: option code, option length 2, info-code.
            out.extend_from_slice(&6u16.to_be_bytes());
            out.extend_from_slice(&OPTION_EDE.to_be_bytes());
            out.extend_from_slice(&2u16.to_be_bytes());
            out.extend_from_slice(&info_code.to_be_bytes());
        }
        None => out.extend_from_slice(&0u16.to_be_bytes()),
    }
    let arcount = u16::from_be_bytes([out[10], out[11]]) + 1;
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
}

/// Cuts a too-long response down to header + question (+ OPT) with TC set, so the client
/// retries over TCP.
fn truncate(query: &Query<'_>, out: &mut Vec<u8>, extended_rcode: u8, ede: Option<u16>) {
    out.truncate(HEADER_LEN + query.question.len());
    out[2] |= 0x02;
    out[6..12].fill(0);
    if let Some(edns) = query.edns {
        append_opt(out, extended_rcode, edns.dnssec_ok, ede);
    }
}

/// Encodes records for ready-made answers.
pub struct BodyWriter {
    body: Vec<u8>,
    counts: [u16; 3],
    ttl_offsets: Vec<u16>,
}

/// Who owns a record: the question name (compressed to offset 12) or another name.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Question,
    /// A name in uncompressed wire form.
    Name(&'a [u8]),
}

/// The three sections, in order; records must be written section by section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

/// Record data we write ourselves.
#[derive(Debug, Clone, Copy)]
pub enum RData<'a> {
    Address(IpAddr),
    /// A CNAME target in uncompressed wire form.
    Cname(&'a [u8]),
    Soa {
        mname: &'a [u8],
        rname: &'a [u8],
        serial: u32,
        minimum: u32,
    },
}

impl Default for BodyWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyWriter {
    pub fn new() -> BodyWriter {
        BodyWriter {
            body: Vec::new(),
            counts: [0; 3],
            ttl_offsets: Vec::new(),
        }
    }

    pub fn record(&mut self, section: Section, owner: Owner<'_>, ttl: u32, rdata: RData<'_>) {
        match owner {
            Owner::Question => self.body.extend_from_slice(&[0xc0, HEADER_LEN as u8]),
            Owner::Name(name) => self.body.extend_from_slice(name),
        }
        let rtype = match rdata {
            RData::Address(IpAddr::V4(_)) => TYPE_A,
            RData::Address(IpAddr::V6(_)) => TYPE_AAAA,
            RData::Cname(_) => TYPE_CNAME,
            RData::Soa { .. } => TYPE_SOA,
        };
        self.body.extend_from_slice(&rtype.to_be_bytes());
        self.body.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.ttl_offsets
            .push(u16::try_from(self.body.len()).unwrap_or(u16::MAX));
        self.body.extend_from_slice(&ttl.to_be_bytes());
        let rdlen_at = self.body.len();
        self.body.extend_from_slice(&[0, 0]);
        match rdata {
            RData::Address(IpAddr::V4(v4)) => self.body.extend_from_slice(&v4.octets()),
            RData::Address(IpAddr::V6(v6)) => self.body.extend_from_slice(&v6.octets()),
            RData::Cname(target) => self.body.extend_from_slice(target),
            RData::Soa {
                mname,
                rname,
                serial,
                minimum,
            } => {
                self.body.extend_from_slice(mname);
                self.body.extend_from_slice(rname);
                for value in [serial, 3600, 600, 86400, minimum] {
                    self.body.extend_from_slice(&value.to_be_bytes());
                }
            }
        }
        let rdlen = (self.body.len() - rdlen_at - 2) as u16;
        self.body[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[section as usize] += 1;
    }

    pub fn finish(self, rcode: Rcode, authoritative: bool) -> Prepared {
        Prepared {
            rcode,
            authoritative,
            answers: self.counts[0],
            authorities: self.counts[1],
            additionals: self.counts[2],
            body: self.body.into(),
            ttl_offsets: self.ttl_offsets.into(),
        }
    }
}

/// Lower-cases a wire-form name into `buf`, returning the used part (the lookup key).
pub fn lowercase_name<'b>(name: &[u8], buf: &'b mut [u8; 256]) -> &'b [u8] {
    let len = name.len().min(buf.len());
    for (dst, src) in buf.iter_mut().zip(&name[..len]) {
        *dst = src.to_ascii_lowercase();
    }
    &buf[..len]
}

/// Offsets of each label start after the first, i.e. the proper suffixes of a wire name,
/// longest first (the root is excluded).
pub fn parent_suffixes(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = *name.get(at)? as usize;
        if len == 0 {
            return None;
        }
        at += 1 + len;
        match name.get(at) {
            Some(0) | None => None,
            Some(_) => Some(&name[at..]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_packet(name: &[u8], qtype: u16, opt: Option<u32>) -> Vec<u8> {
        let mut p = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            u8::from(opt.is_some()),
        ];
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(ttl) = opt {
            p.push(0);
            p.extend_from_slice(&TYPE_OPT.to_be_bytes());
            p.extend_from_slice(&4096u16.to_be_bytes());
            p.extend_from_slice(&ttl.to_be_bytes());
            p.extend_from_slice(&[0, 0]);
        }
        p
    }

    const NAME: &[u8] = b"\x03Foo\x07example\x00";

    #[test]
    fn parses_a_plain_query() {
        let packet = query_packet(NAME, TYPE_A, None);
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qname, NAME);
        assert_eq!(q.qtype, TYPE_A);
        assert!(q.recursion_desired());
        assert_eq!(q.edns, None);
        assert_eq!(q.udp_limit(), 512);
    }

    #[test]
    fn parses_edns_version_and_do() {
        let packet = query_packet(NAME, TYPE_A, Some(0x0001_8000));
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        let edns = q.edns.expect("edns");
        assert_eq!(
            (edns.version, edns.dnssec_ok, edns.payload),
            (1, true, 4096)
        );
        assert_eq!(q.udp_limit(), MAX_UDP_PAYLOAD as usize);
    }

    #[test]
    fn rejects_what_is_not_a_query() {
        assert!(matches!(parse_query(&[0; 11]), Parsed::Drop));
        let mut response = query_packet(NAME, TYPE_A, None);
        response[2] |= 0x80;
        assert!(matches!(parse_query(&response), Parsed::Drop));
        let mut two = query_packet(NAME, TYPE_A, None);
        two[5] = 2;
        assert!(matches!(parse_query(&two), Parsed::FormErr { .. }));
        let short = &query_packet(NAME, TYPE_A, None)[..20];
        assert!(matches!(parse_query(short), Parsed::FormErr { .. }));
        let mut notify = query_packet(NAME, TYPE_A, None);
        notify[2] = 4 << 3;
        assert!(matches!(parse_query(&notify), Parsed::NotImp { .. }));
    }

    /// A name of `len` octets in wire form (root included): labels of 63, then the rest.
    fn name_of(len: usize) -> Vec<u8> {
        let mut name = Vec::new();
        let mut left = len - 1;
        while left > 0 {
            let label = (left - 1).min(63);
            name.push(label as u8);
            name.extend(std::iter::repeat_n(b'a', label));
            left -= 1 + label;
        }
        name.push(0);
        assert_eq!(name.len(), len);
        name
    }

    #[test]
    fn question_names_end_at_255_octets() {
        for len in [254, 255] {
            let packet = query_packet(&name_of(len), TYPE_A, None);
            assert!(
                matches!(parse_query(&packet), Parsed::Query(q) if q.qname.len() == len),
                "{len}-octet name"
            );
        }
        for len in [256, 257] {
            let packet = query_packet(&name_of(len), TYPE_A, None);
            assert!(
                matches!(parse_query(&packet), Parsed::FormErr { question: None, .. }),
                "{len}-octet name is FORMERR"
            );
        }
    }

    #[test]
    fn writes_and_truncates() {
        let packet = query_packet(NAME, TYPE_A, None);
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        let mut writer = BodyWriter::new();
        for i in 0..40u8 {
            writer.record(
                Section::Answer,
                Owner::Question,
                60,
                RData::Address(IpAddr::from([10, 0, 0, i])),
            );
        }
        let prepared = writer.finish(Rcode::NoError, true);
        let mut out = Vec::new();
        let options = ResponseOptions {
            recursion_available: true,
            age: 10,
            limit: 65535,
        };
        write_response(&q, &prepared, options, &mut out);
        assert_eq!(&out[0..2], &[0x12, 0x34]);
        assert_eq!(out[2] & 0x84, 0x84, "QR and AA");
        assert_eq!(u16::from_be_bytes([out[6], out[7]]), 40);
        let first_ttl_at = 12 + q.question.len() + 2 + 4;
        assert_eq!(&out[first_ttl_at..first_ttl_at + 4], &50u32.to_be_bytes());
        write_response(
            &q,
            &prepared,
            ResponseOptions {
                limit: 512,
                ..options
            },
            &mut out,
        );
        assert_eq!(out.len(), 12 + q.question.len());
        assert_eq!(out[2] & 0x02, 0x02, "TC");
    }

    #[test]
    fn stale_responses_carry_the_stale_ttl_and_ede_3() {
        let mut writer = BodyWriter::new();
        writer.record(
            Section::Answer,
            Owner::Question,
            3600,
            RData::Address(IpAddr::from([10, 0, 0, 1])),
        );
        let prepared = writer.finish(Rcode::NoError, false);
        let ttl_at = |q: &Query<'_>| 12 + q.question.len() + 2 + 4;
        let mut out = Vec::new();
        // With EDNS: TTL 30 and an OPT carrying EDE 3, no extra text.
        let packet = query_packet(NAME, TYPE_A, Some(0));
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        write_stale_response(&q, &prepared, 30, 1232, &mut out);
        assert_eq!(&out[ttl_at(&q)..ttl_at(&q) + 4], &30u32.to_be_bytes());
        assert_eq!(u16::from_be_bytes([out[10], out[11]]), 1, "one OPT");
        let opt_rdata = &out[out.len() - 8..];
        assert_eq!(
            opt_rdata,
            &[0, 6, 0, 15, 0, 2, 0, 3],
            "RDLENGTH, EDE, length, code 3"
        );
        // Without EDNS: TTL 30, no OPT.
        let packet = query_packet(NAME, TYPE_A, None);
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        write_stale_response(&q, &prepared, 30, 512, &mut out);
        assert_eq!(&out[ttl_at(&q)..ttl_at(&q) + 4], &30u32.to_be_bytes());
        assert_eq!(u16::from_be_bytes([out[10], out[11]]), 0);
        assert_eq!(out.len(), 12 + q.question.len() + prepared.body.len());
    }

    #[test]
    fn prepared_from_encoded_finds_ttls() {
        let mut writer = BodyWriter::new();
        writer.record(
            Section::Answer,
            Owner::Name(NAME),
            7,
            RData::Cname(b"\x01x\x00"),
        );
        writer.record(
            Section::Answer,
            Owner::Question,
            9,
            RData::Address(IpAddr::from([1, 2, 3, 4])),
        );
        let built = writer.finish(Rcode::NoError, false);
        let again =
            Prepared::from_encoded(Rcode::NoError, false, [2, 0, 0], &built.body).expect("parses");
        assert_eq!(again, built);
    }

    #[test]
    fn additional_names_follow_pointers_only_backwards_and_up_to_255_octets() {
        // The question name (at 12) is 13 octets; a record's owner starts at 29.
        let mut packet = query_packet(NAME, TYPE_A, None);
        let at = packet.len();
        packet.extend_from_slice(&[0xc0, 12]);
        assert_eq!(
            checked_name_end(&packet, at),
            Some(at + 2),
            "back to the question"
        );
        for target in [at, at + 2, 4, 0x3fff] {
            let mut bad = packet.clone();
            bad[at + 1] = target as u8;
            bad[at] = 0xc0 | (target >> 8) as u8;
            assert_eq!(checked_name_end(&bad, at), None, "pointer to {target}");
        }
        // A label, then a pointer back to that label: a loop.
        let mut looped = packet[..at].to_vec();
        looped.extend_from_slice(&[1, b'a', 0xc0, at as u8]);
        assert_eq!(checked_name_end(&looped, at), None);
        // 4 labels of 60 and the question's 13 octets: 257.
        let mut long = packet[..at].to_vec();
        for _ in 0..4 {
            long.push(60);
            long.extend_from_slice(&[b'x'; 60]);
        }
        long.extend_from_slice(&[0xc0, 12]);
        assert_eq!(checked_name_end(&long, at), None);
        long.drain(at..at + 61);
        assert_eq!(
            checked_name_end(&long, at),
            Some(long.len()),
            "3 labels: 196 octets"
        );
    }

    #[test]
    fn opt_options_must_fit_the_rdata() {
        assert!(options_fit(&[]));
        assert!(options_fit(&[0, 10, 0, 2, 1, 2, 0, 3, 0, 0]));
        assert!(!options_fit(&[0, 10, 0, 3, 1, 2]));
        assert!(!options_fit(&[0, 10]));
        assert!(!options_fit(&[0, 10, 0, 0, 9]));
    }

    /// A TSIG record (RFC 8945 section 4.2) for key `key`, hmac-sha256, MAC `mac`.
    fn tsig_record(key: &[u8], mac: &[u8], original_id: u16) -> Vec<u8> {
        let mut rdata = b"\x0bhmac-sha256\x00".to_vec();
        rdata.extend_from_slice(&[0, 0, 0x65, 0x43, 0x21, 0x00, 1, 44]);
        rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
        rdata.extend_from_slice(mac);
        rdata.extend_from_slice(&original_id.to_be_bytes());
        rdata.extend_from_slice(&[0, 0, 0, 0]);
        let mut record = key.to_vec();
        record.extend_from_slice(&TYPE_TSIG.to_be_bytes());
        record.extend_from_slice(&CLASS_ANY.to_be_bytes());
        record.extend_from_slice(&[0, 0, 0, 0]);
        record.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        record.extend_from_slice(&rdata);
        record
    }

    fn signed(opt: bool, tsig: &[u8]) -> Vec<u8> {
        let mut packet = query_packet(NAME, TYPE_A, opt.then_some(0));
        packet.extend_from_slice(tsig);
        packet[11] += 1;
        packet
    }

    #[test]
    fn a_signed_query_gets_notauth_with_an_unsigned_badkey_tsig() {
        let key = b"\x04key1\x07example\x00";
        for opt in [false, true] {
            let packet = signed(opt, &tsig_record(key, &[7; 32], 0x1234));
            let Parsed::Query(q) = parse_query(&packet) else {
                panic!("not a query")
            };
            let tsig = q.tsig.expect("a TSIG record");
            let mut out = Vec::new();
            write_badkey(&q, &tsig, 512, &mut out);
            assert_eq!(out[3] & 0x0f, 9, "NOTAUTH");
            assert_eq!(u16::from_be_bytes([out[10], out[11]]), 1 + u16::from(opt));
            let expected = tsig_record(key, &[], 0x1234);
            let mut expected_rdata_error = expected.clone();
            let error_at = expected.len() - 4;
            expected_rdata_error[error_at..error_at + 2].copy_from_slice(&17u16.to_be_bytes());
            assert!(out.ends_with(&expected_rdata_error), "{out:02x?}");
        }
        // The key name compressed against the question name's "example".
        let packet = signed(false, &tsig_record(b"\x04key1\xc0\x10", &[1; 16], 7));
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        let mut out = Vec::new();
        write_badkey(&q, &q.tsig.expect("tsig"), 512, &mut out);
        assert!(out
            .windows(key.len() + 2)
            .any(|w| w == [&key[..], &TYPE_TSIG.to_be_bytes()].concat()));
        // A question and a key name of 250 octets each: over 512 bytes, so TC.
        let mut packet = query_packet(&name_of(250), TYPE_A, None);
        packet.extend_from_slice(&tsig_record(&name_of(250), &[1; 16], 7));
        packet[11] = 1;
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        write_badkey(&q, &q.tsig.expect("tsig"), 512, &mut out);
        assert_eq!(out[2] & 0x02, 0x02, "TC");
        assert_eq!(out.len(), HEADER_LEN + q.question.len());
        write_badkey(&q, &q.tsig.expect("tsig"), 65_535, &mut out);
        assert!(out.len() > 512 && out[2] & 0x02 == 0, "whole over TCP");
    }

    #[test]
    fn a_tsig_record_out_of_place_or_malformed_is_formerr() {
        let record = tsig_record(b"\x04key1\x00", &[7; 32], 1);
        // TSIG, then OPT: not last.
        let mut packet = query_packet(NAME, TYPE_A, None);
        packet.extend_from_slice(&record);
        packet.extend_from_slice(&[0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]);
        packet[11] = 2;
        assert!(matches!(parse_query(&packet), Parsed::FormErr { .. }));
        // A MAC size longer than the RDATA.
        let mut long_mac = signed(false, &record);
        let mac_size_at = long_mac.len() - 32 - 8;
        long_mac[mac_size_at] = 1;
        assert!(matches!(parse_query(&long_mac), Parsed::FormErr { .. }));
        // RDATA cut short by its RDLENGTH.
        let mut short = signed(false, &record);
        let rdlen_at = short.len() - record.len() + 6 + 8;
        short[rdlen_at + 1] -= 1;
        short.pop();
        assert!(matches!(parse_query(&short), Parsed::FormErr { .. }));
    }

    #[test]
    fn extended_rcodes_go_into_the_opt_record_or_become_servfail() {
        let prepared = Prepared::empty(Rcode::from_code(16), false);
        assert_eq!(
            (prepared.rcode.low_bits(), prepared.rcode.extended()),
            (0, 1)
        );
        let options = ResponseOptions {
            recursion_available: true,
            age: 0,
            limit: 1232,
        };
        let mut out = Vec::new();
        let packet = query_packet(NAME, TYPE_A, Some(0));
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        write_response(&q, &prepared, options, &mut out);
        assert_eq!(out[3] & 0x0f, 0);
        let opt_ttl_at = out.len() - 6;
        assert_eq!(out[opt_ttl_at], 1, "extended rcode 1 << 4 = 16");
        let packet = query_packet(NAME, TYPE_A, None);
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query")
        };
        write_response(&q, &prepared, options, &mut out);
        assert_eq!(out[3] & 0x0f, 2, "SERVFAIL without EDNS");
        for code in [0, 1, 5, 6, 9, 10, 16, 23, 4095] {
            assert_eq!(Rcode::from_code(code).code(), code);
        }
    }

    #[test]
    fn notimp_carries_no_ra_formerr_does() {
        let mut out = Vec::new();
        write_header_only(1, 4 << 11 | 0x0100, Rcode::NotImp, None, &mut out);
        assert_eq!(out[3] & 0x80, 0, "no RA for NOTIFY");
        assert_eq!(out[2] & 0x79, 4 << 3 | 1, "opcode and RD echoed");
        write_header_only(1, 0x0100, Rcode::FormErr, None, &mut out);
        assert_eq!(out[3] & 0x80, 0x80, "RA for a QUERY");
    }

    #[test]
    fn suffixes_walk_up() {
        let name = b"\x01a\x03oss\x07example\x00";
        let all: Vec<&[u8]> = parent_suffixes(name).collect();
        assert_eq!(
            all,
            vec![&b"\x03oss\x07example\x00"[..], &b"\x07example\x00"[..]]
        );
    }
}
