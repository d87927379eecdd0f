//! The control endpoint of the real agent over real loopback sockets: `/healthz`, `/readyz`,
//! `/status`, `/metrics` (checked by the real `promtool`), counters that follow real
//! queries and real probes, and the `pathdns status` and `pathdns hosts` commands.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use pathdns::status::StatusReport;

// ---------------------------------------------------------------------------------------
// Helpers

/// An HTTP response: status code, lower-cased headers, body.
struct Http {
    code: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// One request over a new connection (`Connection: close`, so the body ends at EOF).
fn http(addr: SocketAddr, method: &str, path: &str) -> Http {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|err| panic!("connect to the control endpoint {addr}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let mut lines = head.lines();
    let status = lines.next().expect("status line");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Http {
        code,
        headers,
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Http {
    http(addr, "GET", path)
}

/// Starts the agent and finds its control address in the log.
fn start_unready(config: &str) -> (Agent, SocketAddr) {
    let mut agent = Agent::start(config);
    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    (agent, control)
}

/// Starts the agent and waits until `/readyz` says it is ready.
fn start(config: &str) -> (Agent, SocketAddr) {
    let (agent, control) = start_unready(config);
    wait_for("/readyz to answer 200", || {
        let ready = get(control, "/readyz");
        assert!(
            ready.code == 200 || ready.code == 503,
            "/readyz answered {}",
            ready.code
        );
        (ready.code == 200).then_some(())
    });
    (agent, control)
}

fn status(control: SocketAddr) -> StatusReport {
    let response = get(control, "/status");
    assert_eq!(response.code, 200, "/status: {}", response.body);
    serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("/status is not a StatusReport ({err}): {}", response.body))
}

/// One scrape of `/metrics`, parsed into samples.
struct Scrape {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn take(control: SocketAddr) -> Scrape {
        let response = get(control, "/metrics");
        assert_eq!(response.code, 200, "/metrics: {}", response.body);
        let text = response.body;
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("bad sample {line:?}")))
            .collect();
        Scrape { text, samples }
    }

    /// The sample with exactly these labels; 0 when absent (a counter not yet counted).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map_or(0.0, |(_, _, v)| *v)
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.iter().any(|(n, l, _)| n == name && *l == want)
    }
}

/// `name{a="x",b="y"} 1.5` (label values here never hold quotes or commas).
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        other => other.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once("=\"")?;
            Some((key.to_owned(), value.trim_end_matches('"').to_owned()))
        })
        .collect::<Option<_>>()?;
    Some((name.to_owned(), labels, value))
}

/// `promtool check metrics` from Debian's `prometheus` package, on `text`.
fn promtool_check(text: &str) {
    let promtool = which("promtool").unwrap_or_else(|| {
        panic!(
            "promtool is not installed: run `sudo tests/run.sh`, which installs it \
             (apt-get install prometheus)"
        )
    });
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- the metrics:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pathdns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathdns"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pathdns")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------
// Routes

