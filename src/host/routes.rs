//! Routes: the kernel's own answer for one target, and the routing tables as a list.
//!
//! Owns: [`lookup`], the question `ip route get TARGET` asks (RTM_GETROUTE with RTA_DST
//! and RTM_F_LOOKUP_TABLE), so that policy rules, blackhole/unreachable/prohibit routes,
//! tunnels without an address of their own and `src` hints come out as the kernel decides
//! them; [`routes`], a dump of every table for remedies and descriptions; and the pure
//! conversions from netlink messages, unit-tested. Must not: send traffic to a target or
//! decide health.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::failures::{self, HostRead};
use super::interfaces::{self, Link};
use super::netlink::{self, NetlinkError};

/// The kernel's main table.
pub const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// What a route does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Forwarded out of an interface (directly or through a gateway).
    Unicast,
    /// Delivered to this host.
    Local,
    Blackhole,
    Unreachable,
    Prohibit,
    /// Any other type (broadcast, multicast, throw, ...).
    Other,
}

impl From<RouteType> for RouteKind {
    fn from(kind: RouteType) -> RouteKind {
        match kind {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            _ => RouteKind::Other,
        }
    }
}

/// A kernel route from a dump of the routing tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
    /// `None` for an on-link (directly connected) route.
    pub gateway: Option<IpAddr>,
    pub interface: String,
    pub metric: u32,
    pub table: u32,
    pub kind: RouteKind,
}

/// Where the kernel sends traffic for a target: its answer to `ip route get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub target: IpAddr,
    /// The output interface; `None` only if the kernel named an index that no link has.
    pub interface: Option<String>,
    /// The preferred source address (the route's `src` hint, or the one the kernel picks).
    pub source: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    /// The table the route was found in (policy rules choose it).
    pub table: u32,
    pub kind: RouteKind,
}

impl fmt::Display for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dev {}", self.interface.as_deref().unwrap_or("?"))?;
        if let Some(source) = self.source {
            write!(f, " src {source}")?;
        }
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// Why the kernel has no way out for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// A `blackhole` route: packets are dropped silently.
    Blackhole,
    /// An `unreachable` route.
    Unreachable,
    /// A `prohibit` route.
    Prohibit,
    /// No route matches at all (ENETUNREACH).
    NoMatch,
    /// Another kernel error, as its text.
    Other(String),
}

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoRoute::Blackhole => f.write_str("a blackhole route drops it"),
            NoRoute::Unreachable => f.write_str("an unreachable route rejects it"),
            NoRoute::Prohibit => f.write_str("a prohibit route rejects it"),
            NoRoute::NoMatch => f.write_str("no route matches it"),
            NoRoute::Other(text) => write!(f, "the kernel answered: {text}"),
        }
    }
}

/// The kernel's verdict for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Route(Egress),
    NoRoute { target: IpAddr, reason: NoRoute },
}

/// Why a lookup got no verdict at all (the question could not be asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot ask the kernel for the route to {target}: {cause}")]
pub struct LookupError {
    pub target: IpAddr,
    pub cause: String,
}

/// Asks the kernel for the route to `target`, as `ip route get` does. A kernel error is a
/// verdict ([`Lookup::NoRoute`]); only a failure to ask is an error, and it is recorded
/// as a host-read failure.
pub fn lookup(target: IpAddr) -> Result<Lookup, LookupError> {
    let failed = |err: &dyn fmt::Display| {
        let cause = err.to_string();
        failures::failed(HostRead::Routes, &cause);
        LookupError { target, cause }
    };
    let replies = match netlink::request(RouteNetlinkMessage::GetRoute(get_request(target)), false)
    {
        Ok(replies) => replies,
        Err(err @ NetlinkError::Kernel(_)) => {
            failures::succeeded(HostRead::Routes);
            return Ok(Lookup::NoRoute {
                target,
                reason: no_route(err.kernel_errno(), &err),
            });
        }
        Err(err) => return Err(failed(&err)),
    };
    let Some(RouteNetlinkMessage::NewRoute(reply)) = replies.into_iter().next() else {
        return Err(failed(&"the kernel sent no route"));
    };
    failures::succeeded(HostRead::Routes);
    let links = interfaces::links();
    Ok(Lookup::Route(egress(target, &reply, &links)))
}

