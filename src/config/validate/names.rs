//! Name and label syntax: owned names, CNAME targets, the preset's labels.
//!
//! Owns: what a name may look like (lower-cased, fully qualified, `*` only as a whole
//! first label) and how one is shown to operators. Must not: know which names are owned;
//! [`table`](super::table) checks the whole table.

use hickory_proto::rr::Name;
use toml::Spanned;

use crate::config::error::{ConfigError, Site};

/// A DNS label from the preset (instance, region, bucket): lower-cased and checked.
pub(in crate::config) fn label(
    value: &Spanned<String>,
    field: &str,
    site: &Site,
) -> Result<String, ConfigError> {
    let text = value.get_ref().to_ascii_lowercase();
    check_label(&text).map_err(|msg| site.at(value.span(), field, msg))?;
    Ok(text)
}

/// A DNS label as the `[[registry]]` preset accepts it: 1 to 63 letters, digits, '-' or '_',
/// not starting or ending with '-'. Letters of either case pass: every caller checks a
/// lower-cased label (the preset lower-cases what it reads, the hosts-file reader too).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label".into());
    }
    if label.len() > 63 {
        return Err(format!("label {label:?} is longer than 63 characters"));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{label:?} has {bad:?}: only letters, digits, '-' and '_' are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("{label:?} starts or ends with '-'"));
    }
    Ok(())
}

/// An owned or CNAME target name: lower-cased, fully qualified, `*` only as a whole first
/// label.
pub(in crate::config) fn parse_name(text: &str) -> Result<Name, String> {
    let lower = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if lower.is_empty() {
        return Err("empty name".into());
    }
    if lower.len() > 253 {
        return Err(format!("{text:?} is longer than 253 characters"));
    }
    for (index, part) in lower.split('.').enumerate() {
        if part == "*" && index == 0 {
            continue;
        }
        if part.contains('*') {
            return Err(format!(
                "{text:?}: '*' is allowed only as the whole first label"
            ));
        }
        check_label(part).map_err(|msg| format!("{text:?}: {msg}"))?;
    }
    if lower == "*" {
        return Err("a wildcard needs a parent name, e.g. \"*.example.internal\"".into());
    }
    Name::from_ascii(format!("{lower}.")).map_err(|err| format!("{text:?}: {err}"))
}

/// A written name, placed at its span when it is not one.
pub(in crate::config) fn written_name(
    value: &Spanned<String>,
    field: &str,
    site: &Site,
) -> Result<Name, ConfigError> {
    parse_name(value.get_ref()).map_err(|msg| site.at(value.span(), field, msg))
}

/// A CNAME target (`cname`, `oss_cname`, a `fallback`): a name, and never a wildcard,
/// which no query could be answered from.
pub(in crate::config) fn cname_target(
    value: &Spanned<String>,
    field: &str,
    site: &Site,
) -> Result<Name, ConfigError> {
    let target = written_name(value, field, site)?;
    if target.is_wildcard() {
        return Err(site.at(
            value.span(),
            field,
            "a CNAME target cannot be a wildcard".into(),
        ));
    }
    Ok(target)
}

/// A name as operators write it: no trailing dot.
pub fn display_name(name: &Name) -> String {
    let text = name.to_ascii();
    text.trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_checked() {
        assert_eq!(
            parse_name("Registry.Example.").map(|n| n.to_ascii()),
            Ok("registry.example.".to_owned())
        );
        assert!(parse_name("*.oss.example").is_ok());
        assert!(parse_name("a.*.example").is_err());
        assert!(parse_name("bad name.example").is_err());
        assert!(parse_name("-x.example").is_err());
        assert!(parse_name("*").is_err());
    }
}
