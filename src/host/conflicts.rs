//! Conflicts between target addresses and this host's networks: the documents'
//! 100.0.0.0/8 trap, and a target the kernel routes elsewhere than the private interface.
//!
//! Owns: [`conflicts`] (pure, from interfaces and the kernel's verdict), [`findings`] for
//! every owned name, and the documents' remedies. Must not: send traffic or decide health.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::interfaces::{self, Interface};
use super::routes::{self, Lookup, NoRoute, MAIN_TABLE};

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
    /// The kernel's route for the target leaves by another interface than the private one.
    RouteElsewhere {
        target: IpAddr,
        interface: String,
        table: u32,
        expected: String,
    },
    /// The kernel has no way out for the target at all (blackhole, unreachable, ...).
    NoRoute {
        target: IpAddr,
        reason: NoRoute,
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
                interface,
                table,
                expected,
            } => {
                write!(f, "{target} is routed via {interface}")?;
                if *table != MAIN_TABLE {
                    write!(f, " (table {table})")?;
                }
                write!(f, ", not via the private interface {expected}")
            }
            Conflict::NoRoute {
                target,
                reason,
                expected,
            } => write!(
                f,
                "{target} has no route ({reason}), not via the private interface {expected}"
            ),
        }
    }
}

/// Conflicts for `target`; `expected` is the private interface, when the config names it;
/// `lookup` is the kernel's verdict for the target (`None` when it could not be asked).
pub fn conflicts(
    target: IpAddr,
    expected: Option<&str>,
    interfaces: &[Interface],
    lookup: Option<&Lookup>,
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
    let Some(expected) = expected else {
        return found;
    };
    match lookup {
        Some(Lookup::Route(egress)) if egress.interface.as_deref() != Some(expected) => {
            found.push(Conflict::RouteElsewhere {
                target,
                interface: egress.interface.clone().unwrap_or_else(|| "?".into()),
                table: egress.table,
                expected: expected.to_owned(),
            })
        }
        Some(Lookup::NoRoute { reason, .. }) => found.push(Conflict::NoRoute {
            target,
            reason: reason.clone(),
            expected: expected.to_owned(),
        }),
        _ => {}
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
/// A route lookup that cannot be asked is recorded as a host-read failure (and so shown
/// in `/status`), and the name is checked against the interfaces only.
pub fn findings<'a>(
    names: impl IntoIterator<Item = (String, String, &'a [IpAddr], Option<&'a str>)>,
) -> Vec<Finding> {
    let interfaces = interfaces::interfaces();
    let mut found = Vec::new();
    for (name, role, addrs, expected) in names {
        for addr in addrs {
            let lookup = routes::lookup(*addr).ok();
            for conflict in conflicts(*addr, expected, &interfaces, lookup.as_ref()) {
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
    use crate::host::routes::{best_route, Egress, Route, RouteKind};

    fn main_route(destination: &str, interface: &str) -> Route {
        Route {
            destination: destination.parse().unwrap(),
            gateway: None,
            interface: interface.into(),
            metric: 0,
            table: MAIN_TABLE,
            kind: RouteKind::Unicast,
        }
    }

    /// The kernel's verdict as the main table of the old fixture gives it.
    fn lookup(routes: &[Route], target: IpAddr) -> Lookup {
        let route = best_route(routes, target).unwrap();
        Lookup::Route(Egress {
            target,
            interface: Some(route.interface.clone()),
            source: None,
            gateway: route.gateway,
            table: route.table,
            kind: route.kind,
        })
    }

    #[test]
    fn the_100_x_trap_is_a_conflict() {
        let interfaces = vec![Interface {
            name: "eth0".into(),
            networks: vec!["100.64.3.4/10".parse().unwrap()],
            up: true,
        }];
        let routes = vec![
            main_route("0.0.0.0/0", "eth0"),
            main_route("100.0.0.0/8", "eth1"),
            main_route("100.64.0.0/10", "eth0"),
        ];
        let inside: IpAddr = "100.103.7.181".parse().unwrap();
        let verdict = lookup(&routes, inside);
        let found = conflicts(inside, Some("eth1"), &interfaces, Some(&verdict));
        assert!(
            matches!(found[0], Conflict::LocalNetwork { .. }),
            "{found:?}"
        );
        assert!(found[0].to_string().contains("100.64.0.0/10"));
        assert!(matches!(found[1], Conflict::RouteElsewhere { .. }));
        let outside: IpAddr = "100.10.7.181".parse().unwrap();
        let verdict = lookup(&routes, outside);
        assert!(conflicts(outside, Some("eth1"), &interfaces, Some(&verdict)).is_empty());
    }

    #[test]
    fn no_route_is_a_conflict_only_for_a_private_interface() {
        let target: IpAddr = "100.103.7.181".parse().unwrap();
        let verdict = Lookup::NoRoute {
            target,
            reason: NoRoute::Blackhole,
        };
        let found = conflicts(target, Some("wg0"), &[], Some(&verdict));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "100.103.7.181 has no route (a blackhole route drops it), not via the private \
             interface wg0"
        );
        assert!(conflicts(target, None, &[], Some(&verdict)).is_empty());
    }

    #[test]
    fn a_policy_table_is_named() {
        let target: IpAddr = "100.103.7.181".parse().unwrap();
        let verdict = Lookup::Route(Egress {
            target,
            interface: Some("eth0".into()),
            source: None,
            gateway: None,
            table: 100,
            kind: RouteKind::Unicast,
        });
        let found = conflicts(target, Some("wg0"), &[], Some(&verdict));
        assert_eq!(
            found[0].to_string(),
            "100.103.7.181 is routed via eth0 (table 100), not via the private interface wg0"
        );
    }
}
