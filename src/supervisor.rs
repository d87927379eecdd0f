//! The loop between probes and answers: probe reports in, health counted, failover
//! decided, a new answer table swapped in only when some name's answer changes.
//!
//! Owns: the health book (one [`ProbeState`] per distinct probe), each name's current
//! selection and last healthy answer, the log lines for every transition, the per-name
//! metrics that follow them (answering group, unanswered token realm), and the
//! "first round done" signal. Must not: be on the DNS path; it runs on its own task and
//! the DNS handler only ever sees the table it stores.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use tokio::sync::{mpsc, watch};

use crate::abort::{Request, Requests};
use crate::config::{AnswerSpec, OwnedName, ProbeKind};
use crate::events::{self, Event, EventSender};
use crate::failover::{self, Reason, Selection};
use crate::health::{combine, ProbeState, Thresholds, Verdict};
use crate::probe::scheduler::{self, JobKey, Plan, Report};
use crate::status::{
    NameStatus, ProbeStatus, StatusBoard, StatusReport, TargetStatus, Transition, Transitions,
};
use crate::table::{AnswerTable, LiveTable};

/// Where the supervisor tells the world: alert sinks (events) and `/status` (the board).
#[derive(Clone)]
pub struct Outputs {
    pub events: EventSender,
    pub board: StatusBoard,
    /// The config file, for status.
    pub config: String,
    pub started_unix_ms: u64,
    /// When this generation's config was loaded.
    pub loaded_unix_ms: u64,
    /// Probe runs, target health and failovers for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What the probes knew, kept across reloads.
    pub memory: HealthMemory,
    /// The `abort` task, shared across reloads: stalled connections to a target that is
    /// down and answered away from are ended there.
    pub aborts: Requests,
    /// `[health] stall_after` of this generation's config.
    pub stall_after: Duration,
    /// The last target transitions for `/status`, kept across reloads.
    pub transitions: Transitions,
}

/// Probe states and last healthy answers that outlive a generation: after a reload, a
/// probe that did not change keeps its verdict (a name on its backup stays there instead
/// of answering a dead primary until the new probes find out again).
#[derive(Clone, Default)]
pub struct HealthMemory(Arc<Mutex<Memory>>);

#[derive(Default)]
struct Memory {
    probes: HashMap<JobKey, ProbeState>,
    last_good: HashMap<Name, Vec<IpAddr>>,
    /// The token realm each https probe last found.
    realms: HashMap<JobKey, String>,
}

impl HealthMemory {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> Option<T> {
        // A poisoned lock only loses the memory, never the agent.
        self.0.lock().ok().map(|mut memory| f(&mut memory))
    }
}

pub struct Supervisor {
    names: Arc<Vec<OwnedName>>,
    plan: Plan,
    states: Vec<ProbeState>,
    reported: Vec<bool>,
    selections: Vec<(Selection, Reason)>,
    last_good: Vec<Option<Vec<IpAddr>>>,
    warned_realms: HashSet<String>,
    /// The realm exported as `pathdns_realm_unanswered` per name (index), at most one.
    unanswered_realms: HashMap<usize, String>,
    first_round: watch::Sender<bool>,
    /// The alert each down target raised, so that "up" resolves the same one.
    raised: HashMap<(usize, IpAddr), &'static str>,
    /// Targets whose stalled connections the `abort` task was asked to end.
    aborting: HashSet<(usize, IpAddr)>,
    outputs: Outputs,
    ready: bool,
}

impl Supervisor {
    /// Every target starts unknown, so the first table answers the primary groups; a probe
    /// and a name the previous generation had keep what it knew ([`HealthMemory`]).
    pub fn new(names: Arc<Vec<OwnedName>>, outputs: Outputs) -> Supervisor {
        let plan = Plan::from_names(&names);
        outputs.metrics.forget_targets();
        let remember = |job: &scheduler::Job| {
            outputs
                .memory
                .with(|memory| memory.probes.get(&job.key).cloned())
                .flatten()
        };
        let remembered: Vec<Option<ProbeState>> = plan.jobs.iter().map(remember).collect();
        let reported: Vec<bool> = remembered.iter().map(Option::is_some).collect();
        let states: Vec<ProbeState> = plan
            .jobs
            .iter()
            .zip(remembered)
            .map(|(job, remembered)| {
                remembered.unwrap_or_else(|| {
                    ProbeState::new(Thresholds {
                        rise: job.spec.rise,
                        fall: job.spec.fall,
                    })
                })
            })
            .collect();
        let last_good = names
            .iter()
            .map(|name| {
                outputs
                    .memory
                    .with(|memory| memory.last_good.get(&name.name).cloned())
                    .flatten()
            })
            .collect();
        let (first_round, _) = watch::channel(reported.iter().all(|seen| *seen));
        let mut supervisor = Supervisor {
            names,
            plan,
            states,
            reported,
            selections: Vec::new(),
            last_good,
            warned_realms: HashSet::new(),
            unanswered_realms: HashMap::new(),
            first_round,
            raised: HashMap::new(),
            aborting: HashSet::new(),
            outputs,
            ready: false,
        };
        supervisor.selections = (0..supervisor.names.len())
            .map(|index| supervisor.select(index))
            .collect();
        supervisor.publish_remembered_verdicts();
        for index in 0..supervisor.names.len() {
            supervisor.publish_group(index);
        }
        supervisor.check_remembered_realms();
        supervisor
    }

