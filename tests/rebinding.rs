//! Rebinding protection (`[upstream] rebinding_protection = true`, off by default and
//! turned on explicitly by every test here but the one that checks the default): private
//! addresses are stripped from forwarded answers to public names, while names at or under
//! `private_domains` (and the built-in PrivateLink domain), names pathdns owns and the
//! targets of its CNAMEs keep theirs. The real binary, a scripted upstream on loopback.
//!
//! Every address here is DNS data in an answer, never connected to.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::fake_upstream::{address, bytes, question, reply, FakeUpstream, Step};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// An upstream serving `zone`: (name, data) pairs where data is an address (A or AAAA by
/// its form) or `cname:TARGET`. A CNAME is followed once, as a recursive resolver would.
fn upstream(zone: &'static [(&'static str, &'static str)]) -> FakeUpstream {
    FakeUpstream::start(move |incoming| {
        let asked = question(incoming.query);
        let qtype = asked.query_type();
        let mut answers = Vec::new();
        let mut name = asked.name().clone();
        let cname = zone.iter().find_map(|(owner, data)| {
            let target = data.strip_prefix("cname:")?;
            name_is(&name, owner).then_some((owner, target))
        });
        if let Some((owner, target)) = cname {
            let target = Name::from_ascii(target).expect("cname target");
            answers.push(Record::from_rdata(
                Name::from_ascii(owner).expect("owner"),
                300,
                RData::CNAME(CNAME(target.clone())),
            ));
            name = target;
        }
        for (owner, data) in zone.iter().filter(|(owner, _)| name_is(&name, owner)) {
            let v6 = data.contains(':');
            if !data.starts_with("cname:") && (v6 == (qtype == RecordType::AAAA)) {
                answers.push(address(&Name::from_ascii(owner).expect("owner"), 300, data));
            }
        }
        vec![Step::Reply(bytes(&reply(incoming.query, answers)))]
    })
}

fn name_is(name: &Name, text: &str) -> bool {
    name.to_ascii().eq_ignore_ascii_case(text)
}

