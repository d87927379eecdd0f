//! Alert sinks end to end: the real agent probing loopback targets that the test opens and
//! closes, a webhook receiver run by the test, and a real Alertmanager
//! (`prometheus-alertmanager`) on loopback.
//!
//! Every wait is for a condition. To show that nothing *more* was delivered, a test ends a
//! sequence with a marker transition (the backup going down): a sink sends one request at a
//! time, oldest first, so once the marker has arrived, everything before it has too.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::alertmanager::Alertmanager;
use common::webhook::{Hook, Request};
use common::*;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const NAME: &str = "reg.alerts.test";
const PRIMARY: &str = "127.0.0.10";
const BACKUP: &str = "127.0.0.11";
const TARGET_DOWN: &str = "PathdnsTargetDown";
const FAILED_OVER: &str = "PathdnsFailedOver";
const RELOAD_REJECTED: &str = "PathdnsReloadRejected";

fn names_config(count: usize, port: u16) -> String {
    (0..count)
        .map(|i| {
            let name = if i == 0 {
                NAME.to_owned()
            } else {
                format!("n{i}.alerts.test")
            };
            format!(
                r#"
[[name]]
name = "{name}"
targets = [{{ addr = "{PRIMARY}", priority = 1 }}, {{ addr = "{BACKUP}", priority = 2 }}]
probes = [{{ kind = "tcp", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}]
"#
            )
        })
        .collect()
}

fn config(names: usize, port: u16, alerts: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:5399"]
{names}
{alerts}
"#,
        names = names_config(names, port)
    )
}

fn webhook(url: &str, extra: &str) -> String {
    format!("[[alert]]\nkind = \"webhook\"\nurl = \"{url}\"\n{extra}\n")
}

fn answer(agent: &Agent) -> Vec<String> {
    addresses(&ask_udp(agent.addr, &query(NAME, RecordType::A, false)))
}

fn wait_for_answer(agent: &Agent, addr: &str) {
    wait_for(&format!("{NAME} answering {addr}"), || {
        (answer(agent) == vec![addr.to_owned()]).then_some(())
    });
}

/// (alertname, status, target) of a webhook body.
fn transition(body: &Value) -> (String, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (
        text(&body["alertname"]),
        text(&body["status"]),
        text(&body["labels"]["target"]),
    )
}

fn is(alertname: &str, status: &str, target: &str) -> impl Fn(&Value) -> bool {
    let want = (alertname.to_owned(), status.to_owned(), target.to_owned());
    move |body| transition(body) == want
}

fn t(alertname: &str, status: &str, target: &str) -> (String, String, String) {
    (alertname.to_owned(), status.to_owned(), target.to_owned())
}

fn transitions(requests: &[Request]) -> Vec<(String, String, String)> {
    requests.iter().map(|r| transition(&r.body)).collect()
}