    /// `pathdns_name_answering_group` for one name, from its current selection.
    fn publish_group(&self, index: usize) {
        let name = &self.names[index];
        let group = failover::group_index(name, self.selections[index].1);
        self.outputs.metrics.answering_group(&name.display(), group);
    }

    /// The realms the previous generation's https probes found, checked against this
    /// generation's names at once (a reload that adds the auth name clears the metric
    /// without waiting for the next https probe run).
    fn check_remembered_realms(&mut self) {
        let remembered: Vec<(usize, String)> = self
            .plan
            .jobs
            .iter()
            .enumerate()
            .filter_map(|(index, job)| {
                let realm = self
                    .outputs
                    .memory
                    .with(|memory| memory.realms.get(&job.key).cloned())
                    .flatten()?;
                Some((index, realm))
            })
            .collect();
        for (job, realm) in remembered {
            let affected = self.affected_by(job);
            self.check_realm(job, &realm, &affected);
        }
    }

    /// The (name, target) pairs whose verdict probe `job` takes part in.
    fn affected_by(&self, job: usize) -> Vec<(usize, IpAddr)> {
        self.plan
            .by_target
            .iter()
            .filter(|(_, jobs)| jobs.contains(&job))
            .map(|(key, _)| *key)
            .collect()
    }

