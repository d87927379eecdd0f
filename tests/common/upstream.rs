//! A fake upstream DNS server on loopback (UDP and TCP on one port, a small tokio runtime of
//! its own) whose answers the test chooses for each query: crafted, mutated, several, or
//! none. pathdns forwards to it like to any upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::packets::question_name;

/// How a query reached the fake upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    Udp,
    Tcp,
}

/// What the fake upstream sends back, in order.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A DNS message: a datagram over UDP, a length-prefixed frame over TCP.
    Message(Vec<u8>),
    /// Bytes as they are: a datagram over UDP, written unframed over TCP (a frame whose
    /// length lies, say).
    Raw(Vec<u8>),
    /// TCP: close the connection. UDP: nothing.
    Close,
}

type Respond = dyn Fn(&[u8], Via) -> Vec<Reply> + Send + Sync;

/// Distinct names counted one by one; past this, only the totals (a mutation run asks for
/// many random names).
const COUNTED_NAMES: usize = 10_000;

#[derive(Default)]
struct Log {
    by_name: Mutex<HashMap<(String, Via), usize>>,
    queries: AtomicU64,
    replies: AtomicU64,
}

impl Log {
    fn query(&self, query: &[u8], via: Via) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let name = question_name(query).unwrap_or_else(|| "(no question)".into());
        let mut names = self.by_name.lock().expect("log lock");
        if names.len() < COUNTED_NAMES || names.contains_key(&(name.clone(), via)) {
            *names.entry((name, via)).or_default() += 1;
        }
    }
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    log: Arc<Log>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeUpstream {
    /// Serves on a free loopback port; `respond` says what to send for each query.
    pub fn start(respond: impl Fn(&[u8], Via) -> Vec<Reply> + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake upstream runtime");
        let (udp, tcp) = runtime.block_on(bind());
        let addr = udp.local_addr().expect("upstream addr");
        let log = Arc::new(Log::default());
        let respond: Arc<Respond> = Arc::new(respond);
        runtime.spawn(serve_udp(udp, respond.clone(), log.clone()));
        runtime.spawn(serve_tcp(tcp, respond, log.clone()));
        FakeUpstream {
            addr,
            log,
            runtime: Some(runtime),
        }
    }

    /// How many queries for `name` (lower case, final dot) came over `via`.
    pub fn queries_for(&self, name: &str, via: Via) -> usize {
        let names = self.log.by_name.lock().expect("log lock");
        names.get(&(name.to_owned(), via)).copied().unwrap_or(0)
    }

    /// Queries received, over both transports.
    pub fn queries(&self) -> u64 {
        self.log.queries.load(Ordering::Relaxed)
    }

    /// Messages and raw chunks sent.
    pub fn replies(&self) -> u64 {
        self.log.replies.load(Ordering::Relaxed)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// UDP and TCP on the same free loopback port.
async fn bind() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let addr = udp.local_addr().expect("addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

async fn serve_udp(socket: UdpSocket, respond: Arc<Respond>, log: Arc<Log>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        log.query(&buf[..len], Via::Udp);
        for reply in respond(&buf[..len], Via::Udp) {
            if let Reply::Message(bytes) | Reply::Raw(bytes) = reply {
                let _ = socket.send_to(&bytes, peer).await;
                log.replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, respond: Arc<Respond>, log: Arc<Log>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, respond.clone(), log.clone()));
    }
}

async fn serve_connection(mut stream: TcpStream, respond: Arc<Respond>, log: Arc<Log>) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        log.query(&query, Via::Tcp);
        for reply in respond(&query, Via::Tcp) {
            let written = match reply {
                Reply::Message(bytes) => {
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&bytes);
                    stream.write_all(&framed).await
                }
                Reply::Raw(bytes) => stream.write_all(&bytes).await,
                Reply::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
            };
            if written.is_err() {
                return;
            }
            log.replies.fetch_add(1, Ordering::Relaxed);
        }
    }
}