fn rfc3339(value: &Value) -> SystemTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    humantime::parse_rfc3339(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

#[test]
fn a_webhook_gets_one_delivery_per_transition() {
    let hook = Hook::start();
    let port = free_port();
    let primary = Port::open(PRIMARY, port);
    let backup = Port::open(BACKUP, port);
    let agent = Agent::start(&config(
        1,
        port,
        &webhook(&hook.url(), "repeat_interval = \"1h\""),
    ));
    wait_for_answer(&agent, PRIMARY);

    drop(primary);
    hook.wait_for("the primary down", is(TARGET_DOWN, "firing", PRIMARY));
    hook.wait_for("failed over", is(FAILED_OVER, "firing", ""));
    wait_for_answer(&agent, BACKUP);

    let _primary = Port::open(PRIMARY, port);
    hook.wait_for("the primary up", is(TARGET_DOWN, "resolved", PRIMARY));
    hook.wait_for("moved back", is(FAILED_OVER, "resolved", ""));
    wait_for_answer(&agent, PRIMARY);

    // The marker: once it has arrived, every earlier delivery has too.
    drop(backup);
    let requests = hook.wait_for("the backup down", is(TARGET_DOWN, "firing", BACKUP));
    assert_eq!(
        transitions(&requests),
        vec![
            t(TARGET_DOWN, "firing", PRIMARY),
            t(FAILED_OVER, "firing", ""),
            t(TARGET_DOWN, "resolved", PRIMARY),
            t(FAILED_OVER, "resolved", ""),
            t(TARGET_DOWN, "firing", BACKUP),
        ],
        "exactly one delivery per transition"
    );

    // The documented schema, version 1.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    for request in &requests {
        let body = &request.body;
        assert_eq!(request.path, "/hook/secret-token");
        assert_eq!(body["version"], 1, "{body}");
        assert_eq!(body["source"], "pathdns");
        assert_eq!(body["host"], host.trim());
        assert_eq!(body["severity"], "warning");
        assert_eq!(body["repeat"], false);
        assert_eq!(body["labels"]["name"], NAME);
        assert!(body["summary"].as_str().is_some_and(|s| !s.is_empty()));
        rfc3339(&body["at"]);
        rfc3339(&body["starts_at"]);
    }
    let (fired, resolved) = (&requests[0].body, &requests[2].body);
    assert_eq!(fired["ends_at"], Value::Null);
    assert_eq!(fired["at"], fired["starts_at"]);
    assert_eq!(resolved["starts_at"], fired["starts_at"], "same problem");
    assert_eq!(resolved["ends_at"], resolved["at"]);
    assert!(rfc3339(&resolved["ends_at"]) > rfc3339(&resolved["starts_at"]));
    // The URL's path may hold a secret: the log names the host only.
    assert!(
        !agent
            .process
            .lines()
            .iter()
            .any(|line| line.contains("secret-token")),
        "the webhook URL's path leaked into the log"
    );
}

