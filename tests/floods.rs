//! Floods against the resource caps: many held TCP connections, one connection streaming
//! without reading, more distinct forwarded names than `upstream.max_in_flight` against a
//! slow upstream, and file descriptors exhausted under a low `nofile` limit.
//!
//! Each flood runs with a UDP prober asking for an owned name every 5 ms and waiting up to
//! 1 s for each answer (none may be lost), samples the agent's RSS from /proc while it
//! lasts, and ends by proving that the agent recovered: a fresh TCP connection and a
//! forwarded query are answered. The figures are printed (`--nocapture` shows them); the
//! bounds asserted are generous, because other builds may share the machine.
//!
//! Everything is on loopback; the upstream is `common::slow_upstream`.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::slow_upstream::SlowUpstream;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const OWNED: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
const OWNED_ADDRESS: &str = "10.94.205.198";
/// The agent's memory must stay under this during every flood.
const RSS_BOUND_KIB: u64 = 64 << 10;
/// The default `server.max_tcp_connections`.
const DEFAULT_TCP_CAP: usize = 256;

/// Floods run one at a time: each measures the agent's memory, CPU and losses, which a
/// flood beside it would distort.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static FLOODS: Mutex<()> = Mutex::new(());
    FLOODS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Raises this process's open-file limit (its children, the agent, inherit it).
fn raise_nofile(wanted: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= wanted {
        return;
    }
    // Raising the hard limit needs root, which CI has.
    let hard = hard.max(wanted);
    setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).unwrap_or_else(|err| {
        panic!("cannot raise the open-file limit to {wanted} (run as root): {err}")
    });
}

/// Asks for an owned name over UDP every 5 ms, each waited for up to 1 s.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProbeReport>,
}

#[derive(Debug)]
struct ProbeReport {
    sent: u64,
    lost: u64,
    slowest: Duration,
}

impl Prober {
    const PERIOD: Duration = Duration::from_millis(5);
    const WAIT: Duration = Duration::from_secs(1);

    fn start(agent: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind prober");
            let mut packet = query(OWNED, RecordType::A, false).to_vec().expect("encode");
            let mut report = ProbeReport {
                sent: 0,
                lost: 0,
                slowest: Duration::ZERO,
            };
            let mut buf = [0u8; 1500];
            let mut id: u16 = 0;
            while !flag.load(Ordering::Relaxed) {
                let sent_at = Instant::now();
                id = id.wrapping_add(1);
                packet[..2].copy_from_slice(&id.to_be_bytes());
                socket.send_to(&packet, agent).expect("prober send");
                report.sent += 1;
                let answered = loop {
                    let left = Self::WAIT.saturating_sub(sent_at.elapsed());
                    if left.is_zero() {
                        break false;
                    }
                    socket.set_read_timeout(Some(left)).expect("timeout");
                    match socket.recv(&mut buf) {
                        // The expected ID, NOERROR, one answer or more.
                        Ok(len) if len >= 12 && buf[..2] == id.to_be_bytes() => {
                            break buf[3] & 0x0f == 0 && buf[6..8] != [0, 0];
                        }
                        Ok(_) => continue,
                        Err(_) => break false,
                    }
                };
                if answered {
                    report.slowest = report.slowest.max(sent_at.elapsed());
                } else {
                    report.lost += 1;
                }
                std::thread::sleep(Self::PERIOD.saturating_sub(sent_at.elapsed()));
            }
            report
        });
        Prober { stop, thread }
    }

    fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("prober thread")
    }
}

