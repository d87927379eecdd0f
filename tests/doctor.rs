//! `pathdns doctor` in a real network-namespace topology: the registry (HTTPS `/v2/` 401
//! with a realm), its backup, the auth service and OSS are the test's own hosts behind a
//! router, at the documents' example addresses, which exist only inside these namespaces.
//! Doctor runs in the client namespace next to a running agent; a healthy topology gives
//! exit 0 and OK lines; a cut link, a silent blackhole, a realm the config does not answer
//! and the 100.x trap each give a FAIL line with its remedy and exit 1.
//!
//! Runs as root (CI); skipped loudly otherwise.

use crate::common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::netns::{self, TargetSpec, Topology, AUTH, BACKUP, PRIMARY};
use common::READY_DEADLINE;

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com";
const AUTH_NAME: &str = "dockerauth-vpc.cn-hangzhou.aliyuncs.com";
const OSS_NAME: &str = "oss-cn-hangzhou-internal.aliyuncs.com";
const PRIMARY_ADDR: &str = "10.94.205.198";
const BACKUP_ADDR: &str = "10.95.0.10";
const AUTH_ADDR: &str = "100.103.7.181";
const OSS_ADDR: &str = "100.118.28.43";
/// The OSS endpoint of the documents' example, as one more target host.
const OSS: TargetSpec<'static> = ("oss", "100.118.28.43/24", "100.118.28.1/24");

/// Each network step of doctor waits at most 2 s and targets are checked concurrently: a
/// run with a silent blackhole stays well inside this.
const RUN_BOUND: Duration = Duration::from_secs(10);

/// The documents' three names plus a backup registry, the test CA, the private interface.
fn config(topology: &Topology, with_auth: bool) -> String {
    let auth = if with_auth {
        format!("auth = [\"{AUTH_ADDR}\"]")
    } else {
        String::new()
    };
    format!(
        r#"
[server]
listen = ["127.0.0.1:53"]

[upstream]
servers = ["127.0.0.1:5399"]

[[registry]]
instance = "xxxxxx"
region = "cn-hangzhou"
registry = ["{PRIMARY_ADDR}"]
{auth}
oss = ["{OSS_ADDR}"]
backup = {{ registry = ["{BACKUP_ADDR}"] }}
ca_file = "{ca}"
interface = "eth-priv"
"#,
        ca = topology.ca_cert.display()
    )
}

/// One printed check.
#[derive(Debug, Clone)]
struct Line {
    status: String,
    name: String,
    target: String,
    check: String,
    detail: String,
    remedy: Option<String>,
}

/// A doctor run: its exit code, parsed lines, raw stdout and how long it took.
struct Run {
    code: Option<i32>,
    lines: Vec<Line>,
    stdout: String,
    took: Duration,
}

impl Run {
    fn find(&self, name: &str, target: &str, check: &str) -> &Line {
        self.lines
            .iter()
            .find(|l| l.name == name && l.target == target && l.check == check)
            .unwrap_or_else(|| panic!("no `{check}` line for {name} {target}:\n{}", self.stdout))
    }

    fn failures(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.status == "FAIL").collect()
    }
}

fn parse(stdout: &str) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for text in stdout.lines() {
        if let Some(remedy) = text.strip_prefix("  remedy: ") {
            let last = lines
                .last_mut()
                .unwrap_or_else(|| panic!("a remedy before any check:\n{stdout}"));
            assert!(
                last.remedy.is_none(),
                "two remedies for one check:\n{stdout}"
            );
            last.remedy = Some(remedy.to_owned());
            continue;
        }
        let mut fields = text.split_whitespace();
        let Some(status) = fields.next() else {
            continue;
        };
        if !["OK", "WARN", "FAIL"].contains(&status) {
            assert!(
                text.starts_with("pathdns doctor: "),
                "unexpected line {text:?}:\n{stdout}"
            );
            continue;
        }
        let name = fields.next().expect("name column").to_owned();
        let target = fields.next().expect("target column").to_owned();
        let rest = fields.collect::<Vec<_>>().join(" ");
        let (check, detail) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("no `check: detail` in {text:?}"));
        lines.push(Line {
            status: status.to_owned(),
            name,
            target,
            check: check.to_owned(),
            detail: detail.to_owned(),
            remedy: None,
        });
    }
    for line in &lines {
        assert_eq!(
            line.status == "FAIL",
            line.remedy.is_some(),
            "every FAIL and only a FAIL has a remedy:\n{stdout}"
        );
    }
    lines
}

