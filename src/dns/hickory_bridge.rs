//! The one place where hickory-proto's DNS types meet the hot path's own ([`crate::wire`]).
//!
//! Owns: every conversion between the two vocabularies: rcodes both ways ([`rcode`] and
//! [`response_code`], all twelve bits, extended codes included), wire-form names to hickory
//! names ([`name_from_wire`]), a wire question (name, type and class numbers) as hickory
//! asks it ([`question`]), and hickory records to the body of a [`Prepared`] response
//! ([`prepare`]). The records are encoded with hickory's own encoder right behind the
//! question, so that their names compress against it exactly as in a whole message; the
//! body starts where the encoder measurably finished the question (checked to be the
//! length of the client's question), and each section's count is what the encoder wrote.
//!
//! Must not: decide what is asked, answered or cached, or check records (the forwarder
//! does, before they come here); or run on the synchronous path: it allocates, and owned
//! names and cache hits never reach it (they are answered from [`Prepared`] bodies made
//! once, here or by the answer table).

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable, BinEncoder};

use super::cache::KeyRef;
use crate::wire::{Prepared, Rcode, HEADER_LEN};

/// A wire-form name that is not a valid name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid name in wire form")]
pub struct BadName;

/// Records that hickory cannot encode into a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(String);

/// The hot path's rcode for hickory's: the same number (hickory's codes are the twelve
/// bits of the header and the OPT record; any higher bits are dropped).
pub fn rcode(code: ResponseCode) -> Rcode {
    Rcode::from_code(u16::from(code))
}

/// hickory's rcode for the hot path's: the same number.
pub fn response_code(rcode: Rcode) -> ResponseCode {
    rcode.code().into()
}

/// A hickory name (fully qualified) from a name in wire form, uncompressed.
pub fn name_from_wire(wire: &[u8]) -> Result<Name, BadName> {
    let mut name = Name::from_bytes(wire).map_err(|_| BadName)?;
    name.set_fqdn(true);
    Ok(name)
}

/// The question for `name` with type and class numbers as the wire carries them.
pub fn question(name: Name, qtype: u16, qclass: u16) -> Query {
    let mut query = Query::query(name, RecordType::from(qtype));
    query.set_query_class(DNSClass::from(qclass));
    query
}

/// The records of a response, section by section, in order.
pub struct Sections<A, N, D> {
    pub answers: A,
    pub authorities: N,
    pub additionals: D,
}

/// The response body for the question `key` (whose name, in wire form, is `question_name`):
/// the three sections encoded by hickory behind that question, each record's owner name
/// lower-cased like the key's. Records of the question name then compress to offset 12 and
/// reach the client in the client's own case, whatever case the upstream wrote (0x20 makes
/// that random). The body is valid behind any question of the key's length, which every
/// client question for the key has (names compare case-insensitively).
pub fn prepare<A, N, D>(
    key: &KeyRef<'_>,
    question_name: &Name,
    code: ResponseCode,
    authoritative: bool,
    sections: Sections<A, N, D>,
) -> Result<Prepared, EncodeError>
where
    A: IntoIterator<Item = Record>,
    N: IntoIterator<Item = Record>,
    D: IntoIterator<Item = Record>,
{
    let fail = |err: hickory_proto::ProtoError| EncodeError(err.to_string());
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    // The header's place: names compress to absolute offsets, as in a whole message.
    encoder.emit_vec(&[0; HEADER_LEN]).map_err(fail)?;
    question(question_name.clone(), key.qtype, key.qclass)
        .emit(&mut encoder)
        .map_err(fail)?;
    let body_start = encoder.offset();
    if body_start != HEADER_LEN + key.name.len() + 4 {
        return Err(EncodeError(format!(
            "the question encodes to {} octets, not the key's {}",
            body_start - HEADER_LEN,
            key.name.len() + 4
        )));
    }
    let counts = [
        emit_section(&mut encoder, sections.answers)?,
        emit_section(&mut encoder, sections.authorities)?,
        emit_section(&mut encoder, sections.additionals)?,
    ];
    let body = bytes
        .get(body_start..)
        .ok_or_else(|| EncodeError("short message".into()))?;
    Prepared::from_encoded(rcode(code), authoritative, counts, body)
        .ok_or_else(|| EncodeError("records do not match counts".into()))
}

