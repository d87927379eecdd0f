//! `pathdns node-local up | down | status`: the node-local address of the config
//! (`server.node_local`) on `lo`, over [`pathdns::host::node_local`].
//!
//! `up` runs before the agent (the packaged unit's `ExecStartPre=+`, with the privileges
//! the agent itself does not have) and leaves the address in place when the agent stops,
//! so that a restart has no moment without it; `down` runs when the package is removed.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use pathdns::config::Config;
use pathdns::host::node_local::{self, NodeLocalError, Outcome, Placement, LABEL};

use super::exit::{CommandResult, ExitKind, Failure};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Action {
    /// Add the address to lo (labelled lo:pathdns), unless it is there already.
    Up,
    /// Remove pathdns's address (every address labelled lo:pathdns) from lo; reads no
    /// config.
    Down,
    /// Say where the address is; exit 3 when pathdns's address is missing.
    Status,
}

/// `status`: the address is missing (like `systemctl is-active`'s 3).
const STATUS_MISSING: u8 = 3;

pub fn run(action: Action, config_path: &Path) -> CommandResult {
    let mut out = std::io::stdout().lock();
    if matches!(action, Action::Down) {
        // No config needed: what carries the label is pathdns's, whatever the config says
        // now (the package's removal runs this, also with a broken config).
        let removed = node_local::down().map_err(unavailable)?;
        let list: Vec<String> = removed.iter().map(|ip| ip.to_string()).collect();
        match list.is_empty() {
            true => writeln!(
                out,
                "node-local: no address labelled {LABEL}, nothing to remove"
            )?,
            false => writeln!(out, "node-local: removed {} from lo", list.join(", "))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(config_path)?;
    let Some(wanted) = config.server.node_local.as_ref() else {
        writeln!(
            out,
            "node-local: off in {} (server.node_local)",
            config_path.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    let addr = wanted.addr;
    if matches!(action, Action::Up) {
        let said = match node_local::up(addr).map_err(unavailable)? {
            Outcome::Added => "added",
            Outcome::AlreadyThere => "already there",
        };
        writeln!(out, "node-local: {addr}/32 on lo ({LABEL}): {said}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let placement = node_local::placement(addr).map_err(unavailable)?;
    writeln!(
        out,
        "node-local: {addr} ({}): {}",
        wanted.because,
        placed(&placement)
    )?;
    Ok(match placement {
        Placement::Ours => ExitCode::SUCCESS,
        _ => ExitCode::from(STATUS_MISSING),
    })
}

/// Where the address is, as `check` and `status` say it.
pub fn placed(placement: &Placement) -> String {
    match placement {
        Placement::Ours => format!("on lo ({LABEL})"),
        Placement::Elsewhere { interface } => {
            format!("IN USE by {interface}, not pathdns's address")
        }
        Placement::Absent => "MISSING: `pathdns node-local up` adds it".into(),
    }
}

/// Every failure to set up the address is 69 (EX_UNAVAILABLE), as a listen address that
/// cannot be bound is: the unit's ExecStartPre fails and systemd retries.
fn unavailable(error: NodeLocalError) -> Failure {
    Failure {
        kind: ExitKind::Unavailable,
        error: error.into(),
    }
}
