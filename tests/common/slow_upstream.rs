//! A fake upstream resolver on loopback that answers every query after a delay, and counts
//! what it sees: queries received, distinct names, and the most names it held waiting at
//! once. (hickory retransmits a UDP query every 333 ms until it has an answer, so one
//! forwarded query may arrive here several times.)
//!
//! Names whose first label is `fast` are answered at once; every other name after the
//! delay. Every answer is NOERROR with one A record, [`SlowUpstream::ADDRESS`], TTL 60.
//! UDP and TCP are served on the same port (hickory falls back to TCP on truncation).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Counters {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    received: usize,
    names: HashSet<String>,
    /// Names asked for and not answered yet (a name is answered with its first answer).
    waiting: HashSet<String>,
    answered: HashSet<String>,
    max_waiting: usize,
}

impl Counters {
    fn arrived(&self, name: &str) {
        let mut state = self.state.lock().expect("counters");
        state.received += 1;
        state.names.insert(name.to_owned());
        if !state.answered.contains(name) {
            state.waiting.insert(name.to_owned());
        }
        state.max_waiting = state.max_waiting.max(state.waiting.len());
    }

    fn answered(&self, name: &str) {
        let mut state = self.state.lock().expect("counters");
        state.waiting.remove(name);
        state.answered.insert(name.to_owned());
    }
}

pub struct SlowUpstream {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    /// Stops every task (and closes the sockets) when dropped.
    _runtime: tokio::runtime::Runtime,
}

impl SlowUpstream {
    pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    pub fn start(delay: Duration) -> SlowUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake upstream runtime");
        let counters = Arc::new(Counters::default());
        let addr = runtime.block_on(async {
            for _ in 0..64 {
                let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind fake upstream udp");
                let addr = udp.local_addr().expect("local addr");
                let Ok(tcp) = tokio::net::TcpListener::bind(addr).await else {
                    continue;
                };
                tokio::spawn(serve_udp(Arc::new(udp), delay, counters.clone()));
                tokio::spawn(serve_tcp(tcp, delay, counters.clone()));
                return addr;
            }
            panic!("no loopback port free for UDP and TCP");
        });
        SlowUpstream {
            addr,
            counters,
            _runtime: runtime,
        }
    }

    /// [`super::registry_config`] forwarding here, with `timeout` as the upstream time
    /// budget and `server_keys` added to `[server]`.
    pub fn agent_config(&self, timeout: &str, server_keys: &str) -> String {
        super::registry_config(self.addr, "")
            .replace("timeout = \"1500ms\"", &format!("timeout = \"{timeout}\""))
            .replace(
                "listen = [\"127.0.0.1:0\"]",
                &format!("listen = [\"127.0.0.1:0\"]\n{server_keys}"),
            )
    }

    /// Queries received so far, retransmissions included.
    pub fn received(&self) -> usize {
        self.counters.state.lock().expect("counters").received
    }

    /// Distinct names asked for so far.
    pub fn names(&self) -> usize {
        self.counters.state.lock().expect("counters").names.len()
    }

    /// The most distinct names asked for and not answered yet, at once.
    pub fn max_waiting(&self) -> usize {
        self.counters.state.lock().expect("counters").max_waiting
    }
}

/// The answer to `query`, after its delay; `None` for what is not a query.
async fn answer(query: &[u8], delay: Duration, counters: &Counters) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let name = question.name().to_ascii().to_ascii_lowercase();
    counters.arrived(&name);
    let fast = question
        .name()
        .iter()
        .next()
        .is_some_and(|label| label.eq_ignore_ascii_case(b"fast"));
    if !fast {
        tokio::time::sleep(delay).await;
    }
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let record = Record::from_rdata(
        question.name().clone(),
        60,
        RData::A(A(SlowUpstream::ADDRESS)),
    );
    response.add_query(question);
    response.add_answer(record);
    if let Some(edns) = &request.edns {
        response.set_edns(edns.clone());
    }
    counters.answered(&name);
    response.to_vec().ok()
}

async fn serve_udp(socket: Arc<tokio::net::UdpSocket>, delay: Duration, counters: Arc<Counters>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..len].to_vec();
        let (socket, counters) = (socket.clone(), counters.clone());
        tokio::spawn(async move {
            if let Some(response) = answer(&query, delay, &counters).await {
                let _ = socket.send_to(&response, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, delay: Duration, counters: Arc<Counters>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut len = [0u8; 2];
            while stream.read_exact(&mut len).await.is_ok() {
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(response) = answer(&query, delay, &counters).await else {
                    return;
                };
                let framed = [&(response.len() as u16).to_be_bytes()[..], &response].concat();
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}
