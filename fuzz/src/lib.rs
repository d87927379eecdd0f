//! The bodies of pathdns's fuzz targets.
//!
//! Shared by the libFuzzer binaries in `fuzz/fuzz_targets/` (nightly, cargo-fuzz) and by the
//! stable-toolchain stand-in `tests/fuzz_smoke.rs`, which includes this file as a module.
//! Each function takes arbitrary bytes, drives one input surface of pathdns through its
//! public API, and panics when pathdns panics or breaks one of the invariants checked here:
//!
//! - [`query`]: `wire::parse_query` on a client packet, then every response writer on what
//!   parsed. Responses carry the client's ID, have QR set, never exceed the size limit they
//!   were written for, and decode as DNS messages.
//! - [`handler`]: `dns::Handler::respond_now` (the synchronous path: allow list, owned
//!   names, wildcards, CNAME chains, cache hits, truncation) on a table built from a small
//!   config, for the packet as given and for the packet spliced behind an owned name.
//! - [`upstream`]: `wire::Prepared::from_encoded` on arbitrary bodies and counts;
//!   hickory-proto's `Message::from_vec` on arbitrary bytes, and whatever decodes through
//!   `dns::forward::Forwarder::store` (what pathdns does with an upstream answer before
//!   caching it) and back out as a response to a client.
//! - [`config`]: `config::Config::parse` on arbitrary UTF-8; what validates is built into an
//!   answer table and every owned answer is written and decoded.
//!
//! Nothing here touches the network: the forwarder's upstream is never asked (the
//! synchronous path never forwards, and `store` only encodes and caches).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use pathdns::config::Config;
use pathdns::dns::cache::KeyRef;
use pathdns::dns::forward::Forwarder;
use pathdns::dns::hickory_bridge::name_from_wire;
use pathdns::dns::upstream_answer::UpstreamAnswer;
use pathdns::dns::{Handler, Step, Transport};
use pathdns::failover::{self, Selection};
use pathdns::health::Verdict;
use pathdns::table::{self, Answer, AnswerTable, LiveTable};
pub use pathdns::wire::Rcode;
use pathdns::wire::{
    self, BodyWriter, Owner, Parsed, Prepared, Query, RData as WireRData, ResponseOptions, Section,
    HEADER_LEN, TYPE_OPT,
};

/// The config of the handler fixture: the integration tests' reference names
/// (tests/configs/reference-names.toml: the documents' three names with a bucket and an OSS
/// wildcard, CNAMEs inside and out of the table) and a name with more addresses than fit in
/// 512 or 1232 bytes. The upstream is never contacted (nothing here forwards).
pub const FIXTURE_CONFIG: &str = concat!(
    r#"
[server]
listen = ["127.0.0.1:0"]
allow = ["127.0.0.0/8", "::1/128"]

[upstream]
servers = ["127.0.0.1:9"]
cache_size = 64

"#,
    include_str!("../../tests/configs/reference-names.toml"),
    r#"
[[name]]
name = "many.internal.example"
targets = [BIG_TARGETS]
"#
);

/// Names a spliced query asks for: owned, wildcard-covered, CNAMEd in and out of the
/// table, cached from "upstream", and not known at all.
pub const FIXTURE_NAMES: &[&str] = &[
    "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.",
    "dockerauth-vpc.cn-hangzhou.aliyuncs.com.",
    "oss-cn-hangzhou-internal.aliyuncs.com.",
    "mybucket.oss-cn-hangzhou-internal.aliyuncs.com.",
    "another-bucket.oss-cn-hangzhou-internal.aliyuncs.com.",
    "a.b.c.oss-cn-hangzhou-internal.aliyuncs.com.",
    "oss-cn-shanghai-internal.aliyuncs.com.",
    "artifacts.internal.example.",
    "alias.internal.example.",
    "many.internal.example.",
    "www.upstream.example.",
    "big.upstream.example.",
    "nx.upstream.example.",
    "not-owned.example.",
    ".",
];

