//! This host's TCP connections to a target, listed, judged and ended over sock_diag
//! (`pathdns::host::tcp_sockets`), with a real client program in a real network namespace.
//!
//! Two namespaces joined by a veth ([`Pair`]): `server` has the target 10.77.0.1 and an
//! unrelated address 10.77.0.2, with a flow port (sends 1 KiB every 100 ms), a stall port
//! (reads and discards) and a SYN port (dropped by nftables from the start); `client`
//! runs tests/support/sock_diag_client.py, another process, which holds (a) a transfer,
//! (b) a connection that is blackholed and then written to, (c) a connect whose SYN is
//! dropped, and (u) a connection like (b) to the unrelated address. This test process
//! also holds one stalled connection of its own to the target, which must never be
//! listed. The library runs in-process on a thread that entered the client namespace.
//! Runs as root (CI); skipped loudly otherwise.

use crate::common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::netns::{self, Pair};
use common::{wait_for, Process};
use pathdns::host::tcp_sockets::{
    connections_to, destroy, owner, stall, SockDiagError, StallReason, TcpConnection, TcpState,
};

const TARGET: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const FLOW_PORT: u16 = 8001;
const STALL_PORT: u16 = 8002;
const SYN_PORT: u16 = 8003;
const PORTS: &[u16] = &[FLOW_PORT, STALL_PORT, SYN_PORT];
/// The stall threshold the test judges with: ten times the flow's send interval.
const THRESHOLD: Duration = Duration::from_secs(1);

/// The client's local ports, from its `ports a=.. b=.. c=.. u=..` line.
#[derive(Debug, Clone, Copy)]
struct ClientPorts {
    a: u16,
    b: u16,
    c: u16,
    u: u16,
}

fn parse_ports(line: &str) -> Option<ClientPorts> {
    let rest = line.strip_prefix("ports ")?;
    let port = |name: &str| -> Option<u16> {
        rest.split_whitespace()
            .find_map(|field| field.strip_prefix(&format!("{name}=")))?
            .parse()
            .ok()
    };
    Some(ClientPorts {
        a: port("a")?,
        b: port("b")?,
        c: port("c")?,
        u: port("u")?,
    })
}

/// The servers in the server namespace, stopped on drop.
struct Servers {
    stop: Arc<AtomicBool>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start_servers(ns: &str) -> Servers {
    let (flow, stall_listener) = netns::run_in_ns(ns, || {
        let bind = |port| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind");
        (bind(FLOW_PORT), bind(STALL_PORT))
    });
    let stop = Arc::new(AtomicBool::new(false));
    serve(flow, stop.clone(), send_slowly);
    serve(stall_listener, stop.clone(), discard);
    Servers { stop }
}

/// Accepts on `listener` until `stop`, each connection on its own thread.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>, handle: fn(TcpStream, &AtomicBool)) {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let stop = stop.clone();
                    stream.set_nonblocking(false).expect("blocking stream");
                    std::thread::spawn(move || handle(stream, &stop));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
}

/// 1 KiB every 100 ms until the client goes away or the test ends.
fn send_slowly(mut stream: TcpStream, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) && stream.write_all(&[b'y'; 1024]).is_ok() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn discard(mut stream: TcpStream, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut buffer = [0; 65536];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

fn firewall(ns: &str) {
    netns::nft(
        ns,
        &format!(
            "table inet pd_sockdiag {{\n\
             \tchain input {{ type filter hook input priority filter; policy accept;\n\
             \t\ttcp dport {SYN_PORT} drop\n\t}}\n\
             \tchain output {{ type filter hook output priority filter; policy accept; }}\n\
             }}\n"
        ),
    );
}

/// Blackholes the stall port on every address of the server (so `u` stalls too).
fn blackhole_stall_port(ns: &str) {
    netns::nft(
        ns,
        &format!(
            "add rule inet pd_sockdiag input tcp dport {STALL_PORT} drop\n\
             add rule inet pd_sockdiag output tcp sport {STALL_PORT} drop\n"
        ),
    );
}

fn start_client(ns: &str) -> Process {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sock_diag_client.py");
    let python = common::which("python3").expect("python3 (tests/run.sh installs it)");
    let mut command = Command::new(python);
    command.arg(script).args([
        TARGET.to_string(),
        OTHER.to_string(),
        FLOW_PORT.to_string(),
        STALL_PORT.to_string(),
        SYN_PORT.to_string(),
    ]);
    netns::spawn_in(ns, "sock_diag_client.py", &command)
}

/// The latest "received a N" of the client.
fn received(client: &Process) -> u64 {
    client
        .lines()
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("received a ")?.parse().ok())
        .unwrap_or(0)
}

