//! The status page (`GET /` on the control endpoint) in a real browser: pathdns in a client
//! namespace probes a primary and a backup registry (the `[[registry]]` preset, HTTPS
//! `/v2/` answering 401 with a realm) through a router; the test cuts the primary's link,
//! waits until `/status` reports the failover, then loads the page in Debian's headless
//! Chromium inside the client namespace (where the control endpoint listens): the rendered
//! DOM must show the backup answering, the primary down and the transition, and a
//! screenshot is taken. `PATHDNS_UPDATE_SCREENSHOT=1` copies it to `docs/fleet.png`
//! (README, "Monitoring a fleet").
//!
//! Runs as root (CI); skipped loudly otherwise. Needs `chromium` (and a font,
//! `fonts-dejavu-core`; tests/run.sh installs both): when it is missing the test fails in
//! CI (`CI` set) and is skipped loudly elsewhere.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::netns::{self, Topology, BACKUP, PRIMARY};
use common::registry::{self, BACKUP_ADDR, PRIMARY_ADDR, REALM, REGISTRY};
use common::*;
use pathdns::status::StatusReport;

/// The screenshot's size: a laptop screen.
const WINDOW: (u32, u32) = (1280, 900);
/// Each Chromium run must end within this (it normally takes about a second).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// Debian's Chromium; `None` (after a loud SKIPPED line) when it is missing outside CI.
pub(crate) fn chromium() -> Option<PathBuf> {
    if let Some(path) = which("chromium") {
        return Some(path);
    }
    let fix =
        "run `sudo tests/run.sh`, which installs it (apt-get install chromium fonts-dejavu-core)";
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is not installed: {fix}"
    );
    eprintln!(
        "\n########################################################################\n\
         ## SKIPPED: chromium is not installed; {fix}\n\
         ########################################################################\n"
    );
    None
}

/// `/status` of the agent, read from inside the client namespace.
fn status(topology: &Topology, control: SocketAddr) -> Option<StatusReport> {
    let (code, body) = netns::run_in_ns(&topology.client, || http_get(control, "/status"))?;
    assert_eq!(code, 200, "/status: {body}");
    Some(serde_json::from_str(&body).unwrap_or_else(|err| panic!("/status ({err}): {body}")))
}

/// Waits (polling `/status`) until `check` accepts it; returns that snapshot.
fn wait_for_status(
    topology: &Topology,
    control: SocketAddr,
    what: &str,
    check: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = status(topology, control);
        if let Some(status) = seen.as_ref().filter(|status| check(status)) {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "/status never showed {what}; last: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn target_state(status: &StatusReport, addr: &str) -> String {
    status
        .targets
        .iter()
        .find(|t| t.name == REGISTRY && t.addr == addr)
        .map(|t| t.state.clone())
        .unwrap_or_default()
}

fn reason(status: &StatusReport) -> String {
    status
        .names
        .iter()
        .find(|n| n.name == REGISTRY)
        .map(|n| n.reason.clone())
        .unwrap_or_default()
}

/// Chromium, headless, in the client namespace, on `url` with `args`: its stdout.
pub(crate) fn run_chromium(
    chromium: &Path,
    ns: &str,
    profile: &Path,
    args: &[&str],
    url: &str,
) -> String {
    let profile = format!("--user-data-dir={}", profile.display());
    let timeout = CHROMIUM_TIMEOUT.as_secs().to_string();
    let mut command = vec![
        "timeout",
        &timeout,
        chromium.to_str().expect("utf-8 path"),
        "--headless",
        // Root has no user namespace sandbox to give it; the page is our own.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        &profile,
        // Virtual time: the page's first /status read and one 2 s refresh.
        "--virtual-time-budget=5000",
    ];
    command.extend_from_slice(args);
    command.push(url);
    let output = netns::ip_netns_exec(ns, &command);
    assert!(
        output.status.success(),
        "chromium {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every element that opens with a `tag` start tag containing `marker`, up to its end tag
/// (the page's rows and sections do not nest their own kind).
fn elements<'a>(dom: &'a str, tag: &str, marker: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find(&open) {
        let candidate = &rest[start..];
        let head_end = candidate.find('>').unwrap_or(candidate.len());
        if candidate[..head_end].contains(marker) {
            let end = candidate
                .find(&close)
                .map_or(candidate.len(), |e| e + close.len());
            found.push(&candidate[..end]);
        }
        rest = &candidate[head_end..];
    }
    found
}

/// The first of [`elements`].
pub(crate) fn element<'a>(dom: &'a str, tag: &str, marker: &str) -> Option<&'a str> {
    elements(dom, tag, marker).into_iter().next()
}

/// The start tag of `element`.
fn start_tag(element: &str) -> &str {
    element.split_once('>').map_or(element, |(head, _)| head)
}

/// The width and height of a PNG file, checking its signature and IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR"),
        "not a PNG"
    );
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (word(16), word(20))
}