#[test]
fn healthz_readyz_status_and_the_errors() {
    let upstream = Dnsmasq::start(&[]);
    let (_agent, control) = start(&registry_config(upstream.addr, ""));

    let health = get(control, "/healthz");
    assert_eq!((health.code, health.body.as_str()), (200, "ok\n"));
    let ready = get(control, "/readyz");
    assert_eq!((ready.code, ready.body.as_str()), (200, "ready\n"));

    let response = get(control, "/status");
    assert_eq!(
        response.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let status = status(control);
    assert!(status.ready);
    // Shown even when nothing was aborted: whether it can work here.
    let aborts = status
        .abort_stalled
        .as_ref()
        .expect("abort_stalled in /status");
    assert!(aborts.recent.is_empty(), "{aborts:?}");
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    let names: BTreeSet<&str> = status.names.iter().map(|n| n.name.as_str()).collect();
    for name in [
        "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
        "dockerauth-vpc.cn-hangzhou.aliyuncs.com",
        "oss-cn-hangzhou-internal.aliyuncs.com",
        "*.oss-cn-hangzhou-internal.aliyuncs.com",
        "artifacts.internal.example",
        "alias.internal.example",
    ] {
        assert!(
            names.contains(name),
            "{name} missing from /status: {names:?}"
        );
    }
    let registry = status
        .names
        .iter()
        .find(|n| n.name == "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com")
        .expect("registry name");
    assert_eq!(registry.answer, "10.94.205.198");

    assert_eq!(get(control, "/nope").code, 404);
    assert_eq!(get(control, "/status/").code, 404);
    let post = http(control, "POST", "/metrics");
    assert_eq!(post.code, 405);
    assert_eq!(
        post.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );
    assert_eq!(http(control, "DELETE", "/status").code, 405);
    // HEAD is GET without the body.
    let head = http(control, "HEAD", "/healthz");
    assert_eq!((head.code, head.body.as_str()), (200, ""));
}

/// `GET /`: the status page, one document with nothing from elsewhere, whose script reads
/// `/status` and writes what it reads as text only. Rendered in a real Chromium by
/// `status_page::chromium_renders_the_live_state_after_a_failover`.
#[test]
fn the_status_page_is_one_self_contained_document_that_reads_status() {
    let upstream = Dnsmasq::start(&[]);
    let (_agent, control) = start(&registry_config(upstream.addr, ""));
    let page = get(control, "/");
    assert_eq!(page.code, 200, "{}", page.body);
    let header = |name: &str| page.headers.get(name).map(String::as_str).unwrap_or("");
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "style-src 'unsafe-inline'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "no {directive:?} in the CSP {csp:?}"
        );
    }
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("http"),
        "{csp}"
    );

    let body = &page.body;
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    // Readable without the script: the title, and where the data is.
    assert!(body.contains("<title>pathdns status</title>"), "{body}");
    assert!(body.contains("<noscript>"), "{body}");
    // Nothing loaded from anywhere: no URL with a scheme or a host, no src attribute, no
    // stylesheet or import.
    for external in [
        "://", "src=", "<link", "@import", "url(", "<iframe", "<img", "//cdn",
    ] {
        assert!(
            !body.to_ascii_lowercase().contains(external),
            "the page has {external:?}"
        );
    }
    // It reads /status, and never writes what it read as markup.
    assert!(
        body.contains("fetch(\"/status\""),
        "the page does not read /status"
    );
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!body.contains(sink), "the page uses {sink}");
    }
    assert!(body.contains("textContent"), "{body}");
    // What the script reads is here and carries the page's fields.
    let status = status(control);
    assert!(status.host.as_deref().is_some_and(|host| !host.is_empty()));
    assert!(status.transitions.is_empty(), "{:?}", status.transitions);

    let head = http(control, "HEAD", "/");
    assert_eq!((head.code, head.body.as_str()), (200, ""));
    assert!(head.headers.contains_key("content-security-policy"));
}

/// A TCP port that accepts connections and holds them open without a word: a TLS
/// handshake against it waits until its timeout.
struct Mute {
    stop: Arc<AtomicBool>,
}

