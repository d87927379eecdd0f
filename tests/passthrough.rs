//! pathdns is invisible for the names it does not own: with the default config a forwarded
//! answer reaches the client as the upstream gave it, TTLs aside (DESIGN.md section 4).
//! A real dnsmasq answers an IDC's internal names with private addresses (10/8, 172.16/12,
//! 192.168/16, 100.64/10, a CNAME chain into one) and forwards `rcode.test` to a scripted
//! server that answers YXDOMAIN, NOTAUTH, NOTZONE, REFUSED, FORMERR, NOTIMP, SERVFAIL and
//! BADVERS; every question is
//! asked of dnsmasq directly and through pathdns, and the two answers must carry the same
//! rcode (extended rcodes included) and the same answer and authority records, byte for
//! byte with the TTL fields zeroed.
//!
//! Every address here is DNS data in an answer, served on loopback and never connected to.

use crate::common;

use common::fake_upstream::{self, FakeUpstream, Step};
use common::*;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

/// The scripted server behind dnsmasq: `<code>.rcode.test` answers with that rcode.
fn rcode_server() -> FakeUpstream {
    FakeUpstream::start(|incoming| {
        let query = incoming.query;
        let name = fake_upstream::question(query)
            .name()
            .to_ascii()
            .to_lowercase();
        let mut reply = fake_upstream::reply(query, Vec::new());
        let code = match name.split('.').next().unwrap_or_default() {
            "yxdomain" => ResponseCode::YXDomain,
            "notauth" => ResponseCode::NotAuth,
            "notzone" => ResponseCode::NotZone,
            "refused" => ResponseCode::Refused,
            "formerr" => ResponseCode::FormErr,
            "notimp" => ResponseCode::NotImp,
            "servfail" => ResponseCode::ServFail,
            "badvers" => ResponseCode::BADVERS,
            _ => ResponseCode::NXDomain,
        };
        reply.metadata.response_code = code;
        if code == ResponseCode::YXDomain {
            // Something in a section, so that the comparison has records to compare.
            reply.add_authority(soa());
        }
        if code == ResponseCode::BADVERS || query.edns.is_some() {
            // BADVERS lives in the OPT record's upper bits (RFC 6891 section 6.1.3).
            reply.set_edns(Edns::new());
        }
        vec![Step::Reply(fake_upstream::bytes(&reply))]
    })
}

fn soa() -> Record {
    let zone = Name::from_ascii("rcode.test.").expect("zone");
    let soa = SOA::new(
        Name::from_ascii("ns.rcode.test.").expect("mname"),
        Name::from_ascii("hostmaster.rcode.test.").expect("rname"),
        7,
        3600,
        600,
        86400,
        60,
    );
    Record::from_rdata(zone, 60, RData::SOA(soa))
}

/// The full rcode (header and OPT bits) and each answer and authority record encoded
/// with its TTL set to 0.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    rcode: u16,
    answers: Vec<Vec<u8>>,
    authorities: Vec<Vec<u8>>,
}

fn seen(response: &Message) -> Seen {
    let encode = |records: &[Record]| {
        records
            .iter()
            .map(|record| {
                let mut record = record.clone();
                record.ttl = 0;
                record.to_bytes().expect("encode a record")
            })
            .collect()
    };
    Seen {
        rcode: u16::from(response.metadata.response_code),
        answers: encode(&response.answers),
        authorities: encode(&response.authorities),
    }
}

/// dnsmasq serving an IDC's internal names, forwarding `rcode.test` to `rcodes`.
fn idc_dnsmasq(rcodes: &FakeUpstream) -> Dnsmasq {
    let server = format!("--server=/rcode.test/127.0.0.1#{}", rcodes.addr.port());
    Dnsmasq::start_with(
        &[
            ("db.idc.example", "172.16.4.20"),
            ("web.idc.example", "192.168.7.8"),
            ("cgnat.idc.example", "100.64.3.2"),
            ("v6.idc.example", "fd00::5"),
        ],
        &[
            "--address=/mirror.idc.example/10.60.0.5",
            "--cname=alias.idc.example,db.idc.example",
            "--cname=www.idc.example,alias.idc.example",
            "--local=/idc.example/",
            &server,
        ],
    )
}

#[test]
fn forwarded_private_addresses_and_rcodes_reach_the_client_as_the_upstream_gave_them() {
    let rcodes = rcode_server();
    let upstream = idc_dnsmasq(&rcodes);
    // The default config: nothing about rebinding, private domains or rcodes.
    let agent = Agent::start(&registry_config(upstream.addr, ""));
    let cases: [(&str, RecordType, u16, &[&str]); 15] = [
        ("mirror.idc.example.", RecordType::A, 0, &["10.60.0.5"]),
        ("db.idc.example.", RecordType::A, 0, &["172.16.4.20"]),
        ("web.idc.example.", RecordType::A, 0, &["192.168.7.8"]),
        ("cgnat.idc.example.", RecordType::A, 0, &["100.64.3.2"]),
        ("v6.idc.example.", RecordType::AAAA, 0, &["fd00::5"]),
        ("www.idc.example.", RecordType::A, 0, &["172.16.4.20"]),
        ("none.idc.example.", RecordType::A, 3, &[]),
        ("yxdomain.rcode.test.", RecordType::A, 6, &[]),
        ("notauth.rcode.test.", RecordType::A, 9, &[]),
        ("notzone.rcode.test.", RecordType::A, 10, &[]),
        ("refused.rcode.test.", RecordType::A, 5, &[]),
        ("formerr.rcode.test.", RecordType::A, 1, &[]),
        ("notimp.rcode.test.", RecordType::A, 4, &[]),
        ("servfail.rcode.test.", RecordType::A, 2, &[]),
        ("badvers.rcode.test.", RecordType::A, 16, &[]),
    ];
    for edns in [true, false] {
        for (name, rtype, rcode, addrs) in cases {
            // BADVERS needs an OPT record to be told: only an EDNS client can get it.
            if rcode >= 16 && !edns {
                continue;
            }
            let direct = ask_udp(upstream.addr, &query(name, rtype, edns));
            let through = ask_udp(agent.addr, &query(name, rtype, edns));
            let context = format!("{name} {rtype} (EDNS {edns})");
            eprintln!(
                "{context}: direct {:?} {:?}, through pathdns {:?} {:?}",
                direct.metadata.response_code,
                addresses(&direct),
                through.metadata.response_code,
                addresses(&through)
            );
            // The upstream really gave what the case says, so the comparison means something.
            assert_eq!(seen(&direct).rcode, rcode, "{context}: direct: {direct:?}");
            assert_eq!(addresses(&direct), *addrs, "{context}: direct");
            assert_eq!(
                seen(&through),
                seen(&direct),
                "{context}: through pathdns {through:?}\ndirect {direct:?}"
            );
        }
    }
}
