//! `pathdns resolver enable | status | disable` on scratch root directories (`--root`),
//! never on the machine's own `/etc`: the layouts operators have (a plain resolv.conf, the
//! systemd-resolved stub symlink, NetworkManager's and resolvconf's files, symlinks nobody
//! knows), each round trip restoring the whole tree exactly (paths, file types, bytes,
//! modes, owners, symlink targets), and each refusal leaving the tree untouched.
//!
//! Nothing here opens a socket: with `--root`, `enable` does not query pathdns and no
//! service is reloaded. The upstream addresses are documentation ranges, only written into
//! files.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pathdns::config::Config;

const EXIT_NOT_ENABLED: i32 = 3;
const EXIT_CHANGED: i32 = 1;

/// One entry of a tree: type, mode, owner, and bytes or symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        bytes: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
}

type Tree = BTreeMap<PathBuf, Node>;

fn snapshot(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, tree: &mut Tree) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let rel = path.strip_prefix(root).expect("inside root").to_path_buf();
            let (mode, uid, gid) = (meta.mode() & 0o7777, meta.uid(), meta.gid());
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("read_link");
                tree.insert(rel, Node::Symlink { target });
            } else if meta.is_dir() {
                tree.insert(rel, Node::Dir { mode, uid, gid });
                walk(root, &path, tree);
            } else {
                let bytes = fs::read(&path).expect("read");
                tree.insert(
                    rel,
                    Node::File {
                        mode,
                        uid,
                        gid,
                        bytes,
                    },
                );
            }
        }
    }
    let mut tree = Tree::new();
    walk(root, root, &mut tree);
    tree
}

