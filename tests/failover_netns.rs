//! Failover across real network namespaces: pathdns in a client namespace probes a primary
//! and a backup registry (HTTPS `/v2/` answering 401 with a realm) through a router; the
//! test cuts the primary path (link down, then a silent nftables blackhole) while a client
//! queries every 50 ms. With split paths (the primary behind the client's `eth-priv`, the
//! backup behind `eth-alt`), local cuts the kernel reports (the interface down, the route
//! deleted) fail over at once on its netlink notification, measured with a client querying
//! every 20 ms. Runs as root (CI); skipped loudly otherwise.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{self, Topology, BACKUP, CLIENT_PRIV_IF, PRIMARY, ROUTER_CLIENT_ADDR};
use common::registry::{self, BACKUP_ADDR, PRIMARY_ADDR, REALM, REGISTRY};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// The registry preset with its default probes; `extra` goes into its `[[registry]]` table.
fn config(topology: &Topology, extra: &str) -> String {
    registry::config(topology, "", extra)
}

/// One client query's result.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    answer: Result<Vec<String>, String>,
}

/// A client in the client namespace querying the registry name every `period`.
struct Client {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(ns: &str, server: SocketAddr) -> Client {
        Client::every(ns, server, Duration::from_millis(50))
    }

    fn every(ns: &str, server: SocketAddr, period: Duration) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (ns, flag, sink) = (ns.to_owned(), stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            netns::run_in_ns(&ns, || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
                socket
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .expect("timeout");
                while !flag.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let answer = ask(&socket, server);
                    sink.lock().expect("samples").push(Sample { at, answer });
                    std::thread::sleep(period.saturating_sub(at.elapsed()));
                }
            })
        });
        Client {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples").clone()
    }

    /// Waits until a sample after `since` answers `addr`; returns when that sample was sent.
    fn wait_for(&self, addr: &str, since: Instant) -> Instant {
        let deadline = since + Duration::from_secs(40);
        loop {
            if let Some(sample) = self.samples().into_iter().find(|s| {
                s.at >= since && matches!(&s.answer, Ok(addrs) if addrs == &vec![addr.to_owned()])
            }) {
                return sample.at;
            }
            assert!(Instant::now() < deadline, "the answer never became {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("client thread");
        }
        self.samples()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ask(socket: &UdpSocket, server: SocketAddr) -> Result<Vec<String>, String> {
    let question = query(&format!("{REGISTRY}."), RecordType::A, false);
    let bytes = question.to_vec().map_err(|e| e.to_string())?;
    socket.send_to(&bytes, server).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let len = loop {
        let (len, _) = socket
            .recv_from(&mut buf)
            .map_err(|_| "timeout".to_owned())?;
        // A late answer to an earlier query is not this one's.
        if buf[..2] == bytes[..2] {
            break len;
        }
    };
    let response = Message::from_vec(&buf[..len]).map_err(|e| e.to_string())?;
    if response.metadata.response_code != ResponseCode::NoError {
        return Err(format!("{:?}", response.metadata.response_code));
    }
    let addrs = addresses(&response);
    if addrs.is_empty() {
        return Err("empty answer".into());
    }
    Ok(addrs)
}

/// Waits until pathdns's latest verdict on the registry's `addr` is "target up": every
/// probe on it has passed, so a cut is measured from a healthy start.
fn wait_until_up(agent: &mut Agent, addr: &str) {
    let needle = format!("name=\"{REGISTRY}\" addr={addr} ");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let lines = agent.process.lines();
        let last = lines.iter().rev().find(|line| {
            line.contains(&needle) && (line.contains("target up") || line.contains("target down"))
        });
        if last.is_some_and(|line| line.contains("target up")) {
            return;
        }
        assert!(
            agent.process.is_running() && Instant::now() < deadline,
            "{addr} never came up:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Cuts the primary path with `cut`, waits for the backup, restores with `restore`, waits
/// for the primary; returns (time to fail over, time to move back).
fn cut_and_restore(
    client: &Client,
    cut: impl FnOnce(),
    restore: impl FnOnce(),
) -> (Duration, Duration) {
    let cut_at = Instant::now();
    cut();
    let switched = client.wait_for(BACKUP_ADDR, cut_at);
    let restored_at = Instant::now();
    restore();
    let back = client.wait_for(PRIMARY_ADDR, restored_at);
    (
        switched.saturating_duration_since(cut_at),
        back.saturating_duration_since(restored_at),
    )
}

#[test]
fn a_cut_private_path_fails_over_within_3s_without_a_failed_query() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP]) else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, REALM);
    let _backup = topology.start_registry("backup", REGISTRY, REALM);
    let mut agent = topology.start_agent(&config(&topology, ""));
    let client = Client::start(&topology.client, agent.addr);
    wait_until_up(&mut agent, PRIMARY_ADDR);
    wait_until_up(&mut agent, BACKUP_ADDR);
    client.wait_for(PRIMARY_ADDR, Instant::now());

    let (down_switch, down_back) = cut_and_restore(
        &client,
        || topology.link_down("primary"),
        || topology.link_up("primary"),
    );
    let (hole_switch, hole_back) = cut_and_restore(
        &client,
        || topology.blackhole("primary"),
        || topology.unblackhole("primary"),
    );
    let samples = client.stop();
    eprintln!(
        "link down: failover after {down_switch:?}, back {down_back:?} after restore; \
         blackhole: failover after {hole_switch:?}, back {hole_back:?} after restore; \
         {} client queries",
        samples.len()
    );
    let failures: Vec<&Sample> = samples.iter().filter(|s| s.answer.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} client queries failed: {:?}",
        failures.len(),
        samples.len(),
        failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        down_switch < Duration::from_secs(3),
        "link down: {down_switch:?}"
    );
    assert!(
        hole_switch < Duration::from_secs(3),
        "blackhole: {hole_switch:?}"
    );
    let log = agent.process.lines().join("\n");
    assert!(log.contains("failed over"), "{log}");
    assert!(log.contains("moved back"), "{log}");
}

