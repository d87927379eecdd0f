//! Issue 16, the node-local address without Docker: `pathdns node-local up` puts
//! 169.254.20.53/32 on `lo` of a "host" namespace; a "container" namespace behind a veth
//! (172.17.0.2/16 with its default route through the host, as on Docker's default bridge)
//! reaches pathdns there through the host's routing, for owned and forwarded names. Also the
//! bad input: no CAP_NET_ADMIN, the address held by another interface, and `pathdns run`
//! on a node-local address that is not there yet (exit 69, the fix named). Docker itself
//! and a pod's forwarder are in `container_host`.
//!
//! Root only (namespaces); skipped loudly otherwise.

use crate::common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use common::netns::{self, Pair};
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const NODE_LOCAL: &str = "169.254.20.53";
const OWNED: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
const OWNED_ADDR: &str = "10.94.205.198";

/// The "host" (server) and a "container" (client) on 172.17.0.0/16, routed through it.
fn host_and_container() -> Option<Pair> {
    let pair = Pair::build(&["172.17.0.1/16"], &["172.17.0.2/16"])?;
    netns::ip_netns_exec(
        &pair.client,
        &["ip", "route", "add", "default", "via", "172.17.0.1"],
    );
    Some(pair)
}

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nnode_local = \"{NODE_LOCAL}\"\n{extra}\n\
         [upstream]\nservers = [\"{upstream}\"]\n\n\
         [[registry]]\ninstance = \"xxxxxx\"\nregion = \"cn-hangzhou\"\n\
         registry = [\"{OWNED_ADDR}\"]\noss = [\"100.118.28.43\"]\nprobes = []\n"
    )
}

/// `pathdns node-local ACTION --config FILE` in `ns`, optionally without capabilities.
fn node_local(ns: &str, action: &str, config: &std::path::Path, unprivileged: bool) -> Output {
    let binary = env!("CARGO_BIN_EXE_pathdns");
    let config = config.to_string_lossy();
    let mut args = vec!["ip", "netns", "exec", ns];
    if unprivileged {
        args.extend(["setpriv", "--inh-caps=-all", "--bounding-set=-all"]);
    }
    args.extend([binary, "node-local", action, "--config", &config]);
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run pathdns node-local")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn lo_addresses(ns: &str) -> String {
    let out = netns::ip_netns_exec(ns, &["ip", "-4", "-o", "address", "show", "dev", "lo"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One query from the container namespace to the node-local address.
fn ask_from_container(ns: &str, name: &str) -> Option<Message> {
    let server: SocketAddr = format!("{NODE_LOCAL}:53").parse().expect("addr");
    let bytes = query(name, RecordType::A, false).to_vec().expect("encode");
    let raw = netns::run_in_ns(ns, || {
        exchange_raw_udp_from("0.0.0.0:0", server, &bytes, Duration::from_secs(3))
    })?;
    Message::from_vec(&raw).ok()
}

#[test]
fn a_container_behind_a_bridge_reaches_pathdns_on_the_node_local_address() {
    let Some(pair) = host_and_container() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    let upstream = "127.0.0.1:5399".parse().expect("addr");
    std::fs::write(&path, config(upstream, "")).expect("write config");
    let up = node_local(&pair.server, "up", &path, false);
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("added"), "{}", text(&up));
    let again = node_local(&pair.server, "up", &path, false);
    assert!(text(&again).contains("already there"), "{}", text(&again));
    let lo = lo_addresses(&pair.server);
    assert!(
        lo.contains("169.254.20.53/32") && lo.contains("lo:pathdns"),
        "{lo}"
    );
    let status = node_local(&pair.server, "status", &path, false);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));

    // A forwarded name is answered by the upstream in the host namespace.
    let upstream = netns::run_in_ns(&pair.server, || {
        Dnsmasq::start(&[("forwarded.example", "192.0.2.77")])
    });
    std::fs::write(&path, config(upstream.addr, "")).expect("write config");
    let agent = pair.start_agent(&std::fs::read_to_string(&path).expect("read config"));
    let owned = ask_from_container(&pair.client, OWNED).expect("an answer to the owned name");
    assert_eq!(addresses(&owned), [OWNED_ADDR]);
    assert!(owned.metadata.authoritative, "{owned}");
    let forwarded = ask_from_container(&pair.client, "forwarded.example.")
        .expect("an answer to the forwarded name");
    assert_eq!(addresses(&forwarded), ["192.0.2.77"]);
    eprintln!(
        "from the container (172.17.0.2): {OWNED} -> {:?}, forwarded.example -> {:?}",
        addresses(&owned),
        addresses(&forwarded)
    );
    drop(agent);

    // The address stays when the agent stops (a restart has it at once); `down` removes it.
    assert!(lo_addresses(&pair.server).contains("lo:pathdns"));
    let down = node_local(&pair.server, "down", &path, false);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!lo_addresses(&pair.server).contains(NODE_LOCAL));
    let status = node_local(&pair.server, "status", &path, false);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
}

#[test]
fn setting_up_the_node_local_address_fails_clearly_and_changes_nothing() {
    let Some(pair) = host_and_container() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    std::fs::write(&path, config("127.0.0.1:5399".parse().expect("addr"), "")).expect("write");

    // Without CAP_NET_ADMIN: 69, the capability and the fix named, nothing added.
    let denied = node_local(&pair.server, "up", &path, true);
    assert_eq!(denied.status.code(), Some(69), "{}", text(&denied));
    assert!(text(&denied).contains("CAP_NET_ADMIN"), "{}", text(&denied));
    assert!(text(&denied).contains("ip address add 169.254.20.53/32 dev lo"));
    assert!(!lo_addresses(&pair.server).contains(NODE_LOCAL));

    // `pathdns run` before the address exists: 69, and it says how to add it.
    let binary = env!("CARGO_BIN_EXE_pathdns");
    let run = netns::ip_netns_exec(
        &pair.server,
        &[binary, "run", "--config", &path.to_string_lossy()],
    );
    assert_eq!(run.status.code(), Some(69), "{}", text(&run));
    assert!(
        text(&run).contains("pathdns node-local up"),
        "{}",
        text(&run)
    );

    // Someone else's address: 69, the interface named, their address untouched.
    netns::ip_netns_exec(
        &pair.server,
        &[
            "ip",
            "address",
            "add",
            "169.254.20.53/32",
            "dev",
            netns::TARGET_IF,
        ],
    );
    let taken = node_local(&pair.server, "up", &path, false);
    assert_eq!(taken.status.code(), Some(69), "{}", text(&taken));
    assert!(
        text(&taken).contains(&format!("already an address of {}", netns::TARGET_IF)),
        "{}",
        text(&taken)
    );
    let down = node_local(&pair.server, "down", &path, false);
    assert!(down.status.success(), "{}", text(&down));
    let out = netns::ip_netns_exec(&pair.server, &["ip", "-4", "-o", "address", "show"]);
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        all.contains("169.254.20.53/32"),
        "down removed another's address: {all}"
    );
    assert!(!lo_addresses(&pair.server).contains(NODE_LOCAL));
}