fn ask(agent: &Agent, name: &str, rtype: RecordType) -> Message {
    let response = ask_udp(agent.addr, &query(name, rtype, false));
    eprintln!(
        "{name} {rtype}: {:?} {:?}",
        rcode(&response),
        response
            .answers
            .iter()
            .map(|r| r.data.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(rcode(&response), ResponseCode::NoError, "{name} {rtype}");
    response
}

/// The value of an unlabelled counter on `/metrics`.
fn counter(control: SocketAddr, name: &str) -> f64 {
    let (status, body) = http_get(control, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

/// The `[upstream]` line that turns the filter on.
const ON: &str = "rebinding_protection = true";

const STRIPPED: &str = "pathdns_rebinding_stripped_records_total";
const LOGGED: &str = "private addresses stripped from a forwarded answer";

static PUBLIC_ZONE: &[(&str, &str)] = &[
    ("mixed.rebind.example.", "10.1.2.3"),
    ("mixed.rebind.example.", "192.168.1.1"),
    ("mixed.rebind.example.", "127.0.0.1"),
    ("mixed.rebind.example.", "100.64.0.1"),
    ("mixed.rebind.example.", "192.0.2.1"),
    ("mixed.rebind.example.", "::1"),
    ("mixed.rebind.example.", "fd00::1"),
    ("mixed.rebind.example.", "fe80::1"),
    ("mixed.rebind.example.", "2001:db8::1"),
    ("private.rebind.example.", "10.0.0.1"),
    ("private.rebind.example.", "127.0.0.53"),
];

/// A public name whose upstream answer mixes 10.x, 192.168.x, 127.x, 100.64.x, ::1, fd00::
/// and fe80:: with public addresses: the private ones go, the public ones stay; a name with
/// only private addresses answers NOERROR with nothing. Counted once per upstream answer
/// (cache hits serve what was left), logged once for the burst.
#[test]
fn private_addresses_are_stripped_from_a_forwarded_public_name() {
    let upstream = upstream(PUBLIC_ZONE);
    let mut agent = Agent::start(&upstream.config(ON));
    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    for _ in 0..2 {
        let a = ask(&agent, "mixed.rebind.example.", RecordType::A);
        assert_eq!(addresses(&a), vec!["192.0.2.1".to_owned()]);
        let aaaa = ask(&agent, "mixed.rebind.example.", RecordType::AAAA);
        assert_eq!(addresses(&aaaa), vec!["2001:db8::1".to_owned()]);
        let none = ask(&agent, "private.rebind.example.", RecordType::A);
        assert!(none.answers.is_empty(), "{none:?}");
    }
    assert_eq!(
        upstream.total("mixed.rebind.example."),
        2,
        "A and AAAA, then cached"
    );
    assert_eq!(upstream.total("private.rebind.example."), 1);
    assert_eq!(counter(control, STRIPPED), 9.0, "4 + 3 + 2 records");
    agent
        .process
        .wait_for_line("the rebinding warning", |line| {
            line.contains(LOGGED).then_some(())
        });
    let warnings = agent
        .process
        .lines()
        .iter()
        .filter(|l| l.contains(LOGGED))
        .count();
    assert_eq!(
        warnings, 1,
        "three stripped answers in a burst, one warning"
    );
}

/// Off by default: the same answers pass through whole, nothing counted, nothing logged.
#[test]
fn by_default_forwarded_private_addresses_are_kept() {
    let upstream = upstream(PUBLIC_ZONE);
    let mut agent = Agent::start(&upstream.config(""));
    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    let a = ask(&agent, "mixed.rebind.example.", RecordType::A);
    let mut got = addresses(&a);
    got.sort();
    assert_eq!(
        got,
        [
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "192.0.2.1",
            "192.168.1.1"
        ]
    );
    let private = ask(&agent, "private.rebind.example.", RecordType::A);
    assert_eq!(addresses(&private).len(), 2, "{private:?}");
    assert_eq!(counter(control, STRIPPED), 0.0);
    assert!(
        !agent.process.lines().iter().any(|l| l.contains(LOGGED)),
        "no rebinding warning"
    );
}

static PRIVATE_ZONE: &[(&str, &str)] = &[
    ("corp.example.", "10.1.2.4"),
    ("db.corp.example.", "10.1.2.3"),
    ("db.corp.example.", "fd00::3"),
    ("www.public.example.", "cname:db.corp.example."),
    (
        "ep-1.oss.cn-hangzhou.privatelink.aliyuncs.com.",
        "10.0.0.20",
    ),
    ("notcorp.example.", "10.1.2.5"),
];

/// Names at or under a `private_domains` entry keep their private addresses, also behind a
/// public name's CNAME (the record's owner is exempt); so do PrivateLink endpoint names
/// (built in). A look-alike outside the domain does not; with `rebinding_protection =
/// false` nothing is stripped.
#[test]
fn names_under_private_domains_keep_their_private_addresses() {
    let upstream = upstream(PRIVATE_ZONE);
    let agent =
        Agent::start(&upstream.config(&format!("{ON}\nprivate_domains = [\"corp.example\"]")));
    let cases = [
        ("corp.example.", RecordType::A, vec!["10.1.2.4"]),
        ("DB.Corp.Example.", RecordType::A, vec!["10.1.2.3"]),
        ("db.corp.example.", RecordType::AAAA, vec!["fd00::3"]),
        ("www.public.example.", RecordType::A, vec!["10.1.2.3"]),
        (
            "ep-1.oss.cn-hangzhou.privatelink.aliyuncs.com.",
            RecordType::A,
            vec!["10.0.0.20"],
        ),
        ("notcorp.example.", RecordType::A, vec![]),
    ];
    for (name, rtype, expected) in &cases {
        assert_eq!(addresses(&ask(&agent, name, *rtype)), *expected, "{name}");
    }
    let off = Agent::start(&upstream.config("rebinding_protection = false"));
    assert_eq!(
        addresses(&ask(&off, "notcorp.example.", RecordType::A)),
        vec!["10.1.2.5"]
    );
}

/// The host's own zones: the `search` and `domain` entries of `upstream.resolv_conf` are
/// exempt like `private_domains`, so an IDC's internal names keep their private addresses
/// when the filter is on; names outside them still lose theirs.
#[test]
fn the_hosts_search_domains_keep_their_private_addresses() {
    let upstream = upstream(PRIVATE_ZONE);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "search corp.example\nnameserver 127.0.0.1\n")
        .expect("write a scratch resolv.conf");
    let agent = Agent::start(&upstream.config(&format!("{ON}\nresolv_conf = {:?}", resolv)));
    assert_eq!(
        addresses(&ask(&agent, "db.corp.example.", RecordType::A)),
        vec!["10.1.2.3"]
    );
    assert_eq!(
        addresses(&ask(&agent, "notcorp.example.", RecordType::A)),
        Vec::<String>::new()
    );
}

static OWNED_ZONE: &[(&str, &str)] = &[
    ("ep-test.oss.cn-shanghai.privatelink.example.", "10.0.0.20"),
    ("ep-other.oss.cn-shanghai.privatelink.example.", "10.0.0.21"),
    ("fwd.owned.example.", "10.7.7.7"),
];

/// The documents' remedy (b): the owned OSS name is a CNAME to a PrivateLink endpoint name
/// (here outside the built-in domain) that the upstream resolves to a private address. The
/// chain is the operator's: the address stays, asked through the OSS name or directly.
/// An owned name forwarded because every target is down (`when_all_down = "forward"`)
/// keeps its private upstream answer too. Another endpoint name is not exempt.
#[test]
fn an_owned_oss_cname_chain_and_a_forwarded_owned_name_keep_their_private_addresses() {
    let upstream = upstream(OWNED_ZONE);
    let closed = free_port();
    // registry_config's second instance CNAMEs its OSS name to
    // ep-test.oss.cn-shanghai.privatelink.example.
    let forwarded_when_down = format!(
        r#"
[[name]]
name = "fwd.owned.example"
targets = ["127.0.0.1"]
probes = [{{ kind = "tcp", port = {closed}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}]
when_all_down = "forward"
"#
    );
    let config = registry_config(upstream.addr, &forwarded_when_down).replacen(
        "[upstream]\n",
        &format!("[upstream]\n{ON}\n"),
        1,
    );
    assert!(config.contains(ON), "the filter is on: {config}");
    let agent = Agent::start(&config);
    let oss = ask(
        &agent,
        "oss-cn-shanghai-internal.aliyuncs.com.",
        RecordType::A,
    );
    assert_eq!(
        cname_targets(&oss),
        vec!["ep-test.oss.cn-shanghai.privatelink.example.".to_owned()]
    );
    assert_eq!(addresses(&oss), vec!["10.0.0.20"]);
    let direct = ask(
        &agent,
        "ep-test.oss.cn-shanghai.privatelink.example.",
        RecordType::A,
    );
    assert_eq!(addresses(&direct), vec!["10.0.0.20"]);
    let other = ask(
        &agent,
        "ep-other.oss.cn-shanghai.privatelink.example.",
        RecordType::A,
    );
    assert!(addresses(&other).is_empty(), "not exempt: {other:?}");
    // The probe's port is closed: after two failed probes the name is forwarded.
    let started = std::time::Instant::now();
    loop {
        let forwarded = ask(&agent, "fwd.owned.example.", RecordType::A);
        if addresses(&forwarded) == vec!["10.7.7.7"] {
            eprintln!(
                "forwarded with its private address after {:?}",
                started.elapsed()
            );
            break;
        }
        assert!(
            addresses(&forwarded) == vec!["127.0.0.1"],
            "neither the target nor the upstream answer: {forwarded:?}"
        );
        assert!(started.elapsed() < READY_DEADLINE, "never forwarded");
        std::thread::sleep(Duration::from_millis(50));
    }
}
