//! What a discovery server's reply may be taken for: the owned name's A records, reached
//! through a CNAME chain that stays inside the name's own domain, or a reason to take
//! nothing from it.
//!
//! Owns: [`addresses`] (pure: a parsed reply and the asked name in, the addresses or a
//! [`Rejected`] out) and [`usable_address`], the one rule for an address that may become
//! a target (also applied to the state file). Must not: ask anyone, or decide what a
//! rejected reply changes (nothing; the runner keeps what it had).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// More addresses than this for one name is not an answer anyone meant (a registry has one
/// or two access points, OSS a handful of VIPs): the reply is rejected as a whole.
pub const MAX_ADDRESSES: usize = 16;
/// The longest CNAME chain followed; longer is treated as a loop.
pub const MAX_CHAIN: usize = 8;

/// Why a reply was not taken. The runner logs it and keeps the addresses it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("answered another question ({0})")]
    OtherQuestion(String),
    #[error("answered {0}")]
    Rcode(String),
    #[error("truncated: more addresses than pathdns takes for one name (at most {MAX_ADDRESSES})")]
    Truncated,
    #[error("no addresses for the name")]
    NoAddresses,
    #[error("{0} addresses for one name: more than pathdns takes (at most {MAX_ADDRESSES})")]
    TooMany(usize),
    #[error("a record for {0}, which was not asked and is not in the CNAME chain")]
    Unasked(String),
    #[error("a CNAME chain that loops or is longer than {MAX_CHAIN} at {0}")]
    ChainLoop(String),
    #[error("a CNAME to {0}, outside the name's domain")]
    ChainLeaves(String),
    #[error("{addr} is not usable as a target: {why}")]
    Unusable { addr: IpAddr, why: &'static str },
    #[error("not a reply to a query")]
    NotAReply,
}

/// The A records for `asked` in `reply`, deduplicated and sorted, or why there are none
/// to take. Every record of the answer section must be the asked name's or its chain's:
/// a resolver that answers for other names than asked is not trusted with this one.
pub fn addresses(reply: &Message, asked: &Name) -> Result<Vec<IpAddr>, Rejected> {
    if reply.metadata.message_type != MessageType::Response
        || reply.metadata.op_code != OpCode::Query
    {
        return Err(Rejected::NotAReply);
    }
    check_question(reply, asked)?;
    if reply.metadata.response_code != ResponseCode::NoError {
        return Err(Rejected::Rcode(format!(
            "{:?}",
            reply.metadata.response_code
        )));
    }
    if reply.metadata.truncation {
        return Err(Rejected::Truncated);
    }
    let chain = cname_chain(reply, asked)?;
    let mut found = BTreeSet::new();
    for record in &reply.answers {
        let owner = record.name.to_lowercase();
        if !chain.contains(&owner) {
            return Err(Rejected::Unasked(display(&owner)));
        }
        if record.dns_class != DNSClass::IN {
            return Err(Rejected::Unasked(format!(
                "{} (class {})",
                display(&owner),
                record.dns_class
            )));
        }
        if let RData::A(a) = &record.data {
            if chain.last() != Some(&owner) {
                // An address beside a CNAME: the name is the chain's end, not this.
                return Err(Rejected::ChainLoop(display(&owner)));
            }
            let addr = IpAddr::V4(a.0);
            usable_address(addr).map_err(|why| Rejected::Unusable { addr, why })?;
            found.insert(addr);
        }
    }
    if found.len() > MAX_ADDRESSES {
        return Err(Rejected::TooMany(found.len()));
    }
    if found.is_empty() {
        return Err(Rejected::NoAddresses);
    }
    Ok(found.into_iter().collect())
}

/// The question section must be exactly the one asked (case aside: 0x20 is allowed).
fn check_question(reply: &Message, asked: &Name) -> Result<(), Rejected> {
    let [query] = reply.queries.as_slice() else {
        return Err(Rejected::OtherQuestion(format!(
            "{} questions",
            reply.queries.len()
        )));
    };
    let same = query.name().to_lowercase() == asked.to_lowercase()
        && query.query_type() == RecordType::A
        && query.query_class() == DNSClass::IN;
    if !same {
        return Err(Rejected::OtherQuestion(format!(
            "{} {}",
            display(&query.name().to_lowercase()),
            query.query_type()
        )));
    }
    Ok(())
}

/// The asked name and the names its CNAMEs lead to, in order, each inside the asked
/// name's domain (its last two labels: `aliyuncs.com` for the documents' names).
fn cname_chain(reply: &Message, asked: &Name) -> Result<Vec<Name>, Rejected> {
    let domain = asked.to_lowercase().trim_to(2);
    let mut chain = vec![asked.to_lowercase()];
    loop {
        let Some(current) = chain.last() else {
            return Err(Rejected::NoAddresses);
        };
        let next = reply.answers.iter().find_map(|record| match &record.data {
            RData::CNAME(target) if record.name.to_lowercase() == *current => {
                Some(target.0.to_lowercase())
            }
            _ => None,
        });
        let Some(next) = next else {
            return Ok(chain);
        };
        if chain.contains(&next) || chain.len() > MAX_CHAIN {
            return Err(Rejected::ChainLoop(display(&next)));
        }
        if !domain.zone_of(&next) {
            return Err(Rejected::ChainLeaves(display(&next)));
        }
        chain.push(next);
    }
}

