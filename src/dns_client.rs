//! The agent's own DNS client, off the hot path: the one way pathdns builds a query of its
//! own, and one UDP exchange with a server.
//!
//! Owns: [`query_bytes`] (used by the watchdog's self-query in [`crate::systemd`] and by
//! `pathdns doctor`) and [`ask`] (doctor's query to the listen address, and discovery's to
//! a resolver inside the VPC, `crate::discover`). Must not: be used
//! by the serving path (src/dns/ encodes its answers itself), or retry, or ask anyone but the
//! one server it is given.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::ProtoError;

/// A query for `name`/`rtype`/`class` with ID `id`, in wire format; `recursion` sets RD.
pub fn query_bytes(
    id: u16,
    name: &Name,
    rtype: RecordType,
    class: DNSClass,
    recursion: bool,
) -> Result<Vec<u8>, ProtoError> {
    let mut query = Query::query(name.clone(), rtype);
    query.set_query_class(class);
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = recursion;
    message.add_query(query);
    message.to_vec()
}

/// The wildcard address of `server`'s family, port 0: where a client socket binds.
pub fn any_address(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// Why [`ask`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// Nothing listens there (timeout or port unreachable).
    NoAgent(String),
    /// Anything else (a socket error, a query that cannot be encoded).
    Other(String),
}

/// One UDP query (RD set, class IN) to `server`; replies with another ID are ignored.
pub async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, AskError> {
    let other = |err: std::io::Error| AskError::Other(crate::probe::io_detail(&err));
    let socket = tokio::net::UdpSocket::bind(any_address(server))
        .await
        .map_err(other)?;
    socket.connect(server).await.map_err(other)?;
    let id = fastrand::u16(..);
    let bytes = query_bytes(id, name, rtype, DNSClass::IN, true)
        .map_err(|err| AskError::Other(format!("cannot encode the query: {err}")))?;
    socket.send(&bytes).await.map_err(other)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
        let len = match received {
            Err(_) => {
                let waited = humantime::format_duration(timeout);
                return Err(AskError::NoAgent(format!("no answer within {waited}")));
            }
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(AskError::NoAgent("port unreachable".into()))
            }
            Ok(Err(err)) => return Err(other(err)),
            Ok(Ok(len)) => len,
        };
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        match Message::from_vec(packet) {
            Ok(response) if response.metadata.id == id => return Ok(response),
            // Our ID on a reply that does not parse: the server's, and garbage.
            Err(err) if packet.get(..2) == Some(&id.to_be_bytes()[..]) => {
                return Err(AskError::Other(format!("a malformed reply: {err}")))
            }
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_query_is_what_it_always_was() {
        // The bytes systemd.rs used to write by hand: no RD, one TXT/CH question.
        let name = Name::from_ascii("pathdns-watchdog.invalid.").expect("name");
        let bytes =
            query_bytes(0x1234, &name, RecordType::TXT, DNSClass::CH, false).expect("encodes");
        let mut expected = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x10pathdns-watchdog\x07invalid\x00");
        expected.extend_from_slice(&[0, 16, 0, 3]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn recursion_sets_rd() {
        let name = Name::from_ascii("example.com.").expect("name");
        let bytes = query_bytes(1, &name, RecordType::A, DNSClass::IN, true).expect("encodes");
        assert_eq!(bytes[2], 0x01);
    }
}
