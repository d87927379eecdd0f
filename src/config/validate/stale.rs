//! Serve-stale (RFC 8767): `serve_stale`, `stale_max_age` and `stale_answer_after`.
//!
//! Must not: know the cache; the forwarder keeps stale answers from these settings.

use std::time::Duration;

use crate::config::error::{ConfigError, Site};
use crate::config::raw::RawUpstream;
use crate::config::settings::StaleSettings;

use super::values::is_default;

/// The longest `upstream.stale_max_age`: a week, over RFC 8767's suggested 1 to 3 days.
const MAX_STALE_AGE: Duration = Duration::from_secs(7 * 86_400);

/// The serve-stale keys. Checked even with `serve_stale = false`, so that turning it on
/// later never meets an error in a value written long ago.
pub(in crate::config) fn stale_settings(
    upstream: &RawUpstream,
    site: &Site,
) -> Result<StaleSettings, ConfigError> {
    let max_age = &upstream.stale_max_age;
    if max_age.get_ref().is_zero() {
        return Err(site.at(
            max_age.span(),
            "upstream.stale_max_age",
            "must be above 0; to never serve stale answers, set serve_stale = false".into(),
        ));
    }
    if *max_age.get_ref() > MAX_STALE_AGE {
        return Err(site.at(
            max_age.span(),
            "upstream.stale_max_age",
            format!(
                "{} is more than {}: answers that old are more likely wrong than useful \
                 (RFC 8767 suggests 1 to 3 days)",
                humantime::format_duration(*max_age.get_ref()),
                humantime::format_duration(MAX_STALE_AGE),
            ),
        ));
    }
    Ok(StaleSettings {
        max_age: *max_age.get_ref(),
        answer_after: answer_after(upstream, site)?,
    })
}

/// How long a client waits before it gets a stale answer. Not written: the default, or
/// `timeout` if that is shorter (an upstream timeout then serves the stale answer before
/// the timer would).
fn answer_after(upstream: &RawUpstream, site: &Site) -> Result<Duration, ConfigError> {
    let answer_after = &upstream.stale_answer_after;
    let timeout = *upstream.timeout.get_ref();
    if is_default(answer_after) {
        return Ok((*answer_after.get_ref()).min(timeout));
    }
    if answer_after.get_ref().is_zero() || *answer_after.get_ref() >= timeout {
        return Err(site.at(
            answer_after.span(),
            "upstream.stale_answer_after",
            format!(
                "must be above 0 and shorter than upstream.timeout ({}): it is how long a \
                 client waits for the upstreams before it gets a stale answer",
                humantime::format_duration(timeout),
            ),
        ));
    }
    Ok(*answer_after.get_ref())
}
