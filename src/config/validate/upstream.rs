//! `[upstream]`: whom pathdns forwards to, its time budget and caps, with the serve-stale
//! ([`stale`](super::stale)) and rebinding ([`rebinding`](super::rebinding)) keys.
//!
//! Owns: the upstream server list (a `"system"` entry stands for the nameservers of the
//! resolv.conf the load step read), the rule that pathdns never forwards to itself, and the
//! timeout's relation to glibc's. Must not: read resolv.conf itself or contact anything.

use std::net::{IpAddr, SocketAddr};

use toml::Spanned;

use crate::config::error::{ConfigError, Site};
use crate::config::facts::HostFacts;
use crate::config::raw::{RawUpstream, DEFAULT_PORT};
use crate::config::settings::{
    OwnedName, UpstreamSettings, GLIBC_RESOLVER_TIMEOUT, UPSTREAM_GUARD,
};

use super::rebinding::rebinding_settings;
use super::stale::stale_settings;
use super::values::in_range;

/// More queries waiting on upstreams than one node's clients ever need: each holds a
/// socket, and a file descriptor limit of a million is already unusual.
const MAX_IN_FLIGHT: usize = 1_000_000;

/// The `"system"` entry and what its resolv.conf listed, for the message when nothing
/// but pathdns itself is left.
struct System<'r> {
    entry: &'r Spanned<String>,
    field: String,
    listed: Vec<SocketAddr>,
}

pub(in crate::config) fn upstream(
    raw: &RawUpstream,
    listen: &[SocketAddr],
    names: &[OwnedName],
    facts: &HostFacts,
    site: &Site,
) -> Result<UpstreamSettings, ConfigError> {
    let servers = servers(raw, listen, facts, site)?;
    check_timeout(&raw.timeout, site)?;
    let stale = stale_settings(raw, site)?;
    let max_in_flight = &raw.max_in_flight;
    in_range(max_in_flight, MAX_IN_FLIGHT, "upstream.max_in_flight", site)?;
    Ok(UpstreamSettings {
        servers,
        timeout: *raw.timeout.get_ref(),
        cache_size: raw.cache_size,
        max_in_flight: *max_in_flight.get_ref(),
        stale: raw.serve_stale.then_some(stale),
        case_randomization: raw.case_randomization,
        rebinding: rebinding_settings(raw, names, facts, site)?,
    })
}

/// `upstream.servers`, each once, pathdns's own listen addresses left out.
fn servers(
    raw: &RawUpstream,
    listen: &[SocketAddr],
    facts: &HostFacts,
    site: &Site,
) -> Result<Vec<SocketAddr>, ConfigError> {
    if raw.servers.get_ref().is_empty() {
        return Err(site.at(
            raw.servers.span(),
            "upstream.servers",
            "empty: give \"system\" (this host's resolv.conf) or resolver addresses".into(),
        ));
    }
    let mut servers: Vec<SocketAddr> = Vec::new();
    let mut system = None;
    for (index, entry) in raw.servers.get_ref().iter().enumerate() {
        let field = format!("upstream.servers[{index}]");
        if entry.get_ref() == "system" {
            let listed = system_upstreams(entry, &field, facts, site)?;
            servers.extend(listed.iter().filter(|addr| !is_own_address(**addr, listen)));
            system = Some(System {
                entry,
                field,
                listed,
            });
            continue;
        }
        servers.push(written_upstream(entry, &field, listen, site)?);
    }
    let mut seen = Vec::with_capacity(servers.len());
    servers.retain(|addr| {
        let first = !seen.contains(addr);
        seen.push(*addr);
        first
    });
    if servers.is_empty() {
        return Err(nothing_left(system, raw, site));
    }
    Ok(servers)
}

/// Only "system" entries can leave nothing: resolv.conf named only pathdns itself, as it
/// does once pathdns has been made the host's resolver.
fn nothing_left(system: Option<System>, raw: &RawUpstream, site: &Site) -> ConfigError {
    let Some(system) = system else {
        return site.error(None, "upstream.servers", "no upstream resolver".into());
    };
    let path = raw.resolv_conf.display();
    let listed: Vec<String> = system.listed.iter().map(ToString::to_string).collect();
    let found = if listed.is_empty() {
        format!("{path} lists no nameserver")
    } else {
        format!("{path} lists only pathdns itself ({})", listed.join(", "))
    };
    site.at(
        system.entry.span(),
        &system.field,
        format!(
            "\"system\": {found}; list the resolvers to forward to, e.g. \
             servers = [\"10.0.0.2\"], or set upstream.resolv_conf"
        ),
    )
}

