//! The UDP loop: dedicated threads (one per core, at least two) block in `recvmmsg` on one
//! socket; each answers every datagram of the batch that it can answer at once, sends those
//! answers with one `sendmmsg`, and hands the rest to a bounded set of upstream tasks on the
//! async runtime.
//!
//! Why threads and not async tasks: owned names and cache hits never wait, so an async
//! task per socket only adds readiness bookkeeping (epoll) to every datagram; and batching
//! receives and sends cuts the system calls per query from two to about two per batch
//! (README, "Performance", has the numbers). The threads share one socket: `SO_REUSEPORT`
//! would let another process of the same user bind the port beside us and take a share of
//! the queries, where a plain bind fails loudly ("another DNS server may be running there").
//!
//! A socket bound to a wildcard address (`0.0.0.0`, `[::]`) on a multi-homed host would
//! answer from whatever address the route to the client prefers, which a client that sent
//! its query to another of the host's addresses drops as an answer from a stranger. Such a
//! socket asks the kernel for each datagram's destination address (IP_PKTINFO,
//! IPV6_RECVPKTINFO) and sends each answer from it (a PKTINFO control message; one
//! `sendmmsg` per run of answers from the same address). Sockets bound to one address keep
//! the plain path, without control messages.
//!
//! Stopping: [`Receivers::stop`] (or dropping it) marks the threads stopped and shuts the
//! socket down for reading, which wakes a thread blocked in `recvmmsg`; each thread then
//! drops its handle of the socket, and the last one closes it. A socket systemd holds too
//! (socket activation, the fd store) is never shut down: the shutdown would stop it for the
//! next process as well. Its receives time out instead ([`SHARED_WAKEUP`]) when idle, and a
//! thread that sees it is stopped leaves after answering the batch in hand; the datagrams
//! still queued wait in the kernel for the next process.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    recvmmsg, sendmmsg, sendmsg, sendto, setsockopt, sockopt, ControlMessage, ControlMessageOwned,
    MsgFlags, MultiHeaders, RecvMsg, SockaddrStorage,
};
use tokio::sync::Semaphore;

use super::handler::{Handler, Step, Transport};
use crate::wire;

/// Largest datagram we read; anything longer is cut and then fails to parse.
const RECV_BUFFER: usize = 4096;
/// Datagrams taken from the socket by one `recvmmsg`.
const BATCH: usize = 32;
/// Socket receive buffer asked for (the kernel caps it at `net.core.rmem_max`): a burst
/// while the process is descheduled, or throttled by a CPU quota, waits instead of being
/// dropped.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;
/// Stack of a receiving thread: the handler's synchronous path needs little.
const THREAD_STACK: usize = 256 << 10;
/// How long an idle receive on a shared socket blocks before the thread looks whether it
/// was stopped: the longest a stop (a restart) waits for an idle thread.
const SHARED_WAKEUP: Duration = Duration::from_millis(200);

/// Receiving threads alive, over every socket.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Receiving threads alive, over every socket (see [`super::udp_threads_running`]).
pub fn running() -> usize {
    RUNNING.load(Ordering::SeqCst)
}

/// The receiving threads of one socket.
pub struct Receivers {
    socket: UdpSocket,
    /// Held by systemd too: stop without shutting it down.
    shared: bool,
    stopped: Arc<AtomicBool>,
}

