//! The running agent: start-up order, live reload, readiness, systemd, shutdown.
//!
//! Owns: binding every listen address before anything is served (all or nothing), one
//! "generation" per loaded config (its supervisor and probes), swapping generations on
//! SIGHUP without dropping a query, and telling systemd where we are. Must not: contain DNS
//! logic or parse config.
//!
//! A reload parses and validates the new config first; an invalid one is logged, alerted
//! and ignored while the old one keeps serving. A valid one replaces the answer table, the
//! handler's allow list and forwarder, the probes and the alert sinks; listen addresses
//! that did not change keep their sockets, new ones are bound, removed ones are closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::activation;
use crate::config::{Config, ConfigError, ProbeKind};
use crate::dns::forward::{ForwardError, Forwarder};
use crate::dns::handler::Settings;
use crate::dns::{self, BindError, Handler, ServeLimits, Slots};
use crate::events::{self, Event, EventSender};
use crate::metrics::Metrics;
use crate::probe::scheduler;
use crate::probe::{Pinger, ProbeContext};
use crate::status::StatusBoard;
use crate::supervisor::{HealthMemory, Outputs, Supervisor};
use crate::systemd;
use crate::table::{AnswerTable, LiveTable};

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
const FIRST_ROUND_DEADLINE: Duration = Duration::from_secs(5);

/// Reports waiting for the supervisor; probes wait (never drop) when it falls behind.
const REPORT_QUEUE: usize = 1024;

/// How often systemd's STATUS= line is refreshed when it changed.
const STATUS_REFRESH: Duration = Duration::from_secs(2);

/// Where the config comes from, so that a reload reads it the same way.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// The embedded demo config, with `listen` overriding its listen addresses.
    Demo {
        listen: Vec<SocketAddr>,
    },
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Demo { listen } => {
                let mut config = Config::demo()?;
                if !listen.is_empty() {
                    config.server.listen = listen.clone();
                }
                Ok(config)
            }
        }
    }
}

/// What lives as long as the process, across reloads.
struct Shared {
    table: Arc<LiveTable>,
    handler: Arc<Handler>,
    /// Where every generation's supervisor reports (events, status, metrics, memory);
    /// only `config` and `stall_after` change from one generation to the next.
    outputs: Outputs,
    /// What the `abort` task (one per process) shows in `/status`.
    abort_board: crate::abort::Board,
    slots: Slots,
    /// The kernel's link/route/address notifications (`None` where netlink is denied).
    host_changes: Option<watch::Receiver<crate::host::watch::Changes>>,
}

/// One loaded config's running parts.
struct Generation {
    config: Config,
    supervisor: JoinHandle<()>,
    _probes: scheduler::Running,
    first_round: watch::Receiver<bool>,
}

impl Drop for Generation {
    fn drop(&mut self) {
        // Its last table must never overwrite the next generation's.
        self.supervisor.abort();
    }
}

/// How long a stop waits for the UDP threads to answer the batch in hand and leave.
const UDP_DRAIN: Duration = Duration::from_secs(2);

/// Serves until SIGTERM or SIGINT; reloads on SIGHUP. `handed`: the sockets systemd passed
/// ([`activation::take`]), used for the addresses they are bound to.
pub async fn run(
    config: Config,
    source: ConfigSource,
    mut handed: activation::Handed,
) -> Result<(), DaemonError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    #[cfg(feature = "fault-injection")]
    fault_injection_signal()?;
    let discovery = discovery_context(&config);
    let mut learned = discovery.learned.subscribe();
    let effective = crate::discover::overlay(&config, &learned.borrow_and_update());
    let shared = shared_parts(&effective, &discovery)?;
    raise_fd_limit(&serve_limits(&effective));
    // Bind everything before anything is served; the first table before any query.
    let bound = bind_all(&effective.server.listen, &mut handed)?;
    handed.release_unused();
    let control = start_control(&effective, &shared, &discovery.board)?;
    let alerts = crate::alert::start(&effective.alerts, &shared.outputs.events);
    let listen = effective.server.listen.clone();
    let generation = start_generation(effective, &shared, None)?;
    shared
        .outputs
        .metrics
        .config_loaded(&generation.config.hash, SystemTime::now());
    let listeners = serve_all(&listen, bound, &shared);
    let (watchdog_target, _) = watch::channel(first_address(&listeners));
    spawn_notifications(&shared, generation.first_round.clone(), &watchdog_target);
    let mut agent = Agent {
        discovering: crate::discover::start(&config, &discovery),
        base: config,
        generation,
        listeners,
        handed,
        alerts,
        reload_rejected: false,
        watchdog_target,
    };
    loop {
        tokio::select! {
            _ = terminate.recv() => { tracing::info!("SIGTERM: stopping"); break }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); break }
            Ok(()) = learned.changed() => {
                let learned = learned.borrow_and_update().clone();
                agent.rediscovered(&shared, &learned);
            }
            _ = hangup.recv() => {
                systemd::reloading();
                let learned = learned.borrow_and_update().clone();
                agent.reload(&shared, &source, &learned, &discovery);
                systemd::ready(&shared.outputs.board.load().summary());
            }
        }
    }
    systemd::stopping();
    drop(control);
    drop(agent.generation);
    agent.listeners.clear();
    drain_udp().await;
    Ok(())
}

