//! A network-namespace topology for path and failover tests.
//!
//! ```text
//!                      10.0.1.2/24           10.0.1.1/24
//!   client ns  [eth-priv] ------------------- [to-client]  router ns (ip_forward=1)
//!     (pathdns runs here)                     [to-primary] 10.94.205.1/24 --- [eth0] 10.94.205.198/24  primary ns
//!                                             [to-backup]  10.95.0.1/24   --- [eth0] 10.95.0.10/24     backup ns
//!                                             [to-NAME]    ...            --- [eth0] ...               NAME ns
//!
//!   with two uplinks, additionally:
//!              [eth-pub] 192.0.2.2/24 -------- 192.0.2.1/24 [to-client]  public ns (no forwarding)
//!   client routes: default via 192.0.2.1 dev eth-pub; each target's network via 10.0.1.1 dev eth-priv
//!
//!   with split paths (build_split_paths), instead of a default route:
//!              [eth-alt] 10.0.2.2/24 ------- 10.0.2.1/24 [to-alt]  router ns
//!   client routes: the first target's network via 10.0.1.1 dev eth-priv, every other
//!   target's network via 10.0.2.1 dev eth-alt; no default route
//! ```
//!
//! Every address exists only inside these namespaces; nothing is routed outside them (the
//! namespaces have no link to the host's own network). Namespace names are unique per
//! test run (`pd<pid>x<counter>-<role>`); interface names are fixed and short because they
//! only need to be unique inside their own namespace.
//!
//! Faults, each reversible: [`Topology::link_down`] (the router-side veth of a target goes
//! down: the router answers with ICMP unreachable, so connects fail fast) and
//! [`Topology::blackhole`] (an nftables table in the router drops forwarded traffic to and
//! from the target: connects time out silently); with two uplinks,
//! [`Topology::remove_client_route`] makes traffic to a target leave through `eth-pub`,
//! where the "internet" silently drops it.
//!
//! Dropping the [`Topology`] (also while a test panics) kills every process in its
//! namespaces and deletes them. Without root, [`Topology::build`] prints a loud
//! `SKIPPED (not root)` line and returns `None`.
//!
//! Needs `ip` (iproute2) and `nft` (nftables); [`Topology::start_registry`] and
//! [`Topology::https_get`] need `python3`.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::sched::{setns, CloneFlags};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{listening_addr, which, Agent, Process, READY_DEADLINE};

/// The client's interface towards the router (the private path).
pub const CLIENT_PRIV_IF: &str = "eth-priv";
/// The client's address on [`CLIENT_PRIV_IF`].
pub const CLIENT_PRIV_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// The router's address towards the client: the client's gateway for the private path.
pub const ROUTER_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
/// The client's second uplink (only with [`Topology::build_two_uplinks`]).
pub const CLIENT_PUB_IF: &str = "eth-pub";
/// The client's address on [`CLIENT_PUB_IF`] (RFC 5737 TEST-NET-1).
pub const CLIENT_PUB_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The "public" namespace's address: the client's default gateway with two uplinks.
pub const PUBLIC_GW_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client's second path to the router (only with [`Topology::build_split_paths`]).
pub const CLIENT_ALT_IF: &str = "eth-alt";
/// The client's address on [`CLIENT_ALT_IF`].
pub const CLIENT_ALT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The router's address towards [`CLIENT_ALT_IF`].
pub const ROUTER_ALT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
/// Every target's own interface name, inside its namespace.
pub const TARGET_IF: &str = "eth0";

/// `(name, address/prefix, router address/prefix)` of a target namespace.
pub type TargetSpec<'a> = (&'a str, &'a str, &'a str);

