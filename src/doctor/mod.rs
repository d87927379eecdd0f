//! `pathdns doctor`: the documents' verification steps, walked from this host for every
//! owned name and target, without the daemon.
//!
//! Owns: the checks and their verdicts with remedies, as [`Check`] values in print order:
//!
//! 1. resolve: what the agent at the configured listen address answers for each name (one
//!    query per name to that address and nowhere else), and whether `/etc/hosts` overrides
//!    it; whether resolv.conf points at pathdns at all;
//! 2. route: the interface and source address the kernel picks for each target, against
//!    the configured `interface`;
//! 3. connect: TCP 443 (or a custom name's probe ports);
//! 4. the registry's `GET /v2/`: 401 with a `Bearer realm`, and whether the realm's host is
//!    an owned name;
//! 5. dockerauth and OSS: a TLS handshake with SNI = the name (`ca_file` honoured);
//! 6. the 100.0.0.0/8 trap: [`Config::conflicts`].
//!
//! Every network step is bounded by [`Options::timeout`] and the targets are checked
//! concurrently, so a run takes about two timeouts however many targets there are.
//! Must not: print (the CLI does), or send anything to a host that is not a configured
//! target or the configured listen address.

pub mod hosts_file;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::config::{
    resolv_conf_nameservers, AllDownPolicy, AnswerSpec, Config, OwnedName, ProbeKind, Role,
};
use crate::host::{self, Conflict, Finding, Interface, Lookup, Route};
use crate::probe::{self, tls::TlsConfigs, Outcome, Prepared, ProbeContext, ProbeTarget};

/// A check's verdict. Only [`Status::Fail`] makes `pathdns doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// The name column of host-wide checks.
pub const HOST: &str = "(host)";
/// The target column of checks about a name rather than one of its targets.
pub const NO_TARGET: &str = "-";

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    /// The owned name, or [`HOST`].
    pub name: String,
    /// The target address, or [`NO_TARGET`].
    pub target: String,
    /// `resolve`, `hosts`, `resolver`, `route`, `connect`, `https /v2/`, `tls`, `conflicts`.
    pub check: &'static str,
    pub detail: String,
    /// What to do about a failure (always set for [`Status::Fail`]).
    pub remedy: Option<String>,
}

impl Check {
    fn new(status: Status, name: &str, target: &str, check: &'static str, detail: String) -> Check {
        Check {
            status,
            name: name.to_owned(),
            target: target.to_owned(),
            check,
            detail,
            remedy: None,
        }
    }

    fn fail(
        name: &str,
        target: &str,
        check: &'static str,
        detail: String,
        remedy: String,
    ) -> Check {
        Check {
            remedy: Some(remedy),
            ..Check::new(Status::Fail, name, target, check, detail)
        }
    }
}

/// Where doctor looks and how long it waits.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bound on each network step (a DNS query, a connect, a handshake, a request).
    pub timeout: Duration,
    /// The hosts file glibc reads before DNS.
    pub hosts_file: PathBuf,
    /// The resolver configuration that says whom this host asks.
    pub resolv_conf: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(2),
            hosts_file: PathBuf::from("/etc/hosts"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
        }
    }
}

/// Runs every check; the result is in print order: host-wide checks, then per name its
/// own checks followed by those of each of its targets.
pub async fn run(config: &Config, options: &Options) -> Vec<Check> {
    let context = Arc::new(ProbeContext {
        tls: TlsConfigs::default(),
        pinger: None,
    });
    let owned: Arc<Vec<String>> = Arc::new(config.names.iter().map(OwnedName::display).collect());
    let interfaces = Arc::new(host::interfaces());
    let routes = Arc::new(host::routes());
    let findings = Arc::new(config.conflicts());
    let hosts = std::fs::read_to_string(&options.hosts_file)
        .map(|text| hosts_file::parse(&text))
        .unwrap_or_default();
    let agent = agent_address(config);

    let mut report = resolver_check(config, &options.resolv_conf);
    let mut pending = Vec::new();
    for name in &config.names {
        let resolve = tokio::spawn(resolve_checks(
            name.clone(),
            agent,
            options.timeout,
            hosts_checks(name, &hosts, &options.hosts_file),
        ));
        let mut targets = Vec::new();
        for addr in name.addresses() {
            let plan = TargetPlan {
                name: name.clone(),
                addr,
                display: name.display(),
                target: addr.to_string(),
                probe_target: ProbeTarget {
                    addr,
                    server_name: name.name.clone(),
                },
                ca_file: ca_file_of(config, name),
                owned: owned.clone(),
                interfaces: interfaces.clone(),
                routes: routes.clone(),
                findings: findings.clone(),
                timeout: options.timeout,
            };
            targets.push(tokio::spawn(target_checks(plan, context.clone())));
        }
        pending.push((name.display(), resolve, targets));
    }
    for (display, resolve, targets) in pending {
        report.extend(joined(resolve.await, &display, NO_TARGET));
        for target in targets {
            report.extend(joined(target.await, &display, NO_TARGET));
        }
    }
    report.extend(host_read_checks());
    report
}

