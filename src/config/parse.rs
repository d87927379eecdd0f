//! From config text to the raw schema: TOML syntax and serde's type errors, worded for
//! operators.
//!
//! Owns: the first stage of the pipeline, [`deserialize`]: unknown keys, wrong types, bad
//! addresses and duplicate keys, each placed by its span. Must not: judge values beyond
//! their type (that is `validate`'s job) or read anything but the text it is given.

use super::error::{ConfigError, Site};
use super::raw::RawConfig;

/// TOML syntax and schema: unknown keys, wrong types, bad addresses.
pub(super) fn deserialize(site: &Site) -> Result<RawConfig, ConfigError> {
    let deserializer =
        toml::Deserializer::parse(site.text).map_err(|err| syntax_error(err, site))?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // Spanned<T> adds a private path segment; operators should not see it.
        let field = err
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let field = if field == "." { String::new() } else { field };
        toml_error(err.into_inner(), &field, site)
    })
}

/// A TOML syntax error; the parser's "duplicate key" does not say which key, so it is
/// named here.
fn syntax_error(err: toml::de::Error, site: &Site) -> ConfigError {
    let message = err.message().trim();
    match err.span().and_then(|span| site.text.get(span)) {
        Some(key) if message == "duplicate key" && !key.trim().is_empty() => site.error(
            err.span(),
            "",
            format!(
                "duplicate key `{}`: each key may be given once per table",
                key.trim()
            ),
        ),
        _ => toml_error(err, "", site),
    }
}

fn toml_error(err: toml::de::Error, field: &str, site: &Site) -> ConfigError {
    site.error(err.span(), field, err.message().trim().to_owned())
}
