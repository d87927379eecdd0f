//! Monitoring a fleet: the Prometheus rules (`packaging/prometheus/pathdns-rules.yml`) and
//! the Grafana dashboard (`packaging/grafana/pathdns.json`) against the real tools.
//!
//! - `promtool check rules` and `promtool test rules` (Debian's `prometheus` package);
//! - every `pathdns_*` metric the rules and the dashboard name is in a real agent's
//!   `/metrics` (a target that went down, so the per-target series exist), and a static
//!   name (`probes = []`) exports no `pathdns_target_up`;
//! - end to end (root): a real Prometheus scrapes two real agents (two "hosts": each in its
//!   own UTS namespace, so each has its own host name, in one [`Topology`]'s client
//!   namespace) and sends to a real Alertmanager that both agents also alert directly. One
//!   agent's primary is blackholed: the per-host rule reaches Alertmanager, inhibited by the
//!   agent's own alert (one page); then the other's: the fleet rule fires. Every dashboard
//!   expression returns data from that Prometheus at some point of the run.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::alertmanager::{find_binary, Alertmanager};
use common::netns::{run_in_ns, spawn_in, TargetSpec, Topology, BACKUP, PRIMARY};
use common::*;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/prometheus/pathdns-rules.yml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/prometheus/pathdns-rules.test.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/grafana/pathdns.json"
);

const NAME: &str = "reg.monitoring.test";
const STATIC: &str = "static.monitoring.test";
/// The second host's primary: its own address, so that its path is cut on its own.
const PRIMARY2: TargetSpec<'static> = ("primary2", "10.96.0.10/24", "10.96.0.1/24");
const PROBE_PORT: u16 = 8443;
/// How long the end-to-end waits give Prometheus (1 s scrapes and evaluations).
const DEADLINE: Duration = Duration::from_secs(90);

fn tool(name: &str, package: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: run `sudo tests/run.sh`, which installs it \
             (apt-get install {package})"
        )
    })
}

/// Runs promtool, failing with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let output = Command::new(tool("promtool", "prometheus"))
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let checked = promtool(&["check", "rules", RULES]);
    eprintln!("{checked}");
    assert!(checked.contains("SUCCESS"), "{checked}");
    let started = Instant::now();
    let tested = promtool(&["test", "rules", RULE_TESTS]);
    eprintln!("{tested}promtool test rules took {:?}", started.elapsed());
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every PromQL expression of the dashboard (`panels[].targets[].expr`, rows included).
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(DASHBOARD).expect("read the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["schemaVersion"], 38);
    let mut exprs = Vec::new();
    let mut stack: Vec<&Value> = vec![&dashboard];
    while let Some(node) = stack.pop() {
        let panels = node["panels"].as_array().into_iter().flatten();
        for panel in panels {
            stack.push(panel);
            let targets = panel["targets"].as_array().into_iter().flatten();
            exprs.extend(targets.filter_map(|t| t["expr"].as_str().map(str::to_owned)));
        }
    }
    assert!(
        exprs.len() >= 10,
        "too few dashboard expressions: {exprs:?}"
    );
    exprs
}