#[test]
fn a_failing_webhook_is_retried_with_backoff_and_open_problems_repeat() {
    let hook = Hook::start();
    hook.script.lock().expect("script").extend([500, 503]);
    let port = free_port();
    let primary = Port::open(PRIMARY, port);
    let _backup = Port::open(BACKUP, port);
    let agent = Agent::start(&config(
        1,
        port,
        &webhook(&hook.url(), "repeat_interval = \"1s\"\nretries = 3"),
    ));
    wait_for_answer(&agent, PRIMARY);
    drop(primary);

    // 500, 503, then 200: the same body three times, 0.5 s then 1 s apart.
    let requests = wait_for("the third attempt", || {
        let requests = hook.requests();
        (requests.len() >= 3).then_some(requests)
    });
    let (first, second, third) = (&requests[0], &requests[1], &requests[2]);
    assert_eq!(
        (first.answered, second.answered, third.answered),
        (Some(500), Some(503), Some(200))
    );
    assert_eq!(first.body, second.body, "a retry resends the same alert");
    assert_eq!(first.body, third.body);
    assert!(is(TARGET_DOWN, "firing", PRIMARY)(&first.body));
    let gaps = (second.at - first.at, third.at - second.at);
    eprintln!("retry gaps: {gaps:?} (backoff 500ms, 1s)");
    assert!(gaps.0 >= Duration::from_millis(450), "{gaps:?}");
    assert!(gaps.1 >= Duration::from_millis(950), "{gaps:?}");

    // While it stays open, the problem is sent again (marked as a repeat), same start.
    let requests = hook.wait_for("a repeat", |body| {
        body["repeat"] == true && is(TARGET_DOWN, "firing", PRIMARY)(body)
    });
    let repeat = requests
        .iter()
        .find(|r| r.body["repeat"] == true && is(TARGET_DOWN, "firing", PRIMARY)(&r.body))
        .expect("found above");
    assert_eq!(repeat.body["starts_at"], first.body["starts_at"]);
    assert!(rfc3339(&repeat.body["at"]) > rfc3339(&repeat.body["starts_at"]));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn latencies(agent: &Agent, count: usize) -> Vec<Duration> {
    let mut measured: Vec<Duration> = (0..count)
        .map(|_| {
            let started = Instant::now();
            let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
            let took = started.elapsed();
            assert_eq!(addresses(&response).len(), 1, "{response:?}");
            took
        })
        .collect();
    measured.sort();
    measured
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[test]
fn dead_receivers_never_slow_answers_and_memory_stays_bounded() {
    const NAMES: usize = 40;
    const FLAPS: usize = 6;
    // One receiver accepts and never answers; at the other address nobody listens.
    let hanging = Hook::hanging();
    let refusing = format!("http://127.0.0.1:{}/hook", free_port());
    let port = free_port();
    let mut primary = Port::open(PRIMARY, port);
    let _backup = Port::open(BACKUP, port);
    let sinks = [
        webhook(
            &hanging.url(),
            "timeout = \"1s\"\nretries = 3\nqueue = 8\nrepeat_interval = \"1s\"",
        ),
        webhook(
            &refusing,
            "timeout = \"1s\"\nretries = 3\nqueue = 8\nrepeat_interval = \"1s\"",
        ),
    ]
    .concat();
    let mut agent = Agent::start(&config(NAMES, port, &sinks));
    wait_for_answer(&agent, PRIMARY);
    let before = latencies(&agent, 300);
    let rss_before = vm_rss_kib(agent.process.pid());

    // Each flap: every name's primary goes down and up (4 alerts per name).
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let (stop, addr) = (stop.clone(), agent.addr);
        std::thread::spawn(move || {
            let mut measured = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = ask_udp(addr, &query(NAME, RecordType::A, false));
                measured.push(started.elapsed());
                assert_eq!(addresses(&response).len(), 1, "{response:?}");
                std::thread::sleep(Duration::from_millis(2));
            }
            measured
        })
    };
    for _ in 0..FLAPS {
        drop(primary);
        wait_for_answer(&agent, BACKUP);
        primary = Port::open(PRIMARY, port);
        wait_for_answer(&agent, PRIMARY);
    }
    stop.store(true, Ordering::Relaxed);
    let mut during = during.join().expect("query thread");
    during.sort();
    let rss_after = vm_rss_kib(agent.process.pid());

    let warned = agent
        .process
        .wait_for_line("a dropped-alerts warning", |line| {
            line.contains("alert queue full").then(|| line.to_owned())
        });
    assert!(
        hanging.connections.load(Ordering::Relaxed) >= 1,
        "the hanging receiver was never tried"
    );
    let events = FLAPS * NAMES * 4;
    assert!(during.len() >= 100, "too few queries measured");
    eprintln!(
        "DNS latency, {} queries before: p50 {:?} p99 {:?} max {:?}",
        before.len(),
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        before[before.len() - 1]
    );
    eprintln!(
        "DNS latency, {} queries during {events} alerts to dead receivers: p50 {:?} p99 {:?} max {:?}",
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during[during.len() - 1]
    );
    eprintln!(
        "VmRSS before {rss_before} KiB, after {rss_after} KiB; hanging receiver: {} connections, {} requests",
        hanging.connections.load(Ordering::Relaxed),
        hanging.requests().len()
    );
    eprintln!("{warned}");
    assert!(
        percentile(&during, 0.99) < Duration::from_millis(50),
        "answers slowed down while alert receivers were dead"
    );
    assert!(rss_after < 64 * 1024, "VmRSS {rss_after} KiB");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "VmRSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(agent.process.is_running());
}