impl Receivers {
    /// Starts `threads` receiving threads on `socket` (a blocking socket is made of it).
    /// Queries that need an upstream are spawned on `runtime`. `shared`: systemd holds the
    /// socket too.
    pub fn start(
        socket: UdpSocket,
        shared: bool,
        threads: usize,
        handler: Arc<Handler>,
        upstream_slots: Arc<Semaphore>,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Receivers> {
        socket.set_nonblocking(false)?;
        raise_receive_buffer(&socket);
        if shared {
            socket.set_read_timeout(Some(SHARED_WAKEUP))?;
        }
        let stopped = Arc::new(AtomicBool::new(false));
        let local = socket.local_addr()?;
        let wildcard = local.ip().is_unspecified().then_some(local.is_ipv4());
        match wildcard {
            Some(true) => setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?,
            Some(false) => setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?,
            None => {}
        }
        for index in 0..threads.max(1) {
            let worker = Worker {
                wildcard,
                socket: Arc::new(socket.try_clone()?),
                handler: handler.clone(),
                upstream_slots: upstream_slots.clone(),
                runtime: runtime.clone(),
                stopped: stopped.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("pathdns-udp{index}"))
                .stack_size(THREAD_STACK)
                .spawn({
                    // Counted before the thread runs, so that a wait for the threads to
                    // leave never misses one that is starting.
                    let alive = Alive::new();
                    move || {
                        let _alive = alive;
                        worker.run();
                    }
                });
            if let Err(err) = spawned {
                let receivers = Receivers {
                    socket,
                    shared,
                    stopped,
                };
                receivers.stop();
                return Err(err);
            }
        }
        tracing::debug!(%local, threads, shared, "udp receivers started");
        Ok(Receivers {
            socket,
            shared,
            stopped,
        })
    }

    /// Stops the threads; the socket closes when the last one has left.
    pub fn stop(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) && !self.shared {
            // Linux wakes every thread blocked on the socket and makes its receives return
            // at once; the call itself reports ENOTCONN for an unconnected socket.
            let _ = socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Read);
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks for [`RECEIVE_BUFFER_BYTES`] unless the socket has more already: pathdns.socket's
/// `ReceiveBuffer=` may have set more than an unprivileged process can (SO_RCVBUFFORCE),
/// and asking for less would shrink it to `net.core.rmem_max`.
fn raise_receive_buffer(socket: &UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    // The kernel reports twice what was asked for (its bookkeeping overhead).
    let current = socket.recv_buffer_size().unwrap_or(0) / 2;
    if current < RECEIVE_BUFFER_BYTES {
        let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
    }
}

/// Counts a receiving thread in [`RUNNING`] for as long as it lives.
struct Alive;

impl Alive {
    fn new() -> Alive {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Worker {
    /// `Some(is_ipv4)` for a socket bound to a wildcard address: answers are sent from
    /// each query's destination address.
    wildcard: Option<bool>,
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    upstream_slots: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
    stopped: Arc<AtomicBool>,
}

/// The address a datagram was sent to, and the interface it came in on: where its answer
/// goes out from, on a wildcard-bound socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Local {
    ip: IpAddr,
    ifindex: u32,
}

impl Local {
    /// From a received datagram's PKTINFO control message, if it has one.
    fn of(message: &RecvMsg<'_, '_, SockaddrStorage>) -> Option<Local> {
        message.cmsgs().ok()?.find_map(|cmsg| match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(Local {
                // The local address to answer from: the datagram's destination if it was
                // sent to one of ours, an address of the interface if it was a broadcast
                // (ipi_addr would then be the broadcast address, never a valid source).
                ip: IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr))),
                ifindex: u32::try_from(info.ipi_ifindex).unwrap_or(0),
            }),
            ControlMessageOwned::Ipv6PacketInfo(info) => Some(Local {
                ip: IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)),
                ifindex: info.ipi6_ifindex,
            }),
            _ => None,
        })
    }

    /// The PKTINFO that makes the kernel send from this address.
    fn pktinfo(self) -> Pktinfo {
        match self.ip {
            // Interface 0: the route to the client picks it; the source address is fixed.
            IpAddr::V4(v4) => Pktinfo::V4(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }),
            // The interface too: a link-local address means nothing without it.
            IpAddr::V6(v6) => Pktinfo::V6(libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                ipi6_ifindex: self.ifindex,
            }),
        }
    }
}

enum Pktinfo {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl Pktinfo {
    fn cmsg(&self) -> ControlMessage<'_> {
        match self {
            Pktinfo::V4(info) => ControlMessage::Ipv4PacketInfo(info),
            Pktinfo::V6(info) => ControlMessage::Ipv6PacketInfo(info),
        }
    }
}

/// Sends one answer to `client`, from `local` when given; never waits.
fn send_from(
    socket: &UdpSocket,
    response: &[u8],
    client: &SockaddrStorage,
    local: Option<Local>,
) -> nix::Result<usize> {
    match local {
        None => sendto(socket.as_raw_fd(), response, client, MsgFlags::MSG_DONTWAIT),
        Some(local) => {
            let pktinfo = local.pktinfo();
            sendmsg(
                socket.as_raw_fd(),
                &[IoSlice::new(response)],
                &[pktinfo.cmsg()],
                MsgFlags::MSG_DONTWAIT,
                Some(client),
            )
        }
    }
}