/// Fails with the differing entries, readably.
fn assert_same(before: &Tree, after: &Tree, what: &str) {
    if before == after {
        return;
    }
    let mut diff = Vec::new();
    for (path, node) in before {
        match after.get(path) {
            None => diff.push(format!("gone: {}", path.display())),
            Some(other) if other != node => diff.push(format!(
                "changed: {}\n  before: {}\n  after:  {}",
                path.display(),
                show(node),
                show(other)
            )),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        diff.push(format!("new: {}", path.display()));
    }
    panic!("{what}: the tree differs:\n{}", diff.join("\n"));
}

fn show(node: &Node) -> String {
    match node {
        Node::File { mode, bytes, .. } => {
            format!("file {mode:o} {:?}", String::from_utf8_lossy(bytes))
        }
        other => format!("{other:?}"),
    }
}

/// A scratch root and a config file beside it (outside the root).
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).expect("mkdir etc");
        fs::create_dir_all(root.join("run")).expect("mkdir run");
        let config = dir.path().join("pathdns.toml");
        let scratch = Scratch {
            _dir: dir,
            root,
            config,
        };
        scratch.config_with("[upstream]\nservers = [\"192.0.2.53\"]\n");
        scratch
    }

    /// The standard owned names (a registry preset with a custom bucket, and a wildcard)
    /// on 127.0.0.1:53, with this `[upstream]` section.
    fn config_with(&self, upstream: &str) {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:53\"]\n\n{upstream}\n\
             [[registry]]\ninstance = \"myinst\"\nregion = \"cn-hangzhou\"\n\
             registry = [\"10.94.205.198\"]\nauth = [\"100.103.7.181\"]\n\
             oss = [\"100.118.28.43\"]\nbucket = \"mybucket\"\n\n\
             [[name]]\nname = \"*.mirror.internal.example\"\ntargets = [\"192.0.2.10\"]\n"
        );
        fs::write(&self.config, text).expect("write config");
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
    }

    fn link(&self, rel: &str, target: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        symlink(target, path).expect("symlink");
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).expect("read")
    }

    fn pathdns(&self, args: &[&str]) -> Output {
        let root = self.root.to_str().expect("utf-8 path");
        let config = self.config.to_str().expect("utf-8 path");
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--root", root]);
        if args.first() == Some(&"enable") {
            full.extend(["--config", config]);
        }
        let output = Command::new(env!("CARGO_BIN_EXE_pathdns"))
            .arg("resolver")
            .args(&full)
            .output()
            .expect("run pathdns");
        eprintln!(
            "$ pathdns resolver {}\n{}{}(exit {:?})",
            full.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            output.status.code()
        );
        output
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.pathdns(args);
        assert!(output.status.success(), "pathdns resolver {args:?} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command that must be refused: exit 1, a message with `expect`, and the tree
    /// exactly as it was.
    fn refused(&self, args: &[&str], expect: &str) {
        let before = snapshot(&self.root);
        let output = self.pathdns(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?} was not refused");
        assert!(
            stderr.contains("refused") && stderr.contains(expect),
            "{args:?}: the refusal does not mention {expect:?}: {stderr}"
        );
        assert!(stderr.contains("instead:"), "no advice in {stderr}");
        assert_same(&before, &snapshot(&self.root), "after a refusal");
    }

    fn status_code(&self) -> Option<i32> {
        self.pathdns(&["status"]).status.code()
    }

    /// enable (with `extra` flags), status, disable: the tree must come back exactly.
    fn round_trip(&self, extra: &[&str]) -> String {
        let before = snapshot(&self.root);
        assert_eq!(self.status_code(), Some(EXIT_NOT_ENABLED));
        let mut enable = vec!["enable"];
        enable.extend(extra);
        let said = self.ok(&enable);
        assert!(said.contains("pathdns is now the resolver"), "{said}");
        assert_ne!(before, snapshot(&self.root), "enable changed nothing");
        let status = self.pathdns(&["status"]);
        assert_eq!(status.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&status.stdout).contains("pathdns is the resolver"));
        // A second enable is a no-op.
        let enabled = snapshot(&self.root);
        assert!(self.ok(&enable).contains("already the resolver"));
        assert_same(&enabled, &snapshot(&self.root), "after a second enable");
        let resolv_conf = fs::read_to_string(self.root.join("etc/resolv.conf")).unwrap_or_default();
        self.ok(&["disable"]);
        assert_same(&before, &snapshot(&self.root), "after enable and disable");
        assert_eq!(self.status_code(), Some(EXIT_NOT_ENABLED));
        // And disable again does nothing, successfully.
        assert!(self.ok(&["disable"]).contains("not the resolver"));
        assert_same(&before, &snapshot(&self.root), "after a second disable");
        resolv_conf
    }
}

const PLAIN: &str = "# the resolvers of rack 12\n\
                     nameserver 192.0.2.53\n\
                     nameserver 198.51.100.53\n\
                     nameserver 203.0.113.53\n\
                     search corp.example\n\
                     options rotate edns0 timeout:5\n";

#[test]
fn plain_resolv_conf_round_trip() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    let path = s.root.join("etc/resolv.conf");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
    // "system" read from the scratch resolv.conf: after enable it must still give exactly
    // the previous resolvers, never pathdns itself.
    s.config_with(&format!(
        "[upstream]\nservers = [\"system\"]\nresolv_conf = {:?}\n",
        path.display().to_string()
    ));
    let upstreams_before = Config::load(&s.config).expect("config").upstream.servers;
    assert_eq!(upstreams_before.len(), 3);

    let before = snapshot(&s.root);
    s.ok(&["enable"]);
    let written = s.read("etc/resolv.conf");
    let lines: Vec<&str> = written.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "nameserver 127.0.0.1",
            "nameserver 192.0.2.53",
            "nameserver 198.51.100.53",
            "nameserver 203.0.113.53",
            "search corp.example",
            "options edns0 timeout:1 attempts:2",
        ],
        "{written}"
    );
    let meta = fs::symlink_metadata(&path).expect("metadata");
    assert!(meta.is_file());
    assert_eq!(
        meta.mode() & 0o777,
        0o644,
        "resolv.conf must be world-readable"
    );
    let upstreams_after = Config::load(&s.config).expect("config").upstream.servers;
    assert_eq!(upstreams_after, upstreams_before);
    assert!(upstreams_after
        .iter()
        .all(|a| a.ip().to_string() != "127.0.0.1"));

    let status = String::from_utf8_lossy(&s.pathdns(&["status"]).stdout).into_owned();
    assert!(status.contains("plain resolv.conf"), "{status}");
    assert!(status.contains("127.0.0.1, 192.0.2.53"), "{status}");

    s.ok(&["disable"]);
    assert_same(&before, &snapshot(&s.root), "after enable and disable");
    assert_eq!(
        fs::symlink_metadata(&path).expect("metadata").mode() & 0o777,
        0o640
    );
    // The whole cycle once more through the common helper (second enable/disable no-ops).
    s.round_trip(&[]);
}

