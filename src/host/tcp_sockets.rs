//! This host's TCP connections to one address: listed with the kernel's TCP state of each
//! ([`connections_to`]), judged ([`stall`]) and, when stalled, ended ([`destroy`], what
//! `ss -K` does), so that a client stuck on a target that is down gets ECONNABORTED at
//! once, retries, resolves again and reaches the new answer (issue 15).
//!
//! Owns: the inet_diag dump over NETLINK_SOCK_DIAG (netlink-sys, netlink-packet-sock-diag)
//! with each socket's tcp_info; the pure stall verdict; SOCK_DESTROY for exactly one
//! socket; the best-effort owning-process lookup [`owner`]; and leaving this process's own
//! sockets (the probes) out of every list. Must not: decide that a target is down or when
//! to sweep (the caller does, on failover), end a socket it was not handed, or end a
//! socket of this process.
//!
//! Synchronous, one request on a fresh socket, like [`super::netlink`]: the kernel builds
//! the dump and performs SOCK_DESTROY inside the request, no read waits on the network.
//! Listing needs no privilege; SOCK_DESTROY needs CAP_NET_ADMIN (in the network
//! namespace's user namespace): without it [`destroy`] gives
//! [`SockDiagError::NotPermitted`], on a kernel without CONFIG_INET_DIAG_DESTROY
//! [`SockDiagError::NotSupported`], so that a caller can say "unavailable" once.
//!
//! The one host-facts reader of /proc: `/proc/self/fd` (always visible, also under the
//! unit's `ProcSubset=pid` and `ProtectProc=invisible`) tells this process's own sockets;
//! [`owner`] scans `/proc/[0-9]*/fd`, which the unit hides for other users' processes, so
//! it is best effort and may say nothing.
//!
//! Why own sockets are told by inode and not by uid: a client may run as the same user as
//! pathdns (root, when pathdns is started by hand); the set of socket inodes open in this
//! process is exact whoever runs it. It is read after the dump, so a probe socket listed by
//! the dump and still open is left out; one closed in between is gone anyway.
//!
//! Why tcp_info is decoded here from its bytes and not with the crate's `rich_nlas`
//! feature: that feature rejects a tcp_info shorter than the newest kernel's (and with it
//! the whole reply), as an older kernel sends; the fields read here are in the struct's
//! fixed prefix since Linux 2.6.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, TCP_ESTABLISHED, TCP_SYN_SENT,
};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NetlinkAddr};

/// Why a sock_diag request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// SOCK_DESTROY was refused: the process lacks CAP_NET_ADMIN.
    #[error("not permitted: ending another program's connection needs CAP_NET_ADMIN")]
    NotPermitted,
    /// The kernel cannot end sockets (built without CONFIG_INET_DIAG_DESTROY).
    #[error("not supported: the kernel cannot end sockets (CONFIG_INET_DIAG_DESTROY)")]
    NotSupported,
    /// The socket no longer exists (closed, or its cookie names an older socket).
    #[error("the socket is gone")]
    Gone,
    /// The kernel answered with another error.
    #[error("the kernel answered: {0}")]
    Kernel(io::Error),
    /// The netlink socket could not be opened or used.
    #[error("sock_diag socket: {0}")]
    Socket(io::Error),
    /// A reply that netlink-packet-sock-diag cannot decode.
    #[error("undecodable sock_diag reply: {0}")]
    Decode(String),
    /// `/proc/self/fd` is unreadable, so this process's own sockets cannot be told apart:
    /// nothing is listed rather than risking a probe socket.
    #[error("cannot read this process's own sockets (/proc/self/fd): {0}")]
    OwnSockets(io::Error),
}

/// The TCP state of a listed connection; only these two are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// The handshake's SYN is sent, no answer yet.
    SynSent,
    Established,
    /// Any other state (the kernel's TCP_* number).
    Other(u8),
}

