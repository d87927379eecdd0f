//! Reading a resolv.conf: whom this host asks, for `doctor`, `check`, the resolver switch
//! and config's `"system"` upstream.
//!
//! Owns: one reading of the file, on the `resolv-conf` crate, with glibc's semantics: every
//! `nameserver` line in order, and the search list from the LAST `search` or `domain` line
//! (glibc keeps only that one). Must not: judge what it reads (whether pathdns is listed is
//! the caller's question), or write the file (the resolver room does).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// The `nameserver` lines' addresses, in order. A scoped IPv6 address (`fe80::1%eth0`)
    /// is left out: no socket address of pathdns's carries a zone, so none can be pathdns or
    /// one of its upstreams.
    pub nameservers: Vec<IpAddr>,
    /// Every `nameserver` address, a zone included (`fe80::1%eth0`): what a rewritten
    /// resolv.conf must keep for glibc.
    pub entries: Vec<String>,
    /// The search list of the last `search` or `domain` line, as written.
    pub search: Vec<String>,
}

/// A resolv.conf that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {}", path.display(), crate::reason::io_reason(source))]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Reads and parses the file at `path`.
pub fn read(path: &Path) -> Result<ResolvConf, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse(&bytes))
}

/// Parses a resolv.conf's text. Lines glibc would skip (unknown keywords, a bad address)
/// are skipped, not errors: the file is the host's, not ours to reject.
pub fn parse(text: impl AsRef<[u8]>) -> ResolvConf {
    let (conf, _skipped) = resolv_conf::Config::parse_with_errors(text.as_ref());
    let nameservers = conf
        .nameservers
        .iter()
        .filter_map(|server| match server {
            resolv_conf::ScopedIp::V4(v4) => Some(IpAddr::V4(*v4)),
            resolv_conf::ScopedIp::V6(v6, None) => Some(IpAddr::V6(*v6)),
            resolv_conf::ScopedIp::V6(_, Some(_)) => None,
        })
        .collect();
    let entries = conf.nameservers.iter().map(ToString::to_string).collect();
    let search = conf.get_last_search_or_domain().cloned().collect();
    ResolvConf {
        nameservers,
        entries,
        search,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_in_order_without_zones() {
        let conf = parse(
            "# c\nsearch x\nnameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\n\
             nameserver not-an-address\noptions edns0 trust-ad\n",
        );
        let expected: Vec<IpAddr> = vec![
            "127.0.0.53".parse().expect("ip"),
            "::1".parse().expect("ip"),
        ];
        assert_eq!(conf.nameservers, expected);
        assert_eq!(conf.entries, vec!["127.0.0.53", "::1", "fe80::1%eth0"]);
    }

    #[test]
    fn the_last_search_or_domain_line_wins_as_in_glibc() {
        let conf =
            parse("search corp.example lab.example\nnameserver 10.0.0.2\ndomain idc.example\n");
        assert_eq!(conf.search, vec!["idc.example"]);
        let conf = parse("domain idc.example\nsearch corp.example lab.example\n");
        assert_eq!(conf.search, vec!["corp.example", "lab.example"]);
        assert!(parse("nameserver 10.0.0.2\n").search.is_empty());
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = read(Path::new("/nonexistent/resolv.conf")).expect_err("absent");
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent/resolv.conf: No such file or directory"
        );
    }
}
