//! The `[[registry]]` preset: one ACR Enterprise Edition instance reached over a private
//! path, expanded into the names the documents tell operators to write into /etc/hosts.
//!
//! Owns: the naming rules of section 1 of the design (registry, dockerauth, OSS, custom
//! bucket, OSS wildcard) and the expansion of one `[[registry]]` into owned-name
//! candidates ([`expand_registry`]), each checked with `validate`'s rules. Must not: detect
//! duplicates or CNAME loops (the table checks do, for preset and plain names alike), read
//! the host, or be imported by `raw` or `validate`: expansion comes after validation.

use std::net::IpAddr;
use std::ops::Range;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::error::{ConfigError, Site};
use super::facts::HostFacts;
use super::raw::{HealthChecks, RawBackup, RawDiscover, RawRegistry};
use super::settings::{AnswerSpec, HealthSettings, OwnedName, Role, Target};
use super::validate::discover::discovery;
use super::validate::names::{cname_target, label, parse_name};
use super::validate::owned::{Candidate, Ttls};
use super::validate::probes::health_settings;

/// `<instance>-registry-vpc.<region>.cr.aliyuncs.com`
pub fn registry_name(instance: &str, region: &str) -> String {
    format!("{instance}-registry-vpc.{region}.cr.aliyuncs.com")
}

/// `dockerauth-vpc.<region>.aliyuncs.com`: the token realm the registry's `/v2/` names.
pub fn auth_name(region: &str) -> String {
    format!("dockerauth-vpc.{region}.aliyuncs.com")
}

/// `oss-<region>-internal.aliyuncs.com`: where blob downloads are redirected.
pub fn oss_name(region: &str) -> String {
    format!("oss-{region}-internal.aliyuncs.com")
}

/// `<bucket>.oss-<region>-internal.aliyuncs.com`: a custom bucket.
pub fn bucket_name(bucket: &str, region: &str) -> String {
    format!("{bucket}.{}", oss_name(region))
}

/// `*.oss-<region>-internal.aliyuncs.com`: every bucket in the region.
pub fn oss_wildcard_name(region: &str) -> String {
    format!("*.{}", oss_name(region))
}

/// Priority of a preset's `backup` targets: after the primary group.
pub const BACKUP_PRIORITY: u8 = 2;

/// One `[[registry]]` being expanded: what every name of the preset shares.
struct Preset<'a> {
    registry: &'a RawRegistry,
    /// `registry[N]`.
    table: String,
    region: String,
    ttls: Ttls,
    facts: &'a HostFacts,
    site: &'a Site<'a>,
}

impl Preset<'_> {
    /// `registry[N].field`.
    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.table)
    }

    fn checks(&self) -> HealthChecks<'_> {
        self.registry.health_checks()
    }

    fn backup(&self) -> Option<&RawBackup> {
        self.registry.backup.as_ref()
    }

    fn health(&self, role: Role, has_targets: bool) -> Result<HealthSettings, ConfigError> {
        let checks = self.checks();
        let mut health = health_settings(
            checks,
            role,
            has_targets,
            &self.table,
            self.facts,
            self.site,
        )?;
        // On by default: the preset's clients are image pulls, which hang for minutes on
        // a connection to a dead path (issue 15).
        health.abort_stalled = self
            .ttls
            .abort_stalled(self.registry.abort_stalled, true, &health);
        Ok(health)
    }

    /// A preset name, blamed on `field` at `span` if the labels make no valid name (too
    /// long, say).
    fn name(&self, text: String, span: Range<usize>, field: &str) -> Result<Name, ConfigError> {
        parse_name(&text).map_err(|msg| self.site.at(span, &self.at(field), msg))
    }

    /// A candidate answered from the value written at `span` as `field`.
    fn candidate(
        &self,
        name: Name,
        answer: AnswerSpec,
        role: Role,
        health: HealthSettings,
        (span, field): (Range<usize>, &str),
    ) -> Candidate {
        Candidate {
            owned: OwnedName {
                name,
                answer,
                ttl: self.ttls.pick(self.registry.ttl, &health),
                role,
                origin: self.at(field),
                health,
                discover: None,
            },
            span: span.clone(),
            field: self.at(field),
            answer_span: span,
            answer_field: self.at(field),
        }
    }
}

