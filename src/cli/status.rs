//! `pathdns status`: the running agent's answers and target health, read from its control
//! endpoint's `/status`.
//!
//! Also the small blocking HTTP client that `pathdns hosts` shares: one `GET` over a std
//! `TcpStream`, HTTP/1.0 so that the body is never chunked and the connection closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use pathdns::config::DEFAULT_CONTROL;
use pathdns::events::unix_ms;
use pathdns::status::{StatusReport, TargetStatus};

use super::exit::CommandResult;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Far above any real status document; a bound so that a wrong port cannot fill memory.
const MAX_RESPONSE: u64 = 32 * 1024 * 1024;

pub fn run(config: &Path, control: Option<SocketAddr>, json: bool) -> CommandResult {
    let addr = control_addr(config, control)?;
    let body = get(addr, "/status")?;
    let mut out = std::io::stdout().lock();
    if json {
        out.write_all(&body)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let status = parse_status(addr, &body)?;
    write_table(&mut out, &status, unix_ms(SystemTime::now()))?;
    Ok(ExitCode::SUCCESS)
}

/// The agent's `/status`, parsed.
pub(super) fn fetch(config: &Path, control: Option<SocketAddr>) -> anyhow::Result<StatusReport> {
    let addr = control_addr(config, control)?;
    let body = get(addr, "/status")?;
    parse_status(addr, &body)
}

fn parse_status(addr: SocketAddr, body: &[u8]) -> anyhow::Result<StatusReport> {
    serde_json::from_slice(body).with_context(|| {
        format!("{addr}/status did not return a pathdns status document (is it a pathdns control endpoint of the same version?)")
    })
}

/// `--control`, else the config file's `[control] listen`. Only that section of the file is
/// read: the agent validated the whole file when it loaded it, and some checks (the host's
/// resolv.conf, for `upstream = ["system"]`) may give another answer now that pathdns is
/// the host's resolver.
pub(super) fn control_addr(
    config: &Path,
    control: Option<SocketAddr>,
) -> anyhow::Result<SocketAddr> {
    if let Some(addr) = control {
        return Ok(addr);
    }
    let text = std::fs::read_to_string(config).with_context(|| {
        format!(
            "cannot read {} to find the control endpoint (pass --config FILE or --control ADDR:PORT)",
            config.display()
        )
    })?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", config.display()))?;
    let listen = match table.get("control").and_then(|c| c.get("listen")) {
        None => DEFAULT_CONTROL.to_owned(),
        Some(toml::Value::String(listen)) => listen.trim().to_owned(),
        Some(other) => bail!(
            "{}: control.listen must be a string such as \"{DEFAULT_CONTROL}\", not {other}",
            config.display()
        ),
    };
    if listen == "off" {
        bail!(
            "{}: the control endpoint is off ([control] listen = \"off\"), so the running \
             agent cannot be asked; turn it on (default {DEFAULT_CONTROL}) and restart pathdns",
            config.display()
        );
    }
    let addr: SocketAddr = listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "{}: control.listen {listen:?} is not an address with a port such as \"{DEFAULT_CONTROL}\"",
            config.display()
        )
    })?;
    if addr.port() == 0 {
        bail!(
            "{}: control.listen has port 0 (a free port chosen at start); pass --control with \
             the address of the agent's `control listening addr=...` log line",
            config.display()
        );
    }
    // A wildcard listen address is reached on loopback.
    Ok(pathdns::host::local_address(addr))
}

/// One `GET path` to the control endpoint; the body of a 200 response.
pub(super) fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let unreachable = || {
        format!(
            "cannot reach the pathdns control endpoint at {addr} (is pathdns running, with \
             [control] listen at that address?)"
        )
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).with_context(unreachable)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: pathdns/{}\r\nAccept: application/json\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .with_context(unreachable)?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .with_context(|| format!("reading the answer of {addr}{path}"))?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{addr}{path}: not an HTTP response"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if !status_line.starts_with("HTTP/") {
        bail!("{addr}{path}: not an HTTP response");
    }
    if code != "200" {
        bail!("{addr}{path} answered {}", status_line.trim());
    }
    Ok(response.split_off(split + 4))
}

