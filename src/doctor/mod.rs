//! `pathdns doctor`: the documents' verification steps, walked from this host for every
//! owned name and target, without the daemon.
//!
//! Owns: the checks and their verdicts with remedies, as [`Check`] values in print order:
//!
//! 1. resolve: what the agent at the configured listen address answers for each name (one
//!    query per name to that address and nowhere else), and whether `/etc/hosts` overrides
//!    it; whether resolv.conf points at pathdns at all;
//! 2. route: the interface and source address the kernel picks for each target, against
//!    the configured `interface`;
//! 3. connect: TCP 443 (or a custom name's probe ports);
//! 4. the registry's `GET /v2/`: 401 with a `Bearer realm`, and whether the realm's host is
//!    an owned name;
//! 5. dockerauth and OSS: a TLS handshake with SNI = the name (`ca_file` honoured);
//! 6. the 100.0.0.0/8 trap: [`Config::conflicts`];
//! 7. with `discover`: each discovery server answers each asked name, against the last
//!    good addresses ([`discovery::discovery_checks`]).
//!
//! Rooms: `resolve` (step 1 and the resolver line) and `hosts` (the `/etc/hosts` line),
//! `route`, `connect`, `registry` (steps 4 and 5), `target` (what the per-target checks
//! share, and step 6), `discovery` (step 7), `remedy` (every remedy text). The targets
//! checked are the agent's: the written ones and the last good discovered ones from the
//! state file. The query to the agent is built by
//! [`crate::dns_client`], the one place pathdns builds a query of its own.
//!
//! Every network step is bounded by [`Options::timeout`] and the targets are checked
//! concurrently, so a run takes about two timeouts however many targets there are.
//! Must not: print (the CLI does), or send anything to a host that is not a configured
//! target, the configured listen address or a configured discovery server.

mod connect;
pub mod discovery;
mod hosts;
mod registry;
mod remedy;
mod resolve;
mod route;
mod target;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, OwnedName, Role};
use crate::host::{self, hosts_file};
use crate::probe::{tls::TlsConfigs, ProbeContext, ProbeTarget};
use target::TargetPlan;

/// A check's verdict. Only [`Verdict::Fail`] makes `pathdns doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// The name column of host-wide checks.
pub const HOST: &str = "(host)";
/// The target column of checks about a name rather than one of its targets.
pub const NO_TARGET: &str = "-";

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    /// The owned name, or [`HOST`].
    pub name: String,
    /// The target address, or [`NO_TARGET`].
    pub target: String,
    /// `resolve`, `hosts`, `resolver`, `route`, `connect`, `https /v2/`, `tls`, `conflicts`.
    pub check: &'static str,
    pub detail: String,
    /// What to do about a failure (always set for [`Verdict::Fail`]).
    pub remedy: Option<String>,
}

impl Check {
    fn new(
        verdict: Verdict,
        name: &str,
        target: &str,
        check: &'static str,
        detail: String,
    ) -> Check {
        Check {
            verdict,
            name: name.to_owned(),
            target: target.to_owned(),
            check,
            detail,
            remedy: None,
        }
    }

    fn fail(
        name: &str,
        target: &str,
        check: &'static str,
        detail: String,
        remedy: String,
    ) -> Check {
        Check {
            remedy: Some(remedy),
            ..Check::new(Verdict::Fail, name, target, check, detail)
        }
    }
}

/// Where doctor looks and how long it waits.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bound on each network step (a DNS query, a connect, a handshake, a request).
    pub timeout: Duration,
    /// The hosts file glibc reads before DNS.
    pub hosts_file: PathBuf,
    /// The resolver configuration that says whom this host asks.
    pub resolv_conf: PathBuf,
    /// The agent's last good discovered addresses (`discover`).
    pub state_file: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(2),
            hosts_file: PathBuf::from("/etc/hosts"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            state_file: crate::discover::state::default_path(),
        }
    }
}

/// Runs every check; the result is in print order: host-wide checks, then per name its
/// own checks followed by those of each of its targets.
pub async fn run(config: &Config, options: &Options) -> Vec<Check> {
    let (learned, state_checks) = last_good(config, options);
    let mut report = run_on(&crate::discover::overlay(config, &learned), options).await;
    report.extend(state_checks);
    report.extend(discovery::discovery_checks(config, &learned, options.timeout).await);
    report
}

