//! Socket activation outside a booted systemd: `systemd-socket-activate` (systemd's own
//! tool) binds UDP and TCP and passes them with LISTEN_FDS/LISTEN_FDNAMES, the way
//! pathdns.socket does. A bash loop holds them, as PID 1 does, and starts pathdns again
//! whenever it exits: pathdns must serve the passed sockets without binding its own, answer
//! queries that arrived before it ran, lose no query across a SIGTERM restart under load,
//! and answer, after a `kill -9`, the queries sent while no process ran. And the fd store
//! protocol, seen from a real notify socket: sockets pathdns binds itself are stored
//! (FDSTORE=1, FDNAME=), a stored socket passed back is not stored again, and a reload
//! that drops an address releases its stored sockets (FDSTOREREMOVE=1).

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use common::*;

const OWNED: &str = "reg.test.example";

fn config(ports: &[u16]) -> String {
    let listen: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    with_test_control(&format!(
        r#"
[server]
listen = [{}]

[upstream]
servers = ["127.0.0.1:5399"]

[[name]]
name = "{OWNED}"
targets = ["192.0.2.10"]
probes = []
"#,
        listen.join(", ")
    ))
}

/// The socket holder: systemd-socket-activate binds UDP, passes it to a second one that
/// binds TCP, which passes both to bash; bash keeps them and runs pathdns on them again
/// after each exit, once the file `go` exists (the test's go-ahead).
struct Holder {
    process: Process,
    dir: tempfile::TempDir,
    port: u16,
}

impl Holder {
    /// `names`: the passed sockets' names (LISTEN_FDNAMES) for a port, UDP then TCP.
    fn start(names: impl Fn(u16) -> [String; 2], env: &[(&str, &str)]) -> Option<Holder> {
        let Some(activate) = which("systemd-socket-activate") else {
            eprintln!("SKIPPED: systemd-socket-activate is missing (Debian: systemd)");
            return None;
        };
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("pathdns.toml");
        std::fs::write(&config_path, config(&[port])).expect("write config");
        std::fs::write(dir.path().join("go"), "").expect("go");
        let listen = format!("127.0.0.1:{port}");
        let script = r#"while :; do
            LISTEN_PID= "$0" run --config "$1" &
            echo "pathdns started pid=$!" >&2
            wait $!
            echo "pathdns exited" >&2
            while [ ! -e "$2/go" ]; do sleep 0.02; done
        done"#;
        let [udp_name, tcp_name] = names(port);
        let mut command = Command::new(&activate);
        command.args(["-l", &listen, "-d", "--"]);
        command
            .arg(&activate)
            .args(["-l", &listen, &format!("--fdname={udp_name}:{tcp_name}")]);
        command.args(["-E", "PATHDNS_LOG=info"]);
        for (key, value) in env {
            command.args(["-E", &format!("{key}={value}")]);
        }
        command.args(["--", "bash", "-c", script, env!("CARGO_BIN_EXE_pathdns")]);
        command.arg(&config_path).arg(dir.path());
        let mut process = Process::spawn("systemd-socket-activate", &mut command);
        // The UDP one; the first datagram there makes it run the second, which binds TCP.
        let want = format!("Listening on {listen} as 3.");
        process.wait_for_line("the UDP socket bound", |line| {
            line.contains(&want).then_some(())
        });
        Some(Holder { process, dir, port })
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn count(&self, needle: &str) -> usize {
        self.process
            .lines()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// How many times pathdns exited (bash's own lines, not its script echoed).
    fn exits(&self) -> usize {
        let lines = self.process.lines();
        lines
            .iter()
            .filter(|l| l.as_str() == "pathdns exited")
            .count()
    }

    /// The pid of the pathdns started last.
    fn pid(&self) -> u32 {
        let lines = self.process.lines();
        let line = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("pathdns started pid="))
            .expect("a pathdns was started");
        line.trim().parse().expect("pid")
    }

    fn served_from_systemd(&self) -> usize {
        let line = format!(
            "listening udp=127.0.0.1:{0} tcp=127.0.0.1:{0} from_systemd=(true, true)",
            self.port
        );
        self.count(&line)
    }

    /// pathdns is not started again after it exits until [`Holder::release`].
    fn hold(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("go"));
    }

