//! Failover on loopback: TCP-probed targets on 127.0.0.x addresses that the test opens and
//! closes, every `when_all_down` policy, and answers from the primary group at start.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const NAME: &str = "reg.test.example.";
const PRIMARY: &str = "127.0.0.10";
const BACKUP: &str = "127.0.0.11";

fn config(upstream: SocketAddr, port: u16, policy: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["{upstream}"]
timeout = "1s"

[[name]]
name = "{NAME}"
targets = [{{ addr = "{PRIMARY}", priority = 1 }}, {{ addr = "{BACKUP}", priority = 2 }}]
probes = [{{ kind = "tcp", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}]
{policy}

[[name]]
name = "fallback.test.example"
targets = ["127.0.0.20"]
"#
    )
}

/// Polls until the answer for NAME satisfies `want`; returns how long it took.
fn wait_for_answer(
    agent: &Agent,
    what: &str,
    want: impl Fn(&hickory_proto::op::Message) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
        if want(&response) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < READY_DEADLINE,
            "never saw {what}; last answer {:?} {:?}",
            rcode(&response),
            response.answers
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answers(addr: &'static str) -> impl Fn(&hickory_proto::op::Message) -> bool {
    move |response| addresses(response) == vec![addr.to_owned()]
}

struct Setup {
    _upstream: Dnsmasq,
    agent: Agent,
    port: u16,
}

fn setup(policy: &str) -> (Setup, Port, Port) {
    let upstream = Dnsmasq::start(&[("reg.test.example", "192.0.2.55")]);
    let port = free_port();
    let primary = Port::open(PRIMARY, port);
    let backup = Port::open(BACKUP, port);
    let agent = Agent::start(&config(upstream.addr, port, policy));
    let setup = Setup {
        _upstream: upstream,
        agent,
        port,
    };
    (setup, primary, backup)
}

#[test]
fn answers_come_from_the_primary_group_from_the_first_query() {
    let (setup, _primary, _backup) = setup("");
    let response = ask_udp(setup.agent.addr, &query(NAME, RecordType::A, false));
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec![PRIMARY.to_owned()]);
    assert_eq!(
        response.answers[0].ttl, 3,
        "health-checked answers carry a short TTL"
    );
}

#[test]
fn a_down_primary_fails_over_to_the_backup_and_back() {
    let (setup, primary, _backup) = setup("");
    wait_for_answer(&setup.agent, "the primary", answers(PRIMARY));
    drop(primary);
    let to_backup = wait_for_answer(&setup.agent, "the backup", answers(BACKUP));
    let primary = Port::open(PRIMARY, setup.port);
    let back = wait_for_answer(&setup.agent, "the primary again", answers(PRIMARY));
    eprintln!("failover after {to_backup:?}, back after {back:?} (interval 200ms, fall 2, rise 2)");
    assert!(to_backup < Duration::from_secs(5));
    assert!(back < Duration::from_secs(5));
    drop(primary);
}

fn all_down(policy: &str) -> (Setup, hickory_proto::op::Message) {
    let (setup, primary, backup) = setup(policy);
    wait_for_answer(&setup.agent, "the primary", answers(PRIMARY));
    drop(primary);
    wait_for_answer(&setup.agent, "the backup", answers(BACKUP));
    drop(backup);
    let agent = &setup.agent;
    let started = Instant::now();
    // Wait for the policy to take effect: the log reports every target down, and then the
    // answer stops being the plain backup (or, for "keep", stays it). The query is sent only
    // after the log line: one sent before it may still get the backup's table.
    let keeps = policy.contains("keep");
    let response = loop {
        let logged = agent
            .process
            .lines()
            .iter()
            .any(|line| line.contains("every target is down"));
        if logged {
            let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
            let plain_backup =
                response.metadata.authoritative && addresses(&response) == vec![BACKUP.to_owned()];
            if keeps || !plain_backup {
                break response;
            }
        }
        assert!(started.elapsed() < READY_DEADLINE, "never all down");
        std::thread::sleep(Duration::from_millis(20));
    };
    (setup, response)
}

#[test]
fn when_all_down_keep_serves_the_last_healthy_answer() {
    let (_setup, response) = all_down("when_all_down = \"keep\"");
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec![BACKUP.to_owned()]);
}

#[test]
fn when_all_down_cname_answers_the_fallback_name() {
    let (_setup, response) =
        all_down("when_all_down = \"cname\"\nfallback = \"fallback.test.example\"");
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(
        cname_targets(&response),
        vec!["fallback.test.example.".to_owned()]
    );
    assert_eq!(addresses(&response), vec!["127.0.0.20".to_owned()]);
}

#[test]
fn when_all_down_forward_asks_upstream() {
    let (_setup, response) = all_down("when_all_down = \"forward\"");
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert!(!response.metadata.authoritative, "a forwarded answer");
    assert_eq!(addresses(&response), vec!["192.0.2.55".to_owned()]);
}

#[test]
fn when_all_down_servfail_answers_servfail() {
    let (_setup, response) = all_down("when_all_down = \"servfail\"");
    assert_eq!(rcode(&response), ResponseCode::ServFail);
    assert!(response.answers.is_empty());
}

/// A server that answers every connection with `reply` and closes it; with `reply` empty,
/// it resets the connection (SO_LINGER 0) instead.
fn misbehaving_server(ip: &str, port: u16, reply: &'static [u8]) -> Arc<AtomicBool> {
    use std::io::Write;
    let listener = TcpListener::bind((ip, port)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    if reply.is_empty() {
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    } else {
                        let _ = stream.write_all(reply);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    stop
}

/// Targets that reset the connection or answer garbage are health states: marked down
/// with the reason, and the agent keeps answering.
#[test]
fn targets_that_reset_or_answer_garbage_are_down_not_a_crash() {
    let upstream = Dnsmasq::start(&[("other.test.example", "192.0.2.99")]);
    let port = free_port();
    let garbage = misbehaving_server(
        "127.0.0.12",
        port,
        b"\x16\x03\x01garbage that is not TLS\r\n",
    );
    let reset = misbehaving_server("127.0.0.13", port, b"");
    let config = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["{upstream}"]

[[name]]
name = "app.test.example"
targets = ["127.0.0.12", "127.0.0.13"]
probes = [{{ kind = "https", port = {port}, interval = "200ms", suspect_interval = "200ms", timeout = "150ms" }}]
"#,
        upstream = upstream.addr
    );
    let mut agent = Agent::start(&config);
    for addr in ["127.0.0.12", "127.0.0.13"] {
        let line = agent.process.wait_for_line("the target down", |line| {
            (line.contains("target down") && line.contains(&format!("addr={addr} ")))
                .then(|| line.to_owned())
        });
        assert!(line.contains("reason="), "{line}");
        eprintln!("{line}");
    }
    assert!(agent.process.is_running());
    // Every target down: "keep" still answers; other names are forwarded as usual.
    let response = ask_udp(
        agent.addr,
        &query("app.test.example.", RecordType::A, false),
    );
    assert_eq!(rcode(&response), ResponseCode::NoError);
    let answered = addresses(&response);
    assert!(
        !answered.is_empty()
            && answered
                .iter()
                .all(|a| a == "127.0.0.12" || a == "127.0.0.13"),
        "{answered:?}"
    );
    let response = ask_udp(
        agent.addr,
        &query("other.test.example.", RecordType::A, false),
    );
    assert_eq!(addresses(&response), vec!["192.0.2.99".to_owned()]);
    garbage.store(true, Ordering::Relaxed);
    reset.store(true, Ordering::Relaxed);
}
