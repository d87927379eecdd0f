//! Doctor's step 1, resolve: what the agent at the listen address answers for each owned
//! name, and whether resolv.conf points at pathdns at all.
//!
//! Owns: the `resolver` and `resolve` checks. Must not: ask any server but the configured
//! listen address (one query per name, through [`crate::dns_client`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::{remedy, Check, Verdict, HOST, NO_TARGET};
use crate::config::{AllDownPolicy, AnswerSpec, Config, OwnedName, Target};
use crate::dns_client::{self, AskError};
use crate::host::{self, resolv_conf};

/// The address to ask: the first listen address, with an unspecified IP replaced by the
/// loopback of its family. `None` for port 0 (no fixed address to ask).
pub(super) fn agent_address(config: &Config) -> Option<SocketAddr> {
    let listen = *config.server.listen.first()?;
    if listen.port() == 0 {
        return None;
    }
    Some(host::local_address(listen))
}

fn host_warn(detail: String) -> Vec<Check> {
    vec![Check::new(
        Verdict::Warn,
        HOST,
        NO_TARGET,
        "resolver",
        detail,
    )]
}

/// Whom this host asks: resolv.conf's nameservers against pathdns's listen addresses.
pub(super) fn resolver_check(config: &Config, resolv_conf: &Path) -> Vec<Check> {
    let file = resolv_conf.display();
    let nameservers = match resolv_conf::read(resolv_conf) {
        Ok(conf) => conf.nameservers,
        Err(err) => {
            let reason = crate::probe::io_detail(&err.source);
            return host_warn(format!("cannot read {file}: {reason}"));
        }
    };
    let listed: Vec<String> = nameservers.iter().map(IpAddr::to_string).collect();
    let listed = if listed.is_empty() {
        "no nameserver".to_owned()
    } else {
        listed.join(", ")
    };
    let on_53: Vec<&SocketAddr> = config
        .server
        .listen
        .iter()
        .filter(|addr| addr.port() == 53)
        .collect();
    let Some(first_listen) = config.server.listen.first() else {
        return Vec::new();
    };
    if on_53.is_empty() {
        return host_warn(format!(
            "pathdns listens on {first_listen}, and resolv.conf can only name port 53: this host \
             asks it only through a forwarder (such as systemd-resolved) that routes the owned \
             names to it ({file} names {listed})"
        ));
    }
    let is_pathdns = |server: &IpAddr| {
        on_53.iter().any(|listen| {
            listen.ip() == *server
                || (listen.ip().is_unspecified()
                    && (server.is_loopback() || is_local_address(*server)))
        })
    };
    let position = nameservers.iter().position(is_pathdns);
    resolver_verdict(
        position,
        &nameservers,
        &listed,
        first_listen,
        on_53[0],
        &file,
    )
}

/// The `resolver` line from where pathdns stands in the nameserver list.
fn resolver_verdict(
    position: Option<usize>,
    nameservers: &[IpAddr],
    listed: &str,
    first_listen: &SocketAddr,
    first_on_53: &SocketAddr,
    file: &dyn std::fmt::Display,
) -> Vec<Check> {
    match position {
        Some(0) => vec![Check::new(
            Verdict::Ok,
            HOST,
            NO_TARGET,
            "resolver",
            format!("{file} names pathdns first ({listed})"),
        )],
        Some(_) => host_warn(format!(
            "{file} names pathdns, but not first ({listed}): glibc takes the first server's \
             answer, so the owned names are answered by another resolver"
        )),
        None if nameservers.first() == Some(&IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53))) => {
            host_warn(format!(
                "{file} names systemd-resolved ({listed}): it must route the owned names to \
                 pathdns at {first_listen} (a split-DNS route); doctor cannot see that"
            ))
        }
        None => host_warn(format!(
            "{file} names {listed}, not pathdns: this host does not ask it yet (point \
             resolv.conf at {} once the checks below pass)",
            first_on_53.ip()
        )),
    }
}

