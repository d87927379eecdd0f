//! Truncation (RFC 1035 section 4.2.1, RFC 7766, RFC 6891 section 7): answers too large for
//! the client's UDP limit (512 bytes without EDNS, at most 1232 with it) come back with TC
//! set and no records, and whole over TCP; an upstream that truncates is asked again over
//! TCP, and only its full answer is cached. The real binary, a scripted upstream on
//! loopback; the addresses are DNS data only.

use crate::common;

use std::net::SocketAddr;

use common::fake_upstream::{address, bytes, question, reply, FakeUpstream, Incoming, Step, Via};
use common::*;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// Addresses in the large RRsets: 100 A records are about 1.6 KB of answer.
const BIG: usize = 100;

fn big_addresses(prefix: &str) -> Vec<String> {
    (1..=BIG)
        .map(|i| format!("{prefix}.{}.{}", i / 250, i % 250))
        .collect()
}

/// A query over UDP, with EDNS offering `payload` bytes or without EDNS; returns the
/// response and its size on the wire.
fn ask_udp_sized(server: SocketAddr, name: &str, payload: Option<u16>) -> (Message, usize) {
    let mut message = query(name, RecordType::A, false);
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    let raw = exchange_raw_udp(
        server,
        &message.to_vec().expect("encode"),
        std::time::Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no UDP answer for {name}"));
    let response = Message::from_vec(&raw).expect("decode");
    assert_eq!(response.metadata.id, message.metadata.id);
    (response, raw.len())
}

/// Over UDP: TC set, no records, within the client's limit, for each limit a client may
/// offer. Over TCP: the whole RRset.
fn truncates_over_udp_and_comes_whole_over_tcp(agent: &Agent, name: &str) {
    for (payload, limit) in [
        (None, 512),
        (Some(512), 512),
        (Some(1232), 1232),
        (Some(4096), 1232),
    ] {
        let (response, size) = ask_udp_sized(agent.addr, name, payload);
        eprintln!(
            "{name} over UDP, EDNS {payload:?}: TC={} in {size} bytes",
            response.metadata.truncation
        );
        assert_eq!(rcode(&response), ResponseCode::NoError);
        assert!(response.metadata.truncation, "TC with EDNS {payload:?}");
        assert!(response.answers.is_empty(), "no partial RRset");
        assert!(size <= limit, "{size} bytes over {limit}");
    }
    for edns in [false, true] {
        let response = ask_tcp(agent.addr, &query(name, RecordType::A, edns));
        let size = response.to_vec().expect("encode").len();
        eprintln!(
            "{name} over TCP: {} addresses in {size} bytes",
            addresses(&response).len()
        );
        assert!(!response.metadata.truncation);
        assert_eq!(addresses(&response).len(), BIG, "the whole RRset over TCP");
    }
}

/// An upstream with nothing for any name.
fn empty_upstream() -> FakeUpstream {
    FakeUpstream::start(|incoming| vec![Step::Reply(bytes(&reply(incoming.query, Vec::new())))])
}

#[test]
fn a_large_owned_rrset_truncates_over_udp_and_comes_whole_over_tcp() {
    let upstream = empty_upstream();
    let targets: Vec<String> = big_addresses("10.20")
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    let config = format!(
        "{}\n[[name]]\nname = \"big.owned.example\"\ntargets = [{}]\n",
        upstream.config(""),
        targets.join(", ")
    );
    let agent = Agent::start(&config);
    truncates_over_udp_and_comes_whole_over_tcp(&agent, "big.owned.example.");
    assert_eq!(upstream.seen().len(), 0, "owned: never forwarded");
}

/// The whole answer to `incoming`, for its name: `BIG` addresses under 198.51.
fn big_answer(incoming: &Incoming<'_>) -> Message {
    let name = question(incoming.query).name().clone();
    let records = big_addresses("198.51")
        .iter()
        .map(|addr| address(&name, 300, addr))
        .collect();
    reply(incoming.query, records)
}

/// The upstream follows the rules: over UDP an answer larger than the query's EDNS payload
/// (hickory offers 1232) is TC with no records; over TCP it is whole.
#[test]
fn a_large_forwarded_rrset_truncates_over_udp_and_comes_whole_over_tcp() {
    let upstream = FakeUpstream::start(|incoming| {
        let mut answer = big_answer(incoming);
        if incoming.via == Via::Udp
            && bytes(&answer).len() > usize::from(incoming.query.max_payload())
        {
            answer.answers.clear();
            answer.metadata.truncation = true;
        }
        vec![Step::Reply(bytes(&answer))]
    });
    let agent = Agent::start(&upstream.config(""));
    let name = "big.forwarded.example.";
    truncates_over_udp_and_comes_whole_over_tcp(&agent, name);
    assert_eq!(
        upstream.by_transport(name),
        (1, 1),
        "one truncated UDP answer, one TCP answer; every other client query from the cache"
    );
}

/// The upstream truncates every UDP answer, keeping the first of five addresses (TC set).
/// pathdns asks again over TCP; the client, over UDP, gets all five (they fit) without TC,
/// and so does the next client, from the cache. The partial answer is never served or
/// cached.
#[test]
fn an_upstream_that_truncates_is_asked_over_tcp_and_only_the_full_answer_is_cached() {
    const FIVE: [&str; 5] = [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.4",
        "192.0.2.5",
    ];
    let upstream = FakeUpstream::start(|incoming| {
        let name = question(incoming.query).name().clone();
        let records = FIVE.iter().map(|addr| address(&name, 300, addr)).collect();
        let mut answer = reply(incoming.query, records);
        if incoming.via == Via::Udp {
            answer.answers.truncate(1);
            answer.metadata.truncation = true;
        }
        vec![Step::Reply(bytes(&answer))]
    });
    let agent = Agent::start(&upstream.config(""));
    let name = "five.truncating.example.";
    for round in ["fetched", "cached"] {
        let (response, size) = ask_udp_sized(agent.addr, name, Some(1232));
        eprintln!(
            "{round}: {:?} in {size} bytes, TC={}",
            addresses(&response),
            response.metadata.truncation
        );
        assert_eq!(rcode(&response), ResponseCode::NoError, "{round}");
        assert!(!response.metadata.truncation, "{round}: fits in 1232 bytes");
        assert_eq!(
            addresses(&response),
            FIVE.map(str::to_owned).to_vec(),
            "{round}: the full answer"
        );
    }
    assert_eq!(
        upstream.by_transport(name),
        (1, 1),
        "one UDP and one TCP query upstream"
    );
}

/// When the upstream truncates over UDP and never answers over TCP, the client gets
/// SERVFAIL, never the partial answer, and nothing is cached.
#[test]
fn a_truncated_answer_without_a_tcp_answer_is_servfail_and_not_cached() {
    let upstream = FakeUpstream::start(|incoming| match incoming.via {
        Via::Udp => {
            let name = question(incoming.query).name().clone();
            let mut answer = reply(incoming.query, vec![address(&name, 300, "192.0.2.1")]);
            answer.metadata.truncation = true;
            vec![Step::Reply(bytes(&answer))]
        }
        Via::Tcp => Vec::new(),
    });
    let agent = Agent::start(&upstream.config(""));
    let name = "partial.truncating.example.";
    for attempt in 1..=2 {
        let started = std::time::Instant::now();
        let (response, _) = ask_udp_sized(agent.addr, name, Some(1232));
        eprintln!(
            "attempt {attempt}: {:?} after {:?}",
            rcode(&response),
            started.elapsed()
        );
        assert_eq!(
            rcode(&response),
            ResponseCode::ServFail,
            "attempt {attempt}"
        );
        assert!(
            response.answers.is_empty(),
            "attempt {attempt}: {response:?}"
        );
        assert_eq!(upstream.count(Via::Udp, name), attempt, "nothing cached");
    }
}