/// Whether `addr` may be a target: not loopback, link-local, multicast, broadcast,
/// unspecified, "this network" (0/8) or reserved (240/4). A VPC address is private by
/// nature (10.x, 100.x, 172.16/12, 192.168/16), so private ranges are usable.
pub fn usable_address(addr: IpAddr) -> Result<(), &'static str> {
    match addr {
        IpAddr::V4(v4) => usable_v4(v4),
        IpAddr::V6(v6) if v6.is_loopback() => Err("a loopback address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Err("the unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Err("a multicast address"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Err("a link-local address"),
        IpAddr::V6(_) => Ok(()),
    }
}

fn usable_v4(addr: Ipv4Addr) -> Result<(), &'static str> {
    let first = addr.octets()[0];
    if addr.is_loopback() {
        Err("a loopback address")
    } else if addr.is_link_local() {
        Err("a link-local address")
    } else if addr.is_broadcast() {
        Err("the broadcast address")
    } else if addr.is_multicast() {
        Err("a multicast address")
    } else if first == 0 {
        Err("in 0.0.0.0/8 (\"this network\")")
    } else if first >= 240 {
        Err("in the reserved 240.0.0.0/4")
    } else {
        Ok(())
    }
}

fn display(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::Record;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn reply(asked: &str, records: Vec<Record>) -> Message {
        let mut message = Message::new(7, MessageType::Response, OpCode::Query);
        message.add_query(Query::query(name(asked), RecordType::A));
        for record in records {
            message.add_answer(record);
        }
        message
    }

    fn a(owner: &str, addr: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A(addr.parse().unwrap())))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(target))))
    }

    const REGISTRY: &str = "xxxxxx-registry-vpc.cn-hangzhou.cr.aliyuncs.com.";

    #[test]
    fn a_records_of_the_asked_name_are_taken_sorted_and_once() {
        let got = addresses(
            &reply(
                REGISTRY,
                vec![
                    a(REGISTRY, "10.94.205.199"),
                    a(REGISTRY, "10.94.205.198"),
                    a(REGISTRY, "10.94.205.198"),
                ],
            ),
            &name(REGISTRY),
        );
        assert_eq!(
            got,
            Ok(vec![
                "10.94.205.198".parse().unwrap(),
                "10.94.205.199".parse().unwrap()
            ])
        );
    }

    #[test]
    fn a_cname_chain_inside_the_domain_is_followed() {
        let end = "xxxxxx-registry-vpc.vpc-endpoint.aliyuncs.com.";
        let got = addresses(
            &reply(
                REGISTRY,
                vec![cname(REGISTRY, end), a(end, "10.94.205.198")],
            ),
            &name(REGISTRY),
        );
        assert_eq!(got, Ok(vec!["10.94.205.198".parse().unwrap()]));
    }

    #[test]
    fn a_chain_that_loops_or_leaves_the_domain_is_rejected() {
        let other = "b.cn-hangzhou.cr.aliyuncs.com.";
        let looped = reply(
            REGISTRY,
            vec![cname(REGISTRY, other), cname(other, REGISTRY)],
        );
        assert!(matches!(
            addresses(&looped, &name(REGISTRY)),
            Err(Rejected::ChainLoop(_))
        ));
        let leaves = reply(
            REGISTRY,
            vec![
                cname(REGISTRY, "evil.example."),
                a("evil.example.", "10.1.1.1"),
            ],
        );
        assert!(matches!(
            addresses(&leaves, &name(REGISTRY)),
            Err(Rejected::ChainLeaves(_))
        ));
    }

    #[test]
    fn records_for_other_names_reject_the_whole_reply() {
        let got = addresses(
            &reply(
                REGISTRY,
                vec![
                    a(REGISTRY, "10.94.205.198"),
                    a("other.aliyuncs.com.", "10.0.0.1"),
                ],
            ),
            &name(REGISTRY),
        );
        assert!(matches!(got, Err(Rejected::Unasked(_))), "{got:?}");
        let other_question = reply(
            "other.aliyuncs.com.",
            vec![a("other.aliyuncs.com.", "10.0.0.1")],
        );
        assert!(matches!(
            addresses(&other_question, &name(REGISTRY)),
            Err(Rejected::OtherQuestion(_))
        ));
    }

    #[test]
    fn loopback_link_local_and_reserved_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "169.254.20.53",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
        ] {
            let got = addresses(&reply(REGISTRY, vec![a(REGISTRY, bad)]), &name(REGISTRY));
            assert!(
                matches!(got, Err(Rejected::Unusable { .. })),
                "{bad}: {got:?}"
            );
        }
        for good in [
            "10.94.205.198",
            "100.103.7.181",
            "172.16.0.1",
            "192.168.1.1",
        ] {
            assert!(usable_address(good.parse().unwrap()).is_ok(), "{good}");
        }
    }

    #[test]
    fn huge_empty_and_failed_replies_are_rejected() {
        let many = (1..=17)
            .map(|i| a(REGISTRY, &format!("10.0.0.{i}")))
            .collect();
        assert_eq!(
            addresses(&reply(REGISTRY, many), &name(REGISTRY)),
            Err(Rejected::TooMany(17))
        );
        assert_eq!(
            addresses(&reply(REGISTRY, vec![]), &name(REGISTRY)),
            Err(Rejected::NoAddresses)
        );
        let mut nx = reply(REGISTRY, vec![]);
        nx.metadata.response_code = ResponseCode::NXDomain;
        assert!(matches!(
            addresses(&nx, &name(REGISTRY)),
            Err(Rejected::Rcode(_))
        ));
        let mut truncated = reply(REGISTRY, vec![a(REGISTRY, "10.0.0.1")]);
        truncated.metadata.truncation = true;
        assert_eq!(
            addresses(&truncated, &name(REGISTRY)),
            Err(Rejected::Truncated)
        );
    }
}