/// Identifiers in `text` (PromQL read loosely) that start with `prefix`.
fn identifiers(text: &str, prefix: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The sample names of a Prometheus text exposition.
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How many series each metric has, and the total.
fn series_counts(metrics: &str) -> (usize, Vec<(String, usize)>) {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    (counts.values().sum(), counts.into_iter().collect())
}

/// One probed name with a primary and a backup target (tcp probes on `port`) and one
/// static name; `extra` goes at the end.
fn agent_config(targets: (&str, &str), port: u16, static_target: &str, extra: &str) -> String {
    let (primary, backup) = targets;
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:9"]
timeout = "200ms"

[[name]]
name = "{NAME}"
targets = [{{ addr = "{primary}", priority = 1 }}, {{ addr = "{backup}", priority = 2 }}]
probes = [{{ kind = "tcp", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}]

[[name]]
name = "{STATIC}"
targets = ["{static_target}"]
probes = []
{extra}"#
    )
}

fn loopback_config(port: u16) -> String {
    agent_config(("127.0.0.61", "127.0.0.62"), port, "127.0.0.63", "")
}

/// `/metrics` of a real agent whose primary went down (a failover counted), after a query.
fn metrics_after_a_failover() -> String {
    let port = free_port();
    let primary = Port::open("127.0.0.61", port);
    let _backup = Port::open("127.0.0.62", port);
    let mut agent = Agent::start(&loopback_config(port));
    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    wait_for_metrics(control, "127.0.0.61\"} 1");
    drop(primary);
    ask_udp(agent.addr, &query(NAME, RecordType::A, true));
    wait_for_metrics(
        control,
        &format!("pathdns_failovers_total{{name=\"{NAME}\"}} 1"),
    )
}

fn wait_for_metrics(control: SocketAddr, line: &str) -> String {
    wait_for(line, || {
        http_get(control, "/metrics")
            .map(|(_, text)| text)
            .filter(|text| text.lines().any(|l| l.ends_with(line)))
    })
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_exported() {
    let metrics = metrics_after_a_failover();
    let have = exported(&metrics);
    let rules = std::fs::read_to_string(RULES).expect("read the rules");
    let dashboard = dashboard_exprs().join("\n");
    let used: BTreeSet<String> = identifiers(&rules, "pathdns_")
        .into_iter()
        .chain(identifiers(&dashboard, "pathdns_"))
        .collect();
    let missing: Vec<_> = used.iter().filter(|name| !have.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{metrics}"
    );
    eprintln!(
        "the rules and the dashboard use {} metrics, all exported: {used:?}",
        used.len()
    );
    for recorded in identifiers(&dashboard, "pathdns:")
        .into_iter()
        .chain(identifiers(&dashboard, "name:"))
    {
        assert!(
            rules.contains(&format!("record: {recorded}\n")),
            "{recorded} is not recorded"
        );
    }
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("pathdns_target_up") && l.contains(STATIC)),
        "a static name must have no pathdns_target_up:\n{metrics}"
    );
    let (total, per_metric) = series_counts(&metrics);
    eprintln!(
        "series on this agent (1 probed name x 2 targets x 1 tcp probe, 1 static name): {total}"
    );
    eprintln!(
        "  per 10,000 hosts: {}; per metric: {per_metric:?}",
        total * 10_000
    );
}

/// Polls `check` every 250 ms until it returns something; fails after [`DEADLINE`]. Prints
/// how long it took.
fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            eprintln!("{what}: after {:.1} s", started.elapsed().as_secs_f64());
            return found;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for {what} ({DEADLINE:?})"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One "host": pathdns in the client namespace, in its own UTS namespace named `host`
