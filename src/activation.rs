//! Sockets that outlive the process: systemd socket activation (`pathdns.socket`) and the
//! service's file descriptor store, so that a restart, an upgrade or a crash never closes
//! a listening socket: queries sent meanwhile wait in the kernel's socket buffer for the
//! next process instead of being refused.
//!
//! Owns: taking the sockets systemd passes (`LISTEN_FDS`, `LISTEN_FDNAMES`), matching each
//! to a listen address by its bound address and type, storing the sockets pathdns binds
//! itself (`FDSTORE=1` with `FDNAME=`) and releasing stored ones the config no longer lists
//! (`FDSTOREREMOVE=1`). Must not: bind or serve (that is [`crate::dns`]), or decide which
//! addresses to listen on (the config does).
//!
//! Outside systemd (no `LISTEN_FDS`, no `NOTIFY_SOCKET`) nothing here does anything, and
//! pathdns binds every address itself.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;

use sd_notify::NotifyState;

use crate::dns;

/// Prefix of the names pathdns gives the sockets it stores; any other name is a socket
/// unit's (`pathdns.socket`, or its `FileDescriptorName=`).
const STORED_PREFIX: &str = "pathdns-";

/// Where a handed-over socket came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A socket unit: PID 1 keeps it open whatever pathdns does.
    SocketUnit(String),
    /// pathdns's own, from an earlier process, kept in the fd store under this name.
    Stored(String),
}

impl Origin {
    fn of(name: &str) -> Origin {
        if name.starts_with(STORED_PREFIX) {
            Origin::Stored(name.to_owned())
        } else {
            Origin::SocketUnit(name.to_owned())
        }
    }
}

/// The sockets systemd handed over, not yet taken for a listen address.
#[derive(Debug, Default)]
pub struct Handed {
    udp: HashMap<SocketAddr, (UdpSocket, Origin)>,
    tcp: HashMap<SocketAddr, (TcpListener, Origin)>,
}

/// Takes the sockets systemd passed to this process. Call it before any thread starts: it
/// removes `LISTEN_FDS` and `LISTEN_PID` from the environment (so that no child takes them).
pub fn take() -> Handed {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut handed = Handed::default();
    for index in 0..fds.len() {
        let name = names.get(index).map_or("unknown", String::as_str);
        handed.add(&mut fds, index, Origin::of(name));
    }
    handed
}

impl Handed {
    /// Takes passed socket `index` as UDP or TCP, by its type; anything else is left
    /// alone (and logged).
    fn add(&mut self, fds: &mut listenfd::ListenFd, index: usize, origin: Origin) {
        if let Ok(Some(udp)) = fds.take_udp_socket(index) {
            match udp.local_addr() {
                Ok(addr) => {
                    tracing::info!(%addr, ?origin, "udp socket from systemd");
                    self.udp.insert(addr, (udp, origin));
                }
                Err(err) => {
                    tracing::warn!(error = %err, ?origin, "systemd passed an unbound udp socket; ignored")
                }
            }
        } else if let Ok(Some(tcp)) = fds.take_tcp_listener(index) {
            match tcp.local_addr() {
                Ok(addr) => {
                    tracing::info!(%addr, ?origin, "tcp socket from systemd");
                    self.tcp.insert(addr, (tcp, origin));
                }
                Err(err) => {
                    tracing::warn!(error = %err, ?origin, "systemd passed an unbound tcp socket; ignored")
                }
            }
        } else {
            tracing::warn!(
                index,
                ?origin,
                "systemd passed a file descriptor that is neither a UDP nor a TCP socket; ignored"
            );
        }
    }

    /// Whether systemd passed any socket at all.
    pub fn is_empty(&self) -> bool {
        self.udp.is_empty() && self.tcp.is_empty()
    }

    /// The sockets bound to `addr` (exactly: a wildcard socket serves a wildcard address
    /// only), with the fd-store names of those that came from the store. Port 0 never
    /// matches: it asks for a fresh port.
    pub fn adopt(&mut self, addr: SocketAddr) -> (dns::Handover, Vec<String>) {
        if addr.port() == 0 {
            return ((None, None), Vec::new());
        }
        let udp = self.udp.remove(&addr);
        let tcp = self.tcp.remove(&addr);
        let stored = [udp.as_ref().map(|(_, o)| o), tcp.as_ref().map(|(_, o)| o)]
            .into_iter()
            .flatten()
            .filter_map(|origin| match origin {
                Origin::Stored(name) => Some(name.clone()),
                Origin::SocketUnit(_) => None,
            })
            .collect();
        ((udp.map(|(s, _)| s), tcp.map(|(s, _)| s)), stored)
    }

