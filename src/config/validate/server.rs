//! `[server]`: listen addresses, the client allow list and the TCP caps.
//!
//! Must not: bind anything; the listeners do that from the validated settings.

use crate::config::error::{ConfigError, Site};
use crate::config::raw::RawServer;
use crate::config::settings::ServerSettings;

use super::values::in_range;

/// More concurrent TCP clients than a node-local resolver ever needs (and than a
/// semaphore can count on every platform).
const MAX_TCP_CONNECTIONS: usize = 1_000_000;

/// The most pipelined queries of one TCP connection waiting at once (RFC 7766 sets no
/// number; a DNS message ID has 65,536 values).
const MAX_QUERIES_PER_CONNECTION: usize = 65_536;

pub(in crate::config) fn server(
    raw: &RawServer,
    site: &Site,
) -> Result<ServerSettings, ConfigError> {
    check_listen(raw, site)?;
    let allow = &raw.allow;
    if allow.get_ref().is_empty() {
        return Err(site.at(
            allow.span(),
            "server.allow",
            "empty: every client would be REFUSED; allow at least \"127.0.0.0/8\"".into(),
        ));
    }
    let max_tcp = &raw.max_tcp_connections;
    in_range(
        max_tcp,
        MAX_TCP_CONNECTIONS,
        "server.max_tcp_connections",
        site,
    )?;
    let per_connection = &raw.max_queries_per_connection;
    in_range(
        per_connection,
        MAX_QUERIES_PER_CONNECTION,
        "server.max_queries_per_connection",
        site,
    )?;
    let idle = &raw.tcp_idle_timeout;
    if idle.get_ref().is_zero() {
        return Err(site.at(
            idle.span(),
            "server.tcp_idle_timeout",
            "must be above 0: every TCP client would be disconnected at once".into(),
        ));
    }
    Ok(ServerSettings {
        listen: raw.listen.get_ref().clone(),
        allow: allow.get_ref().clone(),
        max_tcp_connections: *max_tcp.get_ref(),
        tcp_idle_timeout: *idle.get_ref(),
        max_queries_per_connection: *per_connection.get_ref(),
    })
}

/// At least one listen address, none twice.
fn check_listen(raw: &RawServer, site: &Site) -> Result<(), ConfigError> {
    let listen = &raw.listen;
    if listen.get_ref().is_empty() {
        return Err(site.at(
            listen.span(),
            "server.listen",
            "no listen address: give at least one, e.g. \"127.0.0.1:53\"".into(),
        ));
    }
    for (index, addr) in listen.get_ref().iter().enumerate() {
        if listen.get_ref()[..index].contains(addr) {
            return Err(site.at(
                listen.span(),
                "server.listen",
                format!("{addr} is listed twice"),
            ));
        }
    }
    Ok(())
}
