//! Live reload under load: a client queries without pause while pathdns is reloaded 20
//! times, every other time with an invalid config. No query may fail, and the answer may
//! change only when a valid config was loaded.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const NAME: &str = "reg.test.example.";

fn config(listen: &[String], answer: &str) -> String {
    let listen: Vec<String> = listen.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[server]
listen = [{}]

[upstream]
servers = ["127.0.0.1:5399"]

[control]
listen = "off"

[[name]]
name = "reg.test.example"
targets = ["{answer}"]
"#,
        listen.join(", ")
    )
}

#[derive(Debug, Clone)]
struct Sample {
    sent: Instant,
    received: Instant,
    answer: Result<String, String>,
}

fn query_loop(server: SocketAddr, stop: Arc<AtomicBool>, samples: Arc<Mutex<Vec<Sample>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let question = query(NAME, RecordType::A, false);
        let bytes = question.to_vec().expect("encode");
        let sent = Instant::now();
        socket.send_to(&bytes, server).expect("send");
        let answer = match socket.recv_from(&mut buf) {
            Ok((len, _)) => match Message::from_vec(&buf[..len]) {
                Ok(m) if m.metadata.id == question.metadata.id => addresses(&m)
                    .first()
                    .cloned()
                    .ok_or_else(|| format!("empty answer, rcode {:?}", m.metadata.response_code)),
                Ok(_) => Err("wrong id".into()),
                Err(err) => Err(err.to_string()),
            },
            Err(err) => Err(format!("no answer: {err}")),
        };
        let received = Instant::now();
        samples.lock().expect("samples").push(Sample {
            sent,
            received,
            answer,
        });
    }
}

