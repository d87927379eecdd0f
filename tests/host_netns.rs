//! Host facts from the kernel, inside a real network namespace: the route lookup answers
//! what `ip route get` answers (blackhole/unreachable/prohibit routes, policy rules and
//! tables, `src` hints, an interface without an address of its own), `pathdns doctor` gives
//! the same verdict for a blackhole route, and `pathdns check`
//! reports a policy route that takes a target off the private interface, which the main
//! table alone does not show. Runs as root (CI); skipped loudly otherwise.

use crate::common;

use std::net::IpAddr;
use std::process::Output;

use common::netns::{self, Topology, CLIENT_PUB_IF, PRIMARY, PUBLIC_GW_ADDR};
use pathdns::host::{self, Lookup, NoRoute, RouteKind};

const TARGET: &str = "10.94.205.198";

fn ip(ns: &str, args: &[&str]) -> Output {
    let mut command = vec!["ip"];
    command.extend_from_slice(args);
    let output = netns::ip_netns_exec(ns, &command);
    assert!(output.status.success(), "ip {args:?}: {output:?}");
    output
}

/// The kernel's verdict for `target`, asked from inside namespace `ns`.
fn lookup(ns: &str, target: &str) -> Lookup {
    let target: IpAddr = target.parse().expect("address");
    netns::run_in_ns(ns, || host::lookup(target)).expect("the kernel answers")
}

