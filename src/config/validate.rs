//! From the raw schema to a validated [`Config`]: names, targets, upstreams, loops.
//!
//! Owns: every rule that a value must satisfy beyond its serde type, each reported with
//! the file, line and field. Must not: read anything but the config text and, for
//! `"system"` upstreams, the host's resolv.conf.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::preset::{self, BACKUP_PRIORITY};
use super::raw::{RawConfig, RawName, RawRegistry, RawTarget, DEFAULT_PORT};
use super::{
    AnswerSpec, Config, ConfigError, OwnedName, Role, ServerSettings, Target, UpstreamSettings,
};

/// The longest CNAME chain pathdns follows inside its own table.
const MAX_CNAME_CHAIN: usize = 8;

/// Where a message points: the config text and its name.
struct Source<'a> {
    text: &'a str,
    path: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, field: &str, message: String) -> ConfigError {
        let location = span
            .filter(|span| !(span.start == 0 && span.end == 0))
            .map(|span| line_and_column(self.text, span.start));
        ConfigError::Invalid {
            path: self.path.to_owned(),
            location,
            field: field.to_owned(),
            message,
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// TOML syntax and schema: unknown keys, wrong types, bad addresses.
pub(super) fn deserialize(text: &str, path: &str) -> Result<RawConfig, ConfigError> {
    let src = Source { text, path };
    let toml_error = |err: toml::de::Error, field: &str| {
        src.error(err.span(), field, err.message().trim().to_owned())
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|err| toml_error(err, ""))?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // Spanned<T> adds a private path segment; operators should not see it.
        let field = err
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let field = if field == "." { String::new() } else { field };
        toml_error(err.into_inner(), &field)
    })
}

/// Everything serde cannot check.
pub(super) fn validate(raw: RawConfig, text: &str, path: &str) -> Result<Config, ConfigError> {
    let src = Source { text, path };
    let server = validate_server(&raw, &src)?;
    let names = collect_names(&raw, &src)?;
    let upstream = validate_upstream(&raw, &server.listen, &src)?;
    Ok(Config {
        source: path.to_owned(),
        server,
        upstream,
        names,
    })
}

fn validate_server(raw: &RawConfig, src: &Source) -> Result<ServerSettings, ConfigError> {
    let listen = &raw.server.listen;
    if listen.get_ref().is_empty() {
        return Err(src.error(
            Some(listen.span()),
            "server.listen",
            "no listen address: give at least one, e.g. \"127.0.0.1:53\"".into(),
        ));
    }
    for (index, addr) in listen.get_ref().iter().enumerate() {
        if listen.get_ref()[..index].contains(addr) {
            return Err(src.error(
                Some(listen.span()),
                "server.listen",
                format!("{addr} is listed twice"),
            ));
        }
    }
    if raw.server.allow.is_empty() {
        return Err(src.error(
            None,
            "server.allow",
            "empty: every client would be REFUSED; allow at least 127.0.0.0/8".into(),
        ));
    }
    if raw.server.max_tcp_connections == 0 {
        return Err(src.error(
            None,
            "server.max_tcp_connections",
            "must be at least 1".into(),
        ));
    }
    Ok(ServerSettings {
        listen: listen.get_ref().clone(),
        allow: raw.server.allow.clone(),
        max_tcp_connections: raw.server.max_tcp_connections,
        tcp_idle_timeout: raw.server.tcp_idle_timeout,
    })
}

/// An owned name before duplicate and CNAME checks, with the span to blame.
struct Candidate {
    owned: OwnedName,
    span: Range<usize>,
    field: String,
}

fn collect_names(raw: &RawConfig, src: &Source) -> Result<Vec<OwnedName>, ConfigError> {
    let mut candidates = Vec::new();
    for (index, registry) in raw.registry.iter().enumerate() {
        expand_registry(registry, index, raw.server.ttl, src, &mut candidates)?;
    }
    for (index, name) in raw.name.iter().enumerate() {
        candidates.push(plain_name(name, index, raw.server.ttl, src)?);
    }
    reject_duplicates(&candidates, src)?;
    reject_cname_loops(&candidates, src)?;
    Ok(candidates.into_iter().map(|c| c.owned).collect())
}

