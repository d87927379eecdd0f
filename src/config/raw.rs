//! The TOML schema exactly as an operator writes it: every `Raw*` type of the file, the
//! probe, control, log and alert tables included.
//!
//! Owns: serde types with `deny_unknown_fields` and their defaults, and the parsing of
//! values written as strings (addresses, networks, durations) with messages that quote
//! the text ([`text`]). Must not: interpret values beyond their type (that is
//! `validate`'s job), read the host, or import any later stage of the pipeline; every
//! value that `validate` blames is kept `Spanned`, so that its message can name the line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use text::FromText;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub control: Option<RawControl>,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub alert: Vec<RawAlert>,
    #[serde(default)]
    pub registry: Vec<RawRegistry>,
    #[serde(default)]
    pub name: Vec<RawName>,
}

/// `[health]`: defaults for health-checked names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// TTL of health-checked answers, in seconds: short, so clients follow a failover.
    #[serde(default = "default_health_ttl")]
    pub ttl: u32,
    /// End this host's stalled TCP connections to a target that is down and answered away
    /// from; absent: each kind's default (on for `[[registry]]` names, off for `[[name]]`).
    #[serde(default)]
    pub abort_stalled: Option<bool>,
    /// How long a connection must have made no progress before it counts as stalled.
    #[serde(default = "default_stall_after", deserialize_with = "text::spanned")]
    pub stall_after: Spanned<Duration>,
}

impl Default for RawHealth {
    fn default() -> Self {
        Self {
            ttl: default_health_ttl(),
            abort_stalled: None,
            stall_after: default_stall_after(),
        }
    }
}

/// 10 s: well past a working transfer's pauses (ACK delays, a slow server's think time),
/// and well inside the clients' own give-up times (docker's 15 s dial timeout, TCP
/// keepalive's minutes), so the client retries on the backup long before it would itself.
fn default_stall_after() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10))
}

fn default_health_ttl() -> u32 {
    3
}

/// Probes and failover keys shared by `[[registry]]` and `[[name]]`, borrowed from either
/// (serde's `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Debug, Clone, Copy)]
pub struct HealthChecks<'a> {
    pub probe: Option<&'a Spanned<RawProbe>>,
    pub probes: Option<&'a Spanned<Vec<RawProbe>>>,
    pub when_all_down: Option<&'a Spanned<String>>,
    pub fallback: Option<&'a Spanned<String>>,
    pub interface: Option<&'a Spanned<String>>,
    /// A CA file for the preset's default TLS/HTTPS probes (`[[registry]]` only).
    pub ca_file: Option<&'a Spanned<PathBuf>>,
}

impl RawRegistry {
    pub fn health_checks(&self) -> HealthChecks<'_> {
        HealthChecks {
            probe: self.probe.as_ref(),
            probes: self.probes.as_ref(),
            when_all_down: self.when_all_down.as_ref(),
            fallback: self.fallback.as_ref(),
            interface: self.interface.as_ref(),
            ca_file: self.ca_file.as_ref(),
        }
    }
}

impl RawName {
    pub fn health_checks(&self) -> HealthChecks<'_> {
        HealthChecks {
            probe: self.probe.as_ref(),
            probes: self.probes.as_ref(),
            when_all_down: self.when_all_down.as_ref(),
            fallback: self.fallback.as_ref(),
            interface: self.interface.as_ref(),
            ca_file: None,
        }
    }
}

