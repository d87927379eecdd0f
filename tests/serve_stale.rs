//! Serve-stale (RFC 8767) and the per-query time budget, against a fake upstream on
//! loopback whose behaviour each test controls: answer, go silent, answer REFUSED, or
//! answer late.
//!
//! Expiry is time, so a test sleeps until a TTL has run out; everything else waits for a
//! condition (a log line, an answer) with a deadline.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake upstream does with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Answers: A records for names, NXDOMAIN with an SOA for names starting with "nx".
    Answer = 0,
    /// Reads the query and says nothing: a dead upstream behind a silent drop.
    Silent = 1,
    /// Answers REFUSED.
    Refused = 2,
}

/// The behaviour, shared with the server's tasks.
struct Behaviour {
    mode: AtomicU8,
    address: Mutex<Ipv4Addr>,
    ttl: AtomicU32,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
    /// Queries received, over UDP and TCP, whatever the mode.
    queries: AtomicUsize,
}

/// A DNS server on 127.0.0.1 (UDP and TCP on one port), on its own runtime; dropping it
/// stops it.
struct FakeUpstream {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeUpstream {
    fn start(address: Ipv4Addr, ttl: u32) -> FakeUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let behaviour = Arc::new(Behaviour {
            mode: AtomicU8::new(Mode::Answer as u8),
            address: Mutex::new(address),
            ttl: AtomicU32::new(ttl),
            delay_ms: AtomicU64::new(0),
            queries: AtomicUsize::new(0),
        });
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (udp, tcp) = runtime.block_on(async {
            let udp = tokio::net::UdpSocket::bind(addr).await.expect("bind udp");
            let tcp = tokio::net::TcpListener::bind(addr).await.expect("bind tcp");
            (Arc::new(udp), tcp)
        });
        let shared = behaviour.clone();
        runtime.spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, client)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                let (udp, behaviour, query) = (udp.clone(), shared.clone(), buf[..len].to_vec());
                tokio::spawn(async move {
                    if let Some(response) = respond(&behaviour, &query).await {
                        let _ = udp.send_to(&response, client).await;
                    }
                });
            }
        });
        let shared = behaviour.clone();
        runtime.spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    continue;
                };
                let behaviour = shared.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok(len) = stream.read_u16().await else {
                            return;
                        };
                        let mut query = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        if let Some(response) = respond(&behaviour, &query).await {
                            let mut framed = (response.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&response);
                            if stream.write_all(&framed).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        FakeUpstream {
            addr,
            behaviour,
            _runtime: runtime,
        }
    }

    fn set_mode(&self, mode: Mode) {
        self.behaviour.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn set_address(&self, address: Ipv4Addr) {
        *self.behaviour.address.lock().expect("address lock") = address;
    }

    fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).expect("delay");
        self.behaviour.delay_ms.store(millis, Ordering::SeqCst);
    }

    fn queries(&self) -> usize {
        self.behaviour.queries.load(Ordering::SeqCst)
    }
}

/// The fake upstream's response to `query`, if it answers at all.
async fn respond(behaviour: &Behaviour, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    behaviour.queries.fetch_add(1, Ordering::SeqCst);
    let mode = behaviour.mode.load(Ordering::SeqCst);
    if mode == Mode::Silent as u8 {
        return None;
    }
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_queries(request.queries.clone());
    if let Some(edns) = &request.edns {
        let mut ours = hickory_proto::op::Edns::new();
        ours.set_max_payload(edns.max_payload().min(1232));
        response.set_edns(ours);
    }
    let ttl = behaviour.ttl.load(Ordering::SeqCst);
    if mode == Mode::Refused as u8 {
        response.metadata.response_code = ResponseCode::Refused;
    } else if let Some(question) = request.queries.first() {
        let name = question.name().clone();
        if name.to_ascii().to_ascii_lowercase().starts_with("nx") {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.metadata.authoritative = true;
            let zone = name.base_name();
            let soa = SOA::new(
                Name::from_ascii("ns.invalid.").ok()?,
                Name::from_ascii("host.invalid.").ok()?,
                1,
                3600,
                600,
                86400,
                ttl,
            );
            response.add_authority(Record::from_rdata(zone, ttl, RData::SOA(soa)));
        } else if question.query_type() == RecordType::A {
            let address = *behaviour.address.lock().ok()?;
            response.add_answer(Record::from_rdata(name, ttl, RData::A(A(address))));
        }
    }
    response.to_vec().ok()
}

/// A pathdns that owns no names and forwards to `upstream`, logging serve-stale's decisions.
fn agent(upstream: &FakeUpstream, upstream_settings: &str) -> Agent {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[upstream]\nservers = [\"{}\"]\n{upstream_settings}\n",
        upstream.addr
    );
    Agent::start_with_env(
        &config,
        &[("PATHDNS_LOG", "info,pathdns::dns::stale=debug")],
    )
}