impl From<u8> for TcpState {
    fn from(state: u8) -> TcpState {
        match state {
            TCP_SYN_SENT => TcpState::SynSent,
            TCP_ESTABLISHED => TcpState::Established,
            other => TcpState::Other(other),
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpState::SynSent => f.write_str("SYN-SENT"),
            TcpState::Established => f.write_str("ESTABLISHED"),
            TcpState::Other(state) => write!(f, "state {state}"),
        }
    }
}

/// What the kernel's tcp_info says about a connection's progress. Times are "how long
/// ago", as the kernel reports them (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Retransmission timeouts in a row without an acknowledgement (tcpi_retransmits).
    pub retransmits: u8,
    /// Zero-window or keepalive probes without an answer (tcpi_probes).
    pub probes: u8,
    /// Backoff exponent of the retransmission timer (tcpi_backoff).
    pub backoff: u8,
    /// The current retransmission timeout (tcpi_rto).
    pub rto: Duration,
    /// Segments sent and not yet acknowledged (tcpi_unacked).
    pub unacked: u32,
    /// Segments retransmitted and not yet acknowledged (tcpi_retrans).
    pub retrans: u32,
    /// Segments retransmitted over the connection's life (tcpi_total_retrans).
    pub total_retrans: u32,
    /// Since data was last sent (tcpi_last_data_sent).
    pub last_data_sent: Duration,
    /// Since data was last received (tcpi_last_data_recv).
    pub last_data_recv: Duration,
    /// Since anything acknowledging was last received from the peer: every segment it
    /// sends carries an acknowledgement (tcpi_last_ack_recv).
    pub last_ack_recv: Duration,
}

/// One TCP socket of this network namespace, as inet_diag reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConnection {
    pub local: SocketAddr,
    /// As the socket has it: an IPv4 peer of an IPv6 socket is `::ffff:a.b.c.d`.
    pub remote: SocketAddr,
    pub state: TcpState,
    /// The interface the socket is bound to (0: none); part of the socket's identity.
    pub interface: u32,
    /// The socket's inode (0 for a socket no process holds).
    pub inode: u32,
    /// The kernel's cookie for the socket: with the addresses it names exactly this
    /// socket, never a later one on the same ports.
    pub cookie: [u8; 8],
    pub uid: u32,
    /// None when the kernel sent no tcp_info (it always does for these states).
    pub info: Option<TcpInfo>,
}

/// Why a connection counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallReason {
    /// In SYN-SENT: no answer to the handshake (any age: the target is down).
    Connecting,
    /// Unacknowledged data is being retransmitted, and the peer has sent nothing for at
    /// least one retransmission timeout.
    Retransmitting,
    /// Nothing from the peer (no data, no acknowledgement) for the threshold, while it owes
    /// an answer: data outstanding, or data sent since data was last received.
    Unanswered,
    /// Nothing from the peer for the threshold, and it owes nothing: a download whose
    /// sender went silent, or an idle kept-alive connection. The kernel cannot tell them
    /// apart; either one's client reconnects and resolves again.
    Silent,
}

impl fmt::Display for StallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StallReason::Connecting => "connecting, no answer",
            StallReason::Retransmitting => "retransmitting unacknowledged data",
            StallReason::Unanswered => "request unanswered",
            StallReason::Silent => "peer silent",
        })
    }
}

/// The process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`), empty when unreadable.
    pub comm: String,
}

/// This network namespace's TCP connections in SYN-SENT or ESTABLISHED whose remote
/// address is `addr` (for an IPv4 `addr` also IPv6 sockets connected to `::ffff:addr`)
/// and remote port one of `ports`, without this process's own sockets.
pub fn connections_to(addr: IpAddr, ports: &[u16]) -> Result<Vec<TcpConnection>, SockDiagError> {
    let families: &[u8] = match addr {
        IpAddr::V4(_) => &[AF_INET, AF_INET6],
        IpAddr::V6(_) => &[AF_INET6],
    };
    let mut found = Vec::new();
    for &family in families {
        let replies = exchange(dump_request(family), NLM_F_REQUEST | NLM_F_DUMP)?;
        found.extend(
            replies
                .iter()
                .map(connection)
                .filter(|conn| is_to(conn, addr, ports)),
        );
    }
    let own = own_socket_inodes().map_err(SockDiagError::OwnSockets)?;
    found.retain(|conn| !own.contains(&conn.inode));
    Ok(found)
}

