//! The network-namespace topology used by the failover tests works: real traffic from the
//! client namespace reaches the targets through the router, each fault does what it says
//! (fast errors, silent timeouts, a route falling back to the "internet") and is undone,
//! the registry stand-in answers like a registry, and every namespace is removed when the
//! topology is dropped, also when a test panics.
//!
//! Needs root (skipped loudly otherwise), `ip`, `nft` and `python3`.

use crate::common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::netns::*;
use common::{addresses, ask_udp, is_root, query, registry_config, wait_until, which};
use hickory_proto::rr::RecordType;

const REGISTRY_NAME: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com";
const AUTH_NAME: &str = "dockerauth-vpc.cn-hangzhou.aliyuncs.com";
const HTTPS_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP connect from the client namespace to `addr:port`: its result and how long it
/// took.
fn connect(
    topology: &Topology,
    addr: Ipv4Addr,
    port: u16,
    timeout: Duration,
) -> (io::Result<()>, Duration) {
    run_in_ns(&topology.client, || {
        let start = Instant::now();
        let result = TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout);
        (result.map(drop), start.elapsed())
    })
}

fn connects(topology: &Topology, addr: Ipv4Addr) -> bool {
    connect(topology, addr, 443, Duration::from_secs(1))
        .0
        .is_ok()
}

/// A listener on the target's address, port 443, inside its namespace. The kernel
/// completes handshakes into the backlog, so nobody needs to accept.
fn listen(topology: &Topology, target: &str) -> TcpListener {
    let target = topology.target(target);
    run_in_ns(&target.ns, || {
        TcpListener::bind((target.addr, 443)).expect("bind the target's listener")
    })
}

fn netns_list() -> Vec<String> {
    let out = Command::new(which("ip").expect("ip"))
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn link_down_fails_fast_and_link_up_restores() {
    let Some(topology) = Topology::build() else {
        return;
    };
    let primary = topology.target("primary").clone();
    let backup = topology.target("backup").clone();
    assert_eq!(primary.addr, Ipv4Addr::new(10, 94, 205, 198));
    assert_eq!(primary.router_if, "to-primary");
    let _primary = listen(&topology, "primary");
    let _backup = listen(&topology, "backup");
    assert!(
        connects(&topology, primary.addr),
        "primary before the fault"
    );
    assert!(connects(&topology, backup.addr), "backup before the fault");

    topology.link_down("primary");
    let (result, took) = connect(&topology, primary.addr, 443, Duration::from_secs(5));
    let err = result.expect_err("connect to primary with its link down");
    assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(
        took < Duration::from_secs(1),
        "failed after {took:?}: {err}"
    );
    eprintln!("link down: connect failed in {took:?}: {err}");
    assert!(connects(&topology, backup.addr), "backup is unaffected");

    topology.link_up("primary");
    wait_until("primary to connect again", || {
        connects(&topology, primary.addr)
    });
}

#[test]
fn blackhole_times_out_silently_and_unblackhole_restores() {
    let Some(topology) = Topology::build() else {
        return;
    };
    let primary = topology.target("primary").addr;
    let backup = topology.target("backup").addr;
    let _primary = listen(&topology, "primary");
    let _backup = listen(&topology, "backup");
    assert!(connects(&topology, primary));

    topology.blackhole("primary");
    let (result, took) = connect(&topology, primary, 443, Duration::from_secs(1));
    let err = result.expect_err("connect to a blackholed target");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(took >= Duration::from_millis(900), "gave up after {took:?}");
    assert!(connects(&topology, backup), "backup is unaffected");

    topology.unblackhole("primary");
    wait_until("primary to connect again", || connects(&topology, primary));
}

#[test]
fn removing_the_specific_route_moves_egress_to_the_public_uplink() {
    let Some(topology) = Topology::build_two_uplinks(DEFAULT_TARGETS) else {
        return;
    };
    assert_eq!(topology.client_ifs, [CLIENT_PRIV_IF, CLIENT_PUB_IF]);
    let primary = topology.target("primary").clone();
    let dst = IpAddr::V4(primary.addr);
    let _listener = listen(&topology, "primary");
    let client = topology.client.clone();

    assert_eq!(topology.egress_source(&client, dst), CLIENT_PRIV_ADDR);
    assert_eq!(topology.egress_interface(&client, dst), CLIENT_PRIV_IF);
    assert!(connects(&topology, primary.addr), "over the private path");
    // Anything else leaves through the public uplink.
    let elsewhere = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    assert_eq!(topology.egress_source(&client, elsewhere), CLIENT_PUB_ADDR);

    topology.remove_client_route("10.94.205.0/24");
    assert_eq!(topology.egress_source(&client, dst), CLIENT_PUB_ADDR);
    assert_eq!(topology.egress_interface(&client, dst), CLIENT_PUB_IF);
    // The "internet" does not route private addresses: silently dropped.
    let (result, _) = connect(&topology, primary.addr, 443, Duration::from_secs(1));
    assert_eq!(
        result.expect_err("connect via the public uplink").kind(),
        io::ErrorKind::TimedOut
    );
    // The backup's specific route is untouched.
    let backup = IpAddr::V4(topology.target("backup").addr);
    assert_eq!(topology.egress_source(&client, backup), CLIENT_PRIV_ADDR);

    topology.add_client_route(&primary.net.to_string(), ROUTER_CLIENT_ADDR);
    assert_eq!(topology.egress_source(&client, dst), CLIENT_PRIV_ADDR);
    wait_until("primary over the private path again", || {
        connects(&topology, primary.addr)
    });
}

#[test]
fn registry_stand_in_answers_401_with_the_realm() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP, AUTH]) else {
        return;
    };
    let primary = topology.target("primary").addr;
    let auth = topology.target("auth");
    assert_eq!(auth.addr, Ipv4Addr::new(100, 103, 7, 181));
    assert_eq!(auth.gateway, Ipv4Addr::new(100, 103, 7, 1));

    let mut registry = topology.start_registry("primary", REGISTRY_NAME, AUTH_NAME);
    let _auth = topology.start_tcp_listener("auth", 443);
    assert!(connects(&topology, auth.addr), "auth over the private path");

    // A connection that never speaks TLS must not stall the server for others.
    let _idle = run_in_ns(&topology.client, || {
        TcpStream::connect((primary, 443)).expect("idle connect")
    });

    let client = topology.client.clone();
    for _ in 0..3 {
        let (status, headers) = topology
            .https_get(&client, primary, REGISTRY_NAME, "/v2/", HTTPS_TIMEOUT)
            .expect("GET /v2/");
        assert_eq!(status, 401);
        let challenge = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, value)| value.as_str());
        assert_eq!(
            challenge,
            Some(
                "Bearer realm=\"https://dockerauth-vpc.cn-hangzhou.aliyuncs.com/auth\",\
                 service=\"registry.aliyuncs.com:cn-hangzhou:26842\""
            )
        );
    }
    // Many at once.
    std::thread::scope(|scope| {
        let requests: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    topology.https_get(&client, primary, REGISTRY_NAME, "/v2/", HTTPS_TIMEOUT)
                })
            })
            .collect();
        for request in requests {
            let (status, _) = request.join().unwrap().expect("concurrent GET /v2/");
            assert_eq!(status, 401);
        }
    });
    let (status, _) = topology
        .https_get(
            &client,
            primary,
            REGISTRY_NAME,
            "/v2/library/busybox/manifests/1",
            HTTPS_TIMEOUT,
        )
        .expect("GET another path");
    assert_eq!(status, 404);

    // The certificate is for the registry's name only, from the test CA.
    let err = topology
        .https_get(&client, primary, "other.example", "/v2/", HTTPS_TIMEOUT)
        .expect_err("a name the certificate does not cover");
    assert!(err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");

    registry.wait_for_line("its request log", |line| {
        line.contains("\"GET /v2/ HTTP/1.1\" 401").then_some(())
    });
    // Blackholed, the registry is unreachable from the client.
    topology.blackhole("primary");
    let err = topology
        .https_get(
            &client,
            primary,
            REGISTRY_NAME,
            "/v2/",
            Duration::from_secs(1),
        )
        .expect_err("GET /v2/ through a blackhole");
    assert!(err.contains("timed out"), "{err}");
    topology.unblackhole("primary");
}

