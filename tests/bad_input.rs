//! Bad input on the wire and at start-up: a correct DNS error or a drop, never a panic;
//! a listen address that cannot be bound stops start-up with a clear message.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";
const SILENCE: Duration = Duration::from_millis(300);

fn agent() -> (Dnsmasq, Agent) {
    let upstream = Dnsmasq::start(&[("www.upstream.example", "192.0.2.1")]);
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    (upstream, agent)
}

fn still_answers(agent: &mut Agent) {
    assert!(agent.process.is_running(), "pathdns died");
    let response = ask_udp(agent.addr, &query(REGISTRY, RecordType::A, false));
    assert_eq!(addresses(&response), vec!["10.94.205.198".to_owned()]);
}

/// A valid query for the registry name, as raw bytes.
fn good_packet(edns: bool) -> Vec<u8> {
    query(REGISTRY, RecordType::A, edns)
        .to_vec()
        .expect("encode")
}

fn raw_rcode(response: &[u8]) -> u8 {
    response[3] & 0x0f
}

fn answer(agent: &Agent, packet: &[u8]) -> Vec<u8> {
    exchange_raw_udp(agent.addr, packet, Duration::from_secs(5)).expect("an answer")
}

#[test]
fn packets_shorter_than_a_header_get_no_reply() {
    let (_upstream, mut agent) = agent();
    for len in [0, 1, 5, 11] {
        assert_eq!(
            exchange_raw_udp(agent.addr, &good_packet(false)[..len], SILENCE),
            None
        );
    }
    still_answers(&mut agent);
}

#[test]
fn responses_qr_set_get_no_reply() {
    let (_upstream, mut agent) = agent();
    let mut packet = good_packet(false);
    packet[2] |= 0x80;
    assert_eq!(exchange_raw_udp(agent.addr, &packet, SILENCE), None);
    still_answers(&mut agent);
}

#[test]
fn truncated_question_is_formerr() {
    let (_upstream, mut agent) = agent();
    let packet = good_packet(false);
    for cut in [13, 20, packet.len() - 1] {
        let response = answer(&agent, &packet[..cut]);
        assert_eq!(raw_rcode(&response), 1, "cut at {cut}: FORMERR");
        assert_eq!(response[2] & 0x80, 0x80, "QR set");
    }
    still_answers(&mut agent);
}

#[test]
fn several_questions_or_none_are_formerr() {
    let (_upstream, mut agent) = agent();
    let mut two = query(REGISTRY, RecordType::A, false);
    two.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("dockerauth-vpc.cn-hangzhou.aliyuncs.com.")
            .expect("name"),
        RecordType::A,
    ));
    let response = answer(&agent, &two.to_vec().expect("encode"));
    assert_eq!(raw_rcode(&response), 1);
    let mut none = good_packet(false);
    none[5] = 0;
    assert_eq!(raw_rcode(&answer(&agent, &none[..12])), 1);
    still_answers(&mut agent);
}

#[test]
fn compression_pointer_or_long_label_in_the_question_is_formerr() {
    let (_upstream, mut agent) = agent();
    let mut pointer = good_packet(false)[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(raw_rcode(&answer(&agent, &pointer)), 1);
    let mut long = good_packet(false)[..12].to_vec();
    long.push(64);
    long.extend_from_slice(&[b'a'; 64]);
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(raw_rcode(&answer(&agent, &long)), 1);
    still_answers(&mut agent);
}

#[test]
fn unknown_class_is_refused_and_unknown_type_is_nodata() {
    let (_upstream, mut agent) = agent();
    let mut packet = good_packet(false);
    let class_at = packet.len() - 2;
    packet[class_at..].copy_from_slice(&42u16.to_be_bytes());
    assert_eq!(raw_rcode(&answer(&agent, &packet)), 5, "REFUSED");
    let response = ask_udp(
        agent.addr,
        &query(REGISTRY, RecordType::Unknown(0xff00), false),
    );
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert!(soa_in_authority(&response).is_some());
    still_answers(&mut agent);
}

#[test]
fn rfc6891_6_1_1_opcodes_other_than_query_are_notimp() {
    let (_upstream, mut agent) = agent();
    for opcode in [1u8, 2, 4, 5, 15] {
        let mut packet = good_packet(false);
        packet[2] = (packet[2] & 0x87) | (opcode << 3);
        assert_eq!(raw_rcode(&answer(&agent, &packet)), 4, "opcode {opcode}");
    }
    still_answers(&mut agent);
}

/// RFC 6891 section 6.1.2: unknown options are ignored; the answer carries our OPT only.
#[test]
fn rfc6891_6_1_2_unknown_edns_options_are_ignored() {
    let (_upstream, mut agent) = agent();
    let mut packet = good_packet(true);
    // Replace the OPT's empty RDATA with one unknown option (code 65001, 3 bytes).
    let rdlen_at = packet.len() - 2;
    packet[rdlen_at..].copy_from_slice(&7u16.to_be_bytes());
    packet.extend_from_slice(&[0xfd, 0xe9, 0, 3, 1, 2, 3]);
    let response = Message::from_vec(&answer(&agent, &packet)).expect("decode");
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(addresses(&response), vec!["10.94.205.198".to_owned()]);
    let edns = response.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.version(), 0);
    assert!(
        edns.options().as_ref().is_empty(),
        "unknown option not echoed"
    );
    still_answers(&mut agent);
}

