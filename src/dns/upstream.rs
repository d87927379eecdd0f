//! The connections under hickory-resolver's name server pool, with pathdns's own checks on
//! every upstream reply before the pool (and so the cache) sees it.
//!
//! Owns: [`CheckedConnections`], the pool's connection provider: hickory's own UDP and TCP
//! connections, each wrapped so that a reply is believed only when [`check_reply`] accepts
//! it; and [`has_empty_rdata`], the one record shape hickory-proto decodes but cannot
//! encode back correctly. Must not: cache, retry or choose servers (the pool does), or
//! change a reply it accepts (beyond how its rcode is labelled for hickory: `keep_rcode`).
//!
//! What hickory already does, and what is added here (read from hickory-net 0.26's
//! `udp_client_stream.rs` and `dns_multiplexer.rs`):
//!
//! - UDP: every query goes out from a fresh random source port with a random ID; a reply
//!   from another address or port, with another ID, or with another question (name, type
//!   and class) is ignored and the client keeps waiting for the real one. With
//!   `case_randomization` the question name goes out in random case and a reply whose
//!   question does not echo that case is refused; the pool then asks the same server again
//!   over TCP.
//! - TCP: replies are matched to queries by ID only.
//! - A reply that matches but does not decode, or has QR=0 (an echo of the query), ends the
//!   wait with an error: the real reply behind it is lost and the client gets SERVFAIL.
//! - Nobody looks at the opcode, so a reply with opcode UPDATE is taken as an answer. In an
//!   UPDATE message hickory-proto decodes a record with RDLENGTH 0 as a placeholder
//!   (`RData::Update0`) which it encodes back with RDLENGTH 0: an A record with no address,
//!   which clients reject as malformed. (In other messages it refuses such a record.)
//!
//! So every reply must be a response (QR=1) to a QUERY, carry exactly the question asked
//! (over TCP too), and hold no record with empty data of a type that needs data. Nothing of
//! a reply that fails is cached. Over UDP such a reply, and one that matched port and ID
//! but did not decode, is taken as a spoofing attempt, as hickory takes a 0x20 case
//! mismatch: the pool asks the same server again over TCP, which a spoofer cannot answer
//! blind, so the client still gets the real answer. Over TCP it is an I/O error: the pool
//! records the failure against that server and tries the next one within the time budget;
//! the client gets SERVFAIL if none answers properly.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use hickory_proto::op::{
    DnsRequest, DnsResponse, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_resolver::config::{ConnectionConfig, ProtocolConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsExchange, DnsHandle};
use hickory_resolver::net::NetError;
use hickory_resolver::{ConnectionProvider, PoolContext};

/// Why an upstream reply is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    #[error("QR bit clear: not a response")]
    NotAResponse,
    #[error("opcode {0:?}, not QUERY")]
    Opcode(OpCode),
    #[error("another question than the one asked")]
    Question,
    #[error("a {0} record with empty data")]
    EmptyRdata(RecordType),
}

/// Accepts `reply` as the answer to a query with `asked` questions, or says why not.
pub fn check_reply(asked: &[Query], reply: &Message) -> Result<(), BadReply> {
    check_header(reply)?;
    // Names compare case-insensitively here: whether the case must match exactly
    // (case_randomization) is hickory's UDP client's check, made before this one.
    if reply.queries != asked {
        return Err(BadReply::Question);
    }
    check_records(
        reply
            .answers
            .iter()
            .chain(&reply.authorities)
            .chain(&reply.additionals),
    )
}

/// A response (QR=1) to a QUERY.
pub fn check_header(reply: &Message) -> Result<(), BadReply> {
    if reply.metadata.message_type != MessageType::Response {
        return Err(BadReply::NotAResponse);
    }
    if reply.metadata.op_code != OpCode::Query {
        return Err(BadReply::Opcode(reply.metadata.op_code));
    }
    Ok(())
}

/// Refuses the first record with empty data of a type that needs data.
pub fn check_records<'r>(records: impl IntoIterator<Item = &'r Record>) -> Result<(), BadReply> {
    match records.into_iter().find(|record| has_empty_rdata(record)) {
        Some(record) => Err(BadReply::EmptyRdata(record.record_type())),
        None => Ok(()),
    }
}

/// A record whose RDATA was empty on the wire although its type needs data (an A record
/// without an address, say). Empty data is well-formed only for NULL, OPT and types
/// hickory does not know (RFC 3597 says nothing about their length).
pub fn has_empty_rdata(record: &Record) -> bool {
    matches!(record.data, RData::Update0(_))
        && !matches!(
            record.record_type(),
            RecordType::NULL | RecordType::OPT | RecordType::Unknown(_)
        )
}

/// hickory's own connections (UDP, TCP) to each upstream, each [`Checked`].
#[derive(Clone, Default)]
pub struct CheckedConnections(TokioRuntimeProvider);

type Connecting = Pin<
    Box<dyn Future<Output = Result<Checked<DnsExchange<TokioRuntimeProvider>>, NetError>> + Send>,
>;

