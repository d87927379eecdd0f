//! TCP pipelining (RFC 7766): queries on one connection are answered as they complete, in
//! any order; a connection's queries waiting on upstreams are capped, and past the cap
//! pathdns stops reading it until answers drain; idle connections are closed, busy ones
//! are not.
//!
//! The upstream is a fake resolver on loopback that answers after a delay
//! (`common::slow_upstream`), so that "slow" is a number, not a hope.

use crate::common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::slow_upstream::SlowUpstream;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const OWNED: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
const OWNED_ADDRESS: &str = "10.94.205.198";

fn query_with_id(name: &str, id: u16) -> Message {
    let mut message = query(name, RecordType::A, false);
    message.metadata.id = id;
    message
}

fn connect(agent: &Agent) -> TcpStream {
    let stream = TcpStream::connect(agent.addr).expect("connect tcp");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// Writes every query in one write, as a pipelining client does.
fn send_all(stream: &mut TcpStream, queries: &[Message]) {
    use std::io::Write;
    let mut bytes = Vec::new();
    for message in queries {
        let encoded = message.to_vec().expect("encode query");
        bytes.extend_from_slice(&(encoded.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&encoded);
    }
    stream.write_all(&bytes).expect("write queries");
}

fn next_answer(stream: &mut TcpStream) -> Message {
    Message::from_vec(&read_frame(stream)).expect("decode response")
}

/// Waits for the server to close `stream`, returning how long that took.
fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut byte = [0u8; 1];
    loop {
        // A signal to the test process (a stop and continue, say) interrupts the read
        // without anything having happened on the connection: read again.
        match stream.read(&mut byte) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) => return started.elapsed(),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return started.elapsed()
            }
            other => panic!("expected the server to close the connection, got {other:?}"),
        }
    }
}

#[test]
fn rfc7766_6_2_1_1_an_owned_answer_overtakes_a_slow_forwarded_one_on_the_same_connection() {
    let upstream = SlowUpstream::start(Duration::from_secs(1));
    let agent = Agent::start(&upstream.agent_config("3s", ""));
    let mut stream = connect(&agent);
    let started = Instant::now();
    send_all(
        &mut stream,
        &[
            query_with_id("slow.forwarded.example.", 0x5101),
            query_with_id(OWNED, 0x5102),
            query_with_id("fast.forwarded.example.", 0x5103),
        ],
    );
    let mut order = Vec::new();
    for _ in 0..3 {
        let answer = next_answer(&mut stream);
        let took = started.elapsed();
        eprintln!(
            "answer {:#06x} after {took:?}: {:?} {:?}",
            answer.metadata.id,
            rcode(&answer),
            addresses(&answer)
        );
        assert_eq!(rcode(&answer), ResponseCode::NoError);
        let expected = match answer.metadata.id {
            0x5101 => {
                assert!(
                    took >= Duration::from_millis(900),
                    "slow answer after {took:?}"
                );
                SlowUpstream::ADDRESS.to_string()
            }
            0x5102 => {
                assert!(
                    took < Duration::from_millis(500),
                    "owned answer after {took:?}"
                );
                OWNED_ADDRESS.to_owned()
            }
            0x5103 => SlowUpstream::ADDRESS.to_string(),
            other => panic!("unexpected ID {other:#06x}"),
        };
        assert_eq!(addresses(&answer), vec![expected]);
        order.push(answer.metadata.id);
    }
    assert_eq!(
        order,
        [0x5102, 0x5103, 0x5101],
        "owned first, then the fast forwarded name, then the slow one"
    );
}

#[test]
fn rfc7766_6_2_3_idle_connections_are_closed_but_not_while_an_answer_is_awaited() {
    let upstream = SlowUpstream::start(Duration::from_millis(2500));
    let agent = Agent::start(&upstream.agent_config("4s", "tcp_idle_timeout = \"1s\""));
    let mut idle = connect(&agent);
    let mut waiting = connect(&agent);
    let started = Instant::now();
    send_all(&mut waiting, &[query_with_id("slow.idle.example.", 0x6101)]);

    let took = closed_after(&mut idle);
    eprintln!("idle connection closed after {took:?} (tcp_idle_timeout 1s)");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&took),
        "idle connection closed after {took:?}"
    );

    // The answer takes 2.5 s, longer than the idle timeout: the connection waits for it.
    let answer = next_answer(&mut waiting);
    let took = started.elapsed();
    eprintln!("answer awaited for {took:?} on a connection with tcp_idle_timeout 1s");
    assert_eq!(answer.metadata.id, 0x6101);
    assert_eq!(addresses(&answer), vec![SlowUpstream::ADDRESS.to_string()]);
    assert!(took >= Duration::from_secs(2), "answered after {took:?}");
    // Then it is idle, and closed.
    let took = closed_after(&mut waiting);
    eprintln!("closed {took:?} after its last answer");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[test]
fn a_connection_at_max_queries_per_connection_is_not_read_until_answers_drain() {
    const CAP: usize = 4;
    const FORWARDED: u16 = 12;
    let upstream = SlowUpstream::start(Duration::from_secs(1));
    let agent =
        Agent::start(&upstream.agent_config("3s", &format!("max_queries_per_connection = {CAP}")));
    let mut stream = connect(&agent);
    let mut queries: Vec<Message> = (0..FORWARDED)
        .map(|i| query_with_id(&format!("n{i}.capped.example."), 0x7000 + i))
        .collect();
    queries.push(query_with_id(OWNED, 0x7fff));
    let started = Instant::now();
    send_all(&mut stream, &queries);
    let mut seen = Vec::new();
    let mut owned_after = None;
    for _ in 0..queries.len() {
        let answer = next_answer(&mut stream);
        assert_eq!(rcode(&answer), ResponseCode::NoError, "{answer:?}");
        if answer.metadata.id == 0x7fff {
            owned_after = Some(started.elapsed());
        }
        seen.push(answer.metadata.id);
    }
    let took = started.elapsed();
    seen.sort_unstable();
    let mut expected: Vec<u16> = queries.iter().map(|q| q.metadata.id).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every query answered once");
    let owned_after = owned_after.expect("owned answer");
    eprintln!(
        "{FORWARDED} forwarded + 1 owned on one connection, cap {CAP}: upstream held at most \
         {} at once; owned answer after {owned_after:?}, all after {took:?}",
        upstream.max_waiting()
    );
    assert!(
        upstream.max_waiting() <= CAP,
        "upstream held {} queries of one connection at once (cap {CAP})",
        upstream.max_waiting()
    );
    assert_eq!(upstream.names(), usize::from(FORWARDED));
    // 12 queries at 4 at a time take three rounds of 1 s; the owned one, queued behind
    // them, is not read before 8 of them have been answered.
    assert!(
        owned_after >= Duration::from_millis(1800),
        "owned answer after {owned_after:?}: the connection was read past its cap"
    );
    assert!(
        took >= Duration::from_millis(2700),
        "all answered after {took:?}"
    );
}