/// (the `instance` label of its direct alerts), probing `primary` then the backup.
struct HostAgent {
    host: String,
    dns: SocketAddr,
    control: SocketAddr,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl HostAgent {
    fn start(
        topology: &Topology,
        suffix: &str,
        primary: &str,
        alertmanager: SocketAddr,
    ) -> HostAgent {
        let host = format!("pdmon{}{suffix}", std::process::id());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pathdns.toml");
        std::fs::write(&path, host_config(primary, alertmanager)).expect("write config");
        let mut command = Command::new("unshare");
        command
            .args([
                "--uts",
                "--",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$1\" run --config \"$2\"",
            ])
            .arg(&host)
            .arg(env!("CARGO_BIN_EXE_pathdns"))
            .arg(&path)
            .env("PATHDNS_LOG", "info");
        let mut process = spawn_in(&topology.client, "pathdns", &command);
        let dns = process.wait_for_line("its listen address", listening_addr);
        let control = process.wait_for_line("its control address", control_addr);
        HostAgent {
            host,
            dns,
            control,
            _process: process,
            _dir: dir,
        }
    }
}

fn host_config(primary: &str, alertmanager: SocketAddr) -> String {
    let backup = BACKUP.1.split('/').next().expect("an address");
    let extra = format!(
        "\n[[alert]]\nkind = \"alertmanager\"\nurl = \"http://{alertmanager}/\"\n\n\
         [control]\nlisten = \"127.0.0.1:0\"\n"
    );
    agent_config((primary, backup), PROBE_PORT, "10.97.0.1", &extra)
}

/// The test's Alertmanager config: the inhibit rule that README's "Monitoring a fleet"
/// recommends (a direct pathdns alert mutes the Prometheus alert of the same alertname,
/// host, name and target).
const ALERTMANAGER_CONFIG: &str = r#"
route:
  receiver: "null"
  group_by: [alertname, instance, name]
receivers:
  - name: "null"
inhibit_rules:
  - source_matchers: ['service="pathdns"']
    target_matchers: ['source="prometheus"']
    equal: [alertname, instance, name, target]
"#;

/// The rules with every `for:` cut to 2 s (the test runs in seconds, not minutes); the
/// expressions and thresholds are the installed file's.
fn fast_rules() -> String {
    let rules = std::fs::read_to_string(RULES).expect("read the rules");
    rules
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 2s", &line[..line.len() - line.trim_start().len()]),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A real Prometheus in namespace `ns`, scraping the agents every second.
struct Prometheus {
    addr: SocketAddr,
    ns: String,
    process: Process,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(ns: &str, agents: &[&HostAgent], alertmanager: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("rules.yml"), fast_rules()).expect("write rules");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, prometheus_config(agents, alertmanager)).expect("write config");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(tool("prometheus", "prometheus"));
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"));
        let process = spawn_in(ns, "prometheus", &command);
        let mut prometheus = Prometheus {
            addr,
            ns: ns.to_owned(),
            process,
            _dir: dir,
        };
        poll("Prometheus ready", || {
            assert!(
                prometheus.process.is_running(),
                "prometheus exited:\n{}",
                prometheus.log()
            );
            prometheus
                .get("/-/ready")
                .filter(|(status, _)| *status == 200)
        });
        prometheus
    }

    fn log(&self) -> String {
        self.process.lines().join("\n")
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        run_in_ns(&self.ns, || http_get(self.addr, path))
    }

    fn api(&self, path: &str) -> Value {
        let (status, body) = self
            .get(path)
            .unwrap_or_else(|| panic!("prometheus did not answer {path}:\n{}", self.log()));
        assert_eq!(status, 200, "{path}: {body}");
        let value: Value = serde_json::from_str(&body).expect("prometheus answers JSON");
        value["data"].clone()
    }

    /// `/api/v1/query`: the result vector (empty when nothing matched).
    fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", percent_encode(expr)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// `/api/v1/alerts`: pending and firing alerts.
    fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn prometheus_config(agents: &[&HostAgent], alertmanager: SocketAddr) -> String {
    let targets: String = agents
        .iter()
        .map(|a| {
            format!(
                "      - targets: [\"{}\"]\n        labels: {{instance: \"{}\"}}\n",
                a.control, a.host
            )
        })
        .collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
         rule_files: [rules.yml]\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{alertmanager}\"]\n\
         scrape_configs:\n  - job_name: pathdns\n    static_configs:\n{targets}"
    )
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The dashboard's expressions not yet seen returning data, with its variables filled in
/// (`$instance`: all hosts; `$__rate_interval`: 10 s, ten scrapes).
struct Panels {
    pending: Vec<String>,
    total: usize,
}

impl Panels {
    fn new() -> Panels {
        let pending: Vec<String> = dashboard_exprs()
            .iter()
            .map(|e| {
                e.replace("$instance", ".+")
                    .replace("$__rate_interval", "10s")
            })
            .collect();
        Panels {
            total: pending.len(),
            pending,
        }
    }

    fn check(&mut self, prometheus: &Prometheus) {
        self.pending
            .retain(|expr| prometheus.query(expr).is_empty());
    }
}

/// One owned and one forwarded query to each agent (query rate, latency, cache, upstream
/// errors have something to show).
fn traffic(ns: &str, agents: &[&HostAgent]) {
    for agent in agents {
        run_in_ns(ns, || {
            ask_udp(agent.dns, &query(NAME, RecordType::A, true));
            ask_udp(
                agent.dns,
                &query("forwarded.monitoring.test", RecordType::A, true),
            );
        });
    }
}

fn labels_are(alert: &Value, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(key, value)| alert["labels"][*key] == *value)
}