/// `registry[index]` as owned-name candidates: the registry name, the auth name (unless
/// left out), the OSS name, and the bucket and wildcard names when asked for.
pub(super) fn expand_registry(
    registry: &RawRegistry,
    index: usize,
    ttls: Ttls,
    facts: &HostFacts,
    site: &Site,
) -> Result<Vec<Candidate>, ConfigError> {
    let table = format!("registry[{index}]");
    let instance = label(&registry.instance, &format!("{table}.instance"), site)?;
    let region = label(&registry.region, &format!("{table}.region"), site)?;
    let preset = Preset {
        registry,
        table,
        region,
        ttls,
        facts,
        site,
    };
    let registry_health = preset.health(Role::Registry, true)?;
    let mut out = vec![registry_candidate(&preset, &instance, registry_health)?];
    out.extend(auth_candidate(&preset)?);
    out.extend(oss_candidates(&preset)?);
    if let Some(written) = &registry.discover {
        learn_addresses(&preset, written, &mut out)?;
    }
    Ok(out)
}

/// With `discover`, every name of the preset that answers addresses learns them: each is
/// asked as itself, the OSS wildcard as the OSS name (one answer for every bucket).
fn learn_addresses(
    preset: &Preset,
    written: &Spanned<RawDiscover>,
    candidates: &mut [Candidate],
) -> Result<(), ConfigError> {
    let field = preset.at("discover");
    let oss = preset.name(oss_name(&preset.region), written.span(), "discover")?;
    for candidate in candidates.iter_mut() {
        let owned = &mut candidate.owned;
        if !matches!(owned.answer, AnswerSpec::Targets(_)) {
            continue;
        }
        let ask = match owned.role {
            Role::OssWildcard => oss.clone(),
            _ => owned.name.clone(),
        };
        owned.discover = Some(discovery(written, ask, &field, preset.site)?);
    }
    Ok(())
}

/// An address list that may be empty: with `discover` its addresses are learned.
fn learned_or_written<'a>(
    preset: &Preset,
    list: Option<&'a Spanned<Vec<IpAddr>>>,
) -> Option<&'a [IpAddr]> {
    match list {
        Some(list) if !list.get_ref().is_empty() => Some(list.get_ref()),
        _ if preset.registry.discover.is_some() => Some(&[]),
        _ => None,
    }
}

/// `<instance>-registry-vpc.<region>.cr.aliyuncs.com`, from `registry` and `backup.registry`.
fn registry_candidate(
    preset: &Preset,
    instance: &str,
    health: HealthSettings,
) -> Result<Candidate, ConfigError> {
    let registry = preset.registry;
    let span = registry
        .registry
        .as_ref()
        .map_or_else(|| registry.instance.span(), Spanned::span);
    let Some(primary) = learned_or_written(preset, registry.registry.as_ref()) else {
        return Err(preset.site.at(
            span,
            &preset.at("registry"),
            "needs at least one address (look it up from inside the VPC, or set `discover` \
             to learn it)"
                .into(),
        ));
    };
    let targets = with_backup(primary, preset.backup().map(|b| b.registry.as_slice()));
    let name = preset.name(
        registry_name(instance, &preset.region),
        registry.instance.span(),
        "instance",
    )?;
    let written = (span, "registry");
    Ok(preset.candidate(
        name,
        AnswerSpec::Targets(targets),
        Role::Registry,
        health,
        written,
    ))
}

/// `dockerauth-vpc.<region>.aliyuncs.com`, unless `auth` is left out (the instance took
/// over the auth domain).
fn auth_candidate(preset: &Preset) -> Result<Option<Candidate>, ConfigError> {
    let registry = preset.registry;
    let Some(auth) = &registry.auth else {
        if preset.backup().is_some_and(|b| !b.auth.is_empty()) {
            return Err(preset.site.at(
                registry.instance.span(),
                &preset.at("backup.auth"),
                "backup auth addresses without primary `auth` addresses".into(),
            ));
        }
        return Ok(None);
    };
    let Some(primary) = learned_or_written(preset, Some(auth)) else {
        return Err(preset.site.at(
            auth.span(),
            &preset.at("auth"),
            "empty: leave `auth` out when the instance takes over the auth domain (with \
             `discover`, `auth = []` learns its addresses)"
                .into(),
        ));
    };
    let health = preset.health(Role::Auth, true)?;
    let name = preset.name(auth_name(&preset.region), auth.span(), "auth")?;
    let targets = with_backup(primary, preset.backup().map(|b| b.auth.as_slice()));
    let written = (auth.span(), "auth");
    Ok(Some(preset.candidate(
        name,
        AnswerSpec::Targets(targets),
        Role::Auth,
        health,
        written,
    )))
}