/// What changes while the agent serves: the config as written (`base`), the generation
/// serving its effective config (base plus the discovered addresses), and the parts a
/// reload replaces.
struct Agent {
    base: Config,
    generation: Generation,
    listeners: Listeners,
    handed: activation::Handed,
    alerts: crate::alert::Alerts,
    discovering: crate::discover::Running,
    reload_rejected: bool,
    watchdog_target: watch::Sender<Option<SocketAddr>>,
}

impl Agent {
    /// Discovery changed the last good addresses: the same config, new targets.
    fn rediscovered(&mut self, shared: &Shared, learned: &crate::discover::LearnedMap) {
        let effective = crate::discover::overlay(&self.base, learned);
        let old = self.generation.config.clone();
        match apply(
            effective,
            &old,
            shared,
            &mut self.listeners,
            &mut self.handed,
        ) {
            Ok(next) => {
                self.generation = next;
                tracing::info!(
                    names = self.generation.config.names.len(),
                    "discovered addresses applied"
                );
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot apply the discovered addresses; the previous ones keep serving")
            }
        }
    }

    /// SIGHUP: the new config, or (when it is invalid or cannot be applied) the old one
    /// kept serving, alerted.
    fn reload(
        &mut self,
        shared: &Shared,
        source: &ConfigSource,
        learned: &crate::discover::LearnedMap,
        discovery: &crate::discover::Context,
    ) {
        let outcome = source
            .load()
            .map_err(|err| err.to_string())
            .and_then(|next| {
                let effective = crate::discover::overlay(&next, learned);
                let old = self.generation.config.clone();
                apply(
                    effective,
                    &old,
                    shared,
                    &mut self.listeners,
                    &mut self.handed,
                )
                .map(|generation| (next, generation))
                .map_err(|err| err.to_string())
            });
        let (next, generation) = match outcome {
            Ok(applied) => applied,
            Err(err) => {
                self.reload_rejected = true;
                shared.outputs.metrics.record_reload(false);
                tracing::error!(error = %err, "reload rejected; the previous config keeps serving");
                emit_reload(&shared.outputs.events, source, true, err);
                return;
            }
        };
        self.alerts
            .reconfigure(&generation.config.alerts, &shared.outputs.events);
        self.discovering = crate::discover::start(&next, discovery);
        self.base = next;
        self.generation = generation;
        self.watchdog_target
            .send_replace(first_address(&self.listeners));
        if std::mem::take(&mut self.reload_rejected) {
            emit_reload(
                &shared.outputs.events,
                source,
                false,
                "reload accepted".into(),
            );
        }
        shared.outputs.metrics.record_reload(true);
        shared
            .outputs
            .metrics
            .config_loaded(&self.generation.config.hash, SystemTime::now());
        tracing::info!(config = %self.generation.config.source, names = self.generation.config.names.len(), "reloaded");
    }
}

/// Discovery's shared parts: the last good addresses from the state file (read only when
/// the config discovers), and its `/status` board.
fn discovery_context(config: &Config) -> crate::discover::Context {
    let state_path = crate::discover::state::default_path();
    let board = crate::discover::Board::default();
    let mut learned = crate::discover::LearnedMap::new();
    let asked = crate::discover::asked_names(config);
    if !asked.is_empty() {
        match crate::discover::state::load(&state_path) {
            Ok(found) => {
                learned = found;
                learned.retain(|name, _| asked.contains(name));
                for (name, last) in &learned {
                    tracing::info!(%name, addresses = ?last.addresses, file = %state_path.display(), "answering the last good addresses until the first discovery");
                }
            }
            Err(err) => {
                tracing::warn!(%err, "the last good addresses are not used");
                board.set_state_error(Some(err.to_string()));
            }
        }
    }
    let wants_icmp = config.names.iter().any(|name| {
        name.discover.is_some()
            && name
                .health
                .probes
                .iter()
                .any(|p| matches!(p.kind, ProbeKind::Icmp))
    });
    crate::discover::Context {
        events: events::channel(),
        metrics: Arc::new(Metrics::new()),
        board,
        learned: Arc::new(watch::channel(learned).0),
        state_path,
        pinger: wants_icmp.then(|| Pinger::start().ok()).flatten(),
    }
}