/// `pathdns doctor --config <config>` inside the client namespace.
fn doctor(topology: &Topology, config: &str) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("pathdns.toml");
    std::fs::write(&path, config).expect("write config");
    let started = Instant::now();
    let output: Output = netns::ip_netns_exec(
        &topology.client,
        &[
            env!("CARGO_BIN_EXE_pathdns"),
            "doctor",
            "--config",
            path.to_str().expect("utf-8 path"),
        ],
    );
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "--- pathdns doctor ({took:?}, exit {:?}):\n{stdout}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    Run {
        code: output.status.code(),
        lines: parse(&stdout),
        stdout,
        took,
    }
}

/// Every check of a healthy name and target passed.
fn assert_healthy(run: &Run) {
    assert_eq!(run.code, Some(0), "healthy topology:\n{}", run.stdout);
    assert!(run.failures().is_empty(), "{}", run.stdout);
    for name in [REGISTRY, AUTH_NAME, OSS_NAME] {
        let resolve = run.find(name, "-", "resolve");
        assert_eq!(resolve.status, "OK", "{resolve:?}");
        assert!(
            resolve.detail.contains("pathdns at 127.0.0.1:53 answers"),
            "{resolve:?}"
        );
    }
    for (name, addr) in [
        (REGISTRY, PRIMARY_ADDR),
        (REGISTRY, BACKUP_ADDR),
        (AUTH_NAME, AUTH_ADDR),
        (OSS_NAME, OSS_ADDR),
    ] {
        for check in ["route", "connect", "conflicts"] {
            let line = run.find(name, addr, check);
            assert_eq!(line.status, "OK", "{line:?}");
        }
        let route = run.find(name, addr, "route");
        assert!(
            route.detail.contains("leaves via eth-priv from 10.0.1.2"),
            "{route:?}"
        );
    }
    for addr in [PRIMARY_ADDR, BACKUP_ADDR] {
        let v2 = run.find(REGISTRY, addr, "https /v2/");
        assert_eq!(v2.status, "OK", "{v2:?}");
        assert!(
            v2.detail
                .contains(&format!("401, realm {AUTH_NAME} (an owned name)")),
            "{v2:?}"
        );
    }
    for (name, addr) in [(AUTH_NAME, AUTH_ADDR), (OSS_NAME, OSS_ADDR)] {
        let tls = run.find(name, addr, "tls");
        assert_eq!(tls.status, "OK", "{tls:?}");
        assert!(tls.detail.contains("verified (CA "), "{tls:?}");
    }
}

/// Runs doctor until it exits 0 (a restored link takes a moment to carry traffic).
fn wait_healthy(topology: &Topology, config: &str) -> Run {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let run = doctor(topology, config);
        if run.code == Some(0) || Instant::now() >= deadline {
            return run;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn doctor_passes_a_healthy_path_and_names_the_broken_target_with_its_remedy() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP, AUTH, OSS]) else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, AUTH_NAME);
    let _backup = topology.start_registry("backup", REGISTRY, AUTH_NAME);
    // The auth and OSS hosts only need to complete TLS for their own names.
    let _auth = topology.start_registry("auth", AUTH_NAME, AUTH_NAME);
    let _oss = topology.start_registry("oss", OSS_NAME, AUTH_NAME);
    let config = config(&topology, true);
    let _agent = topology.start_agent(&config);

    let healthy = wait_healthy(&topology, &config);
    assert_healthy(&healthy);

    // A cut link: the router answers "unreachable" at once.
    topology.link_down("auth");
    let cut = doctor(&topology, &config);
    assert_eq!(cut.code, Some(1), "{}", cut.stdout);
    let connect = cut.find(AUTH_NAME, AUTH_ADDR, "connect");
    assert_eq!(connect.status, "FAIL", "{connect:?}");
    assert!(connect.detail.contains("unreachable"), "{connect:?}");
    // This host's route is right; the router beyond it lost the target.
    let remedy = connect.remedy.as_deref().unwrap_or_default();
    assert!(
        remedy.contains("a router on the private path reports it unreachable")
            && remedy.contains("100.103.7.181/32"),
        "{connect:?}"
    );
    assert_eq!(cut.find(AUTH_NAME, AUTH_ADDR, "route").status, "OK");
    let tls = cut.find(AUTH_NAME, AUTH_ADDR, "tls");
    assert_eq!(tls.status, "WARN", "{tls:?}");
    assert!(
        cut.failures()
            .iter()
            .all(|line| line.name == AUTH_NAME && line.target == AUTH_ADDR),
        "only the auth target fails:\n{}",
        cut.stdout
    );
    // The agent keeps answering the last good address ("keep").
    assert_eq!(cut.find(AUTH_NAME, "-", "resolve").status, "OK");
    assert!(cut.took < RUN_BOUND, "took {:?}", cut.took);

    topology.link_up("auth");
    assert_healthy(&wait_healthy(&topology, &config));

    // A silent blackhole: the connect times out, within doctor's bound.
    topology.blackhole("oss");
    let dropped = doctor(&topology, &config);
    assert_eq!(dropped.code, Some(1), "{}", dropped.stdout);
    let connect = dropped.find(OSS_NAME, OSS_ADDR, "connect");
    assert_eq!(connect.status, "FAIL", "{connect:?}");
    assert!(
        connect.detail.contains("no answer within 2s"),
        "{connect:?}"
    );
    assert!(
        connect
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("dropped on the way") && r.contains("100.0.0.0/8")),
        "{connect:?}"
    );
    assert!(
        dropped
            .failures()
            .iter()
            .all(|line| line.name == OSS_NAME && line.target == OSS_ADDR),
        "only the OSS target fails:\n{}",
        dropped.stdout
    );
    assert!(dropped.took < RUN_BOUND, "took {:?}", dropped.took);
}