fn expand_registry(
    registry: &RawRegistry,
    index: usize,
    default_ttl: u32,
    src: &Source,
    out: &mut Vec<Candidate>,
) -> Result<(), ConfigError> {
    let at = |field: &str| format!("registry[{index}].{field}");
    let instance = label(&registry.instance, &at("instance"), src)?;
    let region = label(&registry.region, &at("region"), src)?;
    let ttl = registry.ttl.unwrap_or(default_ttl);
    let backup = registry.backup.as_ref();
    let preset_name = |text: String, span: Range<usize>, field: &str| {
        parse_name(&text).map_err(|msg| src.error(Some(span), &at(field), msg))
    };
    let span = registry.instance.span();

    if registry.registry.get_ref().is_empty() {
        return Err(src.error(
            Some(registry.registry.span()),
            &at("registry"),
            "needs at least one address (look it up from inside the VPC)".into(),
        ));
    }
    let targets = with_backup(
        registry.registry.get_ref(),
        backup.map(|b| b.registry.as_slice()),
    );
    out.push(Candidate {
        owned: OwnedName {
            name: preset_name(
                preset::registry_name(&instance, &region),
                span.clone(),
                "instance",
            )?,
            answer: AnswerSpec::Targets(targets),
            ttl,
            role: Role::Registry,
            origin: at("registry"),
        },
        span: registry.registry.span(),
        field: at("registry"),
    });

    match &registry.auth {
        Some(auth) if auth.get_ref().is_empty() => {
            return Err(src.error(
                Some(auth.span()),
                &at("auth"),
                "empty: leave `auth` out when the instance takes over the auth domain".into(),
            ))
        }
        Some(auth) => out.push(Candidate {
            owned: OwnedName {
                name: preset_name(preset::auth_name(&region), auth.span(), "auth")?,
                answer: AnswerSpec::Targets(with_backup(
                    auth.get_ref(),
                    backup.map(|b| b.auth.as_slice()),
                )),
                ttl,
                role: Role::Auth,
                origin: at("auth"),
            },
            span: auth.span(),
            field: at("auth"),
        }),
        None => {
            if backup.is_some_and(|b| !b.auth.is_empty()) {
                return Err(src.error(
                    Some(span),
                    &at("backup.auth"),
                    "backup auth addresses without primary `auth` addresses".into(),
                ));
            }
        }
    }

    let (oss_answer, oss_span, oss_field) = oss_answer(registry, index, src)?;
    let mut oss_names = vec![(preset::oss_name(&region), Role::Oss)];
    if let Some(bucket) = &registry.bucket {
        let bucket_label = label(bucket, &at("bucket"), src)?;
        oss_names.push((preset::bucket_name(&bucket_label, &region), Role::OssBucket));
    }
    if registry.oss_wildcard {
        oss_names.push((preset::oss_wildcard_name(&region), Role::OssWildcard));
    }
    for (text, role) in oss_names {
        out.push(Candidate {
            owned: OwnedName {
                name: preset_name(text, oss_span.clone(), &oss_field)?,
                answer: oss_answer.clone(),
                ttl,
                role,
                origin: at(&oss_field),
            },
            span: oss_span.clone(),
            field: at(&oss_field),
        });
    }
    Ok(())
}

/// The OSS names answer either addresses or a CNAME to a PrivateLink endpoint, never both.
fn oss_answer(
    registry: &RawRegistry,
    index: usize,
    src: &Source,
) -> Result<(AnswerSpec, Range<usize>, String), ConfigError> {
    let at = |field: &str| format!("registry[{index}].{field}");
    let backup_oss = registry
        .backup
        .as_ref()
        .map(|b| b.oss.as_slice())
        .unwrap_or_default();
    match (&registry.oss, &registry.oss_cname) {
        (Some(oss), None) if !oss.get_ref().is_empty() => Ok((
            AnswerSpec::Targets(with_backup(oss.get_ref(), Some(backup_oss))),
            oss.span(),
            "oss".into(),
        )),
        (None, Some(cname)) => {
            if !backup_oss.is_empty() {
                return Err(src.error(
                    Some(cname.span()),
                    &at("backup.oss"),
                    "backup OSS addresses do not apply when `oss_cname` is set".into(),
                ));
            }
            let target = parse_name(cname.get_ref())
                .map_err(|msg| src.error(Some(cname.span()), &at("oss_cname"), msg))?;
            if target.is_wildcard() {
                return Err(src.error(
                    Some(cname.span()),
                    &at("oss_cname"),
                    "a CNAME target cannot be a wildcard".into(),
                ));
            }
            Ok((AnswerSpec::Cname(target), cname.span(), "oss_cname".into()))
        }
        (Some(oss), Some(_)) => Err(src.error(
            Some(oss.span()),
            &at("oss"),
            "give either `oss` addresses or `oss_cname` (PrivateLink), not both".into(),
        )),
        (Some(oss), None) => Err(src.error(
            Some(oss.span()),
            &at("oss"),
            "needs at least one address, or use `oss_cname` for a PrivateLink endpoint".into(),
        )),
        (None, None) => Err(src.error(
            Some(registry.instance.span()),
            &at("oss"),
            "missing: give `oss` addresses or `oss_cname` (a PrivateLink endpoint name)".into(),
        )),
    }
}

