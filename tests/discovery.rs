//! Discovery over the private path (`discover`), with real components: an NSD serving the
//! instance's names inside a "VPC" namespace (its zone rewritten and reloaded to move an
//! address), registries with real HTTPS `/v2/` on the old and new addresses, a route that
//! does or does not reach the new one, and the real agent in the client namespace with a
//! webhook receiver beside it. Runs as root (CI); skipped loudly otherwise.
//!
//! ```text
//!   client ns (pathdns, webhook) ── eth-priv ── router ── vpcdns ns  10.0.5.53  NSD
//!        │                                         ├──── primary ns  10.94.205.198 /v2/
//!        └── eth-pub (default route, drops all)    └──── moved ns    10.94.206.10  /v2/
//! ```
//!
//! 100.118.28.50 has no route through the private path (it leaves by `eth-pub`, where it
//! is dropped: the documents' missing /32); 100.100.5.5 lies in a local 100.100.0.0/16
//! put on `eth-pub` (the 100.x conflict).
//!
//! Bad replies and bad state files need no namespace: a scripted discovery server on
//! loopback, a name without probes, and an address from TEST-NET-3 that is only ever DNS
//! data (nothing connects to it). Those tests run without root too.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_upstream::FakeUpstream;
use common::netns::{self, Topology};
use common::webhook::Hook;
use common::*;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com";
const REALM: &str = "dockerauth-vpc.cn-hangzhou.aliyuncs.com";
const VPC_DNS: &str = "10.0.5.53";
const PRIMARY: &str = "10.94.205.198";
const MOVED: &str = "10.94.206.10";
const NO_ROUTE: &str = "100.118.28.50";
const LOCAL_NET: &str = "100.100.0.2/16";
const IN_LOCAL_NET: &str = "100.100.5.5";

/// NSD serving `aliyuncs.com` in namespace `ns` on `addr`, from files in `dir`.
struct Nsd {
    ns: String,
    addr: String,
    dir: PathBuf,
    serial: u32,
    process: Option<Process>,
}

impl Nsd {
    fn start(ns: &str, addr: &str, dir: &Path, registry: &str) -> Nsd {
        let conf = format!(
            "server:\n  ip-address: {addr}\n  port: 53\n  zonesdir: \"{d}\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  username: \"\"\n  chroot: \"\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 1\n\
             remote-control:\n  control-enable: no\n\
             zone:\n  name: aliyuncs.com\n  zonefile: \"{d}/aliyuncs.com.zone\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nsd.conf"), conf).expect("write nsd.conf");
        let mut nsd = Nsd {
            ns: ns.to_owned(),
            addr: addr.to_owned(),
            dir: dir.to_owned(),
            serial: 1,
            process: None,
        };
        nsd.write_zone(registry);
        let nsd_bin = which("nsd").expect("nsd is not installed: run `sudo tests/run.sh`");
        let mut command = Command::new(nsd_bin);
        command.arg("-d").arg("-c").arg(dir.join("nsd.conf"));
        nsd.process = Some(netns::spawn_in(ns, "nsd", &command));
        nsd.wait_serving(registry);
        nsd
    }

    fn write_zone(&mut self, registry: &str) {
        let zone = format!(
            "$ORIGIN aliyuncs.com.\n$TTL 30\n\
             @ IN SOA ns.aliyuncs.com. admin.aliyuncs.com. ({} 60 60 600 30)\n\
             @ IN NS ns.aliyuncs.com.\nns IN A {}\n\
             xxxxxx-registry-vpc.cn-hangzhou.cr IN A {registry}\n\
             oss-cn-hangzhou-internal IN A {PRIMARY}\n",
            self.serial, self.addr
        );
        std::fs::write(self.dir.join("aliyuncs.com.zone"), zone).expect("write zone");
    }

    /// The registry name's address now; NSD re-reads its zone on SIGHUP.
    fn move_registry(&mut self, registry: &str) {
        self.serial += 1;
        self.write_zone(registry);
        self.process.as_ref().expect("nsd running").signal("HUP");
        self.wait_serving(registry);
    }

    /// Waits until NSD answers the registry name with `registry` (asked from its own
    /// namespace).
    fn wait_serving(&self, registry: &str) {
        let server: SocketAddr = format!("{}:53", self.addr).parse().expect("nsd addr");
        let ns = self.ns.clone();
        wait_until(&format!("NSD answers {registry}"), || {
            let ns = ns.clone();
            netns::run_in_ns(&ns, || {
                let question = query(&format!("{REGISTRY}."), RecordType::A, false);
                let bytes = question.to_vec().expect("encode");
                exchange_raw_udp_from("0.0.0.0:0", server, &bytes, Duration::from_millis(500))
                    .and_then(|raw| hickory_proto::op::Message::from_vec(&raw).ok())
                    .is_some_and(|reply| addresses(&reply) == vec![registry.to_owned()])
            })
        });
    }

    fn stop(&mut self) {
        self.process = None;
    }
}