#[test]
fn a_reload_moves_open_problems_to_a_new_sink_and_keeps_unchanged_ones() {
    let (old_hook, new_hook) = (Hook::start(), Hook::start());
    let port = free_port();
    let primary = Port::open(PRIMARY, port);
    let backup = Port::open(BACKUP, port);
    let agent = Agent::start(&config(
        1,
        port,
        &webhook(&old_hook.url(), "repeat_interval = \"1h\""),
    ));
    wait_for_answer(&agent, PRIMARY);
    drop(primary);
    old_hook.wait_for("the primary down", is(TARGET_DOWN, "firing", PRIMARY));
    old_hook.wait_for("failed over", is(FAILED_OVER, "firing", ""));

    // A valid reload keeps what the probes knew: the name stays on its backup at once,
    // without the new probes having to find the primary down again.
    let reload = |text: &str, on_backup: bool| {
        std::fs::write(&agent.config_path, with_test_control(text)).expect("rewrite config");
        let before = agent.process.lines().len();
        agent.process.signal("HUP");
        let logged = |needles: &[&str]| {
            agent.process.lines()[before..]
                .iter()
                .any(|line| needles.iter().all(|needle| line.contains(needle)))
        };
        wait_for("the reload to be handled", || {
            (logged(&["reloaded"]) || logged(&["reload rejected"]) || logged(&["reload failed"]))
                .then_some(())
        });
        if on_backup {
            let response = ask_udp(agent.addr, &query(NAME, RecordType::A, false));
            assert_eq!(
                addresses(&response),
                vec![BACKUP.to_owned()],
                "right after the reload"
            );
            assert!(
                !logged(&["failed over"]),
                "no second failover after a reload"
            );
        }
    };
    let new_config = config(
        1,
        port,
        &webhook(&new_hook.url(), "repeat_interval = \"1h\""),
    );
    reload(&new_config, true);
    // The new sink hears of the problems still open.
    new_hook.wait_for("the open problem", is(TARGET_DOWN, "firing", PRIMARY));
    new_hook.wait_for("the open failover", is(FAILED_OVER, "firing", ""));

    // A rejected reload is an alert of its own, resolved by the next good one; the sink,
    // unchanged, keeps its open problems (no second copy of them).
    reload("[server]\nlisten = 5\n", false);
    new_hook.wait_for("the rejected reload", is(RELOAD_REJECTED, "firing", ""));
    reload(&new_config, true);
    new_hook.wait_for("the reload accepted", is(RELOAD_REJECTED, "resolved", ""));

    let _primary = Port::open(PRIMARY, port);
    new_hook.wait_for("the primary up", is(TARGET_DOWN, "resolved", PRIMARY));
    new_hook.wait_for("moved back", is(FAILED_OVER, "resolved", ""));
    drop(backup);
    let requests = new_hook.wait_for("the backup down", is(TARGET_DOWN, "firing", BACKUP));
    let got = transitions(&requests);
    let seeded: BTreeSet<_> = got[..2].iter().cloned().collect();
    assert_eq!(
        seeded,
        BTreeSet::from([
            t(TARGET_DOWN, "firing", PRIMARY),
            t(FAILED_OVER, "firing", "")
        ]),
        "{got:?}"
    );
    assert_eq!(
        got[2..],
        [
            t(RELOAD_REJECTED, "firing", ""),
            t(RELOAD_REJECTED, "resolved", ""),
            t(TARGET_DOWN, "resolved", PRIMARY),
            t(FAILED_OVER, "resolved", ""),
            t(TARGET_DOWN, "firing", BACKUP),
        ],
        "{got:?}"
    );
    assert_eq!(
        transitions(&old_hook.requests()),
        vec![
            t(TARGET_DOWN, "firing", PRIMARY),
            t(FAILED_OVER, "firing", "")
        ],
        "the removed sink got nothing after the reload"
    );
}

fn find_alert<'a>(alerts: &'a [Value], alertname: &str, target: Option<&str>) -> Option<&'a Value> {
    alerts.iter().find(|alert| {
        alert["labels"]["alertname"] == alertname
            && target.is_none_or(|target| alert["labels"]["target"] == target)
    })
}

