//! Path check: the kernel's route to the target must leave by the expected interface
//! and/or from a source address inside the expected network. It catches a VPN route that
//! vanished, a blackhole or unreachable route, and traffic silently falling back to the
//! default route. The egress is the kernel's own answer ([`crate::host::lookup`], what
//! `ip route get` asks), on a blocking thread: a netlink request is a system call.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use super::ProbeOutcome;
use crate::host::{self, Lookup};

#[derive(Debug, Clone)]
pub struct PathProbe {
    via: Option<String>,
    source: Option<IpNet>,
}

impl PathProbe {
    pub fn new(via: Option<String>, source: Option<IpNet>) -> PathProbe {
        PathProbe { via, source }
    }

    /// One check, off the async threads.
    pub async fn run(&self, target: IpAddr) -> ProbeOutcome {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || probe.check(target))
            .await
            .unwrap_or_else(|err| ProbeOutcome::fail(format!("the path check stopped: {err}")))
    }

    pub fn check(&self, target: IpAddr) -> ProbeOutcome {
        let started = Instant::now();
        let egress = match host::lookup(target) {
            Ok(Lookup::Route(egress)) => egress,
            // The kernel's own verdict, not a lost packet: no reason to wait for `fall`.
            Ok(Lookup::NoRoute { reason, .. }) => {
                return ProbeOutcome::decisive_fail(format!("no route to {target}: {reason}"))
            }
            Err(err) => return ProbeOutcome::fail(err.to_string()),
        };
        if let Some(via) = &self.via {
            if egress.interface.as_deref() != Some(via.as_str()) {
                return ProbeOutcome::fail(format!(
                    "route to {target} leaves {egress}, not via {via}"
                ));
            }
        }
        if let Some(net) = &self.source {
            if !egress.source.is_some_and(|source| net.contains(&source)) {
                return ProbeOutcome::fail(format!(
                    "route to {target} leaves {egress}, not from {net}"
                ));
            }
        }
        ProbeOutcome::pass(started, Some(egress.to_string()))
    }
}