/// `[server]`: where pathdns listens and whom it answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// UDP and TCP are both bound on each address.
    #[serde(default = "default_listen", deserialize_with = "text::spanned_list")]
    pub listen: Spanned<Vec<SocketAddr>>,
    /// Clients outside these networks get REFUSED.
    #[serde(default = "default_allow", deserialize_with = "text::spanned_list")]
    pub allow: Spanned<Vec<IpNet>>,
    /// The node-local address for containers and pods: an IPv4 link-local address,
    /// `"auto"` (the default address on a container host, none elsewhere) or `"off"`.
    pub node_local: Option<Spanned<String>>,
    /// TTL of owned answers, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Concurrent TCP client connections before new ones are turned away.
    #[serde(default = "default_tcp_connections")]
    pub max_tcp_connections: Spanned<usize>,
    /// A TCP client connection idle this long is closed.
    #[serde(default = "default_tcp_idle", deserialize_with = "text::spanned")]
    pub tcp_idle_timeout: Spanned<Duration>,
    /// Queries of one TCP connection waiting for upstreams at once; at the cap pathdns
    /// stops reading that connection until answers have been written.
    #[serde(default = "default_queries_per_connection")]
    pub max_queries_per_connection: Spanned<usize>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allow: default_allow(),
            node_local: None,
            ttl: default_ttl(),
            max_tcp_connections: default_tcp_connections(),
            tcp_idle_timeout: default_tcp_idle(),
            max_queries_per_connection: default_queries_per_connection(),
        }
    }
}

/// `[upstream]`: where names pathdns does not own are forwarded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `"system"` (the host's resolv.conf), `"IP"` or `"IP:PORT"`.
    #[serde(default = "default_upstreams")]
    pub servers: Spanned<Vec<Spanned<String>>>,
    /// The resolv.conf that `"system"` reads.
    #[serde(default = "default_resolv_conf")]
    pub resolv_conf: PathBuf,
    /// Time budget for one forwarded query over all upstreams; SERVFAIL after it.
    #[serde(
        default = "default_upstream_timeout",
        deserialize_with = "text::spanned"
    )]
    pub timeout: Spanned<Duration>,
    /// Forwarded answers kept in the cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Random case in forwarded query names (0x20), echoed exactly or the reply is refused.
    #[serde(default)]
    pub case_randomization: bool,
    /// Strip private addresses from forwarded answers to names that are not exempt.
    #[serde(default = "default_rebinding_protection")]
    pub rebinding_protection: bool,
    /// Domains whose names (and their subdomains') may resolve to private addresses.
    #[serde(default)]
    pub private_domains: Vec<Spanned<String>>,
    /// Serve expired answers when the upstreams fail (RFC 8767).
    #[serde(default = "default_serve_stale")]
    pub serve_stale: bool,
    /// How long past its TTL an answer may be served stale.
    #[serde(default = "default_stale_max_age", deserialize_with = "text::spanned")]
    pub stale_max_age: Spanned<Duration>,
    /// How long a client waits for the upstreams before it gets a stale answer.
    #[serde(
        default = "default_stale_answer_after",
        deserialize_with = "text::spanned"
    )]
    pub stale_answer_after: Spanned<Duration>,
    /// Forwarded queries waiting on upstreams at once; more are answered SERVFAIL at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: Spanned<usize>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            servers: default_upstreams(),
            resolv_conf: default_resolv_conf(),
            timeout: default_upstream_timeout(),
            cache_size: default_cache_size(),
            case_randomization: false,
            rebinding_protection: default_rebinding_protection(),
            private_domains: Vec::new(),
            serve_stale: default_serve_stale(),
            stale_max_age: default_stale_max_age(),
            stale_answer_after: default_stale_answer_after(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

/// `[[registry]]`: the preset that expands into the documents' three names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    pub instance: Spanned<String>,
    pub region: Spanned<String>,
    /// Addresses of `<instance>-registry-vpc.<region>.cr.aliyuncs.com`; may be left out
    /// (or empty) with `discover`.
    #[serde(default, deserialize_with = "text::opt_spanned_list")]
    pub registry: Option<Spanned<Vec<IpAddr>>>,
    /// Addresses of `dockerauth-vpc.<region>.aliyuncs.com`; absent when the instance takes
    /// over the auth domain.
    #[serde(default, deserialize_with = "text::opt_spanned_list")]
    pub auth: Option<Spanned<Vec<IpAddr>>>,
    /// Addresses of `oss-<region>-internal.aliyuncs.com`.
    #[serde(default, deserialize_with = "text::opt_spanned_list")]
    pub oss: Option<Spanned<Vec<IpAddr>>>,
    /// Answer the OSS name with a CNAME to this name (a PrivateLink endpoint) instead.
    #[serde(default)]
    pub oss_cname: Option<Spanned<String>>,
    /// A custom bucket: `<bucket>.oss-<region>-internal.aliyuncs.com` is owned too.
    #[serde(default)]
    pub bucket: Option<Spanned<String>>,
    /// Also own `*.oss-<region>-internal.aliyuncs.com` (every bucket).
    #[serde(default)]
    pub oss_wildcard: bool,
    /// Lower-priority targets, e.g. a synced instance in another region.
    #[serde(default)]
    pub backup: Option<RawBackup>,
    /// TTL override for these names, in seconds.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// One probe (shorthand for a one-element `probes`).
    #[serde(default)]
    pub probe: Option<Spanned<RawProbe>>,
    /// Probes run against every target; a target is up when all pass.
    #[serde(default)]
    pub probes: Option<Spanned<Vec<RawProbe>>>,
    /// `"keep"` (default), `"cname"` (with `fallback`), `"forward"` or `"servfail"`.
    #[serde(default)]
    pub when_all_down: Option<Spanned<String>>,
    /// The CNAME target when `when_all_down = "cname"`.
    #[serde(default)]
    pub fallback: Option<Spanned<String>>,
    /// The private-path interface: adds a path probe and checks routes against it.
    #[serde(default)]
    pub interface: Option<Spanned<String>>,
    /// End stalled connections to a down target this name answers away from (overrides
    /// `[health] abort_stalled`).
    #[serde(default)]
    pub abort_stalled: Option<bool>,
    /// CA file for the default HTTPS `/v2/` probe (a registry behind a private CA).
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Where the private addresses can be asked over the private path.
    #[serde(default)]
    pub discover: Option<Spanned<RawDiscover>>,
}

