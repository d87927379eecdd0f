//! `pathdns check`: every example config under `config/` is valid and lists the names of
//! its scenario; every config under `tests/configs/broken/` is rejected with exit 78 and
//! the one-line `FILE:LINE:COL: field: message` error its `# expect:` line names; a config
//! path that is missing or a directory is an error naming the path, for `check` and `run`.
//!
//! Nothing here opens a socket: `check` only reads files (and, for `"system"` upstreams,
//! the host's resolv.conf). The example addresses are never contacted.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// sysexits EX_CONFIG: what `pathdns` exits with for an unusable configuration.
const EXIT_CONFIG: i32 = 78;

/// A command that should exit at once is killed and the test fails after this long.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// The crate root: commands run there, so config paths in messages are relative to it.
fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `pathdns ARGS` in the crate root and returns its output once it has exited,
/// failing the test if it is still running after [`EXIT_DEADLINE`] (for example because
/// it started serving instead of rejecting its config).
fn pathdns(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pathdns"))
        .args(args)
        .current_dir(crate_root())
        .env_remove("PATHDNS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start pathdns {args:?}: {err}"));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > EXIT_DEADLINE => {
                // Best effort: the panic below is the failure that matters.
                let _ = child.kill();
                let output = child.wait_with_output();
                panic!(
                    "pathdns {args:?} still running after {EXIT_DEADLINE:?} (killed); \
                     stderr so far: {:?}",
                    output.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => panic!("cannot wait for pathdns {args:?}: {err}"),
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("cannot collect the output of pathdns {args:?}: {err}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every regular file in `dir` (relative to the crate root), sorted, as relative paths.
fn files_in(dir: &str) -> Vec<String> {
    let entries = std::fs::read_dir(crate_root().join(dir))
        .unwrap_or_else(|err| panic!("cannot list {dir}: {err}"));
    let mut files: Vec<String> = entries
        .map(|entry| entry.unwrap_or_else(|err| panic!("cannot read an entry of {dir}: {err}")))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| format!("{dir}/{}", entry.file_name().to_string_lossy()))
        .collect();
    files.sort();
    files
}

/// One row of `pathdns check`'s name table: name, role, TTL, answer.
#[derive(Debug)]
struct Row {
    name: String,
    role: String,
    answer: String,
}

/// The name table of `pathdns check`'s stdout, after the `OK:` line and the header.
fn table_rows(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("NAME"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            let role = words.next().unwrap_or_default().to_owned();
            let _ttl = words.next();
            let answer = words.collect::<Vec<_>>().join(" ");
            Row { name, role, answer }
        })
        .collect()
}

/// The names each shipped example must list (with their role and a piece of the answer)
/// and the names it must not list. Examples not named here get the general checks only.
type Expectation = (
    &'static [(&'static str, &'static str, &'static str)],
    &'static [&'static str],
);

