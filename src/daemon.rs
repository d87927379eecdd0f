//! The running agent: builds the table and forwarder from a config, binds every listen
//! address (all or nothing), serves until SIGTERM or SIGINT.
//!
//! Owns: start-up order and shutdown. Must not: contain DNS logic or parse config.

use std::sync::Arc;

use crate::config::Config;
use crate::dns::forward::{ForwardError, Forwarder};
use crate::dns::{self, BindError, Handler, ServeLimits};
use crate::table::{primary_addresses, AnswerTable, LiveTable};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot set up forwarding: {0}")]
    Forwarder(#[from] ForwardError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Serves `config` until a termination signal arrives.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let table = Arc::new(LiveTable::new(AnswerTable::build(
        &config.names,
        primary_addresses,
    )));
    let forwarder = Arc::new(Forwarder::new(&config.upstream)?);
    let handler = Arc::new(Handler::new(table, forwarder, config.server.allow.clone()));
    let listeners = dns::bind(&config.server.listen)?;
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
