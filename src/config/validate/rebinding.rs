//! The rebinding filter's exemptions: `rebinding_protection`, `private_domains`, the
//! host's search domains, the built-in private domains, and the names the config owns or
//! points at, each with where it came from.
//!
//! Must not: read resolv.conf (its search list comes in with the host facts) or filter
//! answers (the forwarder does).

use hickory_proto::rr::Name;

use crate::config::error::{ConfigError, Site};
use crate::config::facts::HostFacts;
use crate::config::raw::RawUpstream;
use crate::config::settings::{
    AllDownPolicy, AnswerSpec, Exemption, OwnedName, RebindingSettings, BUILTIN_PRIVATE_DOMAINS,
};

use super::names::parse_name;

pub(in crate::config) fn rebinding_settings(
    upstream: &RawUpstream,
    names: &[OwnedName],
    facts: &HostFacts,
    site: &Site,
) -> Result<RebindingSettings, ConfigError> {
    let mut exemptions = private_domains(upstream, facts, site)?;
    let private_domains = exemptions.iter().map(|e| e.name.clone()).collect();
    exemptions.extend(names.iter().flat_map(owned_exemptions));
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

/// The domains whose subdomains are exempt too: `private_domains`, the host's search
/// domains, then the built-in ones.
fn private_domains(
    upstream: &RawUpstream,
    facts: &HostFacts,
    site: &Site,
) -> Result<Vec<Exemption>, ConfigError> {
    let mut exemptions = Vec::new();
    for (index, entry) in upstream.private_domains.iter().enumerate() {
        let field = format!("upstream.private_domains[{index}]");
        let name = private_domain(entry.get_ref())
            .map_err(|message| site.at(entry.span(), &field, message))?;
        exemptions.push(domain(name, field));
    }
    // The host's own zones (resolv.conf `search` and `domain`): an IDC's internal names
    // commonly resolve to private addresses, and turning the filter on must not break them.
    let origin = format!("search domain in {}", upstream.resolv_conf.display());
    for name in host_search_domains(facts) {
        exemptions.push(domain(name, origin.clone()));
    }
    // Built in: valid by construction (a unit test parses each).
    for name in BUILTIN_PRIVATE_DOMAINS
        .iter()
        .filter_map(|domain| private_domain(domain).ok())
    {
        exemptions.push(domain(name, "built in".to_owned()));
    }
    Ok(exemptions)
}

fn domain(name: Name, origin: String) -> Exemption {
    Exemption {
        name,
        subdomains: true,
        origin,
    }
}

/// An owned name, its CNAME target and its `when_all_down` target: exempt exactly.
fn owned_exemptions(name: &OwnedName) -> Vec<Exemption> {
    let exact = |name: &Name, origin: String| Exemption {
        name: name.clone(),
        subdomains: false,
        origin,
    };
    let mut exemptions = vec![exact(&name.name, format!("owned: {}", name.origin))];
    if let AnswerSpec::Cname(target) = &name.answer {
        exemptions.push(exact(target, format!("CNAME target of {}", name.origin)));
    }
    if let AllDownPolicy::Cname(fallback) = &name.health.when_all_down {
        let origin = format!("when_all_down target of {}", name.origin);
        exemptions.push(exact(fallback, origin));
    }
    exemptions
}

/// The search list of the host's resolv.conf (glibc's: the last `search` or `domain`
/// line), as rebinding exemptions. Best effort: an unreadable file or an entry that is not
/// a usable domain (the root, say) adds nothing, because these only ever widen what is
/// allowed.
fn host_search_domains(facts: &HostFacts) -> Vec<Name> {
    let Ok(conf) = &facts.resolv_conf else {
        return Vec::new();
    };
    conf.search
        .iter()
        .filter_map(|domain| private_domain(domain).ok())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_private_domains_are_domains() {
        for domain in BUILTIN_PRIVATE_DOMAINS {
            assert!(private_domain(domain).is_ok(), "{domain}");
        }
    }
}