fn expected_tables() -> BTreeMap<&'static str, Expectation> {
    const REGISTRY: (&str, &str, &str) = (
        "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
        "registry",
        "[1] 10.94.205.198",
    );
    const AUTH: (&str, &str, &str) = (
        "dockerauth-vpc.cn-hangzhou.aliyuncs.com",
        "auth",
        "[1] 100.103.7.181",
    );
    const OSS: (&str, &str, &str) = (
        "oss-cn-hangzhou-internal.aliyuncs.com",
        "oss",
        "[1] 100.118.28.43",
    );
    let mut tables: BTreeMap<&str, Expectation> = BTreeMap::new();
    tables.insert("demo.toml", (&[REGISTRY, AUTH, OSS], &[]));
    tables.insert("basic.toml", (&[REGISTRY, AUTH, OSS], &[]));
    tables.insert(
        "auth-takeover.toml",
        (
            &[REGISTRY, OSS],
            &["dockerauth-vpc.cn-hangzhou.aliyuncs.com"],
        ),
    );
    tables.insert(
        "oss-privatelink.toml",
        (
            &[
                REGISTRY,
                AUTH,
                (
                    "oss-cn-hangzhou-internal.aliyuncs.com",
                    "oss",
                    "CNAME ep-xxxxxxxx.oss.cn-hangzhou.privatelink.aliyuncs.com",
                ),
            ],
            &[],
        ),
    );
    tables.insert(
        "multi-region-backup.toml",
        (
            &[
                (
                    "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
                    "registry",
                    "[1] 10.94.205.198 [2] 10.95.0.10",
                ),
                AUTH,
                OSS,
                (
                    "yyyyyy-registry-vpc.cn-shanghai.cr.aliyuncs.com",
                    "registry",
                    "[1]",
                ),
                ("dockerauth-vpc.cn-shanghai.aliyuncs.com", "auth", "[1]"),
                ("oss-cn-shanghai-internal.aliyuncs.com", "oss", "[1]"),
            ],
            &[],
        ),
    );
    tables.insert(
        "custom-bucket.toml",
        (
            &[
                REGISTRY,
                AUTH,
                OSS,
                (
                    "mybucket.oss-cn-hangzhou-internal.aliyuncs.com",
                    "oss-bucket",
                    "[1] 100.118.28.43",
                ),
                (
                    "*.oss-cn-hangzhou-internal.aliyuncs.com",
                    "oss-wildcard",
                    "[1] 100.118.28.43",
                ),
            ],
            &[],
        ),
    );
    tables.insert(
        "custom-names.toml",
        (
            &[
                ("artifacts.internal.example", "name", "[1] "),
                ("artifacts.internal.example", "name", "[2] "),
                (
                    "pkg.internal.example",
                    "name",
                    "CNAME artifacts.internal.example",
                ),
                ("*.mirror.internal.example", "name", "[1] "),
            ],
            &[],
        ),
    );
    tables
}

#[test]
fn every_example_config_passes_check_and_lists_its_names() {
    let examples: Vec<String> = files_in("config")
        .into_iter()
        .filter(|path| path.ends_with(".toml"))
        .collect();
    assert!(
        examples.len() >= 6,
        "expected at least 6 example configs in config/, found {examples:?}"
    );
    let expected = expected_tables();
    for path in &examples {
        let output = pathdns(&["check", "--config", path]);
        let stdout = text(&output.stdout);
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "pathdns check --config {path} failed; stderr: {stderr}"
        );
        let first = stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{path}: OK: ")),
            "{path}: the first line should be the OK summary, got {first:?}"
        );
        let rows = table_rows(&stdout);
        assert!(
            first.contains(&format!(" {} owned names;", rows.len())),
            "{path}: the summary {first:?} does not count the {} table rows:\n{stdout}",
            rows.len()
        );
        assert!(
            rows.iter().any(|row| row.name.ends_with(".aliyuncs.com")
                || row.name.ends_with(".example")
                || row.name.ends_with(".internal")),
            "{path}: no aliyuncs.com, .example or .internal name in the table:\n{stdout}"
        );
        let file_name = path.rsplit('/').next().unwrap_or(path.as_str());
        if let Some((present, absent)) = expected.get(file_name) {
            for (name, role, answer) in *present {
                assert!(
                    rows.iter().any(|row| row.name == *name
                        && row.role == *role
                        && row.answer.contains(answer)),
                    "{path}: expected {name} ({role}) answering {answer:?}; table:\n{stdout}"
                );
            }
            for name in *absent {
                assert!(
                    rows.iter().all(|row| row.name != *name),
                    "{path}: {name} should not be owned; table:\n{stdout}"
                );
            }
        }
    }
}

