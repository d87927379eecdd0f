//! Small rules every section shares: counts in a range, values left at their default.
//!
//! Must not: know any section's meaning; the callers name the field.

use toml::Spanned;

use crate::config::error::{ConfigError, Site};

/// A value that was not written in the file: serde's default has no span.
pub(in crate::config) fn is_default<T>(value: &Spanned<T>) -> bool {
    value.span() == (0..0)
}

/// A count that must be between 1 and `max`.
pub(in crate::config) fn in_range(
    value: &Spanned<usize>,
    max: usize,
    field: &str,
    site: &Site,
) -> Result<(), ConfigError> {
    if (1..=max).contains(value.get_ref()) {
        return Ok(());
    }
    Err(site.at(value.span(), field, format!("must be between 1 and {max}")))
}