impl Mute {
    fn open(ip: &str, port: u16) -> Mute {
        let listener = TcpListener::bind((ip, port)).expect("bind mute target");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Mute { stop }
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn readyz_is_503_until_the_first_probe_round_is_done_or_timed_out() {
    // A TLS probe whose handshake hangs for 20 s: the first round cannot finish before the
    // agent's first-round deadline (5 s), so it is not ready until then.
    let port = free_port();
    let _mute = Mute::open("127.0.0.43", port);
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:9"]

[[name]]
name = "slow.metrics.example"
targets = ["127.0.0.43"]
probes = [{{ kind = "tls", port = {port}, interval = "30s", timeout = "20s" }}]
"#
    );
    let (agent, control) = start_unready(&config);
    let started = Instant::now();
    let ready = get(control, "/readyz");
    assert_eq!(
        (ready.code, ready.body.as_str()),
        (503, "not ready\n"),
        "asked {:?} after start",
        started.elapsed()
    );
    assert!(!status(control).ready);
    // Alive all the same, and answering DNS.
    assert_eq!(get(control, "/healthz").code, 200);
    let response = ask_udp(
        agent.addr,
        &query("slow.metrics.example.", RecordType::A, false),
    );
    assert_eq!(addresses(&response), vec!["127.0.0.43".to_owned()]);
    wait_for("/readyz 200 after the first-round deadline", || {
        (get(control, "/readyz").code == 200).then_some(())
    });
    assert!(status(control).ready);
}

#[test]
fn silent_and_surplus_connections_do_not_hold_the_endpoint() {
    let upstream = Dnsmasq::start(&[]);
    let (_agent, control) = start(&registry_config(upstream.addr, ""));
    // Half a request on more connections than the endpoint serves at once.
    let mut idle: Vec<TcpStream> = (0..80)
        .map(|_| {
            let mut stream = TcpStream::connect(control).expect("connect");
            stream
                .write_all(b"GET /healthz HT")
                .expect("partial request");
            stream
        })
        .collect();
    let started = Instant::now();
    // The surplus ones are closed at once.
    let mut last = idle.pop().expect("a connection");
    last.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut rest = Vec::new();
    let read = last.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "a connection beyond the limit was not closed at once: {read:?}"
    );
    // The others when their header timeout (5 s) runs out.
    let mut first = idle.remove(0);
    first
        .set_read_timeout(Some(READY_DEADLINE))
        .expect("timeout");
    let read = first.read_to_end(&mut rest);
    let closed_after = started.elapsed();
    assert!(
        read.is_ok() && closed_after < Duration::from_secs(15),
        "a silent connection stayed open {closed_after:?}: {read:?}"
    );
    assert!(
        closed_after >= Duration::from_secs(4),
        "closed after {closed_after:?}, before the header timeout"
    );
    drop(idle);
    let health = wait_for("/healthz after the silent connections", || {
        let mut stream = TcpStream::connect(control).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).ok()?;
        raw.starts_with("HTTP/1.1 200").then_some(raw)
    });
    assert!(health.ends_with("ok\n"), "{health}");
}

// ---------------------------------------------------------------------------------------
// Metrics

const OWNED: &str = "reg.metrics.example.";

fn query_config(upstream: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
allow = ["127.0.0.1/32"]

[upstream]
servers = ["{upstream}"]
timeout = "1s"

[[name]]
name = "{OWNED}"
targets = ["127.0.0.40"]
probes = []
"#
    )
}