fn with_backup(primary: &[IpAddr], backup: Option<&[IpAddr]>) -> Vec<Target> {
    let primary = primary.iter().map(|&addr| Target { addr, priority: 1 });
    let backup = backup.unwrap_or_default().iter().map(|&addr| Target {
        addr,
        priority: BACKUP_PRIORITY,
    });
    primary.chain(backup).collect()
}

fn plain_name(
    raw: &RawName,
    index: usize,
    default_ttl: u32,
    src: &Source,
) -> Result<Candidate, ConfigError> {
    let field = format!("name[{index}]");
    let name = parse_name(raw.name.get_ref())
        .map_err(|msg| src.error(Some(raw.name.span()), &format!("{field}.name"), msg))?;
    let answer = match (&raw.targets, &raw.cname) {
        (Some(targets), None) if targets.get_ref().is_empty() => {
            return Err(src.error(
                Some(targets.span()),
                &format!("{field}.targets"),
                "needs at least one address".into(),
            ))
        }
        (Some(targets), None) => AnswerSpec::Targets(
            targets
                .get_ref()
                .iter()
                .map(|target| match target {
                    RawTarget::Plain(addr) => Target {
                        addr: *addr,
                        priority: 1,
                    },
                    RawTarget::Detailed(detailed) => Target {
                        addr: detailed.addr,
                        priority: detailed.priority,
                    },
                })
                .collect(),
        ),
        (None, Some(cname)) => {
            let target = parse_name(cname.get_ref())
                .map_err(|msg| src.error(Some(cname.span()), &format!("{field}.cname"), msg))?;
            if target.is_wildcard() {
                return Err(src.error(
                    Some(cname.span()),
                    &format!("{field}.cname"),
                    "a CNAME target cannot be a wildcard".into(),
                ));
            }
            AnswerSpec::Cname(target)
        }
        (Some(targets), Some(_)) => {
            return Err(src.error(
                Some(targets.span()),
                &field,
                "give either `targets` or `cname`, not both".into(),
            ))
        }
        (None, None) => {
            return Err(src.error(
                Some(raw.name.span()),
                &field,
                "needs `targets` (addresses) or `cname`".into(),
            ))
        }
    };
    Ok(Candidate {
        owned: OwnedName {
            name,
            answer,
            ttl: raw.ttl.unwrap_or(default_ttl),
            role: Role::Custom,
            origin: field.clone(),
        },
        span: raw.name.span(),
        field: format!("{field}.name"),
    })
}

fn reject_duplicates(candidates: &[Candidate], src: &Source) -> Result<(), ConfigError> {
    let mut seen: HashMap<&Name, &str> = HashMap::new();
    for candidate in candidates {
        if let Some(first) = seen.insert(&candidate.owned.name, &candidate.owned.origin) {
            return Err(src.error(
                Some(candidate.span.clone()),
                &candidate.field,
                format!(
                    "{} is given twice (first by {first})",
                    display_name(&candidate.owned.name)
                ),
            ));
        }
    }
    Ok(())
}

