//! The `pathdns` binary: parses the command line, runs the command, maps errors to exit
//! codes. Everything else lives in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => code,
        Err(err) => {
            // One line, the way operators grep journals: the cause chain joined by ": ".
            eprintln!("pathdns: {err:#}");
            ExitCode::from(cli::exit_code(&err))
        }
    }
}
