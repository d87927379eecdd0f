//! The host's links and their addresses, from rtnetlink dumps (RTM_GETLINK, RTM_GETADDR).
//!
//! Owns: [`links`] (index, name, up), [`interfaces`] (each link with its networks), and
//! the pure conversions from netlink messages. A link without an address of its own (a
//! tunnel, a WireGuard device) is listed too. Must not: read /proc (absent under the
//! unit's ProcSubset=pid) or change anything.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::failures::{self, HostRead};
use super::netlink;

/// A network link: what an output interface index names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The lower layer is up too (IFF_LOWER_UP): a cable, a peer, a tunnel's carrier.
    pub carrier: bool,
}

/// A local interface and its networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub networks: Vec<IpNet>,
    pub up: bool,
}

/// Every link. A failure is recorded and gives no links.
pub fn links() -> Vec<Link> {
    match netlink::request(RouteNetlinkMessage::GetLink(LinkMessage::default()), true) {
        Ok(replies) => {
            failures::succeeded(HostRead::Links);
            replies
                .iter()
                .filter_map(|reply| match reply {
                    RouteNetlinkMessage::NewLink(message) => link(message),
                    _ => None,
                })
                .collect()
        }
        Err(err) => {
            failures::failed(HostRead::Links, &err.to_string());
            Vec::new()
        }
    }
}

/// Every address, as `(link index, network)`. A failure is recorded and gives none.
pub fn addresses() -> Vec<(u32, IpNet)> {
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    match netlink::request(request, true) {
        Ok(replies) => {
            failures::succeeded(HostRead::Addresses);
            replies
                .iter()
                .filter_map(|reply| match reply {
                    RouteNetlinkMessage::NewAddress(message) => address(message),
                    _ => None,
                })
                .collect()
        }
        Err(err) => {
            failures::failed(HostRead::Addresses, &err.to_string());
            Vec::new()
        }
    }
}

/// The host's interfaces with their networks.
pub fn interfaces() -> Vec<Interface> {
    let addresses = addresses();
    links()
        .into_iter()
        .map(|link| Interface {
            networks: addresses
                .iter()
                .filter(|(index, _)| *index == link.index)
                .map(|(_, net)| *net)
                .collect(),
            name: link.name,
            up: link.up,
        })
        .collect()
}

/// One dumped link; `None` without a name.
pub fn link(message: &LinkMessage) -> Option<Link> {
    let name = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })?;
    Some(Link {
        index: message.header.index,
        name,
        up: message.header.flags.contains(LinkFlags::Up),
        carrier: message.header.flags.contains(LinkFlags::LowerUp),
    })
}

/// One dumped address as its network. IFA_LOCAL is this host's address; IFA_ADDRESS is
/// the peer's on a point-to-point link, so it counts only when there is no IFA_LOCAL.
pub fn address(message: &AddressMessage) -> Option<(u32, IpNet)> {
    let find = |local: bool| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Local(ip) if local => Some(*ip),
                AddressAttribute::Address(ip) if !local => Some(*ip),
                _ => None,
            })
    };
    let ip: IpAddr = find(true).or_else(|| find(false))?;
    let network = IpNet::new(ip, message.header.prefix_len).ok()?;
    Some((message.header.index, network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_to_point_address_is_the_local_one() {
        let mut message = AddressMessage::default();
        message.header.index = 4;
        message.header.prefix_len = 32;
        message.attributes = vec![
            AddressAttribute::Address("100.64.0.2".parse().unwrap()),
            AddressAttribute::Local("100.64.0.1".parse().unwrap()),
        ];
        let (index, net) = address(&message).unwrap();
        assert_eq!(index, 4);
        assert_eq!(net.to_string(), "100.64.0.1/32");
        message.attributes.remove(1);
        assert_eq!(address(&message).unwrap().1.to_string(), "100.64.0.2/32");
    }

    #[test]
    fn a_link_has_its_name_and_state() {
        let mut message = LinkMessage::default();
        message.header.index = 3;
        message.header.flags = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
        message.attributes = vec![LinkAttribute::IfName("wg0".into())];
        assert_eq!(
            link(&message),
            Some(Link {
                index: 3,
                name: "wg0".into(),
                up: true,
                carrier: true,
            })
        );
        message.attributes.clear();
        assert_eq!(link(&message), None);
    }

    #[test]
    fn the_host_has_a_loopback_interface() {
        let interfaces = interfaces();
        let lo = interfaces.iter().find(|i| i.name == "lo").expect("lo");
        assert!(lo.up);
        assert!(
            lo.networks.iter().any(|net| net.addr().is_loopback()),
            "{lo:?}"
        );
    }
}