/// Host reads that failed during the checks: the verdicts above lack what they could not
/// read, and say so here.
fn host_read_checks() -> Vec<Check> {
    host::failures::current()
        .into_iter()
        .map(|failure| {
            Check::new(
                Status::Warn,
                HOST,
                NO_TARGET,
                "host-read",
                format!("reading {} failed: {}", failure.read, failure.cause),
            )
        })
        .collect()
}

/// A check task's lines, or one failure line if the task itself died.
fn joined(
    result: Result<Vec<Check>, tokio::task::JoinError>,
    name: &str,
    target: &str,
) -> Vec<Check> {
    result.unwrap_or_else(|err| {
        vec![Check::fail(
            name,
            target,
            "internal",
            format!("the check stopped: {err}"),
            "report this as a pathdns bug".into(),
        )]
    })
}

/// Whether a report has a failure: `pathdns doctor`'s exit status.
pub fn failed(report: &[Check]) -> bool {
    report.iter().any(|check| check.status == Status::Fail)
}

// ---------------------------------------------------------------------------------------
// 1. resolve

/// The address to ask: the first listen address, with an unspecified IP replaced by the
/// loopback of its family. `None` for port 0 (no fixed address to ask).
fn agent_address(config: &Config) -> Option<SocketAddr> {
    let listen = *config.server.listen.first()?;
    if listen.port() == 0 {
        return None;
    }
    Some(host::local_address(listen))
}

/// Whom this host asks: resolv.conf's nameservers against pathdns's listen addresses.
fn resolver_check(config: &Config, resolv_conf: &Path) -> Vec<Check> {
    let warn = |detail: String| {
        vec![Check::new(
            Status::Warn,
            HOST,
            NO_TARGET,
            "resolver",
            detail,
        )]
    };
    let file = resolv_conf.display();
    let text = match std::fs::read_to_string(resolv_conf) {
        Ok(text) => text,
        Err(err) => return warn(format!("cannot read {file}: {}", probe::io_reason(&err))),
    };
    // A scoped IPv6 address (fe80::1%eth0) is left out: it is not pathdns's.
    let nameservers = resolv_conf_nameservers(&text);
    let listed: Vec<String> = nameservers.iter().map(IpAddr::to_string).collect();
    let listed = if listed.is_empty() {
        "no nameserver".to_owned()
    } else {
        listed.join(", ")
    };
    let on_53: Vec<&SocketAddr> = config
        .server
        .listen
        .iter()
        .filter(|addr| addr.port() == 53)
        .collect();
    let Some(first_listen) = config.server.listen.first() else {
        return Vec::new();
    };
    if on_53.is_empty() {
        return warn(format!(
            "pathdns listens on {first_listen}, and resolv.conf can only name port 53: this host \
             asks it only through a forwarder (such as systemd-resolved) that routes the owned \
             names to it ({file} names {listed})"
        ));
    }
    let is_pathdns = |server: &IpAddr| {
        on_53.iter().any(|listen| {
            listen.ip() == *server
                || (listen.ip().is_unspecified()
                    && (server.is_loopback() || is_local_address(*server)))
        })
    };
    match nameservers.iter().position(is_pathdns) {
        Some(0) => vec![Check::new(
            Status::Ok,
            HOST,
            NO_TARGET,
            "resolver",
            format!("{file} names pathdns first ({listed})"),
        )],
        Some(_) => warn(format!(
            "{file} names pathdns, but not first ({listed}): glibc takes the first server's \
             answer, so the owned names are answered by another resolver"
        )),
        None if nameservers.first() == Some(&IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53))) => {
            warn(format!(
                "{file} names systemd-resolved ({listed}): it must route the owned names to \
                 pathdns at {first_listen} (a split-DNS route); doctor cannot see that"
            ))
        }
        None => warn(format!(
            "{file} names {listed}, not pathdns: this host does not ask it yet (point \
             resolv.conf at {} once the checks below pass)",
            on_53[0].ip()
        )),
    }
}

fn is_local_address(addr: IpAddr) -> bool {
    host::interfaces()
        .iter()
        .any(|iface| iface.networks.iter().any(|net| net.addr() == addr))
}

