//! Probe and failover settings: the `probe`/`probes`, `when_all_down`, `fallback` and
//! `interface` keys of `[[registry]]` and `[[name]]`, and the role-aware defaults.
//!
//! Owns: probe validation (durations, ports, keys that do not fit the kind) and whether a
//! probe can really start on this host (the interface exists, CAP_NET_RAW for ICMP, a
//! readable CA file), judged from the host facts read before validation. Must not: run
//! probes or read the host.
//!
//! Defaults follow the fleet probe budget (design section 5a): cheap path probes (TCP
//! connect, ICMP, route check) every second with jitter carry the failover time;
//! application probes (TLS, HTTPS `/v2/`) run every 30 s, every 5 s while a target is
//! suspect.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use crate::config::error::{ConfigError, Site};
use crate::config::facts::HostFacts;
use crate::config::raw::{HealthChecks, RawHealth, RawProbe};
use crate::config::settings::{
    AllDownPolicy, HealthSettings, ProbeKind, ProbeSpec, Role, STALL_AFTER_RANGE,
};

use super::names::cname_target;

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

/// The health settings of a name with role `role`; `field` is the table it comes from
/// (`registry[0]`, `name[2]`); `has_targets` is false for a CNAME answer.
pub(in crate::config) fn health_settings(
    checks: HealthChecks<'_>,
    role: Role,
    has_targets: bool,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<HealthSettings, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let interface = checks
        .interface
        .map(|iface| checked_interface(iface, &at("interface"), facts, site))
        .transpose()?;
    let when_all_down = all_down_policy(checks, field, site)?;
    let written = written_probes(checks, field, site)?;
    if !has_targets {
        no_probes_for_a_cname(checks, role, field, site)?;
        return Ok(HealthSettings {
            probes: Vec::new(),
            when_all_down,
            interface,
            abort_stalled: false,
        });
    }
    let ca_file = checks
        .ca_file
        .map(|path| checked_ca_file(path, &at("ca_file"), facts, site))
        .transpose()?;
    let mut probes = match written {
        Some(raw) => raw
            .iter()
            .enumerate()
            .map(|(i, probe)| validate_probe(probe, &format!("{field}.probes[{i}]"), facts, site))
            .collect::<Result<Vec<_>, _>>()?,
        None => role_defaults(role, ca_file),
    };
    add_path_probe(&mut probes, interface.as_deref());
    Ok(HealthSettings {
        probes,
        when_all_down,
        interface,
        abort_stalled: false,
    })
}

