//! Probes: does a target really work over the path this host uses?
//!
//! Owns: one run of each probe kind against one target ([`PreparedProbe::run`]), the TLS set-up they share
//! ([`tls`]), and the [`scheduler`] that runs each distinct probe on its own task at its
//! interval, with jitter, faster while suspect, and at once when the kernel reports a
//! path change ([`trigger`]). Must not: keep health state or choose
//! answers (that is `health` and `failover`); a probe that cannot reach its target returns
//! a failed [`ProbeOutcome`], never an error that stops anything.

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

pub use icmp::Pinger;

/// What one probe run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
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

impl ProbeOutcome {
    pub fn pass(started: Instant, detail: Option<String>) -> ProbeOutcome {
        ProbeOutcome {
            ok: true,
            rtt: Some(started.elapsed()),
            detail,
            realm: None,
            decisive: false,
        }
    }

    pub fn fail(detail: impl Into<String>) -> ProbeOutcome {
        ProbeOutcome {
            ok: false,
            rtt: None,
            detail: Some(detail.into()),
            realm: None,
            decisive: false,
        }
    }

    /// A failure the kernel itself decided (see [`ProbeOutcome::decisive`]).
    pub fn decisive_fail(detail: impl Into<String>) -> ProbeOutcome {
        ProbeOutcome {
            decisive: true,
            ..ProbeOutcome::fail(detail)
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
pub enum PreparedProbe {
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

impl PreparedProbe {
    pub fn new(
        kind: &ProbeKind,
        target: &ProbeTarget,
        timeout: Duration,
        context: &ProbeContext,
    ) -> Result<PreparedProbe, String> {
        Ok(match kind {
            ProbeKind::Tcp { port } => PreparedProbe::Tcp { port: *port },
            ProbeKind::Tls { port, ca_file } => PreparedProbe::Tls {
                port: *port,
                config: context.tls.get(ca_file.as_deref())?,
            },
            ProbeKind::Https {
                port,
                path,
                expect,
                ca_file,
            } => PreparedProbe::Https(https::HttpsProbe::new(
                target,
                *port,
                path,
                expect,
                timeout,
                context.tls.get(ca_file.as_deref())?,
            )?),
            ProbeKind::Icmp => PreparedProbe::Icmp(context.pinger.clone()),
            ProbeKind::Path { via, source } => {
                PreparedProbe::Path(path::PathProbe::new(via.clone(), *source))
            }
        })
    }

    /// One run that ends within `timeout`: past it, a failed outcome saying so. For the
    /// one-off runs (verifying a discovered address, `pathdns discover`).
    pub async fn run_bounded(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        tokio::time::timeout(timeout, self.run(target, timeout))
            .await
            .unwrap_or_else(|_| {
                ProbeOutcome::fail(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                ))
            })
    }

    /// One run; the scheduler bounds it with the probe's timeout.
    pub async fn run(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        match self {
            PreparedProbe::Tcp { port } => tcp::connect(target.addr, *port).await,
            PreparedProbe::Tls { port, config } => {
                tls::handshake(target, *port, config.clone()).await
            }
            PreparedProbe::Https(probe) => probe.run().await,
            PreparedProbe::Icmp(Some(pinger)) => pinger.ping(target.addr, timeout).await,
            PreparedProbe::Icmp(None) => ProbeOutcome::fail("no ICMP socket (CAP_NET_RAW missing)"),
            PreparedProbe::Path(probe) => probe.run(target.addr).await,
        }
    }
}

/// A probe detail's wording of an I/O error: the OS's reason as a lower-case clause,
/// `connection refused`, `host unreachable`, as status tables and alerts show it.
pub(crate) fn io_detail(err: &std::io::Error) -> String {
    crate::reason::io_reason(err).to_lowercase()
}