#[test]
fn pathdns_own_address_is_not_kept_as_an_upstream() {
    let s = Scratch::new();
    s.write(
        "etc/resolv.conf",
        "nameserver 127.0.0.1\nnameserver 192.0.2.53\n",
    );
    let written = s.round_trip(&[]);
    assert_eq!(
        written
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect::<Vec<_>>(),
        ["nameserver 127.0.0.1", "nameserver 192.0.2.53"]
    );
}

/// The systemd-resolved layout of Debian and Ubuntu: resolv.conf a relative symlink to the
/// stub file, resolved.conf with every setting commented out.
fn resolved_layout(s: &Scratch) {
    s.link("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf");
    s.write(
        "run/systemd/resolve/stub-resolv.conf",
        "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
         # Do not edit.\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
    );
    s.write(
        "run/systemd/resolve/resolv.conf",
        "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n\
         nameserver 192.0.2.53\n",
    );
    s.write(
        "etc/systemd/resolved.conf",
        "[Resolve]\n#DNS=\n#FallbackDNS=\n#Domains=\n#DNSSEC=no\n",
    );
    s.config_with(&format!(
        "[upstream]\nservers = [\"system\"]\nresolv_conf = {:?}\n",
        s.root
            .join("run/systemd/resolve/resolv.conf")
            .display()
            .to_string()
    ));
}

#[test]
fn resolved_stub_round_trip_routes_only_the_owned_names() {
    let s = Scratch::new();
    resolved_layout(&s);
    let before = snapshot(&s.root);
    let said = s.ok(&["enable"]);
    assert!(said.contains("systemd-resolved split DNS"), "{said}");
    let drop_in = s.read("etc/systemd/resolved.conf.d/pathdns.conf");
    let settings: Vec<&str> = drop_in.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        settings,
        [
            "[Resolve]",
            "DNS=127.0.0.1",
            "Domains=~myinst-registry-vpc.cn-hangzhou.cr.aliyuncs.com \
             ~dockerauth-vpc.cn-hangzhou.aliyuncs.com \
             ~oss-cn-hangzhou-internal.aliyuncs.com ~mirror.internal.example",
        ],
        "{drop_in}"
    );
    // resolv.conf itself is left alone.
    assert_eq!(
        fs::read_link(s.root.join("etc/resolv.conf")).expect("still a symlink"),
        Path::new("../run/systemd/resolve/stub-resolv.conf")
    );
    assert_eq!(
        before.get(Path::new("etc/resolv.conf")),
        snapshot(&s.root).get(Path::new("etc/resolv.conf"))
    );
    s.ok(&["disable"]);
    assert_same(&before, &snapshot(&s.root), "after enable and disable");
    s.round_trip(&[]);
}

#[test]
fn resolved_stub_with_an_existing_drop_in_directory_keeps_it() {
    let s = Scratch::new();
    resolved_layout(&s);
    s.write(
        "etc/systemd/resolved.conf.d/local.conf",
        "[Resolve]\nDNSSEC=no\n",
    );
    s.round_trip(&[]);
}