fn count_lines(agent: &Agent, needle: &str) -> usize {
    agent
        .process
        .lines()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

fn wait_count(agent: &Agent, needle: &str, at_least: usize) {
    let deadline = Instant::now() + READY_DEADLINE;
    while count_lines(agent, needle) < at_least {
        assert!(Instant::now() < deadline, "no {at_least}th {needle:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn twenty_reloads_half_invalid_lose_no_query_and_switch_exactly_on_valid_ones() {
    let listen = vec!["127.0.0.1:0".to_owned()];
    let agent = Agent::start(&config(&listen, "192.0.2.1"));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let (stop, samples, server) = (stop.clone(), samples.clone(), agent.addr);
        std::thread::spawn(move || query_loop(server, stop, samples))
    };
    // (address loaded, when SIGHUP was sent, when the reload was logged) per valid reload.
    let mut valid: Vec<(String, Instant, Instant)> = Vec::new();
    let mut current = "192.0.2.1".to_owned();
    let mut second_listener: Option<SocketAddr> = None;
    for round in 0..20 {
        let invalid = round % 2 == 1;
        let text = if invalid {
            "[server\nthis is not toml".to_owned()
        } else {
            let next = format!("192.0.2.{}", round + 2);
            let mut addrs = listen.clone();
            if round == 10 {
                // Add a listen address mid-test: the first one keeps serving.
                addrs.push(format!("127.0.0.1:{}", free_port()));
            }
            if round >= 10 {
                if let Some(addr) = second_listener {
                    addrs.push(addr.to_string());
                } else if round > 10 {
                    unreachable!("the second listener was recorded at round 10");
                }
            }
            current = next.clone();
            config(&addrs, &next)
        };
        std::fs::write(&agent.config_path, text).expect("write config");
        let accepted = count_lines(&agent, "reloaded");
        let rejected = count_lines(&agent, "reload rejected");
        let signalled = Instant::now();
        agent.process.signal("HUP");
        if invalid {
            wait_count(&agent, "reload rejected", rejected + 1);
        } else {
            wait_count(&agent, "reloaded", accepted + 1);
            valid.push((current.clone(), signalled, Instant::now()));
            if round == 10 {
                let addr = agent
                    .process
                    .lines()
                    .iter()
                    .rev()
                    .find_map(|line| listening_addr(line))
                    .expect("the new listener's address");
                second_listener = Some(addr);
            }
        }
        // Right after a reload, the answer is the last valid config's.
        let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
        assert_eq!(addresses(&response), vec![current.clone()], "round {round}");
        if let Some(second) = second_listener {
            let response = ask_udp(second, &query(NAME, RecordType::A, false));
            assert_eq!(
                addresses(&response),
                vec![current.clone()],
                "second listener"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client");
    let samples = samples.lock().expect("samples").clone();
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.answer.is_err()).collect();
    eprintln!(
        "{} queries during 20 reloads (10 rejected), {} failed",
        samples.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failed queries: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert!(samples.len() > 100, "the client kept querying");
    // Every answer comes from a config that was current while the query was in flight:
    // no older than the last reload completed when it was sent, no newer than the last
    // reload signalled when its answer arrived.
    let mut loaded = vec!["192.0.2.1".to_owned()];
    loaded.extend(valid.iter().map(|(addr, _, _)| addr.clone()));
    for sample in &samples {
        let Ok(answer) = &sample.answer else { continue };
        let oldest = valid
            .iter()
            .filter(|(_, _, logged)| *logged <= sample.sent)
            .count();
        let newest = valid
            .iter()
            .filter(|(_, signalled, _)| *signalled <= sample.received)
            .count();
        let position = loaded.iter().position(|a| a == answer);
        assert!(
            position.is_some_and(|p| (oldest..=newest).contains(&p)),
            "answered {answer}; allowed {:?}",
            &loaded[oldest..=newest]
        );
    }
    assert_eq!(count_lines(&agent, "reload rejected"), 10);
}

/// `pathdns reload` checks the file first (an invalid one never reaches the agent), then
/// signals the agent and returns once the new config serves; `pathdns_config_info{hash}`
/// follows the serving config, not the file.
#[test]
fn pathdns_reload_validates_then_applies() {
    let listen = vec!["127.0.0.1:0".to_owned()];
    let text = config(&listen, "192.0.2.1").replace("listen = \"off\"", "listen = \"127.0.0.1:0\"");
    let mut agent = Agent::start(&text);
    let control = agent
        .process
        .wait_for_line("the control address", control_addr);
    let serving_hash = || -> String {
        let (_, text) = http_get(control, "/metrics").expect("/metrics");
        let line = text
            .lines()
            .find(|l| l.starts_with("pathdns_config_info{"))
            .unwrap_or_else(|| panic!("no pathdns_config_info in:\n{text}"))
            .to_owned();
        line.split('"').nth(1).expect("a hash label").to_owned()
    };
    let first_hash =
        pathdns::config::text_hash(&std::fs::read_to_string(&agent.config_path).expect("read"));
    assert_eq!(serving_hash(), first_hash);
    let control = control.to_string();
    let reload = |agent: &Agent| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pathdns"))
            .args(["reload", "--control", &control, "--config"])
            .arg(&agent.config_path)
            .output()
            .expect("run pathdns reload")
    };
    std::fs::write(&agent.config_path, "[server\nnot toml").expect("write");
    let output = reload(&agent);
    assert_eq!(output.status.code(), Some(78), "{output:?}");
    assert_eq!(
        count_lines(&agent, "reload"),
        0,
        "the agent was not signalled"
    );
    assert_eq!(
        serving_hash(),
        first_hash,
        "the file changed, the serving config did not"
    );

    std::fs::write(&agent.config_path, text.replace("192.0.2.1", "192.0.2.77")).expect("write");
    let output = reload(&agent);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("reloaded"));
    let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
    assert_eq!(addresses(&response), vec!["192.0.2.77".to_owned()]);
    let reloaded_hash =
        pathdns::config::text_hash(&std::fs::read_to_string(&agent.config_path).expect("read"));
    assert_ne!(reloaded_hash, first_hash);
    wait_until("the reloaded config's hash in /metrics", || {
        serving_hash() == reloaded_hash
    });
}

/// The resource caps are sized at start (semaphores, the open-file limit): a reload that
/// changes them applies everything else and says that they wait for a restart.
#[test]
fn a_reload_that_changes_the_resource_caps_says_they_need_a_restart() {
    let listen = vec!["127.0.0.1:0".to_owned()];
    let text = config(&listen, "192.0.2.1");
    let agent = Agent::start(&text);
    let changed = text
        .replace("192.0.2.1", "192.0.2.88")
        .replace("[upstream]", "max_queries_per_connection = 8\n\n[upstream]");
    std::fs::write(&agent.config_path, changed).expect("write");
    agent.process.signal("HUP");
    wait_count(&agent, "take effect at the next restart", 1);
    wait_count(&agent, "reloaded", 1);
    let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
    assert_eq!(addresses(&response), vec!["192.0.2.88".to_owned()]);
}