/// How many inputs reached each stage, so that the stable stand-in can tell a harness that
/// exercises pathdns from one whose inputs all stop at the first check.
#[derive(Debug)]
pub struct Reached {
    /// `parse_query` returned a query.
    pub parsed_queries: AtomicUsize,
    /// `respond_now` answered a query from an allowed client at once.
    pub answered_now: AtomicUsize,
    /// `respond_now` sent a query upstream (a cache miss).
    pub sent_upstream: AtomicUsize,
    /// `Prepared::from_encoded` accepted a body.
    pub prepared_bodies: AtomicUsize,
    /// hickory-proto decoded an upstream message.
    pub decoded_messages: AtomicUsize,
    /// `Forwarder::store` encoded (and maybe cached) an upstream answer.
    pub stored_answers: AtomicUsize,
    /// `Config::parse` accepted a config.
    pub valid_configs: AtomicUsize,
}

pub static REACHED: Reached = Reached {
    parsed_queries: AtomicUsize::new(0),
    answered_now: AtomicUsize::new(0),
    sent_upstream: AtomicUsize::new(0),
    prepared_bodies: AtomicUsize::new(0),
    decoded_messages: AtomicUsize::new(0),
    stored_answers: AtomicUsize::new(0),
    valid_configs: AtomicUsize::new(0),
};

