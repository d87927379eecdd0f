//! Trust but verify: a discovered address becomes a target only after the name's own
//! probes pass against it, `rise` times in a row each, as a configured target has to
//! before it counts as up after a failure.
//!
//! Owns: [`verify`]. Must not: keep health state (the scheduler and health take over once
//! the address is a target) or touch the answer table.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::config::ProbeSpec;
use crate::probe::{PreparedProbe, ProbeContext, ProbeTarget};

/// What verifying an address found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Every probe passed `rise` times; how long that took.
    Passed(Duration),
    /// The name has no probes: the address is taken as discovered.
    Unprobed,
    /// A probe failed: which one, and why.
    Failed { probe: &'static str, detail: String },
}

/// Runs each of `probes` against `addr` (as `server_name`, for TLS and HTTPS) until it has
/// passed `rise` times, `suspect_interval` apart; stops at the first failure.
pub async fn verify(
    probes: &[ProbeSpec],
    addr: IpAddr,
    server_name: &Name,
    context: &ProbeContext,
) -> Verified {
    if probes.is_empty() {
        return Verified::Unprobed;
    }
    let started = Instant::now();
    let target = ProbeTarget {
        addr,
        server_name: server_name.clone(),
    };
    for spec in probes {
        let failed = |detail: String| Verified::Failed {
            probe: spec.kind.name(),
            detail,
        };
        let probe = match PreparedProbe::new(&spec.kind, &target, spec.timeout, context) {
            Ok(probe) => probe,
            Err(detail) => return failed(detail),
        };
        for run in 0..spec.rise.max(1) {
            if run > 0 {
                tokio::time::sleep(spec.suspect_interval).await;
            }
            let outcome = probe.run_bounded(&target, spec.timeout).await;
            if !outcome.ok {
                return failed(outcome.detail.unwrap_or_else(|| "failed".into()));
            }
        }
    }
    Verified::Passed(started.elapsed())
}