/// `discover = { servers = ["10.0.5.53"], interval = "5m" }`: a resolver inside the VPC
/// (a PrivateZone inbound endpoint, any DNS server there) that is asked for the owned
/// names' addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscover {
    /// `"IP"` or `"IP:PORT"`, asked in order until one gives a usable answer.
    pub servers: Spanned<Vec<Spanned<String>>>,
    /// How often each name is asked.
    #[serde(default, deserialize_with = "text::opt_spanned")]
    pub interval: Option<Spanned<Duration>>,
    /// How long one server has to answer one question.
    #[serde(default, deserialize_with = "text::opt_spanned")]
    pub timeout: Option<Spanned<Duration>>,
}

/// `backup = { registry = [...], auth = [...], oss = [...] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    #[serde(default, deserialize_with = "text::list")]
    pub registry: Vec<IpAddr>,
    #[serde(default, deserialize_with = "text::list")]
    pub auth: Vec<IpAddr>,
    #[serde(default, deserialize_with = "text::list")]
    pub oss: Vec<IpAddr>,
}

/// `[[name]]`: any name with its own targets or a CNAME.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawName {
    /// A name such as `artifacts.internal.example`, or a wildcard `*.example.internal`.
    pub name: Spanned<String>,
    #[serde(default)]
    pub targets: Option<Spanned<Vec<RawTarget>>>,
    #[serde(default)]
    pub cname: Option<Spanned<String>>,
    #[serde(default)]
    pub ttl: Option<u32>,
    /// One probe (shorthand for a one-element `probes`).
    #[serde(default)]
    pub probe: Option<Spanned<RawProbe>>,
    /// Probes run against every target; a target is up when all pass.
    #[serde(default)]
    pub probes: Option<Spanned<Vec<RawProbe>>>,
    /// `"keep"` (default), `"cname"` (with `fallback`), `"forward"` or `"servfail"`.
    #[serde(default)]
    pub when_all_down: Option<Spanned<String>>,
    /// The CNAME target when `when_all_down = "cname"`.
    #[serde(default)]
    pub fallback: Option<Spanned<String>>,
    /// The private-path interface: adds a path probe and checks routes against it.
    #[serde(default)]
    pub interface: Option<Spanned<String>>,
    /// End stalled connections to a down target this name answers away from (overrides
    /// `[health] abort_stalled`).
    #[serde(default)]
    pub abort_stalled: Option<bool>,
    /// Where this name's private addresses can be asked over the private path.
    #[serde(default)]
    pub discover: Option<Spanned<RawDiscover>>,
}

