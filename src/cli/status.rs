//! `pathdns status`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

#[allow(unused_variables)]
pub fn run(config: &Path, control: Option<SocketAddr>, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`pathdns status` is being built")
}
