//! The DNS server: sockets, the per-query handler and forwarding.
//!
//! Owns: [`bind`] (UDP and TCP on each listen address, all or nothing), the UDP and TCP
//! serving loops, [`handler`] (what to answer), [`forward`], [`upstream`],
//! [`upstream_answer`], [`rebinding`] and [`cache`] (names pathdns does not own), [`stale`]
//! (serve-stale, RFC 8767, when the upstreams fail), and [`hickory_bridge`], the one place
//! where hickory's types and the hot path's ([`crate::wire`]) are converted. Reads the
//! answer table; never writes it.
//!
//! Why our own listener on hickory-proto rather than hickory-server: hickory-server 0.26
//! spawns a task per UDP query without bound, answers queries on one TCP connection one at
//! a time, has no connection cap, and retries accept errors at once. Owned answers here are
//! ready-made wire bytes, so the UDP path answers in the receiving thread, a batch of
//! datagrams per `recvmmsg`/`sendmmsg`, without spawning; TCP answers every pipelined query
//! of a read with one write (README, "Performance").

pub mod cache;
pub mod forward;
pub mod handler;
pub mod hickory_bridge;
pub mod rebinding;
pub mod stale;
pub mod stats;
mod tcp;
mod udp;
pub mod upstream;
pub mod upstream_answer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use handler::{Handler, Step, Transport};

/// Fault injection for tests, compiled in only with the `fault-injection` cargo feature
/// (tests/run.sh builds the tested binary with it; packages never): SIGUSR2 with
/// `PATHDNS_FAULT_INJECTION=1` toggles it, and while it is set the UDP and TCP listeners read
/// queries and answer nothing, as a hung server would.
#[cfg(feature = "fault-injection")]
pub static FAULT_FREEZE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the listeners play dead ([`FAULT_FREEZE`]); always false in a normal build.
#[inline]
pub(crate) fn frozen() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        FAULT_FREEZE.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
    }
}

/// A listen address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({transport}): {source}{hint}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub transport: &'static str,
    #[source]
    pub source: std::io::Error,
    hint: &'static str,
}

impl BindError {
    pub fn new(addr: SocketAddr, transport: &'static str, source: std::io::Error) -> BindError {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "; ports below 1024 need root or CAP_NET_BIND_SERVICE"
            }
            std::io::ErrorKind::AddrInUse => "; another DNS server may be running there",
            std::io::ErrorKind::AddrNotAvailable if is_link_local(addr) => {
                "; no local interface has that address: for the node-local address, run \
                 `pathdns node-local up` first (the packaged unit does)"
            }
            std::io::ErrorKind::AddrNotAvailable => "; no local interface has that address",
            _ => "",
        };
        BindError {
            addr,
            transport,
            source,
            hint,
        }
    }
}

fn is_link_local(addr: SocketAddr) -> bool {
    matches!(addr.ip(), std::net::IpAddr::V4(ip) if ip.is_link_local())
}

/// Bound sockets for one listen address.
pub struct Listener {
    pub udp: std::net::UdpSocket,
    pub tcp: TcpListener,
    /// Which of the two were handed over (by systemd) rather than bound here.
    pub adopted: Adopted<bool>,
    /// Whether another process (systemd: pathdns.socket or the fd store) holds the UDP
    /// socket too. Stopping then only closes our handle: a shutdown would stop the socket
    /// for the next process as well.
    pub shared: bool,
}

impl Listener {
    pub fn udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    pub fn tcp_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A pair of things per listen address, one for UDP and one for TCP.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Adopted<T> {
    pub udp: T,
    pub tcp: T,
}

/// Sockets someone else bound (systemd) for one listen address, UDP and TCP; a `None` one
/// is bound here.
pub type Handover = (Option<std::net::UdpSocket>, Option<std::net::TcpListener>);

/// Binds UDP and TCP on every address, or fails without serving anything. Port 0 picks one
/// free port for both.
pub fn bind(addrs: &[SocketAddr]) -> Result<Vec<Listener>, BindError> {
    bind_or_adopt(addrs, |_| (None, None))
}

/// Like [`bind`], but first asks `adopt` for sockets already bound to an address (systemd
/// socket activation and its fd store): those are served as they are, only the missing
/// ones are bound.
pub fn bind_or_adopt(
    addrs: &[SocketAddr],
    mut adopt: impl FnMut(SocketAddr) -> Handover,
) -> Result<Vec<Listener>, BindError> {
    addrs
        .iter()
        .map(|&addr| match adopt(addr) {
            (None, None) => bind_one(addr),
            (udp, tcp) => adopt_one(addr, udp, tcp),
        })
        .collect()
}

/// A listener from handed-over sockets, binding whichever of the two is missing.
fn adopt_one(
    addr: SocketAddr,
    udp: Option<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
) -> Result<Listener, BindError> {
    let adopted = Adopted {
        udp: udp.is_some(),
        tcp: tcp.is_some(),
    };
    let udp = match udp {
        Some(udp) => udp,
        None => udp_socket(addr).map_err(|err| BindError::new(addr, "udp", err))?,
    };
    let tcp = match tcp {
        Some(tcp) => tcp
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(tcp)),
        None => tcp_listener(addr),
    }
    .map_err(|err| BindError::new(addr, "tcp", err))?;
    Ok(Listener {
        udp,
        tcp,
        adopted,
        shared: adopted.udp,
    })
}

