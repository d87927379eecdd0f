//! `[server]`: listen addresses, the node-local address, the client allow list and the
//! TCP caps.
//!
//! Must not: bind anything or add the node-local address; the listeners and
//! `pathdns node-local up` do that from the validated settings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

use crate::config::error::{ConfigError, Site};
use crate::config::facts::HostFacts;
use crate::config::raw::{RawServer, DEFAULT_PORT};
use crate::config::settings::{NodeLocal, ServerSettings};
use crate::host::containers;
use crate::host::node_local::DEFAULT_ADDRESS;

use super::values::in_range;

/// More concurrent TCP clients than a node-local resolver ever needs (and than a
/// semaphore can count on every platform).
const MAX_TCP_CONNECTIONS: usize = 1_000_000;

/// The most pipelined queries of one TCP connection waiting at once (RFC 7766 sets no
/// number; a DNS message ID has 65,536 values).
const MAX_QUERIES_PER_CONNECTION: usize = 65_536;

/// Whom the default allow list adds when pathdns listens on a node-local address: the
/// networks containers and pods come from (Docker's bridges are 172.17.0.0/16 and up,
/// pod networks 10.x or 100.64.x, Podman's 10.88.x), and link-local. A link-local address
/// is reached only from this host's own namespaces, so this opens pathdns to no one else
/// as long as it listens on nothing but loopback and the node-local address.
pub const NODE_LOCAL_CLIENTS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

pub(in crate::config) fn server(
    raw: &RawServer,
    facts: &HostFacts,
    site: &Site,
) -> Result<ServerSettings, ConfigError> {
    check_listen(raw, site)?;
    let node_local = node_local(raw, facts, site)?;
    let listen = with_node_local(raw.listen.get_ref(), node_local.as_ref());
    let allow = allow_list(raw, &listen, node_local.as_ref(), site)?;
    let max_tcp = &raw.max_tcp_connections;
    in_range(
        max_tcp,
        MAX_TCP_CONNECTIONS,
        "server.max_tcp_connections",
        site,
    )?;
    let per_connection = &raw.max_queries_per_connection;
    in_range(
        per_connection,
        MAX_QUERIES_PER_CONNECTION,
        "server.max_queries_per_connection",
        site,
    )?;
    let idle = &raw.tcp_idle_timeout;
    if idle.get_ref().is_zero() {
        return Err(site.at(
            idle.span(),
            "server.tcp_idle_timeout",
            "must be above 0: every TCP client would be disconnected at once".into(),
        ));
    }
    Ok(ServerSettings {
        listen,
        allow,
        node_local,
        max_tcp_connections: *max_tcp.get_ref(),
        tcp_idle_timeout: *idle.get_ref(),
        max_queries_per_connection: *per_connection.get_ref(),
    })
}

/// `server.node_local`: an IPv4 link-local address, `"auto"` (the default address when
/// the host runs containers) or `"off"`; absent is off.
fn node_local(
    raw: &RawServer,
    facts: &HostFacts,
    site: &Site,
) -> Result<Option<NodeLocal>, ConfigError> {
    let Some(value) = raw.node_local.as_ref() else {
        return Ok(None);
    };
    let error = |message: String| site.at(value.span(), "server.node_local", message);
    match value.get_ref().as_str() {
        "off" => Ok(None),
        "auto" => Ok(auto_node_local(facts)),
        text => {
            let addr: Ipv4Addr = text.parse().map_err(|_| {
                error(format!(
                    "{text:?} is not an IPv4 address, \"auto\" or \"off\" (the default \
                     address is \"{DEFAULT_ADDRESS}\")"
                ))
            })?;
            if !addr.is_link_local() {
                return Err(error(format!(
                    "{addr} is not link-local (169.254.0.0/16): a node-local address must \
                     never be routed off the host; the default is \"{DEFAULT_ADDRESS}\""
                )));
            }
            Ok(Some(NodeLocal {
                addr,
                because: "configured".into(),
            }))
        }
    }
}

/// `"auto"`: the default address on a host that runs containers, none elsewhere.
fn auto_node_local(facts: &HostFacts) -> Option<NodeLocal> {
    let runtimes = facts.container_runtimes.as_deref().unwrap_or_default();
    (!runtimes.is_empty()).then(|| NodeLocal {
        addr: DEFAULT_ADDRESS,
        because: format!("auto: {}", containers::describe(runtimes)),
    })
}

/// The listen addresses with the node-local one's port 53 added (once).
fn with_node_local(listen: &[SocketAddr], node_local: Option<&NodeLocal>) -> Vec<SocketAddr> {
    let mut listen = listen.to_vec();
    if let Some(node_local) = node_local {
        let addr = SocketAddr::from((node_local.addr, DEFAULT_PORT));
        if !listen.contains(&addr) {
            listen.push(addr);
        }
    }
    listen
}

/// `server.allow` as written; unwritten, loopback, and with a node-local address the
/// containers' networks too ([`NODE_LOCAL_CLIENTS`]) as long as nothing else but
/// loopback is listened on.
fn allow_list(
    raw: &RawServer,
    listen: &[SocketAddr],
    node_local: Option<&NodeLocal>,
    site: &Site,
) -> Result<Vec<IpNet>, ConfigError> {
    let allow = &raw.allow;
    if allow.get_ref().is_empty() {
        return Err(site.at(
            allow.span(),
            "server.allow",
            "empty: every client would be REFUSED; allow at least \"127.0.0.0/8\"".into(),
        ));
    }
    // The default has no place in the file (an empty span).
    let written = !allow.span().is_empty();
    let Some(node_local) = node_local.filter(|_| !written) else {
        return Ok(allow.get_ref().clone());
    };
    let other = listen
        .iter()
        .find(|a| !a.ip().is_loopback() && a.ip() != IpAddr::V4(node_local.addr));
    if let Some(other) = other {
        return Err(site.at(
            raw.listen.span(),
            "server.allow",
            format!(
                "not given, with server.node_local and the non-loopback listen address \
                 {other}: write server.allow, whom pathdns answers (e.g. the containers' \
                 networks {})",
                NODE_LOCAL_CLIENTS.join(", ")
            ),
        ));
    }
    let mut nets = allow.get_ref().clone();
    nets.extend(
        NODE_LOCAL_CLIENTS
            .iter()
            .filter_map(|net| net.parse::<IpNet>().ok()),
    );
    Ok(nets)
}

/// At least one listen address, none twice.
fn check_listen(raw: &RawServer, site: &Site) -> Result<(), ConfigError> {
    let listen = &raw.listen;
    if listen.get_ref().is_empty() {
        return Err(site.at(
            listen.span(),
            "server.listen",
            "no listen address: give at least one, e.g. \"127.0.0.1:53\"".into(),
        ));
    }
    for (index, addr) in listen.get_ref().iter().enumerate() {
        if listen.get_ref()[..index].contains(addr) {
            return Err(site.at(
                listen.span(),
                "server.listen",
                format!("{addr} is listed twice"),
            ));
        }
    }
    Ok(())
}
