//! Configuration: the TOML file, its validation and the registry preset.
//!
//! Owns: turning a file (or the embedded demo text) into a validated [`Config`] whose every
//! name is expanded, lower-cased and checked, or into one [`ConfigError`] that names the
//! file, line and field; and how pathdns reads a resolv.conf's nameservers and tells its
//! own listen addresses ([`resolv_conf_nameservers`], [`is_own_address`]). Must not: touch
//! the network (beyond reading resolv.conf for `"system"` upstreams and the host's search
//! domains) or know how answers are served.
//!
//! Flow: [`raw`] (serde schema) -> `validate` (names, addresses, upstream loops) with
//! `preset` expanding `[[registry]]` -> [`Config`].

pub mod operations;
mod preset;
pub mod probes;
pub mod raw;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

pub use operations::{AlertKind, AlertSink, ControlSettings, LogSettings};
pub use preset::{auth_name, oss_name, registry_name};
pub use probes::{AllDownPolicy, HealthSettings, ProbeKind, ProbeSpec};
pub use validate::{check_label, is_own_address, resolv_conf_nameservers};

/// The embedded configuration of `pathdns demo`: the documents' example table on an
/// unprivileged loopback port. Its addresses are never probed or contacted.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// A validated configuration, ready to build an answer table and start listeners from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    /// Every owned name, presets expanded, in file order.
    pub names: Vec<OwnedName>,
    pub control: ControlSettings,
    pub log: LogSettings,
    pub alerts: Vec<AlertSink>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
    pub max_queries_per_connection: usize,
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

impl Config {
    /// Targets the host would not reach over the private path (the 100.0.0.0/8 trap).
    pub fn conflicts(&self) -> Vec<crate::host::Finding> {
        let addresses: Vec<Vec<IpAddr>> = self.names.iter().map(OwnedName::addresses).collect();
        crate::host::findings(self.names.iter().zip(&addresses).map(|(name, addrs)| {
            (
                name.display(),
                name.role.to_string(),
                addrs.as_slice(),
                name.health.interface.as_deref(),
            )
        }))
    }
}

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

/// A configuration that cannot be used, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {}", io_reason(error))]
    Read { path: String, error: std::io::Error },
    #[error("{}", render_invalid(path, *location, field, message))]
    Invalid {
        path: String,
        /// 1-based line and column, where the problem has a place in the file.
        location: Option<(usize, usize)>,
        /// The dotted field path, e.g. `registry[0].region`; empty at top level.
        field: String,
        message: String,
    },
}

/// Config errors quote the OS's reason as it words it (`No such file or directory`).
pub(crate) use crate::reason::io_reason;

fn render_invalid(
    path: &str,
    location: Option<(usize, usize)>,
    field: &str,
    message: &str,
) -> String {
    let place = match location {
        Some((line, column)) => format!("{path}:{line}:{column}"),
        None => path.to_owned(),
    };
    if field.is_empty() {
        format!("{place}: {message}")
    } else {
        format!("{place}: {field}: {message}")
    }
}

impl Config {
    /// Reads and validates a config file. A missing file is an error, never a default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates config text; `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let raw = validate::deserialize(text, source)?;
        validate::validate(raw, text, source)
    }

    /// The embedded demo configuration.
    pub fn demo() -> Result<Config, ConfigError> {
        Self::parse(DEMO_CONFIG, "<embedded demo config>")
    }
}
