//! A private Docker daemon inside a test's network namespace, a busybox image for it, and
//! a local registry (Debian's docker-registry, the CNCF distribution) in a target
//! namespace: the container host of issue 16, built from the real programs.
//!
//! [`Dockerd::start`] runs Debian's dockerd (20.10) as
//!
//! ```text
//! nsenter --net=/var/run/netns/NS  unshare --mount --propagation private --pid --fork
//!     --mount-proc --kill-child  docker-init --  sh -c 'mount --bind ...; exec dockerd ...'
//! ```
//!
//! so only the network namespace, a private mount namespace and a pid namespace change
//! (`ip netns exec` remounts /sys, and dockerd then fails with "Devices cgroup isn't
//! mounted"). In the private mount namespace the test's own resolv.conf is bind-mounted
//! over /etc/resolv.conf (dockerd resolves registry names with it and copies it into
//! containers) and a test directory over /etc/docker (its `certs.d`); the host's own files
//! are never touched. Everything else is the daemon's own: `--data-root`, `--exec-root`,
//! the socket, `--cgroup-parent`, all under a temporary directory or named per run.
//! iptables stays on, as is docker's default: its rules only touch the test's namespace.
//!
//! Cleanup, also while a test panics: dropping the [`Dockerd`] kills `unshare`, whose
//! `--kill-child` kills the pid namespace's init, and with it dockerd, containerd, the
//! shims and every container; the private mounts go with the mount namespace; then the
//! run's cgroups are removed and the temporary directory deleted.

#![forbid(unsafe_code)]

use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::netns::{spawn_in, TargetHost};
use super::{which, Process, READY_DEADLINE};

/// How long the daemon may take to answer `docker info` (vfs, two cores, other tests).
pub const DOCKERD_DEADLINE: Duration = Duration::from_secs(60);

/// How long one docker command (a pull, a run) may take before it is killed.
pub const DOCKER_COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// busybox applets linked into the test image.
const APPLETS: &[&str] = &["sh", "cat", "echo", "nslookup", "grep", "true"];

