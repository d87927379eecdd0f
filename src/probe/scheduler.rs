//! Runs every distinct probe on its own task: one run per interval whatever the query
//! load, jittered so that a fleet does not probe in lockstep, and at the shorter
//! `suspect_interval` while the last run failed and until `rise` runs passed again; and
//! at once when the kernel reports that a probed target's local path changed
//! ([`super::trigger`]).
//!
//! Identical probes are run once: the OSS name, a bucket and the OSS wildcard share their
//! addresses and TCP probe, so the target sees one connection per interval, not three.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::trigger::{self, Trigger};
use super::{PreparedProbe, ProbeContext, ProbeOutcome, ProbeTarget};
use crate::config::{AnswerSpec, OwnedName, ProbeKind, ProbeSpec};
use crate::host::watch::Changes;
use crate::metrics::Metrics;

/// One distinct probe against one target.
#[derive(Debug, Clone)]
pub struct Job {
    pub spec: ProbeSpec,
    pub target: ProbeTarget,
    /// What makes it this probe, also across a reload.
    pub key: JobKey,
}

/// Every probe to run, and which probes decide each (name, target) pair.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// Keyed by (index of the name in the config, target address).
    pub by_target: HashMap<(usize, IpAddr), Vec<usize>>,
}

/// What makes two probes the same probe (also across a reload, so health carries over).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKey {
    kind: ProbeKind,
    addr: IpAddr,
    /// Only TLS and HTTPS depend on the name.
    server_name: Option<String>,
    timing: (Duration, Duration, Duration, u32, u32),
}

impl Plan {
    /// Which jobs a path change of each address wakes: its cheap path probes (tcp, icmp,
    /// path); only an address with none of those gets its application probes woken, so that
    /// a fleet-wide route flap does not become a synchronized burst of `/v2/` requests.
    pub fn wake_lists(&self) -> BTreeMap<IpAddr, Vec<usize>> {
        let mut cheap: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
        let mut all: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
        for (id, job) in self.jobs.iter().enumerate() {
            let application = matches!(
                job.spec.kind,
                ProbeKind::Tls { .. } | ProbeKind::Https { .. }
            );
            all.entry(job.target.addr).or_default().push(id);
            if !application {
                cheap.entry(job.target.addr).or_default().push(id);
            }
        }
        all.into_iter()
            .map(|(addr, jobs)| (addr, cheap.remove(&addr).unwrap_or(jobs)))
            .collect()
    }

    pub fn from_names(names: &[OwnedName]) -> Plan {
        let mut plan = Plan::default();
        let mut seen: HashMap<JobKey, usize> = HashMap::new();
        for (index, name) in names.iter().enumerate() {
            let AnswerSpec::Targets(targets) = &name.answer else {
                continue;
            };
            // A wildcard is probed under its parent name (a real certificate name).
            let server_name = if name.is_wildcard() {
                name.name.base_name()
            } else {
                name.name.clone()
            };
            for target in targets {
                let mut jobs = Vec::new();
                for spec in &name.health.probes {
                    let needs_name =
                        matches!(spec.kind, ProbeKind::Tls { .. } | ProbeKind::Https { .. });
                    let key = JobKey {
                        kind: spec.kind.clone(),
                        addr: target.addr,
                        server_name: needs_name.then(|| server_name.to_ascii()),
                        timing: (
                            spec.interval,
                            spec.suspect_interval,
                            spec.timeout,
                            spec.rise,
                            spec.fall,
                        ),
                    };
                    let id = *seen.entry(key.clone()).or_insert_with(|| {
                        plan.jobs.push(Job {
                            spec: spec.clone(),
                            target: ProbeTarget {
                                addr: target.addr,
                                server_name: server_name.clone(),
                            },
                            key,
                        });
                        plan.jobs.len() - 1
                    });
                    jobs.push(id);
                }
                if !jobs.is_empty() {
                    plan.by_target.insert((index, target.addr), jobs);
                }
            }
        }
        plan
    }

    /// Probe runs per second this plan makes at steady state (all targets healthy).
    pub fn runs_per_second(&self) -> f64 {
        self.jobs
            .iter()
            .map(|job| 1.0 / job.spec.interval.as_secs_f64())
            .sum()
    }
}

/// One probe result, for the health book.
#[derive(Debug, Clone)]
pub struct Report {
    pub job: usize,
    pub outcome: ProbeOutcome,
}

/// The running probe tasks; dropping this stops them.
pub struct Running {
    tasks: JoinSet<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// What the probes react to besides their clocks: the kernel's change notifications
/// (`None` where they are unavailable) and where to count their effect.
pub struct Events {
    pub changes: Option<watch::Receiver<Changes>>,
    pub metrics: Arc<Metrics>,
}

/// Prepares every job (TLS configs, HTTP clients) and starts it, and the reaction to path
/// changes. A probe that cannot be prepared is an error here, before anything runs.
pub fn start(
    plan: &Plan,
    context: &ProbeContext,
    reports: mpsc::Sender<Report>,
    events: Events,
) -> Result<Running, String> {
    let prepared = plan
        .jobs
        .iter()
        .map(|job| PreparedProbe::new(&job.spec.kind, &job.target, job.spec.timeout, context))
        .collect::<Result<Vec<_>, _>>()?;
    let triggers: Vec<Arc<Trigger>> = plan.jobs.iter().map(|_| Arc::default()).collect();
    let mut tasks = JoinSet::new();
    for (id, (job, probe)) in plan.jobs.iter().zip(prepared).enumerate() {
        let trigger = triggers[id].clone();
        tasks.spawn(run_job(id, job.clone(), probe, trigger, reports.clone()));
    }
    if let (Some(changes), false) = (events.changes, plan.jobs.is_empty()) {
        let wake = plan.wake_lists();
        tasks.spawn(trigger::react(changes, wake, triggers, events.metrics));
    }
    Ok(Running { tasks })
}

async fn run_job(
    id: usize,
    job: Job,
    probe: PreparedProbe,
    trigger: Arc<Trigger>,
    reports: mpsc::Sender<Report>,
) {
    let probe = Arc::new(probe);
    // Spread the first round a little, so that a restart does not send a burst.
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..100))).await;
    let mut pace = Pace::default();
    loop {
        let started = Instant::now();
        let outcome = match trigger.take_verdict() {
            // The kernel has no way out: nothing to send, and the verdict is decisive.
            Some(reason) => ProbeOutcome::decisive_fail(reason),
            None => run_once(&job, &probe).await,
        };
        let base = pace.next(&job.spec, outcome.ok);
        if reports.send(Report { job: id, outcome }).await.is_err() {
            return;
        }
        let wait = jittered(base, job.spec.jitter);
        tokio::select! {
            _ = tokio::time::sleep_until((started + wait).into()) => {}
            _ = trigger.woken() => {}
        }
    }
}