/// Per-thread buffers, allocated once.
struct Batch {
    packets: Vec<[u8; RECV_BUFFER]>,
    received: [(usize, Option<SockaddrStorage>); BATCH],
    /// Each datagram's destination, on a wildcard-bound socket.
    locals: [Option<Local>; BATCH],
    responses: Vec<Vec<u8>>,
    /// Indices (into `responses`) of the answers to send, and where to.
    to_send: Vec<usize>,
    destinations: Vec<Option<SockaddrStorage>>,
    /// Where each answer in `to_send` goes out from (wildcard-bound sockets only).
    sources: Vec<Option<Local>>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    /// Buffers for a socket bound to one address (`wildcard` None), or to a wildcard
    /// address (`Some(is_ipv4)`), whose headers carry room for one PKTINFO message each.
    fn new(wildcard: Option<bool>) -> Batch {
        let cmsg_room = wildcard.map(|v4| {
            if v4 {
                nix::cmsg_space!(libc::in_pktinfo)
            } else {
                nix::cmsg_space!(libc::in6_pktinfo)
            }
        });
        Batch {
            packets: vec![[0u8; RECV_BUFFER]; BATCH],
            received: [(0, None); BATCH],
            locals: [None; BATCH],
            responses: (0..BATCH)
                .map(|_| Vec::with_capacity(wire::MAX_UDP_PAYLOAD as usize))
                .collect(),
            to_send: Vec::with_capacity(BATCH),
            destinations: Vec::with_capacity(BATCH),
            sources: Vec::with_capacity(BATCH),
            receive_headers: MultiHeaders::preallocate(BATCH, cmsg_room.clone()),
            send_headers: MultiHeaders::preallocate(BATCH, cmsg_room),
        }
    }
}

