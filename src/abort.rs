//! Taking the clients with a failover: ending this host's stalled TCP connections to a
//! target that is down and that its name's answer moved away from (issue 15), so that a
//! client stuck on it (a docker pull) gets ECONNABORTED at once, retries, resolves again
//! and reaches the new answer instead of waiting minutes for TCP keepalive.
//!
//! Owns: the open abort requests and their sweeps (every [`SWEEP_EVERY`] for up to
//! [`SWEEP_FOR`]: list with [`tcp_sockets::connections_to`], judge with
//! [`tcp_sockets::stall`], end with [`tcp_sockets::destroy`]), the log line, metric and
//! status record of every ended connection, and saying once that the feature is unavailable
//! (no CAP_NET_ADMIN, or a kernel without SOCK_DESTROY). Must not: decide health or when a
//! target counts as down (the supervisor does, and sends [`Request`]s), run on the DNS
//! path, or block the supervisor: requests come through a bounded channel with
//! [`Requests::send`], which never waits, and the netlink calls run on a blocking thread.
//!
//! A connection that is making progress is never ended ([`tcp_sockets::stall`] says
//! `None`): a probe can be wrong, a working transfer must not be broken.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::events::unix_ms;
use crate::host::tcp_sockets::{self, SockDiagError, StallReason, TcpConnection, TcpState};
use crate::metrics::Metrics;
use crate::status::{AbortStatus, AbortedConnection};
use crate::throttle::LogThrottle;

/// Requests waiting for the task; a failover sends one or two per name.
pub const QUEUE: usize = 256;
/// How often an open request's target is swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a request stays open without a [`Request::Cancel`]: longer than any client
/// waits on a dead connection by itself, so later stalls are the client's own business.
pub const SWEEP_FOR: Duration = Duration::from_secs(600);
/// Ended connections kept for `/status`.
pub const RECENT: usize = 20;
/// At most one warning per this for dropped requests and failing sweeps.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Where the operator finds what to install.
const REMEDY: &str = "grant CAP_NET_ADMIN with the abort-stalled drop-in (README, Aborting \
                      stalled connections)";

/// What the supervisor asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `target` of `name` is down and no longer answered: end its stalled connections on
    /// these ports.
    Abort {
        name: String,
        target: IpAddr,
        ports: Vec<u16>,
        stall_after: Duration,
    },
    /// `target` is up again, or answered again: leave its connections alone.
    Cancel { name: String, target: IpAddr },
}

/// The sending side, cloned into every generation's supervisor.
#[derive(Debug, Clone)]
pub struct Requests {
    tx: mpsc::Sender<Request>,
    dropped: Arc<Mutex<LogThrottle>>,
}

impl Requests {
    /// A sender and the receiver [`start`] (or a test) reads.
    pub fn channel() -> (Requests, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(Mutex::new(LogThrottle::new(WARN_EVERY)));
        (Requests { tx, dropped }, rx)
    }

    /// Queues `request` without waiting: a full queue drops it (the supervisor must never
    /// wait on this room), with a throttled warning.
    pub fn send(&self, request: Request) {
        match self.tx.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(request)) => {
                let due = self
                    .dropped
                    .lock()
                    .ok()
                    .and_then(|mut throttle| throttle.note(1, Instant::now()));
                if let Some(count) = due {
                    tracing::warn!(count, ?request, "abort queue full; requests dropped");
                }
            }
            // The task is gone (shutting down): nothing left to do.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// What `/status` shows of this room; shared with the control endpoint.
#[derive(Debug, Clone, Default)]
pub struct Board(Arc<Mutex<AbortStatus>>);

impl Board {
    pub fn status(&self) -> AbortStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn with(&self, f: impl FnOnce(&mut AbortStatus)) {
        // A poisoned lock only loses status, never the agent.
        if let Ok(mut status) = self.0.lock() {
            f(&mut status);
        }
    }

