//! What doctor's per-target checks share: the plan of one target ([`TargetPlan`]), its
//! ports and CA, one bounded probe run, the wording of a probe's detail, and step 6, the
//! 100.x conflicts.
//!
//! Owns: those shared pieces. Must not: send to anything but the target; decide the order
//! of the checks (the doctor module does).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Check, Verdict};
use crate::config::{Config, OwnedName, ProbeKind, Role};
use crate::host::{Conflict, Finding, Interface, Route};
use crate::probe::{PreparedProbe, ProbeContext, ProbeOutcome, ProbeTarget};

/// Everything one target's checks need, owned so that they run on their own task.
pub(super) struct TargetPlan {
    pub(super) name: OwnedName,
    pub(super) addr: IpAddr,
    /// The name and target columns.
    pub(super) display: String,
    pub(super) target: String,
    /// The address, with the name for SNI and Host.
    pub(super) probe_target: ProbeTarget,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) owned: Arc<Vec<String>>,
    pub(super) interfaces: Arc<Vec<Interface>>,
    pub(super) routes: Arc<Vec<Route>>,
    pub(super) findings: Arc<Vec<Finding>>,
    pub(super) timeout: Duration,
}

/// Ports to connect to: 443 for the preset's names, a custom name's probe ports.
pub(super) fn connect_ports(name: &OwnedName) -> Vec<u16> {
    if name.role != Role::Custom {
        return vec![443];
    }
    let mut ports = Vec::new();
    for probe in &name.health.probes {
        let port = match &probe.kind {
            ProbeKind::Tcp { port }
            | ProbeKind::Tls { port, .. }
            | ProbeKind::Https { port, .. } => *port,
            ProbeKind::Icmp | ProbeKind::Path { .. } => continue,
        };
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// The CA for TLS checks: the name's own TLS/HTTPS probe's, else its `[[registry]]` block's.
pub(super) fn ca_file_of(config: &Config, name: &OwnedName) -> Option<PathBuf> {
    let own = |n: &OwnedName| {
        n.health.probes.iter().find_map(|probe| match &probe.kind {
            ProbeKind::Tls { ca_file, .. } | ProbeKind::Https { ca_file, .. } => ca_file.clone(),
            _ => None,
        })
    };
    if let Some(found) = own(name) {
        return Some(found);
    }
    let block = preset_block(&name.origin)?;
    config
        .names
        .iter()
        .filter(|other| preset_block(&other.origin) == Some(block))
        .find_map(own)
}

/// `registry[0]` of `registry[0].oss`; `None` for a `[[name]]`.
pub(super) fn preset_block(origin: &str) -> Option<&str> {
    origin
        .split('.')
        .next()
        .filter(|block| block.starts_with("registry["))
}

pub(super) async fn run_probe(
    kind: &ProbeKind,
    target: &ProbeTarget,
    timeout: Duration,
    context: &ProbeContext,
) -> ProbeOutcome {
    let prepared = match PreparedProbe::new(kind, target, timeout, context) {
        Ok(prepared) => prepared,
        Err(err) => return ProbeOutcome::fail(err),
    };
    match tokio::time::timeout(timeout, prepared.run(target, timeout)).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::fail(format!("no answer within {}", secs(timeout))),
    }
}

pub(super) fn conflict_checks(plan: &TargetPlan, route_failed: bool) -> Vec<Check> {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let mine: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|finding| finding.name == display)
        .filter(|finding| match &finding.conflict {
            Conflict::LocalNetwork { target, .. } => *target == plan.addr,
            // The route check has said so already.
            Conflict::RouteElsewhere { target, .. } | Conflict::NoRoute { target, .. } => {
                *target == plan.addr && !route_failed
            }
        })
        .collect();
    if mine.is_empty() {
        let detail = if route_failed {
            "no local network holds it".to_owned()
        } else {
            "none: no local network holds it, no other route takes it".to_owned()
        };
        return vec![Check::new(
            Verdict::Ok,
            display,
            target,
            "conflicts",
            detail,
        )];
    }
    mine.into_iter()
        .map(|finding| {
            Check::fail(
                display,
                target,
                "conflicts",
                finding.conflict.to_string(),
                finding
                    .remedy
                    .strip_prefix("remedy: ")
                    .unwrap_or(finding.remedy)
                    .to_owned(),
            )
        })
        .collect()
}

/// A probe's failure text without the label that the name and target columns already
/// show (`tcp ADDR:PORT: `, `tls ADDR:PORT as NAME: `, `GET NAME/v2/ at ADDR: `) and
/// without reqwest's generic outer message.
pub(super) fn short_detail(detail: &str) -> String {
    let mut rest = detail;
    if ["tcp ", "tls ", "GET "].iter().any(|p| rest.starts_with(p)) {
        if let Some((_, after)) = rest.split_once(": ") {
            rest = after;
        }
    }
    if rest.starts_with("error sending request") {
        if let Some((_, after)) = rest.split_once("): ") {
            rest = after;
        }
    }
    rest.to_owned()
}

pub(super) fn took(outcome: &ProbeOutcome) -> String {
    match outcome.rtt {
        Some(rtt) => format!(" in {:.1} ms", rtt.as_secs_f64() * 1000.0),
        None => String::new(),
    }
}

fn secs(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}