/// Samples the agent's resident memory every 20 ms; reports the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        RssSampler { stop, thread }
    }

    /// The peak, in KiB.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("rss thread")
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time the process has used, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let after_name = &stat[stat.rfind(')').expect("stat format") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// The value of a counter from the agent's `/metrics`.
fn metric(agent: &Agent, name: &str) -> f64 {
    let control = agent
        .process
        .lines()
        .iter()
        .find_map(|line| control_addr(line))
        .expect("control endpoint address in the log");
    let mut stream = TcpStream::connect(control).expect("connect control");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: pathdns\r\nConnection: close\r\n\r\n")
        .expect("request metrics");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// One query over a new TCP connection, `None` if it is closed or silent for 2 s.
fn try_ask_tcp(server: SocketAddr, message: &Message) -> Option<Message> {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let bytes = message.to_vec().ok()?;
    stream.write_all(&(bytes.len() as u16).to_be_bytes()).ok()?;
    stream.write_all(&bytes).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut response).ok()?;
    Message::from_vec(&response).ok()
}

/// The agent serves again: a fresh TCP connection gets an owned answer (within `deadline`,
/// as connections of the flood are being closed), and a forwarded name is answered.
fn assert_recovered(agent: &Agent, deadline: Duration) {
    let started = Instant::now();
    let owned = loop {
        if let Some(response) = try_ask_tcp(agent.addr, &query(OWNED, RecordType::A, false)) {
            break response;
        }
        assert!(
            started.elapsed() < deadline,
            "no TCP answer within {deadline:?} after the flood"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(addresses(&owned), vec![OWNED_ADDRESS.to_owned()]);
    let tcp_after = started.elapsed();
    let forwarded = ask_udp(
        agent.addr,
        &query("fast.recovered.example.", RecordType::A, false),
    );
    assert_eq!(rcode(&forwarded), ResponseCode::NoError);
    assert_eq!(
        addresses(&forwarded),
        vec![SlowUpstream::ADDRESS.to_string()]
    );
    let forwarded_tcp = ask_tcp(
        agent.addr,
        &query("fast.recovered-tcp.example.", RecordType::A, false),
    );
    assert_eq!(rcode(&forwarded_tcp), ResponseCode::NoError);
    eprintln!("recovered: fresh TCP connection answered {tcp_after:?} after the flood ended; forwarded names answered over UDP and TCP");
}

/// What every flood is watched by: the owned-name prober and the RSS sampler.
struct Watch {
    prober: Prober,
    rss: RssSampler,
}

impl Watch {
    fn start(agent: &Agent) -> Watch {
        Watch {
            rss: RssSampler::start(agent.process.pid()),
            prober: Prober::start(agent.addr),
        }
    }

    /// After the flood: the prober lost nothing, memory stayed bounded, and the agent
    /// serves again.
    fn finish(self, flood: &str, agent: &Agent) {
        let probes = self.prober.finish();
        let peak_rss_kib = self.rss.finish();
        eprintln!(
            "{flood}: prober sent {} owned queries, lost {}, slowest answer {:?}; agent peak \
             RSS {:.1} MiB",
            probes.sent,
            probes.lost,
            probes.slowest,
            peak_rss_kib as f64 / 1024.0
        );
        assert!(probes.sent > 0);
        assert_eq!(
            probes.lost, 0,
            "{flood}: owned UDP queries lost: {probes:?}"
        );
        assert!(
            peak_rss_kib < RSS_BOUND_KIB,
            "{flood}: peak RSS {peak_rss_kib} KiB"
        );
        assert_recovered(agent, Duration::from_secs(10));
    }
}

/// Whether the server has closed `stream` (non-blocking): EOF or an error.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    }
}

#[test]
fn five_thousand_held_tcp_connections_past_the_cap_are_closed_at_once() {
    const CONNECTIONS: usize = 5_000;
    let _flood = one_at_a_time();
    raise_nofile(16_384);
    let upstream = SlowUpstream::start(Duration::from_millis(100));
    // Held connections are not closed for idling during the test.
    let agent = Agent::start(&upstream.agent_config("2s", "tcp_idle_timeout = \"60s\""));
    let watch = Watch::start(&agent);

    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect_timeout(&agent.addr, Duration::from_secs(10)).expect("connect"))
        .collect();
    let connected = started.elapsed();
    for stream in &held {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    // Past the cap, each connection is closed as soon as it is accepted.
    let mut open = vec![true; held.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (stream, open) in held.iter_mut().zip(open.iter_mut()) {
            if *open && closed_by_server(stream) {
                *open = false;
            }
        }
        let still_open = open.iter().filter(|open| **open).count();
        if still_open <= DEFAULT_TCP_CAP {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{still_open} connections still open after 30 s (cap {DEFAULT_TCP_CAP})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sorted = started.elapsed();

    // Held for a measured while: the cap's connections stay open, new ones are closed at
    // once (not left hanging), and UDP keeps answering.
    std::thread::sleep(Duration::from_secs(2));
    let mut fresh = TcpStream::connect(agent.addr).expect("connect during the flood");
    fresh
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let asked = Instant::now();
    let mut byte = [0u8; 1];
    let fresh_result = fresh.read(&mut byte);
    let fresh_closed_after = asked.elapsed();
    assert!(
        matches!(&fresh_result, Ok(0)) || fresh_result.is_err(),
        "a connection past the cap got {fresh_result:?}"
    );
    assert!(
        fresh_closed_after < Duration::from_secs(1),
        "a connection past the cap was closed only after {fresh_closed_after:?}"
    );
    let forwarded = ask_udp(
        agent.addr,
        &query("fast.during.example.", RecordType::A, false),
    );
    assert_eq!(rcode(&forwarded), ResponseCode::NoError);
    for (stream, open) in held.iter_mut().zip(open.iter_mut()) {
        if *open && closed_by_server(stream) {
            *open = false;
        }
    }
    let still_open = open.iter().filter(|open| **open).count();
    let rejected = metric(&agent, "pathdns_tcp_rejected_connections_total");
    eprintln!(
        "{CONNECTIONS} connections made in {connected:?}; {} closed by the server at once \
         (sorted out {sorted:?} after the first connect), {still_open} held open (the cap, \
         server.max_tcp_connections = {DEFAULT_TCP_CAP}); a new one during the flood closed \
         after {fresh_closed_after:?}; pathdns_tcp_rejected_connections_total {rejected}",
        CONNECTIONS - still_open
    );
    assert_eq!(
        still_open, DEFAULT_TCP_CAP,
        "the cap's connections stay open"
    );
    assert!(rejected >= (CONNECTIONS - DEFAULT_TCP_CAP) as f64);

    drop(held);
    watch.finish("5,000 held TCP connections", &agent);
}

#[test]
fn one_connection_streaming_100000_queries_without_reading_is_throttled_then_closed() {
    const QUERIES: usize = 100_000;
    /// One query in this many is a forwarded name (to the slow upstream).
    const FORWARDED_EVERY: usize = 50;
    let _flood = one_at_a_time();
    let upstream = SlowUpstream::start(Duration::from_secs(1));
    // Defaults: max_queries_per_connection 100, tcp_idle_timeout 10 s.
    let agent = Agent::start(&upstream.agent_config("2s", ""));
    let watch = Watch::start(&agent);

    let mut stream = {
        // A small receive buffer, so that unread answers back up to the agent soon.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(32 << 10).expect("rcvbuf");
        socket.connect(&agent.addr.into()).expect("connect");
        TcpStream::from(socket)
    };
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .expect("write timeout");
    let mut frames = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES {
        let name = if i % FORWARDED_EVERY == 0 {
            format!("s{i}.stream.example.")
        } else {
            OWNED.to_owned()
        };
        let mut message = query(&name, RecordType::A, false);
        message.metadata.id = i as u16;
        let bytes = message.to_vec().expect("encode");
        let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        frames.push(frame);
    }
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        let mut result = Ok(());
        for chunk in frames.chunks(100) {
            if let Err(err) = stream.write_all(&chunk.concat()) {
                result = Err(err);
                break;
            }
            sent += chunk.len();
        }
        // Never read: if everything was written, wait for the server to give up on us.
        while result.is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            if let Err(err) = stream.write_all(&frames_for_probe()) {
                result = Err(err);
            }
        }
        (sent, result, started.elapsed())
    });

    // Meanwhile other TCP clients are served at once.
    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    let other = ask_tcp(agent.addr, &query(OWNED, RecordType::A, false));
    let other_took = asked.elapsed();
    assert_eq!(addresses(&other), vec![OWNED_ADDRESS.to_owned()]);
    assert!(
        other_took < Duration::from_secs(1),
        "another TCP client waited {other_took:?}"
    );

    let (sent, result, closed_after) = writer.join().expect("writer thread");
    let err = result.expect_err("the server closes the connection");
    let forwarded_read = upstream.names();
    eprintln!(
        "streaming without reading: {sent} of {QUERIES} queries written (kernel buffers take \
         them); the agent read about {} of them ({forwarded_read} of the {} forwarded names \
         reached the upstream, at most {} waiting at once: max_queries_per_connection = 100) \
         before its unread answers stopped it; connection closed after {closed_after:?} \
         ({err}); another TCP client answered in {other_took:?} meanwhile",
        forwarded_read * FORWARDED_EVERY,
        QUERIES / FORWARDED_EVERY,
        upstream.max_waiting()
    );
    assert!(
        forwarded_read < QUERIES / FORWARDED_EVERY,
        "the agent read every query although no answer was read"
    );
    assert!(
        upstream.max_waiting() <= 100,
        "one connection had {} forwarded queries waiting at once",
        upstream.max_waiting()
    );
    assert!(
        closed_after < Duration::from_secs(40),
        "closed after {closed_after:?} (tcp_idle_timeout 10 s)"
    );

    watch.finish("one connection streaming without reading", &agent);
}

/// One owned query, framed: what the streaming client keeps writing until it fails.
fn frames_for_probe() -> Vec<u8> {
    let bytes = query(OWNED, RecordType::A, false).to_vec().expect("encode");
    [&(bytes.len() as u16).to_be_bytes()[..], &bytes].concat()
}

#[test]
fn ten_thousand_forwarded_names_against_a_3_s_upstream_overflow_to_servfail_at_once() {
    const NAMES: usize = 10_000;
    const CAP: usize = 1024;
    let _flood = one_at_a_time();
    raise_nofile(16_384);
    let upstream = SlowUpstream::start(Duration::from_secs(3));
    // A budget above the upstream's delay: the queries in flight get real answers.
    let agent = Agent::start(&upstream.agent_config("4500ms", ""));
    let watch = Watch::start(&agent);

    let socket = {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        UdpSocket::from(socket)
    };
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let receiving = socket.try_clone().expect("clone socket");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let receiver = std::thread::spawn(move || {
        let mut answers: Vec<Option<(u8, Instant)>> = vec![None; NAMES];
        let mut buf = [0u8; 1500];
        let mut count = 0;
        while !flag.load(Ordering::Relaxed) && count < NAMES {
            if let Ok(len) = receiving.recv(&mut buf) {
                let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                if len >= 12 && id < NAMES && answers[id].is_none() {
                    answers[id] = Some((buf[3] & 0x0f, Instant::now()));
                    count += 1;
                }
            }
        }
        answers
    });

    let packets: Vec<Vec<u8>> = (0..NAMES)
        .map(|i| {
            let mut message = query(&format!("n{i}.flood.example."), RecordType::A, false);
            message.metadata.id = i as u16;
            message.to_vec().expect("encode")
        })
        .collect();
    // About 5,000 a second: all sent before the first upstream answer (3 s).
    let started = Instant::now();
    let mut sent_at = Vec::with_capacity(NAMES);
    for (i, packet) in packets.iter().enumerate() {
        sent_at.push(Instant::now());
        socket.send_to(packet, agent.addr).expect("send");
        if i % 50 == 49 {
            let due = started + Duration::from_millis(10 * (i as u64 + 1) / 50);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    let sending = started.elapsed();
    // The answers in flight come after 3 s; give them (and a slow machine) time.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !receiver.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let answers = receiver.join().expect("receiver thread");

    let mut servfail_latency: Vec<Duration> = Vec::new();
    let (mut noerror, mut other) = (0, 0);
    for (answer, sent) in answers.iter().zip(&sent_at) {
        match answer {
            Some((0, _)) => noerror += 1,
            Some((2, at)) => servfail_latency.push(at.saturating_duration_since(*sent)),
            Some(_) => other += 1,
            None => {}
        }
    }
    servfail_latency.sort_unstable();
    let servfail = servfail_latency.len();
    let percentile = |p: usize| {
        servfail_latency
            .get((servfail * p / 100).min(servfail.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let overflows = metric(&agent, "pathdns_upstream_overflows_total");
    eprintln!(
        "{NAMES} distinct forwarded names sent in {sending:?}: {noerror} answered by the 3 s \
         upstream, {servfail} SERVFAIL at once (p50 {:?}, p99 {:?}, max {:?}), {other} other, \
         {} unanswered; upstream saw {} names, at most {} waiting at once \
         (upstream.max_in_flight = {CAP}); pathdns_upstream_overflows_total {overflows}",
        percentile(50),
        percentile(99),
        servfail_latency.last().copied().unwrap_or_default(),
        NAMES - noerror - servfail - other,
        upstream.names(),
        upstream.max_waiting(),
    );
    assert!(
        upstream.max_waiting() <= CAP,
        "{} forwarded names waited at once",
        upstream.max_waiting()
    );
    assert!(
        noerror >= CAP / 2,
        "only {noerror} answered by the upstream"
    );
    assert!(servfail >= NAMES / 2, "only {servfail} overflowed");
    assert!(
        noerror + servfail >= NAMES * 99 / 100,
        "{} unanswered",
        NAMES - noerror - servfail
    );
    assert!(
        percentile(99) < Duration::from_secs(1),
        "overflow SERVFAIL took {:?} (p99)",
        percentile(99)
    );
    assert!(
        overflows >= servfail as f64,
        "overflows {overflows} < {servfail}"
    );

    watch.finish("10,000 forwarded names against a 3 s upstream", &agent);
}

#[test]
fn with_file_descriptors_exhausted_under_nofile_64_the_agent_idles_and_recovers() {
    const CONNECTIONS: usize = 200;
    let _flood = one_at_a_time();
    assert!(
        which("prlimit").is_some(),
        "prlimit is not installed (Debian: util-linux)"
    );
    let upstream = SlowUpstream::start(Duration::from_millis(100));
    // Held connections are not closed for idling during the test.
    let mut agent = Agent::start_under(
        &upstream.agent_config("2s", "tcp_idle_timeout = \"60s\""),
        &[],
        &["prlimit", "--nofile=64:64", "--"],
    );
    agent
        .process
        .wait_for_line("a warning about the open-file limit", |line| {
            line.contains("open-file limit below").then_some(())
        });
    let pid = agent.process.pid();
    let watch = Watch::start(&agent);

    // More connections than descriptors: the agent takes what it can, the rest wait in
    // the listen backlog while accept() fails with EMFILE.
    let held: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect_timeout(&agent.addr, Duration::from_secs(10)).expect("connect"))
        .collect();
    let warning = agent.process.wait_for_line("accept() failing", |line| {
        (line.contains("accept failed") && line.contains("dns")).then(|| line.to_owned())
    });
    let before = cpu_time(pid);
    let measured_from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = cpu_time(pid).saturating_sub(before);
    let interval = measured_from.elapsed();
    let share = cpu.as_secs_f64() / interval.as_secs_f64();
    // A forwarded query needs a socket, and there is none: answered, not dropped.
    let forwarded = exchange_raw_udp(
        agent.addr,
        &query("fast.exhausted.example.", RecordType::A, false)
            .to_vec()
            .expect("encode"),
        Duration::from_secs(5),
    )
    .map(|raw| Message::from_vec(&raw).expect("decode"));
    let forwarded_rcode = forwarded.as_ref().map(rcode);
    let warnings = agent
        .process
        .lines()
        .iter()
        .filter(|line| line.contains("accept failed"))
        .count();
    eprintln!(
        "nofile 64, {CONNECTIONS} connections: accept() fails with EMFILE; agent CPU over \
         {interval:?} while exhausted: {cpu:?} ({:.1}% of a core); {warnings} warning(s) \
         logged; a forwarded query meanwhile: {forwarded_rcode:?}; first warning: {warning}",
        share * 100.0
    );
    assert!(
        share < 0.10,
        "the agent used {:.1}% of a core while descriptors were exhausted",
        share * 100.0
    );
    assert!(
        forwarded.is_some(),
        "a forwarded query got no answer while exhausted"
    );

    drop(held);
    watch.finish("file descriptors exhausted", &agent);
    agent.process.wait_for_line("accepts to resume", |line| {
        line.contains("accepting connections again").then_some(())
    });
}

#[test]
fn a_forwarded_query_past_max_in_flight_gets_servfail_at_once_and_is_counted() {
    let _flood = one_at_a_time();
    let upstream = SlowUpstream::start(Duration::from_secs(2));
    let config = upstream
        .agent_config("3s", "")
        .replace("timeout = \"3s\"", "timeout = \"3s\"\nmax_in_flight = 2");
    let agent = Agent::start(&config);
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let addr = agent.addr;
            std::thread::spawn(move || {
                ask_udp(
                    addr,
                    &query(&format!("w{i}.cap.example."), RecordType::A, false),
                )
            })
        })
        .collect();
    let deadline = Instant::now() + READY_DEADLINE;
    while upstream.names() < 2 {
        assert!(
            Instant::now() < deadline,
            "the upstream never saw both queries"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let asked = Instant::now();
    let overflow = ask_udp(
        agent.addr,
        &query("third.cap.example.", RecordType::A, false),
    );
    let took = asked.elapsed();
    let over_tcp = ask_tcp(
        agent.addr,
        &query("fourth.cap.example.", RecordType::A, false),
    );
    eprintln!("past max_in_flight = 2: SERVFAIL after {took:?}");
    assert_eq!(rcode(&overflow), ResponseCode::ServFail);
    assert_eq!(rcode(&over_tcp), ResponseCode::ServFail);
    assert!(took < Duration::from_millis(500), "SERVFAIL after {took:?}");
    for thread in waiting {
        let answer = thread.join().expect("waiting query");
        assert_eq!(rcode(&answer), ResponseCode::NoError);
    }
    assert_eq!(metric(&agent, "pathdns_upstream_overflows_total"), 2.0);
    assert_eq!(
        upstream.names(),
        2,
        "the overflowing queries never went upstream"
    );
}
