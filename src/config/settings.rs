//! What a validated configuration is: [`Config`] and every settings type in it, the
//! pipeline's output.
//!
//! Owns: the types the rest of the crate builds tables, listeners, probes and alert sinks
//! from, and the constants their meaning depends on. Must not: parse, validate or read
//! anything; only the pipeline's stages make these values, and only valid ones.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

/// The documented default of the control endpoint: loopback only.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:9253";

/// A validated configuration, ready to build an answer table and start listeners from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    /// The text's identity ([`super::text_hash`]): `pathdns_config_info{hash}`.
    pub hash: String,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    /// Every owned name, presets expanded, in file order.
    pub names: Vec<OwnedName>,
    pub control: ControlSettings,
    pub log: LogSettings,
    pub alerts: Vec<AlertSink>,
    /// `[health] stall_after`: how long a connection to a down target must have made no
    /// progress before `abort_stalled` ends it.
    pub stall_after: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Every listen address, the node-local one's port 53 included.
    pub listen: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
    /// `server.node_local`, resolved: the address and why it is there.
    pub node_local: Option<NodeLocal>,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
    pub max_queries_per_connection: usize,
}

/// The node-local address pathdns listens on (on `lo`; `crate::host::node_local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLocal {
    pub addr: std::net::Ipv4Addr,
    /// Why: `"configured"`, or what made `"auto"` choose it (the container runtimes).
    pub because: String,
}

/// Everything about forwarding; a reload keeps the forwarder (and its cache) while it
/// [`forwards_like`](UpstreamSettings::forwards_like) the previous settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Resolved upstream addresses, pathdns's own listen addresses removed.
    pub servers: Vec<SocketAddr>,
    /// The upstream pool's own deadline for one query over every upstream.
    pub timeout: Duration,
    pub cache_size: usize,
    /// A cap of the serving loops (sized at start), not of the forwarder.
    pub max_in_flight: usize,
    /// Serve-stale (RFC 8767); `None` with `serve_stale = false`.
    pub stale: Option<StaleSettings>,
    /// Send forwarded query names in random case (0x20) and refuse replies that do not
    /// echo it exactly.
    pub case_randomization: bool,
    pub rebinding: RebindingSettings,
}

/// What pathdns adds to `upstream.timeout` before it gives up on a query itself, so that
/// the upstream pool's own timeout, not ours, ends the query.
pub const UPSTREAM_GUARD: Duration = Duration::from_millis(250);

/// How long glibc's stub resolver waits for one nameserver by default (`options timeout:5`
/// in resolv.conf, RES_TIMEOUT). pathdns's per-query budget stays below it, so that a
/// client sees pathdns's answer (SERVFAIL or stale) instead of its own timeout and retry.
pub const GLIBC_RESOLVER_TIMEOUT: Duration = Duration::from_secs(5);

impl UpstreamSettings {
    /// The whole time a forwarded query may take before its client gets SERVFAIL.
    pub fn budget(&self) -> Duration {
        self.timeout + UPSTREAM_GUARD
    }

    /// Whether a forwarder built from `other` would be the one built from these: every
    /// setting equal but `max_in_flight`, which the forwarder does not use.
    pub fn forwards_like(&self, other: &UpstreamSettings) -> bool {
        *self
            == UpstreamSettings {
                max_in_flight: self.max_in_flight,
                ..other.clone()
            }
    }
}

/// Serve-stale (RFC 8767): answers kept past their TTL, for when the upstreams fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleSettings {
    /// How long past its expiry an answer may still be served (RFC 8767's maximum stale
    /// timer).
    pub max_age: Duration,
    /// How long a client waits for the upstreams before it gets the stale answer (RFC 8767's
    /// client response timer). Shorter than `timeout`.
    pub answer_after: Duration,
}

/// Domains whose names may resolve to private addresses whatever `private_domains` says
/// (their subdomains too): Alibaba Cloud PrivateLink endpoint names, which an `oss_cname`
/// points at and which always resolve to addresses inside a VPC, and the special-use
/// names that are private by definition (RFC 6761 `localhost`, RFC 8375 `home.arpa`,
/// ICANN's private-use TLD `internal`).
pub const BUILTIN_PRIVATE_DOMAINS: [&str; 4] = [
    "privatelink.aliyuncs.com",
    "localhost",
    "internal",
    "home.arpa",
];

/// The rebinding filter: private addresses are stripped from forwarded answers, except
/// for these names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebindingSettings {
    /// `[upstream] rebinding_protection`.
    pub enabled: bool,
    /// Names at or under these may hold private addresses: `private_domains`, then
    /// [`BUILTIN_PRIVATE_DOMAINS`]. Lower-case, fully qualified.
    pub private_domains: Vec<Name>,
    /// Names owned by this config (a wildcard `*.d` stands for the names below `d`) and
    /// the CNAME and fallback targets of owned names: the product's own answers are
    /// private by design, also when one is forwarded (`when_all_down = "forward"`).
    pub owned: Vec<Name>,
    /// Every exemption above, in config order, with where it came from: what `pathdns
    /// check` lists when the filter is on.
    pub exemptions: Vec<Exemption>,
}

/// One name or domain the rebinding filter leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// Lower-case, fully qualified; a wildcard keeps its `*` label.
    pub name: Name,
    /// The names below `name` are exempt too (a private domain).
    pub subdomains: bool,
    /// Where it came from, e.g. `upstream.private_domains[0]`, `built in`, `name[2]`.
    pub origin: String,
}

