//! The TOML schema exactly as an operator writes it.
//!
//! Owns: serde types with `deny_unknown_fields` and their defaults. Must not: interpret
//! values beyond what serde's type checks give (that is [`super::validate`]'s job), so that
//! every message about a value can name its line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub registry: Vec<RawRegistry>,
    #[serde(default)]
    pub name: Vec<RawName>,
}

/// `[server]`: where pathdns listens and whom it answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// UDP and TCP are both bound on each address.
    #[serde(default = "default_listen")]
    pub listen: Spanned<Vec<SocketAddr>>,
    /// Clients outside these networks get REFUSED.
    #[serde(default = "default_allow")]
    pub allow: Vec<IpNet>,
    /// TTL of owned answers, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Concurrent TCP client connections before new ones are turned away.
    #[serde(default = "default_tcp_connections")]
    pub max_tcp_connections: usize,
    /// A TCP client connection idle this long is closed.
    #[serde(default = "default_tcp_idle", with = "duration")]
    pub tcp_idle_timeout: std::time::Duration,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: Spanned::new(0..0, default_listen().into_inner()),
            allow: default_allow(),
            ttl: default_ttl(),
            max_tcp_connections: default_tcp_connections(),
            tcp_idle_timeout: default_tcp_idle(),
        }
    }
}

/// `[upstream]`: where names pathdns does not own are forwarded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `"system"` (the host's resolv.conf), `"IP"` or `"IP:PORT"`.
    #[serde(default = "default_upstreams")]
    pub servers: Vec<Spanned<String>>,
    /// The resolv.conf that `"system"` reads.
    #[serde(default = "default_resolv_conf")]
    pub resolv_conf: PathBuf,
    /// Time budget for one forwarded query over all upstreams; SERVFAIL after it.
    #[serde(default = "default_upstream_timeout", with = "duration")]
    pub timeout: std::time::Duration,
    /// Forwarded answers kept in the cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            servers: default_upstreams(),
            resolv_conf: default_resolv_conf(),
            timeout: default_upstream_timeout(),
            cache_size: default_cache_size(),
        }
    }
}

/// `[[registry]]`: the preset that expands into the documents' three names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    pub instance: Spanned<String>,
    pub region: Spanned<String>,
    /// Addresses of `<instance>-registry-vpc.<region>.cr.aliyuncs.com`.
    pub registry: Spanned<Vec<IpAddr>>,
    /// Addresses of `dockerauth-vpc.<region>.aliyuncs.com`; absent when the instance takes
    /// over the auth domain.
    #[serde(default)]
    pub auth: Option<Spanned<Vec<IpAddr>>>,
    /// Addresses of `oss-<region>-internal.aliyuncs.com`.
    #[serde(default)]
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
}

/// `backup = { registry = [...], auth = [...], oss = [...] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    #[serde(default)]
    pub registry: Vec<IpAddr>,
    #[serde(default)]
    pub auth: Vec<IpAddr>,
    #[serde(default)]
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
}

/// A target: `"10.1.2.3"` or `{ addr = "10.1.2.3", priority = 2 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTarget {
    Plain(IpAddr),
    Detailed(RawDetailedTarget),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetailedTarget {
    pub addr: IpAddr,
    /// Lower numbers are preferred; answers come from the best group.
    #[serde(default = "default_priority")]
    pub priority: u8,
}

pub const DEFAULT_PORT: u16 = 53;

fn default_listen() -> Spanned<Vec<SocketAddr>> {
    Spanned::new(0..0, vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))])
}

fn default_allow() -> Vec<IpNet> {
    // Loopback only: pathdns is never an open resolver unless the operator says so.
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

fn default_ttl() -> u32 {
    30
}

fn default_tcp_connections() -> usize {
    256
}

fn default_tcp_idle() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_upstreams() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "system".to_owned())]
}

fn default_resolv_conf() -> PathBuf {
    PathBuf::from("/etc/resolv.conf")
}

fn default_upstream_timeout() -> std::time::Duration {
    // Shorter than a glibc client's first retry (5 s), so the client sees our SERVFAIL.
    std::time::Duration::from_millis(2000)
}

fn default_cache_size() -> usize {
    10_000
}

pub fn default_priority() -> u8 {
    1
}

/// Durations written as `"1s"`, `"500ms"`, `"2m"`.
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(de)?;
        humantime::parse_duration(&text)
            .map_err(|err| serde::de::Error::custom(format!("invalid duration {text:?}: {err}")))
    }
}