#[test]
fn plain_mode_can_be_chosen_over_the_resolved_stub() {
    let s = Scratch::new();
    resolved_layout(&s);
    s.config_with("[upstream]\nservers = [\"192.0.2.53\"]\n");
    let written = s.round_trip(&["--mode", "plain"]);
    assert!(
        written.contains("nameserver 127.0.0.1\nnameserver 127.0.0.53\n"),
        "{written}"
    );
}

#[test]
fn resolved_refusals() {
    let s = Scratch::new();
    resolved_layout(&s);
    // pathdns forwarding to resolved's stub, with resolved routing to pathdns: a loop,
    // which not even --force allows.
    s.config_with(&format!(
        "[upstream]\nservers = [\"system\"]\nresolv_conf = {:?}\n",
        s.root.join("etc/resolv.conf").display().to_string()
    ));
    s.refused(&["enable"], "loop");
    s.refused(&["enable", "--force"], "/run/systemd/resolve/resolv.conf");
    s.config_with("[upstream]\nservers = [\"127.0.0.53\"]\n");
    s.refused(&["enable", "--force"], "loop");

    // Global DNS= servers elsewhere: the owned names might not reach pathdns.
    let s = Scratch::new();
    resolved_layout(&s);
    s.write(
        "etc/systemd/resolved.conf",
        "[Resolve]\nDNS=192.0.2.53 198.51.100.53\n",
    );
    s.refused(&["enable"], "global DNS=");
    s.round_trip(&["--force"]);
    // ... also from a drop-in, but not once a later drop-in resets the list.
    let s = Scratch::new();
    resolved_layout(&s);
    s.write(
        "run/systemd/resolved.conf.d/10-dhcp.conf",
        "[Resolve]\nDNS=192.0.2.53\n",
    );
    s.refused(&["enable"], "10-dhcp.conf");
    s.write(
        "etc/systemd/resolved.conf.d/20-none.conf",
        "[Resolve]\nDNS=\n",
    );
    s.round_trip(&[]);

    // No owned names: nothing to route.
    let s = Scratch::new();
    resolved_layout(&s);
    fs::write(
        &s.config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:53\"]\n[upstream]\nservers = [\"system\"]\nresolv_conf = {:?}\n",
            s.root.join("run/systemd/resolve/resolv.conf").display().to_string()
        ),
    )
    .expect("write config");
    s.refused(&["enable"], "owns no names");

    // A drop-in of that name that pathdns did not write.
    let s = Scratch::new();
    resolved_layout(&s);
    s.write("etc/systemd/resolved.conf.d/pathdns.conf", "[Resolve]\n");
    s.refused(&["enable", "--force"], "exists already");

    // --mode resolved over a plain file: programs would bypass resolved.
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    s.refused(&["enable", "--mode", "resolved"], "bypass");
}

#[test]
fn network_manager_file_is_refused_unless_forced() {
    let s = Scratch::new();
    s.write(
        "etc/resolv.conf",
        "# Generated by NetworkManager\nsearch corp.example\nnameserver 192.0.2.53\n",
    );
    s.refused(&["enable"], "NetworkManager");
    let written = s.round_trip(&["--force"]);
    assert!(written.contains("nameserver 127.0.0.1\nnameserver 192.0.2.53\n"));
}

#[test]
fn network_manager_symlink_is_refused_unless_forced() {
    let s = Scratch::new();
    s.write("run/NetworkManager/resolv.conf", "nameserver 192.0.2.53\n");
    s.link("etc/resolv.conf", "/run/NetworkManager/resolv.conf");
    s.refused(&["enable"], "NetworkManager");
    s.round_trip(&["--force"]);
}