    fn release(&self) {
        std::fs::write(self.dir.path().join("go"), "").expect("go");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("holder's stderr:\n{}", self.process.lines().join("\n"));
        }
        // The current pathdns (bash's child) goes too; bash is killed by Process's drop.
        if let Some(pid) = self
            .process
            .lines()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("pathdns started pid=").map(str::to_owned))
        {
            self.hold();
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// What the load clients saw.
#[derive(Default)]
struct Figures {
    sent: AtomicU64,
    noerror: AtomicU64,
    other: AtomicU64,
    lost: AtomicU64,
    max_latency_us: AtomicU64,
}

/// Clients that each send a query and wait for its answer (5 s, as dnsperf's default
/// timeout), one after the other, until stopped.
fn load(
    server: SocketAddr,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Figures>, Vec<std::thread::JoinHandle<()>>) {
    let figures = Arc::new(Figures::default());
    let threads = (0..clients)
        .map(|_| {
            let (figures, stop) = (figures.clone(), stop.clone());
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
                socket
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                while !stop.load(Ordering::Relaxed) {
                    one_query(&socket, server, &figures);
                }
            })
        })
        .collect();
    (figures, threads)
}

fn one_query(socket: &UdpSocket, server: SocketAddr, figures: &Figures) {
    let message = query(OWNED, RecordType::A, false);
    let bytes = message.to_vec().expect("encode");
    let started = Instant::now();
    socket.send_to(&bytes, server).expect("send");
    figures.sent.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 1500];
    while started.elapsed() < Duration::from_secs(5) {
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let Ok(response) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        if response.metadata.id != message.metadata.id {
            continue; // a late answer to an earlier query of this client
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        figures.max_latency_us.fetch_max(micros, Ordering::Relaxed);
        if rcode(&response) == ResponseCode::NoError && !addresses(&response).is_empty() {
            figures.noerror.fetch_add(1, Ordering::Relaxed);
        } else {
            figures.other.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    figures.lost.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn serves_the_passed_sockets_and_loses_no_query_across_restart_and_crash() {
    let socket_unit = |_| ["pathdns.socket".to_owned(), "pathdns.socket".to_owned()];
    let Some(holder) = Holder::start(socket_unit, &[]) else {
        return;
    };
    let server = holder.addr();
    // pathdns is not running yet: this query waits in the passed socket and starts it.
    let first = ask_udp(server, &query(OWNED, RecordType::A, false));
    assert_eq!(
        addresses(&first),
        ["192.0.2.10"],
        "the query that started pathdns"
    );
    wait_until("pathdns serving systemd's sockets", || {
        holder.served_from_systemd() == 1
    });
    assert_eq!(
        addresses(&ask_tcp(server, &query(OWNED, RecordType::A, false))),
        ["192.0.2.10"]
    );
    let lines = holder.process.lines().join("\n");
    assert!(
        lines.contains("origin=SocketUnit(\"pathdns.socket\")"),
        "{lines}"
    );
    assert!(
        !lines.contains("FDSTORE"),
        "nothing to store without NOTIFY_SOCKET"
    );

    // SIGTERM under load: every query is answered, by the old process or the new one.
    let stop = Arc::new(AtomicBool::new(false));
    let (figures, clients) = load(server, 4, stop.clone());
    wait_until("load running", || {
        figures.noerror.load(Ordering::Relaxed) > 500
    });
    let pid = holder.pid();
    let restarted_at = Instant::now();
    kill("TERM", pid);
    wait_until("the next pathdns serving", || {
        holder.served_from_systemd() == 2
    });
    let gap = restarted_at.elapsed();
    let after = figures.noerror.load(Ordering::Relaxed);
    wait_until("answers from the new process", || {
        figures.noerror.load(Ordering::Relaxed) > after + 500
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    let (sent, noerror, other, lost, max) = (
        figures.sent.load(Ordering::Relaxed),
        figures.noerror.load(Ordering::Relaxed),
        figures.other.load(Ordering::Relaxed),
        figures.lost.load(Ordering::Relaxed),
        figures.max_latency_us.load(Ordering::Relaxed),
    );
    eprintln!(
        "SIGTERM restart under load (4 clients): {sent} sent, {noerror} NOERROR, {other} other, \
         {lost} lost; restart took {gap:?}; slowest answer {max} us"
    );
    assert_eq!(
        (lost, other),
        (0, 0),
        "no query lost or failed across the restart"
    );
    assert_eq!(noerror, sent);

    // kill -9, and no process for a while: queries sent meanwhile wait in the socket.
    holder.hold();
    kill("KILL", holder.pid());
    wait_until("pathdns gone", || holder.exits() == 2);
    let waiting: Vec<(UdpSocket, Message)> = (0..50)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let message = query(OWNED, RecordType::A, false);
            socket
                .send_to(&message.to_vec().expect("encode"), server)
                .expect("send");
            (socket, message)
        })
        .collect();
    let released_at = Instant::now();
    holder.release();
    let mut answered = 0;
    for (socket, message) in &waiting {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 1500];
        let len = socket
            .recv(&mut buf)
            .expect("an answer to a query sent while no pathdns ran");
        let response = Message::from_vec(&buf[..len]).expect("decode");
        assert_eq!(response.metadata.id, message.metadata.id);
        assert_eq!(addresses(&response), ["192.0.2.10"]);
        answered += 1;
    }
    eprintln!(
        "kill -9: {answered} of {} queries sent while no pathdns ran answered, the last {:?} \
         after the next one was let start",
        waiting.len(),
        released_at.elapsed()
    );
    assert_eq!(holder.served_from_systemd(), 3);
}

/// Every notify message, with the number of file descriptors that came with it.
type Notes = Arc<Mutex<Vec<(String, usize)>>>;

fn notify_socket(path: &Path) -> Notes {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    let socket = UnixDatagram::bind(path).expect("bind notify socket");
    let notes: Notes = Arc::default();
    let sink = notes.clone();
    std::thread::spawn(move || loop {
        let mut buf = [0u8; 4096];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 8]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let Ok(message) = recvmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        ) else {
            return;
        };
        let mut fds = 0;
        for cmsg in message.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                fds += received.len();
                for fd in received {
                    let _ = nix::unistd::close(fd);
                }
            }
        }
        let len = message.bytes;
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        sink.lock().expect("notes").push((text, fds));
    });
    notes
}

