//! `pathdns doctor`: runs [`pathdns::doctor`]'s checks and prints one line per check,
//! `STATUS  NAME TARGET  CHECK: DETAIL`, with a `  remedy: ...` line under each failure.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use pathdns::config::{Config, DEMO_CONFIG};
use pathdns::doctor::{self, Check, Options, Verdict};

use super::exit::CommandResult;

pub fn run(config_path: &Path) -> CommandResult {
    let config = Config::load(config_path)?;
    if std::fs::read_to_string(config_path).is_ok_and(|text| text == DEMO_CONFIG) {
        // Its addresses are the documents' examples: somebody else's private network.
        return Err(anyhow::anyhow!(
            "{}: this is the demo config, whose addresses are never contacted; run doctor on \
             a config with your own addresses",
            config_path.display()
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("pathdns-doctor")
        .build()
        .context("cannot start the async runtime")?;
    let options = Options::default();
    let report = runtime.block_on(doctor::run(&config, &options));
    // Tasks still running after their own timeouts are not waited for.
    runtime.shutdown_background();

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pathdns doctor: {}: {} owned names, {} targets",
        config.source,
        config.names.len(),
        config
            .names
            .iter()
            .map(|name| name.addresses().len())
            .sum::<usize>()
    )?;
    print_report(&mut out, &report)?;
    let count = |verdict| report.iter().filter(|c| c.verdict == verdict).count();
    writeln!(
        out,
        "pathdns doctor: {} OK, {} WARN, {} FAIL",
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    )?;
    out.flush()?;
    Ok(if doctor::failed(&report) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_report(out: &mut impl Write, report: &[Check]) -> std::io::Result<()> {
    let name_width = report.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let target_width = report.iter().map(|c| c.target.len()).max().unwrap_or(0);
    for check in report {
        writeln!(
            out,
            "{:4}  {:name_width$} {:target_width$}  {}: {}",
            check.verdict, check.name, check.target, check.check, check.detail
        )?;
        if let Some(remedy) = &check.remedy {
            writeln!(out, "  remedy: {remedy}")?;
        }
    }
    Ok(())
}
