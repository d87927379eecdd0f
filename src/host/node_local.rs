//! The node-local address: an IPv4 /32 on `lo`, labelled [`LABEL`], on which pathdns answers
//! the containers and pods of this host (Docker drops loopback nameservers from a
//! container's resolv.conf; a CoreDNS that forwards to a loopback address asks itself).
//!
//! Why a /32 on `lo`: the kernel delivers a packet for any local address whatever interface
//! it came in on, so a container behind docker0 or a pod behind a veth reaches it through
//! the host's routing, with no route of its own; and `lo` exists on every kernel, where a
//! `dummy` link (NodeLocal DNSCache's choice) needs a driver that some kernels lack. A
//! link-local address (169.254.0.0/16) is never forwarded off the node by a router. The
//! label tells pathdns's address apart from anyone else's: `up` adds it, `down` removes it,
//! and neither touches an address that does not carry it.
//!
//! Owns: reading where the address is ([`placement`]), adding it ([`up`]) and removing it
//! ([`down`]) over rtnetlink. Must not: decide whether a node-local address is wanted (the
//! config does), or listen on it (the DNS listeners do).

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::interfaces;
use super::netlink::{self, Change, NetlinkError};

/// The default node-local address: link-local, beside NodeLocal DNSCache's 169.254.20.10
/// (so both can run on one node), and easy to tell from it.
pub const DEFAULT_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 20, 53);
/// The label on pathdns's address (`ip address show dev lo` shows it).
pub const LABEL: &str = "lo:pathdns";
const LOOPBACK: &str = "lo";

/// Where an address is on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On `lo` with pathdns's label.
    Ours,
    /// An address of another interface, or of `lo` without our label: someone else's.
    Elsewhere { interface: String },
    /// Nowhere on this host.
    Absent,
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Added,
    AlreadyThere,
}

/// Why the node-local address could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum NodeLocalError {
    #[error(
        "cannot add {addr}/32 to lo: not permitted (needs CAP_NET_ADMIN); run `pathdns \
         node-local up` as root (the packaged unit does, in ExecStartPre=+), or add it \
         yourself: ip address add {addr}/32 dev lo label {LABEL}"
    )]
    NotPermitted { addr: Ipv4Addr },
    #[error(
        "cannot remove pathdns's address from lo: not permitted (needs CAP_NET_ADMIN); run \
         `pathdns node-local down` as root, or: ip address del {addr}/32 dev lo"
    )]
    RemovalNotPermitted { addr: Ipv4Addr },
    #[error(
        "{addr} is already an address of {interface}, not pathdns's: choose another \
         server.node_local, or remove it there (ip address del {addr}/32 dev {interface})"
    )]
    InUse { addr: Ipv4Addr, interface: String },
    #[error("this host has no loopback interface `lo`")]
    NoLoopback,
    #[error("cannot read or change the host's addresses: {0}")]
    Netlink(#[from] NetlinkError),
}

/// One IPv4 address of the host, as a dump shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostAddress {
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
    label: Option<String>,
}

/// Where `addr` is.
pub fn placement(addr: Ipv4Addr) -> Result<Placement, NodeLocalError> {
    let names = link_names()?;
    let found = host_addresses()?.into_iter().find(|a| a.ip == addr);
    Ok(match found {
        None => Placement::Absent,
        Some(address) if address.label.as_deref() == Some(LABEL) => Placement::Ours,
        Some(address) => Placement::Elsewhere {
            interface: name_of(&names, address.index),
        },
    })
}

/// Adds `addr` to `lo` with pathdns's label, unless it is there already. An address of
/// ours with another IP (an earlier `server.node_local`) is removed first; anyone else's
/// `addr` is an error and nothing changes.
pub fn up(addr: Ipv4Addr) -> Result<Outcome, NodeLocalError> {
    match placement(addr)? {
        Placement::Ours => return Ok(Outcome::AlreadyThere),
        Placement::Elsewhere { interface } => {
            return Err(NodeLocalError::InUse { addr, interface })
        }
        Placement::Absent => {}
    }
    let lo = loopback_index()?;
    for stale in host_addresses()?.iter().filter(|a| ours(a) && a.ip != addr) {
        delete(stale).map_err(|err| refusal(err, addr))?;
    }
    let message = address_message(lo, addr, 32);
    netlink::change(RouteNetlinkMessage::NewAddress(message), Change::Create)
        .map_err(|err| refusal(err, addr))?;
    Ok(Outcome::Added)
}

