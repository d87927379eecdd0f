//! Issue 16 end to end: pathdns serves the containers and pods of its host through the
//! node-local address 169.254.20.53 (a /32 on `lo`, label `lo:pathdns`), with the real
//! programs, inside per-run network namespaces:
//!
//! - a container on Docker's default bridge (a private dockerd, tests/common/docker.rs)
//!   gets the host's resolv.conf as `pathdns resolver enable --root DIR` wrote it, with
//!   169.254.20.53 first, and resolves an owned name and a forwarded one through pathdns;
//! - that dockerd pushes to and pulls from a local registry (Debian's docker-registry, TLS
//!   from the test CA) under the owned registry name, resolving it through pathdns;
//! - a "pod" namespace behind a veth, as a CNI makes it, runs dnsmasq on its own
//!   127.0.0.1:53 forwarding to a copy of the host's resolv.conf (what CoreDNS's
//!   `forward . /etc/resolv.conf` does with kubelet's copy): an owned name is answered by
//!   pathdns through 169.254.20.53, and the copy holds no loopback nameserver to loop on.
//!
//! The node's previous resolver is a dnsmasq on 198.51.100.53:53 (on `lo` as well), the
//! upstream pathdns forwards to. Whether pathdns answered is read from its /metrics.
//!
//! Runs as root (CI); skipped loudly otherwise. Needs docker.io, docker-registry,
//! busybox-static and dnsmasq (tests/run.sh installs them).

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::docker::{self, Dockerd, Registry};
use common::netns::{self, Pair, Topology, CLIENT_PRIV_ADDR, PRIMARY};
use common::*;
use hickory_proto::rr::RecordType;

/// The node-local address of issue 16.
const NODE_LOCAL: &str = "169.254.20.53";
/// An owned name of [`REFERENCE_NAMES`] (the registry) and its address.
const OWNED: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com";
const OWNED_ADDR: &str = "10.94.205.198";
/// A name only the node's previous resolver knows (a documentation address).
const FORWARDED: &str = "forwarded.container-host.example";
const FORWARDED_ADDR: &str = "192.0.2.80";
/// The node's previous resolver, on `lo`: the original resolv.conf's nameserver.
const UPSTREAM: &str = "198.51.100.53";
const IMAGE: &str = "bb:1";

/// What tells `pathdns resolver enable` that the root is a container host.
#[derive(Clone, Copy)]
enum Marker {
    /// `run/docker.sock`, a unix socket.
    DockerSocket,
    /// `var/lib/kubelet/config.yaml`.
    Kubelet,
}

/// The node's DNS side inside namespace `ns`: the node-local address, the previous
/// resolver, pathdns, and `DIR/etc/resolv.conf` as `pathdns resolver enable` wrote it.
struct Node {
    ns: String,
    agent: Agent,
    control: SocketAddr,
    upstream: Process,
    root: tempfile::TempDir,
}

impl Node {
    fn start(ns: &str, marker: Marker, start_agent: impl FnOnce(&str) -> Agent) -> Node {
        add_node_local(ns, &config());
        let upstream = start_upstream(ns);
        let mut agent = start_agent(&config());
        let control = agent
            .process
            .wait_for_line("its control address", control_addr);
        let root = tempfile::tempdir().expect("temp dir for the node's root");
        let node = Node {
            ns: ns.to_owned(),
            agent,
            control,
            upstream,
            root,
        };
        node.enable_resolver(marker);
        node
    }