/// With `rebinding_protection = true`, `check` lists every exempt name or domain and where
/// it came from: `private_domains`, the resolv.conf search domains, the built-in domains,
/// owned names (a wildcard as every name below its parent) and CNAME targets. With the
/// default (off) it says the filter is off and lists nothing.
#[test]
fn check_lists_the_rebinding_exemptions_and_their_origins_when_the_filter_is_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "search corp.example\nnameserver 127.0.0.1\n").expect("write");
    let body = |setting: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:5353\"]\n[upstream]\nservers = [\"127.0.0.1:5300\"]\n\
             resolv_conf = {:?}\n{setting}private_domains = [\"idc.example\"]\n\
             [[name]]\nname = \"alias.example\"\ncname = \"ep.privatelink.example\"\n\
             [[name]]\nname = \"*.mirror.example\"\ntargets = [\"10.1.2.3\"]\n",
            resolv.display().to_string()
        )
    };
    let config = dir.path().join("on.toml");
    std::fs::write(&config, body("rebinding_protection = true\n")).expect("write");
    let output = pathdns(&["check", "--config", &config.display().to_string()]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    eprintln!("{stdout}");
    assert_eq!(
        table_rows(&stdout).len(),
        2,
        "the table ends before the list:\n{stdout}"
    );
    assert!(stdout.contains("rebinding protection: on"), "{stdout}");
    let exempt: Vec<Vec<&str>> = stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("EXEMPT "))
        .map(|rest| {
            rest.split("  ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect()
        })
        .collect();
    let search = format!("search domain in {}", resolv.display());
    let expected: Vec<Vec<&str>> = vec![
        vec!["idc.example and below", "upstream.private_domains[0]"],
        vec!["corp.example and below", &search],
        vec!["privatelink.aliyuncs.com and below", "built in"],
        vec!["localhost and below", "built in"],
        vec!["internal and below", "built in"],
        vec!["home.arpa and below", "built in"],
        vec!["alias.example", "owned: name[0]"],
        vec!["ep.privatelink.example", "CNAME target of name[0]"],
        vec![
            "*.mirror.example (every name below mirror.example)",
            "owned: name[1]",
        ],
    ];
    assert_eq!(exempt, expected, "{stdout}");
    let config = dir.path().join("off.toml");
    std::fs::write(&config, body("")).expect("write");
    let output = pathdns(&["check", "--config", &config.display().to_string()]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.contains("rebinding protection: off"), "{stdout}");
    assert!(!stdout.contains("EXEMPT"), "{stdout}");
}

/// The substring after `# expect:` on a broken config's first line.
fn expected_error(path: &str) -> String {
    let content = std::fs::read_to_string(crate_root().join(path))
        .unwrap_or_else(|err| panic!("cannot read {path}: {err}"));
    let first = content.lines().next().unwrap_or_default();
    first
        .strip_prefix("# expect:")
        .map(|expect| expect.trim().to_owned())
        .filter(|expect| !expect.is_empty())
        .unwrap_or_else(|| {
            panic!("{path}: the first line must be `# expect: <part of the error>`, got {first:?}")
        })
}