    fn record(&self, aborted: AbortedConnection) {
        self.with(|status| {
            status.recent.push(aborted);
            let excess = status.recent.len().saturating_sub(RECENT);
            status.recent.drain(..excess);
        });
    }
}

/// Whether this process can end other programs' connections here, found by ending one of
/// its own: a loopback connection made for the purpose. Reliable because it is the real
/// operation on a socket that surely exists: the kernel looks the socket up first and only
/// then checks CAP_NET_ADMIN (`sock_diag_destroy`), so a socket that does not exist (an
/// all-zero id) answers ENOENT with or without the capability and would say nothing
/// (tried: as root ENOENT and Ok, without CAP_NET_ADMIN ENOENT and EPERM); a kernel
/// without CONFIG_INET_DIAG_DESTROY answers EOPNOTSUPP before any lookup. Costs one
/// loopback connection, no traffic off the host.
pub fn check() -> Result<(), SockDiagError> {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(SockDiagError::Socket)?;
    let client =
        std::net::TcpStream::connect(listener.local_addr().map_err(SockDiagError::Socket)?)
            .map_err(SockDiagError::Socket)?;
    let local = client.local_addr().map_err(SockDiagError::Socket)?;
    let remote = client.peer_addr().map_err(SockDiagError::Socket)?;
    destroy_own(local, remote)
}

/// Ends this process's own test connection `local` -> `remote`, whatever its cookie.
fn destroy_own(local: SocketAddr, remote: SocketAddr) -> Result<(), SockDiagError> {
    let conn = TcpConnection {
        local,
        remote,
        state: TcpState::Established,
        interface: 0,
        inode: 0,
        // INET_DIAG_NOCOOKIE: the kernel skips the cookie check.
        cookie: [0xff; 8],
        uid: 0,
        info: None,
    };
    tcp_sockets::destroy(&conn)
}

/// Starts the task on the current runtime; it lives as long as the process (reloads keep
/// it). `wanted`: some name of the first config has `abort_stalled`, so an unavailable
/// feature is reported at once rather than at the first failover.
pub fn start(metrics: Arc<Metrics>, wanted: bool) -> (Requests, Board) {
    let (requests, rx) = Requests::channel();
    let board = Board::default();
    let sweeper = Sweeper::new(board.clone(), metrics);
    tokio::spawn(sweeper.run(rx, wanted));
    (requests, board)
}

/// One open request.
#[derive(Debug, Clone)]
struct Open {
    ports: Vec<u16>,
    stall_after: Duration,
    until: Instant,
}

/// The task's state.
struct Sweeper {
    board: Board,
    metrics: Arc<Metrics>,
    open: HashMap<(String, IpAddr), Open>,
    /// Set once SOCK_DESTROY is known not to work: nothing is swept any more.
    unavailable: bool,
    /// The unavailability was logged (once per process).
    told: bool,
    failing: LogThrottle,
}

/// What one sweep of one target found, on the blocking thread.
#[derive(Debug, Default)]
struct Swept {
    ended: Vec<(TcpConnection, StallReason, Option<tcp_sockets::Owner>)>,
    failures: Vec<SockDiagError>,
    /// NotPermitted or NotSupported: the feature cannot work here.
    fatal: Option<SockDiagError>,
}

impl Sweeper {
    fn new(board: Board, metrics: Arc<Metrics>) -> Sweeper {
        Sweeper {
            board,
            metrics,
            open: HashMap::new(),
            unavailable: false,
            told: false,
            failing: LogThrottle::new(WARN_EVERY),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>, wanted: bool) {
        let checked = tokio::task::spawn_blocking(check).await;
        match checked {
            Ok(Ok(())) => self.set_available(),
            Ok(Err(err)) if is_fatal(&err) => self.set_unavailable(&err, wanted),
            // Another failure (no loopback?) says nothing: the first sweep will tell.
            Ok(Err(err)) => tracing::debug!(%err, "abort_stalled self-check inconclusive"),
            Err(err) => tracing::debug!(%err, "abort_stalled self-check did not run"),
        }
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                request = rx.recv() => match request {
                    Some(request) => self.take(request),
                    None => return,
                },
                _ = tick.tick(), if !self.open.is_empty() => self.sweep().await,
            }
        }
    }

    fn take(&mut self, request: Request) {
        match request {
            Request::Abort {
                name,
                target,
                ports,
                stall_after,
            } => {
                if self.unavailable {
                    self.tell(None);
                    return;
                }
                tracing::info!(name, %target, ?ports, "ending stalled connections to a down target");
                let until = Instant::now() + SWEEP_FOR;
                let open = Open {
                    ports,
                    stall_after,
                    until,
                };
                self.open.insert((name, target), open);
            }
            Request::Cancel { name, target } => {
                if self.open.remove(&(name.clone(), target)).is_some() {
                    tracing::info!(name, %target, "no longer ending connections to the target");
                }
            }
        }
    }