/// The OSS name, and the custom bucket and wildcard names: one answer for all of them.
fn oss_candidates(preset: &Preset) -> Result<Vec<Candidate>, ConfigError> {
    let registry = preset.registry;
    let (answer, span, field) = oss_answer(preset)?;
    let region = &preset.region;
    let mut names = vec![(oss_name(region), Role::Oss)];
    if let Some(bucket) = &registry.bucket {
        let bucket_label = label(bucket, &preset.at("bucket"), preset.site)?;
        names.push((bucket_name(&bucket_label, region), Role::OssBucket));
    }
    if registry.oss_wildcard {
        names.push((oss_wildcard_name(region), Role::OssWildcard));
    }
    let has_targets = matches!(answer, AnswerSpec::Targets(_));
    let mut out = Vec::with_capacity(names.len());
    for (text, role) in names {
        let health = preset.health(role, has_targets)?;
        let name = preset.name(text, span.clone(), field)?;
        let written = (span.clone(), field);
        out.push(preset.candidate(name, answer.clone(), role, health, written));
    }
    Ok(out)
}

/// The OSS names answer either addresses or a CNAME to a PrivateLink endpoint, never both;
/// with the span and field of the key that gives the answer.
fn oss_answer(preset: &Preset) -> Result<(AnswerSpec, Range<usize>, &'static str), ConfigError> {
    let registry = preset.registry;
    let site = preset.site;
    let backup_oss = preset
        .backup()
        .map(|b| b.oss.as_slice())
        .unwrap_or_default();
    let learned =
        learned_or_written(preset, registry.oss.as_ref()).filter(|_| registry.oss_cname.is_none());
    match (&registry.oss, &registry.oss_cname) {
        (oss, None) if learned.is_some() => Ok((
            AnswerSpec::Targets(with_backup(learned.unwrap_or_default(), Some(backup_oss))),
            oss.as_ref()
                .map_or_else(|| registry.instance.span(), Spanned::span),
            "oss",
        )),
        (None, Some(cname)) => {
            if !backup_oss.is_empty() {
                return Err(site.at(
                    cname.span(),
                    &preset.at("backup.oss"),
                    "backup OSS addresses do not apply when `oss_cname` is set".into(),
                ));
            }
            let target = cname_target(cname, &preset.at("oss_cname"), site)?;
            Ok((AnswerSpec::Cname(target), cname.span(), "oss_cname"))
        }
        (Some(oss), Some(_)) => Err(site.at(
            oss.span(),
            &preset.at("oss"),
            "give either `oss` addresses or `oss_cname` (PrivateLink), not both".into(),
        )),
        (Some(oss), None) => Err(site.at(
            oss.span(),
            &preset.at("oss"),
            "needs at least one address, or use `oss_cname` for a PrivateLink endpoint".into(),
        )),
        (None, None) => Err(site.at(
            registry.instance.span(),
            &preset.at("oss"),
            "missing: give `oss` addresses or `oss_cname` (a PrivateLink endpoint name)".into(),
        )),
    }
}

/// The primary targets in the first priority group, the backup ones after them.
fn with_backup(primary: &[IpAddr], backup: Option<&[IpAddr]>) -> Vec<Target> {
    let primary = primary.iter().map(|&addr| Target { addr, priority: 1 });
    let backup = backup.unwrap_or_default().iter().map(|&addr| Target {
        addr,
        priority: BACKUP_PRIORITY,
    });
    primary.chain(backup).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_documents() {
        assert_eq!(
            registry_name("xxxxxx", "cn-hangzhou"),
            "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com"
        );
        assert_eq!(
            auth_name("cn-hangzhou"),
            "dockerauth-vpc.cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            oss_name("cn-hangzhou"),
            "oss-cn-hangzhou-internal.aliyuncs.com"
        );
        assert_eq!(
            bucket_name("mybucket", "cn-hangzhou"),
            "mybucket.oss-cn-hangzhou-internal.aliyuncs.com"
        );
        assert_eq!(
            oss_wildcard_name("cn-hangzhou"),
            "*.oss-cn-hangzhou-internal.aliyuncs.com"
        );
    }
}
