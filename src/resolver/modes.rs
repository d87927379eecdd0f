//! The two ways of making pathdns the resolver, and the files they write: a plain
//! resolv.conf with pathdns first and the previous nameservers after it, or a
//! systemd-resolved drop-in that routes the owned names to pathdns.
//!
//! Owns: the checks that make either way safe (something left to forward to, no loop
//! through resolved's stub, no global `DNS=` that would win) and the text written. Must
//! not: touch files other than through files.rs.

use std::net::IpAddr;
use std::path::Path;

use super::detect::{parse_nameserver, ResolvConf};
use super::files::{write_atomic, Entry};
use super::state::State;
use super::{
    Host, Mode, ResolverError, ResolverSettings, FALLBACK_OPTIONS, GLIBC_MAXNS, MARK,
    RESOLVED_DROP_IN, RESOLVED_STUBS, RESOLVED_UPSTREAMS, RESOLV_CONF, STATE_DIR,
};

impl Host {
    /// Saves `original`, then writes `bytes` over the mode's target.
    pub(super) fn replace(
        &self,
        mode: Mode,
        nameserver: IpAddr,
        original: &Entry,
        bytes: &[u8],
    ) -> Result<(), ResolverError> {
        let target = self.path(mode.target());
        let mut created = self.create_dirs(STATE_DIR)?;
        if let Some(parent) = Path::new(mode.target()).parent() {
            created.extend(self.create_dirs(&parent.display().to_string())?);
        }
        let state = State {
            mode,
            nameserver,
            original: original.clone(),
            written: bytes.to_vec(),
            created,
        };
        self.write_state(&state)?;
        let written = write_atomic(&target, bytes, 0o644);
        if let Err(err) = written {
            // Leave nothing behind that claims pathdns is the resolver.
            let _ = self.forget(&state);
            return Err(err);
        }
        Ok(())
    }

    pub(super) fn enable_plain(
        &self,
        settings: &ResolverSettings,
        resolv_conf: &ResolvConf,
    ) -> Result<(), ResolverError> {
        let kept: Vec<&String> = resolv_conf
            .nameservers
            .iter()
            .filter(|ns| match parse_nameserver(ns) {
                Some(ip) => !settings.is_pathdns(ip),
                // A link-local address with a zone: keep it for glibc.
                None => true,
            })
            .collect();
        let usable = kept.iter().any(|ns| parse_nameserver(ns).is_some());
        if !usable {
            let found = if resolv_conf.nameservers.is_empty() {
                "lists no nameserver".to_owned()
            } else {
                format!(
                    "lists no nameserver besides pathdns itself ({})",
                    resolv_conf.nameservers.join(", ")
                )
            };
            return Err(ResolverError::refused(
                format!(
                    "{RESOLV_CONF} {found}: pathdns would have nothing to forward other names \
                     to, and the host no resolver while pathdns is down"
                ),
                format!(
                    "write the host's resolvers into {RESOLV_CONF} (nameserver lines) first, \
                     then run this again"
                ),
                false,
            ));
        }
        let text = plain_resolv_conf(settings.nameserver, &kept, &resolv_conf.text);
        self.replace(
            Mode::Plain,
            settings.nameserver,
            &resolv_conf.entry,
            text.as_bytes(),
        )
    }