/// The local part of the path to a target: the kernel's route and whether its output
/// link can carry packets. Two readings that differ mean the path changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalPath {
    /// A route out; `link_up` is false when its interface is down or has no carrier.
    Out { egress: Egress, link_up: bool },
    /// The kernel has no way out for it.
    Gone(NoRoute),
    /// The question could not be asked (a failed read, not a verdict).
    Unknown(String),
}

impl LocalPath {
    /// A definite local verdict that the target cannot be reached, as a reason: no route,
    /// or the egress interface is down. `None` while there is a usable way out (or
    /// nothing is known).
    pub fn down_reason(&self) -> Option<String> {
        match self {
            LocalPath::Gone(reason) => Some(reason.to_string()),
            LocalPath::Out {
                egress,
                link_up: false,
            } => Some(format!(
                "its interface {} is down",
                egress.interface.as_deref().unwrap_or("?")
            )),
            _ => None,
        }
    }
}

impl fmt::Display for LocalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalPath::Out { egress, link_up } => {
                write!(f, "{egress}{}", if *link_up { "" } else { " (link down)" })
            }
            LocalPath::Gone(reason) => write!(f, "no route ({reason})"),
            LocalPath::Unknown(cause) => write!(f, "unknown ({cause})"),
        }
    }
}

/// The kernel's route to `target` and the state of its output link (from `links`).
pub fn local_path(target: IpAddr, links: &[Link]) -> LocalPath {
    match lookup(target) {
        Ok(Lookup::Route(egress)) => {
            let link_up = match &egress.interface {
                Some(name) => links
                    .iter()
                    .find(|link| &link.name == name)
                    .is_none_or(|link| link.up && link.carrier),
                None => true,
            };
            LocalPath::Out { egress, link_up }
        }
        Ok(Lookup::NoRoute { reason, .. }) => LocalPath::Gone(reason),
        Err(err) => LocalPath::Unknown(err.cause),
    }
}

/// The RTM_GETROUTE request `ip route get TARGET` sends.
fn get_request(target: IpAddr) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = match target {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.destination_prefix_length = if target.is_ipv4() { 32 } else { 128 };
    // Report the table the route came from, not the cache's pseudo-table.
    message.header.flags = RouteFlags::LookupTable;
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(target)));
    message
}

/// The kernel's error for a route lookup, as a verdict (fib_props in the kernel: a
/// blackhole answers EINVAL, unreachable EHOSTUNREACH, prohibit EACCES).
pub fn no_route(errno: Option<i32>, err: &dyn fmt::Display) -> NoRoute {
    match errno {
        Some(libc_errno::EINVAL) => NoRoute::Blackhole,
        Some(libc_errno::EHOSTUNREACH) => NoRoute::Unreachable,
        Some(libc_errno::EACCES) => NoRoute::Prohibit,
        Some(libc_errno::ENETUNREACH) => NoRoute::NoMatch,
        _ => NoRoute::Other(err.to_string()),
    }
}

/// Errno values, from nix so that no libc dependency is needed.
mod libc_errno {
    use nix::errno::Errno;
    pub const EINVAL: i32 = Errno::EINVAL as i32;
    pub const EHOSTUNREACH: i32 = Errno::EHOSTUNREACH as i32;
    pub const EACCES: i32 = Errno::EACCES as i32;
    pub const ENETUNREACH: i32 = Errno::ENETUNREACH as i32;
}

/// The kernel's reply to a route lookup, with the output interface named.
pub fn egress(target: IpAddr, reply: &RouteMessage, links: &[Link]) -> Egress {
    let mut egress = Egress {
        target,
        interface: None,
        source: None,
        gateway: None,
        table: u32::from(reply.header.table),
        kind: reply.header.kind.into(),
    };
    for attribute in &reply.attributes {
        match attribute {
            RouteAttribute::Oif(index) => egress.interface = link_name(links, *index),
            RouteAttribute::PrefSource(addr) => egress.source = ip_of(addr),
            RouteAttribute::Gateway(addr) => egress.gateway = ip_of(addr),
            RouteAttribute::Table(table) => egress.table = *table,
            _ => {}
        }
    }
    egress
}