/// What the agent at `agent` answers for `name`, then `extra` (the hosts-file lines).
async fn resolve_checks(
    name: OwnedName,
    agent: Option<SocketAddr>,
    timeout: Duration,
    extra: Vec<Check>,
) -> Vec<Check> {
    let display = name.display();
    let mut checks = vec![resolve_check(&name, &display, agent, timeout).await];
    checks.extend(extra);
    checks
}

async fn resolve_check(
    name: &OwnedName,
    display: &str,
    agent: Option<SocketAddr>,
    timeout: Duration,
) -> Check {
    let check = |status, detail| Check::new(status, display, NO_TARGET, "resolve", detail);
    let Some(agent) = agent else {
        return check(
            Status::Warn,
            "not resolving through pathdns: the config listens on port 0, so there is no \
             fixed address to ask"
                .into(),
        );
    };
    // A wildcard is asked for one name below it.
    let (qname, shown) = if name.is_wildcard() {
        let below = Name::from_ascii("pathdns-doctor")
            .and_then(|l| l.append_domain(&name.name.base_name()));
        match below {
            Ok(qname) => {
                let shown = qname.to_ascii().trim_end_matches('.').to_owned();
                (qname, format!(" for {shown}"))
            }
            Err(err) => return check(Status::Warn, format!("cannot form a name below it: {err}")),
        }
    } else {
        (name.name.clone(), String::new())
    };
    let targets = match &name.answer {
        AnswerSpec::Targets(targets) => targets.clone(),
        AnswerSpec::Cname(_) => Vec::new(),
    };
    let rtype = if targets.is_empty() || targets.iter().any(|t| t.addr.is_ipv4()) {
        RecordType::A
    } else {
        RecordType::AAAA
    };
    let response = match ask(agent, &qname, rtype, timeout).await {
        Ok(response) => response,
        Err(AskError::NoAgent(why)) => {
            return check(
                Status::Warn,
                format!("not resolving through pathdns: nothing answers at {agent} ({why})"),
            )
        }
        Err(AskError::Other(why)) => {
            return Check::fail(
                display,
                NO_TARGET,
                "resolve",
                format!("asking {agent}: {why}"),
                format!("check what listens at {agent}"),
            )
        }
    };
    let reload = format!(
        "the agent at {agent} does not serve this config: reload it (systemctl reload pathdns) \
         or check which --config it runs"
    );
    let rcode = response.metadata.response_code;
    let addrs: Vec<IpAddr> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    let cnames: Vec<String> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::CNAME(target) => Some(target.0.to_ascii().trim_end_matches('.').to_owned()),
            _ => None,
        })
        .collect();
    if rcode != ResponseCode::NoError {
        let (detail, remedy) = match rcode {
            ResponseCode::Refused => (
                format!("{agent} answers REFUSED{shown}"),
                format!(
                    "the server at {agent} refuses this host: allow loopback in server.allow, \
                     or check what listens at {agent}"
                ),
            ),
            ResponseCode::ServFail if name.health.when_all_down == AllDownPolicy::Servfail => (
                format!("{agent} answers SERVFAIL{shown}: every target is down (when_all_down = \"servfail\")"),
                "see the target checks below".to_owned(),
            ),
            ResponseCode::ServFail => (
                format!("{agent} answers SERVFAIL{shown}"),
                "see `pathdns status` and the agent's log".to_owned(),
            ),
            other => (format!("{agent} answers {other}{shown}"), reload.clone()),
        };
        return Check::fail(display, NO_TARGET, "resolve", detail, remedy);
    }
    let authoritative = response.metadata.authoritative;
    match &name.answer {
        AnswerSpec::Cname(target) => {
            let expected = target.to_ascii().trim_end_matches('.').to_owned();
            if cnames.first() == Some(&expected) {
                check(
                    Status::Ok,
                    format!("pathdns at {agent} answers CNAME {expected}{shown}"),
                )
            } else {
                Check::fail(
                    display,
                    NO_TARGET,
                    "resolve",
                    format!(
                        "{agent} answers {}{shown}, this config says CNAME {expected}",
                        describe_answer(&addrs, &cnames)
                    ),
                    reload,
                )
            }
        }
        AnswerSpec::Targets(targets) => {
            let family = |addr: &IpAddr| (rtype == RecordType::A) == addr.is_ipv4();
            let all: Vec<IpAddr> = targets.iter().map(|t| t.addr).filter(family).collect();
            let best_priority = targets
                .iter()
                .filter(|t| family(&t.addr))
                .map(|t| t.priority)
                .min();
            let best: Vec<IpAddr> = targets
                .iter()
                .filter(|t| family(&t.addr) && Some(t.priority) == best_priority)
                .map(|t| t.addr)
                .collect();
            let answered = describe_answer(&addrs, &cnames);
            if addrs.is_empty() || !addrs.iter().all(|a| all.contains(a)) {
                return Check::fail(
                    display,
                    NO_TARGET,
                    "resolve",
                    format!(
                        "{agent} answers {answered}{shown}, this config has {}",
                        join(&all)
                    ),
                    reload,
                );
            }
            if !authoritative {
                return check(
                    Status::Warn,
                    format!(
                        "{agent} answers {answered}{shown}, but not authoritatively: a resolver \
                         other than pathdns answers there"
                    ),
                );
            }
            if addrs.iter().all(|a| best.contains(a)) {
                check(
                    Status::Ok,
                    format!("pathdns at {agent} answers {answered}{shown}"),
                )
            } else {
                check(
                    Status::Warn,
                    format!(
                        "pathdns at {agent} answers {answered}{shown}: failed over, the \
                         preferred targets {} are down for the agent",
                        join(&best)
                    ),
                )
            }
        }
    }
}