fn reached(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A handler on a table built from [`FIXTURE_CONFIG`], with a few answers in its cache.
pub struct Fixture {
    pub handler: Handler,
}

/// Addresses of `many.internal.example`: 100 A records are 1,600 bytes of answer.
fn big_targets() -> String {
    (0..100)
        .map(|i| format!("\"10.20.{}.{}\"", i / 250, i % 250 + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shared fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = FIXTURE_CONFIG.replace("BIG_TARGETS", &big_targets());
        let config = match Config::parse(&text, "fuzz fixture") {
            Ok(config) => config,
            Err(err) => panic!("the fuzz fixture config is invalid: {err}"),
        };
        let table = build_table(&config, |_| Verdict::Unknown);
        let forwarder = match Forwarder::new(&config.upstream) {
            Ok(forwarder) => Arc::new(forwarder),
            Err(err) => panic!("cannot build the fixture's forwarder: {err}"),
        };
        // Forwarded answers in the cache, as if upstream had said them: one small, one
        // larger than any UDP limit, one NXDOMAIN.
        let small = (1..=1).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
        let big = (1..=120).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
        for (name, addresses, rcode) in [
            ("www.upstream.example.", small, 0u16),
            ("big.upstream.example.", big, 0),
            ("nx.upstream.example.", Vec::new(), 3),
        ] {
            let name = Name::from_ascii(name).unwrap_or_else(|_| Name::root());
            let wire = table::wire_name(&name);
            let key = KeyRef {
                name: &wire,
                qtype: u16::from(RecordType::A),
                qclass: 1,
            };
            let answer = UpstreamAnswer {
                rcode: rcode.into(),
                answers: addresses
                    .into_iter()
                    .map(|addr| Record::from_rdata(name.clone(), 300, RData::A(A(addr))))
                    .collect(),
                authorities: Vec::new(),
                additionals: Vec::new(),
                lifetime: 3600,
            };
            if let Err(err) = forwarder.store(&key, &name, answer, Vec::new(), false) {
                panic!("cannot cache the fixture's answer for {name}: {err}");
            }
        }
        let allow = config.server.allow.clone();
        Fixture {
            handler: Handler::new(Arc::new(LiveTable::new(table)), forwarder, allow),
        }
    })
}

/// The answer table for `config`, each target judged by `verdict`.
fn build_table(config: &Config, verdict: impl Fn(IpAddr) -> Verdict + Copy) -> AnswerTable {
    let selections: Vec<Selection> = config
        .names
        .iter()
        .map(|name| failover::select(name, verdict, None).0)
        .collect();
    AnswerTable::build(&config.names, &selections)
}

// --- (a) the query path -------------------------------------------------------------------

/// A client packet through `parse_query` and every response writer.
pub fn query(data: &[u8]) {
    let mut out = Vec::new();
    match wire::parse_query(data) {
        Parsed::Drop => {
            assert!(
                data.len() < HEADER_LEN || data[2] & 0x80 != 0,
                "only short packets and responses are dropped"
            );
        }
        Parsed::FormErr {
            id,
            flags,
            question,
        } => {
            if let Some(question) = question {
                check_question(question);
            }
            wire::write_header_only(id, flags, Rcode::FormErr, question, &mut out);
            check_reply(data, &out, Some(Rcode::FormErr), usize::MAX);
        }
        Parsed::NotImp { id, flags } => {
            assert_ne!((flags >> 11) & 0x0f, 0, "NOTIMP for opcode QUERY");
            wire::write_header_only(id, flags, Rcode::NotImp, None, &mut out);
            check_reply(data, &out, Some(Rcode::NotImp), usize::MAX);
        }
        Parsed::Query(query) => {
            reached(&REACHED.parsed_queries);
            check_question(query.question);
            assert_eq!(&query.question[..query.qname.len()], query.qname);
            let limit = query.udp_limit();
            assert!((512..=1232).contains(&limit), "UDP limit {limit}");
            let age = u32::from(data[data.len() - 1]) * 7;
            for prepared in prepared_bodies() {
                for limit in [limit, 512, 1232, usize::from(u16::MAX)] {
                    let options = ResponseOptions {
                        recursion_available: true,
                        age,
                        limit,
                    };
                    wire::write_response(&query, prepared, options, &mut out);
                    check_response(data, &query, prepared, &out, limit);
                }
            }
            for rcode in [Rcode::Refused, Rcode::ServFail, Rcode::NoError] {
                for badvers in [false, true] {
                    wire::write_error(&query, rcode, badvers, &mut out);
                    check_reply(data, &out, Some(rcode), usize::MAX);
                }
            }
        }
    }
}

/// Ready-made bodies of every shape the table writes: one address, more addresses than
/// fit in a UDP answer, NXDOMAIN with an SOA, and a CNAME chain through other owners.
fn prepared_bodies() -> &'static [Prepared] {
    static BODIES: OnceLock<Vec<Prepared>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let mut one = BodyWriter::new();
        one.record(
            Section::Answer,
            Owner::Question,
            60,
            WireRData::Address(IpAddr::from([10, 0, 0, 1])),
        );
        let mut many = BodyWriter::new();
        for i in 0..100u8 {
            many.record(
                Section::Answer,
                Owner::Question,
                60,
                WireRData::Address(IpAddr::from([10, 0, 1, i])),
            );
        }
        let mut nx = BodyWriter::new();
        nx.record(
            Section::Authority,
            Owner::Name(b"\x07example\x00"),
            300,
            WireRData::Soa {
                mname: b"\x02ns\x07example\x00",
                rname: b"\x0ahostmaster\x07example\x00",
                serial: 1,
                minimum: 30,
            },
        );
        let mut chain = BodyWriter::new();
        chain.record(
            Section::Answer,
            Owner::Question,
            30,
            WireRData::Cname(b"\x01b\x07example\x00"),
        );
        chain.record(
            Section::Answer,
            Owner::Name(b"\x01b\x07example\x00"),
            30,
            WireRData::Address(IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1])),
        );
        vec![
            one.finish(Rcode::NoError, true),
            many.finish(Rcode::NoError, true),
            nx.finish(Rcode::NxDomain, true),
            chain.finish(Rcode::NoError, false),
            Prepared::empty(Rcode::ServFail, false),
        ]
    })
}

/// The length of the uncompressed name at the start of `bytes`, if it is one.
fn name_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            return Some(at);
        }
    }
}

