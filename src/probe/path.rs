//! Path check: the kernel's route to the target must leave by the expected interface
//! and/or from a source address inside the expected network. It catches a VPN route that
//! vanished and traffic silently falling back to the default route.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use super::Outcome;
use crate::netinfo;

pub struct PathProbe {
    via: Option<String>,
    source: Option<IpNet>,
}

impl PathProbe {
    pub fn new(via: Option<String>, source: Option<IpNet>) -> PathProbe {
        PathProbe { via, source }
    }

    pub fn check(&self, target: IpAddr) -> Outcome {
        let started = Instant::now();
        let interfaces = netinfo::interfaces();
        let egress = match netinfo::egress(target, &interfaces) {
            Ok(egress) => egress,
            Err(err) => {
                return Outcome::fail(format!("no route to {target}: {}", super::io_reason(&err)))
            }
        };
        if let Some(via) = &self.via {
            if egress.interface.as_deref() != Some(via.as_str()) {
                return Outcome::fail(format!(
                    "route to {target} leaves with {egress}, not via {via}"
                ));
            }
        }
        if let Some(net) = &self.source {
            if !net.contains(&egress.source) {
                return Outcome::fail(format!(
                    "route to {target} leaves with {egress}, not from {net}"
                ));
            }
        }
        Outcome::pass(started, Some(egress.to_string()))
    }
}