/// The Extended DNS Error info-codes in a response (RFC 8914).
fn ede_codes(response: &Message) -> Vec<u16> {
    let Some(edns) = &response.edns else {
        return Vec::new();
    };
    match edns.option(EdnsCode::Unknown(15)) {
        Some(EdnsOption::Unknown(15, data)) if data.len() >= 2 => {
            vec![u16::from_be_bytes([data[0], data[1]])]
        }
        _ => Vec::new(),
    }
}

fn ttls(response: &Message) -> Vec<u32> {
    response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .map(|record| record.ttl)
        .collect()
}

/// Sleeps until `instant` (for expiry, which is time).
fn sleep_until(instant: Instant) {
    if let Some(left) = instant.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// One query, timed.
fn timed(
    ask: fn(SocketAddr, &Message) -> Message,
    agent: &Agent,
    name: &str,
    edns: bool,
) -> (Message, Duration) {
    let started = Instant::now();
    let response = ask(agent.addr, &query(name, RecordType::A, edns));
    (response, started.elapsed())
}

/// The control endpoint's `/status` forwarding counters.
fn forwarding(agent: &mut Agent) -> pathdns::status::ForwardingStatus {
    use std::io::{Read, Write};
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    let mut stream = std::net::TcpStream::connect(control).expect("connect control");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET /status HTTP/1.0\r\nHost: {control}\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read /status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .expect("an HTTP response");
    let status: pathdns::status::StatusReport =
        serde_json::from_str(body).unwrap_or_else(|err| panic!("/status ({err}): {body}"));
    status
        .forwarding
        .expect("/status has the forwarding counters")
}

const NAME: &str = "www.stale.example.";
const FIRST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SECOND: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// A fake upstream answering [`NAME`] with [`FIRST`], TTL 2; a pathdns with
/// `upstream_settings` forwarding to it; and the moment that first answer (asked with EDNS,
/// so that its lack of an EDE shows) had been cached.
fn primed(upstream_settings: &str) -> (FakeUpstream, Agent, Instant) {
    let upstream = FakeUpstream::start(FIRST, 2);
    let agent = agent(&upstream, upstream_settings);
    let response = ask_udp(agent.addr, &query(NAME, RecordType::A, true));
    let stored = Instant::now();
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec![FIRST.to_string()]);
    assert_eq!(ttls(&response), vec![2]);
    assert!(ede_codes(&response).is_empty(), "a fresh answer has no EDE");
    (upstream, agent, stored)
}

/// The acceptance test: upstream answers with TTL 2, then dies; after expiry the
/// stale answer arrives within 2 s; while the failure recheck timer runs, the upstream is not
/// asked again; after the maximum stale age, SERVFAIL; when the upstream is back, fresh
/// answers.
#[test]
fn rfc8767_a_dead_upstream_gets_the_stale_answer_until_the_maximum_age() {
    let (upstream, mut agent, stored) = primed("timeout = \"2s\"\nstale_max_age = \"5s\"");

    // The upstream dies; the answer expires.
    upstream.set_mode(Mode::Silent);
    sleep_until(stored + Duration::from_millis(2200));
    let asked = upstream.queries();
    let (response, took) = timed(ask_udp, &agent, NAME, true);
    eprintln!("stale answer after {took:?} with a silent upstream (timer 1.8 s)");
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(
        addresses(&response),
        vec![FIRST.to_string()],
        "the stale data"
    );
    assert_eq!(ttls(&response), vec![30], "RFC 8767's stale TTL");
    assert_eq!(ede_codes(&response), vec![3], "EDE 3, Stale Answer");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(
        took >= Duration::from_millis(1700),
        "answered before the timer: {took:?}"
    );
    assert!(upstream.queries() > asked, "the upstream was asked first");

    // The refresh ends in failure; then the upstream is not asked again for that name.
    agent.process.wait_for_line("the failed refresh", |line| {
        line.contains("refresh of a stale answer failed")
            .then_some(())
    });
    let asked = upstream.queries();
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        let ask = if round % 2 == 0 { ask_udp } else { ask_tcp };
        let (response, took) = timed(ask, &agent, NAME, round % 3 != 0);
        slowest = slowest.max(took);
        assert_eq!(addresses(&response), vec![FIRST.to_string()]);
        assert_eq!(ttls(&response), vec![30]);
    }
    eprintln!(
        "10 queries in the recheck window: slowest {slowest:?}, upstream asked {} more times",
        upstream.queries() - asked
    );
    assert_eq!(upstream.queries(), asked, "the upstream was asked again");
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    let counters = forwarding(&mut agent);
    assert_eq!(counters.stale_answers, 11, "{counters:?}");

    // Past the maximum stale age (TTL 2 s + 5 s): SERVFAIL within the budget.
    sleep_until(stored + Duration::from_millis(7300));
    let (response, took) = timed(ask_udp, &agent, NAME, false);
    eprintln!("SERVFAIL after {took:?} past the maximum stale age");
    assert_eq!(rcode(&response), ResponseCode::ServFail);
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // The upstream is back: fresh answers.
    upstream.set_address(SECOND);
    upstream.set_mode(Mode::Answer);
    let response = ask_udp(agent.addr, &query(NAME, RecordType::A, true));
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec![SECOND.to_string()]);
    assert_eq!(ttls(&response), vec![2]);
    assert!(ede_codes(&response).is_empty());
}