/// A parsed question: an uncompressed name of at most 255 octets (RFC 1035 section 3.1),
/// labels of at most 63, then type and class.
pub fn check_question(question: &[u8]) {
    let Some(len) = name_len(question) else {
        panic!("question name is not an uncompressed name: {question:02x?}");
    };
    assert!(
        len <= wire::MAX_NAME_LEN,
        "question name of {len} octets (RFC 1035 allows 255)"
    );
    assert_eq!(question.len(), len + 4, "question = name + type + class");
}

/// What every reply shares: the client's ID, QR set, opcode and RD copied, the expected
/// rcode, at most `limit` bytes, and a well-formed DNS message.
pub fn check_reply(packet: &[u8], out: &[u8], rcode: Option<Rcode>, limit: usize) {
    assert!(out.len() >= HEADER_LEN, "reply shorter than a header");
    assert!(
        out.len() <= limit,
        "reply of {} bytes over {limit}",
        out.len()
    );
    assert_eq!(out[..2], packet[..2], "reply ID");
    assert_eq!(out[2] & 0x80, 0x80, "QR set");
    assert_eq!(out[2] & 0x79, packet[2] & 0x79, "opcode and RD copied");
    if let Some(rcode) = rcode {
        assert_eq!(u16::from(out[3] & 0x0f), rcode.low_bits(), "rcode");
    }
    assert_eq!(out[3] & 0x40, 0, "Z bit clear");
    if let Err(err) = Message::from_vec(out) {
        panic!("reply does not decode: {err}\nreply: {out:02x?}\nto: {packet:02x?}");
    }
}

/// A response carrying `prepared`: whole, or truncated to header, question and OPT.
fn check_response(packet: &[u8], query: &Query<'_>, prepared: &Prepared, out: &[u8], limit: usize) {
    // An extended rcode (an upstream's BADVERS, say) needs an OPT record: a client without
    // EDNS gets SERVFAIL; with EDNS the OPT's upper eight bits carry it.
    let rcode = match query.edns {
        None if prepared.rcode.extended() != 0 => Rcode::ServFail,
        _ => prepared.rcode,
    };
    check_reply(packet, out, Some(rcode), limit);
    if query.edns.is_some() {
        let opt_ttl_at = out.len() - 6;
        assert_eq!(
            out[opt_ttl_at],
            rcode.extended(),
            "extended rcode in the OPT"
        );
    }
    let count = |at: usize| u16::from_be_bytes([out[at], out[at + 1]]);
    let opt = usize::from(query.edns.is_some()) * 11;
    assert_eq!(count(4), 1, "one question");
    if out[2] & 0x02 != 0 {
        assert_eq!(
            out.len(),
            HEADER_LEN + query.question.len() + opt,
            "a truncated response is header, question and OPT"
        );
        assert_eq!(
            (count(6), count(8), count(10)),
            (0, 0, u16::from(opt > 0)),
            "a truncated response has no records but the OPT"
        );
    } else {
        assert_eq!(
            out.len(),
            HEADER_LEN + query.question.len() + prepared.body.len() + opt
        );
        assert_eq!(
            (count(6), count(8), count(10)),
            (
                prepared.answers,
                prepared.authorities,
                prepared.additionals + u16::from(opt > 0)
            )
        );
    }
}

// --- (a') the synchronous handler path -----------------------------------------------------

/// A client packet through `Handler::respond_now`, as given and spliced behind a name of
/// the fixture (so that owned names, wildcards and cache hits are reached).
pub fn handler(data: &[u8]) {
    respond(data);
    if data.len() > HEADER_LEN {
        let name = FIXTURE_NAMES[usize::from(data[HEADER_LEN]) % FIXTURE_NAMES.len()];
        let mut packet = data[..HEADER_LEN].to_vec();
        packet[2] &= 0x7f;
        let mut wire = Name::from_ascii(name)
            .map(|name| table::wire_name(&name))
            .unwrap_or_else(|_| vec![0]);
        // Queries come in any case; the table is matched case-insensitively.
        for (byte, flip) in wire.iter_mut().zip(&data[HEADER_LEN..]) {
            if flip & 1 == 1 {
                *byte = byte.to_ascii_uppercase();
            }
        }
        packet.extend_from_slice(&wire);
        packet.extend_from_slice(&data[HEADER_LEN + 1..]);
        respond(&packet);
    }
}