/// Whether `conn` is stalled with `threshold` as the longest silence a working connection
/// may have; `None` for a connection making progress (something received from the peer
/// within `threshold`, nothing retransmitting unanswered), which must never be ended.
pub fn stall(conn: &TcpConnection, threshold: Duration) -> Option<StallReason> {
    match conn.state {
        TcpState::SynSent => return Some(StallReason::Connecting),
        TcpState::Established => {}
        TcpState::Other(_) => return None,
    }
    // Without tcp_info there is nothing to judge by: leave it alone.
    let info = conn.info.as_ref()?;
    let retransmitting = info.unacked > 0 && (info.retransmits > 0 || info.backoff > 0);
    if retransmitting && info.last_ack_recv >= info.rto {
        return Some(StallReason::Retransmitting);
    }
    let heard = info.last_data_recv.min(info.last_ack_recv);
    if heard < threshold {
        return None;
    }
    let owed = info.unacked > 0 || info.last_data_sent < info.last_data_recv;
    Some(if owed {
        StallReason::Unanswered
    } else {
        StallReason::Silent
    })
}

/// Ends exactly `conn` (same addresses, interface and cookie): its owner's next or pending
/// read or write fails with ECONNABORTED. [`SockDiagError::Gone`] when it no longer exists.
pub fn destroy(conn: &TcpConnection) -> Result<(), SockDiagError> {
    let request = InetRequest {
        family: family_of(conn.remote),
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id: SocketId {
            source_port: conn.local.port(),
            destination_port: conn.remote.port(),
            source_address: conn.local.ip(),
            destination_address: conn.remote.ip(),
            interface_id: conn.interface,
            cookie: conn.cookie,
        },
    };
    let message = SockDiagDestroy::new(SockDiagMessage::InetRequest(request));
    exchange(message, NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
}

/// The process holding the socket with this inode, from `/proc/[0-9]*/fd`; `None` when no
/// readable process holds it (under the unit only pathdns's own processes are readable).
pub fn owner(inode: u32) -> Option<Owner> {
    if inode == 0 {
        return None;
    }
    let wanted = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if holds(&entry.path().join("fd"), &wanted) {
            let comm = std::fs::read_to_string(entry.path().join("comm"))
                .map(|comm| comm.trim_end().to_owned())
                .unwrap_or_default();
            return Some(Owner { pid, comm });
        }
    }
    None
}

/// Whether one of the fd links in `fd_dir` reads `wanted`.
fn holds(fd_dir: &Path, wanted: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(fd_dir) else {
        return false;
    };
    entries
        .flatten()
        .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|link| link.as_os_str() == wanted))
}

/// The inodes of the sockets this process holds.
fn own_socket_inodes() -> io::Result<HashSet<u32>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
        // An fd closed while the directory is read has no link any more.
        if let Ok(link) = std::fs::read_link(entry.path()) {
            inodes.extend(socket_inode(&link));
        }
    }
    Ok(inodes)
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &Path) -> Option<u32> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn family_of(addr: SocketAddr) -> u8 {
    if addr.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// A dump of `family`'s TCP sockets in SYN-SENT or ESTABLISHED, with tcp_info; the kernel
/// filters the states, addresses are filtered here.
fn dump_request(family: u8) -> SockDiagMessage {
    SockDiagMessage::InetRequest(InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::INFO,
        states: StateFlags::SYN_SENT | StateFlags::ESTABLISHED,
        socket_id: if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        },
    })
}

fn is_to(conn: &TcpConnection, addr: IpAddr, ports: &[u16]) -> bool {
    conn.remote.ip().to_canonical() == addr.to_canonical() && ports.contains(&conn.remote.port())
}

