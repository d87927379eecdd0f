//! `pathdns reload`: validate the config here, then signal the running agent and wait
//! until it serves the new one.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use pathdns::config::Config;

use super::exit::CommandResult;
use super::status;

/// How long the agent may take to apply a valid config.
const APPLY_DEADLINE: Duration = Duration::from_secs(10);

pub fn run(config: &Path, control: Option<SocketAddr>) -> CommandResult {
    // The agent would reject it too; saying so here leaves it alone.
    Config::load(config)?;
    let before = status::fetch(config, control)?;
    let ours = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let theirs =
        std::fs::canonicalize(&before.config).unwrap_or_else(|_| before.config.clone().into());
    if ours != theirs {
        return Err(anyhow::anyhow!(
            "the agent at the control endpoint serves {}, not {}: it would reload its own file",
            before.config,
            config.display()
        )
        .into());
    }
    if before.pid == 0 {
        return Err(anyhow::anyhow!("the agent's /status does not name its process (an older pathdns?); use `systemctl reload pathdns` or `kill -HUP`").into());
    }
    signal_reload(before.pid)?;
    let started = Instant::now();
    while started.elapsed() < APPLY_DEADLINE {
        std::thread::sleep(Duration::from_millis(100));
        let now = status::fetch(config, control)?;
        if now.loaded_unix_ms != before.loaded_unix_ms {
            writeln!(
                std::io::stdout().lock(),
                "reloaded {} (pid {}): {}",
                now.config,
                now.pid,
                now.summary()
            )?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    Err(anyhow::anyhow!(
        "pid {} did not load the new config within {APPLY_DEADLINE:?}; its log says why \
         (journalctl -u pathdns)",
        before.pid
    )
    .into())
}

/// SIGHUP to the agent's pid, with what to do when it cannot be sent.
fn signal_reload(pid: u32) -> anyhow::Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        bail!("the agent's /status names pid {pid}, which is not a process id");
    };
    match kill(Pid::from_raw(raw), Signal::SIGHUP) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            bail!("cannot signal pathdns (pid {pid}): run as the same user or root")
        }
        Err(Errno::ESRCH) => {
            bail!("pid {pid} from the agent's /status is gone: is the agent restarting?")
        }
        Err(err) => bail!("cannot signal pathdns (pid {pid}): {err}"),
    }
}
