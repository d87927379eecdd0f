//! `pathdns resolver enable | disable | status`: the command line around
//! [`pathdns::resolver`], plus what the library must not do itself: ask the running agent
//! whether it answers, and have systemd-resolved reload its configuration.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use pathdns::config::Config;
use pathdns::resolver::{
    DisablePolicy, Disabled, EnableOptions, Enabled, Host, Mode, ResolverError, ResolverSettings,
    RESOLV_CONF,
};

use pathdns::host::containers;

use super::exit::{CommandResult, Failure};
use super::DEFAULT_CONFIG;

/// `status`: pathdns is the resolver, and the file is as `enable` wrote it.
const STATUS_ENABLED: u8 = 0;
/// `status`: enabled, but the file has been changed since.
const STATUS_CHANGED: u8 = 1;
/// `status`: pathdns is not the resolver (like `systemctl is-active`'s 3).
const STATUS_NOT_ENABLED: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct Root {
    /// Work on this directory as if it were `/` (an image, a test): /etc/resolv.conf is
    /// DIR/etc/resolv.conf, and so on. Nothing is queried and no service is reloaded.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// A systemd-resolved drop-in routing the owned names to pathdns (split DNS).
    Resolved,
    /// A new /etc/resolv.conf with pathdns first and the previous nameservers after it.
    Plain,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Point the host's resolver at pathdns.
    ///
    /// With systemd-resolved (/etc/resolv.conf a symlink to its stub): writes
    /// /etc/systemd/resolved.conf.d/pathdns.conf, which routes only the owned names to
    /// pathdns, and reloads systemd-resolved. pathdns must then forward to resolved's own
    /// upstreams (upstream.resolv_conf = "/run/systemd/resolve/resolv.conf"), never to its
    /// stub.
    ///
    /// With a plain /etc/resolv.conf: saves it under /var/lib/pathdns/resolver/ and writes
    /// a new one listing pathdns first and then every previous nameserver, with
    /// `options timeout:1 attempts:2`. pathdns's "system" upstream reads that file without
    /// its own address, so it forwards to exactly the previous resolvers, and clients fall
    /// back to them if pathdns is down.
    ///
    /// Refuses when resolv.conf is managed by NetworkManager, resolvconf or a symlink it
    /// does not recognise (unless --force), and when pathdns does not answer.
    Enable {
        /// pathdns's config: its listen address and owned names.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Choose the way instead of detecting it.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Go ahead even when resolv.conf is managed by another program, systemd-resolved
        /// has global DNS= servers, or pathdns does not answer now.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        root: Root,
    },
    /// Restore the resolver configuration saved by `enable`, byte for byte.
    ///
    /// Refuses when the file has been changed since `enable` wrote it, unless --force.
    /// Does nothing (successfully) when pathdns is not the resolver.
    Disable {
        /// Restore the original even if the file has been changed since `enable`.
        #[arg(long)]
        force: bool,
        /// For the package's removal scripts: restore the original if the host still
        /// sends queries to pathdns; if resolv.conf has been pointed elsewhere since, leave
        /// it and forget the saved copy.
        #[arg(long, conflicts_with = "force")]
        package_removal: bool,
        #[command(flatten)]
        root: Root,
    },
    /// Show whether pathdns is the host's resolver.
    ///
    /// Exit status: 0 it is, 1 it is but the file has been changed since `enable`, 3 it is
    /// not.
    Status {
        #[command(flatten)]
        root: Root,
    },
}

pub fn run(action: Action) -> CommandResult {
    let result = match action {
        Action::Enable {
            config,
            mode,
            force,
            root,
        } => enable(&config, mode, force, &root.root),
        Action::Disable {
            force,
            package_removal,
            root,
        } => {
            let policy = if package_removal {
                DisablePolicy::PackageRemoval
            } else if force {
                DisablePolicy::Force
            } else {
                DisablePolicy::Strict
            };
            disable(policy, &root.root)
        }
        Action::Status { root } => status(&root.root),
    };
    match result {
        Err(failure) => match failure.error.downcast_ref::<ResolverError>() {
            Some(ResolverError::Refused {
                what,
                hint,
                forcible,
            }) => {
                let force = if *forcible {
                    " (--force does it anyway)"
                } else {
                    ""
                };
                eprintln!("pathdns resolver: refused: {what}\n  instead: {hint}{force}");
                Ok(ExitCode::FAILURE)
            }
            _ => Err(failure),
        },
        ok => ok,
    }
}