fn connection(response: &InetResponse) -> TcpConnection {
    let header = &response.header;
    let id = &header.socket_id;
    let info = response.nlas.iter().find_map(|nla| match nla {
        Nla::TcpInfo(bytes) => tcp_info(bytes),
        _ => None,
    });
    TcpConnection {
        local: SocketAddr::new(id.source_address, id.source_port),
        remote: SocketAddr::new(id.destination_address, id.destination_port),
        state: TcpState::from(header.state),
        interface: id.interface_id,
        inode: header.inode,
        cookie: id.cookie,
        uid: header.uid,
        info,
    }
}

/// The fields of `struct tcp_info` (linux/tcp.h) that [`stall`] reads, at their fixed
/// offsets in native byte order; `None` for a struct too short to have them all.
fn tcp_info(bytes: &[u8]) -> Option<TcpInfo> {
    let u32_at = |offset: usize| -> Option<u32> {
        let field = bytes.get(offset..offset + 4)?;
        Some(u32::from_ne_bytes(field.try_into().ok()?))
    };
    let ms = |offset: usize| u32_at(offset).map(|value| Duration::from_millis(value.into()));
    Some(TcpInfo {
        retransmits: *bytes.get(2)?,
        probes: *bytes.get(3)?,
        backoff: *bytes.get(4)?,
        rto: Duration::from_micros(u32_at(8)?.into()),
        unacked: u32_at(24)?,
        retrans: u32_at(36)?,
        last_data_sent: ms(44)?,
        last_data_recv: ms(52)?,
        last_ack_recv: ms(56)?,
        total_retrans: u32_at(100)?,
    })
}

/// Sends `message` on a fresh NETLINK_SOCK_DIAG socket and collects the replies: every
/// socket of a dump (`NLM_F_DUMP`), or nothing once acknowledged (`NLM_F_ACK`).
fn exchange<M>(message: M, flags: u16) -> Result<Vec<InetResponse>, SockDiagError>
where
    M: NetlinkSerializable + fmt::Debug,
    NetlinkPayload<M>: From<M>,
{
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Socket)?;
    socket.bind_auto().map_err(SockDiagError::Socket)?;
    socket
        .connect(&NetlinkAddr::new(0, 0))
        .map_err(SockDiagError::Socket)?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buffer = vec![0; packet.buffer_len()];
    packet.serialize(&mut buffer);
    socket.send(&buffer, 0).map_err(SockDiagError::Socket)?;
    let mut replies = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full().map_err(SockDiagError::Socket)?;
        if datagram.is_empty() {
            return Err(SockDiagError::Decode("empty datagram".into()));
        }
        if decode(&datagram, &mut replies)? {
            return Ok(replies);
        }
    }
}

/// Appends the sockets of one datagram; true once the answer is complete (the end of a
/// dump, or the acknowledgement).
fn decode(mut datagram: &[u8], replies: &mut Vec<InetResponse>) -> Result<bool, SockDiagError> {
    while !datagram.is_empty() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(datagram)
            .map_err(|err| SockDiagError::Decode(err.to_string()))?;
        let length = message.header.length as usize;
        match message.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(error) => match error.code {
                None => return Ok(true),
                Some(_) => return Err(kernel_error(error.to_io())),
            },
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                replies.push(*response);
            }
            // No-ops, overruns and other families carry nothing to keep.
            _ => {}
        }
        // Messages are 4-byte aligned; a zero length would loop forever.
        let aligned = (length + 3) & !3;
        if length == 0 || aligned >= datagram.len() {
            break;
        }
        datagram = &datagram[aligned..];
    }
    Ok(false)
}

/// The variant a caller acts on for a kernel errno.
fn kernel_error(err: io::Error) -> SockDiagError {
    match err.raw_os_error() {
        Some(libc_errno::EPERM) => SockDiagError::NotPermitted,
        Some(libc_errno::EOPNOTSUPP) => SockDiagError::NotSupported,
        Some(libc_errno::ENOENT | libc_errno::ESTALE) => SockDiagError::Gone,
        _ => SockDiagError::Kernel(err),
    }
}

