//! Probe and failover settings: the `probe`/`probes`, `when_all_down`, `fallback` and
//! `interface` keys of `[[registry]]` and `[[name]]`, and the role-aware defaults.
//!
//! Owns: the raw probe table, its validation (durations, ports, keys that do not fit the
//! kind) and the checks that a probe can really start on this host (the interface exists,
//! CAP_NET_RAW for ICMP, a readable CA file). Must not: run probes.
//!
//! Defaults follow the fleet probe budget (design section 5a): cheap path probes (TCP
//! connect, ICMP, route check) every second with jitter carry the failover time;
//! application probes (TLS, HTTPS `/v2/`) run every 30 s, every 5 s while a target is
//! suspect.

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::raw::HealthChecks;
use super::{ConfigError, Role};

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
    fn is_application(&self) -> bool {
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
}

impl HealthSettings {
    pub fn unprobed() -> HealthSettings {
        HealthSettings {
            probes: Vec::new(),
            when_all_down: AllDownPolicy::Keep,
            interface: None,
        }
    }
}

const CHEAP_INTERVAL: Duration = Duration::from_secs(1);
/// Twice as often once a cheap probe fails: a silent blackhole (each run a timeout) is then
/// confirmed after about 1.5 s rather than 2.5 s, inside the 3 s failover goal.
const CHEAP_SUSPECT_INTERVAL: Duration = Duration::from_millis(500);
const CHEAP_TIMEOUT: Duration = Duration::from_millis(500);
const APP_INTERVAL: Duration = Duration::from_secs(30);
const APP_SUSPECT_INTERVAL: Duration = Duration::from_secs(5);
const APP_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_JITTER: f64 = 0.1;
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 2;

/// Makes a message for a place in the file.
pub(super) type Blame<'a> = &'a dyn Fn(Option<Range<usize>>, &str, String) -> ConfigError;

/// The health settings of a name with role `role`; `field` is the table it comes from
/// (`registry[0]`, `name[2]`); `has_targets` is false for a CNAME answer.
pub(super) fn health_settings(
    checks: HealthChecks<'_>,
    role: Role,
    has_targets: bool,
    field: &str,
    parse_name: &dyn Fn(&str) -> Result<Name, String>,
    blame: Blame<'_>,
) -> Result<HealthSettings, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let interface = match checks.interface {
        Some(iface) => {
            check_interface(iface.get_ref())
                .map_err(|msg| blame(Some(iface.span()), &at("interface"), msg))?;
            Some(iface.get_ref().clone())
        }
        None => None,
    };
    let when_all_down = all_down_policy(checks, field, parse_name, blame)?;
    let written = written_probes(checks, field, blame)?;
    if !has_targets {
        no_probes_for_a_cname(checks, role, field, blame)?;
        return Ok(HealthSettings {
            probes: Vec::new(),
            when_all_down,
            interface,
        });
    }
    let ca_file = match checks.ca_file {
        Some(path) => {
            check_ca_file(path.get_ref())
                .map_err(|msg| blame(Some(path.span()), &at("ca_file"), msg))?;
            Some(path.get_ref().clone())
        }
        None => None,
    };
    let mut probes = match written {
        Some(raw) => raw
            .iter()
            .enumerate()
            .map(|(i, probe)| validate_probe(probe, &format!("{field}.probes[{i}]"), blame))
            .collect::<Result<Vec<_>, _>>()?,
        None => role_defaults(role, ca_file),
    };
    if let Some(iface) = &interface {
        if !probes
            .iter()
            .any(|p| matches!(p.kind, ProbeKind::Path { .. }))
        {
            probes.push(cheap(ProbeKind::Path {
                via: Some(iface.clone()),
                source: None,
            }));
        }
    }
    Ok(HealthSettings {
        probes,
        when_all_down,
        interface,
    })
}

/// The probes the config writes: `probe` (one) or `probes` (a list), not both.
fn written_probes<'c>(
    checks: HealthChecks<'c>,
    field: &str,
    blame: Blame<'_>,
) -> Result<Option<Vec<&'c RawProbe>>, ConfigError> {
    match (checks.probe, checks.probes) {
        (Some(one), Some(_)) => Err(blame(
            Some(one.span()),
            &format!("{field}.probe"),
            "give `probe` or `probes`, not both".into(),
        )),
        (Some(one), None) => Ok(Some(vec![one.get_ref()])),
        (None, Some(list)) => Ok(Some(list.get_ref().iter().collect())),
        (None, None) => Ok(None),
    }
}

