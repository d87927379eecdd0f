//! Doctor's step 2, route: the interface and source address the kernel picks for a target,
//! against the configured `interface`.
//!
//! Owns: the `route` check and how a route is described. Must not: change a route; read
//! anything but the host room's facts.

use super::target::TargetPlan;
use super::{remedy, Check, Verdict};
use crate::host::{self, Lookup, Route};

pub(super) fn route_check(plan: &TargetPlan) -> Check {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let addr = plan.addr;
    let expected = plan.name.health.interface.as_deref();
    let fail = |detail, remedy| Check::fail(display, target, "route", detail, remedy);
    if let Some(failed) = expected.and_then(|expected| interface_failure(plan, expected)) {
        return failed;
    }
    let egress = match host::lookup(addr) {
        Ok(Lookup::Route(egress)) => egress,
        Ok(Lookup::NoRoute { reason, .. }) => {
            return fail(
                format!("no route to {addr}: {reason}"),
                remedy::add_route(addr, expected, &plan.routes),
            )
        }
        Err(err) => {
            return fail(
                err.to_string(),
                "run doctor where it may open a netlink socket (AF_NETLINK)".into(),
            )
        }
    };
    let via = egress
        .interface
        .as_deref()
        .unwrap_or("an unknown interface");
    let detail = format!(
        "leaves via {via}{} ({})",
        source_text(&egress),
        route_text(plan, &egress)
    );
    let ok = |detail| Check::new(Verdict::Ok, display, target, "route", detail);
    match expected {
        Some(expected) if egress.interface.as_deref() != Some(expected) => fail(
            format!("{detail}, not via the private interface {expected}"),
            remedy::add_route(addr, Some(expected), &plan.routes),
        ),
        Some(_) => ok(format!("{detail}, the configured interface")),
        None => ok(detail),
    }
}

/// The configured private interface is missing or down.
fn interface_failure(plan: &TargetPlan, expected: &str) -> Option<Check> {
    let (detail, remedy) = match plan.interfaces.iter().find(|iface| iface.name == expected) {
        None => (
            format!("the private interface {expected} does not exist on this host"),
            format!(
                "fix `interface` in the config, or bring up the tunnel that creates {expected}"
            ),
        ),
        Some(iface) if !iface.up => (
            format!("the private interface {expected} is down"),
            format!(
                "bring {expected} up (ip link set {expected} up), or restore the VPN or Express \
                 Connect link behind it"
            ),
        ),
        Some(_) => return None,
    };
    Some(Check::fail(
        &plan.display,
        &plan.target,
        "route",
        detail,
        remedy,
    ))
}

fn source_text(egress: &host::Egress) -> String {
    egress
        .source
        .map(|source| format!(" from {source}"))
        .unwrap_or_default()
}
/// Which route the kernel took: the main table's best route when it is that one, else
/// the policy table it came from.
fn route_text(plan: &TargetPlan, egress: &host::Egress) -> String {
    if egress.kind == host::RouteKind::Local {
        return "a local address".to_owned();
    }
    let best = host::best_route(&plan.routes, egress.target);
    match best {
        Some(route)
            if egress.table == host::routes::MAIN_TABLE
                && egress.interface.as_deref() == Some(route.interface.as_str()) =>
        {
            describe_route(route)
        }
        _ if egress.table != host::routes::MAIN_TABLE => {
            let via = egress
                .gateway
                .map(|gw| format!(" via {gw}"))
                .unwrap_or_default();
            format!("policy routing: table {}{via}", egress.table)
        }
        Some(route) => format!(
            "policy routing: the main table's best route is {}",
            describe_route(route)
        ),
        None => "no route in the main table: policy routing".into(),
    }
}

fn describe_route(route: &Route) -> String {
    let what = if route.destination.prefix_len() == 0 {
        "default route".to_owned()
    } else {
        format!("route {}", route.destination)
    };
    match route.gateway {
        Some(gateway) => format!("{what} via {gateway} dev {}", route.interface),
        None => format!("{what} dev {}", route.interface),
    }
}
