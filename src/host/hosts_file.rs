//! Reading an `/etc/hosts` file, a host fact: what `pathdns doctor` compares owned names
//! against (glibc reads the file before DNS) and what `pathdns import-hosts` turns into a
//! config.
//!
//! Owns: splitting the file into entries (address, names, line number) the way the
//! resolver library reads it: `#` starts a comment, fields are separated by blanks, the
//! first field is the address and every further field a name. Must not: decide what an
//! entry means; an address that does not parse is kept as text for the caller to judge.

use std::net::IpAddr;
use std::path::Path;

/// One non-empty, non-comment line of a hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The line without its comment, blanks collapsed: `10.94.205.198 name alias`.
    pub text: String,
    /// The first field as written.
    pub addr_text: String,
    /// The first field, if it is an IP address.
    pub addr: Option<IpAddr>,
    /// The remaining fields, lower-cased, without a trailing dot.
    pub names: Vec<String>,
}

/// Every entry of the file at `path`; a file that is not UTF-8 is read lossily, as glibc
/// skips what it cannot match anyway.
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let bytes = std::fs::read(path)?;
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// Every entry of `text`, in file order.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let content = line.split('#').next().unwrap_or_default();
            let mut fields = content.split_whitespace();
            let addr_text = fields.next()?.to_owned();
            let names: Vec<String> = fields
                .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect();
            let text = std::iter::once(addr_text.as_str())
                .chain(content.split_whitespace().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            Some(Entry {
                line: index + 1,
                text,
                addr: addr_text.parse().ok(),
                addr_text,
                names,
            })
        })
        .collect()
}

/// The addresses `entries` give `name` (lower-case, no trailing dot), in file order, each
/// once, with the line numbers that give them.
pub fn lookup(entries: &[Entry], name: &str) -> (Vec<IpAddr>, Vec<usize>) {
    let mut addrs = Vec::new();
    let mut lines = Vec::new();
    for entry in entries {
        let Some(addr) = entry.addr else { continue };
        if entry.names.iter().any(|n| n == name) {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
            lines.push(entry.line);
        }
    }
    (addrs, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_like_the_resolver_library() {
        let text = "# comment\n\n127.0.0.1\tlocalhost  # trailing\n\
                    10.94.205.198 XXXXXX-registry-vpc.cn-hangzhou.cr.aliyuncs.com. alias\n\
                    100.103.7.181/32 dockerauth-vpc.cn-hangzhou.aliyuncs.com\n   \n";
        let entries = parse(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[0].text, "127.0.0.1 localhost");
        assert_eq!(entries[1].line, 4);
        assert_eq!(
            entries[1].names,
            vec!["xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com", "alias"]
        );
        assert_eq!(entries[2].addr, None);
        assert_eq!(entries[2].addr_text, "100.103.7.181/32");
    }

    #[test]
    fn lookup_collects_every_line() {
        let entries =
            parse("10.0.0.1 a.example\n10.0.0.2 b.example a.example\n10.0.0.1 a.example\n");
        let (addrs, lines) = lookup(&entries, "a.example");
        assert_eq!(addrs.len(), 2);
        assert_eq!(lines, vec![1, 2, 3]);
        assert!(lookup(&entries, "c.example").0.is_empty());
    }
}
