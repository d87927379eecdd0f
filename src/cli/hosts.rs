//! `pathdns hosts`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

#[allow(unused_variables)]
pub fn run(config: &Path, control: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`pathdns hosts` is being built")
}
