//! `pathdns hosts`: the /etc/hosts lines equivalent to the running agent's answers now,
//! read from its `/status`. For a host that cannot run pathdns, or to compare with
//! hand-written lines; they go stale on the next failover, which pathdns itself would
//! follow.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use pathdns::status::{NameStatus, StatusReport};

use super::exit::CommandResult;
use super::status::{clean, fetch};

pub fn run(config: &Path, control: Option<SocketAddr>) -> CommandResult {
    let status = fetch(config, control)?;
    let mut out = std::io::stdout().lock();
    write_hosts(&mut out, &status)?;
    Ok(ExitCode::SUCCESS)
}

fn write_hosts(out: &mut impl Write, status: &StatusReport) -> std::io::Result<()> {
    writeln!(
        out,
        "# /etc/hosts lines for the answers of pathdns {} ({}) now.",
        clean(&status.version),
        clean(&status.config)
    )?;
    writeln!(
        out,
        "# They do not follow failovers: pointing the resolver at pathdns does."
    )?;
    for name in &status.names {
        write_name(out, name)?;
    }
    Ok(())
}

fn write_name(out: &mut impl Write, status: &NameStatus) -> std::io::Result<()> {
    let name = clean(&status.name);
    let answer = clean(&status.answer);
    let addresses: Option<Vec<IpAddr>> = status
        .answer
        .split_whitespace()
        .map(|word| word.parse().ok())
        .collect();
    match addresses {
        Some(addresses) if !addresses.is_empty() => {
            if name.starts_with("*.") {
                return writeln!(
                    out,
                    "# {name}: a wildcard, which /etc/hosts cannot express; write a line per \
                     name under it that clients use, with {answer}"
                );
            }
            for address in addresses {
                writeln!(out, "{address} {name}")?;
            }
            Ok(())
        }
        _ => {
            let why = if let Some(target) = answer.strip_prefix("CNAME ") {
                format!("an alias of {target}, which /etc/hosts cannot express; write the addresses of {target} for it")
            } else if answer.starts_with("SERVFAIL") {
                format!("no address to write: pathdns answers {answer}")
            } else if answer.starts_with("forwarded") {
                format!("not answered by pathdns now ({answer}); the upstream resolvers answer it")
            } else {
                format!("no address to write (answer: {answer})")
            };
            writeln!(out, "# {name}: {why}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(name: &str, answer: &str) -> NameStatus {
        NameStatus {
            name: name.into(),
            role: "name".into(),
            answer: answer.into(),
            reason: "static".into(),
            ttl: 60,
        }
    }

    #[test]
    fn addresses_become_lines_and_the_rest_comments() {
        let status = StatusReport {
            version: "0.1.0".into(),
            config: "test.toml".into(),
            names: vec![
                name("reg.example", "10.0.0.1 10.0.0.2"),
                name("v6.example", "fd00::1"),
                name("*.oss.example", "100.118.28.43"),
                name("alias.example", "CNAME reg.example"),
                name("down.example", "SERVFAIL (all targets down)"),
                name("gone.example", "forwarded upstream (all targets down)"),
            ],
            ..StatusReport::default()
        };
        let mut out = Vec::new();
        write_hosts(&mut out, &status).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            vec![
                "10.0.0.1 reg.example",
                "10.0.0.2 reg.example",
                "fd00::1 v6.example"
            ]
        );
        for needle in [
            "# *.oss.example: a wildcard",
            "# alias.example: an alias of reg.example",
            "# down.example: no address to write",
            "# gone.example: not answered by pathdns now",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
