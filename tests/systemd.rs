//! systemd's notify protocol, seen from a real unix datagram socket: READY and STATUS at
//! start, WATCHDOG while the DNS listener answers (and not while it is frozen, after which
//! `pathdns_watchdog_late_total` has counted the late ping), RELOADING then READY on
//! SIGHUP, STOPPING on SIGTERM.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:5399"]

[[name]]
name = "reg.test.example"
targets = ["192.0.2.10"]
"#;

/// Every notify message the agent sent, with when it arrived.
#[derive(Clone, Default)]
struct Notifications(Arc<Mutex<Vec<(Instant, String)>>>);

impl Notifications {
    fn listen(socket: UnixDatagram) -> Notifications {
        let received = Notifications::default();
        let sink = received.0.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(len) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                sink.lock()
                    .expect("notifications")
                    .push((Instant::now(), text));
            }
        });
        received
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().expect("notifications").clone()
    }

    /// Waits for a message containing `needle` that arrived after `since`.
    fn wait_for(&self, needle: &str, since: Instant) -> String {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some((_, text)) = self
                .all()
                .into_iter()
                .find(|(at, text)| *at >= since && text.contains(needle))
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} after {since:?}; got {:?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn count(&self, needle: &str, from: Instant, to: Instant) -> usize {
        self.all()
            .iter()
            .filter(|(at, text)| *at >= from && *at < to && text.contains(needle))
            .count()
    }
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "freezes the listeners: needs the binary built with --features fault-injection (tests/run.sh does)"
)]
fn notify_sequence_ready_status_watchdog_reload_and_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    let notes = Notifications::listen(socket);
    let started = Instant::now();
    let notify_socket = path.to_str().expect("utf-8 path");
    // 400 ms watchdog: pings every 200 ms.
    let mut agent = Agent::start_with_env(
        CONFIG,
        &[
            ("NOTIFY_SOCKET", notify_socket),
            ("WATCHDOG_USEC", "400000"),
            ("PATHDNS_FAULT_INJECTION", "1"),
        ],
    );

    let ready = notes.wait_for("READY=1", started);
    assert!(ready.contains("STATUS=1 names"), "{ready}");
    let first_ping = Instant::now();
    notes.wait_for("WATCHDOG=1", first_ping);
    notes.wait_for("WATCHDOG=1", Instant::now());

    let before_reload = Instant::now();
    agent.process.signal("HUP");
    let reloading = notes.wait_for("RELOADING=1", before_reload);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready_again = notes.wait_for("READY=1", before_reload);
    assert!(ready_again.contains("STATUS="), "{ready_again}");

    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    let late = || -> Option<u64> {
        let (_, text) = http_get(control, "/metrics")?;
        text.lines()
            .find_map(|l| l.strip_prefix("pathdns_watchdog_late_total "))?
            .parse()
            .ok()
    };
    let late_before = wait_for("pathdns_watchdog_late_total", late);

    // Freeze the DNS listener: the watchdog stops being fed.
    agent.process.signal("USR2");
    agent.process.wait_for_line("the freeze", |line| {
        line.contains("frozen=true").then_some(())
    });
    // Let a ping already in flight land, then watch a window of 1.5 s (seven intervals).
    let quiet_from = Instant::now() + Duration::from_millis(600);
    std::thread::sleep(Duration::from_millis(2100));
    let pings_frozen = notes.count("WATCHDOG=1", quiet_from, Instant::now());
    assert_eq!(pings_frozen, 0, "the watchdog was fed while DNS was frozen");
    agent
        .process
        .wait_for_line("the watchdog's complaint", |line| {
            line.contains("did not answer the watchdog").then_some(())
        });
    // Thaw: pings resume.
    agent.process.signal("USR2");
    let thawed = Instant::now();
    notes.wait_for("WATCHDOG=1", thawed);
    // The first ping after the freeze came over 2 s after the last one: a near miss.
    let late_after = wait_for("the late ping counted", || {
        late().filter(|count| *count > late_before)
    });
    agent
        .process
        .wait_for_line("the late ping's warning", |line| {
            line.contains("watchdog ping late").then_some(())
        });
    eprintln!("late watchdog pings: {late_before} before the freeze, {late_after} after");

    let before_stop = Instant::now();
    agent.process.signal("TERM");
    notes.wait_for("STOPPING=1", before_stop);
    let pings = notes.count("WATCHDOG=1", started, Instant::now());
    eprintln!("{pings} watchdog pings; none during the 1.5 s freeze");
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_agent_still_serves() {
    let mut agent = Agent::start(CONFIG);
    let response = ask_udp(
        agent.addr,
        &query("reg.test.example.", hickory_proto::rr::RecordType::A, false),
    );
    assert_eq!(addresses(&response), vec!["192.0.2.10".to_owned()]);
    agent.process.signal("HUP");
    agent
        .process
        .wait_for_line("the reload", |line| line.contains("reloaded").then_some(()));
    assert!(agent.process.is_running());
}
