//! Forwarding defences against forged upstream replies (RFC 5452), with the real pathdns
//! binary and a scripted upstream on loopback that forges replies the way an off-path
//! attacker would: from another source port, with the right ID but another question, as an
//! echo of the query, with opcode UPDATE. Also identical queries coalesced, and 0x20 case
//! randomization.
//!
//! Forged data is 203.0.113.66 (TEST-NET-3), the real answer 192.0.2.1 (TEST-NET-1): DNS data
//! only, never connected to. The forger here knows the query's ID and source port, which a
//! real off-path attacker has to guess; what is tested is that pathdns ignores or refuses
//! what does not match, never that it is hard to guess.

use crate::common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::fake_upstream::{address, bytes, question, reply, FakeUpstream, Step, Via};
use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

const REAL: &str = "192.0.2.1";
const FORGED: &str = "203.0.113.66";

/// The real answer to `query`: its question's name with [`REAL`], TTL 300.
fn real(query: &Message) -> Vec<u8> {
    let name = question(query).name().clone();
    bytes(&reply(query, vec![address(&name, 300, REAL)]))
}

/// A forged answer to `query`: right ID and question, [`FORGED`].
fn forged(query: &Message) -> Vec<u8> {
    let name = question(query).name().clone();
    bytes(&reply(query, vec![address(&name, 300, FORGED)]))
}

/// Asks `name` over UDP, prints what came back and how fast, returns the response.
fn ask(agent: &Agent, name: &str) -> (Message, Duration) {
    let started = Instant::now();
    let response = ask_udp(agent.addr, &query(name, RecordType::A, true));
    let took = started.elapsed();
    eprintln!(
        "{name}: {:?} {:?} after {took:?}",
        rcode(&response),
        addresses(&response)
    );
    (response, took)
}

/// SERVFAIL, and none of the data the upstream (or the forger) sent.
fn assert_servfail(response: &Message, what: &str) {
    assert_eq!(
        rcode(response),
        ResponseCode::ServFail,
        "{what}: {response:?}"
    );
    assert!(response.answers.is_empty(), "{what}: {response:?}");
}

fn assert_real(response: &Message, what: &str) {
    assert_eq!(
        rcode(response),
        ResponseCode::NoError,
        "{what}: {response:?}"
    );
    assert_eq!(addresses(response), vec![REAL.to_owned()], "{what}");
}

/// An upstream that sends what `forge` makes of each query, then the real answer 100 ms
/// later: the client gets the real answer (after it arrived), and only it is cached.
fn the_real_answer_wins_over(name: &str, forge: impl Fn(&Message) -> Step + Send + Sync + 'static) {
    let upstream = FakeUpstream::start(move |incoming| {
        vec![
            forge(incoming.query),
            Step::Wait(Duration::from_millis(100)),
            Step::Reply(real(incoming.query)),
        ]
    });
    let agent = Agent::start(&upstream.config(""));
    let (response, took) = ask(&agent, name);
    assert_real(&response, "first answer");
    assert!(
        took >= Duration::from_millis(100),
        "answered before the real reply came: {took:?}"
    );
    let (response, _) = ask(&agent, name);
    assert_real(&response, "cached answer");
    assert_eq!(
        upstream.total(name),
        1,
        "the second answer came from the cache"
    );
}

/// (a) A forged reply from another source port, right ID and question, arriving 100 ms
/// before the real one: ignored.
#[test]
fn a_forged_reply_from_another_port_is_ignored_and_the_real_one_wins() {
    the_real_answer_wins_over("www.spoof-port.example.", |query| {
        Step::ReplyFromOtherPort(forged(query))
    });
}

/// (a) When only the forged reply from another port ever comes: SERVFAIL within the time
/// budget, never the forged data, and nothing cached.
#[test]
fn a_forged_reply_from_another_port_alone_gives_servfail() {
    let upstream = FakeUpstream::start(|incoming| match incoming.via {
        Via::Udp => vec![Step::ReplyFromOtherPort(forged(incoming.query))],
        Via::Tcp => Vec::new(),
    });
    let agent = Agent::start(&upstream.config(""));
    let name = "www.spoof-only.example.";
    for attempt in 1..=2 {
        let (response, took) = ask(&agent, name);
        assert_servfail(&response, &format!("attempt {attempt}"));
        assert!(took < Duration::from_secs(3), "attempt {attempt}: {took:?}");
    }
    let asked = upstream.total(name);
    eprintln!("the upstream saw {asked} queries for two client queries");
    assert!(
        asked >= 2,
        "nothing cached: the second query went upstream too"
    );
}