fn link_name(links: &[Link], index: u32) -> Option<String> {
    links
        .iter()
        .find(|link| link.index == index)
        .map(|link| link.name.clone())
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// Every IPv4 and IPv6 route of every table. A failure is recorded and gives no routes.
pub fn routes() -> Vec<Route> {
    let replies =
        match netlink::request(RouteNetlinkMessage::GetRoute(RouteMessage::default()), true) {
            Ok(replies) => replies,
            Err(err) => {
                failures::failed(HostRead::Routes, &err.to_string());
                return Vec::new();
            }
        };
    failures::succeeded(HostRead::Routes);
    let links = interfaces::links();
    replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRoute(message) => route(message, &links),
            _ => None,
        })
        .collect()
}

/// One dumped route; `None` for a route with no single output interface (blackhole,
/// multipath) or of another family.
pub fn route(message: &RouteMessage, links: &[Link]) -> Option<Route> {
    let header = &message.header;
    let mut destination = match header.address_family {
        AddressFamily::Inet => IpAddr::from([0u8; 4]),
        AddressFamily::Inet6 => IpAddr::from([0u16; 8]),
        _ => return None,
    };
    let (mut gateway, mut interface, mut metric) = (None, None, 0);
    let mut table = u32::from(header.table);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(addr) => destination = ip_of(addr)?,
            RouteAttribute::Gateway(addr) => gateway = ip_of(addr),
            RouteAttribute::Oif(index) => interface = link_name(links, *index),
            RouteAttribute::Priority(priority) => metric = *priority,
            RouteAttribute::Table(id) => table = *id,
            _ => {}
        }
    }
    Some(Route {
        destination: IpNet::new(destination, header.destination_prefix_length).ok()?,
        gateway,
        interface: interface?,
        metric,
        table,
        kind: header.kind.into(),
    })
}