fn enable(config_path: &Path, mode: Option<ModeArg>, force: bool, root: &Path) -> CommandResult {
    let host = Host::new(root);
    let config = Config::load(config_path)?;
    let runtimes = containers::detect(root);
    let settings = for_containers(ResolverSettings::from_config(&config)?, &config, &runtimes)?;
    if host.is_system() {
        bring_up_node_local(&config)?;
    }
    if host.is_system() && !force && !answers(settings.nameserver) {
        return Err(ResolverError::Refused {
            what: format!(
                "pathdns does not answer on {}:53, and the host would lose the names it owns",
                settings.nameserver
            ),
            hint: "start it first (systemctl start pathdns; journalctl -u pathdns says why it \
                   is not running)"
                .to_owned(),
            forcible: true,
        }
        .into());
    }
    let options = EnableOptions {
        mode: mode.map(|m| match m {
            ModeArg::Resolved => Mode::Resolved,
            ModeArg::Plain => Mode::Plain,
        }),
        force,
    };
    let mut out = std::io::stdout().lock();
    match host.enable(&settings, options)? {
        Enabled::Already { mode, target } => {
            writeln!(
                out,
                "pathdns is already the resolver ({mode}): {} is as `enable` wrote it",
                shown(&host, &target)
            )?;
        }
        Enabled::Now {
            mode,
            target,
            warnings,
        } => {
            if mode == Mode::Plain && host.is_system() {
                // pathdns reads resolv.conf for "system": it must still find upstreams.
                if let Err(err) = Config::load(config_path) {
                    let _ = host.disable(DisablePolicy::Force);
                    return Err(Failure::from(err).context(format!(
                        "put {RESOLV_CONF} back: with the new one, pathdns's config would not load"
                    )));
                }
            }
            print_now(&mut out, &host, &settings, mode, &target)?;
            if !runtimes.is_empty() {
                print_containers(&mut out, &host, root, &runtimes, settings.nameserver)?;
            }
            writeln!(out, "undo with: pathdns resolver disable")?;
            for warning in warnings {
                eprintln!("pathdns resolver: warning: {warning}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `enable` wrote, and where the names now go.
fn print_now(
    out: &mut impl Write,
    host: &Host,
    settings: &ResolverSettings,
    mode: Mode,
    target: &str,
) -> Result<(), Failure> {
    writeln!(
        out,
        "pathdns is now the resolver ({mode}): wrote {}",
        shown(host, target)
    )?;
    match mode {
        Mode::Resolved => {
            writeln!(out, "routing to pathdns: {}", settings.routes.join(" "))?;
            if host.is_system() {
                reload_resolved(out)?;
            }
        }
        Mode::Plain => {
            let resolv_conf = host.resolv_conf()?;
            writeln!(
                out,
                "nameservers: {} (pathdns first; the rest are its upstreams and the \
                 fallback)",
                resolv_conf.nameservers.join(", ")
            )?;
        }
    }
    Ok(())
}

/// On a container host: which address containers get, and what kubelet needs.
fn print_containers(
    out: &mut impl Write,
    host: &Host,
    root: &Path,
    runtimes: &[containers::Evidence],
    nameserver: IpAddr,
) -> Result<(), Failure> {
    writeln!(
        out,
        "container host ({}): containers and pods get {nameserver} (node-local)",
        containers::describe(runtimes)
    )?;
    kubelet_hint(out, host, root, nameserver)?;
    Ok(())
}

/// On a container host, pathdns must be named by its node-local address: Docker drops
/// loopback nameservers from a container's resolv.conf, and a CoreDNS forwarding to a
/// loopback address asks itself. Without one in the config, `enable` refuses.
fn for_containers(
    mut settings: ResolverSettings,
    config: &Config,
    runtimes: &[containers::Evidence],
) -> Result<ResolverSettings, ResolverError> {
    if runtimes.is_empty() {
        return Ok(settings);
    }
    let Some(node_local) = config.server.node_local.as_ref() else {
        return Err(ResolverError::Refused {
            what: format!(
                "this host runs containers ({}), and pathdns listens only on loopback, which \
                 no container or pod can reach",
                containers::describe(runtimes)
            ),
            hint: format!(
                "set server.node_local = \"auto\" (or an address such as \"{}\") in {}, \
                 run `pathdns node-local up` and `systemctl restart pathdns`, then run this \
                 again",
                pathdns::host::node_local::DEFAULT_ADDRESS,
                config.source
            ),
            forcible: false,
        });
    };
    settings.nameserver = IpAddr::V4(node_local.addr);
    Ok(settings)
}

/// What a kubelet needs: when it reads another file than /etc/resolv.conf and that file
/// does not name pathdns, how to point it at the one that does.
fn kubelet_hint(
    out: &mut impl Write,
    host: &Host,
    root: &Path,
    nameserver: IpAddr,
) -> anyhow::Result<()> {
    let Some(path) = containers::kubelet_resolv_conf(root) else {
        return Ok(());
    };
    let file = path.to_string_lossy();
    if file == RESOLV_CONF {
        return Ok(());
    }
    let text = std::fs::read_to_string(host.path(&file)).unwrap_or_default();
    let named = pathdns::host::resolv_conf::parse(&text)
        .nameservers
        .contains(&nameserver);
    if !named {
        writeln!(
            out,
            "kubelet reads {file} (resolvConf), which does not name {nameserver}: pods with \
             dnsPolicy: Default and CoreDNS will not see pathdns; set resolvConf: \
             {RESOLV_CONF} in /var/lib/kubelet/config.yaml (or --resolv-conf={RESOLV_CONF}) \
             and restart kubelet"
        )?;
    }
    Ok(())
}

/// Where `enable` notes that it added the node-local address itself (the unit's
/// `ExecStartPre` normally has): `disable` then removes it again, and only then.
const NODE_LOCAL_ADDED: &str = "/var/lib/pathdns/node-local-added-by-resolver";

/// Adds the node-local address when it is missing (an agent on socket-activated sockets
/// with FreeBind answers as soon as it exists), and notes that `enable` added it.
fn bring_up_node_local(config: &Config) -> Result<(), Failure> {
    let Some(node_local) = config.server.node_local.as_ref() else {
        return Ok(());
    };
    let outcome =
        pathdns::host::node_local::up(node_local.addr).context("set up the node-local address")?;
    if outcome == pathdns::host::node_local::Outcome::Added {
        let marker = Path::new(NODE_LOCAL_ADDED);
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(marker, format!("{}\n", node_local.addr))?;
    }
    Ok(())
}

/// Removes the node-local address if `enable` added it.
fn take_down_node_local(out: &mut impl Write) -> Result<(), Failure> {
    let marker = Path::new(NODE_LOCAL_ADDED);
    let Ok(text) = std::fs::read_to_string(marker) else {
        return Ok(());
    };
    pathdns::host::node_local::down().context("remove the node-local address")?;
    std::fs::remove_file(marker)?;
    writeln!(
        out,
        "removed the node-local address {}, which `enable` had added",
        text.trim()
    )?;
    Ok(())
}

fn disable(policy: DisablePolicy, root: &Path) -> CommandResult {
    let host = Host::new(root);
    let mut out = std::io::stdout().lock();
    if host.is_system() {
        take_down_node_local(&mut out)?;
    }
    match host.disable(policy)? {
        Disabled::NotEnabled => {
            writeln!(out, "pathdns is not the resolver: nothing to restore")?;
        }
        Disabled::Restored { mode, target } => {
            writeln!(
                out,
                "restored {} as it was before `pathdns resolver enable` ({mode})",
                shown(&host, &target)
            )?;
            if mode == Mode::Resolved && host.is_system() {
                reload_resolved(&mut out)?;
            }
        }
        Disabled::LeftAsIs { mode, target } => {
            writeln!(
                out,
                "{} no longer points at pathdns: left as it is; the copy saved by \
                 `enable` ({mode}) is forgotten",
                shown(&host, &target)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(root: &Path) -> CommandResult {
    let host = Host::new(root);
    let status = host.status()?;
    let mut out = std::io::stdout().lock();
    let code = match &status.enabled {
        Some(enabled) if enabled.intact => {
            writeln!(
                out,
                "pathdns is the resolver ({}, at {})",
                enabled.mode, enabled.nameserver
            )?;
            STATUS_ENABLED
        }
        Some(enabled) => {
            writeln!(
                out,
                "pathdns was made the resolver ({}, at {}), but {} has been changed since",
                enabled.mode,
                enabled.nameserver,
                shown(&host, &enabled.target)
            )?;
            STATUS_CHANGED
        }
        None => {
            writeln!(out, "pathdns is not the resolver")?;
            STATUS_NOT_ENABLED
        }
    };
    let conf = &status.resolv_conf;
    writeln!(
        out,
        "{}: {}, {}",
        shown(&host, RESOLV_CONF),
        describe_entry(&conf.entry),
        conf.manager
    )?;
    if !conf.nameservers.is_empty() {
        writeln!(out, "nameservers: {}", conf.nameservers.join(", "))?;
    }
    let runtimes = containers::detect(root);
    if !runtimes.is_empty() {
        writeln!(
            out,
            "container host ({}): containers get {}",
            containers::describe(&runtimes),
            containers_get(&conf.nameservers)
        )?;
    }
    match &status.enabled {
        Some(enabled) => {
            writeln!(
                out,
                "written: {}; before it: {} (saved in {})",
                shown(&host, &enabled.target),
                enabled.original,
                shown(&host, &enabled.state_dir)
            )?;
            writeln!(out, "undo with: pathdns resolver disable")?;
        }
        None => match &status.would {
            Ok(mode) => writeln!(out, "`pathdns resolver enable` would use: {mode}")?,
            Err(why) => writeln!(out, "`pathdns resolver enable` would refuse: {why}")?,
        },
    }
    Ok(ExitCode::from(code))
}

/// What a container on Docker's default bridge gets from these nameservers: the
/// non-loopback ones (Docker drops the rest), or Docker's fallback when none is left.
fn containers_get(nameservers: &[String]) -> String {
    let kept: Vec<&str> = nameservers
        .iter()
        .filter(|ns| !ns.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
        .map(String::as_str)
        .collect();
    if kept.is_empty() {
        "no nameserver of these (all loopback): Docker falls back to 8.8.8.8 and 8.8.4.4, \
         which know none of the owned names"
            .to_owned()
    } else {
        kept.join(", ")
    }
}

fn describe_entry(entry: &pathdns::resolver::Entry) -> String {
    match entry {
        pathdns::resolver::Entry::Absent => "absent".to_owned(),
        pathdns::resolver::Entry::File { bytes, .. } => format!("a file of {} bytes", bytes.len()),
        pathdns::resolver::Entry::Symlink { target } => {
            format!("a symlink to {}", target.display())
        }
    }
}

/// A host path as the operator knows it: with the root in front when it is not `/`.
fn shown(host: &Host, absolute: &str) -> String {
    if host.is_system() {
        absolute.to_owned()
    } else {
        host.path(absolute).display().to_string()
    }
}

/// Whether pathdns answers a query on port 53 of `ip` within a second.
fn answers(ip: IpAddr) -> bool {
    pathdns::systemd::self_query(SocketAddr::new(ip, 53), Duration::from_secs(1))
}

/// Has systemd-resolved read its configuration again, when systemd runs.
fn reload_resolved(out: &mut impl Write) -> anyhow::Result<()> {
    if !Path::new("/run/systemd/system").exists() {
        writeln!(
            out,
            "systemd is not running: systemd-resolved reads the drop-in when it starts"
        )?;
        return Ok(());
    }
    let status = std::process::Command::new("systemctl")
        .args(["try-reload-or-restart", "systemd-resolved.service"])
        .status()
        .context("cannot run systemctl")?;
    if !status.success() {
        anyhow::bail!("`systemctl try-reload-or-restart systemd-resolved.service` failed ({status}); run it by hand");
    }
    writeln!(out, "systemd-resolved reloaded")?;
    Ok(())
}