/// `[health] stall_after`, within [`STALL_AFTER_RANGE`].
pub(in crate::config) fn stall_after(
    raw: &RawHealth,
    site: &Site,
) -> Result<Duration, ConfigError> {
    let value = *raw.stall_after.get_ref();
    let (min, max) = STALL_AFTER_RANGE;
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    Err(site.at(
        raw.stall_after.span(),
        "health.stall_after",
        format!(
            "must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ),
    ))
}

/// A name on a private-path `interface` gets a path probe through it, unless its probes
/// already check the path.
fn add_path_probe(probes: &mut Vec<ProbeSpec>, interface: Option<&str>) {
    let Some(iface) = interface else {
        return;
    };
    if !probes
        .iter()
        .any(|p| matches!(p.kind, ProbeKind::Path { .. }))
    {
        probes.push(cheap(ProbeKind::Path {
            via: Some(iface.to_owned()),
            source: None,
        }));
    }
}

/// An `interface` or `via` that exists on this host.
fn checked_interface(
    iface: &Spanned<String>,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<String, ConfigError> {
    check_interface(iface.get_ref(), facts).map_err(|msg| site.at(iface.span(), field, msg))?;
    Ok(iface.get_ref().clone())
}

/// A `ca_file` that holds a certificate.
fn checked_ca_file(
    path: &Spanned<PathBuf>,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<PathBuf, ConfigError> {
    check_ca_file(path.get_ref(), facts).map_err(|msg| site.at(path.span(), field, msg))?;
    Ok(path.get_ref().clone())
}

/// The probes the config writes: `probe` (one) or `probes` (a list), not both.
fn written_probes<'c>(
    checks: HealthChecks<'c>,
    field: &str,
    site: &Site,
) -> Result<Option<Vec<&'c RawProbe>>, ConfigError> {
    match (checks.probe, checks.probes) {
        (Some(one), Some(_)) => Err(site.error(
            Some(one.span()),
            &format!("{field}.probe"),
            "give `probe` or `probes`, not both".into(),
        )),
        (Some(one), None) => Ok(Some(vec![one.get_ref()])),
        (None, Some(list)) => Ok(Some(list.get_ref().iter().collect())),
        (None, None) => Ok(None),
    }
}

/// A preset's probes apply to its names with addresses; a `[[name]]` that answers a CNAME has
/// nothing to probe, and saying otherwise is a mistake worth reporting.
fn no_probes_for_a_cname(
    checks: HealthChecks<'_>,
    role: Role,
    field: &str,
    site: &Site,
) -> Result<(), ConfigError> {
    let written = checks.probe.map(|p| p.span()).or(checks
        .probes
        .filter(|p| !p.get_ref().is_empty())
        .map(|p| p.span()));
    match written.filter(|_| role == Role::Custom) {
        Some(span) => Err(site.error(
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
    site: &Site,
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
            AllDownPolicy::Cname(cname_target(fallback, &at("fallback"), site)?)
        }
        (Some(("cname", span)), None) => {
            return Err(site.error(
                Some(span),
                &at("when_all_down"),
                "\"cname\" needs `fallback = \"other.name\"`".into(),
            ))
        }
        (_, Some(fallback)) => {
            return Err(site.error(
                Some(fallback.span()),
                &at("fallback"),
                "`fallback` applies only with when_all_down = \"cname\"".into(),
            ))
        }
        (Some((other, span)), None) => {
            return Err(site.error(
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

fn validate_probe(
    raw: &RawProbe,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<ProbeSpec, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let port = raw.port.unwrap_or(443);
    if raw.port == Some(0) {
        return Err(site.error(
            Some(raw.kind.span()),
            &at("port"),
            "port 0 cannot be probed".into(),
        ));
    }
    let ca_file = raw
        .ca_file
        .as_ref()
        .map(|path| checked_ca_file(path, &at("ca_file"), facts, site))
        .transpose()?;
    let kind = match checked_kind(raw, field, site)? {
        "tcp" => ProbeKind::Tcp { port },
        "tls" => ProbeKind::Tls { port, ca_file },
        "https" => https_kind(raw, port, ca_file, field, site)?,
        "icmp" => icmp_kind(raw, field, facts, site)?,
        _ => path_kind(raw, field, facts, site)?,
    };
    let base = if kind.is_application() {
        application(kind)
    } else {
        cheap(kind)
    };
    probe_timing(raw, base, field, site)
}

/// The probe's kind, known and without keys that belong to another kind.
fn checked_kind<'r>(raw: &'r RawProbe, field: &str, site: &Site) -> Result<&'r str, ConfigError> {
    let kind_span = raw.kind.span();
    let kind = match raw.kind.get_ref().as_str() {
        kind @ ("tcp" | "tls" | "https" | "icmp" | "path") => kind,
        other => {
            return Err(site.error(
                Some(kind_span),
                &format!("{field}.kind"),
                format!("{other:?} is not a probe kind: use tcp, tls, https, icmp or path"),
            ))
        }
    };
    let misplaced = |key: &str, present: bool| -> Result<(), ConfigError> {
        if present {
            Err(site.error(
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
    site: &Site,
) -> Result<ProbeKind, ConfigError> {
    let path = raw
        .path
        .as_ref()
        .map_or("/v2/".to_owned(), |p| p.get_ref().clone());
    if !path.starts_with('/') {
        let span = raw.path.as_ref().map(|p| p.span());
        return Err(site.error(
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
        return Err(site.error(
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
fn icmp_kind(
    raw: &RawProbe,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<ProbeKind, ConfigError> {
    let Some(err) = &facts.raw_icmp_denied else {
        return Ok(ProbeKind::Icmp);
    };
    Err(site.at(
        raw.kind.span(),
        &format!("{field}.kind"),
        format!(
            "an icmp probe needs CAP_NET_RAW (run as root or grant the capability to the \
             service): {err}"
        ),
    ))
}

fn path_kind(
    raw: &RawProbe,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<ProbeKind, ConfigError> {
    let via = raw
        .via
        .as_ref()
        .map(|iface| checked_interface(iface, &format!("{field}.via"), facts, site))
        .transpose()?;
    let source = match &raw.source {
        Some(net) => Some(
            parse_network(net.get_ref())
                .map_err(|msg| site.error(Some(net.span()), &format!("{field}.source"), msg))?,
        ),
        None => None,
    };
    if via.is_none() && source.is_none() {
        return Err(site.error(
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
    site: &Site,
) -> Result<ProbeSpec, ConfigError> {
    let at = |key: &str| format!("{field}.{key}");
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| {
        value.as_ref().map_or(Ok(default), |text| {
            humantime::parse_duration(text.get_ref()).map_err(|err| {
                site.error(
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
            return Err(site.error(
                Some(raw.kind.span()),
                &at(key),
                "must be at least 100ms".into(),
            ));
        }
    }
    if timeout.is_zero() || timeout > interval.max(suspect_interval) {
        let span = raw.timeout.as_ref().map(|t| t.span());
        return Err(site.error(
            span,
            &at("timeout"),
            format!("must be above 0 and at most the interval ({interval:?})"),
        ));
    }
    let jitter = match &raw.jitter {
        Some(j) if !(0.0..=0.5).contains(j.get_ref()) => {
            return Err(site.error(
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
fn check_interface(name: &str, facts: &HostFacts) -> Result<(), String> {
    let listed = match &facts.interfaces {
        Some(Ok(names)) => names,
        Some(Err(cause)) => {
            return Err(format!(
            "cannot check that interface {name:?} exists: reading the host's links failed: {cause}"
        ))
        }
        // The load step reads the interfaces whenever the config names one.
        None => {
            return Err(format!(
                "cannot check that interface {name:?} exists: the host's links were not read"
            ))
        }
    };
    if listed.iter().any(|known| known == name) {
        return Ok(());
    }
    Err(format!(
        "no interface {name:?} on this host (it has: {})",
        listed.join(", ")
    ))
}

/// A CA file must hold at least one PEM certificate; the load step checked each one named.
fn check_ca_file(path: &Path, facts: &HostFacts) -> Result<(), String> {
    match facts.ca_files.get(path) {
        Some(checked) => checked.clone(),
        None => Err(format!("CA file {} was not read", path.display())),
    }
}
