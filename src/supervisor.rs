//! The loop between probes and answers: probe reports in, health counted, failover
//! decided, a new answer table swapped in only when some name's answer changes.
//!
//! Owns: the health book (one [`ProbeState`] per distinct probe), each name's current
//! selection and last healthy answer, the log lines for every transition, and the
//! "first round done" signal. Must not: be on the DNS path; it runs on its own task and
//! the DNS handler only ever sees the table it stores.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::{AnswerSpec, OwnedName};
use crate::failover::{self, Reason, Selection};
use crate::health::{combine, ProbeState, Thresholds, Verdict};
use crate::probe::scheduler::{Plan, Report};
use crate::table::{AnswerTable, LiveTable};

pub struct Supervisor {
    names: Arc<Vec<OwnedName>>,
    plan: Plan,
    states: Vec<ProbeState>,
    reported: Vec<bool>,
    selections: Vec<(Selection, Reason)>,
    last_good: Vec<Option<Vec<IpAddr>>>,
    warned_realms: HashSet<String>,
    first_round: watch::Sender<bool>,
}

impl Supervisor {
    /// Every target starts unknown, so the first table answers the primary groups.
    pub fn new(names: Arc<Vec<OwnedName>>) -> Supervisor {
        let plan = Plan::from_names(&names);
        let states = plan
            .jobs
            .iter()
            .map(|job| {
                ProbeState::new(Thresholds {
                    rise: job.spec.rise,
                    fall: job.spec.fall,
                })
            })
            .collect();
        let reported = vec![false; plan.jobs.len()];
        let (first_round, _) = watch::channel(plan.jobs.is_empty());
        let mut supervisor = Supervisor {
            names,
            plan,
            states,
            reported,
            selections: Vec::new(),
            last_good: Vec::new(),
            warned_realms: HashSet::new(),
            first_round,
        };
        supervisor.last_good = vec![None; supervisor.names.len()];
        supervisor.selections = (0..supervisor.names.len())
            .map(|index| supervisor.select(index))
            .collect();
        supervisor
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

    /// Consumes probe reports until the probes stop, swapping tables into `live`.
    pub async fn run(mut self, mut reports: mpsc::Receiver<Report>, live: Arc<LiveTable>) {
        while let Some(report) = reports.recv().await {
            if self.record(&report) {
                live.store(self.table());
            }
        }
    }

    /// Records one report; true when some name's answer changed.
    pub fn record(&mut self, report: &Report) -> bool {
        self.note_first_round(report.job);
        if let Some(realm) = &report.outcome.realm {
            self.check_realm(realm);
        }
        let affected: Vec<(usize, IpAddr)> = self
            .plan
            .by_target
            .iter()
            .filter(|(_, jobs)| jobs.contains(&report.job))
            .map(|(key, _)| *key)
            .collect();
        let before: Vec<Verdict> = affected.iter().map(|key| self.verdict(*key)).collect();
        let Some(state) = self.states.get_mut(report.job) else {
            return false;
        };
        if state.record(&report.outcome).is_none() {
            return false;
        }
        let mut changed = false;
        for (key, old) in affected.into_iter().zip(before) {
            let new = self.verdict(key);
            if new != old {
                self.log_target(key, new, report);
                changed |= self.reselect(key.0);
            }
        }
        changed
    }

    fn note_first_round(&mut self, job: usize) {
        if let Some(seen) = self.reported.get_mut(job) {
            *seen = true;
        }
        if !*self.first_round.borrow() && self.reported.iter().all(|seen| *seen) {
            self.first_round.send_replace(true);
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
                tracing::warn!(name, from, to, group = b, "failed over")
            }
            (Reason::Group(a), Reason::Group(b)) if b < a => {
                tracing::info!(name, from, to, group = b, "moved back")
            }
            (Reason::AllDown, _) => tracing::info!(name, from, to, "recovered"),
            _ => tracing::info!(name, from, to, "answer changed"),
        }
        self.selections[index] = (selection, reason);
        selection_changed(&old, &self.selections[index].0)
    }

    fn log_target(&self, (index, addr): (usize, IpAddr), verdict: Verdict, report: &Report) {
        let name = self.names[index].name.to_ascii();
        let name = name.trim_end_matches('.');
        let probe = self.plan.jobs[report.job].spec.kind.name();
        let reason = report.outcome.detail.as_deref().unwrap_or("");
        match verdict {
            Verdict::Down => tracing::warn!(name, %addr, probe, reason, "target down"),
            Verdict::Up => tracing::info!(name, %addr, probe, "target up"),
            Verdict::Unknown => {}
        }
    }

    /// The registry names its token service; pathdns should own that name too.
    fn check_realm(&mut self, realm: &str) {
        if self.warned_realms.contains(realm) {
            return;
        }
        let owned = self.names.iter().any(|n| {
            let name = n.name.to_ascii();
            let name = name.trim_end_matches('.');
            match name.strip_prefix("*.") {
                Some(parent) => realm.ends_with(&format!(".{parent}")),
                None => name == realm,
            }
        });
        if !owned {
            tracing::warn!(
                realm,
                "the registry's token realm is not an owned name: `docker login` will \
                 resolve it upstream; add it (the preset's `auth`) unless the instance \
                 took over the auth domain"
            );
        }
        self.warned_realms.insert(realm.to_owned());
    }

    /// Current answer and reason per name, for status.
    pub fn selections(&self) -> impl Iterator<Item = (&OwnedName, &Selection, Reason)> {
        self.names
            .iter()
            .zip(&self.selections)
            .map(|(name, (selection, reason))| (name, selection, *reason))
    }

    /// Whether any name is health-checked.
    pub fn is_probing(&self) -> bool {
        self.names
            .iter()
            .any(|n| matches!(n.answer, AnswerSpec::Targets(_)) && !n.health.probes.is_empty())
    }
}

/// Only a different answer needs a new table; a different reason alone does not.
fn selection_changed(old: &Selection, new: &Selection) -> bool {
    old != new
}