fn is_local_address(addr: IpAddr) -> bool {
    host::interfaces()
        .iter()
        .any(|iface| iface.networks.iter().any(|net| net.addr() == addr))
}

/// What the agent at `agent` answers for `name`, then `extra` (the hosts-file lines).
pub(super) async fn resolve_checks(
    name: OwnedName,
    agent: Option<SocketAddr>,
    timeout: Duration,
    extra: Vec<Check>,
) -> Vec<Check> {
    let display = name.display();
    let mut checks = vec![resolve_check(&name, &display, agent, timeout).await];
    checks.extend(extra);
    checks
}

/// One owned name's question and what is known about its answer.
struct Asked<'a> {
    name: &'a OwnedName,
    display: &'a str,
    agent: SocketAddr,
    rtype: RecordType,
    /// ` for <name below the wildcard>`, or empty.
    shown: String,
}

impl Asked<'_> {
    fn check(&self, verdict: Verdict, detail: String) -> Check {
        Check::new(verdict, self.display, NO_TARGET, "resolve", detail)
    }

    fn fail(&self, detail: String, remedy: String) -> Check {
        Check::fail(self.display, NO_TARGET, "resolve", detail, remedy)
    }
}

async fn resolve_check(
    name: &OwnedName,
    display: &str,
    agent: Option<SocketAddr>,
    timeout: Duration,
) -> Check {
    let warn = |detail| Check::new(Verdict::Warn, display, NO_TARGET, "resolve", detail);
    let Some(agent) = agent else {
        return warn(
            "not resolving through pathdns: the config listens on port 0, so there is no \
             fixed address to ask"
                .into(),
        );
    };
    let (qname, shown) = match question_name(name) {
        Ok(found) => found,
        Err(err) => return warn(format!("cannot form a name below it: {err}")),
    };
    let asked = Asked {
        name,
        display,
        agent,
        rtype: question_type(name),
        shown,
    };
    match dns_client::ask(agent, &qname, asked.rtype, timeout).await {
        Ok(response) => judge_response(&asked, &response),
        Err(AskError::NoAgent(why)) => warn(format!(
            "not resolving through pathdns: nothing answers at {agent} ({why})"
        )),
        Err(AskError::Other(why)) => asked.fail(
            format!("asking {agent}: {why}"),
            format!("check what listens at {agent}"),
        ),
    }
}

/// The name to ask and how to show it: a wildcard is asked for one name below it.
fn question_name(name: &OwnedName) -> Result<(Name, String), hickory_proto::ProtoError> {
    if !name.is_wildcard() {
        return Ok((name.name.clone(), String::new()));
    }
    let qname =
        Name::from_ascii("pathdns-doctor").and_then(|l| l.append_domain(&name.name.base_name()))?;
    let shown = qname.to_ascii().trim_end_matches('.').to_owned();
    Ok((qname, format!(" for {shown}")))
}

/// A if the name has an IPv4 target or none, else AAAA.
fn question_type(name: &OwnedName) -> RecordType {
    let targets: &[Target] = match &name.answer {
        AnswerSpec::Targets(targets) => targets,
        AnswerSpec::Cname(_) => &[],
    };
    if targets.is_empty() || targets.iter().any(|t| t.addr.is_ipv4()) {
        RecordType::A
    } else {
        RecordType::AAAA
    }
}