#[test]
fn alertmanager_lists_the_alert_while_it_lasts_and_resolves_it() {
    let alertmanager = Alertmanager::start();
    let port = free_port();
    let primary = Port::open(PRIMARY, port);
    let _backup = Port::open(BACKUP, port);
    let sink = format!(
        "[[alert]]\nkind = \"alertmanager\"\nurl = \"http://{}/\"\n",
        alertmanager.addr
    );
    let agent = Agent::start(&config(1, port, &sink));
    wait_for_answer(&agent, PRIMARY);
    drop(primary);

    let alerts = wait_for("the alerts in Alertmanager", || {
        let alerts = alertmanager.alerts();
        (find_alert(&alerts, TARGET_DOWN, Some(PRIMARY)).is_some()
            && find_alert(&alerts, FAILED_OVER, None).is_some())
        .then_some(alerts)
    });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let down = find_alert(&alerts, TARGET_DOWN, Some(PRIMARY)).expect("found above");
    eprintln!("Alertmanager lists: {down}");
    assert_eq!(down["labels"]["name"], NAME);
    assert_eq!(down["labels"]["instance"], host.trim());
    assert_eq!(down["labels"]["service"], "pathdns");
    assert_eq!(down["labels"]["severity"], "warning");
    assert!(down["annotations"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains(PRIMARY)));
    assert_eq!(down["status"]["state"], "active");
    let over = find_alert(&alerts, FAILED_OVER, None).expect("found above");
    assert_eq!(over["labels"]["name"], NAME);
    assert_eq!(over["status"]["state"], "active");

    let _primary = Port::open(PRIMARY, port);
    wait_for_answer(&agent, PRIMARY);
    // Resolved: gone from the list, or listed with an end in the past and not active.
    let resolved = |alert: Option<&Value>| {
        alert.is_none_or(|alert| {
            let ended = alert["endsAt"]
                .as_str()
                .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
                .is_some_and(|at| at <= SystemTime::now());
            ended && alert["status"]["state"] != "active"
        })
    };
    let alerts = wait_for("the alerts resolved in Alertmanager", || {
        let alerts = alertmanager.alerts();
        (resolved(find_alert(&alerts, TARGET_DOWN, Some(PRIMARY)))
            && resolved(find_alert(&alerts, FAILED_OVER, None)))
        .then_some(alerts)
    });
    eprintln!("Alertmanager after recovery: {alerts:?}");
}

#[test]
fn bad_alert_settings_are_rejected_with_the_field() {
    let base = "[upstream]\nservers = [\"127.0.0.1:5399\"]\n[[alert]]\n";
    for (keys, field, words) in [
        (
            "kind = \"email\"\nurl = \"http://127.0.0.1:9/\"",
            "alert[0].kind",
            "webhook",
        ),
        (
            "kind = \"webhook\"\nurl = \"ftp://127.0.0.1:9/\"",
            "alert[0].url",
            "http",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://:9/hook\"",
            "alert[0].url",
            "http",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nretries = 11",
            "alert[0].retries",
            "between 0 and 10",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nqueue = 0",
            "alert[0].queue",
            "between 1",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nrepeat_interval = \"500ms\"",
            "alert[0].repeat_interval",
            "at least 1s",
        ),
    ] {
        let text = format!("{base}{keys}\n");
        let err = pathdns::config::Config::parse(&text, "test.toml")
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"))
            .to_string();
        assert!(
            err.contains(field) && err.contains(words),
            "{keys:?}: {err}"
        );
    }
    let good =
        format!("{base}kind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093/\"\nretries = 0\n");
    let config = pathdns::config::Config::parse(&good, "test.toml").expect("valid");
    assert_eq!(config.alerts[0].url, "http://127.0.0.1:9093");
    assert_eq!(config.alerts[0].retries, 0);
}
