//! Issue 15 end to end: a download in flight when the primary's path breaks. pathdns in the
//! client namespace probes a primary and a backup registry (the `[[registry]]` preset with
//! the test CA); both also serve `GET /blob` slowly over HTTPS (tests/support/registry_v2.py).
//! A real client, curl, downloads it the way dockerd does: ask pathdns for the name, connect
//! to the answer (`curl --resolve`), and on failure ask again and retry 1 s later, resuming
//! (`-C -`). The router blackholes the primary mid-transfer.
//!
//! - abort_stalled on (the preset's default): pathdns ends the stalled connection, curl
//!   fails at once, asks again, gets the backup and completes; the time from the cut to the
//!   completed download is printed and must stay under 30 s.
//! - off: curl (no timeout of its own, like dockerd's blob reads) waits on the dead
//!   connection; 20 s after the cut it still has not retried nor received anything.
//! - a target wrongly marked down (only new connections to its port 443 dropped: the probes
//!   fail, the running transfer keeps flowing) is answered away from, and its transfer is
//!   NOT aborted.
//! - a stalled connection of another program (this test) to an unrelated address is never
//!   touched.
//!
//! Runs as root (CI); skipped loudly otherwise. Needs curl (tests/run.sh installs it).

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{self, TargetSpec, Topology, BACKUP, PRIMARY};
use common::registry::{config, BACKUP_ADDR, PRIMARY_ADDR, REALM, REGISTRY};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// A host no name points at: another program's connection to it must never be touched.
const OTHER: TargetSpec<'static> = ("other", "203.0.113.10/24", "203.0.113.1/24");
const OTHER_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const OTHER_PORT: u16 = 8080;

/// 4 MiB at 512 KiB/s: an 8 s download.
const BLOB_SIZE: u64 = 4 * 1024 * 1024;
const BLOB_RATE: u64 = 512 * 1024;

fn blob_args(size: u64, rate: u64) -> [String; 4] {
    [
        "--blob-size".into(),
        size.to_string(),
        "--blob-rate".into(),
        rate.to_string(),
    ]
}

fn start_server(topology: &Topology, target: &str, size: u64, rate: u64) -> Process {
    let args = blob_args(size, rate);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    topology.start_registry_with(target, REGISTRY, REALM, &args)
}

/// One A query for the registry name to `server`, from a socket in the client namespace.
fn resolve(ns: &str, server: SocketAddr) -> Result<String, String> {
    netns::run_in_ns(ns, || {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        let question = query(&format!("{REGISTRY}."), RecordType::A, false);
        let bytes = question.to_vec().map_err(|e| e.to_string())?;
        socket.send_to(&bytes, server).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let len = loop {
            let (len, _) = socket
                .recv_from(&mut buf)
                .map_err(|_| "timeout".to_owned())?;
            if buf[..2] == bytes[..2] {
                break len;
            }
        };
        let response = Message::from_vec(&buf[..len]).map_err(|e| e.to_string())?;
        if response.metadata.response_code != ResponseCode::NoError {
            return Err(format!("{:?}", response.metadata.response_code));
        }
        addresses(&response)
            .into_iter()
            .next()
            .ok_or_else(|| "empty answer".to_owned())
    })
}

/// One curl run of the [`Downloader`].
#[derive(Debug, Clone)]
struct Attempt {
    started: Instant,
    /// pathdns's answer it connected to.
    addr: String,
    ended: Option<Instant>,
    /// curl's exit code (`None` while running or when the test ended it).
    code: Option<i32>,
    stderr: String,
}