/// The errnos [`kernel_error`] tells apart (nix's values, as plain numbers).
mod libc_errno {
    use nix::errno::Errno;
    pub const EPERM: i32 = Errno::EPERM as i32;
    pub const EOPNOTSUPP: i32 = Errno::EOPNOTSUPP as i32;
    pub const ENOENT: i32 = Errno::ENOENT as i32;
    pub const ESTALE: i32 = Errno::ESTALE as i32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};

    const THRESHOLD: Duration = Duration::from_secs(10);

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// An established connection that just received data: the healthy case.
    fn healthy() -> TcpInfo {
        TcpInfo {
            rto: ms(204),
            last_data_sent: ms(30_000),
            last_data_recv: ms(50),
            last_ack_recv: ms(50),
            ..TcpInfo::default()
        }
    }

    fn conn(state: TcpState, info: Option<TcpInfo>) -> TcpConnection {
        TcpConnection {
            local: "10.0.1.2:40000".parse().expect("addr"),
            remote: "10.94.205.198:443".parse().expect("addr"),
            state,
            interface: 0,
            inode: 4242,
            cookie: [1, 2, 3, 4, 5, 6, 7, 8],
            uid: 0,
            info,
        }
    }

    fn established(info: TcpInfo) -> TcpConnection {
        conn(TcpState::Established, Some(info))
    }

    #[test]
    fn syn_sent_is_stalled_at_any_age() {
        for info in [None, Some(TcpInfo::default()), Some(healthy())] {
            let c = conn(TcpState::SynSent, info);
            assert_eq!(stall(&c, THRESHOLD), Some(StallReason::Connecting));
            assert_eq!(stall(&c, Duration::MAX), Some(StallReason::Connecting));
        }
    }

    #[test]
    fn a_transfer_receiving_data_is_never_stalled() {
        assert_eq!(stall(&established(healthy()), THRESHOLD), None);
        // Sending too (an upload with answers), data in flight, no timeout fired.
        let busy = TcpInfo {
            unacked: 40,
            last_data_sent: ms(1),
            total_retrans: 3,
            ..healthy()
        };
        assert_eq!(stall(&established(busy), THRESHOLD), None);
        // Just under the threshold is still progress.
        let quiet = TcpInfo {
            last_data_recv: ms(9_999),
            last_ack_recv: ms(9_999),
            unacked: 1,
            last_data_sent: ms(1),
            ..healthy()
        };
        assert_eq!(stall(&established(quiet), THRESHOLD), None);
    }

    #[test]
    fn an_upload_acknowledged_by_its_peer_is_never_stalled() {
        // docker push: data goes out, the peer only acknowledges, for minutes.
        let upload = TcpInfo {
            unacked: 60,
            last_data_sent: ms(0),
            last_data_recv: ms(300_000),
            last_ack_recv: ms(2),
            ..healthy()
        };
        assert_eq!(stall(&established(upload), THRESHOLD), None);
    }

    #[test]
    fn a_retransmission_answered_within_its_timeout_is_not_stalled() {
        // One timeout fired on a lossy but working path: the peer acknowledged since.
        let lossy = TcpInfo {
            unacked: 5,
            retransmits: 1,
            backoff: 1,
            rto: ms(400),
            last_ack_recv: ms(120),
            last_data_recv: ms(120),
            ..healthy()
        };
        assert_eq!(stall(&established(lossy), THRESHOLD), None);
    }

    #[test]
    fn unanswered_retransmissions_are_stalled_before_the_threshold() {
        let blackholed = TcpInfo {
            unacked: 12,
            retransmits: 3,
            backoff: 3,
            rto: ms(1_600),
            last_data_sent: ms(2_900),
            last_data_recv: ms(3_000),
            last_ack_recv: ms(3_000),
            ..healthy()
        };
        let reason = stall(&established(blackholed), THRESHOLD);
        assert_eq!(reason, Some(StallReason::Retransmitting));
        // Backoff alone (retransmits reset by a partial ack) still counts.
        let backoff_only = TcpInfo {
            retransmits: 0,
            ..blackholed
        };
        let reason = stall(&established(backoff_only), THRESHOLD);
        assert_eq!(reason, Some(StallReason::Retransmitting));
    }

    #[test]
    fn retransmit_counters_without_unacknowledged_data_do_not_count() {
        let recovered = TcpInfo {
            unacked: 0,
            retransmits: 2,
            backoff: 2,
            last_ack_recv: ms(5_000),
            last_data_recv: ms(5_000),
            ..healthy()
        };
        assert_eq!(stall(&established(recovered), THRESHOLD), None);
    }

    #[test]
    fn silence_past_the_threshold_with_data_owed_is_unanswered() {
        // A request sent, acknowledged long ago, never answered (a hung server).
        let hung = TcpInfo {
            unacked: 0,
            last_data_sent: ms(12_000),
            last_data_recv: ms(40_000),
            last_ack_recv: ms(12_000),
            ..healthy()
        };
        let reason = stall(&established(hung), THRESHOLD);
        assert_eq!(reason, Some(StallReason::Unanswered));
        // Data outstanding and nothing at all back, timer not yet fired.
        let outstanding = TcpInfo {
            unacked: 3,
            last_data_sent: ms(60_000),
            last_data_recv: ms(10_000),
            last_ack_recv: ms(10_000),
            ..healthy()
        };
        let reason = stall(&established(outstanding), THRESHOLD);
        assert_eq!(reason, Some(StallReason::Unanswered));
    }

    #[test]
    fn a_download_whose_sender_went_silent_is_silent() {
        // The case: a blob download, the path cut; the client sends nothing.
        let cut = TcpInfo {
            last_data_sent: ms(200_000),
            last_data_recv: ms(10_000),
            last_ack_recv: ms(10_000),
            ..healthy()
        };
        assert_eq!(
            stall(&established(cut), THRESHOLD),
            Some(StallReason::Silent)
        );
        // With unanswered keepalive probes, the same.
        let probed = TcpInfo { probes: 2, ..cut };
        let reason = stall(&established(probed), THRESHOLD);
        assert_eq!(reason, Some(StallReason::Silent));
    }

    #[test]
    fn a_recent_acknowledgement_counts_as_hearing_from_the_peer() {
        let acked = TcpInfo {
            last_data_sent: ms(200_000),
            last_data_recv: ms(60_000),
            last_ack_recv: ms(500),
            ..healthy()
        };
        assert_eq!(stall(&established(acked), THRESHOLD), None);
    }

    #[test]
    fn no_tcp_info_or_another_state_is_left_alone() {
        assert_eq!(stall(&conn(TcpState::Established, None), THRESHOLD), None);
        let old = TcpInfo {
            last_data_recv: ms(600_000),
            last_ack_recv: ms(600_000),
            unacked: 9,
            retransmits: 9,
            ..healthy()
        };
        for state in [TcpState::Other(4), TcpState::Other(8)] {
            assert_eq!(stall(&conn(state, Some(old)), THRESHOLD), None);
        }
    }

    #[test]
    fn tcp_info_fields_come_from_their_offsets() {
        let mut bytes = vec![0u8; 104];
        bytes[2] = 3; // retransmits
        bytes[3] = 1; // probes
        bytes[4] = 2; // backoff
        let mut put = |offset: usize, value: u32| {
            bytes[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        };
        put(8, 1_600_000); // rto, µs
        put(24, 12); // unacked
        put(36, 4); // retrans
        put(44, 2_900); // last_data_sent
        put(48, 7); // last_ack_sent: not read
        put(52, 3_000); // last_data_recv
        put(56, 3_100); // last_ack_recv
        put(100, 17); // total_retrans
        let info = tcp_info(&bytes).expect("long enough");
        assert_eq!(
            info,
            TcpInfo {
                retransmits: 3,
                probes: 1,
                backoff: 2,
                rto: ms(1_600),
                unacked: 12,
                retrans: 4,
                total_retrans: 17,
                last_data_sent: ms(2_900),
                last_data_recv: ms(3_000),
                last_ack_recv: ms(3_100),
            }
        );
        // A newer kernel's longer struct is fine; a truncated one is not judged.
        bytes.resize(280, 0xff);
        assert_eq!(tcp_info(&bytes), Some(info));
        assert_eq!(tcp_info(&bytes[..103]), None);
        assert_eq!(tcp_info(&[]), None);
    }

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode(Path::new("socket:[12345]")), Some(12345));
        for other in [
            "pipe:[12345]",
            "/dev/null",
            "socket:[]",
            "socket:[12x]",
            "socket:[1",
        ] {
            assert_eq!(socket_inode(Path::new(other)), None, "{other}");
        }
    }

    #[test]
    fn matching_is_by_address_and_port_also_for_mapped_ipv6_sockets() {
        let target = IpAddr::V4(Ipv4Addr::new(10, 94, 205, 198));
        let mut c = conn(TcpState::Established, None);
        assert!(is_to(&c, target, &[443, 5000]));
        assert!(!is_to(&c, target, &[80]));
        assert!(!is_to(
            &c,
            IpAddr::V4(Ipv4Addr::new(10, 94, 205, 199)),
            &[443]
        ));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 94, 205, 198).to_ipv6_mapped());
        c.remote = SocketAddr::new(mapped, 443);
        assert!(is_to(&c, target, &[443]));
        assert_eq!(family_of(c.remote), AF_INET6);
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        assert!(!is_to(&c, v6, &[443]));
    }

    #[test]
    fn kernel_errnos_map_to_what_a_caller_acts_on() {
        let errno = |e: nix::errno::Errno| io::Error::from_raw_os_error(e as i32);
        use nix::errno::Errno;
        assert!(matches!(
            kernel_error(errno(Errno::EPERM)),
            SockDiagError::NotPermitted
        ));
        let unsupported = kernel_error(errno(Errno::EOPNOTSUPP));
        assert!(matches!(unsupported, SockDiagError::NotSupported));
        assert!(matches!(
            kernel_error(errno(Errno::ENOENT)),
            SockDiagError::Gone
        ));
        assert!(matches!(
            kernel_error(errno(Errno::ESTALE)),
            SockDiagError::Gone
        ));
        assert!(matches!(
            kernel_error(errno(Errno::EINVAL)),
            SockDiagError::Kernel(_)
        ));
    }

    /// A real dump on loopback: this process's own connection is never listed (the
    /// probes' rule), and the dump itself needs no privilege.
    #[test]
    fn own_connections_are_left_out_of_a_real_dump() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        let _server = listener.accept().expect("accept");
        let listed = connections_to(IpAddr::V4(Ipv4Addr::LOCALHOST), &[port]).expect("dump");
        assert!(listed.is_empty(), "own sockets listed: {listed:?}");
        let own = own_socket_inodes().expect("/proc/self/fd");
        assert!(
            own.len() >= 3,
            "listener, client and server sockets: {own:?}"
        );
    }

    #[test]
    fn destroying_a_socket_that_does_not_exist_is_an_answer_not_a_panic() {
        let mut ghost = conn(TcpState::Established, None);
        ghost.local = "127.0.0.1:1".parse().expect("addr");
        ghost.remote = "127.0.0.1:2".parse().expect("addr");
        match destroy(&ghost) {
            Err(SockDiagError::Gone | SockDiagError::NotPermitted) => {}
            other => panic!("destroy of a missing socket: {other:?}"),
        }
    }

    #[test]
    fn owner_of_no_socket_is_none() {
        assert_eq!(owner(0), None);
    }
}