#[test]
fn issued_certificates_chain_to_the_ca() {
    let Some(topology) = Topology::build_with(&[PRIMARY]) else {
        return;
    };
    let (cert, key) = topology.issue_cert(&[REGISTRY_NAME, "10.94.205.198"]);
    for path in [&cert, &key, &topology.ca_cert] {
        let text = std::fs::read_to_string(path).expect("read PEM");
        assert!(text.starts_with("-----BEGIN "), "{}", path.display());
    }
    assert_ne!(
        topology.issue_cert(&[REGISTRY_NAME]).0,
        cert,
        "each certificate gets its own files"
    );
}

#[test]
fn namespaces_and_processes_are_gone_after_drop() {
    let Some(topology) = Topology::build() else {
        return;
    };
    let names = topology.namespaces().to_vec();
    assert_eq!(names.len(), 4, "{names:?}");
    let listed = netns_list();
    for name in &names {
        assert!(listed.contains(name), "{name} in {listed:?}");
    }
    // A process the test forgets about is still killed with the topology.
    let mut sleep = Command::new("sleep");
    sleep.arg("600");
    let process = spawn_in(&topology.target("backup").ns, "sleep", &sleep);
    let pid = process.pid();
    std::mem::forget(process);
    let out = ip_netns_exec(
        &topology.client,
        &["ip", "-o", "addr", "show", "dev", "eth-priv"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.0.1.2/24"));

    drop(topology);
    let listed = netns_list();
    for name in &names {
        assert!(!listed.contains(name), "{name} still in {listed:?}");
    }
    wait_until("the forgotten process to die", || {
        // Gone, or a zombie nobody reaps.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    });
}

#[test]
fn namespaces_are_gone_after_a_panicking_test_body() {
    if !is_root() {
        assert!(Topology::build().is_none());
        return;
    }
    let names = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let topology = Topology::build_two_uplinks(&[PRIMARY, AUTH]).expect("root");
        *names.lock().unwrap() = topology.namespaces().to_vec();
        panic!("deliberate panic inside a test body (expected)");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 5, "{names:?}");
    let listed = netns_list();
    for name in &names {
        assert!(!listed.contains(name), "{name} still in {listed:?}");
    }
}

#[test]
fn pathdns_runs_inside_the_client_namespace() {
    let Some(topology) = Topology::build() else {
        return;
    };
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    let agent = topology.start_agent(&registry_config(upstream, ""));
    let response = run_in_ns(&topology.client, || {
        ask_udp(
            agent.addr,
            &query(
                "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.",
                RecordType::A,
                false,
            ),
        )
    });
    assert_eq!(addresses(&response), ["10.94.205.198"]);
    // Its loopback is the client namespace's, not the host's.
    let own = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    own.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let query = query(
        "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.",
        RecordType::A,
        false,
    );
    own.send_to(&query.to_vec().expect("encode"), agent.addr)
        .expect("send");
    assert!(
        own.recv_from(&mut [0u8; 512]).is_err(),
        "answered on the host's loopback"
    );
}