/// A target: `"10.1.2.3"` or `{ addr = "10.1.2.3", priority = 2 }`.
///
/// Deserialized by hand rather than `#[serde(untagged)]`, whose only message for any
/// mistake is "data did not match any variant".
#[derive(Debug)]
pub enum RawTarget {
    Plain(IpAddr),
    Detailed(RawDetailedTarget),
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct TargetVisitor;

        impl<'de> Visitor<'de> for TargetVisitor {
            type Value = RawTarget;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an IP address such as \"10.1.2.3\" or a table such as \
                     { addr = \"10.1.2.3\", priority = 2 }",
                )
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawTarget, E> {
                IpAddr::from_text(value)
                    .map(RawTarget::Plain)
                    .map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTarget, A::Error> {
                RawDetailedTarget::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTarget::Detailed)
            }
        }

        de.deserialize_any(TargetVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetailedTarget {
    #[serde(deserialize_with = "text::one")]
    pub addr: IpAddr,
    /// Lower numbers are preferred; answers come from the best group.
    #[serde(default = "default_priority")]
    pub priority: u8,
}

/// One `probes` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub kind: Spanned<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub suspect_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub jitter: Option<Spanned<f64>>,
    #[serde(default)]
    pub rise: Option<u32>,
    #[serde(default)]
    pub fall: Option<u32>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub expect: Option<Spanned<Vec<u16>>>,
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub via: Option<Spanned<String>>,
    #[serde(default)]
    pub source: Option<Spanned<String>>,
}

/// `[control]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// Address of `/healthz`, `/readyz`, `/metrics`, `/status`; `"off"` disables it.
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// A tracing filter: "info", "warn", "pathdns=debug". `RUST_LOG` overrides it.
    #[serde(default)]
    pub level: Option<Spanned<String>>,
}

/// `[[alert]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// `"webhook"` (JSON POST) or `"alertmanager"` (its v2 API).
    pub kind: Spanned<String>,
    /// For a webhook, the full URL; for Alertmanager, its base URL
    /// (`http://host:9093`; pathdns posts to `/api/v2/alerts`).
    pub url: Spanned<String>,
    #[serde(default, deserialize_with = "text::opt_spanned")]
    pub timeout: Option<Spanned<Duration>>,
    /// Send a problem again at this interval while it lasts.
    #[serde(default, deserialize_with = "text::opt_spanned")]
    pub repeat_interval: Option<Spanned<Duration>>,
    /// Retries after a failed attempt, with backoff between them (0.5 s, 1 s, 2 s, ...,
    /// at most 30 s), before the alert is dropped. 0 to 10.
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// Alerts waiting to be sent; when full, the oldest is dropped (and counted).
    #[serde(default)]
    pub queue: Option<usize>,
}

pub const DEFAULT_PORT: u16 = 53;

fn default_listen() -> Spanned<Vec<SocketAddr>> {
    Spanned::new(0..0, vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))])
}

fn default_allow() -> Spanned<Vec<IpNet>> {
    // Loopback only: pathdns is never an open resolver unless the operator says so.
    let loopback = ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect();
    Spanned::new(0..0, loopback)
}

fn default_ttl() -> u32 {
    30
}

fn default_tcp_connections() -> Spanned<usize> {
    Spanned::new(0..0, 256)
}

fn default_tcp_idle() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10))
}

fn default_queries_per_connection() -> Spanned<usize> {
    Spanned::new(0..0, 100)
}

fn default_max_in_flight() -> Spanned<usize> {
    // Each holds up to three sockets while it waits: with the TCP connections, more file
    // descriptors than the usual soft limit of 1024 (the packaged unit sets 65536, and
    // pathdns raises its soft limit to what the caps need).
    Spanned::new(0..0, 1024)
}

fn default_upstreams() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, "system".to_owned())])
}

fn default_resolv_conf() -> PathBuf {
    PathBuf::from("/etc/resolv.conf")
}