#[test]
fn metrics_pass_promtool_and_count_real_queries() {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let (agent, control) = start(&query_config(upstream.addr));
    let queries = "pathdns_dns_queries_total";
    let before = Scrape::take(control);
    promtool_check(&before.text);
    for name in [
        "pathdns_dns_response_duration_seconds",
        "pathdns_cache_hits_total",
        "pathdns_cache_misses_total",
        "pathdns_upstream_errors_total",
        "pathdns_config_reloads_total",
        "pathdns_path_changes_total",
        "pathdns_build_info",
    ] {
        assert!(
            before.text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{}",
            before.text
        );
    }
    assert_eq!(
        before.value(
            "pathdns_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // Owned: three A over UDP, one AAAA (no data) over TCP.
    for _ in 0..3 {
        let response = ask_udp(agent.addr, &query(OWNED, RecordType::A, false));
        assert_eq!(addresses(&response), vec!["127.0.0.40".to_owned()]);
    }
    let response = ask_tcp(agent.addr, &query(OWNED, RecordType::AAAA, true));
    assert_eq!(rcode(&response), ResponseCode::NoError);
    // Forwarded: one miss, then one hit.
    for _ in 0..2 {
        let response = ask_udp(
            agent.addr,
            &query("www.upstream.example.", RecordType::A, false),
        );
        assert_eq!(addresses(&response), vec!["192.0.2.1".to_owned()]);
    }
    // Refused: a client outside the allow list.
    let refused = query(OWNED, RecordType::A, false).to_vec().expect("encode");
    let raw = exchange_raw_udp_from("127.0.0.2:0", agent.addr, &refused, Duration::from_secs(5))
        .expect("an answer to a client outside the allow list");
    assert_eq!(raw[3] & 0x0f, 5, "REFUSED");
    // Error: two questions is FORMERR.
    let mut formerr = query(OWNED, RecordType::A, false).to_vec().expect("encode");
    formerr[5] = 2;
    let raw = exchange_raw_udp(agent.addr, &formerr, Duration::from_secs(5)).expect("FORMERR");
    assert_eq!(raw[3] & 0x0f, 1, "FORMERR");
    // Dropped: a response sent to the server.
    let mut response_packet = query(OWNED, RecordType::A, false).to_vec().expect("encode");
    response_packet[2] |= 0x80;
    assert!(exchange_raw_udp(agent.addr, &response_packet, Duration::from_millis(300)).is_none());
    // An upstream error: a silent upstream, then SERVFAIL.
    upstream.process.signal("STOP");
    let response = ask_udp(
        agent.addr,
        &query("silent.upstream.example.", RecordType::A, false),
    );
    upstream.process.signal("CONT");
    assert_eq!(rcode(&response), ResponseCode::ServFail);

    // Every response is timed after it is written: wait for the last one to be counted.
    let responses = 3 + 1 + 2 + 1 + 1 + 1;
    let duration_count = "pathdns_dns_response_duration_seconds_count";
    let after = wait_for("every response in the latency histogram", || {
        let scrape = Scrape::take(control);
        let counted = scrape.value(duration_count, &[]) - before.value(duration_count, &[]);
        (counted >= f64::from(responses)).then_some(scrape)
    });
    promtool_check(&after.text);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let cell = |source, qtype, rcode| [("source", source), ("qtype", qtype), ("rcode", rcode)];
    assert_eq!(
        delta(queries, &cell("owned", "A", "NOERROR")),
        3.0,
        "{}",
        after.text
    );
    assert_eq!(delta(queries, &cell("owned", "AAAA", "NOERROR")), 1.0);
    assert_eq!(delta(queries, &cell("forwarded", "A", "NOERROR")), 2.0);
    assert_eq!(delta(queries, &cell("forwarded", "A", "SERVFAIL")), 1.0);
    assert_eq!(delta(queries, &cell("refused", "A", "REFUSED")), 1.0);
    assert_eq!(delta(queries, &cell("error", "other", "FORMERR")), 1.0);
    let total: f64 = after
        .samples
        .iter()
        .filter(|(n, _, _)| n == queries)
        .map(|(_, _, v)| v)
        .sum::<f64>()
        - before
            .samples
            .iter()
            .filter(|(n, _, _)| n == queries)
            .map(|(_, _, v)| v)
            .sum::<f64>();
    assert_eq!(total, f64::from(responses), "no other response was counted");
    assert_eq!(delta(duration_count, &[]), f64::from(responses));
    assert_eq!(
        delta("pathdns_cache_misses_total", &[]),
        2.0,
        "www once, silent once"
    );
    assert_eq!(delta("pathdns_cache_hits_total", &[]), 1.0);
    assert_eq!(delta("pathdns_upstream_errors_total", &[]), 1.0);
    assert_eq!(delta("pathdns_dns_dropped_packets_total", &[]), 1.0);
    // The silent upstream took about the upstream timeout: the slowest bucket counts it, the
    // fastest does not.
    let bucket = "pathdns_dns_response_duration_seconds_bucket";
    assert!(delta(bucket, &[("le", "+Inf")]) == f64::from(responses));
    assert!(delta(bucket, &[("le", "0.5")]) <= f64::from(responses - 1));
    assert!(delta("pathdns_dns_response_duration_seconds_sum", &[]) >= 0.5);
}

const PROBED: &str = "probed.metrics.example";
const PRIMARY: &str = "127.0.0.41";
const BACKUP: &str = "127.0.0.42";

fn probe_config(port: u16) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:9"]
timeout = "500ms"

[[name]]
name = "{PROBED}"
targets = [{{ addr = "{PRIMARY}", priority = 1 }}, {{ addr = "{BACKUP}", priority = 2 }}]
probes = [{{ kind = "tcp", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}]
"#
    )
}

#[test]
fn probe_metrics_follow_a_target_that_goes_down() {
    let port = free_port();
    let primary = Port::open(PRIMARY, port);
    let _backup = Port::open(BACKUP, port);
    let (_agent, control) = start(&probe_config(port));
    let up = |target: &'static str| [("name", PROBED), ("target", target)];
    let runs = |target: &'static str, result: &'static str| {
        [
            ("name", PROBED),
            ("target", target),
            ("probe", "tcp"),
            ("result", result),
        ]
    };
    let healthy = wait_for("both targets up with a few probe runs", || {
        let scrape = Scrape::take(control);
        (scrape.value("pathdns_target_up", &up(PRIMARY)) == 1.0
            && scrape.value("pathdns_target_up", &up(BACKUP)) == 1.0
            && scrape.value("pathdns_probe_runs_total", &runs(PRIMARY, "ok")) >= 2.0)
            .then_some(scrape)
    });
    promtool_check(&healthy.text);
    let rtt = healthy.value(
        "pathdns_probe_rtt_seconds",
        &[("name", PROBED), ("target", PRIMARY), ("probe", "tcp")],
    );
    assert!(rtt > 0.0 && rtt < 1.0, "last RTT {rtt}");
    assert_eq!(
        healthy.value("pathdns_failovers_total", &[("name", PROBED)]),
        0.0
    );
    assert_eq!(
        healthy.value("pathdns_probe_runs_total", &runs(PRIMARY, "fail")),
        0.0
    );

    drop(primary);
    let down = wait_for("the primary down and a failover counted", || {
        let scrape = Scrape::take(control);
        (scrape.value("pathdns_target_up", &up(PRIMARY)) == 0.0
            && scrape.has("pathdns_target_up", &up(PRIMARY))
            && scrape.value("pathdns_failovers_total", &[("name", PROBED)]) == 1.0)
            .then_some(scrape)
    });
    promtool_check(&down.text);
    assert!(down.value("pathdns_probe_runs_total", &runs(PRIMARY, "fail")) >= 2.0);
    assert_eq!(down.value("pathdns_target_up", &up(BACKUP)), 1.0);
    assert!(
        down.value("pathdns_probe_runs_total", &runs(BACKUP, "ok"))
            > healthy.value("pathdns_probe_runs_total", &runs(BACKUP, "ok")),
        "the backup's probe runs keep counting"
    );

    // The transitions in /status: both targets up at start, then the primary down,
    // moving the answer to the backup group.
    let transitions = status(control).transitions;
    let failover = transitions
        .iter()
        .find(|t| t.target == PRIMARY && t.from == "up" && t.to == "down")
        .unwrap_or_else(|| panic!("no up -> down for the primary: {transitions:#?}"));
    assert_eq!(failover.name, PROBED);
    assert_eq!(failover.probe, "tcp");
    assert!(
        failover
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("connection refused")),
        "{failover:?}"
    );
    assert_eq!(failover.answer_from.as_deref(), Some("group 1"));
    assert_eq!(failover.answer_to.as_deref(), Some("group 2 (failed over)"));
    for target in [PRIMARY, BACKUP] {
        assert!(
            transitions
                .iter()
                .any(|t| t.target == target && t.from == "unknown" && t.to == "up"),
            "{target} never came up: {transitions:#?}"
        );
    }

    // `pathdns status` tells the same story.
    let output = pathdns(&["status", "--control", &control.to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let row = text
        .lines()
        .find(|l| l.starts_with(PROBED) && l.contains(PRIMARY))
        .unwrap_or_else(|| panic!("no row for the primary:\n{text}"));
    assert!(row.contains("down"), "{row}");
    assert!(row.contains("connection refused"), "{row}");
    let name_row = text
        .lines()
        .find(|l| l.starts_with(PROBED) && l.contains("failed over"))
        .unwrap_or_else(|| panic!("no failed-over name row:\n{text}"));
    assert!(name_row.contains(BACKUP), "{name_row}");
}

/// A reload clears the per-target gauges (a new config may drop targets); a target whose
/// probes carried over healthy must be back at once, not only when its verdict next
/// changes.
#[test]
fn a_reload_keeps_steady_targets_in_the_metrics() {
    let port = free_port();
    let _primary = Port::open(PRIMARY, port);
    let _backup = Port::open(BACKUP, port);
    let config = probe_config(port);
    let (mut agent, control) = start(&config);
    let up = |target: &'static str| [("name", PROBED), ("target", target)];
    wait_until("both targets up", || {
        let scrape = Scrape::take(control);
        scrape.value("pathdns_target_up", &up(PRIMARY)) == 1.0
            && scrape.value("pathdns_target_up", &up(BACKUP)) == 1.0
    });

    // Only the upstream timeout changes: the same probes, so their verdicts carry over.
    std::fs::write(
        &agent.config_path,
        with_test_control(&config).replace("timeout = \"500ms\"", "timeout = \"600ms\""),
    )
    .expect("rewrite the config");
    agent.process.signal("HUP");
    agent
        .process
        .wait_for_line("the reload to be logged", |line| {
            line.contains("reloaded").then_some(())
        });
    let after = Scrape::take(control);
    assert_eq!(
        after.value("pathdns_target_up", &up(PRIMARY)),
        1.0,
        "the primary is missing or not up right after the reload:\n{}",
        after.text
    );
    assert_eq!(after.value("pathdns_target_up", &up(BACKUP)), 1.0);
}

// ---------------------------------------------------------------------------------------
// `pathdns status` and `pathdns hosts`

#[test]
fn status_prints_names_and_targets_and_finds_the_endpoint_from_the_config() {
    let upstream = Dnsmasq::start(&[]);
    let config = registry_config(upstream.addr, "");
    let (agent, control) = start(&config);
    let expected = status(control);

    let output = pathdns(&["status", "--control", &control.to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("pathdns {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    for name in &expected.names {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{}  ", name.name)) && l.contains(&name.answer))
            .unwrap_or_else(|| panic!("no row for {} {}:\n{text}", name.name, name.answer));
        assert!(row.contains(&name.reason), "{row}");
    }
    for target in &expected.targets {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{}  ", target.name)) && l.contains(&target.addr)),
            "no row for target {} of {}:\n{text}",
            target.addr,
            target.name
        );
    }

    let output = pathdns(&["status", "--control", &control.to_string(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let parsed: StatusReport =
        serde_json::from_str(&stdout(&output)).expect("--json is a StatusReport");
    assert_eq!(parsed, expected);

    // From the config file: the harness's port 0 cannot be asked, a real address can.
    let path = agent.config_path.to_str().expect("utf-8 path");
    let output = pathdns(&["status", "--config", path]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("port 0"), "{}", stderr(&output));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pathdns.toml");
    std::fs::write(
        &file,
        format!("{config}\n[control]\nlisten = \"{control}\"\n"),
    )
    .expect("write config");
    let output = pathdns(&["status", "--config", file.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com"));
    std::fs::write(&file, format!("{config}\n[control]\nlisten = \"off\"\n")).expect("write");
    let output = pathdns(&["status", "--config", file.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("control endpoint is off"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn status_and_hosts_fail_clearly_when_no_agent_answers() {
    // A port nobody listens on: bound, then closed.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    for command in ["status", "hosts"] {
        let output = pathdns(&[command, "--control", &addr]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert!(stdout(&output).is_empty(), "{command}: {}", stdout(&output));
        let err = stderr(&output);
        assert!(
            err.contains(&format!(
                "cannot reach the pathdns control endpoint at {addr}"
            )),
            "{command}: {err}"
        );
    }
}

#[test]
fn hosts_prints_the_answers_as_hosts_lines() {
    let upstream = Dnsmasq::start(&[]);
    let (agent, control) = start(&registry_config(upstream.addr, ""));
    let output = pathdns(&["hosts", "--control", &control.to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);

    // name -> addresses, from the hosts lines.
    let mut lines: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let (Some(address), Some(name), None) = (words.next(), words.next(), words.next()) else {
            panic!("not a hosts line: {line:?}");
        };
        lines
            .entry(name.to_owned())
            .or_default()
            .insert(address.to_owned());
    }
    // The same, from the agent's DNS answers.
    let status = status(control);
    let mut answers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in &status.names {
        if name.name.starts_with("*.") || name.answer.starts_with("CNAME") {
            assert!(
                text.contains(&format!("# {}: ", name.name)),
                "no comment for {}:\n{text}",
                name.name
            );
            continue;
        }
        let mut found = BTreeSet::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            let response = ask_udp(agent.addr, &query(&format!("{}.", name.name), rtype, false));
            assert!(
                cname_targets(&response).is_empty(),
                "{} is a CNAME",
                name.name
            );
            found.extend(addresses(&response));
        }
        answers.insert(name.name.clone(), found);
    }
    assert_eq!(lines, answers, "hosts lines vs DNS answers:\n{text}");
    assert_eq!(
        lines.get("xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com"),
        Some(&BTreeSet::from(["10.94.205.198".to_owned()]))
    );
    assert_eq!(
        lines.get("artifacts.internal.example"),
        Some(&BTreeSet::from([
            "10.1.2.3".to_owned(),
            "fd00::1".to_owned()
        ]))
    );
}
