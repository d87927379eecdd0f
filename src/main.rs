//! The `pathdns` binary: parses the command line, runs the command, prints a failure and
//! exits with its kind's code ([`cli::exit`]). Everything else lives in the library.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => code,
        // `pathdns status | head` closing the pipe early is not an error worth a message.
        Err(failure) if is_broken_pipe(&failure.error) => ExitCode::SUCCESS,
        Err(failure) => {
            // One line, the way operators grep journals: the cause chain joined by ": ".
            eprintln!("pathdns: {:#}", failure.error);
            ExitCode::from(failure.kind.code())
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