fn respond(packet: &[u8]) {
    let fixture = fixture();
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let outsider = IpAddr::from([192, 0, 2, 99]);
    let mut out = Vec::new();
    for (client, transport) in [
        (loopback, Transport::Udp),
        (loopback, Transport::Tcp),
        (outsider, Transport::Udp),
    ] {
        let parsed = wire::parse_query(packet);
        let step = fixture
            .handler
            .respond_now(packet, client, transport, &mut out);
        let limit = match (&parsed, transport) {
            (Parsed::Query(query), Transport::Udp) => query.udp_limit(),
            _ => usize::from(u16::MAX),
        };
        match (parsed, client == outsider) {
            (Parsed::Drop, _) => assert_eq!(step, Step::Silent, "dropped packet answered"),
            (Parsed::Query(_), true) => {
                assert_eq!(step, Step::Reply, "outsider not refused");
                check_reply(packet, &out, Some(Rcode::Refused), limit);
            }
            (_, true) => assert_eq!(step, Step::Silent, "malformed from an outsider answered"),
            (Parsed::FormErr { .. }, false) => {
                assert_eq!(step, Step::Reply);
                check_reply(packet, &out, Some(Rcode::FormErr), limit);
            }
            (Parsed::NotImp { .. }, false) => {
                assert_eq!(step, Step::Reply);
                check_reply(packet, &out, Some(Rcode::NotImp), limit);
            }
            (Parsed::Query(query), false) => match step {
                Step::Reply => {
                    reached(&REACHED.answered_now);
                    check_reply(packet, &out, None, limit);
                    let count = |at: usize| u16::from_be_bytes([out[at], out[at + 1]]);
                    if query.edns.is_some() {
                        assert!(count(10) >= 1, "OPT echoed");
                    }
                }
                Step::Upstream => {
                    reached(&REACHED.sent_upstream);
                    let edns_ok = query.edns.is_none_or(|edns| edns.version == 0);
                    assert!(edns_ok, "BADVERS must be answered at once");
                }
                Step::Silent => panic!("a query from an allowed client got no reply"),
            },
        }
    }
}

// --- (b) the upstream-response path --------------------------------------------------------

/// Upstream answers: arbitrary record sections through `Prepared::from_encoded`, arbitrary
/// messages through hickory-proto's decoder and `Forwarder::store`, arbitrary names through
/// `name_from_wire`.
pub fn upstream(data: &[u8]) {
    prepared_from_encoded(data);
    upstream_message(data);
    if let Ok(name) = name_from_wire(data) {
        assert!(name.is_fqdn());
    }
}

/// `Prepared::from_encoded` on the record sections of `data` read as a message (counts from
/// its header, body after its question), and on `data` read as one flags byte, three small
/// counts and a body.
fn prepared_from_encoded(data: &[u8]) {
    if let Some(question_end) = data.get(HEADER_LEN..).and_then(name_len) {
        let count = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
        let body = data
            .get(HEADER_LEN + question_end + 4..)
            .unwrap_or_default();
        let counts = [count(6), count(8), count(10)];
        prepared_body(data[3], counts, body);
    }
    if let [flags, an, ns, ar, body @ ..] = data {
        let counts = [u16::from(an % 16), u16::from(ns % 16), u16::from(ar % 16)];
        prepared_body(*flags, counts, body);
    }
}