/// A preset's probes apply to its names with addresses; a [[name]] that answers a CNAME has
/// nothing to probe, and saying otherwise is a mistake worth reporting.
fn no_probes_for_a_cname(
    checks: HealthChecks<'_>,
    role: Role,
    field: &str,
    blame: Blame<'_>,
) -> Result<(), ConfigError> {
    let written = checks.probe.map(|p| p.span()).or(checks
        .probes
        .filter(|p| !p.get_ref().is_empty())
        .map(|p| p.span()));
    match written.filter(|_| role == Role::Custom) {
        Some(span) => Err(blame(
            Some(span),
            &format!("{field}.probes"),
            "a CNAME answer has no targets to probe".into(),
        )),
        None => Ok(()),
    }
}

/// Probes a name gets when the config names none: HTTPS `/v2/` expecting 401 (and TCP
/// 443 for fast failover) for the registry; TCP 443 for dockerauth and OSS.
fn role_defaults(role: Role, ca_file: Option<PathBuf>) -> Vec<ProbeSpec> {
    match role {
        Role::Registry => vec![
            application(ProbeKind::Https {
                port: 443,
                path: "/v2/".into(),
                expect: vec![401],
                ca_file,
            }),
            cheap(ProbeKind::Tcp { port: 443 }),
        ],
        Role::Auth | Role::Oss | Role::OssBucket | Role::OssWildcard => {
            vec![cheap(ProbeKind::Tcp { port: 443 })]
        }
        Role::Custom => Vec::new(),
    }
}

fn cheap(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        kind,
        interval: CHEAP_INTERVAL,
        suspect_interval: CHEAP_SUSPECT_INTERVAL,
        timeout: CHEAP_TIMEOUT,
        jitter: DEFAULT_JITTER,
        rise: DEFAULT_RISE,
        fall: DEFAULT_FALL,
    }
}

fn application(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        kind,
        interval: APP_INTERVAL,
        suspect_interval: APP_SUSPECT_INTERVAL,
        timeout: APP_TIMEOUT,
        jitter: DEFAULT_JITTER,
        rise: DEFAULT_RISE,
        fall: DEFAULT_FALL,
    }
}

fn all_down_policy(
    checks: HealthChecks<'_>,
    field: &str,
    parse_name: &dyn Fn(&str) -> Result<Name, String>,
    blame: Blame<'_>,
) -> Result<AllDownPolicy, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let policy = checks
        .when_all_down
        .map(|p| (p.get_ref().as_str(), p.span()));
    let policy = match (policy, checks.fallback) {
        (None | Some(("keep", _)), None) => AllDownPolicy::Keep,
        (Some(("forward", _)), None) => AllDownPolicy::Forward,
        (Some(("servfail", _)), None) => AllDownPolicy::Servfail,
        (Some(("cname", _)), Some(fallback)) => {
            let name = parse_name(fallback.get_ref())
                .map_err(|msg| blame(Some(fallback.span()), &at("fallback"), msg))?;
            if name.is_wildcard() {
                return Err(blame(
                    Some(fallback.span()),
                    &at("fallback"),
                    "a CNAME target cannot be a wildcard".into(),
                ));
            }
            AllDownPolicy::Cname(name)
        }
        (Some(("cname", span)), None) => {
            return Err(blame(
                Some(span),
                &at("when_all_down"),
                "\"cname\" needs `fallback = \"other.name\"`".into(),
            ))
        }
        (_, Some(fallback)) => {
            return Err(blame(
                Some(fallback.span()),
                &at("fallback"),
                "`fallback` applies only with when_all_down = \"cname\"".into(),
            ))
        }
        (Some((other, span)), None) => {
            return Err(blame(
                Some(span),
                &at("when_all_down"),
                format!(
                "{other:?} is not a policy: use \"keep\", \"cname\", \"forward\" or \"servfail\""
            ),
            ))
        }
    };
    Ok(policy)
}

