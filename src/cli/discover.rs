//! `pathdns discover` (the documents' step two in one command: ask a resolver inside the
//! VPC for the instance's names and print a config with what it learned, and how this
//! host reaches each address) and `pathdns check`'s discovery lines.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::rr::Name;

use pathdns::config::{self, Config};
use pathdns::discover::{self, ask::ask_servers, state};
use pathdns::host::{self, Lookup};
use pathdns::probe::{PreparedProbe, ProbeTarget};

use super::exit::CommandResult;

/// How long each question and each reachability check may take.
const STEP: Duration = Duration::from_secs(2);

/// What `pathdns discover` was asked to look up.
pub struct Request {
    pub server: SocketAddr,
    pub instance: String,
    pub region: String,
    pub bucket: Option<String>,
}

impl Request {
    /// Checks the raw flags: labels as the config takes them, a server address with port 53
    /// unless given.
    pub fn new(
        server: &str,
        instance: &str,
        region: &str,
        bucket: Option<&str>,
    ) -> anyhow::Result<Request> {
        let server = config::discovery_server(server)
            .with_context(|| format!("--server {server:?}: give an IP address or IP:PORT"))?;
        let label = |flag: &str, value: &str| -> anyhow::Result<String> {
            config::check_label(value)
                .map_err(|why| anyhow::anyhow!("--{flag} {value:?}: {why}"))?;
            Ok(value.to_lowercase())
        };
        Ok(Request {
            server,
            instance: label("instance", instance)?,
            region: label("region", region)?,
            bucket: bucket.map(|b| label("bucket", b)).transpose()?,
        })
    }
}

/// One name's outcome.
struct Learned {
    name: String,
    result: Result<Vec<IpAddr>, String>,
}