/// (b) A reply from the right address and port with the right ID but another question
/// (and the forged address for the asked name), 100 ms before the real one: ignored.
#[test]
fn a_reply_with_the_right_id_and_another_question_is_ignored() {
    the_real_answer_wins_over("www.spoof-question.example.", |query| {
        let mut other = query.clone();
        other.queries[0].set_name(Name::from_ascii("other.example.").expect("name"));
        let asked = question(query).name().clone();
        Step::Reply(bytes(&reply(&other, vec![address(&asked, 300, FORGED)])))
    });
}

/// (b) Over TCP, where hickory matches replies by ID alone, pathdns checks the question
/// itself: a reply with another question is refused (SERVFAIL, nothing cached), and the
/// real reply behind it on the same connection is not taken either.
#[test]
fn over_tcp_a_reply_with_another_question_is_refused() {
    let upstream = FakeUpstream::start(|incoming| match incoming.via {
        // Truncated over UDP, so that pathdns asks again over TCP.
        Via::Udp => {
            let mut truncated = reply(incoming.query, Vec::new());
            truncated.metadata.truncation = true;
            vec![Step::Reply(bytes(&truncated))]
        }
        Via::Tcp => {
            let mut other = incoming.query.clone();
            other.queries[0].set_query_type(RecordType::AAAA);
            let asked = question(incoming.query).name().clone();
            let forged = reply(&other, vec![address(&asked, 300, FORGED)]);
            vec![
                Step::Reply(bytes(&forged)),
                Step::Reply(real(incoming.query)),
            ]
        }
    });
    let agent = Agent::start(&upstream.config(""));
    let name = "www.spoof-tcp.example.";
    for attempt in 1..=2 {
        let (response, _) = ask(&agent, name);
        assert_servfail(&response, &format!("attempt {attempt}"));
        assert_eq!(
            upstream.count(Via::Tcp, name),
            attempt,
            "nothing cached: asked again over TCP"
        );
    }
}

/// A reply that echoes the query (QR=0) or carries opcode UPDATE is no answer. Over UDP
/// pathdns takes it for a spoof, as hickory takes a 0x20 mismatch, and asks the same
/// upstream again over TCP: the client gets the real answer, and only it is cached.
#[test]
fn an_echoed_query_or_an_update_reply_is_refused_and_asked_again_over_tcp() {
    let upstream = FakeUpstream::start(|incoming| match incoming.via {
        Via::Udp => {
            let mut bad = incoming.query.clone();
            if question(incoming.query)
                .name()
                .to_ascii()
                .starts_with("update")
            {
                bad = reply(incoming.query, Vec::new());
                bad.metadata.op_code = OpCode::Update;
            } else {
                bad.metadata.message_type = MessageType::Query;
            }
            vec![Step::Reply(bytes(&bad))]
        }
        Via::Tcp => vec![Step::Reply(real(incoming.query))],
    });
    for name in ["echo.spoof.example.", "update.spoof.example."] {
        // A pathdns of its own for each: once it has a TCP connection to an upstream,
        // hickory keeps using it.
        let agent = Agent::start(&upstream.config(""));
        let (response, _) = ask(&agent, name);
        assert_real(&response, name);
        let (response, _) = ask(&agent, name);
        assert_real(&response, name);
        assert_eq!(
            upstream.by_transport(name),
            (1, 1),
            "{name}: one UDP query refused, one TCP query answered, then the cache"
        );
    }
}

/// Every forwarded query leaves from its own random source port with a random ID (RFC
/// 5452 section 9.2): 20 queries for 20 names show (nearly) 20 ports spread over the port
/// range and (nearly) 20 IDs. "Nearly": two random draws may collide, once in a few
/// hundred runs; two collisions, once in millions.
#[test]
fn forwarded_queries_use_random_source_ports_and_ids() {
    let upstream = FakeUpstream::start(|incoming| vec![Step::Reply(real(incoming.query))]);
    let agent = Agent::start(&upstream.config(""));
    for index in 0..20 {
        let (response, _) = ask(&agent, &format!("n{index}.random.example."));
        assert_real(&response, "answer");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 20, "{seen:?}");
    let mut ports: Vec<u16> = seen.iter().map(|seen| seen.peer.port()).collect();
    let mut ids: Vec<u16> = seen.iter().map(|seen| seen.id).collect();
    eprintln!("source ports {ports:?}\nIDs {ids:?}");
    let spread = ports.iter().max().unwrap_or(&0) - ports.iter().min().unwrap_or(&0);
    ports.sort_unstable();
    ports.dedup();
    ids.sort_unstable();
    ids.dedup();
    assert!(ports.len() >= 19, "{} distinct source ports", ports.len());
    assert!(ids.len() >= 19, "{} distinct IDs", ids.len());
    assert!(spread > 5_000, "source ports within {spread} of each other");
}