/// Waits (a little) for the UDP threads to answer what they have read and leave: a socket
/// systemd keeps for the next process must not lose a query this one has taken off it.
async fn drain_udp() {
    let deadline = Instant::now() + UDP_DRAIN;
    while dns::udp_threads_running() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left = dns::udp_threads_running();
    if left > 0 {
        tracing::warn!(threads = left, "UDP threads still running at exit");
    }
}

/// The handler, table and outputs, built from the first config.
fn shared_parts(
    config: &Config,
    discovery: &crate::discover::Context,
) -> Result<Shared, DaemonError> {
    tracing::info!(facts = %crate::host::survey(), "host");
    for finding in config.conflicts() {
        tracing::warn!(%finding, "conflict");
    }
    let metrics = discovery.metrics.clone();
    let wanted = config.names.iter().any(|name| name.health.abort_stalled);
    let (aborts, abort_board) = crate::abort::start(metrics.clone(), wanted);
    let outputs = Outputs {
        events: discovery.events.clone(),
        board: StatusBoard::default(),
        config: config.source.clone(),
        started_unix_ms: events::unix_ms(SystemTime::now()),
        loaded_unix_ms: events::unix_ms(SystemTime::now()),
        metrics: metrics.clone(),
        memory: HealthMemory::default(),
        aborts,
        stall_after: config.stall_after,
        transitions: Default::default(),
    };
    // Filled by the first generation before any listener serves.
    let table = Arc::new(LiveTable::new(AnswerTable::default()));
    let forwarder = Arc::new(Forwarder::new(&config.upstream)?);
    let handler = Arc::new(
        Handler::new(table.clone(), forwarder, config.server.allow.clone())
            .with_stats(metrics.queries()),
    );
    Ok(Shared {
        table,
        handler,
        outputs,
        abort_board,
        slots: Slots::new(&serve_limits(config)),
        host_changes: watch_host(),
    })
}

/// Subscribes to the kernel's change notifications once for the process: every
/// generation's probes react to them. Without them probes still find every change, at
/// their interval.
fn watch_host() -> Option<watch::Receiver<crate::host::watch::Changes>> {
    match crate::host::watch::spawn() {
        Ok(changes) => {
            tracing::info!("watching links, routes and addresses (netlink notifications)");
            Some(changes)
        }
        Err(err) => {
            tracing::warn!(%err, "no netlink notifications; path changes are found by probes alone");
            None
        }
    }
}

/// The serving loops' caps from a config.
fn serve_limits(config: &Config) -> ServeLimits {
    ServeLimits {
        max_in_flight: config.upstream.max_in_flight,
        max_tcp_connections: config.server.max_tcp_connections,
        tcp_idle_timeout: config.server.tcp_idle_timeout,
        max_queries_per_connection: config.server.max_queries_per_connection,
    }
}

/// Raises the soft open-file limit to what the caps can take, within the hard limit, and
/// warns when that is not enough: past it, new TCP connections wait in the backlog (accept
/// backs off) and forwarded queries get SERVFAIL, before the caps are reached.
fn raise_fd_limit(limits: &ServeLimits) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let wanted = u64::try_from(limits.file_descriptors()).unwrap_or(u64::MAX);
    let Ok((mut soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < wanted
        && soft < hard
        && setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).is_ok()
    {
        soft = wanted.min(hard);
    }
    if soft < wanted {
        tracing::warn!(
            limit = soft,
            wanted,
            "open-file limit below what upstream.max_in_flight and server.max_tcp_connections \
             can take; raise it (systemd: LimitNOFILE=) or lower them"
        );
    }
}

impl Shared {
    fn outputs_for(&self, config: &Config) -> Outputs {
        Outputs {
            config: config.source.clone(),
            loaded_unix_ms: events::unix_ms(SystemTime::now()),
            stall_after: config.stall_after,
            ..self.outputs.clone()
        }
    }
}

/// One listen address being served.
struct Serving {
    /// Where it listens (a port-0 address keeps the port it got).
    actual: SocketAddr,
    /// Its serving loops; dropping them stops serving there.
    _tasks: JoinSet<()>,
    /// Its sockets' names in systemd's fd store, released when the address goes.
    stored: Vec<String>,
}

