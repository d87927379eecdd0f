//! Never an open resolver: clients outside `server.allow` get REFUSED.

use crate::common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";

#[test]
fn clients_outside_the_allow_list_are_refused() {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let config = registry_config(upstream.addr, "")
        .replace("[server]\n", "[server]\nallow = [\"127.0.0.1/32\"]\n");
    let agent = Agent::start(&config);

    let allowed = ask_udp(agent.addr, &query(REGISTRY, RecordType::A, false));
    assert_eq!(rcode(&allowed), ResponseCode::NoError);

    // 127.0.0.2 is on loopback but outside 127.0.0.1/32.
    for name in [REGISTRY, "www.upstream.example."] {
        let question = query(name, RecordType::A, false);
        let raw = exchange_raw_udp_from(
            "127.0.0.2:0",
            agent.addr,
            &question.to_vec().expect("encode"),
            Duration::from_secs(5),
        )
        .expect("a REFUSED answer, not silence");
        let response = Message::from_vec(&raw).expect("decode");
        assert_eq!(rcode(&response), ResponseCode::Refused, "{name}");
        assert!(response.answers.is_empty());
    }
    assert_eq!(
        upstream.queries_for("www.upstream.example"),
        0,
        "a refused client never causes upstream traffic"
    );
}

#[test]
fn the_default_allow_list_is_loopback_only() {
    let config =
        pathdns::config::Config::parse("[upstream]\nservers = [\"127.0.0.1:5399\"]\n", "test.toml")
            .expect("minimal config");
    let allow: Vec<String> = config.server.allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(allow, vec!["127.0.0.0/8", "::1/128"]);
    let listen: Vec<String> = config.server.listen.iter().map(|a| a.to_string()).collect();
    assert_eq!(listen, vec!["127.0.0.1:53"]);
}
