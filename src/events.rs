//! State changes worth telling someone about: the vocabulary shared by the supervisor
//! (which emits them), the alert sinks and the log.
//!
//! Owns: [`Event`], stable alert names and labels. A problem is identified by its alert name
//! and labels; it starts with a firing event and ends with a resolved one carrying the same
//! identity. Must not: send anything anywhere.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A target's probes say it does not work (labels: name, target).
pub const TARGET_DOWN: &str = "PathdnsTargetDown";
/// A target's route left the private path (labels: name, target).
pub const PATH_CHECK_FAILED: &str = "PathdnsPathCheckFailed";
/// A name answers from a backup group (labels: name).
pub const FAILED_OVER: &str = "PathdnsFailedOver";
/// Every target of a name is down; `when_all_down` answers (labels: name).
pub const ALL_TARGETS_DOWN: &str = "PathdnsAllTargetsDown";
/// A reload was rejected; the previous config keeps serving (labels: config).
pub const RELOAD_REJECTED: &str = "PathdnsReloadRejected";
/// A name's discovered addresses changed and the new ones passed their probes (labels:
/// name, old, new); resolved when the next discovery round agrees.
pub const ADDRESS_MOVED: &str = "PathdnsAddressMoved";
/// A discovered address failed its probes and is not used (labels: name, target); the
/// summary names the route to add when the route is the cause.
pub const DISCOVERED_UNREACHABLE: &str = "PathdnsDiscoveredAddressUnreachable";
/// A discovered address lies inside a local network (labels: name, target).
pub const DISCOVERED_CONFLICT: &str = "PathdnsDiscoveredAddressConflict";
/// No discovery server gave a usable answer for several rounds (labels: name).
pub const DISCOVERY_FAILING: &str = "PathdnsDiscoveryFailing";

/// One transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// One of the constants above.
    pub alertname: String,
    /// True when the problem starts (or, on a repeat, still lasts); false when it ends.
    pub firing: bool,
    /// The problem's identity besides its name: `name`, `target`, `config`.
    pub labels: BTreeMap<String, String>,
    /// One line for people.
    pub summary: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl Event {
    pub fn new(alertname: &str, firing: bool, labels: &[(&str, String)], summary: String) -> Event {
        Event {
            alertname: alertname.to_owned(),
            firing,
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
            summary,
            at_unix_ms: unix_ms(SystemTime::now()),
        }
    }

    /// The problem this event starts or ends.
    pub fn key(&self) -> (String, BTreeMap<String, String>) {
        (self.alertname.clone(), self.labels.clone())
    }
}

pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where events go: every subscriber (alert sinks) gets each one; a slow subscriber loses
/// the oldest rather than slowing the sender.
pub type EventSender = tokio::sync::broadcast::Sender<Event>;

/// Events buffered per subscriber.
pub const EVENT_BUFFER: usize = 1024;

pub fn channel() -> EventSender {
    tokio::sync::broadcast::channel(EVENT_BUFFER).0
}