fn prepared_body(flags: u8, counts: [u16; 3], body: &[u8]) {
    let rcode = Rcode::from_code(u16::from(flags & 0x0f));
    let Some(prepared) = Prepared::from_encoded(rcode, flags & 0x10 != 0, counts, body) else {
        return;
    };
    reached(&REACHED.prepared_bodies);
    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
    assert_eq!(prepared.ttl_offsets.len(), total, "one TTL per record");
    for &offset in prepared.ttl_offsets.iter() {
        assert!(
            usize::from(offset) + 4 <= body.len(),
            "TTL offset past the body"
        );
    }
    assert_eq!(&*prepared.body, body);
    // Written behind a question, aged, and truncated: no panic, no overrun.
    let packet = query_packet(b"\x03www\x07example\x00", 1, 1, flags & 0x20 != 0);
    let Parsed::Query(query) = wire::parse_query(&packet) else {
        panic!("the fixed query does not parse");
    };
    let mut out = Vec::new();
    for limit in [512, usize::from(u16::MAX)] {
        let options = ResponseOptions {
            recursion_available: true,
            age: u32::from(flags),
            limit,
        };
        wire::write_response(&query, &prepared, options, &mut out);
        assert!(out.len() <= limit);
        assert_eq!(out[..2], packet[..2]);
    }
}

/// What the forwarder does with an upstream's answer (`UpstreamAnswer::from_response` in
/// src/dns/upstream_answer.rs, `Forwarder::store` in src/dns/forward.rs), then the cached
/// response as a client gets it.
fn upstream_message(data: &[u8]) {
    let Ok(message) = Message::from_vec(data) else {
        return;
    };
    reached(&REACHED.decoded_messages);
    let Some(question) = message.queries.first() else {
        return;
    };
    let mut buf = [0u8; 256];
    let wire = table::wire_name(question.name());
    let key_name = wire::lowercase_name(&wire, &mut buf);
    let key = KeyRef {
        name: key_name,
        qtype: u16::from(question.query_type()),
        qclass: u16::from(question.query_class()),
    };
    let Ok(question_name) = name_from_wire(key.name) else {
        return;
    };
    let Ok(answer) = UpstreamAnswer::from_response(&message) else {
        // Not a QUERY response, or a malformed record: refused, the client gets SERVFAIL.
        return;
    };
    // An owned CNAME in front, as `chase_upstream` adds for a chain that leaves the table.
    let leading = if message.metadata.id & 1 == 1 {
        let target = message
            .answers
            .first()
            .map_or_else(|| question_name.clone(), |record| record.name.clone());
        vec![Record::from_rdata(
            question_name.clone(),
            30,
            RData::CNAME(CNAME(target)),
        )]
    } else {
        Vec::new()
    };
    let authoritative = message.metadata.id & 2 == 2;
    let Ok(cached) =
        upstream_forwarder().store(&key, &question_name, answer, leading, authoritative)
    else {
        // Not encodable: the client gets SERVFAIL; nothing is cached.
        return;
    };
    reached(&REACHED.stored_answers);
    let prepared = &cached.prepared;
    // The client asks with any case; the cached body was built behind the lower-case name.
    let mut client_name = key.name.to_vec();
    for (byte, flip) in client_name.iter_mut().zip(data.iter().rev()) {
        if flip & 1 == 1 {
            *byte = byte.to_ascii_uppercase();
        }
    }
    let packet = query_packet(&client_name, key.qtype, key.qclass, data[0] & 1 == 1);
    let Parsed::Query(query) = wire::parse_query(&packet) else {
        panic!("a query for an upstream's question does not parse: {packet:02x?}");
    };
    let mut out = Vec::new();
    for limit in [query.udp_limit(), usize::from(u16::MAX)] {
        let options = ResponseOptions {
            recursion_available: true,
            age: u32::from(data[1]),
            limit,
        };
        wire::write_response(&query, prepared, options, &mut out);
        check_response(&packet, &query, prepared, &out, limit);
    }
}

