//! Exit codes from an explicit error kind (routinator's pattern), not from downcasting: a
//! command's failure carries its [`ExitKind`] from where it happened, and context added on
//! the way up keeps it.
//!
//! Owns: the kinds, their codes and the conversions that decide a kind. Must not: print
//! (main.rs prints the one line).
//!
//! The codes follow sysexits(3), as systemd reads them (packaging/pathdns.service):
//! 78 EX_CONFIG is in `RestartPreventExitStatus`, so a bad config is not retried; 69
//! EX_UNAVAILABLE (a listen address cannot be bound, for any reason, a missing
//! CAP_NET_BIND_SERVICE included) is retried by `Restart=on-failure`. A missing capability
//! is 69, not 77 EX_NOPERM: the unit grants the capabilities, both codes are retried the
//! same way, and one code for "cannot bind" keeps scripts simple. It is never 78.

use std::fmt;
use std::process::ExitCode;

use pathdns::config::ConfigError;
use pathdns::daemon::DaemonError;
use pathdns::resolver::ResolverError;

/// What kind of failure ended a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Anything else: 1.
    Failure,
    /// A service pathdns needs is unavailable (a listen address cannot be bound): 69.
    Unavailable,
    /// The configuration cannot be used: 78.
    Config,
}

impl ExitKind {
    /// The process exit status. 2 (usage) is clap's, which exits by itself.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failure => 1,
            ExitKind::Unavailable => 69,
            ExitKind::Config => 78,
        }
    }
}

/// A command's failure: the error to print and the kind that decides the exit code.
#[derive(Debug)]
pub struct Failure {
    pub kind: ExitKind,
    pub error: anyhow::Error,
}

impl Failure {
    /// Adds what was being done, keeping the kind.
    pub fn context<C>(self, context: C) -> Failure
    where
        C: fmt::Display + Send + Sync + 'static,
    {
        Failure {
            kind: self.kind,
            error: self.error.context(context),
        }
    }
}

/// A command's result at the binary edge.
pub type CommandResult = Result<ExitCode, Failure>;

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure {
            kind: ExitKind::Failure,
            error,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        anyhow::Error::new(error).into()
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Failure {
        Failure {
            kind: ExitKind::Config,
            error: error.into(),
        }
    }
}

impl From<ResolverError> for Failure {
    fn from(error: ResolverError) -> Failure {
        anyhow::Error::new(error).into()
    }
}

impl From<DaemonError> for Failure {
    fn from(error: DaemonError) -> Failure {
        let kind = match error {
            DaemonError::Bind(_) => ExitKind::Unavailable,
            _ => ExitKind::Failure,
        };
        Failure {
            kind,
            error: error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error() -> ConfigError {
        pathdns::config::Config::parse("[server]\nlisten = 5\n", "bad.toml")
            .expect_err("invalid config")
    }

    #[test]
    fn a_config_error_in_context_still_exits_78() {
        let failure = Failure::from(config_error()).context("put resolv.conf back");
        assert_eq!(failure.kind.code(), 78);
        let text = format!("{:#}", failure.error);
        assert!(
            text.starts_with("put resolv.conf back: bad.toml:"),
            "{text}"
        );
    }

    #[test]
    fn other_errors_exit_1() {
        let failure = Failure::from(anyhow::anyhow!("boom"));
        assert_eq!(failure.kind.code(), 1);
        let failure = Failure::from(std::io::Error::other("io"));
        assert_eq!(failure.kind, ExitKind::Failure);
    }
}