/// The registry endpoint of the documents' example (`<instance>-registry-vpc...`).
pub const PRIMARY: TargetSpec<'static> = ("primary", "10.94.205.198/24", "10.94.205.1/24");
/// A second registry instance (another region, global sync): the backup target.
pub const BACKUP: TargetSpec<'static> = ("backup", "10.95.0.10/24", "10.95.0.1/24");
/// The auth service (token realm) of the documents' example.
pub const AUTH: TargetSpec<'static> = ("auth", "100.103.7.181/24", "100.103.7.1/24");
/// The targets of [`Topology::build`].
pub const DEFAULT_TARGETS: &[TargetSpec<'static>] = &[PRIMARY, BACKUP];

static TOPOLOGY_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How the client reaches the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Uplinks {
    /// `eth-priv` only, default route through it.
    One,
    /// `eth-priv` to the router and `eth-pub` to the "public" namespace (default route).
    Public,
    /// `eth-priv` for the first target, `eth-alt` for the others, no default route.
    Split,
}

/// One target host: a namespace behind the router.
#[derive(Debug, Clone)]
pub struct TargetHost {
    /// The short name given at build time (`"primary"`).
    pub name: String,
    /// The namespace name (for `ip netns exec`).
    pub ns: String,
    /// The target's address (on [`TARGET_IF`] in its namespace).
    pub addr: Ipv4Addr,
    /// The target's network, e.g. `10.94.205.0/24`.
    pub net: Ipv4Net,
    /// The router's address on the target's network: the target's default gateway.
    pub gateway: Ipv4Addr,
    /// The router-side veth (`to-<name>`), in the router namespace.
    pub router_if: String,
}

/// A built topology; see the module docs. Dropping it removes everything.
pub struct Topology {
    /// The namespace pathdns runs in.
    pub client: String,
    /// The router namespace.
    pub router: String,
    /// The "public" namespace behind `eth-pub`, with two uplinks.
    pub public: Option<String>,
    pub targets: Vec<TargetHost>,
    /// The test CA's certificate (PEM): pathdns's `ca_file`.
    pub ca_cert: PathBuf,
    /// The client's interfaces: `eth-priv`, and `eth-pub` with two uplinks (`eth-alt`
    /// with split paths).
    pub client_ifs: Vec<&'static str>,
    /// The client's per-target routes `(network, gateway)`, put back by
    /// [`Topology::client_link_up`] (the kernel drops them with their link).
    client_routes: Vec<(String, Ipv4Addr)>,
    /// Every namespace created, in creation order.
    namespaces: Vec<String>,
    ca: TestCa,
}

/// A test CA in a temporary directory, and the certificates it issued.
pub struct TestCa {
    /// The CA's certificate (PEM): pathdns's `ca_file`.
    pub cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    issued: AtomicUsize,
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir for the test CA");
        let (ca_pem, issuer) = new_ca();
        let cert = dir.path().join("ca.pem");
        std::fs::write(&cert, ca_pem).expect("write CA certificate");
        TestCa {
            cert,
            issuer,
            issued: AtomicUsize::new(0),
            dir,
        }
    }

    /// A certificate for `dns_names` (DNS or IP SANs) signed by this CA, written as PEM
    /// files: `(certificate, private key)`.
    pub fn issue_cert(&self, dns_names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = dns_names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate names");
        params.distinguished_name.push(
            DnType::CommonName,
            dns_names.first().copied().unwrap_or("test"),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("generate key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign cert");
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let cert_path = self.dir.path().join(format!("cert{n}.pem"));
        let key_path = self.dir.path().join(format!("key{n}.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// `tests/support/registry_v2.py` serving HTTPS on `addr:port` with `cert` and `key`,
/// naming `realm` as its token service; `extra` goes to the script.
fn registry_command(
    (cert, key): (PathBuf, PathBuf),
    addr: IpAddr,
    port: u16,
    realm: &str,
    extra: &[&str],
) -> Command {
    let mut command = Command::new(python3());
    command
        .arg(support_script("registry_v2.py"))
        .args(["--addr", &addr.to_string(), "--port", &port.to_string()])
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(["--realm", realm])
        .args(extra);
    command
}

fn wait_for_https(mut process: Process) -> Process {
    process.wait_for_line("that it listens", |line| {
        line.contains("serving https on").then_some(())
    });
    process
}

/// A registry stand-in on a loopback address (no namespace, no root), with a certificate
/// for `server_name` from `ca`: `GET /v2/` answers 401 naming `realm`. Returns once it
/// listens.
pub fn start_loopback_registry(
    ca: &TestCa,
    addr: Ipv4Addr,
    port: u16,
    server_name: &str,
    realm: &str,
) -> Process {
    assert!(
        addr.is_loopback(),
        "{addr}: outside a namespace, loopback only"
    );
    let mut command =
        registry_command(ca.issue_cert(&[server_name]), addr.into(), port, realm, &[]);
    wait_for_https(Process::spawn("registry_v2.py", &mut command))
}

impl Topology {
    /// client, router, `primary` (10.94.205.198/24) and `backup` (10.95.0.10/24); one
    /// uplink, default route via the router. `None` (after a loud SKIPPED line) without
    /// root.
    pub fn build() -> Option<Topology> {
        Topology::build_with(DEFAULT_TARGETS)
    }

    /// Like [`Topology::build`] with the given targets, e.g.
    /// `&[PRIMARY, BACKUP, AUTH]` or `&[("primary", "10.94.205.198/24", "10.94.205.1/24")]`.
    /// Target names: 1 to 12 characters of `[a-z0-9]`.
    pub fn build_with(targets: &[TargetSpec<'_>]) -> Option<Topology> {
        Topology::build_inner(targets, Uplinks::One)
    }

    /// Two paths from the client to the router: the first target is reached through
    /// `eth-priv` (10.0.1.2/24, via 10.0.1.1), every other one through `eth-alt`
    /// (10.0.2.2/24, via 10.0.2.1), with no default route. Taking `eth-priv` down
    /// ([`Topology::client_link_down`]) or deleting the first target's route leaves it no
    /// route at all while the others stay reachable: a local path change the kernel
    /// reports.
    pub fn build_split_paths(targets: &[TargetSpec<'_>]) -> Option<Topology> {
        Topology::build_inner(targets, Uplinks::Split)
    }

    /// The client gets two uplinks: `eth-priv` (10.0.1.2/24) to the router and `eth-pub`
    /// (192.0.2.2/24) to a "public" namespace that forwards nothing. The default route is
    /// via `eth-pub`; each target's network has a specific route via `eth-priv`. Deleting
    /// that route ([`Topology::remove_client_route`]) makes the target's traffic leave via
    /// `eth-pub` with source 192.0.2.2, where it is silently dropped.
    pub fn build_two_uplinks(targets: &[TargetSpec<'_>]) -> Option<Topology> {
        Topology::build_inner(targets, Uplinks::Public)
    }

    fn build_inner(specs: &[TargetSpec<'_>], uplinks: Uplinks) -> Option<Topology> {
        let two_uplinks = uplinks == Uplinks::Public;
        if !super::is_root() {
            eprintln!(
                "\n########################################################################\n\
                 ## SKIPPED (not root): network-namespace test topology needs root;\n\
                 ## run the whole suite with `sudo tests/run.sh`\n\
                 ########################################################################\n"
            );
            return None;
        }
        let specs = parse_specs(specs);
        let id = format!(
            "pd{}x{}",
            std::process::id(),
            TOPOLOGY_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ca = TestCa::new();
        let mut topology = Topology {
            client: format!("{id}-client"),
            router: format!("{id}-router"),
            public: two_uplinks.then(|| format!("{id}-public")),
            targets: Vec::new(),
            ca_cert: ca.cert.clone(),
            client_ifs: match uplinks {
                Uplinks::One => vec![CLIENT_PRIV_IF],
                Uplinks::Public => vec![CLIENT_PRIV_IF, CLIENT_PUB_IF],
                Uplinks::Split => vec![CLIENT_PRIV_IF, CLIENT_ALT_IF],
            },
            client_routes: Vec::new(),
            namespaces: Vec::new(),
            ca,
        };
        // From here on a panic drops `topology`, which removes what exists so far.
        let client = topology.client.clone();
        let router = topology.router.clone();
        topology.add_ns(&client);
        topology.add_ns(&router);
        sysctl_in(&router, "net/ipv4/ip_forward", "1");

        let mut links: Vec<(String, String)> = Vec::new();
        veth(
            &router,
            "to-client",
            &format!("{ROUTER_CLIENT_ADDR}/24"),
            &client,
            CLIENT_PRIV_IF,
            &format!("{CLIENT_PRIV_ADDR}/24"),
        );
        links.push((router.clone(), "to-client".into()));
        links.push((client.clone(), CLIENT_PRIV_IF.into()));

        if let Some(public) = topology.public.clone() {
            topology.add_ns(&public);
            veth(
                &public,
                "to-client",
                &format!("{PUBLIC_GW_ADDR}/24"),
                &client,
                CLIENT_PUB_IF,
                &format!("{CLIENT_PUB_ADDR}/24"),
            );
            links.push((public.clone(), "to-client".into()));
            links.push((client.clone(), CLIENT_PUB_IF.into()));
        }
        if uplinks == Uplinks::Split {
            veth(
                &router,
                "to-alt",
                &format!("{ROUTER_ALT_ADDR}/24"),
                &client,
                CLIENT_ALT_IF,
                &format!("{CLIENT_ALT_ADDR}/24"),
            );
            links.push((router.clone(), "to-alt".into()));
            links.push((client.clone(), CLIENT_ALT_IF.into()));
        }

        for (name, host, gateway) in specs {
            let ns = format!("{id}-{name}");
            topology.add_ns(&ns);
            let router_if = format!("to-{name}");
            veth(
                &router,
                &router_if,
                &format!("{gateway}/{}", host.prefix_len()),
                &ns,
                TARGET_IF,
                &host.to_string(),
            );
            links.push((router.clone(), router_if.clone()));
            links.push((ns.clone(), TARGET_IF.into()));
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &gateway.to_string(),
            ]);
            topology.targets.push(TargetHost {
                name,
                ns,
                addr: host.addr(),
                net: host.trunc(),
                gateway,
                router_if,
            });
        }

        if uplinks == Uplinks::Split {
            let routes: Vec<(String, Ipv4Addr)> = topology
                .targets
                .iter()
                .enumerate()
                .map(|(i, target)| {
                    let via = if i == 0 {
                        ROUTER_CLIENT_ADDR
                    } else {
                        ROUTER_ALT_ADDR
                    };
                    (target.net.to_string(), via)
                })
                .collect();
            for (net, via) in &routes {
                topology.add_client_route(net, *via);
            }
            topology.client_routes = routes;
        } else if two_uplinks {
            ip(&[
                "-n",
                &client,
                "route",
                "add",
                "default",
                "via",
                &PUBLIC_GW_ADDR.to_string(),
                "dev",
                CLIENT_PUB_IF,
            ]);
            for target in &topology.targets {
                topology.add_client_route(&target.net.to_string(), ROUTER_CLIENT_ADDR);
            }
            topology.client_routes = topology
                .targets
                .iter()
                .map(|target| (target.net.to_string(), ROUTER_CLIENT_ADDR))
                .collect();
        } else {
            ip(&[
                "-n",
                &client,
                "route",
                "add",
                "default",
                "via",
                &ROUTER_CLIENT_ADDR.to_string(),
                "dev",
                CLIENT_PRIV_IF,
            ]);
        }
        for (ns, link) in &links {
            wait_link_state(ns, link, "UP");
        }
        Some(topology)
    }

    fn add_ns(&mut self, ns: &str) {
        ip(&["netns", "add", ns]);
        self.namespaces.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }

    /// Every namespace of this topology.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The target called `name`; panics if there is none.
    pub fn target(&self, name: &str) -> &TargetHost {
        self.targets
            .iter()
            .find(|target| target.name == name)
            .unwrap_or_else(|| panic!("no target {name:?} in this topology"))
    }

    /// Sets the router-side veth of `target` down: the router loses its route to the
    /// target and answers with ICMP unreachable, so connects fail fast.
    pub fn link_down(&self, target: &str) {
        let target = self.target(target);
        ip(&["-n", &self.router, "link", "set", &target.router_if, "down"]);
        wait_link_state(&self.router, &target.router_if, "DOWN");
    }

    /// Undoes [`Topology::link_down`], waiting until the link is up again.
    pub fn link_up(&self, target: &str) {
        let target = self.target(target);
        ip(&["-n", &self.router, "link", "set", &target.router_if, "up"]);
        // The kernel puts the connected route back with the link.
        wait_link_state(&self.router, &target.router_if, "UP");
    }

    /// Sets the client's own interface `link` (e.g. [`CLIENT_PRIV_IF`]) down; the kernel
    /// drops every route through it at once.
    pub fn client_link_down(&self, link: &str) {
        ip(&["-n", &self.client, "link", "set", link, "down"]);
        wait_link_state(&self.client, link, "DOWN");
    }

    /// Undoes [`Topology::client_link_down`]: the link up again (waiting for its
    /// carrier), then the per-target routes the kernel dropped with it.
    pub fn client_link_up(&self, link: &str) {
        ip(&["-n", &self.client, "link", "set", link, "up"]);
        wait_link_state(&self.client, link, "UP");
        for (net, via) in &self.client_routes {
            self.add_client_route(net, *via);
        }
    }

    /// Sets the router's end of the client's `eth-priv` down (`up = false`) or up: the
    /// client's interface stays administratively up but loses its carrier, as when a
    /// cable is pulled or a tunnel's peer goes away; its routes stay in the table.
    pub fn private_carrier(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.router, "link", "set", "to-client", state]);
        wait_link_state(&self.router, "to-client", &state.to_uppercase());
        if up {
            wait_link_state(&self.client, CLIENT_PRIV_IF, "UP");
        }
    }

    /// The router silently drops forwarded traffic to and from `target`'s address (an
    /// nftables table `pd_blackhole_<name>` in the router namespace): connects time out.
    pub fn blackhole(&self, target: &str) {
        let target = self.target(target);
        let ruleset = format!(
            "table ip pd_blackhole_{name} {{\n\
             \tchain forward {{\n\
             \t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tip daddr {addr} drop\n\
             \t\tip saddr {addr} drop\n\
             \t}}\n\
             }}\n",
            name = target.name,
            addr = target.addr
        );
        nft(&self.router, &ruleset);
    }

    /// Undoes [`Topology::blackhole`].
    pub fn unblackhole(&self, target: &str) {
        let target = self.target(target);
        nft(
            &self.router,
            &format!("delete table ip pd_blackhole_{}\n", target.name),
        );
    }

    /// Deletes the client's route for `net` (e.g. `"10.94.205.0/24"`).
    pub fn remove_client_route(&self, net: &str) {
        ip(&["-n", &self.client, "route", "del", net]);
    }

    /// Adds (or replaces) a client route for `net` via `via`; the interface follows from
    /// the gateway's address (10.0.1.1: `eth-priv`, 192.0.2.1: `eth-pub`).
    pub fn add_client_route(&self, net: &str, via: Ipv4Addr) {
        ip(&[
            "-n",
            &self.client,
            "route",
            "replace",
            net,
            "via",
            &via.to_string(),
        ]);
    }

    /// The source address the kernel in `ns` picks for traffic to `dst` (a connected UDP
    /// socket's local address: no packet is sent).
    pub fn egress_source(&self, ns: &str, dst: IpAddr) -> IpAddr {
        run_in_ns(ns, || {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind udp");
            socket.connect((dst, 443)).expect("connect udp");
            socket.local_addr().expect("local addr").ip()
        })
    }

    /// The interface `ip route get` in `ns` names for `dst`.
    pub fn egress_interface(&self, ns: &str, dst: IpAddr) -> String {
        let out = ip(&["-n", ns, "route", "get", &dst.to_string()]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|word| *word != "dev")
            .nth(1)
            .unwrap_or_else(|| panic!("no `dev` in `ip route get {dst}`: {text}"))
            .to_owned()
    }

    /// A certificate for `dns_names` (DNS or IP SANs) signed by the test CA, written as
    /// PEM files: `(certificate, private key)`.
    pub fn issue_cert(&self, dns_names: &[&str]) -> (PathBuf, PathBuf) {
        self.ca.issue_cert(dns_names)
    }

    /// A registry stand-in (`tests/support/registry_v2.py`) on `target`'s address, port
    /// 443, inside the target's namespace, presenting a certificate for `server_name`
    /// from the test CA. `GET /v2/` answers 401 with
    /// `WWW-Authenticate: Bearer realm="https://<realm>/auth",service="registry.aliyuncs.com:cn-hangzhou:26842"`;
    /// other paths 404. Returns once it listens.
    pub fn start_registry(&self, target: &str, server_name: &str, realm: &str) -> Process {
        self.start_registry_with(target, server_name, realm, &[])
    }

    /// [`Topology::start_registry`] with more arguments for the script, e.g.
    /// `["--blob-size", "4194304", "--blob-rate", "524288"]` for its slow `GET /blob`.
    pub fn start_registry_with(
        &self,
        target: &str,
        server_name: &str,
        realm: &str,
        extra: &[&str],
    ) -> Process {
        let cert = self.issue_cert(&[server_name]);
        let target = self.target(target);
        let command = registry_command(cert, target.addr.into(), 443, realm, extra);
        wait_for_https(spawn_in(&target.ns, "registry_v2.py", &command))
    }

    /// A plain-HTTP listener (the same script with `--plain`) on `target`'s address and
    /// `port`: something that accepts TCP connections. Returns once it listens.
    pub fn start_tcp_listener(&self, target: &str, port: u16) -> Process {
        let target = self.target(target);
        let mut command = Command::new(python3());
        command
            .arg(support_script("registry_v2.py"))
            .args(["--plain", "--addr", &target.addr.to_string(), "--port"])
            .arg(port.to_string());
        let mut process = spawn_in(&target.ns, "registry_v2.py", &command);
        process.wait_for_line("that it listens", |line| {
            line.contains("serving http on").then_some(())
        });
        process
    }

    /// One HTTPS `GET path` from namespace `ns` to `addr:443` with SNI and Host
    /// `server_name`, verified against the test CA (`tests/support/https_get.py`);
    /// `timeout` applies to the connect and to each read.
    /// `Ok((status, headers))`, or `Err(what python's ssl/socket said)`.
    pub fn https_get(
        &self,
        ns: &str,
        addr: Ipv4Addr,
        server_name: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, Vec<(String, String)>), String> {
        let mut command = Command::new(python3());
        command
            .arg(support_script("https_get.py"))
            .arg(&self.ca_cert)
            .args([&addr.to_string(), "443", server_name, path])
            .arg(timeout.as_secs_f64().to_string());
        let out = netns_exec_command(ns, &command)
            .stdin(Stdio::null())
            .output()
            .expect("run https_get.py");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let status = lines
            .next()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("https_get.py printed no status: {text}"));
        let headers = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok((status, headers))
    }

    /// `pathdns run --config <config>` inside the client namespace (like
    /// [`Agent::start`]); query it from inside the client namespace ([`run_in_ns`]).
    pub fn start_agent(&self, config: &str) -> Agent {
        start_agent_in(&self.client, config, &[])
    }

    /// [`Topology::start_agent`] with extra environment variables for the process.
    pub fn start_agent_with_env(&self, config: &str, env: &[(&str, &str)]) -> Agent {
        start_agent_in(&self.client, config, env)
    }
}

/// Two namespaces joined by one veth pair, for tests of which address answers: `server`
/// with every address of `server_addrs` on its interface [`TARGET_IF`], `client` with
/// `client_addrs` on its own. Addresses are given with their prefix; IPv6 ones are added
/// without duplicate address detection, so they work at once. Removed on drop, like a
/// [`Topology`].
pub struct Pair {
    pub server: String,
    pub client: String,
    namespaces: Vec<String>,
}

impl Pair {
    /// `None` (after a loud SKIPPED line) without root.
    pub fn build(server_addrs: &[&str], client_addrs: &[&str]) -> Option<Pair> {
        if !super::is_root() {
            eprintln!(
                "\n########################################################################\n\
                 ## SKIPPED (not root): network-namespace test needs root;\n\
                 ## run the whole suite with `sudo tests/run.sh`\n\
                 ########################################################################\n"
            );
            return None;
        }
        let id = format!(
            "pd{}x{}",
            std::process::id(),
            TOPOLOGY_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut pair = Pair {
            server: format!("{id}-server"),
            client: format!("{id}-client"),
            namespaces: Vec::new(),
        };
        // From here on a panic drops `pair`, which removes what exists so far.
        for ns in [pair.server.clone(), pair.client.clone()] {
            ip(&["netns", "add", &ns]);
            pair.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (server, client) = (pair.server.as_str(), pair.client.as_str());
        ip(&[
            "-n", server, "link", "add", TARGET_IF, "type", "veth", "peer", "name", TARGET_IF,
            "netns", client,
        ]);
        for (ns, addrs) in [(server, server_addrs), (client, client_addrs)] {
            for addr in addrs {
                let mut args = vec!["-n", ns, "addr", "add", addr, "dev", TARGET_IF];
                if addr.contains(':') {
                    args.push("nodad");
                }
                ip(&args);
            }
            ip(&["-n", ns, "link", "set", TARGET_IF, "up"]);
        }
        for ns in [server, client] {
            wait_link_state(ns, TARGET_IF, "UP");
        }
        Some(pair)
    }

    /// `pathdns run --config <config>` inside the server namespace.
    pub fn start_agent(&self, config: &str) -> Agent {
        start_agent_in(&self.server, config, &[])
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        remove_namespaces(&self.namespaces);
    }
}

/// `pathdns run --config <config>` inside namespace `ns`, like [`Agent::start`].
fn start_agent_in(ns: &str, config: &str, env: &[(&str, &str)]) -> Agent {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pathdns.toml");
    std::fs::write(&path, super::with_test_control(config)).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pathdns"));
    command
        .args(["run", "--config"])
        .arg(&path)
        .env("PATHDNS_LOG", "info")
        .envs(env.iter().copied());
    let mut process = spawn_in(ns, "pathdns", &command);
    let addr = process.wait_for_line("its listen address", listening_addr);
    Agent {
        process,
        addr,
        config_path: path,
        _dir: dir,
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        remove_namespaces(&self.namespaces);
    }
}

/// Kills every process in `namespaces` (but this one) and deletes them, last first. Must
/// not panic: this also runs while a failing test unwinds.
fn remove_namespaces(namespaces: &[String]) {
    let own = std::process::id().to_string();
    for ns in namespaces.iter().rev() {
        if let Ok(out) = ip_quiet(&["netns", "pids", ns]) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if pid != own {
                    let _ = Command::new("kill")
                        .args(["-KILL", pid])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
    for ns in namespaces.iter().rev() {
        match ip_quiet(&["netns", "del", ns]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "netns: cannot delete namespace {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => eprintln!("netns: cannot run ip netns del {ns}: {err}"),
        }
    }
}

/// Runs `f` on a new thread that has entered network namespace `ns`; sockets created
/// there belong to `ns` (and stay in it after the thread ends). A panic in `f` is passed
/// on.
pub fn run_in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/var/run/netns").join(ns);
    let handle = File::open(&path).unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || {
            setns(&handle, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|err| panic!("setns into {ns}: {err}"));
            drop(handle);
            f()
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// `ip netns exec ns args...`, its output collected (not checked).
pub fn ip_netns_exec(ns: &str, args: &[&str]) -> Output {
    let (program, rest) = args.split_first().expect("a program to run");
    let mut command = Command::new(program);
    command.args(rest);
    output_in(ns, &command)
}

/// Runs `command` (its environment kept) inside namespace `ns` to its end: its output.
pub fn output_in(ns: &str, command: &Command) -> Output {
    netns_exec_command(ns, command)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("ip netns exec {ns} {command:?}: {err}"))
}

/// Starts `command` (program, arguments, environment and working directory are taken
/// from it) inside namespace `ns` through `ip netns exec`, which execs it: the returned
/// process is the command itself, killed on drop.
pub fn spawn_in(ns: &str, name: &'static str, command: &Command) -> Process {
    Process::spawn(name, &mut netns_exec_command(ns, command))
}

/// `ip netns exec ns <command>` as a new [`Command`].
fn netns_exec_command(ns: &str, command: &Command) -> Command {
    let mut wrapped = Command::new(tool("ip"));
    wrapped
        .args(["netns", "exec", ns])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed: run `sudo tests/run.sh`, which installs it")
    })
}

fn python3() -> PathBuf {
    which("python3").unwrap_or_else(|| {
        panic!("python3 is not installed: run `sudo tests/run.sh`, which installs it")
    })
}

fn support_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

fn ip_quiet(args: &[&str]) -> std::io::Result<Output> {
    Command::new(tool("ip"))
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// Runs `ip args...`, panicking with its stderr if it fails.
fn ip(args: &[&str]) -> Output {
    let out = ip_quiet(args).unwrap_or_else(|err| panic!("run ip {args:?}: {err}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Loads an nftables script into namespace `ns`, panicking with nft's stderr if it fails.
pub fn nft(ns: &str, script: &str) {
    let mut child = Command::new(tool("ip"))
        .args(["netns", "exec", ns])
        .arg(tool("nft"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write nft script");
    let out = child.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft in {ns} failed: {}\nscript:\n{script}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Writes a sysctl (`/proc/sys/<key>`) inside `ns` and checks it took.
fn sysctl_in(ns: &str, key: &str, value: &str) {
    let path = Path::new("/proc/sys").join(key);
    let read = run_in_ns(ns, || {
        std::fs::write(&path, value).unwrap_or_else(|err| panic!("write {key}: {err}"));
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {key}: {err}"))
    });
    assert_eq!(read.trim(), value, "{key} in {ns}");
}

/// A veth pair: `left_if` in `left_ns` and `right_if` in `right_ns`, addressed and up.
fn veth(
    left_ns: &str,
    left_if: &str,
    left_addr: &str,
    right_ns: &str,
    right_if: &str,
    right_addr: &str,
) {
    ip(&[
        "-n", left_ns, "link", "add", left_if, "type", "veth", "peer", "name", right_if, "netns",
        right_ns,
    ]);
    ip(&["-n", left_ns, "addr", "add", left_addr, "dev", left_if]);
    ip(&["-n", right_ns, "addr", "add", right_addr, "dev", right_if]);
    ip(&["-n", left_ns, "link", "set", left_if, "up"]);
    ip(&["-n", right_ns, "link", "set", right_if, "up"]);
}

/// Waits until `link` in `ns` reports operational state `state` (`UP`, `DOWN`). A veth
/// passes no traffic until the kernel has processed its carrier change, which can lag
/// up to a second behind `ip link set up`.
fn wait_link_state(ns: &str, link: &str, state: &str) {
    let deadline = Instant::now() + READY_DEADLINE;
    let needle = format!(" state {state} ");
    loop {
        let out = ip(&["-n", ns, "-o", "link", "show", "dev", link]);
        let text = String::from_utf8_lossy(&out.stdout);
        let ready = text.contains(&needle) && (state != "UP" || !text.contains("qdisc noop"));
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{link} in {ns} not {state} within {READY_DEADLINE:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn parse_specs(specs: &[TargetSpec<'_>]) -> Vec<(String, Ipv4Net, Ipv4Addr)> {
    let mut seen: Vec<&str> = Vec::new();
    specs
        .iter()
        .map(|&(name, host, gateway)| {
            assert!(
                !name.is_empty()
                    && name.len() <= 12
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "target name {name:?}: 1 to 12 characters of [a-z0-9]"
            );
            assert!(
                !["client", "router", "public"].contains(&name) && !seen.contains(&name),
                "target name {name:?} is reserved or used twice"
            );
            seen.push(name);
            let host: Ipv4Net = host
                .parse()
                .unwrap_or_else(|err| panic!("target {name} address {host:?}: {err}"));
            let gateway_net: Ipv4Net = gateway
                .parse()
                .unwrap_or_else(|err| panic!("target {name} router address {gateway:?}: {err}"));
            assert!(
                gateway_net.trunc() == host.trunc() && gateway_net.addr() != host.addr(),
                "target {name}: router address {gateway} must be another address in {}",
                host.trunc()
            );
            (name.to_owned(), host, gateway_net.addr())
        })
        .collect()
}

/// A fresh test CA: `(certificate PEM, issuer)`.
fn new_ca() -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(DnType::CommonName, "pathdns test CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "pathdns tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("generate CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    (cert.pem(), Issuer::new(params, key))
}