/// The addresses and CNAME targets of a response's answer section.
fn answer_records(response: &Message) -> (Vec<IpAddr>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut cnames = Vec::new();
    for record in &response.answers {
        match &record.data {
            RData::A(a) => addrs.push(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => addrs.push(IpAddr::V6(aaaa.0)),
            RData::CNAME(target) => {
                cnames.push(target.0.to_ascii().trim_end_matches('.').to_owned())
            }
            _ => {}
        }
    }
    (addrs, cnames)
}

fn judge_response(asked: &Asked<'_>, response: &Message) -> Check {
    let rcode = response.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return rcode_failure(asked, rcode);
    }
    let (addrs, cnames) = answer_records(response);
    match &asked.name.answer {
        AnswerSpec::Cname(target) => {
            let expected = target.to_ascii().trim_end_matches('.').to_owned();
            if cnames.first() == Some(&expected) {
                let (agent, shown) = (asked.agent, &asked.shown);
                asked.check(
                    Verdict::Ok,
                    format!("pathdns at {agent} answers CNAME {expected}{shown}"),
                )
            } else {
                asked.fail(
                    format!(
                        "{} answers {}{}, this config says CNAME {expected}",
                        asked.agent,
                        describe_answer(&addrs, &cnames),
                        asked.shown
                    ),
                    remedy::reload(asked.agent),
                )
            }
        }
        AnswerSpec::Targets(targets) => {
            let authoritative = response.metadata.authoritative;
            judge_addresses(asked, targets, &addrs, &cnames, authoritative)
        }
    }
}

fn rcode_failure(asked: &Asked<'_>, rcode: ResponseCode) -> Check {
    let (agent, shown) = (asked.agent, &asked.shown);
    let all_down_servfail = asked.name.health.when_all_down == AllDownPolicy::Servfail;
    let (detail, remedy) = match rcode {
        ResponseCode::Refused => (
            format!("{agent} answers REFUSED{shown}"),
            remedy::refused(agent),
        ),
        ResponseCode::ServFail if all_down_servfail => (
            format!(
                "{agent} answers SERVFAIL{shown}: every target is down (when_all_down = \
                 \"servfail\")"
            ),
            "see the target checks below".to_owned(),
        ),
        ResponseCode::ServFail => (
            format!("{agent} answers SERVFAIL{shown}"),
            "see `pathdns status` and the agent's log".to_owned(),
        ),
        other => (
            format!("{agent} answers {other}{shown}"),
            remedy::reload(agent),
        ),
    };
    asked.fail(detail, remedy)
}

fn judge_addresses(
    asked: &Asked<'_>,
    targets: &[Target],
    addrs: &[IpAddr],
    cnames: &[String],
    authoritative: bool,
) -> Check {
    let (agent, shown) = (asked.agent, &asked.shown);
    let family = |addr: &IpAddr| (asked.rtype == RecordType::A) == addr.is_ipv4();
    let all: Vec<IpAddr> = targets.iter().map(|t| t.addr).filter(family).collect();
    let best_priority = targets
        .iter()
        .filter(|t| family(&t.addr))
        .map(|t| t.priority)
        .min();
    let best: Vec<IpAddr> = targets
        .iter()
        .filter(|t| family(&t.addr) && Some(t.priority) == best_priority)
        .map(|t| t.addr)
        .collect();
    let answered = describe_answer(addrs, cnames);
    if addrs.is_empty() || !addrs.iter().all(|a| all.contains(a)) {
        return asked.fail(
            format!(
                "{agent} answers {answered}{shown}, this config has {}",
                join(&all)
            ),
            remedy::reload(agent),
        );
    }
    if !authoritative {
        return asked.check(
            Verdict::Warn,
            format!(
                "{agent} answers {answered}{shown}, but not authoritatively: a resolver other \
                 than pathdns answers there"
            ),
        );
    }
    if addrs.iter().all(|a| best.contains(a)) {
        asked.check(
            Verdict::Ok,
            format!("pathdns at {agent} answers {answered}{shown}"),
        )
    } else {
        asked.check(
            Verdict::Warn,
            format!(
                "pathdns at {agent} answers {answered}{shown}: failed over, the preferred \
                 targets {} are down for the agent",
                join(&best)
            ),
        )
    }
}

fn describe_answer(addrs: &[IpAddr], cnames: &[String]) -> String {
    match (addrs.is_empty(), cnames.first()) {
        (true, None) => "no address (NODATA)".to_owned(),
        (true, Some(cname)) => format!("CNAME {cname}"),
        (false, _) => join(addrs),
    }
}

/// Addresses separated by blanks, or `none`.
pub(super) fn join(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        return "none".to_owned();
    }
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