/// The host's resolv.conf nameservers, pathdns's own addresses included; a resolv.conf
/// that could not be read is this entry's error.
fn system_upstreams(
    entry: &Spanned<String>,
    field: &str,
    facts: &HostFacts,
    site: &Site,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let conf = facts
        .resolv_conf
        .as_ref()
        .map_err(|err| site.at(entry.span(), field, format!("\"system\": {err}")))?;
    Ok(conf
        .nameservers
        .iter()
        .map(|ip| SocketAddr::new(*ip, DEFAULT_PORT))
        .collect())
}

/// An `"IP"` or `"IP:PORT"` entry that does not reach pathdns itself.
fn written_upstream(
    entry: &Spanned<String>,
    field: &str,
    listen: &[SocketAddr],
    site: &Site,
) -> Result<SocketAddr, ConfigError> {
    let addr = parse_upstream(entry.get_ref()).ok_or_else(|| {
        site.at(
            entry.span(),
            field,
            format!(
                "{:?} is not \"system\", an IP address or IP:PORT",
                entry.get_ref()
            ),
        )
    })?;
    let Some(own) = own_listen_address(addr, listen) else {
        return Ok(addr);
    };
    let which = if own == addr {
        "is pathdns's own listen address".to_owned()
    } else {
        format!("reaches pathdns's own listen address {own}")
    };
    Err(site.at(
        entry.span(),
        field,
        format!("{addr} {which}: pathdns would forward to itself"),
    ))
}

/// Above 0, and with pathdns's guard below glibc's resolver timeout, so that a client
/// sees pathdns's answer rather than its own timeout.
fn check_timeout(timeout: &Spanned<std::time::Duration>, site: &Site) -> Result<(), ConfigError> {
    if timeout.get_ref().is_zero() {
        return Err(site.at(timeout.span(), "upstream.timeout", "must be above 0".into()));
    }
    let budget = *timeout.get_ref() + UPSTREAM_GUARD;
    if budget < GLIBC_RESOLVER_TIMEOUT {
        return Ok(());
    }
    Err(site.at(
        timeout.span(),
        "upstream.timeout",
        format!(
            "{} plus pathdns's {} guard is {}, not below glibc's default resolver \
             timeout of {}: a client would give up and retry before pathdns answers \
             SERVFAIL or a stale answer; use less than {}",
            humantime::format_duration(*timeout.get_ref()),
            humantime::format_duration(UPSTREAM_GUARD),
            humantime::format_duration(budget),
            humantime::format_duration(GLIBC_RESOLVER_TIMEOUT),
            humantime::format_duration(GLIBC_RESOLVER_TIMEOUT - UPSTREAM_GUARD),
        ),
    ))
}

fn parse_upstream(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
    })
}

/// Would forwarding to `addr` reach pathdns itself, listening on `listen`?
pub fn is_own_address(addr: SocketAddr, listen: &[SocketAddr]) -> bool {
    own_listen_address(addr, listen).is_some()
}

/// The listen address that forwarding to `addr` would reach, if any.
fn own_listen_address(addr: SocketAddr, listen: &[SocketAddr]) -> Option<SocketAddr> {
    listen.iter().copied().find(|own| {
        own.port() == addr.port()
            && (own.ip() == addr.ip()
                || (own.ip().is_unspecified()
                    && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_address_detection() {
        let listen = ["0.0.0.0:53".parse().unwrap()];
        assert!(is_own_address("127.0.0.1:53".parse().unwrap(), &listen));
        assert!(!is_own_address("127.0.0.1:5353".parse().unwrap(), &listen));
        let listen = ["127.0.0.1:53".parse().unwrap()];
        assert!(!is_own_address("127.0.0.53:53".parse().unwrap(), &listen));
    }
}
