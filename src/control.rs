//! The control endpoint on loopback: `/healthz`, `/readyz`, `/metrics`, `/status`, and
//! the status page at `/`.
//!
//! Owns: the HTTP listener, its limits and its five routes. Must not: compute anything it
//! serves; it reads the status board and renders the metrics registry.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the status page ([`STATUS_PAGE`]): one static HTML document, no external resources (a strict [`PAGE_CSP`]), whose script reads `/status` every 2 s |
//! | `GET /healthz` | 200 `ok`: the process and its async runtime answer |
//! | `GET /readyz` | 200 once the listeners are bound and the first probe round is done (or timed out), else 503 |
//! | `GET /metrics` | Prometheus text format 0.0.4 |
//! | `GET /status` | the [`StatusReport`] snapshot as JSON (what `pathdns status` reads), with the forwarding counters, failing host reads and `abort_stalled` state of the moment |
//!
//! Anything else is 404; a method other than GET or HEAD is 405. The endpoint is HTTP/1.1
//! only, with at most [`MAX_CONNECTIONS`] connections at once (more are closed at once),
//! a [`HEADER_TIMEOUT`] for a request's headers, small request buffers, and a
//! [`CONNECTION_LIFETIME`] after which even a busy keep-alive connection is closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use crate::events::unix_ms;
use crate::metrics::Metrics;
use crate::status::{ForwardingStatus, HostReadFailure, StatusBoard, StatusReport};

/// Connections served at once; the next ones are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send a request's headers within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this, whatever it is doing (scrapers reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Request buffer limit (hyper's minimum); the routes take no body.
const MAX_REQUEST_BUFFER: usize = 8192;

/// The status page served at `/`: inline style and script only. Everything it shows comes
/// from `/status` and is put in the page as text (`textContent`), never as markup.
pub const STATUS_PAGE: &str = include_str!("control/page.html");

/// The page's Content-Security-Policy: its own inline style and script, requests to this
/// endpoint only, nothing else loaded, framed or submitted anywhere.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// What the routes read.
#[derive(Clone)]
pub struct ControlState {
    pub board: StatusBoard,
    pub metrics: Arc<Metrics>,
    /// Whether stalled connections can be ended here, and the last ones that were.
    pub aborts: crate::abort::Board,
    /// What discovery knows (`discover`).
    pub discovery: crate::discover::Board,
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
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BUFFER)
        .keep_alive(true);
    let http = Arc::new(http);
    // Connections die with the accept loop: dropping this task (shutdown) drops the set.
    let mut connections = tokio::task::JoinSet::new();
    let mut errors = crate::accept::AcceptErrors::new("control");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                errors.failed(&err).await;
                continue;
            }
        };
        errors.accepted();
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%client, "control connection limit reached; closing");
            continue;
        };
        let (http, state) = (http.clone(), state.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = route(&state, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            // A timeout drops the connection: closed, whatever it was doing.
            let served = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            if let Ok(Err(err)) = served {
                tracing::debug!(%client, error = %err, "control connection");
            }
            drop(slot);
        });
    }
}

/// The answer to one request.
fn route(state: &ControlState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/" => page(),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.board.load().ready {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => match state.metrics.encode() {
            Ok(body) => with_type(StatusCode::OK, crate::metrics::CONTENT_TYPE, body.into()),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n"),
        },
        "/status" => match serde_json::to_vec(&status_now(state)) {
            Ok(body) => with_type(StatusCode::OK, "application/json", body.into()),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode status\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /healthz, /readyz, /metrics or /status\n",
        ),
    }
}

/// The supervisor's last snapshot, with the query counters as they are now.
fn status_now(state: &ControlState) -> StatusReport {
    let mut status = StatusReport::clone(&state.board.load());
    let counters = state.metrics.queries().snapshot();
    status.forwarding = Some(ForwardingStatus {
        cache_hits: counters.cache_hits,
        cache_misses: counters.cache_misses,
        stale_answers: counters.stale_answers,
        upstream_errors: counters.upstream_errors,
    });
    status.host_read_failures = Some(
        crate::host::failures::current()
            .into_iter()
            .map(|failure| HostReadFailure {
                read: failure.read.to_string(),
                cause: failure.cause,
                since_unix_ms: unix_ms(failure.since),
            })
            .collect(),
    );
    status.abort_stalled = Some(state.aborts.status());
    status.discovery = state.discovery.status();
    status.host = Some(crate::host::hostname());
    status
}

/// The status page, with headers that keep it self-contained.
fn page() -> Response<Full<Bytes>> {
    let mut response = with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(STATUS_PAGE.as_bytes()),
    );
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
