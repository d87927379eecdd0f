//! Owned names answered by the real binary over real UDP and TCP sockets.

use crate::common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
const AUTH: &str = "dockerauth-vpc.cn-hangzhou.aliyuncs.com.";
const OSS: &str = "oss-cn-hangzhou-internal.aliyuncs.com.";
const BUCKET: &str = "mybucket.oss-cn-hangzhou-internal.aliyuncs.com.";
const OTHER_BUCKET: &str = "another-bucket.oss-cn-hangzhou-internal.aliyuncs.com.";

fn start() -> (Dnsmasq, Agent) {
    let upstream = Dnsmasq::start(&[
        ("cr.aliyuncs.com", "192.0.2.10"),
        ("ep-test.oss.cn-shanghai.privatelink.example", "192.0.2.20"),
    ]);
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    (upstream, agent)
}

type Ask = fn(std::net::SocketAddr, &Message) -> Message;

fn assert_owned_a(ask: Ask, agent: &Agent, name: &str, expected: &str) {
    let response = ask(agent.addr, &query(name, RecordType::A, true));
    assert_eq!(rcode(&response), ResponseCode::NoError, "{name}");
    assert!(response.metadata.authoritative, "{name}: AA must be set");
    assert_eq!(addresses(&response), vec![expected.to_owned()], "{name}");
}

fn owned_names_answer(ask: Ask) {
    let (_upstream, agent) = start();
    assert_owned_a(ask, &agent, REGISTRY, "10.94.205.198");
    assert_owned_a(ask, &agent, AUTH, "100.103.7.181");
    assert_owned_a(ask, &agent, OSS, "100.118.28.43");
    assert_owned_a(ask, &agent, BUCKET, "100.118.28.43");
    assert_owned_a(ask, &agent, OTHER_BUCKET, "100.118.28.43");
}

#[test]
fn registry_auth_oss_and_buckets_answer_with_aa_over_udp() {
    owned_names_answer(ask_udp);
}

#[test]
fn registry_auth_oss_and_buckets_answer_with_aa_over_tcp() {
    owned_names_answer(ask_tcp);
}

/// RFC 2308 section 2.2: NODATA is NOERROR, no answers, and the SOA in the authority
/// section.
fn aaaa_is_nodata_with_soa(ask: Ask) {
    let (_upstream, agent) = start();
    for name in [REGISTRY, AUTH, OSS, BUCKET] {
        let response = ask(agent.addr, &query(name, RecordType::AAAA, false));
        assert_eq!(rcode(&response), ResponseCode::NoError, "{name}");
        assert!(response.metadata.authoritative, "{name}");
        assert!(
            response.answers.is_empty(),
            "{name}: {:?}",
            response.answers
        );
        let soa = soa_in_authority(&response).unwrap_or_else(|| panic!("{name}: no SOA"));
        assert!(soa.ttl > 0);
    }
}

#[test]
fn rfc2308_2_2_aaaa_of_owned_names_is_nodata_with_soa_over_udp() {
    aaaa_is_nodata_with_soa(ask_udp);
}

#[test]
fn rfc2308_2_2_aaaa_of_owned_names_is_nodata_with_soa_over_tcp() {
    aaaa_is_nodata_with_soa(ask_tcp);
}

#[test]
fn rfc2308_2_2_other_types_of_owned_names_are_nodata() {
    let (_upstream, agent) = start();
    for rtype in [RecordType::MX, RecordType::TXT, RecordType::Unknown(65280)] {
        let response = ask_udp(agent.addr, &query(REGISTRY, rtype, false));
        assert_eq!(rcode(&response), ResponseCode::NoError, "{rtype}");
        assert!(response.answers.is_empty(), "{rtype}");
        assert!(soa_in_authority(&response).is_some(), "{rtype}: SOA");
    }
}

#[test]
fn aaaa_answers_ipv6_targets() {
    let (_upstream, agent) = start();
    let response = ask_udp(
        agent.addr,
        &query("artifacts.internal.example.", RecordType::AAAA, false),
    );
    assert_eq!(addresses(&response), vec!["fd00::1".to_owned()]);
    let response = ask_udp(
        agent.addr,
        &query("artifacts.internal.example.", RecordType::A, false),
    );
    assert_eq!(addresses(&response), vec!["10.1.2.3".to_owned()]);
}

