//! How pathdns is operated: the control endpoint (`[control]`), logging (`[log]`) and
//! alert sinks (`[[alert]]`).
//!
//! Owns: these sections' schema, defaults and validation. Must not: open sockets or send
//! anything; the control server and the alert sinks do that from the validated settings.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::raw::text;
use super::ConfigError;

/// The documented default of the control endpoint: loopback only.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:9253";

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

/// Retries per alert at most: with the backoff capped at 30 s, a few minutes of trying.
const MAX_RETRIES: u32 = 10;

type Blame<'a> = &'a dyn Fn(Option<Range<usize>>, &str, String) -> ConfigError;

pub(super) fn control(
    raw: Option<&RawControl>,
    blame: Blame<'_>,
) -> Result<ControlSettings, ConfigError> {
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
        blame(
            Some(listen.span()),
            "control.listen",
            format!(
                "{text:?} is not an address with a port such as \"{DEFAULT_CONTROL}\", or \"off\""
            ),
        )
    })?;
    Ok(ControlSettings { listen: Some(addr) })
}

pub(super) fn log(raw: &RawLog, blame: Blame<'_>) -> Result<LogSettings, ConfigError> {
    let level = match &raw.level {
        Some(level) => {
            let text = level.get_ref().trim();
            if !is_log_filter(text) {
                return Err(blame(
                    Some(level.span()),
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
        && tracing_subscriber::EnvFilter::try_new(text).is_ok()
}

pub(super) fn alerts(raw: &[RawAlert], blame: Blame<'_>) -> Result<Vec<AlertSink>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(index, alert)| {
            let at = |key: &str| format!("alert[{index}].{key}");
            let kind = match alert.kind.get_ref().as_str() {
                "webhook" => AlertKind::Webhook,
                "alertmanager" => AlertKind::Alertmanager,
                other => {
                    return Err(blame(
                        Some(alert.kind.span()),
                        &at("kind"),
                        format!(
                            "{other:?} is not an alert kind: use \"webhook\" or \"alertmanager\""
                        ),
                    ))
                }
            };
            let url = alert.url.get_ref().trim();
            let parsed = reqwest::Url::parse(url).ok();
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() < 10
                || parsed.as_ref().and_then(|u| u.host_str()).is_none()
            {
                return Err(blame(
                    Some(alert.url.span()),
                    &at("url"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            let timeout = alert
                .timeout
                .as_ref()
                .map_or(Duration::from_secs(5), |t| *t.get_ref());
            if timeout.is_zero() {
                let span = alert.timeout.as_ref().map(Spanned::span);
                return Err(blame(span, &at("timeout"), "must be above 0".into()));
            }
            let repeat_interval = alert
                .repeat_interval
                .as_ref()
                .map_or(Duration::from_secs(4 * 3600), |r| *r.get_ref());
            if repeat_interval < Duration::from_secs(1) {
                let span = alert.repeat_interval.as_ref().map(Spanned::span);
                return Err(blame(
                    span,
                    &at("repeat_interval"),
                    "must be at least 1s".into(),
                ));
            }
            let retries = alert.retries.as_ref().map_or(3, |r| *r.get_ref());
            if retries > MAX_RETRIES {
                let span = alert.retries.as_ref().map(Spanned::span);
                return Err(blame(
                    span,
                    &at("retries"),
                    format!("must be between 0 and {MAX_RETRIES}"),
                ));
            }
            let queue = alert.queue.unwrap_or(256);
            if queue == 0 || queue > 100_000 {
                return Err(blame(
                    Some(alert.kind.span()),
                    &at("queue"),
                    "must be between 1 and 100000".into(),
                ));
            }
            Ok(AlertSink {
                kind,
                url: url.trim_end_matches('/').to_owned(),
                timeout,
                repeat_interval,
                retries,
                queue,
            })
        })
        .collect()
}