/// `ip route get` in the namespace: the reference the lookup must agree with.
fn ip_route_get(ns: &str, target: &str) -> String {
    let output = netns::ip_netns_exec(ns, &["ip", "route", "get", target]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn blackhole_unreachable_and_prohibit_routes_are_no_route() {
    let Some(topology) = Topology::build_two_uplinks(&[PRIMARY]) else {
        return;
    };
    let ns = &topology.client;
    for (kind, expected) in [
        ("blackhole", NoRoute::Blackhole),
        ("unreachable", NoRoute::Unreachable),
        ("prohibit", NoRoute::Prohibit),
    ] {
        ip(ns, &["route", "replace", kind, &format!("{TARGET}/32")]);
        eprintln!("{kind}: ip route get says {:?}", ip_route_get(ns, TARGET));
        match lookup(ns, TARGET) {
            Lookup::NoRoute { reason, .. } => assert_eq!(reason, expected, "{kind}"),
            other => panic!("{kind}: {other:?}"),
        }
    }
    // doctor's route check asks the same question (a blackhole is left in place).
    ip(
        ns,
        &["route", "replace", "blackhole", &format!("{TARGET}/32")],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[name]]\nname = \"reg.example\"\n\
         targets = [\"{TARGET}\"]\ninterface = \"eth-priv\"\n"
    );
    std::fs::write(&path, config).expect("write config");
    let pathdns = env!("CARGO_BIN_EXE_pathdns");
    let config_path = path.to_str().expect("utf-8");
    let output = netns::ip_netns_exec(ns, &[pathdns, "doctor", "--config", config_path]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let route = stdout
        .lines()
        .find(|line| line.contains(" route: "))
        .unwrap_or_else(|| panic!("no route line:\n{stdout}"));
    assert!(route.starts_with("FAIL"), "{route}");
    assert!(
        route.contains(&format!("no route to {TARGET}: a blackhole route drops it")),
        "{route}"
    );
    ip(ns, &["route", "del", &format!("{TARGET}/32")]);
    let Lookup::Route(egress) = lookup(ns, TARGET) else {
        panic!("no route once the {TARGET}/32 route is gone");
    };
    assert_eq!(egress.interface.as_deref(), Some("eth-priv"));
}

#[test]
fn a_policy_rule_and_its_table_are_followed() {
    let Some(topology) = Topology::build_two_uplinks(&[PRIMARY]) else {
        return;
    };
    let ns = &topology.client;
    let gateway = PUBLIC_GW_ADDR.to_string();
    ip(
        ns,
        &[
            "route",
            "add",
            &format!("{TARGET}/32"),
            "via",
            &gateway,
            "dev",
            CLIENT_PUB_IF,
            "table",
            "100",
        ],
    );
    ip(
        ns,
        &[
            "rule",
            "add",
            "to",
            &format!("{TARGET}/32"),
            "lookup",
            "100",
            "pref",
            "100",
        ],
    );
    eprintln!("ip route get says {:?}", ip_route_get(ns, TARGET));
    let Lookup::Route(egress) = lookup(ns, TARGET) else {
        panic!("no route");
    };
    assert_eq!(egress.interface.as_deref(), Some(CLIENT_PUB_IF));
    assert_eq!(egress.table, 100);
    assert_eq!(egress.gateway, Some(IpAddr::V4(PUBLIC_GW_ADDR)));
    assert_eq!(egress.kind, RouteKind::Unicast);
    // The main table still sends it via eth-priv: only the kernel's own answer sees this.
    let routes = netns::run_in_ns(ns, host::routes);
    let best = host::best_route(&routes, TARGET.parse().expect("address")).expect("main");
    assert_eq!(best.interface, "eth-priv");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    let config = format!(
        "[[name]]\nname = \"reg.example\"\ntargets = [\"{TARGET}\"]\ninterface = \"eth-priv\"\n"
    );
    std::fs::write(&path, config).expect("write config");
    let pathdns = env!("CARGO_BIN_EXE_pathdns");
    let output = netns::ip_netns_exec(
        ns,
        &[pathdns, "check", "--config", path.to_str().expect("utf-8")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let conflict = stdout
        .lines()
        .find(|line| line.starts_with("CONFLICT"))
        .unwrap_or_else(|| panic!("no conflict reported:\n{stdout}"));
    assert!(
        conflict.contains(&format!("{TARGET} is routed via {CLIENT_PUB_IF} (table 100), not via the private interface eth-priv")),
        "{conflict}"
    );
}

#[test]
fn a_src_hint_and_an_addressless_interface_are_reported() {
    let Some(topology) = Topology::build_two_uplinks(&[PRIMARY]) else {
        return;
    };
    let ns = &topology.client;
    ip(ns, &["addr", "add", "10.0.1.9/24", "dev", "eth-priv"]);
    ip(
        ns,
        &[
            "route",
            "replace",
            "10.94.205.0/24",
            "via",
            "10.0.1.1",
            "dev",
            "eth-priv",
            "src",
            "10.0.1.9",
        ],
    );
    eprintln!("src hint: ip route get says {:?}", ip_route_get(ns, TARGET));
    let Lookup::Route(egress) = lookup(ns, TARGET) else {
        panic!("no route");
    };
    assert_eq!(egress.source, Some("10.0.1.9".parse().expect("address")));
    assert_eq!(egress.interface.as_deref(), Some("eth-priv"));

    // A tunnel-like device with no address: its traffic leaves with another interface's
    // source address, so the interface cannot be guessed from the source.
    // (A veth pair: the dummy module may not be loadable where the tests run.)
    ip(
        ns,
        &[
            "link", "add", "tun-x", "type", "veth", "peer", "name", "tun-y",
        ],
    );
    ip(ns, &["link", "set", "tun-y", "up"]);
    ip(ns, &["link", "set", "tun-x", "up"]);
    ip(ns, &["route", "add", "10.96.0.0/24", "dev", "tun-x"]);
    eprintln!(
        "tunnel: ip route get says {:?}",
        ip_route_get(ns, "10.96.0.7")
    );
    let Lookup::Route(egress) = lookup(ns, "10.96.0.7") else {
        panic!("no route");
    };
    assert_eq!(egress.interface.as_deref(), Some("tun-x"));
    let interfaces = netns::run_in_ns(ns, host::interfaces);
    let tunnel = interfaces
        .iter()
        .find(|i| i.name == "tun-x")
        .expect("tun-x listed");
    // Only its IPv6 link-local address: no IPv4 address of its own.
    assert!(
        tunnel.up && tunnel.networks.iter().all(|net| net.addr().is_ipv6()),
        "{tunnel:?}"
    );
}