/// One name pathdns answers authoritatively.
#[derive(Debug, Clone)]
pub struct OwnedName {
    /// Lower-case, fully qualified. A wildcard is stored with its `*` label.
    pub name: Name,
    pub answer: AnswerSpec,
    pub ttl: u32,
    pub role: Role,
    /// Where in the file it came from, e.g. `registry[0].oss` or `name[2]`.
    pub origin: String,
    /// Probes, and what to answer when every target is down.
    pub health: HealthSettings,
    /// Where its addresses are learned over the private path (`discover`), if anywhere.
    pub discover: Option<Discovery>,
}

impl OwnedName {
    pub fn is_wildcard(&self) -> bool {
        self.name.is_wildcard()
    }

    /// The name as operators write it: no trailing dot.
    pub fn display(&self) -> String {
        self.name.to_ascii().trim_end_matches('.').to_owned()
    }

    /// Every target address (empty for a CNAME).
    pub fn addresses(&self) -> Vec<IpAddr> {
        match &self.answer {
            AnswerSpec::Targets(targets) => targets.iter().map(|t| t.addr).collect(),
            AnswerSpec::Cname(_) => Vec::new(),
        }
    }
}

/// `discover`, validated, for one owned name: which resolvers inside the VPC are asked,
/// how often, and for which name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Asked in order until one gives a usable answer.
    pub servers: Vec<SocketAddr>,
    pub interval: Duration,
    /// Per server and question.
    pub timeout: Duration,
    /// The name asked: the owned name itself, or for the OSS wildcard the OSS name.
    pub ask: Name,
}

/// `discover.interval` unless written: the documents' addresses change rarely (an access
/// point rebuilt, an OSS VIP moved), and every host asks.
pub const DEFAULT_DISCOVER_INTERVAL: Duration = Duration::from_secs(300);
/// `discover.timeout` unless written.
pub const DEFAULT_DISCOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// What an owned name answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerSpec {
    /// A/AAAA records from targets in priority groups (lower is preferred).
    Targets(Vec<Target>),
    /// A CNAME to another name (owned or resolved upstream).
    Cname(Name),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: IpAddr,
    pub priority: u8,
}

/// Why a name is owned: the preset's three roles, or a plain `[[name]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Registry,
    Auth,
    Oss,
    OssBucket,
    OssWildcard,
    Custom,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Registry => "registry",
            Role::Auth => "auth",
            Role::Oss => "oss",
            Role::OssBucket => "oss-bucket",
            Role::OssWildcard => "oss-wildcard",
            Role::Custom => "name",
        })
    }
}

/// A validated probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub interval: Duration,
    /// The interval while the probe is failing (not yet down, or down).
    pub suspect_interval: Duration,
    pub timeout: Duration,
    /// Each wait is the interval times a random factor in `1 ± jitter`.
    pub jitter: f64,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// TCP connect to the target's port.
    Tcp { port: u16 },
    /// TLS handshake with SNI = the owned name, certificate verified.
    Tls { port: u16, ca_file: Option<PathBuf> },
    /// `GET path` over TLS with SNI and Host = the owned name; healthy on `expect`.
    Https {
        port: u16,
        path: String,
        expect: Vec<u16>,
        ca_file: Option<PathBuf>,
    },
    /// ICMP echo (needs CAP_NET_RAW).
    Icmp,
    /// The kernel's route to the target leaves by `via` and/or from inside `source`.
    Path {
        via: Option<String>,
        source: Option<IpNet>,
    },
}

impl ProbeKind {
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Tcp { .. } => "tcp",
            ProbeKind::Tls { .. } => "tls",
            ProbeKind::Https { .. } => "https",
            ProbeKind::Icmp => "icmp",
            ProbeKind::Path { .. } => "path",
        }
    }

    /// Application probes are expensive for the registry at fleet scale.
    pub fn is_application(&self) -> bool {
        matches!(self, ProbeKind::Tls { .. } | ProbeKind::Https { .. })
    }
}

/// What to answer when every target of a name is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllDownPolicy {
    /// Keep serving the last healthy answer (default): a wrong probe never blackholes.
    Keep,
    /// Answer a CNAME to this name.
    Cname(Name),
    /// Forward the name upstream as if it were not owned.
    Forward,
    /// Answer SERVFAIL.
    Servfail,
}

/// Probe and failover settings of one owned name.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    pub probes: Vec<ProbeSpec>,
    pub when_all_down: AllDownPolicy,
    /// The private-path interface, for conflict checks.
    pub interface: Option<String>,
    /// End this host's stalled connections to a target that is down and answered away
    /// from. Always false without probes: nothing marks such a target down.
    pub abort_stalled: bool,
}

impl HealthSettings {
    pub fn unprobed() -> HealthSettings {
        HealthSettings {
            probes: Vec::new(),
            when_all_down: AllDownPolicy::Keep,
            interface: None,
            abort_stalled: false,
        }
    }
}

/// The bounds of `[health] stall_after`: under a second, a working transfer's pauses would
/// count as stalls; past ten minutes, TCP keepalive has ended the connection already.
pub const STALL_AFTER_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(600));

/// Validated `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// `None`: no control endpoint.
    pub listen: Option<SocketAddr>,
}

/// Validated `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Webhook,
    Alertmanager,
}

/// Validated `[[alert]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSink {
    pub kind: AlertKind,
    pub url: String,
    pub timeout: Duration,
    pub repeat_interval: Duration,
    pub retries: u32,
    pub queue: usize,
}
