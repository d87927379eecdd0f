//! Probes: does a target really work over the path this host uses?
//!
//! Owns: one run of each probe kind against one target ([`Prepared::run`]), the TLS set-up they share
//! ([`tls`]), and the [`scheduler`] that runs each distinct probe on its own task at its
//! interval, with jitter, faster while suspect, and at once when the kernel reports a
//! path change ([`trigger`]). Must not: keep health state or choose
//! answers (that is `health` and `failover`); a probe that cannot reach its target returns
//! a failed [`Outcome`], never an error that stops anything.

mod https;
mod icmp;
mod path;
pub mod scheduler;
mod tcp;
pub mod tls;
pub mod trigger;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::config::ProbeKind;

pub use https::error_chain;
pub use icmp::Pinger;

/// What one probe run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub rtt: Option<Duration>,
    /// Why it failed, or what it saw when it passed (status code, egress).
    pub detail: Option<String>,
    /// The token realm's host from a registry's `WWW-Authenticate` header.
    pub realm: Option<String>,
    /// A failure that is a definite local verdict (the kernel has no route, the egress
    /// interface is down): the probe goes down at once instead of after `fall` failures.
    pub decisive: bool,
}

impl Outcome {
    pub fn pass(started: Instant, detail: Option<String>) -> Outcome {
        Outcome {
            ok: true,
            rtt: Some(started.elapsed()),
            detail,
            realm: None,
            decisive: false,
        }
    }

    pub fn fail(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            rtt: None,
            detail: Some(detail.into()),
            realm: None,
            decisive: false,
        }
    }

    /// A failure the kernel itself decided (see [`Outcome::decisive`]).
    pub fn decisive_fail(detail: impl Into<String>) -> Outcome {
        Outcome {
            decisive: true,
            ..Outcome::fail(detail)
        }
    }
}

/// What a probe is aimed at: a target address, and the owned name it must answer for
/// (SNI and Host for TLS and HTTPS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeTarget {
    pub addr: IpAddr,
    pub server_name: Name,
}

impl ProbeTarget {
    /// The server name as TLS and HTTP want it: no trailing dot.
    pub fn host(&self) -> String {
        self.server_name.to_ascii().trim_end_matches('.').to_owned()
    }
}

/// Shared resources the probes need: TLS configurations and the ICMP socket.
pub struct ProbeContext {
    pub tls: tls::TlsConfigs,
    pub pinger: Option<Pinger>,
}

/// A reusable probe: set up once (TLS config, HTTP client), run many times.
pub enum Prepared {
    Tcp {
        port: u16,
    },
    Tls {
        port: u16,
        config: std::sync::Arc<rustls::ClientConfig>,
    },
    Https(https::HttpsProbe),
    Icmp(Option<Pinger>),
    Path(path::PathProbe),
}

impl Prepared {
    pub fn new(
        kind: &ProbeKind,
        target: &ProbeTarget,
        timeout: Duration,
        context: &ProbeContext,
    ) -> Result<Prepared, String> {
        Ok(match kind {
            ProbeKind::Tcp { port } => Prepared::Tcp { port: *port },
            ProbeKind::Tls { port, ca_file } => Prepared::Tls {
                port: *port,
                config: context.tls.get(ca_file.as_deref())?,
            },
            ProbeKind::Https {
                port,
                path,
                expect,
                ca_file,
            } => Prepared::Https(https::HttpsProbe::new(
                target,
                *port,
                path,
                expect,
                timeout,
                context.tls.get(ca_file.as_deref())?,
            )?),
            ProbeKind::Icmp => Prepared::Icmp(context.pinger.clone()),
            ProbeKind::Path { via, source } => {
                Prepared::Path(path::PathProbe::new(via.clone(), *source))
            }
        })
    }

    /// One run; the scheduler bounds it with the probe's timeout.
    pub async fn run(&self, target: &ProbeTarget, timeout: Duration) -> Outcome {
        match self {
            Prepared::Tcp { port } => tcp::connect(target.addr, *port).await,
            Prepared::Tls { port, config } => tls::handshake(target, *port, config.clone()).await,
            Prepared::Https(probe) => probe.run().await,
            Prepared::Icmp(Some(pinger)) => pinger.ping(target.addr, timeout).await,
            Prepared::Icmp(None) => Outcome::fail("no ICMP socket (CAP_NET_RAW missing)"),
            Prepared::Path(probe) => probe.run(target.addr).await,
        }
    }
}

/// A short, stable text for an I/O error: "connection refused", "host unreachable".
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text.to_lowercase(),
    }
}
