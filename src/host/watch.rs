//! The kernel's change notifications: links, IPv4/IPv6 routes and addresses, as they
//! happen, so that a path that is gone is known at once rather than at the next probe.
//!
//! Owns: a NETLINK_ROUTE socket bound to the RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
//! RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR and RTNLGRP_IPV6_ROUTE groups, read on its own
//! thread, and the decoding of each notification into a short [`Change`]. It publishes a
//! running count of notifications ([`Changes`]) that any number of readers may wait on; it
//! says only "something changed", never whether that matters. Must not: look routes up,
//! decide anything about targets, or import from probe, health or config (the reaction is
//! the probe scheduler's).
//!
//! Why a blocking thread and not netlink-sys's `tokio_socket`: one socket for the whole
//! process, read forever, needs no runtime, and a `watch` channel hands its count to
//! async readers without a lock on their side.

use std::fmt;
use std::io;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::sync::watch;

/// The legacy group bits (RTMGRP_*) of the groups this module listens to: bit `n - 1`
/// is group `n` (RTNLGRP_LINK = 1, IPV4_IFADDR = 5, IPV4_ROUTE = 7, IPV6_IFADDR = 9,
/// IPV6_ROUTE = 11).
pub const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

/// Large enough for any single notification the kernel sends for these groups.
const DATAGRAM: usize = 64 * 1024;

/// One notification, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A link appeared or changed; `up` is IFF_UP and IFF_LOWER_UP both set.
    Link {
        index: u32,
        up: bool,
    },
    LinkGone {
        index: u32,
    },
    Route {
        added: bool,
    },
    Address {
        added: bool,
    },
    /// The kernel dropped notifications (ENOBUFS): anything may have changed.
    Overrun,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = |added: bool| if added { "added" } else { "removed" };
        match self {
            Change::Link { index, up } => {
                write!(f, "link {index} {}", if *up { "up" } else { "down" })
            }
            Change::LinkGone { index } => write!(f, "link {index} removed"),
            Change::Route { added } => write!(f, "route {}", verb(*added)),
            Change::Address { added } => write!(f, "address {}", verb(*added)),
            Change::Overrun => f.write_str("notifications lost"),
        }
    }
}

/// What the watcher has seen so far: a count that only grows, and the latest change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub count: u64,
    pub last: Option<Change>,
}

/// A socket subscribed to the groups; [`Watcher::receive`] blocks until the kernel sends.
pub struct Watcher {
    socket: Socket,
}

impl Watcher {
    /// Opens and binds the socket. Fails where AF_NETLINK is denied.
    pub fn open() -> io::Result<Watcher> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, GROUPS))?;
        // A burst (a link going down removes every route through it) must not overrun.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(Watcher { socket })
    }

    /// The changes in the next datagram (possibly none that this module names).
    pub fn receive(&mut self) -> io::Result<Vec<Change>> {
        let mut buffer = Vec::with_capacity(DATAGRAM);
        match self.socket.recv_from(&mut buffer, 0) {
            Ok(_) => Ok(decode(&buffer)),
            Err(err) if err.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                Ok(vec![Change::Overrun])
            }
            Err(err) => Err(err),
        }
    }
}

/// Starts the watcher on its own thread; its readers get the running [`Changes`]. The
/// thread ends (with a warning) only if the socket fails; the channel then stays quiet.
pub fn spawn() -> io::Result<watch::Receiver<Changes>> {
    let mut watcher = Watcher::open()?;
    let (sender, receiver) = watch::channel(Changes::default());
    std::thread::Builder::new()
        .name("netlink-watch".into())
        .spawn(move || loop {
            match watcher.receive() {
                Ok(changes) if changes.is_empty() => {}
                Ok(changes) => {
                    sender.send_modify(|seen| {
                        seen.count += changes.len() as u64;
                        seen.last = changes.last().cloned();
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    tracing::warn!(%err, "netlink notifications stopped; probes alone find path changes");
                    return;
                }
            }
        })?;
    Ok(receiver)
}

/// Every change named in one datagram; undecodable messages are skipped (the next
/// probe run still sees the truth).
pub fn decode(mut datagram: &[u8]) -> Vec<Change> {
    let mut changes = Vec::new();
    while !datagram.is_empty() {
        let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram) else {
            break;
        };
        let length = message.header.length as usize;
        if let NetlinkPayload::InnerMessage(inner) = message.payload {
            changes.extend(change(&inner));
        }
        // Messages are 4-byte aligned; a zero length would loop forever.
        let aligned = (length + 3) & !3;
        if length == 0 || aligned >= datagram.len() {
            break;
        }
        datagram = &datagram[aligned..];
    }
    changes
}

fn change(message: &RouteNetlinkMessage) -> Option<Change> {
    Some(match message {
        RouteNetlinkMessage::NewLink(link) => Change::Link {
            index: link.header.index,
            up: link_up(link),
        },
        RouteNetlinkMessage::DelLink(link) => Change::LinkGone {
            index: link.header.index,
        },
        RouteNetlinkMessage::NewRoute(_) => Change::Route { added: true },
        RouteNetlinkMessage::DelRoute(_) => Change::Route { added: false },
        RouteNetlinkMessage::NewAddress(_) => Change::Address { added: true },
        RouteNetlinkMessage::DelAddress(_) => Change::Address { added: false },
        _ => return None,
    })
}

fn link_up(link: &LinkMessage) -> bool {
    let flags = link.header.flags;
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkHeader;

    fn datagram(messages: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut bytes = Vec::new();
        for inner in messages {
            let mut packet = NetlinkMessage::new(NetlinkHeader::default(), inner.into());
            packet.finalize();
            let mut buffer = vec![0; packet.buffer_len()];
            packet.serialize(&mut buffer);
            bytes.extend_from_slice(&buffer);
            // Pad to the 4-byte alignment the kernel uses between messages.
            bytes.resize((bytes.len() + 3) & !3, 0);
        }
        bytes
    }

    #[test]
    fn a_burst_decodes_into_its_changes() {
        let mut down = LinkMessage::default();
        down.header.index = 4;
        down.header.flags = LinkFlags::Up;
        let mut up = LinkMessage::default();
        up.header.index = 5;
        up.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        let bytes = datagram(vec![
            RouteNetlinkMessage::NewLink(down),
            RouteNetlinkMessage::NewLink(up),
            RouteNetlinkMessage::DelRoute(Default::default()),
            RouteNetlinkMessage::NewAddress(Default::default()),
        ]);
        let changes = decode(&bytes);
        assert_eq!(
            changes,
            vec![
                Change::Link {
                    index: 4,
                    up: false
                },
                Change::Link { index: 5, up: true },
                Change::Route { added: false },
                Change::Address { added: true },
            ]
        );
        assert_eq!(changes[0].to_string(), "link 4 down");
    }

    #[test]
    fn garbage_decodes_into_nothing() {
        assert!(decode(&[]).is_empty());
        assert!(decode(&[0xff; 7]).is_empty());
        let mut bytes = datagram(vec![RouteNetlinkMessage::DelRoute(Default::default())]);
        bytes.truncate(bytes.len() - 3);
        // A truncated message is skipped, not a panic.
        assert!(decode(&bytes).is_empty());
    }

    #[test]
    fn the_groups_can_be_joined() {
        // Joining the groups needs no privilege. Making a change to be notified of needs
        // root and a namespace: the failover_netns tests cover that live.
        if let Err(err) = Watcher::open() {
            panic!("cannot subscribe to rtnetlink groups: {err}");
        }
    }
}
