//! A real Alertmanager (`prometheus-alertmanager`, Debian's package) for the tests: on a
//! loopback port of this namespace or of a test's network namespace, clustering off, its
//! data in a temp dir; killed and removed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::netns::{run_in_ns, spawn_in};
use super::{free_port, http_get, wait_for, Process};

/// A route to a receiver that sends nothing anywhere.
pub const NULL_ROUTE: &str = "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n";

pub struct Alertmanager {
    process: Process,
    pub addr: SocketAddr,
    ns: Option<String>,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// On this namespace's loopback, with [`NULL_ROUTE`].
    pub fn start() -> Alertmanager {
        Alertmanager::start_with(None, NULL_ROUTE)
    }

    /// With `config` (alertmanager.yml), inside network namespace `ns` when given.
    pub fn start_with(ns: Option<&str>, config: &str) -> Alertmanager {
        let binary = find_binary("prometheus-alertmanager").expect(
            "prometheus-alertmanager is not installed: run `sudo tests/run.sh`, which installs \
             it (apt-get install prometheus-alertmanager)",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("alertmanager.yml");
        std::fs::write(&path, config).expect("write alertmanager.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", path.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=");
        let process = match ns {
            Some(ns) => spawn_in(ns, "alertmanager", &command),
            None => Process::spawn("alertmanager", &mut command),
        };
        let mut alertmanager = Alertmanager {
            process,
            addr,
            ns: ns.map(str::to_owned),
            _dir: dir,
        };
        alertmanager.wait_ready();
        alertmanager
    }

    fn wait_ready(&mut self) {
        wait_for("Alertmanager ready", || {
            assert!(
                self.process.is_running(),
                "alertmanager exited:\n{}",
                self.process.lines().join("\n")
            );
            self.get("/-/ready").filter(|(status, _)| *status == 200)
        });
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        match &self.ns {
            Some(ns) => run_in_ns(ns, || http_get(self.addr, path)),
            None => http_get(self.addr, path),
        }
    }

    /// `GET /api/v2/alerts`: the alerts it lists.
    pub fn alerts(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v2/alerts").unwrap_or_else(|| {
            panic!(
                "alertmanager did not answer; log:\n{}",
                self.process.lines().join("\n")
            )
        });
        assert_eq!(status, 200, "{body}");
        match serde_json::from_str(&body) {
            Ok(Value::Array(alerts)) => alerts,
            other => panic!("unexpected alert list {other:?}"),
        }
    }
}

/// `name` on `PATH` or in the usual system directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(Into::into))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
