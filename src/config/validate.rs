//! From the raw schema to a validated [`Config`]: names, targets, upstreams, loops.
//!
//! Owns: every rule that a value must satisfy beyond its serde type, each reported with
//! the file, line and field. Must not: read anything but the config text and, for
//! `"system"` upstreams, the host's resolv.conf.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::operations;
use super::preset::{self, BACKUP_PRIORITY};
use super::probes::{self, AllDownPolicy, HealthSettings};
use super::raw::{HealthChecks, RawConfig, RawName, RawRegistry, RawTarget, DEFAULT_PORT};
use super::{
    AnswerSpec, Config, ConfigError, Exemption, OwnedName, RebindingSettings, Role, ServerSettings,
    StaleSettings, Target, UpstreamSettings, BUILTIN_PRIVATE_DOMAINS, GLIBC_RESOLVER_TIMEOUT,
    UPSTREAM_GUARD,
};

/// The longest CNAME chain pathdns follows inside its own table.
const MAX_CNAME_CHAIN: usize = 8;

/// More concurrent TCP clients than a node-local resolver ever needs (and than a
/// semaphore can count on every platform).
const MAX_TCP_CONNECTIONS: usize = 1_000_000;

/// The longest `upstream.stale_max_age`: a week, over RFC 8767's suggested 1 to 3 days.
const MAX_STALE_AGE: Duration = Duration::from_secs(7 * 86_400);

/// More queries waiting on upstreams than one node's clients ever need: each holds a
/// socket, and a file descriptor limit of a million is already unusual.
const MAX_IN_FLIGHT: usize = 1_000_000;

/// The most pipelined queries of one TCP connection waiting at once (RFC 7766 sets no
/// number; a DNS message ID has 65,536 values).
const MAX_QUERIES_PER_CONNECTION: usize = 65_536;

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