fn bind_one(addr: SocketAddr) -> Result<Listener, BindError> {
    // With port 0 the UDP port is chosen first; TCP may find it taken, so try a few.
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = udp_socket(addr).map_err(|err| BindError::new(addr, "udp", err))?;
        let udp_addr = udp
            .local_addr()
            .map_err(|err| BindError::new(addr, "udp", err))?;
        match tcp_listener(udp_addr) {
            Ok(tcp) => {
                return Ok(Listener {
                    udp,
                    tcp,
                    adopted: Adopted::default(),
                    shared: false,
                })
            }
            Err(err) => last_error = Some(BindError::new(udp_addr, "tcp", err)),
        }
    }
    Err(last_error
        .unwrap_or_else(|| BindError::new(addr, "tcp", std::io::Error::other("no port found"))))
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A restarted daemon rebinds at once, whatever connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Limits for the serving loops (`[server]` and `[upstream]` keys of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Forwarded queries waiting on upstreams at once, over every listener; more get
    /// SERVFAIL at once rather than queueing without bound.
    pub max_in_flight: usize,
    /// TCP connections open at once; more are closed as soon as they are accepted.
    pub max_tcp_connections: usize,
    /// A TCP connection with nothing in flight and no query for this long is closed, and
    /// so is one whose client reads no answer for this long.
    pub tcp_idle_timeout: Duration,
    /// Queries of one TCP connection waiting on upstreams at once; at the cap the
    /// connection is not read until answers drain.
    pub max_queries_per_connection: usize,
}

/// Sockets one forwarded query may hold: hickory retransmits a UDP query from a new random
/// port every 333 ms, up to three sends, until one is answered.
const SOCKETS_PER_UPSTREAM_QUERY: usize = 3;

impl ServeLimits {
    /// File descriptors the limits can take at once, with room for the process's own.
    pub fn file_descriptors(&self) -> usize {
        self.max_in_flight
            .saturating_mul(SOCKETS_PER_UPSTREAM_QUERY)
            .saturating_add(self.max_tcp_connections)
            .saturating_add(64)
    }
}

/// Capacity shared by every listener: forwarded queries in flight and TCP connections.
#[derive(Clone)]
pub struct Slots {
    upstream: Arc<Semaphore>,
    tcp: Arc<Semaphore>,
    tcp_idle_timeout: Duration,
    queries_per_connection: usize,
}

impl Slots {
    pub fn new(limits: &ServeLimits) -> Slots {
        Slots {
            upstream: Arc::new(Semaphore::new(limits.max_in_flight)),
            tcp: Arc::new(Semaphore::new(limits.max_tcp_connections)),
            tcp_idle_timeout: limits.tcp_idle_timeout,
            queries_per_connection: limits.max_queries_per_connection.max(1),
        }
    }
}

/// Most UDP receiving threads per listen address: a node-local agent's load does not need
/// one per core on a big host.
const MAX_UDP_THREADS: usize = 4;
/// Fewest, even when the process may use one core: while one thread is held up (its wakeup
/// late, a page fault, a preemption), the other takes the datagrams that keep arriving, so
/// a stall of one thread delays the queries of its batch, not every query behind them. At
/// 20,000 QPS on one core this cut p99 from about 0.10 to 0.08-0.09 ms and p99.9 from 1-2 ms
/// to 0.3-0.4 ms (README, "Performance").
const MIN_UDP_THREADS: usize = 2;

/// UDP receiving threads still running, over every listener: the daemon waits for them to
/// finish the batch in hand before the process exits, so that no query read from a socket
/// that outlives the process (systemd's) goes unanswered.
pub fn udp_threads_running() -> usize {
    udp::running()
}

/// Starts the UDP and TCP loops of one listener; dropping the set stops them (and closes
/// its sockets), which a reload does for an address it no longer listens on. Must be called
/// inside the runtime (upstream queries are spawned on it).
pub fn serve(listener: Listener, handler: Arc<Handler>, slots: &Slots) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    // One receiving thread per core (at least two, up to a few): each answers owned names
    // and cache hits inline, a batch of datagrams per system call.
    let threads = std::thread::available_parallelism()
        .map_or(MIN_UDP_THREADS, |n| n.get())
        .clamp(MIN_UDP_THREADS, MAX_UDP_THREADS);
    match udp::Receivers::start(
        listener.udp,
        listener.shared,
        threads,
        handler.clone(),
        slots.upstream.clone(),
        tokio::runtime::Handle::current(),
    ) {
        // The task holds the receivers until the set is dropped (or aborted), which stops
        // their threads.
        Ok(receivers) => {
            tasks.spawn(async move {
                let _receivers = receivers;
                std::future::pending::<()>().await
            });
        }
        Err(err) => tracing::error!(error = %err, "cannot start the UDP receivers"),
    }
    tasks.spawn(tcp::serve(listener.tcp, handler, slots.clone()));
    tasks
}
