//! One task per asked name: ask, check, verify, and keep the last good addresses; tell
//! the log, the metrics, the alert sinks and `/status` what happened.
//!
//! Owns: the round (`Runner::round`) and what each outcome changes: only a usable answer
//! whose new addresses passed their probes changes the learned addresses (and then the
//! state file, and through the daemon the answers); a silent server, garbage, or an
//! address that fails its probes changes nothing but what is reported. Must not: wait on
//! the DNS path or hold a lock across an await.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::advice::{local_conflicts, route_advice};
use super::ask::{ask_servers, Answered};
use super::state::{self, Learned, LearnedMap};
use super::verify::{verify, Verified};
use super::Board;
use crate::config::{AnswerSpec, Config, Discovery, ProbeSpec};
use crate::events::{self, Event, EventSender};
use crate::metrics::Metrics;
use crate::probe::{Pinger, ProbeContext};
use crate::status::{DiscoveredName, UnusedAddress};

/// Rounds in a row without a usable answer before `PathdnsDiscoveryFailing` fires: one
/// lost datagram is not worth a page, three intervals of silence are.
pub const FAILING_AFTER: u32 = 3;

/// What every runner shares with the daemon; lives as long as the process.
#[derive(Clone)]
pub struct Context {
    pub events: EventSender,
    pub metrics: Arc<Metrics>,
    pub board: Board,
    /// The last good addresses of every asked name: the daemon overlays them on the config.
    pub learned: Arc<watch::Sender<LearnedMap>>,
    pub state_path: PathBuf,
    /// For names with ICMP probes (`None` without CAP_NET_RAW: such a probe fails).
    pub pinger: Option<Pinger>,
}

/// The running discovery tasks of one config; dropping it stops them.
pub struct Running {
    _tasks: JoinSet<()>,
}

/// One asked name, as the config gives it.
#[derive(Debug, Clone)]
struct Asked {
    key: String,
    discovery: Discovery,
    /// The probes of the first name asked this way (a preset's OSS names share them).
    probes: Vec<ProbeSpec>,
    role: String,
    /// Its written addresses, the reference for route advice before anything is learned.
    written: Vec<IpAddr>,
}

/// The runner's own copy of what [`super::asked`] found, for its task.
fn owned(asked: super::Asked<'_>) -> Asked {
    let targets = match &asked.name.answer {
        AnswerSpec::Targets(targets) => targets.as_slice(),
        AnswerSpec::Cname(_) => &[],
    };
    let best = targets.iter().map(|t| t.priority).min();
    Asked {
        written: targets
            .iter()
            .filter(|t| Some(t.priority) == best)
            .map(|t| t.addr)
            .collect(),
        key: asked.key,
        discovery: asked.discovery.clone(),
        probes: asked.name.health.probes.clone(),
        role: asked.name.role.to_string(),
    }
}

/// Starts one runner per asked name of `config`. What was learned for names this config
/// no longer asks is forgotten; the rest is kept (a reload does not forget).
pub fn start(config: &Config, context: &Context) -> Running {
    let asked: Vec<Asked> = super::asked(config).into_iter().map(owned).collect();
    let keys: BTreeSet<&str> = asked.iter().map(|a| a.key.as_str()).collect();
    context.learned.send_if_modified(|learned| {
        let before = learned.len();
        learned.retain(|name, _| keys.contains(name.as_str()));
        learned.len() != before
    });
    let previous = context.board.status().map(|s| s.names).unwrap_or_default();
    let learned = context.learned.borrow().clone();
    let entries = asked
        .iter()
        .map(|a| {
            let kept = previous.iter().find(|n| n.name == a.key).cloned();
            (a.key.clone(), board_entry(a, learned.get(&a.key), kept))
        })
        .collect();
    context
        .board
        .reset(context.state_path.display().to_string(), entries);
    let mut tasks = JoinSet::new();
    for asked in asked {
        let runner = Runner::new(asked, context.clone());
        tasks.spawn(runner.run());
    }
    Running { _tasks: tasks }
}

