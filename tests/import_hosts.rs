//! `pathdns import-hosts`: the documents' hand-written /etc/hosts lines become a config that
//! `pathdns check` accepts, and the real agent running on it answers every imported name
//! with the hosts file's addresses over UDP. Bad lines are errors naming the file and line.
//!
//! Loopback only: the agent listens on 127.0.0.1:0 and the configs are imported with
//! `--no-probes`, so the documents' addresses are answered but never contacted.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{addresses, ask_udp, query, rcode, Agent};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com";
const AUTH: &str = "dockerauth-vpc.cn-hangzhou.aliyuncs.com";
const OSS: &str = "oss-cn-hangzhou-internal.aliyuncs.com";

/// The documents' three step-4 lines among the usual contents of /etc/hosts.
const DOCUMENTS_HOSTS: &str = "\
127.0.0.1\tlocalhost
127.0.1.1\tnode-17.idc.example node-17

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes

# ACR Enterprise Edition over CEN (step 4 of the documents)
10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com
100.103.7.181 dockerauth-vpc.cn-hangzhou.aliyuncs.com   # token realm
100.118.28.43 oss-cn-hangzhou-internal.aliyuncs.com
192.168.10.5  buildcache.idc.example
";

fn pathdns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathdns"))
        .args(args)
        .env("PATHDNS_LOG", "warn")
        .output()
        .expect("run pathdns")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `pathdns import-hosts [extra...] <hosts>`: the config it printed.
