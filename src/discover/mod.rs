//! Discovery: learning the owned names' private addresses over the private path, from a
//! resolver inside the VPC (`discover = { servers, interval }`), instead of (or besides)
//! the addresses written in the config: the documents' step two (`ping` each name from a
//! VM in the VPC), done by every host, every interval.
//!
//! ```text
//!   ask (each interval) ─> answer (checked) ─> verify (the name's probes) ─> learned
//!                                                                            │
//!        state file (last good, survives restarts) <─────────────────────────┤
//!        events (moved, unreachable + the route to add, conflict, failing) <─┤
//!        the daemon: config + learned = the effective config (overlay) <─────┘
//! ```
//!
//! Owns: the rooms [`answer`] (what a reply may be taken for), [`ask`] (one round's
//! question), [`verify`](mod@verify) (probes before use), [`advice`] (the route to add, the local
//! network conflict), [`state`] (the last good addresses on disk) and [`run`] (one task per
//! asked name); [`overlay`], the effective config; and [`Board`], what `/status` shows.
//! Must not: touch the answer table or the probes' health (the daemon applies the
//! effective config as a new generation, as a reload does), or ask a discovery server
//! for any name but an owned one. A server that is silent or answers garbage never
//! removes an address: only a usable answer whose new addresses passed their probes
//! replaces the last good ones.

pub mod advice;
pub mod answer;
pub mod ask;
pub mod run;
pub mod state;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::config::{AnswerSpec, Config, Discovery, OwnedName, Target};
use crate::status::{DiscoveredName, DiscoveryStatus};

pub use run::{start, Context, Running};
pub use state::{Learned, LearnedMap};

/// The name as the state file, events and `/status` key it: lower case, no trailing dot.
pub fn key(name: &hickory_proto::rr::Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_owned()
}

/// Priority of discovered addresses: the first group, beside the written primary ones;
/// a preset's `backup` stays behind them.
pub const DISCOVERED_PRIORITY: u8 = 1;

/// The config with the learned addresses added to each discovering name's targets (in
/// the first priority group, written ones kept). A name that has neither written nor
/// learned addresses is left out: it is forwarded until its first discovery.
pub fn overlay(config: &Config, learned: &LearnedMap) -> Config {
    let mut effective = config.clone();
    effective.names.retain_mut(|name| {
        let Some(discovery) = &name.discover else {
            return true;
        };
        let AnswerSpec::Targets(targets) = &mut name.answer else {
            return true;
        };
        if let Some(found) = learned.get(&key(&discovery.ask)) {
            for addr in &found.addresses {
                if !targets.iter().any(|t| t.addr == *addr) {
                    targets.push(Target {
                        addr: *addr,
                        priority: DISCOVERED_PRIORITY,
                    });
                }
            }
        }
        !targets.is_empty()
    });
    effective
}

/// One name asked of the discovery servers, with the first owned name asked that way: a
/// preset's OSS name, bucket and wildcard share one question (the wildcard asks as the OSS
/// name) and their probes.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    /// [`key`] of the asked name.
    pub key: String,
    pub name: &'a OwnedName,
    pub discovery: &'a Discovery,
}

/// Every name `config` asks, each once, by key: what the runners, `check` and `doctor`
/// all go by.
pub fn asked(config: &Config) -> Vec<Asked<'_>> {
    let mut keys: BTreeMap<String, (&OwnedName, &Discovery)> = BTreeMap::new();
    for name in &config.names {
        if let Some(discovery) = &name.discover {
            keys.entry(key(&discovery.ask)).or_insert((name, discovery));
        }
    }
    keys.into_iter()
        .map(|(key, (name, discovery))| Asked {
            key,
            name,
            discovery,
        })
        .collect()
}

/// The asked names of `config`, each once, sorted.
pub fn asked_names(config: &Config) -> Vec<String> {
    asked(config).into_iter().map(|a| a.key).collect()
}

/// What discovery shows in `/status`: updated by the runners, read by the control
/// endpoint (never by the DNS path).
#[derive(Debug, Clone, Default)]
pub struct Board(Arc<Mutex<DiscoveryStatus>>);

impl Board {
    pub fn status(&self) -> Option<DiscoveryStatus> {
        let status = self.0.lock().ok()?.clone();
        (!status.names.is_empty()).then_some(status)
    }

    /// A poisoned lock only loses status, never the agent.
    fn with(&self, f: impl FnOnce(&mut DiscoveryStatus)) {
        if let Ok(mut status) = self.0.lock() {
            f(&mut status);
        }
    }

    fn name(&self, name: &str, f: impl FnOnce(&mut DiscoveredName)) {
        self.with(|status| {
            if let Some(entry) = status.names.iter_mut().find(|n| n.name == name) {
                f(entry);
            }
        });
    }

    pub fn set_state_error(&self, error: Option<String>) {
        self.with(|status| status.state_error = error);
    }

    /// Starts over with `names` (a start or a reload), each showing `learned`.
    fn reset(&self, state_file: String, names: BTreeMap<String, DiscoveredName>) {
        self.with(|status| {
            status.state_file = state_file;
            status.names = names.into_values().collect();
        });
    }
}

#[cfg(test)]
mod tests;