impl Worker {
    fn run(self) {
        let mut batch = Batch::new(self.wildcard);
        let fd = self.socket.as_raw_fd();
        loop {
            let count = {
                let mut packets = batch.packets.iter_mut();
                let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                    [IoSliceMut::new(
                        packets.next().map_or(&mut [][..], |packet| &mut packet[..]),
                    )]
                });
                match recvmmsg(
                    fd,
                    &mut batch.receive_headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(results) => {
                        let mut count = 0;
                        let slots = batch.received.iter_mut().zip(batch.locals.iter_mut());
                        for ((slot, local), message) in slots.zip(results) {
                            *slot = (message.bytes, message.address);
                            *local = self.wildcard.and_then(|_| Local::of(&message));
                            count += 1;
                        }
                        count
                    }
                    // EAGAIN: a shared socket's idle wakeup ([`SHARED_WAKEUP`]).
                    Err(Errno::EINTR | Errno::EAGAIN) => 0,
                    Err(err) => {
                        if self.stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        // ICMP errors from earlier sends surface here on Linux; they are
                        // not ours to act on. Anything else (ENOMEM, say) pauses the thread
                        // briefly rather than spinning a core on retries.
                        tracing::debug!(error = %err, "udp receive failed");
                        if !matches!(err, Errno::ECONNREFUSED | Errno::EHOSTUNREACH) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        0
                    }
                }
            };
            if count == 0 || super::frozen() {
                if self.stopped.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            // A batch read is answered even when the thread was stopped meanwhile: on a
            // shared socket nobody else would answer it.
            let received = Instant::now();
            self.answer(&mut batch, count, received);
            self.send_all(&mut batch);
            // One clock read per batch: every answer in it took as long as the batch.
            self.handler
                .stats()
                .observe_many(received.elapsed(), batch.to_send.len() as u64);
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Answers what can be answered now; the rest goes upstream.
    fn answer(&self, batch: &mut Batch, count: usize, received: Instant) {
        batch.to_send.clear();
        batch.destinations.clear();
        batch.sources.clear();
        for index in 0..count {
            let (len, address) = batch.received[index];
            let local = batch.locals[index];
            // A datagram without a sender address (not on an IP socket) cannot be answered.
            let Some((address, ip)) = address.and_then(|a| client_ip(&a).map(|ip| (a, ip))) else {
                continue;
            };
            let query = &batch.packets[index][..len.min(RECV_BUFFER)];
            let out = &mut batch.responses[index];
            match self.handler.respond_now(query, ip, Transport::Udp, out) {
                Step::Reply => {
                    batch.to_send.push(index);
                    batch.destinations.push(Some(address));
                    batch.sources.push(local);
                }
                Step::Silent => {}
                Step::Upstream => self.upstream(query, (address, local), ip, received, out),
            }
        }
    }

    /// Hands `query` to an upstream task, which answers `client` (from its local address
    /// on a wildcard-bound socket).
    fn upstream(
        &self,
        query: &[u8],
        (client, local): (SockaddrStorage, Option<Local>),
        ip: IpAddr,
        received: Instant,
        out: &mut Vec<u8>,
    ) {
        match self.upstream_slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let (socket, handler, query) =
                    (self.socket.clone(), self.handler.clone(), query.to_vec());
                self.runtime.spawn(async move {
                    let mut out = Vec::new();
                    handler
                        .respond_upstream(&query, Transport::Udp, &mut out)
                        .await;
                    if !out.is_empty() {
                        send_one(&socket, &out, &client, local).await;
                        handler.stats().responded(received);
                    }
                    drop(slot);
                });
            }
            // Saturated: a fast SERVFAIL beats a silent drop the client waits on.
            Err(_) => {
                if self.handler.respond_overloaded(query, out) {
                    if let Err(err) = send_from(&self.socket, out, &client, local) {
                        tracing::debug!(error = %err, %ip, "udp send failed");
                    }
                    self.handler.stats().responded(received);
                }
            }
        }
    }

    /// Sends the batch's answers, as many per system call as the kernel takes: all at
    /// once, or on a wildcard-bound socket one call per run of answers from one address.
    fn send_all(&self, batch: &mut Batch) {
        let total = batch.to_send.len();
        let mut slices: [[IoSlice<'_>; 1]; BATCH] = [[IoSlice::new(&[])]; BATCH];
        for (slice, &index) in slices.iter_mut().zip(&batch.to_send) {
            *slice = [IoSlice::new(&batch.responses[index])];
        }
        let mut start = 0;
        while start < total {
            let source = batch.sources[start];
            let run = batch.sources[start..total]
                .iter()
                .take_while(|&&other| other == source)
                .count();
            let end = start + run;
            let destinations = &batch.destinations[start..end];
            if source.is_none() && self.wildcard.is_some() {
                // No destination address came with these (never seen on Linux): the
                // headers' control buffers hold an earlier PKTINFO, so send one by one.
                for (slice, destination) in slices[start..end].iter().zip(destinations) {
                    if let Some(destination) = destination {
                        let _ = send_from(&self.socket, &slice[0], destination, None);
                    }
                }
            } else {
                let pktinfo = source.map(Local::pktinfo);
                let cmsgs: &[ControlMessage<'_>] = match &pktinfo {
                    Some(pktinfo) => &[pktinfo.cmsg()],
                    None => &[],
                };
                let fd = self.socket.as_raw_fd();
                let headers = &mut batch.send_headers;
                send_run(fd, headers, &slices[start..end], destinations, cmsgs);
            }
            start = end;
        }
    }
}

/// Sends `slices` to `destinations` with `cmsgs` on each, as many per `sendmmsg` as the
/// kernel takes.
fn send_run(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    slices: &[[IoSlice<'_>; 1]],
    destinations: &[Option<SockaddrStorage>],
    cmsgs: &[ControlMessage<'_>],
) {
    let total = slices.len();
    let mut sent = 0;
    while sent < total {
        match sendmmsg(
            fd,
            headers,
            slices[sent..total].iter(),
            &destinations[sent..],
            cmsgs,
            MsgFlags::empty(),
        ) {
            Ok(results) => {
                let done = results.count();
                // sendmmsg returns 0 only when asked to send nothing.
                sent += done.max(1);
            }
            Err(Errno::EINTR) => {}
            Err(err) => {
                // The first message of the rest failed (e.g. a client address the
                // kernel refuses): skip it, send the others.
                tracing::debug!(error = %err, "udp send failed");
                sent += 1;
            }
        }
    }
}

/// The client's IP address, IPv4-mapped IPv6 included as it is.
fn client_ip(address: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// Sends one answer from an async task without blocking the runtime: the socket is a
/// blocking one (the receiving threads block on it), so each send asks not to wait, and
/// a full send buffer is retried a few times before the answer is given up (the client
/// retries).
async fn send_one(
    socket: &UdpSocket,
    response: &[u8],
    client: &SockaddrStorage,
    local: Option<Local>,
) {
    for _ in 0..10 {
        match send_from(socket, response, client, local) {
            Ok(_) => return,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err(err) => {
                tracing::debug!(error = %err, %client, "udp send failed");
                return;
            }
        }
    }
    tracing::debug!("udp send buffer full; answer dropped");
}