    pub(super) fn enable_resolved(
        &self,
        settings: &ResolverSettings,
        force: bool,
    ) -> Result<(), ResolverError> {
        if settings.routes.is_empty() {
            return Err(ResolverError::refused(
                "the config owns no names, so there is nothing to route to pathdns",
                "add the names pathdns should answer ([[registry]] or [[name]]), reload \
                 pathdns, and run this again",
                false,
            ));
        }
        if let Some(stub) = settings.upstreams.iter().find(|addr| {
            addr.port() == 53 && matches!(addr.ip(), IpAddr::V4(ip) if RESOLVED_STUBS.contains(&ip))
        }) {
            return Err(ResolverError::refused(
                format!(
                    "pathdns forwards to systemd-resolved's stub ({stub}): with pathdns \
                     behind resolved, queries would go round in a loop"
                ),
                format!(
                    "forward to resolved's own upstream servers: set \
                     upstream.resolv_conf = \"{RESOLVED_UPSTREAMS}\" (with servers = \
                     [\"system\"]) in the config, reload pathdns (systemctl reload pathdns), \
                     and run this again"
                ),
                false,
            ));
        }
        let global = self.resolved_global_dns()?;
        if !global.is_empty() && !force {
            return Err(ResolverError::refused(
                format!(
                    "systemd-resolved has global DNS= servers ({}): resolved would send the \
                     owned names to whichever global server is current, not always to pathdns",
                    global.join("; ")
                ),
                "move those servers to a link (networkd or NetworkManager) and run this \
                 again; --force writes the drop-in anyway",
                true,
            ));
        }
        let target = self.entry(RESOLVED_DROP_IN)?;
        if target != Entry::Absent {
            return Err(ResolverError::refused(
                format!(
                    "{RESOLVED_DROP_IN} exists already, and not from `pathdns resolver enable`"
                ),
                "move it away, then run this again",
                false,
            ));
        }
        let text = resolved_drop_in(settings.nameserver, &settings.routes);
        self.replace(
            Mode::Resolved,
            settings.nameserver,
            &Entry::Absent,
            text.as_bytes(),
        )
    }
}

/// The resolv.conf of plain mode: pathdns first, then the previous nameservers; the
/// previous `search`, `domain` and `sortlist` lines; the previous options without those
/// that would defeat the order (`rotate`) or the fallback (`timeout`, `attempts`).
pub(super) fn plain_resolv_conf(pathdns: IpAddr, upstreams: &[&String], original: &str) -> String {
    let mut out = String::new();
    out.push_str(MARK);
    out.push_str(".\n");
    out.push_str(
        "# pathdns answers first. The nameservers after it are the ones this host used before:\n\
         # pathdns forwards every name it does not own to them (upstream \"system\"), and a\n\
         # client whose query pathdns does not answer within a second asks them directly.\n",
    );
    if upstreams.len() + 1 > GLIBC_MAXNS {
        out.push_str(&format!(
            "# glibc reads only the first {GLIBC_MAXNS} nameservers; pathdns forwards to all.\n"
        ));
    }
    out.push_str(&format!(
        "# The previous file is saved in {STATE_DIR}; `pathdns resolver disable` puts it back.\n"
    ));
    out.push_str(&format!("nameserver {pathdns}\n"));
    for upstream in upstreams {
        out.push_str(&format!("nameserver {upstream}\n"));
    }
    let mut options: Vec<&str> = Vec::new();
    for line in original.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("search" | "domain" | "sortlist") => {
                out.push_str(line.trim());
                out.push('\n');
            }
            Some("options") => {
                for option in words {
                    let dropped = option == "rotate"
                        || option.starts_with("timeout:")
                        || option.starts_with("attempts:");
                    if !dropped && !options.contains(&option) {
                        options.push(option);
                    }
                }
            }
            _ => {}
        }
    }
    options.push(FALLBACK_OPTIONS);
    out.push_str(&format!("options {}\n", options.join(" ")));
    out
}

/// The systemd-resolved drop-in: pathdns as a DNS server, and a routing domain per owned
/// name.
fn resolved_drop_in(pathdns: IpAddr, routes: &[String]) -> String {
    let domains: Vec<String> = routes.iter().map(|route| format!("~{route}")).collect();
    format!(
        "{MARK}; `pathdns resolver disable` removes it.\n\
         # systemd-resolved sends the names pathdns owns (and names under them) to pathdns,\n\
         # and every other name where it sent it before (split DNS).\n\
         [Resolve]\n\
         DNS={pathdns}\n\
         Domains={}\n",
        domains.join(" ")
    )
}