fn has(notes: &Notes, text: &str, fds: usize) -> bool {
    notes
        .lock()
        .expect("notes")
        .iter()
        .any(|(t, n)| t == text && *n == fds)
}

#[test]
fn stores_its_own_sockets_and_releases_removed_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = dir.path().join("notify");
    let notes = notify_socket(&notify);
    let notify = notify.to_str().expect("utf-8 path").to_owned();
    // The passed UDP socket is named as a stored one (it came back from the fd store), the
    // TCP one as a socket unit's.
    let names = |port| {
        [
            format!("pathdns-udp-127.0.0.1-{port}"),
            "pathdns.socket".to_owned(),
        ]
    };
    let Some(holder) = Holder::start(names, &[("NOTIFY_SOCKET", &notify)]) else {
        return;
    };
    let stored_udp = format!("pathdns-udp-127.0.0.1-{}", holder.port);
    let server = holder.addr();
    assert_eq!(
        addresses(&ask_udp(server, &query(OWNED, RecordType::A, false))),
        ["192.0.2.10"]
    );
    wait_until("pathdns serving systemd's sockets", || {
        holder.served_from_systemd() == 1
    });
    wait_until("READY=1", || {
        notes
            .lock()
            .expect("notes")
            .iter()
            .any(|(t, _)| t.contains("READY=1"))
    });
    let all = || format!("{:?}", notes.lock().expect("notes"));
    assert!(
        !all().contains("FDSTORE=1"),
        "sockets from systemd are not stored again: {}",
        all()
    );

    // A reload that moves to another port: the new sockets are bound and stored, the old
    // stored ones released.
    let next = free_port();
    let config_path = holder.dir.path().join("pathdns.toml");
    std::fs::write(&config_path, config(&[next])).expect("rewrite config");
    kill("HUP", holder.pid());
    for (text, fds) in [
        (
            format!("FDSTORE=1\nFDNAME=pathdns-udp-127.0.0.1-{next}\n"),
            1,
        ),
        (
            format!("FDSTORE=1\nFDNAME=pathdns-tcp-127.0.0.1-{next}\n"),
            1,
        ),
        (format!("FDSTOREREMOVE=1\nFDNAME={stored_udp}\n"), 0),
    ] {
        wait_until(&format!("{text:?} with {fds} fd(s); got {}", all()), || {
            has(&notes, &text, fds)
        });
    }
    let moved: SocketAddr = ([127, 0, 0, 1], next).into();
    assert_eq!(
        addresses(&ask_udp(moved, &query(OWNED, RecordType::A, false))),
        ["192.0.2.10"]
    );
    assert_eq!(
        addresses(&ask_tcp(moved, &query(OWNED, RecordType::A, false))),
        ["192.0.2.10"]
    );
    assert!(
        !all().contains("FDSTOREREMOVE=1\nFDNAME=pathdns.socket"),
        "a socket unit's socket is not in the store: {}",
        all()
    );
    eprintln!("notify messages: {}", all());
    holder.hold();
    holder.process.signal("KILL");
}