    /// `pathdns resolver enable --root DIR --mode plain` over an original resolv.conf that
    /// names [`UPSTREAM`], on a root that looks like a container host.
    fn enable_resolver(&self, marker: Marker) {
        let root = self.root.path();
        std::fs::create_dir_all(root.join("etc")).expect("create DIR/etc");
        std::fs::write(self.resolv_conf(), format!("nameserver {UPSTREAM}\n"))
            .expect("write the original resolv.conf");
        match marker {
            Marker::DockerSocket => docker::socket_file(&root.join("run/docker.sock")),
            Marker::Kubelet => {
                let kubelet = root.join("var/lib/kubelet");
                std::fs::create_dir_all(&kubelet).expect("create DIR/var/lib/kubelet");
                std::fs::write(kubelet.join("config.yaml"), "kind: KubeletConfiguration\n")
                    .expect("write the kubelet config");
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_pathdns"))
            .args(["resolver", "enable", "--mode", "plain", "--root"])
            .arg(root)
            .arg("--config")
            .arg(&self.agent.config_path)
            .output()
            .expect("run pathdns resolver enable");
        assert!(
            out.status.success(),
            "pathdns resolver enable failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        let evidence = match marker {
            Marker::DockerSocket => "dockerd (/run/docker.sock)",
            Marker::Kubelet => "kubelet (/var/lib/kubelet/config.yaml)",
        };
        assert!(
            said.contains(&format!("container host ({evidence})"))
                && said.contains(&format!(
                    "containers and pods get {NODE_LOCAL} (node-local)"
                )),
            "enable did not detect the container host: {said}"
        );
        let written = std::fs::read_to_string(self.resolv_conf()).expect("read resolv.conf");
        eprintln!("node: pathdns resolver enable wrote:\n{written}");
        assert_eq!(
            nameservers(&written).first().map(String::as_str),
            Some(NODE_LOCAL),
            "the first nameserver of a container host's resolv.conf"
        );
        assert_no_loopback(&written, "the host's resolv.conf");
    }

    /// `DIR/etc/resolv.conf`.
    fn resolv_conf(&self) -> PathBuf {
        self.root.path().join("etc/resolv.conf")
    }

    /// pathdns's responses so far: `(owned, forwarded)`, from its /metrics.
    fn answered(&self) -> (u64, u64) {
        let control = self.control;
        let (status, body) = netns::run_in_ns(&self.ns, || http_get(control, "/metrics"))
            .expect("pathdns /metrics answers");
        assert_eq!(status, 200, "GET /metrics: {body}");
        let sum = |source: &str| -> u64 {
            let prefix = format!("pathdns_dns_queries_total{{source=\"{source}\"");
            body.lines()
                .filter(|line| line.starts_with(&prefix))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        (sum("owned"), sum("forwarded"))
    }

    /// Waits until pathdns has answered at least `owned` and `forwarded` more queries than
    /// `before`; returns the new counts.
    fn wait_answered(&self, before: (u64, u64), owned: u64, forwarded: u64) -> (u64, u64) {
        wait_for("pathdns to count the answers in /metrics", || {
            let now = self.answered();
            (now.0 >= before.0 + owned && now.1 >= before.1 + forwarded).then_some(now)
        })
    }

    /// The upstream's logged queries for `name`, by client address.
    fn upstream_clients(&self, name: &str) -> Vec<String> {
        let needle = format!("query[A] {name} from ");
        self.upstream
            .lines()
            .iter()
            .filter_map(|line| Some(line.split(&needle).nth(1)?.trim().to_owned()))
            .collect()
    }
}

/// The node-local address on `lo` of namespace `ns`, added by `pathdns node-local up` from
/// the node's config (label `lo:pathdns`).
fn add_node_local(ns: &str, config: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    std::fs::write(&path, config).expect("write the config");
    let binary = env!("CARGO_BIN_EXE_pathdns");
    let out = netns::ip_netns_exec(
        ns,
        &[
            binary,
            "node-local",
            "up",
            "--config",
            &path.to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "pathdns node-local up: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lo = netns::ip_netns_exec(ns, &["ip", "-4", "-o", "address", "show", "dev", "lo"]);
    let lo = String::from_utf8_lossy(&lo.stdout).into_owned();
    assert!(
        lo.contains(&format!("{NODE_LOCAL}/32")) && lo.contains("lo:pathdns"),
        "{lo}"
    );
}

/// pathdns with the node-local address (and loopback), the default allow list (which then
/// admits containers and pods), forwarding to [`UPSTREAM`].
fn config() -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
node_local = "{NODE_LOCAL}"

[upstream]
servers = ["{UPSTREAM}"]
timeout = "1500ms"

{REFERENCE_NAMES}
"#
    )
}

/// The node's previous resolver: dnsmasq on [`UPSTREAM`]:53 (added to `lo`) serving
/// [`FORWARDED`], logging every query with its client.
fn start_upstream(ns: &str) -> Process {
    ip(ns, &["addr", "add", &format!("{UPSTREAM}/32"), "dev", "lo"]);
    let mut command = Command::new(which("dnsmasq").expect("dnsmasq is installed"));
    command
        .args(dnsmasq_common_args())
        .arg("--no-resolv")
        .arg(format!("--listen-address={UPSTREAM}"))
        .arg(format!("--host-record={FORWARDED},{FORWARDED_ADDR}"));
    let mut process = netns::spawn_in(ns, "dnsmasq (upstream)", &command);
    process.wait_for_line("that it started", |line| {
        line.contains("started, version").then_some(())
    });
    process
}

fn dnsmasq_common_args() -> [&'static str; 9] {
    [
        "--keep-in-foreground",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        "--log-queries",
        "--log-facility=-",
        "--pid-file=",
        "--cache-size=0",
        "--user=root",
    ]
}

/// `ip -n ns args...`, panicking with its stderr unless it succeeds.
fn ip(ns: &str, args: &[&str]) {
    let out = Command::new(which("ip").expect("ip is installed"))
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip -n {ns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The `nameserver` entries of a resolv.conf, in order.
fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .map(|rest| rest.trim().to_owned())
        .collect()
}

fn assert_no_loopback(resolv_conf: &str, what: &str) {
    for entry in nameservers(resolv_conf) {
        let loopback = entry
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
        assert!(
            !loopback,
            "{what} names a loopback nameserver ({entry}): a forwarder there would ask \
             itself\n{resolv_conf}"
        );
    }
}

/// The address busybox nslookup printed for `name` (its `Name:` line, then `Address:`).
fn nslookup_address(output: &str, name: &str) -> Option<String> {
    let mut lines = output
        .lines()
        .skip_while(|line| line.trim() != format!("Name:\t{name}"));
    lines.next()?;
    let address = lines.next()?.strip_prefix("Address:")?;
    Some(address.trim().to_owned())
}

/// A Docker host: the topology's client namespace with the primary target behind the
/// router, and the node's DNS side in it. `None` (after a loud SKIPPED line) without root.
fn docker_host() -> Option<(Topology, Node)> {
    let topology = Topology::build_with(&[PRIMARY])?;
    let node = Node::start(&topology.client, Marker::DockerSocket, |config| {
        topology.start_agent(config)
    });
    Some((topology, node))
}

/// Test A: a container on the default bridge resolves an owned and a forwarded name
/// through pathdns on 169.254.20.53, from the resolv.conf docker copied into it.
#[test]
fn a_container_on_the_default_bridge_resolves_through_the_node_local_address() {
    let Some((_topology, node)) = docker_host() else {
        return;
    };
    let dockerd = Dockerd::start(&node.ns, &node.resolv_conf());
    dockerd.import_busybox(IMAGE);

    let before = node.answered();
    let script = format!(
        "cat /etc/resolv.conf; echo ---; nslookup -type=a {OWNED}; echo ---; \
         nslookup -type=a {FORWARDED}"
    );
    let started = Instant::now();
    let out = dockerd.docker_ok(&["run", "--rm", IMAGE, "sh", "-c", &script]);
    eprintln!("container ({:.1?}):\n{out}", started.elapsed());

    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(
        parts.len(),
        3,
        "the container's output in three parts:\n{out}"
    );
    let first = nameservers(parts[0]).into_iter().next();
    assert_eq!(
        first.as_deref(),
        Some(NODE_LOCAL),
        "the container's resolv.conf"
    );
    assert_eq!(
        nslookup_address(parts[1], OWNED).as_deref(),
        Some(OWNED_ADDR)
    );
    assert_eq!(
        nslookup_address(parts[2], FORWARDED).as_deref(),
        Some(FORWARDED_ADDR)
    );
    for part in &parts[1..] {
        assert!(
            part.contains(&format!("Server:\t\t{NODE_LOCAL}")),
            "asked pathdns: {part}"
        );
    }
    let after = node.wait_answered(before, 1, 1);
    eprintln!("pathdns answered (owned, forwarded): {before:?} -> {after:?}");
    let clients = node.upstream_clients(FORWARDED);
    eprintln!("the upstream was asked for {FORWARDED} by: {clients:?}");
    assert!(
        !clients.is_empty() && clients.iter().all(|client| !client.starts_with("172.")),
        "the forwarded name reached the upstream through pathdns only: {clients:?}"
    );
}

/// Test B: the private dockerd pushes to and pulls from a registry named by the owned
/// name (Debian's docker-registry on the primary target, TLS from the test CA), resolving
/// the name in its own namespace through the resolv.conf that points at pathdns.
#[test]
fn docker_pull_from_the_owned_registry_name_resolves_through_pathdns() {
    let Some((topology, node)) = docker_host() else {
        return;
    };
    let (cert, key) = topology.issue_cert(&[OWNED]);
    let registry = Registry::start(topology.target("primary"), &cert, &key);
    let dockerd = Dockerd::start(&node.ns, &node.resolv_conf());
    dockerd.trust_registry_ca(OWNED, &topology.ca_cert);
    dockerd.import_busybox(IMAGE);

    let remote = format!("{OWNED}/test/bb:1");
    dockerd.docker_ok(&["tag", IMAGE, &remote]);
    let started = Instant::now();
    dockerd.docker_ok(&["push", &remote]);
    eprintln!("docker push {remote}: {:.1?}", started.elapsed());
    dockerd.docker_ok(&["rmi", IMAGE, &remote]);

    let from = CLIENT_PRIV_ADDR.to_string();
    let pushed = registry.requests_from(&from, "/v2/test/bb/manifests/1");
    let before = node.answered();
    let started = Instant::now();
    let pulled = dockerd.docker_ok(&["pull", &remote]);
    eprintln!("docker pull {remote}: {:.1?}\n{pulled}", started.elapsed());
    let after = node.wait_answered(before, 1, 0);
    eprintln!("pathdns answered (owned, forwarded): {before:?} -> {after:?}");
    let manifests = registry.requests_from(&from, "/v2/test/bb/manifests/1");
    let blobs = registry.requests_from(&from, "/v2/test/bb/blobs/");
    eprintln!(
        "registry: manifest requests from {from}: {pushed} by the push, {} by the pull; \
         {blobs} blob requests",
        manifests - pushed
    );
    assert!(
        manifests > pushed,
        "the pull asked the registry for the manifest"
    );
    let run = dockerd.docker_ok(&["run", "--rm", &remote, "echo", "pulled and ran"]);
    assert_eq!(run.trim(), "pulled and ran");
}

/// Test C: a pod's dnsmasq on 127.0.0.1:53, forwarding to kubelet's copy of the host's
/// resolv.conf, gets an owned name from pathdns through 169.254.20.53, and does not loop.
#[test]
fn a_pod_forwarder_on_its_own_loopback_reaches_pathdns_and_does_not_loop() {
    let Some(pair) = Pair::build(&["10.244.0.1/24"], &["10.244.0.2/24"]) else {
        return;
    };
    let pod = pair.client.clone();
    ip(&pod, &["route", "add", "default", "via", "10.244.0.1"]);
    let node = Node::start(&pair.server, Marker::Kubelet, |config| {
        pair.start_agent(config)
    });

    // kubelet: the pod's resolv.conf is a copy of the host's (dnsPolicy: Default).
    let pod_dir = tempfile::tempdir().expect("temp dir for the pod");
    let pod_resolv = pod_dir.path().join("resolv.conf");
    std::fs::copy(node.resolv_conf(), &pod_resolv).expect("copy resolv.conf into the pod");
    let copied = std::fs::read_to_string(&pod_resolv).expect("read the pod's resolv.conf");
    assert_no_loopback(&copied, "the pod's resolv.conf");
    let mut dnsmasq = start_pod_forwarder(&pod, &pod_resolv);

    let before = node.answered();
    let started = Instant::now();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
    let message = query(&format!("{OWNED}."), RecordType::A, false);
    let response = netns::run_in_ns(&pod, || ask_udp(server, &message));
    eprintln!(
        "pod: {OWNED} from its 127.0.0.1:53 in {:.1?}: {:?} {:?}",
        started.elapsed(),
        rcode(&response),
        addresses(&response)
    );
    assert_eq!(addresses(&response), vec![OWNED_ADDR.to_owned()]);
    let after = node.wait_answered(before, 1, 0);
    eprintln!("pathdns answered (owned, forwarded): {before:?} -> {after:?}");

    let forwarded = format!("forwarded {OWNED} to {NODE_LOCAL}");
    dnsmasq.wait_for_line("that it forwarded to pathdns", |line| {
        line.contains(&forwarded).then_some(())
    });
    let asked = format!("query[A] {OWNED} from ");
    let lines = dnsmasq.lines();
    let queries: Vec<&String> = lines.iter().filter(|line| line.contains(&asked)).collect();
    assert_eq!(
        queries.len(),
        1,
        "one query, no loop back to itself: {queries:#?}"
    );
}

/// dnsmasq on the pod's own 127.0.0.1:53 forwarding to `resolv_conf`'s nameservers in
/// order, as CoreDNS's `forward . /etc/resolv.conf` (`policy sequential`) would.
fn start_pod_forwarder(pod: &str, resolv_conf: &Path) -> Process {
    let mut command = Command::new(which("dnsmasq").expect("dnsmasq is installed"));
    command
        .args(dnsmasq_common_args())
        .arg(format!("--resolv-file={}", resolv_conf.display()))
        .args(["--listen-address=127.0.0.1", "--strict-order"]);
    let mut process = netns::spawn_in(pod, "dnsmasq (pod)", &command);
    process.wait_for_line("that it started", |line| {
        line.contains("started, version").then_some(())
    });
    process
}