async fn run_once(job: &Job, probe: &PreparedProbe) -> ProbeOutcome {
    match tokio::time::timeout(job.spec.timeout, probe.run(&job.target, job.spec.timeout)).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::fail(format!(
            "{} {}: no answer within {:?}",
            job.spec.kind.name(),
            job.target.addr,
            job.spec.timeout
        )),
    }
}

/// The interval to the next run: `suspect_interval` from a failure until `rise` runs in a
/// row have passed again (a probe coming back is confirmed as fast as one going down),
/// `interval` otherwise.
#[derive(Debug, Default)]
struct Pace {
    /// Passes since the last failure, while that failure is not yet outweighed.
    rising: Option<u32>,
}

impl Pace {
    fn next(&mut self, spec: &ProbeSpec, ok: bool) -> Duration {
        self.rising = match (ok, self.rising) {
            (false, _) => Some(0),
            (true, Some(passes)) if passes + 1 < spec.rise.max(1) => Some(passes + 1),
            (true, _) => None,
        };
        if self.rising.is_some() {
            spec.suspect_interval
        } else {
            spec.interval
        }
    }
}

fn jittered(base: Duration, jitter: f64) -> Duration {
    let factor = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
    base.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_change_wakes_the_cheap_probes_only() {
        let config = Config::parse(
            r#"
[upstream]
servers = ["127.0.0.1:5399"]
[[registry]]
instance = "x"
region = "cn-hangzhou"
registry = ["10.94.205.198"]
oss = ["100.118.28.43"]
[[name]]
name = "app.example"
targets = [{ addr = "10.1.2.3" }]
probe = { kind = "https", port = 443 }
"#,
            "wake.toml",
        )
        .expect("config");
        let plan = Plan::from_names(&config.names);
        let wake = plan.wake_lists();
        let kinds = |addr: &str| -> Vec<&str> {
            let addr: IpAddr = addr.parse().expect("addr");
            wake[&addr]
                .iter()
                .map(|job| plan.jobs[*job].spec.kind.name())
                .collect()
        };
        assert_eq!(kinds("10.94.205.198"), ["tcp"], "not the registry's https");
        assert_eq!(kinds("100.118.28.43"), ["tcp"]);
        assert_eq!(kinds("10.1.2.3"), ["https"], "its only probe");
    }

    #[test]
    fn identical_probes_run_once() {
        let config = Config::parse(
            r#"
[upstream]
servers = ["127.0.0.1:5399"]
[[registry]]
instance = "x"
region = "cn-hangzhou"
registry = ["10.94.205.198", "10.94.205.199"]
auth = ["100.103.7.181"]
oss = ["100.118.28.43"]
bucket = "b"
oss_wildcard = true
"#,
            "plan.toml",
        )
        .expect("config");
        let plan = Plan::from_names(&config.names);
        // registry: (https + tcp) x 2; auth: tcp; oss, bucket and wildcard share one tcp.
        assert_eq!(plan.jobs.len(), 6, "{:#?}", plan.jobs);
        let oss: IpAddr = "100.118.28.43".parse().expect("addr");
        let shared: Vec<&Vec<usize>> = plan
            .by_target
            .iter()
            .filter(|((_, addr), _)| *addr == oss)
            .map(|(_, jobs)| jobs)
            .collect();
        assert_eq!(shared.len(), 3);
        assert!(shared.windows(2).all(|w| w[0] == w[1]));
        // Budget: 4 cheap probes at 1/s and 2 HTTPS at 1/30 s.
        assert!((plan.runs_per_second() - (4.0 + 2.0 / 30.0)).abs() < 1e-9);
    }

    #[test]
    fn a_probe_coming_back_runs_at_the_suspect_interval_until_rise_passes() {
        let spec = ProbeSpec {
            kind: ProbeKind::Tcp { port: 443 },
            interval: Duration::from_secs(1),
            suspect_interval: Duration::from_millis(500),
            timeout: Duration::from_millis(500),
            jitter: 0.0,
            rise: 2,
            fall: 2,
        };
        let mut pace = Pace::default();
        let fast = spec.suspect_interval;
        let slow = spec.interval;
        assert_eq!(pace.next(&spec, true), slow, "healthy from the start");
        assert_eq!(pace.next(&spec, false), fast);
        assert_eq!(pace.next(&spec, false), fast);
        assert_eq!(pace.next(&spec, true), fast, "one pass of rise = 2");
        assert_eq!(pace.next(&spec, true), slow, "risen");
        assert_eq!(pace.next(&spec, true), slow);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(1), 0.1);
            assert!(wait >= Duration::from_millis(900) && wait <= Duration::from_millis(1100));
        }
    }
}
