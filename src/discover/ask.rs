//! One discovery round's question: the owned name's A records, asked of each discovery
//! server in turn until one gives a usable answer.
//!
//! Owns: [`ask_servers`]. Must not: ask for anything but the owned names (the runner
//! only passes those), or retry a server within a round.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};

use super::answer::addresses;
use crate::dns_client::{self, AskError};

/// A usable answer: who gave it, and the addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub server: SocketAddr,
    pub addresses: Vec<IpAddr>,
}

/// Asks `servers` in order for `name`'s A records; the first usable answer wins. Without
/// one, every server's reason, as one line ("10.0.5.53:53: no answer within 2s; ...").
pub async fn ask_servers(
    servers: &[SocketAddr],
    name: &Name,
    timeout: Duration,
) -> Result<Answered, String> {
    let mut reasons = Vec::with_capacity(servers.len());
    for &server in servers {
        match ask_one(server, name, timeout).await {
            Ok(addresses) => return Ok(Answered { server, addresses }),
            Err(reason) => reasons.push(format!("{server}: {reason}")),
        }
    }
    Err(reasons.join("; "))
}

async fn ask_one(
    server: SocketAddr,
    name: &Name,
    timeout: Duration,
) -> Result<Vec<IpAddr>, String> {
    let reply = dns_client::ask(server, name, RecordType::A, timeout)
        .await
        .map_err(|err| match err {
            AskError::NoAgent(reason) | AskError::Other(reason) => reason,
        })?;
    addresses(&reply, name).map_err(|rejected| rejected.to_string())
}