    /// `/metrics` forgot every target above; the ones this generation carried over with a
    /// verdict get it back now, not only when it next changes (a steady healthy target
    /// would otherwise vanish from `pathdns_target_up` after a reload).
    fn publish_remembered_verdicts(&self) {
        for &key in self.plan.by_target.keys() {
            if let Some(up) = self.verdict(key).known_up() {
                let name = self.names[key.0].display();
                self.outputs.metrics.target_state(&name, key.1, Some(up));
            }
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Becomes true once every probe has reported at least once.
    pub fn first_round(&self) -> watch::Receiver<bool> {
        self.first_round.subscribe()
    }

    /// The table for the current selections.
    pub fn table(&self) -> AnswerTable {
        let selections: Vec<Selection> = self.selections.iter().map(|(s, _)| s.clone()).collect();
        AnswerTable::build(&self.names, &selections)
    }

    /// Consumes probe reports until the probes stop, swapping tables into `live` and
    /// publishing status. Ready once every probe has reported, or at `ready_by` whatever
    /// the probes say (a probe stuck on a timeout must not hold the agent back); `None`
    /// means ready already (a reload of a serving agent).
    pub async fn run(
        mut self,
        mut reports: mpsc::Receiver<Report>,
        live: Arc<LiveTable>,
        ready_by: Option<Instant>,
    ) {
        self.ready = ready_by.is_none() || *self.first_round.borrow();
        let ready_by = ready_by.unwrap_or_else(Instant::now);
        self.publish();
        loop {
            tokio::select! {
                report = reports.recv() => {
                    let Some(report) = report else { return };
                    if self.record(&report) {
                        live.store(self.table());
                    }
                    if !self.ready && *self.first_round.borrow() {
                        self.ready = true;
                    }
                    self.publish();
                }
                _ = tokio::time::sleep_until(ready_by.into()), if !self.ready => {
                    tracing::warn!("the first probe round did not finish in time; ready anyway");
                    self.ready = true;
                    self.first_round.send_replace(true);
                    self.publish();
                }
            }
        }
    }

    /// Marks the agent ready now (used when nothing is probed).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Records one report; true when some name's answer changed.
    pub fn record(&mut self, report: &Report) -> bool {
        self.note_first_round(report.job);
        let affected = self.affected_by(report.job);
        if let Some(realm) = &report.outcome.realm {
            self.check_realm(report.job, realm, &affected);
        }
        let before: Vec<Verdict> = affected.iter().map(|key| self.verdict(*key)).collect();
        self.count_run(&affected, report);
        let Some(state) = self.states.get_mut(report.job) else {
            return false;
        };
        let changed = state.record(&report.outcome);
        if let Some(key) = self.plan.jobs.get(report.job).map(|job| &job.key) {
            let state = state.clone();
            self.outputs
                .memory
                .with(|memory| memory.probes.insert(key.clone(), state));
        }
        if changed.is_none() {
            return false;
        }
        if !report.outcome.ok {
            // A probe's verdict changed: keep why for status even if the target's did not.
            tracing::debug!(job = report.job, reason = ?report.outcome.detail, "probe down");
        }
        let mut changed = false;
        for (key, old) in affected.into_iter().zip(before) {
            let new = self.verdict(key);
            if new != old {
                let name = self.names[key.0].display();
                self.outputs
                    .metrics
                    .target_state(&name, key.1, new.known_up());
                self.log_target(key, new, report);
                let was_aborting = old == Verdict::Down || self.aborting.contains(&key);
                if new == Verdict::Up && was_aborting {
                    self.cancel_abort(key);
                }
                let answer_before = self.selections[key.0].1;
                changed |= self.reselect(key.0);
                let answer_after = self.selections[key.0].1;
                self.record_transition(key, (old, new), (answer_before, answer_after), report);
            }
        }
        changed
    }

    /// Puts one target transition in the `/status` ring, with the name's answering group
    /// when it moved.
    fn record_transition(
        &self,
        (index, addr): (usize, IpAddr),
        (from, to): (Verdict, Verdict),
        (answer_from, answer_to): (Reason, Reason),
        report: &Report,
    ) {
        let moved = answer_from != answer_to;
        self.outputs.transitions.record(Transition {
            unix_ms: events::unix_ms(std::time::SystemTime::now()),
            name: self.names[index].display(),
            target: addr.to_string(),
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            probe: self
                .plan
                .jobs
                .get(report.job)
                .map(|job| job.spec.kind.name().to_owned())
                .unwrap_or_default(),
            reason: (!report.outcome.ok)
                .then(|| report.outcome.detail.clone())
                .flatten(),
            answer_from: moved.then(|| reason_text(&self.names[index], answer_from)),
            answer_to: moved.then(|| reason_text(&self.names[index], answer_to)),
        });
    }

    /// One probe run, for every (name, target) it decides.
    fn count_run(&self, affected: &[(usize, IpAddr)], report: &Report) {
        let Some(job) = self.plan.jobs.get(report.job) else {
            return;
        };
        for (index, addr) in affected {
            let name = self.names[*index].display();
            let (ok, rtt) = (report.outcome.ok, report.outcome.rtt);
            let probe = job.spec.kind.name();
            self.outputs.metrics.probe_ran(&name, *addr, probe, ok, rtt);
        }
    }

    fn note_first_round(&mut self, job: usize) {
        if let Some(seen) = self.reported.get_mut(job) {
            *seen = true;
        }
        if !*self.first_round.borrow() && self.reported.iter().all(|seen| *seen) {
            self.first_round.send_replace(true);
            self.close_cleared_problems();
        }
    }

    /// Once every probe has spoken, resolve the name-level problems that do not hold (a
    /// previous generation may have left them open in the sinks before a reload).
    fn close_cleared_problems(&self) {
        for (name, (_, reason)) in self.names.iter().zip(&self.selections) {
            let labels = [("name", name.display())];
            if !on_backup(name, *reason) {
                self.emit(Event::new(
                    events::FAILED_OVER,
                    false,
                    &labels,
                    format!("{} answers from its primary group", name.display()),
                ));
            }
            if *reason != Reason::AllDown {
                self.emit(Event::new(
                    events::ALL_TARGETS_DOWN,
                    false,
                    &labels,
                    format!("{} has a usable target", name.display()),
                ));
            }
        }
    }

    /// A target's verdict for one name: every probe of that name on it counts.
    fn verdict(&self, key: (usize, IpAddr)) -> Verdict {
        match self.plan.by_target.get(&key) {
            Some(jobs) => {
                let states: Vec<ProbeState> = jobs
                    .iter()
                    .filter_map(|j| self.states.get(*j).cloned())
                    .collect();
                combine(&states)
            }
            None => Verdict::Unknown,
        }
    }

    fn select(&self, index: usize) -> (Selection, Reason) {
        let name = &self.names[index];
        failover::select(
            name,
            |addr| self.verdict((index, addr)),
            self.last_good[index].as_deref(),
        )
    }

    /// Recomputes one name's answer; true if it changed.
    fn reselect(&mut self, index: usize) -> bool {
        let (selection, reason) = self.select(index);
        let (old, old_reason) = self.selections[index].clone();
        if let (Selection::Addresses(addrs), Reason::Group(_)) = (&selection, reason) {
            self.last_good[index] = Some(addrs.clone());
            let name = self.names[index].name.clone();
            let addrs = addrs.clone();
            self.outputs
                .memory
                .with(|memory| memory.last_good.insert(name, addrs));
        }
        if selection == old && reason == old_reason {
            return false;
        }
        let name = self.names[index].name.to_ascii();
        let name = name.trim_end_matches('.');
        let (from, to) = (old.describe(), selection.describe());
        match (old_reason, reason) {
            (_, Reason::AllDown) => {
                tracing::error!(
                    name,
                    from,
                    to,
                    "every target is down; when_all_down answers"
                )
            }
            (Reason::Group(a), Reason::Group(b)) if b > a => {
                self.outputs.metrics.failed_over(name);
                tracing::warn!(name, from, to, group = b, "failed over")
            }
            (Reason::Group(a), Reason::Group(b)) if b < a => {
                tracing::info!(name, from, to, group = b, "moved back")
            }
            (Reason::AllDown, _) => tracing::info!(name, from, to, "recovered"),
            _ => tracing::info!(name, from, to, "answer changed"),
        }
        self.emit_failover(index, old_reason, reason, &to);
        self.follow_aborts(index, &old, &selection);
        self.selections[index] = (selection, reason);
        self.publish_group(index);
        selection_changed(&old, &self.selections[index].0)
    }

    /// Issue 15: a target the answer moved away from while it is down gets its stalled
    /// connections ended (clients retry and resolve again); one answered again does not.
    fn follow_aborts(&mut self, index: usize, old: &Selection, new: &Selection) {
        if !self.names[index].health.abort_stalled {
            return;
        }
        let (old, new) = (answered(old), answered(new));
        for &addr in old.iter().filter(|addr| !new.contains(addr)) {
            let key = (index, addr);
            if self.verdict(key) == Verdict::Down && self.aborting.insert(key) {
                self.outputs.aborts.send(Request::Abort {
                    name: self.names[index].display(),
                    target: addr,
                    ports: self.probe_ports(key),
                    stall_after: self.outputs.stall_after,
                });
            }
        }
        for addr in new {
            if self.aborting.contains(&(index, addr)) {
                self.cancel_abort((index, addr));
            }
        }
    }

    /// Stops ending connections to a target that is up or answered again. Sent also when
    /// this generation did not ask (a previous one may have, before a reload); the task
    /// ignores a target it is not sweeping.
    fn cancel_abort(&mut self, key: (usize, IpAddr)) {
        self.aborting.remove(&key);
        if self.names[key.0].health.abort_stalled {
            self.outputs.aborts.send(Request::Cancel {
                name: self.names[key.0].display(),
                target: key.1,
            });
        }
    }

    /// The ports a target's TCP, TLS and HTTPS probes use (its clients' ports), 443 when
    /// it has none of those (ICMP and path probes name no port).
    fn probe_ports(&self, key: (usize, IpAddr)) -> Vec<u16> {
        let jobs = self.plan.by_target.get(&key).map_or(&[][..], Vec::as_slice);
        let mut ports: Vec<u16> = jobs
            .iter()
            .filter_map(|job| match self.plan.jobs.get(*job)?.spec.kind {
                ProbeKind::Tcp { port }
                | ProbeKind::Tls { port, .. }
                | ProbeKind::Https { port, .. } => Some(port),
                ProbeKind::Icmp | ProbeKind::Path { .. } => None,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            ports.push(443);
        }
        ports
    }

    fn log_target(&mut self, (index, addr): (usize, IpAddr), verdict: Verdict, report: &Report) {
        let name = self.names[index].display();
        let probe = self.plan.jobs[report.job].spec.kind.name();
        let reason = report.outcome.detail.as_deref().unwrap_or("");
        let labels = [("name", name.clone()), ("target", addr.to_string())];
        match verdict {
            Verdict::Down => {
                tracing::warn!(name, %addr, probe, reason, "target down");
                let alert = if probe == "path" {
                    events::PATH_CHECK_FAILED
                } else {
                    events::TARGET_DOWN
                };
                self.raised.insert((index, addr), alert);
                self.emit(Event::new(
                    alert,
                    true,
                    &labels,
                    format!("{addr} for {name} is down ({probe} probe): {reason}"),
                ));
            }
            Verdict::Up => {
                tracing::info!(name, %addr, probe, "target up");
                // After a reload this generation may not have seen the target down while
                // a sink still holds the problem open: resolve whichever it may be. Sinks
                // ignore the resolution of a problem they do not hold.
                let raised = self.raised.remove(&(index, addr));
                let alerts = match raised {
                    Some(alert) => vec![alert],
                    None => vec![events::TARGET_DOWN, events::PATH_CHECK_FAILED],
                };
                for alert in alerts {
                    self.emit(Event::new(
                        alert,
                        false,
                        &labels,
                        format!("{addr} for {name} is up"),
                    ));
                }
            }
            Verdict::Unknown => {}
        }
    }

    /// FAILED_OVER is open while a backup group answers, ALL_TARGETS_DOWN while the
    /// `when_all_down` policy does (labels: name).
    fn emit_failover(&self, index: usize, old: Reason, new: Reason, answer: &str) {
        let owned = &self.names[index];
        let name = owned.display();
        let labels = [("name", name.clone())];
        let backup = |reason: Reason| on_backup(owned, reason);
        if backup(old) != backup(new) {
            let summary = match new {
                Reason::Group(group) if backup(new) => {
                    format!("{name} failed over to priority group {group}: {answer}")
                }
                _ => format!("{name} no longer answers from a backup group: {answer}"),
            };
            self.emit(Event::new(
                events::FAILED_OVER,
                backup(new),
                &labels,
                summary,
            ));
        }
        let all_down = |reason: Reason| reason == Reason::AllDown;
        if all_down(old) != all_down(new) {
            let summary = if all_down(new) {
                format!("every target of {name} is down; when_all_down answers {answer}")
            } else {
                format!("{name} has a usable target again: {answer}")
            };
            self.emit(Event::new(
                events::ALL_TARGETS_DOWN,
                all_down(new),
                &labels,
                summary,
            ));
        }
    }

    fn emit(&self, event: Event) {
        // No subscriber (no alert sink configured) is fine: the log has it already.
        let _ = self.outputs.events.send(event);
    }

    /// The registry names its token service; pathdns should own that name too. Warned
    /// once per realm; exported as `pathdns_realm_unanswered{name, realm}` for every name
    /// the probe (`job`, deciding `affected`) belongs to, while the realm is not owned.
    fn check_realm(&mut self, job: usize, realm: &str, affected: &[(usize, IpAddr)]) {
        if let Some(key) = self.plan.jobs.get(job).map(|job| job.key.clone()) {
            let found = realm.to_owned();
            self.outputs
                .memory
                .with(|memory| memory.realms.insert(key, found));
        }
        let owned = self.names.iter().any(|n| {
            let name = n.name.to_ascii();
            let name = name.trim_end_matches('.');
            match name.strip_prefix("*.") {
                Some(parent) => realm.ends_with(&format!(".{parent}")),
                None => name == realm,
            }
        });
        if !owned && self.warned_realms.insert(realm.to_owned()) {
            tracing::warn!(
                realm,
                "the registry's token realm is not an owned name: `docker login` will \
                 resolve it upstream; add it (the preset's `auth`) unless the instance \
                 took over the auth domain"
            );
        }
        let mut indices: Vec<usize> = affected.iter().map(|(index, _)| *index).collect();
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            let name = self.names[index].display();
            // One series per name: a realm that changed or became owned takes its old one.
            if let Some(previous) = self.unanswered_realms.remove(&index) {
                if owned || previous != realm {
                    self.outputs
                        .metrics
                        .realm_unanswered(&name, &previous, false);
                }
            }
            if !owned {
                self.outputs.metrics.realm_unanswered(&name, realm, true);
                self.unanswered_realms.insert(index, realm.to_owned());
            }
        }
    }

    /// Publishes the current snapshot for `/status` and systemd's STATUS=.
    fn publish(&self) {
        self.outputs.board.store(self.status());
    }

    pub fn status(&self) -> StatusReport {
        let names = self
            .names
            .iter()
            .zip(&self.selections)
            .map(|(name, (selection, reason))| NameStatus {
                name: name.display(),
                role: name.role.to_string(),
                answer: selection.describe(),
                reason: reason_text(name, *reason),
                ttl: name.ttl,
            })
            .collect();
        let mut targets = Vec::new();
        for (index, name) in self.names.iter().enumerate() {
            let AnswerSpec::Targets(list) = &name.answer else {
                continue;
            };
            for target in list {
                let jobs = self
                    .plan
                    .by_target
                    .get(&(index, target.addr))
                    .cloned()
                    .unwrap_or_default();
                let probes = jobs
                    .iter()
                    .filter_map(|job| Some((self.plan.jobs.get(*job)?, self.states.get(*job)?)))
                    .map(|(job, state)| ProbeStatus {
                        kind: job.spec.kind.name().to_owned(),
                        state: state.verdict().as_str().to_owned(),
                        last_rtt_ms: state.last_rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                        last_error: state.last_error.clone(),
                        last_detail: state.last_detail.clone(),
                        last_change_unix_ms: state.last_change.map(events::unix_ms),
                    })
                    .collect();
                targets.push(TargetStatus {
                    name: name.display(),
                    addr: target.addr.to_string(),
                    priority: target.priority,
                    state: self.verdict((index, target.addr)).as_str().to_owned(),
                    probes,
                });
            }
        }
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config: self.outputs.config.clone(),
            started_unix_ms: self.outputs.started_unix_ms,
            pid: std::process::id(),
            loaded_unix_ms: self.outputs.loaded_unix_ms,
            ready: self.ready,
            names,
            targets,
            forwarding: None,
            host_read_failures: None,
            abort_stalled: None,
            discovery: None,
            host: None,
            transitions: self.outputs.transitions.recent(),
        }
    }

    /// Whether any name is health-checked.
    pub fn is_probing(&self) -> bool {
        self.names
            .iter()
            .any(|n| matches!(n.answer, AnswerSpec::Targets(_)) && !n.health.probes.is_empty())
    }
}

/// Why a name answers what it answers, as `/status` words it: a group by its priority,
/// "(failed over)" when it is not the name's first group.
fn reason_text(name: &OwnedName, reason: Reason) -> String {
    match reason {
        Reason::Static => "static".to_owned(),
        Reason::Group(g) if on_backup(name, reason) => format!("group {g} (failed over)"),
        Reason::Group(g) => format!("group {g}"),
        Reason::AllDown => "all targets down".to_owned(),
    }
}

/// A backup group answers: not the name's first priority group, whatever its number (the
/// same reading as `pathdns_name_answering_group > 0`, so the direct alert and the
/// Prometheus rule agree).
fn on_backup(name: &OwnedName, reason: Reason) -> bool {
    failover::group_index(name, reason).is_some_and(|index| index > 0)
}

/// The addresses a selection answers (none for a CNAME, forward or SERVFAIL).
fn answered(selection: &Selection) -> Vec<IpAddr> {
    match selection {
        Selection::Addresses(addrs) => addrs.clone(),
        _ => Vec::new(),
    }
}

/// Only a different answer needs a new table; a different reason alone does not.
fn selection_changed(old: &Selection, new: &Selection) -> bool {
    old != new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::probe::ProbeOutcome;

    const PRIMARY: &str = "10.1.0.1";
    const BACKUP: &str = "10.1.0.2";

    /// A name on a primary and a backup, two TCP probes each that decide at once.
    fn supervisor(abort_stalled: bool) -> (Supervisor, mpsc::Receiver<Request>) {
        supervisor_with(abort_stalled, (1, 2))
    }

    /// [`supervisor`] with the primary's and the backup's priority numbers.
    fn supervisor_with(
        abort_stalled: bool,
        (primary, backup): (u8, u8),
    ) -> (Supervisor, mpsc::Receiver<Request>) {
        let text = format!(
            "[upstream]\nservers = [\"10.0.0.2\"]\n[health]\nstall_after = \"7s\"\n\
             [[name]]\nname = \"a.example\"\nabort_stalled = {abort_stalled}\n\
             targets = [{{ addr = \"{PRIMARY}\", priority = {primary} }}, {{ addr = \"{BACKUP}\", priority = {backup} }}]\n\
             probes = [{{ kind = \"tcp\", port = 8443, rise = 1, fall = 1 }}, \
             {{ kind = \"tcp\", port = 8080, rise = 1, fall = 1 }}]\n"
        );
        let config = Config::parse(&text, "t.toml").expect("valid");
        let (aborts, rx) = Requests::channel();
        let outputs = Outputs {
            events: events::channel(),
            board: StatusBoard::default(),
            config: config.source.clone(),
            started_unix_ms: 0,
            loaded_unix_ms: 0,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            memory: HealthMemory::default(),
            aborts,
            stall_after: config.stall_after,
            transitions: Default::default(),
        };
        (Supervisor::new(Arc::new(config.names), outputs), rx)
    }

    /// Every probe of `target` reports `ok`.
    fn report(supervisor: &mut Supervisor, target: &str, ok: bool) {
        let addr: IpAddr = target.parse().expect("address");
        let jobs = supervisor.plan.by_target[&(0, addr)].clone();
        for job in jobs {
            let outcome = if ok {
                ProbeOutcome::pass(Instant::now(), None)
            } else {
                ProbeOutcome::fail("timed out")
            };
            supervisor.record(&Report { job, outcome });
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Request>) -> Vec<Request> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_failover_from_a_down_primary_aborts_it_and_moving_back_cancels() {
        let (mut supervisor, mut rx) = supervisor(true);
        report(&mut supervisor, PRIMARY, true);
        report(&mut supervisor, BACKUP, true);
        assert_eq!(
            drain(&mut rx),
            Vec::new(),
            "nothing while the primary answers"
        );
        report(&mut supervisor, PRIMARY, false);
        let primary: IpAddr = PRIMARY.parse().expect("address");
        assert_eq!(
            drain(&mut rx),
            vec![Request::Abort {
                name: "a.example".into(),
                target: primary,
                ports: vec![8080, 8443],
                stall_after: Duration::from_secs(7),
            }]
        );
        report(&mut supervisor, PRIMARY, true);
        assert_eq!(
            drain(&mut rx),
            vec![Request::Cancel {
                name: "a.example".into(),
                target: primary,
            }]
        );
    }

    #[test]
    fn a_failover_and_the_move_back_are_in_the_status_transitions() {
        let (mut supervisor, _rx) = supervisor(false);
        report(&mut supervisor, PRIMARY, true);
        report(&mut supervisor, BACKUP, true);
        report(&mut supervisor, PRIMARY, false);
        report(&mut supervisor, PRIMARY, true);
        let seen: Vec<String> = supervisor
            .status()
            .transitions
            .iter()
            .map(|t| {
                let answer = match (&t.answer_from, &t.answer_to) {
                    (Some(from), Some(to)) => format!(", {from} -> {to}"),
                    _ => String::new(),
                };
                format!("{} {} -> {}{answer}", t.target, t.from, t.to)
            })
            .collect();
        assert_eq!(
            seen,
            [
                format!("{PRIMARY} unknown -> up"),
                format!("{BACKUP} unknown -> up"),
                format!("{PRIMARY} up -> down, group 1 -> group 2 (failed over)"),
                format!("{PRIMARY} down -> up, group 2 (failed over) -> group 1"),
            ]
        );
        let down = &supervisor.status().transitions[2];
        assert_eq!(down.name, "a.example");
        assert_eq!(down.probe, "tcp");
        assert_eq!(down.reason.as_deref(), Some("timed out"));
    }

    #[test]
    fn without_abort_stalled_nothing_is_asked() {
        let (mut supervisor, mut rx) = supervisor(false);
        report(&mut supervisor, PRIMARY, true);
        report(&mut supervisor, BACKUP, true);
        report(&mut supervisor, PRIMARY, false);
        report(&mut supervisor, PRIMARY, true);
        assert_eq!(drain(&mut rx), Vec::new());
    }

    #[test]
    fn a_down_target_still_answered_is_left_alone() {
        // Both down: `keep` answers the last healthy primary, so nothing moved away.
        let (mut supervisor, mut rx) = supervisor(true);
        report(&mut supervisor, BACKUP, false);
        report(&mut supervisor, PRIMARY, true);
        report(&mut supervisor, PRIMARY, false);
        assert_eq!(drain(&mut rx), Vec::new());
    }

    /// The lines of `/metrics` that start with `prefix`.
    fn metric_lines(supervisor: &Supervisor, prefix: &str) -> Vec<String> {
        supervisor.outputs.metrics.lines_starting(prefix)
    }

    #[test]
    fn the_answering_group_follows_failover_and_all_down_is_minus_one() {
        let (mut supervisor, _rx) = supervisor(false);
        let group =
            |supervisor: &Supervisor| metric_lines(supervisor, "pathdns_name_answering_group{");
        // Unknown targets are usable: the primary group answers from the start.
        assert_eq!(
            group(&supervisor),
            ["pathdns_name_answering_group{name=\"a.example\"} 0"]
        );
        report(&mut supervisor, PRIMARY, true);
        report(&mut supervisor, BACKUP, true);
        report(&mut supervisor, PRIMARY, false);
        assert_eq!(
            group(&supervisor),
            ["pathdns_name_answering_group{name=\"a.example\"} 1"]
        );
        report(&mut supervisor, BACKUP, false);
        assert_eq!(
            group(&supervisor),
            ["pathdns_name_answering_group{name=\"a.example\"} -1"]
        );
        report(&mut supervisor, PRIMARY, true);
        assert_eq!(
            group(&supervisor),
            ["pathdns_name_answering_group{name=\"a.example\"} 0"]
        );
    }

    #[test]
    fn the_first_group_is_primary_whatever_its_priority_number() {
        let (mut supervisor, _rx) = supervisor_with(false, (2, 3));
        let mut events = supervisor.outputs.events.subscribe();
        report(&mut supervisor, PRIMARY, true);
        report(&mut supervisor, BACKUP, true);
        assert_eq!(supervisor.status().names[0].reason, "group 2");
        let fired = |events: &mut tokio::sync::broadcast::Receiver<Event>| {
            std::iter::from_fn(|| events.try_recv().ok())
                .filter(|e| e.alertname == events::FAILED_OVER && e.firing)
                .count()
        };
        assert_eq!(fired(&mut events), 0, "the primary group is not a backup");
        report(&mut supervisor, PRIMARY, false);
        assert_eq!(supervisor.status().names[0].reason, "group 3 (failed over)");
        assert_eq!(fired(&mut events), 1);
    }

    /// One report of the primary's first probe that found `realm`.
    fn report_realm(supervisor: &mut Supervisor, realm: &str) {
        let addr: IpAddr = PRIMARY.parse().expect("address");
        let job = supervisor.plan.by_target[&(0, addr)][0];
        let mut outcome = ProbeOutcome::pass(Instant::now(), None);
        outcome.realm = Some(realm.to_owned());
        supervisor.record(&Report { job, outcome });
    }

    #[test]
    fn a_realm_no_owned_name_answers_is_exported_once_per_name_until_it_is_owned() {
        let (mut supervisor, _rx) = supervisor(false);
        let realms =
            |supervisor: &Supervisor| metric_lines(supervisor, "pathdns_realm_unanswered{");
        assert_eq!(realms(&supervisor), Vec::<String>::new());
        report_realm(&mut supervisor, "auth.elsewhere.example");
        report_realm(&mut supervisor, "auth.elsewhere.example");
        assert_eq!(
            realms(&supervisor),
            ["pathdns_realm_unanswered{name=\"a.example\",realm=\"auth.elsewhere.example\"} 1"]
        );
        report_realm(&mut supervisor, "auth2.elsewhere.example");
        assert_eq!(
            realms(&supervisor),
            ["pathdns_realm_unanswered{name=\"a.example\",realm=\"auth2.elsewhere.example\"} 1"],
            "a changed realm replaces the old series"
        );
        report_realm(&mut supervisor, "a.example");
        assert_eq!(
            realms(&supervisor),
            Vec::<String>::new(),
            "an owned realm has none"
        );
    }

    #[test]
    fn a_reload_keeps_a_realm_it_does_not_own_and_clears_one_it_owns_at_once() {
        let (mut supervisor, _rx) = supervisor(false);
        report_realm(&mut supervisor, "auth.a.example");
        let realms =
            |supervisor: &Supervisor| metric_lines(supervisor, "pathdns_realm_unanswered{");
        let unanswered =
            ["pathdns_realm_unanswered{name=\"a.example\",realm=\"auth.a.example\"} 1"];
        assert_eq!(realms(&supervisor), unanswered);
        // The next generations: the same name and probes, then the realm as an owned name.
        let generation = |extra: &str| {
            let text = format!(
                "[upstream]\nservers = [\"10.0.0.2\"]\n[health]\nstall_after = \"7s\"\n\
                 [[name]]\nname = \"a.example\"\nabort_stalled = false\n\
                 targets = [{{ addr = \"{PRIMARY}\", priority = 1 }}, {{ addr = \"{BACKUP}\", priority = 2 }}]\n\
                 probes = [{{ kind = \"tcp\", port = 8443, rise = 1, fall = 1 }}, \
                 {{ kind = \"tcp\", port = 8080, rise = 1, fall = 1 }}]\n{extra}"
            );
            let config = Config::parse(&text, "t.toml").expect("valid");
            Supervisor::new(Arc::new(config.names), supervisor.outputs.clone())
        };
        assert_eq!(
            realms(&generation("")),
            unanswered,
            "remembered across the reload"
        );
        let owning = generation(
            "[[name]]\nname = \"auth.a.example\"\ntargets = [\"10.1.0.3\"]\nprobes = []\n",
        );
        assert_eq!(realms(&owning), Vec::<String>::new());
        let groups = metric_lines(&owning, "pathdns_name_answering_group{");
        assert_eq!(
            groups,
            ["pathdns_name_answering_group{name=\"a.example\"} 0"],
            "a static name has no series"
        );
    }
}