fn default_upstream_timeout() -> Spanned<Duration> {
    // Shorter than a glibc client's first retry (5 s), so the client sees our SERVFAIL.
    Spanned::new(0..0, Duration::from_millis(2000))
}

fn default_cache_size() -> usize {
    10_000
}

/// Off by default: the filter is a home-router defence (browsers on a LAN), off by
/// default in dnsmasq (`stop-dns-rebind`) and Unbound (`private-address`) too, and an IDC's
/// own resolvers answer private addresses for its internal names; pathdns must stay
/// invisible for every name it does not own (DESIGN.md section 4).
fn default_rebinding_protection() -> bool {
    false
}

/// On by default. pathdns is the only cache of a host behind it (systemd-resolved does not
/// cache a localhost upstream), so without serve-stale a short upstream outage fails every
/// lookup of a name whose TTL ran out, `docker pull` included; with it, the host keeps the
/// last answers it had, marked stale, for up to `stale_max_age`. Unbound's serve-expired is
/// commonly enabled on node-local caches for the same reason. A stale answer
/// carries a 30-second TTL and Extended DNS Error 3, so it is short-lived and visible.
fn default_serve_stale() -> bool {
    true
}

/// One day, the low end of RFC 8767's suggested 1 to 3 days (section 5).
fn default_stale_max_age() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(86_400))
}

/// RFC 8767 section 5 suggests 1.8 s for this client response timer: the stale answer
/// arrives before a stub resolver's own timer (2 s or more) makes it retry or give up.
fn default_stale_answer_after() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_millis(1800))
}

pub fn default_priority() -> u8 {
    1
}

/// Values written as strings (addresses, networks, durations) and lists of them, parsed
/// with messages that quote the text and show the expected form, instead of the standard
/// library's bare "invalid IP address syntax".
///
/// The helpers are `deserialize_with` functions; an absent value's span is `0..0`, which
/// the validator treats as "no place in the file".
pub mod text {
    use std::fmt;
    use std::marker::PhantomData;
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use ipnet::IpNet;
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::Deserialize;
    use toml::Spanned;

    /// A value that is written as a string in the config file.
    pub trait FromText: Sized {
        /// What a value looks like, for type errors: `an IP address such as "..."`.
        const EXPECTED: &'static str;
        /// The same for a list of them.
        const EXPECTED_LIST: &'static str;
        /// Parses the text or says what is wrong with it, quoting it.
        fn from_text(text: &str) -> Result<Self, String>;
    }

    impl FromText for IpAddr {
        const EXPECTED: &'static str = "an IP address such as \"10.94.205.198\"";
        const EXPECTED_LIST: &'static str = "a list of IP addresses such as [\"10.94.205.198\"]";

        fn from_text(text: &str) -> Result<Self, String> {
            if let Ok(addr) = text.parse() {
                return Ok(addr);
            }
            // The documents' table writes the 100.x addresses as "/32" routes.
            if let Some((addr, _)) = text.split_once('/') {
                if addr.parse::<IpAddr>().is_ok() {
                    return Err(format!(
                        "{text:?} is a network, not an address: write {addr:?}"
                    ));
                }
            }
            if let Ok(with_port) = text.parse::<SocketAddr>() {
                return Err(format!(
                    "{text:?} has a port: write the address alone, {:?}",
                    with_port.ip().to_string()
                ));
            }
            Err(format!(
                "{text:?} is not an IP address (write one such as \"10.94.205.198\" or \"fd00::1\")"
            ))
        }
    }

    impl FromText for SocketAddr {
        const EXPECTED: &'static str = "an address with a port such as \"127.0.0.1:53\"";
        const EXPECTED_LIST: &'static str =
            "a list of addresses with ports such as [\"127.0.0.1:53\"]";

        fn from_text(text: &str) -> Result<Self, String> {
            if let Ok(addr) = text.parse() {
                return Ok(addr);
            }
            match text.parse::<IpAddr>() {
                Ok(ip) => Err(format!(
                    "{text:?} has no port: write {:?}",
                    SocketAddr::new(ip, super::DEFAULT_PORT).to_string()
                )),
                Err(_) => Err(format!(
                    "{text:?} is not an address with a port (write one such as \"127.0.0.1:53\" or \"[::1]:53\")"
                )),
            }
        }
    }

