//! Configuration: the TOML file, its validation and the registry preset, as one pipeline.
//!
//! Owns: turning a file (or the embedded demo text) into a validated [`Config`] whose every
//! name is expanded, lower-cased and checked, or into one [`ConfigError`] that names the
//! file, line and field; telling pathdns's own listen addresses ([`is_own_address`]); and,
//! asked of a validated config, which targets the host would not reach
//! ([`Config::conflicts`]). Must not: touch the network, or read the host anywhere but the
//! load step below and that question.
//!
//! ```text
//!  config text (a file, or the embedded demo)
//!    │  parse      TOML syntax and serde's type errors, placed by span      parse.rs
//!    ▼
//!  RawConfig       the schema as written, spans kept                        raw.rs
//!    │  facts      the load step: every host read, once, for what the       facts.rs
//!    │             raw config names (resolv.conf, interfaces, ICMP, CA files)
//!    ▼
//!  RawConfig + HostFacts
//!    │  validate   pure rules, no host or filesystem reads: server,          validate/
//!    │             names, probes, [[name]]s, upstream, stale, rebinding,
//!    │             control, log, alerts
//!    │  expand     [[registry]] into owned names, with validate's rules      preset.rs
//!    │  table      the whole name table: duplicates, CNAME loops             validate/table.rs
//!    ▼
//!  Config          the output types                                          settings.rs
//! ```
//!
//! Every stage places its messages through `error::Site` (`file:line:column: field:
//! message`, [`ConfigError`]). `error`, `raw` and `settings` are the shared vocabulary and
//! import no other room; otherwise a room imports only the stages before it (`validate`
//! never imports `preset`, nothing imports this file). This file only runs the stages.

mod error;
mod facts;
mod parse;
mod preset;
pub mod raw;
mod settings;
mod validate;

use std::net::IpAddr;
use std::path::Path;

pub use error::ConfigError;
pub use preset::{auth_name, oss_name, registry_name};
pub use settings::{
    AlertKind, AlertSink, AllDownPolicy, AnswerSpec, Config, ControlSettings, Discovery, Exemption,
    HealthSettings, LogSettings, OwnedName, ProbeKind, ProbeSpec, RebindingSettings, Role,
    ServerSettings, StaleSettings, Target, UpstreamSettings, BUILTIN_PRIVATE_DOMAINS,
    DEFAULT_CONTROL, GLIBC_RESOLVER_TIMEOUT, STALL_AFTER_RANGE, UPSTREAM_GUARD,
};
pub use validate::discover::server_addr as discovery_server;
pub use validate::names::check_label;
pub use validate::upstream::is_own_address;

use error::Site;
use facts::HostFacts;
use raw::RawConfig;
use validate::owned::{plain_name, Ttls};

/// The embedded configuration of `pathdns demo`: the documents' example table on an
/// unprivileged loopback port. Its addresses are never probed or contacted.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

impl Config {
    /// Reads and validates a config file. A missing file is an error, never a default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates config text; `source` names it in messages. The load step: what the
    /// text names on the host (its resolv.conf, interfaces, CA files) is read here, once,
    /// and validation works from those facts alone.
    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let site = Site { text, path: source };
        let raw = parse::deserialize(&site)?;
        let facts = HostFacts::read(&raw);
        from_raw(&raw, &facts, &site)
    }

    /// The embedded demo configuration.
    pub fn demo() -> Result<Config, ConfigError> {
        Self::parse(DEMO_CONFIG, "<embedded demo config>")
    }
}

impl Config {
    /// Targets the host would not reach over the private path (the 100.0.0.0/8 trap). Not a
    /// stage of the pipeline: a question about the host, asked of a validated config.
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

/// The pure part of the pipeline: the raw schema and the host facts to a [`Config`]. The
/// sections are checked in file-reading order, so that a file with several mistakes
/// always reports the same one first.
fn from_raw(raw: &RawConfig, facts: &HostFacts, site: &Site) -> Result<Config, ConfigError> {
    let server = validate::server::server(&raw.server, facts, site)?;
    let names = owned_names(raw, facts, site)?;
    let upstream =
        validate::upstream::upstream(&raw.upstream, &server.listen, &names, facts, site)?;
    let control = validate::operations::control(raw.control.as_ref(), &server.listen, site)?;
    Ok(Config {
        source: site.path.to_owned(),
        hash: text_hash(site.text),
        server,
        upstream,
        names,
        control,
        log: validate::operations::log(&raw.log, site)?,
        alerts: validate::operations::alerts(&raw.alert, site)?,
        stall_after: validate::probes::stall_after(&raw.health, site)?,
    })
}

/// A config's identity for `pathdns_config_info`: the first 16 hex digits of the SHA-256 of
/// its text, what `sha256sum pathdns.toml | cut -c1-16` prints, so configuration management
/// can compute the expected value. The file's bytes, not the validated settings: those
/// hold host facts (a `"system"` upstream is the host's resolv.conf), which differ between
/// hosts running one file, and hashing Rust values would change with pathdns's own types
/// (std's `DefaultHasher` is not even stable across Rust releases). ring is rustls's crypto
/// provider, already linked, so SHA-256 costs no new crate.
pub fn text_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Every owned name: the presets expanded, then the `[[name]]`s, then the whole table
/// checked (duplicates, CNAME loops).
fn owned_names(
    raw: &RawConfig,
    facts: &HostFacts,
    site: &Site,
) -> Result<Vec<OwnedName>, ConfigError> {
    let ttls = Ttls::of(raw);
    let mut candidates = Vec::new();
    for (index, registry) in raw.registry.iter().enumerate() {
        candidates.extend(preset::expand_registry(registry, index, ttls, facts, site)?);
    }
    for (index, name) in raw.name.iter().enumerate() {
        candidates.push(plain_name(name, index, ttls, facts, site)?);
    }
    validate::table::owned_names(candidates, site)
}

#[cfg(test)]
mod tests;