fn list(ns: &str, addr: Ipv4Addr, ports: &[u16]) -> Vec<TcpConnection> {
    netns::run_in_ns(ns, || connections_to(IpAddr::V4(addr), ports)).expect("inet_diag dump")
}

fn by_port(conns: &[TcpConnection], port: u16) -> Option<&TcpConnection> {
    conns.iter().find(|conn| conn.local.port() == port)
}

fn describe(name: &str, conn: &TcpConnection) {
    eprintln!(
        "sock_diag: {name}: {} -> {} {} inode {} uid {} stall(1s) {:?} info {:?}",
        conn.local,
        conn.remote,
        conn.state,
        conn.inode,
        conn.uid,
        stall(conn, THRESHOLD),
        conn.info
    );
}

/// Waits until (b) and (c) are judged stalled, checking on every look that (a) is not,
/// that neither the unrelated connection nor this process's own one is listed; then
/// keeps watching (a) for two thresholds more.
fn wait_for_stalls(ns: &str, ports: ClientPorts, own: u16) -> (TcpConnection, TcpConnection) {
    let check = |conns: &[TcpConnection]| {
        let a = by_port(conns, ports.a).expect("the transfer is listed");
        assert_eq!(a.state, TcpState::Established);
        assert_eq!(
            stall(a, THRESHOLD),
            None,
            "a working transfer judged stalled: {a:?}"
        );
        assert!(
            by_port(conns, ports.u).is_none(),
            "unrelated address listed"
        );
        assert!(
            by_port(conns, own).is_none(),
            "this process's own socket listed"
        );
    };
    let started = Instant::now();
    let (b, c) = wait_for("(b) and (c) judged stalled", || {
        let conns = list(ns, TARGET, PORTS);
        check(&conns);
        let b = by_port(&conns, ports.b)?.clone();
        let c = by_port(&conns, ports.c)?.clone();
        (stall(&b, THRESHOLD).is_some() && stall(&c, THRESHOLD).is_some()).then_some((b, c))
    });
    eprintln!(
        "sock_diag: (b) judged stalled {:?} after the write",
        started.elapsed()
    );
    let watch = Instant::now();
    while watch.elapsed() < 2 * THRESHOLD {
        check(&list(ns, TARGET, PORTS));
        std::thread::sleep(Duration::from_millis(50));
    }
    (b, c)
}

/// Ends `conn` and returns how long until the client reported `expected`.
fn destroy_and_time(
    client: &mut Process,
    conn: &TcpConnection,
    ns: &str,
    expected: &str,
) -> Duration {
    let start = Instant::now();
    netns::run_in_ns(ns, || destroy(conn)).expect("SOCK_DESTROY");
    client.wait_for_line(expected, |line| (line == expected).then_some(()));
    start.elapsed()
}

#[test]
fn stalled_connections_are_found_judged_and_ended_and_working_ones_are_not() {
    let Some(pair) = Pair::build(&["10.77.0.1/24", "10.77.0.2/24"], &["10.77.0.10/24"]) else {
        return;
    };
    firewall(&pair.server);
    let _servers = start_servers(&pair.server);
    let mut client = start_client(&pair.client);
    let ports = client.wait_for_line("its ports", parse_ports);
    wait_for("the transfer to flow", || {
        (received(&client) > 0).then_some(())
    });
    // This process's own connection to the target's stall port (as a probe would hold).
    let mut own = netns::run_in_ns(&pair.client, || {
        TcpStream::connect(SocketAddr::from((TARGET, STALL_PORT))).expect("own connection")
    });
    let own_port = own.local_addr().expect("own local addr").port();

    blackhole_stall_port(&pair.server);
    client.signal("USR1");
    client.wait_for_line("the write on b", |line| {
        line.starts_with("written b").then_some(())
    });
    own.set_nonblocking(true).expect("nonblocking own socket");
    let _ = own.write(&[b'z'; 65536]);

    let unrelated = list(&pair.client, OTHER, &[STALL_PORT]);
    assert!(
        by_port(&unrelated, ports.u).is_some(),
        "the unrelated connection exists: {unrelated:?}"
    );
    let (b, c) = wait_for_stalls(&pair.client, ports, own_port);
    let conns = list(&pair.client, TARGET, PORTS);
    let a = by_port(&conns, ports.a).expect("a").clone();
    for (name, conn) in [("a", &a), ("b", &b), ("c", &c)] {
        describe(name, conn);
    }
    check_figures(&a, &b, &c, &client);

    let before = received(&client);
    let b_took = destroy_and_time(&mut client, &b, &pair.client, "error b ECONNABORTED");
    let c_took = destroy_and_time(&mut client, &c, &pair.client, "error c ECONNABORTED");
    eprintln!("sock_diag: destroy -> client error: (b) {b_took:?}, (c) {c_took:?}");
    wait_for("the transfer to go on after the destroys", || {
        (received(&client) >= before + 5 * 1024).then_some(())
    });
    check_after(&pair.client, &client, ports, &b);
}