/// A forwarder for the upstream target alone, so that its cache does not change what the
/// handler fixture answers.
fn upstream_forwarder() -> &'static Forwarder {
    static FORWARDER: OnceLock<Forwarder> = OnceLock::new();
    FORWARDER.get_or_init(|| {
        let config = match Config::parse(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n\
             cache_size = 256\n",
            "fuzz upstream",
        ) {
            Ok(config) => config,
            Err(err) => panic!("the upstream fixture config is invalid: {err}"),
        };
        match Forwarder::new(&config.upstream) {
            Ok(forwarder) => forwarder,
            Err(err) => panic!("cannot build a forwarder: {err}"),
        }
    })
}

/// A query for `name` (wire form), with RD and optionally an EDNS OPT record.
fn query_packet(name: &[u8], qtype: u16, qclass: u16, edns: bool) -> Vec<u8> {
    let mut packet = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    packet.extend_from_slice(name);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&qclass.to_be_bytes());
    if edns {
        packet.push(0);
        packet.extend_from_slice(&TYPE_OPT.to_be_bytes());
        packet.extend_from_slice(&1232u16.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    packet
}

// --- (c) config parsing --------------------------------------------------------------------

/// Query types the table answers differently (MX stands for "any other type").
const TABLE_TYPES: [u16; 7] = [1, 28, 255, 6, 5, 15, 252];

/// Arbitrary text through `Config::parse`; a valid config is built into a table whose every
/// answer is written and decoded.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `upstream.resolv_conf` and `ca_file` name files that validation reads: /dev/zero or a
    // FIFO would hang the target on something no config on a real host does by accident.
    if text.contains("resolv_conf") || text.contains("ca_file") {
        return;
    }
    let config = match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            reached(&REACHED.valid_configs);
            config
        }
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.starts_with("fuzz.toml"),
                "error does not name the file: {message}"
            );
            assert!(
                !message.contains('\n'),
                "error is not one line: {message:?}"
            );
            return;
        }
    };
    // Every target up, then every target down (the `when_all_down` policies).
    let seed = data.first().copied().unwrap_or(0);
    for down in [false, true] {
        let verdict = move |addr: IpAddr| match (down, addr) {
            (false, _) => Verdict::Up,
            (true, IpAddr::V4(v4)) if seed & 1 == 1 => {
                if v4.octets()[3] % 2 == 0 {
                    Verdict::Down
                } else {
                    Verdict::Up
                }
            }
            (true, _) => Verdict::Down,
        };
        let table = build_table(&config, verdict);
        for name in &config.names {
            let asked = if name.is_wildcard() {
                // A name the wildcard covers: `x` in place of `*`.
                let mut wire = table::wire_name(&name.name);
                if wire.get(1) == Some(&b'*') {
                    wire[1] = b'x';
                }
                wire
            } else {
                table::wire_name(&name.name)
            };
            answer_every_type(&table, &asked);
        }
    }
}

/// Writes and decodes the table's answer for `name` for each of [`TABLE_TYPES`].
fn answer_every_type(table: &AnswerTable, name: &[u8]) {
    let mut buf = [0u8; 256];
    let key = wire::lowercase_name(name, &mut buf);
    let Some(answers) = table.lookup(key) else {
        return; // Forwarded for now (`when_all_down = "forward"`).
    };
    let mut out = Vec::new();
    for qtype in TABLE_TYPES {
        let Answer::Ready(prepared) = answers.for_type(qtype) else {
            continue;
        };
        let packet = query_packet(name, qtype, 1, true);
        let Parsed::Query(query) = wire::parse_query(&packet) else {
            panic!("a query for an owned name does not parse: {packet:02x?}");
        };
        let options = ResponseOptions {
            recursion_available: true,
            age: 0,
            limit: usize::from(u16::MAX),
        };
        wire::write_response(&query, prepared, options, &mut out);
        check_response(&packet, &query, prepared, &out, usize::from(u16::MAX));
    }
}