fn import(dir: &Path, hosts: &str, extra: &[&str]) -> String {
    let path = dir.join("hosts");
    std::fs::write(&path, hosts).expect("write hosts file");
    let mut args = vec!["import-hosts"];
    args.extend_from_slice(extra);
    args.push(path.to_str().expect("utf-8 path"));
    let out = pathdns(&args);
    assert!(
        out.status.success(),
        "import-hosts failed: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// `pathdns check` on `config`: its stdout; panics unless it exits 0.
fn check(dir: &Path, config: &str) -> String {
    let path = dir.join("imported.toml");
    std::fs::write(&path, config).expect("write config");
    let out = pathdns(&["check", "--config", path.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "pathdns check rejected the imported config: {}\n{config}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The imported config on an ephemeral loopback port with an explicit upstream.
fn loopback(config: &str) -> String {
    assert!(config.contains("listen = [\"127.0.0.1:53\"]"), "{config}");
    assert!(config.contains("servers = [\"system\"]"), "{config}");
    config
        .replace("listen = [\"127.0.0.1:53\"]", "listen = [\"127.0.0.1:0\"]")
        .replace("servers = [\"system\"]", "servers = [\"127.0.0.1:5399\"]")
}

fn answer(agent: &Agent, name: &str) -> Vec<String> {
    let response = ask_udp(
        agent.addr,
        &query(&format!("{name}."), RecordType::A, false),
    );
    assert_eq!(
        rcode(&response),
        ResponseCode::NoError,
        "{name}: {response:?}"
    );
    assert!(
        response.metadata.authoritative,
        "{name}: owned, so authoritative"
    );
    let mut found = addresses(&response);
    found.sort();
    found
}

#[test]
fn the_documents_hosts_lines_become_a_config_the_agent_answers_from() {
    let dir = tempfile::tempdir().expect("temp dir");

    // As an operator would run it: default probes, port 53, "system" upstreams.
    let config = import(dir.path(), DOCUMENTS_HOSTS, &[]);
    assert!(config.contains("[[registry]]"), "{config}");
    assert!(config.contains("instance = \"xxxxxx\""), "{config}");
    assert!(config.contains("region = \"cn-hangzhou\""), "{config}");
    assert!(
        config.contains("registry = [\"10.94.205.198\"]"),
        "{config}"
    );
    assert!(config.contains("auth = [\"100.103.7.181\"]"), "{config}");
    assert!(config.contains("oss = [\"100.118.28.43\"]"), "{config}");
    assert!(!config.contains("probes = []"), "{config}");
    assert!(!config.contains("[[name]]"), "{config}");
    // The noise is listed, not imported.
    for noise in [
        "line 1: 127.0.0.1 localhost",
        "line 2: 127.0.1.1 node-17.idc.example node-17",
        "line 5: ::1 localhost ip6-localhost ip6-loopback",
        "line 6: ff02::1 ip6-allnodes",
        "line 12: 192.168.10.5 buildcache.idc.example",
    ] {
        assert!(
            config.contains(&format!("#   {noise}\n")),
            "{noise}:\n{config}"
        );
    }
    let table = check(dir.path(), &config);
    for name in [REGISTRY, AUTH, OSS] {
        assert!(table.contains(name), "{name} not in the table:\n{table}");
    }
    assert!(table.contains("OK: 3 owned names"), "{table}");

    // The same import without probes, served on loopback: the hosts file's answers.
    let config = import(dir.path(), DOCUMENTS_HOSTS, &["--no-probes"]);
    assert_eq!(config.matches("probes = []").count(), 1, "{config}");
    check(dir.path(), &config);
    let agent = Agent::start(&loopback(&config));
    assert_eq!(answer(&agent, REGISTRY), vec!["10.94.205.198"]);
    assert_eq!(answer(&agent, AUTH), vec!["100.103.7.181"]);
    assert_eq!(answer(&agent, OSS), vec!["100.118.28.43"]);
}

#[test]
fn lists_buckets_other_names_and_a_takeover_instance() {
    let hosts = "\
127.0.0.1 localhost
10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com
10.94.205.199 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com
100.103.7.181 dockerauth-vpc.cn-hangzhou.aliyuncs.com
100.118.28.43 oss-cn-hangzhou-internal.aliyuncs.com mybucket.oss-cn-hangzhou-internal.aliyuncs.com
100.118.28.44 oss-cn-hangzhou-internal.aliyuncs.com mybucket.oss-cn-hangzhou-internal.aliyuncs.com
10.95.0.10 yyyyyy-registry-vpc.cn-shanghai.cr.aliyuncs.com myregistry
100.118.30.7 oss-cn-shanghai-internal.aliyuncs.com
100.100.2.136 mirrors.cloud.aliyuncs.com
";
    let dir = tempfile::tempdir().expect("temp dir");
    let config = import(dir.path(), hosts, &["--no-probes"]);
    assert!(
        config.contains("registry = [\"10.94.205.198\", \"10.94.205.199\"]"),
        "{config}"
    );
    assert!(
        config.contains("oss = [\"100.118.28.43\", \"100.118.28.44\"]"),
        "{config}"
    );
    assert!(config.contains("bucket = \"mybucket\""), "{config}");
    // cn-shanghai has no dockerauth line: no `auth` key, and a word about the takeover.
    let shanghai = config
        .split("\n[[")
        .find(|block| block.contains("instance = \"yyyyyy\""))
        .unwrap_or_else(|| panic!("no block for yyyyyy:\n{config}"));
    assert!(!shanghai.contains("\nauth ="), "{shanghai}");
    assert!(
        shanghai.contains("takes over the auth domain"),
        "{shanghai}"
    );
    assert!(
        config.contains("name = \"mirrors.cloud.aliyuncs.com\""),
        "{config}"
    );
    assert!(
        config.contains("#   line 7: alias myregistry on an imported line"),
        "{config}"
    );
    check(dir.path(), &config);

    let agent = Agent::start(&loopback(&config));
    assert_eq!(
        answer(&agent, REGISTRY),
        vec!["10.94.205.198", "10.94.205.199"]
    );
    assert_eq!(answer(&agent, AUTH), vec!["100.103.7.181"]);
    assert_eq!(answer(&agent, OSS), vec!["100.118.28.43", "100.118.28.44"]);
    assert_eq!(
        answer(&agent, "mybucket.oss-cn-hangzhou-internal.aliyuncs.com"),
        vec!["100.118.28.43", "100.118.28.44"]
    );
    assert_eq!(
        answer(&agent, "yyyyyy-registry-vpc.cn-shanghai.cr.aliyuncs.com"),
        vec!["10.95.0.10"]
    );
    assert_eq!(
        answer(&agent, "oss-cn-shanghai-internal.aliyuncs.com"),
        vec!["100.118.30.7"]
    );
    assert_eq!(
        answer(&agent, "mirrors.cloud.aliyuncs.com"),
        vec!["100.100.2.136"]
    );
}

#[test]
fn a_bad_line_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hosts");
    // The documents' table writes the 100.x addresses as /32 routes.
    std::fs::write(
        &path,
        "127.0.0.1 localhost\n\
         10.94.205.198 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n\
         100.103.7.181/32 dockerauth-vpc.cn-hangzhou.aliyuncs.com\n",
    )
    .expect("write hosts file");
    let file = path.to_str().expect("utf-8 path");
    let out = pathdns(&["import-hosts", file]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing printed on error: {out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "pathdns: {file}:3: \"100.103.7.181/32\" is a network"
        )),
        "{stderr}"
    );

    let missing = dir.path().join("no-such-hosts");
    let out = pathdns(&["import-hosts", missing.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains(&format!("{}: cannot read hosts file", missing.display())),
        "{out:?}"
    );

    std::fs::write(&path, "127.0.0.1 localhost\n10.0.0.1 intranet.example\n")
        .expect("write hosts file");
    let out = pathdns(&["import-hosts", file]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("nothing to import"), "{out:?}");
}