#[test]
fn chromium_renders_the_live_state_after_a_failover() {
    let Some(topology) = Topology::build_with(&[PRIMARY, BACKUP]) else {
        return;
    };
    let Some(chromium) = chromium() else {
        return;
    };
    let _primary = topology.start_registry("primary", REGISTRY, REALM);
    let _backup = topology.start_registry("backup", REGISTRY, REALM);
    let mut agent = topology.start_agent(&registry::config(&topology, "", ""));
    let control = agent
        .process
        .wait_for_line("its control address", control_addr);
    wait_for_status(&topology, control, "both targets up", |status| {
        target_state(status, PRIMARY_ADDR) == "up"
            && target_state(status, BACKUP_ADDR) == "up"
            && reason(status) == "group 1"
    });

    topology.link_down("primary");
    let failed_over = wait_for_status(&topology, control, "the failover", |status| {
        target_state(status, PRIMARY_ADDR) == "down"
            && reason(status).contains("failed over")
            && status.transitions.iter().any(|t| {
                t.name == REGISTRY
                    && t.target == PRIMARY_ADDR
                    && t.to == "down"
                    && t.answer_to.as_deref() == Some(reason(status).as_str())
            })
    });
    let answer_to = reason(&failed_over);
    let host = failed_over
        .host
        .clone()
        .expect("the host's name in /status");

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://{control}/");
    let started = Instant::now();
    let dom = run_chromium(
        &chromium,
        &topology.client,
        &dir.path().join("profile-dom"),
        &["--dump-dom"],
        &url,
    );
    let dom_took = started.elapsed();

    // The page read /status: no error banner, the host and version in the header.
    let banner = element(&dom, "div", "id=\"error\"").expect("the error banner element");
    assert!(
        start_tag(banner).contains("hidden"),
        "error banner shown: {banner}"
    );
    assert!(
        dom.contains(&format!("<span class=\"host\" id=\"host\">{host}</span>")),
        "no host name {host:?} in the header:\n{dom}"
    );
    assert!(
        dom.contains(&format!("pathdns {}", env!("CARGO_PKG_VERSION"))),
        "no version:\n{dom}"
    );
    // The registry name answers from its backup group...
    let name = element(&dom, "section", &format!("data-name=\"{REGISTRY}\""))
        .unwrap_or_else(|| panic!("no section for {REGISTRY}:\n{dom}"));
    assert!(
        start_tag(name).contains(&format!("data-reason=\"{answer_to}\"")),
        "{name}"
    );
    assert!(name.contains(&format!(">{answer_to}</span>")), "{name}");
    assert!(
        name.contains(&format!("<code>{BACKUP_ADDR}</code>")),
        "{name}"
    );
    // ...the backup up and answering, the primary down and not answering...
    let backup = element(name, "tr", &format!("data-addr=\"{BACKUP_ADDR}\""))
        .unwrap_or_else(|| panic!("no backup row:\n{name}"));
    assert!(start_tag(backup).contains("data-state=\"up\""), "{backup}");
    assert!(
        start_tag(backup).contains("data-answering=\"yes\""),
        "{backup}"
    );
    assert!(backup.contains(">answering</span>"), "{backup}");
    let primary = element(name, "tr", &format!("data-addr=\"{PRIMARY_ADDR}\""))
        .unwrap_or_else(|| panic!("no primary row:\n{name}"));
    assert!(
        start_tag(primary).contains("data-state=\"down\""),
        "{primary}"
    );
    assert!(
        start_tag(primary).contains("data-answering=\"no\""),
        "{primary}"
    );
    assert!(primary.contains("s-down\">down</span>"), "{primary}");
    // ...and the transition that moved it, with the group change.
    let transition = elements(
        &dom,
        "tr",
        &format!("data-target=\"{PRIMARY_ADDR}\" data-to=\"down\""),
    )
    .into_iter()
    .find(|row| row.contains(&format!(">{REGISTRY}</td>")))
    .unwrap_or_else(|| panic!("no transition row for the registry's primary:\n{dom}"));
    assert!(
        transition.contains(&format!("group 1 → {answer_to}")),
        "{transition}"
    );

    let screenshot = dir.path().join("fleet.png");
    let shot = format!("--screenshot={}", screenshot.display());
    let size = format!("--window-size={},{}", WINDOW.0, WINDOW.1);
    let started = Instant::now();
    run_chromium(
        &chromium,
        &topology.client,
        &dir.path().join("profile-shot"),
        &[&shot, &size],
        &url,
    );
    let shot_took = started.elapsed();
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), WINDOW);
    // A blank or error page compresses to a few KiB; the rendered tables do not.
    assert!(
        png.len() > 40 * 1024,
        "the screenshot is only {} bytes",
        png.len()
    );
    eprintln!(
        "chromium: DOM after {dom_took:?}, screenshot ({} KiB) after {shot_took:?}",
        png.len() / 1024
    );
    if std::env::var_os("PATHDNS_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).expect("create docs/");
        std::fs::copy(&screenshot, docs.join("fleet.png")).expect("copy to docs/fleet.png");
        eprintln!("updated {}", docs.join("fleet.png").display());
    }
    assert!(agent.process.is_running(), "pathdns exited");
}