/// The path check catches a route that silently moved off the private interface.
#[test]
fn a_route_leaving_by_another_interface_marks_the_target_down() {
    let Some(topology) = Topology::build_two_uplinks(&[PRIMARY, BACKUP]) else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, REALM);
    let _backup = topology.start_registry("backup", REGISTRY, REALM);
    let mut agent = topology.start_agent(&config(&topology, "interface = \"eth-priv\""));
    let client = Client::start(&topology.client, agent.addr);
    wait_until_up(&mut agent, PRIMARY_ADDR);
    wait_until_up(&mut agent, BACKUP_ADDR);
    client.wait_for(PRIMARY_ADDR, Instant::now());
    let cut_at = Instant::now();
    topology.remove_client_route("10.94.205.0/24");
    let switched = client.wait_for(BACKUP_ADDR, cut_at);
    eprintln!(
        "route removed: failover after {:?}",
        switched.saturating_duration_since(cut_at)
    );
    let reason = agent
        .process
        .wait_for_line("the path probe's reason", |line| {
            (line.contains("target down") && line.contains("probe=\"path\"")
                || line.contains("probe=path"))
            .then(|| line.to_owned())
        });
    assert!(reason.contains(PRIMARY_ADDR), "{reason}");
    assert!(reason.contains("not via eth-priv"), "{reason}");
    assert!(reason.contains("eth-pub"), "{reason}");
    // The same reason in the status, as `pathdns status` reads it.
    let control = agent
        .process
        .wait_for_line("the control address", control_addr)
        .to_string();
    let output = netns::ip_netns_exec(
        &topology.client,
        &[
            env!("CARGO_BIN_EXE_pathdns"),
            "status",
            "--json",
            "--control",
            &control,
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let status: pathdns::status::StatusReport =
        serde_json::from_slice(&output.stdout).expect("status JSON");
    let target = status
        .targets
        .iter()
        .find(|t| t.name == REGISTRY && t.addr == PRIMARY_ADDR)
        .expect("the primary in the status");
    assert_eq!(target.state, "down");
    let path = target
        .probes
        .iter()
        .find(|p| p.kind == "path")
        .expect("a path probe");
    let error = path.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("not via eth-priv"), "{error}");
    let name = status
        .names
        .iter()
        .find(|n| n.name == REGISTRY)
        .expect("name");
    assert!(name.reason.contains("failed over"), "{}", name.reason);
    let samples = client.stop();
    assert!(
        samples.iter().all(|s| s.answer.is_ok()),
        "a client query failed"
    );
}

