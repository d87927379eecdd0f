//! `pathdns resolver enable | disable | status`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Point the host's resolver at pathdns.
    Enable,
    /// Restore the resolver configuration saved by `enable`.
    Disable,
    /// Show whether pathdns is the host's resolver.
    Status,
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`pathdns resolver {action:?}` is being built")
}