/// A CNAME chain inside the table must end at addresses or leave the table.
fn reject_cname_loops(candidates: &[Candidate], src: &Source) -> Result<(), ConfigError> {
    let cname_of: HashMap<&Name, &Name> = candidates
        .iter()
        .filter_map(|c| match &c.owned.answer {
            AnswerSpec::Cname(target) => Some((&c.owned.name, target)),
            AnswerSpec::Targets(_) => None,
        })
        .collect();
    for candidate in candidates {
        let mut current = &candidate.owned.name;
        for _ in 0..=MAX_CNAME_CHAIN {
            match cname_of.get(current) {
                Some(next) if *next == &candidate.owned.name => {
                    return Err(src.error(
                        Some(candidate.span.clone()),
                        &candidate.field,
                        format!(
                            "CNAME loop: {} leads back to itself",
                            display_name(&candidate.owned.name)
                        ),
                    ))
                }
                Some(next) => current = next,
                None => break,
            }
        }
    }
    Ok(())
}

fn validate_upstream(
    raw: &RawConfig,
    listen: &[SocketAddr],
    src: &Source,
) -> Result<UpstreamSettings, ConfigError> {
    let upstream = &raw.upstream;
    let mut servers = Vec::new();
    for entry in &upstream.servers {
        if entry.get_ref() == "system" {
            servers.extend(system_upstreams(upstream, listen, src)?);
            continue;
        }
        let addr = parse_upstream(entry.get_ref()).ok_or_else(|| {
            src.error(
                Some(entry.span()),
                "upstream.servers",
                format!(
                    "{:?} is not \"system\", an IP address or IP:PORT",
                    entry.get_ref()
                ),
            )
        })?;
        if is_own_address(addr, listen) {
            return Err(src.error(
                Some(entry.span()),
                "upstream.servers",
                format!("{addr} is pathdns's own listen address: it would forward to itself"),
            ));
        }
        servers.push(addr);
    }
    servers.dedup();
    if servers.is_empty() {
        return Err(src.error(
            None,
            "upstream.servers",
            "no upstream resolver left: name at least one that is not pathdns itself".into(),
        ));
    }
    if upstream.timeout.is_zero() {
        return Err(src.error(None, "upstream.timeout", "must be above 0".into()));
    }
    Ok(UpstreamSettings {
        servers,
        timeout: upstream.timeout,
        cache_size: upstream.cache_size,
    })
}

/// The host's resolv.conf nameservers, minus pathdns's own listen addresses.
fn system_upstreams(
    upstream: &super::raw::RawUpstream,
    listen: &[SocketAddr],
    src: &Source,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let path = &upstream.resolv_conf;
    let text = std::fs::read_to_string(path).map_err(|err| {
        src.error(
            None,
            "upstream.servers",
            format!("\"system\": cannot read {}: {err}", path.display()),
        )
    })?;
    Ok(resolv_conf_nameservers(&text)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .filter(|addr| !is_own_address(*addr, listen))
        .collect())
}

/// `nameserver` lines of a resolv.conf, in order.
pub fn resolv_conf_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => {
                    // A link-local IPv6 nameserver may carry a %zone, which we cannot use.
                    addr.parse().ok()
                }
                _ => None,
            }
        })
        .collect()
}

fn parse_upstream(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
    })
}

/// Would forwarding to `addr` reach pathdns itself?
fn is_own_address(addr: SocketAddr, listen: &[SocketAddr]) -> bool {
    listen.iter().any(|own| {
        own.port() == addr.port()
            && (own.ip() == addr.ip()
                || (own.ip().is_unspecified()
                    && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
    })
}

/// A DNS label from the preset (instance, region, bucket): lower-cased and checked.
fn label(value: &Spanned<String>, field: &str, src: &Source) -> Result<String, ConfigError> {
    let text = value.get_ref().to_ascii_lowercase();
    check_label(&text).map_err(|msg| src.error(Some(value.span()), field, msg))?;
    Ok(text)
}

fn check_label(label: &str) -> Result<(), String> {
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
fn parse_name(text: &str) -> Result<Name, String> {
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

/// A name as operators write it: no trailing dot.
pub fn display_name(name: &Name) -> String {
    let text = name.to_ascii();
    text.trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 9), (2, 4));
    }

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

    #[test]
    fn resolv_conf_lines() {
        let text =
            "# c\nsearch x\nnameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn own_address_detection() {
        let listen = ["0.0.0.0:53".parse().unwrap()];
        assert!(is_own_address("127.0.0.1:53".parse().unwrap(), &listen));
        assert!(!is_own_address("127.0.0.1:5353".parse().unwrap(), &listen));
        let listen = ["127.0.0.1:53".parse().unwrap()];
        assert!(!is_own_address("127.0.0.53:53".parse().unwrap(), &listen));
    }
}