    /// One sweep of every open target, all on one blocking thread.
    async fn sweep(&mut self) {
        let now = Instant::now();
        self.open.retain(|_, open| open.until > now);
        let work: Vec<((String, IpAddr), Open)> = self
            .open
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let swept = tokio::task::spawn_blocking(move || {
            work.into_iter()
                .map(|((name, target), open)| (name, target, sweep_target(target, &open)))
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(swept) = swept else { return };
        for (name, target, swept) in swept {
            self.report(&name, target, swept);
        }
    }

    fn report(&mut self, name: &str, target: IpAddr, swept: Swept) {
        for (conn, reason, owner) in swept.ended {
            self.ended(name, target, &conn, reason, owner);
        }
        if let Some(err) = swept.fatal {
            self.set_unavailable(&err, true);
            return;
        }
        let count = u64::try_from(swept.failures.len()).unwrap_or(u64::MAX);
        if let (Some(count), Some(err)) = (
            self.failing.note(count, Instant::now()),
            swept.failures.first(),
        ) {
            tracing::warn!(name, %target, count, %err, "cannot sweep connections to a down target");
        }
    }

    fn ended(
        &self,
        name: &str,
        target: IpAddr,
        conn: &TcpConnection,
        reason: StallReason,
        owner: Option<tcp_sockets::Owner>,
    ) {
        let (pid, comm) = owner.map_or((None, None), |o| (Some(o.pid), Some(o.comm)));
        tracing::warn!(
            name,
            local = %conn.local,
            remote = %conn.remote,
            state = %conn.state,
            %reason,
            pid,
            comm,
            "ended a stalled connection to a down target"
        );
        self.metrics
            .connection_aborted(name, target, reason_label(reason));
        self.board.record(AbortedConnection {
            unix_ms: unix_ms(SystemTime::now()),
            name: name.to_owned(),
            local: conn.local.to_string(),
            remote: conn.remote.to_string(),
            state: conn.state.to_string(),
            reason: reason.to_string(),
            owner_pid: pid,
            owner_comm: comm,
        });
    }

    fn set_available(&self) {
        self.metrics.abort_stalled_available(true);
        self.board.with(|status| {
            status.available = Some(true);
            status.unavailable_reason = None;
        });
    }

    /// Marks the feature unavailable for good; logs it once when it matters (`wanted`).
    fn set_unavailable(&mut self, err: &SockDiagError, wanted: bool) {
        self.unavailable = true;
        self.open.clear();
        self.metrics.abort_stalled_available(false);
        let reason = err.to_string();
        self.board.with(|status| {
            status.available = Some(false);
            status.unavailable_reason = Some(reason);
        });
        if wanted {
            self.tell(Some(err));
        }
    }

    /// The one error line about the feature being unavailable.
    fn tell(&mut self, err: Option<&SockDiagError>) {
        if self.told {
            return;
        }
        self.told = true;
        let reason = match err {
            Some(err) => err.to_string(),
            None => self.board.status().unavailable_reason.unwrap_or_default(),
        };
        tracing::error!(
            %reason,
            "abort_stalled is unavailable: stalled connections to down targets are not \
             ended; {REMEDY}"
        );
    }
}

/// One sweep of one target: list, judge, end. Synchronous (netlink).
fn sweep_target(target: IpAddr, open: &Open) -> Swept {
    let mut swept = Swept::default();
    let conns = match tcp_sockets::connections_to(target, &open.ports) {
        Ok(conns) => conns,
        Err(err) => {
            swept.failures.push(err);
            return swept;
        }
    };
    for conn in conns {
        let Some(reason) = tcp_sockets::stall(&conn, open.stall_after) else {
            continue;
        };
        match tcp_sockets::destroy(&conn) {
            Ok(()) => {
                let owner = tcp_sockets::owner(conn.inode);
                swept.ended.push((conn, reason, owner));
            }
            // Closed meanwhile (or ended for another name sharing the target).
            Err(SockDiagError::Gone) => {}
            Err(err) if is_fatal(&err) => {
                swept.fatal = Some(err);
                return swept;
            }
            Err(err) => swept.failures.push(err),
        }
    }
    swept
}

fn is_fatal(err: &SockDiagError) -> bool {
    matches!(
        err,
        SockDiagError::NotPermitted | SockDiagError::NotSupported
    )
}

/// A short metric label per reason.
fn reason_label(reason: StallReason) -> &'static str {
    match reason {
        StallReason::Connecting => "connecting",
        StallReason::Retransmitting => "retransmitting",
        StallReason::Unanswered => "unanswered",
        StallReason::Silent => "silent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_without_waiting() {
        let (requests, mut rx) = Requests::channel();
        let cancel = Request::Cancel {
            name: "a".into(),
            target: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        for _ in 0..QUEUE + 5 {
            requests.send(cancel.clone());
        }
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, QUEUE);
    }

    #[test]
    fn the_board_keeps_the_last_twenty() {
        let board = Board::default();
        for i in 0..25u64 {
            board.record(AbortedConnection {
                unix_ms: i,
                ..AbortedConnection::default()
            });
        }
        let recent = board.status().recent;
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent.first().map(|a| a.unix_ms), Some(5));
    }

    /// Root in CI has CAP_NET_ADMIN; without it the check must say NotPermitted, never
    /// succeed.
    #[test]
    fn the_self_check_answers() {
        match check() {
            Ok(()) | Err(SockDiagError::NotPermitted | SockDiagError::NotSupported) => {}
            Err(other) => panic!("inconclusive self-check: {other}"),
        }
    }
}
