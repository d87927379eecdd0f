//! The command line: clap definitions, the step from raw flags to validated settings, and
//! the commands themselves. The only place that prints to stdout or uses `anyhow`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use pathdns::config::{AllDownPolicy, AnswerSpec, Config, HealthSettings, ProbeKind};
use pathdns::daemon::{self, ConfigSource};

use exit::CommandResult;

mod discover;
mod doctor;
pub mod exit;
mod hosts;
mod import_hosts;
mod node_local;
mod reload;
mod resolver;
mod status;

const DEFAULT_CONFIG: &str = "/etc/pathdns/pathdns.toml";

/// Node-local DNS and connectivity agent for pulling container images over a private path.
///
/// pathdns answers the private names of an Alibaba Cloud Container Registry Enterprise
/// Edition instance (the registry endpoint, the dockerauth token realm and the OSS blob
/// storage name) authoritatively, and forwards every other name to the host's previous
/// resolvers through a cache. It replaces hand-written /etc/hosts lines.
///
/// Quick look: `pathdns demo`, then
/// `dig @127.0.0.1 -p 1053 xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com`.
///
/// Exit codes: 0 success, 1 failure, 2 usage error, 69 a listen address cannot be bound,
/// 78 the configuration is invalid.
#[derive(Debug, Parser)]
#[command(name = "pathdns", version, about, long_about, max_term_width = 100)]
struct Args {
    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// "pathdns=debug". The PATHDNS_LOG environment variable sets it too.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent on a config file until SIGTERM or SIGINT.
    ///
    /// Binds UDP and TCP on every `server.listen` address before answering anything; if any
    /// address cannot be bound, nothing is served and the exit code is 69.
    Run {
        /// The config file. It must exist: pathdns never falls back to a default config.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a config file and print the expanded name table.
    ///
    /// Exits 0 when the file is valid, 78 with a one-line "FILE:LINE:COLUMN: FIELD: problem"
    /// message when it is not.
    Check {
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the config, then make the running agent reload it (SIGHUP).
    ///
    /// An invalid config is reported here (exit 78) and the agent is not touched. The
    /// agent is found through its control endpoint; under systemd, `systemctl reload
    /// pathdns` does the same.
    Reload {
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The control endpoint to ask, instead of the one in the config.
        #[arg(long, value_name = "ADDR:PORT")]
        control: Option<SocketAddr>,
    },
    /// Show the running agent's answers and target health (reads its /status).
    Status {
        /// The config file, to find the control endpoint.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The control endpoint to ask, instead of the one in the config.
        #[arg(long, value_name = "ADDR:PORT")]
        control: Option<SocketAddr>,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Walk the documents' verification steps for every name, without the daemon.
    ///
    /// For each name: what the agent at the listen address answers (and /etc/hosts lines
    /// that override it); for each target: route and egress interface, TCP 443, the
    /// registry's `GET /v2/` (401 and a realm that is an owned name), a TLS handshake with
    /// dockerauth and OSS (`ca_file` honoured), 100.x conflicts with local networks. One line
    /// per check, `OK|WARN|FAIL  NAME TARGET  CHECK: DETAIL`, with a remedy under each
    /// failure. Contacts only the configured targets and listen address; each step waits at
    /// most 2 s. Exits 1 if any check fails.
    Doctor {
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Ask a resolver inside the VPC for the instance's private addresses and print a
    /// config with them (the documents' step two in one command).
    ///
    /// Asks SERVER (a PrivateZone inbound endpoint, or any DNS server in the VPC that this
    /// host reaches over the private path) for the A records of
    /// `<instance>-registry-vpc.<region>.cr.aliyuncs.com`, `dockerauth-vpc.<region>.aliyuncs.com`,
    /// `oss-<region>-internal.aliyuncs.com` (and `<bucket>.oss-...` with --bucket), and for
    /// each address it learned shows how this host reaches it: the kernel's route, a TCP
    /// connect to port 443 (2 s at most), and a local network it falls into (the 100.x
    /// conflict). The printed config passes `pathdns check`; its commented `discover` line
    /// keeps the addresses learned while the agent runs. Contacts only SERVER and the
    /// addresses it gives. Exits 1 when the registry or OSS name could not be learned (the
    /// config then learns them with `discover`).
    ///
    /// Example: `pathdns discover --server 10.0.5.53 --instance xxxxxx --region cn-hangzhou`
    Discover {
        /// The resolver inside the VPC: IP or IP:PORT (port 53 unless given).
        #[arg(long, value_name = "ADDR")]
        server: String,
        /// The instance name, as in <instance>-registry-vpc.<region>.cr.aliyuncs.com.
        #[arg(long, value_name = "NAME")]
        instance: String,
        /// The region ID, e.g. cn-hangzhou.
        #[arg(long, value_name = "ID")]
        region: String,
        /// A custom OSS bucket the instance stores its images in.
        #[arg(long, value_name = "B")]
        bucket: Option<String>,
    },
    /// Print the /etc/hosts lines equivalent to the running agent's current answers.
    Hosts {
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The control endpoint to ask, instead of the one in the config.
        #[arg(long, value_name = "ADDR:PORT")]
        control: Option<SocketAddr>,
    },
    /// Turn hand-written /etc/hosts lines for the registry, dockerauth and OSS names into a
    /// pathdns config (printed to stdout).
    ///
    /// `<instance>-registry-vpc.<region>.cr.aliyuncs.com`, `dockerauth-vpc.<region>.aliyuncs.com`,
    /// `oss-<region>-internal.aliyuncs.com` and `<bucket>.oss-<region>-internal.aliyuncs.com`
    /// lines become `[[registry]]` blocks; other aliyuncs.com names become `[[name]]` entries;
    /// every other line is listed in a trailing comment. The output passes `pathdns check`.
    /// A bad address on an imported line is an error naming the file and line.
    ///
    /// Example: `pathdns import-hosts /etc/hosts > /etc/pathdns/pathdns.toml`
    ImportHosts {
        /// The hosts file to read, e.g. /etc/hosts.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write `probes = []`: static answers like the hosts file, without health checks or
        /// failover.
        #[arg(long)]
        no_probes: bool,
    },
    /// Add or remove the node-local address (server.node_local) on lo.
    ///
    /// Containers on Docker's default bridge never see a loopback nameserver, and a CoreDNS
    /// that forwards to a loopback address asks itself; both reach a link-local address on
    /// the host (default 169.254.20.53) through the host's routing. `up` adds it as a /32 on
    /// lo labelled lo:pathdns (needs CAP_NET_ADMIN; the packaged unit runs it as
    /// ExecStartPre=+ so that the agent itself never holds the capability) and is a no-op
    /// when it is there; the address stays when the agent stops, so a restart never loses
    /// it. `down` removes only addresses labelled lo:pathdns (the package's removal runs
    /// it). An address someone else holds is never touched: `up` fails, exit 69.
    NodeLocal {
        #[arg(value_enum)]
        action: node_local::Action,
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Make pathdns the host's resolver, or undo it (safely and reversibly).
    Resolver {
        #[command(subcommand)]
        action: resolver::Action,
    },
    /// Run the agent on its embedded example config: the documents' example names on
    /// 127.0.0.1:1053, every other name forwarded to this host's resolv.conf resolvers.
    ///
    /// The example addresses (10.94.205.198, 100.103.7.181, 100.118.28.43) are answered
    /// but never contacted.
    Demo {
        /// Listen here instead of 127.0.0.1:1053 (repeatable; port 0 picks a free port).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// Print the embedded config and exit.
        #[arg(long)]
        print_config: bool,
    },
}

pub fn main() -> CommandResult {
    let args = Args::parse();
    let flag = args.log_level.as_deref();
    match args.command {
        Command::Run { config: path } => {
            let config = Config::load(&path)?;
            init_logging(flag, Some(&config.log.level));
            serve(config, ConfigSource::File(path))
        }
        Command::Check { config } => {
            init_logging(flag, None);
            let config = Config::load(&config)?;
            print_table(&config)?;
            print_rebinding(&config)?;
            print_conflicts(&config)?;
            print_abort_stalled(&config)?;
            print_node_local(&config)?;
            discover::print_check(&config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            config,
            control,
            json,
        } => status::run(&config, control, json),
        Command::Reload { config, control } => reload::run(&config, control),
        Command::Doctor { config } => {
            init_logging(flag, Some("warn"));
            doctor::run(&config)
        }
        Command::Discover {
            server,
            instance,
            region,
            bucket,
        } => {
            init_logging(flag, Some("warn"));
            let request = discover::Request::new(&server, &instance, &region, bucket.as_deref())?;
            discover::run(&request)
        }
        Command::Hosts { config, control } => hosts::run(&config, control),
        Command::ImportHosts { file, no_probes } => import_hosts::run(&file, no_probes),
        Command::NodeLocal { action, config } => node_local::run(action, &config),
        Command::Resolver { action } => resolver::run(action),
        Command::Demo {
            listen,
            print_config,
        } => {
            if print_config {
                std::io::stdout().write_all(pathdns::config::DEMO_CONFIG.as_bytes())?;
                return Ok(ExitCode::SUCCESS);
            }
            let source = ConfigSource::Demo { listen };
            let config = source.load()?;
            init_logging(flag, Some(&config.log.level));
            serve(config, source)
        }
    }
}

fn serve(config: Config, source: ConfigSource) -> CommandResult {
    // Before any thread exists: it edits the environment (LISTEN_FDS, LISTEN_PID).
    let handed = pathdns::activation::take();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pathdns")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(config, source, handed))?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr. The level is, first found: `--log-level`, `RUST_LOG`, `PATHDNS_LOG`,
/// the config's `[log] level`, "info". Under systemd (`JOURNAL_STREAM` set) lines carry no
/// timestamp or colour: the journal adds its own.
fn init_logging(flag: Option<&str>, config_level: Option<&str>) {
    let level = flag
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .or_else(|| std::env::var("PATHDNS_LOG").ok())
        .or_else(|| config_level.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = level.parse().unwrap_or_else(|_| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    });
    let format = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        registry.with(format.without_time().with_ansi(false)).init();
    } else {
        registry
            .with(format.with_ansi(std::io::stderr().is_terminal()))
            .init();
    }
}

/// Whether `abort_stalled` can work for the names that ask for it: the same self-check the
/// agent runs at start (CAP_NET_ADMIN, a kernel with SOCK_DESTROY), never silent.
fn print_abort_stalled(config: &Config) -> anyhow::Result<()> {
    let wanted = config
        .names
        .iter()
        .filter(|n| n.health.abort_stalled)
        .count();
    if wanted == 0 {
        return Ok(());
    }
    let verdict = match pathdns::abort::check() {
        Ok(()) => "available".to_owned(),
        Err(err) => format!(
            "UNAVAILABLE for this process ({err}); the service needs the abort-stalled \
             drop-in (README, Aborting stalled connections)"
        ),
    };
    writeln!(
        std::io::stdout().lock(),
        "abort_stalled: {wanted} names, stalled after {}: {verdict}",
        humantime::format_duration(config.stall_after)
    )?;
    Ok(())
}

/// Where the node-local address is, when the config has one.
fn print_node_local(config: &Config) -> anyhow::Result<()> {
    let Some(wanted) = config.server.node_local.as_ref() else {
        return Ok(());
    };
    let placement = match pathdns::host::node_local::placement(wanted.addr) {
        Ok(placement) => node_local::placed(&placement),
        Err(err) => format!("cannot tell: {err}"),
    };
    writeln!(
        std::io::stdout().lock(),
        "node-local: listens on {}:53 for containers and pods ({}): {placement}",
        wanted.addr,
        wanted.because
    )?;
    Ok(())
}

/// `pathdns check`'s table: one line per owned name.
fn print_table(config: &Config) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let listen: Vec<String> = config.server.listen.iter().map(|a| a.to_string()).collect();
    let upstreams: Vec<String> = config
        .upstream
        .servers
        .iter()
        .map(|a| a.to_string())
        .collect();
    writeln!(
        out,
        "{}: OK: {} owned names; listen {}; forward to {}",
        config.source,
        config.names.len(),
        listen.join(", "),
        upstreams.join(", ")
    )?;
    let width = config
        .names
        .iter()
        .map(|n| display_name(&n.name).len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:width$}  {:12}  {:>5}  {:28}  PROBES",
        "NAME", "ROLE", "TTL", "ANSWER"
    )?;
    for name in &config.names {
        let answer = match &name.answer {
            AnswerSpec::Targets(targets) => {
                let mut groups: Vec<u8> = targets.iter().map(|t| t.priority).collect();
                groups.sort_unstable();
                groups.dedup();
                groups
                    .iter()
                    .map(|priority| {
                        let addrs: Vec<String> = targets
                            .iter()
                            .filter(|t| t.priority == *priority)
                            .map(|t| t.addr.to_string())
                            .collect();
                        format!("[{priority}] {}", addrs.join(" "))
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
            }
            AnswerSpec::Cname(target) => format!("CNAME {}", display_name(target)),
        };
        let answer = match (&name.discover, answer.is_empty()) {
            (None, _) => answer,
            (Some(_), true) => "discovered".to_owned(),
            (Some(_), false) => format!("{answer} + discovered"),
        };
        writeln!(
            out,
            "{:width$}  {:12}  {:>5}  {answer:28}  {}",
            display_name(&name.name),
            name.role.to_string(),
            name.ttl,
            describe_health(&name.health),
        )?;
    }
    Ok(())
}

/// Whether forwarded answers are filtered, and when they are, which names keep their
/// private addresses and why: an operator turning the filter on sees what it will spare.
fn print_rebinding(config: &Config) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let rebinding = &config.upstream.rebinding;
    // A blank line ends the name table.
    writeln!(out)?;
    if !rebinding.enabled {
        writeln!(
            out,
            "rebinding protection: off (forwarded answers keep their private addresses)"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "rebinding protection: on; private addresses are stripped from forwarded answers \
         except for these names:"
    )?;
    let shown: Vec<String> = rebinding
        .exemptions
        .iter()
        .map(|exemption| {
            let name = display_name(&exemption.name);
            if exemption.subdomains {
                format!("{name} and below")
            } else if exemption.name.is_wildcard() {
                format!(
                    "{name} (every name below {})",
                    display_name(&exemption.name.base_name())
                )
            } else {
                name
            }
        })
        .collect();
    let width = shown.iter().map(String::len).max().unwrap_or(0);
    for (name, exemption) in shown.iter().zip(&rebinding.exemptions) {
        writeln!(out, "  EXEMPT {name:width$}  {}", exemption.origin)?;
    }
    Ok(())
}

/// Conflicts are warnings: the config is valid, but some target would not be reached over
/// the private path from this host.
fn print_conflicts(config: &Config) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for finding in config.conflicts() {
        writeln!(out, "CONFLICT {finding}")?;
    }
    Ok(())
}

/// `https:443/v2/=401 every 30s, tcp:443 every 1s; all down: keep`
fn describe_health(health: &HealthSettings) -> String {
    if health.probes.is_empty() {
        return "none (static answer)".to_owned();
    }
    let probes: Vec<String> = health
        .probes
        .iter()
        .map(|probe| {
            let what = match &probe.kind {
                ProbeKind::Tcp { port } => format!("tcp:{port}"),
                ProbeKind::Tls { port, .. } => format!("tls:{port}"),
                ProbeKind::Https {
                    port, path, expect, ..
                } => {
                    let codes: Vec<String> = expect.iter().map(u16::to_string).collect();
                    format!("https:{port}{path}={}", codes.join("|"))
                }
                ProbeKind::Icmp => "icmp".to_owned(),
                ProbeKind::Path { via, source } => match (via, source) {
                    (Some(via), _) => format!("path via {via}"),
                    (None, Some(net)) => format!("path from {net}"),
                    (None, None) => "path".to_owned(),
                },
            };
            format!(
                "{what} every {}",
                humantime::format_duration(probe.interval)
            )
        })
        .collect();
    let policy = match &health.when_all_down {
        AllDownPolicy::Keep => "keep".to_owned(),
        AllDownPolicy::Cname(name) => format!("cname {}", display_name(name)),
        AllDownPolicy::Forward => "forward".to_owned(),
        AllDownPolicy::Servfail => "servfail".to_owned(),
    };
    format!("{}; all down: {policy}", probes.join(", "))
}

fn display_name(name: &hickory_proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}