/// A value that was not written in the file: serde's default has no span.
fn is_default<T>(value: &Spanned<T>) -> bool {
    value.span() == (0..0)
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
    let deserializer = toml::Deserializer::parse(text).map_err(|err| {
        let message = err.message().trim();
        match err.span().and_then(|span| text.get(span)) {
            // The parser's message does not say which key.
            Some(key) if message == "duplicate key" && !key.trim().is_empty() => src.error(
                err.span(),
                "",
                format!(
                    "duplicate key `{}`: each key may be given once per table",
                    key.trim()
                ),
            ),
            _ => toml_error(err, ""),
        }
    })?;
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
    let upstream = validate_upstream(&raw, &server.listen, &names, &src)?;
    let blame =
        |span: Option<Range<usize>>, field: &str, message: String| src.error(span, field, message);
    let control = operations::control(raw.control.as_ref(), &blame)?;
    if let Some(addr) = control.listen.filter(|addr| addr.port() != 0) {
        if server.listen.contains(&addr) {
            return Err(src.error(
                None,
                "control.listen",
                format!("{addr} is also a DNS listen address"),
            ));
        }
    }
    Ok(Config {
        source: path.to_owned(),
        server,
        upstream,
        names,
        control,
        log: operations::log(&raw.log, &blame)?,
        alerts: operations::alerts(&raw.alert, &blame)?,
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
    let allow = &raw.server.allow;
    if allow.get_ref().is_empty() {
        return Err(src.error(
            Some(allow.span()),
            "server.allow",
            "empty: every client would be REFUSED; allow at least \"127.0.0.0/8\"".into(),
        ));
    }
    let max_tcp = &raw.server.max_tcp_connections;
    in_range(
        max_tcp,
        MAX_TCP_CONNECTIONS,
        "server.max_tcp_connections",
        src,
    )?;
    let per_connection = &raw.server.max_queries_per_connection;
    in_range(
        per_connection,
        MAX_QUERIES_PER_CONNECTION,
        "server.max_queries_per_connection",
        src,
    )?;
    let idle = &raw.server.tcp_idle_timeout;
    if idle.get_ref().is_zero() {
        return Err(src.error(
            Some(idle.span()),
            "server.tcp_idle_timeout",
            "must be above 0: every TCP client would be disconnected at once".into(),
        ));
    }
    Ok(ServerSettings {
        listen: listen.get_ref().clone(),
        allow: allow.get_ref().clone(),
        max_tcp_connections: *max_tcp.get_ref(),
        tcp_idle_timeout: *idle.get_ref(),
        max_queries_per_connection: *per_connection.get_ref(),
    })
}

/// A count that must be between 1 and `max`.
fn in_range(
    value: &Spanned<usize>,
    max: usize,
    field: &str,
    src: &Source,
) -> Result<(), ConfigError> {
    if (1..=max).contains(value.get_ref()) {
        return Ok(());
    }
    Err(src.error(
        Some(value.span()),
        field,
        format!("must be between 1 and {max}"),
    ))
}

/// An owned name before duplicate and CNAME checks, with the spans to blame.
struct Candidate {
    owned: OwnedName,
    /// Where the name comes from (a duplicate is reported here).
    span: Range<usize>,
    field: String,
    /// Where its answer is given (a CNAME loop is reported here).
    answer_span: Range<usize>,
    answer_field: String,
}

fn collect_names(raw: &RawConfig, src: &Source) -> Result<Vec<OwnedName>, ConfigError> {
    let mut candidates = Vec::new();
    let ttls = Ttls {
        plain: raw.server.ttl,
        health_checked: raw.health.ttl,
    };
    for (index, registry) in raw.registry.iter().enumerate() {
        expand_registry(registry, index, ttls, src, &mut candidates)?;
    }
    for (index, name) in raw.name.iter().enumerate() {
        candidates.push(plain_name(name, index, ttls, src)?);
    }
    let candidates = merge_duplicates(candidates, src)?;
    reject_cname_loops(&candidates, src)?;
    Ok(candidates.into_iter().map(|c| c.owned).collect())
}

/// Default TTLs: health-checked answers are short so that clients follow a failover.
#[derive(Debug, Clone, Copy)]
struct Ttls {
    plain: u32,
    health_checked: u32,
}

impl Ttls {
    fn pick(self, explicit: Option<u32>, health: &HealthSettings) -> u32 {
        match explicit {
            Some(ttl) => ttl,
            None if health.probes.is_empty() => self.plain,
            None => self.health_checked,
        }
    }
}

/// The probe and failover settings of a name, with messages placed in this file.
fn health_of(
    checks: HealthChecks<'_>,
    role: Role,
    has_targets: bool,
    field: &str,
    src: &Source,
) -> Result<HealthSettings, ConfigError> {
    let blame =
        |span: Option<Range<usize>>, field: &str, message: String| src.error(span, field, message);
    probes::health_settings(checks, role, has_targets, field, &parse_name, &blame)
}

fn expand_registry(
    registry: &RawRegistry,
    index: usize,
    ttls: Ttls,
    src: &Source,
    out: &mut Vec<Candidate>,
) -> Result<(), ConfigError> {
    let at = |field: &str| format!("registry[{index}].{field}");
    let instance = label(&registry.instance, &at("instance"), src)?;
    let region = label(&registry.region, &at("region"), src)?;
    let field = format!("registry[{index}]");
    let checks = registry.health_checks();
    let registry_health = health_of(checks, Role::Registry, true, &field, src)?;
    let ttl = ttls.pick(registry.ttl, &registry_health);
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
            health: registry_health,
        },
        span: registry.registry.span(),
        field: at("registry"),
        answer_span: registry.registry.span(),
        answer_field: at("registry"),
    });

    match &registry.auth {
        Some(auth) if auth.get_ref().is_empty() => {
            return Err(src.error(
                Some(auth.span()),
                &at("auth"),
                "empty: leave `auth` out when the instance takes over the auth domain".into(),
            ))
        }
        Some(auth) => {
            let health = health_of(checks, Role::Auth, true, &field, src)?;
            out.push(Candidate {
                owned: OwnedName {
                    name: preset_name(preset::auth_name(&region), auth.span(), "auth")?,
                    answer: AnswerSpec::Targets(with_backup(
                        auth.get_ref(),
                        backup.map(|b| b.auth.as_slice()),
                    )),
                    ttl: ttls.pick(registry.ttl, &health),
                    role: Role::Auth,
                    origin: at("auth"),
                    health,
                },
                span: auth.span(),
                field: at("auth"),
                answer_span: auth.span(),
                answer_field: at("auth"),
            })
        }
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
        let has_targets = matches!(oss_answer, AnswerSpec::Targets(_));
        let health = health_of(checks, role, has_targets, &field, src)?;
        out.push(Candidate {
            owned: OwnedName {
                name: preset_name(text, oss_span.clone(), &oss_field)?,
                answer: oss_answer.clone(),
                ttl: ttls.pick(registry.ttl, &health),
                role,
                origin: at(&oss_field),
                health,
            },
            span: oss_span.clone(),
            field: at(&oss_field),
            answer_span: oss_span.clone(),
            answer_field: at(&oss_field),
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
    ttls: Ttls,
    src: &Source,
) -> Result<Candidate, ConfigError> {
    let field = format!("name[{index}]");
    let name = parse_name(raw.name.get_ref())
        .map_err(|msg| src.error(Some(raw.name.span()), &format!("{field}.name"), msg))?;
    let (answer_span, answer_field) = match (&raw.targets, &raw.cname) {
        (_, Some(cname)) => (cname.span(), format!("{field}.cname")),
        (Some(targets), None) => (targets.span(), format!("{field}.targets")),
        (None, None) => (raw.name.span(), format!("{field}.name")),
    };
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
        (Some(_), Some(cname)) => {
            return Err(src.error(
                Some(cname.span()),
                &format!("{field}.cname"),
                "give either `targets` (addresses) or `cname`, not both".into(),
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
    let has_targets = matches!(answer, AnswerSpec::Targets(_));
    let health = health_of(raw.health_checks(), Role::Custom, has_targets, &field, src)?;
    Ok(Candidate {
        owned: OwnedName {
            name,
            answer,
            ttl: ttls.pick(raw.ttl, &health),
            role: Role::Custom,
            origin: field.clone(),
            health,
        },
        span: raw.name.span(),
        field: format!("{field}.name"),
        answer_span,
        answer_field,
    })
}

/// Rejects a name given twice, except the same name with the same answer from two
/// `[[registry]]` presets: two instances in one region share the auth and OSS names.
fn merge_duplicates(
    candidates: Vec<Candidate>,
    src: &Source,
) -> Result<Vec<Candidate>, ConfigError> {
    let mut first_at: HashMap<Name, usize> = HashMap::new();
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let Some(&index) = first_at.get(&candidate.owned.name) else {
            first_at.insert(candidate.owned.name.clone(), kept.len());
            kept.push(candidate);
            continue;
        };
        let first = &kept[index].owned;
        let both_presets = first.role != Role::Custom && candidate.owned.role != Role::Custom;
        if both_presets
            && first.answer == candidate.owned.answer
            && first.ttl == candidate.owned.ttl
        {
            continue;
        }
        let name = display_name(&candidate.owned.name);
        let message = if both_presets {
            format!(
                "{name} is given twice with different answers (first by {}): \
                 instances in one region share it, so give them the same addresses and ttl",
                first.origin
            )
        } else {
            format!("{name} is given twice (first by {})", first.origin)
        };
        return Err(src.error(Some(candidate.span.clone()), &candidate.field, message));
    }
    Ok(kept)
}

/// The index of the owned name that answers `target`, the way the answer table looks it
/// up: the exact name, else the nearest wildcard above it unless an owned name is closer.
fn find_owned(target: &Name, by_name: &HashMap<&Name, usize>) -> Option<usize> {
    if let Some(&found) = by_name.get(target) {
        return Some(found);
    }
    let mut parent = target.base_name();
    while !parent.is_root() {
        let wildcard = Name::from_ascii("*").and_then(|star| star.append_domain(&parent));
        if let Some(&found) = wildcard.ok().and_then(|w| by_name.get(&w)) {
            return Some(found);
        }
        if by_name.contains_key(&parent) {
            return None;
        }
        parent = parent.base_name();
    }
    None
}

/// A CNAME chain inside the table must end at addresses or leave the table, within
/// [`MAX_CNAME_CHAIN`] links.
fn reject_cname_loops(candidates: &[Candidate], src: &Source) -> Result<(), ConfigError> {
    let by_name: HashMap<&Name, usize> = candidates
        .iter()
        .enumerate()
        .map(|(index, c)| (&c.owned.name, index))
        .collect();
    for (start, candidate) in candidates.iter().enumerate() {
        let mut chain = vec![display_name(&candidate.owned.name)];
        let mut visited = vec![start];
        let mut current = candidate;
        while let AnswerSpec::Cname(target) = &current.owned.answer {
            let Some(next) = find_owned(target, &by_name) else {
                break;
            };
            let next_name = &candidates[next].owned.name;
            chain.push(if next_name.is_wildcard() {
                format!(
                    "{} (answered by {})",
                    display_name(target),
                    display_name(next_name)
                )
            } else {
                display_name(target)
            });
            if next == start {
                return Err(src.error(
                    Some(candidate.answer_span.clone()),
                    &candidate.answer_field,
                    format!("CNAME loop: {}", chain.join(" -> ")),
                ));
            }
            if visited.contains(&next) {
                // A loop further on; it is reported at one of its own names.
                break;
            }
            // `chain` holds the names; the links between them are one fewer.
            if chain.len() > MAX_CNAME_CHAIN + 1 {
                return Err(src.error(
                    Some(candidate.answer_span.clone()),
                    &candidate.answer_field,
                    format!(
                        "CNAME chain longer than {MAX_CNAME_CHAIN} links inside the table: {} ...",
                        chain.join(" -> ")
                    ),
                ));
            }
            visited.push(next);
            current = &candidates[next];
        }
    }
    Ok(())
}

fn validate_upstream(
    raw: &RawConfig,
    listen: &[SocketAddr],
    names: &[OwnedName],
    src: &Source,
) -> Result<UpstreamSettings, ConfigError> {
    let upstream = &raw.upstream;
    let mut servers: Vec<SocketAddr> = Vec::new();
    // The "system" entry and what its resolv.conf listed, for the message below.
    let mut system: Option<(&Spanned<String>, String, String, Vec<SocketAddr>)> = None;
    if upstream.servers.get_ref().is_empty() {
        return Err(src.error(
            Some(upstream.servers.span()),
            "upstream.servers",
            "empty: give \"system\" (this host's resolv.conf) or resolver addresses".into(),
        ));
    }
    for (index, entry) in upstream.servers.get_ref().iter().enumerate() {
        let field = format!("upstream.servers[{index}]");
        if entry.get_ref() == "system" {
            let (path, listed) = system_upstreams(upstream, entry, &field, src)?;
            servers.extend(listed.iter().filter(|addr| !is_own_address(**addr, listen)));
            system = Some((entry, field, path, listed));
            continue;
        }
        let addr = parse_upstream(entry.get_ref()).ok_or_else(|| {
            src.error(
                Some(entry.span()),
                &field,
                format!(
                    "{:?} is not \"system\", an IP address or IP:PORT",
                    entry.get_ref()
                ),
            )
        })?;
        if let Some(own) = own_listen_address(addr, listen) {
            let which = if own == addr {
                "is pathdns's own listen address".to_owned()
            } else {
                format!("reaches pathdns's own listen address {own}")
            };
            return Err(src.error(
                Some(entry.span()),
                &field,
                format!("{addr} {which}: pathdns would forward to itself"),
            ));
        }
        servers.push(addr);
    }
    let mut seen = Vec::with_capacity(servers.len());
    servers.retain(|addr| {
        let first = !seen.contains(addr);
        seen.push(*addr);
        first
    });
    if servers.is_empty() {
        // Only "system" entries can leave nothing: resolv.conf named only pathdns itself,
        // as it does once pathdns has been made the host's resolver.
        let (entry, field, path, listed) = system
            .ok_or_else(|| src.error(None, "upstream.servers", "no upstream resolver".into()))?;
        let listed: Vec<String> = listed.iter().map(ToString::to_string).collect();
        let found = if listed.is_empty() {
            format!("{path} lists no nameserver")
        } else {
            format!("{path} lists only pathdns itself ({})", listed.join(", "))
        };
        return Err(src.error(
            Some(entry.span()),
            &field,
            format!(
                "\"system\": {found}; list the resolvers to forward to, e.g. \
                 servers = [\"10.0.0.2\"], or set upstream.resolv_conf"
            ),
        ));
    }
    let timeout = &upstream.timeout;
    if timeout.get_ref().is_zero() {
        return Err(src.error(
            Some(timeout.span()),
            "upstream.timeout",
            "must be above 0".into(),
        ));
    }
    let budget = *timeout.get_ref() + UPSTREAM_GUARD;
    if budget >= GLIBC_RESOLVER_TIMEOUT {
        return Err(src.error(
            Some(timeout.span()),
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
        ));
    }
    let stale = validate_stale(upstream, src)?;
    let max_in_flight = &upstream.max_in_flight;
    in_range(max_in_flight, MAX_IN_FLIGHT, "upstream.max_in_flight", src)?;
    Ok(UpstreamSettings {
        servers,
        timeout: *timeout.get_ref(),
        cache_size: upstream.cache_size,
        max_in_flight: *max_in_flight.get_ref(),
        stale: upstream.serve_stale.then_some(stale),
        case_randomization: upstream.case_randomization,
        rebinding: rebinding_settings(upstream, names, src)?,
    })
}

/// The serve-stale keys. Checked even with `serve_stale = false`, so that turning it on
/// later never meets an error in a value written long ago.
fn validate_stale(
    upstream: &super::raw::RawUpstream,
    src: &Source,
) -> Result<StaleSettings, ConfigError> {
    let max_age = &upstream.stale_max_age;
    if max_age.get_ref().is_zero() {
        return Err(src.error(
            Some(max_age.span()),
            "upstream.stale_max_age",
            "must be above 0; to never serve stale answers, set serve_stale = false".into(),
        ));
    }
    if *max_age.get_ref() > MAX_STALE_AGE {
        return Err(src.error(
            Some(max_age.span()),
            "upstream.stale_max_age",
            format!(
                "{} is more than {}: answers that old are more likely wrong than useful \
                 (RFC 8767 suggests 1 to 3 days)",
                humantime::format_duration(*max_age.get_ref()),
                humantime::format_duration(MAX_STALE_AGE),
            ),
        ));
    }
    let answer_after = &upstream.stale_answer_after;
    let timeout = *upstream.timeout.get_ref();
    // Not written: the default, or `timeout` if that is shorter (an upstream timeout then
    // serves the stale answer before the timer would).
    if is_default(answer_after) {
        return Ok(StaleSettings {
            max_age: *max_age.get_ref(),
            answer_after: (*answer_after.get_ref()).min(timeout),
        });
    }
    if answer_after.get_ref().is_zero() || *answer_after.get_ref() >= timeout {
        return Err(src.error(
            Some(answer_after.span()),
            "upstream.stale_answer_after",
            format!(
                "must be above 0 and shorter than upstream.timeout ({}): it is how long a \
                 client waits for the upstreams before it gets a stale answer",
                humantime::format_duration(timeout),
            ),
        ));
    }
    Ok(StaleSettings {
        max_age: *max_age.get_ref(),
        answer_after: *answer_after.get_ref(),
    })
}

/// `rebinding_protection`, `private_domains` and the built-in private domains, and the
/// names the config owns or points at, each with where it came from.
fn rebinding_settings(
    upstream: &super::raw::RawUpstream,
    names: &[OwnedName],
    src: &Source,
) -> Result<RebindingSettings, ConfigError> {
    let mut exemptions = Vec::new();
    let domain = |name: Name, origin: String| Exemption {
        name,
        subdomains: true,
        origin,
    };
    for (index, entry) in upstream.private_domains.iter().enumerate() {
        let text = entry.get_ref();
        let field = format!("upstream.private_domains[{index}]");
        let name = private_domain(text)
            .map_err(|message| src.error(Some(entry.span()), &field, message))?;
        exemptions.push(domain(name, field));
    }
    // The host's own zones (resolv.conf `search` and `domain`): an IDC's internal names
    // commonly resolve to private addresses, and turning the filter on must not break them.
    let resolv_conf = format!("search domain in {}", upstream.resolv_conf.display());
    for name in host_search_domains(&upstream.resolv_conf) {
        exemptions.push(domain(name, resolv_conf.clone()));
    }
    // Built in: valid by construction (a unit test parses each).
    for name in BUILTIN_PRIVATE_DOMAINS
        .iter()
        .filter_map(|domain| private_domain(domain).ok())
    {
        exemptions.push(domain(name, "built in".to_owned()));
    }
    let private_domains = exemptions.iter().map(|e| e.name.clone()).collect();
    let exact = |name: &Name, origin: String| Exemption {
        name: name.clone(),
        subdomains: false,
        origin,
    };
    for name in names {
        exemptions.push(exact(&name.name, format!("owned: {}", name.origin)));
        if let AnswerSpec::Cname(target) = &name.answer {
            exemptions.push(exact(target, format!("CNAME target of {}", name.origin)));
        }
        if let AllDownPolicy::Cname(fallback) = &name.health.when_all_down {
            let origin = format!("when_all_down target of {}", name.origin);
            exemptions.push(exact(fallback, origin));
        }
    }
    let mut owned: Vec<Name> = exemptions
        .iter()
        .filter(|e| !e.subdomains)
        .map(|e| e.name.clone())
        .collect();
    owned.sort();
    owned.dedup();
    Ok(RebindingSettings {
        enabled: upstream.rebinding_protection,
        private_domains,
        owned,
        exemptions,
    })
}

/// A `private_domains` entry: a domain, without `*.` (its subdomains are always included).
fn private_domain(text: &str) -> Result<Name, String> {
    if text.trim().trim_end_matches('.').is_empty() {
        return Err(format!(
            "{text:?} would exempt every name: set rebinding_protection = false instead"
        ));
    }
    if let Some(domain) = text.trim().strip_prefix("*.") {
        return Err(format!(
            "{text:?}: write the domain, {domain:?}: the names under it are exempt too"
        ));
    }
    parse_name(text)
}

/// The host's resolv.conf path and its nameservers, pathdns's own addresses included.
fn system_upstreams(
    upstream: &super::raw::RawUpstream,
    entry: &Spanned<String>,
    field: &str,
    src: &Source,
) -> Result<(String, Vec<SocketAddr>), ConfigError> {
    let path = upstream.resolv_conf.display().to_string();
    let text = std::fs::read_to_string(&upstream.resolv_conf).map_err(|err| {
        src.error(
            Some(entry.span()),
            field,
            format!("\"system\": cannot read {path}: {}", super::io_reason(&err)),
        )
    })?;
    let listed = resolv_conf_nameservers(&text)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .collect();
    Ok((path, listed))
}

/// The `search` and `domain` entries of the resolv.conf at `path`, as rebinding
/// exemptions. Best effort: an unreadable file or an entry that is not a usable domain
/// (the root, say) adds nothing, because these only ever widen what is allowed.
fn host_search_domains(path: &std::path::Path) -> Vec<Name> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    resolv_conf_search_domains(&text)
        .into_iter()
        .filter_map(|domain| private_domain(domain).ok())
        .collect()
}

/// The domains of a resolv.conf's `search` and `domain` lines, in order.
pub fn resolv_conf_search_domains(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("search" | "domain") => Some(words),
                _ => None,
            }
        })
        .flatten()
        .collect()
}