impl ConnectionProvider for CheckedConnections {
    type Conn = Checked<DnsExchange<TokioRuntimeProvider>>;
    type FutureConn = Connecting;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        cx: &PoolContext,
    ) -> Result<Self::FutureConn, NetError> {
        let connecting = self.0.new_connection(ip, config, cx)?;
        let udp = matches!(config.protocol, ProtocolConfig::Udp);
        Ok(Box::pin(async move {
            connecting.await.map(|conn| Checked { conn, udp })
        }))
    }

    fn runtime_provider(&self) -> &Self::RuntimeProvider {
        &self.0
    }
}

/// A connection whose replies pass [`check_reply`] or become errors.
#[derive(Debug, Clone)]
pub struct Checked<H> {
    conn: H,
    udp: bool,
}

impl<H: DnsHandle> DnsHandle for Checked<H> {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = H::Runtime;

    fn is_verifying_dnssec(&self) -> bool {
        self.conn.is_verifying_dnssec()
    }

    fn is_using_edns(&self) -> bool {
        self.conn.is_using_edns()
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        let asked = request.queries.clone();
        let udp = self.udp;
        Box::pin(self.conn.send(request).map(move |reply| match reply {
            Ok(mut reply) => match check_reply(&asked, &reply) {
                Ok(()) => {
                    keep_rcode(&mut reply);
                    Ok(reply)
                }
                Err(bad) => {
                    tracing::debug!(reason = %bad, udp, "upstream reply refused");
                    Err(refused(bad, udp))
                }
            },
            // From the right address, port and ID, but not a DNS response that decodes.
            Err(NetError::Proto(err)) if udp => {
                tracing::debug!(error = %err, "undecodable upstream reply over UDP");
                Err(NetError::QueryCaseMismatch)
            }
            Err(err) => Err(err),
        }))
    }
}

/// Marks an accepted reply's rcode so that it reaches pathdns as the upstream sent it.
/// hickory's name server turns a reply with any rcode but NOERROR, NXDOMAIN and codes it
/// does not know (REFUSED, FORMERR, YXDOMAIN, NOTAUTH, BADVERS, ...) into an error that
/// keeps only the code, which pathdns used to answer SERVFAIL; as an "unknown" code of
/// the same number the reply passes whole. SERVFAIL stays hickory's error: the client gets
/// SERVFAIL either way, and serve-stale answers from the cache when it can.
fn keep_rcode(reply: &mut DnsResponse) {
    let code = reply.metadata.response_code;
    if !matches!(
        code,
        ResponseCode::NoError
            | ResponseCode::NXDomain
            | ResponseCode::ServFail
            | ResponseCode::Unknown(_)
    ) {
        reply.metadata.response_code = ResponseCode::Unknown(u16::from(code));
    }
}

/// The pool's error for a refused reply: over UDP the one that makes it ask the same
/// server again over TCP (hickory's answer to a suspected spoof); over TCP an I/O error,
/// which moves on to the next server (asking the same one again would loop until the
/// deadline).
fn refused(bad: BadReply, udp: bool) -> NetError {
    if udp {
        NetError::QueryCaseMismatch
    } else {
        NetError::Io(Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("upstream reply refused: {bad}"),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::Name;

    fn question() -> Query {
        Query::query(
            Name::from_ascii("www.example.").expect("name"),
            RecordType::A,
        )
    }

    fn answer() -> Message {
        let mut reply = Message::response(7, OpCode::Query);
        reply.add_query(question());
        reply.add_answer(Record::from_rdata(
            Name::from_ascii("www.example.").expect("name"),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        reply
    }

    #[test]
    fn a_proper_answer_passes_in_any_case() {
        let mut asked = question();
        asked.set_name(Name::from_ascii("WwW.eXample.").expect("name"));
        assert_eq!(check_reply(&[asked], &answer()), Ok(()));
    }

    #[test]
    fn queries_updates_and_other_questions_fail() {
        let asked = [question()];
        let mut echoed = answer();
        echoed.metadata.message_type = MessageType::Query;
        assert_eq!(check_reply(&asked, &echoed), Err(BadReply::NotAResponse));
        let mut update = answer();
        update.metadata.op_code = OpCode::Update;
        assert_eq!(
            check_reply(&asked, &update),
            Err(BadReply::Opcode(OpCode::Update))
        );
        let mut other = answer();
        other.queries[0].set_query_type(RecordType::AAAA);
        assert_eq!(check_reply(&asked, &other), Err(BadReply::Question));
        let mut none = answer();
        none.queries.clear();
        assert_eq!(check_reply(&asked, &none), Err(BadReply::Question));
    }

    #[test]
    fn empty_rdata_fails_unless_the_type_allows_it() {
        // What hickory-proto decodes from an UPDATE message's record with RDLENGTH 0.
        let mut reply = answer();
        reply.answers[0] = Record::update0(reply.answers[0].name.clone(), 60, RecordType::A);
        assert!(has_empty_rdata(&reply.answers[0]));
        assert_eq!(
            check_reply(&[question()], &reply),
            Err(BadReply::EmptyRdata(RecordType::A))
        );
        let null = Record::update0(Name::root(), 0, RecordType::NULL);
        assert!(!has_empty_rdata(&null));
        let unknown = Record::update0(Name::root(), 0, RecordType::Unknown(65_280));
        assert!(!has_empty_rdata(&unknown));
    }
}