/// Serving listeners by configured address.
type Listeners = HashMap<SocketAddr, Serving>;

/// A listener's sockets and their names in systemd's fd store.
type Bound = (dns::Listener, Vec<String>);

/// Takes systemd's sockets for the addresses that have them, binds the rest (all or
/// nothing), and stores the ones bound here with systemd so that they outlive the process.
fn bind_all(
    addrs: &[SocketAddr],
    handed: &mut activation::Handed,
) -> Result<Vec<Bound>, BindError> {
    let mut names = Vec::with_capacity(addrs.len());
    let listeners = dns::bind_or_adopt(addrs, |addr| {
        let (handover, stored) = handed.adopt(addr);
        names.push(stored);
        handover
    })?;
    Ok(listeners
        .into_iter()
        .zip(names)
        .map(|(mut listener, mut stored)| {
            stored.extend(activation::store(&mut listener));
            (listener, stored)
        })
        .collect())
}

fn serve_all(addrs: &[SocketAddr], bound: Vec<Bound>, shared: &Shared) -> Listeners {
    let mut listeners = HashMap::new();
    for (configured, (listener, stored)) in addrs.iter().zip(bound) {
        let (Ok(udp), Ok(tcp)) = (listener.udp_addr(), listener.tcp_addr()) else {
            continue;
        };
        let adopted = listener.adopted;
        tracing::info!(%udp, %tcp, from_systemd = ?(adopted.udp, adopted.tcp), "listening");
        let tasks = dns::serve(listener, shared.handler.clone(), &shared.slots);
        listeners.insert(
            *configured,
            Serving {
                actual: udp,
                _tasks: tasks,
                stored,
            },
        );
    }
    listeners
}

fn first_address(listeners: &Listeners) -> Option<SocketAddr> {
    listeners.values().map(|serving| serving.actual).min()
}

/// The control endpoint, bound at start (a reload does not move it).
fn start_control(
    config: &Config,
    shared: &Shared,
    discovery: &crate::discover::Board,
) -> Result<Option<JoinHandle<()>>, DaemonError> {
    let listener = crate::control::bind(config.control.listen).map_err(|err| {
        let addr = config
            .control
            .listen
            .unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
        DaemonError::Bind(BindError::new(addr, "control", err))
    })?;
    let Some(listener) = listener else {
        return Ok(None);
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "control listening");
    }
    let state = crate::control::ControlState {
        board: shared.outputs.board.clone(),
        metrics: shared.outputs.metrics.clone(),
        aborts: shared.abort_board.clone(),
        discovery: discovery.clone(),
    };
    Ok(Some(tokio::spawn(crate::control::serve(listener, state))))
}

/// Starts a config's supervisor and probes; `ready_by: None` when the agent is already
/// ready (a reload).
fn start_generation(
    config: Config,
    shared: &Shared,
    previous: Option<&Config>,
) -> Result<Generation, DaemonError> {
    let supervisor = Supervisor::new(Arc::new(config.names.clone()), shared.outputs_for(&config));
    let plan = supervisor.plan().clone();
    let context = ProbeContext {
        tls: Default::default(),
        pinger: pinger_for(&plan)?,
    };
    let (reports, queue) = tokio::sync::mpsc::channel(REPORT_QUEUE);
    let events = scheduler::Events {
        changes: shared.host_changes.clone(),
        metrics: shared.outputs.metrics.clone(),
    };
    let probes = scheduler::start(&plan, &context, reports, events).map_err(DaemonError::Probes)?;
    if !plan.jobs.is_empty() {
        tracing::info!(
            probes = plan.jobs.len(),
            runs_per_second = format!("{:.2}", plan.runs_per_second()),
            "probing"
        );
    }
    let first_round = supervisor.first_round();
    shared.table.store(supervisor.table());
    // Status exists before anyone (READY=1, /status) can ask for it.
    shared.outputs.board.store(supervisor.status());
    let ready_by = previous
        .is_none()
        .then(|| Instant::now() + FIRST_ROUND_DEADLINE);
    let task = tokio::spawn(supervisor.run(queue, shared.table.clone(), ready_by));
    tracing::info!(
        config = %config.source,
        hash = %config.hash,
        names = config.names.len(),
        upstreams = ?config.upstream.servers,
        "pathdns {} serving",
        env!("CARGO_PKG_VERSION")
    );
    Ok(Generation {
        config,
        supervisor: task,
        _probes: probes,
        first_round,
    })
}

