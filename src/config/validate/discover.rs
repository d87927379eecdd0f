//! `discover = { servers, interval, timeout }` of `[[registry]]` and `[[name]]`: where an
//! owned name's private addresses are asked over the private path.
//!
//! Owns: the servers' syntax (an IP, or IP:PORT; port 53 unless written), the interval and
//! timeout bounds. Must not: ask anyone, or decide which names are asked (the preset and
//! `[[name]]` do, through [`discovery`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::Name;
use toml::Spanned;

use crate::config::error::{ConfigError, Site};
use crate::config::raw::RawDiscover;
use crate::config::settings::{Discovery, DEFAULT_DISCOVER_INTERVAL, DEFAULT_DISCOVER_TIMEOUT};

/// Shorter than this, a fleet of thousands of hosts would be a load on the VPC resolver;
/// longer, a moved address goes unnoticed for more than a day.
const INTERVAL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(30));
/// More servers than this is a list nobody meant (they are asked one after another).
const MAX_SERVERS: usize = 8;

/// The discovery settings of a name asked as `ask`; `field` is e.g. `registry[0].discover`.
pub(in crate::config) fn discovery(
    raw: &Spanned<RawDiscover>,
    ask: Name,
    field: &str,
    site: &Site,
) -> Result<Discovery, ConfigError> {
    let discover = raw.get_ref();
    let servers = servers(&discover.servers, &format!("{field}.servers"), site)?;
    let interval = bounded(
        discover.interval.as_ref(),
        DEFAULT_DISCOVER_INTERVAL,
        INTERVAL_RANGE,
        &format!("{field}.interval"),
        site,
    )?;
    let timeout = bounded(
        discover.timeout.as_ref(),
        DEFAULT_DISCOVER_TIMEOUT,
        TIMEOUT_RANGE,
        &format!("{field}.timeout"),
        site,
    )?;
    if let Some(written) = &discover.timeout {
        if timeout >= interval {
            return Err(site.at(
                written.span(),
                &format!("{field}.timeout"),
                "must be shorter than `interval`".into(),
            ));
        }
    }
    Ok(Discovery {
        servers,
        interval,
        timeout: timeout.min(interval),
        ask,
    })
}

fn servers(
    written: &Spanned<Vec<Spanned<String>>>,
    field: &str,
    site: &Site,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let list = written.get_ref();
    if list.is_empty() || list.len() > MAX_SERVERS {
        return Err(site.at(
            written.span(),
            field,
            format!("give 1 to {MAX_SERVERS} resolvers inside the VPC, e.g. [\"10.0.5.53\"]"),
        ));
    }
    let mut servers = Vec::with_capacity(list.len());
    for (index, text) in list.iter().enumerate() {
        let at = format!("{field}[{index}]");
        let Some(addr) = server_addr(text.get_ref()) else {
            return Err(site.at(
                text.span(),
                &at,
                format!("`{}` is not an IP address or IP:PORT", text.get_ref()),
            ));
        };
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(site.at(
                text.span(),
                &at,
                format!("`{addr}` cannot be asked: give the resolver's own address and port"),
            ));
        }
        servers.push(addr);
    }
    Ok(servers)
}

/// `"10.0.5.53"` (port 53) or `"10.0.5.53:5353"`, `"[fd00::53]:53"`.
pub fn server_addr(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn bounded(
    written: Option<&Spanned<Duration>>,
    default: Duration,
    (low, high): (Duration, Duration),
    field: &str,
    site: &Site,
) -> Result<Duration, ConfigError> {
    let Some(written) = written else {
        return Ok(default);
    };
    let value = *written.get_ref();
    if value < low || value > high {
        return Err(site.at(
            written.span(),
            field,
            format!(
                "must be between {} and {}",
                humantime::format_duration(low),
                humantime::format_duration(high)
            ),
        ));
    }
    Ok(value)
}