fn validate_probe(raw: &RawProbe, field: &str, blame: Blame<'_>) -> Result<ProbeSpec, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let port = raw.port.unwrap_or(443);
    if raw.port == Some(0) {
        return Err(blame(
            Some(raw.kind.span()),
            &at("port"),
            "port 0 cannot be probed".into(),
        ));
    }
    let ca_file = match &raw.ca_file {
        Some(path) => {
            check_ca_file(path.get_ref())
                .map_err(|msg| blame(Some(path.span()), &at("ca_file"), msg))?;
            Some(path.get_ref().clone())
        }
        None => None,
    };
    let kind = match checked_kind(raw, field, blame)? {
        "tcp" => ProbeKind::Tcp { port },
        "tls" => ProbeKind::Tls { port, ca_file },
        "https" => https_kind(raw, port, ca_file, field, blame)?,
        "icmp" => icmp_kind(raw, field, blame)?,
        _ => path_kind(raw, field, blame)?,
    };
    let base = if kind.is_application() {
        application(kind)
    } else {
        cheap(kind)
    };
    probe_timing(raw, base, field, blame)
}

/// The probe's kind, known and without keys that belong to another kind.
fn checked_kind<'r>(
    raw: &'r RawProbe,
    field: &str,
    blame: Blame<'_>,
) -> Result<&'r str, ConfigError> {
    let kind_span = raw.kind.span();
    let kind = match raw.kind.get_ref().as_str() {
        kind @ ("tcp" | "tls" | "https" | "icmp" | "path") => kind,
        other => {
            return Err(blame(
                Some(kind_span),
                &format!("{field}.kind"),
                format!("{other:?} is not a probe kind: use tcp, tls, https, icmp or path"),
            ))
        }
    };
    let misplaced = |key: &str, present: bool| -> Result<(), ConfigError> {
        if present {
            Err(blame(
                Some(kind_span.clone()),
                &format!("{field}.{key}"),
                format!("`{key}` does not apply to a {:?} probe", raw.kind.get_ref()),
            ))
        } else {
            Ok(())
        }
    };
    if kind != "https" {
        misplaced("path", raw.path.is_some())?;
        misplaced("expect", raw.expect.is_some())?;
    }
    if !matches!(kind, "tls" | "https") {
        misplaced("ca_file", raw.ca_file.is_some())?;
    }
    if kind != "path" {
        misplaced("via", raw.via.is_some())?;
        misplaced("source", raw.source.is_some())?;
    }
    if matches!(kind, "icmp" | "path") {
        misplaced("port", raw.port.is_some())?;
    }
    Ok(kind)
}

fn https_kind(
    raw: &RawProbe,
    port: u16,
    ca_file: Option<PathBuf>,
    field: &str,
    blame: Blame<'_>,
) -> Result<ProbeKind, ConfigError> {
    let path = raw
        .path
        .as_ref()
        .map_or("/v2/".to_owned(), |p| p.get_ref().clone());
    if !path.starts_with('/') {
        let span = raw.path.as_ref().map(|p| p.span());
        return Err(blame(
            span,
            &format!("{field}.path"),
            format!("{path:?} must start with '/'"),
        ));
    }
    let expect = raw
        .expect
        .as_ref()
        .map_or(vec![401], |e| e.get_ref().clone());
    if let Some(bad) = expect.iter().find(|code| !(100..=599).contains(*code)) {
        let span = raw.expect.as_ref().map(|e| e.span());
        return Err(blame(
            span,
            &format!("{field}.expect"),
            format!("{bad} is not an HTTP status"),
        ));
    }
    Ok(ProbeKind::Https {
        port,
        path,
        expect,
        ca_file,
    })
}

/// An icmp probe, if this process may open a raw ICMP socket. Still a config error (exit
/// 78), as `tests/check.rs` asserts: moving it to the host preflight would change that code.
fn icmp_kind(raw: &RawProbe, field: &str, blame: Blame<'_>) -> Result<ProbeKind, ConfigError> {
    crate::host::check_raw_icmp().map_err(|err| {
        blame(
            Some(raw.kind.span()),
            &format!("{field}.kind"),
            format!(
                "an icmp probe needs CAP_NET_RAW (run as root or grant the capability to the \
                 service): {err}"
            ),
        )
    })?;
    Ok(ProbeKind::Icmp)
}