#[test]
fn resolvconf_symlink_is_refused_unless_forced() {
    let s = Scratch::new();
    s.write(
        "run/resolvconf/resolv.conf",
        "# Dynamic resolv.conf(5) file for glibc resolver(3) generated by resolvconf(8)\n\
         #     DO NOT EDIT THIS FILE BY HAND -- YOUR CHANGES WILL BE OVERWRITTEN\n\
         nameserver 192.0.2.53\n",
    );
    s.link("etc/resolv.conf", "../run/resolvconf/resolv.conf");
    s.refused(&["enable"], "resolvconf");
    // Forced: the symlink becomes a file with the nameservers read through it, and comes
    // back as the same symlink.
    let written = s.round_trip(&["--force"]);
    assert!(
        written.contains("nameserver 127.0.0.1\nnameserver 192.0.2.53\n"),
        "{written}"
    );
}

#[test]
fn resolvconf_file_is_refused() {
    let s = Scratch::new();
    s.write(
        "etc/resolv.conf",
        "# Generated by resolvconf\nnameserver 192.0.2.53\n",
    );
    s.refused(&["enable"], "resolvconf");
}

#[test]
fn unknown_symlinks_and_generated_files_are_refused_unless_forced() {
    let s = Scratch::new();
    s.write("srv/dns/resolv.conf", "nameserver 192.0.2.53\n");
    s.link("etc/resolv.conf", "/srv/dns/resolv.conf");
    s.refused(&["enable"], "does not recognise");
    s.round_trip(&["--force"]);

    // resolved's upstream list: programs would bypass resolved, and resolved rewrites it.
    let s = Scratch::new();
    resolved_layout(&s);
    fs::remove_file(s.root.join("etc/resolv.conf")).expect("rm");
    s.link("etc/resolv.conf", "../run/systemd/resolve/resolv.conf");
    s.refused(&["enable"], "upstream list");

    let s = Scratch::new();
    s.write(
        "etc/resolv.conf",
        "# Automatically generated by netconfig, do not edit\nnameserver 192.0.2.53\n",
    );
    s.refused(&["enable"], "another program");
    s.round_trip(&["--force"]);
}

#[test]
fn no_upstream_is_refused_even_when_forced() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", "nameserver 127.0.0.1\noptions edns0\n");
    s.refused(&["enable", "--force"], "besides pathdns");
    let s = Scratch::new();
    s.write("etc/resolv.conf", "search corp.example\n");
    s.refused(&["enable", "--force"], "no nameserver");
    // No resolv.conf at all.
    let s = Scratch::new();
    s.refused(&["enable", "--force"], "no nameserver");
}

#[test]
fn a_config_without_port_53_is_refused() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    fs::write(
        &s.config,
        "[server]\nlisten = [\"127.0.0.1:1053\"]\n[upstream]\nservers = [\"192.0.2.53\"]\n",
    )
    .expect("write config");
    s.refused(&["enable", "--force"], "port 53");
}

#[test]
fn a_changed_file_is_not_overwritten_without_force() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    let before = snapshot(&s.root);
    s.ok(&["enable"]);
    let edited = format!("{}nameserver 192.0.2.99\n", s.read("etc/resolv.conf"));
    s.write("etc/resolv.conf", &edited);
    assert_eq!(s.status_code(), Some(EXIT_CHANGED));
    s.refused(&["disable"], "changed since");
    s.refused(&["enable"], "changed since");
    s.ok(&["disable", "--force"]);
    assert_same(&before, &snapshot(&s.root), "after disable --force");
}

