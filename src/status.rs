//! What the agent is doing, as one snapshot: each name's answer and why, each target's
//! state per probe with its last error, round-trip time and last change.
//!
//! Owns: the snapshot types (served as JSON at `/status`, read back by `pathdns status`)
//! and [`StatusBoard`], where the supervisor publishes and readers load without locks.
//! Must not: compute health or answers.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    /// The config file serving now.
    pub config: String,
    pub started_unix_ms: u64,
    /// The agent's process, for `pathdns reload`.
    #[serde(default)]
    pub pid: u32,
    /// When the config serving now was loaded (start, or the last accepted reload).
    #[serde(default)]
    pub loaded_unix_ms: u64,
    /// Sockets bound and the first probe round done (or timed out).
    pub ready: bool,
    pub names: Vec<NameStatus>,
    pub targets: Vec<TargetStatus>,
    /// Forwarded-query counters since start; the control endpoint fills them in when it
    /// serves `/status` (the supervisor's snapshot has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<ForwardingStatus>,
    /// Reads of host facts (routes, links, addresses, hostname) failing now; the control
    /// endpoint fills them in when it serves `/status`: empty when every read works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_read_failures: Option<Vec<HostReadFailure>>,
    /// Ending stalled connections to down targets (`abort_stalled`): whether it works here
    /// and the last connections ended; the control endpoint fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_stalled: Option<AbortStatus>,
    /// Addresses learned over the private path (`discover`); absent without it. The
    /// control endpoint fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryStatus>,
}

/// Whether pathdns can end stalled connections here, and the last ones it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortStatus {
    /// `None` until the self-check at start has answered.
    pub available: Option<bool>,
    /// Why not (no CAP_NET_ADMIN, a kernel without SOCK_DESTROY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_reason: Option<String>,
    /// The last ended connections, oldest first.
    #[serde(default)]
    pub recent: Vec<AbortedConnection>,
}

/// One connection pathdns ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedConnection {
    pub unix_ms: u64,
    /// The owned name whose down target it was connected to.
    pub name: String,
    pub local: String,
    pub remote: String,
    /// "SYN-SENT", "ESTABLISHED".
    pub state: String,
    /// Why it counted as stalled.
    pub reason: String,
    pub owner_pid: Option<u32>,
    pub owner_comm: Option<String>,
}

/// A host read that is failing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReadFailure {
    /// "routes", "links", "addresses" or "hostname".
    pub read: String,
    pub cause: String,
    /// When this cause was first seen.
    pub since_unix_ms: u64,
}

/// What happened to the queries for names pathdns does not own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardingStatus {
    /// Answered from the cache.
    pub cache_hits: u64,
    /// Not in the cache: sent upstream.
    pub cache_misses: u64,
    /// Answered with an expired answer (RFC 8767) because the upstreams failed or were slow.
    pub stale_answers: u64,
    /// Answered SERVFAIL: no upstream answered in time, and no stale answer was at hand.
    pub upstream_errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameStatus {
    pub name: String,
    pub role: String,
    /// "10.94.205.198", "CNAME x", "SERVFAIL (all targets down)", ...
    pub answer: String,
    /// "static", "group 1", "group 2 (failed over)", "all targets down"
    pub reason: String,
    pub ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub name: String,
    pub addr: String,
    pub priority: u8,
    /// "up", "down" or "unknown".
    pub state: String,
    pub probes: Vec<ProbeStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub kind: String,
    pub state: String,
    pub last_rtt_ms: Option<f64>,
    pub last_error: Option<String>,
    /// What it saw when it last passed: status code, egress, realm.
    pub last_detail: Option<String>,
    pub last_change_unix_ms: Option<u64>,
}

impl StatusReport {
    /// One line for systemd's STATUS=: "3 names, 5/6 targets up, NAME on backup".
    pub fn summary(&self) -> String {
        let probed: Vec<&TargetStatus> = self
            .targets
            .iter()
            .filter(|t| !t.probes.is_empty())
            .collect();
        let mut line = if probed.is_empty() {
            format!("{} names, static answers (no probes)", self.names.len())
        } else {
            let up = probed.iter().filter(|t| t.state == "up").count();
            let unknown = probed.iter().filter(|t| t.state == "unknown").count();
            let mut line = format!(
                "{} names, {up}/{} targets up",
                self.names.len(),
                probed.len()
            );
            if unknown > 0 {
                line.push_str(&format!(" ({unknown} not probed yet)"));
            }
            line
        };
        for name in &self.names {
            if name.reason.contains("failed over") {
                line.push_str(&format!(", {} on backup", name.name));
            } else if name.reason.contains("all targets down") {
                line.push_str(&format!(", {} all down", name.name));
            }
        }
        line
    }
}

/// The latest snapshot; stored by the supervisor, loaded by the control endpoint.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<ArcSwap<StatusReport>>);

impl StatusBoard {
    pub fn load(&self) -> Arc<StatusReport> {
        self.0.load_full()
    }

    pub fn store(&self, status: StatusReport) {
        self.0.store(Arc::new(status));
    }
}

/// What discovery (`discover`) knows, per asked name; the control endpoint fills it in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryStatus {
    /// The state file of the last good addresses.
    pub state_file: String,
    /// Why it could not be read or written, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    pub names: Vec<DiscoveredName>,
}

/// One asked name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredName {
    pub name: String,
    pub servers: Vec<String>,
    pub interval_s: u64,
    /// Where `addresses` come from: "disk" (the state file, before the first usable
    /// answer), "discovered", or "none" (nothing yet).
    pub source: String,
    /// The last good addresses: discovered, verified, and answered.
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_unix_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round_unix_ms: Option<u64>,
    /// What the last usable answer said (may differ from `addresses` while an address is
    /// being verified or failed its probes).
    #[serde(default)]
    pub last_answer: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Rounds in a row without a usable answer.
    #[serde(default)]
    pub failed_rounds: u32,
    /// Discovered addresses not used, and why (failed probes, the route to add, a local
    /// network they fall into).
    #[serde(default)]
    pub not_used: Vec<UnusedAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedAddress {
    pub addr: String,
    pub reason: String,
}
