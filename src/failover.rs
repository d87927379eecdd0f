//! Failover: which answer each owned name gives, from its targets' health.
//!
//! Owns: [`select`], the rule "answers come from the best priority group that has at
//! least one usable target (all usable targets of it)", the `when_all_down` policies, and
//! the memory of each name's last healthy answer for the `keep` policy. Must not: run
//! probes, count rise/fall (health does) or encode answers (the table does).

use std::net::IpAddr;

use hickory_proto::rr::Name;

use crate::config::{AllDownPolicy, AnswerSpec, OwnedName, Target};
use crate::health::Verdict;

/// What a name answers now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These addresses (A and AAAA records).
    Addresses(Vec<IpAddr>),
    /// A CNAME to this name (a configured CNAME, or the `cname` fallback).
    Cname(Name),
    /// Not owned for now: forwarded upstream like any other name.
    Forward,
    /// SERVFAIL for every type.
    Servfail,
}

impl Selection {
    /// A short text for logs and status: "10.0.0.1 10.0.0.2", "CNAME x", "forward".
    pub fn describe(&self) -> String {
        match self {
            Selection::Addresses(addrs) => addrs
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            Selection::Cname(name) => format!("CNAME {}", name.to_ascii().trim_end_matches('.')),
            Selection::Forward => "forwarded upstream (all targets down)".into(),
            Selection::Servfail => "SERVFAIL (all targets down)".into(),
        }
    }
}

/// Why a name answers what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A static answer or a configured CNAME: no probes decide it.
    Static,
    /// The best group (1 = primary) has usable targets.
    Group(u8),
    /// Every target is down; the policy answered.
    AllDown,
}

