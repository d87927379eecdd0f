//! One synchronous rtnetlink request and its replies: the transport under [`super::routes`](mod@super::routes)
//! and [`super::interfaces`](mod@super::interfaces), and one acknowledged change for
//! [`super::node_local`](mod@super::node_local).
//!
//! Owns: the NETLINK_ROUTE socket (netlink-sys), encoding a request and decoding the
//! kernel's replies (netlink-packet-route), and telling a kernel error (an answer) from a
//! transport failure. Must not: interpret routes, links or addresses.
//!
//! Why netlink-sys + netlink-packet-route and not rtnetlink: every caller is synchronous
//! (`check`, `doctor`, the conflict check at start and reload; the path probe runs it on
//! a blocking thread), and one request/response on a fresh socket needs neither a runtime
//! nor a connection task. The kernel handles an rtnetlink request inside the `send` call,
//! so the replies are queued before the first `recv`: no read can wait on the network.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or used (address family denied, ...).
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    /// The kernel answered with an error: for a route lookup this is the verdict itself
    /// (ENETUNREACH, EINVAL for a blackhole, ...).
    #[error("the kernel answered: {0}")]
    Kernel(io::Error),
    /// A reply that netlink-packet-route cannot decode.
    #[error("undecodable netlink reply: {0}")]
    Decode(String),
}

impl NetlinkError {
    /// The errno of a kernel answer.
    pub fn kernel_errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel(err) => err.raw_os_error(),
            _ => None,
        }
    }
}

/// Sends `message` (a dump of every object when `dump`) and returns the kernel's replies.
pub fn request(
    message: RouteNetlinkMessage,
    dump: bool,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let socket = send(message, NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 })?;
    let mut replies = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full().map_err(NetlinkError::Socket)?;
        if datagram.is_empty() {
            return Err(NetlinkError::Decode("empty datagram".into()));
        }
        if decode(&datagram, dump, &mut replies)? {
            return Ok(replies);
        }
    }
}

/// What a change asks of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Create the object; EEXIST when it is there already.
    Create,
    /// Delete it; EADDRNOTAVAIL (an address) when it is not there.
    Delete,
}

/// Sends a change (RTM_NEWADDR, RTM_DELADDR, ...) and waits for the kernel's
/// acknowledgement; a refusal (EPERM without CAP_NET_ADMIN, EEXIST) is [`NetlinkError::Kernel`].
pub fn change(message: RouteNetlinkMessage, change: Change) -> Result<(), NetlinkError> {
    let flags = match change {
        Change::Create => NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        Change::Delete => NLM_F_REQUEST | NLM_F_ACK,
    };
    let socket = send(message, flags)?;
    loop {
        let (datagram, _) = socket.recv_from_full().map_err(NetlinkError::Socket)?;
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram)
            .map_err(|err| NetlinkError::Decode(err.to_string()))?;
        if let NetlinkPayload::Error(error) = message.payload {
            return match error.code {
                Some(_) => Err(NetlinkError::Kernel(error.to_io())),
                None => Ok(()),
            };
        }
    }
}

/// A fresh NETLINK_ROUTE socket with `message` sent on it, with `flags`.
fn send(message: RouteNetlinkMessage, flags: u16) -> Result<Socket, NetlinkError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
    socket.bind_auto().map_err(NetlinkError::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(NetlinkError::Socket)?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buffer = vec![0; packet.buffer_len()];
    packet.serialize(&mut buffer);
    socket.send(&buffer, 0).map_err(NetlinkError::Socket)?;
    Ok(socket)
}

/// Appends the messages of one datagram; true once the answer is complete (the end of a
/// dump, or the one reply to a plain request).
fn decode(
    mut datagram: &[u8],
    dump: bool,
    replies: &mut Vec<RouteNetlinkMessage>,
) -> Result<bool, NetlinkError> {
    while !datagram.is_empty() {
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram)
            .map_err(|err| NetlinkError::Decode(err.to_string()))?;
        let length = message.header.length as usize;
        match message.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(error) if error.code.is_some() => {
                return Err(NetlinkError::Kernel(error.to_io()))
            }
            NetlinkPayload::InnerMessage(inner) => {
                replies.push(inner);
                if !dump {
                    return Ok(true);
                }
            }
            // An ACK, a no-op or an overrun carries nothing to keep.
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