    impl FromText for IpNet {
        const EXPECTED: &'static str = "a network such as \"127.0.0.0/8\"";
        const EXPECTED_LIST: &'static str =
            "a list of networks such as [\"127.0.0.0/8\", \"::1/128\"]";

        fn from_text(text: &str) -> Result<Self, String> {
            if let Ok(net) = text.parse() {
                return Ok(net);
            }
            match text.parse::<IpAddr>() {
                Ok(ip) => Err(format!(
                    "{text:?} has no prefix length: write {:?} for this one address",
                    IpNet::from(ip).to_string()
                )),
                Err(_) => Err(format!(
                    "{text:?} is not a network in CIDR form (write one such as \"10.0.0.0/8\" or \"::1/128\")"
                )),
            }
        }
    }

    impl FromText for Duration {
        const EXPECTED: &'static str = "a duration such as \"2s\" or \"500ms\"";
        const EXPECTED_LIST: &'static str = "a list of durations such as [\"2s\"]";

        fn from_text(text: &str) -> Result<Self, String> {
            humantime::parse_duration(text).map_err(|err| {
                format!("{text:?} is not a duration such as \"2s\" or \"500ms\": {err}")
            })
        }
    }

    /// One value, parsed through [`FromText`].
    struct Text<T>(T);

    impl<'de, T: FromText> Deserialize<'de> for Text<T> {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
            struct TextVisitor<T>(PhantomData<T>);

            impl<T: FromText> Visitor<'_> for TextVisitor<T> {
                type Value = T;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(T::EXPECTED)
                }

                fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
                    T::from_text(value).map_err(E::custom)
                }
            }

            de.deserialize_str(TextVisitor(PhantomData)).map(Text)
        }
    }

    /// A list of values, each parsed through [`FromText`].
    struct List<T>(Vec<T>);

    impl<'de, T: FromText> Deserialize<'de> for List<T> {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
            struct ListVisitor<T>(PhantomData<T>);

            impl<'de, T: FromText> Visitor<'de> for ListVisitor<T> {
                type Value = Vec<T>;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(T::EXPECTED_LIST)
                }

                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                    while let Some(Text(item)) = seq.next_element::<Text<T>>()? {
                        items.push(item);
                    }
                    Ok(items)
                }
            }

            de.deserialize_seq(ListVisitor(PhantomData)).map(List)
        }
    }

    pub fn one<'de, D: Deserializer<'de>, T: FromText>(de: D) -> Result<T, D::Error> {
        Text::deserialize(de).map(|Text(value)| value)
    }

    pub fn spanned<'de, D: Deserializer<'de>, T: FromText>(de: D) -> Result<Spanned<T>, D::Error> {
        let spanned = Spanned::<Text<T>>::deserialize(de)?;
        let span = spanned.span();
        Ok(Spanned::new(span, spanned.into_inner().0))
    }

    pub fn list<'de, D: Deserializer<'de>, T: FromText>(de: D) -> Result<Vec<T>, D::Error> {
        List::deserialize(de).map(|List(items)| items)
    }

    pub fn spanned_list<'de, D: Deserializer<'de>, T: FromText>(
        de: D,
    ) -> Result<Spanned<Vec<T>>, D::Error> {
        let spanned = Spanned::<List<T>>::deserialize(de)?;
        let span = spanned.span();
        Ok(Spanned::new(span, spanned.into_inner().0))
    }

    pub fn opt_spanned_list<'de, D: Deserializer<'de>, T: FromText>(
        de: D,
    ) -> Result<Option<Spanned<Vec<T>>>, D::Error> {
        spanned_list(de).map(Some)
    }

    pub fn opt_spanned<'de, D: Deserializer<'de>, T: FromText>(
        de: D,
    ) -> Result<Option<Spanned<T>>, D::Error> {
        spanned(de).map(Some)
    }
}
