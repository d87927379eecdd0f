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
//! Stopping: [`Receivers::stop`] (or dropping it) marks the threads stopped and shuts the
//! socket down for reading, which wakes a thread blocked in `recvmmsg`; each thread then
//! drops its handle of the socket, and the last one closes it.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, sendto, MsgFlags, MultiHeaders, SockaddrStorage};
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

/// The receiving threads of one socket.
pub struct Receivers {
    socket: UdpSocket,
    stopped: Arc<AtomicBool>,
}

impl Receivers {
    /// Starts `threads` receiving threads on `socket` (a blocking socket is made of it).
    /// Queries that need an upstream are spawned on `runtime`.
    pub fn start(
        socket: UdpSocket,
        threads: usize,
        handler: Arc<Handler>,
        upstream_slots: Arc<Semaphore>,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Receivers> {
        socket.set_nonblocking(false)?;
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
        let stopped = Arc::new(AtomicBool::new(false));
        let local = socket.local_addr()?;
        for index in 0..threads.max(1) {
            let worker = Worker {
                socket: Arc::new(socket.try_clone()?),
                handler: handler.clone(),
                upstream_slots: upstream_slots.clone(),
                runtime: runtime.clone(),
                stopped: stopped.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("pathdns-udp{index}"))
                .stack_size(THREAD_STACK)
                .spawn(move || worker.run());
            if let Err(err) = spawned {
                let receivers = Receivers { socket, stopped };
                receivers.stop();
                return Err(err);
            }
        }
        tracing::debug!(%local, threads, "udp receivers started");
        Ok(Receivers { socket, stopped })
    }

    /// Stops the threads; the socket closes when the last one has left.
    pub fn stop(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
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

struct Worker {
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    upstream_slots: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
    stopped: Arc<AtomicBool>,
}

/// Per-thread buffers, allocated once.
struct Batch {
    packets: Vec<[u8; RECV_BUFFER]>,
    received: [(usize, Option<SockaddrStorage>); BATCH],
    responses: Vec<Vec<u8>>,
    /// Indices (into `responses`) of the answers to send, and where to.
    to_send: Vec<usize>,
    destinations: Vec<Option<SockaddrStorage>>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            packets: vec![[0u8; RECV_BUFFER]; BATCH],
            received: [(0, None); BATCH],
            responses: (0..BATCH)
                .map(|_| Vec::with_capacity(wire::MAX_UDP_PAYLOAD as usize))
                .collect(),
            to_send: Vec::with_capacity(BATCH),
            destinations: Vec::with_capacity(BATCH),
            receive_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl Worker {
    fn run(self) {
        let mut batch = Batch::new();
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
                        for (slot, message) in batch.received.iter_mut().zip(results) {
                            *slot = (message.bytes, message.address);
                            count += 1;
                        }
                        count
                    }
                    Err(Errno::EINTR) => 0,
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
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            if count == 0 {
                continue;
            }
            if super::frozen() {
                continue;
            }
            let received = Instant::now();
            self.answer(&mut batch, count, received);
            self.send_all(&mut batch);
            // One clock read per batch: every answer in it took as long as the batch.
            self.handler
                .stats()
                .observe_many(received.elapsed(), batch.to_send.len() as u64);
        }
    }

    /// Answers what can be answered now; the rest goes upstream.
    fn answer(&self, batch: &mut Batch, count: usize, received: Instant) {
        batch.to_send.clear();
        batch.destinations.clear();
        for index in 0..count {
            let (len, address) = batch.received[index];
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
                }
                Step::Silent => {}
                Step::Upstream => self.upstream(query, address, ip, received, out),
            }
        }
    }

    fn upstream(
        &self,
        query: &[u8],
        client: SockaddrStorage,
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
                        send_one(&socket, &out, &client).await;
                        handler.stats().responded(received);
                    }
                    drop(slot);
                });
            }
            // Saturated: a fast SERVFAIL beats a silent drop the client waits on.
            Err(_) => {
                if self.handler.respond_overloaded(query, out) {
                    if let Err(err) = sendto(
                        self.socket.as_raw_fd(),
                        out,
                        &client,
                        MsgFlags::MSG_DONTWAIT,
                    ) {
                        tracing::debug!(error = %err, %ip, "udp send failed");
                    }
                    self.handler.stats().responded(received);
                }
            }
        }
    }

    /// Sends the batch's answers, as many per system call as the kernel takes.
    fn send_all(&self, batch: &mut Batch) {
        let fd = self.socket.as_raw_fd();
        let total = batch.to_send.len();
        let mut sent = 0;
        let mut slices: [[IoSlice<'_>; 1]; BATCH] = [[IoSlice::new(&[])]; BATCH];
        for (slice, &index) in slices.iter_mut().zip(&batch.to_send) {
            *slice = [IoSlice::new(&batch.responses[index])];
        }
        while sent < total {
            match sendmmsg(
                fd,
                &mut batch.send_headers,
                slices[sent..total].iter(),
                &batch.destinations[sent..],
                [],
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
async fn send_one(socket: &UdpSocket, response: &[u8], client: &SockaddrStorage) {
    for _ in 0..10 {
        match sendto(socket.as_raw_fd(), response, client, MsgFlags::MSG_DONTWAIT) {
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
