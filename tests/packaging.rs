//! The packaging sources, checked fast (the package builds, lintian, and the install and
//! boot tests in a Debian root are slower steps of `tests/run.sh`, see packaging/README.md):
//!
//! - the default config is valid on a fresh host, owns no names, listens on 127.0.0.1:53,
//!   and its commented examples are valid once uncommented;
//! - the systemd unit has what the service needs, `systemd-analyze verify` has nothing to
//!   say about it, and `systemd-analyze security` rates it 2.0 or lower, the figure the unit
//!   and the README state;
//! - the man page generated from `--help` covers every command and has no groff warnings;
//! - every file the package metadata names exists, and the maintainer scripts parse.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(crate_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .current_dir(crate_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    eprintln!(
        "$ {program} {}\n{}{}(exit {:?})",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output.status.code()
    );
    output
}

/// Whether an external tool is installed; tests that need one say loudly when it is not.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED PART: {tool} is not installed (tests/run.sh installs it as root)");
    }
    found
}

/// The default config with its resolv.conf replaced by a scratch one, so that the test
/// does not depend on this machine's resolv.conf.
fn default_config_in(dir: &Path, text: &str) -> PathBuf {
    let resolv = dir.join("resolv.conf");
    fs::write(&resolv, "nameserver 192.0.2.53\n").expect("write resolv.conf");
    let line = "resolv_conf = \"/etc/resolv.conf\"";
    assert!(
        text.contains(line),
        "the default config no longer reads {line}"
    );
    let config = dir.join("pathdns.toml");
    let text = text.replace(
        line,
        &format!("resolv_conf = {:?}", resolv.display().to_string()),
    );
    fs::write(&config, text).expect("write config");
    config
}

#[test]
fn default_config_is_valid_and_only_forwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_in(dir.path(), &read("packaging/pathdns.toml"));
    let output = run(
        env!("CARGO_BIN_EXE_pathdns"),
        &["check", "--config", config.to_str().expect("utf-8")],
    );
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    // node_local = "auto": the node-local address too, on a host that runs containers.
    let containers = pathdns::host::containers::detect(std::path::Path::new("/"));
    let listen = if containers.is_empty() {
        "127.0.0.1:53"
    } else {
        "127.0.0.1:53, 169.254.20.53:53"
    };
    assert!(
        stdout.contains(&format!(
            "OK: 0 owned names; listen {listen}; forward to 192.0.2.53:53"
        )),
        "{stdout}"
    );
}