    /// What is left once every listen address took its sockets: stored ones are released
    /// from the store and closed (their address left the config); a socket unit's are kept
    /// aside (PID 1 holds them anyway), ready for a reload that lists their address again,
    /// with a warning that nobody answers there meanwhile.
    pub fn release_unused(&mut self) {
        let mut released = Vec::new();
        self.udp
            .retain(|addr, (_, origin)| keep(addr, "udp", origin, &mut released));
        self.tcp
            .retain(|addr, (_, origin)| keep(addr, "tcp", origin, &mut released));
        forget(&released);
    }
}

fn keep(addr: &SocketAddr, transport: &str, origin: &Origin, released: &mut Vec<String>) -> bool {
    match origin {
        Origin::Stored(name) => {
            tracing::info!(%addr, transport, "stored socket no longer in the config; released");
            released.push(name.clone());
            false
        }
        Origin::SocketUnit(unit) => {
            tracing::warn!(
                %addr,
                transport,
                unit,
                "the socket unit listens where the config does not: nobody answers there \
                 (remove it from the socket unit, or add it to server.listen)"
            );
            true
        }
    }
}

/// The fd-store name of a socket pathdns bound: "pathdns-udp-127.0.0.1-53". systemd
/// refuses ':' in a name (its list separator), so an IPv6 address has '_' instead.
pub fn store_name(transport: &str, addr: SocketAddr) -> String {
    let ip = addr.ip().to_string().replace(':', "_");
    format!("{STORED_PREFIX}{transport}-{ip}-{}", addr.port())
}

/// Hands the sockets of `listener` that pathdns bound itself to systemd's fd store, so that
/// the next process (a restart, a crash) gets them back; returns their names, and marks the
/// UDP socket shared once stored. Does nothing outside systemd (no `NOTIFY_SOCKET`).
pub fn store(listener: &mut dns::Listener) -> Vec<String> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Vec::new();
    }
    let mut names = Vec::new();
    if !listener.adopted.udp {
        if let Ok(addr) = listener.udp_addr() {
            let name = store_name("udp", addr);
            if send_fd(&name, listener.udp.as_fd()) {
                listener.shared = true;
                names.push(name);
            }
        }
    }
    if !listener.adopted.tcp {
        if let Ok(addr) = listener.tcp_addr() {
            let name = store_name("tcp", addr);
            if send_fd(&name, listener.tcp.as_fd()) {
                names.push(name);
            }
        }
    }
    names
}

fn send_fd(name: &str, fd: std::os::fd::BorrowedFd<'_>) -> bool {
    match sd_notify::notify_with_fds(&[NotifyState::FdStore, NotifyState::FdName(name)], &[fd]) {
        Ok(()) => {
            tracing::debug!(name, "socket stored with systemd");
            true
        }
        Err(err) => {
            tracing::warn!(name, error = %err, "cannot store the socket with systemd; a restart closes it");
            false
        }
    }
}

/// Releases stored sockets from systemd's fd store (their address left the config).
pub fn forget(names: &[String]) {
    for name in names {
        if let Err(err) =
            sd_notify::notify(&[NotifyState::FdStoreRemove, NotifyState::FdName(name)])
        {
            tracing::debug!(name, error = %err, "FDSTOREREMOVE failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_carry_no_colon() {
        let v4: SocketAddr = "127.0.0.1:53".parse().expect("addr");
        let v6: SocketAddr = "[::1]:5353".parse().expect("addr");
        assert_eq!(store_name("udp", v4), "pathdns-udp-127.0.0.1-53");
        assert_eq!(store_name("tcp", v6), "pathdns-tcp-__1-5353");
        assert_eq!(
            Origin::of(&store_name("tcp", v6)),
            Origin::Stored("pathdns-tcp-__1-5353".into())
        );
        assert_eq!(
            Origin::of("pathdns.socket"),
            Origin::SocketUnit("pathdns.socket".into())
        );
    }
}