/// The readable form: a heading, the names, then every target with each probe.
fn write_table(out: &mut impl Write, status: &StatusReport, now_ms: u64) -> std::io::Result<()> {
    let uptime = ago(now_ms, status.started_unix_ms);
    writeln!(
        out,
        "pathdns {}, config {}, up {uptime}, {}",
        clean(&status.version),
        clean(&status.config),
        if status.ready { "ready" } else { "NOT READY" }
    )?;
    writeln!(out, "{}", clean(&status.summary()))?;
    if let Some(f) = &status.forwarding {
        writeln!(
            out,
            "forwarded: {} from cache, {} sent upstream, {} stale answers, {} upstream errors",
            f.cache_hits, f.cache_misses, f.stale_answers, f.upstream_errors
        )?;
    }
    write_host_reads(out, status, now_ms)?;
    write_aborts(out, status, now_ms)?;
    write_discovery(out, status, now_ms)?;
    writeln!(out)?;

    let rows: Vec<[String; 4]> = status
        .names
        .iter()
        .map(|n| {
            [
                clean(&n.name),
                clean(&n.answer),
                clean(&n.reason),
                n.ttl.to_string(),
            ]
        })
        .collect();
    write_rows(out, ["NAME", "ANSWER", "REASON", "TTL"], &rows)?;

    if status.targets.is_empty() {
        writeln!(out)?;
        return writeln!(out, "no targets");
    }
    writeln!(out)?;
    let mut rows: Vec<[String; 9]> = Vec::new();
    for target in &status.targets {
        rows.extend(target_rows(target, now_ms));
    }
    write_rows(
        out,
        [
            "NAME",
            "TARGET",
            "PRIO",
            "STATE",
            "PROBE",
            "RESULT",
            "RTT",
            "CHANGED",
            "LAST ERROR",
        ],
        &rows,
    )?;
    write_transitions(out, status, now_ms)
}

/// How many of `/status`'s transitions the table shows (all of them are in `--json`).
const SHOWN_TRANSITIONS: usize = 5;

/// The last target state changes, newest last, with the answer change they caused.
fn write_transitions(
    out: &mut impl Write,
    status: &StatusReport,
    now_ms: u64,
) -> std::io::Result<()> {
    let skip = status.transitions.len().saturating_sub(SHOWN_TRANSITIONS);
    let shown = status.transitions.get(skip..).unwrap_or_default();
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nrecent transitions:")?;
    for t in shown {
        let mut line = format!(
            "  {} ago  {} {}: {} -> {} ({})",
            ago(now_ms, t.unix_ms),
            clean(&t.name),
            clean(&t.target),
            clean(&t.from),
            clean(&t.to),
            clean(&t.probe)
        );
        if let Some(reason) = &t.reason {
            line.push_str(&format!(": {}", clean(reason)));
        }
        if let (Some(from), Some(to)) = (&t.answer_from, &t.answer_to) {
            line.push_str(&format!("; answer {} -> {}", clean(from), clean(to)));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Host reads: one line when all work, one line per failing read otherwise (nothing from
/// an agent too old to report them).
fn write_host_reads(
    out: &mut impl Write,
    status: &StatusReport,
    now_ms: u64,
) -> std::io::Result<()> {
    match status.host_read_failures.as_deref() {
        None => Ok(()),
        Some([]) => writeln!(out, "host reads: ok (routes, links, addresses, hostname)"),
        Some(failures) => {
            for failure in failures {
                writeln!(
                    out,
                    "HOST READ FAILING: {}: {} (for {})",
                    clean(&failure.read),
                    clean(&failure.cause),
                    ago(now_ms, failure.since_unix_ms)
                )?;
            }
            Ok(())
        }
    }
}

/// `discover`: per asked name, the last good addresses and where they come from, the last
/// answer when it differs, the addresses not used and why, a silent server.
fn write_discovery(
    out: &mut impl Write,
    status: &StatusReport,
    now_ms: u64,
) -> std::io::Result<()> {
    let Some(discovery) = &status.discovery else {
        return Ok(());
    };
    if let Some(error) = &discovery.state_error {
        writeln!(out, "discover: state file: {}", clean(error))?;
    }
    for name in &discovery.names {
        let addresses = if name.addresses.is_empty() {
            "none yet (forwarded until discovered)".to_owned()
        } else {
            clean(&name.addresses.join(" "))
        };
        let asked = name.last_round_unix_ms.map_or_else(
            || "not asked yet".to_owned(),
            |at| format!("asked {} ago", ago(now_ms, at)),
        );
        writeln!(
            out,
            "discover {}: {addresses} (from {}; {asked} of {})",
            clean(&name.name),
            clean(&name.source),
            clean(&name.servers.join(", "))
        )?;
        if let Some(error) = &name.last_error {
            writeln!(
                out,
                "  no usable answer for {} rounds: {}",
                name.failed_rounds,
                clean(error)
            )?;
        }
        for unused in &name.not_used {
            writeln!(
                out,
                "  not used {}: {}",
                clean(&unused.addr),
                clean(&unused.reason)
            )?;
        }
    }
    Ok(())
}

/// `abort_stalled`: whether it works here, and the connections it ended last (nothing from
/// an agent too old to report it).
fn write_aborts(out: &mut impl Write, status: &StatusReport, now_ms: u64) -> std::io::Result<()> {
    let Some(aborts) = &status.abort_stalled else {
        return Ok(());
    };
    match (aborts.available, &aborts.unavailable_reason) {
        (Some(true), _) => writeln!(out, "abort_stalled: available")?,
        (Some(false), reason) => writeln!(
            out,
            "abort_stalled: UNAVAILABLE: {}",
            clean(reason.as_deref().unwrap_or("unknown"))
        )?,
        (None, _) => writeln!(out, "abort_stalled: not checked yet")?,
    }
    for aborted in &aborts.recent {
        let owner = match (aborted.owner_pid, &aborted.owner_comm) {
            (Some(pid), Some(comm)) => format!(" by {} ({pid})", clean(comm)),
            (Some(pid), None) => format!(" by pid {pid}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  aborted {}: {} -> {} {}, {}{owner} ({} ago)",
            clean(&aborted.name),
            clean(&aborted.local),
            clean(&aborted.remote),
            clean(&aborted.state),
            clean(&aborted.reason),
            ago(now_ms, aborted.unix_ms)
        )?;
    }
    Ok(())
}

/// One row per probe; the target's own columns only on its first row.
fn target_rows(target: &TargetStatus, now_ms: u64) -> Vec<[String; 9]> {
    let head = [
        clean(&target.name),
        clean(&target.addr),
        target.priority.to_string(),
        clean(&target.state),
    ];
    if target.probes.is_empty() {
        let [name, addr, priority, state] = head;
        let none = || "-".to_owned();
        return vec![[
            name,
            addr,
            priority,
            state,
            "none".to_owned(),
            none(),
            none(),
            none(),
            none(),
        ]];
    }
    target
        .probes
        .iter()
        .enumerate()
        .map(|(i, probe)| {
            let [name, addr, priority, state] = if i == 0 {
                head.clone()
            } else {
                Default::default()
            };
            [
                name,
                addr,
                priority,
                state,
                clean(&probe.kind),
                clean(&probe.state),
                probe
                    .last_rtt_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
                probe.last_change_unix_ms.map_or_else(
                    || "never".to_owned(),
                    |at| format!("{} ago", ago(now_ms, at)),
                ),
                probe
                    .last_error
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), clean),
            ]
        })
        .collect()
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn write_rows<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &header)?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cells)?;
    }
    Ok(())
}