/// RFC 6891 section 6.1.3: a version we do not implement gets BADVERS and our version (0).
#[test]
fn rfc6891_6_1_3_edns_version_above_zero_is_badvers() {
    let (_upstream, mut agent) = agent();
    let mut packet = good_packet(true);
    // OPT TTL: extended rcode, version, flags. Set version 1.
    let ttl_at = packet.len() - 6;
    packet[ttl_at + 1] = 1;
    let response = answer(&agent, &packet);
    assert_eq!(raw_rcode(&response), 0, "low bits of BADVERS (16) are 0");
    let opt_ttl_at = response.len() - 6;
    assert_eq!(response[opt_ttl_at], 1, "extended rcode 1 = BADVERS");
    assert_eq!(response[opt_ttl_at + 1], 0, "our version is 0");
    assert_eq!(&response[6..8], &[0, 0], "no answers");
    still_answers(&mut agent);
}

#[test]
fn two_opt_records_are_formerr() {
    let (_upstream, mut agent) = agent();
    let mut packet = good_packet(true);
    let opt = packet[packet.len() - 11..].to_vec();
    packet.extend_from_slice(&opt);
    packet[11] = 2;
    assert_eq!(raw_rcode(&answer(&agent, &packet)), 1);
    still_answers(&mut agent);
}

/// 10,000 random and mutated packets over UDP and TCP; the server still answers a good
/// query correctly after every batch.
#[test]
fn ten_thousand_random_and_mutated_packets_never_stop_the_server() {
    let (_upstream, mut agent) = agent();
    let mut rng = StdRng::seed_from_u64(0x7061_7468);
    let seeds = [good_packet(false), good_packet(true)];
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut tcp = std::net::TcpStream::connect(agent.addr).expect("tcp");
    let mut sent = 0;
    for batch in 0..100 {
        for _ in 0..100 {
            let packet = if rng.random_bool(0.3) {
                let len = rng.random_range(0..600);
                (0..len).map(|_| rng.random()).collect::<Vec<u8>>()
            } else {
                let seed = &seeds[rng.random_range(0..seeds.len())];
                mutate(&mut rng, seed)
            };
            if batch % 10 == 9 {
                // Some over TCP: a frame with whatever bytes.
                write_frame(&mut tcp, &packet);
            } else {
                socket.send_to(&packet, agent.addr).expect("send");
            }
            sent += 1;
        }
        still_answers(&mut agent);
    }
    assert_eq!(sent, 10_000);
    still_answers(&mut agent);
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut packet = seed.to_vec();
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..packet.len());
                packet[at] = rng.random();
            }
        }
        1 => packet.truncate(rng.random_range(0..packet.len())),
        2 => packet.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        3 => {
            // Counts: anything.
            let at = 4 + 2 * rng.random_range(0..4);
            packet[at] = rng.random();
            packet[at + 1] = rng.random();
        }
        _ => {
            // Flags: QR off so it is processed, everything else random.
            packet[2] = rng.random::<u8>() & 0x7f;
            packet[3] = rng.random();
        }
    }
    packet
}

fn run_with_listen(listen: &str, as_nobody: bool) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("pathdns.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [{listen}]\n[upstream]\nservers = [\"127.0.0.1:5399\"]\n\
             [control]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let binary = env!("CARGO_BIN_EXE_pathdns");
    let mut command = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(binary);
        c
    } else {
        Command::new(binary)
    };
    command
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run pathdns")
}

fn assert_bind_failure(output: &std::process::Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    for needle in expected {
        assert!(last.contains(needle), "{needle:?} not in {last:?}");
    }
}

#[test]
fn a_listen_address_in_use_is_a_clear_error_and_nothing_is_served() {
    let busy = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let free = free_port();
    // The first address is free, the second is taken: nothing may be served at all.
    let output = run_with_listen(
        &format!("\"127.0.0.1:{free}\", \"127.0.0.1:{port}\""),
        false,
    );
    assert_bind_failure(&output, &[&format!("127.0.0.1:{port}"), "udp", "in use"]);
    let tcp_busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = tcp_busy.local_addr().expect("addr").port();
    if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        let output = run_with_listen(&format!("\"127.0.0.1:{port}\""), false);
        assert_bind_failure(&output, &[&format!("127.0.0.1:{port}"), "tcp", "in use"]);
    }
}

#[test]
fn a_listen_address_not_on_this_host_is_a_clear_error() {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: binding fails, nothing is sent.
    let output = run_with_listen("\"192.0.2.1:5353\"", false);
    assert_bind_failure(&output, &["192.0.2.1:5353", "no local interface"]);
}

#[test]
fn a_privileged_port_without_the_capability_is_a_clear_error() {
    let unprivileged_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    if unprivileged_start <= 53 {
        eprintln!("SKIPPED: this kernel lets anyone bind port 53 (ip_unprivileged_port_start = {unprivileged_start})");
        return;
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let output = run_with_listen("\"127.0.0.1:53\"", is_root);
    assert_bind_failure(&output, &["127.0.0.1:53", "CAP_NET_BIND_SERVICE"]);
}
