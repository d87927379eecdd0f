//! How pathdns is operated: the control endpoint (`[control]`), logging (`[log]`) and
//! alert sinks (`[[alert]]`).
//!
//! Owns: these sections' validation and defaults. Must not: open sockets or send
//! anything; the control server and the alert sinks do that from the validated settings.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use crate::config::error::{ConfigError, Site};
use crate::config::raw::{RawAlert, RawControl, RawLog};
use crate::config::settings::{
    AlertKind, AlertSink, ControlSettings, LogSettings, DEFAULT_CONTROL,
};

/// Retries per alert at most: with the backoff capped at 30 s, a few minutes of trying.
const MAX_RETRIES: u32 = 10;

/// `[control]`; its address must not be one the DNS listeners take.
pub(in crate::config) fn control(
    raw: Option<&RawControl>,
    dns_listen: &[SocketAddr],
    site: &Site,
) -> Result<ControlSettings, ConfigError> {
    let control = control_listen(raw, site)?;
    if let Some(addr) = control.listen.filter(|addr| addr.port() != 0) {
        if dns_listen.contains(&addr) {
            return Err(site.error(
                None,
                "control.listen",
                format!("{addr} is also a DNS listen address"),
            ));
        }
    }
    Ok(control)
}

fn control_listen(raw: Option<&RawControl>, site: &Site) -> Result<ControlSettings, ConfigError> {
    let Some(listen) = raw.and_then(|c| c.listen.as_ref()) else {
        return Ok(ControlSettings {
            listen: DEFAULT_CONTROL.parse().ok(),
        });
    };
    let text = listen.get_ref().trim();
    if text == "off" {
        return Ok(ControlSettings { listen: None });
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        site.at(
            listen.span(),
            "control.listen",
            format!(
                "{text:?} is not an address with a port such as \"{DEFAULT_CONTROL}\", or \"off\""
            ),
        )
    })?;
    Ok(ControlSettings { listen: Some(addr) })
}

pub(in crate::config) fn log(raw: &RawLog, site: &Site) -> Result<LogSettings, ConfigError> {
    let level = match &raw.level {
        Some(level) => {
            let text = level.get_ref().trim();
            if !is_log_filter(text) {
                return Err(site.at(
                    level.span(),
                    "log.level",
                    format!("{text:?} is not a level (error, warn, info, debug, trace) or a filter such as \"pathdns=debug\""),
                ));
            }
            text.to_owned()
        }
        None => "info".to_owned(),
    };
    Ok(LogSettings { level })
}

/// A level ("info"), or comma-separated directives whose levels are real
/// ("warn,pathdns=debug"). A bare word that is not a level is refused: tracing would take
/// it for a module name and silently log nothing.
fn is_log_filter(text: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    !text.is_empty()
        && text.split(',').all(|directive| {
            let level = directive
                .rsplit_once('=')
                .map_or(directive, |(_, level)| level);
            LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
        })
        && text.parse::<tracing_subscriber::filter::Targets>().is_ok()
}

pub(in crate::config) fn alerts(
    raw: &[RawAlert],
    site: &Site,
) -> Result<Vec<AlertSink>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(index, alert)| alert_sink(alert, &format!("alert[{index}]"), site))
        .collect()
}

/// One `[[alert]]`; `table` is `alert[N]`.
fn alert_sink(alert: &RawAlert, table: &str, site: &Site) -> Result<AlertSink, ConfigError> {
    let at = |key: &str| format!("{table}.{key}");
    let kind = alert_kind(&alert.kind, &at("kind"), site)?;
    let url = alert_url(&alert.url, &at("url"), site)?;
    let timeout = alert
        .timeout
        .as_ref()
        .map_or(Duration::from_secs(5), |t| *t.get_ref());
    if timeout.is_zero() {
        let span = alert.timeout.as_ref().map(Spanned::span);
        return Err(site.error(span, &at("timeout"), "must be above 0".into()));
    }
    let repeat_interval = alert
        .repeat_interval
        .as_ref()
        .map_or(Duration::from_secs(4 * 3600), |r| *r.get_ref());
    if repeat_interval < Duration::from_secs(1) {
        let span = alert.repeat_interval.as_ref().map(Spanned::span);
        return Err(site.error(span, &at("repeat_interval"), "must be at least 1s".into()));
    }
    let retries = alert.retries.as_ref().map_or(3, |r| *r.get_ref());
    if retries > MAX_RETRIES {
        let span = alert.retries.as_ref().map(Spanned::span);
        return Err(site.error(
            span,
            &at("retries"),
            format!("must be between 0 and {MAX_RETRIES}"),
        ));
    }
    let queue = alert.queue.unwrap_or(256);
    if queue == 0 || queue > 100_000 {
        return Err(site.at(
            alert.kind.span(),
            &at("queue"),
            "must be between 1 and 100000".into(),
        ));
    }
    Ok(AlertSink {
        kind,
        url,
        timeout,
        repeat_interval,
        retries,
        queue,
    })
}

fn alert_kind(kind: &Spanned<String>, field: &str, site: &Site) -> Result<AlertKind, ConfigError> {
    match kind.get_ref().as_str() {
        "webhook" => Ok(AlertKind::Webhook),
        "alertmanager" => Ok(AlertKind::Alertmanager),
        other => Err(site.at(
            kind.span(),
            field,
            format!("{other:?} is not an alert kind: use \"webhook\" or \"alertmanager\""),
        )),
    }
}

/// An http:// or https:// URL with a host, without a trailing '/'.
fn alert_url(url: &Spanned<String>, field: &str, site: &Site) -> Result<String, ConfigError> {
    let text = url.get_ref().trim();
    let parsed = reqwest::Url::parse(text).ok();
    if !(text.starts_with("http://") || text.starts_with("https://"))
        || text.len() < 10
        || parsed.as_ref().and_then(|u| u.host_str()).is_none()
    {
        return Err(site.at(
            url.span(),
            field,
            format!("{text:?} is not an http:// or https:// URL"),
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}
