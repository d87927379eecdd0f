//! The whole table of owned names: a name given twice, CNAME loops and chains too long
//! to follow, checked once every `[[registry]]` and `[[name]]` has become names.
//!
//! Owns: the rules that relate one owned name to another, looked up the way the answer
//! table looks names up. Must not: check a single name's syntax or answer; that is done
//! when each [`Candidate`] is made.

use std::collections::HashMap;

use hickory_proto::rr::Name;

use crate::config::error::{ConfigError, Site};
use crate::config::settings::{AnswerSpec, OwnedName, Role};

use super::names::display_name;
use super::owned::Candidate;

/// The longest CNAME chain pathdns follows inside its own table.
pub(in crate::config) const MAX_CNAME_CHAIN: usize = 8;

/// The owned names, duplicates from presets merged, once none is given twice and no CNAME
/// chain loops or runs too long.
pub(in crate::config) fn owned_names(
    candidates: Vec<Candidate>,
    site: &Site,
) -> Result<Vec<OwnedName>, ConfigError> {
    let candidates = merge_duplicates(candidates, site)?;
    reject_cname_loops(&candidates, site)?;
    Ok(candidates.into_iter().map(|c| c.owned).collect())
}

/// Rejects a name given twice, except the same name with the same answer from two
/// `[[registry]]` presets: two instances in one region share the auth and OSS names.
fn merge_duplicates(
    candidates: Vec<Candidate>,
    site: &Site,
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
        return Err(site.at(candidate.span.clone(), &candidate.field, message));
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
fn reject_cname_loops(candidates: &[Candidate], site: &Site) -> Result<(), ConfigError> {
    let by_name: HashMap<&Name, usize> = candidates
        .iter()
        .enumerate()
        .map(|(index, c)| (&c.owned.name, index))
        .collect();
    for start in 0..candidates.len() {
        follow_chain(candidates, start, &by_name, site)?;
    }
    Ok(())
}

/// Follows the CNAME chain from `candidates[start]` through the table.
fn follow_chain(
    candidates: &[Candidate],
    start: usize,
    by_name: &HashMap<&Name, usize>,
    site: &Site,
) -> Result<(), ConfigError> {
    let candidate = &candidates[start];
    let blame = |message: String| {
        site.at(
            candidate.answer_span.clone(),
            &candidate.answer_field,
            message,
        )
    };
    let mut chain = vec![display_name(&candidate.owned.name)];
    let mut visited = vec![start];
    let mut current = candidate;
    while let AnswerSpec::Cname(target) = &current.owned.answer {
        let Some(next) = find_owned(target, by_name) else {
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
            return Err(blame(format!("CNAME loop: {}", chain.join(" -> "))));
        }
        if visited.contains(&next) {
            // A loop further on; it is reported at one of its own names.
            break;
        }
        // `chain` holds the names; the links between them are one fewer.
        if chain.len() > MAX_CNAME_CHAIN + 1 {
            return Err(blame(format!(
                "CNAME chain longer than {MAX_CNAME_CHAIN} links inside the table: {} ...",
                chain.join(" -> ")
            )));
        }
        visited.push(next);
        current = &candidates[next];
    }
    Ok(())
}