/// A name's `/status` entry at start or reload: what a reload saw is kept.
fn board_entry(
    asked: &Asked,
    learned: Option<&Learned>,
    kept: Option<DiscoveredName>,
) -> DiscoveredName {
    let mut entry = kept.unwrap_or_else(|| DiscoveredName {
        name: asked.key.clone(),
        source: if learned.is_some() { "disk" } else { "none" }.into(),
        ..DiscoveredName::default()
    });
    entry.servers = asked
        .discovery
        .servers
        .iter()
        .map(ToString::to_string)
        .collect();
    entry.interval_s = asked.discovery.interval.as_secs();
    entry.addresses = learned
        .map(|l| l.addresses.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    entry.confirmed_unix_ms = learned.map(|l| l.confirmed_unix_ms);
    entry
}

struct Runner {
    asked: Asked,
    context: Context,
    probes: ProbeContext,
    failed_rounds: u32,
    last_error: Option<String>,
    /// The open `PathdnsAddressMoved`, by its labels (old, new).
    moved: Option<(String, String)>,
    /// Addresses with an open unreachable or conflict alert.
    unreachable: BTreeSet<IpAddr>,
    conflicting: BTreeSet<IpAddr>,
    /// This round's events, sent after its `/status` update.
    outbox: Vec<Event>,
}

impl Runner {
    fn new(asked: Asked, context: Context) -> Runner {
        let probes = ProbeContext {
            tls: Default::default(),
            pinger: context.pinger.clone(),
        };
        Runner {
            asked,
            context,
            probes,
            failed_rounds: 0,
            last_error: None,
            moved: None,
            unreachable: BTreeSet::new(),
            conflicting: BTreeSet::new(),
            outbox: Vec::new(),
        }
    }

    async fn run(mut self) {
        loop {
            self.round().await;
            // Jittered, so that a fleet started together does not ask in lockstep.
            let interval = self
                .asked
                .discovery
                .interval
                .mul_f64(0.9 + fastrand::f64() * 0.2);
            tokio::time::sleep(interval).await;
        }
    }

    async fn round(&mut self) {
        let discovery = &self.asked.discovery;
        match ask_servers(&discovery.servers, &discovery.ask, discovery.timeout).await {
            Ok(answered) => self.answered(answered).await,
            Err(reason) => self.failed(reason),
        }
        for event in self.outbox.drain(..) {
            let _ = self.context.events.send(event);
        }
    }

    fn learned(&self) -> Vec<IpAddr> {
        self.context
            .learned
            .borrow()
            .get(&self.asked.key)
            .map(|l| l.addresses.clone())
            .unwrap_or_default()
    }

    /// Queues an event; the round sends them once `/status` shows what they say.
    fn emit(&mut self, alertname: &str, firing: bool, labels: &[(&str, String)], summary: String) {
        let mut all = vec![("name", self.asked.key.clone())];
        all.extend(labels.iter().cloned());
        self.outbox
            .push(Event::new(alertname, firing, &all, summary));
    }

    fn failed(&mut self, reason: String) {
        self.failed_rounds += 1;
        self.context.metrics.discovery_round(&self.asked.key, false);
        if self.last_error.as_ref() != Some(&reason) {
            tracing::warn!(name = %self.asked.key, %reason, "discovery: no usable answer; the last good addresses keep answering");
        }
        if self.failed_rounds == FAILING_AFTER {
            let summary = format!(
                "{}: no discovery server gave a usable answer for {FAILING_AFTER} rounds ({reason}); \
                 the last good addresses keep answering",
                self.asked.key
            );
            self.emit(events::DISCOVERY_FAILING, true, &[], summary);
        }
        self.last_error = Some(reason.clone());
        let failed_rounds = self.failed_rounds;
        self.context.board.name(&self.asked.key, |entry| {
            entry.last_round_unix_ms = Some(now_ms());
            entry.last_error = Some(reason);
            entry.failed_rounds = failed_rounds;
        });
    }

    async fn answered(&mut self, answered: Answered) {
        self.context.metrics.discovery_round(&self.asked.key, true);
        if self.failed_rounds >= FAILING_AFTER {
            let summary = format!("{}: discovery answers again", self.asked.key);
            self.emit(events::DISCOVERY_FAILING, false, &[], summary);
        }
        self.failed_rounds = 0;
        if self.last_error.take().is_some() {
            tracing::info!(name = %self.asked.key, server = %answered.server, "discovery answers again");
        }
        let current = self.learned();
        let (usable, not_used) = self.sort_out(&answered.addresses, &current).await;
        if !usable.is_empty() && usable != current {
            self.replace(&current, &usable, answered.server);
        } else if !usable.is_empty() {
            self.confirm(answered.server);
        }
        let learned = self.context.learned.borrow().get(&self.asked.key).cloned();
        self.context.board.name(&self.asked.key, |entry| {
            entry.source = "discovered".into();
            entry.last_round_unix_ms = Some(now_ms());
            entry.last_error = None;
            entry.failed_rounds = 0;
            entry.last_answer = answered.addresses.iter().map(ToString::to_string).collect();
            entry.not_used = not_used;
            if let Some(learned) = learned {
                entry.addresses = learned.addresses.iter().map(ToString::to_string).collect();
                entry.confirmed_unix_ms = Some(learned.confirmed_unix_ms);
            }
        });
    }

    /// The answer's addresses that may be used (known ones, and new ones that passed
    /// their probes), and the others with why not; opens and closes their alerts.
    async fn sort_out(
        &mut self,
        answer: &[IpAddr],
        current: &[IpAddr],
    ) -> (Vec<IpAddr>, Vec<UnusedAddress>) {
        let mut usable = Vec::new();
        let mut not_used = Vec::new();
        let mut unreachable = BTreeSet::new();
        let mut conflicting = BTreeSet::new();
        for &addr in answer {
            if let Some(reason) = self.conflict(addr) {
                conflicting.insert(addr);
                not_used.push(UnusedAddress {
                    addr: addr.to_string(),
                    reason,
                });
            } else if current.contains(&addr) {
                usable.push(addr);
            } else {
                match self.check(addr, current).await {
                    Ok(()) => usable.push(addr),
                    Err(reason) => {
                        unreachable.insert(addr);
                        not_used.push(UnusedAddress {
                            addr: addr.to_string(),
                            reason,
                        });
                    }
                }
            }
        }
        self.close_gone(unreachable, conflicting);
        (usable, not_used)
    }

    /// Resolves the unreachable and conflict alerts of addresses this round no longer has
    /// (used now, or no longer discovered); the sets become this round's.
    fn close_gone(&mut self, unreachable: BTreeSet<IpAddr>, conflicting: BTreeSet<IpAddr>) {
        let key = self.asked.key.clone();
        for addr in std::mem::replace(&mut self.unreachable, unreachable.clone()) {
            if !unreachable.contains(&addr) {
                let summary =
                    format!("{key}: discovered address {addr} is used or no longer discovered");
                let target = [("target", addr.to_string())];
                self.emit(events::DISCOVERED_UNREACHABLE, false, &target, summary);
            }
        }
        for addr in std::mem::replace(&mut self.conflicting, conflicting.clone()) {
            if !conflicting.contains(&addr) {
                let summary = format!("{key}: discovered address {addr} is no longer discovered");
                let target = [("target", addr.to_string())];
                self.emit(events::DISCOVERED_CONFLICT, false, &target, summary);
            }
        }
    }

    /// A local network `addr` falls into (the 100.x conflict), reported once while it lasts.
    fn conflict(&mut self, addr: IpAddr) -> Option<String> {
        let found = local_conflicts(addr, &self.asked.role);
        if found.is_empty() {
            return None;
        }
        let reason = found.join("; ");
        if !self.conflicting.contains(&addr) {
            tracing::warn!(name = %self.asked.key, %addr, %reason, "discovered address not used");
            let summary = format!(
                "{}: discovered address {addr} not used: {reason}",
                self.asked.key
            );
            self.emit(
                events::DISCOVERED_CONFLICT,
                true,
                &[("target", addr.to_string())],
                summary,
            );
        }
        Some(reason)
    }

    /// Verifies a new address; a failure is reported (once while it lasts) with the route
    /// to add when its route leaves another way than a working address's.
    async fn check(&mut self, addr: IpAddr, current: &[IpAddr]) -> Result<(), String> {
        let (probes, ask) = (&self.asked.probes, &self.asked.discovery.ask);
        let verdict = verify(probes, addr, ask, &self.probes).await;
        let (probe, detail) = match verdict {
            Verified::Passed(took) => {
                tracing::info!(name = %self.asked.key, %addr, took_ms = took.as_millis() as u64, "discovered address passed its probes");
                return Ok(());
            }
            Verified::Unprobed => return Ok(()),
            Verified::Failed { probe, detail } => (probe, detail),
        };
        let mut reason = format!("its {probe} probe failed ({detail})");
        if let Some(advice) = self.route_advice(addr, current) {
            reason.push_str(&format!("; {advice}"));
        }
        if !self.unreachable.contains(&addr) {
            let old = self
                .reference(current)
                .map_or("none".into(), |a| a.to_string());
            tracing::warn!(name = %self.asked.key, %addr, old = %old, %reason, "discovered address not used: the last good addresses keep answering");
            let summary = format!(
                "{}: moved to {addr} (from {old}), which is not reachable from this host: {reason}",
                self.asked.key
            );
            self.emit(
                events::DISCOVERED_UNREACHABLE,
                true,
                &[("target", addr.to_string())],
                summary,
            );
        }
        Err(reason)
    }

    /// The address a new one is compared with: a learned one, else a written one.
    fn reference(&self, current: &[IpAddr]) -> Option<IpAddr> {
        current.first().or(self.asked.written.first()).copied()
    }

    fn route_advice(&self, addr: IpAddr, current: &[IpAddr]) -> Option<String> {
        let reference = self.reference(current)?;
        let new_route = crate::host::lookup(addr).ok();
        let old_route = crate::host::lookup(reference).ok();
        route_advice(addr, new_route.as_ref(), old_route.as_ref())
    }

    /// The learned addresses become `usable`: stored, written to disk, told.
    fn replace(&mut self, current: &[IpAddr], usable: &[IpAddr], server: std::net::SocketAddr) {
        let learned = Learned {
            addresses: usable.to_vec(),
            server: server.to_string(),
            confirmed_unix_ms: now_ms(),
        };
        self.context.learned.send_modify(|map| {
            map.insert(self.asked.key.clone(), learned);
        });
        self.save();
        self.context
            .metrics
            .discovered(&self.asked.key, usable.len(), true);
        let new = join(usable);
        if current.is_empty() {
            tracing::info!(name = %self.asked.key, addresses = %new, %server, "discovered");
            return;
        }
        let old = join(current);
        tracing::warn!(name = %self.asked.key, %old, %new, %server, "discovered address changed; answering the new one");
        self.close_moved();
        let summary = format!(
            "{}: the address moved from {old} to {new} (discovered from {server}, verified by its probes); \
             pathdns answers the new one",
            self.asked.key
        );
        self.emit(
            events::ADDRESS_MOVED,
            true,
            &[("old", old.clone()), ("new", new.clone())],
            summary,
        );
        self.moved = Some((old, new));
    }

    /// The answer agrees with the learned addresses: confirmed now (no new config).
    fn confirm(&mut self, server: std::net::SocketAddr) {
        let key = self.asked.key.clone();
        self.context.learned.send_if_modified(|map| {
            if let Some(learned) = map.get_mut(&key) {
                learned.confirmed_unix_ms = now_ms();
                learned.server = server.to_string();
            }
            false
        });
        let count = self.learned().len();
        self.context
            .metrics
            .discovered(&self.asked.key, count, false);
        self.close_moved();
    }

    fn close_moved(&mut self) {
        if let Some((old, new)) = self.moved.take() {
            let summary = format!(
                "{}: the move from {old} to {new} is settled",
                self.asked.key
            );
            self.emit(
                events::ADDRESS_MOVED,
                false,
                &[("old", old), ("new", new)],
                summary,
            );
        }
    }

    fn save(&self) {
        let learned = self.context.learned.borrow().clone();
        match state::save(&self.context.state_path, &learned) {
            Ok(()) => self.context.board.set_state_error(None),
            Err(err) => {
                tracing::error!(%err, "cannot keep the last good addresses across restarts");
                self.context.board.set_state_error(Some(err.to_string()));
            }
        }
    }
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn now_ms() -> u64 {
    events::unix_ms(SystemTime::now())
}