/// A dockerd-like client: resolve through pathdns, download with curl, and on failure
/// resolve again and retry 1 s later, resuming what it has.
struct Downloader {
    file: PathBuf,
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Downloader {
    fn start(topology: &Topology, agent: SocketAddr, file: &Path) -> Downloader {
        let curl = which("curl").unwrap_or_else(|| {
            panic!("curl is not installed: run `sudo tests/run.sh`, which installs it")
        });
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (ns, ca, out) = (
            topology.client.clone(),
            topology.ca_cert.clone(),
            file.to_owned(),
        );
        let (flag, sink) = (stop.clone(), attempts.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let addr = match resolve(&ns, agent) {
                    Ok(addr) => addr,
                    Err(err) => {
                        sink.lock().expect("attempts").push(Attempt {
                            started,
                            addr: String::new(),
                            ended: Some(Instant::now()),
                            code: None,
                            stderr: format!("resolve: {err}"),
                        });
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                let mut child = Command::new(which("ip").expect("ip"))
                    .args(["netns", "exec", &ns])
                    .arg(&curl)
                    .args(["--silent", "--show-error", "--fail", "--continue-at", "-"])
                    .arg("--resolve")
                    .arg(format!("{REGISTRY}:443:{addr}"))
                    .arg("--cacert")
                    .arg(&ca)
                    .arg("--output")
                    .arg(&out)
                    .arg(format!("https://{REGISTRY}/blob"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run curl");
                let index = {
                    let mut attempts = sink.lock().expect("attempts");
                    attempts.push(Attempt {
                        started,
                        addr,
                        ended: None,
                        code: None,
                        stderr: String::new(),
                    });
                    attempts.len() - 1
                };
                let status = loop {
                    if flag.load(Ordering::Relaxed) {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                    if let Some(status) = child.try_wait().expect("wait for curl") {
                        break Some(status);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                let stderr = child
                    .wait_with_output()
                    .map(|out| String::from_utf8_lossy(&out.stderr).trim().to_owned())
                    .unwrap_or_default();
                let success = status.is_some_and(|s| s.success());
                {
                    let mut attempts = sink.lock().expect("attempts");
                    let attempt = &mut attempts[index];
                    attempt.ended = Some(Instant::now());
                    attempt.code = status.and_then(|s| s.code());
                    attempt.stderr = stderr;
                }
                if success || status.is_none() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Downloader {
            file: file.to_owned(),
            stop,
            attempts,
            thread: Some(thread),
        }
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("attempts").clone()
    }

    fn bytes(&self) -> u64 {
        std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0)
    }

    /// When the download completed.
    fn completed(&self) -> Option<Instant> {
        self.attempts()
            .iter()
            .find(|a| a.code == Some(0))
            .and_then(|a| a.ended)
    }

    /// Waits until `condition` holds, failing after `within` with the attempts so far.
    fn wait(&self, what: &str, within: Duration, mut condition: impl FnMut(&Downloader) -> bool) {
        let deadline = Instant::now() + within;
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; {} bytes; attempts: {:#?}",
                self.bytes(),
                self.attempts()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("downloader thread");
        }
        self.attempts()
    }
}

impl Drop for Downloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The downloaded file is the whole blob, byte for byte (`i % 251`), however often it was
/// resumed and from which server.
fn assert_blob(file: &Path, size: u64) {
    let body = std::fs::read(file).expect("read the download");
    assert_eq!(body.len() as u64, size, "download size");
    if let Some(i) = body
        .iter()
        .enumerate()
        .position(|(i, b)| *b as usize != i % 251)
    {
        panic!("the download differs from the blob at byte {i}");
    }
}

/// Waits until pathdns's latest verdict on the registry's `addr` is `verdict` (`"target
/// up"`, `"target down"`).
fn wait_for_verdict(agent: &mut Agent, addr: &str, verdict: &str) {
    let needle = format!("name=\"{REGISTRY}\" addr={addr} ");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let lines = agent.process.lines();
        let last = lines.iter().rev().find(|line| {
            line.contains(&needle) && (line.contains("target up") || line.contains("target down"))
        });
        if last.is_some_and(|line| line.contains(verdict)) {
            return;
        }
        assert!(
            agent.process.is_running() && Instant::now() < deadline,
            "{addr}: never {verdict}:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until pathdns answers the registry name with `addr`.
fn wait_for_answer(topology: &Topology, agent: &Agent, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = resolve(&topology.client, agent.addr);
        if answer.as_deref() == Ok(addr) {
            return;
        }
        if Instant::now() > deadline {
            let lines = agent.process.lines();
            let tail = &lines[lines.len().saturating_sub(60)..];
            panic!(
                "the answer never became {addr} (last: {answer:?}); pathdns's log:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// pathdns's log line for every connection it ends.
const ENDED: &str = "ended a stalled connection";
/// pathdns's log line when it starts sweeping a down target's connections.
const SWEEPING: &str = "ending stalled connections to a down target";

/// `/status` from the control endpoint.
fn status(topology: &Topology, control: SocketAddr) -> pathdns::status::StatusReport {
    let (code, body) =
        netns::run_in_ns(&topology.client, || http_get(control, "/status")).expect("GET /status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("/status: {err}: {body}"))
}

/// The sum of `pathdns_connections_aborted_total` over the series for the registry name
/// and `target` (0 when there is none yet).
fn aborted(topology: &Topology, control: SocketAddr, target: &str) -> u64 {
    let (status, body) =
        netns::run_in_ns(&topology.client, || http_get(control, "/metrics")).expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    let name = format!("name=\"{REGISTRY}\"");
    let target = format!("target=\"{target}\"");
    body.lines()
        .filter(|line| line.starts_with("pathdns_connections_aborted_total{"))
        .filter(|line| line.contains(&name) && line.contains(&target))
        .filter_map(|line| line.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// The sockets `ss` lists in the client namespace towards `addr` (with TCP info), for the
/// record.
fn ss(topology: &Topology, addr: &str) -> String {
    let out = netns::ip_netns_exec(&topology.client, &["ss", "-tnio", "dst", addr]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Another program's connection (this test's) to [`OTHER_ADDR`]: made now, with its
/// request written once the path to it is blackholed, so that it is stalled with
/// unacknowledged data, as stalled as the curl's.
fn other_connection(topology: &Topology) -> TcpStream {
    let addr = SocketAddr::from((OTHER_ADDR, OTHER_PORT));
    netns::run_in_ns(&topology.client, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to the other")
    })
}

/// The kernel has not ended `stream`: no pending error, and a read would block.
fn assert_untouched(stream: &TcpStream) {
    assert!(
        stream.take_error().expect("SO_ERROR").is_none(),
        "the unrelated connection has an error"
    );
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 16];
    match std::io::Read::read(&mut &*stream, &mut buf) {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the unrelated connection was touched: read gave {other:?}"),
    }
}

/// The cut itself, and what both cases share: a download running on the primary, then the
/// primary (and the unrelated host) blackholed. Returns the agent, its control address,
/// the download, the unrelated connection and the moment of the cut.
struct Cut {
    agent: Agent,
    control: SocketAddr,
    download: Downloader,
    other: TcpStream,
    at: Instant,
    _servers: Vec<Process>,
    _dir: tempfile::TempDir,
}

fn cut_mid_transfer(topology: &Topology, registry: &str) -> Cut {
    let servers = vec![
        start_server(topology, "primary", BLOB_SIZE, BLOB_RATE),
        start_server(topology, "backup", BLOB_SIZE, BLOB_RATE),
        topology.start_tcp_listener("other", OTHER_PORT),
    ];
    let mut agent = topology.start_agent(&config(topology, "", registry));
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    wait_for_verdict(&mut agent, PRIMARY_ADDR, "target up");
    wait_for_verdict(&mut agent, BACKUP_ADDR, "target up");
    wait_for_answer(topology, &agent, PRIMARY_ADDR);
    let other = other_connection(topology);
    let dir = tempfile::tempdir().expect("temp dir");
    let download = Downloader::start(topology, agent.addr, &dir.path().join("blob"));
    download.wait("a quarter of the blob", Duration::from_secs(20), |d| {
        d.bytes() >= BLOB_SIZE / 4
    });
    let first = download.attempts();
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0].addr, PRIMARY_ADDR, "{first:#?}");
    let at = Instant::now();
    topology.blackhole("primary");
    topology.blackhole("other");
    // Unacknowledged data on the unrelated connection: it retransmits into the hole.
    std::io::Write::write_all(&mut &other, b"GET / HTTP/1.1\r\nHost: other\r\n")
        .expect("write to the other");
    Cut {
        agent,
        control,
        download,
        other,
        at,
        _servers: servers,
        _dir: dir,
    }
}

#[test]
fn on_a_download_in_flight_across_a_cut_completes_on_the_backup() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP, OTHER]) else {
        return;
    };
    let cut = cut_mid_transfer(&topology, "");
    let at_cut = cut.download.bytes();
    cut.download
        .wait("the download completes", Duration::from_secs(60), |d| {
            d.completed().is_some()
        });
    let completed = cut.download.completed().expect("completed");
    let attempts = cut.download.attempts();
    let first_end = attempts[0].ended.expect("the first attempt ended");
    let took = completed.saturating_duration_since(cut.at);
    let retried = attempts
        .get(1)
        .map(|a| a.started.saturating_duration_since(cut.at));
    eprintln!(
        "abort_stalled on: the cut at {at_cut} of {BLOB_SIZE} bytes; curl's connection to the \
         primary ended {:?} after the cut ({:?}: {}); it asked again {retried:?} after the \
         cut; the download completed {took:?} after the cut, in {} attempts: {:?}",
        first_end.saturating_duration_since(cut.at),
        attempts[0].code,
        attempts[0].stderr,
        attempts.len(),
        attempts
            .iter()
            .map(|a| (a.addr.as_str(), a.code))
            .collect::<Vec<_>>()
    );
    assert_blob(&cut.download.file, BLOB_SIZE);
    assert!(
        took < Duration::from_secs(30),
        "the download took {took:?} after the cut: {attempts:#?}"
    );
    assert_eq!(attempts[0].addr, PRIMARY_ADDR);
    let last = attempts.last().expect("attempts");
    assert_eq!(last.addr, BACKUP_ADDR, "{attempts:#?}");
    assert!(
        aborted(&topology, cut.control, PRIMARY_ADDR) >= 1,
        "no abort counted"
    );
    let log = cut.agent.process.lines();
    let primary = format!("remote={PRIMARY_ADDR}:443");
    assert!(
        log.iter()
            .any(|line| line.contains(ENDED) && line.contains(&primary)),
        "no abort logged:\n{}",
        log.join("\n")
    );
    // The last ones in /status (what `pathdns status` shows), with curl as the owner.
    let status = status(&topology, cut.control);
    let recent = status
        .abort_stalled
        .as_ref()
        .map(|a| a.recent.clone())
        .unwrap_or_default();
    let curl = recent
        .iter()
        .find(|c| c.remote == format!("{PRIMARY_ADDR}:443"))
        .unwrap_or_else(|| panic!("no aborted connection in /status: {recent:#?}"));
    assert_eq!(curl.name, REGISTRY, "{curl:#?}");
    eprintln!("in /status: {curl:?}");
    // The unrelated connection, stalled as long as curl's was, is still there.
    assert_untouched(&cut.other);
    assert!(
        log.iter()
            .all(|line| !(line.contains(ENDED) && line.contains(&OTHER_ADDR.to_string()))),
        "{}",
        log.join("\n")
    );
    assert_eq!(aborted(&topology, cut.control, &OTHER_ADDR.to_string()), 0);
}

/// What curl does without pathdns's help: nothing, for minutes. It has no read timeout
/// (like dockerd's blob reads); only its TCP keepalive (60 s idle, then the kernel's 9
/// probes 60 s apart: ~10 min) would end the connection (dockerd waited ~5 min). The test
/// documents that it is still waiting 20 s after the cut, its socket idle (`ss` printed),
/// then ends it.
#[test]
fn off_a_download_in_flight_across_a_cut_stays_stalled() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP, OTHER]) else {
        return;
    };
    let Cut {
        mut agent,
        control,
        download,
        other,
        at,
        // Named, not `..`: the servers and the download's directory must live on.
        _servers,
        _dir,
    } = cut_mid_transfer(&topology, "abort_stalled = false");
    wait_for_verdict(&mut agent, PRIMARY_ADDR, "target down");
    wait_for_answer(&topology, &agent, BACKUP_ADDR);
    let answered_backup = at.elapsed();
    // What was in flight at the cut has arrived (or never will) after a second.
    download.wait("a second after the cut", Duration::from_secs(5), |_| {
        at.elapsed() >= Duration::from_secs(1)
    });
    let stalled_at = download.bytes();
    download.wait("20 s after the cut", Duration::from_secs(25), |d| {
        assert!(
            d.completed().is_none() && d.attempts().len() == 1,
            "curl did not stay stalled: {:#?}",
            d.attempts()
        );
        at.elapsed() >= Duration::from_secs(20)
    });
    let sockets = ss(&topology, PRIMARY_ADDR);
    let bytes = download.bytes();
    eprintln!(
        "abort_stalled off: pathdns answered the backup {answered_backup:?} after the cut; \
         20 s after it curl still waits on the primary's connection with {bytes} of \
         {BLOB_SIZE} bytes (no retry, no error); its socket:\n{sockets}"
    );
    assert_eq!(bytes, stalled_at, "the stalled transfer made progress");
    let attempts = download.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert!(attempts[0].ended.is_none(), "{attempts:#?}");
    assert_eq!(aborted(&topology, control, PRIMARY_ADDR), 0);
    assert_untouched(&other);
    let attempts = download.stop();
    assert_eq!(attempts.len(), 1, "ended by the test: {attempts:#?}");
}

/// Only new connections to the primary's port 443 are dropped (SYNs, at the router): every
/// probe fails and the name is answered away from the primary, while the download that
/// already runs on it keeps flowing. It must not be aborted, with a short `stall_after`
/// (3 s) and long after the judge had its chance.
#[test]
fn a_flowing_transfer_to_a_target_wrongly_marked_down_is_not_aborted() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP]) else {
        return;
    };
    // 4 MiB at 256 KiB/s: 16 s, well past the verdict plus stall_after.
    let (size, rate) = (4 * 1024 * 1024, 256 * 1024);
    let _primary = start_server(&topology, "primary", size, rate);
    let _backup = start_server(&topology, "backup", size, rate);
    let mut agent = topology.start_agent(&config(&topology, "stall_after = \"3s\"", ""));
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    wait_for_verdict(&mut agent, PRIMARY_ADDR, "target up");
    wait_for_verdict(&mut agent, BACKUP_ADDR, "target up");
    wait_for_answer(&topology, &agent, PRIMARY_ADDR);
    let dir = tempfile::tempdir().expect("temp dir");
    let download = Downloader::start(&topology, agent.addr, &dir.path().join("blob"));
    download.wait("the transfer runs", Duration::from_secs(20), |d| {
        d.bytes() >= 256 * 1024
    });
    let blocked_at = Instant::now();
    netns::nft(
        &topology.router,
        &format!(
            "table ip pd_probe_block {{\n\
             \tchain forward {{\n\
             \t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tip daddr {PRIMARY_ADDR} tcp dport 443 tcp flags & (syn | ack) == syn drop\n\
             \t}}\n\
             }}\n"
        ),
    );
    wait_for_verdict(&mut agent, PRIMARY_ADDR, "target down");
    wait_for_answer(&topology, &agent, BACKUP_ADDR);
    let down_after = blocked_at.elapsed();
    let judged = Instant::now();
    // The judge runs while the target is down; give it stall_after and more.
    download.wait(
        "stall_after and 4 s more with the target down",
        Duration::from_secs(20),
        |d| {
            assert!(
                d.attempts().iter().all(|a| a.code.is_none_or(|c| c == 0)),
                "the flowing transfer failed: {:#?}",
                d.attempts()
            );
            judged.elapsed() >= Duration::from_secs(7)
        },
    );
    let running = download.completed().is_none();
    let at_judged = download.bytes();
    download.wait("the download completes", Duration::from_secs(40), |d| {
        d.completed().is_some() || d.attempts().iter().any(|a| a.ended.is_some())
    });
    let attempts = download.attempts();
    eprintln!(
        "wrongly marked down after {down_after:?} (probe SYNs dropped); the transfer still \
         ran 7 s later ({running}, {at_judged} of {size} bytes) and completed in {} \
         attempt(s): {:?}",
        attempts.len(),
        attempts
            .iter()
            .map(|a| (a.addr.as_str(), a.code, a.stderr.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(running, "the transfer ended before the judge's chance");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].addr, PRIMARY_ADDR);
    assert_eq!(attempts[0].code, Some(0), "{attempts:#?}");
    assert_blob(&download.file, size);
    assert_eq!(aborted(&topology, control, PRIMARY_ADDR), 0);
    let log = agent.process.lines();
    // The judge had its chance: pathdns swept the primary's connections while it was down.
    assert!(
        log.iter()
            .any(|line| line.contains(SWEEPING) && line.contains(PRIMARY_ADDR)),
        "pathdns never swept the wrongly-down primary:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().all(|line| !line.contains(ENDED)),
        "{}",
        log.join("\n")
    );
}
