//! `pathdns doctor`.

use std::path::Path;
use std::process::ExitCode;

#[allow(unused_variables)]
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`pathdns doctor` is being built")
}