/// Removes every address carrying pathdns's label (the configured one and any earlier
/// one) and returns them; anyone else's address is left alone.
pub fn down() -> Result<Vec<Ipv4Addr>, NodeLocalError> {
    let mut removed = Vec::new();
    for address in host_addresses()?.iter().filter(|a| ours(a)) {
        delete(address).map_err(|err| match refusal(err, address.ip) {
            NodeLocalError::NotPermitted { addr } => NodeLocalError::RemovalNotPermitted { addr },
            other => other,
        })?;
        removed.push(address.ip);
    }
    Ok(removed)
}

fn ours(address: &HostAddress) -> bool {
    address.label.as_deref() == Some(LABEL)
}

fn delete(address: &HostAddress) -> Result<(), NetlinkError> {
    let message = address_message(address.index, address.ip, address.prefix_len);
    netlink::change(RouteNetlinkMessage::DelAddress(message), Change::Delete)
}

/// EPERM is the missing capability; the rest stays a netlink error.
fn refusal(err: NetlinkError, addr: Ipv4Addr) -> NodeLocalError {
    match err.kernel_errno() {
        Some(nix::libc::EPERM) => NodeLocalError::NotPermitted { addr },
        _ => NodeLocalError::Netlink(err),
    }
}

fn address_message(index: u32, ip: Ipv4Addr, prefix_len: u8) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.prefix_len = prefix_len;
    message.header.index = index;
    message.header.scope = AddressScope::Universe;
    message.attributes = vec![
        AddressAttribute::Local(IpAddr::V4(ip)),
        AddressAttribute::Address(IpAddr::V4(ip)),
        AddressAttribute::Label(LABEL.to_owned()),
    ];
    message
}

fn host_addresses() -> Result<Vec<HostAddress>, NetlinkError> {
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    let replies = netlink::request(request, true)?;
    Ok(replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewAddress(message) => host_address(message),
            _ => None,
        })
        .collect())
}

/// One dumped IPv4 address (its IFA_LOCAL), with its label.
fn host_address(message: &AddressMessage) -> Option<HostAddress> {
    let mut ip = None;
    let mut label = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(IpAddr::V4(local)) => ip = Some(*local),
            AddressAttribute::Label(text) => label = Some(text.clone()),
            _ => {}
        }
    }
    Some(HostAddress {
        index: message.header.index,
        ip: ip?,
        prefix_len: message.header.prefix_len,
        label,
    })
}

fn link_names() -> Result<Vec<(u32, String)>, NetlinkError> {
    let replies = netlink::request(RouteNetlinkMessage::GetLink(Default::default()), true)?;
    Ok(replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(message) => interfaces::link(message),
            _ => None,
        })
        .map(|link| (link.index, link.name))
        .collect())
}

fn loopback_index() -> Result<u32, NodeLocalError> {
    link_names()?
        .into_iter()
        .find(|(_, name)| name == LOOPBACK)
        .map(|(index, _)| index)
        .ok_or(NodeLocalError::NoLoopback)
}

fn name_of(names: &[(u32, String)], index: u32) -> String {
    names
        .iter()
        .find(|(i, _)| *i == index)
        .map_or_else(|| format!("interface #{index}"), |(_, name)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumped_address_carries_its_label() {
        let mut message = address_message(1, DEFAULT_ADDRESS, 32);
        let address = host_address(&message).expect("an IPv4 address");
        assert!(ours(&address));
        assert_eq!(address.ip, DEFAULT_ADDRESS);
        message
            .attributes
            .retain(|a| !matches!(a, AddressAttribute::Label(_)));
        assert!(!ours(&host_address(&message).expect("still an address")));
    }

    #[test]
    fn permission_refusals_name_the_capability_and_the_fix() {
        let err = refusal(
            NetlinkError::Kernel(std::io::Error::from_raw_os_error(nix::libc::EPERM)),
            DEFAULT_ADDRESS,
        );
        let text = err.to_string();
        assert!(text.contains("CAP_NET_ADMIN"), "{text}");
        assert!(text.contains("ip address add 169.254.20.53/32 dev lo label lo:pathdns"));
    }

    #[test]
    fn the_host_has_no_address_labelled_ours_unless_pathdns_put_it_there() {
        // Read-only against the real host: every address carrying the label is on lo.
        let names = link_names().expect("links");
        for address in host_addresses().expect("addresses") {
            if ours(&address) {
                assert_eq!(name_of(&names, address.index), LOOPBACK);
            }
        }
    }
}
