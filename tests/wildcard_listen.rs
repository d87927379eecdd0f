//! Listening on a wildcard address (`0.0.0.0:PORT`, `[::]:PORT`) on a multi-homed host:
//! every UDP answer comes from the address the query was sent to (IP_PKTINFO,
//! IPV6_RECVPKTINFO), for owned names answered at once and for forwarded names answered
//! later by an upstream task. A client whose socket is connected to one of the addresses
//! accepts nothing from another, so an answer from the wrong address is never received.
//!
//! A namespace with two addresses of each family on one interface (TEST-NET-1 and the IPv6
//! documentation prefix), a client namespace behind a veth pair. Needs root (skipped
//! loudly otherwise) and `ip`.

use crate::common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::fake_upstream::{address, bytes, question, reply, FakeUpstream, Step};
use common::netns::{run_in_ns, Pair};
use common::{addresses, query, wait_for};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// Inside the server namespace only.
const PORT: u16 = 5353;
const SERVER_V4: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
const SERVER_V6: [&str; 2] = ["2001:db8::1", "2001:db8::2"];
const OWNED: &str = "svc.owned.example.";
const OWNED_ADDR: &str = "198.51.100.7";
const FORWARDED_ADDR: &str = "198.51.100.99";

/// Asks `server` from a socket connected to it (so only its answers arrive) and returns
/// the answer and the address it came from.
fn ask_connected(server: SocketAddr, name: &str) -> Option<(Message, SocketAddr)> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => "0.0.0.0:0".parse().ok()?,
        IpAddr::V6(_) => "[::]:0".parse().ok()?,
    };
    let socket = UdpSocket::bind(local).expect("bind the client socket");
    socket.connect(server).expect("connect the client socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    let message = query(name, RecordType::A, true);
    socket
        .send(&message.to_vec().expect("encode"))
        .expect("send the query");
    let mut buf = [0u8; 2048];
    let len = socket.recv(&mut buf).ok()?;
    let peer = socket.peer_addr().expect("the connected peer");
    let answer = Message::from_vec(&buf[..len]).expect("a well-formed answer");
    assert_eq!(answer.metadata.id, message.metadata.id, "the answer's ID");
    Some((answer, peer))
}

/// The same through an unconnected socket: where the answer really came from.
fn ask_unconnected(server: SocketAddr, name: &str) -> SocketAddr {
    let local = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).expect("bind the client socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    let message = query(name, RecordType::A, false);
    socket
        .send_to(&message.to_vec().expect("encode"), server)
        .expect("send the query");
    let mut buf = [0u8; 2048];
    let (_, from) = socket.recv_from(&mut buf).expect("an answer within 2 s");
    from
}

#[test]
fn a_wildcard_listener_answers_from_the_address_each_query_was_sent_to() {
    let server_addrs: Vec<String> = SERVER_V4
        .iter()
        .map(|a| format!("{a}/24"))
        .chain(SERVER_V6.iter().map(|a| format!("{a}/64")))
        .collect();
    let server_addrs: Vec<&str> = server_addrs.iter().map(String::as_str).collect();
    let Some(pair) = Pair::build(&server_addrs, &["192.0.2.10/24", "2001:db8::10/64"]) else {
        return;
    };
    // An upstream on the server namespace's loopback: forwarded names are answered by an
    // upstream task after the receiving thread has moved on.
    let upstream = run_in_ns(&pair.server, || {
        FakeUpstream::start(|incoming| {
            let name = question(incoming.query).name().clone();
            let answer = reply(incoming.query, vec![address(&name, 300, FORWARDED_ADDR)]);
            vec![Step::Reply(bytes(&answer))]
        })
    });
    let config = format!(
        "[server]\nlisten = [\"0.0.0.0:{PORT}\", \"[::]:{PORT}\"]\n\
         allow = [\"192.0.2.0/24\", \"2001:db8::/64\"]\n\
         [upstream]\nservers = [\"{}\"]\ntimeout = \"1500ms\"\n\
         [[name]]\nname = \"{}\"\ntargets = [\"{OWNED_ADDR}\"]\n",
        upstream.addr,
        OWNED.trim_end_matches('.')
    );
    let mut agent = pair.start_agent(&config);
    agent.process.wait_for_line("the IPv6 listener", |line| {
        line.contains(&format!("listening udp=[::]:{PORT}"))
            .then_some(())
    });
    let servers: Vec<IpAddr> = SERVER_V4
        .iter()
        .chain(SERVER_V6.iter())
        .map(|a| a.parse().expect("a server address"))
        .collect();
    run_in_ns(&pair.client, || {
        // The link is up, but the first IPv6 neighbour discovery may take a moment.
        wait_for("an answer over IPv6", || {
            ask_connected(SocketAddr::new(servers[2], PORT), OWNED)
        });
        for (round, &ip) in servers.iter().cycle().take(8).enumerate() {
            let server = SocketAddr::new(ip, PORT);
            // A fresh forwarded name each round: a cache miss, answered by a task.
            let forwarded = format!("n{round}.forwarded.example.");
            for (name, expected) in [(OWNED, OWNED_ADDR), (forwarded.as_str(), FORWARDED_ADDR)] {
                let started = Instant::now();
                let (answer, from) = ask_connected(server, name).unwrap_or_else(|| {
                    let really = ask_unconnected(server, name);
                    panic!("no answer from {server} for {name}; it came from {really}")
                });
                eprintln!(
                    "{name} asked of {server}: answered from {from} in {:?}",
                    started.elapsed()
                );
                assert_eq!(from, server, "{name}");
                assert_eq!(addresses(&answer), vec![expected.to_owned()], "{name}");
                assert_eq!(
                    ask_unconnected(server, name),
                    server,
                    "{name} (unconnected)"
                );
            }
        }
    });
    assert!(
        upstream.total("n0.forwarded.example.") >= 1,
        "the forwarded names went upstream"
    );
}
