//! Whether this host runs containers: dockerd, containerd, CRI-O or kubelet, found by the
//! files they leave (sockets, units, config files), and which resolv.conf kubelet hands to
//! pods and CoreDNS.
//!
//! Why files and not processes: the answer must hold before the runtimes start (at boot,
//! `resolver enable` in an image build) and under the unit's `ProcSubset=pid`, which hides
//! other processes. Every path is read under a root directory, so a test (or an image) can
//! hold a host of its own.
//!
//! Owns: the list of evidence and the kubelet's `resolvConf`. Must not: change anything,
//! or decide what pathdns does about it (the config's `node_local = "auto"` and the
//! resolver switch do).

use std::path::{Path, PathBuf};

/// One container runtime, and the file that shows it is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub runtime: Runtime,
    /// The path found, as on the host (without the root prefix).
    pub path: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Kubelet,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "dockerd",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "CRI-O",
            Runtime::Kubelet => "kubelet",
        }
    }
}

/// What shows each runtime: its socket, its unit, its config. The first found per runtime
/// is kept.
const EVIDENCE: &[(Runtime, &str)] = &[
    (Runtime::Docker, "/run/docker.sock"),
    (Runtime::Docker, "/var/run/docker.sock"),
    (Runtime::Docker, "/usr/lib/systemd/system/docker.service"),
    (Runtime::Docker, "/lib/systemd/system/docker.service"),
    (Runtime::Docker, "/etc/docker/daemon.json"),
    (Runtime::Containerd, "/run/containerd/containerd.sock"),
    (
        Runtime::Containerd,
        "/usr/lib/systemd/system/containerd.service",
    ),
    (
        Runtime::Containerd,
        "/lib/systemd/system/containerd.service",
    ),
    (Runtime::Containerd, "/etc/containerd/config.toml"),
    (Runtime::CriO, "/run/crio/crio.sock"),
    (Runtime::CriO, "/etc/crio/crio.conf"),
    (Runtime::Kubelet, "/var/lib/kubelet/config.yaml"),
    (Runtime::Kubelet, "/etc/kubernetes/kubelet.conf"),
    (Runtime::Kubelet, "/usr/lib/systemd/system/kubelet.service"),
    (Runtime::Kubelet, "/lib/systemd/system/kubelet.service"),
    (Runtime::Kubelet, "/etc/systemd/system/kubelet.service"),
];

/// The container runtimes of the host under `root`, one evidence each; empty when none.
pub fn detect(root: &Path) -> Vec<Evidence> {
    let mut found: Vec<Evidence> = Vec::new();
    for &(runtime, path) in EVIDENCE {
        if found.iter().any(|e| e.runtime == runtime) {
            continue;
        }
        // symlink_metadata: a socket, a file or a symlink (a masked unit) all count.
        if under(root, path).symlink_metadata().is_ok() {
            found.push(Evidence { runtime, path });
        }
    }
    found
}

/// The evidence as one line, e.g. `dockerd (/run/docker.sock), kubelet (...)`.
pub fn describe(evidence: &[Evidence]) -> String {
    let parts: Vec<String> = evidence
        .iter()
        .map(|e| format!("{} ({})", e.runtime.name(), e.path))
        .collect();
    parts.join(", ")
}

/// Where kubelet's config says it reads the resolv.conf it gives pods and CoreDNS
/// (`resolvConf:` in /var/lib/kubelet/config.yaml, or `--resolv-conf` in kubeadm's flags
/// file); `None` when neither says (kubelet's default is /etc/resolv.conf).
pub fn kubelet_resolv_conf(root: &Path) -> Option<PathBuf> {
    let config = std::fs::read_to_string(under(root, "/var/lib/kubelet/config.yaml"));
    if let Some(path) = config.ok().as_deref().and_then(yaml_resolv_conf) {
        return Some(path);
    }
    let flags = std::fs::read_to_string(under(root, "/var/lib/kubelet/kubeadm-flags.env"));
    flags.ok().as_deref().and_then(flag_resolv_conf)
}

/// `resolvConf: PATH` at the top level of a kubelet config (YAML; quotes allowed).
fn yaml_resolv_conf(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("resolvConf:")?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| PathBuf::from(value))
    })
}

/// `--resolv-conf=PATH` among kubelet's flags.
fn flag_resolv_conf(text: &str) -> Option<PathBuf> {
    text.split(|c: char| c.is_whitespace() || c == '"')
        .find_map(|word| word.strip_prefix("--resolv-conf="))
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_a_unit_or_a_config_file_shows_a_runtime() {
        let root = tempfile::tempdir().expect("temp dir");
        assert!(detect(root.path()).is_empty());
        let docker = root.path().join("run/docker.sock");
        std::fs::create_dir_all(docker.parent().expect("parent")).expect("mkdir");
        std::fs::write(&docker, "").expect("write");
        let kubelet = root.path().join("etc/kubernetes/kubelet.conf");
        std::fs::create_dir_all(kubelet.parent().expect("parent")).expect("mkdir");
        std::fs::write(&kubelet, "").expect("write");
        let found = detect(root.path());
        assert_eq!(
            describe(&found),
            "dockerd (/run/docker.sock), kubelet (/etc/kubernetes/kubelet.conf)"
        );
    }

    #[test]
    fn kubelets_resolv_conf_comes_from_its_config_or_its_flags() {
        let yaml = "kind: KubeletConfiguration\nresolvConf: \"/run/systemd/resolve/resolv.conf\"\n";
        assert_eq!(
            yaml_resolv_conf(yaml),
            Some(PathBuf::from("/run/systemd/resolve/resolv.conf"))
        );
        assert_eq!(yaml_resolv_conf("kind: KubeletConfiguration\n"), None);
        let flags = "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=x --resolv-conf=/etc/k8s-resolv.conf\"\n";
        assert_eq!(
            flag_resolv_conf(flags),
            Some(PathBuf::from("/etc/k8s-resolv.conf"))
        );
    }
}