pub fn run(request: &Request) -> CommandResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let learned = runtime.block_on(ask_all(request));
    let mut text = String::new();
    render(&mut text, request, &learned, &runtime);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(if complete(&learned) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn ask_all(request: &Request) -> Vec<Learned> {
    let (instance, region) = (&request.instance, &request.region);
    let mut names = vec![
        config::registry_name(instance, region),
        config::auth_name(region),
        config::oss_name(region),
    ];
    if let Some(bucket) = &request.bucket {
        names.push(format!("{bucket}.{}", config::oss_name(region)));
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let result = match Name::from_ascii(format!("{name}.")) {
            Ok(asked) => ask_servers(&[request.server], &asked, STEP)
                .await
                .map(|answered| answered.addresses),
            Err(err) => Err(err.to_string()),
        };
        out.push(Learned { name, result });
    }
    out
}

/// How this host reaches `addr`: the kernel's route, TCP 443, a local network it falls in.
fn reachability(addr: IpAddr, runtime: &tokio::runtime::Runtime) -> String {
    let route = match host::lookup(addr) {
        Ok(Lookup::Route(egress)) => format!("route {egress}"),
        Ok(Lookup::NoRoute { reason, .. }) => format!("NO ROUTE ({reason})"),
        Err(err) => format!("route unknown ({err})"),
    };
    // The agent's own tcp probe.
    let target = ProbeTarget {
        addr,
        server_name: Name::root(),
    };
    let probe = PreparedProbe::Tcp { port: 443 };
    let outcome = runtime.block_on(probe.run_bounded(&target, STEP));
    let tcp = match (outcome.ok, outcome.rtt) {
        (true, Some(rtt)) => format!("tcp 443 ok ({} ms)", rtt.as_millis()),
        _ => format!(
            "tcp 443 FAILED ({})",
            outcome.detail.unwrap_or_else(|| "failed".into())
        ),
    };
    let mut line = format!("{route}; {tcp}");
    for conflict in discover::advice::local_conflicts(addr, "name") {
        let _ = write!(line, "; CONFLICT: {conflict}");
    }
    line
}

fn render(
    out: &mut String,
    request: &Request,
    learned: &[Learned],
    runtime: &tokio::runtime::Runtime,
) {
    render_findings(out, request.server, learned, runtime);
    let _ = writeln!(
        out,
        "\n[server]\nlisten = [\"127.0.0.1:53\"]\nallow = [\"127.0.0.0/8\", \"::1/128\"]\n\n\
         [upstream]\n# The resolvers in /etc/resolv.conf at start; once resolv.conf points at\n\
         # pathdns, list the previous ones here instead.\nservers = [\"system\"]\n\n\
         [[registry]]\ninstance = \"{}\"\nregion = \"{}\"",
        request.instance, request.region
    );
    render_discover_line(out, request.server, learned);
    render_addresses(out, request, learned);
}

/// The header: what was asked, and per address how this host reaches it.
fn render_findings(
    out: &mut String,
    server: SocketAddr,
    learned: &[Learned],
    runtime: &tokio::runtime::Runtime,
) {
    let _ = writeln!(
        out,
        "# pathdns config from `pathdns discover`: asked {server} for the instance's names\n\
         # from host {} (the documents' step two). Check it with `pathdns check` and\n\
         # `pathdns doctor` before use.\n#",
        host::hostname()
    );
    for found in learned {
        match &found.result {
            Ok(addrs) => {
                for addr in addrs {
                    let reach = reachability(*addr, runtime);
                    let _ = writeln!(out, "#   {}  {addr}  {reach}", found.name);
                }
            }
            Err(reason) => {
                let _ = writeln!(out, "#   {}  not learned: {reason}", found.name);
            }
        }
    }
}

/// `discover`: commented out when every needed name was learned, in force when not (the
/// empty lists are then learned by the agent).
fn render_discover_line(out: &mut String, server: SocketAddr, learned: &[Learned]) {
    let line = format!(
        "discover = {{ servers = [\"{}\"], interval = \"5m\" }}",
        server_text(server)
    );
    let _ = if complete(learned) {
        writeln!(
            out,
            "# Keep learning them over the private path: new addresses are used once their\n\
             # probes pass, the last good ones are kept across restarts.\n# {line}"
        )
    } else {
        writeln!(
            out,
            "# Some names were not learned now: the agent keeps asking (an empty list is \
             learned).\n{line}"
        )
    };
}

/// Every name a config needs was learned; the auth name may be missing on purpose (the
/// instance took over the auth domain).
fn complete(learned: &[Learned]) -> bool {
    learned
        .iter()
        .filter(|l| !l.name.starts_with("dockerauth-"))
        .all(|l| l.result.is_ok())
}

fn render_addresses(out: &mut String, request: &Request, learned: &[Learned]) {
    let list = |index: usize| match learned.get(index).map(|l| &l.result) {
        Some(Ok(addrs)) => Some(
            addrs
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    let _ = writeln!(out, "registry = [{}]", list(0).unwrap_or_default());
    let _ = match list(1) {
        Some(addrs) => writeln!(out, "auth = [{addrs}]"),
        None => writeln!(
            out,
            "# No dockerauth address: if the instance took over the auth domain, leave\n\
             # `auth` out; else write `auth = []` to learn it."
        ),
    };
    let _ = writeln!(out, "oss = [{}]", list(2).unwrap_or_default());
    if let Some(bucket) = &request.bucket {
        let _ = writeln!(out, "bucket = \"{bucket}\"");
    }
}

fn server_text(server: SocketAddr) -> String {
    if server.port() == 53 {
        server.ip().to_string()
    } else {
        server.to_string()
    }
}

/// `pathdns check`'s discovery lines: what each asked name is asked of, what is written,
/// and the last good addresses in the state file (a file that cannot be used is named).
pub fn print_check(config: &Config) -> anyhow::Result<()> {
    let asked = discover::asked(config);
    if asked.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let path = state::default_path();
    let learned = match state::load(&path) {
        Ok(learned) => learned,
        Err(err) => {
            writeln!(out, "discover: {err}")?;
            Default::default()
        }
    };
    for discover::Asked {
        key,
        name,
        discovery,
    } in asked
    {
        let servers: Vec<String> = discovery.servers.iter().map(ToString::to_string).collect();
        let written: Vec<String> = name.addresses().iter().map(ToString::to_string).collect();
        let last = learned.get(&key).map_or_else(
            || "none yet".to_owned(),
            |l| {
                let at = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_millis(l.confirmed_unix_ms),
                );
                let addrs: Vec<String> = l.addresses.iter().map(ToString::to_string).collect();
                format!("{} (confirmed {at} by {})", addrs.join(" "), l.server)
            },
        );
        writeln!(
            out,
            "discover: {key}: asked of {} every {}; configured: {}; discovered (last good, {}): {last}",
            servers.join(", "),
            humantime::format_duration(discovery.interval),
            if written.is_empty() { "none".to_owned() } else { written.join(" ") },
            path.display(),
        )?;
    }
    Ok(())
}
