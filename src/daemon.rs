//! The running agent: builds the table and forwarder from a config, binds every listen
//! address (all or nothing), serves until SIGTERM or SIGINT.
//!
//! Owns: start-up order and shutdown. Must not: contain DNS logic or parse config.

use std::sync::Arc;

use crate::config::Config;
use crate::dns::forward::{ForwardError, Forwarder};
use crate::dns::{self, BindError, Handler, ServeLimits};
use crate::probe::scheduler;
use crate::probe::{Pinger, ProbeContext};
use crate::status::StatusBoard;
use crate::supervisor::{Outputs, Supervisor};
use crate::table::LiveTable;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot set up forwarding: {0}")]
    Forwarder(#[from] ForwardError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot start probes: {0}")]
    Probes(String),
}

/// Ready after this even if some probe has not reported (it may be stuck on a timeout).
const FIRST_ROUND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports waiting for the supervisor; probes wait (never drop) when it falls behind.
const REPORT_QUEUE: usize = 1024;

/// Serves `config` until a termination signal arrives.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    for finding in config.conflicts() {
        tracing::warn!(%finding, "conflict");
    }
    let names = Arc::new(config.names.clone());
    let events = crate::events::channel();
    let board = StatusBoard::default();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let outputs = Outputs {
        events: events.clone(),
        board: board.clone(),
        config: config.source.clone(),
        started_unix_ms: crate::events::unix_ms(std::time::SystemTime::now()),
    };
    let supervisor = Supervisor::new(names, outputs);
    // Before the first probe round, every target is unknown: the primary groups answer.
    let table = Arc::new(LiveTable::new(supervisor.table()));
    let forwarder = Arc::new(Forwarder::new(&config.upstream)?);
    let handler = Arc::new(Handler::new(
        table.clone(),
        forwarder,
        config.server.allow.clone(),
    ));
    let listeners = dns::bind(&config.server.listen)?;
    let control = crate::control::bind(config.control.listen).map_err(|err| {
        let addr = config
            .control
            .listen
            .unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
        DaemonError::Bind(BindError::new(addr, "control", err))
    })?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signals)?;
    for listener in &listeners {
        if let (Ok(udp), Ok(tcp)) = (listener.udp_addr(), listener.tcp_addr()) {
            tracing::info!(%udp, %tcp, "listening");
        }
    }
    tracing::info!(
        config = %config.source,
        names = config.names.len(),
        upstreams = ?config.upstream.servers,
        "pathdns {} serving",
        env!("CARGO_PKG_VERSION")
    );
    let limits = ServeLimits {
        max_tcp_connections: config.server.max_tcp_connections,
        tcp_idle_timeout: config.server.tcp_idle_timeout,
    };
    let mut tasks = dns::serve(listeners, handler, limits);
    if let Some(listener) = control {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "control listening");
        }
        let state = crate::control::ControlState {
            board: board.clone(),
            metrics: metrics.clone(),
        };
        tasks.spawn(crate::control::serve(listener, state));
    }
    let _alerts = crate::alert::start(&config.alerts, &events);
    let _probes = start_probes(supervisor, table)?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        Some(ended) = tasks.join_next() => {
            tracing::error!(?ended, "a serving task ended unexpectedly; stopping");
        }
    }
    tasks.abort_all();
    Ok(())
}

/// Starts every probe and the supervisor that turns their reports into answer tables.
fn start_probes(
    supervisor: Supervisor,
    table: Arc<LiveTable>,
) -> Result<scheduler::Running, DaemonError> {
    let plan = supervisor.plan().clone();
    let needs_icmp = plan
        .jobs
        .iter()
        .any(|job| matches!(job.spec.kind, crate::config::ProbeKind::Icmp));
    let pinger =
        if needs_icmp {
            Some(Pinger::start().map_err(|err| {
                DaemonError::Probes(format!("icmp probes need CAP_NET_RAW: {err}"))
            })?)
        } else {
            None
        };
    let context = ProbeContext {
        tls: Default::default(),
        pinger,
    };
    let (reports, queue) = tokio::sync::mpsc::channel(REPORT_QUEUE);
    let running = scheduler::start(&plan, &context, reports).map_err(DaemonError::Probes)?;
    if !plan.jobs.is_empty() {
        tracing::info!(
            probes = plan.jobs.len(),
            runs_per_second = format!("{:.2}", plan.runs_per_second()),
            "probing"
        );
    }
    let ready_by = std::time::Instant::now() + FIRST_ROUND_DEADLINE;
    tokio::spawn(supervisor.run(queue, table, ready_by));
    Ok(running)
}
