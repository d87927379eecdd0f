//! Names pathdns does not own are forwarded to real upstream servers on loopback (dnsmasq,
//! Unbound), through pathdns's cache.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn forwarded_answers_arrive_and_repeats_come_from_the_cache() {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    for round in 0..5 {
        let ask = if round % 2 == 0 { ask_udp } else { ask_tcp };
        let response = ask(
            agent.addr,
            &query("www.upstream.example.", RecordType::A, true),
        );
        assert_eq!(rcode(&response), ResponseCode::NoError);
        assert_eq!(addresses(&response), vec!["192.0.2.1".to_owned()]);
        assert!(response.answers[0].ttl <= 300 && response.answers[0].ttl > 250);
    }
    // Mixed case hits the same cache entry.
    let response = ask_udp(
        agent.addr,
        &query("WWW.Upstream.Example.", RecordType::A, false),
    );
    assert_eq!(addresses(&response), vec!["192.0.2.1".to_owned()]);
    assert_eq!(response.answers[0].name.to_ascii(), "WWW.Upstream.Example.");
    assert_eq!(
        upstream.logged_queries_for("www.upstream.example"),
        1,
        "six client queries, one upstream query"
    );
}

#[test]
fn a_silent_upstream_yields_servfail_within_three_seconds() {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    // Stop the upstream without closing its socket: queries time out rather than fail fast.
    upstream.process.signal("STOP");
    for ask in [ask_udp as fn(_, &_) -> _, ask_tcp] {
        let started = Instant::now();
        let response = ask(
            agent.addr,
            &query("never-cached.upstream.example.", RecordType::A, false),
        );
        let took = started.elapsed();
        eprintln!("SERVFAIL after {took:?} with a silent upstream");
        assert_eq!(rcode(&response), ResponseCode::ServFail);
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    // Owned names never wait on upstreams.
    let started = Instant::now();
    let response = ask_udp(
        agent.addr,
        &query(
            "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.",
            RecordType::A,
            false,
        ),
    );
    assert_eq!(addresses(&response), vec!["10.94.205.198".to_owned()]);
    assert!(started.elapsed() < Duration::from_secs(1));
    upstream.process.signal("CONT");
}

#[test]
fn several_upstreams_survive_a_dead_first_one() {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let dead = format!("127.0.0.1:{}", free_port());
    let config = registry_config(upstream.addr, "").replace(
        &format!("servers = [\"{}\"]", upstream.addr),
        &format!("servers = [\"{dead}\", \"{}\"]", upstream.addr),
    );
    assert!(config.contains(&dead));
    let agent = Agent::start(&config);
    let response = ask_udp(
        agent.addr,
        &query("www.upstream.example.", RecordType::A, false),
    );
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec!["192.0.2.1".to_owned()]);
}

/// A large upstream answer truncated over UDP is fetched again over TCP; clients get TC over
/// UDP (RFC 1035 section 4.2.1) and the full answer over TCP.
#[test]
fn rfc1035_4_2_1_large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let addresses_text: Vec<String> = (1..=120).map(|i| format!("198.51.100.{i}")).collect();
    let records: Vec<(&str, &str)> = addresses_text
        .iter()
        .map(|a| ("big.upstream.example", a.as_str()))
        .collect();
    let upstream = Dnsmasq::start(&records);
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    let response = ask_tcp(
        agent.addr,
        &query("big.upstream.example.", RecordType::A, true),
    );
    assert_eq!(addresses(&response).len(), 120, "full answer over TCP");
    let response = ask_udp(
        agent.addr,
        &query("big.upstream.example.", RecordType::A, true),
    );
    assert!(response.metadata.truncation, "TC over UDP");
    assert!(response.answers.is_empty());
    let response = ask_tcp(
        agent.addr,
        &query("big.upstream.example.", RecordType::A, false),
    );
    assert_eq!(addresses(&response).len(), 120);
    // dnsmasq was asked over UDP (truncated) and TCP once; the rest came from the cache.
    let asked = upstream.logged_queries_for("big.upstream.example");
    assert!((1..=2).contains(&asked), "upstream asked {asked} times");
}

/// RFC 2308 section 5: negative answers are cached for the SOA's negative TTL.
#[test]
fn rfc2308_5_nxdomain_and_nodata_are_cached_with_their_soa() {
    let upstream = Unbound::start(
        r#"    local-zone: "neg.example." static
    local-data: "neg.example. 300 IN SOA ns.neg.example. host.neg.example. 1 3600 600 86400 120"
    local-data: "a.neg.example. 300 IN A 192.0.2.7""#,
    );
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    for _ in 0..3 {
        let response = ask_udp(
            agent.addr,
            &query("missing.neg.example.", RecordType::A, false),
        );
        assert_eq!(rcode(&response), ResponseCode::NXDomain);
        assert!(soa_in_authority(&response).is_some(), "SOA kept");
        let response = ask_udp(
            agent.addr,
            &query("a.neg.example.", RecordType::AAAA, false),
        );
        assert_eq!(rcode(&response), ResponseCode::NoError);
        assert!(response.answers.is_empty());
        assert!(soa_in_authority(&response).is_some(), "SOA kept");
    }
    wait_until("unbound to log its queries", || {
        upstream.queries_for("missing.neg.example.") >= 1
            && upstream.queries_for("a.neg.example.") >= 1
    });
    assert_eq!(upstream.queries_for("missing.neg.example."), 1);
    assert_eq!(upstream.queries_for("a.neg.example."), 1);
}

/// RFC 1035 section 3.2.1: TTL 0 means "use for this transaction only". An answer with
/// TTL 0 is passed on and not cached: the next query reaches the upstream again. The same
/// upstream's TTL 300 answers are cached (the control).
#[test]
fn rfc1035_3_2_1_ttl_zero_answers_are_not_cached() {
    use common::fake_upstream::{address, bytes, question, reply, FakeUpstream, Step};
    let upstream = FakeUpstream::start(|incoming| {
        let name = question(incoming.query).name().clone();
        let ttl = if name.to_ascii().starts_with("zero.") {
            0
        } else {
            300
        };
        let answer = reply(incoming.query, vec![address(&name, ttl, "192.0.2.7")]);
        vec![Step::Reply(bytes(&answer))]
    });
    let agent = Agent::start(&upstream.config(""));
    for (name, ttl, asked) in [
        ("zero.ttl.example.", 0, [1, 2, 3]),
        ("kept.ttl.example.", 300, [1, 1, 1]),
    ] {
        for (round, expected) in asked.into_iter().enumerate() {
            let response = ask_udp(agent.addr, &query(name, RecordType::A, false));
            assert_eq!(addresses(&response), vec!["192.0.2.7".to_owned()], "{name}");
            assert!(
                response.answers[0].ttl <= ttl,
                "{name}: {:?}",
                response.answers
            );
            assert_eq!(
                upstream.total(name),
                expected,
                "{name}: upstream queries after client query {}",
                round + 1
            );
        }
    }
}
