//! What the agent is doing, as one snapshot: each name's answer and why, each target's
//! state per probe with its last error, round-trip time and last change.
//!
//! Owns: the snapshot types (served as JSON at `/status`, read back by `pathdns status`
//! and the status page), [`StatusBoard`], where the supervisor publishes and readers load
//! without locks, and [`Transitions`], the ring of the last [`RECENT_TRANSITIONS`] target
//! transitions that the supervisor records. Must not: compute health or answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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
    /// This host's name (gethostname(2)); the control endpoint fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The last [`RECENT_TRANSITIONS`] target transitions since start (kept across
    /// reloads), oldest first.
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

/// How many transitions `/status` keeps.
pub const RECENT_TRANSITIONS: usize = 20;

/// One target's verdict changing for one name, and the name's answer when that moved it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub unix_ms: u64,
    pub name: String,
    /// The target's address.
    pub target: String,
    /// "unknown", "up" or "down".
    pub from: String,
    pub to: String,
    /// The probe whose report decided, and why it failed (for "down").
    pub probe: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The name's answering group before and after ("group 1", "group 2 (failed over)",
    /// "all targets down"), when this transition changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_to: Option<String>,
}

/// The last [`RECENT_TRANSITIONS`] transitions, shared by every generation's supervisor
/// (which records them off the DNS path) and copied into each snapshot it publishes.
#[derive(Debug, Clone, Default)]
pub struct Transitions(Arc<Mutex<VecDeque<Transition>>>);

impl Transitions {
    pub fn record(&self, transition: Transition) {
        // A poisoned lock only loses the history, never the agent.
        if let Ok(mut ring) = self.0.lock() {
            if ring.len() == RECENT_TRANSITIONS {
                ring.pop_front();
            }
            ring.push_back(transition);
        }
    }

    /// Oldest first.
    pub fn recent(&self) -> Vec<Transition> {
        self.0
            .lock()
            .map(|ring| ring.iter().cloned().collect())
            .unwrap_or_default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(unix_ms: u64) -> Transition {
        Transition {
            unix_ms,
            name: "reg.example".into(),
            target: "10.0.0.1".into(),
            from: "up".into(),
            to: "down".into(),
            probe: "tcp".into(),
            reason: Some("connection refused".into()),
            answer_from: Some("group 1".into()),
            answer_to: Some("group 2 (failed over)".into()),
        }
    }

    #[test]
    fn the_ring_keeps_the_last_twenty_oldest_first() {
        let ring = Transitions::default();
        for at in 0..25 {
            ring.clone().record(transition(at));
        }
        let recent = ring.recent();
        assert_eq!(recent.len(), RECENT_TRANSITIONS);
        assert_eq!(recent.first().map(|t| t.unix_ms), Some(5));
        assert_eq!(recent.last().map(|t| t.unix_ms), Some(24));
    }

    #[test]
    fn transitions_are_in_the_json_and_an_older_document_still_reads() {
        let status = StatusReport {
            host: Some("idc-host-1".into()),
            transitions: vec![
                transition(7),
                Transition {
                    reason: None,
                    answer_from: None,
                    answer_to: None,
                    ..transition(8)
                },
            ],
            ..StatusReport::default()
        };
        let json: serde_json::Value = serde_json::to_value(&status).expect("json");
        assert_eq!(json["host"], "idc-host-1");
        let first = &json["transitions"][0];
        for (field, value) in [
            ("unix_ms", serde_json::json!(7)),
            ("name", "reg.example".into()),
            ("target", "10.0.0.1".into()),
            ("from", "up".into()),
            ("to", "down".into()),
            ("probe", "tcp".into()),
            ("reason", "connection refused".into()),
            ("answer_from", "group 1".into()),
            ("answer_to", "group 2 (failed over)".into()),
        ] {
            assert_eq!(first[field], value, "{field}");
        }
        let second = json["transitions"][1].as_object().expect("object");
        assert!(!second.contains_key("answer_from"), "{second:?}");
        assert!(!second.contains_key("reason"), "{second:?}");
        let back: StatusReport = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, status);
        // A document from before transitions and host existed.
        let old = r#"{"version":"0.1.0","config":"c","started_unix_ms":0,"ready":true,"names":[],"targets":[]}"#;
        let old: StatusReport = serde_json::from_str(old).expect("an older document");
        assert!(old.transitions.is_empty());
        assert_eq!(old.host, None);
    }
}
