//! How pathdns words an error for a person: the one place that turns an I/O error or an
//! error chain into the short text that config errors, probe details, doctor and alerts
//! print.
//!
//! Owns: [`io_reason`] and [`error_chain`]. Must not: decide what the error means (callers
//! add what was being done and to what).

/// The operating system's reason without Rust's ` (os error N)` suffix, as the OS words it:
/// `No such file or directory`. Probe details, which read as lower-case clauses in status
/// tables (`tcp 10.0.0.1:443: connection refused`), lower-case it at the call.
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// An error with its causes joined by ": ". reqwest's top-level message is "error sending
/// request"; the causes say what happened.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_error_number_is_left_out() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&err), "No such file or directory");
        let err = std::io::Error::other("plain");
        assert_eq!(io_reason(&err), "plain");
    }
}
