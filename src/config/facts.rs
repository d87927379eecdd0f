//! What validation needs to know about this host, read once before validation: the
//! resolv.conf the config names, and, when the config asks for them, the host's interfaces,
//! whether raw ICMP sockets may be opened, whether each CA file holds a certificate, and
//! the container runtimes (for `server.node_local = "auto"`).
//!
//! Owns: every host and filesystem read of the pipeline after the config file itself,
//! through the host room (`crate::host`), with the host room's semantics (glibc's for
//! resolv.conf). Must not: judge what it reads against the config; `validate` does that,
//! from these facts alone, and words the messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::raw::{HealthChecks, RawConfig, RawProbe};
use crate::host::containers::{self, Evidence};
use crate::host::failures::{self, HostRead};
use crate::host::resolv_conf::{self, ReadError, ResolvConf};

/// The host as validation sees it.
#[derive(Debug)]
pub struct HostFacts {
    /// `upstream.resolv_conf`, read once: the nameservers of a `"system"` upstream and the
    /// search list that the rebinding filter exempts.
    pub resolv_conf: Result<ResolvConf, ReadError>,
    /// The host's interface names, read when the config names an interface (`interface`,
    /// a path probe's `via`); `Err` says why they could not be listed.
    pub interfaces: Option<Result<Vec<String>, String>>,
    /// Why this process cannot open a raw ICMP socket; checked when the config has an
    /// icmp probe, `None` when it can (or was not asked).
    pub raw_icmp_denied: Option<String>,
    /// Every CA file the config names, with why it is unusable (`Err`) or `Ok`.
    pub ca_files: BTreeMap<PathBuf, Result<(), String>>,
    /// The container runtimes of this host, read when `server.node_local = "auto"`.
    pub container_runtimes: Option<Vec<Evidence>>,
}

impl HostFacts {
    /// Reads what `raw` needs from this host. Best effort throughout: a failed read is a
    /// fact too, and validation decides whether it matters.
    pub fn read(raw: &RawConfig) -> HostFacts {
        let checks = health_checks(raw);
        let probes: Vec<&RawProbe> = checks.iter().flat_map(|c| written_probes(*c)).collect();
        let names_an_interface =
            checks.iter().any(|c| c.interface.is_some()) || probes.iter().any(|p| p.via.is_some());
        let has_icmp = probes.iter().any(|p| p.kind.get_ref() == "icmp");
        let ca_paths = checks
            .iter()
            .filter_map(|c| c.ca_file.map(|path| path.get_ref()))
            .chain(
                probes
                    .iter()
                    .filter_map(|p| p.ca_file.as_ref().map(|f| f.get_ref())),
            );
        HostFacts {
            resolv_conf: resolv_conf::read(&raw.upstream.resolv_conf),
            interfaces: names_an_interface.then(interface_names),
            raw_icmp_denied: has_icmp
                .then(|| crate::host::check_raw_icmp().err().map(|e| e.to_string()))
                .flatten(),
            ca_files: ca_paths
                .map(|path| (path.clone(), check_ca_file(path)))
                .collect(),
            container_runtimes: node_local_auto(raw).then(|| containers::detect(Path::new("/"))),
        }
    }

    /// A host that reads nothing: an unreadable resolv.conf and no interfaces, ICMP or CA
    /// files. For tests of the pure stages.
    #[cfg(test)]
    pub fn nothing() -> HostFacts {
        HostFacts {
            resolv_conf: Err(ReadError {
                path: PathBuf::from("/nonexistent"),
                source: std::io::ErrorKind::NotFound.into(),
            }),
            interfaces: None,
            raw_icmp_denied: None,
            ca_files: BTreeMap::new(),
            container_runtimes: None,
        }
    }
}

fn node_local_auto(raw: &RawConfig) -> bool {
    let node_local = raw.server.node_local.as_ref();
    node_local.is_some_and(|value| value.get_ref() == "auto")
}

/// The probe and failover keys of every `[[registry]]` and `[[name]]`.
fn health_checks(raw: &RawConfig) -> Vec<HealthChecks<'_>> {
    let registries = raw.registry.iter().map(|r| r.health_checks());
    registries
        .chain(raw.name.iter().map(|n| n.health_checks()))
        .collect()
}

/// Both `probe` and `probes`: giving both is an error, but one validation reports.
fn written_probes(checks: HealthChecks<'_>) -> Vec<&RawProbe> {
    let one = checks.probe.map(|p| p.get_ref());
    let list = checks
        .probes
        .map(|p| p.get_ref().iter())
        .into_iter()
        .flatten();
    one.into_iter().chain(list).collect()
}

/// The host's interface names, or why they cannot be listed: an empty list is a failed
/// read (every host has `lo`), whose cause the host room recorded.
fn interface_names() -> Result<Vec<String>, String> {
    let links = crate::host::interfaces::links();
    if !links.is_empty() {
        return Ok(links.into_iter().map(|link| link.name).collect());
    }
    Err(failures::current()
        .into_iter()
        .find(|failure| failure.read == HostRead::Links)
        .map_or_else(|| "no links listed".to_owned(), |failure| failure.cause))
}

/// A CA file must hold at least one PEM certificate.
fn check_ca_file(path: &Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("cannot read CA file {}: {err}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("CA file {} is not PEM: {err}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    Ok(())
}
