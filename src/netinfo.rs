//! What the host's network looks like: interfaces, routes, the egress the kernel picks for
//! a target, and conflicts between target addresses and local networks.
//!
//! Owns: reading interfaces (pnet), the IPv4/IPv6 routing tables (/proc/net), egress
//! lookup by a connected UDP socket (no packet is sent), and the documents' 100.0.0.0/8
//! trap: a target that the kernel would reach on a local network instead of the private
//! path; and [`local_address`], how a local client reaches a listen address. Must not: send
//! traffic or decide health.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use ipnet::IpNet;

/// A local interface and its networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub networks: Vec<IpNet>,
    pub up: bool,
}

/// The host's interfaces.
pub fn interfaces() -> Vec<Interface> {
    pnet_datalink::interfaces()
        .into_iter()
        .map(|iface| Interface {
            up: iface.is_up(),
            networks: iface
                .ips
                .iter()
                .filter_map(|net| IpNet::new(net.ip(), net.prefix()).ok())
                .collect(),
            name: iface.name,
        })
        .collect()
}

/// A kernel route, as read from /proc/net/route or /proc/net/ipv6_route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
    /// `None` for an on-link (directly connected) route.
    pub gateway: Option<IpAddr>,
    pub interface: String,
    pub metric: u32,
}

/// Where a client on this host reaches a listen address: a wildcard (`0.0.0.0`, `::`) is
/// reached on the loopback address of its family.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The main routing table (IPv4 and IPv6). Unreadable tables give an empty list.
pub fn routes() -> Vec<Route> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let mut routes = parse_ipv4_routes(&v4);
    routes.extend(parse_ipv6_routes(&v6));
    routes
}

/// `/proc/net/route`: little-endian hex addresses, one route per line after a header.
pub fn parse_ipv4_routes(text: &str) -> Vec<Route> {
    let hex_v4 = |field: &str| {
        u32::from_str_radix(field, 16)
            .ok()
            .map(|raw| Ipv4Addr::from(raw.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gateway, metric, mask) = (
                *fields.first()?,
                hex_v4(fields.get(1)?)?,
                hex_v4(fields.get(2)?)?,
                fields.get(6)?.parse().ok()?,
                hex_v4(fields.get(7)?)?,
            );
            let prefix = u32::from(mask).leading_ones() as u8;
            Some(Route {
                destination: IpNet::new(IpAddr::V4(dest), prefix).ok()?,
                gateway: (!gateway.is_unspecified()).then_some(IpAddr::V4(gateway)),
                interface: iface.to_owned(),
                metric,
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: dest, dest prefix, src, src prefix, next hop, metric, ..., iface.
pub fn parse_ipv6_routes(text: &str) -> Vec<Route> {
    let hex_v6 = |field: &str| u128::from_str_radix(field, 16).ok().map(Ipv6Addr::from);
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = hex_v6(fields.first()?)?;
            let prefix = u8::from_str_radix(fields.get(1)?, 16).ok()?;
            let gateway = hex_v6(fields.get(4)?)?;
            let metric = u32::from_str_radix(fields.get(5)?, 16).ok()?;
            let iface = *fields.get(9)?;
            Some(Route {
                destination: IpNet::new(IpAddr::V6(dest), prefix).ok()?,
                gateway: (!gateway.is_unspecified()).then_some(IpAddr::V6(gateway)),
                interface: iface.to_owned(),
                metric,
            })
        })
        .collect()
}

/// The most specific route for `addr` (lowest metric among equals), as the kernel's main
/// table would pick it.
pub fn best_route(routes: &[Route], addr: IpAddr) -> Option<&Route> {
    routes
        .iter()
        .filter(|route| route.destination.contains(&addr) && route.interface != "lo")
        .max_by(|a, b| {
            a.destination
                .prefix_len()
                .cmp(&b.destination.prefix_len())
                .then(b.metric.cmp(&a.metric))
        })
}

/// Where the kernel would send traffic for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub source: IpAddr,
    /// The interface that holds the source address, if one does.
    pub interface: Option<String>,
}

impl fmt::Display for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.interface {
            Some(name) => write!(f, "source {} on {name}", self.source),
            None => write!(f, "source {}", self.source),
        }
    }
}

/// Asks the kernel for the route to `target` by connecting a UDP socket (which sends
/// nothing) and reading the source address it chose.
pub fn egress(target: IpAddr, interfaces: &[Interface]) -> std::io::Result<Egress> {
    let bind: SocketAddr = match target {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect((target, 443))?;
    let source = socket.local_addr()?.ip();
    let interface = interfaces
        .iter()
        .find(|iface| iface.networks.iter().any(|net| net.addr() == source))
        .map(|iface| iface.name.clone());
    Ok(Egress { source, interface })
}

/// Whether this process may open a raw ICMP socket (CAP_NET_RAW), as an ICMP probe needs.
pub fn check_raw_icmp() -> std::io::Result<()> {
    use pnet_packet::ip::IpNextHeaderProtocols;
    use pnet_transport::{transport_channel, TransportChannelType, TransportProtocol};
    let protocol =
        TransportChannelType::Layer4(TransportProtocol::Ipv4(IpNextHeaderProtocols::Icmp));
    transport_channel(1024, protocol).map(|_| ())
}

/// A target address that the host would not reach over the private path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The target lies inside a network of a local interface: the kernel delivers it on
    /// that LAN, never over the private path (the documents' 100.0.0.0/8 trap when the IDC
    /// itself uses 100.x).
    LocalNetwork {
        target: IpAddr,
        interface: String,
        network: IpNet,
    },
    /// A more specific route than the private path's sends the target elsewhere.
    RouteElsewhere {
        target: IpAddr,
        route: IpNet,
        interface: String,
        expected: String,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::LocalNetwork {
                target,
                interface,
                network,
            } => write!(
                f,
                "{target} lies inside local network {network} on {interface}: the host would \
                 look for it on that LAN, not over the private path"
            ),
            Conflict::RouteElsewhere {
                target,
                route,
                interface,
                expected,
            } => write!(
                f,
                "{target} is routed by {route} via {interface}, not via the private \
                 interface {expected}"
            ),
        }
    }
}

