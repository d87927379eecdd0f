//! Monitoring a fleet: the Prometheus rules (`packaging/prometheus/pathdns-rules.yml`) and
//! the Grafana dashboard (`packaging/grafana/pathdns.json`) against the real tools.
//!
//! - `promtool check rules` and `promtool test rules` (Debian's `prometheus` package);
//! - every `pathdns_*` metric the rules and the dashboard name is in a real agent's
//!   `/metrics` (a target that went down, so the per-target series exist; a registry
//!   stand-in whose `/v2/` names a token realm no owned name answers; a watchdog), and a
//!   static name (`probes = []`) exports no `pathdns_target_up` nor answering group;
//! - end to end (root): a real Prometheus scrapes two real agents (two "hosts": each in its
//!   own UTS namespace, so each has its own host name, in one [`Topology`]'s client
//!   namespace) and sends to a real Alertmanager that both agents also alert directly. One
//!   agent's primary is blackholed: the per-host rule reaches Alertmanager, inhibited by the
//!   agent's own alert (one page), and `PathdnsFailedOver` fires from
//!   `pathdns_name_answering_group`; then the other's: the fleet rule fires. Every dashboard
//!   expression returns data from that Prometheus at some point of the run. Before the
//!   cut, one agent is killed and started again while Prometheus scrapes it: `up` goes to 0
//!   and back to 1, and no down or failover rule fires because of it.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::alertmanager::{find_binary, Alertmanager};
use common::netns::{
    run_in_ns, spawn_in, start_loopback_registry, TargetSpec, TestCa, Topology, BACKUP, PRIMARY,
};
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
/// An https-probed name (the loopback agent only) whose registry names [`FOREIGN_REALM`].
const REGISTRY: &str = "registry.monitoring.test";
const FOREIGN_REALM: &str = "auth.elsewhere.monitoring.test";
/// The agents' watchdog (no NOTIFY_SOCKET: the pings go nowhere, the self-queries and
/// their metrics are real).
const WATCHDOG_USEC: (&str, &str) = ("WATCHDOG_USEC", "2000000");
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

/// [`agent_config`] on loopback, and [`REGISTRY`] probed over https at 127.0.0.64:`https`.
fn loopback_config(port: u16, https: u16, ca: &TestCa) -> String {
    let registry = format!(
        "\n[[name]]\nname = \"{REGISTRY}\"\ntargets = [\"127.0.0.64\"]\n\
         probes = [{{ kind = \"https\", port = {https}, ca_file = \"{}\", interval = \"1s\", \
         suspect_interval = \"500ms\", timeout = \"900ms\" }}]\n",
        ca.cert.display()
    );
    agent_config(("127.0.0.61", "127.0.0.62"), port, "127.0.0.63", &registry)
}