/// A private dockerd; see the module docs.
pub struct Dockerd {
    /// `unshare`, the parent of the pid namespace's init. `None` once dropped.
    process: Option<Process>,
    /// The pid namespace's init (docker-init) and its start time.
    init: (u32, String),
    /// The daemon's API socket.
    pub socket: PathBuf,
    /// Bind-mounted over /etc/docker inside the daemon's mount namespace.
    pub etc_docker: PathBuf,
    cgroup_parent: String,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts dockerd inside network namespace `ns`, seeing `resolv_conf` as its
    /// /etc/resolv.conf, and returns once `docker info` answers. The file is bound by inode:
    /// write it before (a file replaced by rename later is not seen).
    pub fn start(ns: &str, resolv_conf: &Path) -> Dockerd {
        let dir = tempfile::tempdir().expect("temp dir for dockerd");
        let etc_docker = dir.path().join("etc-docker");
        std::fs::create_dir(&etc_docker).expect("create the daemon's /etc/docker");
        let cgroup_parent = format!("pathdns-test-{ns}");
        let socket = dir.path().join("docker.sock");
        let mut command = dockerd_command(ns, resolv_conf, &etc_docker, dir.path(), &cgroup_parent);
        let started = Instant::now();
        let mut process = Process::spawn("dockerd", &mut command);
        let init = init_of(&mut process);
        let mut dockerd = Dockerd {
            process: Some(process),
            init,
            socket,
            etc_docker,
            cgroup_parent,
            dir,
        };
        dockerd.wait_ready();
        eprintln!(
            "dockerd: ready in {:.1?} (namespace {ns}, {})",
            started.elapsed(),
            dockerd.dir.path().display()
        );
        dockerd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DOCKERD_DEADLINE;
        while !self
            .docker(&["info", "--format", "{{.ServerVersion}}"])
            .status
            .success()
        {
            let process = self.process.as_mut().expect("dockerd is running");
            assert!(
                process.is_running(),
                "dockerd exited before it answered; stderr:\n{}",
                process.lines().join("\n")
            );
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer `docker info` within {DOCKERD_DEADLINE:?}; stderr:\n{}",
                process.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker -H unix://<socket> args...`, its output collected (not checked), killed
    /// after [`DOCKER_COMMAND_DEADLINE`] (exit status 124). The CLI's own config directory
    /// is the test's too (nothing is written to ~/.docker).
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(tool("timeout"))
            .args([
                "--kill-after=5",
                &DOCKER_COMMAND_DEADLINE.as_secs().to_string(),
            ])
            .arg(tool("docker"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("run docker {args:?}: {err}"))
    }

    /// Like [`Dockerd::docker`], panicking with its output and the daemon's log unless it
    /// succeeds; returns its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        if !out.status.success() {
            panic!(
                "docker {} failed ({}):\nstdout:\n{}\nstderr:\n{}\ndockerd log (last 30 lines):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(30)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last `n` lines dockerd logged.
    pub fn log_tail(&self, n: usize) -> String {
        let lines = self
            .process
            .as_ref()
            .map(Process::lines)
            .unwrap_or_default();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Imports a one-layer image `tag` holding /bin/busybox (Debian's busybox-static) and
    /// the [`APPLETS`] as symlinks.
    pub fn import_busybox(&self, tag: &str) {
        let rootfs = self.dir.path().join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).expect("create the image's /bin");
        std::fs::copy(busybox(), bin.join("busybox")).expect("copy busybox into the image");
        for applet in APPLETS {
            symlink("busybox", bin.join(applet)).expect("link a busybox applet");
        }
        let tar = self.dir.path().join("rootfs.tar");
        let out = Command::new(tool("tar"))
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tar = tar.to_str().expect("temp path is UTF-8");
        self.docker_ok(&["import", tar, tag]);
    }

    /// Makes the daemon trust `ca_pem` for registry `name`: `/etc/docker/certs.d/NAME/ca.crt`
    /// as the daemon sees it (read per connection, so this works on a running daemon).
    pub fn trust_registry_ca(&self, name: &str, ca_pem: &Path) {
        let dir = self.etc_docker.join("certs.d").join(name);
        std::fs::create_dir_all(&dir).expect("create certs.d/NAME");
        std::fs::copy(ca_pem, dir.join("ca.crt")).expect("write certs.d/NAME/ca.crt");
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let started = Instant::now();
        // Killing unshare makes the kernel kill its child (--kill-child), the pid
        // namespace's init, and so every process of the namespace.
        drop(self.process.take());
        let (pid, start) = &self.init;
        let gone = wait_quietly(|| super::start_time(*pid).as_ref() != Some(start));
        if !gone {
            eprintln!("dockerd: the pid namespace's init (pid {pid}) is still there; killing it");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        remove_cgroups(&self.cgroup_parent);
        eprintln!(
            "dockerd: stopped and cleaned up in {:.1?}",
            started.elapsed()
        );
    }
}

/// The wrapped dockerd command line; see the module docs.
fn dockerd_command(
    ns: &str,
    resolv_conf: &Path,
    etc_docker: &Path,
    dir: &Path,
    cgroup_parent: &str,
) -> Command {
    assert!(
        Path::new("/etc/docker").is_dir(),
        "/etc/docker does not exist: it is the mount point of the test's own /etc/docker \
         (Debian's docker.io creates it; run `sudo tests/run.sh`, which installs it)"
    );
    let mut command = Command::new(tool("nsenter"));
    command
        .arg(format!("--net=/var/run/netns/{ns}"))
        .arg(tool("unshare"))
        .args(["--mount", "--propagation", "private", "--pid", "--fork"])
        .args(["--mount-proc", "--kill-child"])
        .arg(tool("docker-init"))
        .args(["--", "/bin/sh", "-c"])
        .arg(
            "set -e; mount --bind \"$1\" /etc/resolv.conf; mount --bind \"$2\" /etc/docker; \
             shift 2; exec \"$@\"",
        )
        .arg("sh")
        .arg(resolv_conf)
        .arg(etc_docker)
        .arg(tool("dockerd"))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .arg("--storage-driver=vfs")
        .arg(format!("--cgroup-parent=/{cgroup_parent}"));
    command
}

/// The pid of `unshare`'s child (the pid namespace's init) and its start time.
fn init_of(unshare: &mut Process) -> (u32, String) {
    let parent = unshare.pid();
    super::wait_for("unshare to fork the pid namespace's init", || {
        let child = children_of(parent).into_iter().next()?;
        Some((child, super::start_time(child)?))
    })
}

/// Processes whose parent is `parent` (from /proc/PID/stat).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let after_name = stat.rfind(')').map(|at| &stat[at + 1..]).unwrap_or("");
            after_name.split_whitespace().nth(1) == Some(parent.to_string().as_str())
        })
        .collect()
}

/// Removes the run's cgroups (`<hierarchy>/<parent>` and below, in every hierarchy),
/// waiting for their last tasks to go. Never panics: this runs while tests unwind.
fn remove_cgroups(parent: &str) {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(entries.filter_map(|entry| Some(entry.ok()?.path())));
    }
    for root in roots {
        let dir = root.join(parent);
        if dir.is_dir() && !wait_quietly(|| remove_cgroup_tree(&dir)) {
            eprintln!("dockerd: cannot remove cgroup {}", dir.display());
        }
    }
}

/// Removes a cgroup directory and its children, deepest first; `true` when it is gone.
fn remove_cgroup_tree(dir: &Path) -> bool {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok() || !dir.exists()
}

/// Polls `done` for up to [`READY_DEADLINE`] without panicking; whether it came true.
fn wait_quietly(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + READY_DEADLINE;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A unix socket file at `path`, as a running daemon leaves one (the listener is closed,
/// the file stays): what `pathdns resolver enable` looks for to tell a container host.
pub fn socket_file(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("socket path has a parent"))
        .expect("create the socket's directory");
    drop(UnixListener::bind(path).expect("bind a unix socket"));
}

/// Debian's docker-registry (distribution 2.8) inside `target`'s namespace, serving HTTPS
/// on the target's address, port 443, with `cert`/`key`; no auth; storage in a temporary
/// directory. Dropping it stops it and deletes the storage.
pub struct Registry {
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts it and returns once it logs that it listens.
    pub fn start(target: &TargetHost, cert: &Path, key: &Path) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    \
             rootdirectory: {storage}\nhttp:\n  addr: {addr}:443\n  tls:\n    certificate: {cert}\n    \
             key: {key}\n",
            storage = dir.path().join("storage").display(),
            addr = target.addr,
            cert = cert.display(),
            key = key.display(),
        );
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).expect("write the registry config");
        let mut command = Command::new(registry_binary());
        command.arg("serve").arg(&path);
        let mut process = spawn_in(&target.ns, "docker-registry", &command);
        process.wait_for_line("that it listens", |line| {
            line.contains("listening on").then_some(())
        });
        Registry { process, _dir: dir }
    }

    /// How many requests it logged from `client` (an address) for paths containing `path`.
    pub fn requests_from(&self, client: &str, path: &str) -> usize {
        let from = format!("{client}:");
        self.process
            .lines()
            .iter()
            .filter(|line| line.contains(&from) && line.contains(path))
            .count()
    }
}

fn registry_binary() -> PathBuf {
    which("docker-registry").unwrap_or_else(|| {
        panic!(
            "docker-registry is not installed: run `sudo tests/run.sh`, which installs it \
             (apt-get install docker-registry)"
        )
    })
}

fn busybox() -> PathBuf {
    which("busybox").unwrap_or_else(|| {
        panic!(
            "busybox is not installed: run `sudo tests/run.sh`, which installs it \
             (apt-get install busybox-static)"
        )
    })
}

fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: run `sudo tests/run.sh`, which installs it \
             (dockerd, docker and docker-init are Debian's docker.io)"
        )
    })
}