/// RFC 4343: names compare case-insensitively, and the answer echoes the question's case.
#[test]
fn rfc4343_mixed_case_queries_answer_and_keep_their_case() {
    let (_upstream, agent) = start();
    for ask in [ask_udp as Ask, ask_tcp] {
        let name = "XxXxXx-Registry-VPC.CN-Hangzhou.Cr.AliyunCS.com.";
        let response = ask(agent.addr, &query(name, RecordType::A, false));
        assert_eq!(addresses(&response), vec!["10.94.205.198".to_owned()]);
        assert_eq!(response.queries[0].name.to_ascii(), name);
        assert_eq!(response.answers[0].name.to_ascii(), name);
        let bucket = "MyBucket.OSS-cn-hangzhou-INTERNAL.aliyuncs.com.";
        let response = ask(agent.addr, &query(bucket, RecordType::A, false));
        assert_eq!(addresses(&response), vec!["100.118.28.43".to_owned()]);
    }
}

#[test]
fn cname_to_an_owned_name_carries_the_target_address() {
    let (_upstream, agent) = start();
    let response = ask_udp(
        agent.addr,
        &query("alias.internal.example.", RecordType::A, false),
    );
    assert!(response.metadata.authoritative);
    assert_eq!(
        cname_targets(&response),
        vec!["artifacts.internal.example.".to_owned()]
    );
    assert_eq!(addresses(&response), vec!["10.1.2.3".to_owned()]);
}

/// The documents' remedy (b): OSS through PrivateLink, the OSS name a CNAME to the
/// endpoint's name, which is resolved upstream.
#[test]
fn oss_cname_to_privatelink_answers_cname_plus_upstream_address() {
    let (upstream, agent) = start();
    let oss = "oss-cn-shanghai-internal.aliyuncs.com.";
    for ask in [ask_udp as Ask, ask_tcp] {
        let response = ask(agent.addr, &query(oss, RecordType::A, false));
        assert_eq!(rcode(&response), ResponseCode::NoError);
        assert_eq!(
            cname_targets(&response),
            vec!["ep-test.oss.cn-shanghai.privatelink.example.".to_owned()]
        );
        assert_eq!(addresses(&response), vec!["192.0.2.20".to_owned()]);
    }
    assert_eq!(
        upstream.logged_queries_for("ep-test.oss.cn-shanghai.privatelink.example"),
        1,
        "the composed answer is cached under the owned name"
    );
    let response = ask_udp(agent.addr, &query(oss, RecordType::CNAME, false));
    assert_eq!(
        cname_targets(&response),
        vec!["ep-test.oss.cn-shanghai.privatelink.example.".to_owned()]
    );
    assert!(addresses(&response).is_empty());
}

/// Siblings and parents of owned names are not owned: they are forwarded, never NXDOMAIN.
#[test]
fn siblings_and_parents_of_owned_names_are_forwarded() {
    let (upstream, agent) = start();
    let response = ask_udp(agent.addr, &query("cr.aliyuncs.com.", RecordType::A, false));
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert!(
        !response.metadata.authoritative,
        "forwarded answers are not AA"
    );
    assert_eq!(addresses(&response), vec!["192.0.2.10".to_owned()]);
    assert_eq!(upstream.logged_queries_for("cr.aliyuncs.com"), 1);
    for name in [
        "oss-cn-hangzhou.aliyuncs.com.",
        "aliyuncs.com.",
        "sub.xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.",
    ] {
        let response = ask_udp(agent.addr, &query(name, RecordType::A, false));
        assert!(!response.metadata.authoritative, "{name} must not be owned");
        upstream.logged_queries_for(name.trim_end_matches('.'));
    }
}

#[test]
fn soa_query_for_an_owned_name_answers_the_soa() {
    let (_upstream, agent) = start();
    let response = ask_udp(agent.addr, &query(REGISTRY, RecordType::SOA, false));
    assert_eq!(response.answers.len(), 1);
    assert_eq!(response.answers[0].record_type(), RecordType::SOA);
    assert!(response.metadata.authoritative);
}