#[test]
fn package_removal_restores_while_pathdns_is_still_named() {
    // Edited, but still naming pathdns: removal must put the original back, or the host
    // would ask a resolver that is gone.
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    let before = snapshot(&s.root);
    s.ok(&["enable"]);
    let edited = format!("{}options ndots:2\n", s.read("etc/resolv.conf"));
    s.write("etc/resolv.conf", &edited);
    s.ok(&["disable", "--package-removal"]);
    assert_same(&before, &snapshot(&s.root), "after removal");

    // Pointed elsewhere by the administrator since: their file stays; the saved copy goes.
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    let before = snapshot(&s.root);
    s.ok(&["enable"]);
    let theirs = "nameserver 192.0.2.77\n";
    s.write("etc/resolv.conf", theirs);
    let said = s.ok(&["disable", "--package-removal"]);
    assert!(said.contains("left as it is"), "{said}");
    assert_eq!(s.read("etc/resolv.conf"), theirs);
    let mut expected = before.clone();
    let after = snapshot(&s.root);
    if let Some(Node::File { bytes, .. }) = expected.get_mut(Path::new("etc/resolv.conf")) {
        *bytes = theirs.as_bytes().to_vec();
    }
    assert_same(
        &expected,
        &after,
        "after removal with the administrator's file",
    );
    assert_eq!(s.status_code(), Some(EXIT_NOT_ENABLED));

    // resolved: the drop-in always goes (it routes to a pathdns that is gone).
    let s = Scratch::new();
    resolved_layout(&s);
    let before = snapshot(&s.root);
    s.ok(&["enable"]);
    s.write(
        "etc/systemd/resolved.conf.d/pathdns.conf",
        "[Resolve]\nDNS=127.0.0.1\nDomains=~example\n",
    );
    s.ok(&["disable", "--package-removal"]);
    assert_same(&before, &snapshot(&s.root), "after removal (resolved)");
}

#[test]
fn an_interrupted_disable_is_finished_by_the_next() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    let before = snapshot(&s.root);
    s.ok(&["enable"]);
    // The original is back (say, by hand), but the saved state is still there.
    s.write("etc/resolv.conf", PLAIN);
    assert_eq!(s.status_code(), Some(EXIT_CHANGED));
    s.ok(&["disable"]);
    assert_same(&before, &snapshot(&s.root), "after the second disable");
}

#[test]
fn dhclient_is_named_as_a_risk() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    let output = s.pathdns(&["enable"]);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("dhclient"));
    s.ok(&["disable"]);
    s.write("var/lib/dhcp/dhclient.eth0.leases", "lease {}\n");
    let output = s.pathdns(&["enable"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warning: dhclient"), "{stderr}");
    s.ok(&["disable"]);
}

/// Issue 16: a container host (dockerd's socket under the root) with pathdns on loopback
/// only: refused, naming `server.node_local` and the command that sets it up, the tree
/// untouched (containers never see a loopback nameserver). With `node_local`, the node-local
/// address is written first and `status` says what containers get; `disable` restores.
#[test]
fn a_container_host_gets_the_node_local_address_or_a_refusal() {
    let s = Scratch::new();
    s.write("etc/resolv.conf", PLAIN);
    s.write("run/docker.sock", "");
    let before = snapshot(&s.root);
    s.refused(&["enable"], "server.node_local");
    s.refused(&["enable", "--force"], "pathdns node-local up");
    fs::write(
        &s.config,
        "[server]\nlisten = [\"127.0.0.1:53\"]\nnode_local = \"169.254.20.53\"\n\
         [upstream]\nservers = [\"192.0.2.53\"]\n",
    )
    .expect("write config");
    let said = s.ok(&["enable"]);
    assert!(
        said.contains(
            "container host (dockerd (/run/docker.sock)): containers and pods get 169.254.20.53"
        ),
        "{said}"
    );
    let written = s.read("etc/resolv.conf");
    let first = written.lines().find(|l| l.starts_with("nameserver"));
    assert_eq!(first, Some("nameserver 169.254.20.53"), "{written}");
    assert!(!written.contains("nameserver 127."), "{written}");
    let status = s.ok(&["status"]);
    assert!(
        status
            .contains("container host (dockerd (/run/docker.sock)): containers get 169.254.20.53"),
        "{status}"
    );
    s.ok(&["disable"]);
    assert_same(&before, &snapshot(&s.root), "after disable");
}