/// `nameserver` lines of a resolv.conf, in order.
/// A link-local IPv6 nameserver with a %zone is left out: we cannot use it.
pub fn resolv_conf_nameservers(text: &str) -> Vec<IpAddr> {
    crate::host::resolv_conf::parse(text).nameservers
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

/// A DNS label from the preset (instance, region, bucket): lower-cased and checked.
fn label(value: &Spanned<String>, field: &str, src: &Source) -> Result<String, ConfigError> {
    let text = value.get_ref().to_ascii_lowercase();
    check_label(&text).map_err(|msg| src.error(Some(value.span()), field, msg))?;
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
    use crate::config::Config;

    /// A config text with a harmless upstream (no resolv.conf read) and `body` after it.
    fn config(body: &str) -> String {
        format!("[upstream]\nservers = [\"10.0.0.2\"]\n{body}")
    }

    /// The one-line error of an invalid config text named `t.toml`.
    fn error_of(text: &str) -> String {
        let err = Config::parse(text, "t.toml").expect_err("this config should be rejected");
        let message = err.to_string();
        assert!(!message.contains('\n'), "not one line: {message:?}");
        message
    }

    #[test]
    fn bad_addresses_are_quoted_with_their_element_and_line() {
        let text =
            config("[[name]]\nname = \"a.example\"\ntargets = [\"10.1.2.3\", \"10.1.2.300\"]\n");
        assert_eq!(
            error_of(&text),
            "t.toml:5:24: name[0].targets[1]: \"10.1.2.300\" is not an IP address \
             (write one such as \"10.94.205.198\" or \"fd00::1\")"
        );
        // The documents write the 100.x addresses as /32 routes.
        let text = config(
            "[[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\n\
             registry = [\"10.94.205.198\"]\nauth = [\"100.103.7.181/32\"]\noss = [\"100.118.28.43\"]\n",
        );
        assert!(error_of(&text).starts_with(
            "t.toml:7:9: registry[0].auth[0]: \"100.103.7.181/32\" is a network, not an address: \
             write \"100.103.7.181\""
        ));
        let text =
            config("[[name]]\nname = \"a.example\"\ntargets = [{ addr = \"10.1.2.3:80\" }]\n");
        assert!(error_of(&text).contains("name[0].targets[0].addr: \"10.1.2.3:80\" has a port"));
    }

    #[test]
    fn detailed_targets_report_their_own_mistakes() {
        // Not serde's "data did not match any variant of untagged enum".
        let text = config(
            "[[name]]\nname = \"a.example\"\ntargets = [{ addr = \"10.1.2.3\", prio = 2 }]\n",
        );
        let message = error_of(&text);
        assert!(
            message.starts_with("t.toml:5:33: name[0].targets[0].prio: unknown field `prio`"),
            "{message}"
        );
        let text = config("[[name]]\nname = \"a.example\"\ntargets = [7]\n");
        assert!(error_of(&text)
            .contains("name[0].targets[0]: invalid type: integer `7`, expected an IP address"));
    }

    #[test]
    fn listen_allow_and_duration_mistakes_say_what_to_write() {
        let message = error_of(&config("[server]\nlisten = [\"127.0.0.1\"]\n"));
        assert!(
            message
                .ends_with("server.listen[0]: \"127.0.0.1\" has no port: write \"127.0.0.1:53\""),
            "{message}"
        );
        let message = error_of(&config("[server]\nallow = [\"10.0.0.1\"]\n"));
        assert!(message.ends_with("server.allow[0]: \"10.0.0.1\" has no prefix length: write \"10.0.0.1/32\" for this one address"), "{message}");
        let message = error_of(&config("timeout = 2\n"));
        assert!(message.contains("t.toml:3:11: upstream.timeout: invalid type: integer `2`, expected a duration such as \"2s\""), "{message}");
        let message = error_of(&config(
            "[[registry]]\ninstance = \"x\"\nregion = \"cn-hangzhou\"\n\
             registry = \"10.94.205.198\"\noss = [\"100.118.28.43\"]\n",
        ));
        assert!(
            message.contains(
                "t.toml:6:12: registry[0].registry: invalid type: string \"10.94.205.198\", \
                 expected a list of IP addresses such as [\"10.94.205.198\"]"
            ),
            "{message}"
        );
    }

    #[test]
    fn settings_without_a_list_element_still_name_their_line() {
        let message = error_of(&config("[server]\nallow = []\n"));
        assert!(
            message.starts_with("t.toml:4:9: server.allow: empty"),
            "{message}"
        );
        let message = error_of("[upstream]\nservers = [\"10.0.0.2\"]\ntimeout = \"0s\"\n");
        assert!(
            message.starts_with("t.toml:3:11: upstream.timeout: must be above 0"),
            "{message}"
        );
        let message = error_of(&config("[server]\ntcp_idle_timeout = \"0ms\"\n"));
        assert!(
            message.starts_with("t.toml:4:20: server.tcp_idle_timeout: must be above 0"),
            "{message}"
        );
        let message = error_of(&config("[server]\nmax_tcp_connections = 0\n"));
        assert!(
            message.starts_with("t.toml:4:23: server.max_tcp_connections: must be between 1"),
            "{message}"
        );
        let message = error_of(&config("[server]\nmax_queries_per_connection = 65537\n"));
        assert!(
            message.starts_with(
                "t.toml:4:30: server.max_queries_per_connection: must be between 1 and 65536"
            ),
            "{message}"
        );
        let message = error_of("[upstream]\nservers = [\"10.0.0.2\"]\nmax_in_flight = 0\n");
        assert!(
            message.starts_with("t.toml:3:17: upstream.max_in_flight: must be between 1"),
            "{message}"
        );
        let message =
            error_of("[server]\nlisten = [\"127.0.0.1:53\"]\nlisten = [\"127.0.0.1:54\"]\n");
        assert!(
            message.starts_with("t.toml:3:1: duplicate key `listen`"),
            "{message}"
        );
    }

    #[test]
    fn upstream_errors_name_the_entry() {
        let text = "[server]\nlisten = [\"0.0.0.0:5353\"]\n[upstream]\nservers = [\"10.0.0.2\", \"127.0.0.1:5353\"]\n";
        assert_eq!(
            error_of(text),
            "t.toml:4:24: upstream.servers[1]: 127.0.0.1:5353 reaches pathdns's own listen \
             address 0.0.0.0:5353: pathdns would forward to itself"
        );
        let text = "[upstream]\nservers = [\"dns.google\"]\n";
        assert!(
            error_of(text).starts_with("t.toml:2:12: upstream.servers[0]: \"dns.google\" is not")
        );
    }

    #[test]
    fn private_domains_are_domains() {
        let message = error_of(&config(
            "private_domains = [\"corp.example\", \"*.lab.example\"]\n",
        ));
        assert_eq!(
            message,
            "t.toml:3:36: upstream.private_domains[1]: \"*.lab.example\": write the domain, \
             \"lab.example\": the names under it are exempt too"
        );
        let message = error_of(&config("private_domains = [\".\"]\n"));
        assert!(
            message.starts_with("t.toml:3:20: upstream.private_domains[0]: \".\" would exempt"),
            "{message}"
        );
        let message = error_of(&config("private_domains = [\"bad_label!.example\"]\n"));
        assert!(
            message.starts_with("t.toml:3:20: upstream.private_domains[0]: \"bad_label!.example\""),
            "{message}"
        );
    }

    #[test]
    fn rebinding_exempts_private_domains_builtins_and_owned_names() {
        let text = config(
            "resolv_conf = \"/nonexistent\"\nprivate_domains = [\"Corp.Example.\"]\n\
             [[name]]\nname = \"*.mirror.example\"\ntargets = [\"10.1.2.3\"]\n\
             [[name]]\nname = \"alias.example\"\ncname = \"ep-1.privatelink.example\"\n",
        );
        let config = Config::parse(&text, "t.toml").expect("valid");
        let rebinding = &config.upstream.rebinding;
        assert!(!rebinding.enabled, "off by default");
        assert!(!config.upstream.case_randomization);
        let text = |names: &[Name]| names.iter().map(Name::to_ascii).collect::<Vec<_>>();
        assert_eq!(
            text(&rebinding.private_domains),
            [
                "corp.example.",
                "privatelink.aliyuncs.com.",
                "localhost.",
                "internal.",
                "home.arpa."
            ]
        );
        assert_eq!(
            text(&rebinding.owned),
            [
                "alias.example.",
                "*.mirror.example.",
                "ep-1.privatelink.example."
            ]
        );
        let origins: Vec<(String, bool, &str)> = rebinding
            .exemptions
            .iter()
            .map(|e| (e.name.to_ascii(), e.subdomains, e.origin.as_str()))
            .collect();
        assert_eq!(
            origins[0],
            ("corp.example.".into(), true, "upstream.private_domains[0]")
        );
        assert_eq!(
            origins[1],
            ("privatelink.aliyuncs.com.".into(), true, "built in")
        );
        assert_eq!(
            origins[5],
            ("*.mirror.example.".into(), false, "owned: name[0]")
        );
        assert_eq!(
            origins[7],
            (
                "ep-1.privatelink.example.".into(),
                false,
                "CNAME target of name[1]"
            )
        );
        let on = config_from("rebinding_protection = true\ncase_randomization = true\n");
        assert!(on.upstream.rebinding.enabled);
        assert!(on.upstream.case_randomization);
    }

    fn config_from(body: &str) -> Config {
        Config::parse(&config(body), "t.toml").expect("valid")
    }

    #[test]
    fn system_upstream_that_is_only_pathdns_itself_is_explained() {
        let resolv =
            std::env::temp_dir().join(format!("pathdns-validate-{}.conf", std::process::id()));
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("write a temporary resolv.conf");
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:53\"]\n[upstream]\nservers = [\"system\"]\nresolv_conf = {:?}\n",
            resolv.display().to_string()
        );
        let message = error_of(&text);
        let _ = std::fs::remove_file(&resolv);
        assert!(
            message.starts_with(&format!(
                "t.toml:4:12: upstream.servers[0]: \"system\": {} lists only pathdns itself (127.0.0.1:53)",
                resolv.display()
            )),
            "{message}"
        );
        let text =
            "[upstream]\nservers = [\"system\"]\nresolv_conf = \"/nonexistent/resolv.conf\"\n";
        assert_eq!(
            error_of(text),
            "t.toml:2:12: upstream.servers[0]: \"system\": cannot read /nonexistent/resolv.conf: \
             No such file or directory"
        );
    }

    #[test]
    fn cname_loops_are_found_through_wildcards_and_show_the_chain() {
        let text = config(
            "[[name]]\nname = \"a.example\"\ncname = \"b.example\"\n\
             [[name]]\nname = \"b.example\"\ncname = \"A.example.\"\n",
        );
        assert_eq!(
            error_of(&text),
            "t.toml:5:9: name[0].cname: CNAME loop: a.example -> b.example -> a.example"
        );
        let text = config("[[name]]\nname = \"*.w.example\"\ncname = \"x.w.example\"\n");
        assert_eq!(
            error_of(&text),
            "t.toml:5:9: name[0].cname: CNAME loop: *.w.example -> x.w.example (answered by *.w.example)"
        );
        // An owned name between the target and the wildcard stops the wildcard, as in the
        // answer table: no loop.
        let text = config(
            "[[name]]\nname = \"*.w.example\"\ncname = \"x.y.w.example\"\n\
             [[name]]\nname = \"y.w.example\"\ntargets = [\"10.0.0.1\"]\n",
        );
        assert!(Config::parse(&text, "t.toml").is_ok());
    }

    #[test]
    fn cname_chains_longer_than_the_table_follows_are_rejected() {
        let mut body = String::new();
        // Names n0 .. n9 in the table: nine links between them, one more than followed.
        for index in 0..=MAX_CNAME_CHAIN + 1 {
            body.push_str(&format!(
                "[[name]]\nname = \"n{index}.example\"\ncname = \"n{}.example\"\n",
                index + 1
            ));
        }
        let message = error_of(&config(&body));
        assert!(
            message.contains("name[0].cname: CNAME chain longer than 8 links"),
            "{message}"
        );
        // One link shorter is fine.
        let body = body.replacen(
            "[[name]]\nname = \"n0.example\"\ncname = \"n1.example\"\n",
            "",
            1,
        );
        assert!(Config::parse(&config(&body), "t.toml").is_ok());
    }

    #[test]
    fn two_instances_in_one_region_share_the_auth_and_oss_names() {
        let instance = |name: &str, registry: &str, oss: &str| {
            format!(
                "[[registry]]\ninstance = \"{name}\"\nregion = \"cn-hangzhou\"\n\
                 registry = [\"{registry}\"]\nauth = [\"100.103.7.181\"]\noss = [\"{oss}\"]\n"
            )
        };
        let same = config(&format!(
            "{}{}",
            instance("a", "10.94.205.198", "100.118.28.43"),
            instance("b", "10.94.205.199", "100.118.28.43")
        ));
        let parsed = Config::parse(&same, "t.toml").expect("identical shared names are merged");
        let names: Vec<String> = parsed.names.iter().map(|n| display_name(&n.name)).collect();
        assert_eq!(
            names,
            [
                "a-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
                "dockerauth-vpc.cn-hangzhou.aliyuncs.com",
                "oss-cn-hangzhou-internal.aliyuncs.com",
                "b-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
            ]
        );
        let different = config(&format!(
            "{}{}",
            instance("a", "10.94.205.198", "100.118.28.43"),
            instance("b", "10.94.205.199", "100.118.28.44")
        ));
        assert!(error_of(&different).starts_with(
            "t.toml:14:7: registry[1].oss: oss-cn-hangzhou-internal.aliyuncs.com is given twice \
             with different answers (first by registry[0].oss)"
        ));
        // A plain [[name]] never silently merges with a preset name.
        let text = config(&format!(
            "{}[[name]]\nname = \"oss-cn-hangzhou-internal.aliyuncs.com\"\ntargets = [\"100.118.28.43\"]\n",
            instance("a", "10.94.205.198", "100.118.28.43")
        ));
        assert!(error_of(&text).contains("name[0].name: oss-cn-hangzhou-internal.aliyuncs.com is given twice (first by registry[0].oss)"));
    }

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
    fn search_and_domain_lines_are_the_hosts_own_zones() {
        let text =
            "# c\nsearch corp.example lab.example\nnameserver 10.0.0.2\ndomain idc.example\n";
        assert_eq!(
            resolv_conf_search_domains(text),
            vec!["corp.example", "lab.example", "idc.example"]
        );
        assert!(resolv_conf_search_domains("nameserver 10.0.0.2\n").is_empty());
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

    #[test]
    fn serve_stale_defaults_and_its_budget_rules() {
        let upstream = |body: &str| {
            Config::parse(&config(body), "t.toml")
                .expect("valid")
                .upstream
        };
        let defaults = upstream("");
        assert_eq!(
            defaults.stale,
            Some(StaleSettings {
                max_age: Duration::from_secs(86_400),
                answer_after: Duration::from_millis(1800),
            })
        );
        assert_eq!(defaults.budget(), Duration::from_millis(2250));
        assert_eq!(
            upstream("serve_stale = false\nstale_max_age = \"4s\"\n").stale,
            None
        );
        let answer_after = |body| upstream(body).stale.map(|s| s.answer_after);
        assert_eq!(
            answer_after(
                "timeout = \"3s\"\nstale_max_age = \"3d\"\nstale_answer_after = \"2500ms\"\n"
            ),
            Some(Duration::from_millis(2500))
        );
        // A short timeout shortens the default timer with it.
        assert_eq!(
            answer_after("timeout = \"1500ms\"\n"),
            Some(Duration::from_millis(1500))
        );
        assert!(Config::parse(&config("timeout = \"4700ms\"\n"), "t.toml").is_ok());
        for (body, expected) in [
            (
                "timeout = \"4750ms\"\n",
                "t.toml:3:11: upstream.timeout: 4s 750ms plus pathdns's 250ms guard is 5s, \
                 not below glibc's default resolver timeout of 5s: a client would give up and \
                 retry before pathdns answers SERVFAIL or a stale answer; use less than 4s 750ms",
            ),
            (
                "stale_answer_after = \"2s\"\n",
                "t.toml:3:22: upstream.stale_answer_after: must be above 0 and shorter than \
                 upstream.timeout (2s)",
            ),
            (
                "stale_answer_after = \"0s\"\n",
                "t.toml:3:22: upstream.stale_answer_after: must be above 0",
            ),
            (
                "stale_max_age = \"0s\"\n",
                "t.toml:3:17: upstream.stale_max_age: must be above 0; to never serve stale \
                 answers, set serve_stale = false",
            ),
            (
                "stale_max_age = \"30d\"\n",
                "t.toml:3:17: upstream.stale_max_age: 30days is more than 7days",
            ),
        ] {
            let message = error_of(&config(body));
            assert!(message.starts_with(expected), "{message}");
        }
    }
}