/// Encodes `records`, owner names lower-cased, and counts them.
fn emit_section(
    encoder: &mut BinEncoder<'_>,
    records: impl IntoIterator<Item = Record>,
) -> Result<u16, EncodeError> {
    let mut count = 0u16;
    for mut record in records {
        record.name = record.name.to_lowercase();
        record
            .emit(encoder)
            .map_err(|err| EncodeError(err.to_string()))?;
        count = count
            .checked_add(1)
            .ok_or_else(|| EncodeError("too many records for a header count".into()))?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use hickory_proto::rr::RData;

    #[test]
    fn rcodes_convert_exactly_both_ways() {
        for code in 0..=0x0fff_u16 {
            let hickory: ResponseCode = code.into();
            assert_eq!(rcode(hickory).code(), code, "{code}");
            assert_eq!(u16::from(response_code(rcode(hickory))), code, "{code}");
        }
        assert_eq!(rcode(ResponseCode::BADVERS), Rcode::Other(16));
        assert_eq!(rcode(ResponseCode::NXDomain), Rcode::NxDomain);
        assert_eq!(response_code(Rcode::Refused), ResponseCode::Refused);
        assert_eq!(rcode(ResponseCode::Unknown(4095)), Rcode::Other(4095));
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    /// What `Forwarder::store` cut out of a whole hickory message before this module: the
    /// bytes after the header and the question.
    fn as_message_body(
        question_name: &Name,
        qtype: u16,
        sections: [Vec<Record>; 3],
    ) -> (Vec<u8>, [u16; 3]) {
        let lower = |records: Vec<Record>| {
            records.into_iter().map(|mut record| {
                record.name = record.name.to_lowercase();
                record
            })
        };
        let [answers, authorities, additionals] = sections;
        let mut message = Message::response(0, OpCode::Query);
        message.add_query(question(question_name.clone(), qtype, 1));
        message.add_answers(lower(answers));
        message.add_authorities(lower(authorities));
        message.add_additionals(lower(additionals));
        let counts = [
            message.answers.len() as u16,
            message.authorities.len() as u16,
            message.additionals.len() as u16,
        ];
        let bytes = message.to_vec().expect("encodes");
        let start = HEADER_LEN + name_len(question_name) + 4;
        (bytes[start..].to_vec(), counts)
    }

    fn name_len(name: &Name) -> usize {
        name.iter().map(|label| 1 + label.len()).sum::<usize>() + 1
    }

    #[test]
    fn bodies_are_the_bytes_a_whole_message_had() {
        let question_name = name("www.example.");
        let wire = b"\x03www\x07example\x00";
        let key = KeyRef {
            name: wire,
            qtype: 1,
            qclass: 1,
        };
        let soa = SOA::new(name("ns.example."), name("h.example."), 1, 2, 3, 4, 5);
        let sections = [
            vec![
                Record::from_rdata(
                    name("WWW.Example."),
                    60,
                    RData::CNAME(CNAME(name("a.cdn."))),
                ),
                Record::from_rdata(name("a.CDN."), 30, RData::A(A::new(192, 0, 2, 1))),
                Record::from_rdata(name("a.cdn."), 30, RData::A(A::new(192, 0, 2, 2))),
            ],
            vec![Record::from_rdata(name("Example."), 300, RData::SOA(soa))],
            vec![Record::from_rdata(
                name("ns.example."),
                300,
                RData::A(A::new(192, 0, 2, 53)),
            )],
        ];
        let (body, counts) = as_message_body(&question_name, 1, sections.clone());
        let [answers, authorities, additionals] = sections;
        let prepared = prepare(
            &key,
            &question_name,
            ResponseCode::NoError,
            true,
            Sections {
                answers,
                authorities,
                additionals,
            },
        )
        .expect("prepares");
        assert_eq!(&*prepared.body, &body[..]);
        assert_eq!(
            [prepared.answers, prepared.authorities, prepared.additionals],
            counts
        );
        assert_eq!(prepared.ttl_offsets.len(), 5);
        assert!(prepared.authoritative);
        // The CNAME's owner compressed to the question, at offset 12.
        assert_eq!(&prepared.body[..2], &[0xc0, 12]);
    }

    #[test]
    fn a_question_of_another_length_than_the_key_fails() {
        let key = KeyRef {
            name: b"\x01a\x00",
            qtype: 1,
            qclass: 1,
        };
        let none = || std::iter::empty::<Record>();
        let sections = Sections {
            answers: none(),
            authorities: none(),
            additionals: none(),
        };
        assert!(prepare(&key, &name("ab."), ResponseCode::NoError, false, sections).is_err());
    }

    #[test]
    fn names_from_wire_are_fully_qualified() {
        let parsed = name_from_wire(b"\x03www\x07example\x00").expect("a name");
        assert!(parsed.is_fqdn());
        assert_eq!(parsed, name("www.example."));
        assert_eq!(name_from_wire(b"\x05ab"), Err(BadName));
    }
}
