//! `[[name]]` entries: each one's answer (targets or a CNAME), TTL and health settings, as
//! a [`Candidate`] for the table checks.
//!
//! Owns: [`Candidate`] (an owned name with the spans to blame) and [`Ttls`], which the
//! preset expansion makes too. Must not: check one name against another; that is
//! [`table`](super::table)'s job, once every name is known.

use std::ops::Range;

use crate::config::error::{ConfigError, Site};
use crate::config::facts::HostFacts;
use crate::config::raw::{RawConfig, RawName, RawTarget};
use crate::config::settings::{AnswerSpec, HealthSettings, OwnedName, Role, Target};

use super::discover::discovery;
use super::names::{cname_target, written_name};
use super::probes::health_settings;

/// An owned name before duplicate and CNAME checks, with the spans to blame.
pub(in crate::config) struct Candidate {
    pub owned: OwnedName,
    /// Where the name comes from (a duplicate is reported here).
    pub span: Range<usize>,
    pub field: String,
    /// Where its answer is given (a CNAME loop is reported here).
    pub answer_span: Range<usize>,
    pub answer_field: String,
}

/// What `[server]` and `[health]` give every name that does not say: the TTLs
/// (health-checked answers are short so that clients follow a failover) and
/// `abort_stalled`.
#[derive(Debug, Clone, Copy)]
pub(in crate::config) struct Ttls {
    plain: u32,
    health_checked: u32,
    /// `[health] abort_stalled`, when written.
    abort_stalled: Option<bool>,
}

impl Ttls {
    pub fn of(raw: &RawConfig) -> Ttls {
        Ttls {
            plain: raw.server.ttl,
            health_checked: raw.health.ttl,
            abort_stalled: raw.health.abort_stalled,
        }
    }

    /// The effective `abort_stalled` of a name: its own key, else `[health]`'s, else the
    /// kind's default. A name without probes never aborts: nothing marks its targets down.
    pub fn abort_stalled(
        self,
        own: Option<bool>,
        kind_default: bool,
        health: &HealthSettings,
    ) -> bool {
        !health.probes.is_empty() && own.or(self.abort_stalled).unwrap_or(kind_default)
    }

    pub fn pick(self, explicit: Option<u32>, health: &HealthSettings) -> u32 {
        match explicit {
            Some(ttl) => ttl,
            None if health.probes.is_empty() => self.plain,
            None => self.health_checked,
        }
    }
}

/// `name[index]`: its name, answer and health settings.
pub(in crate::config) fn plain_name(
    raw: &RawName,
    index: usize,
    ttls: Ttls,
    facts: &HostFacts,
    site: &Site,
) -> Result<Candidate, ConfigError> {
    let field = format!("name[{index}]");
    let name = written_name(&raw.name, &format!("{field}.name"), site)?;
    let (answer_span, answer_field) = match (&raw.targets, &raw.cname) {
        (_, Some(cname)) => (cname.span(), format!("{field}.cname")),
        (Some(targets), None) => (targets.span(), format!("{field}.targets")),
        (None, None) => (raw.name.span(), format!("{field}.name")),
    };
    let answer = answer_of(raw, &field, site)?;
    let discover =
        match (&raw.discover, &answer) {
            (Some(written), AnswerSpec::Targets(_)) => Some(discovery(
                written,
                name.clone(),
                &format!("{field}.discover"),
                site,
            )?),
            (Some(written), AnswerSpec::Cname(_)) => return Err(site.at(
                written.span(),
                &format!("{field}.discover"),
                "a CNAME name has no addresses to learn: give `targets` or leave `discover` out"
                    .into(),
            )),
            (None, _) => None,
        };
    let has_targets = matches!(answer, AnswerSpec::Targets(_));
    let checks = raw.health_checks();
    let mut health = health_settings(checks, Role::Custom, has_targets, &field, facts, site)?;
    // A plain name's clients are unknown: ending their connections is opt-in.
    health.abort_stalled = ttls.abort_stalled(raw.abort_stalled, false, &health);
    Ok(Candidate {
        owned: OwnedName {
            name,
            answer,
            ttl: ttls.pick(raw.ttl, &health),
            role: Role::Custom,
            origin: field.clone(),
            health,
            discover,
        },
        span: raw.name.span(),
        field: format!("{field}.name"),
        answer_span,
        answer_field,
    })
}

/// Targets or a CNAME, exactly one of them; with `discover`, the targets may be left out
/// (or empty): they are learned.
fn answer_of(raw: &RawName, field: &str, site: &Site) -> Result<AnswerSpec, ConfigError> {
    let learned = raw.discover.is_some();
    match (&raw.targets, &raw.cname) {
        (None, None) if learned => Ok(AnswerSpec::Targets(Vec::new())),
        (Some(targets), None) if targets.get_ref().is_empty() && !learned => Err(site.at(
            targets.span(),
            &format!("{field}.targets"),
            "needs at least one address (or `discover` to learn them)".into(),
        )),
        (Some(targets), None) => Ok(AnswerSpec::Targets(
            targets.get_ref().iter().map(target).collect(),
        )),
        (None, Some(cname)) => Ok(AnswerSpec::Cname(cname_target(
            cname,
            &format!("{field}.cname"),
            site,
        )?)),
        (Some(_), Some(cname)) => Err(site.at(
            cname.span(),
            &format!("{field}.cname"),
            "give either `targets` (addresses) or `cname`, not both".into(),
        )),
        (None, None) => Err(site.at(
            raw.name.span(),
            field,
            "needs `targets` (addresses), `cname`, or `discover` to learn the addresses".into(),
        )),
    }
}

/// A written target; a plain address is in the first priority group.
fn target(raw: &RawTarget) -> Target {
    match raw {
        RawTarget::Plain(addr) => Target {
            addr: *addr,
            priority: 1,
        },
        RawTarget::Detailed(detailed) => Target {
            addr: detailed.addr,
            priority: detailed.priority,
        },
    }
}