#[test]
fn doctor_reports_an_unanswered_realm_and_the_100_x_trap() {
    let Some(topology) = Topology::build_with(&[PRIMARY, AUTH, OSS]) else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, AUTH_NAME);
    let _auth = topology.start_registry("auth", AUTH_NAME, AUTH_NAME);
    let _oss = topology.start_registry("oss", OSS_NAME, AUTH_NAME);
    let full = config(&topology, true).replace("backup = { registry = [\"10.95.0.10\"] }", "");
    assert!(!full.contains("backup"), "{full}");

    // Healthy, without an agent: nothing answers at the listen address, a warning only.
    let run = wait_healthy(&topology, &full);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let resolve = run.find(REGISTRY, "-", "resolve");
    assert_eq!(resolve.status, "WARN", "{resolve:?}");
    assert!(
        resolve.detail.contains("not resolving through pathdns"),
        "{resolve:?}"
    );

    // The registry names dockerauth-vpc... as its realm, and the config leaves it out.
    let without_auth =
        config(&topology, false).replace("backup = { registry = [\"10.95.0.10\"] }", "");
    let run = doctor(&topology, &without_auth);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let v2 = run.find(REGISTRY, PRIMARY_ADDR, "https /v2/");
    assert_eq!(v2.status, "FAIL", "{v2:?}");
    assert!(v2.detail.contains(&format!("realm {AUTH_NAME}")), "{v2:?}");
    assert!(
        v2.remedy.as_deref().is_some_and(
            |r| r.contains("add the auth name, or let the instance take over the auth domain")
        ),
        "{v2:?}"
    );
    assert_eq!(run.failures().len(), 1, "{}", run.stdout);

    // The 100.x trap: the IDC's own LAN holds the auth address.
    for args in [
        &[
            "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
        ][..],
        &["ip", "addr", "add", "100.103.7.50/24", "dev", "lan0"],
        &["ip", "link", "set", "lan1", "up"],
        &["ip", "link", "set", "lan0", "up"],
    ] {
        let out = netns::ip_netns_exec(&topology.client, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let run = doctor(&topology, &full);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let conflict = run.find(AUTH_NAME, AUTH_ADDR, "conflicts");
    assert_eq!(conflict.status, "FAIL", "{conflict:?}");
    assert!(
        conflict.detail.contains("100.103.7.0/24 on lan0"),
        "{conflict:?}"
    );
    assert!(
        conflict
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("take over the auth domain")),
        "{conflict:?}"
    );
    let route = run.find(AUTH_NAME, AUTH_ADDR, "route");
    assert_eq!(route.status, "FAIL", "{route:?}");
    assert!(
        route.detail.contains("leaves via lan0")
            && route
                .detail
                .contains("not via the private interface eth-priv"),
        "{route:?}"
    );
    // The registry and OSS are not affected.
    assert!(
        run.failures().iter().all(|line| line.name == AUTH_NAME),
        "{}",
        run.stdout
    );
    assert!(run.took < RUN_BOUND, "took {:?}", run.took);
}