/// The kernel's figures: (b) retransmits unacknowledged data, (c) is a SYN, (a) just
/// received; the owner of (b) is the client program.
fn check_figures(a: &TcpConnection, b: &TcpConnection, c: &TcpConnection, client: &Process) {
    assert_eq!(b.state, TcpState::Established);
    assert_eq!(c.state, TcpState::SynSent);
    assert_eq!(stall(c, THRESHOLD), Some(StallReason::Connecting));
    let b_info = b.info.expect("tcp_info for (b)");
    assert!(
        b_info.unacked > 0,
        "(b) has unacknowledged data: {b_info:?}"
    );
    assert!(b_info.total_retrans > 0, "(b) retransmitted: {b_info:?}");
    let a_info = a.info.expect("tcp_info for (a)");
    assert!(
        a_info.last_data_recv < THRESHOLD,
        "(a) received lately: {a_info:?}"
    );
    assert_ne!(b.cookie, c.cookie, "every socket has its own cookie");
    match owner(b.inode) {
        Some(found) => {
            eprintln!("sock_diag: owner of (b): {found:?}");
            assert_eq!(found.pid, client.pid(), "the client program owns (b)");
            assert!(found.comm.starts_with("python"), "comm: {}", found.comm);
        }
        None => panic!("as root the owner of (b) is readable"),
    }
}

/// After the destroys: (b) and (c) are gone from the list and a second destroy finds
/// nothing; (a) and the unrelated connection never saw an error.
fn check_after(ns: &str, client: &Process, ports: ClientPorts, b: &TcpConnection) {
    let conns = list(ns, TARGET, PORTS);
    assert!(by_port(&conns, ports.b).is_none() && by_port(&conns, ports.c).is_none());
    assert!(
        by_port(&conns, ports.a).is_some(),
        "the transfer is still there"
    );
    match netns::run_in_ns(ns, || destroy(b)) {
        Err(SockDiagError::Gone) => {}
        other => panic!("a second destroy of (b): {other:?}"),
    }
    let lines = client.lines();
    for bad in ["error a", "closed a", "error u", "closed u"] {
        assert!(
            !lines.iter().any(|line| line.starts_with(bad)),
            "{bad}: {lines:?}"
        );
    }
}

/// Set in the child process of [`destroy_without_cap_net_admin_is_not_permitted`].
const CHILD_ENV: &str = "PATHDNS_SOCKDIAG_CHILD";

/// Without CAP_NET_ADMIN, SOCK_DESTROY is refused with its own error
/// ([`SockDiagError::NotPermitted`], what a caller reports as "unavailable" once) and the
/// connection is untouched; listing still works. The library runs in a child process of
/// this test binary, started through `setpriv` without CAP_NET_ADMIN in the client
/// namespace; this process holds the connection.
#[test]
fn destroy_without_cap_net_admin_is_not_permitted() {
    let Some(pair) = Pair::build(&["10.77.0.1/24"], &["10.77.0.10/24"]) else {
        return;
    };
    let _servers = start_servers(&pair.server);
    let mut held = netns::run_in_ns(&pair.client, || {
        TcpStream::connect(SocketAddr::from((TARGET, FLOW_PORT))).expect("connect")
    });
    let setpriv = common::which("setpriv").expect("setpriv (util-linux)");
    let mut command = Command::new(setpriv);
    command
        .args([
            "--bounding-set",
            "-net_admin",
            "--inh-caps",
            "-net_admin",
            "--",
        ])
        .arg(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "sock_diag::destroy_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1");
    let mut child = netns::spawn_in(&pair.client, "sock_diag child", &command);
    child.wait_for_line("the child's verdict", |line| {
        line.strip_prefix("sock_diag child: ").map(str::to_owned)
    });
    let verdict = child.lines().join("\n");
    assert!(
        verdict.contains("sock_diag child: not permitted"),
        "child: {verdict}"
    );
    held.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buffer = [0; 4096];
    let mut total = 0;
    while total < 3 * 1024 {
        total += held.read(&mut buffer).expect("the connection still works");
    }
}

/// The child half of [`destroy_without_cap_net_admin_is_not_permitted`]; does nothing
/// unless started by it.
#[test]
#[ignore = "run by destroy_without_cap_net_admin_is_not_permitted as a child process"]
fn destroy_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let conns =
        connections_to(IpAddr::V4(TARGET), &[FLOW_PORT]).expect("listing needs no capability");
    assert_eq!(conns.len(), 1, "the parent's connection: {conns:?}");
    match destroy(&conns[0]) {
        Err(SockDiagError::NotPermitted) => eprintln!("sock_diag child: not permitted"),
        other => eprintln!("sock_diag child: unexpected {other:?}"),
    }
}