/// Conflicts for `target`; `expected` is the private interface, when the config names it.
pub fn conflicts(
    target: IpAddr,
    expected: Option<&str>,
    interfaces: &[Interface],
    routes: &[Route],
) -> Vec<Conflict> {
    let mut found = Vec::new();
    for iface in interfaces.iter().filter(|i| i.name != "lo") {
        for network in &iface.networks {
            // A host route (/32, /128) is the interface's own address, not a LAN.
            if network.prefix_len() < network.max_prefix_len() && network.contains(&target) {
                found.push(Conflict::LocalNetwork {
                    target,
                    interface: iface.name.clone(),
                    network: network.trunc(),
                });
            }
        }
    }
    if let (Some(expected), Some(route)) = (expected, best_route(routes, target)) {
        if route.interface != expected {
            found.push(Conflict::RouteElsewhere {
                target,
                route: route.destination,
                interface: route.interface.clone(),
                expected: expected.to_owned(),
            });
        }
    }
    found
}

/// A conflict found for one target of one owned name, with the documents' remedy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: String,
    pub conflict: Conflict,
    pub remedy: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.name, self.conflict, self.remedy)
    }
}

/// Conflicts of every target: `(name, role, addresses, private interface)` per owned name.
pub fn findings<'a>(
    names: impl IntoIterator<Item = (String, String, &'a [IpAddr], Option<&'a str>)>,
) -> Vec<Finding> {
    let interfaces = interfaces();
    let routes = routes();
    let mut found = Vec::new();
    for (name, role, addrs, expected) in names {
        for addr in addrs {
            for conflict in conflicts(*addr, expected, &interfaces, &routes) {
                found.push(Finding {
                    name: name.clone(),
                    conflict,
                    remedy: remedy(&role),
                });
            }
        }
    }
    found
}

/// What the documents advise for a conflict, by the role of the name.
pub fn remedy(role: &str) -> &'static str {
    match role {
        "auth" => {
            "remedy: let the instance take over the auth domain (then only the registry \
             name is needed: remove `auth`), or add a /32 route for it via the private path"
        }
        "oss" | "oss-bucket" | "oss-wildcard" => {
            "remedy: reach OSS through PrivateLink and set `oss_cname` to the endpoint's \
             name, or add a /32 route for it via the private path"
        }
        _ => "remedy: add a more specific route for it via the private path, or renumber",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE_V4: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t00000064\t0101A8C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0
eth0\t00004064\t00000000\t0001\t0\t0\t0\t0000C0FF\t0\t0\t0
";

    #[test]
    fn parses_proc_net_route() {
        let routes = parse_ipv4_routes(ROUTE_V4);
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0].destination.to_string(), "0.0.0.0/0");
        assert_eq!(routes[0].gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(routes[1].destination.to_string(), "10.0.0.0/24");
        assert_eq!(routes[1].gateway, None);
        assert_eq!(routes[2].destination.to_string(), "100.0.0.0/8");
        assert_eq!(routes[3].destination.to_string(), "100.64.0.0/10");
    }

    #[test]
    fn parses_proc_net_ipv6_route() {
        let text = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1\n";
        let routes = parse_ipv6_routes(text);
        assert_eq!(routes[0].destination.to_string(), "fd00::/64");
        assert_eq!(routes[0].interface, "eth1");
        assert_eq!(routes[0].metric, 256);
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = parse_ipv4_routes(ROUTE_V4);
        // 100.103.7.181 (the documents' auth address) lies inside 100.64.0.0/10.
        let auth: IpAddr = "100.103.7.181".parse().unwrap();
        let elsewhere: IpAddr = "100.10.7.181".parse().unwrap();
        assert_eq!(best_route(&routes, auth).unwrap().interface, "eth0");
        assert_eq!(best_route(&routes, elsewhere).unwrap().interface, "eth1");
    }

    #[test]
    fn the_100_x_trap_is_a_conflict() {
        let interfaces = vec![Interface {
            name: "eth0".into(),
            networks: vec!["100.64.3.4/10".parse().unwrap()],
            up: true,
        }];
        let routes = parse_ipv4_routes(ROUTE_V4);
        let inside: IpAddr = "100.103.7.181".parse().unwrap();
        let found = conflicts(inside, Some("eth1"), &interfaces, &routes);
        assert!(
            matches!(found[0], Conflict::LocalNetwork { .. }),
            "{found:?}"
        );
        assert!(found[0].to_string().contains("100.64.0.0/10"));
        assert!(matches!(found[1], Conflict::RouteElsewhere { .. }));
        let outside: IpAddr = "100.10.7.181".parse().unwrap();
        assert!(conflicts(outside, Some("eth1"), &interfaces, &routes).is_empty());
    }

    #[test]
    fn egress_of_loopback_is_loopback() {
        let egress = egress("127.0.0.1".parse().unwrap(), &interfaces()).unwrap();
        assert_eq!(egress.source, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(egress.interface.as_deref(), Some("lo"));
    }
}