/// The Alertmanager alerts for `alertname` on `host` and `target`.
fn am_alerts(am: &Alertmanager, want: &[(&str, &str)]) -> Vec<Value> {
    am.alerts()
        .into_iter()
        .filter(|a| labels_are(a, want))
        .collect()
}

/// The direct alert and the Prometheus alert of one target down on one host: one page.
fn assert_one_page(alerts: &[Value]) {
    let active: Vec<_> = alerts
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "one active alert, not {alerts:?}");
    assert_eq!(active[0]["labels"]["service"], "pathdns", "{alerts:?}");
    let muted = alerts
        .iter()
        .find(|a| a["labels"]["source"] == "prometheus")
        .expect("the Prometheus alert");
    assert_eq!(muted["status"]["state"], "suppressed", "{muted}");
    assert!(
        muted["status"]["inhibitedBy"]
            .as_array()
            .is_some_and(|by| !by.is_empty()),
        "{muted}"
    );
}

fn firing(prometheus: &Prometheus, alertname: &str) -> bool {
    prometheus
        .alerts()
        .iter()
        .any(|a| a["labels"]["alertname"] == alertname)
}

#[test]
fn prometheus_rules_page_once_per_host_and_for_the_fleet() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP, PRIMARY2]) else {
        return;
    };
    let started = Instant::now();
    let _listeners: Vec<Process> = ["primary", "backup", "primary2"]
        .iter()
        .map(|t| topology.start_tcp_listener(t, PROBE_PORT))
        .collect();
    let ns = topology.client.clone();
    let am = Alertmanager::start_with(Some(&ns), ALERTMANAGER_CONFIG);
    let first = HostAgent::start(
        &topology,
        "a",
        &topology.target("primary").addr.to_string(),
        am.addr,
    );
    let second = HostAgent::start(
        &topology,
        "b",
        &topology.target("primary2").addr.to_string(),
        am.addr,
    );
    let agents = [&first, &second];
    let prometheus = Prometheus::start(&ns, &agents, am.addr);
    let mut panels = Panels::new();
    let mut watch = |what: &str, condition: &mut dyn FnMut() -> bool| {
        poll(what, || {
            traffic(&ns, &agents);
            panels.check(&prometheus);
            condition().then_some(())
        })
    };
    watch("both hosts' targets up in Prometheus", &mut || {
        prometheus.query("pathdns_target_up == 1").len() == 4
    });

    topology.blackhole("primary");
    let primary = topology.target("primary").addr.to_string();
    let host_down = [
        ("alertname", "PathdnsTargetDown"),
        ("instance", first.host.as_str()),
        ("target", primary.as_str()),
    ];
    watch(
        "the direct and the Prometheus alert for host a in Alertmanager",
        &mut || am_alerts(&am, &host_down).len() == 2,
    );
    assert_one_page(&am_alerts(&am, &host_down));
    assert!(
        !firing(&prometheus, "PathdnsFleetNameOnBackup"),
        "half the fleet is not most of it"
    );

    topology.blackhole("primary2");
    let fleet = [("alertname", "PathdnsFleetNameOnBackup"), ("name", NAME)];
    watch("the fleet alert active in Alertmanager", &mut || {
        am_alerts(&am, &fleet)
            .iter()
            .any(|a| a["status"]["state"] == "active")
    });
    poll("every dashboard expression returned data", || {
        traffic(&ns, &agents);
        panels.check(&prometheus);
        panels.pending.is_empty().then_some(())
    });
    eprintln!("{} dashboard expressions all returned data", panels.total);
    let static_alerts = prometheus.query(&format!("ALERTS{{name=\"{STATIC}\"}}"));
    assert!(
        static_alerts.is_empty(),
        "a static name alerted: {static_alerts:?}"
    );
    eprintln!("end to end: {:.1} s", started.elapsed().as_secs_f64());
}