/// A refusing upstream is a failure at once: the stale answer (positive or NXDOMAIN) comes
/// without waiting for the client response timer.
#[test]
fn rfc8767_a_refusing_upstream_gets_the_stale_answer_at_once() {
    let (upstream, agent, stored) = primed("");
    let negative = "nx.stale.example.";
    let response = ask_udp(agent.addr, &query(negative, RecordType::A, false));
    assert_eq!(rcode(&response), ResponseCode::NXDomain);
    assert!(soa_in_authority(&response).is_some());

    upstream.set_mode(Mode::Refused);
    sleep_until(stored + Duration::from_millis(2200));
    let (response, took) = timed(ask_udp, &agent, NAME, false);
    eprintln!("stale answer after {took:?} with a refusing upstream");
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec![FIRST.to_string()]);
    assert_eq!(ttls(&response), vec![30]);
    assert!(response.edns.is_none(), "no OPT for a client without EDNS");
    assert!(took < Duration::from_secs(1), "took {took:?}");

    let (response, took) = timed(ask_tcp, &agent, negative, true);
    eprintln!("stale NXDOMAIN after {took:?} with a refusing upstream");
    assert_eq!(rcode(&response), ResponseCode::NXDomain);
    assert!(soa_in_authority(&response).is_some(), "SOA kept");
    assert_eq!(ttls(&response), vec![30]);
    assert_eq!(ede_codes(&response), vec![3]);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Both names are held now: no more upstream queries for them.
    let asked = upstream.queries();
    for name in [NAME, negative, NAME, negative] {
        let (response, _) = timed(ask_udp, &agent, name, false);
        assert_eq!(ttls(&response), vec![30]);
    }
    assert_eq!(upstream.queries(), asked);
}

/// An upstream that answers after the client response timer: the client gets the stale
/// answer at 1.8 s, and the late answer still refreshes the cache.
#[test]
fn rfc8767_a_late_upstream_answer_still_refreshes_the_cache() {
    let (upstream, agent, stored) = primed("timeout = \"3s\"");

    upstream.set_address(SECOND);
    upstream.set_delay(Duration::from_millis(2300));
    sleep_until(stored + Duration::from_millis(2200));
    let (response, took) = timed(ask_udp, &agent, NAME, false);
    eprintln!("stale answer after {took:?} with an upstream answering after 2.3 s");
    assert_eq!(addresses(&response), vec![FIRST.to_string()]);
    assert_eq!(ttls(&response), vec![30]);
    assert!(took < Duration::from_millis(2500), "took {took:?}");

    // The late answer lands in the cache: fresh data, its own TTL, from the cache.
    let deadline = Instant::now() + READY_DEADLINE;
    let refreshed = loop {
        let (response, took) = timed(ask_udp, &agent, NAME, false);
        if addresses(&response) == vec![SECOND.to_string()] {
            break (response, took);
        }
        assert_eq!(ttls(&response), vec![30], "stale until the refresh lands");
        assert!(
            Instant::now() < deadline,
            "the late answer never reached the cache"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "refreshed answer {:?} after {:?}",
        refreshed.0.answers, refreshed.1
    );
    assert!(ttls(&refreshed.0).iter().all(|&ttl| ttl <= 2));
    assert!(
        refreshed.1 < Duration::from_millis(500),
        "from the cache: {:?}",
        refreshed.1
    );
}

/// With serve-stale off, an expired answer and a dead upstream give SERVFAIL, within the
/// per-query budget.
#[test]
fn serve_stale_off_gives_servfail_after_expiry() {
    let (upstream, mut agent, stored) = primed("timeout = \"2s\"\nserve_stale = false");

    upstream.set_mode(Mode::Silent);
    sleep_until(stored + Duration::from_millis(2200));
    let (response, took) = timed(ask_udp, &agent, NAME, true);
    eprintln!("SERVFAIL after {took:?} with serve-stale off and a silent upstream");
    assert_eq!(rcode(&response), ResponseCode::ServFail);
    assert!(response.answers.is_empty());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let counters = forwarding(&mut agent);
    assert_eq!(counters.stale_answers, 0, "{counters:?}");
    assert_eq!(counters.upstream_errors, 1, "{counters:?}");
}
