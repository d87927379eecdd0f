//! Host facts: what this host's network and name are, from the kernel, for every part of
//! pathdns that asks (`check`, `doctor`, the conflict check at start and reload, the path
//! probe, alerts, the resolver switch).
//!
//! Owns: [`routes`](mod@routes) (the kernel's answer to `ip route get`, the routing tables),
//! [`interfaces`](mod@interfaces) (links and addresses), both over rtnetlink ([`netlink`]); [`name`]
//! (gethostname(2)); [`watch`] (the kernel's change notifications for links, routes and
//! addresses); [`conflicts`](mod@conflicts) (the documents' 100.0.0.0/8 trap); [`failures`], the
//! record of host reads that failed, which `/status` shows; the host's files
//! [`hosts_file`] (`/etc/hosts`) and [`resolv_conf`] (whom the host asks); and two small
//! facts:
//! [`local_address`] and [`check_raw_icmp`]; and [`tcp_sockets`], this host's TCP
//! connections to a target over inet_diag, judged stalled or not, and ended with
//! SOCK_DESTROY; and [`node_local`](mod@node_local), the one address pathdns adds to the
//! host (on `lo`, for containers and pods). Nothing here reads /proc, which the unit's `ProcSubset=pid` hides, except
//! `tcp_sockets` (this process's own `/proc/self/fd`, which stays visible, and a best-effort
//! owner lookup). Must not: send traffic to targets, decide health, or import from config,
//! probe or anything downstream.

pub mod conflicts;
pub mod containers;
pub mod failures;
pub mod hosts_file;
pub mod interfaces;
pub mod name;
pub mod netlink;
pub mod node_local;
pub mod resolv_conf;
pub mod routes;
pub mod tcp_sockets;
pub mod watch;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use conflicts::{conflicts, findings, remedy, Conflict, Finding};
pub use interfaces::{interfaces, Interface, Link};
pub use name::hostname;
pub use routes::{
    best_route, local_path, lookup, routes, Egress, LocalPath, Lookup, NoRoute, Route, RouteKind,
};

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

/// Whether this process may open a raw ICMP socket (CAP_NET_RAW), as an ICMP probe needs.
/// The probe keeps pnet's raw socket rather than an unprivileged ping socket: the shipped
/// ICMP drop-in grants CAP_NET_RAW, and a ping socket would depend on the host's
/// net.ipv4.ping_group_range covering the unit's dynamic user.
pub fn check_raw_icmp() -> std::io::Result<()> {
    use pnet_packet::ip::IpNextHeaderProtocols;
    use pnet_transport::{transport_channel, TransportChannelType, TransportProtocol};
    let protocol =
        TransportChannelType::Layer4(TransportProtocol::Ipv4(IpNextHeaderProtocols::Icmp));
    transport_channel(1024, protocol).map(|_| ())
}

/// Reads every kind of host fact once, so that a failing read is recorded and logged at
/// start and on reload, not first when a probe or an alert needs it. One line for the log.
pub fn survey() -> String {
    let interfaces = interfaces();
    let routes = routes();
    let name = hostname();
    let failing = failures::current();
    let mut line = format!(
        "host {name}: {} interfaces, {} routes",
        interfaces.len(),
        routes.len()
    );
    if !failing.is_empty() {
        let reads: Vec<String> = failing.iter().map(|f| f.read.to_string()).collect();
        line.push_str(&format!("; failing reads: {}", reads.join(", ")));
    }
    line
}