/// `/metrics` of a real agent whose primary went down (a failover counted), after a query,
/// once its https probe found the foreign realm; and the SHA-256 (cut) of its config file.
fn metrics_after_a_failover() -> (String, String) {
    let port = free_port();
    let primary = Port::open("127.0.0.61", port);
    let _backup = Port::open("127.0.0.62", port);
    let ca = TestCa::new();
    let https = free_port();
    let _registry =
        start_loopback_registry(&ca, [127, 0, 0, 64].into(), https, REGISTRY, FOREIGN_REALM);
    let mut agent = Agent::start_with_env(&loopback_config(port, https, &ca), &[WATCHDOG_USEC]);
    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    wait_for_metrics(control, "127.0.0.61\"} 1");
    wait_for_metrics(
        control,
        &format!("pathdns_realm_unanswered{{name=\"{REGISTRY}\",realm=\"{FOREIGN_REALM}\"}} 1"),
    );
    drop(primary);
    ask_udp(agent.addr, &query(NAME, RecordType::A, true));
    wait_for_metrics(
        control,
        &format!("pathdns_name_answering_group{{name=\"{NAME}\"}} 1"),
    );
    wait_for("a watchdog self-query measured", || {
        let (_, text) = http_get(control, "/metrics")?;
        let seconds: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("pathdns_watchdog_self_query_seconds "))?
            .parse()
            .ok()?;
        (seconds > 0.0).then_some(())
    });
    // What an operator compares it with: `sha256sum` of the file, cut to 16 digits.
    let sum = Command::new("sha256sum")
        .arg(&agent.config_path)
        .output()
        .expect("run sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout);
    let hash = sum.get(..16).expect("a sha256sum line").to_owned();
    let metrics = wait_for_metrics(
        control,
        &format!("pathdns_failovers_total{{name=\"{NAME}\"}} 1"),
    );
    (metrics, hash)
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
    let (metrics, hash) = metrics_after_a_failover();
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
    for metric in ["pathdns_target_up", "pathdns_name_answering_group"] {
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with(metric) && l.contains(STATIC)),
            "a static name must have no {metric}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(&format!("pathdns_config_info{{hash=\"{hash}\"}} 1")),
        "the config's hash is the file's: {hash}\n{metrics}"
    );
    let (total, per_metric) = series_counts(&metrics);
    eprintln!(
        "series on this agent (1 name x 2 targets x 1 tcp probe, 1 name x 1 target x 1 https \
         probe with a foreign realm, 1 static name): {total}"
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
/// (the `instance` label of its direct alerts), probing `primary` then the backup. Its
/// control endpoint has a fixed port, so that it comes back where Prometheus scrapes.
struct HostAgent {
    host: String,
    dns: SocketAddr,
    control: SocketAddr,
    ns: String,
    process: Process,
    dir: tempfile::TempDir,
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
        // The client namespace is new: a port free here is free there.
        let control = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = host_config(primary, alertmanager, control);
        std::fs::write(dir.path().join("pathdns.toml"), config).expect("write config");
        let (process, dns) = HostAgent::spawn(&topology.client, &host, &dir);
        HostAgent {
            host,
            dns,
            control,
            ns: topology.client.clone(),
            process,
            dir,
        }
    }

    fn spawn(ns: &str, host: &str, dir: &tempfile::TempDir) -> (Process, SocketAddr) {
        let mut command = Command::new("unshare");
        command
            .args([
                "--uts",
                "--",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$1\" run --config \"$2\"",
            ])
            .arg(host)
            .arg(env!("CARGO_BIN_EXE_pathdns"))
            .arg(dir.path().join("pathdns.toml"))
            .env("PATHDNS_LOG", "info")
            .env(WATCHDOG_USEC.0, WATCHDOG_USEC.1);
        let mut process = spawn_in(ns, "pathdns", &command);
        let dns = process.wait_for_line("its listen address", listening_addr);
        (process, dns)
    }

    /// SIGKILL (what a crash or `systemctl kill` does), then, once `scraped_down` says the
    /// scraper saw it gone, the same config again.
    fn restart(&mut self, scraped_down: impl FnOnce()) {
        self.process.signal("KILL");
        wait_until("the killed agent exited", || !self.process.is_running());
        scraped_down();
        let (process, dns) = HostAgent::spawn(&self.ns, &self.host, &self.dir);
        self.process = process;
        self.dns = dns;
    }
}