/// (c) 200 identical queries at once for a name not in the cache, from 200 client sockets,
/// against an upstream that takes 200 ms to answer: they share the upstream fetch. The
/// upstream sees at most two queries (hickory's pool coalesces identical queries in
/// flight; a second one could slip in between its fetch ending and the cache filling).
#[test]
fn two_hundred_identical_concurrent_queries_reach_the_upstream_at_most_twice() {
    let upstream = FakeUpstream::start(|incoming| {
        vec![
            Step::Wait(Duration::from_millis(200)),
            Step::Reply(real(incoming.query)),
        ]
    });
    let agent = Agent::start(&upstream.config(""));
    let name = "www.coalesce.example.";
    let clients: Vec<(UdpSocket, Message)> = (0..200)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            (socket, query(name, RecordType::A, false))
        })
        .collect();
    let started = Instant::now();
    for (socket, message) in &clients {
        socket
            .send_to(&message.to_vec().expect("encode"), agent.addr)
            .expect("send");
    }
    let sent = started.elapsed();
    let mut buf = vec![0u8; 4096];
    for (index, (socket, message)) in clients.iter().enumerate() {
        let (len, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|err| panic!("no answer to client {index}: {err}"));
        let response = Message::from_vec(&buf[..len]).expect("decode");
        assert_eq!(response.metadata.id, message.metadata.id);
        assert_real(&response, &format!("client {index}"));
    }
    let took = started.elapsed();
    let asked = upstream.total(name);
    eprintln!(
        "200 identical queries sent in {sent:?}, all answered in {took:?}; the upstream saw \
         {asked}"
    );
    assert!(
        sent < Duration::from_millis(200),
        "not concurrent: {sent:?}"
    );
    assert!((1..=2).contains(&asked), "the upstream saw {asked} queries");
}

/// 0x20 (`case_randomization = true`): the upstream sees the name in random case; the
/// client gets its answer in its own case. Off (the default), the upstream sees lower case.
#[test]
fn case_randomization_sends_random_case_and_answers_in_the_clients_case() {
    let upstream = FakeUpstream::start(|incoming| vec![Step::Reply(real(incoming.query))]);
    let on = Agent::start(&upstream.config("case_randomization = true"));
    let off = Agent::start(&upstream.config(""));
    let asked = "WwW.CaseRandomization-Test.example.";
    for agent in [&on, &off] {
        let response = ask_udp(agent.addr, &query(asked, RecordType::A, false));
        assert_real(&response, "answer");
        assert_eq!(
            response.queries[0].name().to_ascii(),
            asked,
            "question case"
        );
        assert_eq!(response.answers[0].name.to_ascii(), asked, "owner case");
    }
    let seen: Vec<String> = upstream.seen().into_iter().map(|seen| seen.name).collect();
    eprintln!("the upstream saw {seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
    let lower = asked.to_ascii_lowercase();
    // 30 letters: all lower case by chance once in 2^30.
    assert_ne!(seen[0], lower, "0x20 on: random case");
    assert!(seen[0].eq_ignore_ascii_case(asked));
    assert_eq!(seen[1], lower, "0x20 off: lower case");
}

/// 0x20: an upstream (or a forger) that does not echo the random case over UDP is not
/// believed; pathdns asks again over TCP and the client gets that answer.
#[test]
fn case_randomization_refuses_a_reply_that_does_not_echo_the_case() {
    let upstream = FakeUpstream::start(|incoming| {
        let mut answer = Message::from_vec(&real(incoming.query)).expect("decode");
        if incoming.via == Via::Udp {
            let name = answer.queries[0].name().to_lowercase();
            answer.queries[0].set_name(name);
        }
        vec![Step::Reply(bytes(&answer))]
    });
    let agent = Agent::start(&upstream.config("case_randomization = true"));
    let name = "www.lowercasing-upstream.example.";
    let (response, _) = ask(&agent, name);
    assert_real(&response, "answer over TCP");
    assert_eq!(
        upstream.by_transport(name),
        (1, 1),
        "the lower-cased UDP reply refused, the TCP one taken"
    );
    // The same upstream without 0x20 is believed over UDP.
    let plain = Agent::start(&upstream.config(""));
    let other = "www2.lowercasing-upstream.example.";
    let (response, _) = ask(&plain, other);
    assert_real(&response, "answer over UDP");
    assert_eq!(upstream.by_transport(other), (1, 0));
}