/// The most specific unicast route of the main table for `addr` (lowest metric among
/// equals): what the kernel picks when no policy rule says otherwise.
pub fn best_route(routes: &[Route], addr: IpAddr) -> Option<&Route> {
    routes
        .iter()
        .filter(|route| {
            route.table == MAIN_TABLE
                && route.kind == RouteKind::Unicast
                && route.destination.contains(&addr)
                && route.interface != "lo"
        })
        .max_by(|a, b| {
            a.destination
                .prefix_len()
                .cmp(&b.destination.prefix_len())
                .then(b.metric.cmp(&a.metric))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_route(destination: &str, gateway: Option<&str>, interface: &str) -> Route {
        Route {
            destination: destination.parse().unwrap(),
            gateway: gateway.map(|gw| gw.parse().unwrap()),
            interface: interface.into(),
            metric: 0,
            table: MAIN_TABLE,
            kind: RouteKind::Unicast,
        }
    }

    /// The table the old /proc/net/route fixture described.
    pub(crate) fn fixture() -> Vec<Route> {
        vec![
            main_route("0.0.0.0/0", Some("10.0.0.1"), "eth0"),
            main_route("10.0.0.0/24", None, "eth0"),
            main_route("100.0.0.0/8", Some("192.168.1.1"), "eth1"),
            main_route("100.64.0.0/10", None, "eth0"),
        ]
    }

    fn links() -> Vec<Link> {
        vec![
            Link {
                index: 1,
                name: "lo".into(),
                up: true,
                carrier: true,
            },
            Link {
                index: 7,
                name: "wg0".into(),
                up: true,
                carrier: true,
            },
        ]
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = fixture();
        // 100.103.7.181 (the documents' auth address) lies inside 100.64.0.0/10.
        let auth: IpAddr = "100.103.7.181".parse().unwrap();
        let elsewhere: IpAddr = "100.10.7.181".parse().unwrap();
        assert_eq!(best_route(&routes, auth).unwrap().interface, "eth0");
        assert_eq!(best_route(&routes, elsewhere).unwrap().interface, "eth1");
    }

    #[test]
    fn other_tables_and_types_are_not_the_main_tables_choice() {
        let mut routes = fixture();
        let mut policy = main_route("100.103.7.181/32", None, "wg0");
        policy.table = 100;
        routes.push(policy);
        let mut local = main_route("100.103.7.0/24", None, "eth9");
        local.kind = RouteKind::Local;
        routes.push(local);
        let auth: IpAddr = "100.103.7.181".parse().unwrap();
        assert_eq!(best_route(&routes, auth).unwrap().interface, "eth0");
    }

    #[test]
    fn a_route_get_reply_names_interface_source_gateway_and_table() {
        let mut reply = RouteMessage::default();
        reply.header.address_family = AddressFamily::Inet;
        reply.header.kind = RouteType::Unicast;
        reply.header.table = 252;
        reply.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet("100.103.7.181".parse().unwrap())),
            RouteAttribute::Oif(7),
            RouteAttribute::PrefSource(RouteAddress::Inet("192.0.2.9".parse().unwrap())),
            RouteAttribute::Gateway(RouteAddress::Inet("192.0.2.1".parse().unwrap())),
            RouteAttribute::Table(1000),
        ];
        let target: IpAddr = "100.103.7.181".parse().unwrap();
        let egress = egress(target, &reply, &links());
        assert_eq!(egress.interface.as_deref(), Some("wg0"));
        assert_eq!(egress.source, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(egress.gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(egress.table, 1000, "RTA_TABLE wins over the 8-bit header");
        assert_eq!(egress.kind, RouteKind::Unicast);
        assert_eq!(
            egress.to_string(),
            "dev wg0 src 192.0.2.9 via 192.0.2.1 table 1000"
        );
    }

    #[test]
    fn kernel_errors_are_verdicts() {
        let text = &"x";
        assert_eq!(no_route(Some(libc_errno::EINVAL), text), NoRoute::Blackhole);
        assert_eq!(
            no_route(Some(libc_errno::EHOSTUNREACH), text),
            NoRoute::Unreachable
        );
        assert_eq!(no_route(Some(libc_errno::EACCES), text), NoRoute::Prohibit);
        assert_eq!(
            no_route(Some(libc_errno::ENETUNREACH), text),
            NoRoute::NoMatch
        );
        assert_eq!(no_route(Some(5), text), NoRoute::Other("x".into()));
    }

    #[test]
    fn a_dumped_route_without_destination_is_the_default_route() {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.kind = RouteType::Unicast;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet("10.0.0.1".parse().unwrap())),
            RouteAttribute::Oif(7),
            RouteAttribute::Priority(100),
        ];
        let route = route(&message, &links()).unwrap();
        assert_eq!(route.destination.to_string(), "0.0.0.0/0");
        assert_eq!(route.interface, "wg0");
        assert_eq!(route.metric, 100);
        assert_eq!(route.table, MAIN_TABLE);
        message
            .attributes
            .retain(|a| !matches!(a, RouteAttribute::Oif(_)));
        assert_eq!(super::route(&message, &links()), None, "no interface");
    }

    #[test]
    fn a_definite_local_verdict_has_a_reason() {
        let egress = Egress {
            target: "10.94.205.198".parse().unwrap(),
            interface: Some("eth-priv".into()),
            source: None,
            gateway: None,
            table: MAIN_TABLE,
            kind: RouteKind::Unicast,
        };
        let up = LocalPath::Out {
            egress: egress.clone(),
            link_up: true,
        };
        assert_eq!(up.down_reason(), None);
        let down = LocalPath::Out {
            egress,
            link_up: false,
        };
        assert_eq!(
            down.down_reason().as_deref(),
            Some("its interface eth-priv is down")
        );
        assert_ne!(up, down, "a link going down is a change");
        let gone = LocalPath::Gone(NoRoute::NoMatch);
        assert_eq!(gone.down_reason().as_deref(), Some("no route matches it"));
        assert_eq!(LocalPath::Unknown("x".into()).down_reason(), None);
    }

    #[test]
    fn loopback_is_a_local_path_that_is_up() {
        let links = interfaces::links();
        let path = local_path("127.0.0.1".parse().unwrap(), &links);
        assert!(
            matches!(path, LocalPath::Out { link_up: true, .. }),
            "{path}"
        );
    }

    #[test]
    fn the_kernel_answers_for_loopback() {
        let Lookup::Route(egress) = lookup("127.0.0.1".parse().unwrap()).unwrap() else {
            panic!("no route to 127.0.0.1");
        };
        assert_eq!(egress.kind, RouteKind::Local);
        assert_eq!(egress.interface.as_deref(), Some("lo"));
        assert_eq!(egress.source, Some("127.0.0.1".parse().unwrap()));
    }
}