fn path_kind(raw: &RawProbe, field: &str, blame: Blame<'_>) -> Result<ProbeKind, ConfigError> {
    let via = match &raw.via {
        Some(iface) => {
            check_interface(iface.get_ref())
                .map_err(|msg| blame(Some(iface.span()), &format!("{field}.via"), msg))?;
            Some(iface.get_ref().clone())
        }
        None => None,
    };
    let source = match &raw.source {
        Some(net) => Some(
            parse_network(net.get_ref())
                .map_err(|msg| blame(Some(net.span()), &format!("{field}.source"), msg))?,
        ),
        None => None,
    };
    if via.is_none() && source.is_none() {
        return Err(blame(
            Some(raw.kind.span()),
            field,
            "a path probe needs `via` (an interface) or `source` (a network)".into(),
        ));
    }
    Ok(ProbeKind::Path { via, source })
}

/// Interval, suspect interval, timeout, jitter, rise and fall over the kind's defaults.
fn probe_timing(
    raw: &RawProbe,
    base: ProbeSpec,
    field: &str,
    blame: Blame<'_>,
) -> Result<ProbeSpec, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| {
        value.as_ref().map_or(Ok(default), |text| {
            humantime::parse_duration(text.get_ref()).map_err(|err| {
                blame(
                    Some(text.span()),
                    &at(key),
                    format!(
                        "{:?} is not a duration such as \"1s\": {err}",
                        text.get_ref()
                    ),
                )
            })
        })
    };
    let interval = duration(&raw.interval, "interval", base.interval)?;
    let suspect_default = base.suspect_interval.min(interval);
    let suspect_interval = duration(&raw.suspect_interval, "suspect_interval", suspect_default)?;
    let timeout = duration(&raw.timeout, "timeout", base.timeout.min(interval))?;
    for (value, key) in [
        (interval, "interval"),
        (suspect_interval, "suspect_interval"),
    ] {
        if value < Duration::from_millis(100) {
            return Err(blame(
                Some(raw.kind.span()),
                &at(key),
                "must be at least 100ms".into(),
            ));
        }
    }
    if timeout.is_zero() || timeout > interval.max(suspect_interval) {
        let span = raw.timeout.as_ref().map(|t| t.span());
        return Err(blame(
            span,
            &at("timeout"),
            format!("must be above 0 and at most the interval ({interval:?})"),
        ));
    }
    let jitter = match &raw.jitter {
        Some(j) if !(0.0..=0.5).contains(j.get_ref()) => {
            return Err(blame(
                Some(j.span()),
                &at("jitter"),
                "must be between 0 and 0.5 (a fraction of the interval)".into(),
            ))
        }
        Some(j) => *j.get_ref(),
        None => DEFAULT_JITTER,
    };
    Ok(ProbeSpec {
        interval,
        suspect_interval,
        timeout,
        jitter,
        rise: raw.rise.unwrap_or(DEFAULT_RISE).max(1),
        fall: raw.fall.unwrap_or(DEFAULT_FALL).max(1),
        kind: base.kind,
    })
}

fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a network such as \"10.0.0.0/8\""))
}

/// An interface named in the config must exist on this host.
fn check_interface(name: &str) -> Result<(), String> {
    let links = crate::host::interfaces::links();
    if links.iter().any(|link| link.name == name) {
        return Ok(());
    }
    // An empty list is a failed read (every host has `lo`): say so, not "no such interface".
    if links.is_empty() {
        let cause = crate::host::failures::current()
            .into_iter()
            .find(|failure| failure.read == crate::host::failures::HostRead::Links)
            .map_or_else(|| "no links listed".to_owned(), |failure| failure.cause);
        return Err(format!(
            "cannot check that interface {name:?} exists: reading the host's links failed: {cause}"
        ));
    }
    let interfaces = links;
    let known: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    Err(format!(
        "no interface {name:?} on this host (it has: {})",
        known.join(", ")
    ))
}

/// A CA file must hold at least one PEM certificate.
fn check_ca_file(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("cannot read CA file {}: {err}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("CA file {} is not PEM: {err}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    Ok(())
}