#[test]
fn default_config_examples_are_valid_when_uncommented() {
    // "# [[registry]]" and the "# key = value" lines under it become live, and so do the
    // [[name]], [control] and [log] examples.
    let text = read("packaging/pathdns.toml");
    let mut out = String::new();
    let mut live = false;
    for line in text.lines() {
        let bare = line.strip_prefix("# ");
        let starts = bare.is_some_and(|b| b.starts_with('[') && b.ends_with(']'));
        if starts {
            live = true;
        } else if !bare.is_some_and(|b| b.contains(" = ")) {
            live = false;
        }
        match bare {
            Some(bare) if live => out.push_str(bare),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    assert!(
        out.contains("\n[[registry]]\n") && out.contains("\n[[name]]\n"),
        "{out}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_in(dir.path(), &out);
    let output = run(
        env!("CARGO_BIN_EXE_pathdns"),
        &["check", "--config", config.to_str().expect("utf-8")],
    );
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("OK: 4 owned names"), "{stdout}");
}

#[test]
fn unit_has_what_the_service_needs() {
    let unit = read("packaging/pathdns.service");
    let settings: Vec<&str> = unit
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for expected in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=10s",
        "ExecStartPre=/usr/bin/pathdns check --config /etc/pathdns/pathdns.toml",
        "ExecStart=/usr/bin/pathdns run --config /etc/pathdns/pathdns.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(settings.contains(&expected), "the unit lacks {expected}");
    }
}

/// The unit with its program paths pointed at the binary under test, for the checks of
/// systemd-analyze that look at the programs.
fn unit_for_analysis(dir: &Path) -> PathBuf {
    let unit = read("packaging/pathdns.service")
        .replace("/usr/bin/pathdns", env!("CARGO_BIN_EXE_pathdns"));
    let path = dir.join("pathdns.service");
    fs::write(&path, unit).expect("write unit");
    path
}

#[test]
fn systemd_analyze_verify_has_nothing_to_say() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_analysis(dir.path());
    let output = run(
        "systemd-analyze",
        &["verify", "--man=no", unit.to_str().expect("utf-8")],
    );
    assert!(output.status.success());
    // verify reports unknown keys and bad values on stderr but still exits 0.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn systemd_analyze_security_is_ok_and_documented() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_analysis(dir.path());
    let output = run(
        "systemd-analyze",
        &[
            "security",
            "--offline=yes",
            "--no-pager",
            unit.to_str().expect("utf-8"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let figure = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for pathdns.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in {stdout}"));
    eprintln!("systemd-analyze security pathdns.service: {figure}");
    let value: f64 = figure.parse().expect("a number");
    assert!(value <= 2.0, "exposure {figure} is above 2.0");
    let claim = format!("rates this {figure} (\"OK\"");
    assert!(
        read("packaging/pathdns.service").contains(&claim),
        "the unit's comment does not state the measured {figure}"
    );
    assert!(
        read("README.md").contains(&format!("exposure level **{figure}**")),
        "the README does not state the measured {figure}"
    );
}

/// The unit as the packages install it, with `pathdns.service.d/abort-stalled.conf`
/// (CAP_NET_ADMIN for abort_stalled): its [Service] lines after the unit's own, which is
/// what systemd makes of a drop-in. Its exposure stays at 2.0 or lower, the unit's comment
/// states it, and both packages install the drop-in.
#[test]
fn the_abort_stalled_drop_in_keeps_the_exposure_ok_and_is_packaged() {
    let dest = "usr/lib/systemd/system/pathdns.service.d/abort-stalled.conf";
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains(&format!(
            "[\"packaging/abort-stalled.conf\", \"{dest}\", \"644\"]"
        )),
        "the .deb's assets lack the drop-in"
    );
    assert!(
        manifest.contains(&format!(
            "{{ source = \"packaging/abort-stalled.conf\", dest = \"/{dest}\", mode = \"644\" }}"
        )),
        "the .rpm's assets lack the drop-in"
    );
    let drop_in = read("packaging/abort-stalled.conf");
    for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        assert!(
            drop_in.contains(&format!("\n{key}=CAP_NET_BIND_SERVICE CAP_NET_ADMIN\n")),
            "{key} in the drop-in"
        );
    }
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_analysis(dir.path());
    let service = &drop_in[drop_in.find("[Service]").expect("a [Service] section")..];
    let installed = format!(
        "{}\n{service}",
        fs::read_to_string(&unit).expect("read unit")
    );
    fs::write(&unit, installed).expect("write unit");
    let output = run(
        "systemd-analyze",
        &[
            "security",
            "--offline=yes",
            "--no-pager",
            unit.to_str().expect("utf-8"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let figure = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for pathdns.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in {stdout}"));
    eprintln!("systemd-analyze security pathdns.service with abort-stalled.conf: {figure}");
    let value: f64 = figure.parse().expect("a number");
    assert!(value <= 2.0, "exposure {figure} is above 2.0");
    assert!(
        read("packaging/pathdns.service")
            .contains(&format!("{figure} with\n# the abort-stalled drop-in")),
        "the unit's comment does not state the measured {figure} with the drop-in"
    );
}

#[test]
fn man_page_covers_every_command() {
    let output = run(
        "bash",
        &["packaging/gen-man", env!("CARGO_BIN_EXE_pathdns")],
    );
    assert!(output.status.success());
    let page = String::from_utf8_lossy(&output.stdout).into_owned();
    let help = run(env!("CARGO_BIN_EXE_pathdns"), &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a command list")
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 8, "{commands:?}");
    for command in commands {
        assert!(
            page.contains(&format!(".SS \"pathdns {command}\"")),
            "the man page has no section for {command}"
        );
    }
    for sub in ["enable", "disable", "status"] {
        assert!(page.contains(&format!(".SS \"pathdns resolver {sub}\"")));
    }
    if !have("man") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pathdns.8");
    fs::write(&path, &page).expect("write");
    let output = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
        .arg(&path)
        .env("LC_ALL", "C.UTF-8")
        .env("MANWIDTH", "80")
        .output()
        .expect("run man");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "groff warnings"
    );
}

#[test]
fn package_metadata_names_existing_files() {
    let manifest = read("Cargo.toml");
    let mut checked = 0;
    for line in manifest.lines() {
        let line = line.trim();
        // ["SOURCE", "dest", "mode"] (deb) and { source = "SOURCE", ... } (rpm)
        let source = if let Some(rest) = line.strip_prefix("[\"") {
            rest.split('"').next()
        } else if let Some(rest) = line.strip_prefix("{ source = \"") {
            rest.split('"').next()
        } else if let Some((key, value)) = line.split_once(" = \"") {
            let script = key.ends_with("_script") || key == "maintainer-scripts";
            script.then(|| value.trim_end_matches('"'))
        } else {
            None
        };
        let Some(source) = source else { continue };
        // Built by `cargo build --release` and packaging/prepare.
        if source.starts_with("target/") || source.starts_with("packaging/build/") {
            continue;
        }
        let found = if let Some(dir) = source.strip_suffix("/*.toml") {
            fs::read_dir(crate_root().join(dir))
                .map(|d| d.count() > 0)
                .unwrap_or(false)
        } else {
            crate_root().join(source).exists()
        };
        assert!(found, "Cargo.toml names {source}, which does not exist");
        checked += 1;
    }
    assert!(
        checked >= 12,
        "only {checked} package sources found in Cargo.toml"
    );
}

#[test]
fn maintainer_scripts_parse() {
    use std::os::unix::fs::PermissionsExt;
    for script in ["postinst", "prerm", "postrm"] {
        let rel = format!("packaging/deb/{script}");
        let mode = fs::metadata(crate_root().join(&rel))
            .expect("metadata")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{rel} is not executable");
        let text = read(&rel);
        // cargo-deb puts the generated systemd code where the token is: once, on its own
        // line, never in a comment.
        assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{rel}");
        assert!(text.lines().any(|l| l == "#DEBHELPER#"), "{rel}");
        assert!(run("sh", &["-n", &rel]).status.success(), "{rel}");
    }
    for script in ["post", "preun", "postun"] {
        let rel = format!("packaging/rpm/{script}.sh");
        assert!(run("sh", &["-n", &rel]).status.success(), "{rel}");
    }
    for script in [
        "build-deb",
        "build-rpm",
        "prepare",
        "gen-man",
        "test-root",
        "check-packages",
        "install-test",
        "boot-test",
    ] {
        let rel = format!("packaging/{script}");
        assert!(run("bash", &["-n", &rel]).status.success(), "{rel}");
    }
}