#[test]
fn every_broken_config_is_rejected_with_its_expected_one_line_error() {
    let broken = files_in("tests/configs/broken");
    assert!(
        broken.len() >= 20,
        "expected at least 20 broken configs in tests/configs/broken, found {}",
        broken.len()
    );
    let mut failures = Vec::new();
    for path in &broken {
        let expect = expected_error(path);
        let output = pathdns(&["check", "--config", path]);
        let stdout = text(&output.stdout);
        let stderr = text(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let mut problems = Vec::new();
        if output.status.code() != Some(EXIT_CONFIG) {
            problems.push(format!(
                "exit {:?}, expected {EXIT_CONFIG}",
                output.status.code()
            ));
        }
        if lines.len() != 1 {
            problems.push(format!("{} stderr lines, expected exactly 1", lines.len()));
        }
        if !stderr.contains(&expect) {
            problems.push(format!("stderr does not contain {expect:?}"));
        }
        if !stdout.is_empty() {
            problems.push(format!("stdout should be empty, got {stdout:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{path}: {}\n    stderr: {stderr:?}",
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} broken configs misbehaved:\n{}",
        failures.len(),
        broken.len(),
        failures.join("\n")
    );
}

/// A file error: not success, one line on stderr that names the path and the problem,
/// nothing on stdout.
fn assert_file_error(output: &Output, path: &str, problem: &str, what: &str) {
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success() && output.status.code().is_some(),
        "{what}: expected a non-zero exit, got {:?}; stderr: {stderr}",
        output.status
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: expected one line on stderr, got {stderr:?}"
    );
    assert!(
        stderr.contains(path) && stderr.contains(problem),
        "{what}: stderr should name {path:?} and say {problem:?}, got {stderr:?}"
    );
    assert!(
        stdout.is_empty(),
        "{what}: stdout should be empty, got {stdout:?}"
    );
}

#[test]
fn run_with_a_missing_config_file_fails_naming_the_path_without_serving() {
    let path = "/nonexistent/pathdns.toml";
    // `pathdns` returns at once instead of serving (a serving daemon would outlive the
    // deadline and fail the test), and logs no "listening" line.
    let output = pathdns(&["run", "--config", path]);
    assert_file_error(
        &output,
        path,
        "cannot read config file",
        "pathdns run --config /nonexistent/pathdns.toml",
    );
    assert!(
        !text(&output.stderr).contains("listening"),
        "pathdns run with a missing config must not start listeners"
    );
}

#[test]
fn check_of_a_missing_config_file_fails_naming_the_path() {
    let path = "/nonexistent/pathdns.toml";
    let output = pathdns(&["check", "--config", path]);
    assert_file_error(
        &output,
        path,
        "cannot read config file",
        "pathdns check --config /nonexistent/pathdns.toml",
    );
}

#[test]
fn check_of_a_directory_fails_naming_the_path() {
    let path = "tests/configs";
    let output = pathdns(&["check", "--config", path]);
    assert_file_error(
        &output,
        path,
        "cannot read config file",
        "pathdns check --config tests/configs",
    );
}

#[test]
fn run_of_a_directory_fails_naming_the_path_without_serving() {
    let path = "tests/configs";
    let output = pathdns(&["run", "--config", path]);
    assert_file_error(
        &output,
        path,
        "cannot read config file",
        "pathdns run --config tests/configs",
    );
}

#[test]
fn embedded_demo_config_passes_check() {
    let printed = pathdns(&["demo", "--print-config"]);
    assert_eq!(
        printed.status.code(),
        Some(0),
        "pathdns demo --print-config failed; stderr: {}",
        text(&printed.stderr)
    );
    let shipped = std::fs::read(crate_root().join("config/demo.toml"))
        .expect("config/demo.toml is the embedded demo config and must exist");
    assert_eq!(
        text(&printed.stdout),
        text(&shipped),
        "pathdns demo --print-config should print config/demo.toml unchanged"
    );

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("check-demo-{}.toml", std::process::id()));
    std::fs::write(&file, &printed.stdout)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", file.display()));
    let file_arg = file
        .to_str()
        .expect("CARGO_TARGET_TMPDIR is valid UTF-8")
        .to_owned();
    let output = pathdns(&["check", "--config", &file_arg]);
    // Remove the file before asserting, so a failure does not leave it behind.
    let _ = std::fs::remove_file(&file);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "pathdns check of the printed demo config failed; stderr: {}",
        text(&output.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "{file_arg}: OK: 3 owned names; listen 127.0.0.1:1053;"
        )),
        "unexpected summary for the demo config:\n{stdout}"
    );
    let rows = table_rows(&stdout);
    for name in [
        "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
        "dockerauth-vpc.cn-hangzhou.aliyuncs.com",
        "oss-cn-hangzhou-internal.aliyuncs.com",
    ] {
        assert!(
            rows.iter().any(|row| row.name == name),
            "the demo config should own {name}:\n{stdout}"
        );
    }
}

/// An ICMP probe needs CAP_NET_RAW: without it `check` (and `run`) refuse the config with a
/// message naming the capability, never a probe that silently passes.
#[test]
fn icmp_probe_without_cap_net_raw_is_a_config_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("icmp.toml");
    std::fs::write(
        &path,
        "[upstream]\nservers = [\"127.0.0.1:5399\"]\n\n[[name]]\nname = \"reg.test.example\"\n\
         targets = [\"127.0.0.10\"]\nprobes = [{ kind = \"icmp\" }]\n",
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let is_root = common::is_root();
    let binary = env!("CARGO_BIN_EXE_pathdns");
    let output = if is_root {
        // Drop to nobody with no capabilities at all.
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(binary)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run setpriv")
    } else {
        Command::new(binary)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run pathdns")
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert!(stderr.contains("name[0].probes[0].kind"), "{stderr}");
    if is_root {
        // With the capability, the same config is fine.
        let output = Command::new(binary)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run pathdns");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
