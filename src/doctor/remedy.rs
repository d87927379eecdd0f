//! What to do about a failed doctor check: the remedy texts, in the documents' words.
//!
//! Owns: turning a failure (its address, interface, probe detail) into the one sentence the
//! report prints after `remedy:`. Must not: run a check or read the host (the checks pass
//! in what they found).

use std::net::{IpAddr, SocketAddr};

use crate::host::Route;

/// A discovery server gives no usable answer.
pub(super) fn discovery_server(server: SocketAddr) -> String {
    format!(
        "check that {ip} is reached through the private path (`ip route get {ip}`), that the \
         VPC lets UDP 53 in from this network (security group; for a PrivateZone inbound \
         endpoint, its allowed sources), and that it resolves the instance's names; the \
         agent keeps answering the last good addresses meanwhile",
        ip = server.ip()
    )
}

/// The agent answers, but not from this config.
pub(super) fn reload(agent: SocketAddr) -> String {
    format!(
        "the agent at {agent} does not serve this config: reload it (systemctl reload pathdns) \
         or check which --config it runs"
    )
}

/// The agent answers REFUSED.
pub(super) fn refused(agent: SocketAddr) -> String {
    format!(
        "the server at {agent} refuses this host: allow loopback in server.allow, or check \
         what listens at {agent}"
    )
}

/// Step 3 of the documents: a route for the target through the private path.
pub(super) fn add_route(addr: IpAddr, interface: Option<&str>, routes: &[Route]) -> String {
    let host = if addr.is_ipv4() { 32 } else { 128 };
    let Some(iface) = interface else {
        return format!(
            "add a route for {addr}/{host} through the private path (the VPN gateway, Express \
             Connect or CEN transit router), as in step 3 of the documents"
        );
    };
    let gateway = routes
        .iter()
        .find(|route| route.interface == iface && route.gateway.is_some())
        .and_then(|route| route.gateway);
    match gateway {
        Some(gateway) => format!(
            "route it through the private path: ip route add {addr}/{host} via {gateway} dev {iface}"
        ),
        None => format!(
            "route it through the private path: ip route add {addr}/{host} dev {iface} \
             (via the gateway on {iface})"
        ),
    }
}

/// A failed TCP connect, from the probe's reason; `route_remedy` is set when this host's
/// own route check failed.
pub(super) fn connect(
    why: &str,
    addr: IpAddr,
    port: u16,
    display: &str,
    route_remedy: Option<String>,
) -> String {
    if why.contains("refused") {
        format!(
            "{addr} answers but nothing listens on port {port}: the address is wrong or stale; \
             look it up again from inside the VPC (ping {} on an ECS in the region)",
            display.replacen("*.", "<bucket>.", 1)
        )
    } else if let Some(route_remedy) = route_remedy {
        format!("fix this host's route first (see the route check): {route_remedy}")
    } else if why.contains("unreachable") || why.contains("no route") {
        format!(
            "this host routes {addr} correctly, but a router on the private path reports it \
             unreachable: {}",
            path_hint(addr)
        )
    } else if why.contains("no answer within") {
        format!(
            "packets to {addr} are dropped on the way (no answer, no error): {}; and check \
             firewalls and security groups",
            path_hint(addr)
        )
    } else {
        format!("check the path to {addr}")
    }
}

/// Where the rest of the private path is configured (step 3 of the documents).
fn path_hint(addr: IpAddr) -> String {
    let in_100 = match addr {
        IpAddr::V4(v4) => v4.octets()[0] == 100,
        IpAddr::V6(_) => false,
    };
    if in_100 {
        format!(
            "check the routes beyond this host: the documents add {addr}/32 to the route table \
             towards the transit router, and 100.0.0.0/8 to the CEN transit routers of both \
             regions"
        )
    } else {
        format!(
            "check the routes beyond this host towards {addr}'s VPC (VPN gateway, Express \
             Connect or CEN transit routers), and that the instance's access control allows \
             this network"
        )
    }
}

/// A failed TLS handshake.
pub(super) fn tls(why: &str, display: &str, addr: IpAddr) -> String {
    if why.contains("certificate")
        || why.contains("UnknownIssuer")
        || why.contains("NotValidForName")
    {
        format!(
            "the certificate at {addr} is not valid for {display}: if a private CA signs it, set \
             `ca_file` in the [[registry]] block; otherwise {addr} is not {display} (look the \
             address up again from inside the VPC)"
        )
    } else {
        format!(
            "{addr} accepts TCP but the TLS handshake fails: check that {addr} really is {display}"
        )
    }
}

/// A failed `GET /v2/`.
pub(super) fn registry(why: &str, display: &str, addr: IpAddr) -> String {
    if why.contains("status") {
        format!(
            "{addr} does not answer /v2/ like the registry (401 with a token realm): look the \
             registry address up again from inside the VPC"
        )
    } else if why.contains("certificate") || why.contains("tls") || why.contains("TLS") {
        tls(why, display, addr)
    } else {
        format!("{addr} accepts TCP but GET /v2/ fails: check that it really is {display}")
    }
}

/// A realm this config does not answer.
pub(super) fn missing_realm(realm: &str) -> String {
    format!(
        "add the auth name, or let the instance take over the auth domain: give `auth = \
         [\"<address>\"]` in the [[registry]] block (the address of {realm}, looked up from \
         inside the VPC), or switch on \"instance takes over the auth domain\" for the instance"
    )
}