/// The agent's last good discovered addresses, when the config discovers; a state file
/// that cannot be used is a WARN (the agent warns and ignores it too).
fn last_good(config: &Config, options: &Options) -> (crate::discover::LearnedMap, Vec<Check>) {
    if crate::discover::asked_names(config).is_empty() {
        return Default::default();
    }
    match crate::discover::state::load(&options.state_file) {
        Ok(learned) => (learned, Vec::new()),
        Err(err) => {
            let check = Check::new(Verdict::Warn, HOST, NO_TARGET, "discover", err.to_string());
            (Default::default(), vec![check])
        }
    }
}

/// Steps 1 to 6 on the agent's effective config.
async fn run_on(config: &Config, options: &Options) -> Vec<Check> {
    let context = Arc::new(ProbeContext {
        tls: TlsConfigs::default(),
        pinger: None,
    });
    let owned: Arc<Vec<String>> = Arc::new(config.names.iter().map(OwnedName::display).collect());
    let interfaces = Arc::new(host::interfaces());
    let routes = Arc::new(host::routes());
    let findings = Arc::new(config.conflicts());
    let hosts = hosts_file::read(&options.hosts_file).unwrap_or_default();
    let agent = resolve::agent_address(config);

    let mut report = resolve::resolver_check(config, &options.resolv_conf);
    let mut pending = Vec::new();
    for name in &config.names {
        let resolve = tokio::spawn(resolve::resolve_checks(
            name.clone(),
            agent,
            options.timeout,
            hosts::hosts_checks(name, &hosts, &options.hosts_file),
        ));
        let mut targets = Vec::new();
        for addr in name.addresses() {
            let plan = TargetPlan {
                name: name.clone(),
                addr,
                display: name.display(),
                target: addr.to_string(),
                probe_target: ProbeTarget {
                    addr,
                    server_name: name.name.clone(),
                },
                ca_file: target::ca_file_of(config, name),
                owned: owned.clone(),
                interfaces: interfaces.clone(),
                routes: routes.clone(),
                findings: findings.clone(),
                timeout: options.timeout,
            };
            targets.push(tokio::spawn(target_checks(plan, context.clone())));
        }
        pending.push((name.display(), resolve, targets));
    }
    for (display, resolve, targets) in pending {
        report.extend(joined(resolve.await, &display, NO_TARGET));
        for target in targets {
            report.extend(joined(target.await, &display, NO_TARGET));
        }
    }
    report.extend(host_read_checks());
    report
}

/// Steps 2 to 6 for one target, in order, on the target's own task: route, connect, the
/// application check (`GET /v2/` or a TLS handshake), the 100.x conflicts.
async fn target_checks(plan: TargetPlan, context: Arc<ProbeContext>) -> Vec<Check> {
    let (display, target) = (plan.display.as_str(), plan.target.as_str());
    let mut checks = Vec::new();

    let route = route::route_check(&plan);
    let route_failed = route.verdict == Verdict::Fail;
    checks.push(route);

    let mut connected = true;
    let ports = target::connect_ports(&plan.name);
    for port in &ports {
        let check = connect::connect_check(&plan, *port, !route_failed, &context).await;
        connected &= check.verdict != Verdict::Fail;
        checks.push(check);
    }

    let app = match plan.name.role {
        Role::Registry => Some("https /v2/"),
        Role::Auth | Role::Oss | Role::OssBucket => Some("tls"),
        Role::OssWildcard | Role::Custom => None,
    };
    if let Some(label) = app {
        if !connected {
            checks.push(Check::new(
                Verdict::Warn,
                display,
                target,
                label,
                "not tried: no TCP connection on 443".into(),
            ));
        } else if plan.name.role == Role::Registry {
            checks.push(registry::registry_check(&plan, &context).await);
        } else {
            checks.push(registry::tls_check(&plan, &context).await);
        }
    }

    checks.extend(target::conflict_checks(&plan, route_failed));
    checks
}

/// Host reads that failed during the checks: the verdicts above lack what they could not
/// read, and say so here.
fn host_read_checks() -> Vec<Check> {
    host::failures::current()
        .into_iter()
        .map(|failure| {
            Check::new(
                Verdict::Warn,
                HOST,
                NO_TARGET,
                "host-read",
                format!("reading {} failed: {}", failure.read, failure.cause),
            )
        })
        .collect()
}

/// A check task's lines, or one failure line if the task itself died.
fn joined(
    result: Result<Vec<Check>, tokio::task::JoinError>,
    name: &str,
    target: &str,
) -> Vec<Check> {
    result.unwrap_or_else(|err| {
        vec![Check::fail(
            name,
            target,
            "internal",
            format!("the check stopped: {err}"),
            "report this as a pathdns bug".into(),
        )]
    })
}