fn describe_answer(addrs: &[IpAddr], cnames: &[String]) -> String {
    match (addrs.is_empty(), cnames.first()) {
        (true, None) => "no address (NODATA)".to_owned(),
        (true, Some(cname)) => format!("CNAME {cname}"),
        (false, _) => join(addrs),
    }
}

fn join(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        return "none".to_owned();
    }
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

enum AskError {
    /// Nothing listens there (timeout or port unreachable).
    NoAgent(String),
    Other(String),
}

/// One UDP query to `server`; replies with another ID are ignored.
async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, AskError> {
    let other = |err: std::io::Error| AskError::Other(probe::io_reason(&err));
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.map_err(other)?;
    socket.connect(server).await.map_err(other)?;
    let id = fastrand::u16(..);
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), rtype));
    let bytes = query
        .to_vec()
        .map_err(|err| AskError::Other(format!("cannot encode the query: {err}")))?;
    socket.send(&bytes).await.map_err(other)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
        let len = match received {
            Err(_) => {
                return Err(AskError::NoAgent(format!(
                    "no answer within {}",
                    secs(timeout)
                )))
            }
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(AskError::NoAgent("port unreachable".into()))
            }
            Ok(Err(err)) => return Err(other(err)),
            Ok(Ok(len)) => len,
        };
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        match Message::from_vec(packet) {
            Ok(response) if response.metadata.id == id => return Ok(response),
            _ => continue,
        }
    }
}

/// `/etc/hosts` lines for `name`: glibc reads them before asking DNS.
fn hosts_checks(name: &OwnedName, hosts: &[hosts_file::Entry], file: &Path) -> Vec<Check> {
    if name.is_wildcard() {
        return Vec::new();
    }
    let display = name.display();
    let (found, lines) = hosts_file::lookup(hosts, &display);
    if found.is_empty() {
        return Vec::new();
    }
    let file = file.display();
    let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
    let at = format!("{file} line {}", lines.join(", "));
    let configured = name.addresses();
    if !configured.is_empty() && found.iter().all(|addr| configured.contains(addr)) {
        vec![Check::new(
            Status::Warn,
            &display,
            NO_TARGET,
            "hosts",
            format!(
                "{at} gives {}: glibc reads it before DNS, so this host never asks pathdns for \
                 it (no failover); remove the line once pathdns is the resolver",
                join(&found)
            ),
        )]
    } else {
        let configured = match &name.answer {
            AnswerSpec::Cname(target) => {
                format!("CNAME {}", target.to_ascii().trim_end_matches('.'))
            }
            AnswerSpec::Targets(_) => join(&configured),
        };
        vec![Check::fail(
            &display,
            NO_TARGET,
            "hosts",
            format!(
                "{at} gives {}, this config has {configured}: glibc reads the file before DNS, \
                 so the host uses the file's address",
                join(&found)
            ),
            format!("remove (or fix) {at}"),
        )]
    }
}

// ---------------------------------------------------------------------------------------
// 2-6. per target

/// Everything one target's checks need, owned so that they run on their own task.
struct TargetPlan {
    name: OwnedName,
    addr: IpAddr,
    /// The name and target columns.
    display: String,
    target: String,
    /// The address, with the name for SNI and Host.
    probe_target: ProbeTarget,
    ca_file: Option<PathBuf>,
    owned: Arc<Vec<String>>,
    interfaces: Arc<Vec<Interface>>,
    routes: Arc<Vec<Route>>,
    findings: Arc<Vec<Finding>>,
    timeout: Duration,
}

