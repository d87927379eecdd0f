//! Step 7 (with `discover`): each discovery server answers each asked name over the
//! private path, and what it says against the last good addresses the agent keeps.
//!
//! Owns: [`discovery_checks`]. Must not: ask a discovery server for anything but the
//! config's own asked names, or change the state file (only the agent writes it).

use std::net::IpAddr;
use std::time::Duration;

use super::resolve::join;
use super::{remedy, Check, Verdict, NO_TARGET};
use crate::config::Config;
use crate::discover::{self, ask::ask_servers, LearnedMap};

/// One check per asked name and server: OK with the addresses (WARN when they differ from
/// the last good ones: the agent verifies and follows them), FAIL with the remedy when the
/// server gives no usable answer.
pub async fn discovery_checks(
    config: &Config,
    learned: &LearnedMap,
    timeout: Duration,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for discover::Asked { key, discovery, .. } in discover::asked(config) {
        let last_good = learned.get(&key).map(|l| l.addresses.clone());
        for server in &discovery.servers {
            let target = server.to_string();
            let check =
                match ask_servers(&[*server], &discovery.ask, discovery.timeout.min(timeout)).await
                {
                    Ok(answered) => {
                        answer_check(&key, &target, &answered.addresses, last_good.as_deref())
                    }
                    Err(reason) => Check::fail(
                        &key,
                        &target,
                        "discover",
                        reason,
                        remedy::discovery_server(*server),
                    ),
                };
            checks.push(check);
        }
        if discovery.servers.is_empty() {
            checks.push(Check::new(
                Verdict::Warn,
                &key,
                NO_TARGET,
                "discover",
                "no servers".into(),
            ));
        }
    }
    checks
}

fn answer_check(key: &str, server: &str, found: &[IpAddr], last_good: Option<&[IpAddr]>) -> Check {
    let shown = join(found);
    match last_good {
        Some(last) if last != found => Check::new(
            Verdict::Warn,
            key,
            server,
            "discover",
            format!(
                "answers {shown}; the agent's last good addresses are {}: it follows the new \
                 ones once their probes pass (`pathdns status` shows why not)",
                join(last)
            ),
        ),
        Some(_) => Check::new(
            Verdict::Ok,
            key,
            server,
            "discover",
            format!("answers {shown} (the last good addresses)"),
        ),
        None => Check::new(
            Verdict::Ok,
            key,
            server,
            "discover",
            format!("answers {shown}"),
        ),
    }
}