/// "45s", "3m12s", "2h05m", "3d04h".
fn ago(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// Text from the agent goes to a terminal: no control characters.
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pathdns::status::{
        AbortStatus, AbortedConnection, DiscoveredName, DiscoveryStatus, ForwardingStatus,
        HostReadFailure, NameStatus, ProbeStatus, Transition, UnusedAddress,
    };

    #[test]
    fn working_host_reads_are_one_line_and_an_old_agent_none() {
        let mut status = StatusReport {
            host_read_failures: Some(Vec::new()),
            ..StatusReport::default()
        };
        let mut out = Vec::new();
        write_table(&mut out, &status, 0).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("\nhost reads: ok (routes, links, addresses, hostname)\n"));
        status.host_read_failures = None;
        let mut out = Vec::new();
        write_table(&mut out, &status, 0).expect("write");
        assert!(!String::from_utf8(out)
            .expect("utf-8")
            .contains("host reads"));
    }

    #[test]
    fn the_table_shows_names_targets_and_probes() {
        let status = StatusReport {
            version: "0.1.0".into(),
            config: "/etc/pathdns/pathdns.toml".into(),
            started_unix_ms: 1_000,
            pid: 42,
            loaded_unix_ms: 1_000,
            ready: true,
            names: vec![NameStatus {
                name: "reg.example".into(),
                role: "registry".into(),
                answer: "10.0.0.2".into(),
                reason: "group 2 (failed over)".into(),
                ttl: 3,
            }],
            targets: vec![TargetStatus {
                name: "reg.example".into(),
                addr: "10.0.0.1".into(),
                priority: 1,
                state: "down".into(),
                probes: vec![
                    ProbeStatus {
                        kind: "tcp".into(),
                        state: "down".into(),
                        last_rtt_ms: Some(0.31),
                        last_error: Some("connection refused\u{1b}[2J".into()),
                        last_detail: None,
                        last_change_unix_ms: Some(3_725_000 - 125_000),
                    },
                    ProbeStatus {
                        kind: "https".into(),
                        state: "up".into(),
                        last_rtt_ms: None,
                        last_error: None,
                        last_detail: None,
                        last_change_unix_ms: None,
                    },
                ],
            }],
            forwarding: Some(ForwardingStatus {
                cache_hits: 7,
                cache_misses: 3,
                stale_answers: 2,
                upstream_errors: 1,
            }),
            host_read_failures: Some(vec![HostReadFailure {
                read: "routes".into(),
                cause: "netlink socket: permission denied".into(),
                since_unix_ms: 3_725_000 - 61_000,
            }]),
            abort_stalled: Some(AbortStatus {
                available: Some(true),
                unavailable_reason: None,
                recent: vec![AbortedConnection {
                    unix_ms: 3_725_000 - 3_000,
                    name: "reg.example".into(),
                    local: "10.0.0.9:40000".into(),
                    remote: "10.0.0.1:443".into(),
                    state: "ESTABLISHED".into(),
                    reason: "peer silent".into(),
                    owner_pid: Some(77),
                    owner_comm: Some("dockerd".into()),
                }],
            }),
            host: Some("idc-host-1".into()),
            transitions: vec![Transition {
                unix_ms: 3_725_000 - 5_000,
                name: "reg.example".into(),
                target: "10.0.0.1".into(),
                from: "up".into(),
                to: "down".into(),
                probe: "tcp".into(),
                reason: Some("connection refused".into()),
                answer_from: Some("group 1".into()),
                answer_to: Some("group 2 (failed over)".into()),
            }],
            discovery: Some(DiscoveryStatus {
                state_file: "/var/lib/pathdns/discovered.json".into(),
                state_error: None,
                names: vec![DiscoveredName {
                    name: "reg.example".into(),
                    servers: vec!["10.0.5.53:53".into()],
                    interval_s: 300,
                    source: "discovered".into(),
                    addresses: vec!["10.0.0.1".into()],
                    last_round_unix_ms: Some(3_725_000 - 2_000),
                    last_answer: vec!["100.118.28.50".into()],
                    not_used: vec![UnusedAddress {
                        addr: "100.118.28.50".into(),
                        reason: "its https probe failed (timeout)".into(),
                    }],
                    ..DiscoveredName::default()
                }],
            }),
        };
        let mut out = Vec::new();
        write_table(&mut out, &status, 3_725_000).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "pathdns 0.1.0, config /etc/pathdns/pathdns.toml, up 1h02m, ready"
        );
        assert!(lines.contains(
            &"forwarded: 7 from cache, 3 sent upstream, 2 stale answers, 1 upstream errors"
        ));
        assert!(lines
            .contains(&"HOST READ FAILING: routes: netlink socket: permission denied (for 1m01s)"));
        assert!(lines.contains(&"abort_stalled: available"), "{text}");
        assert!(
            lines.contains(
                &"discover reg.example: 10.0.0.1 (from discovered; asked 2s ago of 10.0.5.53:53)"
            ),
            "{text}"
        );
        assert!(
            lines.contains(&"  not used 100.118.28.50: its https probe failed (timeout)"),
            "{text}"
        );
        assert_eq!(
            lines.last(),
            Some(&"  5s ago  reg.example 10.0.0.1: up -> down (tcp): connection refused; answer group 1 -> group 2 (failed over)"),
            "{text}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "  aborted reg.example: 10.0.0.9:40000 -> 10.0.0.1:443 ESTABLISHED, peer silent by dockerd (77)"
            )),
            "{text}"
        );
        assert!(lines.contains(&"NAME         ANSWER    REASON                 TTL"));
        assert!(lines.contains(&"reg.example  10.0.0.2  group 2 (failed over)  3"));
        let probe = lines
            .iter()
            .find(|l| l.starts_with("reg.example  10.0.0.1"))
            .expect("target row");
        assert!(probe.contains("tcp"), "{probe}");
        assert!(probe.contains("0.3 ms"), "{probe}");
        assert!(probe.contains("2m05s ago"), "{probe}");
        assert!(probe.ends_with("connection refused?[2J"), "{probe}");
        assert!(lines
            .iter()
            .any(|l| l.trim_start().starts_with("https") && l.contains("never")));
    }

    #[test]
    fn a_wildcard_listen_address_is_asked_on_loopback() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pathdns.toml");
        std::fs::write(&path, "[control]\nlisten = \"0.0.0.0:9300\"\n").expect("write");
        let addr = control_addr(&path, None).expect("address");
        assert_eq!(addr, "127.0.0.1:9300".parse().expect("addr"));
        std::fs::write(&path, "[server]\nlisten = [\"127.0.0.1:53\"]\n").expect("write");
        assert_eq!(
            control_addr(&path, None).expect("default"),
            DEFAULT_CONTROL.parse().expect("addr")
        );
        std::fs::write(&path, "[control]\nlisten = \"off\"\n").expect("write");
        let err = control_addr(&path, None).expect_err("off");
        assert!(err.to_string().contains("is off"), "{err}");
    }
}