fn host_config(primary: &str, alertmanager: SocketAddr, control: SocketAddr) -> String {
    let backup = BACKUP.1.split('/').next().expect("an address");
    let extra = format!(
        "\n[[alert]]\nkind = \"alertmanager\"\nurl = \"http://{alertmanager}/\"\n\n\
         [control]\nlisten = \"{control}\"\n"
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

/// The rules that a restart must not set off: a target, a name or the fleet down or on
/// backup. (`PathdnsScrapeMissing` and `PathdnsFleetScrapesMissing` are the ones that
/// should, after their installed 5 min; here every `for:` is 2 s, so they may.)
const DOWN_RULES: &str = "PathdnsTargetDown|PathdnsAllTargetsDown|PathdnsFailedOver\
                          |PathdnsPathCheckFailed|PathdnsProbeFlapping|PathdnsFleet.*OnBackup";

/// Bad input: Prometheus scraping a pathdns that is restarting. The agent is killed, seen
/// down by Prometheus (`up == 0`) and started again; once it has been scraped healthy for
/// 5 s (longer than every `for:` of the fast rules), no down or failover rule was pending
/// or firing at any point since the kill, and Alertmanager holds no such alert (the
/// agent's own direct alerts included).
fn restart_while_scraped(agent: &mut HostAgent, prometheus: &Prometheus, am: &Alertmanager) {
    let instance = agent.host.clone();
    let killed = Instant::now();
    agent.restart(|| {
        poll("Prometheus sees the killed agent down", || {
            let down = prometheus.query(&format!("up{{instance=\"{instance}\"}} == 0"));
            (!down.is_empty()).then_some(())
        });
    });
    poll(
        "the restarted agent scraped, its targets up, its primary answering",
        || {
            let targets = format!("pathdns_target_up{{instance=\"{instance}\"}} == 1");
            let group = format!("pathdns_name_answering_group{{instance=\"{instance}\"}} == 0");
            (prometheus.query(&targets).len() == 2 && prometheus.query(&group).len() == 1)
                .then_some(())
        },
    );
    poll("5 s of successful scrapes since the restart", || {
        let up = format!("min_over_time(up{{instance=\"{instance}\"}}[5s]) == 1");
        (!prometheus.query(&up).is_empty()).then_some(())
    });
    let since = killed.elapsed().as_secs() + 2;
    let alerts = prometheus.query(&format!(
        "count_over_time(ALERTS{{alertname=~\"{DOWN_RULES}\"}}[{since}s])"
    ));
    assert!(alerts.is_empty(), "the restart set off {alerts:?}");
    let paged: Vec<Value> = am
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["instance"] == instance.as_str())
        .filter(|a| {
            !a["labels"]["alertname"]
                .as_str()
                .is_some_and(|n| n.contains("Scrape"))
        })
        .collect();
    assert!(paged.is_empty(), "the restart paged: {paged:?}");
    eprintln!("restart: no down or failover alert, up again");
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
    let mut first = HostAgent::start(
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
    let prometheus = Prometheus::start(&ns, &[&first, &second], am.addr);
    poll("both hosts' targets up in Prometheus", || {
        (prometheus.query("pathdns_target_up == 1").len() == 4).then_some(())
    });
    restart_while_scraped(&mut first, &prometheus, &am);
    let agents = [&first, &second];
    let mut panels = Panels::new();
    let mut watch = |what: &str, condition: &mut dyn FnMut() -> bool| {
        poll(what, || {
            traffic(&ns, &agents);
            panels.check(&prometheus);
            condition().then_some(())
        })
    };

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
    let failed_over = [
        ("alertname", "PathdnsFailedOver"),
        ("instance", first.host.as_str()),
        ("name", NAME),
    ];
    watch(
        "PathdnsFailedOver, direct and from Prometheus, for host a in Alertmanager",
        &mut || am_alerts(&am, &failed_over).len() == 2,
    );
    assert_one_page(&am_alerts(&am, &failed_over));
    let rule = prometheus
        .alerts()
        .into_iter()
        .find(|a| labels_are(a, &failed_over))
        .expect("the Prometheus PathdnsFailedOver alert");
    let group = rule["value"].as_str().and_then(|v| v.parse::<f64>().ok());
    assert_eq!(group, Some(1.0), "the first backup group answers: {rule}");
    let gauge = prometheus.query(&format!(
        "pathdns_name_answering_group{{instance=\"{}\", name=\"{NAME}\"}} == 1",
        first.host
    ));
    assert_eq!(
        gauge.len(),
        1,
        "the alert's value is the gauge's: {gauge:?}"
    );
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
    // Bad input: a config with no probes. Over the whole run, pending included.
    let run = started.elapsed().as_secs() + 5;
    let static_alerts = prometheus.query(&format!(
        "count_over_time(ALERTS{{name=\"{STATIC}\"}}[{run}s])"
    ));
    assert!(
        static_alerts.is_empty(),
        "a static name alerted: {static_alerts:?}"
    );
    eprintln!("end to end: {:.1} s", started.elapsed().as_secs_f64());
}
