//! What to tell the operator about a discovered address that does not work from here:
//! the route to add when its route leaves another way than the working address's (the
//! documents' `/32` routes for the 100.x addresses), or the local network it falls into
//! (the 100.x conflict) with the documents' remedies.
//!
//! Owns: [`route_advice`] (pure, from the kernel's verdicts) and [`local_conflicts`]
//! (asks the host). Must not: change routes or send traffic.

use std::net::IpAddr;

use crate::host::{self, Conflict, Egress, Lookup};

/// The route to add for `new` when the kernel sends it another way than `old` (an address
/// of the same name that works): "ip route add NEW/32 via GW dev DEV", or `None` when
/// both leave the same way (then the route is not the problem) or nothing is known of the
/// old one's.
pub fn route_advice(
    new: IpAddr,
    new_route: Option<&Lookup>,
    old_route: Option<&Lookup>,
) -> Option<String> {
    let Some(Lookup::Route(old)) = old_route else {
        return None;
    };
    let same = |egress: &Egress| egress.interface == old.interface && egress.gateway == old.gateway;
    let leaves = match new_route {
        Some(Lookup::Route(egress)) if same(egress) => return None,
        Some(Lookup::Route(egress)) => format!("its route leaves by {egress}"),
        Some(Lookup::NoRoute { reason, .. }) => format!("it has no route ({reason})"),
        None => "its route could not be read".to_owned(),
    };
    let bits = if new.is_ipv4() { 32 } else { 128 };
    let mut add = format!("ip route add {new}/{bits}");
    if let Some(gateway) = old.gateway {
        add.push_str(&format!(" via {gateway}"));
    }
    if let Some(dev) = &old.interface {
        add.push_str(&format!(" dev {dev}"));
    }
    Some(format!(
        "{leaves}, not by {old} as {} does: add the route through the private path \
         (`{add}`, and the same /32 on the VPN gateway or CEN transit router)",
        old.target
    ))
}

/// The local networks `addr` falls into (the documents' 100.0.0.0/8 trap), with the
/// remedy for `role`.
pub fn local_conflicts(addr: IpAddr, role: &str) -> Vec<String> {
    let interfaces = host::interfaces();
    host::conflicts(addr, None, &interfaces, None)
        .into_iter()
        .filter(|conflict| matches!(conflict, Conflict::LocalNetwork { .. }))
        .map(|conflict| format!("{conflict}; {}", host::remedy(role)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{NoRoute, RouteKind};

    fn via(target: &str, dev: &str, gateway: Option<&str>) -> Lookup {
        Lookup::Route(Egress {
            target: target.parse().unwrap(),
            interface: Some(dev.into()),
            source: None,
            gateway: gateway.map(|g| g.parse().unwrap()),
            table: 254,
            kind: RouteKind::Unicast,
        })
    }

    #[test]
    fn a_route_that_leaves_another_way_gets_the_route_to_add() {
        let old = via("100.103.7.181", "vpn0", Some("10.0.1.1"));
        let new = via("100.103.7.190", "eth0", Some("192.0.2.1"));
        let advice =
            route_advice("100.103.7.190".parse().unwrap(), Some(&new), Some(&old)).unwrap();
        assert!(
            advice.contains("ip route add 100.103.7.190/32 via 10.0.1.1 dev vpn0"),
            "{advice}"
        );
        assert!(advice.contains("leaves by dev eth0"), "{advice}");
    }

    #[test]
    fn the_same_way_out_needs_no_route() {
        let old = via("10.94.205.198", "vpn0", Some("10.0.1.1"));
        let new = via("10.94.205.199", "vpn0", Some("10.0.1.1"));
        assert_eq!(
            route_advice("10.94.205.199".parse().unwrap(), Some(&new), Some(&old)),
            None
        );
    }

    #[test]
    fn no_route_at_all_is_named() {
        let old = via("10.94.205.198", "vpn0", None);
        let new = Lookup::NoRoute {
            target: "10.9.9.9".parse().unwrap(),
            reason: NoRoute::Blackhole,
        };
        let advice = route_advice("10.9.9.9".parse().unwrap(), Some(&new), Some(&old)).unwrap();
        assert!(
            advice.contains("no route") && advice.contains("ip route add 10.9.9.9/32 dev vpn0"),
            "{advice}"
        );
    }
}