fn pinger_for(plan: &scheduler::Plan) -> Result<Option<Pinger>, DaemonError> {
    if !plan
        .jobs
        .iter()
        .any(|job| matches!(job.spec.kind, ProbeKind::Icmp))
    {
        return Ok(None);
    }
    Pinger::start()
        .map(Some)
        .map_err(|err| DaemonError::Probes(format!("icmp probes need CAP_NET_RAW: {err}")))
}

/// Applies a validated config: listeners first (the only step that can fail), then the
/// handler's settings, then a new generation (table, supervisor, probes).
fn apply(
    config: Config,
    old: &Config,
    shared: &Shared,
    listeners: &mut Listeners,
    handed: &mut activation::Handed,
) -> Result<Generation, DaemonError> {
    let added: Vec<SocketAddr> = config
        .server
        .listen
        .iter()
        .filter(|addr| !listeners.contains_key(addr))
        .copied()
        .collect();
    let new_listeners = serve_all(&added, bind_all(&added, handed)?, shared);
    listeners.retain(|configured, serving| {
        let keep = config.server.listen.contains(configured);
        if !keep {
            tracing::info!(addr = %serving.actual, "no longer listening");
            activation::forget(&serving.stored);
        }
        keep
    });
    listeners.extend(new_listeners);
    if config.control.listen != old.control.listen {
        tracing::warn!("control.listen changed: it takes effect at the next restart");
    }
    if serve_limits(&config) != serve_limits(old) {
        tracing::warn!(
            "server.max_tcp_connections, tcp_idle_timeout, max_queries_per_connection or \
             upstream.max_in_flight changed: they take effect at the next restart"
        );
    }
    // Any change to forwarding (the owned names too: they are exempt from the rebinding
    // filter) starts a new forwarder with an empty cache, so no answer filtered by the old
    // rules is served. `max_in_flight` is a serving cap, warned about above.
    let forwarder = if config.upstream.forwards_like(&old.upstream) {
        shared.handler.forwarder()
    } else {
        Arc::new(Forwarder::new(&config.upstream)?)
    };
    shared.handler.reconfigure(Settings {
        forwarder,
        allow: config.server.allow.clone(),
    });
    tracing::info!(facts = %crate::host::survey(), "host");
    for finding in config.conflicts() {
        tracing::warn!(%finding, "conflict");
    }
    start_generation(config, shared, Some(old))
}

fn emit_reload(events: &EventSender, source: &ConfigSource, firing: bool, summary: String) {
    let config = match source {
        ConfigSource::File(path) => path.display().to_string(),
        ConfigSource::Demo { .. } => "demo".to_owned(),
    };
    let _ = events.send(Event::new(
        events::RELOAD_REJECTED,
        firing,
        &[("config", config)],
        summary,
    ));
}

/// READY=1 after the first probe round (or its deadline), STATUS= kept current, and the
/// watchdog fed while the DNS listener answers.
fn spawn_notifications(
    shared: &Shared,
    mut first_round: watch::Receiver<bool>,
    watchdog_target: &watch::Sender<Option<SocketAddr>>,
) {
    let board = shared.outputs.board.clone();
    tokio::spawn(async move {
        let _ =
            tokio::time::timeout(FIRST_ROUND_DEADLINE, first_round.wait_for(|done| *done)).await;
        let mut last = board.load().summary();
        systemd::ready(&last);
        tracing::info!(status = %last, "ready");
        let mut ticker = tokio::time::interval(STATUS_REFRESH);
        loop {
            ticker.tick().await;
            let now = board.load().summary();
            if now != last {
                systemd::status(&now);
                last = now;
            }
        }
    });
    if let Some(interval) = systemd::watchdog_interval() {
        let target = watchdog_target.subscribe();
        let metrics = shared.outputs.metrics.clone();
        tokio::spawn(async move {
            systemd::watchdog(interval, target, metrics).await;
        });
    }
}

/// SIGUSR2 toggles frozen DNS listeners ([`dns::FAULT_FREEZE`]), to test that the watchdog
/// notices; only in a build with the `fault-injection` feature (never a package) and only
/// when `PATHDNS_FAULT_INJECTION=1` is set.
#[cfg(feature = "fault-injection")]
fn fault_injection_signal() -> Result<(), DaemonError> {
    use std::sync::atomic::Ordering;
    if std::env::var("PATHDNS_FAULT_INJECTION").as_deref() != Ok("1") {
        return Ok(());
    }
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(DaemonError::Signals)?;
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            let frozen = !dns::FAULT_FREEZE.load(Ordering::Relaxed);
            dns::FAULT_FREEZE.store(frozen, Ordering::Relaxed);
            tracing::warn!(frozen, "fault injection: DNS listeners frozen (no answers)");
        }
    });
    Ok(())
}