fn config(topology: &Topology, hook: &Hook) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:5399"]

[[registry]]
instance = "xxxxxx"
region = "cn-hangzhou"
discover = {{ servers = ["{VPC_DNS}"], interval = "1s", timeout = "500ms" }}
probes = [{{ kind = "https", interval = "1s", suspect_interval = "300ms", timeout = "1s", rise = 2, fall = 1, ca_file = "{ca}" }}]

[[alert]]
kind = "webhook"
url = "{url}"
"#,
        ca = topology.ca_cert.display(),
        url = hook.url(),
    )
}

/// The agent's answer for the registry name, asked from the client namespace.
fn answer(ns: &str, agent: SocketAddr) -> Vec<String> {
    netns::run_in_ns(ns, || {
        addresses(&ask_udp(
            agent,
            &query(&format!("{REGISTRY}."), RecordType::A, false),
        ))
    })
}

fn status(ns: &str, control: SocketAddr) -> Value {
    let (code, body) = netns::run_in_ns(ns, || http_get(control, "/status")).expect("GET /status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// The registry name's discovery entry in `/status`.
fn discovered(status: &Value) -> Value {
    status["discovery"]["names"]
        .as_array()
        .and_then(|names| names.iter().find(|n| n["name"] == REGISTRY))
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_for_answer(ns: &str, agent: SocketAddr, want: &str) -> Duration {
    let started = Instant::now();
    wait_until(&format!("pathdns answers {want}"), || {
        answer(ns, agent) == vec![want.to_owned()]
    });
    started.elapsed()
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `pathdns ARGS` in namespace `ns` with `env`; its stdout (stderr is appended on failure).
fn pathdns_in(ns: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pathdns"));
    command.args(args).envs(env.iter().copied());
    let out = netns::output_in(ns, &command);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        stdout
    } else {
        format!(
            "{stdout}\n(exit {:?}) {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// `pathdns discover` from the client: the addresses NSD gives, how the client reaches
/// them, and a config that `pathdns check` takes.
fn step_two_in_one_command(client: &str, dir: &Path, env: &[(&str, &str)]) {
    let args = [
        "discover",
        "--server",
        VPC_DNS,
        "--instance",
        "xxxxxx",
        "--region",
        "cn-hangzhou",
    ];
    let printed = pathdns_in(client, &args, env);
    assert!(
        printed.contains(&format!("registry = [\"{PRIMARY}\"]")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("oss = [\"{PRIMARY}\"]")),
        "{printed}"
    );
    let line = printed
        .lines()
        .find(|l| l.starts_with(&format!("#   {REGISTRY}  {PRIMARY}")))
        .unwrap_or_else(|| panic!("no line for the registry:\n{printed}"));
    assert!(
        line.contains("dev eth-priv") && line.contains("tcp 443 ok"),
        "{line}"
    );
    assert!(
        printed.contains(&format!("#   {REALM}  not learned: ")),
        "{printed}"
    );
    let file = dir.join("discovered.toml");
    std::fs::write(&file, &printed).expect("write the printed config");
    let checked = pathdns_in(client, &["check", "--config", path_text(&file)], env);
    assert!(checked.contains(": OK: "), "{checked}");
    eprintln!("pathdns discover printed:\n{printed}");
}

/// The status page (in Debian's headless Chromium, from the client namespace) lists the
/// registry name's last good address and the discovered address not used, with why.
fn the_status_page_shows_it(client: &str, control: SocketAddr) {
    use crate::status_page::{chromium, element, run_chromium};
    let Some(chromium) = chromium() else {
        return;
    };
    let profile = tempfile::tempdir().expect("chromium profile");
    let url = format!("http://{control}/");
    let dom = run_chromium(&chromium, client, profile.path(), &["--dump-dom"], &url);
    let row = element(&dom, "tr", &format!("data-name=\"{REGISTRY}\""))
        .unwrap_or_else(|| panic!("no discovery row for {REGISTRY}:\n{dom}"));
    assert!(row.contains(MOVED) && row.contains("discovered"), "{row}");
    assert!(
        row.contains(NO_ROUTE) && row.contains("probe failed"),
        "{row}"
    );
}

/// The registry name's first `alertname` delivery with `status` (and `target`, unless
/// empty); the OSS name is discovered beside it and alerts on its own.
fn alert(hook: &Hook, alertname: &str, status: &str, target: &str) -> Value {
    let want = |body: &Value| {
        body["alertname"] == alertname
            && body["status"] == status
            && body["labels"]["name"] == REGISTRY
            && (target.is_empty() || body["labels"]["target"] == target)
    };
    let requests = hook.wait_for(&format!("{alertname} {status} {target}"), want);
    requests
        .into_iter()
        .map(|r| r.body)
        .find(|b| want(b))
        .expect("the awaited alert")
}

#[test]
fn addresses_are_learned_verified_kept_on_disk_and_their_moves_alerted() {
    let Some(topology) = Topology::build_two_uplinks(&[
        ("vpcdns", "10.0.5.53/24", "10.0.5.1/24"),
        ("primary", "10.94.205.198/24", "10.94.205.1/24"),
        ("moved", "10.94.206.10/24", "10.94.206.1/24"),
    ]) else {
        return;
    };
    let client = topology.client.clone();
    netns::ip_netns_exec(&client, &["ip", "addr", "add", LOCAL_NET, "dev", "eth-pub"]);
    let _primary = topology.start_registry("primary", REGISTRY, REALM);
    let _moved = topology.start_registry("moved", REGISTRY, REALM);
    let files = tempfile::tempdir().expect("temp dir");
    let state_dir = files.path().join("state");
    let mut nsd = Nsd::start(
        &topology.target("vpcdns").ns,
        VPC_DNS,
        files.path(),
        PRIMARY,
    );
    let hook = Hook::start_in(&client);
    let config = config(&topology, &hook);
    let env = [("STATE_DIRECTORY", state_dir.to_str().expect("utf-8 path"))];

    // Nothing written, nothing on disk: learned at the first round, after its probes.
    let mut agent = topology.start_agent_with_env(&config, &env);
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    let took = wait_for_answer(&client, agent.addr, PRIMARY);
    eprintln!("first discovery answered after {took:?}");
    let entry = discovered(&status(&client, control));
    assert_eq!(entry["source"], "discovered", "{entry}");
    assert_eq!(entry["addresses"], serde_json::json!([PRIMARY]), "{entry}");
    let saved = std::fs::read_to_string(state_dir.join("discovered.json")).expect("state file");
    assert!(
        saved.contains(PRIMARY) && saved.contains("\"format\": 1"),
        "{saved}"
    );
    step_two_in_one_command(&client, files.path(), &env);
    let doctor = pathdns_in(
        &client,
        &["doctor", "--config", path_text(&agent.config_path)],
        &env,
    );
    assert!(
        doctor.lines().any(|l| l.starts_with("OK")
            && l.contains("discover")
            && l.contains(&format!("answers {PRIMARY} (the last good addresses)"))),
        "{doctor}"
    );
    let check = pathdns_in(
        &client,
        &["check", "--config", path_text(&agent.config_path)],
        &env,
    );
    assert!(
        check.contains(&format!(
            "discover: {REGISTRY}: asked of {VPC_DNS}:53 every 1s; configured: none; discovered"
        )) && check.contains(PRIMARY),
        "{check}"
    );

    // The address moves to a healthy one: answered once its probes passed, alerted.
    let moved_at = Instant::now();
    nsd.move_registry(MOVED);
    let took = wait_for_answer(&client, agent.addr, MOVED);
    eprintln!("moved address answered {took:?} after NSD served it (interval 1s, 2 x https)");
    let moved = alert(&hook, "PathdnsAddressMoved", "firing", "");
    assert_eq!(moved["labels"]["old"], PRIMARY, "{moved}");
    assert_eq!(moved["labels"]["new"], MOVED, "{moved}");
    let lines = agent.process.lines();
    let passed = lines
        .iter()
        .position(|l| l.contains("passed its probes") && l.contains(MOVED));
    let changed = lines
        .iter()
        .position(|l| l.contains("discovered address changed"));
    assert!(
        passed.is_some() && passed < changed,
        "verified before use:\n{}",
        lines.join("\n")
    );
    assert!(moved_at.elapsed() < Duration::from_secs(30));

    // It moves to an address the private path does not reach: the old one keeps answering,
    // and the alert names the route to add.
    nsd.move_registry(NO_ROUTE);
    let unreachable = alert(
        &hook,
        "PathdnsDiscoveredAddressUnreachable",
        "firing",
        NO_ROUTE,
    );
    let summary = unreachable["summary"].as_str().unwrap_or("");
    assert!(
        summary.contains(&format!(
            "ip route add {NO_ROUTE}/32 via 10.0.1.1 dev eth-priv"
        )),
        "{summary}"
    );
    assert_eq!(answer(&client, agent.addr), vec![MOVED.to_owned()]);
    let entry = discovered(&status(&client, control));
    assert_eq!(
        entry["last_answer"],
        serde_json::json!([NO_ROUTE]),
        "{entry}"
    );
    assert_eq!(entry["not_used"][0]["addr"], NO_ROUTE, "{entry}");
    the_status_page_shows_it(&client, control);

    // It moves into a local network (the 100.x conflict): reported with the remedy, not used.
    nsd.move_registry(IN_LOCAL_NET);
    let conflict = alert(
        &hook,
        "PathdnsDiscoveredAddressConflict",
        "firing",
        IN_LOCAL_NET,
    );
    let summary = conflict["summary"].as_str().unwrap_or("");
    assert!(
        summary.contains("100.100.0.0/16") && summary.contains("remedy"),
        "{summary}"
    );
    alert(
        &hook,
        "PathdnsDiscoveredAddressUnreachable",
        "resolved",
        NO_ROUTE,
    );
    assert_eq!(answer(&client, agent.addr), vec![MOVED.to_owned()]);

    // The resolver goes silent: nothing changes; after three rounds, an alert.
    nsd.stop();
    alert(&hook, "PathdnsDiscoveryFailing", "firing", "");
    assert_eq!(answer(&client, agent.addr), vec![MOVED.to_owned()]);
    let entry = discovered(&status(&client, control));
    assert!(entry["failed_rounds"].as_u64() >= Some(3), "{entry}");
    assert_eq!(entry["addresses"], serde_json::json!([MOVED]), "{entry}");

    // A restart with the resolver still silent answers the last good address from disk.
    agent.process.signal("TERM");
    wait_until("the agent stopped", || !agent.process.is_running());
    drop(agent);
    let mut agent = topology.start_agent_with_env(&config, &env);
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    assert_eq!(answer(&client, agent.addr), vec![MOVED.to_owned()]);
    let entry = discovered(&status(&client, control));
    assert_eq!(entry["source"], "disk", "{entry}");
    assert_eq!(entry["addresses"], serde_json::json!([MOVED]), "{entry}");
}

/// Discovery replies the runner must not take, each with the words `/status` gives for it.
const BAD_REPLIES: [(&str, &str); 10] = [
    ("records for another name", "not asked"),
    ("a CNAME loop", "loops"),
    (
        "a CNAME out of the name's domain",
        "outside the name's domain",
    ),
    ("a huge answer", "more than pathdns takes"),
    ("a loopback address", "loopback"),
    ("a link-local address", "link-local"),
    ("0.0.0.0", "this network"),
    ("garbage bytes", "malformed reply"),
    ("NXDOMAIN", "NXDomain"),
    ("an answer to another question", "another question"),
];

const LEARNED: &str = "reg.discovery.test";
const LEARNED_ADDR: &str = "203.0.113.10";

/// A loopback discovery server: a good answer in mode 0, `BAD_REPLIES[mode - 1]` after,
/// silence in mode `usize::MAX`.
fn scripted_discovery(mode: Arc<AtomicUsize>) -> FakeUpstream {
    use common::fake_upstream::{address, bytes, question, reply, Step};
    use hickory_proto::rr::rdata::CNAME;
    use hickory_proto::rr::{Name, RData, Record};
    FakeUpstream::start(move |incoming| {
        let query = incoming.query;
        let asked = question(query).name().clone();
        let name = |text: &str| Name::from_ascii(text).expect("name");
        let cname = |from: &Name, to: &str| {
            Record::from_rdata(from.clone(), 30, RData::CNAME(CNAME(name(to))))
        };
        let answers = match mode.load(Ordering::Relaxed) {
            0 => vec![address(&asked, 30, LEARNED_ADDR)],
            1 => vec![
                address(&asked, 30, LEARNED_ADDR),
                address(&name("other.discovery.test."), 30, "203.0.113.99"),
            ],
            2 => vec![
                cname(&asked, "b.discovery.test."),
                cname(&name("b.discovery.test."), &asked.to_ascii()),
            ],
            3 => vec![
                cname(&asked, "evil.example."),
                address(&name("evil.example."), 30, "203.0.113.66"),
            ],
            4 => (1..=40)
                .map(|i| address(&asked, 30, &format!("203.0.113.{i}")))
                .collect(),
            5 => vec![address(&asked, 30, "127.0.0.1")],
            6 => vec![address(&asked, 30, "169.254.20.53")],
            7 => vec![address(&asked, 30, "0.0.0.0")],
            8 => {
                let id = query.metadata.id.to_be_bytes();
                return vec![Step::Reply(vec![
                    id[0], id[1], 0x81, 0x80, 0, 1, 0, 1, 0xff, 0x13,
                ])];
            }
            9 => {
                let mut nx = reply(query, vec![]);
                nx.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
                return vec![Step::Reply(bytes(&nx))];
            }
            10 => {
                let mut other = reply(query, vec![]);
                other.queries[0].set_name(name("other.discovery.test."));
                return vec![Step::Reply(bytes(&other))];
            }
            _ => return Vec::new(),
        };
        vec![Step::Reply(bytes(&reply(query, answers)))]
    })
}

fn learned_config(server: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[upstream]
servers = ["127.0.0.1:9"]
timeout = "300ms"
[[name]]
name = "{LEARNED}"
discover = {{ servers = ["{server}"], interval = "1s", timeout = "300ms" }}
probes = []
"#
    )
}

/// Whether `condition` holds within `limit` (polled), for a failure message of the caller's.
fn within(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn local_status(control: SocketAddr) -> Value {
    let (code, body) = http_get(control, "/status").expect("GET /status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

fn learned_entry(control: SocketAddr) -> Value {
    local_status(control)["discovery"]["names"][0].clone()
}

fn learned_answer(agent: &Agent) -> Vec<String> {
    addresses(&ask_udp(
        agent.addr,
        &query(&format!("{LEARNED}."), RecordType::A, false),
    ))
}

#[test]
fn bad_discovery_replies_are_rejected_and_replace_nothing() {
    let mode = Arc::new(AtomicUsize::new(0));
    let server = scripted_discovery(mode.clone());
    let state = tempfile::tempdir().expect("state dir");
    let env = [("STATE_DIRECTORY", state.path().to_str().expect("utf-8"))];
    let mut agent = Agent::start_with_env(&learned_config(server.addr), &env);
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    let learned = within(Duration::from_secs(20), || {
        learned_answer(&agent) == vec![LEARNED_ADDR.to_owned()]
    });
    assert!(
        learned,
        "never learned:\n{}",
        agent.process.lines().join("\n")
    );
    for (index, (what, words)) in BAD_REPLIES.iter().enumerate() {
        mode.store(index + 1, Ordering::Relaxed);
        let entry = wait_for(&format!("{what} rejected"), || {
            let entry = learned_entry(control);
            let error = entry["last_error"].as_str().unwrap_or("").to_owned();
            error.contains(words).then_some(entry)
        });
        assert_eq!(
            entry["addresses"],
            serde_json::json!([LEARNED_ADDR]),
            "{what}: {entry}"
        );
        assert_eq!(
            learned_answer(&agent),
            vec![LEARNED_ADDR.to_owned()],
            "{what}"
        );
        eprintln!("{what}: {}", entry["last_error"]);
    }
    let log = agent.process.lines().join("\n");
    assert!(log.contains("discovery: no usable answer"), "{log}");
    assert!(agent.process.is_running());
}

#[test]
fn a_state_file_that_is_corrupt_or_newer_is_ignored_with_a_warning() {
    let mode = Arc::new(AtomicUsize::new(usize::MAX));
    let server = scripted_discovery(mode.clone());
    let state = tempfile::tempdir().expect("state dir");
    let file = state.path().join("discovered.json");
    let env = [("STATE_DIRECTORY", state.path().to_str().expect("utf-8"))];
    let cases = [
        ("{\"format\": 1, \"names\": [", "not a pathdns state file"),
        ("{\"format\": 7, \"names\": {}}", "from a newer pathdns"),
    ];
    for (text, words) in cases {
        std::fs::write(&file, text).expect("write state");
        let mut agent = Agent::start_with_env(&learned_config(server.addr), &env);
        let control = agent
            .process
            .wait_for_line("the control address", control_addr);
        let warned = agent
            .process
            .wait_for_line("the state file warning", |line| {
                line.contains(words).then(|| line.to_owned())
            });
        assert!(warned.contains("WARN"), "{warned}");
        let status = local_status(control);
        let error = status["discovery"]["state_error"].as_str().unwrap_or("");
        assert!(error.contains(words), "{status}");
        assert_eq!(
            status["discovery"]["names"][0]["source"], "none",
            "{status}"
        );
        assert!(agent.process.is_running());
    }
    // A good file, the server silent: answered from disk at once.
    let good = format!(
        "{{\"format\": 1, \"written_by\": \"test\", \"names\": {{\"{LEARNED}\": \
         {{\"addresses\": [\"{LEARNED_ADDR}\"], \"server\": \"{}\", \"confirmed_unix_ms\": 1}}}}}}",
        server.addr
    );
    std::fs::write(&file, good).expect("write state");
    let mut agent = Agent::start_with_env(&learned_config(server.addr), &env);
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    assert_eq!(learned_answer(&agent), vec![LEARNED_ADDR.to_owned()]);
    assert_eq!(learned_entry(control)["source"], "disk");
}