async fn target_checks(plan: TargetPlan, context: Arc<ProbeContext>) -> Vec<Check> {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let mut checks = Vec::new();

    let route = route_check(&plan);
    let route_failed = route.status == Status::Fail;
    checks.push(route);

    let mut connected = true;
    let ports = connect_ports(&plan.name);
    for port in &ports {
        let check = connect_check(&plan, *port, !route_failed, &context).await;
        connected &= check.status != Status::Fail;
        checks.push(check);
    }

    let app = match plan.name.role {
        Role::Registry => Some("https /v2/"),
        Role::Auth | Role::Oss | Role::OssBucket => Some("tls"),
        Role::OssWildcard | Role::Custom => None,
    };
    if let Some(label) = app {
        if !connected {
            checks.push(Check::new(
                Status::Warn,
                display,
                target,
                label,
                "not tried: no TCP connection on 443".into(),
            ));
        } else if plan.name.role == Role::Registry {
            checks.push(registry_check(&plan, &context).await);
        } else {
            checks.push(tls_check(&plan, &context).await);
        }
    }

    checks.extend(conflict_checks(&plan, route_failed));
    checks
}

/// Ports to connect to: 443 for the preset's names, a custom name's probe ports.
fn connect_ports(name: &OwnedName) -> Vec<u16> {
    if name.role != Role::Custom {
        return vec![443];
    }
    let mut ports = Vec::new();
    for probe in &name.health.probes {
        let port = match &probe.kind {
            ProbeKind::Tcp { port }
            | ProbeKind::Tls { port, .. }
            | ProbeKind::Https { port, .. } => *port,
            ProbeKind::Icmp | ProbeKind::Path { .. } => continue,
        };
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// The CA for TLS checks: the name's own TLS/HTTPS probe's, else its `[[registry]]` block's.
fn ca_file_of(config: &Config, name: &OwnedName) -> Option<PathBuf> {
    let own = |n: &OwnedName| {
        n.health.probes.iter().find_map(|probe| match &probe.kind {
            ProbeKind::Tls { ca_file, .. } | ProbeKind::Https { ca_file, .. } => ca_file.clone(),
            _ => None,
        })
    };
    if let Some(found) = own(name) {
        return Some(found);
    }
    let block = preset_block(&name.origin)?;
    config
        .names
        .iter()
        .filter(|other| preset_block(&other.origin) == Some(block))
        .find_map(own)
}

/// `registry[0]` of `registry[0].oss`; `None` for a `[[name]]`.
fn preset_block(origin: &str) -> Option<&str> {
    origin
        .split('.')
        .next()
        .filter(|block| block.starts_with("registry["))
}

fn route_check(plan: &TargetPlan) -> Check {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let addr = plan.addr;
    let expected = plan.name.health.interface.as_deref();
    let check = |status, detail| Check::new(status, display, target, "route", detail);
    if let Some(expected) = expected {
        match plan.interfaces.iter().find(|iface| iface.name == expected) {
            None => {
                return Check::fail(
                    display,
                    target,
                    "route",
                    format!("the private interface {expected} does not exist on this host"),
                    format!("fix `interface` in the config, or bring up the tunnel that creates {expected}"),
                )
            }
            Some(iface) if !iface.up => {
                return Check::fail(
                    display,
                    target,
                    "route",
                    format!("the private interface {expected} is down"),
                    format!("bring {expected} up (ip link set {expected} up), or restore the VPN or Express Connect link behind it"),
                )
            }
            Some(_) => {}
        }
    }
    let egress = match host::lookup(addr) {
        Ok(Lookup::Route(egress)) => egress,
        Ok(Lookup::NoRoute { reason, .. }) => {
            return Check::fail(
                display,
                target,
                "route",
                format!("no route to {addr}: {reason}"),
                add_route_remedy(addr, expected, &plan.routes),
            )
        }
        Err(err) => {
            return Check::fail(
                display,
                target,
                "route",
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
    match expected {
        Some(expected) if egress.interface.as_deref() != Some(expected) => Check::fail(
            display,
            target,
            "route",
            format!("{detail}, not via the private interface {expected}"),
            add_route_remedy(addr, Some(expected), &plan.routes),
        ),
        Some(_) => check(Status::Ok, format!("{detail}, the configured interface")),
        None => check(Status::Ok, detail),
    }
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

/// Step 3 of the documents: a route for the target through the private path.
fn add_route_remedy(addr: IpAddr, interface: Option<&str>, routes: &[Route]) -> String {
    let host = if addr.is_ipv4() { 32 } else { 128 };
    match interface {
        Some(iface) => {
            let gateway = routes
                .iter()
                .find(|route| route.interface == iface && route.gateway.is_some())
                .and_then(|route| route.gateway);
            match gateway {
                Some(gateway) => format!(
                    "route it through the private path: ip route add {addr}/{host} via {gateway} dev {iface}"
                ),
                None => format!(
                    "route it through the private path: ip route add {addr}/{host} dev {iface} \
                     (via the gateway on {iface})"
                ),
            }
        }
        None => format!(
            "add a route for {addr}/{host} through the private path (the VPN gateway, Express \
             Connect or CEN transit router), as in step 3 of the documents"
        ),
    }
}

async fn run_probe(
    kind: &ProbeKind,
    target: &ProbeTarget,
    timeout: Duration,
    context: &ProbeContext,
) -> Outcome {
    let prepared = match Prepared::new(kind, target, timeout, context) {
        Ok(prepared) => prepared,
        Err(err) => return Outcome::fail(err),
    };
    match tokio::time::timeout(timeout, prepared.run(target, timeout)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::fail(format!("no answer within {}", secs(timeout))),
    }
}

async fn connect_check(
    plan: &TargetPlan,
    port: u16,
    route_ok: bool,
    context: &ProbeContext,
) -> Check {
    let (display, target, probe_target) = (
        plan.display.as_str(),
        plan.target.as_str(),
        &plan.probe_target,
    );
    let outcome = run_probe(
        &ProbeKind::Tcp { port },
        probe_target,
        plan.timeout,
        context,
    )
    .await;
    if outcome.ok {
        return Check::new(
            Status::Ok,
            display,
            target,
            "connect",
            format!("tcp {port} open{}", took(&outcome)),
        );
    }
    let why = outcome.detail.unwrap_or_default();
    let addr = plan.addr;
    let remedy = if why.contains("refused") {
        format!(
            "{addr} answers but nothing listens on port {port}: the address is wrong or stale; \
             look it up again from inside the VPC (ping {} on an ECS in the region)",
            display.replacen("*.", "<bucket>.", 1)
        )
    } else if !route_ok {
        format!(
            "fix this host's route first (see the route check): {}",
            add_route_remedy(addr, plan.name.health.interface.as_deref(), &plan.routes)
        )
    } else if why.contains("unreachable") || why.contains("no route") {
        format!(
            "this host routes {addr} correctly, but a router on the private path reports it \
             unreachable: {}",
            path_hint(addr)
        )
    } else if why.contains("no answer within") {
        format!(
            "packets to {addr} are dropped on the way (no answer, no error): {}; and check \
             firewalls and security groups",
            path_hint(addr)
        )
    } else {
        format!("check the path to {addr}")
    };
    Check::fail(
        display,
        target,
        "connect",
        format!("tcp {port}: {}", short_detail(&why)),
        remedy,
    )
}

/// Where the rest of the private path is configured (step 3 of the documents).
fn path_hint(addr: IpAddr) -> String {
    let in_100 = match addr {
        IpAddr::V4(v4) => v4.octets()[0] == 100,
        IpAddr::V6(_) => false,
    };
    if in_100 {
        format!(
            "check the routes beyond this host: the documents add {addr}/32 to the route table \
             towards the transit router, and 100.0.0.0/8 to the CEN transit routers of both \
             regions"
        )
    } else {
        format!(
            "check the routes beyond this host towards {addr}'s VPC (VPN gateway, Express \
             Connect or CEN transit routers), and that the instance's access control allows \
             this network"
        )
    }
}

async fn tls_check(plan: &TargetPlan, context: &ProbeContext) -> Check {
    let (display, target, probe_target) = (
        plan.display.as_str(),
        plan.target.as_str(),
        &plan.probe_target,
    );
    let kind = ProbeKind::Tls {
        port: 443,
        ca_file: plan.ca_file.clone(),
    };
    let outcome = run_probe(&kind, probe_target, plan.timeout, context).await;
    let roots = match &plan.ca_file {
        Some(path) => format!("CA {}", path.display()),
        None => "system roots".into(),
    };
    if outcome.ok {
        return Check::new(
            Status::Ok,
            display,
            target,
            "tls",
            format!(
                "handshake as {display} verified ({roots}){}",
                took(&outcome)
            ),
        );
    }
    let why = outcome.detail.unwrap_or_default();
    Check::fail(
        display,
        target,
        "tls",
        format!("handshake as {display} ({roots}): {}", short_detail(&why)),
        tls_remedy(&why, display, plan.addr),
    )
}

fn tls_remedy(why: &str, display: &str, addr: IpAddr) -> String {
    if why.contains("certificate")
        || why.contains("UnknownIssuer")
        || why.contains("NotValidForName")
    {
        format!(
            "the certificate at {addr} is not valid for {display}: if a private CA signs it, set \
             `ca_file` in the [[registry]] block; otherwise {addr} is not {display} (look the \
             address up again from inside the VPC)"
        )
    } else {
        format!(
            "{addr} accepts TCP but the TLS handshake fails: check that {addr} really is {display}"
        )
    }
}

async fn registry_check(plan: &TargetPlan, context: &ProbeContext) -> Check {
    let (display, target, probe_target) = (
        plan.display.as_str(),
        plan.target.as_str(),
        &plan.probe_target,
    );
    const LABEL: &str = "https /v2/";
    let kind = ProbeKind::Https {
        port: 443,
        path: "/v2/".into(),
        expect: vec![401],
        ca_file: plan.ca_file.clone(),
    };
    let outcome = run_probe(&kind, probe_target, plan.timeout, context).await;
    if !outcome.ok {
        let why = outcome.detail.unwrap_or_default();
        let remedy = if why.contains("status") {
            format!(
                "{} does not answer /v2/ like the registry (401 with a token realm): look the \
                 registry address up again from inside the VPC",
                plan.addr
            )
        } else if why.contains("certificate") || why.contains("tls") || why.contains("TLS") {
            tls_remedy(&why, display, plan.addr)
        } else {
            format!(
                "{} accepts TCP but GET /v2/ fails: check that it really is {display}",
                plan.addr
            )
        };
        return Check::fail(
            display,
            target,
            LABEL,
            format!("GET /v2/: {}", short_detail(&why)),
            remedy,
        );
    }
    let Some(realm) = outcome.realm.clone() else {
        return Check::fail(
            display,
            target,
            LABEL,
            "401 without a Bearer realm in WWW-Authenticate".into(),
            format!(
                "{} does not answer like an ACR registry: check the address",
                plan.addr
            ),
        );
    };
    if realm == display {
        return Check::new(
            Status::Ok,
            display,
            target,
            LABEL,
            format!(
                "401, realm {realm}: the instance has taken over the auth domain, no dockerauth \
                 name is needed{}",
                took(&outcome)
            ),
        );
    }
    if owns(&plan.owned, &realm) {
        return Check::new(
            Status::Ok,
            display,
            target,
            LABEL,
            format!("401, realm {realm} (an owned name){}", took(&outcome)),
        );
    }
    Check::fail(
        display,
        target,
        LABEL,
        format!("401, realm {realm}, which this config does not answer: docker login would fail"),
        format!(
            "add the auth name, or let the instance take over the auth domain: give `auth = \
             [\"<address>\"]` in the [[registry]] block (the address of {realm}, looked up from \
             inside the VPC), or switch on \"instance takes over the auth domain\" for the \
             instance"
        ),
    )
}

/// Whether `host` is answered by an owned name, exactly or through a wildcard.
fn owns(owned: &[String], host: &str) -> bool {
    owned.iter().any(|name| match name.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => name == host,
    })
}

fn conflict_checks(plan: &TargetPlan, route_failed: bool) -> Vec<Check> {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let mine: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|finding| finding.name == display)
        .filter(|finding| match &finding.conflict {
            Conflict::LocalNetwork { target, .. } => *target == plan.addr,
            // The route check has said so already.
            Conflict::RouteElsewhere { target, .. } | Conflict::NoRoute { target, .. } => {
                *target == plan.addr && !route_failed
            }
        })
        .collect();
    if mine.is_empty() {
        let detail = if route_failed {
            "no local network holds it".to_owned()
        } else {
            "none: no local network holds it, no other route takes it".to_owned()
        };
        return vec![Check::new(Status::Ok, display, target, "conflicts", detail)];
    }
    mine.into_iter()
        .map(|finding| {
            Check::fail(
                display,
                target,
                "conflicts",
                finding.conflict.to_string(),
                finding
                    .remedy
                    .strip_prefix("remedy: ")
                    .unwrap_or(finding.remedy)
                    .to_owned(),
            )
        })
        .collect()
}

/// A probe's failure text without the label that the name and target columns already
/// show (`tcp ADDR:PORT: `, `tls ADDR:PORT as NAME: `, `GET NAME/v2/ at ADDR: `) and
/// without reqwest's generic outer message.
fn short_detail(detail: &str) -> String {
    let mut rest = detail;
    if ["tcp ", "tls ", "GET "].iter().any(|p| rest.starts_with(p)) {
        if let Some((_, after)) = rest.split_once(": ") {
            rest = after;
        }
    }
    if rest.starts_with("error sending request") {
        if let Some((_, after)) = rest.split_once("): ") {
            rest = after;
        }
    }
    rest.to_owned()
}

fn took(outcome: &Outcome) -> String {
    match outcome.rtt {
        Some(rtt) => format!(" in {:.1} ms", rtt.as_secs_f64() * 1000.0),
        None => String::new(),
    }
}

fn secs(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_ownership_follows_wildcards() {
        let owned = vec![
            "dockerauth-vpc.cn-hangzhou.aliyuncs.com".to_owned(),
            "*.oss-cn-hangzhou-internal.aliyuncs.com".to_owned(),
        ];
        assert!(owns(&owned, "dockerauth-vpc.cn-hangzhou.aliyuncs.com"));
        assert!(owns(&owned, "b.oss-cn-hangzhou-internal.aliyuncs.com"));
        assert!(!owns(&owned, "oss-cn-hangzhou-internal.aliyuncs.com"));
        assert!(!owns(&owned, "xoss-cn-hangzhou-internal.aliyuncs.com"));
        assert!(!owns(&owned, "dockerauth-vpc.cn-shanghai.aliyuncs.com"));
    }

    #[test]
    fn preset_blocks() {
        assert_eq!(preset_block("registry[0].oss"), Some("registry[0]"));
        assert_eq!(preset_block("registry[12].registry"), Some("registry[12]"));
        assert_eq!(preset_block("name[0]"), None);
    }

    #[test]
    fn statuses_pad() {
        assert_eq!(format!("{:4}|", Status::Ok), "OK  |");
        assert_eq!(format!("{:4}|", Status::Fail), "FAIL|");
    }

    fn parse(text: &str) -> Config {
        Config::parse(text, "test").expect("valid config")
    }

    const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:53"]
[upstream]
servers = ["127.0.0.1:5399"]
[[registry]]
instance = "xxxxxx"
region = "cn-hangzhou"
registry = ["10.94.205.198"]
oss = ["100.118.28.43"]
probes = []
"#;

    #[test]
    fn hosts_lines_win_over_dns() {
        let config = parse(CONFIG);
        let registry = &config.names[0];
        let file = Path::new("/etc/hosts");
        let same = hosts_file::parse(
            "127.0.0.1 localhost\n10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n",
        );
        let checks = hosts_checks(registry, &same, file);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Warn);
        assert!(checks[0]
            .detail
            .contains("/etc/hosts line 2 gives 10.94.205.198"));
        let other = hosts_file::parse("10.1.1.1 XXXXXX-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n");
        let checks = hosts_checks(registry, &other, file);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].detail.contains("this config has 10.94.205.198"));
        assert_eq!(
            checks[0].remedy.as_deref(),
            Some("remove (or fix) /etc/hosts line 1")
        );
        assert!(hosts_checks(&config.names[1], &other, file).is_empty());
    }

    #[test]
    fn resolver_names_pathdns_or_not() {
        let config = parse(CONFIG);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("resolv.conf");
        let verdict = |text: &str| {
            std::fs::write(&path, text).expect("write");
            let checks = resolver_check(&config, &path);
            assert_eq!(checks.len(), 1);
            (checks[0].status, checks[0].detail.clone())
        };
        assert_eq!(
            verdict("nameserver 127.0.0.1\nnameserver 10.0.0.2\n").0,
            Status::Ok
        );
        let (status, detail) = verdict("nameserver 10.0.0.2\nnameserver 127.0.0.1\n");
        assert_eq!(status, Status::Warn);
        assert!(detail.contains("not first"), "{detail}");
        let (status, detail) = verdict("nameserver 127.0.0.53\n");
        assert_eq!(status, Status::Warn);
        assert!(detail.contains("systemd-resolved"), "{detail}");
        let (status, detail) = verdict("# empty\n");
        assert_eq!(status, Status::Warn);
        assert!(detail.contains("no nameserver, not pathdns"), "{detail}");
    }

    #[test]
    fn agent_address_replaces_unspecified() {
        let config = Config::parse(
            "[server]\nlisten = [\"0.0.0.0:53\"]\nallow = [\"0.0.0.0/0\"]\n[upstream]\nservers = [\"127.0.0.1:5399\"]\n",
            "test",
        )
        .expect("valid");
        assert_eq!(
            agent_address(&config),
            Some("127.0.0.1:53".parse().expect("addr"))
        );
    }
}
