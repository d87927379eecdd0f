//! Doctor's `hosts` check: an `/etc/hosts` line for an owned name, which glibc reads before
//! asking DNS.
//!
//! Owns: the verdict on the lines the host room's hosts-file reader found. Must not: read
//! the file itself (the caller reads it once for every name).

use std::path::Path;

use super::resolve::join;
use super::{Check, Verdict, NO_TARGET};
use crate::config::{AnswerSpec, OwnedName};
use crate::host::hosts_file;

/// `/etc/hosts` lines for `name`: glibc reads them before asking DNS.
pub(super) fn hosts_checks(
    name: &OwnedName,
    hosts: &[hosts_file::Entry],
    file: &Path,
) -> Vec<Check> {
    if name.is_wildcard() {
        return Vec::new();
    }
    let display = name.display();
    let (found, lines) = hosts_file::lookup(hosts, &display);
    if found.is_empty() {
        return Vec::new();
    }
    let file = file.display();
    let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
    let at = format!("{file} line {}", lines.join(", "));
    let configured = name.addresses();
    if !configured.is_empty() && found.iter().all(|addr| configured.contains(addr)) {
        return vec![Check::new(
            Verdict::Warn,
            &display,
            NO_TARGET,
            "hosts",
            format!(
                "{at} gives {}: glibc reads it before DNS, so this host never asks pathdns for \
                 it (no failover); remove the line once pathdns is the resolver",
                join(&found)
            ),
        )];
    }
    let configured = match &name.answer {
        AnswerSpec::Cname(target) => {
            format!("CNAME {}", target.to_ascii().trim_end_matches('.'))
        }
        AnswerSpec::Targets(_) => join(&configured),
    };
    vec![Check::fail(
        &display,
        NO_TARGET,
        "hosts",
        format!(
            "{at} gives {}, this config has {configured}: glibc reads the file before DNS, so \
             the host uses the file's address",
            join(&found)
        ),
        format!("remove (or fix) {at}"),
    )]
}