/// The documents' 100.0.0.0/8 trap: a target inside a local interface's network.
#[test]
fn check_reports_a_target_inside_a_local_network() {
    let Some(topology) = Topology::build_with(&[PRIMARY]) else {
        return;
    };
    let added = netns::ip_netns_exec(
        &topology.client,
        &["ip", "addr", "add", "100.64.0.2/10", "dev", "eth-priv"],
    );
    assert!(added.status.success(), "{added:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    std::fs::write(
        &path,
        config(&topology, "").replace("oss = [", "auth = [\"100.103.7.181\"]\noss = ["),
    )
    .expect("write config");
    let output = netns::ip_netns_exec(
        &topology.client,
        &[
            env!("CARGO_BIN_EXE_pathdns"),
            "check",
            "--config",
            path.to_str().expect("utf-8 path"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let conflict = stdout
        .lines()
        .find(|line| line.starts_with("CONFLICT"))
        .unwrap_or_else(|| panic!("no conflict reported:\n{stdout}"));
    assert!(
        conflict.contains("dockerauth-vpc.cn-hangzhou.aliyuncs.com"),
        "{conflict}"
    );
    assert!(conflict.contains("100.103.7.181"), "{conflict}");
    assert!(conflict.contains("100.64.0.0/10"), "{conflict}");
    assert!(conflict.contains("take over the auth domain"), "{conflict}");
}

/// The primary's network, reached through the client's `eth-priv` with split paths.
const PRIMARY_NET: &str = "10.94.205.0/24";

/// The kernel's log line for a probed path that changed, and the decisive verdicts.
const PROBING_NOW: &str = "path changed (kernel notification); probing now";

/// Local cuts the kernel reports fail over on its notification, not at the next probes:
/// the private-path interface down, then the primary's route deleted. A silent blackhole
/// further along (nothing changes locally) keeps the probe-driven timing.
#[test]
fn a_local_path_change_fails_over_at_once_without_a_failed_query() {
    let Some(topology) = Topology::build_split_paths(&[PRIMARY, BACKUP]) else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, REALM);
    let _backup = topology.start_registry("backup", REGISTRY, REALM);
    let mut agent = topology.start_agent(&config(&topology, ""));
    let client = Client::every(&topology.client, agent.addr, Duration::from_millis(20));
    wait_until_up(&mut agent, PRIMARY_ADDR);
    wait_until_up(&mut agent, BACKUP_ADDR);
    client.wait_for(PRIMARY_ADDR, Instant::now());

    let (down_switch, down_back) = cut_and_restore(
        &client,
        || topology.client_link_down(CLIENT_PRIV_IF),
        || topology.client_link_up(CLIENT_PRIV_IF),
    );
    wait_until_up(&mut agent, PRIMARY_ADDR);
    let (route_switch, route_back) = cut_and_restore(
        &client,
        || topology.remove_client_route(PRIMARY_NET),
        || topology.add_client_route(PRIMARY_NET, ROUTER_CLIENT_ADDR),
    );
    wait_until_up(&mut agent, PRIMARY_ADDR);
    let (carrier_switch, carrier_back) = cut_and_restore(
        &client,
        || topology.private_carrier(false),
        || topology.private_carrier(true),
    );
    wait_until_up(&mut agent, PRIMARY_ADDR);
    let (hole_switch, hole_back) = cut_and_restore(
        &client,
        || topology.blackhole("primary"),
        || topology.unblackhole("primary"),
    );
    let samples = client.stop();
    eprintln!(
        "event-driven failover (client every 20 ms): link down {down_switch:?}, back \
         {down_back:?} after restore; route deleted {route_switch:?}, back {route_back:?}; \
         carrier lost {carrier_switch:?}, back {carrier_back:?}; silent blackhole (probe-driven) {hole_switch:?}, back {hole_back:?}; {} client \
         queries",
        samples.len()
    );
    let failures: Vec<&Sample> = samples.iter().filter(|s| s.answer.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} client queries failed: {:?}",
        failures.len(),
        samples.len(),
        failures.iter().take(5).collect::<Vec<_>>()
    );
    // Generous bounds for a loaded CI machine; the figures above are what it took.
    for (what, took, bound) in [
        ("link down", down_switch, Duration::from_secs(1)),
        ("route deleted", route_switch, Duration::from_secs(1)),
        ("back after link up", down_back, Duration::from_secs(2)),
        ("back after route added", route_back, Duration::from_secs(2)),
        // The kernel reports a lost carrier through its link watcher, which batches
        // such events up to once a second: up to ~1 s before pathdns can know.
        ("carrier lost", carrier_switch, Duration::from_secs(2)),
        ("back after carrier", carrier_back, Duration::from_secs(2)),
        ("silent blackhole", hole_switch, Duration::from_secs(3)),
        ("back after blackhole", hole_back, Duration::from_secs(3)),
    ] {
        assert!(took < bound, "{what}: {took:?}, not under {bound:?}");
    }
    let log = agent.process.lines();
    let decisive: Vec<&String> = log
        .iter()
        .filter(|line| {
            line.contains("target down")
                && line.contains(PRIMARY_ADDR)
                && line.contains("(kernel notification)")
        })
        .collect();
    // An interface set down takes its routes with it (no route); a lost carrier leaves
    // them, and the interface's state is the verdict.
    let verdicts = |reason: &str| {
        decisive
            .iter()
            .filter(|l| l.contains(REGISTRY) && l.contains(reason))
            .count()
    };
    assert_eq!(
        verdicts("no route matches it"),
        2,
        "link down and route deleted:\n{}",
        log.join("\n")
    );
    assert_eq!(
        verdicts("its interface eth-priv is down"),
        1,
        "carrier lost:\n{}",
        log.join("\n")
    );
    let woken: Vec<&String> = log.iter().filter(|l| l.contains(PROBING_NOW)).collect();
    assert!(
        woken.iter().all(|l| l.contains(PRIMARY_ADDR)),
        "only the primary's path changed: {woken:#?}"
    );
}

/// `pathdns_path_changes_total{effect=...}` from the agent's `/metrics`.
fn path_changes(topology: &Topology, control: SocketAddr, effect: &str) -> u64 {
    let (status, body) =
        netns::run_in_ns(&topology.client, || http_get(control, "/metrics")).expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    let series = format!("pathdns_path_changes_total{{effect=\"{effect}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
}

/// A change the kernel reports on an interface no target uses wakes no probe; the next
/// change that does touch a target wakes exactly its probes (proving the first burst was
/// handled, since bursts are handled in order).
#[test]
fn an_unrelated_change_wakes_no_probe() {
    let Some(topology) = Topology::build_split_paths(&[PRIMARY, BACKUP]) else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, REALM);
    let _backup = topology.start_registry("backup", REGISTRY, REALM);
    let mut agent = topology.start_agent(&config(&topology, ""));
    wait_until_up(&mut agent, PRIMARY_ADDR);
    wait_until_up(&mut agent, BACKUP_ADDR);
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    let probed_before = path_changes(&topology, control, "probed");
    let none_before = path_changes(&topology, control, "none");
    let woken_before = count_lines(&agent, PROBING_NOW);
    for args in [
        // A veth pair inside the client namespace: no dummy module needed.
        &[
            "ip", "link", "add", "vx-a", "type", "veth", "peer", "name", "vx-b",
        ][..],
        &["ip", "link", "set", "vx-b", "up"],
        &["ip", "link", "set", "vx-a", "up"],
        &["ip", "addr", "add", "198.51.100.1/24", "dev", "vx-a"],
        &[
            "ip",
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "198.51.100.2",
        ],
    ] {
        let out = netns::ip_netns_exec(&topology.client, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    wait_until("the unrelated burst is handled", || {
        path_changes(&topology, control, "none") > none_before
    });
    assert_eq!(
        path_changes(&topology, control, "probed"),
        probed_before,
        "an unrelated change woke probes"
    );
    topology.remove_client_route(PRIMARY_NET);
    wait_until("the primary's route change is handled", || {
        path_changes(&topology, control, "probed") > probed_before
    });
    assert_eq!(
        path_changes(&topology, control, "probed"),
        probed_before + 1
    );
    let woken: Vec<String> = agent
        .process
        .lines()
        .into_iter()
        .filter(|line| line.contains(PROBING_NOW))
        .skip(woken_before)
        .collect();
    assert_eq!(woken.len(), 1, "{woken:#?}");
    assert!(woken[0].contains(PRIMARY_ADDR), "{}", woken[0]);
    assert!(
        woken[0].contains("probes=1"),
        "only the cheap tcp probe: {}",
        woken[0]
    );
    agent.process.wait_for_line("the decisive verdict", |line| {
        (line.contains("target down") && line.contains("(kernel notification)")).then_some(())
    });
}

fn count_lines(agent: &Agent, needle: &str) -> usize {
    agent
        .process
        .lines()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}