/// The distinct priorities of a name's targets, best (lowest) first: its groups.
fn priorities(targets: &[Target]) -> Vec<u8> {
    let mut priorities: Vec<u8> = targets.iter().map(|t| t.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    priorities
}

/// What `pathdns_name_answering_group` says for `name` answering for `reason`: the
/// group's index among the name's distinct priorities, lowest first (0 = the primary group,
/// 1 = the first backup, ... whatever numbers the priorities are); -1 while every target is
/// down (the `when_all_down` policy answers, which is no group: not "on backup"); `None` for
/// a static answer (no probes, no series).
pub fn group_index(name: &OwnedName, reason: Reason) -> Option<i64> {
    let priority = match reason {
        Reason::Static => return None,
        Reason::AllDown => return Some(-1),
        Reason::Group(priority) => priority,
    };
    let AnswerSpec::Targets(targets) = &name.answer else {
        return None;
    };
    let index = priorities(targets).iter().position(|p| *p == priority)?;
    i64::try_from(index).ok()
}

/// The answer for `name` given each target's verdict, and `last_good`: the addresses it
/// last answered while some target was usable (for the `keep` policy).
pub fn select(
    name: &OwnedName,
    verdict: impl Fn(IpAddr) -> Verdict,
    last_good: Option<&[IpAddr]>,
) -> (Selection, Reason) {
    let targets = match &name.answer {
        AnswerSpec::Cname(target) => return (Selection::Cname(target.clone()), Reason::Static),
        AnswerSpec::Targets(targets) => targets,
    };
    for priority in priorities(targets) {
        let usable: Vec<IpAddr> = targets
            .iter()
            .filter(|t| t.priority == priority && verdict(t.addr).usable())
            .map(|t| t.addr)
            .collect();
        if !usable.is_empty() {
            let reason = if name.health.probes.is_empty() {
                Reason::Static
            } else {
                Reason::Group(priority)
            };
            return (Selection::Addresses(usable), reason);
        }
    }
    let selection = match &name.health.when_all_down {
        AllDownPolicy::Keep => {
            // Never an empty answer: the last good one, or the primary group at worst.
            let fallback = last_good.map(<[IpAddr]>::to_vec).unwrap_or_else(|| {
                let best = targets.iter().map(|t| t.priority).min();
                targets
                    .iter()
                    .filter(|t| Some(t.priority) == best)
                    .map(|t| t.addr)
                    .collect()
            });
            Selection::Addresses(fallback)
        }
        AllDownPolicy::Cname(fallback) => Selection::Cname(fallback.clone()),
        AllDownPolicy::Forward => Selection::Forward,
        AllDownPolicy::Servfail => Selection::Servfail,
    };
    (selection, Reason::AllDown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HealthSettings, ProbeKind, ProbeSpec, Role};
    use std::time::Duration;

    fn addr(text: &str) -> IpAddr {
        text.parse().expect("addr")
    }

    fn name(targets: &[(&str, u8)], policy: AllDownPolicy) -> OwnedName {
        let probe = ProbeSpec {
            kind: ProbeKind::Tcp { port: 443 },
            interval: Duration::from_secs(1),
            suspect_interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            jitter: 0.1,
            rise: 2,
            fall: 2,
        };
        OwnedName {
            name: Name::from_ascii("reg.example.").expect("name"),
            answer: AnswerSpec::Targets(
                targets
                    .iter()
                    .map(|(a, priority)| Target {
                        addr: addr(a),
                        priority: *priority,
                    })
                    .collect(),
            ),
            ttl: 3,
            role: Role::Custom,
            origin: "test".into(),
            health: HealthSettings {
                probes: vec![probe],
                when_all_down: policy,
                interface: None,
                abort_stalled: false,
            },
            discover: None,
        }
    }

    fn down(list: &'static [&'static str]) -> impl Fn(IpAddr) -> Verdict {
        move |ip| {
            if list.iter().any(|d| addr(d) == ip) {
                Verdict::Down
            } else {
                Verdict::Up
            }
        }
    }

    const GROUPS: &[(&str, u8)] = &[
        ("10.0.0.1", 1),
        ("10.0.0.2", 1),
        ("10.9.0.1", 2),
        ("10.9.0.2", 3),
    ];

    #[test]
    fn the_best_group_with_a_usable_target_answers_all_its_usable_targets() {
        let n = name(GROUPS, AllDownPolicy::Keep);
        let (sel, reason) = select(&n, down(&[]), None);
        assert_eq!(
            sel,
            Selection::Addresses(vec![addr("10.0.0.1"), addr("10.0.0.2")])
        );
        assert_eq!(reason, Reason::Group(1));
        let (sel, _) = select(&n, down(&["10.0.0.1"]), None);
        assert_eq!(sel, Selection::Addresses(vec![addr("10.0.0.2")]));
    }

    #[test]
    fn a_fully_down_group_fails_over_to_the_next() {
        let n = name(GROUPS, AllDownPolicy::Keep);
        let (sel, reason) = select(&n, down(&["10.0.0.1", "10.0.0.2"]), None);
        assert_eq!(sel, Selection::Addresses(vec![addr("10.9.0.1")]));
        assert_eq!(reason, Reason::Group(2));
        let (sel, reason) = select(&n, down(&["10.0.0.1", "10.0.0.2", "10.9.0.1"]), None);
        assert_eq!(sel, Selection::Addresses(vec![addr("10.9.0.2")]));
        assert_eq!(reason, Reason::Group(3));
    }

    #[test]
    fn unknown_targets_count_as_usable() {
        let n = name(GROUPS, AllDownPolicy::Keep);
        let (sel, _) = select(&n, |_| Verdict::Unknown, None);
        assert_eq!(
            sel,
            Selection::Addresses(vec![addr("10.0.0.1"), addr("10.0.0.2")])
        );
    }

    const ALL: &[&str] = &["10.0.0.1", "10.0.0.2", "10.9.0.1", "10.9.0.2"];

    #[test]
    fn keep_serves_the_last_good_answer_or_the_primary_group() {
        let n = name(GROUPS, AllDownPolicy::Keep);
        let last = [addr("10.9.0.1")];
        let (sel, reason) = select(&n, down(ALL), Some(&last));
        assert_eq!(sel, Selection::Addresses(vec![addr("10.9.0.1")]));
        assert_eq!(reason, Reason::AllDown);
        let (sel, _) = select(&n, down(ALL), None);
        assert_eq!(
            sel,
            Selection::Addresses(vec![addr("10.0.0.1"), addr("10.0.0.2")])
        );
    }

    #[test]
    fn the_group_index_counts_groups_not_priority_numbers() {
        let n = name(
            &[("10.0.0.1", 5), ("10.9.0.1", 10), ("10.9.0.2", 20)],
            AllDownPolicy::Keep,
        );
        assert_eq!(group_index(&n, Reason::Group(5)), Some(0));
        assert_eq!(group_index(&n, Reason::Group(10)), Some(1));
        assert_eq!(group_index(&n, Reason::Group(20)), Some(2));
        assert_eq!(group_index(&n, Reason::AllDown), Some(-1));
        assert_eq!(group_index(&n, Reason::Static), None);
        let (_, reason) = select(&n, down(&["10.0.0.1"]), None);
        assert_eq!(group_index(&n, reason), Some(1));
    }

    #[test]
    fn the_other_policies() {
        let fallback = Name::from_ascii("fallback.example.").expect("name");
        let (sel, _) = select(
            &name(GROUPS, AllDownPolicy::Cname(fallback.clone())),
            down(ALL),
            None,
        );
        assert_eq!(sel, Selection::Cname(fallback));
        let (sel, _) = select(&name(GROUPS, AllDownPolicy::Forward), down(ALL), None);
        assert_eq!(sel, Selection::Forward);
        let (sel, _) = select(&name(GROUPS, AllDownPolicy::Servfail), down(ALL), None);
        assert_eq!(sel, Selection::Servfail);
    }
}
