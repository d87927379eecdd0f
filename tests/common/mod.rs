//! Test harness: the real `pathdns` binary on an ephemeral loopback port, a small DNS
//! client over real UDP and TCP sockets, and a real dnsmasq upstream on loopback.
//!
//! Every address used here is on loopback. Nothing here sleeps and hopes: waits are for a
//! condition (a log line, an answer) with a generous deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// How long a test waits for a process to become ready before failing.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A running child process whose stderr lines are collected.
pub struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        Process { child, lines, name }
    }

    /// Waits until some stderr line satisfies `pick`, returning what it picked.
    pub fn wait_for_line<T>(&mut self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(found) = self.lines().iter().find_map(|line| pick(line)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before {what}; stderr:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {what} within {READY_DEADLINE:?}; stderr:\n{}",
                self.name,
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("log lock").clone()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` returns something, polling every 20 ms, and returns it; fails after
/// [`READY_DEADLINE`], naming `what`.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({READY_DEADLINE:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `condition` holds, like [`wait_for`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(what, || condition().then_some(()))
}

/// Whether the tests run as root (network namespaces, privileged ports, capabilities).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The real pathdns binary serving a config on an ephemeral loopback port.
pub struct Agent {
    pub process: Process,
    pub addr: SocketAddr,
    /// The config file it runs on: rewrite it and send SIGHUP to reload.
    pub config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Starts `pathdns run` on `config`, which should listen on `127.0.0.1:0`. Refuses a
    /// config that would probe anything but loopback: outside a test's own network
    /// namespace, private-range addresses belong to somebody else.
    pub fn start(config: &str) -> Agent {
        Agent::start_with_env(config, &[])
    }

    /// Like [`Agent::start`], with extra environment variables for the process.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Agent {
        Agent::start_under(config, env, &[])
    }

    /// Like [`Agent::start_with_env`], run through `wrapper` (a command that executes the
    /// rest of its arguments in place, e.g. `["prlimit", "--nofile=64:64", "--"]`).
    pub fn start_under(config: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Agent {
        refuse_probes_off_loopback(config);
        let config = with_test_control(config);
        let config = config.as_str();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pathdns.toml");
        std::fs::write(&path, config).expect("write config");
        let binary = env!("CARGO_BIN_EXE_pathdns");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(["run", "--config"])
            .arg(&path)
            .env("PATHDNS_LOG", "info")
            .envs(env.iter().copied());
        let mut process = Process::spawn("pathdns", &mut command);
        let addr = process.wait_for_line("its listen address", listening_addr);
        Agent {
            process,
            addr,
            config_path: path,
            _dir: dir,
        }
    }
}

/// Tests run in parallel: unless a test says otherwise, the control endpoint takes a free
/// port instead of the default 127.0.0.1:9253.
pub fn with_test_control(config: &str) -> String {
    if config.contains("[control]") {
        config.to_owned()
    } else {
        format!("{config}\n[control]\nlisten = \"127.0.0.1:0\"\n")
    }
}

/// The control endpoint's address from a `control listening addr=ADDR` log line.
pub fn control_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("control listening addr=").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn refuse_probes_off_loopback(config: &str) {
    let Ok(parsed) = pathdns::config::Config::parse(config, "test config") else {
        return; // Invalid configs are tested for their error; they never probe.
    };
    for name in &parsed.names {
        if let Some(discover) = &name.discover {
            for server in &discover.servers {
                assert!(
                    server.ip().is_loopback(),
                    "test config would ask {server} (discover) outside a namespace: use a \
                     loopback discovery server"
                );
            }
        }
    }
    for name in &parsed.names {
        if name.health.probes.is_empty() {
            continue;
        }
        if let pathdns::config::AnswerSpec::Targets(targets) = &name.answer {
            for target in targets {
                assert!(
                    target.addr.is_loopback(),
                    "test config would probe {} for {} outside a namespace: set `probes = []` \
                     or use loopback targets",
                    target.addr,
                    name.name
                );
            }
        }
    }
}

/// The UDP address from a `listening udp=ADDR tcp=ADDR` log line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening udp=").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A free loopback port (UDP and TCP both free at the time of asking).
pub fn free_port() -> u16 {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found")
}

/// A query message for `name` and `rtype`, with RD set and EDNS if asked.
pub fn query(name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).expect("test name");
    message.add_query(Query::query(name, rtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        message.set_edns(opt);
    }
    message
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u16
}

/// Sends raw bytes over UDP from `from`, returning the raw response if one arrives in
/// `wait`.
pub fn exchange_raw_udp_from(
    from: &str,
    server: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(from).expect("bind client");
    socket.set_read_timeout(Some(wait)).expect("timeout");
    socket.send_to(packet, server).expect("send");
    let mut buf = vec![0u8; 65535];
    match socket.recv_from(&mut buf) {
        Ok((len, _)) => Some(buf[..len].to_vec()),
        Err(_) => None,
    }
}

pub fn exchange_raw_udp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    exchange_raw_udp_from("127.0.0.1:0", server, packet, wait)
}

/// One query over UDP; panics if no well-formed response with the same ID arrives in 5 s.
pub fn ask_udp(server: SocketAddr, message: &Message) -> Message {
    let bytes = message.to_vec().expect("encode query");
    let raw = exchange_raw_udp(server, &bytes, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no UDP answer to {:?}", message.queries));
    let response = Message::from_vec(&raw).expect("decode response");
    assert_eq!(response.metadata.id, message.metadata.id, "response ID");
    response
}

/// One query over a new TCP connection.
pub fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
    let mut stream = TcpStream::connect(server).expect("connect tcp");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write_frame(&mut stream, &message.to_vec().expect("encode query"));
    let response = Message::from_vec(&read_frame(&mut stream)).expect("decode response");
    assert_eq!(response.metadata.id, message.metadata.id, "response ID");
    response
}

pub fn write_frame(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .expect("write length");
    stream.write_all(bytes).expect("write message");
}

pub fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("read length");
    let mut bytes = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut bytes).expect("read message");
    bytes
}

/// The A and AAAA addresses in the answer section, as text.
pub fn addresses(response: &Message) -> Vec<String> {
    response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
            _ => None,
        })
        .collect()
}

pub fn cname_targets(response: &Message) -> Vec<String> {
    response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::CNAME(target) => Some(target.0.to_ascii()),
            _ => None,
        })
        .collect()
}

pub fn soa_in_authority(response: &Message) -> Option<&Record> {
    response
        .authorities
        .iter()
        .find(|record| record.record_type() == RecordType::SOA)
}

pub fn rcode(response: &Message) -> ResponseCode {
    response.metadata.response_code
}

pub fn in_class() -> DNSClass {
    DNSClass::IN
}

/// A dnsmasq on a loopback port serving fixed records, logging every query it receives.
pub struct Dnsmasq {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Dnsmasq {
    /// `records`: (name, address) pairs served with TTL 300.
    pub fn start(records: &[(&str, &str)]) -> Dnsmasq {
        Dnsmasq::start_with(records, &[])
    }

    /// Like [`Dnsmasq::start`], with extra dnsmasq arguments, e.g. `--local=/example/` to
    /// answer NODATA and NXDOMAIN for a domain itself instead of REFUSED.
    pub fn start_with(records: &[(&str, &str)], extra: &[&str]) -> Dnsmasq {
        let binary = which("dnsmasq").expect(
            "dnsmasq is not installed: run `sudo tests/run.sh`, which installs it \
             (apt-get install dnsmasq-base)",
        );
        let port = free_port();
        let mut command = Command::new(binary);
        command.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--interface=lo",
            "--log-queries",
            "--log-facility=-",
            "--local-ttl=300",
            "--pid-file=",
            "--cache-size=0",
            "--user=root",
        ]);
        command.arg(format!("--port={port}"));
        command.args(extra);
        for (name, address) in records {
            command.arg(format!("--host-record={name},{address}"));
        }
        let mut process = Process::spawn("dnsmasq", &mut command);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        process.wait_for_line("that it started", |line| {
            line.contains("started, version").then_some(())
        });
        let dnsmasq = Dnsmasq { process, addr };
        // Ready when it answers.
        let deadline = Instant::now() + READY_DEADLINE;
        let probe = query("ready.invalid.", RecordType::A, false);
        while exchange_raw_udp(
            addr,
            &probe.to_vec().expect("encode"),
            Duration::from_millis(200),
        )
        .is_none()
        {
            assert!(Instant::now() < deadline, "dnsmasq never answered");
        }
        dnsmasq
    }

    /// How many queries for `name` (of any type) dnsmasq has logged.
    pub fn queries_for(&self, name: &str) -> usize {
        let needle = format!(" {name} from ");
        self.process
            .lines()
            .iter()
            .filter(|line| line.contains("query[") && line.contains(&needle))
            .count()
    }

    /// [`Dnsmasq::queries_for`] once dnsmasq has logged at least one query for `name`.
    /// Its log line is read by another thread and can arrive after the answer did, so a
    /// count read straight after an answer may still be 0.
    pub fn logged_queries_for(&self, name: &str) -> usize {
        wait_for(&format!("dnsmasq to log a query for {name}"), || {
            let count = self.queries_for(name);
            (count > 0).then_some(count)
        })
    }
}

/// A plain HTTP/1.0 GET (so the answer is never chunked): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The names every DNS test serves (the documents' three names plus a CNAMEd bucket, a
/// second instance and a CNAME), shared with the fuzz fixture (fuzz/src/lib.rs).
pub const REFERENCE_NAMES: &str = include_str!("../configs/reference-names.toml");

/// A config serving [`REFERENCE_NAMES`], forwarding to `upstream`, with `extra` appended.
/// Probes are off: the documents' addresses must never be contacted outside a test's own
/// network namespace.
pub fn registry_config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["{upstream}"]
timeout = "1500ms"

{REFERENCE_NAMES}
{extra}
"#
    )
}

/// An Unbound on a loopback port serving a static local zone, logging every query.
pub struct Unbound {
    pub process: Process,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// `zone_lines`: Unbound `local-zone:`/`local-data:` lines.
    pub fn start(zone_lines: &str) -> Unbound {
        let binary = which("unbound").expect(
            "unbound is not installed: run `sudo tests/run.sh`, which installs it \
             (apt-get install unbound)",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = format!(
            r#"server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    log-queries: yes
    do-ip6: no
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
{zone_lines}
remote-control:
    control-enable: no
"#,
            dir = dir.path().display()
        );
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, config).expect("write unbound.conf");
        let mut command = Command::new(binary);
        command.arg("-d").arg("-c").arg(&path);
        let process = Process::spawn("unbound", &mut command);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_DEADLINE;
        let probe = query("ready.invalid.", RecordType::A, false);
        let mut unbound = Unbound {
            process,
            addr,
            _dir: dir,
        };
        while exchange_raw_udp(
            addr,
            &probe.to_vec().expect("encode"),
            Duration::from_millis(200),
        )
        .is_none()
        {
            assert!(
                unbound.process.is_running(),
                "unbound exited: {}",
                unbound.process.lines().join("\n")
            );
            assert!(Instant::now() < deadline, "unbound never answered");
        }
        unbound
    }

    /// How many queries for `name` (with trailing dot) Unbound has logged.
    pub fn queries_for(&self, name: &str) -> usize {
        let needle = format!(" {name} ");
        self.process
            .lines()
            .iter()
            .filter(|line| line.contains("info: 127.0.0.1") && line.contains(&needle))
            .count()
    }
}

pub mod alertmanager;
pub mod docker;
pub mod fake_upstream;
pub mod mutate;
pub mod netns;
pub mod packets;
pub mod registry;
pub mod slow_upstream;
pub mod upstream;
pub mod webhook;

/// An owned name of [`REFERENCE_NAMES`] and its address: what liveness queries ask.
pub const LIVENESS_NAME: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
pub const LIVENESS_ADDR: &str = "10.94.205.198";

/// Checks that an agent is still the process it was and still serving: running, the same
/// pid with the same start time (so not a restarted or reused one), no panic in its log (a
/// panicking task or thread does not end the process in a test build), and
/// [`LIVENESS_NAME`] answered correctly over UDP and TCP within 5 s each (a UDP query that
/// got no answer is asked once more, and counted).
pub struct Liveness {
    pid: u32,
    started: String,
    /// Liveness queries answered so far, and the slowest answer.
    pub answered: u64,
    pub slowest: Duration,
    /// UDP liveness queries that needed a second try ([`Liveness::ask_udp`]).
    pub lost_udp: u64,
}

impl Liveness {
    pub fn of(agent: &Agent) -> Liveness {
        let pid = agent.process.pid();
        Liveness {
            pid,
            started: start_time(pid).unwrap_or_else(|| panic!("pathdns (pid {pid}) is gone")),
            answered: 0,
            slowest: Duration::ZERO,
            lost_udp: 0,
        }
    }

    /// Panics, naming `context` (what was just sent), unless the agent is alive and serving.
    pub fn check(&mut self, agent: &mut Agent, context: &str) {
        self.check_process(agent, context);
        for tcp in [false, true] {
            self.ask(agent, tcp, context);
        }
        self.check_process(agent, context);
    }

    /// Like [`Liveness::check`], over UDP only (for loops that check very often).
    pub fn check_udp(&mut self, agent: &mut Agent, context: &str) {
        self.check_process(agent, context);
        self.ask(agent, false, context);
    }

    fn check_process(&self, agent: &mut Agent, context: &str) {
        if !agent.process.is_running() {
            let log = agent.process.lines().join("\n");
            panic!("after {context}: pathdns exited; stderr:\n{log}");
        }
        assert_eq!(
            agent.process.pid(),
            self.pid,
            "after {context}: another process"
        );
        assert_eq!(
            start_time(self.pid).as_deref(),
            Some(self.started.as_str()),
            "after {context}: pid {} is not the process that started",
            self.pid
        );
        if let Some(panic) = agent
            .process
            .lines()
            .iter()
            .find(|line| line.contains("panicked"))
        {
            let log = agent.process.lines().join("\n");
            panic!("after {context}: pathdns logged a panic: {panic}\nstderr:\n{log}");
        }
    }

    fn ask(&mut self, agent: &Agent, tcp: bool, context: &str) {
        let transport = if tcp { "TCP" } else { "UDP" };
        let message = query(LIVENESS_NAME, RecordType::A, false);
        let bytes = message.to_vec().expect("encode");
        let start = Instant::now();
        let raw = if tcp {
            ask_raw_tcp(agent.addr, &bytes, Duration::from_secs(5))
        } else {
            self.ask_udp(agent.addr, &bytes, context)
        };
        let elapsed = start.elapsed();
        let raw = raw.unwrap_or_else(|| {
            panic!("after {context}: no {transport} answer to the liveness query within 5 s")
        });
        let response = Message::from_vec(&raw).unwrap_or_else(|err| {
            panic!("after {context}: the {transport} liveness answer does not decode: {err}")
        });
        assert_eq!(
            (response.metadata.id, addresses(&response)),
            (message.metadata.id, vec![LIVENESS_ADDR.to_owned()]),
            "after {context}: wrong {transport} liveness answer"
        );
        self.answered += 1;
        self.slowest = self.slowest.max(elapsed);
    }
}

impl Liveness {
    /// A UDP liveness query, asked once more when the first gets no answer: UDP may lose a
    /// datagram on a host that runs several floods at once (the suite's parallel tests), and
    /// a DNS client asks again. Each loss is counted ([`Liveness::lost_udp`]) and printed
    /// with the kernel's UDP drop counters around it; a second loss in a row is a server
    /// that stopped answering.
    fn ask_udp(&mut self, server: SocketAddr, bytes: &[u8], context: &str) -> Option<Vec<u8>> {
        let before = KernelUdpDrops::read();
        if let Some(raw) = exchange_raw_udp(server, bytes, Duration::from_secs(5)) {
            return Some(raw);
        }
        let after = KernelUdpDrops::read();
        self.lost_udp += 1;
        let retry = exchange_raw_udp(server, bytes, Duration::from_secs(5));
        eprintln!(
            "liveness: a UDP query after {context} got no answer within 5 s (kernel UDP \
             drops on this host meanwhile: {}); asked again: {}",
            after.since(&before),
            if retry.is_some() {
                "answered"
            } else {
                "no answer either"
            }
        );
        retry
    }
}

/// The host's UDP drop counters (`/proc/net/snmp`): receive-buffer overflows and all
/// input errors, every socket of the host counted.
#[derive(Debug, Default)]
pub struct KernelUdpDrops {
    rcvbuf_errors: u64,
    in_errors: u64,
}

impl KernelUdpDrops {
    pub fn read() -> KernelUdpDrops {
        let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            return KernelUdpDrops::default();
        };
        let field = |name: &str| {
            let at = names.split_whitespace().position(|field| field == name);
            at.and_then(|at| values.split_whitespace().nth(at)?.parse().ok())
                .unwrap_or(0)
        };
        KernelUdpDrops {
            rcvbuf_errors: field("RcvbufErrors"),
            in_errors: field("InErrors"),
        }
    }

    /// The increase since `earlier`, as text.
    pub fn since(&self, earlier: &KernelUdpDrops) -> String {
        format!(
            "{} receive-buffer overflows, {} input errors",
            self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            self.in_errors.saturating_sub(earlier.in_errors)
        )
    }
}

/// A process's start time (field 22 of /proc/PID/stat), which tells a pid's reuse apart.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

/// One message over a new TCP connection, the raw response if one comes within `wait`.
pub fn ask_raw_tcp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, wait).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// A loopback TCP port that accepts (and drops) connections until dropped: a probe target
/// a test can take away. Dropping it waits until the port really refuses, so a test's
/// clock starts at the cut.
pub struct Port {
    stop: Arc<std::sync::atomic::AtomicBool>,
    addr: SocketAddr,
}

impl Port {
    pub fn open(ip: &str, port: u16) -> Port {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind((ip, port)).expect("bind probe target");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if listener.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Port {
            stop,
            addr: SocketAddr::new(ip.parse().expect("ip"), port),
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + READY_DEADLINE;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
            assert!(Instant::now() < deadline, "port {} never closed", self.addr);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
