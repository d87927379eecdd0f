//! A scripted DNS upstream on loopback: UDP and TCP on one port, answering each query with
//! whatever the test's script says (forged replies, replies from another port, delays,
//! truncation), and recording every query it receives, with its transport and the exact
//! case of its name.
//!
//! Every reply is DNS data only: the addresses in it are never connected to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::READY_DEADLINE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
}

/// One query as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub via: Via,
    /// The question name exactly as sent (case kept), with its trailing dot.
    pub name: String,
    pub qtype: RecordType,
    pub at: Instant,
    /// The message ID and the querier's address and source port.
    pub id: u16,
    pub peer: SocketAddr,
}

/// A query handed to the script.
pub struct Incoming<'a> {
    pub via: Via,
    pub query: &'a Message,
}

/// What the upstream does, in order, for one query.
pub enum Step {
    /// Sends these bytes from the upstream's own socket (UDP) or on the connection (TCP).
    Reply(Vec<u8>),
    /// UDP only: sends these bytes to the querier from another socket, so from another
    /// source port of the same address.
    ReplyFromOtherPort(Vec<u8>),
    /// Waits this long before the next step.
    Wait(Duration),
}

type Script = dyn Fn(&Incoming<'_>) -> Vec<Step> + Send + Sync;

pub struct FakeUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeUpstream {
    /// Serves `script` on a free loopback port, UDP and TCP, until dropped.
    pub fn start(script: impl Fn(&Incoming<'_>) -> Vec<Step> + Send + Sync + 'static) -> Self {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("upstream addr");
        let script: Arc<Script> = Arc::new(script);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let udp = Arc::new(udp);
        {
            let (script, seen, stop) = (script.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || serve_udp(udp, script, seen, stop));
        }
        {
            let (script, seen, stop) = (script.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || serve_tcp(tcp, script, seen, stop));
        }
        FakeUpstream { addr, seen, stop }
    }

    /// Every query received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Queries for `name` (any case, with its trailing dot) received over `via`.
    pub fn count(&self, via: Via, name: &str) -> usize {
        self.seen()
            .iter()
            .filter(|seen| seen.via == via && seen.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// Queries for `name` over either transport.
    pub fn total(&self, name: &str) -> usize {
        let (udp, tcp) = self.by_transport(name);
        udp + tcp
    }

    /// Queries for `name` over UDP and over TCP.
    pub fn by_transport(&self, name: &str) -> (usize, usize) {
        (self.count(Via::Udp, name), self.count(Via::Tcp, name))
    }

    /// The `[upstream]` section of a config forwarding to this upstream only, with `extra`
    /// lines in it.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[upstream]\nservers = [\"{}\"]\n\
             timeout = \"1500ms\"\n{extra}\n",
            self.addr
        )
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("local addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp);
        }
    }
    panic!("no free loopback port for the fake upstream")
}

fn record(seen: &Mutex<Vec<Seen>>, via: Via, peer: SocketAddr, query: &Message) {
    let Some(question) = query.queries.first() else {
        return;
    };
    seen.lock().expect("seen lock").push(Seen {
        via,
        name: question.name().to_ascii(),
        qtype: question.query_type(),
        at: Instant::now(),
        id: query.metadata.id,
        peer,
    });
}

fn serve_udp(
    socket: Arc<UdpSocket>,
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
) {
    // A read timeout only so that the thread notices `stop`.
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        // Recorded before any reply leaves: a client that has its answer sees the count.
        record(&seen, Via::Udp, peer, &query);
        let (socket, script) = (socket.clone(), script.clone());
        // Each query on its own thread, so that a delayed answer does not hold up others.
        std::thread::spawn(move || {
            for step in script(&Incoming {
                via: Via::Udp,
                query: &query,
            }) {
                match step {
                    Step::Reply(bytes) => {
                        let _ = socket.send_to(&bytes, peer);
                    }
                    Step::ReplyFromOtherPort(bytes) => {
                        let other = UdpSocket::bind("127.0.0.1:0").expect("bind other port");
                        let _ = other.send_to(&bytes, peer);
                    }
                    Step::Wait(pause) => std::thread::sleep(pause),
                }
            }
        });
    }
}

fn serve_tcp(
    listener: TcpListener,
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
) {
    listener.set_nonblocking(true).expect("nonblocking");
    while !stop.load(Ordering::Relaxed) {
        let Ok((stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let (script, seen, stop) = (script.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || serve_connection(stream, &*script, &seen, &stop));
    }
}

fn serve_connection(
    mut stream: TcpStream,
    script: &Script,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READY_DEADLINE));
    while !stop.load(Ordering::Relaxed) {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut bytes).is_err() {
            return;
        }
        let Ok(query) = Message::from_vec(&bytes) else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        record(seen, Via::Tcp, peer, &query);
        for step in script(&Incoming {
            via: Via::Tcp,
            query: &query,
        }) {
            match step {
                Step::Reply(bytes) | Step::ReplyFromOtherPort(bytes) => {
                    let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
                    frame.extend_from_slice(&bytes);
                    if stream.write_all(&frame).is_err() {
                        return;
                    }
                }
                Step::Wait(pause) => std::thread::sleep(pause),
            }
        }
    }
}

/// A NOERROR response to `query`: its ID and question exactly as received, RD copied, RA
/// set, and `answers`.
pub fn reply(query: &Message, answers: Vec<Record>) -> Message {
    let mut message = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    message.metadata.recursion_desired = query.metadata.recursion_desired;
    message.metadata.recursion_available = true;
    message.add_queries(query.queries.iter().cloned());
    message.add_answers(answers);
    message
}

/// `message` as wire bytes.
pub fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().expect("encode reply")
}

/// An A or AAAA record for `name`.
pub fn address(name: &Name, ttl: u32, addr: &str) -> Record {
    let data = match addr.parse().expect("test address") {
        std::net::IpAddr::V4(v4) => RData::A(A(v4)),
        std::net::IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), ttl, data)
}

/// The question of `query` (the first one).
pub fn question(query: &Message) -> &Query {
    query.queries.first().expect("a question")
}