/// Whether a report has a failure: `pathdns doctor`'s exit status.
pub fn failed(report: &[Check]) -> bool {
    report.iter().any(|check| check.verdict == Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn realm_ownership_follows_wildcards() {
        let owned = vec![
            "dockerauth-vpc.cn-hangzhou.aliyuncs.com".to_owned(),
            "*.oss-cn-hangzhou-internal.aliyuncs.com".to_owned(),
        ];
        assert!(registry::owns(
            &owned,
            "dockerauth-vpc.cn-hangzhou.aliyuncs.com"
        ));
        assert!(registry::owns(
            &owned,
            "b.oss-cn-hangzhou-internal.aliyuncs.com"
        ));
        assert!(!registry::owns(
            &owned,
            "oss-cn-hangzhou-internal.aliyuncs.com"
        ));
        assert!(!registry::owns(
            &owned,
            "xoss-cn-hangzhou-internal.aliyuncs.com"
        ));
        assert!(!registry::owns(
            &owned,
            "dockerauth-vpc.cn-shanghai.aliyuncs.com"
        ));
    }

    #[test]
    fn preset_blocks() {
        assert_eq!(target::preset_block("registry[0].oss"), Some("registry[0]"));
        assert_eq!(
            target::preset_block("registry[12].registry"),
            Some("registry[12]")
        );
        assert_eq!(target::preset_block("name[0]"), None);
    }

    #[test]
    fn statuses_pad() {
        assert_eq!(format!("{:4}|", Verdict::Ok), "OK  |");
        assert_eq!(format!("{:4}|", Verdict::Fail), "FAIL|");
    }

    fn parse(text: &str) -> Config {
        Config::parse(text, "test").expect("valid config")
    }

    const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:53"]
[upstream]
servers = ["127.0.0.1:5399"]
[[registry]]
instance = "xxxxxx"
region = "cn-hangzhou"
registry = ["10.94.205.198"]
oss = ["100.118.28.43"]
probes = []
"#;

    #[test]
    fn hosts_lines_win_over_dns() {
        let config = parse(CONFIG);
        let registry = &config.names[0];
        let file = Path::new("/etc/hosts");
        let same = hosts_file::parse(
            "127.0.0.1 localhost\n10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n",
        );
        let checks = hosts::hosts_checks(registry, &same, file);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].verdict, Verdict::Warn);
        assert!(checks[0]
            .detail
            .contains("/etc/hosts line 2 gives 10.94.205.198"));
        let other = hosts_file::parse("10.1.1.1 XXXXXX-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n");
        let checks = hosts::hosts_checks(registry, &other, file);
        assert_eq!(checks[0].verdict, Verdict::Fail);
        assert!(checks[0].detail.contains("this config has 10.94.205.198"));
        assert_eq!(
            checks[0].remedy.as_deref(),
            Some("remove (or fix) /etc/hosts line 1")
        );
        assert!(hosts::hosts_checks(&config.names[1], &other, file).is_empty());
    }

    #[test]
    fn resolver_names_pathdns_or_not() {
        let config = parse(CONFIG);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("resolv.conf");
        let verdict = |text: &str| {
            std::fs::write(&path, text).expect("write");
            let checks = resolve::resolver_check(&config, &path);
            assert_eq!(checks.len(), 1);
            (checks[0].verdict, checks[0].detail.clone())
        };
        assert_eq!(
            verdict("nameserver 127.0.0.1\nnameserver 10.0.0.2\n").0,
            Verdict::Ok
        );
        let (status, detail) = verdict("nameserver 10.0.0.2\nnameserver 127.0.0.1\n");
        assert_eq!(status, Verdict::Warn);
        assert!(detail.contains("not first"), "{detail}");
        let (status, detail) = verdict("nameserver 127.0.0.53\n");
        assert_eq!(status, Verdict::Warn);
        assert!(detail.contains("systemd-resolved"), "{detail}");
        let (status, detail) = verdict("# empty\n");
        assert_eq!(status, Verdict::Warn);
        assert!(detail.contains("no nameserver, not pathdns"), "{detail}");
    }

    #[test]
    fn agent_address_replaces_unspecified() {
        let config = Config::parse(
            "[server]\nlisten = [\"0.0.0.0:53\"]\nallow = [\"0.0.0.0/0\"]\n[upstream]\nservers = [\"127.0.0.1:5399\"]\n",
            "test",
        )
        .expect("valid");
        assert_eq!(
            resolve::agent_address(&config),
            Some("127.0.0.1:53".parse().expect("addr"))
        );
    }
}
